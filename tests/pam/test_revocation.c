/* PAM integration tests, CRL and OCSP: fetching, caching, scope, rollback, deltas, the index builder, the refresher, servers that are down, hang or lie.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

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
	/* signed by the right responder, but with SHA-1 */
	check_bad_ocsp("sha1.ocsp", "OCSP response too weak: signed with SHA-1");
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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_crl_fetched_and_cached, revocation_setup),
		cmocka_unit_test_setup(test_crl_revoked, revocation_setup),
		cmocka_unit_test_setup(test_crl_intermediate_revoked, revocation_setup),
		cmocka_unit_test_setup(test_crl_local, revocation_setup),
		cmocka_unit_test_setup(test_crl_server_down, revocation_setup),
		cmocka_unit_test_setup(test_crl_server_hangs, revocation_setup),
		cmocka_unit_test_setup(test_crl_bad_answers, revocation_setup),
		cmocka_unit_test_setup(test_crl_refetched_when_stale, revocation_setup),
		cmocka_unit_test_setup(test_crl_cache_damaged, revocation_setup),
		cmocka_unit_test_setup(test_crl_scope, revocation_setup),
		cmocka_unit_test_setup(test_crl_rollback, revocation_setup),
		cmocka_unit_test_setup(test_crl_delta, revocation_setup),
		cmocka_unit_test_setup(test_crl_expired_listing, revocation_setup),
		cmocka_unit_test_setup(test_crl_index_off_login, revocation_setup),
		cmocka_unit_test_setup(test_crl_index_concurrent, revocation_setup),
		cmocka_unit_test_setup(test_refresher, revocation_setup),
		cmocka_unit_test_setup(test_crl_unsafe_cache_dir, revocation_setup),
		cmocka_unit_test_setup(test_revocation_default, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_good_and_revoked, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_cached, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_responder_down, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_responder_hangs, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_bad_answers, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_replay, revocation_setup),
		cmocka_unit_test_setup(test_ocsp_stale_revoked, revocation_setup),
	};

	return PIV_TEST_MAIN("revocation", tests);
}
