/* What one certificate amounts to before any PIN or signature: validated
 * (chain, dates, key usage, EKU, policy, card-auth rule), checked for
 * revocation, mapped, and decided for the user. The same steps for a card's
 * certificate (auth.c) and for certificates from cert_source (sshd keys,
 * agent logins), so that no path validates less than another. */
#ifndef PIV_ASSESS_H
#define PIV_ASSESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "common/conf.h"
#include "common/status.h"
#include "pki/validate.h"

struct piv_assess_hooks {
	void *ud;
	/* revocation and mapping progress; LOG_DEBUG lines only matter with
	 * debug on (the hook decides) */
	void (*log)(void *ud, int prio, const char *text);
	/* one line per mapping rule's result (may be NULL) */
	void (*map_trace)(void *ud, const char *line);
	bool (*account_exists)(void *ud, const char *name);
};

struct piv_assessment {
	enum piv_status status;
	char why[300];         /* log-safe reason */
	X509 *leaf;            /* the validated certificate, on PIV_OK only */
	char account[257];     /* the account it logs in, on PIV_OK only */
	size_t n_accounts;     /* how many the deciding rule yielded */
};

/* user: the PAM user, or NULL for a username-less login. extras: other
 * certificates (a card's), untrusted intermediates only. */
void piv_assess(const struct piv_conf *conf, const struct piv_trust *trust,
                const uint8_t *der, size_t len, const struct piv_blob *extras, size_t n_extras,
                const char *user, const struct piv_assess_hooks *hooks, struct piv_assessment *a);

void piv_assessment_clear(struct piv_assessment *a);

#endif
