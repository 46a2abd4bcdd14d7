/* Fuzz target: SSH keys and signatures (sshkey.h) and the ssh-agent
 * client's answer parsers (agent.h). Input: a mode byte, then
 *   mode % 4 == 0: text for piv_ssh_parse_pubkey and, as SSH_AUTH_INFO_0,
 *                  piv_ssh_auth_info_keys;
 *   mode % 4 == 1: an SSH signature blob for piv_ssh_verify with fixed
 *                  RSA, P-256 and P-384 keys;
 *   mode % 4 == 2: what an agent answers to REQUEST_IDENTITIES (framed),
 *                  read by piv_agent_list through a socketpair;
 *   mode % 4 == 3: what an agent answers to SIGN_REQUEST, read by
 *                  piv_agent_sign, whose signature is then verified.
 * Promises checked: a parsed key is canonical base64 of a blob that starts
 * with its type; the auth info reports each key it counts; no made-up
 * signature verifies; agent answers stay within their documented caps. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "ssh/agent.h"
#include "fuzz_util.h"
#include "ssh/sshkey.h"
#include "common/util.h"

static EVP_PKEY *keys[3];
static uint8_t *key_blob;
static size_t key_blob_len;

struct seen {
	size_t calls;
};

static void
count_key(void *ud, const uint8_t *blob, size_t len)
{
	struct seen *seen = ud;
	struct piv_ssh_reader r;
	const uint8_t *type;
	size_t type_len;

	FUZZ_CHECK(blob != NULL && len > 0 && len <= PIV_SSH_MAX_BLOB, "a key blob out of bounds");
	piv_ssh_reader_init(&r, blob, len);
	FUZZ_CHECK(piv_ssh_get_string(&r, &type, &type_len) == 0 && type_len > 0,
	           "a key blob without its type");
	seen->calls++;
}

static void
parse_text(const uint8_t *data, size_t len)
{
	char *text = fuzz_strndup(data, len);
	struct seen seen = { 0 };
	uint8_t *blob = NULL;
	size_t blob_len = 0, n_publickey = 0;

	if (piv_ssh_parse_pubkey(text, &blob, &blob_len) == 0) {
		const char *space = strchr(text, ' ');
		struct piv_ssh_reader r;
		const uint8_t *type;
		size_t type_len;

		FUZZ_CHECK(space != NULL && strchr(space + 1, ' ') == NULL, "a key with extra fields");
		piv_ssh_reader_init(&r, blob, blob_len);
		FUZZ_CHECK(piv_ssh_get_string(&r, &type, &type_len) == 0 &&
		           type_len == (size_t)(space - text) && memcmp(type, text, type_len) == 0,
		           "a key whose blob is of another type");
		FUZZ_CHECK(blob_len <= PIV_SSH_MAX_BLOB, "an oversized blob");
		free(blob);
	}
	if (piv_ssh_auth_info_keys(text, count_key, &seen, &n_publickey) == 0)
		FUZZ_CHECK(seen.calls == n_publickey, "publickey lines counted but not reported");
	else
		FUZZ_CHECK(seen.calls <= n_publickey, "more keys reported than counted");
	free(text);
}

static void
verify(const uint8_t *data, size_t len)
{
	static const uint8_t signed_data[] = "pam_piv fuzz";

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		FUZZ_CHECK(piv_ssh_verify(keys[i], data, len, signed_data, sizeof(signed_data)) == 0,
		           "a signature made up by the fuzzer verifies");
	ERR_clear_error();
}

/* An agent that has already said everything (its whole answer is in the
 * socket, then end of file). */
static int
agent_socket(const uint8_t *answer, size_t len, int *peer)
{
	int sv[2];

	if (len > 128 * 1024 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return -1;
	if (len > 0 && write(sv[1], answer, len) != (ssize_t)len) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	shutdown(sv[1], SHUT_WR);
	*peer = sv[1];
	return sv[0];
}

static void
agent_list(const uint8_t *data, size_t len)
{
	struct piv_agent_keys list;
	char why[300];
	int peer, fd = agent_socket(data, len, &peer);

	if (fd < 0)
		return;
	if (piv_agent_list(fd, piv_now_ms() + 5000, &list, why, sizeof(why)) == 0) {
		FUZZ_CHECK(list.n_keys <= PIV_AGENT_MAX_KEYS, "too many agent keys");
		for (size_t i = 0; i < list.n_keys; i++)
			FUZZ_CHECK(list.keys[i].blob_len > 0 && list.keys[i].blob_len <= PIV_AGENT_MAX_BLOB &&
			           list.keys[i].comment != NULL, "an agent key out of bounds");
	} else {
		FUZZ_CHECK(list.keys == NULL && list.n_keys == 0, "a failed list left keys behind");
		FUZZ_CHECK(memchr(why, '\0', sizeof(why)) != NULL && why[0] != '\0', "failed without a reason");
	}
	piv_agent_keys_free(&list);
	close(fd);
	close(peer);
}

static void
agent_sign(const uint8_t *data, size_t len)
{
	static const uint8_t to_sign[] = "pam_piv fuzz";
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	char why[300];
	int peer, fd = agent_socket(data, len, &peer);

	if (fd < 0)
		return;
	if (piv_agent_sign(fd, piv_now_ms() + 5000, key_blob, key_blob_len, to_sign, sizeof(to_sign),
	                   PIV_AGENT_RSA_SHA2_256, &sig, &sig_len, why, sizeof(why)) == 0) {
		FUZZ_CHECK(sig != NULL && sig_len > 0 && sig_len <= PIV_AGENT_MAX_BLOB,
		           "an agent signature out of bounds");
		for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
			FUZZ_CHECK(piv_ssh_verify(keys[i], sig, sig_len, to_sign, sizeof(to_sign)) == 0,
			           "a signature made up by the fuzzer verifies");
		free(sig);
	} else {
		FUZZ_CHECK(sig == NULL && sig_len == 0, "a failed sign left a signature behind");
	}
	close(fd);
	close(peer);
	ERR_clear_error();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	keys[0] = EVP_RSA_gen(2048);
	keys[1] = EVP_EC_gen("P-256");
	keys[2] = EVP_EC_gen("P-384");
	if (keys[0] == NULL || keys[1] == NULL || keys[2] == NULL ||
	    piv_ssh_pubkey_blob(keys[1], &key_blob, &key_blob_len) != 0) {
		fprintf(stderr, "fuzz_ssh: cannot make the keys\n");
		exit(2);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	switch (data[0] % 4) {
	case 0:
		parse_text(data + 1, size - 1);
		break;
	case 1:
		verify(data + 1, size - 1);
		break;
	case 2:
		agent_list(data + 1, size - 1);
		break;
	default:
		agent_sign(data + 1, size - 1);
		break;
	}
	return 0;
}
