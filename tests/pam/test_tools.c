/* PAM integration tests, pam-piv-check against every card, revocation and issuers.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

/* ---- pam-piv-check ---------------------------------------------------- */

/* Run pam-piv-check on current.conf; *out gets stdout, the exit status
 * is returned. pin: a line for --pin-stdin, or NULL. */
static int
run_check(const char *args, const char *pin, char **out)
{
	char cmd[9000], path[4200], pin_part[300] = "";
	int status;

	snprintf(path, sizeof(path), "%s/check.out", work);
	/* the PINs of the tests are digits: no quoting needed */
	if (pin != NULL)
		snprintf(pin_part, sizeof(pin_part), "printf '%%s\\n' %s | ", pin);
	snprintf(cmd, sizeof(cmd), "%stimeout 60 '%s' --config '%s/current.conf' %s %s > '%s' 2>&1",
	         pin_part, check_tool, work, pin ? "--pin-stdin" : "", args, path);
	status = system(cmd);
	*out = slurp(path);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

static void
test_check_tool(void **state)
{
	char *out;

	(void)state;
	/* everything up to the PIN, and the exit status that says so */
	configure(&SETUP(.scenario = "p256"));
	assert_int_equal(run_check("--user alice", NULL, &out), 3);
	check_must(out, "module 1: 'Implementation of PKCS11' by 'SoftHSM'");
	check_must(out, "token 'p256'");
	check_must(out, "chain                ok    success: valid");
	check_must(out, "anchor                     2: CN=PIV Test Root CA");
	check_must(out, "key usage            ok");
	check_must(out, "card authentication  ok");
	check_must(out, "maps to account 'alice'");
	check_must(out, "not tried without a PIN");
	/* which OpenSSL, FIPS-only in CI's FIPS stage (PIV_TEST_FIPS=1) */
	check_must(out, getenv("PIV_TEST_FIPS") != NULL && strcmp(getenv("PIV_TEST_FIPS"), "1") == 0 ?
	                "FIPS provider: active (fips provider, default_properties fips=yes)" :
	                "FIPS provider: not loaded");
	free(out);
	/* the whole login, signature included */
	assert_int_equal(run_check("--user alice", PIN, &out), 0);
	check_must(out, "login: would succeed");
	check_must(out, "signature verified");
	assert_null(strstr(out, PIN)); /* never the PIN */
	free(out);
	assert_int_equal(run_check("--user alice", "654321", &out), 1);
	check_must(out, "Wrong PIN");
	assert_null(strstr(out, "654321"));
	free(out);
	/* another user */
	assert_int_equal(run_check("--user bob", PIN, &out), 1);
	check_must(out, "not mapped to bob");
	free(out);
	/* a failing step says which */
	configure(&SETUP(.scenario = "expired"));
	assert_int_equal(run_check("--user alice", PIN, &out), 1);
	check_must(out, "dates                fail");
	check_must(out, "chain                fail  cert-expired");
	free(out);
	configure(&SETUP(.scenario = "cardauth"));
	assert_int_equal(run_check("", NULL, &out), 1);
	check_must(out, "card authentication  fail");
	free(out);
	configure(&SETUP(.scenario = "empty"));
	assert_int_equal(run_check("", NULL, &out), 1);
	check_must(out, "No PIV card found");
	free(out);
	/* configuration errors in the module's words */
	configure(&SETUP(.scenario = "p256", .extra = "no_such_key = 1"));
	assert_int_equal(run_check("", NULL, &out), 2);
	check_must(out, "configuration error: ");
	check_must(out, "current.conf:");
	check_must(out, "unknown key 'no_such_key'");
	free(out);
	/* JSON for scripts */
	configure(&SETUP(.scenario = "p256"));
	assert_int_equal(run_check("--json --user alice", PIN, &out), 0);
	check_must(out, "{\"configuration\":");
	check_must(out, "\"signature_verified\":true},\"exit\":0}");
	check_must(out, "\"name\":\"chain\",\"verdict\":\"ok\"");
	free(out);
}

/* pam-piv-check on every test card, with the PIN: the exit status and the
 * step that decides. */
/* Several issuing CAs and a rule that does not bind the issuer: the
 * tool warns; require_issuer (checked at login) or <ISSUER> silences it
 * (issue 14.4). Also --version, --help, --service, --rhost. */
static void
test_check_tool_issuers(void **state)
{
	char extra[9000], *out;

	(void)state;
	shell("cat '%s/pki/intermediates.pem' '%s/pki/ca/inter2.crt' > '%s/int2.pem' && "
	      "chmod 644 '%s/int2.pem'", fx, fx, work, work);
	snprintf(extra, sizeof(extra), "intermediates = %s/int2.pem", work);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	assert_int_equal(run_check("--user alice", PIN, &out), 0);
	check_must(out, "issuer               warn  2 issuing CAs are trusted and rule 1 "
	                "(name:{subject_dn_component.uid}) does not bind the issuer");
	free(out);
	snprintf(extra, sizeof(extra), "intermediates = %s/int2.pem\n"
	         "require_issuer = cn=PIV Test Issuing CA, o=PIV Test, c=US", work);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	assert_int_equal(run_check("--user alice", PIN, &out), 0);
	assert_null(strstr(out, "does not bind the issuer"));
	free(out);
	snprintf(extra, sizeof(extra), "intermediates = %s/int2.pem\n"
	         "match = <ISSUER>^CN=PIV Test Issuing CA,O=PIV Test,C=US$\n"
	         "map = name:{subject_dn_component.uid}", work);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	assert_int_equal(run_check("--user alice", PIN, &out), 0);
	assert_null(strstr(out, "does not bind the issuer"));
	free(out);
	/* one issuing CA (the default fixture): no warning */
	configure(&SETUP(.scenario = "p256"));
	assert_int_equal(run_check("--user alice", NULL, &out), 3);
	assert_null(strstr(out, "does not bind the issuer"));
	free(out);
	/* the login as a service and a host would see it */
	assert_int_equal(run_check("--user alice --service sshd", NULL, &out), 1);
	check_must(out, "not used for the PAM service sshd (allowed_services)");
	free(out);
	assert_int_equal(run_check("--user alice --rhost 192.0.2.9", NULL, &out), 1);
	check_must(out, "not used for a login from 192.0.2.9");
	free(out);
	assert_int_equal(run_check("--version", NULL, &out), 0);
	check_must(out, "pam-piv-check (pam_piv) ");
	free(out);
	assert_int_equal(run_check("--help", NULL, &out), 0);
	check_must(out, "--rhost HOST");
	check_must(out, "Exit status: 0 the login would succeed");
	free(out);
	assert_int_equal(run_check("--no-such-option", NULL, &out), 4);
	check_must(out, "usage: pam-piv-check");
	free(out);
	shell("'%s' --version | grep -q '^pam-piv-authorized-keys (pam_piv) [0-9]'", keys_tool);
	shell("'%s' --help | grep -q -- '--cache-dir DIR'", keys_tool);
	shell("! '%s' --bogus >/dev/null 2>&1", keys_tool);
}

static void
test_check_tool_every_card(void **state)
{
	static const struct {
		const char *scenario, *user, *extra;
		int exit_status;
		const char *says;
	} cases[] = {
		{ "rsa2048", "alice", NULL, 0, "login: would succeed" },
		{ "rsa3072", "alice", NULL, 0, "login: would succeed" },
		{ "rsa4096", "alice", NULL, 0, "key                        rsaEncryption, 4096 bits" },
		{ "p256", "alice", NULL, 0, "signature verified" },
		{ "p384", "alice", NULL, 0, "id-ecPublicKey, 384 bits" },
		{ "alwaysauth", "alice", NULL, 0, "login: would succeed" },
		{ "bob", "bob", NULL, 0, "maps to account 'bob'" },
		{ "bob", "alice", NULL, 1, "not mapped to alice" },
		{ "carol", NULL, NULL, 1, "expands to an account that does not exist: 'carol'" },
		{ "expired", "alice", NULL, 1, "dates                fail" },
		{ "notyet", "alice", NULL, 1, "cert-not-yet-valid" },
		{ "untrusted", "alice", NULL, 1, "chain                fail  cert-untrusted" },
		{ "wrongeku", "alice", "require_eku = clientAuth", 1, "cert-eku" },
		{ "cardauth", "alice", NULL, 1, "card authentication  fail" },
		{ "cardauth-policy", "alice", NULL, 1, "card authentication  fail" },
		{ "nodigsig", "alice", NULL, 1, "key usage            fail" },
		{ "twouid", NULL, NULL, 0, "maps to account 'bob'" },
		{ "hostile", "alice", NULL, 0, "\\x0aroot\\x1b[31m" },
		{ "mismatch", "alice", NULL, 1, "does not verify with the certificate's key" },
		{ "nokey", "alice", NULL, 1, "would fail" },
		{ "two", NULL, NULL, 1, "2 cards map to accounts" },
		{ "mixed", "bob", NULL, 0, "certificate 2:" },
		{ "inter2", "alice", NULL, 0, "1: CN=PIV Test Issuing CA 2" },
		{ "fascn", NULL, NULL, 1, "expands to an account that does not exist: 'fascnuser'" },
		{ "empty", "alice", NULL, 1, "No PIV card found" },
	};
	char *out;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char args[100];
		int got;
		configure(&SETUP(.scenario = cases[i].scenario, .extra = cases[i].extra));
		snprintf(args, sizeof(args), "%s%s", cases[i].user ? "--user " : "",
		         cases[i].user ? cases[i].user : "");
		got = run_check(args, PIN, &out);
		if (got != cases[i].exit_status || strstr(out, cases[i].says) == NULL)
			fail_msg("%s: exit %d (want %d), want '%s' in:\n%s", cases[i].scenario, got,
			         cases[i].exit_status, cases[i].says, out);
		assert_null(strstr(out, PIN));
		free(out);
	}
}

/* Revocation steps show each method's answer with its source and age. */
static void
test_check_tool_revocation(void **state)
{
	char *out, extra[4300];

	(void)state;
	snprintf(extra, sizeof(extra), "revocation = ocsp,crl\ncache_dir = %s", cache_dir);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	assert_int_equal(run_check("--user alice", NULL, &out), 3);
	check_must(out, "good: OCSP: good, thisUpdate ");
	check_must(out, "(from http://127.0.0.1:8888)");
	check_must(out, "CRL fetched from http://127.0.0.1:");
	free(out);
	/* the second time from the caches */
	assert_int_equal(run_check("--user alice", NULL, &out), 3);
	check_must(out, "(cached answer)");
	check_must(out, "cached CRL from http://127.0.0.1:");
	free(out);
	configure(&SETUP(.scenario = "revoked", .extra = extra));
	assert_int_equal(run_check("--user alice", PIN, &out), 1);
	check_must(out, "revocation           fail  ocsp for /C=US/O=PIV Test/OU=People/UID=alice/CN=Alice Example: revoked");
	free(out);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_check_tool, revocation_setup),
		cmocka_unit_test_setup(test_check_tool_every_card, revocation_setup),
		cmocka_unit_test_setup(test_check_tool_revocation, revocation_setup),
		cmocka_unit_test_setup(test_check_tool_issuers, revocation_setup),
	};

	return PIV_TEST_MAIN("tools", tests);
}
