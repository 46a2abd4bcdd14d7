/* mkbigcrl: writes a large CRL quickly, for tests and benchmarks.
 *
 * usage: mkbigcrl ISSUER_CERT ISSUER_KEY COUNT OUT.der [--revoke-serial-of CERT]...
 *
 * The CRL (DER, version 2, signed by ISSUER with SHA-256) lists COUNT
 * distinct random positive 16-byte serials (no entry extensions), plus the
 * serial of every CERT given (entry reason keyCompromise); lastUpdate is
 * now-1h, nextUpdate now+7d, every revocationDate now-2h; CRL extensions:
 * authorityKeyIdentifier (the issuer's subjectKeyIdentifier) and crlNumber
 * (the current time in seconds, so a newer CRL has a larger number).
 * Certificates and the key are read as PEM or DER. OUT is written through
 * OUT.tmp and renamed, so a reader never sees half a file. Silent on
 * success; exit status 1 on errors, 2 on usage errors.
 *
 * The entries are built with X509_CRL_add0_revoked and sorted once, at the
 * end (X509_CRL_sort). */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define SERIAL_LEN 16
#define MAX_COUNT 20000000UL /* about 3 GB of memory while building */
#define RAND_CHUNK (1U << 20)

static void
usage(void)
{
	fputs("usage: mkbigcrl ISSUER_CERT ISSUER_KEY COUNT OUT.der "
	      "[--revoke-serial-of CERT]...\n", stderr);
	exit(2);
}

static void
die(const char *what, const char *arg)
{
	if (arg != NULL)
		fprintf(stderr, "mkbigcrl: %s: %s\n", what, arg);
	else
		fprintf(stderr, "mkbigcrl: %s\n", what);
	ERR_print_errors_fp(stderr);
	exit(1);
}

/* A certificate, PEM or DER. */
static X509 *
load_cert(const char *path)
{
	BIO *bio = BIO_new_file(path, "rb");
	X509 *x;

	if (bio == NULL)
		die("cannot open", path);
	x = PEM_read_bio_X509(bio, NULL, NULL, NULL);
	if (x == NULL) {
		ERR_clear_error();
		if (BIO_reset(bio) != 0)
			die("cannot rewind", path);
		x = d2i_X509_bio(bio, NULL);
	}
	BIO_free(bio);
	if (x == NULL)
		die("not a certificate (PEM or DER)", path);
	return x;
}

/* A private key, PEM or DER (PKCS#8 or traditional), unencrypted. */
static EVP_PKEY *
load_key(const char *path)
{
	BIO *bio = BIO_new_file(path, "rb");
	EVP_PKEY *k;

	if (bio == NULL)
		die("cannot open", path);
	k = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
	if (k == NULL) {
		ERR_clear_error();
		if (BIO_reset(bio) != 0)
			die("cannot rewind", path);
		k = d2i_PrivateKey_bio(bio, NULL);
	}
	BIO_free(bio);
	if (k == NULL)
		die("not an unencrypted private key (PEM or DER)", path);
	return k;
}

static unsigned long
parse_count(const char *s)
{
	char *end;
	unsigned long n;

	if (*s < '0' || *s > '9')
		usage();
	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || n > MAX_COUNT) {
		fprintf(stderr, "mkbigcrl: COUNT must be 0 .. %lu\n", MAX_COUNT);
		exit(2);
	}
	return n;
}

static int
cmp_serial(const void *a, const void *b)
{
	return memcmp(a, b, SERIAL_LEN);
}

/* A random positive serial of exactly SERIAL_LEN content bytes: the first
 * byte is 0x01..0x7f, so DER needs no leading zero and drops no byte. */
static void
random_serial(unsigned char *s)
{
	if (RAND_bytes(s, SERIAL_LEN) != 1)
		die("RAND_bytes failed", NULL);
	s[0] &= 0x7f;
	if (s[0] == 0)
		s[0] = 0x01;
}

/* The serial's magnitude if it is a positive SERIAL_LEN-byte one, else NULL. */
static const unsigned char *
same_shape(const ASN1_INTEGER *serial)
{
	if (ASN1_STRING_type(serial) != V_ASN1_INTEGER || ASN1_STRING_length(serial) != SERIAL_LEN)
		return NULL;
	return ASN1_STRING_get0_data(serial);
}

/* COUNT sorted, pairwise distinct random serials, none equal to an extra's. */
static unsigned char *
make_serials(size_t count, STACK_OF(ASN1_INTEGER) *extras)
{
	unsigned char *buf = malloc(count ? count * SERIAL_LEN : 1);
	size_t done = 0;

	if (buf == NULL)
		die("out of memory", NULL);
	while (done < count * SERIAL_LEN) {
		size_t n = count * SERIAL_LEN - done;

		if (n > RAND_CHUNK)
			n = RAND_CHUNK;
		if (RAND_bytes(buf + done, (int)n) != 1)
			die("RAND_bytes failed", NULL);
		done += n;
	}
	for (size_t i = 0; i < count; i++) {
		unsigned char *s = buf + i * SERIAL_LEN;

		s[0] &= 0x7f;
		if (s[0] == 0)
			s[0] = 0x01;
	}
	/* Collisions are all but impossible; should one happen, replace the
	 * serial and check again. */
	for (;;) {
		size_t fixed = 0;

		qsort(buf, count, SERIAL_LEN, cmp_serial);
		for (size_t i = 1; i < count; i++) {
			if (memcmp(buf + (i - 1) * SERIAL_LEN, buf + i * SERIAL_LEN, SERIAL_LEN) == 0) {
				random_serial(buf + i * SERIAL_LEN);
				fixed++;
			}
		}
		for (int i = 0; i < sk_ASN1_INTEGER_num(extras); i++) {
			const unsigned char *m = same_shape(sk_ASN1_INTEGER_value(extras, i));
			unsigned char *hit;

			if (m == NULL || count == 0)
				continue;
			hit = bsearch(m, buf, count, SERIAL_LEN, cmp_serial);
			if (hit != NULL) {
				random_serial(hit);
				fixed++;
			}
		}
		if (fixed == 0)
			return buf;
	}
}

static void
add_entry(X509_CRL *crl, ASN1_INTEGER *serial, ASN1_TIME *when, ASN1_ENUMERATED *reason)
{
	X509_REVOKED *rev = X509_REVOKED_new();

	if (rev == NULL || !X509_REVOKED_set_serialNumber(rev, serial) ||
	    !X509_REVOKED_set_revocationDate(rev, when) ||
	    (reason != NULL && !X509_REVOKED_add1_ext_i2d(rev, NID_crl_reason, reason, 0, 0)) ||
	    !X509_CRL_add0_revoked(crl, rev))
		die("cannot add a CRL entry", NULL);
}

int
main(int argc, char **argv)
{
	const char *pos[4];
	int npos = 0;
	STACK_OF(ASN1_INTEGER) *extras = sk_ASN1_INTEGER_new_null();
	X509 *issuer;
	EVP_PKEY *key;
	unsigned long count;
	unsigned char *serials;
	time_t now = time(NULL);
	X509_CRL *crl;
	ASN1_TIME *last, *next, *revoked_at;
	ASN1_INTEGER *tmp, *number;
	ASN1_ENUMERATED *reason;
	X509V3_CTX ctx;
	X509_EXTENSION *aki;
	FILE *f;
	char *tmpname;
	size_t outlen;
	int written;

	if (extras == NULL)
		die("out of memory", NULL);
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--revoke-serial-of") == 0) {
			X509 *c;
			ASN1_INTEGER *s;
			int dup = 0;

			if (++i == argc)
				usage();
			c = load_cert(argv[i]);
			for (int j = 0; j < sk_ASN1_INTEGER_num(extras); j++)
				dup |= ASN1_INTEGER_cmp(sk_ASN1_INTEGER_value(extras, j),
				                        X509_get0_serialNumber(c)) == 0;
			if (!dup) {
				s = ASN1_INTEGER_dup(X509_get0_serialNumber(c));
				if (s == NULL || !sk_ASN1_INTEGER_push(extras, s))
					die("out of memory", NULL);
			}
			X509_free(c);
		} else if (argv[i][0] == '-' && argv[i][1] != '\0') {
			usage();
		} else {
			if (npos == 4)
				usage();
			pos[npos++] = argv[i];
		}
	}
	if (npos != 4)
		usage();
	count = parse_count(pos[2]);

	issuer = load_cert(pos[0]);
	key = load_key(pos[1]);
	if (X509_check_private_key(issuer, key) != 1)
		die("the key does not belong to the issuer certificate", pos[1]);

	crl = X509_CRL_new();
	last = ASN1_TIME_adj(NULL, now, 0, -3600L);
	next = ASN1_TIME_adj(NULL, now, 7, 0);
	revoked_at = ASN1_TIME_adj(NULL, now, 0, -7200L);
	tmp = ASN1_INTEGER_new();
	number = ASN1_INTEGER_new();
	reason = ASN1_ENUMERATED_new();
	if (crl == NULL || last == NULL || next == NULL || revoked_at == NULL || tmp == NULL ||
	    number == NULL || reason == NULL)
		die("out of memory", NULL);
	if (!X509_CRL_set_version(crl, X509_CRL_VERSION_2) ||
	    !X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer)) ||
	    !X509_CRL_set1_lastUpdate(crl, last) || !X509_CRL_set1_nextUpdate(crl, next))
		die("cannot set up the CRL", NULL);

	serials = make_serials((size_t)count, extras);
	for (size_t i = 0; i < (size_t)count; i++) {
		if (!ASN1_STRING_set(tmp, serials + i * SERIAL_LEN, SERIAL_LEN))
			die("out of memory", NULL);
		add_entry(crl, tmp, revoked_at, NULL);
	}
	free(serials);
	if (!ASN1_ENUMERATED_set(reason, CRL_REASON_KEY_COMPROMISE))
		die("out of memory", NULL);
	for (int i = 0; i < sk_ASN1_INTEGER_num(extras); i++)
		add_entry(crl, sk_ASN1_INTEGER_value(extras, i), revoked_at, reason);
	if (!X509_CRL_sort(crl))
		die("cannot sort the CRL", NULL);

	/* authorityKeyIdentifier, then crlNumber (the order openssl ca uses) */
	X509V3_set_ctx(&ctx, issuer, NULL, NULL, crl, 0);
	aki = X509V3_EXT_conf_nid(NULL, &ctx, NID_authority_key_identifier, "keyid:always");
	if (aki == NULL || !X509_CRL_add_ext(crl, aki, -1))
		die("cannot make the authorityKeyIdentifier (has the issuer a "
		    "subjectKeyIdentifier?)", NULL);
	X509_EXTENSION_free(aki);
	if (!ASN1_INTEGER_set_int64(number, (int64_t)now) ||
	    !X509_CRL_add1_ext_i2d(crl, NID_crl_number, number, 0, 0))
		die("cannot add the crlNumber", NULL);

	if (X509_CRL_sign(crl, key, EVP_sha256()) <= 0)
		die("cannot sign the CRL", NULL);

	outlen = strlen(pos[3]);
	tmpname = malloc(outlen + sizeof ".tmp");
	if (tmpname == NULL)
		die("out of memory", NULL);
	memcpy(tmpname, pos[3], outlen);
	memcpy(tmpname + outlen, ".tmp", sizeof ".tmp");
	f = fopen(tmpname, "wb");
	if (f == NULL) {
		fprintf(stderr, "mkbigcrl: cannot create %s: %s\n", tmpname, strerror(errno));
		return 1;
	}
	written = i2d_X509_CRL_fp(f, crl);
	if (fclose(f) != 0)
		written = 0;
	if (!written) {
		remove(tmpname);
		die("cannot write", tmpname);
	}
	if (rename(tmpname, pos[3]) != 0) {
		fprintf(stderr, "mkbigcrl: cannot rename %s to %s: %s\n", tmpname, pos[3],
		        strerror(errno));
		remove(tmpname);
		return 1;
	}

	free(tmpname);
	ASN1_ENUMERATED_free(reason);
	ASN1_INTEGER_free(number);
	ASN1_INTEGER_free(tmp);
	ASN1_TIME_free(revoked_at);
	ASN1_TIME_free(next);
	ASN1_TIME_free(last);
	X509_CRL_free(crl);
	EVP_PKEY_free(key);
	X509_free(issuer);
	sk_ASN1_INTEGER_pop_free(extras, ASN1_INTEGER_free);
	return 0;
}
