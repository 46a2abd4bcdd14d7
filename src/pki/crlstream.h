/* Reading a CRL without building it. OpenSSL's X509_CRL holds every entry
 * as objects (a million-entry CRL: hundreds of MB); here the DER is walked
 * in place: the fields of tbsCertList are decoded, the signature is
 * verified over the tbsCertList bytes as they are, and the entries are
 * read one at a time. PEM is decoded to DER first. */
#ifndef PIV_CRLSTREAM_H
#define PIV_CRLSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

/* The largest CRL file read (DER or PEM). */
#define PIV_CRL_MAX_FILE (256L * 1024 * 1024)

struct piv_crl_der {
	uint8_t *der;      /* the CRL's DER, owned: mapped from the file, or decoded */
	size_t len;
	bool mapped;
	size_t released;   /* bytes from the start given back (piv_crl_der_release) */
};

/* Read a CRL file, DER or PEM (the first "-----BEGIN X509 CRL-----" block),
 * in bulk. 0, or -1 with why. */
int piv_crl_der_read(const char *path, struct piv_crl_der *out, char *why, size_t why_size);
/* The same from memory (tests, fuzzing). */
int piv_crl_der_from_mem(const uint8_t *data, size_t len, struct piv_crl_der *out, char *why,
                         size_t why_size);
void piv_crl_der_free(struct piv_crl_der *d);

struct piv_crl_view {
	const uint8_t *tbs;          /* tbsCertList, tag to end: what is signed */
	size_t tbs_len;
	long version;                /* 0 (v1, no version field) or 1 (v2) */
	X509_ALGOR *tbs_sig_alg;
	X509_NAME *issuer;
	ASN1_TIME *this_update;
	ASN1_TIME *next_update;      /* NULL when absent */
	const uint8_t *entries;      /* content of revokedCertificates, NULL when absent */
	size_t entries_len;
	STACK_OF(X509_EXTENSION) *extensions; /* crlExtensions, NULL when absent */
	X509_ALGOR *sig_alg;
	ASN1_BIT_STRING *signature;
};

/* Decode the frame of a DER CRL: exactly one CertificateList, DER lengths
 * within bounds, every field where RFC 5280 puts it. The view points into
 * der (which must outlive it). 0, or -1 with why. */
int piv_crl_view_parse(const uint8_t *der, size_t len, struct piv_crl_view *v, char *why,
                       size_t why_size);
void piv_crl_view_free(struct piv_crl_view *v);

/* Verify the signature over the tbsCertList bytes with key: the two
 * signature algorithm fields must agree, and be one of RSA PKCS#1 v1.5 or
 * RSASSA-PSS, or ECDSA, with SHA-256, SHA-384 or SHA-512. 1 when it
 * verifies, 0 otherwise (why says which). */
int piv_crl_view_verify(const struct piv_crl_view *v, EVP_PKEY *key, char *why, size_t why_size);

/* The same in steps, for a caller that hashes the tbsCertList while it
 * reads it: init, update with every byte of v->tbs in order, final. */
EVP_MD_CTX *piv_crl_verify_init(const struct piv_crl_view *v, EVP_PKEY *key, char *why,
                                size_t why_size);
int piv_crl_verify_update(EVP_MD_CTX *ctx, const uint8_t *data, size_t len);
int piv_crl_verify_final(const struct piv_crl_view *v, EVP_MD_CTX *ctx, char *why,
                         size_t why_size); /* 1 verified; frees ctx */

/* Give back the memory of d below upto (whole pages only): read once, not
 * needed again. Mapped file pages are dropped, decoded ones freed. */
void piv_crl_der_release(struct piv_crl_der *d, const uint8_t *upto);

/* One entry of revokedCertificates. */
struct piv_crl_entry {
	const uint8_t *serial;       /* the INTEGER's content octets (DER, two's complement) */
	size_t serial_len;
	int reason;                  /* CRLReason, -1 when the entry has none */
	bool critical_extension;     /* an entry extension marked critical */
};

/* Walk the entries: start with *pos = v->entries; each call decodes the
 * entry at *pos and advances it. 1 with *e filled, 0 at the end, -1 with
 * why for a malformed entry. */
int piv_crl_view_next(const struct piv_crl_view *v, const uint8_t **pos, struct piv_crl_entry *e,
                      char *why, size_t why_size);

#endif
