/* The module's side of card access. The helper is the only process that
 * loads PKCS#11 code; this file starts it with a clean environment, speaks
 * the protocol of proto.h, and enforces card_timeout by killing it. */
#include "config.h"
#include "wire/card.h"
#include "common/util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#define HELPER_FD 3

static void card_log(struct piv_card *card, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
card_log(struct piv_card *card, int prio, const char *fmt, ...)
{
	char line[800];
	va_list ap;

	if (card->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	card->log(card->ud, prio, line);
}

char **
piv_helper_envp(const struct piv_conf *conf)
{
	char **envp = calloc(conf->helper_env.n + 2, sizeof(*envp));
	bool have_path = false;
	size_t n = 0;

	if (envp == NULL)
		return NULL;
	for (size_t i = 0; i < conf->helper_env.n; i++) {
		have_path |= strncmp(conf->helper_env.v[i], "PATH=", 5) == 0;
		envp[n++] = conf->helper_env.v[i];
	}
	if (!have_path)
		envp[n++] = (char *)"PATH=/usr/sbin:/usr/bin:/sbin:/bin";
	return envp;
}

int
piv_check_program(const struct piv_conf *conf, const char *key, const char *path, char *why,
                  size_t why_size)
{
	const char *what = strcmp(key, "helper") == 0 ? "card helper" : key;
	struct stat st;

	if (stat(path, &st) != 0) {
		piv_fmt(why, why_size, "%s %s: %s", what, path, strerror(errno));
	} else if (!S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR) || st.st_uid != 0 ||
	           (st.st_mode & (S_IWGRP | S_IWOTH))) {
		piv_fmt(why, why_size, "%s %s: not a root-owned executable that only root can write",
		        what, path);
	} else {
		return 0;
	}
	piv_conf_blame(conf, key, why, why_size);
	return -1;
}

/* The helper runs as root with the PIN: it must be a root-owned regular
 * executable that nobody else can replace. A missing or unsafe helper is
 * an installation error, reported as such. */
static enum piv_status
check_helper(struct piv_card *card, const struct piv_conf *conf)
{
	char why[1100];

	if (piv_check_program(conf, "helper", conf->helper, why, sizeof(why)) == 0)
		return PIV_OK;
	card_log(card, LOG_ALERT, "%s", why);
	return PIV_E_CONFIG;
}

void
piv_exec_program(const char *path, char *const argv[], int fd, char **envp)
{
	sigset_t all;
	int null_fd;

	sigemptyset(&all);
	sigprocmask(SIG_SETMASK, &all, NULL);
	for (int sig = 1; sig < NSIG; sig++)
		signal(sig, SIG_DFL);
	if (fd == HELPER_FD) {
		int flags = fcntl(fd, F_GETFD);
		if (flags < 0 || fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) < 0)
			_exit(127);
	} else if (dup2(fd, HELPER_FD) < 0) {
		_exit(127);
	}
	null_fd = open("/dev/null", O_RDWR);
	if (null_fd < 0 || dup2(null_fd, 0) < 0 || dup2(null_fd, 1) < 0 || dup2(null_fd, 2) < 0)
		_exit(127);
#ifdef HAVE_CLOSE_RANGE
	close_range(HELPER_FD + 1, ~0U, 0);
#else
	for (int i = HELPER_FD + 1; i < 1024; i++)
		close(i);
#endif
	/* The program runs with the effective ids only: a setuid caller's
	 * real uid must not steer p11-kit to the caller's own configuration. */
	if (setresgid(getegid(), getegid(), getegid()) != 0 ||
	    setresuid(geteuid(), geteuid(), geteuid()) != 0)
		_exit(127);
	execve(path, argv, envp);
	_exit(127);
}

static enum piv_status
spawn(struct piv_card *card, const struct piv_conf *conf)
{
	char *const helper_argv[] = { (char *)"pam_piv_helper", NULL };
	struct sigaction dfl;
	char **envp;
	int sv[2];

	envp = piv_helper_envp(conf);
	if (envp == NULL)
		return PIV_E_INTERNAL;
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) {
		free(envp);
		card_log(card, LOG_ERR, "socketpair: %s", strerror(errno));
		return PIV_E_INTERNAL;
	}
	/* We must be able to reap our child even in a process that ignores
	 * SIGCHLD (then wait() would never see it). Restored in close. */
	memset(&dfl, 0, sizeof(dfl));
	dfl.sa_handler = SIG_DFL;
	sigemptyset(&dfl.sa_mask);
	if (sigaction(SIGCHLD, &dfl, &card->old_sigchld) == 0)
		card->sigchld_saved = true;
	card->pid = fork();
	if (card->pid == 0)
		piv_exec_program(conf->helper, helper_argv, sv[1], envp);
	free(envp);
	close(sv[1]);
	if (card->pid < 0) {
		card_log(card, LOG_ERR, "fork: %s", strerror(errno));
		close(sv[0]);
		card->pid = -1;
		return PIV_E_INTERNAL;
	}
	card->fd = sv[0];
	return PIV_OK;
}

/* Deadline for the next exchange: what is left of the card budget. */
static int64_t
deadline(const struct piv_card *card)
{
	return piv_now_ms() + (card->budget_ms > 0 ? card->budget_ms : 0);
}

static void
spend(struct piv_card *card, int64_t started)
{
	card->budget_ms -= piv_now_ms() - started;
}

static void
forward_log(struct piv_card *card, struct piv_msg *msg)
{
	char esc[600];
	int prio;

	if (piv_wire_get_log(msg, &prio, esc, sizeof(esc)) == 0)
		card_log(card, prio, "card helper: %s", esc);
	else
		card_log(card, LOG_ERR, "card helper sent a malformed log line");
}

/* Receive the next frame that is not a log line. */
static int
recv_frame(struct piv_card *card, struct piv_msg *msg)
{
	int64_t started = piv_now_ms();
	int rc;

	for (;;) {
		rc = piv_msg_recv(card->fd, msg, deadline(card));
		if (rc != PIV_PROTO_OK || msg->type != PIV_MSG_LOG)
			break;
		forward_log(card, msg);
	}
	spend(card, started);
	if (rc != PIV_PROTO_OK)
		card->broken = true;
	if (rc == PIV_PROTO_TIMEOUT)
		card_log(card, LOG_ERR, "card helper did not answer within card_timeout");
	else if (rc == PIV_PROTO_EOF)
		card_log(card, LOG_ERR, "card helper exited unexpectedly");
	else if (rc != PIV_PROTO_OK)
		card_log(card, LOG_ERR, "card helper sent a malformed message");
	return rc;
}

static int
read_candidate(struct piv_card *card, struct piv_msg *msg)
{
	if (card->n_cand >= PIV_MAX_CANDIDATES ||
	    piv_wire_get_candidate(msg, (uint32_t)card->n_cand, &card->cand[card->n_cand]) != 0)
		return -1;
	card->n_cand++;
	return 0;
}

enum piv_status
piv_card_open(struct piv_card *card, const struct piv_conf *conf, piv_card_log_fn log,
              piv_card_waiting_fn waiting, void *ud)
{
	struct piv_msg msg;
	enum piv_status st;
	int rc;

	memset(card, 0, sizeof(*card));
	card->pid = -1;
	card->fd = -1;
	card->log = log;
	card->ud = ud;
	card->budget_ms = (int64_t)(conf->card_timeout + conf->card_wait) * 1000;
	st = check_helper(card, conf);
	if (st != PIV_OK)
		return st;
	st = spawn(card, conf);
	if (st != PIV_OK)
		return st;

	if (piv_wire_put_certs_req(&msg, conf->pkcs11_module, conf->token_uri, conf->cert_uri,
	                           conf->card_wait, conf->debug) != 0) {
		piv_msg_clear(&msg);
		return PIV_E_INTERNAL;
	}
	rc = piv_msg_send(card->fd, &msg, deadline(card));
	piv_msg_clear(&msg);
	if (rc != PIV_PROTO_OK) {
		card_log(card, LOG_ERR, "cannot start the card helper %s", conf->helper);
		return PIV_E_HELPER;
	}
	for (;;) {
		if (recv_frame(card, &msg) != PIV_PROTO_OK)
			return PIV_E_HELPER;
		if (msg.type == PIV_MSG_WAITING) {
			if (waiting != NULL)
				waiting(ud);
		} else if (msg.type == PIV_MSG_CANDIDATE) {
			if (read_candidate(card, &msg) != 0) {
				card_log(card, LOG_ERR, "card helper sent a malformed candidate");
				piv_msg_clear(&msg);
				return PIV_E_HELPER;
			}
		} else if (msg.type == PIV_MSG_END_CERTS) {
			uint32_t hs;
			if (piv_wire_get_end_certs(&msg, &hs, card->message, sizeof(card->message)) != 0) {
				card_log(card, LOG_ERR, "card helper sent a malformed end of the certificates");
				piv_msg_clear(&msg);
				return PIV_E_HELPER;
			}
			piv_msg_clear(&msg);
			if (hs == PIV_H_OK && card->n_cand > 0)
				return PIV_OK;
			if (hs == PIV_H_NO_CARD || (hs == PIV_H_OK && card->n_cand == 0))
				return PIV_E_NO_CARD;
			return PIV_E_HELPER;
		} else {
			card_log(card, LOG_ERR, "card helper sent an unexpected message");
			piv_msg_clear(&msg);
			return PIV_E_HELPER;
		}
		piv_msg_clear(&msg);
	}
}

enum piv_status
piv_card_sign(struct piv_card *card, const struct piv_sign_request *req,
              struct piv_sign_result *res)
{
	struct piv_msg msg;
	enum piv_status st = PIV_E_HELPER;
	int rc;

	memset(res, 0, sizeof(*res));
	if (card->fd < 0 || req->index >= card->n_cand)
		return PIV_E_INTERNAL;
	/* The budget is what the first exchange left: the time the user spent
	 * typing the PIN is not card work and was not counted. */
	if (piv_wire_put_sign_req(&msg, req) != 0) {
		piv_msg_clear(&msg);
		return PIV_E_INTERNAL;
	}
	rc = piv_msg_send(card->fd, &msg, deadline(card));
	piv_msg_clear(&msg); /* wipes the PIN */
	if (rc != PIV_PROTO_OK)
		return PIV_E_HELPER;
	if (recv_frame(card, &msg) != PIV_PROTO_OK)
		return PIV_E_HELPER;
	if (piv_wire_get_signed(&msg, res) != 0)
		card_log(card, LOG_ERR, "card helper sent a malformed signature reply");
	else
		st = PIV_OK;
	piv_msg_clear(&msg);
	return st;
}

/* Wait until the helper has closed its end of the socket (it exits after
 * QUIT), or until the deadline. */
static void
wait_for_eof(int fd, int64_t deadline_ms)
{
	uint8_t scratch[256];

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		int64_t left = deadline_ms - piv_now_ms();
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
			return;
		n = recv(fd, scratch, sizeof(scratch), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN))
			return;
	}
}

void
piv_card_close(struct piv_card *card)
{
	/* A well-behaved helper logs out, finalizes and exits after QUIT; it
	 * gets half a second for that. A broken one is killed at once: a
	 * vendor module must not outlive the login. */
	int64_t until = piv_now_ms() + (card->broken ? 0 : 500);

	if (card->fd >= 0 && !card->broken) {
		struct piv_msg quit;
		piv_msg_init(&quit, PIV_MSG_QUIT);
		if (piv_msg_send(card->fd, &quit, until) == PIV_PROTO_OK)
			wait_for_eof(card->fd, until);
	}
	if (card->fd >= 0) {
		close(card->fd);
		card->fd = -1;
	}
	if (card->pid > 0) {
		int status;
		pid_t r;
		while ((r = waitpid(card->pid, &status, WNOHANG)) == 0 && piv_now_ms() < until) {
			struct timespec ts = { 0, 1000 * 1000 };
			nanosleep(&ts, NULL);
		}
		if (r == 0) {
			kill(card->pid, SIGKILL);
			while (waitpid(card->pid, &status, 0) < 0 && errno == EINTR)
				;
		}
		card->pid = -1;
	}
	if (card->sigchld_saved) {
		sigaction(SIGCHLD, &card->old_sigchld, NULL);
		card->sigchld_saved = false;
	}
	for (size_t i = 0; i < card->n_cand; i++)
		piv_card_candidate_free(&card->cand[i]);
	card->n_cand = 0;
}
