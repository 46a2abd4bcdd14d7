/* PAM integration tests, the card: every key type and signature mechanism, the PIN (wrong, locked, last try, pinpad, cancelled), tokens, readers and the p11-kit registry.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

/* ---- success for every key type ------------------------------------ */

static void
check_success(const char *scenario, const char *label)
{
	struct outcome o;

	expect(&SETUP(.scenario = scenario), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	assert_int_equal(o.conv.prompts, 1);
	assert_string_equal(o.token_env, label);
	assert_non_null(strstr(o.conv.last_prompt, label));
	assert_non_null(strstr(o.log, "authentication succeeded: account=alice"));
	assert_non_null(strstr(o.log, "sha256="));
	assert_non_null(strstr(o.log, "issuer=\"CN=PIV Test Issuing CA"));
	outcome_free(&o);
}

static void test_rsa2048(void **s) { (void)s; check_success("rsa2048", "rsa2048"); }
static void test_rsa3072(void **s) { (void)s; check_success("rsa3072", "rsa3072"); }
static void test_rsa4096(void **s) { (void)s; check_success("rsa4096", "rsa4096"); }
static void test_p256(void **s) { (void)s; check_success("p256", "p256"); }
static void test_p384(void **s) { (void)s; check_success("p384", "p384"); }

/* The chain can also be built from the card's own extra certificate. */
static void
test_intermediate_from_card(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "rsa2048", .no_intermediates = true), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* p256 has no extra certificate: without intermediates, untrusted. */
	expect(&SETUP(.scenario = "p256", .no_intermediates = true), "alice", PIN,
	       PAM_AUTH_ERR, false, "not trusted", &o);
	outcome_free(&o);
}

/* ---- each signature mechanism -------------------------------------- */

static void
check_mech(const char *scenario, const char *mechs, int want_rv, const char *want_mech)
{
	char env[256];
	struct outcome o;

	snprintf(env, sizeof(env), "P11SHIM_MECHS=%s", mechs);
	expect(&SETUP(.scenario = scenario, .use_shim = true, .shim_env = env), "alice", PIN,
	       want_rv, true, NULL, &o);
	if (want_mech != NULL && strstr(o.log, want_mech) == NULL) {
		dump(&o);
		fail_msg("expected %s in the log", want_mech);
	}
	outcome_free(&o);
}

static void
test_mech_rsa_pkcs_raw(void **s)
{
	(void)s;
	check_mech("rsa2048", "CKM_RSA_PKCS", PAM_SUCCESS, "signed with mechanism 0x1\n");
}

static void
test_mech_rsa_pss(void **s)
{
	(void)s;
	check_mech("rsa2048", "CKM_SHA256_RSA_PKCS_PSS", PAM_SUCCESS, "signed with mechanism 0x43\n");
	check_mech("rsa3072", "CKM_RSA_PKCS_PSS", PAM_SUCCESS, "signed with mechanism 0xd\n");
}

static void
test_mech_sha256_rsa(void **s)
{
	(void)s;
	check_mech("rsa2048", "CKM_SHA256_RSA_PKCS,CKM_RSA_PKCS", PAM_SUCCESS,
	           "signed with mechanism 0x40\n");
}

static void
test_mech_ecdsa(void **s)
{
	(void)s;
	check_mech("p384", "CKM_ECDSA", PAM_SUCCESS, "signed with mechanism 0x1041\n");
}

static void
test_mech_none_usable(void **s)
{
	(void)s;
	/* A token that offers only raw RSA without padding: nothing we use. */
	check_mech("rsa2048", "CKM_RSA_X_509", PAM_AUTH_ERR, "no usable signature mechanism");
}

/* ---- PIN ----------------------------------------------------------- */

static void
test_wrong_pin_then_right(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256"), "alice", "654321", PAM_AUTH_ERR, true, "Wrong PIN", &o);
	assert_null(strstr(o.log, "654321")); /* never logged */
	assert_null(strstr(o.log, "123456"));
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256"), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	assert_null(strstr(o.log, PIN));
	outcome_free(&o);
}

static void
test_pin_locked_flag(void **state)
{
	struct outcome o;

	(void)state;
	/* The token says it is locked: no prompt, PAM_MAXTRIES. */
	expect(&SETUP(.scenario = "p256", .use_shim = true, .shim_env = "P11SHIM_PIN_FLAGS=locked"),
	       "alice", PIN, PAM_MAXTRIES, false, "PIN is locked", &o);
	assert_int_equal(o.conv.n_err, 1); /* said once */
	outcome_free(&o);
}

static void
test_pin_locked_at_login(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_FAIL=C_Login:CKR_PIN_LOCKED"),
	       "alice", PIN, PAM_MAXTRIES, true, "PIN is locked", &o);
	assert_int_equal(o.conv.n_err, 1);
	outcome_free(&o);
}

static void
test_final_try_warning(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_PIN_FLAGS=final_try"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	assert_true(saw(o.conv.info, o.conv.n_info, "final PIN try"));
	/* and in the prompt, which PAM_SILENT (sudo) does not hide */
	assert_non_null(strstr(o.conv.last_prompt, "(FINAL TRY before the card locks)"));
	outcome_free(&o);
	run("piv", "alice", PIN, PAM_SILENT, &o);
	assert_int_equal(o.rv, PAM_SUCCESS);
	assert_int_equal(o.conv.n_info, 0);
	assert_non_null(strstr(o.conv.last_prompt, "(FINAL TRY before the card locks)"));
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_PIN_FLAGS=final_try"),
	       "alice", "999999", PAM_AUTH_ERR, true, "one try left", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_PIN_FLAGS=count_low"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	assert_true(saw(o.conv.info, o.conv.n_info, "few PIN tries left"));
	assert_non_null(strstr(o.conv.last_prompt, "(few tries left)"));
	outcome_free(&o);
}

static void
test_already_logged_in(void **state)
{
	struct outcome o;

	(void)state;
	/* A token that claims an earlier login has checked nothing: we log out
	 * and in again, so the right PIN works and a wrong one still fails. */
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_LOGIN_RV=already_logged_in"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_LOGIN_RV=already_logged_in"),
	       "alice", "111111", PAM_AUTH_ERR, true, "Wrong PIN", &o);
	outcome_free(&o);
}

static void
test_always_authenticate(void **state)
{
	struct outcome o;

	(void)state;
	/* SoftHSM's own CKA_ALWAYS_AUTHENTICATE key. */
	expect(&SETUP(.scenario = "alwaysauth"), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* The shim enforces the context-specific login on every C_Sign. */
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_ALWAYS_AUTH=1\nP11SHIM_PIN=123456"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
}

static void
test_pinpad(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_PROTECTED_AUTH=1\nP11SHIM_PIN=123456"),
	       "alice", PIN, PAM_SUCCESS, false, NULL, &o);
	assert_true(saw(o.conv.info, o.conv.n_info, "PIN pad"));
	outcome_free(&o);
}

static void
test_conversation_cancelled(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256"), "alice", NULL, PAM_AUTH_ERR, true, NULL, &o);
	outcome_free(&o);
}

/* ---- no card ------------------------------------------------------- */

static void
test_no_token(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "empty"), "alice", PIN, PAM_AUTHINFO_UNAVAIL, false,
	       "No PIV card found", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "empty", .extra = "card_only = yes"), "alice", PIN, PAM_AUTH_ERR,
	       false, "No PIV card found", &o);
	outcome_free(&o);
	/* empty slots (pam_p11 hung on one): 64 initialized tokens without
	 * certificates besides SoftHSM's uninitialized slot, listed first */
	expect(&SETUP(.scenario = "empty", .use_shim = true, .shim_env = "P11SHIM_SLOTS=64",
	              .extra = "card_timeout = 3"),
	       "alice", PIN, PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	assert_true(o.seconds < 3.0 + 1.0);
	outcome_free(&o);
	/* card_only as a bare module argument */
	configure(&SETUP(.scenario = "empty"));
	run("piv_cardonly", "alice", PIN, 0, &o);
	assert_int_equal(o.rv, PAM_AUTH_ERR);
	outcome_free(&o);
}

static void
test_module_will_not_load(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .extra = "pkcs11_module = /nonexistent/libnothing.so"),
	       "alice", PIN, PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "pkcs11_module = no-such-registered-module"),
	       "alice", PIN, PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	outcome_free(&o);
}

static void
test_p11kit_registry(void **state)
{
	struct outcome o;

	(void)state;
	/* Every registered module (Debian registers SoftHSM2, OpenSC and the
	 * p11-kit trust module); the trust-policy module is skipped. */
	expect(&SETUP(.scenario = "p256", .extra = "pkcs11_module = p11-kit"), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	assert_non_null(strstr(o.log, "skipping trust-policy module p11-kit-trust"));
	outcome_free(&o);
	/* One registered module by its p11-kit name. */
	expect(&SETUP(.scenario = "p256", .extra = "pkcs11_module = softhsm2"), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* A token URI that names another module's library finds no card. */
	expect(&SETUP(.scenario = "p256", .extra = "pkcs11_module = p11-kit\n"
	              "token = pkcs11:library-description=OpenSC%20smartcard%20framework"),
	       "alice", PIN, PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	outcome_free(&o);
}

static void
test_card_wait(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "empty", .extra = "card_wait = 1"), "alice", PIN,
	       PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	assert_true(saw(o.conv.info, o.conv.n_info, "insert your PIV card"));
	assert_true(o.seconds >= 0.9);
	outcome_free(&o);
}

static void
test_token_filter(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .extra = "token = pkcs11:token=another%20card"), "alice",
	       PIN, PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "two", .extra = "token = pkcs11:token=Bob%20card"), "alice", PIN,
	       PAM_AUTH_ERR, false, "not mapped to alice", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "two", .extra = "token = pkcs11:token=Alice%20card"), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.token_env, "Alice card");
	outcome_free(&o);
	/* a cert URI that selects nothing on the card */
	expect(&SETUP(.scenario = "p256", .extra = "cert = pkcs11:type=cert;id=%09"), "alice", PIN,
	       PAM_AUTHINFO_UNAVAIL, false, "No PIV card found", &o);
	outcome_free(&o);
}

/* Two tokens show certificates that map to the user (a certificate is
 * public: any token can show it): the PIN goes to neither (issue 14.4). */
static void
test_two_tokens_for_user(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "twoalice"), "alice", PIN, PAM_AUTH_ERR, false,
	       "More than one PIV card maps to this account", &o);
	must_log(&o, "2 certificates on the tokens present map to alice; the PIN is not asked");
	must_log(&o, "result=ambiguous");
	outcome_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_rsa2048, per_test_timeout),
		cmocka_unit_test_setup(test_rsa3072, per_test_timeout),
		cmocka_unit_test_setup(test_rsa4096, per_test_timeout),
		cmocka_unit_test_setup(test_p256, per_test_timeout),
		cmocka_unit_test_setup(test_p384, per_test_timeout),
		cmocka_unit_test_setup(test_intermediate_from_card, per_test_timeout),
		cmocka_unit_test_setup(test_mech_rsa_pkcs_raw, per_test_timeout),
		cmocka_unit_test_setup(test_mech_rsa_pss, per_test_timeout),
		cmocka_unit_test_setup(test_mech_sha256_rsa, per_test_timeout),
		cmocka_unit_test_setup(test_mech_ecdsa, per_test_timeout),
		cmocka_unit_test_setup(test_mech_none_usable, per_test_timeout),
		cmocka_unit_test_setup(test_wrong_pin_then_right, per_test_timeout),
		cmocka_unit_test_setup(test_pin_locked_flag, per_test_timeout),
		cmocka_unit_test_setup(test_pin_locked_at_login, per_test_timeout),
		cmocka_unit_test_setup(test_final_try_warning, per_test_timeout),
		cmocka_unit_test_setup(test_already_logged_in, per_test_timeout),
		cmocka_unit_test_setup(test_always_authenticate, per_test_timeout),
		cmocka_unit_test_setup(test_pinpad, per_test_timeout),
		cmocka_unit_test_setup(test_conversation_cancelled, per_test_timeout),
		cmocka_unit_test_setup(test_no_token, per_test_timeout),
		cmocka_unit_test_setup(test_module_will_not_load, per_test_timeout),
		cmocka_unit_test_setup(test_p11kit_registry, per_test_timeout),
		cmocka_unit_test_setup(test_card_wait, per_test_timeout),
		cmocka_unit_test_setup(test_token_filter, per_test_timeout),
		cmocka_unit_test_setup(test_two_tokens_for_user, per_test_timeout),
	};

	return PIV_TEST_MAIN("card", tests);
}
