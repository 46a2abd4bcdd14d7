/* OpenSSH public keys and signatures for the keys of X.509 certificates:
 * the wire-format key blob and authorized_keys line, sshd's SSH_AUTH_INFO_0,
 * SSH signature verification, and the SSHSIG "signed data" that keeps what
 * an agent signs for us apart from any SSH session signature. */
#ifndef PIV_SSHKEY_H
#define PIV_SSHKEY_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* Largest key blob accepted from outside (OpenSSH: SSH_MAX_PUBKEY_BYTES). */
#define PIV_SSH_MAX_BLOB (16 * 1024)
/* Largest SSH_AUTH_INFO_0 value read; anything longer is refused. */
#define PIV_SSH_MAX_AUTH_INFO (256 * 1024)

/* ---- SSH wire encoding (RFC 4251 §5), shared with agent.c ---------- */

/* A growing buffer with a sticky error: after a failed put (allocation,
 * cap) every later put is a no-op and failed stays set, so a sequence of
 * puts is checked once at the end. Contents are wiped when freed. */
struct piv_ssh_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
	size_t max;  /* 0: PIV_SSH_MAX_BUF */
	int failed;
};
#define PIV_SSH_MAX_BUF (1024 * 1024)

void piv_ssh_buf_init(struct piv_ssh_buf *b, size_t max);
void piv_ssh_buf_free(struct piv_ssh_buf *b);
void piv_ssh_put_raw(struct piv_ssh_buf *b, const void *p, size_t len);
void piv_ssh_put_u8(struct piv_ssh_buf *b, uint8_t v);
void piv_ssh_put_u32(struct piv_ssh_buf *b, uint32_t v);
void piv_ssh_put_string(struct piv_ssh_buf *b, const void *p, size_t len);
void piv_ssh_put_cstring(struct piv_ssh_buf *b, const char *s);
/* Non-negative big-endian magnitude (leading zeros allowed in the input)
 * as an RFC 4251 mpint: minimal, 0x00 prefix when the top bit is set. */
void piv_ssh_put_mpint_bytes(struct piv_ssh_buf *b, const uint8_t *mag, size_t len);
/* Hand the bytes over (caller frees with free()); -1 if any put failed. */
int piv_ssh_buf_take(struct piv_ssh_buf *b, uint8_t **out, size_t *out_len);

/* A bounds-checked reader over bytes that came from outside. Every get
 * returns 0 or -1 and never reads past the end. */
struct piv_ssh_reader {
	const uint8_t *p;
	size_t left;
};

void piv_ssh_reader_init(struct piv_ssh_reader *r, const uint8_t *p, size_t len);
int piv_ssh_get_u8(struct piv_ssh_reader *r, uint8_t *v);
int piv_ssh_get_u32(struct piv_ssh_reader *r, uint32_t *v);
/* A string: *p points into the input (not NUL-terminated). */
int piv_ssh_get_string(struct piv_ssh_reader *r, const uint8_t **p, size_t *len);
/* A string that must equal s exactly. */
int piv_ssh_get_expect(struct piv_ssh_reader *r, const char *s);
/* 0 when every byte has been consumed. */
int piv_ssh_reader_end(const struct piv_ssh_reader *r);

/* ---- keys --------------------------------------------------------- */

/* The SSH public key blob (RFC 4253 §6.6, RFC 5656 §3.1) of RSA
 * 2048–16384 bits ("ssh-rsa") or EC P-256/P-384 ("ecdsa-sha2-nistp256",
 * "ecdsa-sha2-nistp384", uncompressed point). Any other key: -1.
 * *blob is malloc'd. */
int piv_ssh_pubkey_blob(EVP_PKEY *pkey, uint8_t **blob, size_t *len);

/* "TYPE BASE64" or "TYPE BASE64 COMMENT" for authorized_keys. The comment
 * (NULL or "" for none; at most 4096 bytes are used) keeps printable ASCII
 * other than space; every other byte becomes '_'. *line is malloc'd. */
int piv_ssh_pubkey_line(EVP_PKEY *pkey, const char *comment, char **line);

/* Parse exactly "TYPE BASE64" (one space, nothing after): canonical
 * base64 of a blob of at most PIV_SSH_MAX_BLOB bytes whose first string is
 * TYPE. *blob is malloc'd. -1 on any malformed input. */
int piv_ssh_parse_pubkey(const char *type_and_b64, uint8_t **blob, size_t *len);

/* sshd's SSH_AUTH_INFO_0: one line per method that succeeded,
 * "METHOD[/SUBMETHOD][ KEYTYPE BASE64][ INFO]\n" (OpenSSH
 * auth2_update_session_info; a FIDO key's line ends in
 * " signature count = N"). For each line whose method word is exactly
 * "publickey" (sshd records the host-bound variant under this name too),
 * fn gets the key blob; certificate keys give the whole certificate blob.
 * *n_publickey counts those lines. -1 (fail closed) if the value is too
 * long or any publickey line is malformed; fn may already have been
 * called for earlier lines. */
int piv_ssh_auth_info_keys(const char *auth_info,
                           void (*fn)(void *ud, const uint8_t *blob, size_t len), void *ud,
                           size_t *n_publickey);

/* ---- signatures ---------------------------------------------------- */

/* 1 only if sig_blob (string algorithm, string signature, nothing after)
 * is a valid signature of data by pkey: RSA with "rsa-sha2-256" or
 * "rsa-sha2-512" (PKCS#1 v1.5, signature exactly the modulus size; never
 * "ssh-rsa"/SHA-1), ECDSA P-256 with "ecdsa-sha2-nistp256"/SHA-256, P-384
 * with "ecdsa-sha2-nistp384"/SHA-384 (mpint r, mpint s: positive, minimal,
 * at most the field size, nothing after). 0 otherwise. */
int piv_ssh_verify(EVP_PKEY *pkey, const uint8_t *sig_blob, size_t sig_len,
                   const uint8_t *data, size_t data_len);

/* PROTOCOL.sshsig signed data: "SSHSIG" || string namespace ||
 * string "" || string "sha512" || string SHA-512(message). The namespace
 * must be non-empty. *out is malloc'd. */
int piv_sshsig_signed_data(const char *sig_namespace, const uint8_t *message,
                           size_t message_len, uint8_t **out, size_t *out_len);

#endif
