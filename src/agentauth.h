/* agent = yes: a login without a local card, proven through the user's
 * (forwarded) ssh-agent. The agent must sign a fresh challenge from this
 * host with the private key of one of the user's certificates that are
 * valid now (cert_source, assessed like a card's); the signature is
 * verified with that certificate's key. */
#ifndef PIV_AGENTAUTH_H
#define PIV_AGENTAUTH_H

#include <stddef.h>
#include <sys/types.h>

#include "assess.h"
#include "conf.h"
#include "status.h"
#include "validate.h"

struct piv_agent_login {
	const char *user;         /* the PAM user: required */
	uid_t uid;                /* that account's uid and gid: the agent must be theirs */
	gid_t gid;
	const char *socket_path;  /* SSH_AUTH_SOCK, untrusted */
	const char *service;      /* PAM service, part of what is signed */
};

struct piv_agent_result {
	char why[400];
	struct piv_cert_id cert;
	bool have_cert;
};

/* PIV_OK only after a verified signature. PIV_E_NO_CARD when there is no
 * agent, no valid certificate, or the agent holds none of their keys;
 * PIV_E_SIGNATURE, PIV_E_CONFIG, PIV_E_DIRECTORY, PIV_E_INTERNAL. */
enum piv_status piv_agent_authenticate(const struct piv_conf *conf, const struct piv_trust *trust,
                                       const struct piv_agent_login *login,
                                       const struct piv_assess_hooks *hooks,
                                       struct piv_agent_result *res);

#endif
