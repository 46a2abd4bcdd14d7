/* One certificate from bytes to an account (see assess.h). Network work
 * (OCSP, CRL downloads, LDAP) happens here, in the calling process, with
 * SIGPIPE held off: the libraries write to sockets the peer may close. */
#include "config.h"
#include "pam/assess.h"

#include <stdio.h>
#include <string.h>

#include "accounts/mapping.h"
#include "pki/revocation.h"
#include "common/util.h"

static void
no_log(void *ud, int prio, const char *text)
{
	(void)ud;
	(void)prio;
	(void)text;
}

void
piv_assess(const struct piv_conf *conf, const struct piv_trust *trust, const uint8_t *der,
           size_t len, const struct piv_blob *extras, size_t n_extras, const char *user,
           const struct piv_assess_hooks *hooks, struct piv_assessment *a)
{
	struct piv_accounts acc;
	struct piv_sigpipe_guard guard;
	STACK_OF(X509) *chain = NULL;
	const char *chosen = NULL;

	memset(a, 0, sizeof(*a));
	memset(&acc, 0, sizeof(acc));
	if (user != NULL && *user == '\0')
		user = NULL;
	piv_sigpipe_block(&guard);
	a->status = piv_validate(conf, trust, der, len, extras, n_extras, &a->leaf, &chain, a->why,
	                         sizeof(a->why));
	if (a->status == PIV_OK)
		a->status = piv_revocation_check(conf, trust->store, chain,
		                                 hooks->log ? hooks->log : no_log, hooks->ud, a->why,
		                                 sizeof(a->why));
	sk_X509_pop_free(chain, X509_free);
	if (a->status != PIV_OK)
		goto out;

	a->why[0] = '\0';
	a->status = piv_map_cert(conf, der, len, hooks->account_exists, hooks->map_trace, hooks->ud,
	                         &acc, a->why, sizeof(a->why));
	if (a->status == PIV_OK)
		a->status = piv_map_decide(&acc, user, &chosen);
	a->n_accounts = acc.n;
	if (a->status == PIV_OK) {
		snprintf(a->account, sizeof(a->account), "%s", chosen);
		snprintf(a->why, sizeof(a->why), "mapped to '%s' by rule %zu", chosen, acc.rule + 1);
	} else if (a->why[0] != '\0' && acc.n == 0) {
		/* the mapping said why: a directory, a file, a refused name */
	} else if (a->status == PIV_E_AMBIGUOUS) {
		snprintf(a->why, sizeof(a->why), "certificate maps to %zu accounts", acc.n);
	} else if (a->status == PIV_E_NOT_MAPPED) {
		snprintf(a->why, sizeof(a->why), acc.n ? "certificate maps to other account(s)"
		                                      : "no mapping rule yields an existing account");
	} else {
		snprintf(a->why, sizeof(a->why), "mapping failed");
	}
	piv_accounts_free(&acc);
out:
	piv_sigpipe_restore(&guard);
	if (a->status != PIV_OK) {
		X509_free(a->leaf);
		a->leaf = NULL;
	}
}

void
piv_assessment_clear(struct piv_assessment *a)
{
	X509_free(a->leaf);
	memset(a, 0, sizeof(*a));
}
