/* What the libFuzzer targets share: a scratch directory on tmpfs, a small
 * PKI made in memory at startup (a CA, a leaf, a delegated OCSP responder
 * and a stranger), and the check that turns a broken promise of the
 * library into a crash libFuzzer keeps. */
#ifndef PIV_FUZZ_UTIL_H
#define PIV_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A promise of the API under test was broken: report and abort, so that
 * libFuzzer saves the input as a crash. */
#define FUZZ_CHECK(cond, what) \
	do { if (!(cond)) fuzz_fail(__FILE__, __LINE__, (what)); } while (0)
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));
/* The harness itself could not do its part (not a finding): report with
 * OpenSSL's error queue and exit 2. */
void fuzz_harness_error(const char *what) __attribute__((noreturn));

/* A private directory (on /dev/shm when there is one: the code under test
 * fsyncs every file it writes), removed at exit. */
const char *fuzz_tmpdir(void);
/* DIR/NAME in a static buffer of the caller's. */
void fuzz_path(char *out, size_t out_size, const char *name);
void fuzz_write_file(const char *path, const void *data, size_t len);

/* data[0..len) and a NUL, malloc'd (the bytes may hold NULs of their own). */
char *fuzz_strndup(const uint8_t *data, size_t len);

struct fuzz_pki {
	EVP_PKEY *ca_key;
	X509 *ca;            /* self-signed, keyCertSign and cRLSign */
	EVP_PKEY *leaf_key;
	X509 *leaf;          /* issued by ca, serial 0x1234, no AIA or CDP */
	EVP_PKEY *responder_key;
	X509 *responder;     /* issued by ca, id-kp-OCSPSigning */
	EVP_PKEY *rogue_key;
	X509 *rogue;         /* self-signed, the same subject as ca */
	X509_STORE *store;   /* trusts ca */
	STACK_OF(X509) *chain; /* leaf, ca */
};

/* Built once; exits the process (not the library under test) when
 * OpenSSL cannot build it. */
const struct fuzz_pki *fuzz_pki(void);

/* A certificate of kind "ec256", "ec384" or "rsa2048" issued by the PKI's
 * CA, with its key. */
X509 *fuzz_make_cert(const char *kind, const char *cn, long serial, int is_ca,
                     const char *extra_eku, EVP_PKEY **key_out);

#endif
