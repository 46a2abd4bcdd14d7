/* PKCS#11 access for the card helper: loading modules through p11-kit,
 * finding PIV-like tokens and their certificates, logging in, signing.
 * Only the helper links this; the PAM process never loads PKCS#11 code. */
#ifndef PIV_P11_H
#define PIV_P11_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <p11-kit/p11-kit.h>
#include <p11-kit/pkcs11.h>

#include "wire/proto.h"
#include "pki/prove.h"
#include "common/util.h"

typedef void (*p11_log_fn)(void *ud, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

struct p11_ctx {
	CK_FUNCTION_LIST **modules;   /* NULL-terminated, initialized */
	CK_FUNCTION_LIST **loaded;    /* what must be released */
	CK_FUNCTION_LIST *single;     /* the one module in use, initialized */
	bool all_initialized;         /* loaded came from load_and_initialize */
	p11_log_fn log;
	void *ud;
};

struct p11_cand {
	CK_FUNCTION_LIST *module;
	CK_SLOT_ID slot;
	char label[33];
	char serial[17];
	CK_FLAGS token_flags;
	CK_BYTE id[64];
	CK_ULONG id_len;
	struct piv_blob cert;
	struct piv_blob extra[PIV_MAX_EXTRA_CERTS];
	size_t n_extra;
};

struct p11_sign_out {
	uint32_t status;          /* enum piv_helper_status */
	CK_FLAGS token_flags;     /* after the attempt */
	CK_MECHANISM_TYPE mechanism;
	uint8_t *sig;
	size_t sig_len;
	char message[200];
};

/* Load "p11-kit" (every registered module that is not a trust-policy
 * module), a module path, or a registered module's name. */
int p11_load(struct p11_ctx *ctx, const char *module, p11_log_fn log, void *ud);
void p11_unload(struct p11_ctx *ctx);

/* A space-padded CK_UTF8CHAR field (label, serial) as a C string. */
void p11_copy_padded(char *dst, size_t dst_size, const unsigned char *src, size_t src_size);

/* Find up to max candidates: tokens matching token_uri (NULL = any) that
 * hold certificates matching cert_uri. *tokens_seen counts the matching
 * tokens, so "no card" and "card without certificate" can be told apart. */
int p11_find(struct p11_ctx *ctx, const char *token_uri, const char *cert_uri,
             struct p11_cand *cands, size_t max, size_t *n, size_t *tokens_seen);
void p11_cand_free(struct p11_cand *cand);

/* Log in (pin, or the PIN pad when pin is NULL) and sign challenge with the
 * private key that has the certificate's CKA_ID. */
void p11_sign(struct p11_ctx *ctx, const struct p11_cand *cand, const char *pin,
              const uint8_t *challenge, size_t challenge_len, bool is_ec,
              enum piv_hash hash, struct p11_sign_out *out);

/* "CKR_PIN_INCORRECT" etc.; hex for values it does not know. */
const char *p11_rv_name(CK_RV rv, char *buf, size_t size);

#endif
