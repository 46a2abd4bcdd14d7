/* PAM integration tests, the certificate and the configuration: trust, dates, EKU, key usage, policy, the key on the card, config and module-argument errors, trust files, require_issuer.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

/* ---- certificate validation: all refused before any PIN ------------ */

static void
check_refused(const char *scenario, const char *extra, const char *msg)
{
	struct outcome o;

	expect(&SETUP(.scenario = scenario, .extra = extra), "alice", PIN, PAM_AUTH_ERR, false, msg,
	       &o);
	assert_non_null(strstr(o.log, "authentication failed: user=alice"));
	outcome_free(&o);
}

static void test_untrusted(void **s) { (void)s; check_refused("untrusted", NULL, "not trusted"); }
static void test_expired(void **s) { (void)s; check_refused("expired", NULL, "has expired"); }
static void test_notyet(void **s) { (void)s; check_refused("notyet", NULL, "not yet valid"); }
static void
test_wrong_eku(void **s)
{
	(void)s;
	check_refused("wrongeku", "require_eku = clientAuth\nrequire_eku = msSmartcardLogin",
	              "extended key usage");
}
static void
test_card_auth(void **s)
{
	(void)s;
	check_refused("cardauth", NULL, "Card Authentication");
	check_refused("cardauth-policy", NULL, "Card Authentication");
}
static void test_no_digsig(void **s) { (void)s; check_refused("nodigsig", NULL, "digital signatures"); }

static void
test_policy(void **state)
{
	struct outcome o;

	(void)state;
	check_refused("p256", "require_policy = 1.2.3.4", "certificate policy");
	expect(&SETUP(.scenario = "p256", .extra = "require_policy = 2.16.840.1.101.3.2.1.3.13"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "require_eku = pkInitClientAuth"), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
}

/* ---- proof of possession ------------------------------------------- */

static void
test_mismatched_key(void **state)
{
	struct outcome o;

	(void)state;
	/* The victim's certificate with another key: the signature cannot
	 * verify against the validated certificate (CVE-2025-24032). */
	expect(&SETUP(.scenario = "mismatch"), "alice", PIN, PAM_AUTH_ERR, true, NULL, &o);
	assert_non_null(strstr(o.log, "does not verify"));
	outcome_free(&o);
	expect(&SETUP(.scenario = "nokey"), "alice", PIN, PAM_AUTH_ERR, true, NULL, &o);
	assert_non_null(strstr(o.log, "no private key"));
	outcome_free(&o);
}

/* ---- configuration errors ------------------------------------------ */

static void
check_config_error(const char *extra, const char *log_needle)
{
	struct outcome o;

	expect(&SETUP(.scenario = "p256", .extra = extra), "alice", PIN, PAM_SERVICE_ERR, false,
	       NULL, &o);
	if (log_needle != NULL && strstr(o.log, log_needle) == NULL) {
		dump(&o);
		fail_msg("missing '%s' in the log", log_needle);
	}
	outcome_free(&o);
}

static void
test_config_errors(void **state)
{
	(void)state;
	{
		/* the log names the file and the very line */
		char path[4096], needle[64];
		char *text;
		int line = 1;
		configure(&SETUP(.scenario = "p256", .extra = "no_such_key = 1"));
		snprintf(path, sizeof(path), "%s/current.conf", work);
		text = slurp(path);
		for (char *p = text; *p && strncmp(p, "no_such_key", 11) != 0; p++)
			line += *p == '\n';
		free(text);
		snprintf(needle, sizeof(needle), "current.conf:%d: unknown key 'no_such_key'", line);
		check_config_error("no_such_key = 1", needle);
	}
	check_config_error("card_timeout = soon", "must be a whole number");
	check_config_error("revocation = ocsp,crl,ocsp", "listed twice");
	check_config_error("ocsp_url = https://127.0.0.1:9/", "http:// URL");
	check_config_error("revocation = crl\ncache_dir = relative", "absolute path");
	check_config_error("ldap_uri = ldap://dir.example.test", "can be forged");
	check_config_error("map = ldap:LDAPU1:(uid={subject_dn_component.uid})", "needs ldap_uri");
	check_config_error("map = file:relative/piv-map", "absolute path");
	check_config_error("map = file:/nonexistent/piv-map", "/nonexistent/piv-map");
	check_config_error("map = name:{no_such_template}", "libsss_certmap rejects");
	check_config_error("match = <BOGUS>x\nmap = name:{subject_dn_component.uid}", "rejects");
	check_config_error("token = pkcs11:token=x;pin-value=123456", "pin-value");
	check_config_error("require_eku = notAnEku", "EKU");
	check_config_error("ca_file = /nonexistent/ca.pem", "/nonexistent/ca.pem: No such file");
	{
		/* a path that fails later is reported with its file and line */
		static const char *const bad[][3] = { /* extra lines, its line, what the log says */
			{ "ca_file = /nonexistent/ca.pem", "ca_file = /nonexistent",
			  "ca_file: /nonexistent/ca.pem: No such file" },
			{ "intermediates = /nonexistent/int.pem", "intermediates = /nonexistent",
			  "intermediates: /nonexistent/int.pem: No such file" },
			{ "helper = /nonexistent/helper", "helper = /nonexistent",
			  "helper: card helper /nonexistent/helper" },
			{ "revocation = crl\ncrl_dir = /nonexistent/crl.d", "crl_dir = ",
			  "crl_dir: /nonexistent/crl.d: No such file" },
			{ "revocation = crl\ncache_dir = /nonexistent/x/cache", "cache_dir = ",
			  "cache_dir: cache_dir /nonexistent/x/cache: No such file" },
		};
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			char path[4096], needle[300];
			char *text, *at;
			int line = 1;
			configure(&SETUP(.scenario = "p256", .extra = bad[i][0]));
			snprintf(path, sizeof(path), "%s/current.conf", work);
			text = slurp(path);
			at = strstr(text, bad[i][1]);
			assert_non_null(at);
			for (char *p = text; p < at; p++)
				line += *p == '\n';
			free(text);
			snprintf(needle, sizeof(needle), "current.conf:%d: %s", line, bad[i][2]);
			check_config_error(bad[i][0], needle);
		}
	}
	{
		/* a file that is no PEM at all */
		char more[4200];
		snprintf(more, sizeof(more), "ca_file = %s/passwd", fx);
		check_config_error(more, "cannot load trust anchors");
	}
	check_config_error("debug = maybe", "yes or no");
	check_config_error("this line has no equals sign", "expected 'key = value'");
	check_config_error("ca_dir = /nonexistent/ca.d", "/nonexistent/ca.d: No such file");
	/* an installation error, not "no card" */
	check_config_error("helper = /nonexistent/pam_piv_helper", "card helper /nonexistent");
}

static void
test_config_file_safety(void **state)
{
	char path[4096], link_path[4096];
	struct outcome o;

	(void)state;
	snprintf(path, sizeof(path), "%s/current.conf", work);
	configure(&SETUP(.scenario = "p256"));
	assert_int_equal(chmod(path, 0620), 0);
	run("piv", "alice", PIN, 0, &o);
	assert_int_equal(o.rv, PAM_SERVICE_ERR);
	assert_non_null(strstr(o.log, "writable by group or others"));
	outcome_free(&o);

	configure(&SETUP(.scenario = "p256"));
	assert_int_equal(chown(path, 65534, 65534), 0);
	run("piv", "alice", PIN, 0, &o);
	assert_int_equal(o.rv, PAM_SERVICE_ERR);
	assert_non_null(strstr(o.log, "not owned by root"));
	outcome_free(&o);

	/* a symlink in place of the file */
	configure(&SETUP(.scenario = "p256"));
	snprintf(link_path, sizeof(link_path), "%s/real.conf", work);
	assert_int_equal(rename(path, link_path), 0);
	assert_int_equal(symlink(link_path, path), 0);
	run("piv", "alice", PIN, 0, &o);
	unlink(path);
	assert_int_equal(o.rv, PAM_SERVICE_ERR);
	assert_non_null(strstr(o.log, "symbolic link"));
	outcome_free(&o);

}

static void
test_module_arguments(void **state)
{
	struct outcome o;

	(void)state;
	/* Unknown module argument. */
	configure(&SETUP(.scenario = "p256"));
	run("piv_badarg", "alice", PIN, 0, &o);
	assert_int_equal(o.rv, PAM_SERVICE_ERR);
	assert_int_equal(o.conv.prompts, 0);
	assert_non_null(strstr(o.log, "module argument 'bogus_key'"));
	outcome_free(&o);
	/* The argument's map replaces the file's (cn would map nobody). */
	configure(&SETUP(.scenario = "p256", .extra = "map = name:{subject_dn_component.cn}"));
	run("piv_argmap", "alice", PIN, 0, &o);
	assert_int_equal(o.rv, PAM_SUCCESS);
	outcome_free(&o);
	configure(&SETUP(.scenario = "p256", .extra = "map = name:{subject_dn_component.cn}"));
	run("piv", "alice", PIN, 0, &o);
	assert_int_equal(o.rv, PAM_AUTH_ERR);
	outcome_free(&o);
}

static void
test_setcred(void **state)
{
	struct pam_testcase tests[] = {
		pam_test(PAMTEST_SETCRED, PAM_SUCCESS),
	};
	struct conv_log log;

	(void)state;
	memset(&log, 0, sizeof(log));
	configure(&SETUP(.scenario = "empty"));
	assert_int_equal(_pamtest_conv("piv", "alice", conv_fn, &log, tests, 1, NULL),
	                 PAMTEST_ERR_OK);
	assert_int_equal(log.prompts, 0);
}

static void
test_silent(void **state)
{
	struct outcome o;

	(void)state;
	configure(&SETUP(.scenario = "expired"));
	run("piv", "alice", PIN, PAM_SILENT, &o);
	assert_int_equal(o.rv, PAM_AUTH_ERR);
	assert_int_equal(o.conv.n_err + o.conv.n_info, 0);
	outcome_free(&o);
}

/* Trust material others could write is refused: a rogue anchor, or an
 * older CRL put in place, would let somebody in. */
static void
test_unsafe_trust_files(void **state)
{
	char more[8400], path[4200];
	struct outcome o;

	(void)state;
	snprintf(path, sizeof(path), "%s/anchor.pem", work);
	shell("cp '%s/pki/ca/root.pem' '%s' && chmod 664 '%s'", fx, path, path);
	snprintf(more, sizeof(more), "ca_file = %s", path);
	expect(&SETUP(.scenario = "p256", .extra = more), "alice", PIN, PAM_SERVICE_ERR, false, NULL,
	       &o);
	must_log(&o, "must be owned by root and not writable by group or others");
	outcome_free(&o);
	snprintf(path, sizeof(path), "%s/local.crl", work);
	shell("cp '%s/pki/crl/inter.crl' '%s' && chown 65534 '%s'", fx, path, path);
	snprintf(more, sizeof(more), "crl_file = %s", path);
	expect_crl("p256", more, "alice", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "must be owned by root");
	outcome_free(&o);
	/* inside a safe crl_dir, a file someone else owns is skipped */
	shell("rm -rf '%s/crl.u' && mkdir '%s/crl.u' && cp '%s/pki/crl/inter.crl' "
	      "'%s/pki/crl/root.crl' '%s/crl.u/' && chown 65534 '%s/crl.u/inter.crl'",
	      work, work, fx, fx, work, work);
	snprintf(more, sizeof(more), "crl_fetch = no\ncrl_dir = %s/crl.u", work);
	expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "revocation status unavailable",
	           &o);
	must_log(&o, "crl_dir: skipping");
	outcome_free(&o);
	/* ca_dir: each file in it (and the file a link leads to) is
	 * checked like the directory (issue 14.4) */
	shell("rm -rf '%s/ca.d' && mkdir '%s/ca.d' && cp '%s/pki/ca/root.pem' '%s/ca.d/' && "
	      "openssl rehash '%s/ca.d'", work, work, fx, work, work);
	snprintf(more, sizeof(more), "ca_dir = %s/ca.d", work);
	expect(&SETUP(.scenario = "p256", .extra = more), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	shell("chown 65534 '%s/ca.d/root.pem'", work);
	expect(&SETUP(.scenario = "p256", .extra = more), "alice", PIN, PAM_SERVICE_ERR, false, NULL,
	       &o);
	/* (the file, or the hash link to it: whichever comes first) */
	must_log(&o, "ca_dir: ");
	must_log(&o, "/ca.d/");
	must_log(&o, ": must be owned by root and not writable by group or others");
	outcome_free(&o);
	shell("chown 0 '%s/ca.d/root.pem' && chmod 666 '%s/ca.d/root.pem'", work, work);
	expect(&SETUP(.scenario = "p256", .extra = more), "alice", PIN, PAM_SERVICE_ERR, false, NULL,
	       &o);
	must_log(&o, "must be owned by root and not writable by group or others");
	outcome_free(&o);
	/* a link in it to a file elsewhere that someone else owns */
	shell("chmod 644 '%s/ca.d/root.pem' && cp '%s/pki/ca/root.pem' '%s/elsewhere.pem' && "
	      "chown 65534 '%s/elsewhere.pem' && ln -s '%s/elsewhere.pem' '%s/ca.d/extra.0'", work, fx,
	      work, work, work, work);
	expect(&SETUP(.scenario = "p256", .extra = more), "alice", PIN, PAM_SERVICE_ERR, false, NULL,
	       &o);
	must_log(&o, "/ca.d/extra.0: must be owned by root");
	outcome_free(&o);
}

/* require_issuer: the card's certificate must come from one of these CAs
 * (issue 14.4); refused before any PIN otherwise. */
static void
test_require_issuer(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .extra = "require_issuer = CN=PIV Test Issuing CA 2,O=PIV Test,C=US"),
	       "alice", PIN, PAM_AUTH_ERR, false, "not trusted", &o);
	must_log(&o, "which is not one of require_issuer");
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "require_issuer = CN=PIV Test Issuing CA 2,O=PIV Test,C=US\n"
	              "require_issuer = cn=PIV Test Issuing CA , o=PIV Test, c=US"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
}

/* fips_mode = required: no login unless OpenSSL's FIPS provider is in
 * force. CI's FIPS stage runs the PAM tests on a FIPS-only OpenSSL with
 * PIV_TEST_FIPS=1; elsewhere the provider is not loaded. */
static void
test_fips_mode(void **state)
{
	const char *env = getenv("PIV_TEST_FIPS");
	struct outcome o;

	(void)state;
	if (env != NULL && strcmp(env, "1") == 0) {
		expect(&SETUP(.scenario = "p256", .extra = "fips_mode = required"), "alice", PIN,
		       PAM_SUCCESS, true, NULL, &o);
	} else {
		expect(&SETUP(.scenario = "p256", .extra = "fips_mode = required"), "alice", PIN,
		       PAM_SERVICE_ERR, false, NULL, &o);
		must_log(&o, "fips_mode = required, but OpenSSL's FIPS provider is not loaded");
		must_log(&o, "current.conf:");
	}
	outcome_free(&o);
	/* auto (the default) logs in either way */
	expect(&SETUP(.scenario = "p256", .extra = "fips_mode = auto"), "alice", PIN, PAM_SUCCESS,
	       true, NULL, &o);
	outcome_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_untrusted, per_test_timeout),
		cmocka_unit_test_setup(test_expired, per_test_timeout),
		cmocka_unit_test_setup(test_notyet, per_test_timeout),
		cmocka_unit_test_setup(test_wrong_eku, per_test_timeout),
		cmocka_unit_test_setup(test_card_auth, per_test_timeout),
		cmocka_unit_test_setup(test_no_digsig, per_test_timeout),
		cmocka_unit_test_setup(test_policy, per_test_timeout),
		cmocka_unit_test_setup(test_mismatched_key, per_test_timeout),
		cmocka_unit_test_setup(test_config_errors, per_test_timeout),
		cmocka_unit_test_setup(test_config_file_safety, per_test_timeout),
		cmocka_unit_test_setup(test_module_arguments, per_test_timeout),
		cmocka_unit_test_setup(test_silent, per_test_timeout),
		cmocka_unit_test_setup(test_setcred, per_test_timeout),
		cmocka_unit_test_setup(test_unsafe_trust_files, revocation_setup),
		cmocka_unit_test_setup(test_require_issuer, revocation_setup),
		cmocka_unit_test_setup(test_fips_mode, per_test_timeout),
	};

	return PIV_TEST_MAIN("validation", tests);
}
