/* pam-piv-check: why does (or would) this card log in? Runs the module's
 * own authentication (auth.c) with the module's configuration, and prints
 * every step: the PKCS#11 modules and tokens, each certificate with its
 * chain, dates, key usage, EKU, policies and card-auth test, each
 * revocation answer with its source and age, each mapping rule's result,
 * and, with a PIN, the login itself including the signature. Nothing it
 * prints is the PIN. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pam/auth.h"
#include "common/conf.h"
#include "common/status.h"
#include "common/util.h"
#include "pki/fips.h"
#include "pki/validate.h"

/* Exit statuses (pam-piv-check(1)). */
enum {
	EXIT_LOGIN_OK = 0,
	EXIT_LOGIN_FAILS = 1,
	EXIT_CONFIG = 2,
	EXIT_NO_PIN = 3,
	EXIT_USAGE = 4,
};

#define MAX_EVENTS 512

/* Everything the run reports, in order, for the text or JSON output. */
struct event {
	int cert;          /* certificate index, -1 for none */
	char kind[16];     /* "card", "cert", "step", "revocation", "mapping", "log", "message" */
	char name[40];
	char verdict[16];  /* ok, fail, info */
	char *text;
};

struct check {
	bool json;
	const char *pin_file_text; /* not used */
	char *pin;                 /* from --pin-stdin, wiped after use */
	bool pin_given;
	bool pin_asked;
	struct event ev[MAX_EVENTS];
	size_t n_ev;
	int current;               /* certificate being judged */
	const struct piv_conf *conf;
	const struct piv_trust *trust;
};

static void add_event(struct check *c, const char *kind, const char *name, const char *verdict,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static void
add_event(struct check *c, const char *kind, const char *name, const char *verdict,
          const char *fmt, ...)
{
	struct event *e;
	va_list ap;

	if (c->n_ev >= MAX_EVENTS)
		return;
	e = &c->ev[c->n_ev];
	va_start(ap, fmt);
	if (vasprintf(&e->text, fmt, ap) < 0)
		e->text = NULL;
	va_end(ap);
	if (e->text == NULL)
		return;
	e->cert = c->current;
	snprintf(e->kind, sizeof(e->kind), "%s", kind);
	snprintf(e->name, sizeof(e->name), "%s", name);
	snprintf(e->verdict, sizeof(e->verdict), "%s", verdict);
	c->n_ev++;
}

/* ---- the piv_ui the authentication talks to ------------------------- */

static int
ask_pin(void *ud, const char *prompt, char **pin)
{
	struct check *c = ud;

	c->pin_asked = true;
	if (!c->pin_given || c->pin == NULL) {
		add_event(c, "message", "pin", "info", "%s (not given: use --pin-stdin for a dry run "
		          "of the whole login)", prompt);
		return -1;
	}
	add_event(c, "message", "pin", "info", "%s (from standard input)", prompt);
	*pin = c->pin;
	c->pin = NULL; /* the authentication wipes and frees it */
	return 0;
}

static void
info(void *ud, const char *text)
{
	add_event(ud, "message", "info", "info", "%s", text);
}

static void
error(void *ud, const char *text)
{
	add_event(ud, "message", "error", "fail", "%s", text);
}

/* Log lines are sorted into steps by what they say. */
static void
log_line(void *ud, int prio, const char *text)
{
	struct check *c = ud;
	const char *verdict = prio <= LOG_WARNING ? "fail" : "info";

	if (strncmp(text, "card helper: module ", 20) == 0) {
		add_event(c, "card", "module", "info", "%s", text + 13);
	} else if (strncmp(text, "revocation ", 11) == 0) {
		const char *v = strstr(text, ": good") ? "ok" : "fail";
		add_event(c, "revocation", "revocation", v, "%s", text + 11);
	} else if (strstr(text, "OCSP") != NULL || strstr(text, "CRL") != NULL) {
		add_event(c, "revocation", "source", verdict, "%s", text);
	} else if (strncmp(text, "rule ", 5) == 0) {
		add_event(c, "mapping", "rule", strstr(text, "maps to account") ? "ok" : "info", "%s",
		          text);
	} else if (strncmp(text, "card helper: ", 13) == 0) {
		add_event(c, "card", "helper", verdict, "%s", text + 13);
	} else if (strncmp(text, "token '", 7) == 0) {
		/* auth.c's per-certificate summary: the verdict event says it */
	} else {
		add_event(c, "log", "log", verdict, "%s", text);
	}
}

static bool
account_exists(void *ud, const char *name)
{
	(void)ud;
	return getpwnam(name) != NULL;
}

static void
time_text(const ASN1_TIME *t, char *out, size_t size)
{
	int64_t when = 0;
	struct tm tm;
	time_t tt;

	if (piv_asn1_time_to_unix(t, &when) != 0) {
		snprintf(out, size, "(unreadable)");
		return;
	}
	tt = (time_t)when;
	gmtime_r(&tt, &tm);
	strftime(out, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
}

static void
list_oids(const STACK_OF(ASN1_OBJECT) *objs, char *out, size_t size)
{
	size_t used = 0;

	out[0] = '\0';
	for (int i = 0; i < sk_ASN1_OBJECT_num(objs) && used + 2 < size; i++) {
		char name[128];
		OBJ_obj2txt(name, sizeof(name), sk_ASN1_OBJECT_value(objs, i), 0);
		used += (size_t)snprintf(out + used, size - used, "%s%s", i ? ", " : "", name);
	}
	if (out[0] == '\0')
		snprintf(out, size, "(none)");
}

/* The facts of one certificate, each a step with its own verdict. */
static void
describe(struct check *c, X509 *cert)
{
	struct piv_cert_id id;
	char text[600], a[64], b[64];
	time_t now = time(NULL);
	EXTENDED_KEY_USAGE *eku;
	CERTIFICATEPOLICIES *pol;
	uint32_t ku;
	EVP_PKEY *key = X509_get0_pubkey(cert);
	bool card_auth = false;

	piv_cert_identify(cert, &id);
	add_event(c, "cert", "subject", "info", "%s", id.subject);
	add_event(c, "cert", "issuer", "info", "%s", id.issuer);
	add_event(c, "cert", "serial", "info", "%s", id.serial);
	add_event(c, "cert", "sha256", "info", "%s", id.sha256);
	time_text(X509_get0_notBefore(cert), a, sizeof(a));
	time_text(X509_get0_notAfter(cert), b, sizeof(b));
	add_event(c, "step", "dates",
	          X509_cmp_time(X509_get0_notBefore(cert), &now) <= 0 &&
	                  X509_cmp_time(X509_get0_notAfter(cert), &now) >= 0 ? "ok" : "fail",
	          "valid from %s to %s", a, b);
	if (key != NULL)
		add_event(c, "step", "key", "info", "%s, %d bits", OBJ_nid2ln(EVP_PKEY_get_base_id(key)),
		          EVP_PKEY_get_bits(key));
	ku = X509_get_key_usage(cert);
	add_event(c, "step", "key usage", (ku & KU_DIGITAL_SIGNATURE) ? "ok" : "fail",
	          "digitalSignature %s", (ku & KU_DIGITAL_SIGNATURE) ? "present" : "missing");
	eku = X509_get_ext_d2i(cert, NID_ext_key_usage, NULL, NULL);
	list_oids(eku, text, sizeof(text));
	for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
		char oid[80];
		OBJ_obj2txt(oid, sizeof(oid), sk_ASN1_OBJECT_value(eku, i), 1);
		card_auth = card_auth || strcmp(oid, "2.16.840.1.101.3.6.8") == 0;
	}
	add_event(c, "step", "eku", "info", "%s%s", text,
	          c->conf->require_eku.n ? " (require_eku is checked by the chain step)" : "");
	sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
	pol = X509_get_ext_d2i(cert, NID_certificate_policies, NULL, NULL);
	text[0] = '\0';
	for (int i = 0; i < sk_POLICYINFO_num(pol); i++) {
		char oid[80];
		size_t used = strlen(text);
		OBJ_obj2txt(oid, sizeof(oid), sk_POLICYINFO_value(pol, i)->policyid, 1);
		card_auth = card_auth || strcmp(oid, "2.16.840.1.101.3.2.1.3.17") == 0 ||
		            strcmp(oid, "2.16.840.1.101.3.2.1.3.19") == 0 ||
		            strcmp(oid, "2.16.840.1.101.3.2.1.3.46") == 0;
		snprintf(text + used, sizeof(text) - used, "%s%s", used ? ", " : "", oid);
	}
	CERTIFICATEPOLICIES_free(pol);
	add_event(c, "step", "policies", "info", "%s", text[0] ? text : "(none)");
	add_event(c, "step", "card authentication", card_auth ? "fail" : "ok", "%s",
	          card_auth ? "a PIV Card Authentication certificate: it never logs anybody in"
	                    : "not a Card Authentication certificate");
}

static void
on_candidate(void *ud, size_t index, const char *token_label, const struct piv_blob *cert,
             const struct piv_blob *extras, size_t n_extras)
{
	struct check *c = ud;
	X509 *leaf = piv_cert_from_der(cert->data, cert->len);
	STACK_OF(X509) *chain = NULL;
	X509 *validated = NULL;
	enum piv_status st;
	char why[300], label[140];

	c->current = (int)index;
	add_event(c, "cert", "token", "info", "%s", piv_escape_str(token_label, label, sizeof(label)));
	if (leaf == NULL) {
		add_event(c, "step", "parse", "fail", "the certificate does not parse");
		return;
	}
	describe(c, leaf);
	X509_free(leaf);
	/* The chain as validation builds it (no network: revocation comes
	 * from the authentication itself, below). */
	st = piv_validate(c->conf, c->trust, cert->data, cert->len, extras, n_extras, &validated,
	                  &chain, why, sizeof(why));
	add_event(c, "step", "chain", st == PIV_OK ? "ok" : "fail", "%s: %s", piv_status_name(st), why);
	for (int i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		struct piv_cert_id id;
		piv_cert_identify(sk_X509_value(chain, i), &id);
		add_event(c, "chain", i == 0 ? "leaf" : i + 1 == sk_X509_num(chain) ? "anchor" : "CA",
		          "info", "%d: %s", i, id.subject);
	}
	sk_X509_pop_free(chain, X509_free);
	X509_free(validated);
	if (c->conf->n_revocation == 0)
		add_event(c, "revocation", "revocation", "info", "not checked (revocation = none)");
}

static void
on_verdict(void *ud, size_t index, enum piv_status status, const char *why)
{
	struct check *c = ud;

	c->current = (int)index;
	add_event(c, "verdict", piv_status_name(status), status == PIV_OK ? "ok" : "fail", "%s", why);
	c->current = -1;
}

/* ---- output ------------------------------------------------------------ */

static void
json_string(const char *s)
{
	putchar('"');
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20 || *p >= 0x7f)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

static void
print_text(const struct check *c, const char *config, const struct piv_auth_result *res,
           const char *result, int status)
{
	int last_cert = -2;

	printf("configuration: %s: ok\n", config);
	for (size_t i = 0; i < c->n_ev; i++) {
		const struct event *e = &c->ev[i];
		if (e->cert != last_cert && e->cert >= 0)
			printf("certificate %d:\n", e->cert + 1);
		last_cert = e->cert;
		printf("%s%-20s %-5s %s\n", e->cert >= 0 ? "  " : "", e->name,
		       strcmp(e->verdict, "info") == 0 ? "" : e->verdict, e->text);
	}
	printf("login: %s: %s\n", result, res->reason[0] ? res->reason : piv_status_name(res->status));
	if (res->status == PIV_OK)
		printf("account: %s\n", res->account);
	printf("exit status: %d\n", status);
}

static void
print_json(const struct check *c, const char *config, const struct piv_auth_result *res,
           const char *result, int status)
{
	printf("{\"configuration\":");
	json_string(config);
	printf(",\"events\":[");
	for (size_t i = 0; i < c->n_ev; i++) {
		const struct event *e = &c->ev[i];
		printf("%s{\"certificate\":%d,\"kind\":", i ? "," : "", e->cert + 1);
		json_string(e->kind);
		printf(",\"name\":");
		json_string(e->name);
		printf(",\"verdict\":");
		json_string(e->verdict);
		printf(",\"text\":");
		json_string(e->text);
		putchar('}');
	}
	printf("],\"login\":{\"result\":");
	json_string(result);
	printf(",\"status\":");
	json_string(piv_status_name(res->status));
	printf(",\"reason\":");
	json_string(res->reason);
	printf(",\"account\":");
	json_string(res->status == PIV_OK ? res->account : "");
	printf(",\"signature_verified\":%s},\"exit\":%d}\n", res->status == PIV_OK ? "true" : "false",
	       status);
}

/* ---- main ------------------------------------------------------------- */

static int
read_pin(struct check *c)
{
	char buf[1024];
	size_t len;

	if (fgets(buf, sizeof(buf), stdin) == NULL) {
		piv_wipe(buf, sizeof(buf));
		return -1;
	}
	len = strcspn(buf, "\r\n");
	buf[len] = '\0';
	c->pin = strdup(buf);
	piv_wipe(buf, sizeof(buf));
	c->pin_given = c->pin != NULL;
	return c->pin != NULL ? 0 : -1;
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: pam-piv-check [--config PATH] [--user USER] [--service NAME] "
	        "[--rhost HOST] [--pin-stdin] [--json]\n");
}

static void
help(void)
{
	usage(stdout);
	printf("\n"
	       "Runs the authentication of pam_piv(8) with the module's configuration and\n"
	       "code, and shows every step: the card's tokens and certificates, the chain,\n"
	       "revocation (with the source and age of each answer), each mapping rule,\n"
	       "and with a PIN the login itself. Run it as root, as the module runs.\n"
	       "\n"
	       "  --config PATH   the configuration file (default %s)\n"
	       "  --user USER     check a login as USER (default: a username-less login)\n"
	       "  --service NAME  as the PAM service NAME would (allowed_services)\n"
	       "  --rhost HOST    as a login from HOST would (PAM_RHOST, allow_remote)\n"
	       "  --pin-stdin     read the PIN from the first line of standard input and\n"
	       "                  run the whole login (a wrong PIN costs a PIN try)\n"
	       "  --json          one JSON object instead of text\n"
	       "  --version       print the version and exit\n"
	       "  --help          print this help and exit\n"
	       "\n"
	       "Exit status: 0 the login would succeed; 1 it would fail; 2 configuration\n"
	       "error; 3 every step before the PIN passed (no PIN given); 4 usage error.\n"
	       "See pam-piv-check(1).\n", PIV_CONF_PATH);
}

/* The CA certificates of the trust material that issue no other CA of it:
 * the ones that may issue the cards. */
static size_t
count_issuing_cas(const struct piv_conf *conf, const struct piv_trust *trust)
{
	STACK_OF(X509) *cas = piv_trust_certs(conf, trust);
	size_t n = 0;

	for (int i = 0; i < sk_X509_num(cas); i++) {
		X509 *ca = sk_X509_value(cas, i);
		bool issues_ca = false, seen = false;
		if (X509_check_ca(ca) == 0)
			continue;
		for (int j = 0; j < sk_X509_num(cas) && !issues_ca && !seen; j++) {
			X509 *other = sk_X509_value(cas, j);
			if (j < i && X509_cmp(other, ca) == 0)
				seen = true; /* the same certificate twice (a hash link) */
			else if (other != ca && X509_cmp(other, ca) != 0 && X509_check_ca(other) != 0 &&
			         X509_check_issued(ca, other) == X509_V_OK)
				issues_ca = true;
		}
		if (!issues_ca && !seen)
			n++;
	}
	sk_X509_pop_free(cas, X509_free);
	ERR_clear_error();
	return n;
}

/* Rules that do not bind the issuer map a certificate of any trusted CA
 * with the same name to the same account. */
static void
warn_unbound_rules(struct check *c, const struct piv_conf *conf, const struct piv_trust *trust)
{
	size_t n_cas;

	if (conf->require_issuer.n > 0)
		return;
	n_cas = count_issuing_cas(conf, trust);
	if (n_cas < 2)
		return;
	for (size_t i = 0; i < conf->n_rules; i++) {
		const struct piv_rule *r = &conf->rules[i];
		const char *map = r->map;
		if (r->match != NULL && strstr(r->match, "<ISSUER>") != NULL)
			continue;
		if (strncmp(map, "ldap:", 5) == 0 &&
		    (strstr(map, "{issuer_dn") != NULL || strstr(map, "{cert!") != NULL))
			continue;
		add_event(c, "warning", "issuer", "warn", "%zu issuing CAs are trusted and rule %zu (%s) "
		          "does not bind the issuer%s: a certificate of any of them with the same %s "
		          "maps to the same account; set require_issuer, or a match line with <ISSUER>",
		          n_cas, i + 1, map,
		          strncmp(map, "file:", 5) == 0 ? " (unless its lines use sha256= or "
		                                          "issuer+serial=)" : "",
		          strncmp(map, "file:", 5) == 0 ? "subject, SKI, UUID or FASC-N" : "values");
	}
}

/* A configuration that does not load, or whose trust material does not:
 * the same words as the module's syslog line. */
static void
config_error(const struct check *c, const char *config, const char *msg)
{
	if (c->json) {
		printf("{\"configuration\":");
		json_string(config);
		printf(",\"error\":");
		json_string(msg);
		printf(",\"exit\":%d}\n", EXIT_CONFIG);
	} else {
		printf("configuration error: %s\n", msg);
	}
}

/* The exit status for an outcome, and the words for it. */
static int
exit_status(const struct check *c, const struct piv_auth_result *res, const char **result)
{
	if (res->status == PIV_OK) {
		*result = "would succeed";
		return EXIT_LOGIN_OK;
	}
	if (res->status == PIV_E_CONFIG) {
		*result = "configuration error";
		return EXIT_CONFIG;
	}
	if (res->status == PIV_E_CONV && c->pin_asked && !c->pin_given) {
		*result = "every step before the PIN passed; not tried without a PIN";
		return EXIT_NO_PIN;
	}
	*result = "would fail";
	return EXIT_LOGIN_FAILS;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "user", required_argument, NULL, 'u' },
		{ "pin-stdin", no_argument, NULL, 'p' },
		{ "json", no_argument, NULL, 'j' },
		{ "service", required_argument, NULL, 's' },
		{ "rhost", required_argument, NULL, 'r' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = PIV_CONF_PATH, *user = NULL, *result;
	char config_arg[4200], why[400];
	const char *args[1];
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_trust trust;
	struct check *c = calloc(1, sizeof(*c));
	struct piv_ui ui = { c, ask_pin, info, error, log_line, account_exists, on_candidate,
	                     on_verdict, NULL, NULL, NULL, NULL };
	struct piv_auth_result *res = calloc(1, sizeof(*res));
	bool pin_stdin = false;
	int opt, status;

	if (c == NULL || res == NULL) {
		free(c);
		free(res);
		return EXIT_LOGIN_FAILS;
	}
	c->current = -1;
	status = -1;
	while (status < 0 && (opt = getopt_long(argc, argv, "c:u:pjhs:r:V", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'u': user = optarg; break;
		case 'p': pin_stdin = true; break;
		case 'j': c->json = true; break;
		case 's': ui.service = optarg; break;
		case 'r': ui.rhost = optarg; break;
		case 'h': help(); status = 0; break;
		case 'V': printf("pam-piv-check (pam_piv) %s\n", PACKAGE_VERSION); status = 0; break;
		default: usage(stderr); status = EXIT_USAGE; break;
		}
	}
	if (status < 0 && optind != argc) {
		usage(stderr);
		status = EXIT_USAGE;
	}
	if (status >= 0) {
		free(c);
		free(res);
		return status;
	}
	snprintf(config_arg, sizeof(config_arg), "config=%s", config);
	args[0] = config_arg;
	if (piv_conf_load(&conf, PIV_CONF_PATH, 1, args, &err) != 0) {
		config_error(c, config, err.msg);
		free(c);
		free(res);
		return EXIT_CONFIG;
	}
	if (pin_stdin && read_pin(c) != 0) {
		fprintf(stderr, "pam-piv-check: no PIN on standard input\n");
		piv_conf_free(&conf);
		free(c);
		free(res);
		return EXIT_USAGE;
	}
	conf.debug = true; /* every step, modules and tokens included */
	/* a CRL not indexed yet is indexed here, however long it takes: this
	 * is the administrator's tool, not a login */
	free(conf.crl_builder);
	conf.crl_builder = NULL;
	c->conf = &conf;
	if (piv_trust_load(&conf, &trust, why, sizeof(why)) != PIV_OK) {
		config_error(c, config, why);
		piv_conf_free(&conf);
		piv_free_secret(&c->pin);
		free(c);
		free(res);
		return EXIT_CONFIG;
	}
	c->trust = &trust;
	/* which crypto the host runs: FIPS-only or not (fips.h) */
	add_event(c, "crypto", "openssl", "info", "%s; FIPS provider: %s%s",
	          OpenSSL_version(OPENSSL_VERSION), piv_fips_state_text(piv_fips_state()),
	          conf.fips_required ? " (fips_mode = required)" : "");
	warn_unbound_rules(c, &conf, &trust);
	piv_authenticate(&conf, user, &ui, res);
	piv_free_secret(&c->pin);
	status = exit_status(c, res, &result);
	if (c->json)
		print_json(c, config, res, result, status);
	else
		print_text(c, config, res, result, status);
	for (size_t i = 0; i < c->n_ev; i++)
		free(c->ev[i].text);
	piv_trust_free(&trust);
	piv_conf_free(&conf);
	free(res);
	free(c);
	return status;
}
