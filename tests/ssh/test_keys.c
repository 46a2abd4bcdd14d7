/* cmocka tests of the OpenSSH key and signature code, checked against the
 * real ssh-keygen: public key lines byte for byte, SSHSIG both ways,
 * signature strictness, SSH_AUTH_INFO_0 parsing. */
#include "lib.h"

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

/* Sign with OpenSSL directly, in library context ctx (NULL: this
 * process's): for the cases ssh-keygen will not make. */
static uint8_t *
openssl_sign_in(OSSL_LIB_CTX *ctx, EVP_PKEY *key, const char *digest, const uint8_t *data,
                size_t data_len, size_t *sig_len)
{
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	uint8_t *sig;

	assert_non_null(mctx);
	assert_int_equal(EVP_DigestSignInit_ex(mctx, NULL, digest, ctx, NULL, key, NULL), 1);
	assert_int_equal(EVP_DigestSign(mctx, NULL, sig_len, data, data_len), 1);
	sig = malloc(*sig_len);
	assert_non_null(sig);
	assert_int_equal(EVP_DigestSign(mctx, sig, sig_len, data, data_len), 1);
	EVP_MD_CTX_free(mctx);
	return sig;
}

static uint8_t *
openssl_sign(EVP_PKEY *key, const char *digest, const uint8_t *data, size_t data_len,
             size_t *sig_len)
{
	return openssl_sign_in(NULL, key, digest, data, data_len, sig_len);
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

	/* A genuine SHA-1 signature is still refused as "ssh-rsa" (made by
	 * OpenSSL's default provider: a FIPS-only one will not sign it). */
	sig = openssl_sign_in(fx.outside, key, "SHA1", data, data_len, &sig_len);
	blob = sig_blob("ssh-rsa", sig, sig_len, NULL, 0, &len);
	assert_int_equal(piv_ssh_verify(key, blob, len, data, data_len), 0);
	free(blob);
	free(sig);
	free(data);
}

int
main(void)
{
#define T(f) cmocka_unit_test_setup(f, per_test_timeout)
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
	};
#undef T
	alarm(300);
	return cmocka_run_group_tests_name("ssh keys", tests, setup, teardown);
}
