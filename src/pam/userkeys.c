/* piv_user_keys (see userkeys.h). */
#include "config.h"
#include "pam/userkeys.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include "accounts/certsrc.h"
#include "ssh/sshkey.h"
#include "common/util.h"

enum piv_status
piv_user_keys(const struct piv_conf *conf, const struct piv_trust *trust, const char *user,
              const struct piv_assess_hooks *hooks, piv_user_key_fn fn, void *ud,
              size_t *n_valid, char *why, size_t why_size)
{
	struct piv_cert_list certs;
	enum piv_status st;

	*n_valid = 0;
	st = piv_cert_source_get(conf, user, &certs, why, why_size);
	if (st != PIV_OK)
		return st;
	for (size_t i = 0; i < certs.n; i++) {
		struct piv_assessment a;
		char line[600];
		uint8_t *blob = NULL;
		size_t blob_len = 0;

		piv_assess(conf, trust, certs.cert[i].data, certs.cert[i].len, NULL, 0, user, hooks, &a);
		if (a.status == PIV_OK &&
		    piv_ssh_pubkey_blob(X509_get0_pubkey(a.leaf), &blob, &blob_len) != 0) {
			a.status = PIV_E_CERT_KEY_TYPE;
			snprintf(a.why, sizeof(a.why), "the key has no OpenSSH form");
		}
		if (hooks->log != NULL) {
			struct piv_cert_id id;
			X509 *cert = piv_cert_from_der(certs.cert[i].data, certs.cert[i].len);
			if (cert != NULL)
				piv_cert_identify(cert, &id);
			snprintf(line, sizeof(line), "certificate %zu of %s (%s): %s: %s", i + 1, user,
			         cert != NULL ? id.sha256 : "unreadable", piv_status_name(a.status), a.why);
			X509_free(cert);
			hooks->log(hooks->ud, a.status == PIV_OK ? LOG_DEBUG : LOG_NOTICE, line);
		}
		if (a.status == PIV_OK) {
			fn(ud, a.leaf, blob, blob_len);
			(*n_valid)++;
		}
		free(blob);
		piv_assessment_clear(&a);
	}
	piv_cert_list_free(&certs);
	return PIV_OK;
}
