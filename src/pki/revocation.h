/* Revocation checking of a validated chain (SPEC §2 revocation keys): the
 * configured methods in order for every certificate below the anchor; the
 * first definitive answer wins, revoked is final, and when no method can
 * answer, revocation_fail decides. */
#ifndef PIV_REVOCATION_H
#define PIV_REVOCATION_H

#include <stddef.h>

#include <openssl/x509.h>

#include "common/conf.h"
#include "common/status.h"
#include "pki/answer.h"



/* chain: leaf first, anchor last (as X509_STORE_CTX_get1_chain returns
 * it); store: the trust anchors (an OCSP responder's chain ends there).
 * PIV_OK, PIV_E_CERT_REVOKED, PIV_E_REVOCATION_UNKNOWN or PIV_E_CONFIG
 * (unusable cache_dir); why gets a log-safe reason. */
enum piv_status piv_revocation_check(const struct piv_conf *conf, X509_STORE *store,
                                     STACK_OF(X509) *chain, piv_rev_log_fn log, void *ud,
                                     char *why, size_t why_size);

#endif
