/* Fuzz target: the module↔helper protocol (proto.h) from both ends.
 * Input: a mode byte, then
 *   mode bit 0 clear: one frame body (type byte and fields) for
 *     piv_msg_parse, then every decoder of both sides over it (wire.h,
 *     the ones helper.c and card.c call): REQ_CERTS, REQ_SIGN, LOG,
 *     CANDIDATE, END_CERTS and SIGNED;
 *   mode bit 0 set: what a helper writes on the socket (whole frames with
 *     their lengths), read by the module's own piv_card_sign, whose
 *     signature is then checked like auth.c does (bits 1-2: the scheme).
 * A message a decoder accepts must encode back to the same bytes, and a
 * frame must survive piv_msg_send/piv_msg_recv unchanged. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "wire/card.h"
#include "fuzz_util.h"
#include "pki/prove.h"
#include "wire/proto.h"
#include "common/util.h"
#include "wire/wire.h"

static X509 *ec_cert, *rsa_cert;

static bool
printable(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
			return false;
	return true;
}

/* msg's fields equal what enc holds. */
static void
check_reencoded(const struct piv_msg *msg, struct piv_msg *enc, const char *what)
{
	FUZZ_CHECK(enc->len == msg->len && (msg->len == 0 || memcmp(enc->buf, msg->buf, msg->len) == 0),
	           what);
	piv_msg_clear(enc);
}

static void
decode_req_certs(struct piv_msg *msg)
{
	struct piv_wire_certs_req r;
	struct piv_msg enc;

	msg->rpos = 0;
	if (piv_wire_get_certs_req(msg, &r) != 0)
		return;
	FUZZ_CHECK(r.card_wait <= PIV_WIRE_MAX_CARD_WAIT, "REQ_CERTS: card_wait out of range");
	FUZZ_CHECK(piv_wire_put_certs_req(&enc, r.module, r.token_uri, r.cert_uri, r.card_wait,
	                                  r.debug) == 0, "REQ_CERTS does not encode");
	check_reencoded(msg, &enc, "REQ_CERTS decodes to another message");
	piv_wire_certs_req_free(&r);
}

/* Returns whether the helper accepts it. */
static bool
decode_req_sign(struct piv_msg *msg)
{
	struct piv_sign_request req;
	struct piv_msg enc;
	char *pin = NULL;

	msg->rpos = 0;
	if (piv_wire_get_sign_req(msg, &req, &pin) != 0) {
		FUZZ_CHECK(pin == NULL, "a refused REQ_SIGN kept its PIN");
		return false;
	}
	FUZZ_CHECK(req.challenge_len > 0 && req.challenge_len <= PIV_WIRE_MAX_CHALLENGE,
	           "REQ_SIGN: challenge length out of range");
	FUZZ_CHECK(req.pinpad ? req.pin == NULL : req.pin == pin, "REQ_SIGN: PIN and PIN pad disagree");
	FUZZ_CHECK(piv_wire_put_sign_req(&enc, &req) == 0, "REQ_SIGN does not encode");
	check_reencoded(msg, &enc, "REQ_SIGN decodes to another message");
	piv_free_secret(&pin);
	return true;
}

static void
decode_log(struct piv_msg *msg)
{
	char esc[600];
	int prio;

	msg->rpos = 0;
	if (piv_wire_get_log(msg, &prio, esc, sizeof(esc)) != 0)
		return;
	FUZZ_CHECK(prio >= 3 && prio <= 7, "the helper raised a log priority above LOG_ERR");
	FUZZ_CHECK(printable(esc), "an escaped log line is not log-safe");
}

static void
decode_candidate(struct piv_msg *msg)
{
	struct piv_card_candidate c;
	struct piv_msg enc;

	msg->rpos = 0;
	if (piv_wire_get_candidate(msg, 0, &c) != 0) {
		FUZZ_CHECK(c.token_label == NULL && c.cert.data == NULL && c.n_extra == 0,
		           "a refused CANDIDATE left memory behind");
		return;
	}
	FUZZ_CHECK(c.n_extra <= PIV_MAX_EXTRA_CERTS, "CANDIDATE: too many extra certificates");
	FUZZ_CHECK(piv_wire_put_candidate(&enc, 0, &c) == 0, "CANDIDATE does not encode");
	check_reencoded(msg, &enc, "CANDIDATE decodes to another message");
	piv_card_candidate_free(&c);
}

static void
decode_end_certs(struct piv_msg *msg)
{
	uint32_t status;
	char message[256];

	msg->rpos = 0;
	if (piv_wire_get_end_certs(msg, &status, message, sizeof(message)) != 0)
		return;
	FUZZ_CHECK(printable(message), "an escaped helper message is not log-safe");
}

static void
decode_signed(struct piv_msg *msg)
{
	struct piv_sign_result res;
	struct piv_msg enc;

	msg->rpos = 0;
	if (piv_wire_get_signed(msg, &res) != 0) {
		FUZZ_CHECK(res.sig == NULL && res.sig_len == 0, "a refused SIGNED left memory behind");
		return;
	}
	FUZZ_CHECK(res.sig_len <= PIV_MAX_SIG_LEN && printable(res.message),
	           "SIGNED: an oversized signature or an unsafe message accepted");
	FUZZ_CHECK(piv_wire_put_signed(&enc, res.helper_status, res.token_flags, res.mechanism,
	                               res.sig, res.sig_len, res.message) == 0,
	           "SIGNED does not encode");
	piv_msg_clear(&enc);
	piv_sign_result_free(&res);
}

/* The frame goes through a socket and comes back the same. */
static void
check_send_recv(const struct piv_msg *msg)
{
	struct piv_msg back;
	int sv[2];

	if (msg->len > 64 * 1024 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return;
	memset(&back, 0, sizeof(back));
	FUZZ_CHECK(piv_msg_send(sv[0], msg, piv_now_ms() + 5000) == PIV_PROTO_OK,
	           "a parsed frame cannot be sent");
	FUZZ_CHECK(piv_msg_recv(sv[1], &back, piv_now_ms() + 5000) == PIV_PROTO_OK,
	           "a sent frame cannot be received");
	FUZZ_CHECK(back.type == msg->type && back.len == msg->len &&
	           (msg->len == 0 || memcmp(back.buf, msg->buf, msg->len) == 0),
	           "a frame changed on its way through the socket");
	piv_msg_clear(&back);
	close(sv[0]);
	close(sv[1]);
}

static void
one_frame(const uint8_t *body, size_t len)
{
	struct piv_msg msg;

	memset(&msg, 0, sizeof(msg));
	if (piv_msg_parse(&msg, body, len) != PIV_PROTO_OK) {
		FUZZ_CHECK(len == 0 || len > PIV_PROTO_MAX_FRAME, "a frame body was refused");
		piv_msg_clear(&msg);
		return;
	}
	FUZZ_CHECK(msg.type == body[0] && msg.len == len - 1, "piv_msg_parse lost bytes");
	decode_req_certs(&msg);
	decode_req_sign(&msg);
	decode_log(&msg);
	decode_candidate(&msg);
	decode_end_certs(&msg);
	decode_signed(&msg);
	check_send_recv(&msg);
	piv_msg_clear(&msg);
}

static void
card_log(void *ud, int prio, const char *text)
{
	(void)ud;
	FUZZ_CHECK(prio >= 0 && prio <= 7, "a log priority out of range");
	FUZZ_CHECK(printable(text), "a card log line is not log-safe");
}

static void
helper_stream(uint8_t mode, const uint8_t *stream, size_t len)
{
	static const uint8_t challenge[PIV_CHALLENGE_LEN] = { 1, 2, 3, 4 };
	struct piv_sign_request req = {
		.index = 0, .pin = "123456", .challenge = challenge,
		.challenge_len = sizeof(challenge), .is_ec = (mode & 2) != 0,
		.hash = (mode & 4) ? PIV_HASH_SHA384 : PIV_HASH_SHA256,
	};
	struct piv_sign_result res;
	struct piv_card card;
	struct piv_msg sent;
	enum piv_status st;
	int sv[2];

	/* More than a socket buffer would block the writer: nothing is
	 * reading yet. */
	if (len > 128 * 1024 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
		return;
	if (len > 0 && write(sv[1], stream, len) != (ssize_t)len) {
		close(sv[0]);
		close(sv[1]);
		return;
	}
	shutdown(sv[1], SHUT_WR); /* the helper said all it will say */
	memset(&card, 0, sizeof(card));
	card.pid = -1;
	card.fd = sv[0];
	card.n_cand = 1;
	card.budget_ms = 5000;
	card.log = card_log;
	st = piv_card_sign(&card, &req, &res);
	FUZZ_CHECK(st == PIV_OK || st == PIV_E_HELPER, "unexpected status from piv_card_sign");
	if (st == PIV_OK) {
		X509 *cert = req.is_ec ? ec_cert : rsa_cert;
		enum piv_sig_scheme scheme = req.is_ec ? PIV_SIG_ECDSA_RAW
		                             : (mode & 8) ? PIV_SIG_RSA_PSS : PIV_SIG_RSA_PKCS1;
		FUZZ_CHECK(res.sig_len <= PIV_MAX_SIG_LEN && printable(res.message),
		           "an oversized signature or unsafe message accepted");
		FUZZ_CHECK(piv_verify_signature(cert, scheme, req.hash, challenge, sizeof(challenge),
		                                res.sig, res.sig_len) == 0,
		           "a signature made up by the fuzzer verifies");
		piv_sign_result_free(&res);
	}
	/* What the module sent must be what the helper accepts. */
	memset(&sent, 0, sizeof(sent));
	FUZZ_CHECK(piv_msg_recv(sv[1], &sent, piv_now_ms() + 5000) == PIV_PROTO_OK &&
	           sent.type == PIV_MSG_REQ_SIGN && decode_req_sign(&sent),
	           "the helper would refuse the module's REQ_SIGN");
	piv_msg_clear(&sent);
	card.broken = true; /* no QUIT, no waiting for a helper that is not there */
	piv_card_close(&card);
	close(sv[1]);
	ERR_clear_error();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	ec_cert = fuzz_make_cert("ec256", "card-ec", 10, 0, NULL, NULL);
	rsa_cert = fuzz_make_cert("rsa2048", "card-rsa", 11, 0, NULL, NULL);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	if (data[0] & 1)
		helper_stream(data[0], data + 1, size - 1);
	else
		one_frame(data + 1, size - 1);
	return 0;
}
