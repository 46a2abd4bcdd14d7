/* Revocation policy (see revocation.h). Methods (ocsp.c, crl.c) answer
 * good, revoked or unknown for one certificate; this file walks the chain,
 * applies the order of the `revocation` list and `revocation_fail`. */
#include "config.h"
#include "pki/revocation.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "pki/cache.h"
#include "pki/crl.h"
#include "pki/ocsp.h"
#include "common/util.h"

static const char *
method_name(enum piv_rev_method m)
{
	return m == PIV_REV_METHOD_OCSP ? "ocsp" : "crl";
}

static enum piv_rev_answer
ask(const struct piv_conf *conf, enum piv_rev_method m, X509_STORE *store, STACK_OF(X509) *chain,
    X509 *cert, X509 *issuer, time_t now, piv_rev_log_fn log, void *ud, char *reason,
    size_t reason_size)
{
	if (m == PIV_REV_METHOD_OCSP)
		return piv_ocsp_check(conf, cert, issuer, chain, store, now, log, ud, reason,
		                      reason_size);
	return piv_crl_check(conf, cert, issuer, chain, now, log, ud, reason, reason_size);
}

static void
subject_of(X509 *cert, char *out, size_t out_size)
{
	char *line = X509_NAME_oneline(X509_get_subject_name(cert), NULL, 0);

	piv_escape_str(line ? line : "?", out, out_size);
	OPENSSL_free(line);
}

enum piv_status
piv_revocation_check(const struct piv_conf *conf, X509_STORE *store, STACK_OF(X509) *chain,
                     piv_rev_log_fn log, void *ud, char *why, size_t why_size)
{
	time_t now = time(NULL);
	int n = sk_X509_num(chain);
	char cache_why[700];

	snprintf(why, why_size, "not checked");
	if (conf->n_revocation == 0) {
		snprintf(why, why_size, "revocation checking is off (revocation = none)");
		return PIV_OK;
	}
	/* An older CRL put in place by someone else could hide a revocation:
	 * CRL sources are trust material too. */
	if (piv_cache_dir_check(conf->cache_dir, cache_why, sizeof(cache_why)) != 0) {
		piv_conf_blame(conf, "cache_dir", cache_why, sizeof(cache_why));
		snprintf(why, why_size, "%s", cache_why);
		return PIV_E_CONFIG;
	}
	if (conf->crl_file != NULL &&
	    piv_check_root_owned(conf->crl_file, false, cache_why, sizeof(cache_why)) != 0) {
		piv_conf_blame(conf, "crl_file", cache_why, sizeof(cache_why));
		snprintf(why, why_size, "%s", cache_why);
		return PIV_E_CONFIG;
	}
	if (conf->crl_dir != NULL &&
	    piv_check_root_owned(conf->crl_dir, true, cache_why, sizeof(cache_why)) != 0) {
		piv_conf_blame(conf, "crl_dir", cache_why, sizeof(cache_why));
		snprintf(why, why_size, "%s", cache_why);
		return PIV_E_CONFIG;
	}
	/* Every certificate below the anchor, leaf first. */
	for (int i = 0; i + 1 < n; i++) {
		X509 *cert = sk_X509_value(chain, i);
		X509 *issuer = sk_X509_value(chain, i + 1);
		enum piv_rev_answer answer = PIV_REV_UNKNOWN;
		char reason[400] = "", subject[300];

		subject_of(cert, subject, sizeof(subject));
		for (size_t m = 0; m < conf->n_revocation && answer == PIV_REV_UNKNOWN; m++) {
			answer = ask(conf, conf->revocation[m], store, chain, cert, issuer, now, log, ud,
			             reason, sizeof(reason));
			if (log != NULL) {
				char line[900];
				snprintf(line, sizeof(line), "revocation %s for %s: %s: %s",
				         method_name(conf->revocation[m]), subject,
				         answer == PIV_REV_GOOD ? "good"
				         : answer == PIV_REV_REVOKED ? "revoked" : "unknown", reason);
				log(ud, LOG_DEBUG, line);
			}
		}
		if (answer == PIV_REV_REVOKED) {
			snprintf(why, why_size, "%s %s is revoked (%s)", i == 0 ? "certificate" : "issuing CA",
			         subject, reason);
			return PIV_E_CERT_REVOKED;
		}
		if (answer == PIV_REV_UNKNOWN) {
			if (!conf->revocation_fail_open) {
				snprintf(why, why_size, "revocation status of %s unavailable (%s)", subject,
				         reason);
				return PIV_E_REVOCATION_UNKNOWN;
			}
			if (log != NULL) {
				char line[900];
				snprintf(line, sizeof(line), "revocation status of %s unavailable (%s); "
				         "allowed by revocation_fail = open", subject, reason);
				log(ud, LOG_WARNING, line);
			}
		}
	}
	snprintf(why, why_size, "not revoked");
	return PIV_OK;
}
