/* cmocka tests of the OpenSSH key and signature code and of the ssh-agent
 * client, checked against the real ssh-keygen, ssh-agent and ssh-add:
 * public key lines byte for byte, SSHSIG both ways, signature strictness,
 * SSH_AUTH_INFO_0 parsing, socket refusals, and agents that lie or stall. */
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
#include <openssl/x509.h>

#include "ssh/agent.h"
#include "pam/agentauth.h"
#include "ssh/sshkey.h"
#include "common/util.h"

#define NS "piv-test@example.com"
#define MESSAGE "log in alice on host1, challenge 0123456789abcdef"
#define NOBODY 65534

enum { K_RSA, K_P256, K_P384, K_N };
static const char *const key_names[K_N] = { "rsa", "p256", "p384" };
static const char *const key_types[K_N] = { "ssh-rsa", "ecdsa-sha2-nistp256",
	                                    "ecdsa-sha2-nistp384" };

static struct {
	char dir[64];
	EVP_PKEY *key[K_N];
	char key_path[K_N][128];
	EVP_PKEY *rsa_other, *p256_other, *p521, *ed25519, *rsa1024;
	char agent_sock[128];
	pid_t agent_pid;
	pid_t peer_pid;  /* the fake agent running as nobody */
} fx;

/* ---- helpers ------------------------------------------------------- */

static void
write_key(EVP_PKEY *key, const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	FILE *f;

	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL), 1);
	assert_int_equal(fclose(f), 0);
}

static void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Run a shell command, capture stdout. 0 when it exits with status 0. */
static int
run(const char *cmd, char *out, size_t out_size)
{
	FILE *p = popen(cmd, "r");
	size_t got = 0, n;
	int status;

	assert_non_null(p);
	while (out != NULL && got + 1 < out_size &&
	       (n = fread(out + got, 1, out_size - 1 - got, p)) > 0)
		got += n;
	if (out != NULL)
		out[got] = '\0';
	status = pclose(p);
	return (WIFEXITED(status) && WEXITSTATUS(status) == 0) ? 0 : -1;
}

static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text = calloc(1, 65536);
	size_t n;

	assert_non_null(f);
	assert_non_null(text);
	n = fread(text, 1, 65535, f);
	text[n] = '\0';
	fclose(f);
	return text;
}

/* "TYPE BASE64" from an authorized_keys-style line. */
static void
first_two_fields(char *line)
{
	char *sp;

	line[strcspn(line, "\r\n")] = '\0';
	sp = strchr(line, ' ');
	assert_non_null(sp);
	if ((sp = strchr(sp + 1, ' ')) != NULL)
		*sp = '\0';
}

static uint8_t *
b64_decode(const char *text, size_t *len)
{
	size_t n = strlen(text), pad = 0;
	uint8_t *out = malloc(n / 4 * 3 + 3);
	int got;

	assert_non_null(out);
	assert_int_equal(n % 4, 0);
	got = EVP_DecodeBlock(out, (const unsigned char *)text, (int)n);
	assert_true(got >= 0);
	while (n > 0 && text[n - 1] == '=') {
		pad++;
		n--;
	}
	*len = (size_t)got - pad;
	return out;
}

static uint8_t *
blob_of(EVP_PKEY *key, size_t *len)
{
	uint8_t *blob = NULL;

	assert_int_equal(piv_ssh_pubkey_blob(key, &blob, len), 0);
	return blob;
}

static uint8_t *
sshsig_data(size_t *len)
{
	uint8_t *data = NULL;

	assert_int_equal(piv_sshsig_signed_data(NS, (const uint8_t *)MESSAGE, strlen(MESSAGE),
	                                        &data, len), 0);
	return data;
}

/* An SSH signature blob: string alg, string sig, then extra raw bytes. */
static uint8_t *
sig_blob(const char *alg, const uint8_t *sig, size_t sig_len, const void *extra,
         size_t extra_len, size_t *len)
{
	struct piv_ssh_buf b;
	uint8_t *out = NULL;

	piv_ssh_buf_init(&b, 0);
	piv_ssh_put_cstring(&b, alg);
	piv_ssh_put_string(&b, sig, sig_len);
	piv_ssh_put_raw(&b, extra, extra_len);
	assert_int_equal(piv_ssh_buf_take(&b, &out, len), 0);
	return out;
}

/* Split an SSH signature blob into its algorithm and signature. */
static void
sig_parts(const uint8_t *blob, size_t len, char *alg, size_t alg_size, const uint8_t **sig,
          size_t *sig_len)
{
	struct piv_ssh_reader r;
	const uint8_t *a;
	size_t a_len;

	piv_ssh_reader_init(&r, blob, len);
	assert_int_equal(piv_ssh_get_string(&r, &a, &a_len), 0);
	assert_int_equal(piv_ssh_get_string(&r, sig, sig_len), 0);
	assert_int_equal(piv_ssh_reader_end(&r), 0);
	assert_true(a_len < alg_size);
	memcpy(alg, a, a_len);
	alg[a_len] = '\0';
}

/* PROTOCOL.sshsig envelope, parsed from an armored file. */
struct sshsig {
	uint8_t *raw;
	uint32_t version;
	const uint8_t *pub, *ns, *reserved, *hash, *sig;
	size_t pub_len, ns_len, reserved_len, hash_len, sig_len;
};

static void
sshsig_read(const char *path, struct sshsig *s)
{
	static const char begin[] = "-----BEGIN SSH SIGNATURE-----\n";
	char *text = slurp(path), *p, *end, *b64, *o;
	struct piv_ssh_reader r;
	size_t raw_len;

	p = strstr(text, begin);
	assert_non_null(p);
	p += strlen(begin);
	end = strstr(p, "-----END SSH SIGNATURE-----");
	assert_non_null(end);
	b64 = o = calloc(1, (size_t)(end - p) + 1);
	assert_non_null(b64);
	for (; p < end; p++)
		if (*p != '\n' && *p != '\r')
			*o++ = *p;
	s->raw = b64_decode(b64, &raw_len);
	piv_ssh_reader_init(&r, s->raw, raw_len);
	assert_true(raw_len > 6 && memcmp(s->raw, "SSHSIG", 6) == 0);
	r.p += 6;
	r.left -= 6;
	assert_int_equal(piv_ssh_get_u32(&r, &s->version), 0);
	assert_int_equal(piv_ssh_get_string(&r, &s->pub, &s->pub_len), 0);
	assert_int_equal(piv_ssh_get_string(&r, &s->ns, &s->ns_len), 0);
	assert_int_equal(piv_ssh_get_string(&r, &s->reserved, &s->reserved_len), 0);
	assert_int_equal(piv_ssh_get_string(&r, &s->hash, &s->hash_len), 0);
	assert_int_equal(piv_ssh_get_string(&r, &s->sig, &s->sig_len), 0);
	assert_int_equal(piv_ssh_reader_end(&r), 0);
	free(b64);
	free(text);
}

static void
sshsig_write(const char *path, const uint8_t *pub, size_t pub_len, const uint8_t *sig,
             size_t sig_len)
{
	struct piv_ssh_buf b;
	uint8_t *raw = NULL;
	size_t raw_len, i, b64_len;
	char *b64;
	FILE *f;

	piv_ssh_buf_init(&b, 0);
	piv_ssh_put_raw(&b, "SSHSIG", 6);
	piv_ssh_put_u32(&b, 1);
	piv_ssh_put_string(&b, pub, pub_len);
	piv_ssh_put_cstring(&b, NS);
	piv_ssh_put_string(&b, "", 0);
	piv_ssh_put_cstring(&b, "sha512");
	piv_ssh_put_string(&b, sig, sig_len);
	assert_int_equal(piv_ssh_buf_take(&b, &raw, &raw_len), 0);
	b64 = malloc(raw_len * 2 + 8);
	assert_non_null(b64);
	b64_len = (size_t)EVP_EncodeBlock((unsigned char *)b64, raw, (int)raw_len);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("-----BEGIN SSH SIGNATURE-----\n", f);
	for (i = 0; i < b64_len; i += 70)
		fprintf(f, "%.*s\n", (int)(b64_len - i < 70 ? b64_len - i : 70), b64 + i);
	fputs("-----END SSH SIGNATURE-----\n", f);
	assert_int_equal(fclose(f), 0);
	free(b64);
	free(raw);
}

/* ssh-keygen -Y check-novalidate on an SSHSIG we assembled ourselves. */
static int
ssh_keygen_accepts(const uint8_t *pub, size_t pub_len, const uint8_t *sig, size_t sig_len)
{
	char sig_path[160], msg_path[160], cmd[512];

	snprintf(sig_path, sizeof(sig_path), "%s/ours.sig", fx.dir);
	snprintf(msg_path, sizeof(msg_path), "%s/ours.msg", fx.dir);
	write_text(msg_path, MESSAGE);
	sshsig_write(sig_path, pub, pub_len, sig, sig_len);
	snprintf(cmd, sizeof(cmd),
	         "ssh-keygen -Y check-novalidate -n %s -s %s < %s >/dev/null 2>&1", NS, sig_path,
	         msg_path);
	return run(cmd, NULL, 0);
}

static int64_t
deadline_in(int64_t ms)
{
	return piv_now_ms() + ms;
}

/* ---- fixture ------------------------------------------------------- */

static int
setup(void **state)
{
	char cmd[512], path[sizeof(fx.key_path[0])];
	int i;

	(void)state;
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/piv-ssh-XXXXXX");
	assert_non_null(mkdtemp(fx.dir));
	fx.key[K_RSA] = EVP_RSA_gen(2048);
	fx.key[K_P256] = EVP_EC_gen("P-256");
	fx.key[K_P384] = EVP_EC_gen("P-384");
	fx.rsa_other = EVP_RSA_gen(2048);
	fx.p256_other = EVP_EC_gen("P-256");
	fx.p521 = EVP_EC_gen("P-521");
	fx.ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	fx.rsa1024 = EVP_RSA_gen(1024);
	for (i = 0; i < K_N; i++) {
		assert_non_null(fx.key[i]);
		snprintf(path, sizeof(path), "%s/%s.pem", fx.dir, key_names[i]);
		memcpy(fx.key_path[i], path, sizeof(path));
		write_key(fx.key[i], fx.key_path[i]);
		/* ssh-keygen -Y sign wants KEY.pub next to a PEM key; made by
		 * ssh-keygen itself, not by the code under test. */
		snprintf(cmd, sizeof(cmd), "ssh-keygen -y -f '%s' > '%s.pub' 2>/dev/null",
		         fx.key_path[i], fx.key_path[i]);
		assert_int_equal(run(cmd, NULL, 0), 0);
	}
	assert_non_null(fx.rsa_other);
	assert_non_null(fx.p256_other);
	assert_non_null(fx.p521);
	assert_non_null(fx.ed25519);
	assert_non_null(fx.rsa1024);
	return 0;
}

static int
teardown(void **state)
{
	char cmd[128];
	int i;

	(void)state;
	for (i = 0; i < K_N; i++)
		EVP_PKEY_free(fx.key[i]);
	EVP_PKEY_free(fx.rsa_other);
	EVP_PKEY_free(fx.p256_other);
	EVP_PKEY_free(fx.p521);
	EVP_PKEY_free(fx.ed25519);
	EVP_PKEY_free(fx.rsa1024);
	if (strncmp(fx.dir, "/tmp/piv-ssh-", 13) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
		(void)run(cmd, NULL, 0);
	}
	return 0;
}

static int
per_test_timeout(void **state)
{
	(void)state;
	alarm(60); /* a hang fails the run instead of stalling CI */
	return 0;
}

/* A real ssh-agent on a socket in the fixture directory, holding the
 * three keys. */
static int
agent_setup(void **state)
{
	char cmd[1024];
	struct stat st;
	int64_t until;
	pid_t pid;

	per_test_timeout(state);
	snprintf(fx.agent_sock, sizeof(fx.agent_sock), "%s/agent.sock", fx.dir);
	unlink(fx.agent_sock);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int devnull = open("/dev/null", O_RDWR);

		if (devnull >= 0) {
			dup2(devnull, STDIN_FILENO);
			dup2(devnull, STDOUT_FILENO);
			dup2(devnull, STDERR_FILENO);
		}
		execlp("ssh-agent", "ssh-agent", "-D", "-a", fx.agent_sock, (char *)NULL);
		_exit(127);
	}
	fx.agent_pid = pid;
	until = deadline_in(10000);
	while (lstat(fx.agent_sock, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		assert_true(piv_now_ms() < until);
		assert_int_equal(waitpid(pid, NULL, WNOHANG), 0); /* still running */
		usleep(20 * 1000);
	}
	snprintf(cmd, sizeof(cmd), "SSH_AUTH_SOCK='%s' ssh-add '%s' '%s' '%s' </dev/null >/dev/null 2>&1",
	         fx.agent_sock, fx.key_path[K_RSA], fx.key_path[K_P256], fx.key_path[K_P384]);
	assert_int_equal(run(cmd, NULL, 0), 0);
	return 0;
}

static void
reap(pid_t *pid, int sig)
{
	if (*pid > 0) {
		kill(*pid, sig);
		while (waitpid(*pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	*pid = 0;
}

/* Also undoes what a failed refusal test left behind. */
static int
agent_teardown(void **state)
{
	(void)state;
	reap(&fx.agent_pid, SIGTERM);
	reap(&fx.peer_pid, SIGKILL);
	unlink(fx.agent_sock);
	(void)chown(fx.dir, getuid(), getgid());
	(void)chmod(fx.dir, 0700);
	return 0;
}

/* ---- public keys --------------------------------------------------- */

static void
test_mpint_encoding(void **state)
{
	static const struct {
		uint8_t in[4];
		size_t in_len;
		uint8_t out[8];
		size_t out_len;
	} cases[] = {
		{ { 0 }, 0, { 0, 0, 0, 0 }, 4 },
		{ { 0, 0 }, 2, { 0, 0, 0, 0 }, 4 },
		{ { 0x7f }, 1, { 0, 0, 0, 1, 0x7f }, 5 },
		{ { 0x80 }, 1, { 0, 0, 0, 2, 0, 0x80 }, 6 },
		{ { 0, 0, 0x01, 0x00 }, 4, { 0, 0, 0, 2, 0x01, 0x00 }, 6 },
		{ { 0, 0xff, 0x01 }, 3, { 0, 0, 0, 3, 0, 0xff, 0x01 }, 7 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct piv_ssh_buf b;
		uint8_t *out = NULL;
		size_t out_len;

		piv_ssh_buf_init(&b, 0);
		piv_ssh_put_mpint_bytes(&b, cases[i].in, cases[i].in_len);
		assert_int_equal(piv_ssh_buf_take(&b, &out, &out_len), 0);
		assert_int_equal(out_len, cases[i].out_len);
		assert_memory_equal(out, cases[i].out, out_len);
		free(out);
	}
}

/* piv_ssh_pubkey_line == ssh-keygen -y, byte for byte, per key type. */
static void
test_pubkey_lines_match_ssh_keygen(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < K_N; i++) {
		char cmd[256], expected[8192], with_comment[8300];
		char *line = NULL;
		uint8_t *parsed = NULL, *blob;
		size_t parsed_len, blob_len;

		snprintf(cmd, sizeof(cmd), "ssh-keygen -y -f '%s' 2>/dev/null", fx.key_path[i]);
		assert_int_equal(run(cmd, expected, sizeof(expected)), 0);
		first_two_fields(expected);
		assert_int_equal(strncmp(expected, key_types[i], strlen(key_types[i])), 0);

		assert_int_equal(piv_ssh_pubkey_line(fx.key[i], NULL, &line), 0);
		assert_string_equal(line, expected);
		free(line);
		assert_int_equal(piv_ssh_pubkey_line(fx.key[i], "", &line), 0);
		assert_string_equal(line, expected);
		free(line);
		assert_int_equal(piv_ssh_pubkey_line(fx.key[i], "alice@example.com", &line), 0);
		snprintf(with_comment, sizeof(with_comment), "%s alice@example.com", expected);
		assert_string_equal(line, with_comment);
		free(line);

		/* The line parses back to the blob. */
		blob = blob_of(fx.key[i], &blob_len);
		assert_int_equal(piv_ssh_parse_pubkey(expected, &parsed, &parsed_len), 0);
		assert_int_equal(parsed_len, blob_len);
		assert_memory_equal(parsed, blob, blob_len);
		free(parsed);
		free(blob);
	}
}

/* A key read with a compressed point (as a certificate may carry it)
 * still gives the uncompressed point OpenSSH wants. */
static void
test_compressed_point(void **state)
{
	EVP_PKEY *copy, *reread;
	unsigned char *der = NULL;
	const unsigned char *p;
	uint8_t *a, *b;
	size_t a_len, b_len;
	int der_len;

	(void)state;
	copy = EVP_PKEY_dup(fx.key[K_P384]);
	assert_non_null(copy);
	assert_int_equal(EVP_PKEY_set_utf8_string_param(
	                         copy, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "compressed"),
	                 1);
	der_len = i2d_PUBKEY(copy, &der);
	assert_true(der_len > 0);
	/* 48-byte field: a compressed SubjectPublicKeyInfo is much shorter. */
	assert_true(der_len < 90);
	p = der;
	reread = d2i_PUBKEY(NULL, &p, der_len);
	assert_non_null(reread);
	a = blob_of(fx.key[K_P384], &a_len);
	b = blob_of(reread, &b_len);
	assert_int_equal(a_len, b_len);
	assert_memory_equal(a, b, a_len);
	free(a);
	free(b);
	OPENSSL_free(der);
	EVP_PKEY_free(reread);
	EVP_PKEY_free(copy);
}

static void
test_refused_keys(void **state)
{
	EVP_PKEY *refused[] = { fx.p521, fx.ed25519, fx.rsa1024, NULL };
	uint8_t *blob = NULL, *data, *sig;
	char *line = NULL;
	size_t blob_len, data_len, sig_len, i;

	(void)state;
	data = sshsig_data(&data_len);
	sig = sig_blob("ecdsa-sha2-nistp521", (const uint8_t *)"x", 1, NULL, 0, &sig_len);
	for (i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
		assert_int_equal(piv_ssh_pubkey_blob(refused[i], &blob, &blob_len), -1);
		assert_null(blob);
		assert_int_equal(piv_ssh_pubkey_line(refused[i], "c", &line), -1);
		assert_null(line);
		assert_int_equal(piv_ssh_verify(refused[i], sig, sig_len, data, data_len), 0);
	}
	free(sig);
	free(data);
}

static void
test_comment_sanitized(void **state)
{
	char *line = NULL, *comment;

	(void)state;
	assert_int_equal(piv_ssh_pubkey_line(fx.key[K_P256],
	                                     "Alice Example\t<alice@x>\n"
	                                     "ssh-rsa AAAA\r\x01\x7f\xc3\xa9~",
	                                     &line), 0);
	comment = strrchr(line, ' ');
	assert_non_null(comment);
	assert_string_equal(comment + 1, "Alice_Example_<alice@x>_ssh-rsa_AAAA_____~");
	/* Exactly two spaces, no line breaks. */
	assert_ptr_equal(strchr(strchr(line, ' ') + 1, ' '), comment);
	assert_null(strpbrk(line, "\r\n\t"));
	free(line);
}

/* ---- parsing ------------------------------------------------------- */

static char *
key_text(int k)
{
	char *line = NULL;
	int rc = piv_ssh_pubkey_line(fx.key[k], NULL, &line);

	assert_int_equal(rc, 0);
	assert_non_null(line);
	return line;
}

static int
parse(const char *text)
{
	uint8_t *blob = NULL;
	size_t len = 0;
	int rc = piv_ssh_parse_pubkey(text, &blob, &len);

	if (rc != 0)
		assert_null(blob);
	free(blob);
	return rc;
}

static void
test_parse_pubkey(void **state)
{
	char *rsa = key_text(K_RSA), *p256 = key_text(K_P256);
	char *b64 = strchr(rsa, ' ') + 1;
	char buf[8192];
	char *huge;
	size_t n;

	(void)state;
	assert_int_equal(parse(rsa), 0);
	assert_int_equal(parse(p256), 0);

	/* Type and blob disagree. */
	snprintf(buf, sizeof(buf), "ecdsa-sha2-nistp256 %s", b64);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "ssh-rs %s", b64);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "ssh-rsa2 %s", b64);
	assert_int_equal(parse(buf), -1);

	/* Layout. */
	assert_int_equal(parse(""), -1);
	assert_int_equal(parse("ssh-rsa"), -1);
	assert_int_equal(parse("ssh-rsa "), -1);
	assert_int_equal(parse(" ssh-rsa AAAA"), -1);
	snprintf(buf, sizeof(buf), "ssh-rsa  %s", b64);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "%s ", rsa);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "%s comment", rsa);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "%s\n", rsa);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "%s\r", rsa);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "ssh-rsa\t%s", b64);
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "ssh rsa %s", b64);
	assert_int_equal(parse(buf), -1);

	/* Base64: alphabet, length, padding, stray bits. */
	snprintf(buf, sizeof(buf), "%s", rsa);
	buf[strlen(buf) - 10] = '*';
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "%s", rsa);
	buf[strlen(buf) - 1] = '\0';
	assert_int_equal(parse(buf), -1);
	snprintf(buf, sizeof(buf), "%s", rsa);
	buf[strlen(buf) - 10] = '=';
	assert_int_equal(parse(buf), -1);
	/* The blob "ssh-rsa" alone, then the same with a non-canonical last
	 * character (stray low bits set). */
	assert_int_equal(parse("ssh-rsa AAAAB3NzaC1yc2E="), 0);
	assert_int_equal(parse("ssh-rsa AAAAB3NzaC1yc2F="), -1);
	assert_int_equal(parse("ssh-rsa AAAAB3NzaC1yc2E"), -1);
	assert_int_equal(parse("ssh-rsa AAAAB3NzaC1yc2E=="), -1);
	assert_int_equal(parse("ssh-rsa AAAAB3Nz=aC1yc2E"), -1);
	assert_int_equal(parse("ssh-rsa ===="), -1);
	/* First string longer than the blob. */
	assert_int_equal(parse("ssh-rsa AAAAC3NzaC1yc2E="), -1);
	/* Fewer than 4 bytes. */
	assert_int_equal(parse("ssh-rsa AAAA"), -1);

	/* An embedded NUL ends the C string: what is left is cut short. */
	memcpy(buf, rsa, 42);
	buf[42] = '\0';
	memcpy(buf + 43, rsa + 43, strlen(rsa) - 42);
	assert_int_equal(parse(buf), -1);

	/* A blob over 16 KiB, and a value over the input cap. */
	n = 4 * ((PIV_SSH_MAX_BLOB + 16 + 2) / 3);
	huge = malloc(PIV_SSH_MAX_AUTH_INFO + 64);
	assert_non_null(huge);
	memcpy(huge, "ssh-rsa AAAAB3NzaC1yc2EA", 24);
	memset(huge + 24, 'A', n);
	huge[24 + n] = '\0';
	assert_int_equal(parse(huge), -1);
	memset(huge + 24, 'A', PIV_SSH_MAX_AUTH_INFO);
	huge[24 + PIV_SSH_MAX_AUTH_INFO] = '\0';
	assert_int_equal(parse(huge), -1);
	free(huge);
	free(rsa);
	free(p256);
}

struct collected {
	uint8_t *blob[8];
	size_t len[8];
	size_t n;
};

static void
collect(void *ud, const uint8_t *blob, size_t len)
{
	struct collected *c = ud;

	assert_true(c->n < 8);
	c->blob[c->n] = malloc(len);
	assert_non_null(c->blob[c->n]);
	memcpy(c->blob[c->n], blob, len);
	c->len[c->n] = len;
	c->n++;
}

static void
collected_free(struct collected *c)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		free(c->blob[i]);
	memset(c, 0, sizeof(*c));
}

static int
auth_info(const char *value, struct collected *c, size_t *n_publickey)
{
	collected_free(c);
	*n_publickey = 999;
	return piv_ssh_auth_info_keys(value, collect, c, n_publickey);
}

static void
test_auth_info(void **state)
{
	char *rsa = key_text(K_RSA), *p384 = key_text(K_P384);
	char value[32768], cmd[512], pub_path[160], cert_path[160];
	char *cert_text;
	uint8_t *rsa_blob, *p384_blob, *cert_blob;
	size_t rsa_len, p384_len, cert_len, n;
	struct collected c = { 0 };
	char *huge;

	(void)state;
	rsa_blob = blob_of(fx.key[K_RSA], &rsa_len);
	p384_blob = blob_of(fx.key[K_P384], &p384_len);

	assert_int_equal(auth_info("", &c, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(auth_info("password\n", &c, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(auth_info("keyboard-interactive/pam\n", &c, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(c.n, 0);

	snprintf(value, sizeof(value), "publickey %s\nkeyboard-interactive\n", rsa);
	assert_int_equal(auth_info(value, &c, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(c.n, 1);
	assert_int_equal(c.len[0], rsa_len);
	assert_memory_equal(c.blob[0], rsa_blob, rsa_len);

	/* Two keys (AuthenticationMethods publickey,publickey), no final
	 * newline, and sshd's trailing method info on a FIDO-style line. */
	snprintf(value, sizeof(value),
	         "keyboard-interactive/pam\npublickey %s\npublickey %s signature count = 7", rsa,
	         p384);
	assert_int_equal(auth_info(value, &c, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(c.n, 2);
	assert_memory_equal(c.blob[0], rsa_blob, rsa_len);
	assert_int_equal(c.len[1], p384_len);
	assert_memory_equal(c.blob[1], p384_blob, p384_len);

	/* Only the exact method word counts. */
	snprintf(value, sizeof(value), "publickeyx %s\nPublickey %s\nhostbased %s\n", rsa, rsa,
	         rsa);
	assert_int_equal(auth_info(value, &c, &n), 0);
	assert_int_equal(n, 0);

	/* Malformed publickey lines fail the whole value (fail closed). */
	snprintf(value, sizeof(value), "publickey %s\r\n", rsa);
	assert_int_equal(auth_info(value, &c, &n), -1);
	snprintf(value, sizeof(value), "password\npublickey %s\n", rsa);
	value[strlen(value) - 5] = '!';
	assert_int_equal(auth_info(value, &c, &n), -1);
	assert_int_equal(auth_info("publickey\n", &c, &n), -1);
	assert_int_equal(auth_info("publickey \n", &c, &n), -1);
	assert_int_equal(auth_info("publickey ssh-rsa\n", &c, &n), -1);
	snprintf(value, sizeof(value), "publickey ecdsa-sha2-nistp384 %s\n", strchr(rsa, ' ') + 1);
	assert_int_equal(auth_info(value, &c, &n), -1);
	snprintf(value, sizeof(value), "publickey %s\npublickey  %s\n", rsa, p384);
	assert_int_equal(auth_info(value, &c, &n), -1);
	assert_int_equal(n, 2);

	/* A certificate, made by ssh-keygen: counted, its blob returned. */
	snprintf(pub_path, sizeof(pub_path), "%s/user.pub", fx.dir);
	snprintf(cert_path, sizeof(cert_path), "%s/user-cert.pub", fx.dir);
	snprintf(value, sizeof(value), "%s user\n", rsa);
	write_text(pub_path, value);
	snprintf(cmd, sizeof(cmd), "ssh-keygen -q -s '%s' -I alice -n alice '%s' >/dev/null 2>&1",
	         fx.key_path[K_P256], pub_path);
	assert_int_equal(run(cmd, NULL, 0), 0);
	cert_text = slurp(cert_path);
	first_two_fields(cert_text);
	assert_int_equal(strncmp(cert_text, "ssh-rsa-cert-v01@openssh.com ", 29), 0);
	assert_int_equal(piv_ssh_parse_pubkey(cert_text, &cert_blob, &cert_len), 0);
	snprintf(value, sizeof(value), "publickey %s\n", cert_text);
	assert_int_equal(auth_info(value, &c, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(c.len[0], cert_len);
	assert_memory_equal(c.blob[0], cert_blob, cert_len);
	assert_true(cert_len != rsa_len || memcmp(cert_blob, rsa_blob, rsa_len) != 0);

	/* Too long to be sshd's. */
	huge = malloc(PIV_SSH_MAX_AUTH_INFO + 2);
	assert_non_null(huge);
	memset(huge, 'p', PIV_SSH_MAX_AUTH_INFO + 1);
	huge[PIV_SSH_MAX_AUTH_INFO + 1] = '\0';
	assert_int_equal(auth_info(huge, &c, &n), -1);
	free(huge);

	/* No callback: just count. */
	snprintf(value, sizeof(value), "publickey %s\n", rsa);
	assert_int_equal(piv_ssh_auth_info_keys(value, NULL, NULL, &n), 0);
	assert_int_equal(n, 1);

	collected_free(&c);
	free(cert_text);
	free(cert_blob);
	free(rsa_blob);
	free(p384_blob);
	free(rsa);
	free(p384);
}

/* ---- signatures ---------------------------------------------------- */

/* ssh-keygen -Y sign, verified with piv_sshsig_signed_data +
 * piv_ssh_verify: the construction matches OpenSSH byte for byte. */
static void
test_sshsig_matches_ssh_keygen(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < K_N; i++) {
		char msg_path[160], sig_path[170], cmd[512], alg[64];
		struct sshsig s;
		uint8_t *blob, *data, *other;
		const uint8_t *raw_sig;
		size_t blob_len, data_len, other_len, raw_sig_len;

		snprintf(msg_path, sizeof(msg_path), "%s/msg-%s", fx.dir, key_names[i]);
		snprintf(sig_path, sizeof(sig_path), "%s.sig", msg_path);
		write_text(msg_path, MESSAGE);
		unlink(sig_path);
		snprintf(cmd, sizeof(cmd), "ssh-keygen -q -Y sign -f '%s' -n %s '%s' >/dev/null 2>&1",
		         fx.key_path[i], NS, msg_path);
		assert_int_equal(run(cmd, NULL, 0), 0);
		sshsig_read(sig_path, &s);
		assert_int_equal(s.version, 1);
		blob = blob_of(fx.key[i], &blob_len);
		assert_int_equal(s.pub_len, blob_len);
		assert_memory_equal(s.pub, blob, blob_len);
		assert_int_equal(s.ns_len, strlen(NS));
		assert_memory_equal(s.ns, NS, s.ns_len);
		assert_int_equal(s.reserved_len, 0);
		assert_int_equal(s.hash_len, 6);
		assert_memory_equal(s.hash, "sha512", 6);
		sig_parts(s.sig, s.sig_len, alg, sizeof(alg), &raw_sig, &raw_sig_len);
		assert_string_equal(alg, i == K_RSA ? "rsa-sha2-512" : key_types[i]);

		data = sshsig_data(&data_len);
		assert_int_equal(piv_ssh_verify(fx.key[i], s.sig, s.sig_len, data, data_len), 1);
		/* The envelope itself and a different namespace do not verify. */
		assert_int_equal(piv_ssh_verify(fx.key[i], s.sig, s.sig_len,
		                                (const uint8_t *)MESSAGE, strlen(MESSAGE)), 0);
		assert_int_equal(piv_sshsig_signed_data("file", (const uint8_t *)MESSAGE,
		                                        strlen(MESSAGE), &other, &other_len), 0);
		assert_int_equal(piv_ssh_verify(fx.key[i], s.sig, s.sig_len, other, other_len), 0);
		free(other);
		/* ...and ssh-keygen accepts its own signature in our envelope. */
		assert_int_equal(ssh_keygen_accepts(blob, blob_len, s.sig, s.sig_len), 0);
		free(data);
		free(blob);
		free(s.raw);
	}
	{
		uint8_t *out = NULL;
		size_t out_len;

		assert_int_equal(piv_sshsig_signed_data("", (const uint8_t *)"m", 1, &out, &out_len),
		                 -1);
		assert_int_equal(piv_sshsig_signed_data("n", NULL, 0, &out, &out_len), 0);
		/* 6 + (4+1) + 4 + (4+6) + (4+64) */
		assert_int_equal(out_len, 93);
		assert_memory_equal(out, "SSHSIG\0\0\0\1n\0\0\0\0\0\0\0\6sha512\0\0\0\x40", 29);
		free(out);
	}
}

/* Sign with OpenSSL directly: for the cases ssh-keygen will not make. */
static uint8_t *
openssl_sign(EVP_PKEY *key, const char *digest, const uint8_t *data, size_t data_len,
             size_t *sig_len)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	uint8_t *sig;

	assert_non_null(mctx);
	assert_int_equal(EVP_DigestSignInit_ex(mctx, NULL, digest, NULL, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(mctx, NULL, sig_len, data, data_len), 1);
	sig = malloc(*sig_len);
	assert_non_null(sig);
	assert_int_equal(EVP_DigestSign(mctx, sig, sig_len, data, data_len), 1);
	EVP_MD_CTX_free(mctx);
	return sig;
}

/* An ECDSA signature's r and s as minimal big-endian magnitudes. */
static void
ec_sign(EVP_PKEY *key, const char *digest, const uint8_t *data, size_t data_len, uint8_t *r,
        size_t *r_len, uint8_t *s, size_t *s_len)
{
	size_t der_len;
	uint8_t *der = openssl_sign(key, digest, data, data_len, &der_len);
	const unsigned char *p = der;
	ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);

	assert_non_null(sig);
	*r_len = (size_t)BN_bn2bin(ECDSA_SIG_get0_r(sig), r);
	*s_len = (size_t)BN_bn2bin(ECDSA_SIG_get0_s(sig), s);
	ECDSA_SIG_free(sig);
	free(der);
}

/* An ECDSA SSH signature from r and s given as the exact bytes of each
 * mpint (so tests can break the encoding), plus extra inner bytes. */
static uint8_t *
ec_blob(const char *alg, const uint8_t *r, size_t r_len, const uint8_t *s, size_t s_len,
        const void *extra, size_t extra_len, size_t *len)
{
	struct piv_ssh_buf inner;
	uint8_t *inner_bytes = NULL, *out;
	size_t inner_len;

	piv_ssh_buf_init(&inner, 0);
	piv_ssh_put_string(&inner, r, r_len);
	piv_ssh_put_string(&inner, s, s_len);
	piv_ssh_put_raw(&inner, extra, extra_len);
	assert_int_equal(piv_ssh_buf_take(&inner, &inner_bytes, &inner_len), 0);
	out = sig_blob(alg, inner_bytes, inner_len, NULL, 0, len);
	free(inner_bytes);
	return out;
}

static int
verify_ec(EVP_PKEY *key, const char *alg, const uint8_t *r, size_t r_len, const uint8_t *s,
          size_t s_len, const uint8_t *data, size_t data_len)
{
	size_t len;
	uint8_t *blob = ec_blob(alg, r, r_len, s, s_len, NULL, 0, &len);
	int rc = piv_ssh_verify(key, blob, len, data, data_len);

	free(blob);
	return rc;
}

static void
check_ec_strictness(int k, const char *digest, size_t field_len)
{
	const char *alg = key_types[k];
	EVP_PKEY *key = fx.key[k];
	uint8_t r[80], s[80], mp_r[84], mp_s[84], big[84];
	size_t r_len, s_len, data_len, len;
	uint8_t *data = sshsig_data(&data_len), *blob;
	int tries;

	/* r with its top bit set: the mpint needs a 0x00; without it the same
	 * bytes would be a negative number. */
	for (tries = 0;; tries++) {
		assert_true(tries < 200);
		ec_sign(key, digest, data, data_len, r, &r_len, s, &s_len);
		if (r_len == field_len && (r[0] & 0x80) != 0)
			break;
	}
	mp_r[0] = 0;
	memcpy(mp_r + 1, r, r_len);
	memcpy(mp_s + 1, s, s_len);
	mp_s[0] = 0;
	{
		const uint8_t *ps = (s[0] & 0x80) ? mp_s : mp_s + 1;
		size_t ps_len = (s[0] & 0x80) ? s_len + 1 : s_len;

		assert_int_equal(verify_ec(key, alg, mp_r, r_len + 1, ps, ps_len, data, data_len),
		                 1);
		assert_int_equal(verify_ec(key, alg, r, r_len, ps, ps_len, data, data_len), 0);
		/* Outer and inner trailing bytes. */
		blob = ec_blob(alg, mp_r, r_len + 1, ps, ps_len, "\0", 1, &len);
		assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
		free(blob);
		blob = ec_blob(alg, mp_r, r_len + 1, ps, ps_len, NULL, 0, &len);
		assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 1);
		assert_int_equal(piv_ssh_verify(key, blob, len - 1, data, data_len), 0);
		{
			uint8_t *longer = malloc(len + 1);

			assert_non_null(longer);
			memcpy(longer, blob, len);
			longer[len] = 0;
			assert_int_equal(piv_ssh_verify(key, longer, len + 1, data, data_len), 0);
			free(longer);
		}
		/* A flipped bit in r, in the data, the wrong key, the other
		 * curve's or RSA's algorithm name. */
		blob[len - ps_len - 5] ^= 0x01; /* last byte of r */
		assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
		free(blob);
		data[data_len - 1] ^= 0x01;
		assert_int_equal(verify_ec(key, alg, mp_r, r_len + 1, ps, ps_len, data, data_len),
		                 0);
		data[data_len - 1] ^= 0x01;
		assert_int_equal(verify_ec(k == K_P256 ? fx.p256_other : fx.key[K_P256],
		                           k == K_P256 ? alg : key_types[K_P256], mp_r, r_len + 1, ps,
		                           ps_len, data, data_len), 0);
		assert_int_equal(verify_ec(key, k == K_P256 ? key_types[K_P384] : key_types[K_P256],
		                           mp_r, r_len + 1, ps, ps_len, data, data_len), 0);
		assert_int_equal(verify_ec(key, "rsa-sha2-256", mp_r, r_len + 1, ps, ps_len, data,
		                           data_len), 0);
		assert_int_equal(verify_ec(fx.key[K_RSA], alg, mp_r, r_len + 1, ps, ps_len, data,
		                           data_len), 0);
		/* Zero r or s (the empty mpint). */
		assert_int_equal(verify_ec(key, alg, NULL, 0, ps, ps_len, data, data_len), 0);
		assert_int_equal(verify_ec(key, alg, mp_r, r_len + 1, NULL, 0, data, data_len), 0);
	}

	/* r with its top bit clear: a leading 0x00 is superfluous, two are
	 * worse; a value longer than the field is refused. */
	for (tries = 0;; tries++) {
		assert_true(tries < 200);
		ec_sign(key, digest, data, data_len, r, &r_len, s, &s_len);
		if (r_len == field_len && (r[0] & 0x80) == 0 && (s[0] & 0x80) == 0)
			break;
	}
	assert_int_equal(verify_ec(key, alg, r, r_len, s, s_len, data, data_len), 1);
	mp_r[0] = 0;
	memcpy(mp_r + 1, r, r_len);
	assert_int_equal(verify_ec(key, alg, mp_r, r_len + 1, s, s_len, data, data_len), 0);
	big[0] = 0;
	big[1] = 0;
	memcpy(big + 2, r, r_len);
	assert_int_equal(verify_ec(key, alg, big, r_len + 2, s, s_len, data, data_len), 0);
	big[0] = 0x01;
	memcpy(big + 1, r, r_len);
	assert_int_equal(verify_ec(key, alg, big, r_len + 1, s, s_len, data, data_len), 0);
	mp_s[0] = 0;
	memcpy(mp_s + 1, s, s_len);
	assert_int_equal(verify_ec(key, alg, r, r_len, mp_s, s_len + 1, data, data_len), 0);
	/* s negative: its top bit forced on. */
	memcpy(mp_s, s, s_len);
	mp_s[0] |= 0x80;
	assert_int_equal(verify_ec(key, alg, r, r_len, mp_s, s_len, data, data_len), 0);
	free(data);
}

static void
test_verify_ecdsa_strict(void **state)
{
	(void)state;
	check_ec_strictness(K_P256, "SHA256", 32);
	check_ec_strictness(K_P384, "SHA384", 48);
}

static void
test_verify_rsa_strict(void **state)
{
	EVP_PKEY *key = fx.key[K_RSA];
	uint8_t *data, *sig, *blob, *padded;
	size_t data_len, sig_len, len;
	int tries;

	(void)state;
	data = sshsig_data(&data_len);

	sig = openssl_sign(key, "SHA256", data, data_len, &sig_len);
	assert_int_equal(sig_len, 256);
	blob = sig_blob("rsa-sha2-256", sig, sig_len, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 1);
	assert_int_equal(piv_ssh_verify(fx.rsa_other, blob, len, data, data_len), 0);
	assert_int_equal(piv_ssh_verify(fx.key[K_P256], blob, len, data, data_len), 0);
	assert_int_equal(piv_ssh_verify(key, blob, len - 1, data, data_len), 0);
	assert_int_equal(piv_ssh_verify(key, blob, 0, data, data_len), 0);
	blob[len - 1] ^= 0x01;
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	/* Trailing byte after the signature string. */
	blob = sig_blob("rsa-sha2-256", sig, sig_len, "\0", 1, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	/* The algorithm names the hash: a SHA-256 signature labelled 512 (or
	 * anything else) fails. */
	blob = sig_blob("rsa-sha2-512", sig, sig_len, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	blob = sig_blob("RSA-SHA2-256", sig, sig_len, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	/* Length must be the modulus size: a 0x00 in front does not pass. */
	padded = malloc(sig_len + 1);
	assert_non_null(padded);
	padded[0] = 0;
	memcpy(padded + 1, sig, sig_len);
	blob = sig_blob("rsa-sha2-256", padded, sig_len + 1, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	free(padded);
	free(sig);

	sig = openssl_sign(key, "SHA512", data, data_len, &sig_len);
	blob = sig_blob("rsa-sha2-512", sig, sig_len, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 1);
	free(blob);
	free(sig);

	/* A signature that starts with 0x00, sent without that byte: OpenSSH
	 * would pad it back, we want exactly the modulus size. */
	for (tries = 0;; tries++) {
		char msg[32];

		assert_true(tries < 20000); /* 1/256 per try */
		snprintf(msg, sizeof(msg), "message %d", tries);
		sig = openssl_sign(key, "SHA256", (const uint8_t *)msg, strlen(msg), &sig_len);
		if (sig[0] == 0) {
			blob = sig_blob("rsa-sha2-256", sig, sig_len, NULL, 0, &len);
			assert_int_equal(piv_ssh_verify(key, blob, len, (const uint8_t *)msg,
			                                strlen(msg)), 1);
			free(blob);
			blob = sig_blob("rsa-sha2-256", sig + 1, sig_len - 1, NULL, 0, &len);
			assert_int_equal(piv_ssh_verify(key, blob, len, (const uint8_t *)msg,
			                                strlen(msg)), 0);
			free(blob);
			free(sig);
			break;
		}
		free(sig);
	}

	/* A genuine SHA-1 signature is still refused as "ssh-rsa". */
	sig = openssl_sign(key, "SHA1", data, data_len, &sig_len);
	blob = sig_blob("ssh-rsa", sig, sig_len, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	free(sig);
	free(data);
}

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
		T(test_mpint_encoding),
		T(test_pubkey_lines_match_ssh_keygen),
		T(test_compressed_point),
		T(test_refused_keys),
		T(test_comment_sanitized),
		T(test_parse_pubkey),
		T(test_auth_info),
		T(test_sshsig_matches_ssh_keygen),
		T(test_verify_ecdsa_strict),
		T(test_verify_rsa_strict),
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
	return cmocka_run_group_tests_name("ssh", tests, setup, teardown);
}
