/* Certificate validation: chain to a configured anchor with OpenSSL's
 * X509_verify_cert, dates, key usage, EKU and policy requirements, and the
 * PIV rule that a Card Authentication certificate never logs anyone in. */
#ifndef PIV_VALIDATE_H
#define PIV_VALIDATE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common/conf.h"
#include "common/util.h"
#include "common/status.h"


/* Trust material loaded once per authentication (anchors and the
 * configured intermediates). */
struct piv_trust {
	X509_STORE *store;
	STACK_OF(X509) *intermediates;
};

/* Load ca_file/ca_dir/intermediates. PIV_E_CONFIG with why on failure. */
enum piv_status piv_trust_load(const struct piv_conf *conf, struct piv_trust *trust,
                               char *why, size_t why_size);
void piv_trust_free(struct piv_trust *trust);
/* Every certificate of the trust material (anchors, the files of ca_dir,
 * intermediates), for the caller to free; NULL when out of memory. */
STACK_OF(X509) *piv_trust_certs(const struct piv_conf *conf, const struct piv_trust *trust);

/* Parse DER that must be exactly one certificate (no trailing bytes). */
X509 *piv_cert_from_der(const uint8_t *der, size_t len);

/* Validate cert_der against trust; extras are the card's other
 * certificates, used only as untrusted intermediates. On PIV_OK *leaf is
 * the parsed certificate and *chain the validated chain, leaf first and
 * anchor last (caller frees both; chain may be NULL if not wanted). why
 * gets a log-safe reason. */
enum piv_status piv_validate(const struct piv_conf *conf, const struct piv_trust *trust,
                             const uint8_t *cert_der, size_t cert_len,
                             const struct piv_blob *extras, size_t n_extras,
                             X509 **leaf, STACK_OF(X509) **chain, char *why, size_t why_size);

/* A name in RFC 4514 form, not escaped for a log: for comparisons with
 * what an administrator wrote (piv_dn_equal). "" when it does not fit. */
void piv_name_rfc4514(const X509_NAME *name, char *out, size_t out_size);

/* An ASN.1 time as seconds since the epoch. 0, or -1 if unreadable. */
int piv_asn1_time_to_unix(const ASN1_TIME *t, int64_t *out);

/* Log-safe identity of a certificate for audit lines. */
struct piv_cert_id {
	char sha256[100];  /* AA:BB:... */
	char subject[512];
	char issuer[512];
	char serial[100];
};
void piv_cert_identify(X509 *cert, struct piv_cert_id *id);

#endif
