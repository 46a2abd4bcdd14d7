/* cmocka tests of the CRL layer: the serial records, the index (build,
 * map, search, and every way it can be stale or damaged), and the CRL
 * checks (issuer, signature, dates, delta, critical extensions) on CRLs
 * made here with OpenSSL. The PAM tests cover fetching and policy. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/bn.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "pki/cache.h"
#include "common/conf.h"
#include "pki/crl.h"
#include "pki/crlrefresh.h"

struct fixture {
	char dir[64];
	char cache[128];
	EVP_PKEY *ca_key, *other_key;
	X509 *ca, *other_ca, *leaf_good, *leaf_revoked;
};

static X509 *
make_cert(const char *cn, EVP_PKEY *key, X509 *issuer, EVP_PKEY *issuer_key, long serial, int ca)
{
	X509 *cert = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	assert_non_null(cert);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
	X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(issuer ? issuer : cert));
	X509V3_set_ctx(&ctx, issuer ? issuer : cert, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_key_usage,
	                          ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (ca) {
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, "critical,CA:TRUE");
		X509_add_ext(cert, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return cert;
}

struct crl_spec {
	long last_offset, next_offset; /* seconds from now */
	bool no_next;
	bool delta;
	long delta_base;              /* BaseCRLNumber of a delta (0: 1) */
	long number;                  /* cRLNumber (0: none) */
	const char *idp_uri;          /* issuingDistributionPoint fullName */
	const char *freshest_uri;     /* Freshest CRL: where the delta CRLs are */
	long remove_serial;           /* an entry with reason removeFromCRL (0: none) */
	bool unknown_critical;
	bool critical_entry_ext;
	const long *serials;
	size_t n_serials;
};

/* One distribution point with one URI, as a DIST_POINT_NAME. */
static DIST_POINT_NAME *
uri_dpname(const char *uri)
{
	DIST_POINT_NAME *dpn = DIST_POINT_NAME_new();
	GENERAL_NAME *gn = GENERAL_NAME_new();
	ASN1_IA5STRING *ia5 = ASN1_IA5STRING_new();

	assert_true(dpn != NULL && gn != NULL && ia5 != NULL);
	assert_int_equal(ASN1_STRING_set(ia5, uri, -1), 1);
	GENERAL_NAME_set0_value(gn, GEN_URI, ia5);
	dpn->type = 0;
	dpn->name.fullname = sk_GENERAL_NAME_new_null();
	assert_true(sk_GENERAL_NAME_push(dpn->name.fullname, gn) > 0);
	return dpn;
}

static void
add_crl_extensions(X509_CRL *crl, const struct crl_spec *spec)
{
	if (spec->number != 0) {
		ASN1_INTEGER *n = ASN1_INTEGER_new();
		ASN1_INTEGER_set(n, spec->number);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_crl_number, n, 0, 0), 1);
		ASN1_INTEGER_free(n);
	}
	if (spec->idp_uri != NULL) {
		ISSUING_DIST_POINT *idp = ISSUING_DIST_POINT_new();
		idp->distpoint = uri_dpname(spec->idp_uri);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_issuing_distribution_point, idp, 1, 0), 1);
		ISSUING_DIST_POINT_free(idp);
	}
	if (spec->freshest_uri != NULL) {
		STACK_OF(DIST_POINT) *dps = sk_DIST_POINT_new_null();
		DIST_POINT *dp = DIST_POINT_new();
		dp->distpoint = uri_dpname(spec->freshest_uri);
		assert_true(sk_DIST_POINT_push(dps, dp) > 0);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_freshest_crl, dps, 0, 0), 1);
		sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	}
}

static void
write_crl(const char *path, X509 *issuer, EVP_PKEY *key, const struct crl_spec *spec)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	unsigned char *der = NULL;
	int len;
	FILE *f;

	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer));
	X509_gmtime_adj(t, spec->last_offset);
	X509_CRL_set1_lastUpdate(crl, t);
	if (!spec->no_next) {
		X509_gmtime_adj(t, spec->next_offset);
		X509_CRL_set1_nextUpdate(crl, t);
	}
	for (size_t i = 0; i < spec->n_serials; i++) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *serial = ASN1_INTEGER_new();
		ASN1_INTEGER_set(serial, spec->serials[i]);
		X509_REVOKED_set_serialNumber(r, serial);
		X509_gmtime_adj(t, -60);
		X509_REVOKED_set_revocationDate(r, t);
		if (spec->critical_entry_ext) {
			ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
			ASN1_OBJECT *oid = OBJ_txt2obj("1.2.3.4", 1);
			X509_EXTENSION *ext;
			ASN1_OCTET_STRING_set(v, (const unsigned char *)"\x05\x00", 2);
			ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, v);
			X509_REVOKED_add_ext(r, ext, -1);
			X509_EXTENSION_free(ext);
			ASN1_OBJECT_free(oid);
			ASN1_OCTET_STRING_free(v);
		}
		X509_CRL_add0_revoked(crl, r);
		ASN1_INTEGER_free(serial);
	}
	if (spec->remove_serial != 0) {
		X509_REVOKED *r = X509_REVOKED_new();
		ASN1_INTEGER *serial = ASN1_INTEGER_new();
		ASN1_ENUMERATED *why = ASN1_ENUMERATED_new();
		ASN1_INTEGER_set(serial, spec->remove_serial);
		X509_REVOKED_set_serialNumber(r, serial);
		X509_gmtime_adj(t, -60);
		X509_REVOKED_set_revocationDate(r, t);
		ASN1_ENUMERATED_set(why, 8); /* removeFromCRL */
		assert_int_equal(X509_REVOKED_add1_ext_i2d(r, NID_crl_reason, why, 0, 0), 1);
		X509_CRL_add0_revoked(crl, r);
		ASN1_INTEGER_free(serial);
		ASN1_ENUMERATED_free(why);
	}
	if (spec->delta) {
		/* deltaCRLIndicator ::= BaseCRLNumber, critical */
		ASN1_INTEGER *base = ASN1_INTEGER_new();
		ASN1_INTEGER_set(base, spec->delta_base != 0 ? spec->delta_base : 1);
		assert_int_equal(X509_CRL_add1_ext_i2d(crl, NID_delta_crl, base, 1, 0), 1);
		ASN1_INTEGER_free(base);
	}
	if (spec->unknown_critical) {
		ASN1_OCTET_STRING *v = ASN1_OCTET_STRING_new();
		ASN1_OBJECT *oid = OBJ_txt2obj("1.2.3.4", 1);
		X509_EXTENSION *ext;
		ASN1_OCTET_STRING_set(v, (const unsigned char *)"\x05\x00", 2);
		ext = X509_EXTENSION_create_by_OBJ(NULL, oid, 1, v);
		X509_CRL_add_ext(crl, ext, -1);
		X509_EXTENSION_free(ext);
		ASN1_OBJECT_free(oid);
		ASN1_OCTET_STRING_free(v);
	}
	add_crl_extensions(crl, spec);
	X509_CRL_sort(crl);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	len = i2d_X509_CRL(crl, &der);
	assert_true(len > 0);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(der, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	OPENSSL_free(der);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
}

static const long revoked_serials[] = { 3, 5, 70000, 0x7fffffffL };

static int
setup(void **state)
{
	struct fixture *fx = calloc(1, sizeof(*fx));
	EVP_PKEY *leaf_key;

	assert_non_null(fx);
	strcpy(fx->dir, "/tmp/piv-crl-XXXXXX");
	assert_non_null(mkdtemp(fx->dir));
	snprintf(fx->cache, sizeof(fx->cache), "%s/cache", fx->dir);
	fx->ca_key = EVP_EC_gen("P-256");
	fx->other_key = EVP_EC_gen("P-256");
	leaf_key = EVP_EC_gen("P-256");
	fx->ca = make_cert("Test CA", fx->ca_key, NULL, NULL, 1, 1);
	fx->other_ca = make_cert("Test CA", fx->other_key, NULL, NULL, 2, 1); /* same name! */
	fx->leaf_good = make_cert("good", leaf_key, fx->ca, fx->ca_key, 4, 0);
	fx->leaf_revoked = make_cert("revoked", leaf_key, fx->ca, fx->ca_key, 5, 0);
	EVP_PKEY_free(leaf_key);
	*state = fx;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *fx = *state;
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
	if (system(cmd) != 0)
		return -1;
	X509_free(fx->ca);
	X509_free(fx->other_ca);
	X509_free(fx->leaf_good);
	X509_free(fx->leaf_revoked);
	EVP_PKEY_free(fx->ca_key);
	EVP_PKEY_free(fx->other_key);
	free(fx);
	return 0;
}

/* piv_crl_check of cert with fx->dir/WHERE as crl_dir (is_dir) or as
 * crl_file, and fx->cache. */
static enum piv_rev_answer
check_in(struct fixture *fx, const char *where, bool is_dir, X509 *cert, char *reason,
         size_t reason_size)
{
	struct piv_conf conf;
	char path[200];

	memset(&conf, 0, sizeof(conf));
	snprintf(path, sizeof(path), "%s/%s", fx->dir, where);
	if (is_dir)
		conf.crl_dir = path;
	else
		conf.crl_file = path;
	conf.cache_dir = fx->cache;
	conf.net_timeout = 1;
	assert_int_equal(piv_cache_dir_check(fx->cache, reason, reason_size), 0);
	return piv_crl_check(&conf, cert, fx->ca, NULL, time(NULL), NULL, NULL, reason, reason_size);
}

static enum piv_rev_answer
check(struct fixture *fx, const char *crl_name, X509 *cert, char *reason, size_t reason_size)
{
	return check_in(fx, crl_name, false, cert, reason, reason_size);
}

/* Forget the CRL numbers seen (each test its own history). */
static void
forget_numbers(struct fixture *fx)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -f '%s'/crlnum-*", fx->cache);
	assert_int_equal(system(cmd), 0);
}

static void
expect_answer(struct fixture *fx, const char *where, bool is_dir, X509 *cert,
              enum piv_rev_answer want, const char *needle)
{
	char reason[600];
	enum piv_rev_answer a = check_in(fx, where, is_dir, cert, reason, sizeof(reason));

	if (a != want || (needle != NULL && strstr(reason, needle) == NULL))
		fail_msg("%s: answer %d, reason '%s'; want %d and '%s'", where, a, reason, want,
		         needle ? needle : "");
}

static void
spec_ok(struct crl_spec *spec)
{
	memset(spec, 0, sizeof(*spec));
	spec->last_offset = -3600;
	spec->next_offset = 86400;
	spec->serials = revoked_serials;
	spec->n_serials = 4;
}

static void
test_serial_records(void **state)
{
	ASN1_INTEGER *a = ASN1_INTEGER_new(), *b = ASN1_INTEGER_new();
	uint8_t ra[PIV_CRL_RECORD], rb[PIV_CRL_RECORD];
	unsigned char big[23];

	(void)state;
	ASN1_INTEGER_set(a, 258);
	ASN1_STRING_set(b, "\x00\x00\x01\x02", 4); /* padded the same value */
	assert_int_equal(piv_crl_serial_record(a, ra), 0);
	assert_int_equal(piv_crl_serial_record(b, rb), 0);
	assert_memory_equal(ra, rb, PIV_CRL_RECORD);
	ASN1_INTEGER_set(b, -258);
	assert_int_equal(piv_crl_serial_record(b, rb), 0);
	assert_memory_not_equal(ra, rb, PIV_CRL_RECORD);
	memset(big, 0x7f, sizeof(big));
	ASN1_STRING_set(b, big, sizeof(big)); /* longer than any RFC 5280 serial */
	assert_int_equal(piv_crl_serial_record(b, rb), -1);
	ASN1_INTEGER_free(a);
	ASN1_INTEGER_free(b);
}

static void
test_good_and_revoked(void **state)
{
	struct fixture *fx = *state;
	struct crl_spec spec;
	char path[200], reason[400];

	spec_ok(&spec);
	snprintf(path, sizeof(path), "%s/ok.crl", fx->dir);
	write_crl(path, fx->ca, fx->ca_key, &spec);
	assert_int_equal(check(fx, "ok.crl", fx->leaf_good, reason, sizeof(reason)), PIV_REV_GOOD);
	assert_int_equal(check(fx, "ok.crl", fx->leaf_revoked, reason, sizeof(reason)),
	                 PIV_REV_REVOKED);
	assert_non_null(strstr(reason, "revoked"));
	/* second time from the index */
	assert_int_equal(check(fx, "ok.crl", fx->leaf_revoked, reason, sizeof(reason)),
	                 PIV_REV_REVOKED);
	assert_int_equal(check(fx, "ok.crl", fx->leaf_good, reason, sizeof(reason)), PIV_REV_GOOD);
}

static void
test_index_damage(void **state)
{
	struct fixture *fx = *state;
	struct crl_spec spec;
	struct piv_crl_index idx;
	char crl[200], idx_path[200], why[300];
	uint8_t rec[PIV_CRL_RECORD];
	struct stat st;
	int fd;

	spec_ok(&spec);
	snprintf(crl, sizeof(crl), "%s/damage.crl", fx->dir);
	snprintf(idx_path, sizeof(idx_path), "%s/damage.idx", fx->dir);
	write_crl(crl, fx->ca, fx->ca_key, &spec);
	assert_int_equal(piv_crl_build_index(crl, fx->ca, idx_path, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), 0);
	assert_int_equal(idx.count, 4);
	assert_int_equal(piv_crl_serial_record(X509_get0_serialNumber(fx->leaf_revoked), rec), 0);
	assert_true(piv_crl_index_has(&idx, rec));
	assert_int_equal(piv_crl_serial_record(X509_get0_serialNumber(fx->leaf_good), rec), 0);
	assert_false(piv_crl_index_has(&idx, rec));
	piv_crl_close_index(&idx);

	/* truncated by one byte */
	assert_int_equal(stat(idx_path, &st), 0);
	assert_int_equal(truncate(idx_path, st.st_size - 1), 0);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), -1);
	/* a flipped header byte */
	assert_int_equal(piv_crl_build_index(crl, fx->ca, idx_path, why, sizeof(why)), 0);
	fd = open(idx_path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "X", 1, 20), 1);
	close(fd);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), -1);
	/* empty, and garbage */
	fd = open(idx_path, O_WRONLY | O_TRUNC);
	close(fd);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), -1);
	fd = open(idx_path, O_WRONLY | O_TRUNC);
	for (int i = 0; i < 100; i++)
		assert_int_equal(write(fd, "garbage!", 8), 8);
	close(fd);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), -1);
	/* an index of another content than the one asked for */
	assert_int_equal(piv_crl_build_index(crl, fx->ca, idx_path, why, sizeof(why)), 0);
	{
		uint8_t other[32];
		memset(other, 0x5a, sizeof(other));
		assert_int_equal(piv_crl_open_index(idx_path, other, &idx), -1);
	}
	/* the cache: a file's version points at its content; a CRL file
	 * changed since is not that version any more, and its previous
	 * content is still known by its path */
	assert_int_equal(piv_crl_cache_build(fx->cache, crl, fx->ca, NULL, NULL, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_cache_open(fx->cache, crl, false, &idx), 0);
	assert_int_equal(idx.count, 4);
	piv_crl_close_index(&idx);
	sleep(1);
	spec.n_serials = 1;
	write_crl(crl, fx->ca, fx->ca_key, &spec);
	assert_int_equal(piv_crl_cache_open(fx->cache, crl, false, &idx), -1);
	assert_int_equal(piv_crl_cache_open(fx->cache, crl, true, &idx), 0);
	assert_int_equal(idx.count, 4);
	piv_crl_close_index(&idx);
	assert_int_equal(piv_crl_cache_build(fx->cache, crl, fx->ca, NULL, NULL, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_cache_open(fx->cache, crl, false, &idx), 0);
	assert_int_equal(idx.count, 1);
	piv_crl_close_index(&idx);
	/* a symlink in place of the index is not followed */
	unlink(idx_path);
	assert_int_equal(symlink(crl, idx_path), 0);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), -1);
}

static void
test_damaged_cache_rebuilt(void **state)
{
	struct fixture *fx = *state;
	struct crl_spec spec;
	char path[200], reason[400], cmd[400];

	spec_ok(&spec);
	snprintf(path, sizeof(path), "%s/rebuild.crl", fx->dir);
	write_crl(path, fx->ca, fx->ca_key, &spec);
	assert_int_equal(check(fx, "rebuild.crl", fx->leaf_revoked, reason, sizeof(reason)),
	                 PIV_REV_REVOKED);
	/* damage every index in the cache: answers stay right */
	snprintf(cmd, sizeof(cmd), "for f in '%s'/crlidx-*.idx; do head -c 100 \"$f\" > \"$f.t\" "
	         "&& mv \"$f.t\" \"$f\"; done", fx->cache);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(check(fx, "rebuild.crl", fx->leaf_revoked, reason, sizeof(reason)),
	                 PIV_REV_REVOKED);
	assert_int_equal(check(fx, "rebuild.crl", fx->leaf_good, reason, sizeof(reason)),
	                 PIV_REV_GOOD);
}

/* A CRL that gives no answer. signed_listing: the issuer did sign it, so
 * the certificates it lists are revoked all the same (expired, not yet
 * valid, a delta CRL alone); otherwise it says nothing at all. */
static void
check_unknown_as(struct fixture *fx, const char *name, const struct crl_spec *spec, X509 *signer,
                 EVP_PKEY *key, const char *needle, bool signed_listing)
{
	char path[200], reason[400];

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	write_crl(path, signer, key, spec);
	for (int round = 0; round < 2; round++) { /* fresh, then from the index */
		enum piv_rev_answer a = check(fx, name, fx->leaf_good, reason, sizeof(reason));
		if (a != PIV_REV_UNKNOWN || strstr(reason, needle) == NULL)
			fail_msg("%s (round %d): answer %d, reason '%s', want '%s'", name, round, a,
			         reason, needle);
		a = check(fx, name, fx->leaf_revoked, reason, sizeof(reason));
		if (signed_listing ? a != PIV_REV_REVOKED || strstr(reason, "cannot give a complete "
		                                                    "answer") == NULL
		                   : a != PIV_REV_UNKNOWN || strstr(reason, needle) == NULL)
			fail_msg("%s (round %d), a listed certificate: answer %d, reason '%s'", name,
			         round, a, reason);
	}
}

static void
check_unknown(struct fixture *fx, const char *name, const struct crl_spec *spec, X509 *signer,
              EVP_PKEY *key, const char *needle)
{
	check_unknown_as(fx, name, spec, signer, key, needle, false);
}

static void
test_unusable_crls(void **state)
{
	struct fixture *fx = *state;
	struct crl_spec spec;
	char path[200], reason[400];
	FILE *f;

	spec_ok(&spec);
	spec.last_offset = -7200;
	spec.next_offset = -3600;
	check_unknown_as(fx, "expired.crl", &spec, fx->ca, fx->ca_key, "expired", true);
	spec_ok(&spec);
	spec.last_offset = 86400;
	spec.next_offset = 2 * 86400;
	check_unknown_as(fx, "future.crl", &spec, fx->ca, fx->ca_key, "not yet valid", true);
	spec_ok(&spec);
	spec.no_next = true;
	check_unknown(fx, "nonext.crl", &spec, fx->ca, fx->ca_key, "no nextUpdate");
	spec_ok(&spec);
	spec.delta = true;
	spec.number = 2;
	check_unknown_as(fx, "delta.crl", &spec, fx->ca, fx->ca_key, "delta CRL", true);
	spec.number = 0;
	check_unknown(fx, "delta-nonumber.crl", &spec, fx->ca, fx->ca_key, "delta CRL without a cRLNumber");
	spec_ok(&spec);
	spec.unknown_critical = true;
	check_unknown(fx, "critical.crl", &spec, fx->ca, fx->ca_key, "unknown critical");
	spec_ok(&spec);
	spec.critical_entry_ext = true;
	check_unknown(fx, "entryext.crl", &spec, fx->ca, fx->ca_key, "critical extension");
	/* same issuer name, another key: a forgery */
	spec_ok(&spec);
	check_unknown(fx, "forged.crl", &spec, fx->other_ca, fx->other_key, "does not verify");
	/* garbage */
	snprintf(path, sizeof(path), "%s/garbage.crl", fx->dir);
	f = fopen(path, "wb");
	fputs("0\x82\x01\x00 this is not a CRL at all", f);
	fclose(f);
	for (int round = 0; round < 2; round++)
		assert_int_equal(check(fx, "garbage.crl", fx->leaf_good, reason, sizeof(reason)),
		                 PIV_REV_UNKNOWN);
	assert_non_null(strstr(reason, "not a CRL"));
	/* missing */
	assert_int_equal(check(fx, "missing.crl", fx->leaf_good, reason, sizeof(reason)),
	                 PIV_REV_UNKNOWN);
}

static void
test_other_issuer(void **state)
{
	struct fixture *fx = *state;
	struct crl_spec spec;
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *stranger = make_cert("Stranger CA", key, NULL, NULL, 9, 1);
	char path[200], reason[400];

	spec_ok(&spec);
	snprintf(path, sizeof(path), "%s/stranger.crl", fx->dir);
	write_crl(path, stranger, key, &spec);
	for (int round = 0; round < 2; round++) {
		assert_int_equal(check(fx, "stranger.crl", fx->leaf_revoked, reason, sizeof(reason)),
		                 PIV_REV_UNKNOWN);
		assert_non_null(strstr(reason, "another issuer"));
	}
	X509_free(stranger);
	EVP_PKEY_free(key);
}

static void
test_cache_dir_safety(void **state)
{
	struct fixture *fx = *state;
	char dir[200], why[300];

	snprintf(dir, sizeof(dir), "%s/c1", fx->dir);
	assert_int_equal(piv_cache_dir_check(dir, why, sizeof(why)), 0); /* created */
	{
		struct stat st;
		assert_int_equal(stat(dir, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0700);
	}
	assert_int_equal(chmod(dir, 0770), 0);
	assert_int_equal(piv_cache_dir_check(dir, why, sizeof(why)), -1);
	assert_int_equal(chmod(dir, 0703), 0);
	assert_int_equal(piv_cache_dir_check(dir, why, sizeof(why)), -1);
	snprintf(dir, sizeof(dir), "%s/c2", fx->dir);
	assert_int_equal(symlink(fx->cache, dir), 0);
	assert_int_equal(piv_cache_dir_check(dir, why, sizeof(why)), -1);
	snprintf(dir, sizeof(dir), "%s/missing/parent", fx->dir);
	assert_int_equal(piv_cache_dir_check(dir, why, sizeof(why)), -1);
}

/* A leaf of the fixture CA with one CRL distribution point. */
static X509 *
leaf_with_cdp(struct fixture *fx, long serial, const char *cdp_uri)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = make_cert("with cdp", key, fx->ca, fx->ca_key, serial, 0);
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	char value[300];

	snprintf(value, sizeof(value), "URI:%s", cdp_uri);
	X509V3_set_ctx(&ctx, fx->ca, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_crl_distribution_points, value);
	assert_non_null(ext);
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(cert, fx->ca_key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	return cert;
}

static void
write_named(struct fixture *fx, const char *name, const struct crl_spec *spec)
{
	char path[300];

	snprintf(path, sizeof(path), "%s/%s", fx->dir, name);
	write_crl(path, fx->ca, fx->ca_key, spec);
}

/* RFC 5280 6.3.3 (b)(2)(i): a CRL whose issuingDistributionPoint names
 * distribution points covers only certificates that name one of them. */
static void
test_scope_distribution_points(void **state)
{
	struct fixture *fx = *state;
	X509 *part_b = leaf_with_cdp(fx, 6, "http://crl.example/partB.crl");
	X509 *part_b_revoked = leaf_with_cdp(fx, 3, "http://crl.example/partB.crl");
	struct crl_spec spec;

	forget_numbers(fx);
	/* the review's case: the card's CDP is partB, the CRL is partA's */
	spec_ok(&spec);
	spec.idp_uri = "http://crl.example/partA.crl";
	write_named(fx, "partA.crl", &spec);
	expect_answer(fx, "partA.crl", false, part_b, PIV_REV_UNKNOWN, "does not cover the certificate");
	/* a certificate without distribution points is not covered either */
	expect_answer(fx, "partA.crl", false, fx->leaf_good, PIV_REV_UNKNOWN, "does not cover");
	/* what partA's CRL lists is still revoked: the issuer signed it */
	expect_answer(fx, "partA.crl", false, part_b_revoked, PIV_REV_REVOKED, "complete answer");
	/* the CRL of the certificate's own distribution point answers */
	spec.idp_uri = "http://crl.example/partB.crl";
	write_named(fx, "partB.crl", &spec);
	expect_answer(fx, "partB.crl", false, part_b, PIV_REV_GOOD, "not revoked");
	expect_answer(fx, "partB.crl", false, part_b_revoked, PIV_REV_REVOKED, "revoked");
	/* a CRL without issuingDistributionPoint covers the whole issuer */
	spec.idp_uri = NULL;
	write_named(fx, "whole.crl", &spec);
	expect_answer(fx, "whole.crl", false, part_b, PIV_REV_GOOD, "not revoked");
	X509_free(part_b);
	X509_free(part_b_revoked);
}

/* No rollback: once a CRL of an issuer and scope was used, an older one
 * (lower cRLNumber, or earlier thisUpdate without numbers) is not. */
static void
test_no_rollback(void **state)
{
	struct fixture *fx = *state;
	static const long five[] = { 5 };
	char path[300], reason[600];
	struct crl_spec spec;

	forget_numbers(fx);
	/* #7 revokes serial 5 (leaf_revoked) */
	spec_ok(&spec);
	spec.number = 7;
	spec.serials = five;
	spec.n_serials = 1;
	write_named(fx, "seq.crl", &spec);
	expect_answer(fx, "seq.crl", false, fx->leaf_revoked, PIV_REV_REVOKED, "revoked");
	/* #6, from before the revocation, replayed: not used */
	spec.number = 6;
	spec.n_serials = 0;
	sleep(1); /* a new file identity */
	write_named(fx, "seq.crl", &spec);
	expect_answer(fx, "seq.crl", false, fx->leaf_revoked, PIV_REV_UNKNOWN,
	              "CRL number 06 is older than CRL number 07 already used");
	expect_answer(fx, "seq.crl", false, fx->leaf_good, PIV_REV_UNKNOWN, "(rollback)");
	/* #8 goes forward (here a certificateHold lifted) */
	spec.number = 8;
	sleep(1);
	write_named(fx, "seq.crl", &spec);
	expect_answer(fx, "seq.crl", false, fx->leaf_revoked, PIV_REV_GOOD, "not revoked");
	/* a damaged record of numbers is no record: #6 passes again */
	snprintf(path, sizeof(path), "%s/cache", fx->dir);
	{
		char cmd[400];
		snprintf(cmd, sizeof(cmd), "for f in '%s'/crlnum-*; do echo garbage > \"$f\"; done", path);
		assert_int_equal(system(cmd), 0);
	}
	spec.number = 6;
	sleep(1);
	write_named(fx, "seq.crl", &spec);
	expect_answer(fx, "seq.crl", false, fx->leaf_good, PIV_REV_GOOD, "not revoked");
	/* without numbers: thisUpdate decides */
	forget_numbers(fx);
	spec.number = 0;
	spec.last_offset = -600;
	sleep(1);
	write_named(fx, "seq.crl", &spec);
	expect_answer(fx, "seq.crl", false, fx->leaf_good, PIV_REV_GOOD, "not revoked");
	spec.last_offset = -7200;
	sleep(1);
	write_named(fx, "seq.crl", &spec);
	assert_int_equal(check(fx, "seq.crl", fx->leaf_good, reason, sizeof(reason)), PIV_REV_UNKNOWN);
	assert_non_null(strstr(reason, "older than a CRL already used"));
}

/* A complete CRL that announces delta CRLs (Freshest CRL) answers only
 * with a current delta CRL of its scope that follows it. */
static void
test_delta_crls(void **state)
{
	struct fixture *fx = *state;
	static const long four[] = { 4 };
	char dir[300], cmd[400];
	struct crl_spec base, delta;

	forget_numbers(fx);
	snprintf(dir, sizeof(dir), "%s/deltas", fx->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	spec_ok(&base);
	base.number = 0x10;
	base.freshest_uri = "http://127.0.0.1:9/delta.crl";
	write_named(fx, "deltas/base.crl", &base);
	/* the base alone: incomplete (crl_fetch is off here) */
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_UNKNOWN,
	              "announces delta CRLs (Freshest CRL) and no current delta CRL");
	expect_answer(fx, "deltas", true, fx->leaf_revoked, PIV_REV_REVOKED, "complete answer");
	/* with its delta: what the delta adds is revoked, the rest is not */
	memset(&delta, 0, sizeof(delta));
	delta.last_offset = -60;
	delta.next_offset = 3600;
	delta.delta = true;
	delta.delta_base = 0x10;
	delta.number = 0x11;
	delta.serials = four;
	delta.n_serials = 1;
	write_named(fx, "deltas/delta.crl", &delta);
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_REVOKED, "delta CRL");
	expect_answer(fx, "deltas", true, fx->leaf_revoked, PIV_REV_REVOKED, "revoked");
	delta.number = 0x12;
	delta.n_serials = 0;
	delta.remove_serial = 5; /* removeFromCRL: a hold ends, nothing is revoked by it */
	write_named(fx, "deltas/delta.crl", &delta);
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_GOOD, "with its delta CRL");
	expect_answer(fx, "deltas", true, fx->leaf_revoked, PIV_REV_REVOKED, "revoked");
	/* deltas that do not apply: for a later base, not newer than the
	 * base, expired */
	forget_numbers(fx);
	delta.remove_serial = 0;
	delta.delta_base = 0x11;
	delta.number = 0x13;
	write_named(fx, "deltas/delta.crl", &delta);
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_UNKNOWN, "no current delta CRL");
	delta.delta_base = 0x08;
	delta.number = 0x10;
	write_named(fx, "deltas/delta.crl", &delta);
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_UNKNOWN, "no current delta CRL");
	delta.number = 0x14;
	delta.last_offset = -7200;
	delta.next_offset = -3600;
	write_named(fx, "deltas/delta.crl", &delta);
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_UNKNOWN, "no current delta CRL");
	/* a base without Freshest CRL needs no delta */
	base.freshest_uri = NULL;
	base.number = 0x11;
	write_named(fx, "deltas/base.crl", &base);
	expect_answer(fx, "deltas", true, fx->leaf_good, PIV_REV_GOOD, "not revoked");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* The record of a serial from its DER content octets is the record of
 * the same serial as OpenSSL decodes it: the CRL's entries and the card's
 * certificate meet in the index. */
static void
test_serial_bytes_records(void **state)
{
	static const long values[] = { 0, 1, 127, 128, 255, 256, 65535, 65536, 0x7fffffffL, -1, -127,
	                               -128, -129, -255, -256, -65536, -0x7fffffffL - 1 };
	uint8_t a[PIV_CRL_RECORD], b[PIV_CRL_RECORD];

	(void)state;
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]) + 40; i++) {
		ASN1_INTEGER *n = ASN1_INTEGER_new();
		unsigned char *der = NULL;
		const unsigned char *p;
		long len;
		int der_len, tag, class;
		if (i < sizeof(values) / sizeof(values[0])) {
			ASN1_INTEGER_set(n, values[i]);
		} else {
			/* random 1..20-byte magnitudes, half of them negative */
			BIGNUM *bn = BN_new();
			unsigned char bytes[20];
			assert_int_equal(RAND_bytes(bytes, sizeof(bytes)), 1);
			BN_bin2bn(bytes, 1 + (int)(i % 20), bn);
			BN_set_negative(bn, (int)(i & 1));
			assert_non_null(BN_to_ASN1_INTEGER(bn, n));
			BN_free(bn);
		}
		der_len = i2d_ASN1_INTEGER(n, &der);
		assert_true(der_len > 0);
		p = der;
		assert_int_equal(ASN1_get_object(&p, &len, &tag, &class, der_len) & 0x80, 0);
		assert_int_equal(piv_crl_serial_record(n, a), 0);
		assert_int_equal(piv_crl_serial_bytes_record(p, (size_t)len, b), 0);
		if (memcmp(a, b, PIV_CRL_RECORD) != 0)
			fail_msg("serial %zu: the records differ", i);
		OPENSSL_free(der);
		ASN1_INTEGER_free(n);
	}
}

static size_t
count_files(const char *dir, const char *prefix)
{
	char cmd[400];
	FILE *f;
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "ls '%s' | grep -c '^%s' || true", dir, prefix);
	f = popen(cmd, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%zu", &n), 1);
	pclose(f);
	return n;
}

/* One index per content: the same CRL as DER, as PEM, and under a hash
 * link is read and indexed, but kept once. */
static void
test_one_index_per_content(void **state)
{
	struct fixture *fx = *state;
	struct crl_spec spec;
	char dir[300], der_path[400], pem_path[400], link_path[400], cache[300], why[300], cmd[700];
	struct piv_crl_index a, b, c;
	X509_CRL *crl;
	FILE *f;

	snprintf(dir, sizeof(dir), "%s/names", fx->dir);
	snprintf(cache, sizeof(cache), "%s/names-cache", fx->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(piv_cache_dir_check(cache, why, sizeof(why)), 0);
	spec_ok(&spec);
	snprintf(der_path, sizeof(der_path), "%s/ca.crl", dir);
	snprintf(pem_path, sizeof(pem_path), "%s/ca.pem", dir);
	snprintf(link_path, sizeof(link_path), "%s/1a2b3c4d.r0", dir);
	write_crl(der_path, fx->ca, fx->ca_key, &spec);
	f = fopen(der_path, "rb");
	assert_non_null(f);
	crl = d2i_X509_CRL_fp(f, NULL);
	fclose(f);
	assert_non_null(crl);
	f = fopen(pem_path, "w");
	assert_non_null(f);
	assert_int_equal(PEM_write_X509_CRL(f, crl), 1);
	fclose(f);
	X509_CRL_free(crl);
	assert_int_equal(symlink("ca.crl", link_path), 0);
	assert_int_equal(piv_crl_cache_build(cache, der_path, fx->ca, NULL, NULL, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_cache_build(cache, pem_path, fx->ca, NULL, NULL, why, sizeof(why)), 0);
	/* the link is the same version as its file: indexed already */
	assert_int_equal(piv_crl_cache_open(cache, link_path, false, &c), 0);
	assert_int_equal(piv_crl_cache_open(cache, der_path, false, &a), 0);
	assert_int_equal(piv_crl_cache_open(cache, pem_path, false, &b), 0);
	assert_memory_equal(a.content_id, b.content_id, 32);
	assert_memory_equal(a.content_id, c.content_id, 32);
	assert_int_equal(a.count, 4);
	assert_int_equal(b.count, 4);
	piv_crl_close_index(&a);
	piv_crl_close_index(&b);
	piv_crl_close_index(&c);
	assert_int_equal(count_files(cache, "crlidx-"), 1);
	/* and the answers through crl_dir agree */
	expect_answer(fx, "names", true, fx->leaf_revoked, PIV_REV_REVOKED, "revoked");
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, cache);
	assert_int_equal(system(cmd), 0);
}

/* Pruning the cache: an index a day past its CRL's nextUpdate goes, with
 * the pointers to it; a current one stays. */
static void
test_cache_prune(void **state)
{
	struct fixture *fx = *state;
	char dir[300], old_path[400], cur_path[400], cache[300], why[300], cmd[700];
	struct piv_crl_index idx;
	struct crl_spec spec;

	snprintf(dir, sizeof(dir), "%s/prune", fx->dir);
	snprintf(cache, sizeof(cache), "%s/prune-cache", fx->dir);
	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(piv_cache_dir_check(cache, why, sizeof(why)), 0);
	snprintf(old_path, sizeof(old_path), "%s/old.crl", dir);
	snprintf(cur_path, sizeof(cur_path), "%s/current.crl", dir);
	spec_ok(&spec);
	spec.last_offset = -12 * 86400;
	spec.next_offset = -9 * 86400;
	write_crl(old_path, fx->ca, fx->ca_key, &spec);
	spec_ok(&spec);
	write_crl(cur_path, fx->ca, fx->ca_key, &spec);
	assert_int_equal(piv_crl_cache_build(cache, old_path, fx->ca, NULL, NULL, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_cache_build(cache, cur_path, fx->ca, NULL, NULL, why, sizeof(why)), 0);
	assert_int_equal(count_files(cache, "crlidx-"), 2);
	assert_int_equal(count_files(cache, "crlsrc-"), 2);
	/* made just now: kept a week, even if expired */
	piv_crl_cache_prune(cache, time(NULL));
	assert_int_equal(count_files(cache, "crlidx-"), 2);
	/* made ten days ago: the expired one goes, the current one stays */
	snprintf(cmd, sizeof(cmd), "touch -d '10 days ago' '%s'/crlidx-*", cache);
	assert_int_equal(system(cmd), 0);
	piv_crl_cache_prune(cache, time(NULL));
	assert_int_equal(count_files(cache, "crlidx-"), 1);
	assert_int_equal(count_files(cache, "crlsrc-"), 1);
	assert_int_equal(count_files(cache, "crlname-"), 1);
	assert_int_equal(piv_crl_cache_open(cache, old_path, false, &idx), -1);
	assert_int_equal(piv_crl_cache_open(cache, cur_path, false, &idx), 0);
	piv_crl_close_index(&idx);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s' '%s'", dir, cache);
	assert_int_equal(system(cmd), 0);
}

/* The entries read in place are the entries OpenSSL decodes, every one,
 * negative serials included; enough of them (7 MB of DER) that the pages
 * read are given back on the way. */
static void
test_stream_matches_openssl(void **state)
{
	struct fixture *fx = *state;
	enum { N = 200000 };
	long *serials = calloc(N, sizeof(long));
	char path[300], idx_path[300], why[300];
	struct piv_crl_index idx;
	struct crl_spec spec;
	X509_CRL *crl;
	FILE *f;

	assert_non_null(serials);
	for (long i = 0; i < N; i++)
		serials[i] = (i % 7 == 0 ? -1 : 1) * (i * 2654435761L % 0x7fffffffL + 1);
	spec_ok(&spec);
	spec.serials = serials;
	spec.n_serials = N;
	snprintf(path, sizeof(path), "%s/many.crl", fx->dir);
	snprintf(idx_path, sizeof(idx_path), "%s/many.idx", fx->dir);
	write_crl(path, fx->ca, fx->ca_key, &spec);
	assert_int_equal(piv_crl_build_index(path, fx->ca, idx_path, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), 0);
	assert_int_equal(idx.flags & PIV_CRL_IDX_UNUSABLE, 0);
	f = fopen(path, "rb");
	assert_non_null(f);
	crl = d2i_X509_CRL_fp(f, NULL);
	fclose(f);
	assert_non_null(crl);
	assert_int_equal(idx.count, (uint64_t)sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)));
	for (int i = 0; i < sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl)); i++) {
		uint8_t rec[PIV_CRL_RECORD];
		X509_REVOKED *r = sk_X509_REVOKED_value(X509_CRL_get_REVOKED(crl), i);
		assert_int_equal(piv_crl_serial_record(X509_REVOKED_get0_serialNumber(r), rec), 0);
		if (!piv_crl_index_has(&idx, rec))
			fail_msg("entry %d is not in the index", i);
	}
	piv_crl_close_index(&idx);
	X509_CRL_free(crl);
	free(serials);
}

/* Frames that are not one CRL, and signatures that do not hold. */
static void
test_stream_refusals(void **state)
{
	struct fixture *fx = *state;
	char path[300], bad[300], idx_path[300], why[300];
	struct piv_crl_index idx;
	struct crl_spec spec;
	uint8_t *der;
	long len;
	FILE *f;
	static const struct { const char *name; int how; const char *want; } cases[] = {
		{ "truncated", 0, "not a CRL" },
		{ "trailing", 1, "not a CRL" },
		{ "flipped", 2, "does not verify" },
		{ "algorithms", 3, "two signature algorithms differ" },
		{ "indefinite", 4, "not a CRL" },
	};

	spec_ok(&spec);
	snprintf(path, sizeof(path), "%s/frame.crl", fx->dir);
	write_crl(path, fx->ca, fx->ca_key, &spec);
	f = fopen(path, "rb");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	len = ftell(f);
	rewind(f);
	der = malloc((size_t)len + 1);
	assert_int_equal(fread(der, 1, (size_t)len, f), (size_t)len);
	fclose(f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		uint8_t *copy = malloc((size_t)len + 1);
		size_t copy_len = (size_t)len;
		memcpy(copy, der, (size_t)len);
		switch (cases[i].how) {
		case 0: copy_len -= 10; break;
		case 1: copy[copy_len++] = 0; break;
		case 2: copy[copy_len - 1] ^= 1; break; /* the signature's last byte */
		case 3: {
			/* the outer ecdsa-with-SHA256 (…04 03 02) made SHA-384 (…04 03 03) */
			static const uint8_t oid[] = { 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02 };
			uint8_t *last = NULL;
			for (size_t k = 0; k + sizeof(oid) <= copy_len; k++)
				if (memcmp(copy + k, oid, sizeof(oid)) == 0)
					last = copy + k;
			assert_non_null(last);
			last[sizeof(oid) - 1] = 0x03;
			break;
		}
		case 4: copy[1] = 0x80; break; /* BER indefinite length */
		}
		snprintf(bad, sizeof(bad), "%s/%s.crl", fx->dir, cases[i].name);
		snprintf(idx_path, sizeof(idx_path), "%s/%s.idx", fx->dir, cases[i].name);
		f = fopen(bad, "wb");
		assert_non_null(f);
		assert_int_equal(fwrite(copy, 1, copy_len, f), copy_len);
		fclose(f);
		assert_int_equal(piv_crl_build_index(bad, fx->ca, idx_path, why, sizeof(why)), 0);
		assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), 0);
		if (!(idx.flags & PIV_CRL_IDX_UNUSABLE) || strstr(idx.reason, cases[i].want) == NULL)
			fail_msg("%s: flags %u, reason '%s', want '%s'", cases[i].name, idx.flags,
			         idx.reason, cases[i].want);
		assert_int_equal(idx.count, 0);
		piv_crl_close_index(&idx);
		free(copy);
	}
	free(der);
}

/* An RSA issuer whose CRL is signed with RSASSA-PSS: verified with the
 * parameters the CRL gives. */
static void
test_pss_signed_crl(void **state)
{
	struct fixture *fx = *state;
	EVP_PKEY *rsa = EVP_RSA_gen(2048);
	X509 *ca = make_cert("Test CA", rsa, NULL, NULL, 21, 1);
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	EVP_MD_CTX *mctx = EVP_MD_CTX_new();
	EVP_PKEY_CTX *pctx = NULL;
	char path[300], idx_path[300], why[300];
	struct piv_crl_index idx;
	FILE *f;

	(void)fx;
	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(ca));
	X509_gmtime_adj(t, -60);
	X509_CRL_set1_lastUpdate(crl, t);
	X509_gmtime_adj(t, 3600);
	X509_CRL_set1_nextUpdate(crl, t);
	assert_int_equal(EVP_DigestSignInit(mctx, &pctx, EVP_sha256(), NULL, rsa), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 32), 1);
	assert_int_equal(EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha256()), 1);
	assert_true(X509_CRL_sign_ctx(crl, mctx) > 0);
	snprintf(path, sizeof(path), "%s/pss.crl", fx->dir);
	snprintf(idx_path, sizeof(idx_path), "%s/pss.idx", fx->dir);
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(i2d_X509_CRL_fp(f, crl), 1);
	fclose(f);
	assert_int_equal(piv_crl_build_index(path, ca, idx_path, why, sizeof(why)), 0);
	assert_int_equal(piv_crl_open_index(idx_path, NULL, &idx), 0);
	if (idx.flags & PIV_CRL_IDX_UNUSABLE)
		fail_msg("a PSS-signed CRL: %s", idx.reason);
	piv_crl_close_index(&idx);
	EVP_MD_CTX_free(mctx);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	X509_free(ca);
	EVP_PKEY_free(rsa);
}

/* The refresher's schedule: due between 3/4 and 7/8 of the window, at a
 * point of each host's own; retries back off from 5 minutes to 4 hours. */
static void
test_refresh_schedule(void **state)
{
	const int64_t this_update = 1700000000, next_update = this_update + 7 * 86400;
	time_t earliest = next_update, latest = 0;

	(void)state;
	for (uint64_t seed = 0; seed < 2000; seed++) {
		time_t due = piv_crl_refresh_due(this_update, next_update, seed * 0x9e3779b97f4a7c15ULL);
		assert_true(due >= this_update + 7 * 86400 * 3 / 4);
		assert_true(due < this_update + 7 * 86400 * 7 / 8);
		earliest = due < earliest ? due : earliest;
		latest = due > latest ? due : latest;
	}
	/* a fleet spreads over the eighth, not on one second */
	assert_true(latest - earliest > 7 * 86400 / 8 * 9 / 10);
	assert_int_equal(piv_crl_refresh_due(this_update, this_update, 42), this_update);
	assert_int_equal(piv_crl_refresh_backoff(1), 300);
	assert_int_equal(piv_crl_refresh_backoff(2), 600);
	assert_int_equal(piv_crl_refresh_backoff(4), 2400);
	assert_int_equal(piv_crl_refresh_backoff(7), 14400);
	assert_int_equal(piv_crl_refresh_backoff(100), 14400);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_serial_records),
		cmocka_unit_test(test_good_and_revoked),
		cmocka_unit_test(test_index_damage),
		cmocka_unit_test(test_damaged_cache_rebuilt),
		cmocka_unit_test(test_unusable_crls),
		cmocka_unit_test(test_other_issuer),
		cmocka_unit_test(test_scope_distribution_points),
		cmocka_unit_test(test_no_rollback),
		cmocka_unit_test(test_delta_crls),
		cmocka_unit_test(test_serial_bytes_records),
		cmocka_unit_test(test_one_index_per_content),
		cmocka_unit_test(test_cache_prune),
		cmocka_unit_test(test_stream_matches_openssl),
		cmocka_unit_test(test_stream_refusals),
		cmocka_unit_test(test_pss_signed_crl),
		cmocka_unit_test(test_refresh_schedule),
		cmocka_unit_test(test_cache_dir_safety),
	};
	alarm(120);
	return cmocka_run_group_tests_name("crl", tests, setup, teardown);
}
