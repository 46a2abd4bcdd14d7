/* pam-piv-watch: locks or terminates a logind session when the card that
 * opened it leaves its reader (removal_action; src/pam/removal.c starts it
 * from pam_sm_open_session, detached, with the card helper's clean
 * environment and ids, and ends it from pam_sm_close_session).
 *
 * Two processes, as in the module: this one speaks D-Bus to logind and
 * never loads PKCS#11 code; its child (card_main) loads the module through
 * p11-kit, finds the token by label and serial, and reports on a pipe:
 * "R" when it watches it, "H" every second while it can (a heartbeat), and
 * "G why" when the card is gone or replaced. A child that dies or stops
 * beating is a card that can no longer be watched: with --required the
 * session is acted on as if the card had left. Reinserting the card never
 * unlocks anything; after a lock, the watch resumes when the same card is
 * back, so that the next removal locks again.
 *
 * Ends by itself when logind no longer knows the session, on SIGTERM, and
 * after terminating the session. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>

#include "helper/p11.h"
#include "common/util.h"

#define READY_FD 3
#define HEARTBEAT_MS 1000
#define HEARTBEAT_LOST_MS 5000   /* no beat for this long: the module hangs */
#define CHECK_STUCK_MS 3000      /* a check running this long stops the beats */
#define POLL_MS 1000             /* without C_WaitForSlotEvent */
#define SESSION_CHECK_MS 5000    /* does logind still know the session? */
#define BUS_TIMEOUT_US (5 * 1000 * 1000)

struct opts {
	const char *module, *label, *serial, *session, *user;
	long pid;          /* the PAM process: its logind session is watched */
	bool terminate, required, debug;
};

static struct opts o;
static volatile sig_atomic_t stop;
static FILE *log_copy; /* PIV_WATCH_LOG_FILE: the tests read the log there */

static void wlog(int prio, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
wlog(int prio, const char *fmt, ...)
{
	char line[700];
	va_list ap;

	if (prio == LOG_DEBUG && !o.debug)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	syslog(prio, "%s", line);
	if (log_copy != NULL) {
		fprintf(log_copy, "pam-piv-watch[%d]: %s\n", (int)getpid(), line);
		fflush(log_copy);
	}
}

static void p11_log_cb(void *ud, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
p11_log_cb(void *ud, int prio, const char *fmt, ...)
{
	char line[600];
	va_list ap;

	(void)ud;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	wlog(prio, "%s", line);
}

/* A line to whoever waits on fd 3 (the module, until "ready"). */
static void
say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One line to fd, cut to fit: one write of less than PIPE_BUF, never
 * interleaved with another writer's line. */
static void vtell(int fd, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void
vtell(int fd, const char *fmt, va_list ap)
{
	char line[500];
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);

	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	(void)!write(fd, line, (size_t)n);
}

static void
say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vtell(READY_FD, fmt, ap);
	va_end(ap);
}

/* ---- the card side (the child) ------------------------------------- */

struct card_watch {
	struct p11_ctx p11;
	CK_FUNCTION_LIST *module;
	CK_SLOT_ID slot;
	int fd;                       /* to the parent */
	atomic_llong check_started;   /* ms, 0 when no check runs */
};

static void
tell(int fd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
tell(int fd, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vtell(fd, fmt, ap);
	va_end(ap);
}

static void *
heartbeat(void *arg)
{
	struct card_watch *w = arg;

	for (;;) {
		long long started = atomic_load(&w->check_started);
		if (started == 0 || piv_now_ms() - started < CHECK_STUCK_MS)
			tell(w->fd, "H");
		usleep(HEARTBEAT_MS * 1000);
	}
	return NULL;
}

/* Whether the token in slot is ours: 1 yes, 0 no (why says what is there
 * instead), -1 the slot cannot be read. */
static int
slot_has_card(CK_FUNCTION_LIST *m, CK_SLOT_ID slot, char *why, size_t why_size)
{
	CK_TOKEN_INFO ti;
	char label[64], serial[64];
	CK_RV rv;

	rv = m->C_GetTokenInfo(slot, &ti);
	if (rv == CKR_TOKEN_NOT_PRESENT || rv == CKR_DEVICE_REMOVED || rv == CKR_SLOT_ID_INVALID) {
		piv_fmt(why, why_size, "the card left the reader");
		return 0;
	}
	if (rv != CKR_OK) {
		piv_fmt(why, why_size, "the reader cannot be read (C_GetTokenInfo: 0x%lx)",
		        (unsigned long)rv);
		return -1;
	}
	p11_copy_padded(label, sizeof(label), ti.label, sizeof(ti.label));
	p11_copy_padded(serial, sizeof(serial), ti.serialNumber, sizeof(ti.serialNumber));
	if (strcmp(label, o.label) != 0 || strcmp(serial, o.serial) != 0) {
		char esc[140];
		piv_fmt(why, why_size, "another card is in the reader (token \"%s\")",
		        piv_escape_str(label, esc, sizeof(esc)));
		return 0;
	}
	return 1;
}

/* Looks for the card in every slot of every module: 0 found (w->module,
 * w->slot), -1 not there. */
static int
find_card(struct card_watch *w)
{
	char why[200];

	for (size_t mi = 0; w->p11.modules != NULL && w->p11.modules[mi] != NULL; mi++) {
		CK_FUNCTION_LIST *m = w->p11.modules[mi];
		CK_SLOT_ID slots[64];
		CK_ULONG n = 64;

		if (m->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK || n > 64)
			continue;
		for (CK_ULONG i = 0; i < n; i++) {
			if (slot_has_card(m, slots[i], why, sizeof(why)) == 1) {
				w->module = m;
				w->slot = slots[i];
				return 0;
			}
		}
	}
	return -1;
}

static void __attribute__((noreturn))
card_main(int fd, bool wait_for_card)
{
	struct card_watch w;
	pthread_t beat;
	bool events;
	char why[300];
	CK_SLOT_ID any;
	CK_RV rv;

	memset(&w, 0, sizeof(w));
	w.fd = fd;
	atomic_store(&w.check_started, piv_now_ms());
	if (pthread_create(&beat, NULL, heartbeat, &w) != 0) {
		tell(fd, "E cannot start a thread");
		_exit(1);
	}
	if (p11_load(&w.p11, o.module, p11_log_cb, NULL) != 0) {
		tell(fd, "E cannot load the PKCS#11 module %s", o.module);
		_exit(1);
	}
	while (find_card(&w) != 0) {
		if (!wait_for_card) {
			tell(fd, "E the card is not in any reader");
			_exit(1);
		}
		atomic_store(&w.check_started, 0);
		usleep(POLL_MS * 1000);
		atomic_store(&w.check_started, piv_now_ms());
	}
	/* C_WaitForSlotEvent where the module has it, else a poll a second */
	rv = w.module->C_WaitForSlotEvent(CKF_DONT_BLOCK, &any, NULL);
	events = rv == CKR_OK || rv == CKR_NO_EVENT;
	wlog(LOG_DEBUG, "watching slot %lu (%s)", (unsigned long)w.slot,
	     events ? "C_WaitForSlotEvent" : "polling every second");
	atomic_store(&w.check_started, 0);
	tell(fd, "R");
	for (;;) {
		int has;
		if (events) {
			rv = w.module->C_WaitForSlotEvent(0, &any, NULL);
			if (rv != CKR_OK && rv != CKR_NO_EVENT) {
				wlog(LOG_DEBUG, "C_WaitForSlotEvent: 0x%lx: polling from now on",
				     (unsigned long)rv);
				events = false;
			}
		} else {
			usleep(POLL_MS * 1000);
		}
		atomic_store(&w.check_started, piv_now_ms());
		has = slot_has_card(w.module, w.slot, why, sizeof(why));
		atomic_store(&w.check_started, 0);
		if (has != 1) {
			tell(fd, "G %s", why);
			_exit(0);
		}
	}
}

/* ---- the bus side (the parent) ------------------------------------- */

static sd_bus *bus;

static int
bus_open(char *why, size_t why_size)
{
	int r;

	if (bus != NULL)
		return 0;
	if ((r = sd_bus_open_system(&bus)) < 0) {
		piv_fmt(why, why_size, "cannot reach the system bus: %s", strerror(-r));
		bus = NULL;
		return -1;
	}
	(void)sd_bus_set_method_call_timeout(bus, BUS_TIMEOUT_US);
	return 0;
}

static void
bus_drop(void)
{
	bus = sd_bus_flush_close_unref(bus);
}

/* A call to logind's Manager with the session id: 0, 1 when logind says
 * there is no such session, -1 on another error (why). */
static int
logind_call(const char *method, char *why, size_t why_size)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	int r, rc = 0;

	if (bus_open(why, why_size) != 0)
		return -1;
	r = sd_bus_call_method(bus, "org.freedesktop.login1", "/org/freedesktop/login1",
	                       "org.freedesktop.login1.Manager", method, &error, &reply, "s",
	                       o.session);
	if (r < 0) {
		if (sd_bus_error_has_name(&error, "org.freedesktop.login1.NoSuchSession")) {
			rc = 1;
		} else {
			rc = -1;
			if (!sd_bus_is_open(bus))
				bus_drop();
		}
		piv_fmt(why, why_size, "logind %s: %s", method,
		        error.message != NULL ? error.message : strerror(-r));
	}
	sd_bus_error_free(&error);
	sd_bus_message_unref(reply);
	return rc;
}

/* The logind session of the PAM process (GetSessionByPID): 0 with id,
 * or -1 with why. An id that --session claimed must be that one. */
static int
find_session(char *id, size_t id_size, char *why, size_t why_size)
{
	sd_bus_error error = SD_BUS_ERROR_NULL;
	sd_bus_message *reply = NULL;
	const char *path;
	char *decoded = NULL;
	int r, rc = -1;

	if (bus_open(why, why_size) != 0)
		return -1;
	r = sd_bus_call_method(bus, "org.freedesktop.login1", "/org/freedesktop/login1",
	                       "org.freedesktop.login1.Manager", "GetSessionByPID", &error, &reply,
	                       "u", (uint32_t)o.pid);
	if (r < 0) {
		if (sd_bus_error_has_name(&error, "org.freedesktop.login1.NoSessionForPID"))
			piv_fmt(why, why_size, "the login is in no logind session (pam_systemd must "
			        "come before pam_piv in the session stack)");
		else
			piv_fmt(why, why_size, "logind GetSessionByPID: %s",
			        error.message != NULL ? error.message : strerror(-r));
		goto out;
	}
	/* /org/freedesktop/login1/session/<escaped id> */
	if (sd_bus_message_read(reply, "o", &path) < 0 ||
	    sd_bus_path_decode(path, "/org/freedesktop/login1/session", &decoded) <= 0 ||
	    decoded == NULL || strlen(decoded) >= id_size || strlen(decoded) == 0 ||
	    strspn(decoded, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") !=
	            strlen(decoded)) {
		piv_fmt(why, why_size, "logind gave an unexpected session path");
		goto out;
	}
	if (o.session != NULL && strcmp(o.session, decoded) != 0) {
		piv_fmt(why, why_size, "XDG_SESSION_ID %s is not the logind session of this login "
		        "(%s)", o.session, decoded);
		goto out;
	}
	snprintf(id, id_size, "%s", decoded);
	rc = 0;
out:
	free(decoded);
	sd_bus_error_free(&error);
	sd_bus_message_unref(reply);
	return rc;
}

static pid_t
start_card_child(int *fd, bool wait_for_card)
{
	int p[2];
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid == 0) {
		close(p[0]);
		close(READY_FD);
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() == 1)
			_exit(1);
		card_main(p[1], wait_for_card);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	*fd = p[0];
	return pid;
}

static void
end_child(pid_t *pid, int *fd)
{
	if (*pid > 0) {
		(void)kill(*pid, SIGKILL);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (*fd >= 0)
		close(*fd);
	*pid = -1;
	*fd = -1;
}

/* The card is gone (or can no longer be watched): lock or terminate. */
static void
act(const char *reason)
{
	const char *method = o.terminate ? "TerminateSession" : "LockSession";
	char why[400], esc_label[140], esc_user[300];
	int rc;

	piv_escape_str(o.label, esc_label, sizeof(esc_label));
	piv_escape_str(o.user, esc_user, sizeof(esc_user));
	rc = logind_call(method, why, sizeof(why));
	if (rc < 0 && bus == NULL)
		rc = logind_call(method, why, sizeof(why)); /* the bus came back? */
	if (rc == 0)
		wlog(LOG_NOTICE, "card removed: session=%s user=%s token=\"%s\" action=%s: %s",
		     o.session, esc_user, esc_label, o.terminate ? "terminate" : "lock", reason);
	else
		wlog(LOG_ERR, "card removed: session=%s user=%s token=\"%s\" action=%s failed: %s "
		     "(%s)", o.session, esc_user, esc_label, o.terminate ? "terminate" : "lock", why,
		     reason);
}

static void
on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

/* Reads the child's lines: 'H' beats, 'R' ready, 'G why' gone, 'E why'
 * error. Returns the first non-beat line's kind (text in why), 'H' when
 * only beats came, 0 at EOF. */
static char
read_child(int fd, char *buf, size_t *len, size_t size, int64_t *last_beat, char *why,
           size_t why_size)
{
	ssize_t n = read(fd, buf + *len, size - *len);
	char *nl;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN ? 'H' : 0;
	if (n == 0)
		return 0;
	*len += (size_t)n;
	while ((nl = memchr(buf, '\n', *len)) != NULL) {
		char kind = buf[0];
		*nl = '\0';
		if (kind == 'H') {
			*last_beat = piv_now_ms();
		} else {
			piv_fmt(why, why_size, "%s", buf[1] == ' ' ? buf + 2 : "");
			*len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, *len);
			return kind;
		}
		*len -= (size_t)(nl + 1 - buf);
		memmove(buf, nl + 1, *len);
	}
	if (*len == size)
		*len = 0; /* nonsense: drop it */
	return 'H';
}

static int
watch(void)
{
	char buf[1024], why[400];
	size_t len = 0;
	int64_t last_beat = piv_now_ms(), last_session_check = piv_now_ms();
	bool ready_said = false, armed = false;
	int fd = -1;
	pid_t child = start_card_child(&fd, false);

	if (child < 0) {
		say("error cannot start the card watch: %s", strerror(errno));
		return 1;
	}
	while (!stop) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		char kind = 'H';
		int64_t t;

		if (poll(&pfd, 1, 500) > 0)
			kind = read_child(fd, buf, &len, sizeof(buf), &last_beat, why, sizeof(why));
		t = piv_now_ms();
		if (kind == 'R') {
			armed = true;
			if (!ready_said) {
				say("ready %s", o.session);
				close(READY_FD);
				ready_said = true;
			} else {
				wlog(LOG_INFO, "session=%s: the card is back: watched again", o.session);
			}
			continue;
		}
		if (kind == 'E' && !ready_said) {
			say("error %s", why);
			end_child(&child, &fd);
			return 1;
		}
		if (kind == 'G') {
			end_child(&child, &fd);
			act(why);
			if (o.terminate)
				return 0;
			/* locked: watch again once the same card is back */
			armed = false;
			len = 0;
			last_beat = piv_now_ms();
			if ((child = start_card_child(&fd, true)) < 0) {
				wlog(LOG_ERR, "session=%s: cannot watch again: %s", o.session,
				     strerror(errno));
				return 1;
			}
			continue;
		}
		/* (before ready, loading a slow module is no hang: the module's
		 * card_timeout bounds the start) */
		if (kind == 0 || kind == 'E' || (ready_said && t - last_beat > HEARTBEAT_LOST_MS)) {
			const char *what = kind == 0 ? "the card watch ended (its PKCS#11 module "
			                   "crashed?)" : kind == 'E' ? why : "the PKCS#11 module hangs";
			end_child(&child, &fd);
			if (!ready_said) {
				say("error %s", what);
				return 1;
			}
			if (o.required && armed) {
				char reason[300];
				piv_fmt(reason, sizeof(reason), "the card can no longer be watched: %s "
				        "(removal_watch = required)", what);
				act(reason);
			} else {
				wlog(LOG_WARNING, "session=%s: the card can no longer be watched: %s; "
				     "the session is not locked (removal_watch = optional)", o.session,
				     what);
			}
			return 1;
		}
		if (ready_said && t - last_session_check >= SESSION_CHECK_MS) {
			last_session_check = t;
			if (logind_call("GetSession", why, sizeof(why)) == 1) {
				wlog(LOG_DEBUG, "session=%s has ended: the watch ends", o.session);
				break;
			}
		}
	}
	end_child(&child, &fd);
	return 0;
}

static void
usage(FILE *f)
{
	fprintf(f, "usage: pam-piv-watch --module MODULE --label LABEL --serial SERIAL "
	        "--pid PID [--session ID] --user USER [--action lock|terminate] "
	        "[--required|--optional] [--debug]\n"
	        "Started by pam_piv's session phase (removal_action); see pam_piv.conf(5).\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "module", required_argument, NULL, 'm' },
		{ "label", required_argument, NULL, 'l' },
		{ "serial", required_argument, NULL, 's' },
		{ "session", required_argument, NULL, 'S' },
		{ "pid", required_argument, NULL, 'p' },
		{ "user", required_argument, NULL, 'u' },
		{ "action", required_argument, NULL, 'a' },
		{ "required", no_argument, NULL, 'r' },
		{ "optional", no_argument, NULL, 'o' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct sigaction sa;
	const char *copy;
	char why[400], session[65];
	int opt, rc;

	o.required = true;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case 'm': o.module = optarg; break;
		case 'l': o.label = optarg; break;
		case 's': o.serial = optarg; break;
		case 'S': o.session = optarg; break;
		case 'p': {
			char *end;
			o.pid = strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o.pid < 1 || o.pid > 4194304) {
				usage(stderr);
				return 2;
			}
			break;
		}
		case 'u': o.user = optarg; break;
		case 'a':
			if (strcmp(optarg, "lock") != 0 && strcmp(optarg, "terminate") != 0) {
				usage(stderr);
				return 2;
			}
			o.terminate = strcmp(optarg, "terminate") == 0;
			break;
		case 'r': o.required = true; break;
		case 'o': o.required = false; break;
		case 'd': o.debug = true; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("pam-piv-watch (pam_piv) %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind != argc || o.module == NULL || o.label == NULL || o.serial == NULL ||
	    o.pid == 0 || o.user == NULL) {
		usage(stderr);
		return 2;
	}
	openlog("pam-piv-watch", LOG_PID, LOG_AUTHPRIV);
	if ((copy = getenv("PIV_WATCH_LOG_FILE")) != NULL && *copy == '/')
		log_copy = fopen(copy, "ae");
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	say("started %d", (int)getpid());
	/* logind must know the session before anything is promised */
	if (find_session(session, sizeof(session), why, sizeof(why)) != 0) {
		say("error %s", why);
		return 1;
	}
	o.session = session;
	rc = watch();
	bus_drop();
	if (log_copy != NULL)
		fclose(log_copy);
	return rc;
}
