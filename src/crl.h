/* CRLs: local files and directories, fetching from HTTP distribution
 * points, delta CRLs, the scope of a CRL (its issuingDistributionPoint
 * against the certificate's distribution points), no rollback to an older
 * CRL than one already seen, and the cache of verified CRLs as sorted
 * serial indexes that a login searches through mmap without parsing the
 * CRL again. */
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

/* What an index remembers of its CRL's distribution point: up to this many
 * names of its issuingDistributionPoint, and of a complete CRL's Freshest
 * CRL extension up to this many http:// URLs of its delta CRLs. */
#define PIV_CRL_MAX_DP_NAMES 8
#define PIV_CRL_MAX_FRESHEST 2
#define PIV_CRL_URL_MAX 512

struct piv_crl_index {
	const uint8_t *map;
	size_t map_len;
	uint64_t count;
	const uint8_t *records;
	int64_t this_update;
	int64_t next_update;
	uint32_t scope;         /* PIV_CRL_SCOPE_* */
	uint32_t flags;         /* PIV_CRL_IDX_* */
	char reason[128];
	uint8_t issuer_name[32];
	uint8_t issuer_key[32];
	uint8_t number[PIV_CRL_RECORD];      /* cRLNumber, with PIV_CRL_IDX_NUMBERED */
	uint8_t base_number[PIV_CRL_RECORD]; /* a delta CRL's BaseCRLNumber */
	uint8_t scope_id[32];   /* SHA-256 of the issuingDistributionPoint's DER; 0s: none */
	uint32_t n_dp_names;    /* 0: the CRL names no distribution point */
	uint8_t dp_names[PIV_CRL_MAX_DP_NAMES][32]; /* SHA-256 of each GeneralName's DER */
	uint32_t n_freshest;
	char freshest[PIV_CRL_MAX_FRESHEST][PIV_CRL_URL_MAX];
};

#define PIV_CRL_SCOPE_ONLY_USER 1u
#define PIV_CRL_SCOPE_ONLY_CA 2u

/* Index flags. The first three: the CRL says nothing usable. */
#define PIV_CRL_IDX_UNREADABLE 1u /* not a CRL at all */
#define PIV_CRL_IDX_NAME_ONLY 2u  /* another issuer's CRL; issuer_name is the CRL's */
#define PIV_CRL_IDX_REJECTED 4u   /* failed the checks against issuer_key's owner */
#define PIV_CRL_IDX_UNUSABLE (PIV_CRL_IDX_UNREADABLE | PIV_CRL_IDX_NAME_ONLY | PIV_CRL_IDX_REJECTED)
#define PIV_CRL_IDX_NUMBERED 8u   /* number holds its cRLNumber */
#define PIV_CRL_IDX_DELTA 16u     /* a delta CRL (base_number); its removeFromCRL
                                   * entries are not in the index */
#define PIV_CRL_IDX_FRESHEST 32u  /* a complete CRL that announces delta CRLs */

/* The index file layout, for the fuzzer that rewrites headers. */
#define PIV_CRL_IDX_MAGIC "PIVCRLI2"
#define PIV_CRL_IDX_VERSION 2u
extern const size_t piv_crl_idx_header_size;
extern const size_t piv_crl_idx_count_offset;
extern const size_t piv_crl_idx_hash_offset;

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
