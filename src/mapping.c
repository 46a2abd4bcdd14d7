/* Certificate → account mapping (SPEC §3): name: rules through
 * libsss_certmap, file: rules through mapfile.c; ldap: plugs in as a
 * further kind in piv_map_cert(). */
#include "config.h"
#include "mapping.h"
#include "util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sss_certmap.h>

#include "mapfile.h"
#include "validate.h"

/* Without a match line a rule applies to every certificate that passed
 * validation, which already requires digitalSignature. (libsss_certmap's
 * own default would silently demand EKU clientAuth.) */
#define MATCH_ALL "<KU>digitalSignature"

void
piv_accounts_free(struct piv_accounts *acc)
{
	for (size_t i = 0; i < acc->n; i++)
		free(acc->name[i]);
	memset(acc, 0, sizeof(*acc));
}

bool
piv_valid_account_name(const char *name)
{
	size_t len = strlen(name);

	if (len == 0 || len > 256 || name[0] == '-' || name[0] == '.')
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '-' || c == '.' || c == '@' || c == '$'))
			return false;
	}
	return true;
}

/* Every rule line names the rule and one value from the certificate or
 * the library, both escaped. */
static void
trace(piv_map_trace_fn fn, void *ud, const char *what, const char *rule, const char *value)
{
	char line[768];
	char er[300], ev[300];

	if (fn == NULL)
		return;
	snprintf(line, sizeof(line), "rule %s: %s '%s'", piv_escape_str(rule, er, sizeof(er)), what,
	         piv_escape_str(value, ev, sizeof(ev)));
	fn(ud, line);
}

static int
add_account(struct piv_accounts *acc, const char *name)
{
	for (size_t i = 0; i < acc->n; i++)
		if (strcmp(acc->name[i], name) == 0)
			return 0;
	if (acc->n >= PIV_MAX_ACCOUNTS)
		return -1;
	if ((acc->name[acc->n] = strdup(name)) == NULL)
		return -1;
	acc->n++;
	return 0;
}

/* Does the rule's match line (if any) accept this certificate? 1 yes,
 * 0 no, -1 error. */
static int
rule_matches(const struct piv_rule *rule, const uint8_t *der, size_t len)
{
	struct sss_certmap_ctx *ctx = NULL;
	int rv;

	if (rule->match == NULL)
		return 1;
	rv = sss_certmap_init(NULL, NULL, NULL, &ctx);
	if (rv == 0)
		rv = sss_certmap_add_rule(ctx, 0, rule->match, "LDAPU1:{subject_dn}", NULL);
	if (rv == 0)
		rv = sss_certmap_match_cert(ctx, der, len);
	sss_certmap_free_ctx(ctx);
	return rv == 0 ? 1 : rv == ENOENT ? 0 : -1;
}

/* file:PATH — the accounts the mapping file lists for the certificate. */
static enum piv_status
run_file_rule(const struct piv_rule *rule, const uint8_t *der, size_t len,
              piv_account_exists_fn exists, piv_map_trace_fn tr, void *ud,
              struct piv_accounts *acc, char *why, size_t why_size)
{
	struct piv_accounts listed;
	struct piv_cert_facts facts;
	enum piv_status st;
	X509 *cert;
	int m = rule_matches(rule, der, len);

	if (m <= 0) {
		trace(tr, ud, "certificate does not match", rule->map, rule->match);
		return PIV_OK;
	}
	cert = piv_cert_from_der(der, len);
	if (cert == NULL || piv_cert_facts(cert, &facts) != 0) {
		X509_free(cert);
		return PIV_OK;
	}
	X509_free(cert);
	memset(&listed, 0, sizeof(listed));
	st = piv_mapfile_lookup(rule->map + 5, &facts, &listed, why, why_size);
	for (size_t i = 0; st == PIV_OK && i < listed.n; i++) {
		if (!exists(ud, listed.name[i])) {
			trace(tr, ud, "lists an account that does not exist:", rule->map, listed.name[i]);
			continue;
		}
		trace(tr, ud, "maps to account", rule->map, listed.name[i]);
		if (add_account(acc, listed.name[i]) != 0)
			st = PIV_E_INTERNAL;
	}
	if (st == PIV_OK && listed.n == 0)
		trace(tr, ud, "lists no account for the certificate", rule->map, facts.sha256);
	piv_accounts_free(&listed);
	return st;
}

/* name:TEMPLATE — the template expanded verbatim is the account name. */
static enum piv_status
run_name_rule(const struct piv_rule *rule, const uint8_t *der, size_t len,
              piv_account_exists_fn exists, piv_map_trace_fn tr, void *ud,
              struct piv_accounts *acc)
{
	struct sss_certmap_ctx *ctx = NULL;
	char *map_rule = NULL, *expanded = NULL;
	char **domains = NULL;
	enum piv_status st = PIV_E_INTERNAL;
	int rv;

	if (asprintf(&map_rule, "LDAPU1:%s", rule->map + 5) < 0)
		return PIV_E_INTERNAL;
	rv = sss_certmap_init(NULL, NULL, NULL, &ctx);
	if (rv == 0)
		rv = sss_certmap_add_rule(ctx, 0, rule->match ? rule->match : MATCH_ALL, map_rule,
		                          NULL);
	if (rv != 0) {
		st = PIV_E_CONFIG;
		goto out;
	}
	rv = sss_certmap_match_cert(ctx, der, len);
	if (rv == ENOENT) {
		trace(tr, ud, "certificate does not match", rule->map,
		      rule->match ? rule->match : MATCH_ALL);
		st = PIV_OK;
		goto out;
	}
	if (rv != 0) {
		trace(tr, ud, "matching failed:", rule->map, strerror(rv));
		st = PIV_OK; /* a certificate the library cannot read maps nothing */
		goto out;
	}
	rv = sss_certmap_expand_mapping_rule(ctx, der, len, &expanded, &domains);
	if (rv != 0 || expanded == NULL) {
		trace(tr, ud, "the certificate has no value for the template:", rule->map,
		      strerror(rv ? rv : ENOENT));
		st = PIV_OK;
		goto out;
	}
	if (!piv_valid_account_name(expanded)) {
		trace(tr, ud, "expands to an invalid account name", rule->map, expanded);
		st = PIV_OK;
		goto out;
	}
	if (!exists(ud, expanded)) {
		trace(tr, ud, "expands to an account that does not exist:", rule->map, expanded);
		st = PIV_OK;
		goto out;
	}
	trace(tr, ud, "maps to account", rule->map, expanded);
	st = add_account(acc, expanded) == 0 ? PIV_OK : PIV_E_INTERNAL;
out:
	sss_certmap_free_filter_and_domains(expanded, domains);
	sss_certmap_free_ctx(ctx);
	free(map_rule);
	return st;
}

enum piv_status
piv_map_cert(const struct piv_conf *conf, const uint8_t *der, size_t len,
             piv_account_exists_fn exists, piv_map_trace_fn tr, void *ud,
             struct piv_accounts *acc, char *why, size_t why_size)
{
	memset(acc, 0, sizeof(*acc));
	for (size_t i = 0; i < conf->n_rules; i++) {
		const struct piv_rule *rule = &conf->rules[i];
		enum piv_status st;

		if (strncmp(rule->map, "name:", 5) == 0)
			st = run_name_rule(rule, der, len, exists, tr, ud, acc);
		else if (strncmp(rule->map, "file:", 5) == 0)
			st = run_file_rule(rule, der, len, exists, tr, ud, acc, why, why_size);
		else
			st = PIV_E_CONFIG; /* conf.c admits no other kind */
		if (st != PIV_OK) {
			piv_accounts_free(acc);
			return st;
		}
		if (acc->n > 0) {
			acc->rule = i;
			return PIV_OK;
		}
	}
	return PIV_E_NOT_MAPPED;
}

enum piv_status
piv_map_decide(const struct piv_accounts *acc, const char *pam_user, const char **chosen)
{
	*chosen = NULL;
	if (acc->n == 0)
		return PIV_E_NOT_MAPPED;
	if (pam_user != NULL && pam_user[0] != '\0') {
		for (size_t i = 0; i < acc->n; i++) {
			if (strcmp(acc->name[i], pam_user) == 0) {
				*chosen = acc->name[i];
				return PIV_OK;
			}
		}
		return PIV_E_NOT_MAPPED;
	}
	if (acc->n != 1)
		return PIV_E_AMBIGUOUS;
	*chosen = acc->name[0];
	return PIV_OK;
}
