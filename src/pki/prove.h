/* Proof of possession: the challenge, the encodings a card's raw mechanisms
 * need (PKCS#1 DigestInfo, ECDSA r||s ↔ DER), and verification of the
 * card's signature with the validated certificate's public key. */
#ifndef PIV_PROVE_H
#define PIV_PROVE_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#define PIV_CHALLENGE_LEN 32

enum piv_hash { PIV_HASH_SHA256, PIV_HASH_SHA384 };

/* How the card signed, as the module verifies it. */
enum piv_sig_scheme {
	PIV_SIG_RSA_PKCS1,  /* CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS + DigestInfo */
	PIV_SIG_RSA_PSS,    /* salt = hash length, MGF1 with the same hash */
	PIV_SIG_ECDSA_RAW,  /* r||s, as PKCS#11 returns it */
};

size_t piv_hash_len(enum piv_hash hash);
const char *piv_hash_name(enum piv_hash hash);
int piv_hash_from_name(const char *name, enum piv_hash *hash);

/* digest = H(data). out must hold piv_hash_len(hash). */
int piv_digest(enum piv_hash hash, const uint8_t *data, size_t len, uint8_t *out);

/* DER DigestInfo ‖ digest for CKM_RSA_PKCS. digest_len must be the hash's
 * length; out_size ≥ 19 + 48. Returns the length, or 0 on error. */
size_t piv_digest_info(enum piv_hash hash, const uint8_t *digest, size_t digest_len,
                       uint8_t *out, size_t out_size);

/* ECDSA r||s (each field_len bytes, big-endian) to a DER ECDSA-Sig-Value.
 * Rejects a wrong length and zero r or s. *der is OPENSSL_malloc'd. */
int piv_ecdsa_raw_to_der(const uint8_t *raw, size_t raw_len, size_t field_len,
                         uint8_t **der, size_t *der_len);

/* Which key the certificate holds, and what the module asks the card for.
 * Returns 0 for RSA 2048–4096 and EC P-256/P-384, -1 otherwise. */
int piv_cert_key_kind(X509 *cert, int *is_ec, enum piv_hash *hash, size_t *ec_field_len,
                      int *bits);

/* 1 when sig is a valid signature of challenge by cert's key under scheme,
 * 0 when it is not (or cannot be checked). */
int piv_verify_signature(X509 *cert, enum piv_sig_scheme scheme, enum piv_hash hash,
                         const uint8_t *challenge, size_t challenge_len,
                         const uint8_t *sig, size_t sig_len);

/* Fresh challenge from the host CSPRNG (never the card's). */
int piv_make_challenge(uint8_t *out, size_t len);

#endif
