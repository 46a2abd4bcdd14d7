/* PAM integration tests, the session a card opened: removal_action and
 * the watcher (pam-piv-watch) against a fake logind (tests/login1d.c) on a
 * private D-Bus (tests/mkbus.sh), cards pulled and replaced through the
 * shim's presence file (tests/p11shim.c). Run by pam-tests.sh. */
#include "lib.h"

static const char *bus_dir;  /* mkbus.sh's directory: sessions, login1.log, refuse */
static const char *bus_addr; /* DBUS_SYSTEM_BUS_ADDRESS of the private bus */

/* One PAM handle kept open across the session, as login or sshd does. */
struct sess {
	pam_handle_t *ph;
	struct conv_log conv;
	int auth_rv, open_rv;
	int watcher;  /* the pid the module logged, 0 if none */
	char log_path[4200];
};

static char *
path_in(const char *dir, const char *name)
{
	static char paths[8][4200];
	static int next;
	char *p = paths[next++ % 8];

	snprintf(p, sizeof(paths[0]), "%s/%s", dir, name);
	return p;
}

static int
session_setup(void **state)
{
	char pids[64];

	(void)state;
	alarm(120);
	write_file(path_in(bus_dir, "sessions"), "c1\nc2\n", 0644);
	/* logind has this process (the login) in session c1 */
	snprintf(pids, sizeof(pids), "%d c1\n", (int)getpid());
	write_file(path_in(bus_dir, "pids"), pids, 0644);
	unlink(path_in(bus_dir, "refuse"));
	write_file(path_in(bus_dir, "login1.log"), "", 0644);
	write_file(path_in(work, "presence-a"), "present\n", 0644);
	write_file(path_in(work, "presence-b"), "present\n", 0644);
	unlink(path_in(work, "fault"));
	write_file(path_in(work, "watch.log"), "", 0644);
	return 0;
}

/* The configuration of a watched card: the shim in front of the card,
 * its presence read from PRESENCE (restricted to the token LABEL if not
 * NULL), and the watcher pointed at the private bus. */
static void
configure_watch(const char *scenario, const char *presence, const char *label, bool events,
                const char *bus, const char *extra)
{
	char env[2048], more[1024], label_line[200] = "";

	if (label != NULL)
		snprintf(label_line, sizeof(label_line), "P11SHIM_PRESENCE_LABEL=%s\n", label);
	snprintf(env, sizeof(env),
	         "P11SHIM_PRESENCE_FILE=%s\n%s%s"
	         "P11SHIM_FAULT_FILE=%s\n"
	         "DBUS_SYSTEM_BUS_ADDRESS=%s\n"
	         "PIV_WATCH_LOG_FILE=%s\n"
	         /* sanitizer builds: the fault file's crash is not a finding */
	         "ASAN_OPTIONS=handle_segv=0:detect_leaks=1:log_path=%s/asan.helper\n"
	         "UBSAN_OPTIONS=print_stacktrace=1:log_path=%s/ubsan.helper",
	         path_in(work, presence), events ? "P11SHIM_SLOT_EVENTS=1\n" : "", label_line,
	         path_in(work, "fault"), bus ? bus : bus_addr, path_in(work, "watch.log"), work,
	         work);
	snprintf(more, sizeof(more), "watcher = %s\n%s", getenv("PIV_WATCHER"),
	         extra ? extra : "removal_action = lock");
	configure(&SETUP(.scenario = scenario, .use_shim = true, .shim_env = env, .extra = more));
}

/* Run between the authentication and the session, when set. */
static void (*before_open)(void);

static void
start_session(struct sess *s, const char *service, const char *user, const char *session_id)
{
	struct pam_conv conv = { conv_fn, &s->conv };
	char env[100], *log;
	const char *w;
	int saved, fd;

	memset(s, 0, sizeof(*s));
	s->conv.pin = PIN;
	snprintf(s->log_path, sizeof(s->log_path), "%s/session-%s.log", work,
	         session_id ? session_id : "none");
	fflush(stderr);
	saved = dup(2);
	fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	assert_int_equal(pam_start(service, user, &conv, &s->ph), PAM_SUCCESS);
	s->auth_rv = pam_authenticate(s->ph, 0);
	if (session_id != NULL) {
		snprintf(env, sizeof(env), "XDG_SESSION_ID=%s", session_id);
		assert_int_equal(pam_putenv(s->ph, env), PAM_SUCCESS);
	}
	if (before_open != NULL)
		before_open();
	s->open_rv = s->auth_rv == PAM_SUCCESS ? pam_open_session(s->ph, 0) : -1;
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	log = slurp(s->log_path);
	if ((w = strstr(log, " watcher=")) != NULL)
		s->watcher = atoi(w + 9);
	free(log);
}

static int
end_session(struct sess *s)
{
	int rv = pam_close_session(s->ph, 0);

	pam_end(s->ph, PAM_SUCCESS);
	s->ph = NULL;
	return rv;
}

static bool
file_has(const char *path, const char *needle)
{
	char *text = slurp(path);
	bool has = strstr(text, needle) != NULL;

	free(text);
	return has;
}

/* Seconds until PATH holds NEEDLE, or -1 after limit seconds. */
static double
wait_for(const char *path, const char *needle, double limit)
{
	double t0 = now();

	while (now() - t0 < limit) {
		if (file_has(path, needle))
			return now() - t0;
		usleep(20 * 1000);
	}
	return -1;
}

static bool
alive(int pid)
{
	return pid > 0 && kill(pid, 0) == 0;
}

static bool
gone_within(int pid, double limit)
{
	double t0 = now();

	while (now() - t0 < limit) {
		if (!alive(pid))
			return true;
		usleep(20 * 1000);
	}
	return false;
}

static void
set_presence(const char *file, const char *state)
{
	char text[32];

	snprintf(text, sizeof(text), "%s\n", state);
	write_file(path_in(work, file), text, 0644);
}

static void
must_open(struct sess *s)
{
	if (s->auth_rv != PAM_SUCCESS || s->open_rv != PAM_SUCCESS || !alive(s->watcher)) {
		char *log = slurp(s->log_path);
		fail_msg("auth %d open %d watcher %d:\n%s", s->auth_rv, s->open_rv, s->watcher, log);
	}
}

static const char *
login1_log(void)
{
	return path_in(bus_dir, "login1.log");
}

/* Which logind session this process (the login) is in, as login1d says. */
static void
in_session(const char *id)
{
	char pids[100];

	snprintf(pids, sizeof(pids), "%d %s\n", (int)getpid(), id);
	write_file(path_in(bus_dir, "pids"), pids, 0644);
}

/* Removal to action, one case per mode: the action reaches logind within
 * 2 s, once, and the watcher logged it. */
static void
check_removal(bool events, const char *action, const char *method)
{
	char extra[100], want[64];
	struct sess s;
	double latency;

	snprintf(extra, sizeof(extra), "removal_action = %s", action);
	configure_watch("rsa2048", "presence-a", NULL, events, NULL, extra);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	assert_true(file_has(s.log_path, "card removal watch started: session=c1 user=alice"));
	usleep(300 * 1000);
	assert_false(file_has(login1_log(), "Session"));
	set_presence("presence-a", "absent");
	snprintf(want, sizeof(want), "%s c1 ", method);
	latency = wait_for(login1_log(), want, 5);
	if (latency < 0 || latency > 2.0)
		fail_msg("%s after %.2f s (events %d)", method, latency, events);
	printf("removal to %s (%s): %.0f ms\n", method, events ? "C_WaitForSlotEvent" : "polling",
	       latency * 1000);
	assert_true(wait_for(path_in(work, "watch.log"), "card removed: session=c1 user=alice "
	                     "token=\"rsa2048\"", 3) >= 0);
	assert_int_equal(end_session(&s), PAM_SUCCESS);
	assert_true(gone_within(s.watcher, 3));
}

static void test_removal_locks(void **st) { (void)st; check_removal(true, "lock", "LockSession"); }

static void
test_removal_locks_polling(void **st)
{
	(void)st;
	check_removal(false, "lock", "LockSession");
}

static void
test_removal_terminates(void **st)
{
	(void)st;
	check_removal(true, "terminate", "TerminateSession");
}

/* Another card in the same reader is not the card that opened the
 * session: locked. Putting the card back unlocks nothing, and re-arms
 * the watch: the next removal locks again. */
static void
test_card_replaced_and_back(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	set_presence("presence-a", "other");
	assert_true(wait_for(login1_log(), "LockSession c1 ", 3) >= 0);
	assert_true(wait_for(path_in(work, "watch.log"), "another card is in the reader", 2) >= 0);
	set_presence("presence-a", "present");
	assert_true(wait_for(path_in(work, "watch.log"), "the card is back", 4) >= 0);
	assert_false(file_has(login1_log(), "Unlock"));
	write_file(login1_log(), "", 0644);
	set_presence("presence-a", "absent");
	assert_true(wait_for(login1_log(), "LockSession c1 ", 3) >= 0);
	assert_int_equal(end_session(&s), PAM_SUCCESS);
	assert_true(gone_within(s.watcher, 3));
}

/* Two sessions of two cards (two tokens, one presence file each): pulling
 * one card locks its session only. */
static void
test_two_sessions_two_cards(void **st)
{
	struct sess a, b;

	(void)st;
	configure_watch("two", "presence-a", "Alice card", true, NULL, NULL);
	start_session(&a, "piv_session", "alice", "c1");
	must_open(&a);
	configure_watch("two", "presence-b", "Bob card", true, NULL, NULL);
	in_session("c2");
	start_session(&b, "piv_session", "bob", "c2");
	must_open(&b);
	set_presence("presence-b", "absent");
	assert_true(wait_for(login1_log(), "LockSession c2 ", 3) >= 0);
	usleep(1500 * 1000);
	assert_false(file_has(login1_log(), "LockSession c1 "));
	assert_int_equal(end_session(&a), PAM_SUCCESS);
	assert_int_equal(end_session(&b), PAM_SUCCESS);
	assert_true(gone_within(a.watcher, 3) && gone_within(b.watcher, 3));
}

/* Another card in another reader leaves: not the session's card. */
static void
test_other_card_removed(void **st)
{
	struct sess s;

	(void)st;
	/* alice's card is watched; the presence file governs Bob's token */
	configure_watch("two", "presence-b", "Bob card", true, NULL, NULL);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	set_presence("presence-b", "absent");
	sleep(3);
	assert_false(file_has(login1_log(), "Session c1"));
	assert_true(alive(s.watcher));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
	assert_true(gone_within(s.watcher, 3));
}

/* The session closes first: the watcher ends with it, and a removal
 * afterwards does nothing. */
static void
test_session_closed_first(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	assert_int_equal(end_session(&s), PAM_SUCCESS);
	assert_true(gone_within(s.watcher, 3));
	set_presence("presence-a", "absent");
	sleep(2);
	assert_false(file_has(login1_log(), "Session"));
}

/* logind forgets the session (it ended elsewhere): the watcher ends by
 * itself. */
static void
test_session_gone_in_logind(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	write_file(path_in(bus_dir, "sessions"), "c2\n", 0644);
	assert_true(gone_within(s.watcher, 8));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
}

/* A session not opened by a card (password): no watcher. */
static void
test_password_session_not_watched(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	start_session(&s, "piv_pwsession", "alice", "c1");
	assert_int_equal(s.auth_rv, PAM_SUCCESS);
	assert_int_equal(s.open_rv, PAM_SUCCESS);
	assert_int_equal(s.watcher, 0);
	assert_false(file_has(s.log_path, "card removal watch started"));
	set_presence("presence-a", "absent");
	sleep(2);
	assert_false(file_has(login1_log(), "Session"));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
}

/* The watcher killed: nothing acts (nothing can), and closing the
 * session finds it gone. */
static void
test_watcher_killed(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	assert_int_equal(kill(s.watcher, SIGKILL), 0);
	assert_true(gone_within(s.watcher, 3));
	set_presence("presence-a", "absent");
	sleep(2);
	assert_false(file_has(login1_log(), "Session"));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
}

/* The PKCS#11 module crashes or hangs in the watcher, mid-session: with
 * removal_watch = required the session is locked (it can no longer be
 * watched); with optional it is logged and left alone. */
static void
check_module_fault(const char *fault, bool required)
{
	struct sess s;
	char extra[100];

	snprintf(extra, sizeof(extra), "removal_action = lock\nremoval_watch = %s",
	         required ? "required" : "optional");
	/* polling: the module is called every second */
	configure_watch("rsa2048", "presence-a", NULL, false, NULL, extra);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	write_file(path_in(work, "fault"), fault, 0644);
	if (required) {
		assert_true(wait_for(login1_log(), "LockSession c1 ", 10) >= 0);
		assert_true(wait_for(path_in(work, "watch.log"), "can no longer be watched", 2) >= 0);
	} else {
		assert_true(wait_for(path_in(work, "watch.log"), "the session is not locked "
		                     "(removal_watch = optional)", 10) >= 0);
		assert_false(file_has(login1_log(), "Session"));
	}
	unlink(path_in(work, "fault"));
	assert_true(gone_within(s.watcher, 3));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
}

static void test_module_crash_required(void **st) { (void)st; check_module_fault("crash", true); }
static void test_module_crash_optional(void **st) { (void)st; check_module_fault("crash", false); }
static void test_module_hang_required(void **st) { (void)st; check_module_fault("hang", true); }

static const char *fault_to_set;

static void
set_fault(void)
{
	write_file(path_in(work, "fault"), fault_to_set, 0644);
}

/* The module crashes or hangs in the watcher before it watches the card
 * (after the authentication): required refuses the session, optional
 * opens it unwatched. A hang at the start is bounded by card_timeout (a
 * slow module may take seconds to load); later, by the 5 s heartbeat. */
static void
check_fault_at_start(const char *fault, const char *why)
{
	struct sess s;

	fault_to_set = fault;
	before_open = set_fault;
	for (int required = 1; required >= 0; required--) {
		char extra[100];
		snprintf(extra, sizeof(extra), "removal_action = lock\nremoval_watch = %s",
		         required ? "required" : "optional");
		unlink(path_in(work, "fault"));
		configure_watch("rsa2048", "presence-a", NULL, false, NULL, extra);
		start_session(&s, "piv_session", "alice", "c1");
		if (s.auth_rv != PAM_SUCCESS || s.open_rv != (required ? PAM_SESSION_ERR : PAM_SUCCESS) ||
		    s.watcher != 0 || !file_has(s.log_path, why)) {
			char *log = slurp(s.log_path);
			before_open = NULL;
			fail_msg("required=%d auth %d open %d watcher %d:\n%s", required, s.auth_rv,
			         s.open_rv, s.watcher, log);
		}
		end_session(&s);
	}
	before_open = NULL;
	unlink(path_in(work, "fault"));
	assert_false(file_has(login1_log(), "Session"));
}

static void
test_module_crash_at_start(void **st)
{
	(void)st;
	check_fault_at_start("crash", "the card watch ended (its PKCS#11 module crashed?)");
}

static void
test_module_hang_at_start(void **st)
{
	(void)st;
	check_fault_at_start("hang", "the watcher was not ready within card_timeout (10 s)");
}

/* The bus cannot be reached, or logind does not know the session, or
 * there is no session id: required refuses the session, optional opens
 * it unwatched; both say why. */
static void
check_cannot_watch(const char *bus, const char *session_id, const char *why)
{
	struct sess s;

	for (int required = 1; required >= 0; required--) {
		char extra[100];
		snprintf(extra, sizeof(extra), "removal_action = lock\nremoval_watch = %s",
		         required ? "required" : "optional");
		configure_watch("rsa2048", "presence-a", NULL, true, bus, extra);
		start_session(&s, "piv_session", "alice", session_id);
		assert_int_equal(s.auth_rv, PAM_SUCCESS);
		if (s.open_rv != (required ? PAM_SESSION_ERR : PAM_SUCCESS) ||
		    !file_has(s.log_path, why) || s.watcher != 0) {
			char *log = slurp(s.log_path);
			fail_msg("required=%d open %d watcher %d:\n%s", required, s.open_rv, s.watcher,
			         log);
		}
		assert_true(file_has(s.log_path, required ? "the session does not open" :
		                     "the session is not watched"));
		end_session(&s);
	}
}

static void
test_bus_down(void **st)
{
	char bus[4200];

	(void)st;
	snprintf(bus, sizeof(bus), "unix:path=%s/no-bus", work);
	check_cannot_watch(bus, "c1", "cannot reach the system bus");
}

/* XDG_SESSION_ID in the PAM environment names another session than the
 * one logind has the login in. */
static void
test_session_id_disagrees(void **st)
{
	(void)st;
	check_cannot_watch(NULL, "c2",
	                   "XDG_SESSION_ID c2 is not the logind session of this login (c1)");
}

/* logind has the login in no session (no pam_systemd before pam_piv). */
static void
test_no_session(void **st)
{
	(void)st;
	write_file(path_in(bus_dir, "pids"), "", 0644);
	check_cannot_watch(NULL, NULL, "the login is in no logind session");
}

/* The process environment is the caller's (sudo keeps the user's):
 * XDG_SESSION_ID there names nothing. The session watched is the one
 * logind has the login in, and only that one is locked. */
static void
test_process_environment_ignored(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	setenv("XDG_SESSION_ID", "c2", 1);
	start_session(&s, "piv_session", "alice", NULL);
	unsetenv("XDG_SESSION_ID");
	must_open(&s);
	assert_true(file_has(s.log_path, "card removal watch started: session=c1 "));
	set_presence("presence-a", "absent");
	assert_true(wait_for(login1_log(), "LockSession c1 ", 3) >= 0);
	assert_false(file_has(login1_log(), "LockSession c2"));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
	assert_true(gone_within(s.watcher, 3));
}

/* The card is not in a reader any more when the session opens. */
static void
test_card_gone_before_session(void **st)
{
	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	/* authenticate with the card, pull it, then open the session */
	{
		struct sess s;
		struct pam_conv conv = { conv_fn, &s.conv };
		char *log;
		int saved = dup(2), fd;

		memset(&s, 0, sizeof(s));
		s.conv.pin = PIN;
		snprintf(s.log_path, sizeof(s.log_path), "%s/session-gone.log", work);
		fflush(stderr);
		fd = open(s.log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		dup2(fd, 2);
		close(fd);
		assert_int_equal(pam_start("piv_session", "alice", &conv, &s.ph), PAM_SUCCESS);
		s.auth_rv = pam_authenticate(s.ph, 0);
		set_presence("presence-a", "absent");
		assert_int_equal(pam_putenv(s.ph, "XDG_SESSION_ID=c1"), PAM_SUCCESS);
		s.open_rv = pam_open_session(s.ph, 0);
		fflush(stderr);
		dup2(saved, 2);
		close(saved);
		log = slurp(s.log_path);
		if (s.auth_rv != PAM_SUCCESS || s.open_rv != PAM_SESSION_ERR ||
		    strstr(log, "the card is not in any reader") == NULL)
			fail_msg("auth %d open %d:\n%s", s.auth_rv, s.open_rv, log);
		free(log);
		pam_end(s.ph, PAM_SUCCESS);
	}
}

/* logind refuses to lock: logged as a failure, never as done. */
static void
test_logind_refuses(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, NULL);
	start_session(&s, "piv_session", "alice", "c1");
	must_open(&s);
	write_file(path_in(bus_dir, "refuse"), "", 0644);
	set_presence("presence-a", "absent");
	assert_true(wait_for(login1_log(), "Refused LockSession c1 ", 3) >= 0);
	assert_true(wait_for(path_in(work, "watch.log"), "action=lock failed", 2) >= 0);
	unlink(path_in(bus_dir, "refuse"));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
	assert_true(gone_within(s.watcher, 3));
}

/* removal_action = none (the default): no watcher, even for a card. */
static void
test_removal_action_none(void **st)
{
	struct sess s;

	(void)st;
	configure_watch("rsa2048", "presence-a", NULL, true, NULL, "debug = yes");
	start_session(&s, "piv_session", "alice", "c1");
	assert_int_equal(s.open_rv, PAM_SUCCESS);
	assert_int_equal(s.watcher, 0);
	assert_false(file_has(s.log_path, "card removal watch"));
	assert_int_equal(end_session(&s), PAM_SUCCESS);
}

int
main(void)
{
#define S(f) cmocka_unit_test_setup(f, session_setup)
	const struct CMUnitTest tests[] = {
		S(test_removal_locks), S(test_removal_locks_polling), S(test_removal_terminates),
		S(test_card_replaced_and_back), S(test_two_sessions_two_cards),
		S(test_other_card_removed), S(test_session_closed_first),
		S(test_session_gone_in_logind), S(test_password_session_not_watched),
		S(test_watcher_killed), S(test_module_crash_required), S(test_module_crash_optional),
		S(test_module_hang_required), S(test_module_crash_at_start),
		S(test_module_hang_at_start), S(test_bus_down), S(test_session_id_disagrees),
		S(test_no_session), S(test_process_environment_ignored), S(test_card_gone_before_session), S(test_logind_refuses),
		S(test_removal_action_none),
	};
#undef S

	bus_dir = getenv("PIV_BUS_DIR");
	bus_addr = getenv("PIV_BUS_ADDRESS");
	if (bus_dir == NULL || bus_addr == NULL || getenv("PIV_WATCHER") == NULL) {
		fprintf(stderr, "run through tests/pam-tests.sh (PIV_BUS_DIR, PIV_BUS_ADDRESS, "
		        "PIV_WATCHER)\n");
		return 1;
	}
	return PIV_TEST_MAIN("session", tests);
}
