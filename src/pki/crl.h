/* CRLs: local files and directories, fetching from HTTP distribution
 * points, delta CRLs, the scope of a CRL (its issuingDistributionPoint
 * against the certificate's distribution points), no rollback to an older
 * CRL than one already seen. The indexes of CRLs are crlindex.h's. */
#ifndef PIV_CRL_H
#define PIV_CRL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#include "common/conf.h"
#include "pki/crlindex.h"
#include "pki/crlstream.h"
#include "pki/answer.h"

/* The CRL answer for cert, whose issuer is issuer (both from the validated
 * chain, which may be NULL: CRLs found on the way are indexed with the key
 * of whichever certificate of it issued them). reason gets a log-safe
 * explanation. */
enum piv_rev_answer piv_crl_check(const struct piv_conf *conf, X509 *cert, X509 *issuer,
                                  STACK_OF(X509) *chain, time_t now, piv_rev_log_fn log,
                                  void *ud, char *reason, size_t reason_size);

/* The http:// URIs of cert's CRL distribution points (full names, no
 * reasons, no cRLIssuer), at most max of them. */
size_t piv_crl_http_cdps(X509 *cert, char urls[][1024], size_t max);

#endif
