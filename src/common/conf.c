/* pam_piv configuration: one parser for the file and for module arguments.
 * Values are validated when read, so a loaded struct piv_conf is trusted by
 * every later stage; anything unknown or malformed is an error. */
#include "config.h"
#include "common/conf.h"
#include "common/util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ldap.h>
#include <openssl/objects.h>
#include <p11-kit/uri.h>
#include <sss_certmap.h>

enum key_kind {
	K_STRING,     /* non-empty string */
	K_PATH,       /* absolute path */
	K_TOKEN_URI,
	K_CERT_URI,
	K_UINT,
	K_BOOL,
	K_EKU_LIST,
	K_POLICY_LIST,
	K_MATCH,
	K_MAP,
	K_ENV_LIST,
	K_REVOCATION,
	K_FAIL_POLICY,
	K_URL,        /* http:// URL */
	K_LDAP_URI,   /* one ldap://, ldaps:// or ldapi:// URI */
	K_DN,         /* an LDAP distinguished name */
	K_ATTR,       /* an LDAP attribute description */
	K_CERT_SOURCE, /* ldap or dir:PATH */
	K_SERVICES,   /* PAM service names, each optionally +/-, comma-separated */
	K_FOREIGN,    /* fail or ignore */
	K_ISSUER_LIST, /* a DN, repeatable */
	K_URL_LIST,   /* http:// URLs, repeatable */
	K_REMOVAL,    /* none, lock or terminate */
	K_WATCH,      /* required or optional */
	K_FIPS,       /* auto or required */
};

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t offset;
	unsigned min, max;
};

#define OFF(field) offsetof(struct piv_conf, field)

static const struct key_def key_defs[] = {
	{ "pkcs11_module", K_STRING, OFF(pkcs11_module), 0, 0 },
	{ "token", K_TOKEN_URI, OFF(token_uri), 0, 0 },
	{ "cert", K_CERT_URI, OFF(cert_uri), 0, 0 },
	{ "card_wait", K_UINT, OFF(card_wait), 0, 3600 },
	{ "card_timeout", K_UINT, OFF(card_timeout), 1, 3600 },
	{ "net_timeout", K_UINT, OFF(net_timeout), 1, 300 },
	{ "ca_file", K_PATH, OFF(ca_file), 0, 0 },
	{ "ca_dir", K_PATH, OFF(ca_dir), 0, 0 },
	{ "intermediates", K_PATH, OFF(intermediates), 0, 0 },
	{ "require_eku", K_EKU_LIST, OFF(require_eku), 0, 0 },
	{ "require_policy", K_POLICY_LIST, OFF(require_policy), 0, 0 },
	{ "require_issuer", K_ISSUER_LIST, OFF(require_issuer), 0, 0 },
	{ "revocation", K_REVOCATION, 0, 0, 0 },
	{ "revocation_fail", K_FAIL_POLICY, OFF(revocation_fail_open), 0, 0 },
	{ "crl_file", K_PATH, OFF(crl_file), 0, 0 },
	{ "crl_dir", K_PATH, OFF(crl_dir), 0, 0 },
	{ "crl_fetch", K_BOOL, OFF(crl_fetch), 0, 0 },
	{ "crl_url", K_URL_LIST, OFF(crl_url), 0, 0 },
	{ "ocsp_url", K_URL, OFF(ocsp_url), 0, 0 },
	{ "ocsp_max_age", K_UINT, OFF(ocsp_max_age), 0, 7 * 86400 },
	{ "ocsp_require_nonce", K_BOOL, OFF(ocsp_require_nonce), 0, 0 },
	{ "cache_dir", K_PATH, OFF(cache_dir), 0, 0 },
	{ "match", K_MATCH, 0, 0, 0 },
	{ "map", K_MAP, 0, 0, 0 },
	{ "ldap_uri", K_LDAP_URI, OFF(ldap_uri), 0, 0 },
	{ "ldap_base", K_DN, OFF(ldap_base), 0, 0 },
	{ "ldap_user_attr", K_ATTR, OFF(ldap_user_attr), 0, 0 },
	{ "ldap_bind_dn", K_DN, OFF(ldap_bind_dn), 0, 0 },
	{ "ldap_bind_pw_file", K_PATH, OFF(ldap_bind_pw_file), 0, 0 },
	{ "ldap_starttls", K_BOOL, OFF(ldap_starttls), 0, 0 },
	{ "ldap_ca_file", K_PATH, OFF(ldap_ca_file), 0, 0 },
	{ "cert_source", K_CERT_SOURCE, OFF(cert_source), 0, 0 },
	{ "sshd_key_check", K_BOOL, OFF(sshd_key_check), 0, 0 },
	{ "agent", K_BOOL, OFF(agent), 0, 0 },
	{ "allowed_services", K_SERVICES, OFF(allowed_services), 0, 0 },
	{ "allow_remote", K_BOOL, OFF(allow_remote), 0, 0 },
	{ "foreign_card", K_FOREIGN, OFF(foreign_card_ignore), 0, 0 },
	{ "card_only", K_BOOL, OFF(card_only), 0, 0 },
	{ "fail_delay", K_UINT, OFF(fail_delay), 0, 60000 },
	{ "debug", K_BOOL, OFF(debug), 0, 0 },
	{ "removal_action", K_REMOVAL, OFF(removal_action), 0, 0 },
	{ "removal_watch", K_WATCH, OFF(removal_watch_required), 0, 0 },
	{ "fips_mode", K_FIPS, OFF(fips_required), 0, 0 },
	{ "helper", K_PATH, OFF(helper), 0, 0 },
	{ "watcher", K_PATH, OFF(watcher), 0, 0 },
	{ "crl_builder", K_PATH, OFF(crl_builder), 0, 0 },
	{ "helper_env", K_ENV_LIST, OFF(helper_env), 0, 0 },
};

/* PIV Card Authentication: its key signs without a PIN, so it never logs
 * anybody in (SPEC §1). */
static const char *const card_auth_eku = "2.16.840.1.101.3.6.8";

/* One "key = value" item with where it came from. */
struct item {
	const char *key;
	const char *value;
	const char *origin; /* file name, or NULL for an argument */
	unsigned line;
};

struct loader {
	struct piv_conf *conf;
	struct piv_conf_error *err;
	char *pending_match;   /* a "match" waiting for its "map" */
	const char *pending_origin;
	unsigned pending_line;
	bool revocation_set;
};

static int fail(struct loader *ld, const struct item *it, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int
fail(struct loader *ld, const struct item *it, const char *fmt, ...)
{
	char text[400];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (it == NULL)
		snprintf(ld->err->msg, sizeof(ld->err->msg), "%s", text);
	else if (it->origin != NULL)
		snprintf(ld->err->msg, sizeof(ld->err->msg), "%s:%u: %s",
		         it->origin, it->line, text);
	else
		snprintf(ld->err->msg, sizeof(ld->err->msg),
		         "module argument '%s': %s", it->key, text);
	return -1;
}

static const struct key_def *
find_key(const char *name)
{
	for (size_t i = 0; i < sizeof(key_defs) / sizeof(key_defs[0]); i++)
		if (strcmp(key_defs[i].name, name) == 0)
			return &key_defs[i];
	return NULL;
}

static int
strlist_add(struct piv_strlist *list, const char *value)
{
	char **grown = realloc(list->v, (list->n + 1) * sizeof(*grown));
	if (grown == NULL)
		return -1;
	list->v = grown;
	if ((list->v[list->n] = strdup(value)) == NULL)
		return -1;
	list->n++;
	return 0;
}

static void
strlist_free(struct piv_strlist *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->v[i]);
	free(list->v);
	list->v = NULL;
	list->n = 0;
}

static int
set_string(char **slot, const char *value)
{
	char *copy = strdup(value);
	if (copy == NULL)
		return -1;
	free(*slot);
	*slot = copy;
	return 0;
}

static int
parse_bool(const char *v, bool *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < 4; i++) {
		if (strcmp(v, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcmp(v, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* A PKCS#11 URI that the helper can use; pin-value and pin-source are
 * refused because a PIN never comes from configuration. */
static int
check_uri(struct loader *ld, const struct item *it, bool object)
{
	P11KitUri *uri = p11_kit_uri_new();
	int ret = -1;
	int rv;

	if (uri == NULL)
		return fail(ld, it, "out of memory");
	rv = p11_kit_uri_parse(it->value, object ? P11_KIT_URI_FOR_OBJECT_ON_TOKEN_AND_MODULE
	                                         : P11_KIT_URI_FOR_TOKEN | P11_KIT_URI_FOR_MODULE,
	                       uri);
	if (rv != P11_KIT_URI_OK) {
		fail(ld, it, "not a valid PKCS#11 URI: %s", p11_kit_uri_message(rv));
		goto out;
	}
	if (p11_kit_uri_get_pin_value(uri) != NULL || p11_kit_uri_get_pin_source(uri) != NULL) {
		fail(ld, it, "PKCS#11 URIs with pin-value or pin-source are refused");
		goto out;
	}
	if (object) {
		CK_ATTRIBUTE_PTR cls = p11_kit_uri_get_attribute(uri, CKA_CLASS);
		if (cls != NULL && (cls->ulValueLen != sizeof(CK_OBJECT_CLASS) ||
		                    *(CK_OBJECT_CLASS *)cls->pValue != CKO_CERTIFICATE)) {
			fail(ld, it, "the URI must name a certificate (type=cert)");
			goto out;
		}
	}
	ret = 0;
out:
	p11_kit_uri_free(uri);
	return ret;
}

static int
check_oid(struct loader *ld, const struct item *it, bool numeric_only)
{
	ASN1_OBJECT *obj = OBJ_txt2obj(it->value, numeric_only ? 1 : 0);
	char dotted[128];
	int ret = 0;

	if (obj == NULL)
		return fail(ld, it, numeric_only ? "not a dotted OID" : "not an EKU name or OID");
	OBJ_obj2txt(dotted, sizeof(dotted), obj, 1);
	if (!numeric_only && strcmp(dotted, card_auth_eku) == 0)
		ret = fail(ld, it, "the PIV Card Authentication EKU cannot be required: that key signs without a PIN");
	if (numeric_only && (strcmp(dotted, "2.16.840.1.101.3.2.1.3.17") == 0 ||
	                     strcmp(dotted, "2.16.840.1.101.3.2.1.3.19") == 0 ||
	                     strcmp(dotted, "2.16.840.1.101.3.2.1.3.46") == 0))
		ret = fail(ld, it, "a card authentication policy cannot be required: that key signs without a PIN");
	ASN1_OBJECT_free(obj);
	return ret;
}

/* An attribute description as RFC 4512 has it: a name (letter, then
 * letters, digits, hyphens) or a numeric OID; no options. */
static bool
valid_attr_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64)
		return false;
	if (isalpha((unsigned char)s[0])) {
		for (size_t i = 1; i < len; i++)
			if (!isalnum((unsigned char)s[i]) && s[i] != '-')
				return false;
		return true;
	}
	for (size_t i = 0; i < len; i++)
		if (!isdigit((unsigned char)s[i]) && !(s[i] == '.' && i > 0 && s[i - 1] != '.'))
			return false;
	return s[len - 1] != '.';
}

/* One directory: ldap://HOST[:PORT], ldaps://… or ldapi://SOCKET, with no
 * DN, attributes or filter, and no list of several (each further server
 * would add its own net_timeout). */
static int
check_ldap_uri(struct loader *ld, const struct item *it)
{
	LDAPURLDesc *lud = NULL;
	int ret = 0;

	if (strpbrk(it->value, " \t,") != NULL)
		return fail(ld, it, "'ldap_uri' takes one URI");
	if (strncmp(it->value, "ldap://", 7) != 0 && strncmp(it->value, "ldaps://", 8) != 0 &&
	    strncmp(it->value, "ldapi://", 8) != 0)
		return fail(ld, it, "'ldap_uri' must be ldap://, ldaps:// or ldapi://");
	if (ldap_url_parse(it->value, &lud) != LDAP_URL_SUCCESS)
		return fail(ld, it, "'ldap_uri' is not an LDAP URI");
	if ((lud->lud_dn != NULL && lud->lud_dn[0] != '\0') || lud->lud_attrs != NULL ||
	         lud->lud_filter != NULL || lud->lud_exts != NULL)
		ret = fail(ld, it, "'ldap_uri' takes no DN, attributes or filter: use ldap_base");
	else if (strcmp(lud->lud_scheme, "ldapi") != 0 && (lud->lud_host == NULL || lud->lud_host[0] == '\0'))
		ret = fail(ld, it, "'ldap_uri' needs a host");
	ldap_free_urldesc(lud);
	return ret;
}

/* A plain ldap:// answer can be forged by anybody on the path, and a
 * forged answer chooses the account: only loopback may go without TLS. */
static bool
ldap_uri_is_plain_remote(const char *uri)
{
	LDAPURLDesc *lud = NULL;
	bool remote = true;

	if (ldap_url_parse(uri, &lud) != LDAP_URL_SUCCESS)
		return true;
	if (strcmp(lud->lud_scheme, "ldap") != 0)
		remote = false;
	else if (lud->lud_host != NULL &&
	         (strcmp(lud->lud_host, "127.0.0.1") == 0 || strcmp(lud->lud_host, "::1") == 0 ||
	          strcmp(lud->lud_host, "localhost") == 0))
		remote = false;
	ldap_free_urldesc(lud);
	return remote;
}

static const char *
ldap_scheme(const char *uri)
{
	if (strncmp(uri, "ldaps:", 6) == 0)
		return "ldaps";
	if (strncmp(uri, "ldapi:", 6) == 0)
		return "ldapi";
	return "ldap";
}

/* The directory settings fit together (checked once everything is read). */
static int
check_ldap_settings(struct loader *ld, const char *where)
{
	const struct piv_conf *conf = ld->conf;
	bool used = false;

	for (size_t i = 0; i < conf->n_rules; i++)
		used = used || strncmp(conf->rules[i].map, "ldap:", 5) == 0;
	if (used && (conf->ldap_uri == NULL || conf->ldap_base == NULL))
		return fail(ld, NULL, "%s: an ldap: mapping rule needs ldap_uri and ldap_base", where);
	if ((conf->sshd_key_check || conf->agent) && conf->cert_source == NULL)
		return fail(ld, NULL, "%s: %s needs cert_source (where the user's certificates are)",
		            where, conf->agent ? "agent" : "sshd_key_check");
	if (conf->cert_source != NULL && strcmp(conf->cert_source, "ldap") == 0 &&
	    (conf->ldap_uri == NULL || conf->ldap_base == NULL))
		return fail(ld, NULL, "%s: cert_source = ldap needs ldap_uri and ldap_base", where);
	if (conf->ldap_uri == NULL)
		return 0;
	if (conf->ldap_starttls && strcmp(ldap_scheme(conf->ldap_uri), "ldap") != 0)
		return fail(ld, NULL, "%s: ldap_starttls is only for ldap:// URIs", where);
	if ((conf->ldap_starttls || strcmp(ldap_scheme(conf->ldap_uri), "ldaps") == 0) &&
	    conf->ldap_ca_file == NULL)
		return fail(ld, NULL, "%s: TLS to the directory needs ldap_ca_file (the CA that "
		            "issued the directory server's certificate)", where);
	if (!conf->ldap_starttls && ldap_uri_is_plain_remote(conf->ldap_uri))
		return fail(ld, NULL, "%s: ldap_uri: plain ldap:// to another host can be forged "
		            "on the network; use ldaps://, ldap_starttls = yes, or ldapi://", where);
	if ((conf->ldap_bind_dn == NULL) != (conf->ldap_bind_pw_file == NULL))
		return fail(ld, NULL, "%s: ldap_bind_dn and ldap_bind_pw_file go together", where);
	return 0;
}

/* glibc's regcomp, which libsss_certmap uses for the regular expressions of
 * a match rule, builds its tree by copying: x+ becomes x x*, x{m,n} becomes
 * max(m,n) copies of x, and a repetition of a group copies the group with
 * everything in it. Nested repetitions multiply, so a short rule can ask for
 * gigabytes ("O++++…" with 25 of them did, found by fuzz_conf). Estimate the
 * tree that way and refuse a rule above PIV_MATCH_MAX_NODES; a repetition
 * stacked on a repetition means nothing and is refused outright, and so is
 * a back-reference, which makes regexec backtrack. */
#define PIV_MATCH_MAX_NODES 4096
#define PIV_MATCH_MAX_DEPTH 32

static size_t
sat_add(size_t a, size_t b)
{
	return a + b > PIV_MATCH_MAX_NODES ? PIV_MATCH_MAX_NODES + 1 : a + b;
}

static size_t
sat_mul(size_t a, size_t b)
{
	return b != 0 && a > (PIV_MATCH_MAX_NODES + 1) / b ? PIV_MATCH_MAX_NODES + 1 : a * b;
}

/* The copies a repetition at p makes of what it follows (0: not a repetition),
 * and where it ends in *end. */
static size_t
repetition_factor(const char *p, const char **end)
{
	unsigned long m = 0, n = 0;
	char *q;

	*end = p + 1;
	if (*p == '*' || *p == '?')
		return 1;
	if (*p == '+')
		return 2;
	if (*p != '{')
		return 0;
	if (isdigit((unsigned char)p[1]))
		m = strtoul(p + 1, &q, 10);
	else
		q = (char *)p + 1;
	if (*q == ',') {
		if (isdigit((unsigned char)q[1]))
			n = strtoul(q + 1, &q, 10);
		else
			q++;
	}
	if (*q != '}')
		return 0; /* not an interval: a literal brace */
	*end = q + 1;
	return (m > n ? m : n) > PIV_MATCH_MAX_NODES ? PIV_MATCH_MAX_NODES + 1
	                                             : (size_t)(m > n ? m : n) + 1;
}

static const char *
match_rule_too_costly(const char *match)
{
	struct { size_t done, last; } st[PIV_MATCH_MAX_DEPTH + 1] = { { 0, 0 } };
	size_t depth = 0, f;
	bool after_repeat = false;
	const char *end;

	for (const char *p = match; *p != '\0'; p = end) {
		end = p + 1;
		if ((f = repetition_factor(p, &end)) != 0) {
			if (after_repeat)
				return "a repetition of a repetition (such as '++' or '*{2}')";
			st[depth].last = sat_mul(st[depth].last, f);
			after_repeat = true;
			continue;
		}
		after_repeat = false;
		if (*p == '(') {
			if (depth == PIV_MATCH_MAX_DEPTH)
				return "groups nested too deep";
			st[++depth].done = 0;
			st[depth].last = 0;
			continue;
		}
		if (*p == ')' && depth > 0) {
			size_t group = sat_add(sat_add(st[depth].done, st[depth].last), 1);
			depth--;
			st[depth].done = sat_add(st[depth].done, st[depth].last);
			st[depth].last = group;
			continue;
		}
		st[depth].done = sat_add(st[depth].done, st[depth].last);
		st[depth].last = *p == '|' ? 0 : 1;
		if (*p == '\\' && p[1] >= '1' && p[1] <= '9') {
			/* glibc matches back-references by backtracking: time
			 * exponential in the length of the certificate's field */
			return "a back-reference (\\1 to \\9) can make matching take exponential time";
		} else if (*p == '\\' && p[1] != '\0') {
			end = p + 2;
		} else if (*p == '[') {
			/* a bracket expression is one node: skip to its ']' */
			const char *q = p + 1;
			if (*q == '^')
				q++;
			if (*q == ']')
				q++;
			while (*q != '\0' && *q != ']') {
				if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
					const char *close = strchr(q + 2, q[1]);
					while (close != NULL && close[1] != ']')
						close = strchr(close + 1, q[1]);
					q = close != NULL ? close + 2 : q + 1;
				} else {
					q++;
				}
			}
			end = *q == ']' ? q + 1 : q;
		}
	}
	while (depth > 0) { /* unbalanced: regcomp refuses it, count it anyway */
		size_t group = sat_add(st[depth].done, st[depth].last);
		depth--;
		st[depth].done = sat_add(sat_add(st[depth].done, st[depth].last), group);
		st[depth].last = 0;
	}
	if (sat_add(st[0].done, st[0].last) > PIV_MATCH_MAX_NODES)
		return "its regular expressions would take too much memory to compile "
		       "(nested or large repetitions)";
	return NULL;
}

/* Ask libsss_certmap whether it accepts the rule, so a typo is reported at
 * configuration time with file and line, not at the first login. */
static int
check_rule(struct loader *ld, const struct item *it, const char *match, const char *map)
{
	struct sss_certmap_ctx *ctx = NULL;
	char *map_rule = NULL;
	const char *costly;
	int rv;

	if (match != NULL && (costly = match_rule_too_costly(match)) != NULL) {
		struct item mit = { "match", match, ld->pending_origin, ld->pending_line };
		return fail(ld, &mit, "the match rule is refused: %s", costly);
	}

	if (strncmp(map, "name:", 5) == 0) {
		if (map[5] == '\0')
			return fail(ld, it, "'name:' needs a template, e.g. name:{subject_dn_component.uid}");
		if (asprintf(&map_rule, "LDAPU1:%s", map + 5) < 0)
			return fail(ld, it, "out of memory");
	} else if (strncmp(map, "file:", 5) == 0) {
		if (map[5] != '/')
			return fail(ld, it, "'file:' takes an absolute path");
		if (match == NULL)
			return 0;
		/* only the matching rule matters for a file rule */
		map_rule = strdup("LDAPU1:{subject_dn}");
		if (map_rule == NULL)
			return fail(ld, it, "out of memory");
	} else if (strncmp(map, "ldap:", 5) == 0) {
		/* An sss-certmap mapping rule that expands to one LDAP filter. */
		const char *body = map + 5;
		size_t blen;
		if (strncmp(body, "LDAPU1:", 7) == 0)
			body += 7;
		else if (strncmp(body, "LDAP:", 5) == 0)
			body += 5;
		else
			return fail(ld, it, "'ldap:' takes an sss-certmap mapping rule that starts with "
			            "LDAPU1: or LDAP:, e.g. ldap:LDAPU1:(userCertificate;binary={cert!bin})");
		blen = strlen(body);
		if (blen < 3 || body[0] != '(' || body[blen - 1] != ')')
			return fail(ld, it, "the 'ldap:' mapping rule must be one parenthesized LDAP filter");
		if ((map_rule = strdup(map + 5)) == NULL)
			return fail(ld, it, "out of memory");
	} else {
		return fail(ld, it, "unknown mapping rule kind (expected name:, file: or ldap:)");
	}
	rv = sss_certmap_init(NULL, NULL, NULL, &ctx);
	if (rv == 0)
		rv = sss_certmap_add_rule(ctx, 0, match != NULL ? match : "<KU>digitalSignature",
		                          map_rule, NULL);
	sss_certmap_free_ctx(ctx);
	free(map_rule);
	if (rv != 0)
		return fail(ld, it, "libsss_certmap rejects this %s rule (%s)",
		            match != NULL ? "matching or mapping" : "mapping", strerror(rv));
	return 0;
}

static int
add_rule(struct loader *ld, const struct item *it)
{
	struct piv_conf *conf = ld->conf;
	struct piv_rule *grown;

	if (check_rule(ld, it, ld->pending_match, it->value) != 0)
		return -1;
	grown = realloc(conf->rules, (conf->n_rules + 1) * sizeof(*grown));
	if (grown == NULL)
		return fail(ld, it, "out of memory");
	conf->rules = grown;
	conf->rules[conf->n_rules].match = ld->pending_match;
	conf->rules[conf->n_rules].map = strdup(it->value);
	ld->pending_match = NULL;
	if (conf->rules[conf->n_rules].map == NULL) {
		free(conf->rules[conf->n_rules].match);
		return fail(ld, it, "out of memory");
	}
	conf->n_rules++;
	return 0;
}

static bool
valid_env_name(const char *s, size_t len)
{
	if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!(isalnum((unsigned char)s[i]) || s[i] == '_'))
			return false;
	return true;
}

/* "login, +gdm-smartcard, -sudo": PAM service names (file names in
 * /etc/pam.d), each optionally prefixed with + or -. */
static int
add_services(struct loader *ld, const struct item *it, struct piv_strlist *list)
{
	const char *p = it->value;
	size_t before = list->n;

	while (*p != '\0') {
		size_t len = strcspn(p, ", \t"), name_len;
		const char *name = p;
		char word[128];
		if (len == 0) {
			p++;
			continue;
		}
		if (len >= sizeof(word))
			return fail(ld, it, "'allowed_services': a name is too long");
		if (*name == '+' || *name == '-')
			name++;
		name_len = len - (size_t)(name - p);
		if (name_len == 0 || *name == '.')
			return fail(ld, it, "'allowed_services' takes PAM service names, each "
			            "optionally prefixed with + or -");
		for (size_t i = 0; i < name_len; i++)
			if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_' &&
			    name[i] != '.' && name[i] != '@')
				return fail(ld, it, "'allowed_services' takes PAM service names, each "
				            "optionally prefixed with + or -");
		memcpy(word, p, len);
		word[len] = '\0';
		if (strlist_add(list, word) != 0)
			return fail(ld, it, "out of memory");
		p += len;
	}
	if (list->n == before)
		return fail(ld, it, "'allowed_services' names no service");
	return 0;
}

/* Remember where a key was set (the file and line, or an argument). */
static int
note_origin(struct loader *ld, const struct item *it)
{
	char entry[PIV_CONF_MAX_LINE + 64];

	if (it->origin != NULL)
		snprintf(entry, sizeof(entry), "%s=%s:%u", it->key, it->origin, it->line);
	else
		snprintf(entry, sizeof(entry), "%s=", it->key);
	return strlist_add(&ld->conf->origins, entry) == 0 ? 0 : fail(ld, it, "out of memory");
}

const char *
piv_conf_where(const struct piv_conf *conf, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = conf->origins.n; i-- > 0;) {
		const char *e = conf->origins.v[i];
		if (strncmp(e, key, klen) == 0 && e[klen] == '=')
			return e[klen + 1] != '\0' ? e + klen + 1 : "module argument";
	}
	return "default";
}

void
piv_conf_blame(const struct piv_conf *conf, const char *key, char *why, size_t why_size)
{
	char inner[1024];

	snprintf(inner, sizeof(inner), "%s", why);
	snprintf(why, why_size, "%s: %s: %s", piv_conf_where(conf, key), key, inner);
}

static int apply_value(struct loader *ld, const struct item *it);

static int
apply(struct loader *ld, const struct item *it)
{
	if (apply_value(ld, it) != 0)
		return -1;
	return note_origin(ld, it);
}

/* An http:// URL with a host part and nothing that could end it early in
 * a request line or a log line. */
static bool
is_http_url(const char *value)
{
	return strncmp(value, "http://", 7) == 0 && strlen(value) >= 8 &&
	       strpbrk(value, " \t\"<>\\") == NULL;
}

static bool
is_dn(const char *value)
{
	LDAPDN dn = NULL;
	int rc = ldap_str2dn(value, &dn, LDAP_DN_FORMAT_LDAPV3);

	ldap_dnfree(dn);
	return rc == LDAP_SUCCESS;
}

/* One of two words: *out is false for the first, true for the second. */
static int
parse_choice(const char *value, const char *no, const char *yes, bool *out)
{
	if (strcmp(value, no) == 0)
		*out = false;
	else if (strcmp(value, yes) == 0)
		*out = true;
	else
		return -1;
	return 0;
}

/* A 'match' line waits for the 'map' line it restricts. */
static int
hold_match(struct loader *ld, const struct item *it)
{
	if (ld->pending_match != NULL)
		return fail(ld, it, "two 'match' lines in a row: each 'match' restricts the 'map' line after it");
	if ((ld->pending_match = strdup(it->value)) == NULL)
		return fail(ld, it, "out of memory");
	ld->pending_origin = it->origin;
	ld->pending_line = it->line;
	return 0;
}

/* 'revocation': an ordered list, "ocsp,crl", "crl", or "none" alone. */
static int
set_revocation(struct loader *ld, const struct item *it)
{
	struct piv_conf *conf = ld->conf;
	char list[64];
	char *save = NULL;
	size_t n = 0;
	size_t vlen = strlen(it->value);

	if (vlen >= sizeof(list) || it->value[0] == ',' || it->value[vlen - 1] == ',' ||
	    strstr(it->value, ",,") != NULL)
		return fail(ld, it, "'revocation' takes ocsp, crl, or none");
	strcpy(list, it->value);
	for (char *m = strtok_r(list, ",", &save); m != NULL; m = strtok_r(NULL, ",", &save)) {
		enum piv_rev_method method;
		while (*m == ' ')
			m++;
		for (char *e = m + strlen(m); e > m && e[-1] == ' ';)
			*--e = '\0';
		if (strcmp(m, "none") == 0 && n == 0 && save != NULL && *save == '\0') {
			conf->n_revocation = 0;
			ld->revocation_set = true;
			return 0;
		}
		if (strcmp(m, "crl") == 0)
			method = PIV_REV_METHOD_CRL;
		else if (strcmp(m, "ocsp") == 0)
			method = PIV_REV_METHOD_OCSP;
		else
			return fail(ld, it, "'revocation' takes ocsp, crl, or none (alone)");
		for (size_t i = 0; i < n; i++)
			if (conf->revocation[i] == method)
				return fail(ld, it, "'%s' listed twice", m);
		if (n >= 2)
			return fail(ld, it, "'revocation' takes ocsp, crl, or none");
		conf->revocation[n++] = method;
	}
	if (n == 0)
		return fail(ld, it, "'revocation' takes ocsp, crl, or none");
	conf->n_revocation = n;
	ld->revocation_set = true;
	return 0;
}

static int
apply_value(struct loader *ld, const struct item *it)
{
	const struct key_def *def = find_key(it->key);
	struct piv_conf *conf = ld->conf;
	void *field;

	if (def == NULL)
		return fail(ld, it, "unknown key '%s'", it->key);
	if (it->value[0] == '\0')
		return fail(ld, it, "'%s' needs a value", it->key);
	field = (char *)conf + def->offset;

	switch (def->kind) {
	case K_STRING:
		break;
	case K_PATH:
		if (it->value[0] != '/')
			return fail(ld, it, "'%s' must be an absolute path", it->key);
		break;
	case K_URL:
		if (!is_http_url(it->value))
			return fail(ld, it, "'%s' must be an http:// URL", it->key);
		break;
	case K_TOKEN_URI:
	case K_CERT_URI:
		if (check_uri(ld, it, def->kind == K_CERT_URI) != 0)
			return -1;
		break;
	case K_UINT:
		if (piv_parse_uint(it->value, def->min, def->max, (unsigned *)field) != 0)
			return fail(ld, it, "'%s' must be a whole number from %u to %u",
			            it->key, def->min, def->max);
		return 0;
	case K_BOOL:
		if (parse_bool(it->value, (bool *)field) != 0)
			return fail(ld, it, "'%s' must be yes or no", it->key);
		return 0;
	case K_EKU_LIST:
	case K_POLICY_LIST:
		if (check_oid(ld, it, def->kind == K_POLICY_LIST) != 0)
			return -1;
		return strlist_add(field, it->value) == 0 ? 0 : fail(ld, it, "out of memory");
	case K_ENV_LIST: {
		const char *eq = strchr(it->value, '=');
		if (eq == NULL || !valid_env_name(it->value, (size_t)(eq - it->value)))
			return fail(ld, it, "'helper_env' takes NAME=VALUE");
		return strlist_add(field, it->value) == 0 ? 0 : fail(ld, it, "out of memory");
	}
	case K_MATCH:
		return hold_match(ld, it);
	case K_MAP:
		return add_rule(ld, it);
	case K_REVOCATION:
		return set_revocation(ld, it);
	case K_FAIL_POLICY:
		if (parse_choice(it->value, "closed", "open", (bool *)field) != 0)
			return fail(ld, it, "'revocation_fail' takes closed or open");
		return 0;
	case K_LDAP_URI:
		if (check_ldap_uri(ld, it) != 0)
			return -1;
		break;
	case K_DN:
		if (!is_dn(it->value))
			return fail(ld, it, "'%s' is not a distinguished name", it->key);
		break;
	case K_CERT_SOURCE:
		if (strcmp(it->value, "ldap") != 0 &&
		    (strncmp(it->value, "dir:", 4) != 0 || it->value[4] != '/'))
			return fail(ld, it, "'cert_source' takes ldap or dir:/ABSOLUTE/PATH");
		break;
	case K_SERVICES:
		return add_services(ld, it, field);
	case K_URL_LIST:
		if (!is_http_url(it->value) || strlen(it->value) >= 1000)
			return fail(ld, it, "'%s' must be an http:// URL", it->key);
		return strlist_add(field, it->value) == 0 ? 0 : fail(ld, it, "out of memory");
	case K_ISSUER_LIST:
		if (!is_dn(it->value) || strlen(it->value) >= 1000)
			return fail(ld, it, "'require_issuer' takes a distinguished name (RFC 4514)");
		return strlist_add(field, it->value) == 0 ? 0 : fail(ld, it, "out of memory");
	case K_FOREIGN:
		if (parse_choice(it->value, "fail", "ignore", (bool *)field) != 0)
			return fail(ld, it, "'foreign_card' takes fail or ignore");
		return 0;
	case K_REMOVAL:
		if (strcmp(it->value, "none") == 0)
			*(enum piv_removal_action *)field = PIV_REMOVAL_NONE;
		else if (strcmp(it->value, "lock") == 0)
			*(enum piv_removal_action *)field = PIV_REMOVAL_LOCK;
		else if (strcmp(it->value, "terminate") == 0)
			*(enum piv_removal_action *)field = PIV_REMOVAL_TERMINATE;
		else
			return fail(ld, it, "'removal_action' takes none, lock or terminate");
		return 0;
	case K_WATCH:
		if (parse_choice(it->value, "optional", "required", (bool *)field) != 0)
			return fail(ld, it, "'removal_watch' takes required or optional");
		return 0;
	case K_FIPS:
		if (parse_choice(it->value, "auto", "required", (bool *)field) != 0)
			return fail(ld, it, "'fips_mode' takes auto or required");
		return 0;
	case K_ATTR:
		if (!valid_attr_name(it->value))
			return fail(ld, it, "'%s' is not an LDAP attribute name", it->key);
		break;
	}
	return set_string(field, it->value) == 0 ? 0 : fail(ld, it, "out of memory");
}

static char *
trim(char *s)
{
	char *end;

	while (*s == ' ' || *s == '\t')
		s++;
	end = s + strlen(s);
	while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	return s;
}

/* Is this key one that collects several lines? Those are replaced as a
 * whole when a module argument sets them. */
static bool
is_list_group(const char *key, const char *group)
{
	if (strcmp(group, "map") == 0)
		return strcmp(key, "map") == 0 || strcmp(key, "match") == 0;
	return strcmp(key, group) == 0;
}

static bool
args_set_list(int argc, const char **argv, const char *group)
{
	for (int i = 0; i < argc; i++) {
		size_t klen = strcspn(argv[i], "=");
		char key[64];
		if (klen >= sizeof(key))
			continue;
		memcpy(key, argv[i], klen);
		key[klen] = '\0';
		if (is_list_group(key, group))
			return true;
	}
	return false;
}

static bool
skip_file_key(int argc, const char **argv, const char *key)
{
	static const char *const groups[] = { "require_eku", "require_policy", "map", "helper_env",
	                                      "allowed_services", "require_issuer", "crl_url" };

	for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++)
		if (is_list_group(key, groups[i]))
			return args_set_list(argc, argv, groups[i]);
	return false;
}

static int
finish_rules(struct loader *ld)
{
	if (ld->pending_match != NULL) {
		struct item it = { "match", ld->pending_match, ld->pending_origin, ld->pending_line };
		fail(ld, &it, "'match' is not followed by a 'map' line");
		return -1;
	}
	return 0;
}

static int
parse_text(struct loader *ld, const char *name, char *text, int argc, const char **argv)
{
	unsigned lineno = 0;
	char *save = NULL;

	for (char *line = text; line != NULL; line = save) {
		char *nl = strchr(line, '\n');
		char *eq, *key, *value;
		struct item it;

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if (strlen(line) > PIV_CONF_MAX_LINE) {
			it = (struct item){ "", "", name, lineno };
			return fail(ld, &it, "line too long");
		}
		key = trim(line);
		if (*key == '\0' || *key == '#')
			continue;
		it = (struct item){ key, "", name, lineno };
		eq = strchr(key, '=');
		if (eq == NULL)
			return fail(ld, &it, "expected 'key = value'");
		*eq = '\0';
		value = trim(eq + 1);
		key = trim(key);
		it.key = key;
		it.value = value;
		if (*key == '\0')
			return fail(ld, &it, "expected 'key = value'");
		if (strcmp(key, "config") == 0)
			return fail(ld, &it, "'config' is only a module argument");
		for (const char *p = key; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				it.key = "?"; /* not echoed: it would reach the log as is */
				return fail(ld, &it, "control character in key");
			}
		for (const char *p = value; *p; p++)
			if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f)
				return fail(ld, &it, "control character in value");
		if (skip_file_key(argc, argv, key))
			continue;
		if (apply(ld, &it) != 0)
			return -1;
	}
	return finish_rules(ld);
}

static int
apply_args(struct loader *ld, int argc, const char **argv)
{
	for (int i = 0; i < argc; i++) {
		char key[64];
		const char *eq = strchr(argv[i], '=');
		size_t klen = eq ? (size_t)(eq - argv[i]) : strlen(argv[i]);
		struct item it = { argv[i], "", NULL, 0 };

		for (const char *p = argv[i]; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f) {
				it.key = "?"; /* not echoed: it would reach the log as is */
				return fail(ld, &it, "control character in module argument %d", i + 1);
			}
		if (klen == 0 || klen >= sizeof(key))
			return fail(ld, &it, "unknown module argument");
		memcpy(key, argv[i], klen);
		key[klen] = '\0';
		it.key = key;
		if (strcmp(key, "config") == 0) {
			if (eq == NULL)
				return fail(ld, &it, "needs config=PATH");
			continue;
		}
		if (eq == NULL) {
			/* A bare boolean name means yes: "debug", "card_only". */
			const struct key_def *def = find_key(key);
			if (def == NULL || def->kind != K_BOOL)
				return fail(ld, &it, def ? "needs key=value" : "unknown key '%s'", key);
			it.value = "yes";
		} else {
			it.value = eq + 1;
		}
		if (apply(ld, &it) != 0)
			return -1;
	}
	return finish_rules(ld);
}

static int
set_defaults(struct piv_conf *conf)
{
	memset(conf, 0, sizeof(*conf));
	conf->card_timeout = 30;
	conf->net_timeout = 5;
	conf->fail_delay = 2000;
	conf->crl_fetch = true;
	conf->ocsp_max_age = PIV_DEFAULT_OCSP_MAX_AGE;
	conf->removal_watch_required = true;
	/* SPEC §2: OCSP first, then CRLs. */
	conf->revocation[0] = PIV_REV_METHOD_OCSP;
	conf->revocation[1] = PIV_REV_METHOD_CRL;
	conf->n_revocation = 2;
	if ((conf->pkcs11_module = strdup("p11-kit")) == NULL ||
	    (conf->cert_uri = strdup(PIV_DEFAULT_CERT_URI)) == NULL ||
	    (conf->helper = strdup(PIV_HELPER_PATH)) == NULL ||
	    (conf->watcher = strdup(PIV_WATCHER_PATH)) == NULL ||
	    (conf->crl_builder = strdup(PIV_CRL_BUILDER_PATH)) == NULL ||
	    (conf->cache_dir = strdup(PIV_DEFAULT_CACHE_DIR)) == NULL ||
	    (conf->ldap_user_attr = strdup("uid")) == NULL)
		return -1;
	return 0;
}

static int
finish(struct loader *ld, const char *name)
{
	struct piv_conf *conf = ld->conf;
	struct item it = { "", "", name, 0 };
	char where[300];

	snprintf(where, sizeof(where), "%s", name ? name : "module arguments");
	if (conf->ca_file == NULL && conf->ca_dir == NULL)
		return fail(ld, NULL, "%s: no trust anchors: set ca_file or ca_dir", where);
	if (conf->n_rules == 0) {
		it.key = "map";
		it.value = PIV_DEFAULT_MAP;
		if (add_rule(ld, &it) != 0)
			return -1;
	}
	return check_ldap_settings(ld, where);
}

static int
load(struct piv_conf *conf, const char *name, char *text, int argc, const char **argv,
     struct piv_conf_error *err)
{
	struct loader ld = { .conf = conf, .err = err };
	int ret = -1;

	err->msg[0] = '\0';
	if (set_defaults(conf) != 0) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		goto out;
	}
	if (text != NULL && parse_text(&ld, name, text, argc, argv) != 0)
		goto out;
	if (apply_args(&ld, argc, argv) != 0)
		goto out;
	if (finish(&ld, name) != 0)
		goto out;
	ret = 0;
out:
	free(ld.pending_match);
	if (ret != 0)
		piv_conf_free(conf);
	return ret;
}

int
piv_conf_load_string(struct piv_conf *conf, const char *name, const char *text,
                     int argc, const char **argv, struct piv_conf_error *err)
{
	char *copy = text ? strdup(text) : NULL;
	int ret;

	if (text != NULL && copy == NULL) {
		snprintf(err->msg, sizeof(err->msg), "out of memory");
		return -1;
	}
	ret = load(conf, name, copy, argc, argv, err);
	free(copy);
	return ret;
}

int
piv_open_trusted_file(const char *path, size_t max_size, int *fd_out, char *why, size_t why_size)
{
	struct stat st;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);

	if (fd < 0) {
		snprintf(why, why_size, "%s: %s", path,
		         errno == ELOOP ? "is a symbolic link" : strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		snprintf(why, why_size, "%s: %s", path, strerror(errno));
		goto bad;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, why_size, "%s: not a regular file", path);
		goto bad;
	}
	if (st.st_uid != 0) {
		snprintf(why, why_size, "%s: not owned by root", path);
		goto bad;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		snprintf(why, why_size, "%s: writable by group or others", path);
		goto bad;
	}
	if ((size_t)st.st_size > max_size) {
		snprintf(why, why_size, "%s: larger than %zu bytes", path, max_size);
		goto bad;
	}
	*fd_out = fd;
	return 0;
bad:
	close(fd);
	return -1;
}

int
piv_check_root_owned(const char *path, bool want_dir, char *why, size_t why_size)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		snprintf(why, why_size, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (want_dir ? !S_ISDIR(st.st_mode) : !S_ISREG(st.st_mode)) {
		snprintf(why, why_size, "%s: not a %s", path, want_dir ? "directory" : "regular file");
		return -1;
	}
	if (st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		snprintf(why, why_size, "%s: must be owned by root and not writable by group or others",
		         path);
		return -1;
	}
	return 0;
}

static int
read_all(int fd, size_t max, char **out)
{
	char *buf = malloc(max + 1);
	size_t len = 0;

	if (buf == NULL)
		return -1;
	for (;;) {
		ssize_t n = read(fd, buf + len, max + 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			free(buf);
			errno = EFBIG;
			return -1;
		}
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len) != NULL) {
		free(buf);
		errno = EINVAL;
		return -1;
	}
	*out = buf;
	return 0;
}

int
piv_conf_load(struct piv_conf *conf, const char *default_path, int argc, const char **argv,
              struct piv_conf_error *err)
{
	const char *path = default_path;
	bool explicit_path = false;
	char *text = NULL;
	char why[400];
	int fd = -1;
	int ret;

	memset(conf, 0, sizeof(*conf));
	for (int i = 0; i < argc; i++) {
		if (strncmp(argv[i], "config=", 7) == 0) {
			path = argv[i] + 7;
			explicit_path = true;
		}
	}
	if (path == NULL || path[0] != '/') {
		snprintf(err->msg, sizeof(err->msg), "config=%s: must be an absolute path",
		         path ? path : "");
		return -1;
	}
	if (piv_open_trusted_file(path, PIV_CONF_MAX_SIZE, &fd, why, sizeof(why)) != 0) {
		struct stat st;
		/* lstat: a dangling symlink is not a missing file, it is refused */
		if (!explicit_path && lstat(path, &st) != 0 && errno == ENOENT)
			return load(conf, NULL, NULL, argc, argv, err);
		snprintf(err->msg, sizeof(err->msg), "%s", why);
		return -1;
	}
	if (read_all(fd, PIV_CONF_MAX_SIZE, &text) != 0) {
		snprintf(err->msg, sizeof(err->msg), "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	ret = load(conf, path, text, argc, argv, err);
	free(text);
	return ret;
}

void
piv_conf_free(struct piv_conf *conf)
{
	if (conf == NULL)
		return;
	free(conf->pkcs11_module);
	free(conf->token_uri);
	free(conf->cert_uri);
	free(conf->ca_file);
	free(conf->ca_dir);
	free(conf->intermediates);
	free(conf->crl_file);
	free(conf->crl_dir);
	free(conf->cache_dir);
	free(conf->ocsp_url);
	strlist_free(&conf->require_eku);
	strlist_free(&conf->require_policy);
	strlist_free(&conf->require_issuer);
	strlist_free(&conf->crl_url);
	for (size_t i = 0; i < conf->n_rules; i++) {
		free(conf->rules[i].match);
		free(conf->rules[i].map);
	}
	free(conf->rules);
	free(conf->helper);
	free(conf->watcher);
	free(conf->crl_builder);
	strlist_free(&conf->helper_env);
	strlist_free(&conf->allowed_services);
	strlist_free(&conf->origins);
	free(conf->ldap_uri);
	free(conf->ldap_base);
	free(conf->ldap_user_attr);
	free(conf->ldap_bind_dn);
	free(conf->ldap_bind_pw_file);
	free(conf->ldap_ca_file);
	free(conf->cert_source);
	memset(conf, 0, sizeof(*conf));
}
