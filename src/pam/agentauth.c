/* The agent login (see agentauth.h).
 *
 * The socket path comes from the user's environment, so it proves
 * nothing by itself. The agent is used only when the user being
 * authenticated is the user who invoked the program; the socket is opened
 * with that user's file-system identity (setfsuid, per thread, no fork),
 * must be their own socket, and the peer must run as them (agent.c checks
 * both). What is signed is OpenSSH's SSHSIG form with our own namespace,
 * so the signature can never pass for an SSH session or another
 * application's. */
#include "config.h"
#include "pam/agentauth.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/fsuid.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "ssh/agent.h"
#include "ssh/sshkey.h"
#include "pam/userkeys.h"
#include "common/util.h"

#define SSHSIG_NAMESPACE "pam_piv-login@pam-piv"
#define MAX_VALID 16

struct valid_keys {
	X509 *leaf[MAX_VALID];
	uint8_t *blob[MAX_VALID];
	size_t len[MAX_VALID];
	size_t n;
};

static void
keep_valid(void *ud, X509 *leaf, const uint8_t *blob, size_t len)
{
	struct valid_keys *v = ud;

	if (v->n >= MAX_VALID || (v->blob[v->n] = malloc(len)) == NULL)
		return;
	memcpy(v->blob[v->n], blob, len);
	v->len[v->n] = len;
	X509_up_ref(leaf);
	v->leaf[v->n] = leaf;
	v->n++;
}

static void
valid_keys_free(struct valid_keys *v)
{
	for (size_t i = 0; i < v->n; i++) {
		free(v->blob[i]);
		X509_free(v->leaf[i]);
	}
	memset(v, 0, sizeof(*v));
}

int
piv_agent_caller_check(uid_t real_uid, uid_t user_uid, const char *ruser, const uid_t *ruser_uid,
                       char *why, size_t why_size)
{
	char esc[300];

	if (real_uid != user_uid) {
		piv_fmt(why, why_size, "not used: the user being authenticated (uid %ju) is not the "
		        "invoking user (uid %ju), whose agent it would be", (uintmax_t)user_uid,
		        (uintmax_t)real_uid);
		return -1;
	}
	if (ruser != NULL && *ruser != '\0' && (ruser_uid == NULL || *ruser_uid != user_uid)) {
		piv_fmt(why, why_size, "not used: the user being authenticated is not the requesting "
		        "user %s (PAM_RUSER)", piv_escape_str(ruser, esc, sizeof(esc)));
		return -1;
	}
	return 0;
}

/* Connect with the invoking user's file-system identity, so that only a
 * socket that user could open is opened. */
static int
connect_as_user(const struct piv_agent_login *login, int64_t deadline, int *fd, char *why,
                size_t why_size)
{
	uid_t old_uid;
	gid_t old_gid;
	int rc;

	old_gid = (gid_t)setfsgid(login->gid);
	old_uid = (uid_t)setfsuid(login->uid);
	rc = piv_agent_connect(login->socket_path, login->uid, deadline, fd, why, why_size);
	(void)setfsuid(old_uid);
	(void)setfsgid(old_gid);
	/* setfsuid has no error return: make sure we are back */
	if ((uid_t)setfsuid((uid_t)-1) != old_uid) {
		if (rc == 0)
			close(*fd);
		piv_fmt(why, why_size, "cannot restore the file-system uid");
		return -1;
	}
	return rc;
}

/* The message: who, where, for what, and 32 fresh random bytes. */
static int
make_message(const struct piv_agent_login *login, uint8_t *msg, size_t size, size_t *len)
{
	uint8_t nonce[32];
	char host[256] = "";
	int n;

	if (RAND_priv_bytes(nonce, sizeof(nonce)) != 1)
		return -1;
	(void)gethostname(host, sizeof(host) - 1);
	n = snprintf((char *)msg, size, "pam_piv agent login\nhost=%s\nservice=%s\nuser=%s\nnonce=",
	             host, login->service ? login->service : "", login->user);
	if (n < 0 || (size_t)n + sizeof(nonce) > size)
		return -1;
	memcpy(msg + n, nonce, sizeof(nonce));
	*len = (size_t)n + sizeof(nonce);
	return 0;
}

enum piv_status
piv_agent_authenticate(const struct piv_conf *conf, const struct piv_trust *trust,
                       const struct piv_agent_login *login, const struct piv_assess_hooks *hooks,
                       struct piv_agent_result *res)
{
	struct valid_keys valid;
	struct piv_agent_keys agent_keys;
	struct piv_sigpipe_guard guard;
	enum piv_status st;
	uint8_t message[1024], *signed_data = NULL, *sig = NULL;
	size_t message_len = 0, signed_len = 0, sig_len = 0, n_valid = 0;
	int64_t deadline = piv_now_ms() + (int64_t)conf->card_timeout * 1000;
	int fd = -1;
	char why[300];

	memset(res, 0, sizeof(*res));
	memset(&valid, 0, sizeof(valid));
	memset(&agent_keys, 0, sizeof(agent_keys));
	if (login->user == NULL || *login->user == '\0') {
		piv_fmt(res->why, sizeof(res->why), "agent: a user name is needed");
		return PIV_E_NO_CARD;
	}
	if (login->socket_path == NULL || *login->socket_path == '\0') {
		piv_fmt(res->why, sizeof(res->why), "agent: no SSH_AUTH_SOCK");
		return PIV_E_NO_CARD;
	}
	st = piv_user_keys(conf, trust, login->user, hooks, keep_valid, &valid, &n_valid,
	                   res->why, sizeof(res->why));
	if (st != PIV_OK)
		goto out;
	if (valid.n == 0) {
		piv_fmt(res->why, sizeof(res->why), "agent: the user has no valid certificate in "
		        "cert_source");
		st = PIV_E_NO_CARD;
		goto out;
	}
	piv_sigpipe_block(&guard);
	if (connect_as_user(login, deadline, &fd, why, sizeof(why)) != 0) {
		piv_sigpipe_restore(&guard);
		piv_fmt(res->why, sizeof(res->why), "agent: %s", why);
		st = PIV_E_NO_CARD;
		goto out;
	}
	if (piv_agent_list(fd, deadline, &agent_keys, why, sizeof(why)) != 0) {
		piv_sigpipe_restore(&guard);
		piv_fmt(res->why, sizeof(res->why), "agent: %s", why);
		st = PIV_E_NO_CARD;
		goto out;
	}
	/* the first key the agent offers that belongs to a valid certificate */
	st = PIV_E_NO_CARD;
	piv_fmt(res->why, sizeof(res->why), "agent: holds none of the keys of the user's %zu valid "
	        "certificate(s)", valid.n);
	for (size_t k = 0; k < agent_keys.n_keys && st == PIV_E_NO_CARD; k++) {
		for (size_t v = 0; v < valid.n; v++) {
			uint32_t flags;
			if (agent_keys.keys[k].blob_len != valid.len[v] ||
			    memcmp(agent_keys.keys[k].blob, valid.blob[v], valid.len[v]) != 0)
				continue;
			piv_cert_identify(valid.leaf[v], &res->cert);
			res->have_cert = true;
			flags = EVP_PKEY_get_base_id(X509_get0_pubkey(valid.leaf[v])) == EVP_PKEY_RSA
			        ? PIV_AGENT_RSA_SHA2_256 : 0;
			if (make_message(login, message, sizeof(message), &message_len) != 0 ||
			    piv_sshsig_signed_data(SSHSIG_NAMESPACE, message, message_len, &signed_data,
			                           &signed_len) != 0) {
				st = PIV_E_INTERNAL;
				break;
			}
			if (hooks->log != NULL)
				hooks->log(hooks->ud, LOG_DEBUG, "agent: asking for a signature");
			if (piv_agent_sign(fd, deadline, valid.blob[v], valid.len[v], signed_data,
			                   signed_len, flags, &sig, &sig_len, why, sizeof(why)) != 0) {
				piv_fmt(res->why, sizeof(res->why), "agent: %s", why);
				st = PIV_E_SIGNATURE;
				break;
			}
			if (piv_ssh_verify(X509_get0_pubkey(valid.leaf[v]), sig, sig_len, signed_data,
			                   signed_len) != 1) {
				piv_fmt(res->why, sizeof(res->why), "agent: the signature does not verify "
				        "with the certificate's key");
				st = PIV_E_SIGNATURE;
				break;
			}
			piv_fmt(res->why, sizeof(res->why), "agent: signature by the key of a valid "
			        "certificate verified");
			st = PIV_OK;
			break;
		}
	}
	piv_sigpipe_restore(&guard);
out:
	if (fd >= 0)
		close(fd);
	free(signed_data);
	free(sig);
	piv_agent_keys_free(&agent_keys);
	valid_keys_free(&valid);
	return st;
}
