/* cmocka tests of the ssh-agent client: against the real ssh-agent and
 * ssh-add, socket refusals, the caller check, and fake agents that lie,
 * stall, drip or hang up. */
#include "lib.h"

/* ---- agent: the real ssh-agent ------------------------------------- */

static int
connect_agent(void)
{
	char why[256];
	int fd = -1;

	assert_int_equal(piv_agent_connect(fx.agent_sock, getuid(), deadline_in(5000), &fd, why,
	                                   sizeof(why)), 0);
	assert_true(fd >= 0);
	assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
	return fd;
}

static void
test_agent_list_and_sign(void **state)
{
	struct piv_agent_keys keys;
	char why[256], alg[64];
	uint8_t *data, *sig = NULL, *blob;
	const uint8_t *raw;
	size_t data_len, sig_len, blob_len, raw_len, i;
	int fd, k, found[K_N] = { 0 };

	(void)state;
	fd = connect_agent();
	assert_int_equal(piv_agent_list(fd, deadline_in(5000), &keys, why, sizeof(why)), 0);
	assert_int_equal(keys.n_keys, 3);
	for (i = 0; i < keys.n_keys; i++) {
		for (k = 0; k < K_N; k++) {
			blob = blob_of(fx.key[k], &blob_len);
			if (keys.keys[i].blob_len == blob_len &&
			    memcmp(keys.keys[i].blob, blob, blob_len) == 0)
				found[k]++;
			free(blob);
		}
		assert_non_null(keys.keys[i].comment);
	}
	for (k = 0; k < K_N; k++)
		assert_int_equal(found[k], 1);
	piv_agent_keys_free(&keys);
	piv_agent_keys_free(&keys); /* idempotent */

	data = sshsig_data(&data_len);
	for (k = 0; k < K_N; k++) {
		uint32_t flags = k == K_RSA ? PIV_AGENT_RSA_SHA2_256 : 0;

		blob = blob_of(fx.key[k], &blob_len);
		assert_int_equal(piv_agent_sign(fd, deadline_in(5000), blob, blob_len, data,
		                                data_len, flags, &sig, &sig_len, why, sizeof(why)),
		                 0);
		sig_parts(sig, sig_len, alg, sizeof(alg), &raw, &raw_len);
		assert_string_equal(alg, k == K_RSA ? "rsa-sha2-256" : key_types[k]);
		assert_int_equal(piv_ssh_verify(fx.key[k], sig, sig_len, data, data_len), 1);
		/* OpenSSH agrees that this is an SSHSIG of MESSAGE. */
		assert_int_equal(ssh_keygen_accepts(blob, blob_len, sig, sig_len), 0);
		free(sig);
		sig = NULL;
		free(blob);
	}

	/* RSA: SHA-512 on request; without a flag the agent signs SHA-1
	 * ("ssh-rsa"), which never verifies. */
	blob = blob_of(fx.key[K_RSA], &blob_len);
	assert_int_equal(piv_agent_sign(fd, deadline_in(5000), blob, blob_len, data, data_len,
	                                PIV_AGENT_RSA_SHA2_512, &sig, &sig_len, why, sizeof(why)),
	                 0);
	sig_parts(sig, sig_len, alg, sizeof(alg), &raw, &raw_len);
	assert_string_equal(alg, "rsa-sha2-512");
	assert_int_equal(piv_ssh_verify(fx.key[K_RSA], sig, sig_len, data, data_len), 1);
	free(sig);
	sig = NULL;
	if (piv_agent_sign(fd, deadline_in(5000), blob, blob_len, data, data_len, 0, &sig,
	                   &sig_len, why, sizeof(why)) == 0) {
		sig_parts(sig, sig_len, alg, sizeof(alg), &raw, &raw_len);
		assert_string_equal(alg, "ssh-rsa");
		assert_int_equal(piv_ssh_verify(fx.key[K_RSA], sig, sig_len, data, data_len), 0);
		free(sig);
		sig = NULL;
	}
	free(blob);

	/* A key the agent does not hold. */
	blob = blob_of(fx.rsa_other, &blob_len);
	assert_int_equal(piv_agent_sign(fd, deadline_in(5000), blob, blob_len, data, data_len,
	                                PIV_AGENT_RSA_SHA2_256, &sig, &sig_len, why, sizeof(why)),
	                 -1);
	assert_null(sig);
	assert_non_null(strstr(why, "refused"));
	free(blob);
	/* Nor an empty or oversized key. */
	assert_int_equal(piv_agent_sign(fd, deadline_in(5000), data, 0, data, data_len, 0, &sig,
	                                &sig_len, why, sizeof(why)), -1);
	free(data);
	close(fd);
}

static void
test_agent_socket_refusals(void **state)
{
	char why[256], path[200], sub[160];
	int fd = -1, ready[2];
	pid_t child;
	char c;

	(void)state;
	/* The real socket is accepted (baseline). */
	fd = connect_agent();
	close(fd);

	assert_int_equal(piv_agent_connect("agent.sock", getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);
	assert_non_null(strstr(why, "absolute"));
	assert_int_equal(fd, -1);
	assert_int_equal(piv_agent_connect(NULL, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);

	snprintf(path, sizeof(path), "%s/plain-file", fx.dir);
	write_text(path, "not a socket");
	assert_int_equal(piv_agent_connect(path, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);
	assert_non_null(strstr(why, "not a socket"));

	snprintf(path, sizeof(path), "%s/missing.sock", fx.dir);
	assert_int_equal(piv_agent_connect(path, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);

	snprintf(path, sizeof(path), "%s/link.sock", fx.dir);
	assert_int_equal(symlink(fx.agent_sock, path), 0);
	assert_int_equal(piv_agent_connect(path, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);
	assert_non_null(strstr(why, "not a socket"));

	/* Owned by someone else, or not by the user we expect. */
	assert_int_equal(chown(fx.agent_sock, NOBODY, NOBODY), 0);
	assert_int_equal(piv_agent_connect(fx.agent_sock, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);
	assert_non_null(strstr(why, "owned by uid 65534"));
	assert_int_equal(chown(fx.agent_sock, getuid(), getgid()), 0);
	assert_int_equal(piv_agent_connect(fx.agent_sock, 12345, deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);

	/* The directory: writable by others without the sticky bit, or owned
	 * by a third user. */
	assert_int_equal(chmod(fx.dir, 0777), 0);
	assert_int_equal(piv_agent_connect(fx.agent_sock, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);
	assert_non_null(strstr(why, "writable by others"));
	assert_int_equal(chmod(fx.dir, 01777), 0);
	fd = connect_agent();
	close(fd);
	assert_int_equal(chmod(fx.dir, 0700), 0);
	assert_int_equal(chown(fx.dir, NOBODY, NOBODY), 0);
	assert_int_equal(piv_agent_connect(fx.agent_sock, getuid(), deadline_in(1000), &fd, why,
	                                   sizeof(why)), -1);
	assert_non_null(strstr(why, "directory is owned by uid 65534"));
	assert_int_equal(chown(fx.dir, getuid(), getgid()), 0);

	/* A socket nobody listens on. */
	{
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		int s = socket(AF_UNIX, SOCK_STREAM, 0);
		int64_t start = piv_now_ms();

		snprintf(path, sizeof(path), "%s/stale.sock", fx.dir);
		assert_true(strlen(path) < sizeof(addr.sun_path));
		memcpy(addr.sun_path, path, strlen(path) + 1);
		assert_int_equal(bind(s, (struct sockaddr *)&addr, sizeof(addr)), 0);
		close(s);
		assert_int_equal(piv_agent_connect(path, getuid(), deadline_in(1000), &fd, why,
		                                   sizeof(why)), -1);
		assert_non_null(strstr(why, "connect"));
		assert_true(piv_now_ms() - start < 500);
	}

	/* The name passes but the process behind it runs as another user:
	 * SO_PEERCRED catches it. */
	snprintf(sub, sizeof(sub), "%s/peer", fx.dir);
	assert_int_equal(chmod(fx.dir, 0711), 0); /* nobody must reach sub */
	assert_int_equal(mkdir(sub, 0755), 0);
	assert_int_equal(chown(sub, NOBODY, NOBODY), 0);
	snprintf(path, sizeof(path), "%s/agent.sock", sub);
	assert_int_equal(pipe(ready), 0);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		struct sockaddr_un addr = { .sun_family = AF_UNIX };
		int s;

		close(ready[0]);
		if (setgid(NOBODY) != 0 || setuid(NOBODY) != 0)
			_exit(1);
		s = socket(AF_UNIX, SOCK_STREAM, 0);
		if (strlen(path) >= sizeof(addr.sun_path))
			_exit(1);
		memcpy(addr.sun_path, path, strlen(path) + 1);
		if (s < 0 || bind(s, (struct sockaddr *)&addr, sizeof(addr)) != 0 || listen(s, 4) != 0)
			_exit(1);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	fx.peer_pid = child;
	close(ready[1]);
	assert_int_equal(read(ready[0], &c, 1), 1);
	close(ready[0]);
	assert_int_equal(chown(path, 12345, 12345), 0);
	assert_int_equal(chown(sub, 0, 0), 0);
	assert_int_equal(piv_agent_connect(path, 12345, deadline_in(1000), &fd, why, sizeof(why)),
	                 -1);
	assert_non_null(strstr(why, "runs as uid 65534"));
	/* ...and the same agent is fine for the user it does run as. */
	assert_int_equal(chown(path, NOBODY, NOBODY), 0);
	assert_int_equal(piv_agent_connect(path, NOBODY, deadline_in(1000), &fd, why, sizeof(why)),
	                 0);
	close(fd);
	reap(&fx.peer_pid, SIGKILL);
	assert_int_equal(chmod(fx.dir, 0700), 0);
}

/* ---- agent: fakes that lie or stall --------------------------------- */

struct fake {
	int ours;
	int theirs;
};

static void
fake_open(struct fake *f)
{
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	f->ours = sv[0];
	f->theirs = sv[1];
}

static void
fake_close(struct fake *f)
{
	if (f->ours >= 0)
		close(f->ours);
	if (f->theirs >= 0)
		close(f->theirs);
	f->ours = f->theirs = -1;
}

static void
fake_say(struct fake *f, const void *bytes, size_t len)
{
	assert_int_equal(write(f->theirs, bytes, len), (ssize_t)len);
}

/* A frame around a payload. */
static void
fake_frame(struct fake *f, const uint8_t *payload, size_t len)
{
	uint8_t head[4] = { (uint8_t)(len >> 24), (uint8_t)(len >> 16), (uint8_t)(len >> 8),
		            (uint8_t)len };

	fake_say(f, head, 4);
	fake_say(f, payload, len);
}

/* The list request against a fake that has already said its piece
 * (then stopped writing when hang_up). Returns piv_agent_list's result; checks it
 * came back in under 2 s and why mentions want. */
static int
list_against(const void *answer, size_t answer_len, int hang_up, const char *want,
             size_t *n_keys)
{
	struct piv_agent_keys keys;
	struct fake f;
	char why[256] = "";
	int64_t start;
	int rc;

	fake_open(&f);
	if (answer_len > 0)
		fake_say(&f, answer, answer_len);
	/* Hang up for writing only: our request still goes out, and the read
	 * then meets end-of-file. */
	if (hang_up)
		assert_int_equal(shutdown(f.theirs, SHUT_WR), 0);
	start = piv_now_ms();
	rc = piv_agent_list(f.ours, start + 1000, &keys, why, sizeof(why));
	assert_true(piv_now_ms() - start < 2000);
	if (want != NULL) {
		if (strstr(why, want) == NULL)
			fail_msg("why \"%s\" lacks \"%s\"", why, want);
	}
	if (n_keys != NULL)
		*n_keys = keys.n_keys;
	if (rc != 0)
		assert_null(keys.keys);
	piv_agent_keys_free(&keys);
	fake_close(&f);
	return rc;
}

static void
test_fake_agent_garbage(void **state)
{
	struct piv_ssh_buf b;
	uint8_t *msg = NULL;
	size_t msg_len, n = 99;
	uint8_t *rsa_blob;
	size_t rsa_len;
	uint32_t i;

	(void)state;
	rsa_blob = blob_of(fx.key[K_RSA], &rsa_len);

	assert_int_equal(list_against("\xff\xff\xff\xff", 4, 0, "out of range", NULL), -1);
	assert_int_equal(list_against("\x00\x04\x00\x01", 4, 0, "out of range", NULL), -1);
	assert_int_equal(list_against("\0\0\0\0", 4, 0, "out of range", NULL), -1);
	/* Answer cut short, header cut short, nothing at all: then hang-up. */
	assert_int_equal(list_against("\0\0\0\x64\x0c\0\0", 7, 1, "closed", NULL), -1);
	assert_int_equal(list_against("\0\0", 2, 1, "closed", NULL), -1);
	assert_int_equal(list_against(NULL, 0, 1, "closed", NULL), -1);
	/* Wrong message type; an explicit failure. */
	assert_int_equal(list_against("\0\0\0\x05\x63\0\0\0\0", 9, 0, "message type 99", NULL),
	                 -1);
	assert_int_equal(list_against("\0\0\0\x01\x05", 5, 0, "refused", NULL), -1);
	/* Count missing, too many keys, a key longer than the message, an
	 * empty key, a stray byte after the list. */
	assert_int_equal(list_against("\0\0\0\x01\x0c", 5, 0, "count", NULL), -1);
	assert_int_equal(list_against("\0\0\0\x05\x0c\0\0\0\x41", 9, 0, "65 keys", NULL), -1);
	assert_int_equal(list_against("\0\0\0\x05\x0c\xff\xff\xff\xff", 9, 0, "keys", NULL), -1);
	assert_int_equal(list_against("\0\0\0\x0d\x0c\0\0\0\x01\xff\xff\xff\xf0\0\0\0\0", 17, 0,
	                              "cut short", NULL), -1);
	assert_int_equal(list_against("\0\0\0\x0d\x0c\0\0\0\x01\0\0\0\0\0\0\0\0", 17, 0,
	                              "0 bytes", NULL), -1);
	assert_int_equal(list_against("\0\0\0\x06\x0c\0\0\0\0\0", 10, 0, "stray", NULL), -1);
	/* An empty list is fine. */
	assert_int_equal(list_against("\0\0\0\x05\x0c\0\0\0\0", 9, 0, NULL, &n), 0);
	assert_int_equal(n, 0);

	/* 64 keys is the most; their comments are kept, NULs and all. */
	piv_ssh_buf_init(&b, 0);
	piv_ssh_put_u8(&b, 12);
	piv_ssh_put_u32(&b, 64);
	for (i = 0; i < 64; i++) {
		piv_ssh_put_string(&b, rsa_blob, rsa_len);
		piv_ssh_put_string(&b, "c\0mment", 7);
	}
	assert_int_equal(piv_ssh_buf_take(&b, &msg, &msg_len), 0);
	{
		uint8_t *framed = malloc(msg_len + 4);

		assert_non_null(framed);
		framed[0] = (uint8_t)(msg_len >> 24);
		framed[1] = (uint8_t)(msg_len >> 16);
		framed[2] = (uint8_t)(msg_len >> 8);
		framed[3] = (uint8_t)msg_len;
		memcpy(framed + 4, msg, msg_len);
		assert_int_equal(list_against(framed, msg_len + 4, 0, NULL, &n), 0);
		assert_int_equal(n, 64);
		free(framed);
	}
	free(msg);

	/* A key over 16 KiB. */
	{
		uint8_t *big = calloc(1, 16 * 1024 + 1);

		assert_non_null(big);
		piv_ssh_buf_init(&b, 0);
		piv_ssh_put_u8(&b, 12);
		piv_ssh_put_u32(&b, 1);
		piv_ssh_put_string(&b, big, 16 * 1024 + 1);
		piv_ssh_put_string(&b, "", 0);
		assert_int_equal(piv_ssh_buf_take(&b, &msg, &msg_len), 0);
		{
			struct fake f;
			struct piv_agent_keys keys;
			char why[256];

			fake_open(&f);
			fake_frame(&f, msg, msg_len);
			assert_int_equal(piv_agent_list(f.ours, deadline_in(1000), &keys, why,
			                                sizeof(why)), -1);
			assert_non_null(strstr(why, "16385 bytes"));
			fake_close(&f);
		}
		free(msg);
		free(big);
	}
	free(rsa_blob);
}

/* Silence, or half an answer and then silence: the deadline ends it. */
static void
test_fake_agent_stalls(void **state)
{
	struct piv_agent_keys keys;
	struct fake f;
	char why[256];
	int64_t start, took;
	uint8_t *sig = NULL;
	size_t sig_len;

	(void)state;
	fake_open(&f);
	start = piv_now_ms();
	assert_int_equal(piv_agent_list(f.ours, start + 1000, &keys, why, sizeof(why)), -1);
	took = piv_now_ms() - start;
	assert_true(took >= 950 && took < 2000);
	assert_non_null(strstr(why, "timed out"));
	fake_close(&f);

	fake_open(&f);
	fake_say(&f, "\0\0\0\x20\x0c\0\0", 7);
	start = piv_now_ms();
	assert_int_equal(piv_agent_list(f.ours, start + 1000, &keys, why, sizeof(why)), -1);
	took = piv_now_ms() - start;
	assert_true(took >= 950 && took < 2000);
	assert_non_null(strstr(why, "timed out"));
	fake_close(&f);

	fake_open(&f);
	start = piv_now_ms();
	assert_int_equal(piv_agent_sign(f.ours, start + 1000, (const uint8_t *)"k", 1,
	                                (const uint8_t *)"d", 1, 0, &sig, &sig_len, why,
	                                sizeof(why)), -1);
	took = piv_now_ms() - start;
	assert_true(took >= 950 && took < 2000);
	assert_null(sig);
	fake_close(&f);

	/* A deadline already past: no wait at all. */
	fake_open(&f);
	fake_say(&f, "\0\0\0\x05\x0c\0\0\0\0", 9);
	start = piv_now_ms();
	assert_int_equal(piv_agent_list(f.ours, start - 1, &keys, why, sizeof(why)), -1);
	assert_true(piv_now_ms() - start < 100);
	fake_close(&f);
}

/* The agent hung up before we asked: the send fails with EPIPE, not a
 * SIGPIPE that would kill the process. */
static void
test_fake_agent_gone(void **state)
{
	struct piv_agent_keys keys;
	struct fake f;
	char why[256];
	void (*old)(int) = signal(SIGPIPE, SIG_DFL);

	(void)state;
	fake_open(&f);
	close(f.theirs);
	f.theirs = -1;
	assert_int_equal(piv_agent_list(f.ours, deadline_in(1000), &keys, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "closed"));
	fake_close(&f);
	/* A closed descriptor. */
	assert_int_equal(piv_agent_list(-1, deadline_in(1000), &keys, why, sizeof(why)), -1);
	signal(SIGPIPE, old);
}

/* A forked fake that reads the request, checks it, and drips a valid
 * answer one byte at a time. */
static void
test_fake_agent_drip(void **state)
{
	struct fake f;
	char why[256];
	uint8_t *sig = NULL, *expected;
	size_t sig_len, expected_len;
	pid_t child;
	int status;

	(void)state;
	expected = sig_blob("ecdsa-sha2-nistp256", (const uint8_t *)"xyz", 3, NULL, 0,
	                    &expected_len);
	fake_open(&f);
	child = fork();
	assert_true(child >= 0);
	if (child == 0) {
		/* SIGN_REQUEST: len, 13, string "key", string "data", u32 flags. */
		static const uint8_t want[] = { 0, 0, 0, 20, 13, 0, 0, 0, 3, 'k', 'e', 'y', 0, 0, 0,
			                        4, 'd', 'a', 't', 'a', 0, 0, 0, 2 };
		uint8_t got[sizeof(want)], answer[64];
		size_t have = 0, i, answer_len;
		ssize_t n;

		close(f.ours);
		while (have < sizeof(got) &&
		       (n = read(f.theirs, got + have, sizeof(got) - have)) > 0)
			have += (size_t)n;
		if (have != sizeof(want) || memcmp(got, want, sizeof(want)) != 0)
			_exit(2);
		answer_len = 4 + 1 + 4 + expected_len;
		answer[0] = 0;
		answer[1] = 0;
		answer[2] = 0;
		answer[3] = (uint8_t)(answer_len - 4);
		answer[4] = 14;
		answer[5] = 0;
		answer[6] = 0;
		answer[7] = 0;
		answer[8] = (uint8_t)expected_len;
		memcpy(answer + 9, expected, expected_len);
		for (i = 0; i < answer_len; i++) {
			if (write(f.theirs, answer + i, 1) != 1)
				_exit(3);
			usleep(2000);
		}
		free(expected); /* keeps valgrind's leak check quiet in the child */
		_exit(0);
	}
	close(f.theirs);
	f.theirs = -1;
	assert_int_equal(piv_agent_sign(f.ours, deadline_in(5000), (const uint8_t *)"key", 3,
	                                (const uint8_t *)"data", 4, PIV_AGENT_RSA_SHA2_256, &sig,
	                                &sig_len, why, sizeof(why)), 0);
	assert_int_equal(sig_len, expected_len);
	assert_memory_equal(sig, expected, expected_len);
	free(sig);
	while (waitpid(child, &status, 0) < 0 && errno == EINTR)
		;
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	fake_close(&f);

	/* Sign answers that are wrong in shape. */
	{
		static const struct {
			const char *bytes;
			size_t len;
			const char *want;
		} bad[] = {
			{ "\0\0\0\x01\x05", 5, "refused to sign" },
			{ "\0\0\0\x01\x0c", 5, "message type 12" },
			{ "\0\0\0\x01\x0e", 5, "malformed" },
			{ "\0\0\0\x08\x0e\0\0\0\x05xyz", 12, "malformed" },
			{ "\0\0\0\x08\x0e\0\0\0\x02xyz", 12, "malformed" },
			{ "\0\0\0\x05\x0e\0\0\0\0", 9, "0 bytes" },
		};
		size_t i;

		for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			fake_open(&f);
			fake_say(&f, bad[i].bytes, bad[i].len);
			assert_int_equal(piv_agent_sign(f.ours, deadline_in(1000),
			                                (const uint8_t *)"key", 3,
			                                (const uint8_t *)"data", 4, 0, &sig, &sig_len,
			                                why, sizeof(why)), -1);
			if (strstr(why, bad[i].want) == NULL)
				fail_msg("case %zu: why \"%s\" lacks \"%s\"", i, why, bad[i].want);
			assert_null(sig);
			fake_close(&f);
		}
	}
	free(expected);
}

/* Whose agent may prove whom: only the invoking user (real uid, and
 * PAM_RUSER when set) is proven by the agent. */
static void
test_agent_caller_check(void **state)
{
	const uid_t alice = 1001, bob = 1002, root = 0;
	char why[300];

	(void)state;
	assert_int_equal(piv_agent_caller_check(alice, alice, NULL, NULL, why, sizeof(why)), 0);
	assert_int_equal(piv_agent_caller_check(alice, alice, "alice", &alice, why, sizeof(why)), 0);
	assert_int_equal(piv_agent_caller_check(alice, alice, "", NULL, why, sizeof(why)), 0);
	/* su bob, sudo -u bob with targetpw: the PAM user is not the caller */
	assert_int_equal(piv_agent_caller_check(alice, bob, "alice", &alice, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "is not the invoking user (uid 1001)"));
	assert_int_equal(piv_agent_caller_check(alice, bob, NULL, NULL, why, sizeof(why)), -1);
	/* a root process (sshd, a display manager) proves nobody's agent */
	assert_int_equal(piv_agent_caller_check(root, alice, NULL, NULL, why, sizeof(why)), -1);
	/* PAM_RUSER names another account, or none, or is hostile */
	assert_int_equal(piv_agent_caller_check(alice, alice, "bob", &bob, why, sizeof(why)), -1);
	assert_non_null(strstr(why, "requesting user bob (PAM_RUSER)"));
	assert_int_equal(piv_agent_caller_check(alice, alice, "ghost", NULL, why, sizeof(why)), -1);
	assert_int_equal(piv_agent_caller_check(alice, alice, "x\ny", NULL, why, sizeof(why)), -1);
	assert_null(strchr(why, '\n'));
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, per_test_timeout)
#define A(f) cmocka_unit_test_setup_teardown(f, agent_setup, agent_teardown)
	const struct CMUnitTest tests[] = {
		A(test_agent_list_and_sign),
		A(test_agent_socket_refusals),
		T(test_agent_caller_check),
		T(test_fake_agent_garbage),
		T(test_fake_agent_stalls),
		T(test_fake_agent_gone),
		T(test_fake_agent_drip),
	};
#undef T
#undef A
	alarm(300);
	return cmocka_run_group_tests_name("ssh agent", tests, setup, teardown);
}
