/* tests/login1d: a fake systemd-logind for the card removal watcher's tests.
 * It serves org.freedesktop.login1.Manager on a private D-Bus (tests/mkbus.sh
 * starts both), knows the sessions listed in a file, and records in a log
 * file every LockSession and TerminateSession it is asked for.
 *
 * usage: login1d --address ADDR --sessions FILE --log FILE
 *                [--refuse-file FILE] [--pidfile FILE] [--max-seconds N]
 *
 *   --address ADDR    the bus to connect to (never the system bus by default)
 *   --sessions FILE   the known session ids, one a line; re-read on every
 *                     call, so a test adds or ends sessions by rewriting it
 *                     (a missing file means no sessions)
 *   --log FILE        appended to, one line a call, written and closed
 *                     before the reply is sent:
 *                       LockSession ID MS UID
 *                       TerminateSession ID MS UID
 *                       NoSuchSession METHOD ID MS
 *                       Refused METHOD ID MS
 *                     MS is CLOCK_REALTIME in milliseconds, UID the caller's
 *                     (effective) uid, or "unknown"
 *   --pids FILE       which process is in which session, "PID ID" a line,
 *                     re-read on every GetSessionByPID
 *   --refuse-file F   while F exists, LockSession and TerminateSession of a
 *                     known session fail with
 *                     org.freedesktop.DBus.Error.AccessDenied
 *   --pidfile FILE    written (atomically) once the name is acquired,
 *                     removed at exit
 *   --max-seconds N   exit by ourselves after N seconds (default 600)
 *
 * Methods (object /org/freedesktop/login1):
 *   GetSession(s) -> o            /org/freedesktop/login1/session/<escaped>
 *   GetSessionByPID(u) -> o       the session of a pid in the pids file that
 *                                 is also in the sessions file, else
 *                                 org.freedesktop.login1.NoSessionForPID
 *   LockSession(s), TerminateSession(s)
 *   ListSessions() -> a(susso)    (id, 0, "root", "", path) for each session
 * An unknown session id answers org.freedesktop.login1.NoSuchSession.
 * TerminateSession also removes the id from the sessions file, as logind
 * forgets a session that ended.
 *
 * Exit status: 0 on SIGTERM, SIGINT or --max-seconds; 1 on errors and when
 * the bus goes away; 2 on usage errors. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#define BUS_NAME "org.freedesktop.login1"
#define OBJ_PATH "/org/freedesktop/login1"
#define IFACE "org.freedesktop.login1.Manager"
#define SESSION_PREFIX "/org/freedesktop/login1/session"
#define ERR_NO_SUCH_SESSION "org.freedesktop.login1.NoSuchSession"
#define MAX_SESSIONS 256
#define MAX_ID 256
#define DEFAULT_MAX_SECONDS 600L

static const char *sessions_path;
static const char *pids_path;
static const char *log_path;
static const char *refuse_path;
static const char *pid_path;

struct sessions {
	size_t n;
	char id[MAX_SESSIONS][MAX_ID];
};

static void
usage(void)
{
	fprintf(stderr,
	    "usage: login1d --address ADDR --sessions FILE --log FILE\n"
	    "               [--refuse-file FILE] [--pidfile FILE]"
	    " [--max-seconds N]\n");
	exit(2);
}

static long long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

/* Reads the sessions file; a missing file is no sessions. Blank lines and
 * surrounding white space are ignored. */
static int
read_sessions(struct sessions *s)
{
	char line[MAX_ID + 2];
	FILE *f;

	s->n = 0;
	f = fopen(sessions_path, "re");
	if (f == NULL)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof line, f) != NULL) {
		char *p = line;
		size_t len;

		while (*p == ' ' || *p == '\t')
			p++;
		len = strlen(p);
		while (len > 0 && (p[len - 1] == '\n' || p[len - 1] == '\r' ||
		    p[len - 1] == ' ' || p[len - 1] == '\t'))
			p[--len] = '\0';
		if (len == 0 || len >= MAX_ID || s->n == MAX_SESSIONS)
			continue;
		memcpy(s->id[s->n++], p, len + 1);
	}
	fclose(f);
	return 0;
}

static bool
has_session(const struct sessions *s, const char *id)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->id[i], id) == 0)
			return true;
	return false;
}

/* Writes CONTENT to PATH through a temporary file and rename, so a reader
 * sees the old or the new file, never half of one. */
static int
replace_file(const char *path, const char *content, size_t len)
{
	char tmp[PATH_MAX];
	int fd, n;

	n = snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
	if (n < 0 || (size_t)n >= sizeof tmp)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	while (len > 0) {
		ssize_t w = write(fd, content, len);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;

			close(fd);
			unlink(tmp);
			return -e;
		}
		content += w;
		len -= (size_t)w;
	}
	if (fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
		int e = errno;

		unlink(tmp);
		return -e;
	}
	return 0;
}

static int
forget_session(const char *id)
{
	static struct sessions s;
	static char buf[MAX_SESSIONS * (MAX_ID + 1)];
	size_t len = 0;
	int r;

	r = read_sessions(&s);
	if (r < 0)
		return r;
	for (size_t i = 0; i < s.n; i++) {
		size_t l;

		if (strcmp(s.id[i], id) == 0)
			continue;
		l = strlen(s.id[i]);
		memcpy(buf + len, s.id[i], l);
		len += l;
		buf[len++] = '\n';
	}
	return replace_file(sessions_path, buf, len);
}

/* Appends one line to the log, and closes it before the reply goes out so
 * a test that got the reply finds the line. */
static void
log_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void
log_line(const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int fd, n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof line - 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n > sizeof line - 2)
		n = (int)sizeof line - 2;
	line[n++] = '\n';
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "login1d: %s: %s\n", log_path, strerror(errno));
		return;
	}
	if (write(fd, line, (size_t)n) != (ssize_t)n)
		fprintf(stderr, "login1d: writing %s: %s\n", log_path,
		    strerror(errno));
	(void)fsync(fd);
	close(fd);
}

static int
session_path(const char *id, char **path)
{
	return sd_bus_path_encode(SESSION_PREFIX, id, path);
}

static int
no_such_session(sd_bus_error *error, const char *id)
{
	return sd_bus_error_setf(error, ERR_NO_SUCH_SESSION,
	    "No session '%s' known", id);
}

static int
method_get_session(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	static struct sessions s;
	const char *id;
	char *path = NULL;
	int r;

	(void)userdata;
	r = sd_bus_message_read(m, "s", &id);
	if (r < 0)
		return r;
	r = read_sessions(&s);
	if (r < 0)
		return sd_bus_error_set_errnof(error, -r, "%s: %s",
		    sessions_path, strerror(-r));
	if (!has_session(&s, id))
		return no_such_session(error, id);
	r = session_path(id, &path);
	if (r < 0)
		return r;
	r = sd_bus_reply_method_return(m, "o", path);
	free(path);
	return r;
}

/* The session of pid in the pids file ("PID ID" lines), into id. */
static bool
session_of_pid(uint32_t pid, char *id, size_t id_size)
{
	char line[MAX_ID + 32], want[16];
	bool found = false;
	FILE *f;

	if (pids_path == NULL || (f = fopen(pids_path, "re")) == NULL)
		return false;
	snprintf(want, sizeof want, "%u ", (unsigned)pid);
	while (!found && fgets(line, sizeof line, f) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (strncmp(line, want, strlen(want)) == 0 &&
		    strlen(line + strlen(want)) < id_size) {
			strcpy(id, line + strlen(want));
			found = true;
		}
	}
	fclose(f);
	return found;
}

static int
method_get_session_by_pid(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	static struct sessions s;
	char id[MAX_ID], *path = NULL;
	uint32_t pid;
	int r;

	(void)userdata;
	r = sd_bus_message_read(m, "u", &pid);
	if (r < 0)
		return r;
	r = read_sessions(&s);
	if (r < 0)
		return sd_bus_error_set_errnof(error, -r, "%s: %s",
		    sessions_path, strerror(-r));
	if (!session_of_pid(pid, id, sizeof id) || !has_session(&s, id)) {
		log_line("NoSessionForPID %u %lld", (unsigned)pid, now_ms());
		return sd_bus_error_setf(error, "org.freedesktop.login1.NoSessionForPID",
		    "PID %u does not belong to any known session", (unsigned)pid);
	}
	r = session_path(id, &path);
	if (r < 0)
		return r;
	r = sd_bus_reply_method_return(m, "o", path);
	free(path);
	return r;
}

static int
method_list_sessions(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	static struct sessions s;
	sd_bus_message *reply = NULL;
	int r;

	(void)userdata;
	r = read_sessions(&s);
	if (r < 0)
		return sd_bus_error_set_errnof(error, -r, "%s: %s",
		    sessions_path, strerror(-r));
	r = sd_bus_message_new_method_return(m, &reply);
	if (r >= 0)
		r = sd_bus_message_open_container(reply, 'a', "(susso)");
	for (size_t i = 0; r >= 0 && i < s.n; i++) {
		char *path = NULL;

		r = session_path(s.id[i], &path);
		if (r >= 0)
			r = sd_bus_message_append(reply, "(susso)", s.id[i],
			    (uint32_t)0, "root", "", path);
		free(path);
	}
	if (r >= 0)
		r = sd_bus_message_close_container(reply);
	if (r >= 0)
		r = sd_bus_send(NULL, reply, NULL);
	sd_bus_message_unref(reply);
	return r;
}

/* The caller's effective uid as text, asked of the bus. */
static void
caller_uid(sd_bus_message *m, char *buf, size_t size)
{
	sd_bus_creds *creds = NULL;
	uid_t uid;

	snprintf(buf, size, "unknown");
	if (sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID |
	    SD_BUS_CREDS_AUGMENT, &creds) < 0)
		return;
	if (sd_bus_creds_get_euid(creds, &uid) >= 0 ||
	    sd_bus_creds_get_uid(creds, &uid) >= 0)
		snprintf(buf, size, "%lu", (unsigned long)uid);
	sd_bus_creds_unref(creds);
}

static int
lock_or_terminate(sd_bus_message *m, sd_bus_error *error, bool terminate)
{
	static struct sessions s;
	const char *method = terminate ? "TerminateSession" : "LockSession";
	const char *id;
	char uid[32];
	int r;

	r = sd_bus_message_read(m, "s", &id);
	if (r < 0)
		return r;
	r = read_sessions(&s);
	if (r < 0)
		return sd_bus_error_set_errnof(error, -r, "%s: %s",
		    sessions_path, strerror(-r));
	/* logind looks the session up before it asks polkit */
	if (!has_session(&s, id)) {
		log_line("NoSuchSession %s %s %lld", method, id, now_ms());
		return no_such_session(error, id);
	}
	if (refuse_path != NULL && access(refuse_path, F_OK) == 0) {
		log_line("Refused %s %s %lld", method, id, now_ms());
		return sd_bus_error_setf(error, SD_BUS_ERROR_ACCESS_DENIED,
		    "Access denied to %s of session '%s'", method, id);
	}
	caller_uid(m, uid, sizeof uid);
	if (terminate) {
		r = forget_session(id);
		if (r < 0)
			return sd_bus_error_set_errnof(error, -r,
			    "rewriting %s: %s", sessions_path, strerror(-r));
	}
	log_line("%s %s %lld %s", method, id, now_ms(), uid);
	return sd_bus_reply_method_return(m, NULL);
}

static int
method_lock_session(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	(void)userdata;
	return lock_or_terminate(m, error, false);
}

static int
method_terminate_session(sd_bus_message *m, void *userdata,
    sd_bus_error *error)
{
	(void)userdata;
	return lock_or_terminate(m, error, true);
}

static const sd_bus_vtable manager_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("GetSession", "s", "o", method_get_session,
	    SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("GetSessionByPID", "u", "o", method_get_session_by_pid,
	    SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("ListSessions", "", "a(susso)", method_list_sessions,
	    SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("LockSession", "s", "", method_lock_session,
	    SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_METHOD("TerminateSession", "s", "", method_terminate_session,
	    SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_VTABLE_END
};

static int
on_timeout(sd_event_source *src, uint64_t usec, void *userdata)
{
	(void)usec;
	(void)userdata;
	fprintf(stderr, "login1d: --max-seconds reached, exiting\n");
	return sd_event_exit(sd_event_source_get_event(src), 0);
}

static int
write_pidfile(void)
{
	char buf[32];
	int n;

	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	return replace_file(pid_path, buf, (size_t)n);
}

static void
fail(const char *what, int r)
{
	fprintf(stderr, "login1d: %s: %s\n", what, strerror(r < 0 ? -r : r));
}

int
main(int argc, char **argv)
{
	const char *address = NULL;
	long max_seconds = DEFAULT_MAX_SECONDS;
	sd_bus *bus = NULL;
	sd_event *event = NULL;
	sigset_t mask;
	int r, status = 1;

	for (int i = 1; i < argc; i++) {
		const char *opt = argv[i];
		const char *val;

		if (i + 1 >= argc)
			usage();
		val = argv[++i];
		if (strcmp(opt, "--address") == 0)
			address = val;
		else if (strcmp(opt, "--sessions") == 0)
			sessions_path = val;
		else if (strcmp(opt, "--pids") == 0)
			pids_path = val;
		else if (strcmp(opt, "--log") == 0)
			log_path = val;
		else if (strcmp(opt, "--refuse-file") == 0)
			refuse_path = val;
		else if (strcmp(opt, "--pidfile") == 0)
			pid_path = val;
		else if (strcmp(opt, "--max-seconds") == 0) {
			char *end;

			errno = 0;
			max_seconds = strtol(val, &end, 10);
			if (errno != 0 || *val == '\0' || *end != '\0' ||
			    max_seconds < 1 || max_seconds > 86400)
				usage();
		} else
			usage();
	}
	if (address == NULL || sessions_path == NULL || log_path == NULL)
		usage();

	/* sd-event wants the signals blocked before it watches them */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) != 0) {
		fail("sigprocmask", errno);
		return 1;
	}

	r = sd_event_default(&event);
	if (r < 0) {
		fail("sd_event_default", r);
		goto out;
	}
	/* no handler: the signal ends the loop */
	r = sd_event_add_signal(event, NULL, SIGTERM, NULL, NULL);
	if (r >= 0)
		r = sd_event_add_signal(event, NULL, SIGINT, NULL, NULL);
	if (r >= 0)
		r = sd_event_add_time_relative(event, NULL, CLOCK_MONOTONIC,
		    (uint64_t)max_seconds * 1000000ULL, 0, on_timeout, NULL);
	if (r < 0) {
		fail("setting up the event loop", r);
		goto out;
	}

	r = sd_bus_new(&bus);
	if (r >= 0)
		r = sd_bus_set_address(bus, address);
	if (r >= 0)
		r = sd_bus_set_bus_client(bus, 1);
	if (r >= 0)
		r = sd_bus_set_description(bus, "login1d");
	if (r >= 0)
		r = sd_bus_start(bus);
	if (r < 0) {
		fprintf(stderr, "login1d: connecting to %s: %s\n", address,
		    strerror(-r));
		goto out;
	}
	r = sd_bus_add_object_vtable(bus, NULL, OBJ_PATH, IFACE,
	    manager_vtable, NULL);
	if (r < 0) {
		fail("sd_bus_add_object_vtable", r);
		goto out;
	}
	r = sd_bus_request_name(bus, BUS_NAME, 0);
	if (r < 0) {
		fail("requesting " BUS_NAME, r);
		goto out;
	}
	r = sd_bus_attach_event(bus, event, SD_EVENT_PRIORITY_NORMAL);
	if (r >= 0)
		r = sd_bus_set_exit_on_disconnect(bus, 1);
	if (r < 0) {
		fail("sd_bus_attach_event", r);
		goto out;
	}

	if (pid_path != NULL) {
		r = write_pidfile();
		if (r < 0) {
			fprintf(stderr, "login1d: %s: %s\n", pid_path,
			    strerror(-r));
			goto out;
		}
	}

	r = sd_event_loop(event);
	if (r < 0)
		fail("sd_event_loop", r);
	else
		status = r;
	if (pid_path != NULL)
		unlink(pid_path);
out:
	if (bus != NULL)
		sd_bus_flush_close_unref(bus);
	sd_event_unref(event);
	return status;
}
