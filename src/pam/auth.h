/* One card authentication from start to decision, independent of PAM:
 * gather (card) → validate → map → prove (PIN, signature) → decide. The
 * PAM layer and the tools drive it through struct piv_ui. */
#ifndef PIV_AUTH_H
#define PIV_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/conf.h"
#include "common/status.h"
#include "pki/validate.h"

struct piv_ui {
	void *ud;
	/* Ask for the PIN with echo off. 0 and *pin (caller wipes and frees),
	 * or -1 when the conversation failed or was cancelled. */
	int (*ask_pin)(void *ud, const char *prompt, char **pin);
	void (*info)(void *ud, const char *text);
	void (*error)(void *ud, const char *text);
	void (*log)(void *ud, int prio, const char *text);
	bool (*account_exists)(void *ud, const char *name);
	/* Optional (pam-piv-check): each certificate the card offers, before
	 * it is judged, with the token's label and the card's other
	 * certificates. */
	void (*candidate)(void *ud, size_t index, const char *token_label, const struct piv_blob *cert,
	                  const struct piv_blob *extras, size_t n_extras);
	/* Optional: the verdict on that certificate (assess.h) before any PIN. */
	void (*verdict)(void *ud, size_t index, enum piv_status status, const char *why);
	/* For agent = yes: whether the agent may prove this PAM user: 0 and
	 * the invoking user's uid and gid when the PAM user is the invoking
	 * user (piv_agent_caller_check), -1 and why otherwise; SSH_AUTH_SOCK
	 * (or NULL); and the service name that goes into what is signed. */
	int (*agent_caller)(void *ud, const char *user, uid_t *uid, gid_t *gid, char *why,
	                    size_t why_size);
	const char *(*agent_socket)(void *ud);
	const char *service;
	/* PAM_RHOST (NULL: unset): with the service, whether the local reader
	 * answers this login at all (access.h) */
	const char *rhost;
};

struct piv_auth_result {
	enum piv_status status;
	char account[257];        /* the account that logged in */
	char token_label[140];    /* escaped, for logs and messages */
	char token_env[40];       /* as the card says, control bytes as '?' */
	char reason[400];         /* log-safe detail of the outcome */
	bool have_cert;
	struct piv_cert_id cert;  /* the certificate that decided */
	bool pin_prompted;
	bool by_card;             /* a card in a reader proved the key (not an agent) */
	char card_label[64];      /* that card's token label and serial, as it says */
	char card_serial[64];     /* them (the removal watcher looks for them) */
};

/* user: the PAM user, or NULL/"" for a username-less login. Never returns
 * PIV_OK unless every step of SPEC §1 held. */
enum piv_status piv_authenticate(const struct piv_conf *conf, const char *user,
                                 const struct piv_ui *ui, struct piv_auth_result *res);

#endif
