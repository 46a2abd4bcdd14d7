/* Shared by the fuzz targets (see fuzz_util.h). Failures here are the
 * harness's, not the library's: they exit with a message instead of
 * aborting, so libFuzzer does not file them as findings. */
#include "config.h"
#include "fuzz_util.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

static char tmpdir[256];

void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: broken promise: %s\n", file, line, what);
	abort();
}

void
fuzz_harness_error(const char *what)
{
	fprintf(stderr, "fuzz harness: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(2);
}

static int
remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

static void
remove_tmpdir(void)
{
	if (tmpdir[0] != '\0')
		nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *
fuzz_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	struct stat st;

	if (tmpdir[0] != '\0')
		return tmpdir;
	if (stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) && access("/dev/shm", W_OK) == 0)
		base = "/dev/shm";
	else if (base == NULL || base[0] != '/')
		base = "/tmp";
	if ((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/pam_piv-fuzz.XXXXXX", base) >=
	    sizeof(tmpdir) || mkdtemp(tmpdir) == NULL) {
		tmpdir[0] = '\0';
		fuzz_harness_error("cannot make a temporary directory");
	}
	atexit(remove_tmpdir);
	return tmpdir;
}

void
fuzz_path(char *out, size_t out_size, const char *name)
{
	if ((size_t)snprintf(out, out_size, "%s/%s", fuzz_tmpdir(), name) >= out_size)
		fuzz_harness_error("path too long");
}

void
fuzz_write_file(const char *path, const void *data, size_t len)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || (len > 0 && fwrite(data, 1, len, f) != len) || fclose(f) != 0)
		fuzz_harness_error("cannot write a scratch file");
}

char *
fuzz_strndup(const uint8_t *data, size_t len)
{
	char *s = malloc(len + 1);

	if (s == NULL)
		fuzz_harness_error("out of memory");
	if (len > 0)
		memcpy(s, data, len);
	s[len] = '\0';
	return s;
}

static void
add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(cert, ext, -1) != 1)
		fuzz_harness_error("cannot add a certificate extension");
	X509_EXTENSION_free(ext);
}

static EVP_PKEY *
make_key(const char *kind)
{
	EVP_PKEY *key = NULL;

	if (strcmp(kind, "ec256") == 0)
		key = EVP_EC_gen("P-256");
	else if (strcmp(kind, "ec384") == 0)
		key = EVP_EC_gen("P-384");
	else if (strcmp(kind, "rsa2048") == 0)
		key = EVP_RSA_gen(2048);
	if (key == NULL)
		fuzz_harness_error("cannot generate a key");
	return key;
}

/* issuer NULL: self-signed with key. */
static X509 *
build_cert(EVP_PKEY *key, const char *cn, long serial, int is_ca, const char *eku,
           X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *cert = X509_new();
	X509_NAME *name;

	if (cert == NULL || X509_set_version(cert, 2) != 1 ||
	    ASN1_INTEGER_set(X509_get_serialNumber(cert), serial) != 1 ||
	    X509_gmtime_adj(X509_getm_notBefore(cert), -86400) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(cert), 10L * 365 * 86400) == NULL ||
	    X509_set_pubkey(cert, key) != 1)
		fuzz_harness_error("cannot build a certificate");
	name = X509_get_subject_name(cert);
	if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
	                               (const unsigned char *)"pam_piv fuzz", -1, -1, 0) != 1 ||
	    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1,
	                               0) != 1 ||
	    X509_set_issuer_name(cert, issuer ? X509_get_subject_name(issuer) : name) != 1)
		fuzz_harness_error("cannot name a certificate");
	add_ext(cert, issuer ? issuer : cert, NID_basic_constraints,
	        is_ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(cert, issuer ? issuer : cert, NID_key_usage,
	        is_ca ? "critical,keyCertSign,cRLSign,digitalSignature" : "critical,digitalSignature");
	add_ext(cert, issuer ? issuer : cert, NID_subject_key_identifier, "hash");
	if (issuer != NULL)
		add_ext(cert, issuer, NID_authority_key_identifier, "keyid");
	if (eku != NULL)
		add_ext(cert, issuer ? issuer : cert, NID_ext_key_usage, eku);
	if (X509_sign(cert, issuer_key ? issuer_key : key, EVP_sha256()) <= 0)
		fuzz_harness_error("cannot sign a certificate");
	return cert;
}

const struct fuzz_pki *
fuzz_pki(void)
{
	static struct fuzz_pki pki;

	if (pki.ca != NULL)
		return &pki;
	pki.ca_key = make_key("ec256");
	pki.ca = build_cert(pki.ca_key, "Fuzz CA", 1, 1, NULL, NULL, NULL);
	pki.leaf_key = make_key("ec256");
	pki.leaf = build_cert(pki.leaf_key, "alice", 0x1234, 0, "clientAuth", pki.ca, pki.ca_key);
	pki.responder_key = make_key("ec256");
	pki.responder = build_cert(pki.responder_key, "Fuzz OCSP", 2, 0, "OCSPSigning", pki.ca,
	                           pki.ca_key);
	pki.rogue_key = make_key("ec256");
	pki.rogue = build_cert(pki.rogue_key, "Fuzz CA", 1, 1, NULL, NULL, NULL);
	pki.store = X509_STORE_new();
	pki.chain = sk_X509_new_null();
	if (pki.store == NULL || pki.chain == NULL || X509_STORE_add_cert(pki.store, pki.ca) != 1 ||
	    !sk_X509_push(pki.chain, pki.leaf) || !sk_X509_push(pki.chain, pki.ca))
		fuzz_harness_error("cannot build the trust store");
	ERR_clear_error();
	return &pki;
}

X509 *
fuzz_make_cert(const char *kind, const char *cn, long serial, int is_ca, const char *extra_eku,
               EVP_PKEY **key_out)
{
	const struct fuzz_pki *pki = fuzz_pki();
	EVP_PKEY *key = make_key(kind);
	X509 *cert = build_cert(key, cn, serial, is_ca, extra_eku, pki->ca, pki->ca_key);

	if (key_out != NULL)
		*key_out = key;
	else
		EVP_PKEY_free(key);
	return cert;
}
