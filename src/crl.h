/* CRLs: local files and directories, fetching from HTTP distribution
 * points, and the cache of verified CRLs as sorted serial indexes that a
 * login searches through mmap without parsing the CRL again. */
#ifndef PIV_CRL_H
#define PIV_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "conf.h"
#include "revocation.h"

/* An index record: a serial number in a fixed-width form that sorts and
 * compares with memcmp. */
#define PIV_CRL_RECORD 24
#define PIV_CRL_MAX_SERIAL 22

int piv_crl_serial_record(const ASN1_INTEGER *serial, uint8_t rec[PIV_CRL_RECORD]);

/* The CRL answer for cert, whose issuer is issuer (both from a validated
 * chain). reason gets a log-safe explanation. */
enum piv_rev_answer piv_crl_check(const struct piv_conf *conf, X509 *cert, X509 *issuer,
                                  time_t now, piv_rev_log_fn log, void *ud,
                                  char *reason, size_t reason_size);

/* --- lower layers, exposed for the unit tests and the fuzzer --- */

struct piv_crl_index {
	const uint8_t *map;
	size_t map_len;
	uint64_t count;
	const uint8_t *records;
	int64_t this_update;
	int64_t next_update;
	uint32_t scope;         /* PIV_CRL_SCOPE_* */
	uint32_t flags;         /* the CRL was unreadable, another's, rejected */
	char reason[128];
	uint8_t issuer_name[32];
	uint8_t issuer_key[32];
};

#define PIV_CRL_SCOPE_ONLY_USER 1u
#define PIV_CRL_SCOPE_ONLY_CA 2u

/* Check the CRL file at crl_path against issuer and write, atomically, an
 * index of it to idx_path: its sorted serials when it is usable, or a
 * record of why it is not (unreadable, another issuer's, rejected), so
 * that the file is not parsed again until it changes. 0 when an index was
 * written, -1 with why when none could be. */
int piv_crl_build_index(const char *crl_path, X509 *issuer, const char *idx_path,
                        char *why, size_t why_size);
/* Map and check an index; it must belong to the CRL file as it is now
 * (same identity), unless crl_path is NULL. 0, or -1 (missing, stale,
 * truncated or corrupt). */
int piv_crl_open_index(const char *idx_path, const char *crl_path,
                       struct piv_crl_index *idx);
void piv_crl_close_index(struct piv_crl_index *idx);
bool piv_crl_index_has(const struct piv_crl_index *idx, const uint8_t rec[PIV_CRL_RECORD]);

#endif
