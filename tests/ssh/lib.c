/* Shared by the ssh tests: see lib.h. */
#include "lib.h"

const char *const key_names[K_N] = { "rsa", "p256", "p384" };
const char *const key_types[K_N] = { "ssh-rsa", "ecdsa-sha2-nistp256",
	                                    "ecdsa-sha2-nistp384" };

struct ssh_fx fx;

/* ---- helpers ------------------------------------------------------- */

void
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

void
write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

/* Run a shell command, capture stdout. 0 when it exits with status 0. */
int
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

char *
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
void
first_two_fields(char *line)
{
	char *sp;

	line[strcspn(line, "\r\n")] = '\0';
	sp = strchr(line, ' ');
	assert_non_null(sp);
	if ((sp = strchr(sp + 1, ' ')) != NULL)
		*sp = '\0';
}

uint8_t *
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

uint8_t *
blob_of(EVP_PKEY *key, size_t *len)
{
	uint8_t *blob = NULL;

	assert_int_equal(piv_ssh_pubkey_blob(key, &blob, len), 0);
	return blob;
}

uint8_t *
sshsig_data(size_t *len)
{
	uint8_t *data = NULL;

	assert_int_equal(piv_sshsig_signed_data(NS, (const uint8_t *)MESSAGE, strlen(MESSAGE),
	                                        &data, len), 0);
	return data;
}

/* An SSH signature blob: string alg, string sig, then extra raw bytes. */
uint8_t *
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
void
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

void
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

void
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
int
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

int64_t
deadline_in(int64_t ms)
{
	return piv_now_ms() + ms;
}

/* ---- fixture ------------------------------------------------------- */

int
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
	/* a key only an outside CA's OpenSSL would make (a FIPS-only one, as
	 * in CI's FIPS stage, refuses): the default provider, in a context of
	 * its own */
	fx.outside = OSSL_LIB_CTX_new();
	if (fx.outside != NULL &&
	    (fx.outside_default = OSSL_PROVIDER_load(fx.outside, "default")) != NULL)
		fx.rsa1024 = EVP_PKEY_Q_keygen(fx.outside, NULL, "RSA", (size_t)1024);
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

int
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
	OSSL_PROVIDER_unload(fx.outside_default);
	OSSL_LIB_CTX_free(fx.outside);
	if (strncmp(fx.dir, "/tmp/piv-ssh-", 13) == 0) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx.dir);
		(void)run(cmd, NULL, 0);
	}
	return 0;
}

int
per_test_timeout(void **state)
{
	(void)state;
	alarm(60); /* a hang fails the run instead of stalling CI */
	return 0;
}

/* A real ssh-agent on a socket in the fixture directory, holding the
 * three keys. */
int
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

void
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
int
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

