/* Card removal: which sessions are watched, and starting and ending their
 * watcher (src/watch/watch.c). See removal.h. */
#include "config.h"
#include "pam/removal.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <security/pam_ext.h>

#include "common/util.h"
#include "wire/card.h"

#define DATA_CARD "pam_piv_removal_card"
#define DATA_WATCHER "pam_piv_removal_watcher"

struct removal_card {
	char label[64];
	char serial[64];
};

/* The watcher of this session: its pid and its start time (field 22 of
 * /proc/PID/stat), so that a pid reused by another process is never
 * signalled. */
struct watcher_ref {
	pid_t pid;
	unsigned long long start;
	char session[65];
};

static void
free_data(pam_handle_t *pamh, void *data, int error_status)
{
	(void)pamh;
	(void)error_status;
	free(data);
}

int
piv_removal_remember(pam_handle_t *pamh, const struct piv_auth_result *res)
{
	struct removal_card *card;

	if (!res->by_card)
		return PAM_SUCCESS;
	if ((card = calloc(1, sizeof(*card))) == NULL)
		return PAM_BUF_ERR;
	snprintf(card->label, sizeof(card->label), "%s", res->card_label);
	snprintf(card->serial, sizeof(card->serial), "%s", res->card_serial);
	if (pam_set_data(pamh, DATA_CARD, card, free_data) != PAM_SUCCESS) {
		free(card);
		return PAM_BUF_ERR;
	}
	return PAM_SUCCESS;
}

bool
piv_valid_session_id(const char *id)
{
	size_t n = strlen(id);

	return n >= 1 && n <= 64 &&
	       strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-") == n;
}

static unsigned long long
proc_start_time(pid_t pid)
{
	char path[64], buf[1024];
	unsigned long long start = 0;
	const char *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	/* after "PID (COMM)": state is field 3, starttime field 22 */
	if ((p = strrchr(buf, ')')) == NULL)
		return 0;
	for (int field = 2; field < 22 && p != NULL; field++)
		p = strchr(p + 1, ' ');
	if (p == NULL || sscanf(p + 1, "%llu", &start) != 1)
		return 0;
	return start;
}

/* What the watcher says on its fd 3: "started PID", then "ready SESSION"
 * once it watches the card and has found the logind session, or "error
 * TEXT". Waits at most timeout_ms. Returns 0 with *pid and session set, or
 * -1 with why (and *pid, if the watcher said it, for the caller to end
 * it). */
static int
await_ready(int fd, int timeout_ms, pid_t *pid, char *session, size_t session_size, char *why,
            size_t why_size)
{
	int64_t deadline = piv_now_ms() + timeout_ms;
	char buf[600];
	size_t len = 0;

	*pid = -1;
	for (;;) {
		struct pollfd pfd = { fd, POLLIN, 0 };
		int64_t left = deadline - piv_now_ms();
		char *nl;
		ssize_t n;

		while ((nl = memchr(buf, '\n', len)) != NULL) {
			int pid_val;
			*nl = '\0';
			if (sscanf(buf, "started %d", &pid_val) == 1 && pid_val > 1) {
				*pid = (pid_t)pid_val;
			} else if (strncmp(buf, "ready ", 6) == 0 && *pid > 1 &&
			           piv_valid_session_id(buf + 6)) {
				piv_fmt(session, session_size, "%s", buf + 6);
				return 0;
			} else {
				char esc[400];
				piv_fmt(why, why_size, "%s", strncmp(buf, "error ", 6) == 0 ?
				        piv_escape_str(buf + 6, esc, sizeof(esc)) :
				        "the watcher said something else than it should");
				return -1;
			}
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
		if (left <= 0) {
			piv_fmt(why, why_size, "the watcher was not ready within card_timeout (%d s)",
			        timeout_ms / 1000);
			return -1;
		}
		int ready = poll(&pfd, 1, (int)left);
		if (ready < 0) {
			if (errno == EINTR)
				continue;
			piv_fmt(why, why_size, "poll: %s", strerror(errno));
			return -1;
		}
		if (ready == 0)
			continue; /* the deadline, checked above */
		if (len == sizeof(buf)) {
			piv_fmt(why, why_size, "the watcher said too much");
			return -1;
		}
		n = read(fd, buf + len, sizeof(buf) - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			piv_fmt(why, why_size, "the watcher ended before it was ready (cannot run it?)");
			return -1;
		}
		len += (size_t)n;
	}
}

/* Starts the watcher detached from this process (its own session, and
 * not our child: the application is not its parent and does not reap
 * it), then waits until it is ready. */
static int
start_watcher(const struct piv_conf *conf, const struct removal_card *card, const char *claimed,
              const char *user, bool debug, pid_t *pid, char *session, size_t session_size,
              char *why, size_t why_size)
{
	const char *action = conf->removal_action == PIV_REMOVAL_TERMINATE ? "terminate" : "lock";
	char self[24];
	char *argv[20];
	size_t n = 0;

	snprintf(self, sizeof(self), "%d", (int)getpid());
	argv[n++] = (char *)"pam-piv-watch";
	argv[n++] = (char *)"--module";
	argv[n++] = conf->pkcs11_module;
	argv[n++] = (char *)"--label";
	argv[n++] = (char *)card->label;
	argv[n++] = (char *)"--serial";
	argv[n++] = (char *)card->serial;
	argv[n++] = (char *)"--pid";
	argv[n++] = self;
	argv[n++] = (char *)"--user";
	argv[n++] = (char *)user;
	argv[n++] = (char *)"--action";
	argv[n++] = (char *)action;
	argv[n++] = (char *)(conf->removal_watch_required ? "--required" : "--optional");
	if (claimed != NULL) {
		argv[n++] = (char *)"--session";
		argv[n++] = (char *)claimed;
	}
	if (debug)
		argv[n++] = (char *)"--debug";
	argv[n] = NULL;
	struct sigaction dfl, old;
	char **envp;
	pid_t child;
	int fds[2], status = 0, rc;

	*pid = -1;
	if (piv_check_program(conf, "watcher", conf->watcher, why, why_size) != 0)
		return -1;
	if ((envp = piv_helper_envp(conf)) == NULL) {
		piv_fmt(why, why_size, "out of memory");
		return -1;
	}
	if (pipe2(fds, O_CLOEXEC) != 0) {
		piv_fmt(why, why_size, "pipe: %s", strerror(errno));
		free(envp);
		return -1;
	}
	/* reap the intermediate child even where SIGCHLD is ignored */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	rc = sigaction(SIGCHLD, &dfl, &old);
	child = fork();
	if (child == 0) {
		pid_t grandchild;
		(void)setsid();
		grandchild = fork();
		if (grandchild != 0)
			_exit(grandchild < 0 ? 127 : 0);
		piv_exec_program(conf->watcher, argv, fds[1], envp);
	}
	free(envp);
	close(fds[1]);
	if (child > 0)
		while (waitpid(child, &status, 0) < 0 && errno == EINTR)
			;
	if (rc == 0)
		(void)sigaction(SIGCHLD, &old, NULL);
	if (child < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		piv_fmt(why, why_size, "cannot start the watcher: %s",
		        child < 0 ? strerror(errno) : "fork failed");
		close(fds[0]);
		return -1;
	}
	rc = await_ready(fds[0], (int)conf->card_timeout * 1000, pid, session, session_size, why,
	                 why_size);
	close(fds[0]);
	if (rc != 0 && *pid > 1) {
		(void)kill(*pid, SIGKILL);
		*pid = -1;
	}
	return rc;
}

int
piv_removal_open(pam_handle_t *pamh, const struct piv_conf *conf, bool debug)
{
	const void *data = NULL, *item = NULL;
	const struct removal_card *card;
	struct watcher_ref *ref;
	const char *claimed, *user = "";
	char why[600], esc_user[300], esc_label[140], esc_session[80], session[65];
	pid_t pid;

	if (conf->removal_action == PIV_REMOVAL_NONE)
		return PAM_IGNORE;
	if (pam_get_data(pamh, DATA_CARD, &data) != PAM_SUCCESS || data == NULL) {
		if (debug)
			pam_syslog(pamh, LOG_DEBUG, "card removal: no card authenticated this "
			           "session: not watched");
		return PAM_IGNORE;
	}
	card = data;
	if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS && item != NULL)
		user = item;
	piv_escape_str(user, esc_user, sizeof(esc_user));
	piv_escape_str(card->label, esc_label, sizeof(esc_label));
	/* The session is the one logind has this process in (the watcher
	 * asks it by pid): pam_systemd, earlier in the stack, has put it
	 * there. XDG_SESSION_ID, if the PAM environment has it, must agree;
	 * the process environment is the caller's and never counts (a sudo
	 * user could name somebody else's session). */
	claimed = pam_getenv(pamh, "XDG_SESSION_ID");
	snprintf(esc_session, sizeof(esc_session), "?");
	if (claimed != NULL && !piv_valid_session_id(claimed)) {
		piv_fmt(why, sizeof(why), "XDG_SESSION_ID is not a logind session id");
	} else if (start_watcher(conf, card, claimed, user, debug, &pid, session, sizeof(session),
	                         why, sizeof(why)) == 0) {
		if ((ref = calloc(1, sizeof(*ref))) != NULL) {
			ref->pid = pid;
			ref->start = proc_start_time(pid);
			snprintf(ref->session, sizeof(ref->session), "%s", session);
			if (pam_set_data(pamh, DATA_WATCHER, ref, free_data) != PAM_SUCCESS)
				free(ref);
		}
		pam_syslog(pamh, LOG_INFO, "card removal watch started: session=%s user=%s "
		           "token=\"%s\" action=%s watcher=%d", session, esc_user, esc_label,
		           conf->removal_action == PIV_REMOVAL_TERMINATE ? "terminate" : "lock",
		           (int)pid);
		return PAM_SUCCESS;
	}
	if (claimed != NULL && piv_valid_session_id(claimed))
		snprintf(esc_session, sizeof(esc_session), "%s", claimed);
	if (conf->removal_watch_required) {
		pam_syslog(pamh, LOG_ERR, "card removal watch failed: session=%s user=%s token=\"%s\" "
		           "reason=\"%s\": the session does not open (removal_watch = required)",
		           esc_session, esc_user, esc_label, why);
		return PAM_SESSION_ERR;
	}
	pam_syslog(pamh, LOG_WARNING, "card removal watch failed: session=%s user=%s token=\"%s\" "
	           "reason=\"%s\": the session is not watched (removal_watch = optional)",
	           esc_session, esc_user, esc_label, why);
	return PAM_IGNORE;
}

int
piv_removal_close(pam_handle_t *pamh, bool debug)
{
	const void *data = NULL;
	const struct watcher_ref *ref;

	if (pam_get_data(pamh, DATA_WATCHER, &data) != PAM_SUCCESS || data == NULL)
		return PAM_IGNORE;
	ref = data;
	if (ref->start != 0 && proc_start_time(ref->pid) == ref->start) {
		(void)kill(ref->pid, SIGTERM);
		pam_syslog(pamh, LOG_INFO, "card removal watch ended: session=%s watcher=%d",
		           ref->session, (int)ref->pid);
	} else if (debug) {
		pam_syslog(pamh, LOG_DEBUG, "card removal watch: the watcher of session %s has "
		           "already ended", ref->session);
	}
	(void)pam_set_data(pamh, DATA_WATCHER, NULL, NULL);
	return PAM_SUCCESS;
}
