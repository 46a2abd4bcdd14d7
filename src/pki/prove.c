/* Proof of possession: challenge, DigestInfo, ECDSA encoding, and the
 * signature check against the validated certificate's key. */
#include "config.h"
#include "pki/prove.h"

#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

/* DER prefixes of DigestInfo (RFC 8017 §9.2 note 1). */
static const uint8_t di_sha256[] = {
	0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
	0x05, 0x00, 0x04, 0x20
};
static const uint8_t di_sha384[] = {
	0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
	0x05, 0x00, 0x04, 0x30
};

size_t
piv_hash_len(enum piv_hash hash)
{
	return hash == PIV_HASH_SHA384 ? 48 : 32;
}

const char *
piv_hash_name(enum piv_hash hash)
{
	return hash == PIV_HASH_SHA384 ? "sha384" : "sha256";
}

int
piv_hash_from_name(const char *name, enum piv_hash *hash)
{
	if (strcmp(name, "sha256") == 0)
		*hash = PIV_HASH_SHA256;
	else if (strcmp(name, "sha384") == 0)
		*hash = PIV_HASH_SHA384;
	else
		return -1;
	return 0;
}

static const EVP_MD *
md_of(enum piv_hash hash)
{
	return hash == PIV_HASH_SHA384 ? EVP_sha384() : EVP_sha256();
}

int
piv_digest(enum piv_hash hash, const uint8_t *data, size_t len, uint8_t *out)
{
	unsigned int n = 0;

	if (EVP_Digest(data, len, out, &n, md_of(hash), NULL) != 1 || n != piv_hash_len(hash))
		return -1;
	return 0;
}

size_t
piv_digest_info(enum piv_hash hash, const uint8_t *digest, size_t digest_len, uint8_t *out,
                size_t out_size)
{
	const uint8_t *prefix = hash == PIV_HASH_SHA384 ? di_sha384 : di_sha256;
	size_t plen = hash == PIV_HASH_SHA384 ? sizeof(di_sha384) : sizeof(di_sha256);
	size_t dlen = piv_hash_len(hash);

	if (digest == NULL || out == NULL || digest_len != dlen || out_size < plen + dlen)
		return 0;
	memcpy(out, prefix, plen);
	memcpy(out + plen, digest, dlen);
	return plen + dlen;
}

int
piv_ecdsa_raw_to_der(const uint8_t *raw, size_t raw_len, size_t field_len,
                     uint8_t **der, size_t *der_len)
{
	ECDSA_SIG *sig = NULL;
	BIGNUM *r = NULL, *s = NULL;
	unsigned char *out = NULL;
	int n, ret = -1;

	if (raw == NULL || field_len == 0 || field_len > 66 || raw_len != 2 * field_len)
		return -1;
	r = BN_bin2bn(raw, (int)field_len, NULL);
	s = BN_bin2bn(raw + field_len, (int)field_len, NULL);
	sig = ECDSA_SIG_new();
	if (r == NULL || s == NULL || sig == NULL || BN_is_zero(r) || BN_is_zero(s))
		goto out;
	if (ECDSA_SIG_set0(sig, r, s) != 1)
		goto out;
	r = s = NULL; /* owned by sig now */
	n = i2d_ECDSA_SIG(sig, &out);
	if (n <= 0)
		goto out;
	*der = out;
	*der_len = (size_t)n;
	ret = 0;
out:
	BN_free(r);
	BN_free(s);
	ECDSA_SIG_free(sig);
	return ret;
}

int
piv_cert_key_kind(X509 *cert, int *is_ec, enum piv_hash *hash, size_t *ec_field_len, int *bits)
{
	EVP_PKEY *key = X509_get0_pubkey(cert);
	char group[64];
	size_t glen = 0;

	if (key == NULL)
		return -1;
	*bits = EVP_PKEY_get_bits(key);
	if (EVP_PKEY_is_a(key, "RSA")) {
		if (*bits < 2048 || *bits > 4096)
			return -1;
		*is_ec = 0;
		*hash = PIV_HASH_SHA256;
		*ec_field_len = 0;
		return 0;
	}
	if (EVP_PKEY_is_a(key, "EC")) {
		if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group,
		                                   sizeof(group), &glen) != 1)
			return -1;
		*is_ec = 1;
		if (strcmp(group, "prime256v1") == 0) {
			*hash = PIV_HASH_SHA256;
			*ec_field_len = 32;
			return 0;
		}
		if (strcmp(group, "secp384r1") == 0) {
			*hash = PIV_HASH_SHA384;
			*ec_field_len = 48;
			return 0;
		}
	}
	return -1;
}

int
piv_verify_signature(X509 *cert, enum piv_sig_scheme scheme, enum piv_hash hash,
                     const uint8_t *challenge, size_t challenge_len,
                     const uint8_t *sig, size_t sig_len)
{
	EVP_PKEY *key = X509_get0_pubkey(cert);
	EVP_MD_CTX *mctx = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	uint8_t *der = NULL;
	size_t der_len = 0;
	int is_ec = 0, bits = 0, ok = 0;
	size_t field_len = 0;
	enum piv_hash key_hash;

	if (key == NULL || sig == NULL || sig_len == 0 || sig_len > 1024)
		return 0;
	if (piv_cert_key_kind(cert, &is_ec, &key_hash, &field_len, &bits) != 0)
		return 0;
	/* The scheme must fit the validated key; a card cannot choose. */
	if (is_ec != (scheme == PIV_SIG_ECDSA_RAW))
		return 0;
	if (is_ec) {
		if (piv_ecdsa_raw_to_der(sig, sig_len, field_len, &der, &der_len) != 0)
			return 0;
		sig = der;
		sig_len = der_len;
	} else if (sig_len != (size_t)EVP_PKEY_get_size(key)) {
		return 0;
	}
	mctx = EVP_MD_CTX_new();
	if (mctx == NULL ||
	    EVP_DigestVerifyInit(mctx, &pctx, md_of(hash), NULL, key) != 1)
		goto out;
	if (scheme == PIV_SIG_RSA_PSS) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)piv_hash_len(hash)) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, md_of(hash)) != 1)
			goto out;
	} else if (scheme == PIV_SIG_RSA_PKCS1) {
		if (EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
			goto out;
	}
	ok = EVP_DigestVerify(mctx, sig, sig_len, challenge, challenge_len) == 1;
out:
	EVP_MD_CTX_free(mctx);
	OPENSSL_free(der);
	return ok;
}

int
piv_make_challenge(uint8_t *out, size_t len)
{
	if (len > INT32_MAX || RAND_priv_bytes(out, (int)len) != 1)
		return -1;
	return 0;
}
