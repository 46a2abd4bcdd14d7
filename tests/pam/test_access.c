/* PAM integration tests, who may log in where: the agent for su/sudo, remote logins, allowed services, foreign cards, sshd key checks.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

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

/* AU-3: the audit line says what happened, to whom, with which
 * certificate and from where (PAM_TTY, PAM_RHOST, escaped); syslog adds when
 * and the service. */
static void
test_audit_record(void **state)
{
	struct outcome o;

	(void)state;
	configure(&SETUP(.scenario = "p256"));
	run_items(0, NULL, "localhost", "alice", &o);
	if (o.rv != PAM_SUCCESS || !strstr(o.log, "authentication succeeded: account=alice "
	                                   "token=\"p256\" sha256=") ||
	    !strstr(o.log, "issuer=\"CN=PIV Test Issuing CA") || !strstr(o.log, " serial=") ||
	    !strstr(o.log, " tty=- rhost=localhost\n")) {
		dump(&o);
		fail_msg("success audit line");
	}
	outcome_free(&o);
	run_items(0, NULL, NULL, "bob", &o);
	if (o.rv != PAM_AUTH_ERR || !strstr(o.log, "authentication failed: user=bob result=") ||
	    !strstr(o.log, " tty=- rhost=-\n")) {
		dump(&o);
		fail_msg("failure audit line");
	}
	outcome_free(&o);
	/* a remote host name with a line break cannot forge a line */
	run_items(0, NULL, "ws1\nauthentication succeeded: account=root", "alice", &o);
	if (o.rv != PAM_AUTHINFO_UNAVAIL || strstr(o.log, "\nauthentication succeeded") != NULL) {
		dump(&o);
		fail_msg("hostile rhost");
	}
	outcome_free(&o);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_remote_login_no_card, per_test_timeout),
		cmocka_unit_test_setup(test_audit_record, per_test_timeout),
		cmocka_unit_test_setup(test_allowed_services, per_test_timeout),
		cmocka_unit_test_setup(test_foreign_card, per_test_timeout),
		cmocka_unit_test_setup(test_sshd_key_check, revocation_setup),
		cmocka_unit_test_setup_teardown(test_agent_login, revocation_setup, agent_teardown),
		cmocka_unit_test_setup_teardown(test_agent_revoked, revocation_setup, agent_teardown),
		cmocka_unit_test_setup_teardown(test_agent_other_users_socket, revocation_setup, agent_teardown),
	};

	return PIV_TEST_MAIN("access", tests);
}
