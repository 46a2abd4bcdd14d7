/* Shared by the ssh tests (tests/ssh/test_keys.c, test_agent.c): the
 * test keys, files and commands, SSHSIG envelopes, the real ssh-agent.
 * (Split from tests/test_ssh.c, whose history is `git log -- tests/test_ssh.c`.) */
#ifndef PIV_TESTS_SSH_LIB_H
#define PIV_TESTS_SSH_LIB_H

#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/provider.h>
#include <openssl/x509.h>

#include "ssh/agent.h"
#include "pam/agentauth.h"
#include "ssh/sshkey.h"
#include "common/util.h"

#define NS "piv-test@example.com"
#define MESSAGE "log in alice on host1, challenge 0123456789abcdef"
#define NOBODY 65534

enum { K_RSA, K_P256, K_P384, K_N };
extern const char *const key_names[K_N];
extern const char *const key_types[K_N];

/* the group fixture: keys made once, the real ssh-agent, a fake agent */
struct ssh_fx {
	char dir[64];
	EVP_PKEY *key[K_N];
	char key_path[K_N][128];
	EVP_PKEY *rsa_other, *p256_other, *p521, *ed25519, *rsa1024;
	OSSL_LIB_CTX *outside; /* where rsa1024 comes from */
	OSSL_PROVIDER *outside_default;
	char agent_sock[128];
	pid_t agent_pid;
	pid_t peer_pid;  /* the fake agent running as nobody */
};
extern struct ssh_fx fx;

/* PROTOCOL.sshsig envelope, parsed from an armored file. */
struct sshsig {
	uint8_t *raw;
	uint32_t version;
	const uint8_t *pub, *ns, *reserved, *hash, *sig;
	size_t pub_len, ns_len, reserved_len, hash_len, sig_len;
};

void write_key(EVP_PKEY *key, const char *path);
void write_text(const char *path, const char *text);
int run(const char *cmd, char *out, size_t out_size);
char *slurp(const char *path);
void first_two_fields(char *line);
uint8_t *b64_decode(const char *text, size_t *len);
uint8_t *blob_of(EVP_PKEY *key, size_t *len);
uint8_t *sshsig_data(size_t *len);
uint8_t *sig_blob(const char *alg, const uint8_t *sig, size_t sig_len, const void *extra, size_t extra_len, size_t *len);
void sig_parts(const uint8_t *blob, size_t len, char *alg, size_t alg_size, const uint8_t **sig, size_t *sig_len);
void sshsig_read(const char *path, struct sshsig *s);
void sshsig_write(const char *path, const uint8_t *pub, size_t pub_len, const uint8_t *sig, size_t sig_len);
int ssh_keygen_accepts(const uint8_t *pub, size_t pub_len, const uint8_t *sig, size_t sig_len);
int64_t deadline_in(int64_t ms);
int setup(void **state);
int teardown(void **state);
int per_test_timeout(void **state);
int agent_setup(void **state);
void reap(pid_t *pid, int sig);
int agent_teardown(void **state);

#endif
