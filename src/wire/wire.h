/* The messages of the module↔helper conversation (proto.h), each encoded
 * and decoded in one place for both ends: the module (card.c), the helper
 * (helper.c) and the fuzzer (tests/fuzz/fuzz_proto.c) call these.
 *
 * A decoder reads every field, checks each value against what the other
 * end may send, and requires the end of the message; it returns 0, or -1
 * with nothing left allocated in *out. An encoder returns 0, or -1 when
 * memory runs out (the message is then to be cleared). */
#ifndef PIV_WIRE_H
#define PIV_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wire/proto.h"
#include "pki/prove.h"
#include "common/util.h"

#define PIV_WIRE_MAX_CARD_WAIT 3600   /* seconds */
#define PIV_WIRE_MAX_CHALLENGE 1024   /* bytes */

/* M→H REQ_CERTS */
struct piv_wire_certs_req {
	char *module;
	char *token_uri;   /* "" = any token */
	char *cert_uri;
	uint32_t card_wait;
	bool debug;
};
int piv_wire_put_certs_req(struct piv_msg *msg, const char *module, const char *token_uri,
                           const char *cert_uri, uint32_t card_wait, bool debug);
int piv_wire_get_certs_req(struct piv_msg *msg, struct piv_wire_certs_req *out);
void piv_wire_certs_req_free(struct piv_wire_certs_req *req);

/* H→M LOG: the priority is clamped to LOG_ERR..LOG_DEBUG (the helper does
 * not get to raise alerts) and the text escaped for a log line. */
int piv_wire_put_log(struct piv_msg *msg, int prio, const char *text);
int piv_wire_get_log(struct piv_msg *msg, int *prio, char *text, size_t text_size);

/* H→M CANDIDATE: one certificate the card holds, with the token it is on.
 * The index is the candidate's place in the order they are sent. */
struct piv_card_candidate {
	char *token_label;
	char *token_serial;
	uint32_t token_flags;   /* CK_TOKEN_INFO.flags when the card was read */
	struct piv_blob cert;
	struct piv_blob extra[PIV_MAX_EXTRA_CERTS];
	size_t n_extra;
};
int piv_wire_put_candidate(struct piv_msg *msg, uint32_t index,
                           const struct piv_card_candidate *c);
/* Only a message whose index is want_index is accepted. */
int piv_wire_get_candidate(struct piv_msg *msg, uint32_t want_index,
                           struct piv_card_candidate *out);
void piv_card_candidate_free(struct piv_card_candidate *c);

/* H→M END_CERTS: the helper's status and its reason, escaped. */
int piv_wire_put_end_certs(struct piv_msg *msg, uint32_t status, const char *message);
int piv_wire_get_end_certs(struct piv_msg *msg, uint32_t *status, char *message,
                           size_t message_size);

/* M→H REQ_SIGN */
struct piv_sign_request {
	size_t index;
	bool pinpad;
	const char *pin;       /* NULL with pinpad */
	const uint8_t *challenge;
	size_t challenge_len;
	bool is_ec;
	enum piv_hash hash;
};
int piv_wire_put_sign_req(struct piv_msg *msg, const struct piv_sign_request *req);
/* *pin is a copy to be wiped with piv_free_secret (NULL with a PIN pad,
 * where the wire holds an empty PIN); req->pin points to it and
 * req->challenge into msg. */
int piv_wire_get_sign_req(struct piv_msg *msg, struct piv_sign_request *req, char **pin);

/* H→M SIGNED */
struct piv_sign_result {
	uint32_t helper_status;      /* enum piv_helper_status */
	uint32_t token_flags;        /* after the login attempt */
	uint32_t mechanism;          /* CKM_ used */
	uint8_t *sig;                /* at most PIV_MAX_SIG_LEN bytes */
	size_t sig_len;
	char message[256];           /* escaped */
};
int piv_wire_put_signed(struct piv_msg *msg, uint32_t status, uint32_t token_flags,
                        uint32_t mechanism, const uint8_t *sig, size_t sig_len,
                        const char *message);
int piv_wire_get_signed(struct piv_msg *msg, struct piv_sign_result *res);
void piv_sign_result_free(struct piv_sign_result *res);

#endif
