/* Certificate → account mapping (SPEC §3): name: and ldap: rules through
 * libsss_certmap (ldap: searched with directory.c), file: rules through
 * mapfile.c.
 *
 * When does the next rule get its turn? When this one yields no existing
 * account: its match line excludes the certificate, the certificate lacks
 * what the template needs, or the directory answered that no entry
 * matches. Never when the directory could not answer: that ends the
 * mapping with PIV_E_DIRECTORY (PAM_AUTHINFO_UNAVAIL), because a later,
 * weaker rule must not decide just because the directory is down. */
#include "config.h"
#include "accounts/mapping.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/x509v3.h>
#include <sss_certmap.h>

#include "accounts/directory.h"
#include "accounts/mapfile.h"
#include "pki/validate.h"

/* Without a match line a rule applies to every certificate that passed
 * validation, which already requires digitalSignature. (libsss_certmap's
 * own default would silently demand EKU clientAuth.) */
#define MATCH_ALL "<KU>digitalSignature"

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

/* ldap:RULE — the accounts of the entries the expanded filter finds. */
struct ldap_hits {
	const struct piv_rule *rule;
	piv_account_exists_fn exists;
	piv_map_trace_fn tr;
	void *ud;
	struct piv_accounts *acc;
	bool failed;
};

static void
ldap_value(void *p, const char *dn, const char *value, size_t len)
{
	struct ldap_hits *h = p;
	char name[300], edn[300];
	char line[700];

	if (value == NULL) {
		piv_fmt(line, sizeof(line), "entry %s has no account attribute",
		        piv_escape_str(dn, edn, sizeof(edn)));
		trace(h->tr, h->ud, "found", h->rule->map, line);
		return;
	}
	piv_escape_str(dn, edn, sizeof(edn));
	if (len >= sizeof(name) || memchr(value, '\0', len) != NULL) {
		trace(h->tr, h->ud, "found an entry with an unusable account name:", h->rule->map, edn);
		return;
	}
	memcpy(name, value, len);
	name[len] = '\0';
	if (!piv_valid_account_name(name)) {
		trace(h->tr, h->ud, "found an invalid account name in", h->rule->map, edn);
		return;
	}
	if (!h->exists(h->ud, name)) {
		trace(h->tr, h->ud, "found an account that does not exist:", h->rule->map, name);
		return;
	}
	piv_fmt(line, sizeof(line), "%s (entry %s)", name, edn);
	trace(h->tr, h->ud, "maps to account", h->rule->map, line);
	if (add_account(h->acc, name) != 0)
		h->failed = true;
}

static enum piv_status
run_ldap_rule(const struct piv_conf *conf, const struct piv_rule *rule, const uint8_t *der,
              size_t len, piv_account_exists_fn exists, piv_map_trace_fn tr, void *ud,
              struct piv_accounts *acc, struct piv_dir **dir, char *why, size_t why_size)
{
	struct sss_certmap_ctx *ctx = NULL;
	struct ldap_hits hits = { rule, exists, tr, ud, acc, false };
	char *filter = NULL;
	char **domains = NULL;
	enum piv_status st = PIV_OK;
	size_t entries = 0;
	char count[32];
	int rv;

	rv = sss_certmap_init(NULL, NULL, NULL, &ctx);
	if (rv == 0)
		rv = sss_certmap_add_rule(ctx, 0, rule->match ? rule->match : MATCH_ALL,
		                          rule->map + 5, NULL);
	if (rv != 0) {
		sss_certmap_free_ctx(ctx);
		return PIV_E_CONFIG;
	}
	rv = sss_certmap_get_search_filter(ctx, der, len, &filter, &domains);
	if (rv == ENOENT) {
		trace(tr, ud, "certificate does not match", rule->map,
		      rule->match ? rule->match : MATCH_ALL);
		goto out;
	}
	if (rv != 0 || filter == NULL) {
		trace(tr, ud, "the certificate has no value for the template:", rule->map,
		      strerror(rv ? rv : ENOENT));
		goto out;
	}
	trace(tr, ud, "searches with filter", rule->map, filter);
	if (*dir == NULL)
		st = piv_dir_open(conf, dir, why, why_size);
	if (st == PIV_OK)
		st = piv_dir_search(*dir, filter, conf->ldap_user_attr, ldap_value, &hits, &entries, why,
		                    why_size);
	if (st == PIV_OK && hits.failed)
		st = PIV_E_INTERNAL;
	if (st == PIV_OK && acc->n == 0) {
		piv_fmt(count, sizeof(count), "%zu", entries);
		trace(tr, ud, "entries found, none with an existing account:", rule->map, count);
	}
out:
	sss_certmap_free_filter_and_domains(filter, domains);
	sss_certmap_free_ctx(ctx);
	return st;
}

/* Names that carry a NUL byte or an invalid UTF8String would read
 * differently to OpenSSL, libsss_certmap and the directory (a C string
 * ends at the NUL): such a certificate maps nobody. */
static bool
string_is_clean(const ASN1_STRING *str)
{
	unsigned char *utf8 = NULL;
	int n;

	if (str == NULL)
		return true;
	if (memchr(ASN1_STRING_get0_data(str), '\0', (size_t)ASN1_STRING_length(str)) != NULL &&
	    ASN1_STRING_type(str) != V_ASN1_BMPSTRING && ASN1_STRING_type(str) != V_ASN1_UNIVERSALSTRING)
		return false;
	n = ASN1_STRING_to_UTF8(&utf8, str);
	if (n < 0)
		return false;
	bool clean = memchr(utf8, '\0', (size_t)n) == NULL;
	OPENSSL_free(utf8);
	return clean;
}

static bool
name_is_clean(const X509_NAME *name)
{
	for (int i = 0; name != NULL && i < X509_NAME_entry_count(name); i++)
		if (!string_is_clean(X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, i))))
			return false;
	return true;
}

static bool
cert_names_clean(const uint8_t *der, size_t len)
{
	X509 *cert = piv_cert_from_der(der, len);
	GENERAL_NAMES *sans;
	bool clean;

	if (cert == NULL)
		return false;
	clean = name_is_clean(X509_get_subject_name(cert)) && name_is_clean(X509_get_issuer_name(cert));
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; clean && i < sk_GENERAL_NAME_num(sans); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		int type;
		void *value = GENERAL_NAME_get0_value(gn, &type);

		switch (type) {
		case GEN_EMAIL:
		case GEN_DNS:
		case GEN_URI:
			clean = string_is_clean(value);
			break;
		case GEN_DIRNAME:
			clean = name_is_clean(value);
			break;
		case GEN_OTHERNAME: {
			/* text values (a UPN); binary ones (a FASC-N) are not names */
			ASN1_TYPE *v = ((OTHERNAME *)value)->value;
			if (v != NULL && (v->type == V_ASN1_UTF8STRING || v->type == V_ASN1_IA5STRING ||
			                  v->type == V_ASN1_PRINTABLESTRING || v->type == V_ASN1_BMPSTRING ||
			                  v->type == V_ASN1_VISIBLESTRING || v->type == V_ASN1_T61STRING ||
			                  v->type == V_ASN1_UNIVERSALSTRING))
				clean = string_is_clean(v->value.asn1_string);
			break;
		}
		default:
			break;
		}
	}
	GENERAL_NAMES_free(sans);
	X509_free(cert);
	return clean;
}

enum piv_status
piv_map_cert(const struct piv_conf *conf, const uint8_t *der, size_t len,
             piv_account_exists_fn exists, piv_map_trace_fn tr, void *ud,
             struct piv_accounts *acc, char *why, size_t why_size)
{
	struct piv_dir *dir = NULL;
	enum piv_status st = PIV_E_NOT_MAPPED;

	memset(acc, 0, sizeof(*acc));
	if (!cert_names_clean(der, len)) {
		trace(tr, ud, "refused:", "(all)", "a name in the certificate holds a NUL byte or invalid UTF-8");
		piv_fmt(why, why_size, "a name in the certificate holds a NUL byte or invalid UTF-8");
		return PIV_E_NOT_MAPPED;
	}
	for (size_t i = 0; i < conf->n_rules; i++) {
		const struct piv_rule *rule = &conf->rules[i];

		if (strncmp(rule->map, "name:", 5) == 0)
			st = run_name_rule(rule, der, len, exists, tr, ud, acc);
		else if (strncmp(rule->map, "file:", 5) == 0)
			st = run_file_rule(rule, der, len, exists, tr, ud, acc, why, why_size);
		else if (strncmp(rule->map, "ldap:", 5) == 0)
			st = run_ldap_rule(conf, rule, der, len, exists, tr, ud, acc, &dir, why, why_size);
		else
			st = PIV_E_CONFIG; /* conf.c admits no other kind */
		if (st != PIV_OK) {
			piv_accounts_free(acc);
			break;
		}
		if (acc->n > 0) {
			acc->rule = i;
			break;
		}
		st = PIV_E_NOT_MAPPED;
	}
	piv_dir_close(dir);
	return st;
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
