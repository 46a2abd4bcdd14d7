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

#include "conf.h"
#include "proto.h"
#include "prove.h"
#include "status.h"
#include "validate.h"

typedef void (*piv_card_log_fn)(void *ud, int prio, const char *text);
typedef void (*piv_card_waiting_fn)(void *ud);

struct piv_card_candidate {
	char *token_label;
	char *token_serial;
	uint32_t token_flags;   /* CK_TOKEN_INFO.flags when the card was read */
	struct piv_blob cert;
	struct piv_blob extra[PIV_MAX_EXTRA_CERTS];
	size_t n_extra;
};

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

struct piv_sign_request {
	size_t index;
	bool pinpad;
	const char *pin;       /* NULL with pinpad */
	const uint8_t *challenge;
	size_t challenge_len;
	bool is_ec;
	enum piv_hash hash;
};

struct piv_sign_result {
	uint32_t helper_status;      /* enum piv_helper_status */
	uint32_t token_flags;        /* after the login attempt */
	uint32_t mechanism;          /* CKM_ used */
	uint8_t *sig;
	size_t sig_len;
	char message[256];
};

enum piv_status piv_card_sign(struct piv_card *card, const struct piv_sign_request *req,
                              struct piv_sign_result *res);
void piv_sign_result_free(struct piv_sign_result *res);

/* Tell the helper to finish, reap it (killing it if it lingers), and free
 * everything. Safe on a card that never opened. */
void piv_card_close(struct piv_card *card);

#endif
