/* cmocka tests of the signature strength pam_piv accepts (pki/fips.h) and
 * of what it says of OpenSSL's FIPS provider. The weak material (SHA-1 and
 * MD5 signatures, RSA-1024 keys) is made the way an outside CA would make
 * it: in a library context of its own with OpenSSL's default provider, so
 * that these tests also run where the process's OpenSSL is FIPS-only (the
 * FIPS stage of CI sets PIV_TEST_FIPS=1 there). pam_piv's code under test
 * uses the process's default context, as in a login. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/conf.h"
#include "pki/fips.h"
#include "pki/ocsp.h"
#include "pki/validate.h"

/* the outside CA's library context: the default provider, nothing else */
static OSSL_LIB_CTX *outside;
static OSSL_PROVIDER *outside_default;

static int
setup_outside(void **state)
{
	(void)state;
	outside = OSSL_LIB_CTX_new();
	if (outside == NULL || (outside_default = OSSL_PROVIDER_load(outside, "default")) == NULL)
		return -1;
	return 0;
}

static int
teardown_outside(void **state)
{
	(void)state;
	OSSL_PROVIDER_unload(outside_default);
	OSSL_LIB_CTX_free(outside);
	return 0;
}

static EVP_PKEY *
rsa_key(unsigned bits)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(outside, NULL, "RSA", (size_t)bits);

	assert_non_null(key);
	return key;
}

static EVP_PKEY *
ec_key(void)
{
	EVP_PKEY *key = EVP_PKEY_Q_keygen(outside, NULL, "EC", "P-256");

	assert_non_null(key);
	return key;
}

static void
add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value)
{
	X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value);

	assert_non_null(ext);
	assert_int_equal(X509_add_ext(cert, ext, -1), 1);
	X509_EXTENSION_free(ext);
}

/* A certificate as a strict (RFC 5280) verifier wants it: key usage,
 * basic constraints for a CA, key identifiers; signed with digest. */
static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, const char *digest,
          int ca)
{
	X509 *cert = X509_new_ex(outside, NULL);
	X509V3_CTX ctx;
	static long serial = 1;

	assert_non_null(cert);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial++);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(issuer ? issuer : cert));
	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	add_ext(cert, &ctx, NID_subject_key_identifier, "hash");
	if (issuer != NULL)
		add_ext(cert, &ctx, NID_authority_key_identifier, "keyid:always");
	add_ext(cert, &ctx, NID_key_usage,
	        ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	if (ca)
		add_ext(cert, &ctx, NID_basic_constraints, "critical,CA:TRUE");
	else
		add_ext(cert, &ctx, NID_ext_key_usage, "clientAuth");
	{
		EVP_MD *md = EVP_MD_fetch(outside, digest, NULL);
		assert_non_null(md);
		assert_true(X509_sign(cert, issuer_key ? issuer_key : key, md) > 0);
		EVP_MD_free(md);
	}
	return cert;
}

/* DER, parsed again in the process's own context, as a card's would be */
static uint8_t *
der_of(X509 *cert, size_t *len)
{
	uint8_t *der = NULL;
	int n = i2d_X509(cert, &der);

	assert_true(n > 0);
	*len = (size_t)n;
	return der;
}

static X509 *
here(X509 *cert)
{
	size_t len;
	uint8_t *der = der_of(cert, &len);
	X509 *copy = piv_cert_from_der(der, len);

	OPENSSL_free(der);
	assert_non_null(copy);
	return copy;
}

static X509_ALGOR *
algor(int nid)
{
	X509_ALGOR *alg = X509_ALGOR_new();

	assert_non_null(alg);
	assert_int_equal(X509_ALGOR_set0(alg, OBJ_nid2obj(nid), V_ASN1_NULL, NULL), 1);
	return alg;
}

static void
expect_strength(int sig_nid, EVP_PKEY *key, int want, const char *needle)
{
	X509_ALGOR *alg = algor(sig_nid);
	char why[200] = "";
	int rc = piv_signature_strong(alg, key, why, sizeof(why));

	X509_ALGOR_free(alg);
	if (rc != want || (needle != NULL && strstr(why, needle) == NULL))
		fail_msg("%s: rc %d, want %d, why '%s' (want '%s')", OBJ_nid2sn(sig_nid), rc, want,
		         why, needle ? needle : "");
}

static void
test_signature_strength(void **state)
{
	EVP_PKEY *rsa2048 = rsa_key(2048), *rsa1024 = rsa_key(1024), *p256 = ec_key();
	X509 *cert;
	char why[200];

	(void)state;
	expect_strength(NID_sha256WithRSAEncryption, rsa2048, 0, NULL);
	expect_strength(NID_sha384WithRSAEncryption, rsa2048, 0, NULL);
	expect_strength(NID_ecdsa_with_SHA256, p256, 0, NULL);
	expect_strength(NID_ecdsa_with_SHA384, p256, 0, NULL);
	expect_strength(NID_sha1WithRSAEncryption, rsa2048, -1, "SHA-1");
	expect_strength(NID_ecdsa_with_SHA1, p256, -1, "SHA-1");
	expect_strength(NID_md5WithRSAEncryption, rsa2048, -1, "MD5");
	expect_strength(NID_sha256WithRSAEncryption, rsa1024, -1, "1024-bit RSA key (80-bit security");
	/* RSASSA-PSS without parameters hashes with SHA-1 (RFC 4055) */
	expect_strength(NID_rsassaPss, rsa2048, -1, "weak");
	assert_int_equal(piv_signature_strong(NULL, rsa2048, why, sizeof(why)), -1);
	/* RSASSA-PSS with SHA-256, as a CA signs with it */
	{
		EVP_MD_CTX *mctx = EVP_MD_CTX_new();
		EVP_PKEY_CTX *pctx = NULL;
		cert = make_cert("pss", rsa2048, NULL, NULL, "SHA256", 1);
		assert_int_equal(EVP_DigestSignInit_ex(mctx, &pctx, "SHA256", outside, NULL, rsa2048,
		                                       NULL), 1);
		assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
		assert_true(X509_sign_ctx(cert, mctx) > 0);
		EVP_MD_CTX_free(mctx);
		assert_int_equal(piv_signature_strong(X509_get0_tbs_sigalg(cert), rsa2048, why,
		                                      sizeof(why)), 0);
		X509_free(cert);
	}
	EVP_PKEY_free(rsa2048);
	EVP_PKEY_free(rsa1024);
	EVP_PKEY_free(p256);
}

/* piv_validate on a chain root -> [intermediate ->] leaf; "" when the chain
 * holds (the leaf's own PIV checks may still refuse it), else why. */
static void
chain_result(X509 *root, X509 *inter, X509 *leaf, char *why, size_t why_size)
{
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_trust trust;
	struct piv_blob extra;
	X509 *valid = NULL;
	size_t len;
	uint8_t *der = der_of(leaf, &len), *inter_der = NULL;
	X509 *anchor = here(root);

	assert_int_equal(piv_conf_load_string(&conf, "/etc/security/pam_piv.conf",
	                                      "ca_file = /etc/ca.pem\nrevocation = none\n", 0, NULL,
	                                      &err), 0);
	trust.store = X509_STORE_new();
	trust.intermediates = sk_X509_new_null();
	assert_int_equal(X509_STORE_add_cert(trust.store, anchor), 1);
	if (inter != NULL) {
		int n = i2d_X509(inter, &inter_der);
		assert_true(n > 0);
		extra.data = inter_der;
		extra.len = (size_t)n;
	}
	(void)piv_validate(&conf, &trust, der, len, inter != NULL ? &extra : NULL, inter != NULL,
	                   &valid, NULL, why, why_size);
	if (strstr(why, "chain validation failed") == NULL)
		why[0] = '\0';
	X509_free(valid);
	X509_free(anchor);
	OPENSSL_free(der);
	OPENSSL_free(inter_der);
	piv_trust_free(&trust);
	piv_conf_free(&conf);
}

static void
test_chain_strength(void **state)
{
	EVP_PKEY *root_key = rsa_key(2048), *key = rsa_key(2048), *small = rsa_key(1024);
	EVP_PKEY *p256 = ec_key();
	X509 *root = make_cert("Root", root_key, NULL, NULL, "SHA256", 1);
	X509 *leaf, *inter;
	char why[600];

	(void)state;
	/* the same chain, strong: it holds */
	leaf = make_cert("good", key, root, root_key, "SHA256", 0);
	chain_result(root, NULL, leaf, why, sizeof(why));
	assert_string_equal(why, "");
	X509_free(leaf);
	leaf = make_cert("good ec", p256, root, root_key, "SHA384", 0);
	chain_result(root, NULL, leaf, why, sizeof(why));
	assert_string_equal(why, "");
	X509_free(leaf);
	/* a leaf signed with SHA-1 or MD5 */
	leaf = make_cert("sha1", key, root, root_key, "SHA1", 0);
	chain_result(root, NULL, leaf, why, sizeof(why));
	assert_non_null(strstr(why, "CA signature digest algorithm too weak (at chain depth 0)"));
	X509_free(leaf);
	leaf = make_cert("md5", key, root, root_key, "MD5", 0);
	chain_result(root, NULL, leaf, why, sizeof(why));
	assert_non_null(strstr(why, "CA signature digest algorithm too weak (at chain depth 0)"));
	X509_free(leaf);
	/* a leaf with an RSA-1024 key */
	leaf = make_cert("small", small, root, root_key, "SHA256", 0);
	chain_result(root, NULL, leaf, why, sizeof(why));
	assert_non_null(strstr(why, "EE certificate key too weak (at chain depth 0)"));
	X509_free(leaf);
	/* an intermediate with an RSA-1024 key signing a strong leaf */
	inter = make_cert("Small Intermediate", small, root, root_key, "SHA256", 1);
	leaf = make_cert("under small", key, inter, small, "SHA256", 0);
	chain_result(root, inter, leaf, why, sizeof(why));
	assert_non_null(strstr(why, "CA certificate key too weak (at chain depth 1)"));
	X509_free(leaf);
	X509_free(inter);
	/* an intermediate that signs with SHA-1 */
	inter = make_cert("SHA-1 Intermediate", key, root, root_key, "SHA256", 1);
	leaf = make_cert("under sha1", p256, inter, key, "SHA1", 0);
	chain_result(root, inter, leaf, why, sizeof(why));
	assert_non_null(strstr(why, "CA signature digest algorithm too weak (at chain depth 0)"));
	X509_free(leaf);
	X509_free(inter);
	X509_free(root);
	EVP_PKEY_free(root_key);
	EVP_PKEY_free(key);
	EVP_PKEY_free(small);
	EVP_PKEY_free(p256);
}

/* An OCSP response for leaf, "good", signed by the CA itself with digest. */
static uint8_t *
ocsp_response(X509 *leaf, X509 *ca, EVP_PKEY *ca_key, const char *digest, size_t *len)
{
	OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
	OCSP_CERTID *id = OCSP_cert_to_id(NULL, leaf, ca);
	ASN1_TIME *now = X509_gmtime_adj(NULL, 0), *next = X509_gmtime_adj(NULL, 3600);
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	OCSP_RESPONSE *resp;
	uint8_t *der = NULL;
	int n;

	assert_non_null(bs);
	assert_non_null(id);
	assert_non_null(OCSP_basic_add1_status(bs, id, V_OCSP_CERTSTATUS_GOOD, 0, NULL, now, next));
	assert_int_equal(EVP_DigestSignInit_ex(mctx, NULL, digest, outside, NULL, ca_key, NULL), 1);
	assert_int_equal(OCSP_basic_sign_ctx(bs, ca, mctx, NULL, 0), 1);
	resp = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
	assert_non_null(resp);
	n = i2d_OCSP_RESPONSE(resp, &der);
	assert_true(n > 0);
	*len = (size_t)n;
	OCSP_RESPONSE_free(resp);
	EVP_MD_CTX_free(mctx);
	ASN1_TIME_free(now);
	ASN1_TIME_free(next);
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);
	return der;
}

static void
test_ocsp_strength(void **state)
{
	EVP_PKEY *ca_key = rsa_key(2048), *small = rsa_key(1024), *key = ec_key();
	X509 *ca = make_cert("OCSP CA", ca_key, NULL, NULL, "SHA256", 1);
	X509 *small_ca = make_cert("Small CA", small, NULL, NULL, "SHA256", 1);
	struct { X509 *ca; EVP_PKEY *key; const char *digest; enum piv_rev_answer want;
	         const char *needle; } cases[] = {
		{ ca, ca_key, "SHA256", PIV_REV_GOOD, NULL },
		{ ca, ca_key, "SHA1", PIV_REV_UNKNOWN, "OCSP response too weak: signed with SHA-1" },
		{ small_ca, small, "SHA256", PIV_REV_UNKNOWN, "1024-bit RSA key" },
	};
	struct piv_ocsp_rules rules = { .max_age = 3600, .require_nonce = false };

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		X509 *leaf = make_cert("leaf", key, cases[i].ca, cases[i].key, "SHA256", 0);
		X509 *leaf_here = here(leaf), *ca_here = here(cases[i].ca);
		X509_STORE *store = X509_STORE_new();
		STACK_OF(X509) *chain = sk_X509_new_null();
		char reason[300] = "";
		time_t next = 0;
		size_t len;
		uint8_t *der = ocsp_response(leaf_here, ca_here, cases[i].key, cases[i].digest, &len);
		enum piv_rev_answer got;

		/* as piv_trust_load sets it */
		X509_VERIFY_PARAM_set_auth_level(X509_STORE_get0_param(store), PIV_AUTH_LEVEL);
		assert_int_equal(X509_STORE_add_cert(store, ca_here), 1);
		assert_int_equal(sk_X509_push(chain, ca_here), 1);
		got = piv_ocsp_judge(der, len, leaf_here, ca_here, chain, store, NULL, &rules,
		                     time(NULL), &next, reason, sizeof(reason));
		if (got != cases[i].want ||
		    (cases[i].needle != NULL && strstr(reason, cases[i].needle) == NULL))
			fail_msg("case %zu: answer %d, want %d: %s", i, (int)got, (int)cases[i].want,
			         reason);
		OPENSSL_free(der);
		sk_X509_free(chain);
		X509_STORE_free(store);
		X509_free(ca_here);
		X509_free(leaf_here);
		X509_free(leaf);
	}
	X509_free(ca);
	X509_free(small_ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(small);
	EVP_PKEY_free(key);
}

/* What this process's OpenSSL is: FIPS-only in CI's FIPS stage
 * (PIV_TEST_FIPS=1), OpenSSL's default otherwise; fips_mode = required
 * holds only in the first. */
static void
test_fips_state(void **state)
{
	const char *env = getenv("PIV_TEST_FIPS");
	bool fips = env != NULL && strcmp(env, "1") == 0;
	char why[300] = "";
	EVP_MD *md5;

	(void)state;
	assert_int_equal(piv_fips_check(false, why, sizeof(why)), 0);
	if (fips) {
		assert_int_equal(piv_fips_state(), PIV_FIPS_ON);
		assert_int_equal(piv_fips_check(true, why, sizeof(why)), 0);
		/* nothing else to fall back to: MD5 is not there */
		md5 = EVP_MD_fetch(NULL, "MD5", NULL);
		assert_null(md5);
	} else {
		assert_int_equal(piv_fips_state(), PIV_FIPS_OFF);
		assert_int_equal(piv_fips_check(true, why, sizeof(why)), -1);
		assert_string_equal(why, "fips_mode = required, but OpenSSL's FIPS provider is "
		                         "not loaded");
		md5 = EVP_MD_fetch(NULL, "MD5", NULL);
		assert_non_null(md5);
		EVP_MD_free(md5);
	}
	assert_string_equal(piv_fips_state_text(PIV_FIPS_LOADED),
	                    "loaded but not required (default_properties lacks fips=yes)");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_signature_strength),
		cmocka_unit_test(test_chain_strength),
		cmocka_unit_test(test_ocsp_strength),
		cmocka_unit_test(test_fips_state),
	};

	return cmocka_run_group_tests(tests, setup_outside, teardown_outside);
}
