/* PAM integration tests: the built pam_piv.so in a real libpam stack
 * (pam_wrapper + libpamtest), accounts from nss_wrapper, cards from SoftHSM2
 * tokens built by mkfixtures.sh, faults from the p11shim test module.
 * Run by pam-tests.sh, which prepares the fixtures and the environment. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpamtest.h>
#include <security/pam_appl.h>

#define MAX_MSGS 16
#define PIN "123456"

static const char *fx;        /* fixtures: pki/, tok/, passwd */
static const char *work;      /* service files read current.conf from here */
static const char *helper;
static const char *crl_builder; /* pam_piv_crlindex */
static const char *shim;
static const char *softhsm;
static const char *www;       /* the test HTTP server's document root */
static const char *http_port; /* its port */
static const char *check_tool; /* pam-piv-check */
static int count_helpers(void);
static int count_helpers_settled(int expected);
static void check_helper_counter(void);
static int count_fds(void);
static const char *keys_tool;  /* pam-piv-authorized-keys */
static const char *refresh_tool; /* pam-piv-refresh */
static void check_must(const char *out, const char *needle);

/* What the conversation saw. */
struct conv_log {
	const char *pin;          /* answer to an echo-off prompt; NULL cancels */
	int prompts;
	char info[MAX_MSGS][512];
	int n_info;
	char err[MAX_MSGS][512];
	int n_err;
	char last_prompt[256];
};

static int
conv_fn(int n, const struct pam_message **msgs, struct pam_response **resp, void *ud)
{
	struct conv_log *log = ud;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		const struct pam_message *m = msgs[i];
		switch (m->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			log->prompts++;
			snprintf(log->last_prompt, sizeof(log->last_prompt), "%s", m->msg);
			if (log->pin == NULL) {
				free(r);
				return PAM_CONV_ERR;
			}
			r[i].resp = strdup(log->pin);
			break;
		case PAM_PROMPT_ECHO_ON:
			free(r);
			return PAM_CONV_ERR; /* the module never asks for echoed input */
		case PAM_TEXT_INFO:
			if (log->n_info < MAX_MSGS)
				snprintf(log->info[log->n_info++], 512, "%s", m->msg);
			break;
		case PAM_ERROR_MSG:
			if (log->n_err < MAX_MSGS)
				snprintf(log->err[log->n_err++], 512, "%s", m->msg);
			break;
		default:
			break;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

static bool
saw(char msgs[][512], int n, const char *needle)
{
	for (int i = 0; i < n; i++)
		if (strstr(msgs[i], needle) != NULL)
			return true;
	return false;
}

/* ---- configuration ------------------------------------------------- */

struct setup {
	const char *scenario;       /* tok/SCENARIO */
	const char *extra;          /* more config lines */
	bool use_shim;
	const char *shim_env;       /* more helper_env lines, '\n'-separated */
	bool no_intermediates;
	bool default_revocation;    /* no "revocation" line: ocsp,crl */
};

static void
write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(tmp, mode), 0);
	assert_int_equal(rename(tmp, path), 0);
}

static void
configure(const struct setup *s)
{
	char path[4096], text[16384], intermediates[4200] = "";
	int n;

	if (!s->no_intermediates)
		snprintf(intermediates, sizeof(intermediates),
		         "intermediates = %s/pki/intermediates.pem\n", fx);
	n = snprintf(text, sizeof(text),
	             "# written by test_pam\n"
	             "pkcs11_module = %s\n"
	             "ca_file = %s/pki/ca/root.pem\n"
	             "%s"
	             "%s"
	             "helper = %s\n"
	             "crl_builder = %s\n"
	             "helper_env = SOFTHSM2_CONF=%s/tok/%s/softhsm2.conf\n"
	             "fail_delay = 0\n"
	             "card_timeout = 10\n"
	             "debug = yes\n",
	             s->use_shim ? shim : softhsm, fx, intermediates,
	             s->default_revocation ? "" : "revocation = none\n", helper, crl_builder, fx,
	             s->scenario);
	if (s->use_shim)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "helper_env = P11SHIM_TARGET=%s\n", softhsm);
	/* In sanitizer builds the helper's reports land where pam-tests.sh
	 * looks for them (its stderr is /dev/null); harmless otherwise. */
	if (s->shim_env == NULL || strstr(s->shim_env, "ASAN_OPTIONS") == NULL)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "helper_env = ASAN_OPTIONS=log_path=%s/asan.helper:detect_leaks=1\n"
		              "helper_env = UBSAN_OPTIONS=log_path=%s/ubsan.helper:print_stacktrace=1\n",
		              work, work);
	if (s->shim_env != NULL) {
		const char *p = s->shim_env;
		while (*p) {
			size_t len = strcspn(p, "\n");
			n += snprintf(text + n, sizeof(text) - (size_t)n, "helper_env = %.*s\n",
			              (int)len, p);
			p += len;
			if (*p == '\n')
				p++;
		}
	}
	if (s->extra != NULL)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s\n", s->extra);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	snprintf(path, sizeof(path), "%s/current.conf", work);
	write_file(path, text, 0600);
}

/* ---- running a PAM transaction ------------------------------------ */

struct outcome {
	int rv;
	struct conv_log conv;
	char user_after[300];     /* PAM_USER after authentication */
	char token_env[256];      /* PKCS11_LOGIN_TOKEN_NAME */
	double seconds;
	char *log;                /* what pam_syslog said (pam_wrapper on stderr) */
	char *maps;               /* /proc/self/maps before pam_end (successes only) */
};

static double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return strdup("");
	/* read to the end: /proc files have no size */
	do {
		if (cap - len < 4096) {
			char *grown = realloc(buf, cap + 65536);
			assert_non_null(grown);
			buf = grown;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

static void
run(const char *service, const char *user, const char *pin, int flags, struct outcome *out)
{
	struct pam_testcase tests[] = {
		pam_test_flags(PAMTEST_AUTHENTICATE, PAM_SUCCESS, flags),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};
	char log_path[4096];
	int saved_stderr, log_fd;
	pam_handle_t *ph;
	const void *item = NULL;
	const char *env;
	double t0;

	memset(out, 0, sizeof(*out));
	out->conv.pin = pin;
	/* pam_wrapper writes pam_syslog lines to stderr: capture them. */
	snprintf(log_path, sizeof(log_path), "%s/pam-%d.log", work, (int)getpid());
	fflush(stderr);
	saved_stderr = dup(2);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved_stderr >= 0 && log_fd >= 0);
	dup2(log_fd, 2);
	close(log_fd);
	t0 = now();
	/* libpamtest's run_pamtest_conv macro is misparenthesised; call the
	 * function it stands for. */
	(void)_pamtest_conv(service, user, conv_fn, &out->conv, tests,
	                    sizeof(tests) / sizeof(tests[0]), NULL);
	out->seconds = now() - t0;
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	out->log = slurp(log_path);

	out->rv = tests[0].op_rv;
	/* libpamtest stops at the first case whose result differs from the
	 * expected one, so the handle is kept only after a success. */
	ph = tests[1].case_out.ph;
	if (out->rv != PAM_SUCCESS || ph == NULL)
		return;
	if (pam_get_item(ph, PAM_USER, &item) == PAM_SUCCESS && item != NULL)
		snprintf(out->user_after, sizeof(out->user_after), "%s", (const char *)item);
	env = pam_getenv(ph, "PKCS11_LOGIN_TOKEN_NAME");
	if (env != NULL)
		snprintf(out->token_env, sizeof(out->token_env), "%s", env);
	/* what the process has mapped while the module is still loaded */
	out->maps = slurp("/proc/self/maps");
	pam_end(ph, out->rv);
}

static void
outcome_free(struct outcome *out)
{
	free(out->log);
	out->log = NULL;
	free(out->maps);
	out->maps = NULL;
}

static void
dump(const struct outcome *o)
{
	fprintf(stderr, "rv=%d (%s) prompts=%d %.2fs\n", o->rv, pam_strerror(NULL, o->rv),
	        o->conv.prompts, o->seconds);
	for (int i = 0; i < o->conv.n_info; i++)
		fprintf(stderr, "  info: %s\n", o->conv.info[i]);
	for (int i = 0; i < o->conv.n_err; i++)
		fprintf(stderr, "  error: %s\n", o->conv.err[i]);
	fprintf(stderr, "%s", o->log ? o->log : "");
}

/* Run a shell command built from a format; the test fails if it does. */
static void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
shell(const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	assert_true(rc > 0);
	rc = system(cmd);
	if (rc != 0)
		fail_msg("'%s' failed (%d)", cmd, rc);
	free(cmd);
}

static void
serve(const char *name, const char *crl)
{
	shell("cp '%s/pki/crl/%s' '%s/%s.tmp' && mv '%s/%s.tmp' '%s/%s'", fx, crl, www, name, www,
	      name, www, name);
}

static void
server_mode(const char *mode)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/.mode", www);
	write_file(path, mode, 0644);
}

/* Lines in one of the test server's logs (.requests, .statuses). */
static int
server_log_lines(const char *name)
{
	char path[4096];
	char *text;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", www, name);
	text = slurp(path);
	for (char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

static int
requests(void)
{
	return server_log_lines(".requests");
}

static void
must_log(struct outcome *o, const char *needle)
{
	if (strstr(o->log, needle) == NULL) {
		dump(o);
		fail_msg("missing '%s' in the log", needle);
	}
}

/* One authentication with expectations. msg: a substring of an error
 * message the user must see (NULL: none required). */
static void
expect(const struct setup *s, const char *user, const char *pin, int want_rv,
       bool want_prompt, const char *msg, struct outcome *out)
{
	configure(s);
	run("piv", user, pin, 0, out);
	if (out->rv != want_rv || (out->conv.prompts > 0) != want_prompt ||
	    (msg != NULL && !saw(out->conv.err, out->conv.n_err, msg))) {
		dump(out);
		fail_msg("%s: want rv=%d prompt=%d msg='%s'", s->scenario, want_rv, want_prompt,
		         msg ? msg : "");
	}
}

#define SETUP(...) ((struct setup){ __VA_ARGS__ })

static int
per_test_timeout(void **state)
{
	(void)state;
	alarm(120); /* a hang fails this test run instead of stalling CI */
	return 0;
}

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

/* ---- mapping ------------------------------------------------------- */

static void
test_mapped_to_other_user(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256"), "bob", PIN, PAM_AUTH_ERR, false, "not mapped to bob", &o);
	outcome_free(&o);
}

static void
test_unknown_account(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "carol"), "carol", PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "carol"), NULL, PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
}

static void
test_usernameless(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256"), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	expect(&SETUP(.scenario = "bob"), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "bob");
	outcome_free(&o);
}

/* Username-less: PAM_USER becomes the account's own name (getpwnam's
 * pw_name), not the string the mapping produced. Here a mapping file says
 * "ALICE" and the directory behind nss_wrapper (tests/nss_pivtest.c)
 * matches names without case (issue 14.4). */
static void
test_usernameless_canonical_name(void **state)
{
	char extra[4300];
	struct outcome o;

	(void)state;
	shell("printf 'ALICE sha256=%%s\n' \"$(openssl x509 -in '%s/pki/alice-p256.crt' -noout "
	      "-fingerprint -sha256 | sed 's/.*=//')\" > '%s/map.txt' && chmod 600 '%s/map.txt'", fx,
	      work, work);
	{
		struct passwd *pw = getpwnam("ALICE"); /* the fixture: the directory answers */
		assert_non_null(pw);
		assert_string_equal(pw->pw_name, "alice");
	}
	snprintf(extra, sizeof(extra), "map = file:%s/map.txt", work);
	expect(&SETUP(.scenario = "p256", .extra = extra), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	must_log(&o, "mapped name ALICE is the account alice");
	must_log(&o, "authentication succeeded: account=alice ");
	outcome_free(&o);
}

static void
test_usernameless_ambiguous(void **state)
{
	struct outcome o;

	(void)state;
	/* Two cards that map to two accounts: no guessing. */
	expect(&SETUP(.scenario = "two"), NULL, PIN, PAM_AUTH_ERR, false, "more than one", &o);
	assert_string_equal(o.user_after, "");
	outcome_free(&o);
	/* An expired card and another user's card: the user hears about the
	 * one that got furthest, whichever order the slots come in. */
	expect(&SETUP(.scenario = "mixed"), "alice", PIN, PAM_AUTH_ERR, false, "not mapped to alice",
	       &o);
	outcome_free(&o);
	/* With a user name the matching card is chosen. */
	expect(&SETUP(.scenario = "two"), "bob", PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.token_env, "Bob card");
	outcome_free(&o);
}

static void
test_map_rules(void **state)
{
	struct outcome o;

	(void)state;
	/* First rule yields nothing (cn is not an account), second decides. */
	expect(&SETUP(.scenario = "p256", .extra = "map = name:{subject_dn_component.cn}\n"
	                                           "map = name:{subject_rfc822_name.short_name}"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* A match rule that excludes the certificate. */
	expect(&SETUP(.scenario = "p256", .extra = "match = <ISSUER>^CN=Other CA,.*\n"
	                                           "map = name:{subject_dn_component.uid}"),
	       "alice", PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "match = <ISSUER>^CN=PIV Test Issuing CA,.*\n"
	                                           "map = name:{subject_principal.short_name}"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* Two UIDs in one DN: libsss_certmap takes the most specific (bob),
	 * never both, never a guess between them. */
	expect(&SETUP(.scenario = "twouid"), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "bob");
	outcome_free(&o);
	expect(&SETUP(.scenario = "twouid"), "alice", PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	/* Hostile subject: the CN template yields no valid account. */
	expect(&SETUP(.scenario = "hostile", .extra = "map = name:{subject_dn_component.cn}"),
	       NULL, PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
}

/* ---- mapping files ------------------------------------------------- */

static void
write_map(const char *lines)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/map.txt", work);
	write_file(path, lines, 0600);
}

/* A mapping file with one line made from the card's certificate by the
 * openssl CLI (not by our code): ACCOUNT KIND=$(COMMAND). */
static void
write_map_from_cert(const char *account, const char *kind, const char *command)
{
	shell("c='%s/pki/alice-fascn.crt'; printf '# generated\n%s %s=%%s\n' \"$(%s)\" > '%s/map.txt' "
	      "&& chmod 600 '%s/map.txt'", fx, account, kind, command, work, work);
}

static void
expect_map_file(const char *user, int want_rv, bool want_prompt, const char *msg, const char *extra)
{
	char conf[8400];
	struct outcome o;

	/* extra first: a "match" line must come before the "map" it restricts */
	snprintf(conf, sizeof(conf), "%s\nmap = file:%s/map.txt", extra ? extra : "", work);
	expect(&SETUP(.scenario = "fascn", .extra = conf), user, PIN, want_rv, want_prompt, msg, &o);
	if (want_rv == PAM_SUCCESS && user == NULL)
		assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
}

static void
test_map_file_matchers(void **state)
{
	(void)state;
	/* The card's UID (fascnuser) is no account: only the file maps it. */
	write_map_from_cert("alice", "sha256",
	                    "openssl x509 -in \"$c\" -noout -fingerprint -sha256 | cut -d= -f2");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	expect_map_file(NULL, PAM_SUCCESS, true, NULL, NULL);
	write_map_from_cert("alice", "subject",
	                    "openssl x509 -in \"$c\" -noout -subject -nameopt RFC2253 | sed s/^subject=//");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	write_map_from_cert("alice", "issuer+serial",
	                    "echo $(openssl x509 -in \"$c\" -noout -issuer -nameopt RFC2253 | "
	                    "sed s/^issuer=//)\\;$(openssl x509 -in \"$c\" -noout -serial | cut -d= -f2)");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	write_map_from_cert("alice", "ski",
	                    "openssl x509 -in \"$c\" -noout -ext subjectKeyIdentifier | tail -n 1 | tr -d ' '");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	write_map("alice fascn=D4E739DA739CED39CE739D836858210842108421C84210C3EB\n");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	expect_map_file(NULL, PAM_SUCCESS, true, NULL, NULL);
	write_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	/* another card's binding does not map this one */
	write_map("alice uuid=00000000-0000-0000-0000-000000000000\n");
	expect_map_file("alice", PAM_AUTH_ERR, false, "not mapped to alice", NULL);
}

static void
test_map_file_decisions(void **state)
{
	(void)state;
	/* two users bound to one card: a user name is needed, and decides */
	write_map("alice fascn=D4E739DA739CED39CE739D836858210842108421C84210C3EB\n"
	          "bob uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file(NULL, PAM_AUTH_ERR, false, "more than one account", NULL);
	expect_map_file("bob", PAM_SUCCESS, true, NULL, NULL);
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	/* an account the file names that NSS does not know maps nobody */
	write_map("nosuchuser uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file(NULL, PAM_AUTH_ERR, false, "not mapped", NULL);
	/* a match line that excludes the card skips the file */
	write_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file("alice", PAM_AUTH_ERR, false, "not mapped",
	                "match = <ISSUER>^CN=Some Other CA,.*");
	/* a file that lists nothing falls through to the next rule */
	write_map("# nobody yet\n");
	{
		struct outcome o;
		char conf[8400];
		snprintf(conf, sizeof(conf), "map = file:%s/map.txt\nmap = name:{subject_dn_component.uid}",
		         work);
		expect(&SETUP(.scenario = "p256", .extra = conf), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
		assert_string_equal(o.user_after, "alice");
		outcome_free(&o);
	}
	/* a syntax error refuses the whole file, with file and line */
	write_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\nbob sha265=00\n");
	{
		struct outcome o;
		char conf[8400];
		snprintf(conf, sizeof(conf), "map = file:%s/map.txt", work);
		expect(&SETUP(.scenario = "fascn", .extra = conf), "alice", PIN, PAM_SERVICE_ERR, false,
		       NULL, &o);
		must_log(&o, "map.txt:2: unknown matcher");
		outcome_free(&o);
		/* and an unsafe one too */
		shell("chmod 666 '%s/map.txt'", work);
		expect(&SETUP(.scenario = "fascn", .extra = conf), "alice", PIN, PAM_SERVICE_ERR, false,
		       NULL, &o);
		must_log(&o, "writable by group or others");
		outcome_free(&o);
	}
}

static void
test_hostile_subject_escaped(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "hostile"), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	/* the newline and ESC of the CN reach the log only escaped */
	assert_null(strstr(o.log, "\x1b"));
	assert_null(strstr(o.log, "\nroot"));
	assert_non_null(strstr(o.log, "\\x1b"));
	outcome_free(&o);
}

/* ---- ldap: rules against the test slapd (mkldap.sh) ---------------- */

static const char *ldap_uri, *ldaps_uri, *ldapi_uri, *ldap_base, *ldap_suffix, *ldap_ca,
	*ldap_other_ca, *ldap_bind_dn, *ldap_pw, *ldap_pw_nl, *ldap_root_dn, *ldap_root_pw;

#define WHOLE_CERT "(pivCertificate={cert!bin})"
#define AD_ISSUER_SERIAL "(altSecurityIdentities=X509:<I>{issuer_dn!ad}<SR>{serial_number!hex_ur})"
#define AD_SKI "(altSecurityIdentities=X509:<SKI>{subject_key_id!hex_u})"
/* OpenLDAP's userCertificate (certificateExactMatch) takes a GSER
 * assertion of serial and issuer; \7b and \7d are its braces, which an
 * sss-certmap template cannot hold literally. (The rule of the OpenLDAP
 * example in pam_piv.conf(5).) */
#define OPENLDAP_USERCERT "(&(objectClass=posixAccount)(userCertificate=\\7b serialNumber " \
	"{serial_number!dec}, issuer rdnSequence:\"{issuer_dn}\" \\7d))"

/* An ldap: rule against the directory at uri; more: further lines (a
 * later key wins, a later map line is the next rule). */
static void
expect_ldap(const char *scenario, const char *uri, const char *rule, const char *more,
            const char *user, int want_rv, bool want_prompt, const char *msg, struct outcome *o)
{
	char *extra = NULL;

	assert_true(asprintf(&extra, "ldap_uri = %s\nldap_base = %s\nmap = ldap:LDAPU1:%s\n%s", uri,
	                     ldap_base, rule, more ? more : "") > 0);
	expect(&SETUP(.scenario = scenario, .extra = extra), user, PIN, want_rv, want_prompt, msg, o);
	free(extra);
}

/* Change the directory as its rootdn; "-c" goes on past errors (undo). */
static void
ldap_modify(const char *ldif, bool ignore_errors)
{
	shell("printf '%%s\\n' '%s' | LDAPNOINIT=1 timeout 10 ldapmodify -x %s -H '%s' -D '%s' -y '%s'"
	      " >/dev/null 2>&1%s", ldif, ignore_errors ? "-c" : "", ldap_uri, ldap_root_dn,
	      ldap_root_pw, ignore_errors ? " || true" : "");
}

static char bob_on_alice[1024];

static int
ldap_setup(void **state)
{
	per_test_timeout(state);
	server_mode("normal");
	return 0;
}

/* Whatever a test did to the directory or to slapd is undone, even when
 * it failed half-way. */
static int
ldap_teardown(void **state)
{
	(void)state;
	shell("kill -CONT $(cat '%s/ldap/slapd.pid')", fx);
	snprintf(bob_on_alice, sizeof(bob_on_alice),
	         "dn: uid=alice,%s\nchangetype: modify\ndelete: pivCertificate\n"
	         "pivCertificate:< file://%s/pki/bob-p256.der", ldap_base, fx);
	ldap_modify(bob_on_alice, true);
	return 0;
}

static void
test_ldap_whole_certificate(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	/* the filter carries the DER escaped byte by byte (logged escaped again) */
	must_log(&o, "searches with filter '(pivCertificate=\\x5c30\\x5c82");
	must_log(&o, "maps to account 'alice (entry uid=alice,ou=People,dc=example,dc=test)'");
	outcome_free(&o);
	/* username-less */
	expect_ldap("p256", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* bob's card is bob's */
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_AUTH_ERR, false,
	            "not mapped to alice", &o);
	outcome_free(&o);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "bob");
	outcome_free(&o);
	/* a match line that excludes the card skips the rule, and the
	 * directory is not asked */
	{
		char extra[1000];
		snprintf(extra, sizeof(extra),
		         "ldap_uri = ldap://127.0.0.1:9\nldap_base = %s\n"
		         "match = <ISSUER>^CN=Some Other CA,.*\nmap = ldap:LDAPU1:" WHOLE_CERT, ldap_base);
		expect(&SETUP(.scenario = "p256", .extra = extra), "alice", PIN, PAM_AUTH_ERR, false,
		       "not mapped", &o);
		must_log(&o, "certificate does not match");
		outcome_free(&o);
	}
}

/* Active Directory's strong mappings: issuer and serial (the serial's
 * bytes reversed, as AD stores them), and the subject key identifier. */
static void
test_ldap_ad_strong_mappings(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("rsa2048", ldap_uri, AD_ISSUER_SERIAL, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	/* (the library escapes even the blanks: \20, logged as \x5c20) */
	must_log(&o, "(altSecurityIdentities=X509:<I>C=US,O=PIV\\x5c20Test,CN=PIV\\x5c20Test"
	             "\\x5c20Issuing\\x5c20CA<SR>");
	outcome_free(&o);
	expect_ldap("rsa2048", ldap_uri, AD_ISSUER_SERIAL, NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_ldap("p384", ldap_uri, AD_SKI, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* the same rules do not map a card the directory does not list */
	expect_ldap("p256", ldap_uri, AD_ISSUER_SERIAL, NULL, "alice", PAM_AUTH_ERR, false,
	            "not mapped", &o);
	outcome_free(&o);
	expect_ldap("rsa2048", ldap_uri, AD_SKI, NULL, "alice", PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
}

static void
test_ldap_openldap_usercertificate(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", ldap_uri, OPENLDAP_USERCERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* same issuer, another serial: nobody */
	expect_ldap("rsa2048", ldap_uri, OPENLDAP_USERCERT, NULL, "alice", PAM_AUTH_ERR, false,
	            "not mapped", &o);
	outcome_free(&o);
}

/* One card in two entries: a user name decides, without one the login
 * is refused; entries whose accounts do not exist map nobody. */
static void
test_ldap_ambiguous(void **state)
{
	struct outcome o;

	(void)state;
	snprintf(bob_on_alice, sizeof(bob_on_alice),
	         "dn: uid=alice,%s\nchangetype: modify\nadd: pivCertificate\n"
	         "pivCertificate:< file://%s/pki/bob-p256.der", ldap_base, fx);
	ldap_modify(bob_on_alice, false);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_AUTH_ERR, false,
	            "more than one account", &o);
	outcome_free(&o);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, "bob", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* carol's card is in the entries carol and carol2, neither an account */
	expect_ldap("carol", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_AUTH_ERR, false, "not mapped", &o);
	must_log(&o, "found an account that does not exist: 'carol2'");
	must_log(&o, "entries found, none with an existing account: '2'");
	outcome_free(&o);
}

/* "No entry" is an answer: the next rule has its turn. */
static void
test_ldap_no_entry(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("rsa3072", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_AUTH_ERR, false, "not mapped", &o);
	must_log(&o, "entries found, none with an existing account: '0'");
	outcome_free(&o);
	expect_ldap("rsa3072", ldap_uri, WHOLE_CERT, "map = name:{subject_dn_component.uid}", NULL,
	            PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* an entry without the account attribute maps nobody */
	expect_ldap("p256", ldap_uri, WHOLE_CERT, "ldap_user_attr = description", "alice", PAM_AUTH_ERR,
	            false, "not mapped", &o);
	must_log(&o, "entry uid=alice,ou=People,dc=example,dc=test has no account attribute");
	outcome_free(&o);
	/* a base that does not exist is the administrator's to fix */
	expect_ldap("p256", ldap_uri, WHOLE_CERT, "ldap_base = ou=Nowhere,dc=example,dc=test", "alice",
	            PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "No such object");
	outcome_free(&o);
}

/* A directory that cannot answer ends the mapping: the next rule, which
 * would map, is not reached. */
static void
test_ldap_down(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", "ldap://127.0.0.1:9", WHOLE_CERT, "map = name:{subject_dn_component.uid}",
	            "alice", PAM_AUTHINFO_UNAVAIL, false, "account directory unavailable", &o);
	must_log(&o, "Can't contact LDAP server");
	outcome_free(&o);
	expect_ldap("p256", "ldap://127.0.0.1:9", WHOLE_CERT, "card_only = yes", NULL,
	            PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	outcome_free(&o);
}

static void
expect_ldap_bounded(const char *uri, const char *more, const char *what)
{
	struct outcome o;
	char extra[1200];

	snprintf(extra, sizeof(extra), "net_timeout = 1\nldap_ca_file = %s\n%s", ldap_ca,
	         more ? more : "");
	expect_ldap("p256", uri, WHOLE_CERT, extra, "alice", PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	if (o.seconds > 2.0) {
		dump(&o);
		fail_msg("%s: took %.2fs, more than net_timeout + 1 s", what, o.seconds);
	}
	outcome_free(&o);
}

/* A server that accepts and never answers: at connect (plain, ldaps
 * handshake, StartTLS), and a slapd frozen after the connection. */
static void
test_ldap_hangs(void **state)
{
	char uri[100];

	(void)state;
	server_mode("hang");
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%s", http_port);
	expect_ldap_bounded(uri, NULL, "silent server");
	expect_ldap_bounded(uri, "ldap_starttls = yes", "silent server, StartTLS");
	snprintf(uri, sizeof(uri), "ldaps://127.0.0.1:%s", http_port);
	expect_ldap_bounded(uri, NULL, "silent server, ldaps handshake");
	server_mode("normal");
	shell("kill -STOP $(cat '%s/ldap/slapd.pid')", fx);
	expect_ldap_bounded(ldap_uri, NULL, "frozen slapd");
	{
		char extra[2000];
		snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s", ldap_bind_dn,
		         ldap_pw);
		expect_ldap_bounded(ldap_uri, extra, "frozen slapd, bind");
	}
	shell("kill -CONT $(cat '%s/ldap/slapd.pid')", fx);
}

/* TLS: ldaps:// and StartTLS with the directory's CA; another CA is
 * refused; the CA file is trust material. */
static void
test_ldap_tls(void **state)
{
	struct outcome o;
	char extra[1200];

	(void)state;
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s", ldap_ca);
	expect_ldap("p256", ldaps_uri, WHOLE_CERT, extra, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	{
		/* libldap's TLS library (GnuTLS) can load PKCS#11 modules through
		 * p11-kit; the PAM process must still have none mapped. */
		static const char *const modules[] = { "softhsm", "p11-kit-trust", "opensc-pkcs11",
		                                       "p11shim", "/pkcs11/" };
		assert_non_null(o.maps);
		assert_non_null(strstr(o.maps, "libldap")); /* the module's libraries are seen */
		for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
			if (strstr(o.maps, modules[i]) != NULL)
				fail_msg("the PAM process has a PKCS#11 module mapped: %s", modules[i]);
	}
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s\nldap_starttls = yes", ldap_ca);
	expect_ldap("p256", ldap_uri, WHOLE_CERT, extra, NULL, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s", ldap_other_ca);
	expect_ldap("p256", ldaps_uri, WHOLE_CERT, extra, "alice", PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	must_log(&o, "Can't contact LDAP server");
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s\nldap_starttls = yes", ldap_other_ca);
	expect_ldap("p256", ldap_uri, WHOLE_CERT, extra, "alice", PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	must_log(&o, "StartTLS: Connect error");
	outcome_free(&o);
	shell("cp '%s' '%s/ldap-ca.pem' && chmod 666 '%s/ldap-ca.pem'", ldap_ca, work, work);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s/ldap-ca.pem", work);
	expect_ldap("p256", ldaps_uri, WHOLE_CERT, extra, "alice", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "not writable by group or others");
	outcome_free(&o);
}

static void
test_ldap_ldapi(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", ldapi_uri, WHOLE_CERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
}

/* ou=Restricted shows only to the service account: a simple bind with
 * the password file, which must be root's alone. */
static void
test_ldap_bind(void **state)
{
	struct outcome o;
	char extra[3000];

	(void)state;
	snprintf(extra, sizeof(extra), "ldap_base = %s", ldap_suffix);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, NULL, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_base = %s\nldap_bind_dn = %s\nldap_bind_pw_file = %s",
	         ldap_suffix, ldap_bind_dn, ldap_pw);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "erin");
	outcome_free(&o);
	/* a final newline is not part of the password */
	snprintf(extra, sizeof(extra), "ldap_base = %s\nldap_bind_dn = %s\nldap_bind_pw_file = %s",
	         ldap_suffix, ldap_bind_dn, ldap_pw_nl);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* a wrong password is a configuration error, not "no entry" */
	shell("printf 'not-the-password' > '%s/bad.pw' && chmod 600 '%s/bad.pw'", work, work);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/bad.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "bind as ldap_bind_dn: Invalid credentials");
	outcome_free(&o);
	/* readable by others, a symbolic link, empty: refused before any bind */
	shell("cp '%s' '%s/open.pw' && chmod 644 '%s/open.pw' && ln -sf '%s' '%s/link.pw' && "
	      ": > '%s/empty.pw' && chmod 600 '%s/empty.pw'",
	      ldap_pw, work, work, ldap_pw, work, work, work);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/open.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "readable by group or others");
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/link.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "is a symbolic link");
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/empty.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "must hold one line, the password");
	outcome_free(&o);
}

/* Certificate values cannot change the filter's meaning: a CN that is a
 * filter fragment is escaped (unescaped it would match every entry, alice
 * among them), and names a C string reads differently (NUL, not UTF-8)
 * map nobody, by any rule. */
static void
test_ldap_hostile_values(void **state)
{
	static const char *const bad_upn[] = { "upn-nul", "upn-badutf8" };
	struct outcome o;

	(void)state;
	expect_ldap("inject", ldap_uri, "(&(objectClass=posixAccount)(cn={subject_dn_component.cn}))",
	            NULL, "alice", PAM_AUTH_ERR, false, "not mapped", &o);
	must_log(&o, "(cn=\\x5c2a\\x5c29\\x5c28uid=\\x5c2a))");
	must_log(&o, "entries found, none with an existing account: '0'");
	outcome_free(&o);
	expect_ldap("hostile", ldap_uri, "(&(objectClass=posixAccount)(cn={subject_dn_component.cn}))",
	            NULL, NULL, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	for (size_t i = 0; i < 2; i++) {
		expect_ldap(bad_upn[i], ldap_uri, "(uid={subject_principal.short_name})", NULL, "alice",
		            PAM_AUTH_ERR, false, "not mapped", &o);
		must_log(&o, "a name in the certificate holds a NUL byte or invalid UTF-8");
		outcome_free(&o);
		expect(&SETUP(.scenario = bad_upn[i], .extra = "map = name:{subject_principal.short_name}"),
		       NULL, PIN, PAM_AUTH_ERR, false, "not mapped", &o);
		must_log(&o, "NUL byte or invalid UTF-8");
		outcome_free(&o);
	}
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

/* ---- a misbehaving PKCS#11 module ---------------------------------- */

static void
check_hang(const char *call, bool want_prompt)
{
	char env[128];
	struct outcome o;

	snprintf(env, sizeof(env), "P11SHIM_HANG=%s", call);
	expect(&SETUP(.scenario = "p256", .use_shim = true, .shim_env = env,
	              .extra = "card_timeout = 2"),
	       "alice", PIN, PAM_AUTH_ERR, want_prompt, NULL, &o);
	if (o.seconds > 3.0) {
		dump(&o);
		fail_msg("hang in %s took %.2fs, more than card_timeout + 1 s", call, o.seconds);
	}
	assert_non_null(strstr(o.log, "did not answer within card_timeout"));
	outcome_free(&o);
}

static void test_hang_slotlist(void **s) { (void)s; check_hang("C_GetSlotList", false); }
static void test_hang_initialize(void **s) { (void)s; check_hang("C_Initialize", false); }
static void test_hang_login(void **s) { (void)s; check_hang("C_Login", true); }
static void test_hang_sign(void **s) { (void)s; check_hang("C_Sign", true); }

/* The helper gets a clean environment (nothing of the caller's), is not
 * dumpable, and runs with real ids equal to the effective ones. */
static void
test_helper_process(void **state)
{
	char env[4600], path[4096];
	struct outcome o;
	char *log;

	(void)state;
	snprintf(path, sizeof(path), "%s/shim.log", work);
	unlink(path);
	snprintf(env, sizeof(env), "P11SHIM_LOG=%s", path);
	setenv("OPENSC_CONF", "/tmp/attacker-controlled.conf", 1);
	setenv("PIV_TEST_CALLER_VARIABLE", "1", 1);
	expect(&SETUP(.scenario = "p256", .use_shim = true, .shim_env = env), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	unsetenv("OPENSC_CONF");
	unsetenv("PIV_TEST_CALLER_VARIABLE");
	outcome_free(&o);
	log = slurp(path);
	if (strstr(log, "process uid=0 euid=0 dumpable=0 environ=") == NULL ||
	    strstr(log, "SOFTHSM2_CONF,") == NULL || strstr(log, "PATH,") == NULL ||
	    strstr(log, "OPENSC_CONF") != NULL || strstr(log, "PIV_TEST_CALLER") != NULL ||
	    strstr(log, "LD_PRELOAD") != NULL || strstr(log, "PAM_WRAPPER") != NULL ||
	    strstr(log, PIN) != NULL) {
		fprintf(stderr, "%s", log);
		free(log);
		fail_msg("the helper process is not as it should be");
	}
	/* No PIN in the helper's environment or argv, and no core dumps
	 * (non-dumpable above, core size limit 0 here). */
	if (strstr(log, "process pin_in_environ=0 pin_in_argv=0 rlimit_core=0") == NULL) {
		fprintf(stderr, "%s", log);
		free(log);
		fail_msg("the PIN reached the helper's environment or argv, or cores are allowed");
	}
	/* The module logged in exactly once and logged out. */
	assert_non_null(strstr(log, "C_Login user=1 rv=0x0"));
	assert_non_null(strstr(log, "C_Logout rv=0x0"));
	free(log);
}

static void
test_module_crash(void **state)
{
	struct outcome o;

	(void)state;
	/* The crash is the point here: ASan must not turn it into a report. */
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_CRASH=C_Sign\nASAN_OPTIONS=handle_segv=0"),
	       "alice", PIN, PAM_AUTH_ERR, true, NULL, &o);
	assert_non_null(strstr(o.log, "card helper exited unexpectedly"));
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_CRASH=C_GetTokenInfo\nASAN_OPTIONS=handle_segv=0"),
	       "alice", PIN, PAM_AUTH_ERR, false, NULL, &o);
	outcome_free(&o);
}

static void
test_card_errors(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_FAIL=C_Sign:CKR_DEVICE_REMOVED"),
	       "alice", PIN, PAM_AUTH_ERR, true, NULL, &o);
	assert_non_null(strstr(o.log, "CKR_DEVICE_REMOVED"));
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .use_shim = true,
	              .shim_env = "P11SHIM_FAIL=C_OpenSession:CKR_TOKEN_NOT_PRESENT"),
	       "alice", PIN, PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	outcome_free(&o);
}

/* ---- every fault the test module can inject, in one table ------------ */

/* Each row: a fault of tests/p11shim.c (P11SHIM_* lines, @FX@ stands for
 * the fixtures directory), the user and PIN, the PAM code it must end in,
 * and whether the PIN may be asked. Every row also asserts: never
 * PAM_SUCCESS, never PAM_IGNORE, the PAM process alive, an answer within
 * card_timeout + 1 s (card_timeout is 3 s here), and no helper left. */
static void
test_fault_table(void **state)
{
	static const struct {
		const char *fault;
		const char *user, *pin;
		int rv;
		bool prompt;
	} rows[] = {
		/* the module will not start or lists nothing */
		{ "P11SHIM_FAIL=C_Initialize:CKR_GENERAL_ERROR", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_FAIL=C_GetSlotList:CKR_DEVICE_ERROR", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_FAIL=C_GetTokenInfo:CKR_DEVICE_REMOVED", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_FAIL=C_OpenSession:CKR_TOKEN_NOT_PRESENT", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_FAIL=C_FindObjectsInit:CKR_DEVICE_ERROR", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_FAIL=C_FindObjects:CKR_DEVICE_REMOVED", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_FAIL=C_GetAttributeValue:CKR_DEVICE_ERROR", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		/* lengths that lie */
		{ "P11SHIM_ATTR_LEN=huge", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_ATTR_LEN=unavailable", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_ATTR_LEN=zero", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_ATTR_LEN=grow", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_ATTR_LEN=shrink", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		{ "P11SHIM_ATTR_LEN=underfill", "alice", PIN, PAM_AUTH_ERR, false },
		/* certificates that lie */
		{ "P11SHIM_CERT=truncated", "alice", PIN, PAM_AUTH_ERR, false },
		{ "P11SHIM_CERT=garbage", "alice", PIN, PAM_AUTH_ERR, false },
		{ "P11SHIM_CERT=other:@FX@/pki/bob-p256.der", "alice", PIN, PAM_AUTH_ERR, false },
		{ "P11SHIM_CERT=other:@FX@/pki/bob-p256.der", "bob", PIN, PAM_AUTH_ERR, true },
		/* the PIN and the login */
		{ "P11SHIM_FAIL=C_Login:CKR_PIN_INCORRECT", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_FAIL=C_Login:CKR_DEVICE_REMOVED", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_FAIL=C_Login:CKR_OK", "alice", "000000", PAM_AUTH_ERR, true },
		{ "P11SHIM_LOGIN_RV=already_logged_in", "alice", "000000", PAM_AUTH_ERR, true },
		{ "P11SHIM_REMOVED_AFTER=C_Login", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_REMOVED_AFTER=C_SignInit", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_FAIL=C_Login:CKR_TOKEN_NOT_PRESENT", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_REMOVED_AFTER=C_Login\nP11SHIM_REMOVED_RV=CKR_TOKEN_NOT_PRESENT", "alice", PIN,
		  PAM_AUTH_ERR, true },
		{ "P11SHIM_REMOVED_AFTER=C_Login\nP11SHIM_REMOVED_RV=CKR_SESSION_HANDLE_INVALID", "alice",
		  PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_REMOVED_AFTER=C_GetTokenInfo", "alice", PIN, PAM_AUTHINFO_UNAVAIL, false },
		/* signatures that lie (pam_pkcs11 CVE-2025-24032, pam_p11 CVE-2019-16058) */
		{ "P11SHIM_FAIL=C_SignInit:CKR_KEY_FUNCTION_NOT_PERMITTED", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_FAIL=C_Sign:CKR_OK", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_FAIL=C_Sign:CKR_DEVICE_REMOVED", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_FAIL=C_Sign:CKR_TOKEN_NOT_PRESENT", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_SIG=short", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_SIG=long", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_SIG=zeros", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_SIG=other", "alice", PIN, PAM_AUTH_ERR, true },
		/* hangs and crashes */
		{ "P11SHIM_HANG=C_GetSlotList", "alice", PIN, PAM_AUTH_ERR, false },
		{ "P11SHIM_HANG=C_GetAttributeValue", "alice", PIN, PAM_AUTH_ERR, false },
		{ "P11SHIM_HANG=C_Login", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_HANG=C_Sign", "alice", PIN, PAM_AUTH_ERR, true },
		/* (the crash is the point: ASan must not turn it into a report) */
		{ "P11SHIM_CRASH=C_FindObjects\nASAN_OPTIONS=handle_segv=0", "alice", PIN, PAM_AUTH_ERR,
		  false },
		{ "P11SHIM_CRASH=C_Sign\nASAN_OPTIONS=handle_segv=0", "alice", PIN, PAM_AUTH_ERR, true },
		/* many slots, many objects: the real card still counts */
		{ "P11SHIM_SLOTS=64\nP11SHIM_FAIL=C_Sign:CKR_FUNCTION_FAILED", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_OBJECTS=500\nP11SHIM_FAIL=C_Sign:CKR_FUNCTION_FAILED", "alice", PIN, PAM_AUTH_ERR, true },
		{ "P11SHIM_SLOTS=64", "alice", "000000", PAM_AUTH_ERR, true },
	};
	struct outcome o;
	int helpers_before, bad = 0;

	(void)state;
	check_helper_counter();
	helpers_before = count_helpers();
	if (helpers_before > 0) /* whose, and how old: for the record */
		shell("ps -o pid,ppid,etimes,stat,args -C pam_piv_helper >&2 || true");
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		char fault[4400];
		const char *at = strstr(rows[i].fault, "@FX@");
		if (at != NULL)
			snprintf(fault, sizeof(fault), "%.*s%s%s", (int)(at - rows[i].fault), rows[i].fault,
			         fx, at + 4);
		else
			snprintf(fault, sizeof(fault), "%s", rows[i].fault);
		configure(&SETUP(.scenario = "p256", .use_shim = true, .shim_env = fault,
		                 .extra = "card_timeout = 3"));
		run("piv", rows[i].user, rows[i].pin, 0, &o);
		if (o.rv != rows[i].rv || o.rv == PAM_SUCCESS || o.rv == PAM_IGNORE ||
		    (!rows[i].prompt && o.conv.prompts > 0) || o.seconds > 3.0 + 1.0 ||
		    count_helpers_settled(helpers_before) > helpers_before) {
			/* every row is reported, then the test fails */
			dump(&o);
			print_error("fault '%s' (user %s): rv %d (want %d), %d prompts (allowed: %s), "
			            "%.2f s\n", fault, rows[i].user, o.rv, rows[i].rv, o.conv.prompts,
			            rows[i].prompt ? "yes" : "no", o.seconds);
			bad++;
		}
		outcome_free(&o);
	}
	assert_int_equal(bad, 0);
	/* and the same module without faults logs in: the rows fail because
	 * of their fault */
	configure(&SETUP(.scenario = "p256", .use_shim = true, .shim_env = "P11SHIM_SLOTS=64\n"
	                 "P11SHIM_OBJECTS=500", .extra = "card_timeout = 3"));
	run("piv", "alice", PIN, 0, &o);
	if (o.rv != PAM_SUCCESS) {
		dump(&o);
		fail_msg("64 extra slots and 500 extra objects: rv %d", o.rv);
	}
	outcome_free(&o);
}

/* ---- revocation with CRLs served by tests/httpd on 127.0.0.1 ------- */


/* Each test starts with the good CRLs served, a working server and an
 * empty cache of its own. */
static char cache_dir[4096];

static int
revocation_setup(void **state)
{
	static int n;

	per_test_timeout(state);
	serve("inter.crl", "inter.crl");
	serve("root.crl", "root.crl");
	serve("inter2.crl", "inter2.crl");
	server_mode("normal");
	snprintf(cache_dir, sizeof(cache_dir), "%s/cache-%d", work, ++n);
	shell("rm -rf '%s'", cache_dir);
	return 0;
}

static void
expect_crl(const char *scenario, const char *more, const char *user, int want_rv,
           bool want_prompt, const char *msg, struct outcome *out)
{
	char *extra = NULL;

	assert_true(asprintf(&extra, "revocation = crl\ncache_dir = %s\n%s", cache_dir,
	                     more ? more : "") > 0);
	expect(&SETUP(.scenario = scenario, .extra = extra), user, PIN, want_rv, want_prompt, msg,
	       out);
	free(extra);
}

static void
test_crl_fetched_and_cached(void **state)
{
	struct outcome o;
	int before, after_first;

	(void)state;
	before = requests();
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	after_first = requests();
	assert_int_equal(after_first - before, 2); /* the leaf's and the issuing CA's CRL */
	/* The cache answers now, even with the server broken. */
	server_mode("500");
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_crl("revoked", NULL, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	assert_non_null(strstr(o.log, "result=cert-revoked"));
	outcome_free(&o);
	assert_int_equal(requests(), after_first);
}

static void
test_crl_revoked(void **state)
{
	struct outcome o;

	(void)state;
	expect_crl("revoked", NULL, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
	/* revoked is final, revocation_fail = open or not */
	expect_crl("revoked", "revocation_fail = open", "alice", PAM_AUTH_ERR, false,
	           "has been revoked", &o);
	outcome_free(&o);
}

static void
test_crl_intermediate_revoked(void **state)
{
	struct outcome o;

	(void)state;
	expect_crl("inter2", NULL, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	assert_non_null(strstr(o.log, "issuing CA"));
	outcome_free(&o);
}

static void
test_crl_local(void **state)
{
	char more[8400], dir[4200];
	struct outcome o;

	(void)state;
	server_mode("500"); /* nothing comes from the network here */
	snprintf(dir, sizeof(dir), "%s/crl.d", work);
	shell("rm -rf '%s' && mkdir '%s' && cp '%s/pki/crl/inter.crl' '%s/pki/crl/root.crl.pem' "
	      "'%s/pki/crl/garbage.crl' '%s/pki/crl/inter2.crl' '%s/'", dir, dir, fx, fx, fx, fx, dir);
	snprintf(more, sizeof(more), "crl_fetch = no\ncrl_dir = %s", dir);
	expect_crl("p256", more, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
	/* crl_file alone covers the leaf but not the issuing CA: closed */
	snprintf(more, sizeof(more), "crl_fetch = no\ncrl_file = %s/pki/crl/inter.crl.pem", fx);
	expect_crl("p256", more, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	outcome_free(&o);
	expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
}

static void
test_crl_server_down(void **state)
{
	struct outcome o;

	(void)state;
	server_mode("500");
	expect_crl("p256", NULL, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	outcome_free(&o);
	expect_crl("p256", "revocation_fail = open", "alice", PAM_SUCCESS, true, NULL, &o);
	assert_non_null(strstr(o.log, "allowed by revocation_fail = open"));
	outcome_free(&o);
}

static void
test_crl_server_hangs(void **state)
{
	struct outcome o;

	(void)state;
	server_mode("hang");
	expect_crl("p256", "net_timeout = 1", "alice", PAM_AUTH_ERR, false,
	           "revocation status unavailable", &o);
	if (o.seconds > 2.0) {
		dump(&o);
		fail_msg("a hanging CRL server took %.2fs, more than net_timeout + 1 s", o.seconds);
	}
	outcome_free(&o);
	/* an endless answer is cut by the same bound */
	server_mode("huge");
	expect_crl("p256", "net_timeout = 1", "alice", PAM_AUTH_ERR, false,
	           "revocation status unavailable", &o);
	assert_true(o.seconds < 2.0);
	outcome_free(&o);
}

static void
check_bad_crl(const char *served, const char *log_needle)
{
	struct outcome o;

	serve("inter.crl", served);
	expect_crl("revoked", NULL, "alice", PAM_AUTH_ERR, false, "revocation status unavailable",
	           &o);
	if (log_needle != NULL && strstr(o.log, log_needle) == NULL) {
		dump(&o);
		fail_msg("%s: missing '%s' in the log", served, log_needle);
	}
	outcome_free(&o);
}

static void
test_crl_bad_answers(void **state)
{
	(void)state;
	/* None of these may pass for "not revoked": the revoked card stays
	 * out, with "unavailable" rather than "revoked". */
	check_bad_crl("inter-expired.crl", "expired");
	check_bad_crl("inter-future.crl", "not yet valid");
	check_bad_crl("inter-by-other.crl", "another issuer");
	check_bad_crl("inter-forged.crl", "does not verify");
	check_bad_crl("inter-badsig.crl", "does not verify");
	check_bad_crl("inter-delta.crl", "delta");
	check_bad_crl("inter-critical.crl", "unknown critical");
	check_bad_crl("garbage.crl", NULL);
	check_bad_crl("truncated.crl", NULL);
	server_mode("garbage");
	check_bad_crl("inter.crl", NULL);
	server_mode("truncate");
	check_bad_crl("inter.crl", NULL);
}

static void
test_crl_refetched_when_stale(void **state)
{
	struct outcome o;
	int before;

	(void)state;
	/* The cache holds an expired CRL: the next login fetches again. */
	serve("inter.crl", "inter-expired.crl");
	expect_crl("p256", NULL, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	outcome_free(&o);
	serve("inter.crl", "inter.crl");
	before = requests();
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	assert_true(requests() > before);
}

static void
test_crl_cache_damaged(void **state)
{
	struct outcome o;

	(void)state;
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	server_mode("500");
	/* truncate every cache file: indexes are rebuilt from the cached
	 * CRLs, damaged CRLs refetched (and the server is down: closed) */
	shell("for f in '%s'/crlidx-*; do head -c 50 \"$f\" > \"$f.t\" && mv \"$f.t\" \"$f\"; done",
	      cache_dir);
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_crl("revoked", NULL, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
	shell("for f in '%s'/crl-*.crl; do echo garbage > \"$f\"; done", cache_dir);
	expect_crl("p256", NULL, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	outcome_free(&o);
}

/* The scope of a CRL (issue 14.3): a CRL whose issuingDistributionPoint
 * names another distribution point does not answer for the card. */
static void
test_crl_scope(void **state)
{
	struct outcome o;

	(void)state;
	/* served at the card's distribution point, but partA's CRL */
	serve("inter.crl", "inter-idp-other.crl");
	expect_crl("p256", NULL, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	must_log(&o, "does not cover the certificate: its issuingDistributionPoint names none");
	outcome_free(&o);
	/* the CRL of the card's own distribution point (fetched again: the
	 * cached one answers nothing) */
	serve("inter.crl", "inter-idp-own.crl");
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_crl("revoked", NULL, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
}

/* No rollback (issue 14.3): a CRL older than one already used for the
 * issuer is not used, even while it is current. */
static void
test_crl_rollback(void **state)
{
	char more[8400], dir[4200];
	struct outcome o;

	(void)state;
	server_mode("500");
	snprintf(dir, sizeof(dir), "%s/crl.r", work);
	shell("rm -rf '%s' && mkdir '%s' && cp '%s/pki/crl/inter.crl' '%s/pki/crl/root.crl' '%s/'",
	      dir, dir, fx, fx, dir);
	snprintf(more, sizeof(more), "crl_fetch = no\ncrl_dir = %s", dir);
	expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
	/* CRL 01, from before alice-revoked was revoked, in place of 02 */
	shell("cp '%s/pki/crl/inter-old.crl' '%s/inter.crl.new' && mv '%s/inter.crl.new' '%s/inter.crl'",
	      fx, dir, dir, dir);
	expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	must_log(&o, "CRL number 01 is older than CRL number 02 already used");
	outcome_free(&o);
}

/* Delta CRLs (issue 14.3): a complete CRL that announces delta CRLs
 * answers with its delta, fetched from its Freshest CRL URL. */
static void
test_crl_delta(void **state)
{
	struct outcome o;
	int before;

	(void)state;
	serve("inter.crl", "inter-base-fresh.crl");
	serve("inter-delta-fresh.crl", "inter-delta-fresh.crl");
	/* the complete CRL does not list the card; its delta does */
	expect_crl("revoked", NULL, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	must_log(&o, "delta CRL fetched from http://127.0.0.1:");
	outcome_free(&o);
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "with its delta CRL cached delta CRL from");
	outcome_free(&o);
	/* both cached now: nothing is fetched while they are current */
	before = requests();
	expect_crl("p256", NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	assert_int_equal(requests(), before);
	/* no delta to be had: the complete CRL alone is incomplete */
	revocation_setup(state);
	serve("inter.crl", "inter-base-fresh.crl");
	shell("rm -f '%s/inter-delta-fresh.crl'", www);
	expect_crl("p256", NULL, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	must_log(&o, "announces delta CRLs (Freshest CRL) and no current delta CRL");
	outcome_free(&o);
}

/* ---- CRLs indexed off the login (issue 10) ----------------------------- */

/* A builder that takes its time: SECONDS, then the real one. */
static void
slow_builder(const char *path, int seconds)
{
	char text[4400];

	snprintf(text, sizeof(text), "#!/bin/sh\nsleep %d\nexec '%s' \"$@\"\n", seconds, crl_builder);
	write_file(path, text, 0755);
}

static int
count_lines_with(const char *path, const char *needle)
{
	char *text = slurp(path);
	int n = 0;

	for (char *p = text; (p = strstr(p, needle)) != NULL; p++)
		n++;
	free(text);
	return n;
}

/* The login waits for the builder at most net_timeout: a CRL that takes
 * longer gives no answer for now (fails closed in time), the builder
 * goes on, and the next login uses its index; a login killed meanwhile
 * loses nothing; a new version of the CRL that is not indexed yet leaves
 * the previous one's index to serve while it is current. */
static void
test_crl_index_off_login(void **state)
{
	char more[9000], dir[4200], builder[4200], log_path[4300];
	struct outcome o;
	pid_t pid;
	int status;

	(void)state;
	server_mode("500");
	snprintf(dir, sizeof(dir), "%s/crl.slow", work);
	snprintf(builder, sizeof(builder), "%s/slow-builder", work);
	snprintf(log_path, sizeof(log_path), "%s/crl-builds.log", cache_dir);
	slow_builder(builder, 2);
	shell("rm -rf '%s' && mkdir '%s' && cp '%s/pki/crl/inter.crl' '%s/pki/crl/root.crl' '%s/'",
	      dir, dir, fx, fx, dir);
	snprintf(more, sizeof(more), "crl_fetch = no\ncrl_dir = %s\nnet_timeout = 1\ncrl_builder = %s",
	         dir, builder);
	/* cold: not ready within net_timeout, no answer, in time */
	expect_crl("p256", more, "alice", PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	must_log(&o, "CRL is being indexed (not ready within net_timeout)");
	if (o.seconds > 2.0) {
		dump(&o);
		fail_msg("a login waited %.2f s for the builder, more than net_timeout + 1 s", o.seconds);
	}
	outcome_free(&o);
	/* the builders went on: the next login finds the indexes */
	shell("sleep 3");
	expect_crl("p256", more, "alice", PAM_SUCCESS, true, NULL, &o);
	assert_null(strstr(o.log, "the builder indexes it"));
	outcome_free(&o);
	assert_int_equal(count_lines_with(log_path, "/crl.slow/inter.crl indexed"), 1);
	/* a login killed while the builder works on a new version */
	shell("sleep 1 && cp '%s/pki/crl/inter-empty.crl' '%s/inter.crl.new' && "
	      "mv '%s/inter.crl.new' '%s/inter.crl'", fx, dir, dir, dir);
	configure(&SETUP(.scenario = "p256", .extra = NULL)); /* replaced below */
	{
		char *extra = NULL;
		assert_true(asprintf(&extra, "revocation = crl\ncache_dir = %s\n%s", cache_dir, more) > 0);
		configure(&SETUP(.scenario = "p256", .extra = extra));
		free(extra);
	}
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		run("piv", "alice", PIN, 0, &o);
		_exit(0);
	}
	shell("sleep 0.4");
	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* meanwhile, the previous content's index serves (it is current) */
	expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
	must_log(&o, "the index of its previous content serves meanwhile");
	outcome_free(&o);
	shell("sleep 3");
	/* the new version, indexed by the builder the killed login started */
	expect_crl("revoked", more, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	assert_int_equal(count_lines_with(log_path, "/crl.slow/inter.crl indexed"), 2);
}

/* Cold logins at once: one builder per CRL, the others wait for it. */
static void
test_crl_index_concurrent(void **state)
{
	enum { N = 8 };
	char more[9000], dir[4200], builder[4200], log_path[4300];
	pid_t pids[N];
	int ok = 0;

	(void)state;
	server_mode("500");
	snprintf(dir, sizeof(dir), "%s/crl.conc", work);
	snprintf(builder, sizeof(builder), "%s/slow-builder", work);
	snprintf(log_path, sizeof(log_path), "%s/crl-builds.log", cache_dir);
	slow_builder(builder, 1);
	shell("rm -rf '%s' && mkdir '%s' && cp '%s/pki/crl/inter.crl' '%s/pki/crl/root.crl' '%s/'",
	      dir, dir, fx, fx, dir);
	{
		char *extra = NULL;
		snprintf(more, sizeof(more), "crl_fetch = no\ncrl_dir = %s\nnet_timeout = 5\n"
		         "crl_builder = %s", dir, builder);
		assert_true(asprintf(&extra, "revocation = crl\ncache_dir = %s\n%s", cache_dir, more) > 0);
		configure(&SETUP(.scenario = "p256", .extra = extra));
		free(extra);
	}
	fflush(NULL);
	for (int i = 0; i < N; i++) {
		pids[i] = fork();
		assert_true(pids[i] >= 0);
		if (pids[i] == 0) {
			/* no PIN (one card cannot log in eight at once): every
			 * step before it must pass, revocation included */
			struct outcome o;
			run("piv", "alice", NULL, 0, &o);
			_exit(strstr(o.log, "certificate 0: success: mapped to 'alice'") != NULL ? 0 : 1);
		}
	}
	for (int i = 0; i < N; i++) {
		int status = 0;
		assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
		ok += WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	assert_int_equal(ok, N);
	assert_int_equal(count_lines_with(log_path, "/crl.conc/inter.crl indexed"), 1);
	assert_int_equal(count_lines_with(log_path, "/crl.conc/root.crl indexed"), 1);
}

/* The responses of the test server with this status since mark. */
static int
statuses(const char *code, int mark)
{
	char path[4096];
	char *text;
	int n = 0, line = 0;

	snprintf(path, sizeof(path), "%s/.statuses", www);
	text = slurp(path);
	for (char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p)) {
		if (line++ >= mark && strncmp(p, code, 3) == 0)
			n++;
	}
	free(text);
	return n;
}

static int
status_mark(void)
{
	return server_log_lines(".statuses");
}

/* pam-piv-refresh ARGS at fake time OFFSET ("" for now); its output in
 * *out, its exit status returned. */
static int
refresh(const char *offset, const char *args, char **out)
{
	char cmd[9000], path[4200];
	int status;

	snprintf(path, sizeof(path), "%s/refresh.out", work);
	snprintf(cmd, sizeof(cmd), "%s%s%stimeout 120 '%s' --config '%s/current.conf' --verbose %s "
	         "> '%s' 2>&1", *offset ? "faketime -f '" : "", offset, *offset ? "' " : "",
	         refresh_tool, work, args, path);
	status = system(cmd);
	*out = slurp(path);
	assert_true(WIFEXITED(status));
	return WEXITSTATUS(status);
}

/* The refresher (issue 10 C): it downloads each CRL once a validity
 * window, ahead of the logins, which then make no request at all; it asks
 * conditionally, and a CDP that is down leaves the cache in place. */
static void
test_refresher(void **state)
{
	char more[600], *out;
	int before, mark;

	(void)state;
	/* published an hour ago, as CDPs' files are */
	shell("touch -d '1 hour ago' '%s/inter.crl' '%s/root.crl'", www, www);
	snprintf(more, sizeof(more), "crl_url = http://127.0.0.1:%s/inter.crl", http_port);
	{
		char *extra = NULL;
		assert_true(asprintf(&extra, "revocation = crl\ncache_dir = %s\n%s", cache_dir, more) > 0);
		configure(&SETUP(.scenario = "p256", .extra = extra));
		free(extra);
	}
	before = requests();
	mark = status_mark();
	assert_int_equal(refresh("", "", &out), 0);
	check_must(out, "/inter.crl: downloaded: 1 entries");
	check_must(out, "/root.crl: downloaded: 1 entries"); /* the intermediate's CDP */
	check_must(out, "2 downloaded, 0 not modified, 0 failed");
	free(out);
	assert_int_equal(requests() - before, 2);
	assert_int_equal(statuses("200", mark), 2);
	/* a hundred logins: not one request, and no index built */
	before = requests();
	for (int i = 0; i < 100; i++) {
		struct outcome o;
		expect_crl("p256", more, "alice", PAM_SUCCESS, true, NULL, &o);
		assert_null(strstr(o.log, "the builder indexes it"));
		outcome_free(&o);
	}
	{
		struct outcome o;
		expect_crl("revoked", more, "alice", PAM_AUTH_ERR, false, "has been revoked", &o);
		outcome_free(&o);
	}
	assert_int_equal(requests(), before);
	/* again at once: nothing is due */
	assert_int_equal(refresh("", "", &out), 0);
	check_must(out, "0 downloaded, 0 not modified, 0 failed, 2 not due");
	free(out);
	assert_int_equal(requests(), before);
	/* near the end of the window's seventh eighth (of 7 days and an
	 * hour): due on any host, and asked conditionally: nothing changed */
	mark = status_mark();
	assert_int_equal(refresh("+146.9h", "", &out), 0);
	check_must(out, "0 downloaded, 2 not modified, 0 failed");
	free(out);
	assert_int_equal(statuses("304", mark), 2);
	/* a new CRL at the server: downloaded (and the other not asked again:
	 * no news an hour ago) */
	shell("sleep 1");
	serve("inter.crl", "inter-empty.crl");
	mark = status_mark();
	assert_int_equal(refresh("+151h", "", &out), 0);
	check_must(out, "/inter.crl: downloaded: 0 entries");
	free(out);
	assert_int_equal(statuses("200", mark), 1);
	assert_int_equal(statuses("304", mark), 1);
	/* the CDP down near the end of the cached CRL's window: the cache
	 * stays, the failure is said, with when the CRL runs out */
	server_mode("500");
	before = requests();
	assert_int_equal(refresh("+160h", "--force", &out), 1);
	check_must(out, "failed, 0 not due");
	check_must(out, "/root.crl: the cached CRL expires in ");
	check_must(out, "without a successor");
	check_must(out, "(attempt 1, next in 300 s)");
	free(out);
	assert_int_equal(requests() - before, 2);
	/* tried again only after the back-off */
	before = requests();
	assert_int_equal(refresh("+160h", "", &out), 1);
	check_must(out, "not due; next attempt in ");
	free(out);
	assert_int_equal(requests(), before);
	{
		struct outcome o;
		server_mode("normal");
		expect_crl("p256", more, "alice", PAM_SUCCESS, true, NULL, &o);
		outcome_free(&o);
	}
}

/* revocation_fail = open still honours revocations (issue 14.6): a card
 * listed in the only CRL there is, an expired one, is revoked. */
static void
test_crl_expired_listing(void **state)
{
	struct outcome o;

	(void)state;
	serve("inter.crl", "inter-expired-listing.crl");
	expect_crl("revoked", "revocation_fail = open", "alice", PAM_AUTH_ERR, false,
	           "has been revoked", &o);
	must_log(&o, "listed in a CRL that cannot give a complete answer (CRL has expired");
	outcome_free(&o);
	/* a card it does not list: unknown, and open lets it in */
	expect_crl("p256", "revocation_fail = open", "alice", PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "allowed by revocation_fail = open");
	outcome_free(&o);
}

/* ---- revocation with OCSP: openssl ocsp responders on 127.0.0.1 ------ */


static void
expect_ocsp(const char *scenario, const char *methods, const char *more, int want_rv,
            bool want_prompt, const char *msg, struct outcome *out)
{
	char *extra = NULL;

	assert_true(asprintf(&extra, "revocation = %s\ncache_dir = %s\n%s", methods, cache_dir,
	                     more ? more : "") > 0);
	expect(&SETUP(.scenario = scenario, .extra = extra), "alice", PIN, want_rv, want_prompt, msg,
	       out);
	free(extra);
}

static void
test_ocsp_good_and_revoked(void **state)
{
	struct outcome o;

	(void)state;
	/* The leaf's status from its AIA responder (delegated signer); the
	 * issuing CA has no responder and falls back to its CRL. */
	expect_ocsp("p256", "ocsp,crl", NULL, PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "revocation ocsp for /C=US/O=PIV Test/OU=People/UID=alice/CN=Alice Example: "
	             "good: OCSP: good");
	must_log(&o, "revocation crl for /C=US/O=PIV Test/CN=PIV Test Issuing CA: good");
	outcome_free(&o);
	expect_ocsp("revoked", "ocsp,crl", NULL, PAM_AUTH_ERR, false, "has been revoked", &o);
	must_log(&o, "OCSP: revoked (keyCompromise)");
	outcome_free(&o);
	/* the CA signing its own answers */
	expect_ocsp("p256", "ocsp,crl", "ocsp_url = http://127.0.0.1:8889/", PAM_SUCCESS, true,
	            NULL, &o);
	must_log(&o, "good: OCSP: good");
	outcome_free(&o);
}

static void
test_ocsp_cached(void **state)
{
	struct outcome o;

	(void)state;
	expect_ocsp("p256", "ocsp,crl", NULL, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_ocsp("revoked", "ocsp,crl", NULL, PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
	/* Now nothing answers: a dead responder and a broken CRL server. The
	 * answers come from the cache until their nextUpdate. */
	server_mode("500");
	expect_ocsp("p256", "ocsp,crl", "ocsp_url = http://127.0.0.1:9/", PAM_SUCCESS, true, NULL,
	            &o);
	must_log(&o, "OCSP answer from the cache: OCSP: good");
	outcome_free(&o);
	expect_ocsp("revoked", "ocsp,crl", "ocsp_url = http://127.0.0.1:9/", PAM_AUTH_ERR, false,
	            "has been revoked", &o);
	must_log(&o, "OCSP answer from the cache: OCSP: revoked");
	outcome_free(&o);
	/* a damaged cached answer is not used, and the responder is asked */
	shell("for f in '%s'/ocsp-*.der; do echo garbage > \"$f\"; done", cache_dir);
	expect_ocsp("p256", "ocsp,crl", NULL, PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "good: OCSP: good");
	outcome_free(&o);
}

static void
test_ocsp_responder_down(void **state)
{
	struct outcome o;
	const char *dead = "ocsp_url = http://127.0.0.1:9/";

	(void)state;
	/* ocsp,crl: the CRL answers instead */
	expect_ocsp("p256", "ocsp,crl", dead, PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "OCSP request to http://127.0.0.1:9/ failed");
	outcome_free(&o);
	expect_ocsp("revoked", "ocsp,crl", dead, PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
	/* OCSP alone: closed denies, open allows (and says so) */
	expect_ocsp("p256", "ocsp", dead, PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	outcome_free(&o);
	expect_ocsp("p256", "ocsp", "ocsp_url = http://127.0.0.1:9/\nrevocation_fail = open",
	            PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "allowed by revocation_fail = open");
	outcome_free(&o);
}

static void
test_ocsp_responder_hangs(void **state)
{
	char more[300];
	struct outcome o;

	(void)state;
	server_mode("hang");
	snprintf(more, sizeof(more), "ocsp_url = http://127.0.0.1:%s/x.ocsp\nnet_timeout = 1",
	         http_port);
	expect_ocsp("p256", "ocsp", more, PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	if (o.seconds > 2.0) {
		dump(&o);
		fail_msg("a silent responder took %.2fs, more than net_timeout + 1 s", o.seconds);
	}
	outcome_free(&o);
}

/* where: a full URL, or a path on the test HTTP server */
static void
check_bad_ocsp(const char *where, const char *needle)
{
	char more[400];
	struct outcome o;

	if (strncmp(where, "http://", 7) == 0)
		snprintf(more, sizeof(more), "ocsp_url = %s", where);
	else
		snprintf(more, sizeof(more), "ocsp_url = http://127.0.0.1:%s/%s", http_port, where);
	/* OCSP alone: the bad answer must not pass for "good"... */
	expect_ocsp("p256", "ocsp", more, PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	must_log(&o, needle);
	outcome_free(&o);
	/* ...and with ocsp,crl the CRL decides. */
	expect_ocsp("revoked", "ocsp,crl", more, PAM_AUTH_ERR, false, "has been revoked", &o);
	outcome_free(&o);
}

static void
test_ocsp_bad_answers(void **state)
{
	(void)state;
	check_bad_ocsp("http://127.0.0.1:8890/", "OCSP response not signed by the CA or its responder");
	check_bad_ocsp("replay.ocsp", "OCSP nonce does not match the request");
	check_bad_ocsp("stale.ocsp", "OCSP response is stale");
	/* a CRL where an OCSP response should be (wrong content type) */
	check_bad_ocsp("inter.crl", "OCSP request to");
	/* well-formed DER that is no OCSP response, with the right type */
	shell("cp '%s/pki/crl/inter.crl' '%s/notocsp.ocsp'", fx, www);
	check_bad_ocsp("notocsp.ocsp", "not an OCSP response");
	server_mode("garbage");
	check_bad_ocsp("x.ocsp", "OCSP request to");
	server_mode("truncate");
	check_bad_ocsp("replay.ocsp", "OCSP request to");
}

/* what the log says of the leaf's OCSP answer */
#define ALICE_OCSP "revocation ocsp for /C=US/O=PIV Test/OU=People/UID=alice/CN=Alice Example: "

static void
expect_ocsp_served(const char *scenario, const char *file, const char *more, int want_rv,
                   const char *msg, const char *needle)
{
	char extra[600];
	struct outcome o;

	snprintf(extra, sizeof(extra), "ocsp_url = http://127.0.0.1:%s/%s\n%s", http_port, file,
	         more ? more : "");
	expect_ocsp(scenario, "ocsp,crl", extra, want_rv, want_rv == PAM_SUCCESS, msg, &o);
	must_log(&o, needle);
	outcome_free(&o);
}

/* Replayed answers: a pre-produced answer carries no nonce, so anybody on
 * the path can send it again; only its times limit how long. */
static void
test_ocsp_replay(void **state)
{
	(void)state;
	/* The review's case: the card was revoked, and an answer "good" from
	 * two years ago without nextUpdate is replayed. It is stale; the CRL
	 * decides, and the card is out. */
	expect_ocsp_served("revoked", "old-good-revoked.ocsp", NULL, PAM_AUTH_ERR, "has been revoked",
	                   "unknown: OCSP response is stale: no nextUpdate, and thisUpdate is");
	/* without nextUpdate an answer counts for ocsp_max_age (an hour by
	 * default) after its thisUpdate */
	expect_ocsp_served("p256", "nonext-now.ocsp", NULL, PAM_SUCCESS, NULL,
	                   ALICE_OCSP "good: OCSP: good");
	expect_ocsp_served("p256", "nonext-10min.ocsp", NULL, PAM_SUCCESS, NULL,
	                   ALICE_OCSP "good: OCSP: good");
	/* (made ten minutes before the tests began: older still by now) */
	expect_ocsp_served("p256", "nonext-10min.ocsp", "ocsp_max_age = 300", PAM_SUCCESS, NULL,
	                   "s old (ocsp_max_age = 300)");
	/* ocsp_require_nonce: an answer without the request's nonce does not
	 * count (here before the default accepts it, and caches it) ... */
	expect_ocsp_served("p256", "nononce.ocsp", "ocsp_require_nonce = yes", PAM_SUCCESS, NULL,
	                   ALICE_OCSP "unknown: OCSP response carries no nonce");
	expect_ocsp_served("p256", "nononce.ocsp", NULL, PAM_SUCCESS, NULL,
	                   ALICE_OCSP "good: OCSP: good");
	/* ... and a responder that answers the nonce does */
	{
		struct outcome o;
		expect_ocsp("p256", "ocsp,crl", "ocsp_require_nonce = yes\nocsp_url = http://127.0.0.1:8888/",
		            PAM_SUCCESS, true, NULL, &o);
		must_log(&o, ALICE_OCSP "good: OCSP: good");
		outcome_free(&o);
	}
}

/* revocation_fail = open still honours revocations (issue 14.6): an OCSP
 * answer "revoked" past its nextUpdate still revokes. */
static void
test_ocsp_stale_revoked(void **state)
{
	char more[600];
	struct outcome o;

	(void)state;
	snprintf(more, sizeof(more), "ocsp_url = http://127.0.0.1:%s/stale-revoked.ocsp\n"
	         "revocation_fail = open", http_port);
	expect_ocsp("revoked", "ocsp", more, PAM_AUTH_ERR, false, "has been revoked", &o);
	must_log(&o, "in an answer that is no longer current (a revocation stays)");
	outcome_free(&o);
}

/* Open file descriptors of this process (the directory's own included,
 * the same every time). */
static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The whole of a /proc file (NUL bytes kept) in buf; its length, or -1. */
static ssize_t
read_proc(const char *pid, const char *name, char *buf, size_t size)
{
	char path[300];
	ssize_t n, len = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/%s", pid, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (len < (ssize_t)size && (n = read(fd, buf + len, size - (size_t)len)) > 0)
		len += n;
	close(fd);
	return len;
}

/* Helpers of this run: processes started as pam_piv_helper whose
 * SOFTHSM2_CONF (every test configuration sets it) points into this run's
 * fixtures. Helpers of another run on the machine do not count. */
static int
count_helpers_now(void)
{
	char want[4300], buf[65536];
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	snprintf(want, sizeof(want), "SOFTHSM2_CONF=%s/", fx);
	while ((de = readdir(d)) != NULL) {
		ssize_t len;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		len = read_proc(de->d_name, "cmdline", buf, sizeof(buf) - 1);
		if (len <= 0 || strcmp(buf, "pam_piv_helper") != 0)
			continue;
		len = read_proc(de->d_name, "environ", buf, sizeof(buf) - 1);
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
			buf[len] = '\0';
			if (strncmp(buf + i, want, strlen(want)) == 0) {
				n++;
				break;
			}
		}
	}
	closedir(d);
	return n;
}

/* The counter sees a helper of this run, and only while it lives: a
 * counter that always said 0 would make every "no helper left" vacuous. */
static void
check_helper_counter(void)
{
	char env[4400];
	char *const envp[] = { env, NULL };
	int before = count_helpers_now(), status;
	pid_t pid;

	snprintf(env, sizeof(env), "SOFTHSM2_CONF=%s/tok/none/softhsm2.conf", fx);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execle("/bin/sleep", "pam_piv_helper", "30", (char *)NULL, envp);
		_exit(127);
	}
	for (int i = 0; i < 50 && count_helpers_now() == before; i++) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_int_equal(count_helpers_now(), before + 1);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(count_helpers_now(), before);
}

/* The helpers alive; a helper that was just killed and reaped may still be
 * tearing down (seconds, with ASan's shadow memory), so a count above the
 * expected one is looked at again for up to 3 s before it counts. */
static int
count_helpers_settled(int expected)
{
	int n = count_helpers_now();

	for (int i = 0; i < 30 && n > expected; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		n = count_helpers_now();
	}
	return n;
}

static int
count_helpers(void)
{
	return count_helpers_now();
}

/* A login in a forked child; the child's own descriptors are counted
 * before and after, so a descriptor the module leaks shows. */
static void
concurrent_child(const char *service)
{
	struct outcome o;
	int before, after;

	/* pam_wrapper gives each process its own copy of the service files in
	 * /tmp/pam.X, chosen with lstat and then mkdir: two processes starting
	 * together can pick the same directory, and the one that ends first
	 * leaves it to be removed as stale under the other, whose pam_start
	 * then finds no stack (a failure with no word from the module, seen
	 * once in CI). So the first pam_start of each child, which makes that
	 * choice, happens under a lock; the logins themselves run at once. */
	{
		char lock_path[4200];
		struct conv_log cl;
		struct pam_conv conv = { conv_fn, &cl };
		pam_handle_t *ph = NULL;
		int lk;

		memset(&cl, 0, sizeof(cl));
		snprintf(lock_path, sizeof(lock_path), "%s/pam_wrapper.lock", work);
		lk = open(lock_path, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
		if (lk < 0 || flock(lk, LOCK_EX) != 0)
			_exit(2);
		if (pam_start(service, "alice", &conv, &ph) == PAM_SUCCESS)
			pam_end(ph, PAM_SUCCESS);
		flock(lk, LOCK_UN);
		close(lk);
	}
	/* nss_wrapper keeps the passwd file open once read: not ours to count */
	(void)getpwnam("alice");
	before = count_fds();
	run(service, "alice", PIN, 0, &o);
	after = count_fds();
	{
		/* the login's time, for the figures (one short append each) */
		char path[4200], line[32];
		int fd, n = snprintf(line, sizeof(line), "%.3f\n", o.seconds);
		snprintf(path, sizeof(path), "%s/concurrent-times", work);
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
		if (fd >= 0) {
			(void)!write(fd, line, (size_t)n);
			close(fd);
		}
	}
	if (o.rv != PAM_SUCCESS)
		fprintf(stderr, "%s: %s after %.2f s; the module said:\n%s\n", service,
		        pam_strerror(NULL, o.rv), o.seconds, o.log ? o.log : "(nothing)");
	if (after != before) {
		DIR *d = opendir("/proc/self/fd");
		struct dirent *de;
		fprintf(stderr, "%s: %d descriptors before the login, %d after:\n", service, before, after);
		while (d != NULL && (de = readdir(d)) != NULL) {
			char link[300], target[300] = "";
			snprintf(link, sizeof(link), "/proc/self/fd/%s", de->d_name);
			if (de->d_name[0] != '.' && readlink(link, target, sizeof(target) - 1) > 0)
				fprintf(stderr, "  fd %s -> %s\n", de->d_name, target);
		}
		if (d != NULL)
			closedir(d);
	}
	_exit(o.rv == PAM_SUCCESS && after == before ? 0 : 1);
}

/* Many logins at once on a cold, shared cache: every one is right, and
 * the cache they wrote serves the next login with every server gone. Each
 * process has its own copy of the card: SoftHSM2's file store is not made
 * for several processes logging in to one token at once (a real card is
 * serialized by pcscd). While they run, the CRL is replaced on the server
 * and the OCSP responder they use is killed and started again. */
enum { N_CONCURRENT = 50 };

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* Median and maximum of the numbers in a file, one a line; their count. */
static int
file_stats(const char *path, double *median, double *max)
{
	double v[4 * N_CONCURRENT];
	int n = 0;
	FILE *f = fopen(path, "r");

	*median = *max = 0;
	while (f != NULL && n < (int)(sizeof(v) / sizeof(v[0])) && fscanf(f, "%lf", &v[n]) == 1)
		n++;
	if (f != NULL)
		fclose(f);
	if (n > 0) {
		qsort(v, (size_t)n, sizeof(v[0]), cmp_double);
		*median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
		*max = v[n - 1];
	}
	return n;
}

static void
test_concurrent_logins(void **state)
{
	pid_t pids[N_CONCURRENT];
	char *extra = NULL, path[4200], service[32];
	struct outcome o;
	int failures = 0, fds_before, helpers_before, helpers_after, n_times;
	double round_s[2], median, slowest;

	(void)state;
	/* a responder of the test's own, to restart at will */
	shell("cd '%s/pki' && (timeout 300 openssl ocsp -index ca/db/index.txt -CA ca/inter.crt "
	      "-port 8891 -rsigner ocsp-signer.crt -rkey ocsp-signer.key -ndays 1 "
	      "> '%s/ocsp-8891.log' 2>&1 & echo $! > '%s/ocsp-8891.pid'); i=0; "
	      "until openssl ocsp -issuer ca/inter.crt -cert alice-p256.crt "
	      "-url http://127.0.0.1:8891 -noverify >/dev/null 2>&1; do i=$((i+1)); "
	      "[ $i -lt 100 ] || exit 1; sleep 0.05; done", fx, work, work);
	assert_true(asprintf(&extra, "revocation = ocsp,crl\ncache_dir = %s\n"
	                     "ocsp_url = http://127.0.0.1:8891/\ncard_timeout = 120\n", cache_dir) > 0);
	for (int i = 0; i < N_CONCURRENT; i++) {
		char *copy = NULL;
		assert_true(asprintf(&copy, "%s/card-copy-%d", work, i) > 0);
		shell("rm -rf '%s' && cp -a '%s/tok/p256' '%s' && sed -i 's|%s/tok/p256|%s|' "
		      "'%s/softhsm2.conf'", copy, fx, copy, fx, copy, copy);
		configure(&SETUP(.scenario = "p256", .extra = extra));
		snprintf(path, sizeof(path), "%s/concurrent-%d.conf", work, i);
		shell("sed 's|SOFTHSM2_CONF=.*|SOFTHSM2_CONF=%s/softhsm2.conf|' '%s/current.conf' > '%s'"
		      " && chmod 600 '%s'", copy, work, path, path);
		free(copy);
	}
	fds_before = count_fds();
	helpers_before = count_helpers();
	/* Two rounds, each on a cold cache: the logins race to fetch, store
	 * and index the same CRLs and OCSP answers. */
	shell("rm -f '%s/concurrent-times'", work);
	for (int round = 0; round < 2; round++) {
		double t0;
		shell("rm -rf '%s'", cache_dir);
		fflush(NULL);
		t0 = now();
		for (int i = 0; i < N_CONCURRENT; i++) {
			pids[i] = fork();
			assert_true(pids[i] >= 0);
			if (pids[i] == 0) {
				snprintf(service, sizeof(service), "piv_c%d", i);
				concurrent_child(service);
			}
			if (i == N_CONCURRENT / 2) {
				/* mid-way: a new CRL on the server, and the responder
				 * gone and back */
				serve("inter.crl", "inter.crl");
				shell("kill $(cat '%s/ocsp-8891.pid'); cd '%s/pki' && (timeout 300 openssl "
				      "ocsp -index ca/db/index.txt -CA ca/inter.crt -port 8891 "
				      "-rsigner ocsp-signer.crt -rkey ocsp-signer.key -ndays 1 "
				      ">> '%s/ocsp-8891.log' 2>&1 & echo $! > '%s/ocsp-8891.pid')",
				      work, fx, work, work);
			}
		}
		for (int i = 0; i < N_CONCURRENT; i++) {
			int status = 0;
			assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
			if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) {
				failures++;
				fprintf(stderr, "round %d login %d failed (status 0x%x)\n", round, i, status);
			}
		}
		round_s[round] = now() - t0;
	}
	shell("kill $(cat '%s/ocsp-8891.pid') 2>/dev/null || true", work);
	assert_int_equal(failures, 0);
	/* nothing left behind: no helper, no descriptor */
	/* no more helpers than before (one of an earlier test may have ended) */
	helpers_after = count_helpers_settled(helpers_before);
	assert_true(helpers_after <= helpers_before);
	assert_int_equal(count_fds(), fds_before);
	snprintf(path, sizeof(path), "%s/concurrent-times", work);
	n_times = file_stats(path, &median, &slowest);
	assert_int_equal(n_times, 2 * N_CONCURRENT);
	print_message("load: %d logins at once, 2 rounds on a cold cache: %.1f s and %.1f s a round; "
	              "a login: median %.2f s, slowest %.2f s; descriptors %d before and after; "
	              "helpers %d before, %d after\n", N_CONCURRENT, round_s[0], round_s[1], median,
	              slowest, fds_before, helpers_before, helpers_after);
	/* every file in the cache is whole: each index opens, each OCSP
	 * answer parses (pam-piv-check would say otherwise) */
	shell("for f in '%s'/*; do [ -s \"$f\" ] || { echo \"empty $f\"; exit 1; }; done; "
	      "for f in '%s'/ocsp-*.der; do openssl ocsp -respin \"$f\" -noverify -resp_text "
	      ">/dev/null 2>&1 || { echo \"corrupt $f\"; exit 1; }; done; "
	      "! ls '%s' | grep -q 'XXXXXX\\|\\.[A-Za-z0-9]\\{6\\}$'", cache_dir, cache_dir, cache_dir);
	free(extra);
	server_mode("500");
	assert_true(asprintf(&extra, "revocation = ocsp,crl\ncache_dir = %s\n"
	                     "ocsp_url = http://127.0.0.1:9/\n", cache_dir) > 0);
	expect(&SETUP(.scenario = "p256", .extra = extra), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "OCSP answer from the cache");
	outcome_free(&o);
	free(extra);
}

static void
test_revocation_default(void **state)
{
	char extra[4400];
	struct outcome o;

	(void)state;
	/* No revocation line: OCSP, then CRLs. Here the responder is dead and
	 * fetching is off, so nothing answers: closed. */
	snprintf(extra, sizeof(extra), "crl_fetch = no\ncache_dir = %s\n"
	         "ocsp_url = http://127.0.0.1:9/", cache_dir);
	expect(&SETUP(.scenario = "p256", .extra = extra, .default_revocation = true), "alice", PIN,
	       PAM_AUTH_ERR, false, "revocation status unavailable", &o);
	assert_non_null(strstr(o.log, "revocation ocsp for"));
	assert_non_null(strstr(o.log, "revocation crl for"));
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

static void
test_crl_unsafe_cache_dir(void **state)
{
	char more[4200];
	struct outcome o;

	(void)state;
	assert_int_equal(mkdir(cache_dir, 0777), 0);
	assert_int_equal(chmod(cache_dir, 0777), 0);
	snprintf(more, sizeof(more), "# cache dir writable by all\n");
	expect_crl("p256", more, "alice", PAM_SERVICE_ERR, false, NULL, &o);
	assert_non_null(strstr(o.log, "not writable by group or others"));
	outcome_free(&o);
}

/* ---- agent = yes: sudo over ssh with a forwarded ssh-agent ---------- */

/* Up to two agents: alice's (uid 1001) and bob's (uid 1002). */
static char agent_dirs[2][64];

/* A real ssh-agent running as uid (1001 alice, 1002 bob), holding the key
 * of the SCENARIO card through PKCS#11 (ssh-add -s), as a forwarded agent
 * would, in a directory only that user can enter. SSH_AUTH_SOCK names its
 * socket. (Not under pam_wrapper: its constructor ends any process that
 * cannot read the service directory, as the user cannot.) */
static const char *
start_agent_as(const char *scenario, unsigned uid)
{
	char *dir = agent_dirs[uid == 1001 ? 0 : 1];
	static char sock[2][100];
	char *path = sock[uid == 1001 ? 0 : 1];

	snprintf(dir, sizeof(agent_dirs[0]), "/tmp/piv-agent.XXXXXX");
	assert_non_null(mkdtemp(dir));
	shell("cp -a '%s/tok/%s' '%s/tok' && sed -i 's|%s/tok/%s|%s/tok|' '%s/tok/softhsm2.conf' && "
	      "printf '#!/bin/sh\\necho %s\\n' > '%s/askpass' && chmod 755 '%s/askpass' && "
	      "chown -R %u:%u '%s' && chmod 700 '%s'", fx, scenario, dir, fx, scenario, dir, dir,
	      PIN, dir, dir, uid, uid, dir, dir);
	shell("env -u LD_PRELOAD setpriv --reuid=%u --regid=%u --clear-groups env -i PATH=/usr/bin:/bin "
	      "SOFTHSM2_CONF='%s/tok/softhsm2.conf' timeout 120 ssh-agent -D -a '%s/sock' "
	      "> '%s/agent.log' 2>&1 & echo $! > '%s/agent.pid'; i=0; "
	      "while [ ! -S '%s/sock' ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done; "
	      "[ -S '%s/sock' ] || { cat '%s/agent.log'; false; }", uid, uid, dir, dir, dir,
	      dir, dir, dir, dir);
	shell("SSH_AUTH_SOCK='%s/sock' SSH_ASKPASS='%s/askpass' SSH_ASKPASS_REQUIRE=force "
	      "env -u LD_PRELOAD setpriv --reuid=%u --regid=%u --clear-groups timeout 60 ssh-add -s '%s' "
	      "< /dev/null > /dev/null 2>&1", dir, dir, uid, uid, softhsm);
	snprintf(path, sizeof(sock[0]), "%s/sock", dir);
	setenv("SSH_AUTH_SOCK", path, 1);
	return path;
}

static void
start_agent(const char *scenario)
{
	(void)start_agent_as(scenario, 1001);
}

static int
agent_teardown(void **state)
{
	(void)state;
	unsetenv("SSH_AUTH_SOCK");
	for (size_t i = 0; i < 2; i++) {
		if (agent_dirs[i][0] != '\0') {
			shell("kill $(cat '%s/agent.pid') 2>/dev/null; rm -rf '%s'", agent_dirs[i],
			      agent_dirs[i]);
			agent_dirs[i][0] = '\0';
		}
	}
	return 0;
}

/* cert_source for the agent tests: USER.pem holds the certificates named
 * (alice's, unless they start with bob-); no local card (the empty token). */
static void
agent_setup_conf(const char *certs, const char *more)
{
	char extra[3000];

	shell("mkdir -p '%s/certs' && rm -f '%s/certs/'*.pem && for c in %s; do "
	      "case $c in bob-*) u=bob ;; *) u=alice ;; esac; "
	      "cat '%s/pki/'$c.crt >> '%s/certs/'$u.pem; done && chmod 600 '%s/certs/'*.pem",
	      work, work, certs, fx, work, work);
	snprintf(extra, sizeof(extra), "agent = yes\ncert_source = dir:%s/certs\n%s", work,
	         more ? more : "");
	configure(&SETUP(.scenario = "empty", .extra = extra));
}

/* The authentication of a set-user-ID program (sudo, su) started by the
 * user with uid ruid: a child whose real uid is ruid and effective uid
 * root, as sudo's and su's are while they authenticate, with PAM_RUSER
 * set to ruser (NULL: not set). Only rv and the log are filled. */
static void run_items(uid_t ruid, const char *ruser, const char *rhost, const char *user,
                      struct outcome *out);

static void
run_invoked_by(uid_t ruid, const char *ruser, const char *user, struct outcome *out)
{
	run_items(ruid, ruser, NULL, user, out);
}

/* The same, with PAM_RHOST set to rhost (NULL: not set). */
static void
run_items(uid_t ruid, const char *ruser, const char *rhost, const char *user, struct outcome *out)
{
	char log_path[4096];
	int pipefd[2], status = 0;
	pid_t pid;
	double t0;

	memset(out, 0, sizeof(*out));
	out->conv.pin = PIN;
	snprintf(log_path, sizeof(log_path), "%s/pam-invoked.log", work);
	assert_int_equal(pipe(pipefd), 0);
	t0 = now();
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct pam_conv conv = { conv_fn, &out->conv };
		pam_handle_t *ph = NULL;
		int rv, fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

		close(pipefd[0]);
		if (fd < 0 || dup2(fd, 2) < 0 || setresuid(ruid, 0, 0) != 0)
			_exit(1);
		rv = pam_start("piv", user, &conv, &ph);
		if (rv == PAM_SUCCESS && ruser != NULL)
			rv = pam_set_item(ph, PAM_RUSER, ruser);
		if (rv == PAM_SUCCESS && rhost != NULL)
			rv = pam_set_item(ph, PAM_RHOST, rhost);
		if (rv == PAM_SUCCESS)
			rv = pam_authenticate(ph, 0);
		pam_end(ph, rv);
		if (write(pipefd[1], &rv, sizeof(rv)) != (ssize_t)sizeof(rv) ||
		    write(pipefd[1], &out->conv.prompts, sizeof(int)) != (ssize_t)sizeof(int))
			_exit(1);
		_exit(0);
	}
	close(pipefd[1]);
	out->rv = -1;
	if (read(pipefd[0], &out->rv, sizeof(out->rv)) != (ssize_t)sizeof(out->rv) ||
	    read(pipefd[0], &out->conv.prompts, sizeof(int)) != (ssize_t)sizeof(int))
		out->rv = -1;
	close(pipefd[0]);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	out->seconds = now() - t0;
	out->log = slurp(log_path);
	if (out->rv < 0) {
		dump(out);
		fail_msg("the PAM child ended without an answer (status %d)", status);
	}
}

static void
expect_invoked(uid_t ruid, const char *ruser, const char *user, int want_rv, const char *needle)
{
	struct outcome o;

	run_invoked_by(ruid, ruser, user, &o);
	if (o.rv != want_rv || (needle != NULL && strstr(o.log, needle) == NULL)) {
		dump(&o);
		fail_msg("invoked by uid %u (PAM_RUSER %s) for %s: want rv=%d and '%s'", (unsigned)ruid,
		         ruser ? ruser : "unset", user ? user : "(none)", want_rv, needle ? needle : "");
	}
	outcome_free(&o);
}

static void
test_agent_login(void **state)
{
	(void)state;
	start_agent("p256");
	agent_setup_conf("alice-p256", NULL);
	/* alice runs sudo: her own agent proves her certificate's key */
	expect_invoked(1001, NULL, "alice", PAM_SUCCESS, "agent: asking for a signature");
	expect_invoked(1001, "alice", "alice", PAM_SUCCESS, "token=\"ssh-agent\"");
	/* the agent is alice's: it proves nobody else, and nobody else
	 * (root included) can use it for alice */
	expect_invoked(1001, "alice", "bob", PAM_AUTHINFO_UNAVAIL, "is not the invoking user");
	expect_invoked(0, NULL, "alice", PAM_AUTHINFO_UNAVAIL, "is not the invoking user");
	expect_invoked(1001, "bob", "alice", PAM_AUTHINFO_UNAVAIL, "requesting user bob (PAM_RUSER)");
	expect_invoked(1001, "nosuchuser", "alice", PAM_AUTHINFO_UNAVAIL, "(PAM_RUSER)");
	/* a username-less login has nobody to prove */
	expect_invoked(1001, NULL, NULL, PAM_AUTHINFO_UNAVAIL, "a user name is needed");
	/* the agent's key must be a valid certificate's: here the file lists
	 * only another card's certificate */
	agent_setup_conf("alice-rsa2048", NULL);
	expect_invoked(1001, NULL, "alice", PAM_AUTHINFO_UNAVAIL,
	               "holds none of the keys of the user's 1 valid certificate(s)");
	/* a path that is not the user's own socket is refused: here a
	 * symbolic link to it in a directory of root's */
	shell("rm -rf /tmp/piv-root-agent && mkdir /tmp/piv-root-agent && "
	      "ln -s '%s/sock' /tmp/piv-root-agent/sock", agent_dirs[0]);
	setenv("SSH_AUTH_SOCK", "/tmp/piv-root-agent/sock", 1);
	agent_setup_conf("alice-p256", NULL);
	expect_invoked(1001, NULL, "alice", PAM_AUTHINFO_UNAVAIL, "agent: ");
	shell("rm -rf /tmp/piv-root-agent");
}

/* The review's case (su bob, or sudo with targetpw): alice points
 * SSH_AUTH_SOCK at bob's agent socket, which she cannot open herself, and
 * asks to be authenticated as bob. The module must not open it as bob. */
static void
test_agent_other_users_socket(void **state)
{
	(void)state;
	start_agent_as("bob", 1002);
	agent_setup_conf("bob-p256", NULL);
	/* bob himself: his agent works (the fixture is sound) */
	expect_invoked(1002, NULL, "bob", PAM_SUCCESS, "agent: asking for a signature");
	/* alice, for bob: refused before the socket is touched, and the
	 * stack goes on to the password (AUTHINFO_UNAVAIL) */
	expect_invoked(1001, "alice", "bob", PAM_AUTHINFO_UNAVAIL, "is not the invoking user");
	expect_invoked(1001, NULL, "bob", PAM_AUTHINFO_UNAVAIL, "is not the invoking user");
	/* alice, for herself, with bob's socket: opened as alice, it is not
	 * hers (and she cannot enter bob's directory) */
	expect_invoked(1001, NULL, "alice", PAM_AUTHINFO_UNAVAIL, "agent: ");
}

/* The certificate behind the agent's key is revoked: no login (it is no
 * valid certificate of the user, so the stack goes on to the password). */
static void
test_agent_revoked(void **state)
{
	char more[4200];

	(void)state;
	start_agent("revoked");
	snprintf(more, sizeof(more), "revocation = ocsp,crl\ncache_dir = %s", cache_dir);
	agent_setup_conf("alice-revoked", more);
	expect_invoked(1001, NULL, "alice", PAM_AUTHINFO_UNAVAIL, "cert-revoked");
}

/* ---- who the local reader answers (issue 14.5) ----------------------- */

/* A login from another host (PAM_RHOST) does not use the reader here:
 * no PIN is asked, and the stack goes on (AUTHINFO_UNAVAIL). */
static void
test_remote_login_no_card(void **state)
{
	struct outcome o;
	char host[256] = "";
	static const char *const remote[] = { "192.0.2.7", "2001:db8::1", "ws1.example.net",
	                                      "::ffff:192.0.2.7" };
	static const char *const local[] = { "", "localhost", "127.0.0.1", "::1" };

	(void)state;
	configure(&SETUP(.scenario = "p256"));
	for (size_t i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
		run_items(0, NULL, remote[i], "alice", &o);
		if (o.rv != PAM_AUTHINFO_UNAVAIL || o.conv.prompts != 0 ||
		    strstr(o.log, "(PAM_RHOST; allow_remote = no)") == NULL ||
		    strstr(o.log, "card helper") != NULL) {
			dump(&o);
			fail_msg("a login from %s: want AUTHINFO_UNAVAIL, no PIN, no card", remote[i]);
		}
		outcome_free(&o);
	}
	for (size_t i = 0; i < sizeof(local) / sizeof(local[0]); i++) {
		run_items(0, NULL, local[i], "alice", &o);
		if (o.rv != PAM_SUCCESS || o.conv.prompts != 1) {
			dump(&o);
			fail_msg("a login from '%s' (this host): want the card", local[i]);
		}
		outcome_free(&o);
	}
	/* this host's own name is this host */
	assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
	run_items(0, NULL, host, "alice", &o);
	assert_int_equal(o.rv, PAM_SUCCESS);
	outcome_free(&o);
	/* allow_remote = yes: the site wants it */
	configure(&SETUP(.scenario = "p256", .extra = "allow_remote = yes"));
	run_items(0, NULL, "192.0.2.7", "alice", &o);
	assert_int_equal(o.rv, PAM_SUCCESS);
	assert_int_equal(o.conv.prompts, 1);
	outcome_free(&o);
	/* card_only: no card here is a failure */
	configure(&SETUP(.scenario = "p256", .extra = "card_only = yes"));
	run_items(0, NULL, "192.0.2.7", "alice", &o);
	assert_int_equal(o.rv, PAM_AUTH_ERR);
	assert_int_equal(o.conv.prompts, 0);
	outcome_free(&o);
}

/* allowed_services: the services the reader answers (sshd not by default) */
static void
test_allowed_services(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256", .extra = "allowed_services = login, sudo"), "alice", PIN,
	       PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	must_log(&o, "not used for the PAM service piv (allowed_services)");
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "allowed_services = login\nallowed_services = piv"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "allowed_services = -piv"), "alice", PIN,
	       PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "allowed_services = -piv, +piv"), "alice", PIN,
	       PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
}

/* foreign_card = ignore: another user's valid card left in the reader
 * counts as no card, so the password after pam_piv still works. */
static void
test_foreign_card(void **state)
{
	struct outcome o;

	(void)state;
	/* default: the card in the reader is alice's to use or fail with */
	expect(&SETUP(.scenario = "bob"), "alice", PIN, PAM_AUTH_ERR, false, "not mapped to alice",
	       &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "bob", .extra = "foreign_card = ignore"), "alice", PIN,
	       PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	assert_true(saw(o.conv.info, o.conv.n_info, "is not mapped to alice: it is not used"));
	must_log(&o, "foreign_card = ignore");
	outcome_free(&o);
	/* a card that fails for another reason still fails */
	expect(&SETUP(.scenario = "expired", .extra = "foreign_card = ignore"), "alice", PIN,
	       PAM_AUTH_ERR, false, "has expired", &o);
	outcome_free(&o);
	/* and the user's own card among others still works */
	expect(&SETUP(.scenario = "two", .extra = "foreign_card = ignore"), "alice", PIN, PAM_SUCCESS,
	       true, NULL, &o);
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

/* ---- sshd_key_check: the account and session phases ------------------ */

/* pam_acct_mgmt and pam_open_session of the piv_keys stack (pam_permit,
 * then pam_piv sshd_key_check) for user, with SSH_AUTH_INFO_0 = info
 * (NULL: unset) in the PAM environment, as sshd sets it. */
static void
key_phases(const char *user, const char *info, int *acct_rv, int *session_rv, char **log)
{
	struct conv_log cl = { 0 };
	struct pam_conv conv = { conv_fn, &cl };
	pam_handle_t *ph = NULL;
	char log_path[4200], env[8192];
	int saved, fd;

	snprintf(log_path, sizeof(log_path), "%s/keys-%d.log", work, (int)getpid());
	fflush(stderr);
	saved = dup(2);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	assert_int_equal(pam_start("piv_keys", user, &conv, &ph), PAM_SUCCESS);
	if (info != NULL) {
		snprintf(env, sizeof(env), "SSH_AUTH_INFO_0=%s", info);
		assert_int_equal(pam_putenv(ph, env), PAM_SUCCESS);
	}
	*acct_rv = pam_acct_mgmt(ph, 0);
	*session_rv = pam_open_session(ph, 0);
	pam_end(ph, *session_rv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	*log = slurp(log_path);
}

/* "publickey TYPE BASE64" of a certificate's key, as sshd writes it. */
static char *
auth_info_line(const char *cert, const char *more)
{
	char cmd[4400], *out, *line = NULL;
	FILE *p;
	char buf[4096] = "";

	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/pki/%s.crt' -pubkey -noout | "
	         "ssh-keygen -i -m PKCS8 -f /dev/stdin", fx, cert);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(buf, sizeof(buf), p));
	assert_int_equal(pclose(p), 0);
	buf[strcspn(buf, "\n")] = '\0';
	assert_true(asprintf(&line, "publickey %s\n%s", buf, more ? more : "") > 0);
	out = line;
	return out;
}

static void
test_sshd_key_check(void **state)
{
	char extra[4400], *log, *good, *revoked, *bobs, *two;
	int acct, session;

	(void)state;
	shell("mkdir -p '%s/certs' && cat '%s/pki/alice-p256.crt' '%s/pki/alice-revoked.crt' "
	      "'%s/pki/bob-p256.crt' > '%s/certs/alice.pem' && chmod 600 '%s/certs/alice.pem'",
	      work, fx, fx, fx, work, work);
	snprintf(extra, sizeof(extra), "cert_source = dir:%s/certs\nrevocation = ocsp,crl\n"
	         "cache_dir = %s", work, cache_dir);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	good = auth_info_line("alice-p256", NULL);
	revoked = auth_info_line("alice-revoked", NULL);
	bobs = auth_info_line("bob-p256", NULL);
	two = auth_info_line("alice-p256", revoked);

	key_phases("alice", good, &acct, &session, &log);
	assert_int_equal(acct, PAM_SUCCESS);
	assert_int_equal(session, PAM_SUCCESS);
	if (strstr(log, "session check succeeded: user=alice keys=1") == NULL)
		fail_msg("%s", log);
	free(log);
	/* revoked: refused in both phases */
	key_phases("alice", revoked, &acct, &session, &log);
	assert_int_equal(acct, PAM_PERM_DENIED);
	assert_int_equal(session, PAM_SESSION_ERR);
	free(log);
	/* a key of another user's certificate, even in alice's file */
	key_phases("alice", bobs, &acct, &session, &log);
	assert_int_equal(acct, PAM_PERM_DENIED);
	assert_int_equal(session, PAM_SESSION_ERR);
	free(log);
	/* two keys: each must pass */
	key_phases("alice", two, &acct, &session, &log);
	assert_int_equal(acct, PAM_PERM_DENIED);
	free(log);
	/* no key used (keyboard-interactive only; or sshd's empty value in the
	 * account phase of a publickey login): nothing to say */
	key_phases("alice", "keyboard-interactive/pam\n", &acct, &session, &log);
	assert_int_equal(acct, PAM_SUCCESS); /* pam_permit's: pam_piv ignored it */
	assert_int_equal(session, PAM_SUCCESS);
	assert_non_null(strstr(log, "account check: user=alice: no public key (yet)"));
	assert_null(strstr(log, "check succeeded"));
	free(log);
	key_phases("alice", "", &acct, &session, &log);
	assert_int_equal(acct, PAM_SUCCESS);
	assert_non_null(strstr(log, "session check: user=alice: no public key (yet)"));
	free(log);
	/* not sshd, or garbage: fail closed */
	key_phases("alice", NULL, &acct, &session, &log);
	assert_int_equal(acct, PAM_PERM_DENIED);
	assert_int_equal(session, PAM_SESSION_ERR);
	assert_non_null(strstr(log, "SSH_AUTH_INFO_0 is not set"));
	free(log);
	key_phases("alice", "publickey ssh-rsa AAAA!!!\n", &acct, &session, &log);
	assert_int_equal(acct, PAM_PERM_DENIED);
	free(log);
	/* a user without certificates */
	key_phases("bob", good, &acct, &session, &log);
	assert_int_equal(acct, PAM_PERM_DENIED);
	free(log);
	/* an unsafe cert_source file is the administrator's to fix */
	shell("chmod 666 '%s/certs/alice.pem'", work);
	key_phases("alice", good, &acct, &session, &log);
	assert_int_equal(acct, PAM_SERVICE_ERR);
	free(log);
	free(good);
	free(revoked);
	free(bobs);
	free(two);
}

/* cert_source = ldap: the entry's userCertificate;binary, through
 * pam-piv-authorized-keys (what sshd runs). */
static void
test_cert_source_ldap(void **state)
{
	char extra[4400], cmd[9000], *out;
	int status;

	(void)state;
	snprintf(extra, sizeof(extra), "cert_source = ldap\nldap_uri = %s\nldap_base = %s\n", ldap_uri,
	         ldap_base);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	snprintf(cmd, sizeof(cmd),
	         "'%s' --config '%s/current.conf' alice > '%s/keys.out' 2>/dev/null && "
	         "openssl x509 -in '%s/pki/alice-p256.crt' -pubkey -noout | "
	         "ssh-keygen -i -m PKCS8 -f /dev/stdin > '%s/keys.want'",
	         keys_tool, work, work, fx, work);
	status = system(cmd);
	assert_int_equal(status, 0);
	{
		char path[4200];
		char *want;
		snprintf(path, sizeof(path), "%s/keys.out", work);
		out = slurp(path);
		snprintf(path, sizeof(path), "%s/keys.want", work);
		want = slurp(path);
		want[strcspn(want, "\n")] = '\0';
		if (strstr(out, want) == NULL || strstr(out, "pam_piv-sha256:") == NULL)
			fail_msg("keys for alice from LDAP:\n%s\nwanted:\n%s", out, want);
		{
			/* exactly one key line */
			int lines = 0;
			for (const char *p = out; *p; p++)
				lines += *p == '\n';
			assert_int_equal(lines, 1);
		}
		free(want);
		free(out);
	}
	/* a directory that is down: no keys, and a non-zero exit for sshd's log */
	snprintf(extra, sizeof(extra), "cert_source = ldap\nldap_uri = ldap://127.0.0.1:9\n"
	         "ldap_base = %s\n", ldap_base);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	snprintf(cmd, sizeof(cmd), "'%s' --config '%s/current.conf' alice > '%s/keys.out' 2>/dev/null",
	         keys_tool, work, work);
	status = system(cmd);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	{
		char path[4200];
		snprintf(path, sizeof(path), "%s/keys.out", work);
		out = slurp(path);
		assert_string_equal(out, "");
		free(out);
	}
}

/* ---- the anchors' CVEs and bugs, as regression tests ----------------- */

/* Every way pam_piv fails, in the two stacks that turned the anchors'
 * errors into logins (pam_pkcs11 CVE-2025-24531: PAM_IGNORE from errors):
 * "sufficient" before pam_deny, and "[success=1 default=ignore]" jumping
 * over pam_deny to pam_permit. Neither may let anybody in. */
static void
test_cve_2025_24531_error_paths_in_stacks(void **state)
{
	static const struct {
		const char *what, *scenario, *extra, *pin;
		bool shim;
		const char *shim_env;
	} cases[] = {
		{ "no card", "empty", NULL, PIN, false, NULL },
		{ "expired", "expired", NULL, PIN, false, NULL },
		{ "untrusted", "untrusted", NULL, PIN, false, NULL },
		{ "card authentication key", "cardauth", NULL, PIN, false, NULL },
		{ "another user's card", "bob", NULL, PIN, false, NULL },
		{ "wrong PIN", "p256", NULL, "000000", false, NULL },
		{ "victim's certificate, attacker's key", "mismatch", NULL, PIN, false, NULL },
		{ "configuration error", "p256", "no_such_key = 1", PIN, false, NULL },
		{ "unknown revocation", "p256", "revocation = crl\ncrl_fetch = no", PIN, false, NULL },
		{ "helper crash", "p256", NULL, PIN, true, "P11SHIM_CRASH=C_Sign\nASAN_OPTIONS=handle_segv=0" },
		{ "C_Sign fails", "p256", NULL, PIN, true, "P11SHIM_FAIL=C_Sign:CKR_DEVICE_ERROR" },
		{ "login claimed", "p256", NULL, "000000", true, "P11SHIM_LOGIN_RV=already_logged_in" },
	};
	static const char *const stacks[] = { "piv_sufficient", "piv_jump" };
	struct outcome o;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		configure(&SETUP(.scenario = cases[i].scenario, .extra = cases[i].extra,
		                 .use_shim = cases[i].shim, .shim_env = cases[i].shim_env));
		for (size_t k = 0; k < 2; k++) {
			run(stacks[k], "alice", cases[i].pin, 0, &o);
			if (o.rv == PAM_SUCCESS || o.rv == PAM_IGNORE) {
				dump(&o);
				fail_msg("%s in %s: rv %d", cases[i].what, stacks[k], o.rv);
			}
			outcome_free(&o);
		}
	}
	/* and the stacks do let the right card in */
	configure(&SETUP(.scenario = "p256"));
	for (size_t k = 0; k < 2; k++) {
		run(stacks[k], "alice", PIN, 0, &o);
		assert_int_equal(o.rv, PAM_SUCCESS);
		outcome_free(&o);
	}
}

/* PINs of 0, 1 and 256 bytes and with a NUL byte: a clear failure, and the
 * card is not asked (SoftHSM2 takes 4 to 255), so no try is spent. */
static void
test_pin_lengths(void **state)
{
	char long_pin[257], nul_pin[8] = { '1', '2', '\0', '3', '4', '5', '6', '\0' };
	const char *const pins[] = { "", "1", long_pin, nul_pin };
	struct outcome o;

	(void)state;
	char shim_env[4300], shim_log[4200];

	memset(long_pin, '1', 256);
	long_pin[256] = '\0';
	snprintf(shim_log, sizeof(shim_log), "%s/shim-pins.log", work);
	snprintf(shim_env, sizeof(shim_env), "P11SHIM_LOG=%s", shim_log);
	for (size_t i = 0; i < sizeof(pins) / sizeof(pins[0]); i++) {
		char *calls;
		unlink(shim_log);
		expect(&SETUP(.scenario = "p256", .use_shim = true, .shim_env = shim_env),
		       "alice", pins[i], PAM_AUTH_ERR, true, "Wrong PIN", &o);
		must_log(&o, "refused without trying it: the token takes 4 to 255");
		outcome_free(&o);
		calls = slurp(shim_log);
		assert_non_null(strstr(calls, "C_GetTokenInfo")); /* the shim did log */
		assert_null(strstr(calls, "C_Login"));
		free(calls);
	}
	/* the PIN still works: nothing was counted */
	expect(&SETUP(.scenario = "p256"), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
}

/* A 256-character account with a 600-character home directory, mapped
 * by a mapping file (pam_pkcs11 overflowed on long home directories). */
static void
test_long_names(void **state)
{
	char user[257], conf[8400];
	struct outcome o;

	(void)state;
	memset(user, 'l', 256);
	user[256] = '\0';
	write_map_from_cert(user, "sha256",
	                    "openssl x509 -in \"$(dirname $c)/alice-p256.crt\" -noout -fingerprint "
	                    "-sha256 | sed 's/.*=//'");
	snprintf(conf, sizeof(conf), "map = file:%s/map.txt", work);
	expect(&SETUP(.scenario = "p256", .extra = conf), user, PIN, PAM_SUCCESS, true, NULL, &o);
	must_log(&o, "authentication succeeded: account=llllllll");
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = conf), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, user);
	outcome_free(&o);
}

/* After a login, the PIN is nowhere in this process's heap: the module
 * wiped its copies (conversation answer, protocol buffer). (The test's own
 * copy is the string literal, in read-only data, not in the heap.) */
static void
test_pin_not_left_in_memory(void **state)
{
	struct outcome o;
	unsigned long lo, hi;
	char line[512];
	FILE *maps;
	int found = 0;

	(void)state;
	expect(&SETUP(.scenario = "p256"), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	maps = fopen("/proc/self/maps", "r");
	assert_non_null(maps);
	while (fgets(line, sizeof(line), maps) != NULL) {
		if (strstr(line, "[heap]") == NULL || sscanf(line, "%lx-%lx", &lo, &hi) != 2)
			continue;
		for (const char *p = (const char *)lo; p + 6 <= (const char *)hi; p++)
			if (p[0] == PIN[0] && memcmp(p, PIN, 6) == 0)
				found++;
	}
	fclose(maps);
	assert_int_equal(found, 0);
}

/* The PIN never reaches a log line, with debug on, whatever happens. */
static void
test_pin_never_logged(void **state)
{
	static const char *const scenarios[] = { "p256", "rsa2048", "mismatch", "nokey",
	                                         "alwaysauth" };
	struct outcome o;

	(void)state;
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		configure(&SETUP(.scenario = scenarios[i]));
		run("piv", "alice", PIN, 0, &o);
		if (strstr(o.log, PIN) != NULL) {
			dump(&o);
			fail_msg("%s: the PIN is in the log", scenarios[i]);
		}
		outcome_free(&o);
		run("piv", "alice", "987654", 0, &o);
		assert_null(strstr(o.log, "987654"));
		outcome_free(&o);
	}
}

/* ---- the soak: many mixed logins in one process ------------------------ */

/* 200 logins of every kind, each with its own PAM handle, in this one
 * process: no descriptor may be left behind. pam-tests.sh runs this case
 * once more under valgrind (--leak-check=full --error-exitcode=1), which
 * catches leaks and invalid accesses in the module. */
/* The process's resident set, from /proc. */
static long
rss_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	while (f != NULL && fgets(line, sizeof(line), f) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
			break;
	if (f != NULL)
		fclose(f);
	return kb;
}

static void
test_soak(void **state)
{
	static const struct {
		const char *scenario, *user, *pin, *extra;
		int rv;
	} kinds[] = {
		{ "p256", "alice", PIN, NULL, PAM_SUCCESS },
		{ "p256", "alice", "000000", NULL, PAM_AUTH_ERR },
		{ "rsa2048", NULL, PIN, NULL, PAM_SUCCESS },
		{ "expired", "alice", PIN, NULL, PAM_AUTH_ERR },
		{ "empty", "alice", PIN, NULL, PAM_AUTHINFO_UNAVAIL },
		{ "bob", "alice", PIN, NULL, PAM_AUTH_ERR },
		{ "p384", "alice", PIN, "map = name:{subject_principal.short_name}", PAM_SUCCESS },
		{ "p256", "alice", PIN, "no_such_key = 1", PAM_SERVICE_ERR },
	};
	const char *n_env = getenv("PIV_SOAK_LOGINS");
	int n = n_env ? atoi(n_env) : 200, fds = -1;
	long rss_warm = 0;
	double t0 = now();
	struct outcome o;

	(void)state;
	alarm(900); /* under valgrind 200 logins take minutes */
	for (int i = 0; i < n; i++) {
		size_t k = (size_t)i % (sizeof(kinds) / sizeof(kinds[0]));
		configure(&SETUP(.scenario = kinds[k].scenario, .extra = kinds[k].extra));
		run("piv", kinds[k].user, kinds[k].pin, 0, &o);
		if (o.rv != kinds[k].rv) {
			dump(&o);
			fail_msg("login %d (%s): rv %d, want %d", i, kinds[k].scenario, o.rv, kinds[k].rv);
		}
		outcome_free(&o);
		/* after a warm-up round, the count of descriptors never moves */
		if (i == (int)(sizeof(kinds) / sizeof(kinds[0]))) {
			fds = count_fds();
			rss_warm = rss_kb();
		} else if (fds >= 0 && k == 0) {
			assert_int_equal(count_fds(), fds);
		}
	}
	print_message("soak: %d mixed logins in one process in %.1f s (%.0f ms each); RSS %ld kB "
	              "after the first %zu, %ld kB at the end; %d descriptors throughout\n", n,
	              now() - t0, (now() - t0) * 1000 / (n > 0 ? n : 1), rss_warm,
	              sizeof(kinds) / sizeof(kinds[0]), rss_kb(), fds);
}

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
check_must(const char *out, const char *needle)
{
	if (strstr(out, needle) == NULL)
		fail_msg("pam-piv-check output lacks '%s':\n%s", needle, out);
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
#define T(f) cmocka_unit_test_setup(f, per_test_timeout)
		T(test_rsa2048), T(test_rsa3072), T(test_rsa4096), T(test_p256), T(test_p384),
		T(test_intermediate_from_card),
		T(test_mech_rsa_pkcs_raw), T(test_mech_rsa_pss), T(test_mech_sha256_rsa),
		T(test_mech_ecdsa), T(test_mech_none_usable),
		T(test_wrong_pin_then_right), T(test_pin_locked_flag), T(test_pin_locked_at_login),
		T(test_final_try_warning), T(test_already_logged_in), T(test_always_authenticate),
		T(test_pinpad), T(test_conversation_cancelled),
		T(test_no_token), T(test_module_will_not_load), T(test_p11kit_registry), T(test_card_wait), T(test_token_filter),
		T(test_untrusted), T(test_expired), T(test_notyet), T(test_wrong_eku), T(test_card_auth),
		T(test_no_digsig), T(test_policy),
		T(test_mismatched_key),
		T(test_mapped_to_other_user), T(test_unknown_account), T(test_usernameless),
		T(test_usernameless_ambiguous), T(test_usernameless_canonical_name), T(test_map_rules), T(test_map_file_matchers),
		T(test_map_file_decisions), T(test_hostile_subject_escaped),
		T(test_remote_login_no_card), T(test_allowed_services), T(test_foreign_card),
		T(test_two_tokens_for_user),
		T(test_config_errors), T(test_config_file_safety), T(test_module_arguments),
		T(test_silent), T(test_setcred),
		T(test_hang_slotlist), T(test_hang_initialize), T(test_hang_login), T(test_hang_sign),
		T(test_helper_process), T(test_module_crash), T(test_card_errors), T(test_fault_table),
#undef T
#define R(f) cmocka_unit_test_setup(f, revocation_setup)
		R(test_crl_fetched_and_cached), R(test_crl_revoked), R(test_crl_intermediate_revoked),
		R(test_crl_local), R(test_crl_server_down), R(test_crl_server_hangs),
		R(test_crl_bad_answers), R(test_crl_refetched_when_stale), R(test_crl_cache_damaged),
		R(test_crl_scope), R(test_crl_rollback), R(test_crl_delta), R(test_crl_expired_listing),
		R(test_crl_index_off_login), R(test_crl_index_concurrent), R(test_refresher),
		R(test_crl_unsafe_cache_dir), R(test_unsafe_trust_files), R(test_revocation_default),
		R(test_ocsp_good_and_revoked), R(test_ocsp_cached), R(test_ocsp_responder_down),
		R(test_ocsp_responder_hangs), R(test_ocsp_bad_answers), R(test_ocsp_replay),
		R(test_ocsp_stale_revoked), R(test_concurrent_logins),
		R(test_check_tool), R(test_check_tool_every_card), R(test_check_tool_revocation),
		R(test_check_tool_issuers), R(test_require_issuer),
		R(test_sshd_key_check),
		R(test_cve_2025_24531_error_paths_in_stacks), R(test_pin_lengths), R(test_long_names),
		R(test_pin_not_left_in_memory), R(test_pin_never_logged), R(test_soak),
		cmocka_unit_test_setup_teardown(test_agent_login, revocation_setup, agent_teardown),
		cmocka_unit_test_setup_teardown(test_agent_revoked, revocation_setup, agent_teardown),
		cmocka_unit_test_setup_teardown(test_agent_other_users_socket, revocation_setup,
		                                agent_teardown),
#undef R
#define L(f) cmocka_unit_test_setup_teardown(f, ldap_setup, ldap_teardown)
		L(test_ldap_whole_certificate), L(test_ldap_ad_strong_mappings),
		L(test_ldap_openldap_usercertificate), L(test_ldap_ambiguous),
		L(test_ldap_no_entry), L(test_ldap_down), L(test_ldap_hangs), L(test_ldap_tls),
		L(test_ldap_ldapi), L(test_ldap_bind), L(test_ldap_hostile_values),
		L(test_cert_source_ldap),
#undef L
	};

	fx = getenv("PIV_FX");
	work = getenv("PIV_WORK");
	helper = getenv("PIV_HELPER");
	crl_builder = getenv("PIV_CRL_BUILDER");
	shim = getenv("PIV_SHIM");
	softhsm = getenv("SOFTHSM2_MODULE");
	www = getenv("PIV_WWW");
	http_port = getenv("PIV_HTTP_PORT");
	check_tool = getenv("PIV_CHECK_TOOL");
	keys_tool = getenv("PIV_KEYS_TOOL");
	refresh_tool = getenv("PIV_REFRESH_TOOL");
	ldap_uri = getenv("PIV_LDAP_URI");
	ldaps_uri = getenv("PIV_LDAPS_URI");
	ldapi_uri = getenv("PIV_LDAPI_URI");
	ldap_base = getenv("PIV_LDAP_BASE");
	ldap_suffix = getenv("PIV_LDAP_SUFFIX");
	ldap_ca = getenv("PIV_LDAP_CA");
	ldap_other_ca = getenv("PIV_LDAP_OTHER_CA");
	ldap_bind_dn = getenv("PIV_LDAP_BIND_DN");
	ldap_pw = getenv("PIV_LDAP_PW");
	ldap_pw_nl = getenv("PIV_LDAP_PW_NL");
	ldap_root_dn = getenv("PIV_LDAP_ROOT_DN");
	ldap_root_pw = getenv("PIV_LDAP_ROOT_PW");
	if (!fx || !work || !helper || !crl_builder || !shim || !softhsm || !www || !http_port || !check_tool ||
	    !keys_tool || !refresh_tool ||
	    !ldap_uri ||
	    !ldaps_uri || !ldapi_uri || !ldap_base || !ldap_suffix || !ldap_ca || !ldap_other_ca ||
	    !ldap_bind_dn || !ldap_pw || !ldap_pw_nl || !ldap_root_dn || !ldap_root_pw) {
		fprintf(stderr, "run through tests/pam-tests.sh\n");
		return 1;
	}
	/* PIV_TEST_FILTER=test_ocsp_* runs only the matching cases. */
	if (getenv("PIV_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("PIV_TEST_FILTER"));
	return cmocka_run_group_tests_name("pam", tests, NULL, NULL);
}
