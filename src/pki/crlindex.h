/* The cache of CRL indexes in cache_dir. A CRL is read and verified once
 * per content; what it says is kept as an index: a small header (issuer,
 * times, numbers, scope, delta) and its serial numbers sorted, which a
 * login maps and binary searches. Indexes are named by the CRL's content
 * (SHA-256 of its DER), so a CRL under two names, PEM or DER, is indexed
 * once; small pointer files say which content a version of a file (device,
 * inode, size, times) has, and which content a path had last. Building
 * is bounded work that a login need not do: a detached builder
 * (pam_piv_crlindex) does it and writes atomically, so a login killed
 * meanwhile loses nothing. */
#ifndef PIV_CRLINDEX_H
#define PIV_CRLINDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* An index record: a serial number in a fixed-width form that sorts and
 * compares with memcmp. */
#define PIV_CRL_RECORD 24
#define PIV_CRL_MAX_SERIAL 22

int piv_crl_serial_record(const ASN1_INTEGER *serial, uint8_t rec[PIV_CRL_RECORD]);
/* The same from the content octets of a DER INTEGER (two's complement). */
int piv_crl_serial_bytes_record(const uint8_t *content, size_t len, uint8_t rec[PIV_CRL_RECORD]);

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
	uint8_t content_id[32]; /* SHA-256 of the CRL's DER (of the file, when unreadable) */
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
#define PIV_CRL_IDX_MAGIC "PIVCRLI3"
#define PIV_CRL_IDX_VERSION 3u
extern const size_t piv_crl_idx_header_size;
extern const size_t piv_crl_idx_count_offset;
extern const size_t piv_crl_idx_hash_offset;

/* SHA-256 of a name's DER, of a certificate's key (SPKI DER). */
int piv_crl_name_hash(const X509_NAME *name, uint8_t out[32]);
int piv_crl_key_hash(X509 *cert, uint8_t out[32]);
/* The names of a distribution point: its full names, or its name relative
 * to issuer as a directoryName, hashed into names[*n...]; -1 when more than
 * max or unreadable. */
int piv_crl_dp_name_hashes(DIST_POINT_NAME *dpn, const X509_NAME *issuer, uint8_t (*names)[32],
                           uint32_t *n, uint32_t max);

/* Check the CRL file at crl_path against issuer and write, atomically, an
 * index of it to idx_path: its sorted serials when it is usable, or a
 * record of why it is not (unreadable, another issuer's, rejected). 0 when
 * an index was written, -1 with why when none could be. */
int piv_crl_build_index(const char *crl_path, X509 *issuer, const char *idx_path,
                        char *why, size_t why_size);
/* Map and check an index; with content_id, it must be that content's.
 * 0, or -1 (missing, truncated, corrupt, another content). */
int piv_crl_open_index(const char *idx_path, const uint8_t *content_id,
                       struct piv_crl_index *idx);
void piv_crl_close_index(struct piv_crl_index *idx);
bool piv_crl_index_has(const struct piv_crl_index *idx, const uint8_t rec[PIV_CRL_RECORD]);

/* Does the index answer for issuer? It does when it was verified with
 * issuer's key, or says the CRL is not a CRL, or another issuer's; not when
 * it names issuer but was made with another key, or before the CRL was
 * checked against it (then it is to be made again). */
bool piv_crl_index_serves(const struct piv_crl_index *idx, X509 *issuer);

/* ---- the cache ---------------------------------------------------------- */

/* Index the CRL file as it is now into cache_dir for issuer (the index of
 * its content is reused when it exists for this issuer), and record which
 * content this version of the file and this path have. The CRL is
 * verified with whichever of issuer and others (the rest of the chain,
 * may be NULL) issued it. 0, or -1 with why. *seconds gets how long it
 * took (NULL: not wanted). */
int piv_crl_cache_build(const char *cache_dir, const char *crl_path, X509 *issuer,
                        STACK_OF(X509) *others, double *seconds, char *why, size_t why_size);

/* Open the index of crl_path as it is now (previous false), or of the
 * content the path had when it was last indexed (previous true). 0, or -1
 * when there is none yet. */
int piv_crl_cache_open(const char *cache_dir, const char *crl_path, bool previous,
                       struct piv_crl_index *idx);

/* Start the detached builder (the program builder, as root, with a clean
 * environment; the issuer's certificate on its standard input) for the
 * file as it is now, unless one is already at work on it. Returns at
 * once: the caller polls piv_crl_cache_open. 0, or -1 with why. */
int piv_crl_cache_spawn(const char *builder, const char *cache_dir, const char *crl_path,
                        X509 *issuer, STACK_OF(X509) *others, char *why, size_t why_size);

/* The builder's side: hold the lock of crl_path's current version (0), or
 * -1 when another builder holds it. *fd is closed by the caller. */
int piv_crl_cache_lock(const char *cache_dir, const char *crl_path, int *fd);

/* Remove what serves nothing any more: indexes of CRLs a week past their
 * nextUpdate (made more than a week ago), pointers to indexes that are
 * gone, old unheld locks. */
void piv_crl_cache_prune(const char *cache_dir, time_t now);

#endif
