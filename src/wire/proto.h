/* The wire protocol between the PAM module and the card helper.
 *
 * A frame is: u32 length (big-endian, counts what follows, at most
 * PIV_PROTO_MAX_FRAME), u8 type, then fields; each field is a u32 length
 * (big-endian) and that many bytes. Integers travel as 4-byte fields.
 * Conversation, in order (M = module, H = helper):
 *
 *   M→H REQ_CERTS  module, token-uri ("" = any), cert-uri, card-wait, debug
 *   H→M LOG*       priority, text                 (any time)
 *   H→M WAITING    (no fields)                    (no card yet; card_wait)
 *   H→M CANDIDATE* index, token-label, token-serial, token-flags, cert-der,
 *                  extra-count, extra-cert-der...
 *   H→M END_CERTS  helper-status, message
 *   M→H REQ_SIGN   index, pinpad, pin, challenge, key-kind ("rsa"|"ec"),
 *                  hash ("sha256"|"sha384")
 *   H→M SIGNED     helper-status, token-flags-after, mechanism, signature,
 *                  message
 *   M→H QUIT       (or the module closes the socket)
 *
 * The helper never decides whether a login succeeds: it reports what the
 * card said, and the module verifies the signature itself. */
#ifndef PIV_PROTO_H
#define PIV_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define PIV_PROTO_MAX_FRAME (1024 * 1024)

enum piv_msg_type {
	PIV_MSG_REQ_CERTS = 'R',
	PIV_MSG_LOG = 'L',
	PIV_MSG_WAITING = 'W',
	PIV_MSG_CANDIDATE = 'C',
	PIV_MSG_END_CERTS = 'E',
	PIV_MSG_REQ_SIGN = 'S',
	PIV_MSG_SIGNED = 'G',
	PIV_MSG_QUIT = 'Q',
};

/* What the helper reports (END_CERTS, SIGNED). */
enum piv_helper_status {
	PIV_H_OK = 0,
	PIV_H_NO_CARD = 1,       /* no token matched, or module would not load */
	PIV_H_PIN_INCORRECT = 2,
	PIV_H_PIN_LOCKED = 3,
	PIV_H_PIN_LEN = 4,       /* PIN rejected for its length; no try used */
	PIV_H_NO_KEY = 5,        /* no private key with the certificate's CKA_ID */
	PIV_H_ERROR = 6,
};

/* Mechanism families reported back in SIGNED (the CKM_ value is also sent;
 * this is what the module verifies against). */
#define PIV_MAX_CANDIDATES 8
#define PIV_MAX_EXTRA_CERTS 16
#define PIV_MAX_SIG_LEN 1024

enum piv_proto_rc {
	PIV_PROTO_OK = 0,
	PIV_PROTO_EOF = -1,      /* peer closed cleanly between frames */
	PIV_PROTO_TIMEOUT = -2,
	PIV_PROTO_ERROR = -3,    /* I/O error, malformed or oversized frame */
};

struct piv_msg {
	uint8_t type;
	uint8_t *buf;   /* fields, not including length and type */
	size_t len;
	size_t cap;
	size_t rpos;    /* read cursor for the get functions */
};

void piv_msg_init(struct piv_msg *msg, uint8_t type);
/* Wipes the buffer (it may hold a PIN) and frees it. */
void piv_msg_clear(struct piv_msg *msg);

int piv_msg_put(struct piv_msg *msg, const void *data, size_t len);
int piv_msg_put_str(struct piv_msg *msg, const char *s);
int piv_msg_put_u32(struct piv_msg *msg, uint32_t v);

/* Readers: 0 on success, -1 when the next field is missing or malformed.
 * get() points into the message; get_str() copies and refuses embedded NUL. */
int piv_msg_get(struct piv_msg *msg, const uint8_t **data, size_t *len);
int piv_msg_get_u32(struct piv_msg *msg, uint32_t *v);
int piv_msg_get_str(struct piv_msg *msg, char **s);
int piv_msg_get_dup(struct piv_msg *msg, uint8_t **data, size_t *len);
/* 0 when every field has been read. */
int piv_msg_end(const struct piv_msg *msg);

/* Send or receive one frame. deadline_ms is an absolute piv_now_ms() time,
 * or -1 to wait without a bound. recv fills msg (piv_msg_clear it later). */
int piv_msg_send(int fd, const struct piv_msg *msg, int64_t deadline_ms);
int piv_msg_recv(int fd, struct piv_msg *msg, int64_t deadline_ms);

/* Parse a frame body (type byte + fields) that is already in memory; used
 * by piv_msg_recv and by the fuzzer. */
int piv_msg_parse(struct piv_msg *msg, const uint8_t *body, size_t len);

#endif
