/* PAM integration tests, hostile cards and stacks: hangs, a crashing module, the fault table, concurrency, PIN handling in memory and logs, the soak.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_hang_slotlist, per_test_timeout),
		cmocka_unit_test_setup(test_hang_initialize, per_test_timeout),
		cmocka_unit_test_setup(test_hang_login, per_test_timeout),
		cmocka_unit_test_setup(test_hang_sign, per_test_timeout),
		cmocka_unit_test_setup(test_helper_process, per_test_timeout),
		cmocka_unit_test_setup(test_module_crash, per_test_timeout),
		cmocka_unit_test_setup(test_card_errors, per_test_timeout),
		cmocka_unit_test_setup(test_fault_table, per_test_timeout),
		cmocka_unit_test_setup(test_concurrent_logins, revocation_setup),
		cmocka_unit_test_setup(test_cve_2025_24531_error_paths_in_stacks, revocation_setup),
		cmocka_unit_test_setup(test_pin_lengths, revocation_setup),
		cmocka_unit_test_setup(test_long_names, revocation_setup),
		cmocka_unit_test_setup(test_pin_not_left_in_memory, revocation_setup),
		cmocka_unit_test_setup(test_pin_never_logged, revocation_setup),
		cmocka_unit_test_setup(test_soak, revocation_setup),
	};

	return PIV_TEST_MAIN("hostile", tests);
}
