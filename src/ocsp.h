/* OCSP: ask the certificate's responder (AIA, or ocsp_url) with a nonce,
 * check who signed the answer and when, and keep a definitive answer in
 * cache_dir until its nextUpdate. */
#ifndef PIV_OCSP_H
#define PIV_OCSP_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "conf.h"
#include "revocation.h"

/* The OCSP answer for cert (issued by issuer) of a validated chain;
 * store holds the trust anchors (for a delegated responder's chain). */
enum piv_rev_answer piv_ocsp_check(const struct piv_conf *conf, X509 *cert, X509 *issuer,
                                   STACK_OF(X509) *chain, X509_STORE *store, time_t now,
                                   piv_rev_log_fn log, void *ud, char *reason,
                                   size_t reason_size);

/* Check a DER OCSP response for cert: status successful, signed by the
 * issuer or a responder it delegated to (id-kp-OCSPSigning), current
 * within the clock skew, nonce equal to req's when both carry one (req may
 * be NULL for a cached response). Exposed for tests and the fuzzer. */
enum piv_rev_answer piv_ocsp_judge(const unsigned char *der, size_t len, X509 *cert,
                                   X509 *issuer, STACK_OF(X509) *chain, X509_STORE *store,
                                   void *req, time_t now, time_t *next_update,
                                   char *reason, size_t reason_size);

#endif
