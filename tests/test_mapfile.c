/* cmocka tests of mapping files: every matcher matching and not matching,
 * every syntax error with its line, comments, duplicates, ambiguity, and
 * the identifiers taken from a certificate (FASC-N, UUID, SKI, DNs). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "accounts/mapfile.h"

#define FASCN "d4e739da739ced39ce739d836858210842108421c84210c3eb"
#define UUID "4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f"

static X509 *
piv_cert(long serial)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	CONF *conf = NCONF_new(NULL);
	long err = 0;
	BIO *bio = BIO_new_mem_buf("[san]\n"
	                           "otherName.1 = 2.16.840.1.101.3.6.6;FORMAT:HEX,OCTETSTRING:"
	                           "D4E739DA739CED39CE739D836858210842108421C84210C3EB\n"
	                           "URI.1 = urn:uuid:4D2B0E59-3C0A-4C2E-9D2E-0A1B2C3D4E5F\n"
	                           "email.1 = alice@example.test\n", -1);

	assert_int_equal(NCONF_load_bio(conf, bio, &err), 1);
	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 3600);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "C", MBSTRING_ASC,
	                           (const unsigned char *)"US", -1, -1, 0);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "O", MBSTRING_ASC,
	                           (const unsigned char *)"PIV Test", -1, -1, 0);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Alice Example", -1, -1, 0);
	X509_NAME_add_entry_by_txt(X509_get_issuer_name(cert), "CN", MBSTRING_ASC,
	                           (const unsigned char *)"Test CA", -1, -1, 0);
	X509V3_set_ctx(&ctx, cert, cert, NULL, NULL, 0);
	X509V3_set_nconf(&ctx, conf);
	ext = X509V3_EXT_nconf_nid(conf, &ctx, NID_subject_alt_name, "@san");
	assert_non_null(ext);
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	ext = X509V3_EXT_nconf_nid(conf, &ctx, NID_subject_key_identifier, "hash");
	X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	assert_true(X509_sign(cert, key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	NCONF_free(conf);
	BIO_free(bio);
	return cert;
}

static struct piv_cert_facts facts;

static int
setup(void **state)
{
	X509 *cert = piv_cert(0x0a0b0c);

	(void)state;
	assert_int_equal(piv_cert_facts(cert, &facts), 0);
	X509_free(cert);
	return 0;
}

static void
test_facts(void **state)
{
	(void)state;
	assert_string_equal(facts.subject, "CN=Alice Example,O=PIV Test,C=US");
	assert_string_equal(facts.issuer, "CN=Test CA");
	assert_string_equal(facts.serial, "0a0b0c");
	assert_string_equal(facts.fascn, FASCN);
	assert_string_equal(facts.uuid, UUID);
	assert_int_equal(strlen(facts.sha256), 64);
	assert_int_equal(strlen(facts.ski), 40);
}

/* The accounts text maps the certificate to, or NULL on a syntax error
 * (then *why holds the message). */
static char *
lookup(const char *text, char *why, size_t why_size)
{
	struct piv_accounts acc;
	char *copy = strdup(text), *out;
	size_t len = 0;

	memset(&acc, 0, sizeof(acc));
	if (piv_mapfile_lookup_text("map", copy, &facts, &acc, why, why_size) != PIV_OK) {
		free(copy);
		piv_accounts_free(&acc);
		return NULL;
	}
	out = calloc(1, 1024);
	for (size_t i = 0; i < acc.n; i++)
		len += (size_t)snprintf(out + len, 1024 - len, "%s%s", i ? "," : "", acc.name[i]);
	free(copy);
	piv_accounts_free(&acc);
	return out;
}

static void
expect_map(const char *text, const char *want)
{
	char why[300] = "";
	char *got = lookup(text, why, sizeof(why));

	if (got == NULL)
		fail_msg("'%s' refused: %s", text, why);
	if (strcmp(got, want) != 0)
		fail_msg("'%s' gave '%s', want '%s'", text, got, want);
	free(got);
}

static void
expect_syntax_error(const char *text, const char *needle)
{
	char why[300] = "";
	char *got = lookup(text, why, sizeof(why));

	if (got != NULL)
		fail_msg("'%s' accepted (gave '%s')", text, got);
	if (strstr(why, needle) == NULL)
		fail_msg("'%s': error '%s' lacks '%s'", text, why, needle);
}

static void
test_every_matcher(void **state)
{
	char line[512], colons[200];
	size_t o = 0;

	(void)state;
	snprintf(line, sizeof(line), "alice sha256=%s\n", facts.sha256);
	expect_map(line, "alice");
	for (size_t i = 0; facts.sha256[i]; i += 2)
		o += (size_t)snprintf(colons + o, sizeof(colons) - o, "%s%.2s", i ? ":" : "",
		                      facts.sha256 + i);
	for (char *p = colons; *p; p++)
		*p = (char)(*p >= 'a' && *p <= 'f' ? *p - 32 : *p);
	snprintf(line, sizeof(line), "alice sha256=%s\n", colons);
	expect_map(line, "alice"); /* colons and upper case */
	expect_map("alice sha256=0000000000000000000000000000000000000000000000000000000000000000", "");

	expect_map("alice subject=CN=Alice Example,O=PIV Test,C=US", "alice");
	expect_map("alice subject=cn=alice example, o=piv test, c=us", "alice");
	expect_map("alice subject=CN=Alice Example,O=PIV Test", "");
	expect_map("alice subject=CN=Alice Examples,O=PIV Test,C=US", "");

	expect_map("alice issuer+serial=CN=Test CA;0A0B0C", "alice");
	expect_map("alice issuer+serial=cn=test ca;0a:0b:0c", "alice");
	expect_map("alice issuer+serial=CN=Test CA;000A0B0C", "alice");
	expect_map("alice issuer+serial=CN=Test CA;A0B0C", "alice");
	expect_map("alice issuer+serial=CN=Test CA;0A0B0D", "");
	expect_map("alice issuer+serial=CN=Other CA;0A0B0C", "");

	snprintf(line, sizeof(line), "alice ski=%s", facts.ski);
	expect_map(line, "alice");
	expect_map("alice ski=00112233", "");

	expect_map("alice fascn=" FASCN, "alice");
	expect_map("alice fascn=D4:E7:39:DA:73:9C:ED:39:CE:73:9D:83:68:58:21:08:42:10:84:21:C8:42:10:C3:EB",
	           "alice");
	expect_map("alice fascn=D4E739DA739CED39CE739D836858210842108421C84210C3EA", "");

	expect_map("alice uuid=" UUID, "alice");
	expect_map("alice uuid=4D2B0E59-3C0A-4C2E-9D2E-0A1B2C3D4E5F", "alice");
	expect_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e50", "");
}

/* RFC 5280 serials are positive. A negative one (OpenSSL parses it) was
 * taken by its magnitude, so -0x0a0b0c matched a line for 0a0b0c: now such a
 * certificate has no serial fact and matches no issuer+serial= line. */
static void
test_negative_serial(void **state)
{
	struct piv_cert_facts saved = facts;
	X509 *cert = piv_cert(-0x0a0b0c);

	(void)state;
	assert_int_equal(piv_cert_facts(cert, &facts), 0);
	X509_free(cert);
	assert_string_equal(facts.serial, "");
	expect_map("alice issuer+serial=CN=Test CA;0A0B0C", "");
	expect_syntax_error("alice issuer+serial=CN=Test CA;-0A0B0C", "takes DN;HEXSERIAL");
	expect_map("alice subject=CN=Alice Example,O=PIV Test,C=US", "alice");
	facts = saved;
}

static void
test_file_structure(void **state)
{
	char text[1024];

	(void)state;
	snprintf(text, sizeof(text),
	         "# accounts for PIV cards\n"
	         "\n"
	         "   # indented comment\n"
	         "bob     uuid=00000000-0000-0000-0000-000000000000\n"
	         "alice\tfascn=" FASCN "\r\n"
	         "alice   uuid=" UUID "\n"        /* the same user twice is fine */
	         "carol   subject=CN=Somebody Else\n");
	expect_map(text, "alice");
	/* two users for one certificate: both come back (the caller decides) */
	expect_map("alice fascn=" FASCN "\nbob uuid=" UUID "\n", "alice,bob");
	expect_map("", "");
	expect_map("# only comments\n", "");
}

static void
test_syntax_errors(void **state)
{
	(void)state;
	expect_syntax_error("alice", "map:1: expected 'account matcher'");
	expect_syntax_error("# ok\nalice fascn=" FASCN "\nbob nomatcher", "map:3: expected KIND=VALUE");
	expect_syntax_error("alice serial=01", "unknown matcher");
	expect_syntax_error("alice sha256=abc", "64 hex digits");
	expect_syntax_error("alice sha256=zz", "64 hex digits");
	expect_syntax_error("alice subject=", "takes a DN");
	expect_syntax_error("alice issuer+serial=CN=Test CA", "DN;HEXSERIAL");
	expect_syntax_error("alice issuer+serial=;01", "DN;HEXSERIAL");
	expect_syntax_error("alice issuer+serial=CN=x;0x01", "DN;HEXSERIAL");
	expect_syntax_error("alice ski=", "hex digits");
	expect_syntax_error("alice fascn=D4E7", "50 hex digits");
	expect_syntax_error("alice uuid=not-a-uuid", "uuid= takes a UUID");
	expect_syntax_error("alice uuid=4d2b0e59x3c0a-4c2e-9d2e-0a1b2c3d4e5f", "uuid= takes a UUID");
	expect_syntax_error("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5g", "uuid= takes a UUID");
	expect_syntax_error("-rf sha256=00", "not a valid account name");
	expect_syntax_error("al/ice uuid=" UUID, "not a valid account name");
	expect_syntax_error("alice uuid=" UUID "\x01", "control character");
	/* a typo anywhere refuses the whole file, even after a match */
	expect_syntax_error("alice uuid=" UUID "\nbob sha265=00\n", "map:2: unknown matcher");
}

static void
test_file_safety(void **state)
{
	char dir[] = "/tmp/piv-map-XXXXXX", path[64], why[300];
	struct piv_accounts acc;
	FILE *f;

	(void)state;
	memset(&acc, 0, sizeof(acc));
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/map", dir);
	assert_int_equal(piv_mapfile_lookup(path, &facts, &acc, why, sizeof(why)), PIV_E_CONFIG);
	f = fopen(path, "w");
	fputs("alice uuid=" UUID "\n", f);
	fclose(f);
	chmod(path, 0644);
	if (geteuid() == 0) {
		assert_int_equal(piv_mapfile_lookup(path, &facts, &acc, why, sizeof(why)), PIV_OK);
		assert_int_equal(acc.n, 1);
		piv_accounts_free(&acc);
		chmod(path, 0666);
		assert_int_equal(piv_mapfile_lookup(path, &facts, &acc, why, sizeof(why)), PIV_E_CONFIG);
		assert_non_null(strstr(why, "writable by group or others"));
	}
	unlink(path);
	rmdir(dir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_facts),
		cmocka_unit_test(test_every_matcher),
		cmocka_unit_test(test_negative_serial),
		cmocka_unit_test(test_file_structure),
		cmocka_unit_test(test_syntax_errors),
		cmocka_unit_test(test_file_safety),
	};
	alarm(60);
	return cmocka_run_group_tests_name("mapfile", tests, setup, NULL);
}
