/* OpenSSL's FIPS provider, and the strength of the signatures pam_piv
 * accepts from the PKI. On every host, a certificate chain, a CRL or an OCSP
 * response is accepted only with at least 112-bit security: SHA-256 or
 * stronger, RSA of 2048 bits or more, EC P-256 or stronger (NIST SP
 * 800-131A; what OpenSSL's FIPS provider itself approves). SHA-1 in an OCSP
 * CertID names a certificate and signs nothing, so it stays. */
#ifndef PIV_FIPS_H
#define PIV_FIPS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/x509.h>

/* X509_VERIFY_PARAM_set_auth_level: 112 bits, no SHA-1 signatures */
#define PIV_AUTH_LEVEL 2
#define PIV_MIN_SECURITY_BITS 112

enum piv_fips_state {
	PIV_FIPS_OFF,    /* no FIPS provider in this process */
	PIV_FIPS_LOADED, /* loaded, but fetches may take other providers' algorithms */
	PIV_FIPS_ON,     /* loaded and default_properties = fips=yes */
};

/* What this process's OpenSSL does (its configuration, /etc/ssl/openssl.cnf
 * or OPENSSL_CONF, is read when libcrypto starts). */
enum piv_fips_state piv_fips_state(void);
const char *piv_fips_state_text(enum piv_fips_state state);

/* fips_mode = required: 0 when the FIPS provider is in force, else -1 with
 * why. */
int piv_fips_check(bool required, char *why, size_t why_size);

/* 0 when a signature made with alg by key has at least 112-bit security,
 * else -1 with why naming the weakness. */
int piv_signature_strong(const X509_ALGOR *alg, EVP_PKEY *key, char *why, size_t why_size);

#endif
