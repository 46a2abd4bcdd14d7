/* OCSP: ask the certificate's responder (AIA, or ocsp_url) with a nonce,
 * check who signed the answer and when, and keep a definitive answer in
 * cache_dir until its nextUpdate. */
#ifndef PIV_OCSP_H
#define PIV_OCSP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/conf.h"
#include "pki/answer.h"

/* The OCSP answer for cert (issued by issuer) of a validated chain;
 * store holds the trust anchors (for a delegated responder's chain). */
enum piv_rev_answer piv_ocsp_check(const struct piv_conf *conf, X509 *cert, X509 *issuer,
                                   STACK_OF(X509) *chain, X509_STORE *store, time_t now,
                                   piv_rev_log_fn log, void *ud, char *reason,
                                   size_t reason_size);

/* How fresh an answer must be (from ocsp_max_age, ocsp_require_nonce). */
struct piv_ocsp_rules {
	unsigned max_age;    /* seconds an answer without nextUpdate counts */
	bool require_nonce;  /* the answer must carry the request's nonce */
};

/* Check a DER OCSP response for cert: status successful, signed by the
 * issuer or a responder it delegated to (id-kp-OCSPSigning), covering
 * cert, current: thisUpdate at most the clock skew ahead, and nextUpdate
 * still to come or, without one, thisUpdate at most rules->max_age ago;
 * nonce equal to req's when both carry one, and present when
 * rules->require_nonce (req is NULL for a cached response, which was
 * checked when it arrived). Exposed for tests and the fuzzer. */
enum piv_rev_answer piv_ocsp_judge(const unsigned char *der, size_t len, X509 *cert,
                                   X509 *issuer, STACK_OF(X509) *chain, X509_STORE *store,
                                   void *req, const struct piv_ocsp_rules *rules, time_t now,
                                   time_t *next_update, char *reason, size_t reason_size);

#endif
