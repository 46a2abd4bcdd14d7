/* agent = yes: a login without a local card, proven through the user's
 * (forwarded) ssh-agent. The agent must sign a fresh challenge from this
 * host with the private key of one of the user's certificates that are
 * valid now (cert_source, assessed like a card's); the signature is
 * verified with that certificate's key. */
#ifndef PIV_AGENTAUTH_H
#define PIV_AGENTAUTH_H

#include <stddef.h>
#include <sys/types.h>

#include "pam/assess.h"
#include "common/conf.h"
#include "common/status.h"
#include "pki/validate.h"

struct piv_agent_login {
	const char *user;         /* the PAM user: required, and the invoking user */
	uid_t uid;                /* the invoking user's uid and gid (see below): the */
	gid_t gid;                /* socket is opened as them, the agent must be theirs */
	const char *socket_path;  /* SSH_AUTH_SOCK, untrusted */
	const char *service;      /* PAM service, part of what is signed */
};

struct piv_agent_result {
	char why[400];
	struct piv_cert_id cert;
	bool have_cert;
};

/* Whose agent may prove whom. SSH_AUTH_SOCK and the agent behind it
 * belong to the user who invoked the program: the real uid (sudo and su
 * keep it while they authenticate), and PAM_RUSER where the application
 * set it. They may prove that user's own account and no other: su, and
 * sudo with targetpw, runaspw or rootpw, authenticate somebody else, and
 * an agent that person left reachable must not answer for them.
 * user_uid: the PAM user's uid; ruser: PAM_RUSER or NULL; ruser_uid: its
 * uid, NULL when no account has that name. 0 when the PAM user is the
 * invoking user, -1 with why otherwise. */
int piv_agent_caller_check(uid_t real_uid, uid_t user_uid, const char *ruser,
                           const uid_t *ruser_uid, char *why, size_t why_size);

/* PIV_OK only after a verified signature. PIV_E_NO_CARD when there is no
 * agent, no valid certificate, or the agent holds none of their keys;
 * PIV_E_SIGNATURE, PIV_E_CONFIG, PIV_E_DIRECTORY, PIV_E_INTERNAL. */
enum piv_status piv_agent_authenticate(const struct piv_conf *conf, const struct piv_trust *trust,
                                       const struct piv_agent_login *login,
                                       const struct piv_assess_hooks *hooks,
                                       struct piv_agent_result *res);

#endif
