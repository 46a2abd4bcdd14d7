/* The module's side of card access: start the helper with a clean
 * environment, talk to it over a socketpair, and kill it when the card
 * work of this authentication has used up card_timeout. */
#ifndef PIV_CARD_H
#define PIV_CARD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <sys/types.h>

#include "common/conf.h"
#include "wire/proto.h"
#include "pki/prove.h"
#include "common/status.h"
#include "pki/validate.h"
#include "wire/wire.h"

typedef void (*piv_card_log_fn)(void *ud, int prio, const char *text);
typedef void (*piv_card_waiting_fn)(void *ud);


struct piv_card {
	pid_t pid;
	int fd;
	int64_t budget_ms;      /* card time left in this authentication */
	piv_card_log_fn log;
	void *ud;
	struct piv_card_candidate cand[PIV_MAX_CANDIDATES];
	size_t n_cand;
	char message[256];      /* helper's reason when no card was found */
	bool broken;            /* timed out or spoke nonsense: kill, do not ask */
	bool sigchld_saved;
	struct sigaction old_sigchld;
};

/* Start the helper and read the candidate certificates. PIV_OK with
 * card->n_cand ≥ 1, PIV_E_NO_CARD, PIV_E_HELPER, PIV_E_INTERNAL. */
enum piv_status piv_card_open(struct piv_card *card, const struct piv_conf *conf,
                              piv_card_log_fn log, piv_card_waiting_fn waiting, void *ud);



enum piv_status piv_card_sign(struct piv_card *card, const struct piv_sign_request *req,
                              struct piv_sign_result *res);

/* Tell the helper to finish, reap it (killing it if it lingers), and free
 * everything. Safe on a card that never opened. */
void piv_card_close(struct piv_card *card);

/* Starting the module's programs (the card helper, the removal watcher)
 * the same way: */

/* Their environment: nothing inherited (OpenSC and others read variables
 * that a sudo caller controls), only what the administrator configured
 * with helper_env, and a PATH. The strings are conf's; free the array. */
char **piv_helper_envp(const struct piv_conf *conf);

/* A program that runs as root must be a root-owned regular executable
 * that nobody else can replace: 0, or -1 with why (blamed on key, the
 * configuration key that named path). */
int piv_check_program(const struct piv_conf *conf, const char *key, const char *path, char *why,
                      size_t why_size);

/* In a child between fork and exec (async-signal-safe calls only): default
 * signals, fd on 3, /dev/null on 0-2, nothing else open, the effective ids
 * as the real ones, then execve. Never returns. */
void piv_exec_program(const char *path, char *const argv[], int fd, char **envp)
	__attribute__((noreturn));

#endif
