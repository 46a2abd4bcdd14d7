/* OpenSSH public keys and signatures for the keys of X.509 certificates.
 * Every byte that came from sshd, an agent or a file goes through the
 * bounds-checked reader; the cryptography is OpenSSL's. */
#include "config.h"
#include "ssh/sshkey.h"
#include "pki/prove.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/rsa.h>

#define RSA_MIN_BITS 2048
#define RSA_MAX_BITS 16384  /* OpenSSH's SSH_RSA_MAXIMUM_MODULUS_SIZE */
#define MAX_TYPE_LEN 64
#define SSHSIG_MAGIC "SSHSIG"
#define SSHSIG_HASH "sha512"

/* ---- buffer -------------------------------------------------------- */

void
piv_ssh_buf_init(struct piv_ssh_buf *b, size_t max)
{
	memset(b, 0, sizeof(*b));
	b->max = max ? max : PIV_SSH_MAX_BUF;
}

void
piv_ssh_buf_free(struct piv_ssh_buf *b)
{
	if (b->data != NULL) {
		piv_wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = NULL;
	b->len = b->cap = 0;
}

static int
buf_reserve(struct piv_ssh_buf *b, size_t extra)
{
	size_t want, cap;
	uint8_t *grown;

	if (b->failed)
		return -1;
	if (extra > b->max || b->len > b->max - extra) {
		b->failed = 1;
		return -1;
	}
	want = b->len + extra;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < want)
		cap *= 2;
	if (cap > b->max)
		cap = b->max;
	/* Not realloc: the old copy is wiped before it is freed. */
	if ((grown = malloc(cap)) == NULL) {
		b->failed = 1;
		return -1;
	}
	if (b->data != NULL) {
		memcpy(grown, b->data, b->len);
		piv_wipe(b->data, b->cap);
		free(b->data);
	}
	b->data = grown;
	b->cap = cap;
	return 0;
}

void
piv_ssh_put_raw(struct piv_ssh_buf *b, const void *p, size_t len)
{
	if (buf_reserve(b, len) != 0)
		return;
	if (len > 0)
		memcpy(b->data + b->len, p, len);
	b->len += len;
}

void
piv_ssh_put_u8(struct piv_ssh_buf *b, uint8_t v)
{
	piv_ssh_put_raw(b, &v, 1);
}

void
piv_ssh_put_u32(struct piv_ssh_buf *b, uint32_t v)
{
	uint8_t be[4] = { (uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };

	piv_ssh_put_raw(b, be, sizeof(be));
}

void
piv_ssh_put_string(struct piv_ssh_buf *b, const void *p, size_t len)
{
	if (len > UINT32_MAX - 4 || buf_reserve(b, len + 4) != 0) {
		b->failed = 1;
		return;
	}
	piv_ssh_put_u32(b, (uint32_t)len);
	piv_ssh_put_raw(b, p, len);
}

void
piv_ssh_put_cstring(struct piv_ssh_buf *b, const char *s)
{
	piv_ssh_put_string(b, s, strlen(s));
}

void
piv_ssh_put_mpint_bytes(struct piv_ssh_buf *b, const uint8_t *mag, size_t len)
{
	while (len > 0 && mag[0] == 0) {
		mag++;
		len--;
	}
	if (len == 0) {
		piv_ssh_put_u32(b, 0);
		return;
	}
	if (len >= UINT32_MAX) {
		b->failed = 1;
		return;
	}
	if (mag[0] & 0x80) {
		/* Positive numbers with the top bit set get a 0x00 so they do not
		 * read as negative (RFC 4251 §5). */
		piv_ssh_put_u32(b, (uint32_t)(len + 1));
		piv_ssh_put_u8(b, 0);
	} else {
		piv_ssh_put_u32(b, (uint32_t)len);
	}
	piv_ssh_put_raw(b, mag, len);
}

int
piv_ssh_buf_take(struct piv_ssh_buf *b, uint8_t **out, size_t *out_len)
{
	if (b->failed || b->data == NULL) {
		piv_ssh_buf_free(b);
		return -1;
	}
	*out = b->data;
	*out_len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return 0;
}

/* ---- reader -------------------------------------------------------- */

void
piv_ssh_reader_init(struct piv_ssh_reader *r, const uint8_t *p, size_t len)
{
	r->p = p;
	r->left = p != NULL ? len : 0;
}

int
piv_ssh_get_u8(struct piv_ssh_reader *r, uint8_t *v)
{
	if (r->left < 1)
		return -1;
	*v = r->p[0];
	r->p++;
	r->left--;
	return 0;
}

int
piv_ssh_get_u32(struct piv_ssh_reader *r, uint32_t *v)
{
	if (r->left < 4)
		return -1;
	*v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	r->left -= 4;
	return 0;
}

int
piv_ssh_get_string(struct piv_ssh_reader *r, const uint8_t **p, size_t *len)
{
	struct piv_ssh_reader save = *r;
	uint32_t n;

	if (piv_ssh_get_u32(r, &n) != 0)
		return -1;
	if (n > r->left) {
		*r = save;
		return -1;
	}
	*p = r->p;
	*len = n;
	r->p += n;
	r->left -= n;
	return 0;
}

int
piv_ssh_get_expect(struct piv_ssh_reader *r, const char *s)
{
	const uint8_t *p;
	size_t n;

	if (piv_ssh_get_string(r, &p, &n) != 0)
		return -1;
	return (n == strlen(s) && memcmp(p, s, n) == 0) ? 0 : -1;
}

int
piv_ssh_reader_end(const struct piv_ssh_reader *r)
{
	return r->left == 0 ? 0 : -1;
}

/* ---- keys ---------------------------------------------------------- */

enum ssh_kind { SSH_KIND_RSA, SSH_KIND_P256, SSH_KIND_P384 };

struct ssh_kind_info {
	const char *key_type;   /* also the ECDSA signature algorithm */
	const char *curve;      /* RFC 5656 identifier */
	size_t field_len;
	const char *digest;
};

static const struct ssh_kind_info kind_info[] = {
	[SSH_KIND_RSA] = { "ssh-rsa", NULL, 0, NULL },
	[SSH_KIND_P256] = { "ecdsa-sha2-nistp256", "nistp256", 32, "SHA256" },
	[SSH_KIND_P384] = { "ecdsa-sha2-nistp384", "nistp384", 48, "SHA384" },
};

/* Which of the supported keys pkey is; -1 for everything else (other
 * curves, explicit curve parameters, RSA-PSS-only keys, DSA, EdDSA, short
 * RSA). */
static int
key_kind(EVP_PKEY *pkey, enum ssh_kind *kind)
{
	if (pkey == NULL)
		return -1;
	if (EVP_PKEY_is_a(pkey, "RSA")) {
		int bits = EVP_PKEY_get_bits(pkey);

		if (bits < RSA_MIN_BITS || bits > RSA_MAX_BITS)
			return -1;
		*kind = SSH_KIND_RSA;
		return 0;
	}
	if (EVP_PKEY_is_a(pkey, "EC")) {
		char group[80];
		size_t group_len = 0;
		int nid;

		if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &group_len) != 1)
			return -1;
		nid = OBJ_txt2nid(group);
		if (nid == NID_X9_62_prime256v1)
			*kind = SSH_KIND_P256;
		else if (nid == NID_secp384r1)
			*kind = SSH_KIND_P384;
		else
			return -1;
		return 0;
	}
	return -1;
}

static void
put_bn_param(struct piv_ssh_buf *b, EVP_PKEY *pkey, const char *name)
{
	BIGNUM *bn = NULL;
	uint8_t *mag = NULL;
	int n;

	if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1 || BN_is_negative(bn)) {
		b->failed = 1;
		goto out;
	}
	n = BN_num_bytes(bn);
	if (n < 0 || (mag = malloc((size_t)n + 1)) == NULL) {
		b->failed = 1;
		goto out;
	}
	if (BN_bn2bin(bn, mag) != n) {
		b->failed = 1;
		goto out;
	}
	piv_ssh_put_mpint_bytes(b, mag, (size_t)n);
out:
	free(mag);
	BN_free(bn);
}

/* The point as 0x04 || X || Y whatever conversion form the key was read
 * in (a certificate may carry a compressed point). */
static void
put_ec_point(struct piv_ssh_buf *b, EVP_PKEY *pkey, size_t field_len)
{
	BIGNUM *x = NULL, *y = NULL;
	uint8_t point[1 + 2 * 66];

	if (EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, &x) != 1 ||
	    EVP_PKEY_get_bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, &y) != 1 ||
	    2 * field_len + 1 > sizeof(point)) {
		b->failed = 1;
		goto out;
	}
	point[0] = 0x04;
	if (BN_bn2binpad(x, point + 1, (int)field_len) != (int)field_len ||
	    BN_bn2binpad(y, point + 1 + field_len, (int)field_len) != (int)field_len) {
		b->failed = 1;
		goto out;
	}
	piv_ssh_put_string(b, point, 1 + 2 * field_len);
out:
	BN_free(x);
	BN_free(y);
}

int
piv_ssh_pubkey_blob(EVP_PKEY *pkey, uint8_t **blob, size_t *len)
{
	struct piv_ssh_buf b;
	enum ssh_kind kind;

	return_val_if_fail(blob != NULL && len != NULL, -1);
	if (key_kind(pkey, &kind) != 0)
		return -1;
	piv_ssh_buf_init(&b, PIV_SSH_MAX_BLOB);
	piv_ssh_put_cstring(&b, kind_info[kind].key_type);
	if (kind == SSH_KIND_RSA) {
		put_bn_param(&b, pkey, OSSL_PKEY_PARAM_RSA_E);
		put_bn_param(&b, pkey, OSSL_PKEY_PARAM_RSA_N);
	} else {
		piv_ssh_put_cstring(&b, kind_info[kind].curve);
		put_ec_point(&b, pkey, kind_info[kind].field_len);
	}
	ERR_clear_error();
	return piv_ssh_buf_take(&b, blob, len);
}

static char *
b64_encode(const uint8_t *in, size_t len)
{
	size_t out_len = 4 * ((len + 2) / 3);
	char *out;

	if (len > PIV_SSH_MAX_BUF || (out = malloc(out_len + 1)) == NULL)
		return NULL;
	if (EVP_EncodeBlock((unsigned char *)out, in, (int)len) != (int)out_len) {
		free(out);
		return NULL;
	}
	out[out_len] = '\0';
	return out;
}

int
piv_ssh_pubkey_line(EVP_PKEY *pkey, const char *comment, char **line)
{
	uint8_t *blob = NULL;
	size_t blob_len, type_len, b64_len, comment_len, total, i;
	char *b64 = NULL, *out = NULL;
	enum ssh_kind kind;
	int ret = -1;

	return_val_if_fail(line != NULL, -1);
	if (key_kind(pkey, &kind) != 0 || piv_ssh_pubkey_blob(pkey, &blob, &blob_len) != 0)
		goto out;
	if ((b64 = b64_encode(blob, blob_len)) == NULL)
		goto out;
	type_len = strlen(kind_info[kind].key_type);
	b64_len = strlen(b64);
	comment_len = comment != NULL ? strnlen(comment, 4096) : 0;
	total = type_len + 1 + b64_len + (comment_len ? 1 + comment_len : 0) + 1;
	if ((out = malloc(total)) == NULL)
		goto out;
	memcpy(out, kind_info[kind].key_type, type_len);
	out[type_len] = ' ';
	memcpy(out + type_len + 1, b64, b64_len);
	i = type_len + 1 + b64_len;
	if (comment_len > 0) {
		size_t j;

		out[i++] = ' ';
		/* authorized_keys is split on whitespace and read line by line:
		 * a comment from a certificate must not add fields or lines. */
		for (j = 0; j < comment_len; j++) {
			unsigned char c = (unsigned char)comment[j];
			out[i++] = (c > 0x20 && c < 0x7f) ? (char)c : '_';
		}
	}
	out[i] = '\0';
	*line = out;
	out = NULL;
	ret = 0;
out:
	free(out);
	free(b64);
	free(blob);
	return ret;
}

static int
is_b64_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '+' || c == '/';
}

static int
is_type_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '@' || c == '+';
}

/* Canonical padded base64 only: the alphabet, '=' only as the last one or
 * two characters, and bytes that re-encode to exactly the input (no stray
 * bits in the last character). */
static int
b64_decode_strict(const char *in, size_t in_len, size_t max_out, uint8_t **out,
                  size_t *out_len)
{
	size_t i, pad = 0, raw_len;
	uint8_t *dec = NULL;
	char *again = NULL;
	int n, ret = -1;

	if (in_len == 0 || in_len % 4 != 0 || in_len / 4 * 3 > max_out + 2)
		return -1;
	for (i = 0; i < in_len; i++) {
		if (in[i] == '=' && i + 2 >= in_len)
			pad++;
		else if (!is_b64_char(in[i]) || pad > 0)
			return -1;
	}
	raw_len = in_len / 4 * 3;
	if ((dec = malloc(raw_len)) == NULL)
		goto out;
	n = EVP_DecodeBlock(dec, (const unsigned char *)in, (int)in_len);
	if (n < 0 || (size_t)n != raw_len || raw_len - pad > max_out)
		goto out;
	raw_len -= pad;
	again = b64_encode(dec, raw_len);
	if (again == NULL || strlen(again) != in_len || memcmp(again, in, in_len) != 0)
		goto out;
	*out = dec;
	*out_len = raw_len;
	dec = NULL;
	ret = 0;
out:
	free(again);
	free(dec);
	return ret;
}

/* TYPE and BASE64 as two tokens of known length. */
static int
parse_key_tokens(const char *type, size_t type_len, const char *b64, size_t b64_len,
                 uint8_t **blob, size_t *len)
{
	struct piv_ssh_reader r;
	const uint8_t *blob_type;
	size_t blob_type_len, i, decoded_len;
	uint8_t *decoded = NULL;

	if (type_len == 0 || type_len > MAX_TYPE_LEN)
		return -1;
	for (i = 0; i < type_len; i++)
		if (!is_type_char(type[i]))
			return -1;
	if (b64_decode_strict(b64, b64_len, PIV_SSH_MAX_BLOB, &decoded, &decoded_len) != 0)
		return -1;
	piv_ssh_reader_init(&r, decoded, decoded_len);
	if (piv_ssh_get_string(&r, &blob_type, &blob_type_len) != 0 ||
	    blob_type_len != type_len || memcmp(blob_type, type, type_len) != 0) {
		free(decoded);
		return -1;
	}
	*blob = decoded;
	*len = decoded_len;
	return 0;
}

int
piv_ssh_parse_pubkey(const char *type_and_b64, uint8_t **blob, size_t *len)
{
	const char *space;
	size_t total;

	return_val_if_fail(type_and_b64 != NULL && blob != NULL && len != NULL, -1);
	total = strnlen(type_and_b64, PIV_SSH_MAX_AUTH_INFO + 1);
	if (total > PIV_SSH_MAX_AUTH_INFO)
		return -1;
	if ((space = memchr(type_and_b64, ' ', total)) == NULL)
		return -1;
	return parse_key_tokens(type_and_b64, (size_t)(space - type_and_b64), space + 1,
	                        total - (size_t)(space - type_and_b64) - 1, blob, len);
}

/* One "publickey KEYTYPE BASE64[ INFO]" line after the method word and
 * its space. */
static int
auth_info_key(const char *p, size_t len,
              void (*fn)(void *ud, const uint8_t *blob, size_t len), void *ud)
{
	const char *type_end, *b64, *b64_end;
	uint8_t *blob = NULL;
	size_t blob_len;

	if ((type_end = memchr(p, ' ', len)) == NULL)
		return -1;
	b64 = type_end + 1;
	b64_end = memchr(b64, ' ', len - (size_t)(b64 - p));
	if (b64_end == NULL)
		b64_end = p + len;
	/* Whatever follows the key (sshd's auth_method_info) is not ours. */
	if (parse_key_tokens(p, (size_t)(type_end - p), b64, (size_t)(b64_end - b64), &blob,
	                     &blob_len) != 0)
		return -1;
	if (fn != NULL)
		fn(ud, blob, blob_len);
	free(blob);
	return 0;
}

int
piv_ssh_auth_info_keys(const char *auth_info,
                       void (*fn)(void *ud, const uint8_t *blob, size_t len), void *ud,
                       size_t *n_publickey)
{
	static const char method[] = "publickey";
	const size_t method_len = sizeof(method) - 1;
	size_t total, pos = 0, count = 0;

	return_val_if_fail(auth_info != NULL && n_publickey != NULL, -1);
	*n_publickey = 0;
	total = strnlen(auth_info, PIV_SSH_MAX_AUTH_INFO + 1);
	if (total > PIV_SSH_MAX_AUTH_INFO)
		return -1;
	while (pos < total) {
		const char *line = auth_info + pos;
		const char *nl = memchr(line, '\n', total - pos);
		size_t line_len = nl != NULL ? (size_t)(nl - line) : total - pos;

		pos += line_len + (nl != NULL ? 1 : 0);
		if (line_len > method_len && line[method_len] == ' ' &&
		    memcmp(line, method, method_len) == 0) {
			count++;
			*n_publickey = count;
			if (auth_info_key(line + method_len + 1, line_len - method_len - 1, fn,
			                  ud) != 0)
				return -1;
		} else if (line_len == method_len && memcmp(line, method, method_len) == 0) {
			/* sshd always records the key: a bare "publickey" is not
			 * something it writes. */
			*n_publickey = count + 1;
			return -1;
		}
	}
	*n_publickey = count;
	return 0;
}

/* ---- signatures ---------------------------------------------------- */

/* An mpint that must be positive, minimally encoded and at most field_len
 * bytes, as field_len big-endian bytes. */
static int
mpint_to_fixed(const uint8_t *p, size_t len, size_t field_len, uint8_t *out)
{
	if (len == 0 || (p[0] & 0x80) != 0)
		return -1; /* zero or negative */
	if (p[0] == 0) {
		if (len == 1 || (p[1] & 0x80) == 0)
			return -1; /* superfluous leading zero */
		p++;
		len--;
	}
	if (len > field_len)
		return -1;
	memset(out, 0, field_len - len);
	memcpy(out + field_len - len, p, len);
	return 0;
}

int
piv_ssh_verify(EVP_PKEY *pkey, const uint8_t *sig_blob, size_t sig_len,
               const uint8_t *data, size_t data_len)
{
	struct piv_ssh_reader r, inner;
	const uint8_t *alg, *sig, *r_mp, *s_mp;
	size_t alg_len, raw_sig_len, r_len, s_len, der_len = 0, field_len;
	uint8_t raw[2 * 66];
	uint8_t *der = NULL;
	const char *digest;
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	EVP_MD *md = NULL;
	enum ssh_kind kind;
	int ret = 0;

	if (sig_blob == NULL || (data == NULL && data_len > 0) || key_kind(pkey, &kind) != 0)
		return 0;
	if (data == NULL)
		data = (const uint8_t *)"";
	piv_ssh_reader_init(&r, sig_blob, sig_len);
	if (piv_ssh_get_string(&r, &alg, &alg_len) != 0 ||
	    piv_ssh_get_string(&r, &sig, &raw_sig_len) != 0 || piv_ssh_reader_end(&r) != 0)
		return 0;
#define ALG_IS(s) (alg_len == sizeof(s) - 1 && memcmp(alg, s, alg_len) == 0)
	if (kind == SSH_KIND_RSA) {
		if (ALG_IS("rsa-sha2-256"))
			digest = "SHA256";
		else if (ALG_IS("rsa-sha2-512"))
			digest = "SHA512";
		else
			return 0; /* "ssh-rsa" is SHA-1 */
		if (raw_sig_len != (size_t)EVP_PKEY_get_size(pkey))
			return 0;
	} else {
		const char *want = kind_info[kind].key_type;

		if (alg_len != strlen(want) || memcmp(alg, want, alg_len) != 0)
			return 0;
		digest = kind_info[kind].digest;
		field_len = kind_info[kind].field_len;
		piv_ssh_reader_init(&inner, sig, raw_sig_len);
		if (piv_ssh_get_string(&inner, &r_mp, &r_len) != 0 ||
		    piv_ssh_get_string(&inner, &s_mp, &s_len) != 0 ||
		    piv_ssh_reader_end(&inner) != 0 ||
		    mpint_to_fixed(r_mp, r_len, field_len, raw) != 0 ||
		    mpint_to_fixed(s_mp, s_len, field_len, raw + field_len) != 0)
			return 0;
		if (piv_ecdsa_raw_to_der(raw, 2 * field_len, field_len, &der, &der_len) != 0)
			return 0;
		sig = der;
		raw_sig_len = der_len;
	}
#undef ALG_IS
	if ((md = EVP_MD_fetch(NULL, digest, NULL)) == NULL || (mctx = EVP_MD_CTX_new()) == NULL ||
	    EVP_DigestVerifyInit(mctx, &pctx, md, NULL, pkey) != 1)
		goto out;
	if (kind == SSH_KIND_RSA && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
		goto out;
	if (EVP_DigestVerify(mctx, sig, raw_sig_len, data, data_len) == 1)
		ret = 1;
out:
	ERR_clear_error();
	EVP_MD_CTX_free(mctx);
	EVP_MD_free(md);
	OPENSSL_free(der);
	return ret;
}

int
piv_sshsig_signed_data(const char *sig_namespace, const uint8_t *message, size_t message_len,
                       uint8_t **out, size_t *out_len)
{
	struct piv_ssh_buf b;
	uint8_t digest[EVP_MAX_MD_SIZE];
	unsigned int digest_len = 0;

	return_val_if_fail(sig_namespace != NULL && out != NULL && out_len != NULL, -1);
	return_val_if_fail(message != NULL || message_len == 0, -1);
	if (sig_namespace[0] == '\0') /* PROTOCOL.sshsig: MUST NOT be empty */
		return -1;
	if (EVP_Digest(message_len ? (const void *)message : (const void *)"", message_len,
	               digest, &digest_len, EVP_sha512(), NULL) != 1) {
		ERR_clear_error();
		return -1;
	}
	piv_ssh_buf_init(&b, 0);
	piv_ssh_put_raw(&b, SSHSIG_MAGIC, sizeof(SSHSIG_MAGIC) - 1);
	piv_ssh_put_cstring(&b, sig_namespace);
	piv_ssh_put_string(&b, "", 0); /* reserved */
	piv_ssh_put_cstring(&b, SSHSIG_HASH);
	piv_ssh_put_string(&b, digest, digest_len);
	return piv_ssh_buf_take(&b, out, out_len);
}
