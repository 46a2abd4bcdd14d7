/* cmocka unit tests for libpiv's parsers and decision tables: the
 * configuration parser (every key, every error), the wire protocol, log
 * escaping, DigestInfo, ECDSA r||s conversion, signature verification,
 * account-name rules and the SPEC §4 outcome table. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <security/pam_modules.h>

#include "pam/access.h"
#include "common/conf.h"
#include "accounts/mapping.h"
#include "wire/proto.h"
#include "pki/prove.h"
#include "common/status.h"
#include "common/util.h"
#include "wire/wire.h"

#define BASE "ca_file = /etc/ca.pem\nrevocation = none\n"

/* ---- configuration ------------------------------------------------- */

static int
load_text(const char *text, int argc, const char **argv, struct piv_conf *conf,
          struct piv_conf_error *err)
{
	return piv_conf_load_string(conf, "/etc/security/pam_piv.conf", text, argc, argv, err);
}

static void
expect_error(const char *text, int argc, const char **argv, const char *needle)
{
	struct piv_conf conf;
	struct piv_conf_error err;

	if (load_text(text, argc, argv, &conf, &err) == 0) {
		piv_conf_free(&conf);
		fail_msg("accepted: %s", text);
	}
	if (strstr(err.msg, needle) == NULL)
		fail_msg("error '%s' lacks '%s'", err.msg, needle);
}

static void
test_conf_defaults(void **state)
{
	struct piv_conf conf;
	struct piv_conf_error err;

	(void)state;
	assert_int_equal(load_text(BASE, 0, NULL, &conf, &err), 0);
	assert_string_equal(conf.pkcs11_module, "p11-kit");
	assert_null(conf.token_uri);
	assert_string_equal(conf.cert_uri, "pkcs11:type=cert;id=%01");
	assert_int_equal(conf.card_wait, 0);
	assert_int_equal(conf.card_timeout, 30);
	assert_int_equal(conf.net_timeout, 5);
	assert_int_equal(conf.fail_delay, 2000);
	assert_int_equal(conf.n_revocation, 0); /* BASE says none */
	assert_false(conf.revocation_fail_open);
	assert_true(conf.crl_fetch);
	assert_null(conf.crl_file);
	assert_string_equal(conf.cache_dir, "/var/cache/pam_piv");
	assert_false(conf.card_only);
	assert_false(conf.debug);
	assert_int_equal(conf.n_rules, 1);
	assert_null(conf.rules[0].match);
	assert_string_equal(conf.rules[0].map, "name:{subject_dn_component.uid}");
	assert_string_equal(conf.helper, PIV_HELPER_PATH);
	assert_null(conf.ldap_uri);
	assert_string_equal(conf.ldap_user_attr, "uid");
	assert_false(conf.ldap_starttls);
	piv_conf_free(&conf);
}

static void
test_conf_every_key(void **state)
{
	static const char text[] =
		"# a comment\n"
		"\n"
		"  pkcs11_module = /usr/lib/x86_64-linux-gnu/opensc-pkcs11.so  \n"
		"token = pkcs11:manufacturer=piv_II;token=Alice\n"
		"cert = pkcs11:type=cert;id=%02\n"
		"card_wait = 10\n"
		"card_timeout = 15\n"
		"net_timeout = 3\n"
		"ca_file = /etc/ssl/piv-ca.pem\n"
		"ca_dir = /etc/ssl/piv-ca.d\n"
		"intermediates = /etc/ssl/piv-int.pem\n"
		"require_eku = clientAuth\n"
		"require_eku = 1.3.6.1.4.1.311.20.2.2\n"
		"require_policy = 2.16.840.1.101.3.2.1.3.13\n"
		"revocation = crl\n"
		"revocation_fail = open\n"
		"crl_file = /etc/ssl/piv.crl\n"
		"crl_dir = /etc/ssl/piv-crl.d\n"
		"crl_fetch = no\n"
		"cache_dir = /var/cache/piv-test\n"
		"match = <ISSUER>^CN=PIV Test Issuing CA,.*\n"
		"map = name:{subject_principal.short_name}\n"
		"map = name:{subject_dn_component.uid}\n"
		"card_only = yes\n"
		"fail_delay = 0\n"
		"debug = on\n"
		"helper = /usr/libexec/pam_piv/pam_piv_helper\n"
		"helper_env = OPENSC_CONF=/etc/opensc.conf\n"
		"ldap_uri = ldap://dir.example.test:3389\n"
		"ldap_starttls = yes\n"
		"ldap_ca_file = /etc/ssl/dir-ca.pem\n"
		"ldap_base = ou=People,dc=example,dc=test\n"
		"ldap_user_attr = sAMAccountName\n"
		"ldap_bind_dn = cn=pam,ou=Services,dc=example,dc=test\n"
		"ldap_bind_pw_file = /etc/security/pam_piv.ldap-pw\n"
		"match = <EKU>clientAuth\n"
		"map = ldap:LDAPU1:(altSecurityIdentities=X509:<I>{issuer_dn!ad}<SR>{serial_number!hex_ur})\n";
	struct piv_conf conf;
	struct piv_conf_error err;

	(void)state;
	if (load_text(text, 0, NULL, &conf, &err) != 0)
		fail_msg("%s", err.msg);
	assert_string_equal(conf.pkcs11_module, "/usr/lib/x86_64-linux-gnu/opensc-pkcs11.so");
	assert_string_equal(conf.token_uri, "pkcs11:manufacturer=piv_II;token=Alice");
	assert_string_equal(conf.cert_uri, "pkcs11:type=cert;id=%02");
	assert_int_equal(conf.card_wait, 10);
	assert_int_equal(conf.card_timeout, 15);
	assert_int_equal(conf.net_timeout, 3);
	assert_string_equal(conf.ca_file, "/etc/ssl/piv-ca.pem");
	assert_string_equal(conf.ca_dir, "/etc/ssl/piv-ca.d");
	assert_string_equal(conf.intermediates, "/etc/ssl/piv-int.pem");
	assert_int_equal(conf.require_eku.n, 2);
	assert_string_equal(conf.require_eku.v[1], "1.3.6.1.4.1.311.20.2.2");
	assert_int_equal(conf.require_policy.n, 1);
	assert_int_equal(conf.n_revocation, 1);
	assert_int_equal(conf.revocation[0], PIV_REV_METHOD_CRL);
	assert_true(conf.revocation_fail_open);
	assert_string_equal(conf.crl_file, "/etc/ssl/piv.crl");
	assert_string_equal(conf.crl_dir, "/etc/ssl/piv-crl.d");
	assert_false(conf.crl_fetch);
	assert_string_equal(conf.cache_dir, "/var/cache/piv-test");
	assert_int_equal(conf.n_rules, 3);
	assert_string_equal(conf.rules[2].match, "<EKU>clientAuth");
	assert_string_equal(conf.rules[2].map,
	                    "ldap:LDAPU1:(altSecurityIdentities=X509:<I>{issuer_dn!ad}<SR>{serial_number!hex_ur})");
	assert_string_equal(conf.ldap_uri, "ldap://dir.example.test:3389");
	assert_true(conf.ldap_starttls);
	assert_string_equal(conf.ldap_ca_file, "/etc/ssl/dir-ca.pem");
	assert_string_equal(conf.ldap_base, "ou=People,dc=example,dc=test");
	assert_string_equal(conf.ldap_user_attr, "sAMAccountName");
	assert_string_equal(conf.ldap_bind_dn, "cn=pam,ou=Services,dc=example,dc=test");
	assert_string_equal(conf.ldap_bind_pw_file, "/etc/security/pam_piv.ldap-pw");
	assert_string_equal(conf.rules[0].match, "<ISSUER>^CN=PIV Test Issuing CA,.*");
	assert_string_equal(conf.rules[0].map, "name:{subject_principal.short_name}");
	assert_null(conf.rules[1].match);
	assert_true(conf.card_only);
	assert_int_equal(conf.fail_delay, 0);
	assert_true(conf.debug);
	assert_string_equal(conf.helper, "/usr/libexec/pam_piv/pam_piv_helper");
	assert_int_equal(conf.helper_env.n, 1);
	piv_conf_free(&conf);
}

static void
test_conf_bad_values(void **state)
{
	static const struct { const char *line; const char *needle; } cases[] = {
		{ "no_such_key = 1", ":3: unknown key 'no_such_key'" },
		{ "card_wait = -1", "whole number from 0 to 3600" },
		{ "card_wait = 3601", "whole number" },
		{ "card_timeout = 0", "whole number from 1 to 3600" },
		{ "card_timeout = 10s", "whole number" },
		{ "net_timeout = ", "needs a value" },
		{ "net_timeout = 301", "whole number" },
		{ "fail_delay = 60001", "whole number" },
		{ "ca_dir = relative/dir", "absolute path" },
		{ "intermediates = int.pem", "absolute path" },
		{ "helper = pam_piv_helper", "absolute path" },
		{ "token = not a uri", "not a valid PKCS#11 URI" },
		{ "token = pkcs11:token=x;pin-value=1234", "pin-value" },
		{ "token = pkcs11:token=x?pin-source=file:/tmp/pin", "pin-source" },
		{ "cert = pkcs11:type=private;id=%01", "must name a certificate" },
		{ "cert = pkcs11:id=%01?pin-value=1", "pin-value" },
		{ "require_eku = definitelyNotAnEku", "not an EKU name or OID" },
		{ "require_eku = 2.16.840.1.101.3.6.8", "Card Authentication" },
		{ "require_policy = clientAuth", "not a dotted OID" },
		{ "require_policy = 2.16.840.1.101.3.2.1.3.17", "card authentication policy" },
		{ "require_policy = 2.16.840.1.101.3.2.1.3.46", "card authentication policy" },
		{ "revocation = ocsp,ocsp", "listed twice" },
		{ "revocation = ocsp,crl,none", "or none (alone)" },
		{ "revocation = crl,none", "or none (alone)" },
		{ "revocation = none,crl", "or none (alone)" },
		{ "revocation = crl,crl", "listed twice" },
		{ "revocation = crl,,", "takes ocsp, crl, or none" },
		{ "revocation = ,", "takes ocsp, crl, or none" },
		{ "revocation = crls", "takes ocsp, crl, or none" },
		{ "revocation_fail = maybe", "closed or open" },
		{ "crl_file = piv.crl", "absolute path" },
		{ "crl_dir = crl.d", "absolute path" },
		{ "crl_fetch = sometimes", "yes or no" },
		{ "ocsp_url = https://127.0.0.1/", "http:// URL" },
		{ "ocsp_url = http://", "http:// URL" },
		{ "ocsp_url = http://a b/", "http:// URL" },
		{ "ocsp_max_age = -1", "whole number from 0 to 604800" },
		{ "ocsp_max_age = 604801", "whole number from 0 to 604800" },
		{ "ocsp_max_age = 1h", "whole number" },
		{ "ocsp_require_nonce = maybe", "yes or no" },
		{ "allowed_services = ,", "names no service" },
		{ "allowed_services = +", "PAM service names" },
		{ "allowed_services = login,-", "PAM service names" },
		{ "allowed_services = ../etc/shadow", "PAM service names" },
		{ "allowed_services = .hidden", "PAM service names" },
		{ "allowed_services = su;id", "PAM service names" },
		{ "allow_remote = perhaps", "yes or no" },
		{ "foreign_card = yes", "fail or ignore" },
		{ "removal_action = yes", "none, lock or terminate" },
		{ "removal_action = lock-screen", "none, lock or terminate" },
		{ "removal_watch = yes", "required or optional" },
		{ "fips_mode = yes", "auto or required" },
		{ "fips_mode = on", "auto or required" },
		{ "watcher = pam-piv-watch", "absolute path" },
		{ "cache_dir = cache", "absolute path" },
		{ "ldap_uri = http://127.0.0.1/", "ldap://, ldaps:// or ldapi://" },
		{ "ldap_uri = not a uri", "takes one URI" },
		{ "ldap_uri = ldap://a ldap://b", "takes one URI" },
		{ "ldap_uri = ldap://a,ldap://b", "takes one URI" },
		{ "ldap_uri = ldap://127.0.0.1/dc=example?uid", "no DN, attributes or filter" },
		{ "ldap_uri = ldap:///", "needs a host" },
		{ "ldap_uri = ldap://dir.example.test", "can be forged" },
		{ "ldap_uri = ldaps://dir.example.test", "needs ldap_ca_file" },
		{ "ldap_uri = ldap://dir.example.test\nldap_starttls = yes", "needs ldap_ca_file" },
		{ "ldap_uri = ldaps://dir.example.test\nldap_starttls = yes\nldap_ca_file = /etc/ca",
		  "only for ldap://" },
		{ "ldap_uri = ldapi://%2Frun%2Fslapd%2Fldapi\nldap_starttls = yes\nldap_ca_file = /etc/ca",
		  "only for ldap://" },
		{ "ldap_uri = ldapi:///\nldap_bind_dn = cn=pam,dc=example", "go together" },
		{ "ldap_uri = ldapi:///\nldap_bind_pw_file = /etc/pw", "go together" },
		{ "ldap_base = not a dn", "not a distinguished name" },
		{ "ldap_bind_dn = =x", "not a distinguished name" },
		{ "ldap_user_attr = u id", "not an LDAP attribute name" },
		{ "ldap_user_attr = uid;binary", "not an LDAP attribute name" },
		{ "ldap_user_attr = 1..2", "not an LDAP attribute name" },
		{ "ldap_bind_pw_file = pw", "absolute path" },
		{ "ldap_starttls = sometimes", "yes or no" },
		{ "ldap_ca_file = ca.pem", "absolute path" },
		{ "map = file:etc/map", "absolute path" },
		{ "match = <NOPE>x\nmap = file:/etc/map", "rejects" },
		{ "map = ldap:LDAPU1:(uid={subject_dn_component.uid})", "needs ldap_uri and ldap_base" },
		{ "ldap_uri = ldapi:///\nmap = ldap:LDAPU1:(uid={subject_dn_component.uid})",
		  "needs ldap_uri and ldap_base" },
		{ "map = ldap:(uid={subject_dn_component.uid})", "starts with LDAPU1: or LDAP:" },
		{ "map = ldap:LDAPU1:uid={subject_dn_component.uid}", "one parenthesized LDAP filter" },
		{ "map = ldap:LDAPU1:(uid={no_such_template})", "libsss_certmap rejects" },
		{ "match = <NOPE>x\nmap = ldap:LDAPU1:(uid={subject_dn_component.uid})", "rejects" },
		{ "map = nss:alice", "unknown mapping rule kind" },
		{ "map = name:", "needs a template" },
		{ "map = name:{bogus_template}", "libsss_certmap rejects" },
		{ "match = <EKU>clientAuth", "not followed by a 'map'" },
		{ "match = <NOPE>x\nmap = name:{subject_dn_component.uid}", "rejects" },
		{ "match = <EKU>clientAuth\nmatch = <EKU>clientAuth", "two 'match' lines" },
		{ "card_only = perhaps", "yes or no" },
		{ "debug = 2", "yes or no" },
		{ "helper_env = NOEQUALS", "NAME=VALUE" },
		{ "helper_env = 1BAD=x", "NAME=VALUE" },
		{ "helper_env = =x", "NAME=VALUE" },
		{ "config = /etc/other.conf", "only a module argument" },
		{ "just words", "expected 'key = value'" },
		{ "= value", "expected 'key = value'" },
		{ "debug = yes\x01", "control character" },
		{ "debug = yes\x7f", "control character in value" },
		{ "de\x1b[2Jbug = yes", "control character in key" },
	};
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), BASE "%s\n", cases[i].line);
		expect_error(text, 0, NULL, cases[i].needle);
	}
}

/* The directory settings that are fine: loopback and ldapi without TLS,
 * any host with TLS, anonymous. */
static void
test_conf_ldap_accepted(void **state)
{
	static const char *const cases[] = {
		"ldap_uri = ldap://127.0.0.1:3389\n",
		"ldap_uri = ldap://[::1]:3389\n",
		"ldap_uri = ldap://localhost\n",
		"ldap_uri = ldapi://%2Frun%2Fslapd%2Fldapi\n",
		"ldap_uri = ldaps://dir.example.test\nldap_ca_file = /etc/ca.pem\n",
		"ldap_uri = ldap://dir.example.test\nldap_starttls = yes\nldap_ca_file = /etc/ca.pem\n",
		"ldap_uri = ldapi:///\nldap_bind_dn = cn=pam,dc=example\nldap_bind_pw_file = /etc/pw\n",
		"ldap_uri = ldapi:///\nldap_base = dc=example\nldap_user_attr = 2.5.4.3\n"
		"map = ldap:LDAP:(mail={subject_rfc822_name})\n",
		/* the examples of pam_piv.conf(5) */
		"ldap_uri          = ldaps://dc1.example.com\n"
		"ldap_ca_file      = /etc/ssl/example-ad-ca.pem\n"
		"ldap_base         = OU=Staff,DC=example,DC=com\n"
		"ldap_user_attr    = sAMAccountName\n"
		"ldap_bind_dn      = CN=svc-pam-piv,OU=Service Accounts,DC=example,DC=com\n"
		"ldap_bind_pw_file = /etc/security/pam_piv.ldap-pw\n"
		"map = ldap:LDAPU1:(altSecurityIdentities=X509:<I>{issuer_dn!ad}<SR>{serial_number!hex_ur})\n"
		"map = ldap:LDAPU1:(altSecurityIdentities=X509:<SKI>{subject_key_id!hex_u})\n",
		"ldap_uri      = ldap://ldap.example.org\n"
		"ldap_starttls = yes\n"
		"ldap_ca_file  = /etc/ssl/example-ldap-ca.pem\n"
		"ldap_base     = ou=People,dc=example,dc=org\n"
		"map = ldap:LDAPU1:(&(objectClass=posixAccount)(userCertificate=\\7b serialNumber "
		"{serial_number!dec}, issuer rdnSequence:\"{issuer_dn}\" \\7d))\n",
	};
	char text[2048];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct piv_conf conf;
		struct piv_conf_error err;
		snprintf(text, sizeof(text), BASE "%s", cases[i]);
		if (load_text(text, 0, NULL, &conf, &err) != 0)
			fail_msg("refused: %s: %s", cases[i], err.msg);
		piv_conf_free(&conf);
	}
}

/* glibc's regcomp copies what a repetition applies to, so nested or large
 * repetitions in a match rule could make the configuration loader take
 * gigabytes (fuzz_conf found "O++++..."). Such a rule is refused with its
 * line; the rules sites write are accepted. */
static void
test_conf_match_cost(void **state)
{
	static const struct {
		const char *match;
		const char *needle; /* NULL: accepted */
	} cases[] = {
		{ "<SUBJECT>^O++++++++++++++++++++++++++$", "a repetition of a repetition" },
		{ "<SUBJECT>^O+*$", "a repetition of a repetition" },
		{ "<SUBJECT>^O*{2}$", "a repetition of a repetition" },
		{ "<SUBJECT>^(((((((((((((O+)+)+)+)+)+)+)+)+)+)+)+)+)$", "too much memory" },
		{ "<SUBJECT>^(a{0,1000}){0,1000}$", "too much memory" },
		{ "<SUBJECT>^a{5000}$", "too much memory" },
		{ "<SUBJECT>^a{99999999999999999999}$", "too much memory" },
		{ "<SUBJECT>((((((((((((((((((((((((((((((((((x))))))))))))))))))))))))))))))))))",
		  "nested too deep" },
		{ "<SUBJECT>^CN=(a*)*\\1$", "back-reference" },
		{ "<SUBJECT>^CN=(.*),O=\\1$", "back-reference" },
		/* accepted: what sites write, and repetitions that only look stacked */
		{ "<SUBJECT>^CN=[a-z]+ [a-z]+,OU=[A-Z]{2,8},O=Example$", NULL },
		{ "<SAN:ntPrincipalName>.*@EXAMPLE\\.COM", NULL },
		{ "||<ISSUER>^CN=[^,]+ CA [0-9]{1,3}(,.*)?$<ISSUER>^CN=Other,O=x|y$", NULL },
		{ "<SUBJECT>^CN=a\\+\\+b,O=[+*]+$", NULL },
		{ "<SUBJECT>^CN=[[:alpha:]]+[[:digit:]]{0,4}$", NULL },
		{ "<SUBJECT>^CN=[\\1]x\\.y$", NULL }, /* a backslash in brackets is itself */
		{ "<SUBJECT>^(((((((((O+)+)+)+)+)+)+)+)+)$", NULL }, /* about 2^10 nodes */
		{ "&&<KU>digitalSignature<EKU>clientAuth", NULL },
	};
	char text[1024];

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		snprintf(text, sizeof(text), BASE "match = %s\nmap = file:/etc/map\n",
		         cases[i].match);
		if (cases[i].needle != NULL) {
			expect_error(text, 0, NULL, cases[i].needle);
			/* the message names the match line, not the map line */
			expect_error(text, 0, NULL, ":3: the match rule is refused");
		} else {
			struct piv_conf conf;
			struct piv_conf_error err;
			if (load_text(text, 0, NULL, &conf, &err) != 0)
				fail_msg("refused: %s: %s", cases[i].match, err.msg);
			piv_conf_free(&conf);
		}
	}
}

/* SIGPIPE raised while the guard is up does not reach the process, and
 * the signal mask is what it was. */
static void
test_sigpipe_guard(void **state)
{
	struct piv_sigpipe_guard g;
	sigset_t before, after, pending;

	(void)state;
	pthread_sigmask(SIG_SETMASK, NULL, &before);
	piv_sigpipe_block(&g);
	assert_int_equal(raise(SIGPIPE), 0); /* would kill the test unguarded */
	piv_sigpipe_restore(&g);
	pthread_sigmask(SIG_SETMASK, NULL, &after);
	assert_int_equal(sigismember(&after, SIGPIPE), sigismember(&before, SIGPIPE));
	sigpending(&pending);
	assert_int_equal(sigismember(&pending, SIGPIPE), 0);
}

static void
test_conf_required(void **state)
{
	struct piv_conf conf;
	struct piv_conf_error err;

	(void)state;
	expect_error("revocation = none\n", 0, NULL, "no trust anchors");
	/* revocation defaults to OCSP, then CRLs (SPEC §2) */
	assert_int_equal(load_text("ca_file = /etc/ca.pem\n", 0, NULL, &conf, &err), 0);
	assert_int_equal(conf.n_revocation, 2);
	assert_int_equal(conf.revocation[0], PIV_REV_METHOD_OCSP);
	assert_int_equal(conf.revocation[1], PIV_REV_METHOD_CRL);
	assert_null(conf.ocsp_url);
	/* an OCSP answer without nextUpdate counts for an hour; no nonce is
	 * required (responders that pre-produce answers send none) */
	assert_int_equal(conf.ocsp_max_age, 3600);
	assert_false(conf.ocsp_require_nonce);
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE "ocsp_max_age = 0\nocsp_require_nonce = yes\n", 0, NULL, &conf,
	                           &err), 0);
	assert_int_equal(conf.ocsp_max_age, 0);
	assert_true(conf.ocsp_require_nonce);
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE "revocation = crl, ocsp\nocsp_url = http://127.0.0.1:8/x\n",
	                           0, NULL, &conf, &err), 0);
	assert_int_equal(conf.revocation[0], PIV_REV_METHOD_CRL);
	assert_int_equal(conf.revocation[1], PIV_REV_METHOD_OCSP);
	assert_string_equal(conf.ocsp_url, "http://127.0.0.1:8/x");
	piv_conf_free(&conf);
}

static void
test_conf_long_line(void **state)
{
	char *text = malloc(PIV_CONF_MAX_LINE + 128);
	size_t len;

	(void)state;
	assert_non_null(text);
	strcpy(text, BASE "ca_dir = /");
	len = strlen(text);
	memset(text + len, 'a', PIV_CONF_MAX_LINE);
	strcpy(text + len + PIV_CONF_MAX_LINE, "\n");
	expect_error(text, 0, NULL, ":3: line too long");
	free(text);
}

static void
test_conf_arguments(void **state)
{
	const char *args[] = { "card_timeout=7", "debug", "require_eku=clientAuth",
	                       "map=name:{subject_rfc822_name.short_name}" };
	const char *file = BASE "card_timeout = 20\nrequire_eku = emailProtection\n"
	                   "require_eku = codeSigning\nmatch = <EKU>clientAuth\n"
	                   "map = name:{subject_dn_component.uid}\ncard_wait = 4\n";
	struct piv_conf conf;
	struct piv_conf_error err;

	(void)state;
	if (load_text(file, 4, args, &conf, &err) != 0)
		fail_msg("%s", err.msg);
	assert_int_equal(conf.card_timeout, 7);    /* argument overrides */
	assert_int_equal(conf.card_wait, 4);       /* file kept */
	assert_true(conf.debug);                   /* bare boolean */
	assert_int_equal(conf.require_eku.n, 1);   /* list replaced whole */
	assert_string_equal(conf.require_eku.v[0], "clientAuth");
	assert_int_equal(conf.n_rules, 1);         /* match+map replaced together */
	assert_null(conf.rules[0].match);
	assert_string_equal(conf.rules[0].map, "name:{subject_rfc822_name.short_name}");
	piv_conf_free(&conf);

	{
		const char *bad[] = { "bogus=1" };
		expect_error(BASE, 1, bad, "module argument 'bogus': unknown key");
	}
	{
		const char *bad[] = { "card_timeout" };
		expect_error(BASE, 1, bad, "needs key=value");
	}
	{
		const char *bad[] = { "card_timeout=x" };
		expect_error(BASE, 1, bad, "module argument 'card_timeout'");
	}
	{
		const char *bad[] = { "=x" };
		expect_error(BASE, 1, bad, "unknown module argument");
	}
	{
		const char *bad[] = { "config" };
		expect_error(BASE, 1, bad, "needs config=PATH");
	}
	{
		/* not echoed into the message, which goes to syslog */
		const char *bad[] = { "debug", "ca_file=/etc/ca\n\x1b[2Jforged line" };
		expect_error(BASE, 2, bad, "control character in module argument 2");
		bad[1] = "bo\x1bgus=1";
		expect_error(BASE, 2, bad, "module argument '?': control character");
	}
	{
		/* everything from arguments, no file at all */
		const char *only[] = { "ca_file=/etc/ca.pem", "revocation=none", "card_only" };
		assert_int_equal(piv_conf_load_string(&conf, NULL, NULL, 3, only, &err), 0);
		assert_true(conf.card_only);
		piv_conf_free(&conf);
	}
}

static void
test_conf_files(void **state)
{
	char dir[] = "/tmp/piv-unit-XXXXXX";
	char path[512], args0[600];
	const char *argv[1];
	struct piv_conf conf;
	struct piv_conf_error err;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/pam_piv.conf", dir);
	snprintf(args0, sizeof(args0), "config=%s", path);
	argv[0] = args0;

	/* named explicitly but missing */
	assert_int_equal(piv_conf_load(&conf, "/etc/security/pam_piv.conf", 1, argv, &err), -1);
	assert_non_null(strstr(err.msg, "No such file"));
	/* the default path may be missing when arguments say everything */
	{
		const char *only[] = { "ca_file=/etc/ca.pem", "revocation=none" };
		assert_int_equal(piv_conf_load(&conf, path, 2, only, &err), 0);
		piv_conf_free(&conf);
	}
	{
		const char *rel[] = { "config=relative.conf" };
		assert_int_equal(piv_conf_load(&conf, path, 1, rel, &err), -1);
		assert_non_null(strstr(err.msg, "absolute path"));
	}
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(BASE "card_wait = 2\n", f);
	fclose(f);
	chmod(path, 0644);
	if (geteuid() == 0) {
		assert_int_equal(piv_conf_load(&conf, "/nonexistent", 1, argv, &err), 0);
		assert_int_equal(conf.card_wait, 2);
		piv_conf_free(&conf);
		chmod(path, 0664);
		assert_int_equal(piv_conf_load(&conf, "/nonexistent", 1, argv, &err), -1);
		assert_non_null(strstr(err.msg, "writable by group or others"));
		chmod(path, 0600);
		/* a NUL byte inside the file */
		f = fopen(path, "w");
		fwrite(BASE "debug = yes\0\n", 1, sizeof(BASE "debug = yes\0\n") - 1, f);
		fclose(f);
		assert_int_equal(piv_conf_load(&conf, "/nonexistent", 1, argv, &err), -1);
		assert_non_null(strstr(err.msg, "cannot read"));
		/* larger than the cap */
		f = fopen(path, "w");
		for (int i = 0; i < PIV_CONF_MAX_SIZE / 10 + 1; i++)
			fputs("#comment.\n", f);
		fclose(f);
		assert_int_equal(piv_conf_load(&conf, "/nonexistent", 1, argv, &err), -1);
		assert_non_null(strstr(err.msg, "larger than"));
		/* a dangling symlink at the default path is refused, not "missing" */
		{
			char link_path[600];
			const char *only[] = { "ca_file=/etc/ca.pem", "revocation=none" };
			snprintf(link_path, sizeof(link_path), "%s/dangling.conf", dir);
			assert_int_equal(symlink("/nonexistent/target", link_path), 0);
			assert_int_equal(piv_conf_load(&conf, link_path, 2, only, &err), -1);
			assert_non_null(strstr(err.msg, "symbolic link"));
			unlink(link_path);
		}
		/* a directory */
		unlink(path);
		mkdir(path, 0700);
		assert_int_equal(piv_conf_load(&conf, "/nonexistent", 1, argv, &err), -1);
		assert_non_null(strstr(err.msg, "not a regular file"));
		rmdir(path);
	} else {
		/* not root: our own file is not root-owned */
		assert_int_equal(piv_conf_load(&conf, "/nonexistent", 1, argv, &err), -1);
		assert_non_null(strstr(err.msg, "not owned by root"));
		unlink(path);
	}
	rmdir(dir);
}

/* ---- outcome table -------------------------------------------------- */

static void
test_status_table(void **state)
{
	(void)state;
	assert_int_equal(piv_status_pam_code(PIV_OK, false), PAM_SUCCESS);
	assert_int_equal(piv_status_pam_code(PIV_E_NO_CARD, false), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(piv_status_pam_code(PIV_E_NO_CARD, true), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_CERT_EXPIRED, false), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_NOT_MAPPED, false), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_PIN_WRONG, false), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_PIN_LOCKED, false), PAM_MAXTRIES);
	assert_int_equal(piv_status_pam_code(PIV_E_SIGNATURE, false), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_REVOCATION_UNKNOWN, false), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_CONFIG, false), PAM_SERVICE_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_HELPER, false), PAM_AUTH_ERR);
	assert_int_equal(piv_status_pam_code(PIV_E_CONV, false), PAM_AUTH_ERR);
	/* a directory that cannot answer is like a missing card, card_only or not */
	assert_int_equal(piv_status_pam_code(PIV_E_DIRECTORY, false), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(piv_status_pam_code(PIV_E_DIRECTORY, true), PAM_AUTHINFO_UNAVAIL);
	assert_int_equal(piv_status_pam_code((enum piv_status)999, false), PAM_AUTH_ERR);
	/* Only PIV_OK succeeds; nothing is ever PAM_IGNORE; every status has a name. */
	for (int s = 0; s < PIV_STATUS_COUNT; s++) {
		for (int only = 0; only < 2; only++) {
			int code = piv_status_pam_code((enum piv_status)s, only != 0);
			assert_int_not_equal(code, PAM_IGNORE);
			if (s != PIV_OK)
				assert_int_not_equal(code, PAM_SUCCESS);
		}
		assert_non_null(piv_status_name((enum piv_status)s));
		assert_string_not_equal(piv_status_name((enum piv_status)s), "unknown");
	}
	assert_string_equal(piv_status_user_text(PIV_E_NO_CARD), "No PIV card found");
	assert_string_equal(piv_status_user_text(PIV_E_PIN_LOCKED), "PIN is locked");
	assert_string_equal(piv_status_user_text(PIV_E_REVOCATION_UNKNOWN),
	                    "revocation status unavailable");
	assert_null(piv_status_user_text(PIV_E_SIGNATURE));
}

/* ---- escaping ------------------------------------------------------- */

static void
test_escape(void **state)
{
	char out[64];

	(void)state;
	assert_string_equal(piv_escape_str("plain text", out, sizeof(out)), "plain text");
	assert_string_equal(piv_escape("a\nb\x1b[\"\\\xff", 8, out, sizeof(out)),
	                    "a\\x0ab\\x1b[\\x22\\x5c\\xff");
	assert_string_equal(piv_escape("a\0b", 3, out, sizeof(out)), "a\\x00b");
	assert_string_equal(piv_escape_str(NULL, out, sizeof(out)), "(none)");
	/* truncation keeps a marker and never splits an escape */
	assert_string_equal(piv_escape("\n\n\n\n", 4, out, 12), "\\x0a\\x0a...");
	assert_string_equal(piv_escape("abcdefghij", 10, out, 8), "abcd...");
	assert_int_equal(strlen(piv_escape("abcdefghij", 10, out, 1)), 0);
}

/* ---- wire protocol -------------------------------------------------- */

static void
test_proto_roundtrip(void **state)
{
	struct piv_msg msg, got;
	int sv[2];
	uint32_t v;
	char *s = NULL;
	const uint8_t *p;
	size_t n;

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	piv_msg_init(&msg, PIV_MSG_REQ_SIGN);
	assert_int_equal(piv_msg_put_u32(&msg, 0xdeadbeef), 0);
	assert_int_equal(piv_msg_put_str(&msg, "123456"), 0);
	assert_int_equal(piv_msg_put(&msg, "\0\1\2", 3), 0);
	assert_int_equal(piv_msg_put_str(&msg, NULL), 0);
	assert_int_equal(piv_msg_send(sv[0], &msg, piv_now_ms() + 1000), PIV_PROTO_OK);
	piv_msg_clear(&msg);
	memset(&got, 0, sizeof(got));
	assert_int_equal(piv_msg_recv(sv[1], &got, piv_now_ms() + 1000), PIV_PROTO_OK);
	assert_int_equal(got.type, PIV_MSG_REQ_SIGN);
	assert_int_equal(piv_msg_get_u32(&got, &v), 0);
	assert_int_equal(v, 0xdeadbeef);
	assert_int_equal(piv_msg_get_str(&got, &s), 0);
	assert_string_equal(s, "123456");
	free(s);
	assert_int_equal(piv_msg_get_str(&got, &s), -1); /* embedded NUL refused */
	got.rpos -= 4 + 3;
	assert_int_equal(piv_msg_get(&got, &p, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(piv_msg_get_str(&got, &s), 0);
	assert_string_equal(s, "");
	free(s);
	assert_int_equal(piv_msg_end(&got), 0);
	assert_int_equal(piv_msg_get(&got, &p, &n), -1); /* nothing left */
	piv_msg_clear(&got);

	/* nothing arrives: the deadline holds */
	{
		int64_t t0 = piv_now_ms();
		assert_int_equal(piv_msg_recv(sv[1], &got, t0 + 200), PIV_PROTO_TIMEOUT);
		assert_true(piv_now_ms() - t0 >= 190);
		assert_true(piv_now_ms() - t0 < 1000);
	}
	/* a frame cut short, then EOF */
	assert_int_equal(write(sv[0], "\0\0\0\x10X", 5), 5);
	close(sv[0]);
	assert_int_equal(piv_msg_recv(sv[1], &got, piv_now_ms() + 1000), PIV_PROTO_ERROR);
	assert_int_equal(piv_msg_recv(sv[1], &got, piv_now_ms() + 1000), PIV_PROTO_EOF);
	close(sv[1]);
}

static void
test_proto_malformed(void **state)
{
	struct piv_msg msg;
	uint32_t v;
	int sv[2];

	(void)state;
	memset(&msg, 0, sizeof(msg));
	/* field length beyond the frame */
	assert_int_equal(piv_msg_parse(&msg, (const uint8_t *)"C\0\0\0\x09" "abc", 8), 0);
	assert_int_equal(piv_msg_get_u32(&msg, &v), -1);
	/* a u32 field of the wrong size */
	assert_int_equal(piv_msg_parse(&msg, (const uint8_t *)"C\0\0\0\x02" "ab", 7), 0);
	assert_int_equal(piv_msg_get_u32(&msg, &v), -1);
	/* a truncated length prefix */
	assert_int_equal(piv_msg_parse(&msg, (const uint8_t *)"C\0\0", 3), 0);
	assert_int_equal(piv_msg_get_u32(&msg, &v), -1);
	assert_int_equal(piv_msg_parse(&msg, (const uint8_t *)"", 0), PIV_PROTO_ERROR);
	piv_msg_clear(&msg);

	/* frame length zero and oversized are refused before allocation */
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(write(sv[0], "\0\0\0\0", 4), 4);
	assert_int_equal(piv_msg_recv(sv[1], &msg, piv_now_ms() + 1000), PIV_PROTO_ERROR);
	assert_int_equal(write(sv[0], "\x7f\xff\xff\xff", 4), 4);
	assert_int_equal(piv_msg_recv(sv[1], &msg, piv_now_ms() + 1000), PIV_PROTO_ERROR);
	close(sv[0]);
	close(sv[1]);
	/* a field too large to ever send */
	piv_msg_init(&msg, 'X');
	assert_int_equal(piv_msg_put(&msg, "", PIV_PROTO_MAX_FRAME + 1), -1);
	piv_msg_clear(&msg);
}

/* A REQ_SIGN built field by field: pinpad, PIN, challenge length, kind,
 * hash, and whether a stray field follows. */
static int
sign_req_decodes(uint32_t pinpad, const char *pin, size_t challenge_len, const char *kind,
                 const char *hash, bool trailing)
{
	static const uint8_t challenge[1100] = { 1 };
	struct piv_sign_request req;
	struct piv_msg msg;
	char *got_pin = (char *)"not touched";
	int rc;

	piv_msg_init(&msg, PIV_MSG_REQ_SIGN);
	assert_int_equal(piv_msg_put_u32(&msg, 0), 0);
	assert_int_equal(piv_msg_put_u32(&msg, pinpad), 0);
	assert_int_equal(piv_msg_put_str(&msg, pin), 0);
	assert_int_equal(piv_msg_put(&msg, challenge, challenge_len), 0);
	assert_int_equal(piv_msg_put_str(&msg, kind), 0);
	assert_int_equal(piv_msg_put_str(&msg, hash), 0);
	if (trailing)
		assert_int_equal(piv_msg_put_u32(&msg, 7), 0);
	rc = piv_wire_get_sign_req(&msg, &req, &got_pin);
	if (rc == 0) {
		assert_int_equal(req.challenge_len, challenge_len);
		if (pinpad)
			assert_null(req.pin);
		else
			assert_string_equal(req.pin, pin);
	} else {
		assert_null(got_pin); /* nothing kept, the PIN wiped */
	}
	piv_free_secret(&got_pin);
	piv_msg_clear(&msg);
	return rc;
}

/* The decoders of wire.h are the only readers of the conversation: every
 * value the other end may not send is refused, and nothing is left over. */
static void
test_wire_decoders(void **state)
{
	struct piv_msg msg;
	struct piv_wire_certs_req cr;
	struct piv_card_candidate c, back;
	struct piv_sign_result res;
	char text[64];
	uint32_t status;
	int prio;
	uint8_t der[3] = { 0x30, 0x01, 0x00 };

	(void)state;
	/* REQ_CERTS: round trip; card_wait and debug bounded; trailing field */
	assert_int_equal(piv_wire_put_certs_req(&msg, "p11-kit", NULL, "pkcs11:type=cert", 3600,
	                                        true), 0);
	assert_int_equal(piv_wire_get_certs_req(&msg, &cr), 0);
	assert_string_equal(cr.module, "p11-kit");
	assert_string_equal(cr.token_uri, "");
	assert_int_equal(cr.card_wait, 3600);
	assert_true(cr.debug);
	piv_wire_certs_req_free(&cr);
	piv_msg_clear(&msg);
	assert_int_equal(piv_wire_put_certs_req(&msg, "m", "", "c", 3601, false), 0);
	assert_int_equal(piv_wire_get_certs_req(&msg, &cr), -1);
	assert_null(cr.module);
	piv_msg_clear(&msg);
	assert_int_equal(piv_wire_put_certs_req(&msg, "m", "", "c", 0, false), 0);
	msg.buf[msg.len - 1] = 2; /* debug = 2 */
	assert_int_equal(piv_wire_get_certs_req(&msg, &cr), -1);
	msg.buf[msg.len - 1] = 1;
	assert_int_equal(piv_msg_put_u32(&msg, 0), 0);
	msg.rpos = 0;
	assert_int_equal(piv_wire_get_certs_req(&msg, &cr), -1);
	msg.type = PIV_MSG_REQ_SIGN; /* the right fields under another type */
	msg.len -= 8;
	msg.rpos = 0;
	assert_int_equal(piv_wire_get_certs_req(&msg, &cr), -1);
	piv_msg_clear(&msg);

	/* REQ_SIGN */
	assert_int_equal(sign_req_decodes(0, "123456", 32, "ec", "sha256", false), 0);
	assert_int_equal(sign_req_decodes(0, "123456", 1024, "rsa", "sha384", false), 0);
	assert_int_equal(sign_req_decodes(1, "", 32, "ec", "sha256", false), 0);
	assert_int_equal(sign_req_decodes(1, "123456", 32, "ec", "sha256", false), -1);
	assert_int_equal(sign_req_decodes(2, "", 32, "ec", "sha256", false), -1);
	assert_int_equal(sign_req_decodes(0, "123456", 0, "ec", "sha256", false), -1);
	assert_int_equal(sign_req_decodes(0, "123456", 1025, "ec", "sha256", false), -1);
	assert_int_equal(sign_req_decodes(0, "123456", 32, "dsa", "sha256", false), -1);
	assert_int_equal(sign_req_decodes(0, "123456", 32, "ec", "md5", false), -1);
	assert_int_equal(sign_req_decodes(0, "123456", 32, "ec", "sha256", true), -1);

	/* LOG: a priority above LOG_ERR comes down to LOG_ERR; escaped */
	assert_int_equal(piv_wire_put_log(&msg, 0, "line\nforged"), 0);
	assert_int_equal(piv_wire_get_log(&msg, &prio, text, sizeof(text)), 0);
	assert_int_equal(prio, 3);
	assert_string_equal(text, "line\\x0aforged");
	piv_msg_clear(&msg);

	/* CANDIDATE: the index must be the expected one; extra count bounded */
	memset(&c, 0, sizeof(c));
	c.token_label = (char *)"Alice";
	c.token_serial = (char *)"42";
	c.cert.data = der;
	c.cert.len = sizeof(der);
	c.n_extra = 1;
	c.extra[0] = c.cert;
	assert_int_equal(piv_wire_put_candidate(&msg, 1, &c), 0);
	assert_int_equal(piv_wire_get_candidate(&msg, 0, &back), -1);
	msg.rpos = 0;
	assert_int_equal(piv_wire_get_candidate(&msg, 1, &back), 0);
	assert_string_equal(back.token_label, "Alice");
	assert_int_equal(back.n_extra, 1);
	assert_memory_equal(back.extra[0].data, der, sizeof(der));
	piv_card_candidate_free(&back);
	piv_msg_clear(&msg);
	piv_msg_init(&msg, PIV_MSG_CANDIDATE);
	assert_int_equal(piv_msg_put_u32(&msg, 0), 0);
	assert_int_equal(piv_msg_put_str(&msg, "A"), 0);
	assert_int_equal(piv_msg_put_str(&msg, "1"), 0);
	assert_int_equal(piv_msg_put_u32(&msg, 0), 0);
	assert_int_equal(piv_msg_put(&msg, der, sizeof(der)), 0);
	assert_int_equal(piv_msg_put_u32(&msg, PIV_MAX_EXTRA_CERTS + 1), 0);
	for (int i = 0; i < PIV_MAX_EXTRA_CERTS + 1; i++)
		assert_int_equal(piv_msg_put(&msg, der, sizeof(der)), 0);
	assert_int_equal(piv_wire_get_candidate(&msg, 0, &back), -1);
	assert_null(back.token_label);
	piv_msg_clear(&msg);

	/* END_CERTS: a NUL in the message is refused, the rest escaped */
	assert_int_equal(piv_wire_put_end_certs(&msg, PIV_H_NO_CARD, "no \x1b[31mcard"), 0);
	assert_int_equal(piv_wire_get_end_certs(&msg, &status, text, sizeof(text)), 0);
	assert_int_equal(status, PIV_H_NO_CARD);
	assert_string_equal(text, "no \\x1b[31mcard");
	piv_msg_clear(&msg);
	piv_msg_init(&msg, PIV_MSG_END_CERTS);
	assert_int_equal(piv_msg_put_u32(&msg, 0), 0);
	assert_int_equal(piv_msg_put(&msg, "a\0b", 3), 0);
	assert_int_equal(piv_wire_get_end_certs(&msg, &status, text, sizeof(text)), -1);
	piv_msg_clear(&msg);

	/* SIGNED: at most PIV_MAX_SIG_LEN bytes of signature */
	{
		static const uint8_t sig[PIV_MAX_SIG_LEN + 1] = { 1 };
		assert_int_equal(piv_wire_put_signed(&msg, 0, 0, 0x1041, sig, PIV_MAX_SIG_LEN, "ok"), 0);
		assert_int_equal(piv_wire_get_signed(&msg, &res), 0);
		assert_int_equal(res.sig_len, PIV_MAX_SIG_LEN);
		assert_int_equal(res.mechanism, 0x1041);
		assert_string_equal(res.message, "ok");
		piv_sign_result_free(&res);
		piv_msg_clear(&msg);
		assert_int_equal(piv_wire_put_signed(&msg, 0, 0, 0, sig, sizeof(sig), ""), -1);
		piv_msg_clear(&msg);
		piv_msg_init(&msg, PIV_MSG_SIGNED);
		for (int i = 0; i < 3; i++)
			assert_int_equal(piv_msg_put_u32(&msg, 0), 0);
		assert_int_equal(piv_msg_put(&msg, sig, sizeof(sig)), 0);
		assert_int_equal(piv_msg_put_str(&msg, ""), 0);
		assert_int_equal(piv_wire_get_signed(&msg, &res), -1);
		assert_null(res.sig);
		piv_msg_clear(&msg);
	}
}

/* ---- signatures ------------------------------------------------------ */

/* A self-signed certificate for key, made in library context ctx (NULL:
 * this process's). */
static X509 *
self_signed_in(OSSL_LIB_CTX *ctx, EVP_PKEY *key)
{
	X509 *cert = X509_new_ex(ctx, NULL);

	assert_non_null(cert);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"unit", -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	return cert;
}

static X509 *
self_signed(EVP_PKEY *key)
{
	return self_signed_in(NULL, key);
}

/* A certificate made in another library context, parsed again in this
 * process's own, as one read from a card would be. */
static X509 *
d2i_X509_here(X509 *cert)
{
	unsigned char *der = NULL;
	const unsigned char *p;
	int n = i2d_X509(cert, &der);
	X509 *copy;

	assert_true(n > 0);
	p = der;
	copy = d2i_X509(NULL, &p, n);
	OPENSSL_free(der);
	assert_non_null(copy);
	return copy;
}

static void
test_digest_info(void **state)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	EVP_PKEY_CTX *ctx;
	uint8_t digest[32], sig[256], recovered[256], ours[128];
	size_t sig_len = sizeof(sig), rec_len = sizeof(recovered), our_len;
	uint8_t msg[] = "challenge";

	(void)state;
	assert_non_null(key);
	assert_int_equal(piv_digest(PIV_HASH_SHA256, msg, sizeof(msg), digest), 0);
	/* OpenSSL's own PKCS#1 v1.5 signature embeds the DigestInfo; recover
	 * it with the public key and compare with ours. */
	ctx = EVP_PKEY_CTX_new(key, NULL);
	assert_int_equal(EVP_PKEY_sign_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_signature_md(ctx, EVP_sha256()), 1);
	assert_int_equal(EVP_PKEY_sign(ctx, sig, &sig_len, digest, sizeof(digest)), 1);
	EVP_PKEY_CTX_free(ctx);
	ctx = EVP_PKEY_CTX_new(key, NULL);
	assert_int_equal(EVP_PKEY_verify_recover_init(ctx), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING), 1);
	assert_int_equal(EVP_PKEY_verify_recover(ctx, recovered, &rec_len, sig, sig_len), 1);
	EVP_PKEY_CTX_free(ctx);
	our_len = piv_digest_info(PIV_HASH_SHA256, digest, sizeof(digest), ours, sizeof(ours));
	assert_int_equal(our_len, 51);
	assert_int_equal(rec_len, our_len);
	assert_memory_equal(recovered, ours, our_len);
	{
		uint8_t d384[48] = { 0 };
		assert_int_equal(piv_digest_info(PIV_HASH_SHA384, d384, sizeof(d384), ours,
		                                 sizeof(ours)), 67);
		assert_memory_equal(ours, "\x30\x41\x30\x0d\x06\x09\x60\x86\x48\x01\x65\x03\x04\x02\x02", 15);
	}
	assert_int_equal(piv_digest_info(PIV_HASH_SHA256, digest, sizeof(digest), ours, 50), 0);
	/* a digest of the wrong length for the hash is refused, not read past */
	assert_int_equal(piv_digest_info(PIV_HASH_SHA384, digest, sizeof(digest), ours,
	                                 sizeof(ours)), 0);
	EVP_PKEY_free(key);
}

/* DER ECDSA → r||s, as a card would return it. */
static size_t
der_to_raw(const uint8_t *der, size_t der_len, size_t field, uint8_t *raw)
{
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
	const BIGNUM *r, *s;

	assert_non_null(sig);
	ECDSA_SIG_get0(sig, &r, &s);
	assert_int_equal(BN_bn2binpad(r, raw, (int)field), (int)field);
	assert_int_equal(BN_bn2binpad(s, raw + field, (int)field), (int)field);
	ECDSA_SIG_free(sig);
	return 2 * field;
}

static void
check_ec(const char *curve, size_t field, enum piv_hash hash)
{
	EVP_PKEY *key = EVP_EC_gen(curve);
	X509 *cert = self_signed(key);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	uint8_t challenge[PIV_CHALLENGE_LEN], der[200], raw[132], *back = NULL;
	size_t der_len = sizeof(der), raw_len, back_len = 0;

	assert_int_equal(piv_make_challenge(challenge, sizeof(challenge)), 0);
	assert_int_equal(EVP_DigestSignInit(md, NULL, hash == PIV_HASH_SHA384 ? EVP_sha384()
	                                                                      : EVP_sha256(),
	                                    NULL, key), 1);
	assert_int_equal(EVP_DigestSign(md, der, &der_len, challenge, sizeof(challenge)), 1);
	raw_len = der_to_raw(der, der_len, field, raw);
	assert_int_equal(piv_ecdsa_raw_to_der(raw, raw_len, field, &back, &back_len), 0);
	assert_int_equal(back_len, der_len);
	assert_memory_equal(back, der, der_len);
	OPENSSL_free(back);
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_ECDSA_RAW, hash, challenge,
	                                      sizeof(challenge), raw, raw_len), 1);
	/* any change of r||s, the wrong length, another scheme, another challenge */
	raw[3] ^= 1;
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_ECDSA_RAW, hash, challenge,
	                                      sizeof(challenge), raw, raw_len), 0);
	raw[3] ^= 1;
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_ECDSA_RAW, hash, challenge,
	                                      sizeof(challenge), raw, raw_len - 1), 0);
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_RSA_PKCS1, hash, challenge,
	                                      sizeof(challenge), raw, raw_len), 0);
	challenge[0] ^= 1;
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_ECDSA_RAW, hash, challenge,
	                                      sizeof(challenge), raw, raw_len), 0);
	EVP_MD_CTX_free(md);
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void
test_ecdsa(void **state)
{
	uint8_t zero[64] = { 0 }, *der = NULL;
	size_t der_len;

	(void)state;
	check_ec("P-256", 32, PIV_HASH_SHA256);
	check_ec("P-384", 48, PIV_HASH_SHA384);
	/* r = 0 or s = 0 is not a signature */
	assert_int_equal(piv_ecdsa_raw_to_der(zero, 64, 32, &der, &der_len), -1);
	zero[0] = 1;
	assert_int_equal(piv_ecdsa_raw_to_der(zero, 64, 32, &der, &der_len), -1);
	assert_int_equal(piv_ecdsa_raw_to_der(zero, 63, 32, &der, &der_len), -1);
	assert_int_equal(piv_ecdsa_raw_to_der(NULL, 64, 32, &der, &der_len), -1);
}

static void
test_rsa_verify(void **state)
{
	EVP_PKEY *key = EVP_RSA_gen(2048);
	X509 *cert = self_signed(key);
	uint8_t challenge[PIV_CHALLENGE_LEN], sig[256];
	size_t sig_len = sizeof(sig);
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	int is_ec, bits;
	enum piv_hash hash;
	size_t field;

	(void)state;
	assert_int_equal(piv_cert_key_kind(cert, &is_ec, &hash, &field, &bits), 0);
	assert_int_equal(is_ec, 0);
	assert_int_equal(bits, 2048);
	assert_int_equal(piv_make_challenge(challenge, sizeof(challenge)), 0);
	/* PSS with salt = hash length */
	assert_int_equal(EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key), 1);
	EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING);
	EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32);
	assert_int_equal(EVP_DigestSign(md, sig, &sig_len, challenge, sizeof(challenge)), 1);
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_RSA_PSS, PIV_HASH_SHA256, challenge,
	                                      sizeof(challenge), sig, sig_len), 1);
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_RSA_PKCS1, PIV_HASH_SHA256, challenge,
	                                      sizeof(challenge), sig, sig_len), 0);
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_ECDSA_RAW, PIV_HASH_SHA256, challenge,
	                                      sizeof(challenge), sig, sig_len), 0);
	/* a signature of the wrong length, or all zeros */
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_RSA_PSS, PIV_HASH_SHA256, challenge,
	                                      sizeof(challenge), sig, sig_len - 1), 0);
	memset(sig, 0, sizeof(sig));
	assert_int_equal(piv_verify_signature(cert, PIV_SIG_RSA_PKCS1, PIV_HASH_SHA256, challenge,
	                                      sizeof(challenge), sig, sig_len), 0);
	EVP_MD_CTX_free(md);
	X509_free(cert);
	EVP_PKEY_free(key);

	/* RSA-1024 is refused as a key type. Made as an outside CA would, with
	 * OpenSSL's default provider in a context of its own: on a FIPS-only
	 * OpenSSL (CI's FIPS stage) this process can neither make nor sign
	 * with such a key, but a card could still carry one. */
	{
		OSSL_LIB_CTX *outside = OSSL_LIB_CTX_new();
		OSSL_PROVIDER *dflt = OSSL_PROVIDER_load(outside, "default");
		assert_non_null(dflt);
		key = EVP_PKEY_Q_keygen(outside, NULL, "RSA", (size_t)1024);
		assert_non_null(key);
		cert = self_signed_in(outside, key);
		X509 *here = d2i_X509_here(cert);
		assert_int_equal(piv_cert_key_kind(here, &is_ec, &hash, &field, &bits), -1);
		assert_int_equal(bits, 1024);
		X509_free(here);
		X509_free(cert);
		EVP_PKEY_free(key);
		OSSL_PROVIDER_unload(dflt);
		OSSL_LIB_CTX_free(outside);
	}
	/* and so is a curve we do not use */
	key = EVP_EC_gen("P-521");
	cert = self_signed(key);
	assert_int_equal(piv_cert_key_kind(cert, &is_ec, &hash, &field, &bits), -1);
	X509_free(cert);
	EVP_PKEY_free(key);
}

/* ---- mapping decisions ---------------------------------------------- */

static void
test_account_names(void **state)
{
	static const char *const good[] = { "alice", "a.b-c_d", "svc$", "user@EXAMPLE.TEST", "0" };
	static const char *const bad[] = { "", "-rf", ".hidden", "a b", "a/b", "a:b", "a\nb",
	                                   "Alice Example\\0Aroot", "x*", "(uid=*)", "é" };

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(piv_valid_account_name(good[i]));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_false(piv_valid_account_name(bad[i]));
}

static void
test_map_decide(void **state)
{
	struct piv_accounts acc;
	const char *chosen;

	(void)state;
	memset(&acc, 0, sizeof(acc));
	assert_int_equal(piv_map_decide(&acc, "alice", &chosen), PIV_E_NOT_MAPPED);
	assert_int_equal(piv_map_decide(&acc, NULL, &chosen), PIV_E_NOT_MAPPED);
	acc.name[0] = (char *)"alice";
	acc.n = 1;
	assert_int_equal(piv_map_decide(&acc, "alice", &chosen), PIV_OK);
	assert_string_equal(chosen, "alice");
	assert_int_equal(piv_map_decide(&acc, "bob", &chosen), PIV_E_NOT_MAPPED);
	assert_null(chosen);
	assert_int_equal(piv_map_decide(&acc, NULL, &chosen), PIV_OK);
	assert_int_equal(piv_map_decide(&acc, "", &chosen), PIV_OK);
	assert_string_equal(chosen, "alice");
	acc.name[1] = (char *)"bob";
	acc.n = 2;
	assert_int_equal(piv_map_decide(&acc, "bob", &chosen), PIV_OK);
	assert_string_equal(chosen, "bob");
	assert_int_equal(piv_map_decide(&acc, NULL, &chosen), PIV_E_AMBIGUOUS);
	assert_null(chosen);
}

/* Which PAM_RHOST values are this host (access.h): no name is looked up. */
static void
test_rhost_local(void **state)
{
	static const struct { const char *rhost; bool local; } cases[] = {
		{ NULL, true }, { "", true }, { "localhost", true }, { "LOCALHOST.", true },
		{ "localhost.localdomain", true }, { "127.0.0.1", true }, { "127.1.2.3", true },
		{ "::1", true }, { "::ffff:127.0.0.1", true }, { "admin1", true },
		{ "admin1.example.gov", true }, { "ADMIN1.Example.Gov.", true },
		{ "admin2", false }, { "admin1.evil.example", false }, { "admin10", false },
		{ "192.0.2.7", false }, { "::ffff:192.0.2.7", false }, { "2001:db8::1", false },
		{ "128.0.0.1", false }, { "0.0.0.0", false }, { "localhost.evil.example", false },
		{ "ws1.example.gov", false }, { "10.0.0.1 localhost", false },
	};

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (piv_rhost_is_local(cases[i].rhost, "admin1.example.gov") != cases[i].local)
			fail_msg("rhost '%s': want %s", cases[i].rhost ? cases[i].rhost : "(null)",
			         cases[i].local ? "local" : "remote");
	/* a host whose name has no domain */
	assert_true(piv_rhost_is_local("admin1.example.gov", "admin1"));
	assert_false(piv_rhost_is_local("admin1", NULL));
	assert_false(piv_rhost_is_local("admin1", ""));
}

static void
test_allowed_services_rules(void **state)
{
	static const char *const none[] = { NULL };
	static const char *const only[] = { "login", "sudo" };
	static const char *const plus[] = { "+sshd", "-sudo" };
	static const char *const both[] = { "login", "+gdm-smartcard", "-login" };
	struct piv_strlist rules;

	(void)state;
	rules = (struct piv_strlist){ (char **)none, 0 };
	assert_true(piv_service_allowed(&rules, "login"));
	assert_true(piv_service_allowed(&rules, "lightdm"));
	assert_false(piv_service_allowed(&rules, "sshd")); /* the default */
	rules = (struct piv_strlist){ (char **)only, 2 };
	assert_true(piv_service_allowed(&rules, "sudo"));
	assert_false(piv_service_allowed(&rules, "su"));
	assert_false(piv_service_allowed(&rules, "sshd"));
	rules = (struct piv_strlist){ (char **)plus, 2 };
	assert_true(piv_service_allowed(&rules, "sshd"));
	assert_false(piv_service_allowed(&rules, "sudo"));
	assert_true(piv_service_allowed(&rules, "login"));
	rules = (struct piv_strlist){ (char **)both, 3 };
	assert_false(piv_service_allowed(&rules, "login"));
	assert_true(piv_service_allowed(&rules, "gdm-smartcard"));
	assert_false(piv_service_allowed(&rules, "sudo"));
	assert_false(piv_service_allowed(&rules, "sshd"));
}

/* The keys of issue 14.5 as the file gives them. */
static void
test_conf_access_keys(void **state)
{
	struct piv_conf conf;
	struct piv_conf_error err;

	(void)state;
	assert_int_equal(load_text(BASE "allowed_services = login, +sudo -sshd\n"
	                           "allowed_services = gdm-smartcard\nallow_remote = yes\n"
	                           "foreign_card = ignore\n", 0, NULL, &conf, &err), 0);
	assert_int_equal(conf.allowed_services.n, 4);
	assert_string_equal(conf.allowed_services.v[0], "login");
	assert_string_equal(conf.allowed_services.v[1], "+sudo");
	assert_string_equal(conf.allowed_services.v[2], "-sshd");
	assert_string_equal(conf.allowed_services.v[3], "gdm-smartcard");
	assert_true(conf.allow_remote);
	assert_true(conf.foreign_card_ignore);
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE, 0, NULL, &conf, &err), 0);
	assert_int_equal(conf.allowed_services.n, 0);
	assert_false(conf.allow_remote);
	assert_false(conf.foreign_card_ignore);
	piv_conf_free(&conf);
}

/* The card removal keys (issue 12) and their defaults. */
static void
test_conf_removal_keys(void **state)
{
	struct piv_conf conf;
	struct piv_conf_error err;

	(void)state;
	assert_int_equal(load_text(BASE, 0, NULL, &conf, &err), 0);
	assert_int_equal(conf.removal_action, PIV_REMOVAL_NONE);
	assert_true(conf.removal_watch_required);
	assert_string_equal(conf.watcher, PIV_WATCHER_PATH);
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE "removal_action = lock\nremoval_watch = optional\n"
	                           "watcher = /opt/w\n", 0, NULL, &conf, &err), 0);
	assert_int_equal(conf.removal_action, PIV_REMOVAL_LOCK);
	assert_false(conf.removal_watch_required);
	assert_string_equal(conf.watcher, "/opt/w");
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE "removal_action = terminate\nremoval_watch = required\n",
	                           0, NULL, &conf, &err), 0);
	assert_int_equal(conf.removal_action, PIV_REMOVAL_TERMINATE);
	assert_true(conf.removal_watch_required);
	piv_conf_free(&conf);
	/* fips_mode: auto by default */
	assert_int_equal(load_text(BASE, 0, NULL, &conf, &err), 0);
	assert_false(conf.fips_required);
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE "fips_mode = required\n", 0, NULL, &conf, &err), 0);
	assert_true(conf.fips_required);
	piv_conf_free(&conf);
	assert_int_equal(load_text(BASE "fips_mode = required\nfips_mode = auto\n", 0, NULL, &conf,
	                           &err), 0);
	assert_false(conf.fips_required);
	piv_conf_free(&conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf_removal_keys),
		cmocka_unit_test(test_conf_defaults),
		cmocka_unit_test(test_conf_every_key),
		cmocka_unit_test(test_conf_bad_values),
		cmocka_unit_test(test_conf_ldap_accepted),
		cmocka_unit_test(test_conf_match_cost),
		cmocka_unit_test(test_conf_required),
		cmocka_unit_test(test_sigpipe_guard),
		cmocka_unit_test(test_conf_long_line),
		cmocka_unit_test(test_conf_arguments),
		cmocka_unit_test(test_conf_files),
		cmocka_unit_test(test_status_table),
		cmocka_unit_test(test_escape),
		cmocka_unit_test(test_proto_roundtrip),
		cmocka_unit_test(test_proto_malformed),
		cmocka_unit_test(test_wire_decoders),
		cmocka_unit_test(test_digest_info),
		cmocka_unit_test(test_ecdsa),
		cmocka_unit_test(test_rsa_verify),
		cmocka_unit_test(test_account_names),
		cmocka_unit_test(test_map_decide),
		cmocka_unit_test(test_rhost_local),
		cmocka_unit_test(test_allowed_services_rules),
		cmocka_unit_test(test_conf_access_keys),
	};
	alarm(120);
	return cmocka_run_group_tests_name("unit", tests, NULL, NULL);
}
