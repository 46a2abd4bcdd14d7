/* A minimal ssh-agent client (draft-miller-ssh-agent): list the keys and
 * ask for one signature. The agent is the user's program: its socket is
 * checked before and after connecting, and every answer is untrusted,
 * size-capped and read against a deadline. */
#ifndef PIV_AGENT_H
#define PIV_AGENT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PIV_AGENT_MAX_KEYS 64
#define PIV_AGENT_MAX_BLOB (16 * 1024)
#define PIV_AGENT_MAX_MSG (256 * 1024)

/* Flags of SSH2_AGENTC_SIGN_REQUEST. */
#define PIV_AGENT_RSA_SHA2_256 2u
#define PIV_AGENT_RSA_SHA2_512 4u

struct piv_agent_key {
	uint8_t *blob;
	size_t blob_len;
	char *comment;  /* the agent's bytes, NUL-terminated: escape before use */
};

struct piv_agent_keys {
	struct piv_agent_key *keys;
	size_t n_keys;
};

/* Connect to socket_path for a user whose uid is expected_owner. Refused
 * unless the path is absolute, is a socket (lstat) owned by expected_owner,
 * and sits in a directory (not a symlink) owned by expected_owner or root
 * that others cannot write to unless it is sticky; and unless the peer
 * (SO_PEERCRED) runs as expected_owner or root. deadline_ms is on
 * piv_now_ms()'s clock. On success *fd is a connected, close-on-exec,
 * non-blocking socket. -1 with a log-safe why otherwise. */
int piv_agent_connect(const char *socket_path, uid_t expected_owner, int64_t deadline_ms,
                      int *fd, char *why, size_t why_size);

/* SSH2_AGENTC_REQUEST_IDENTITIES. At most PIV_AGENT_MAX_KEYS keys of at
 * most PIV_AGENT_MAX_BLOB bytes each, in a message of at most
 * PIV_AGENT_MAX_MSG bytes; more is an error, not a truncated list. Free
 * with piv_agent_keys_free (also after an error). */
int piv_agent_list(int fd, int64_t deadline_ms, struct piv_agent_keys *keys, char *why,
                   size_t why_size);
void piv_agent_keys_free(struct piv_agent_keys *keys);

/* SSH2_AGENTC_SIGN_REQUEST of data with the key key_blob. *sig_blob is the
 * agent's SSH signature (string algorithm, string signature), malloc'd,
 * not yet verified: check it with piv_ssh_verify. */
int piv_agent_sign(int fd, int64_t deadline_ms, const uint8_t *key_blob, size_t key_len,
                   const uint8_t *data, size_t data_len, uint32_t flags, uint8_t **sig_blob,
                   size_t *sig_len, char *why, size_t why_size);

#endif
