/* Fuzz target: the module↔helper protocol (proto.h) from both ends.
 * Input: a mode byte, then
 *   mode bit 0 clear: one frame body (type byte and fields) for
 *     piv_msg_parse, then every decoder of both sides over it: the
 *     helper's REQ_CERTS and REQ_SIGN (helper.c, a program, so its get
 *     sequences are repeated here), the module's LOG, CANDIDATE and
 *     END_CERTS (card.c, static there, repeated here) and SIGNED;
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

#include "card.h"
#include "fuzz_util.h"
#include "prove.h"
#include "proto.h"
#include "util.h"

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

/* helper.c do_certs */
static void
decode_req_certs(struct piv_msg *msg)
{
	char *module = NULL, *token_uri = NULL, *cert_uri = NULL;
	uint32_t card_wait = 0, debug = 0;
	struct piv_msg enc;

	msg->rpos = 0;
	if (piv_msg_get_str(msg, &module) == 0 && piv_msg_get_str(msg, &token_uri) == 0 &&
	    piv_msg_get_str(msg, &cert_uri) == 0 && piv_msg_get_u32(msg, &card_wait) == 0 &&
	    piv_msg_get_u32(msg, &debug) == 0 && piv_msg_end(msg) == 0) {
		piv_msg_init(&enc, PIV_MSG_REQ_CERTS);
		FUZZ_CHECK(piv_msg_put_str(&enc, module) == 0 && piv_msg_put_str(&enc, token_uri) == 0 &&
		           piv_msg_put_str(&enc, cert_uri) == 0 && piv_msg_put_u32(&enc, card_wait) == 0 &&
		           piv_msg_put_u32(&enc, debug) == 0, "REQ_CERTS does not encode");
		check_reencoded(msg, &enc, "REQ_CERTS decodes to another message");
	}
	free(module);
	free(token_uri);
	free(cert_uri);
}

/* helper.c do_sign; returns whether the helper would accept it. */
static bool
decode_req_sign(struct piv_msg *msg)
{
	uint32_t index = 0, pinpad = 0;
	char *pin = NULL, *kind = NULL, *hash_name = NULL;
	const uint8_t *challenge = NULL;
	size_t challenge_len = 0;
	enum piv_hash hash;
	struct piv_msg enc;
	bool ok = false;

	msg->rpos = 0;
	if (piv_msg_get_u32(msg, &index) == 0 && piv_msg_get_u32(msg, &pinpad) == 0 &&
	    piv_msg_get_str(msg, &pin) == 0 && piv_msg_get(msg, &challenge, &challenge_len) == 0 &&
	    piv_msg_get_str(msg, &kind) == 0 && piv_msg_get_str(msg, &hash_name) == 0 &&
	    piv_msg_end(msg) == 0) {
		piv_msg_init(&enc, PIV_MSG_REQ_SIGN);
		FUZZ_CHECK(piv_msg_put_u32(&enc, index) == 0 && piv_msg_put_u32(&enc, pinpad) == 0 &&
		           piv_msg_put_str(&enc, pin) == 0 &&
		           piv_msg_put(&enc, challenge, challenge_len) == 0 &&
		           piv_msg_put_str(&enc, kind) == 0 && piv_msg_put_str(&enc, hash_name) == 0,
		           "REQ_SIGN does not encode");
		check_reencoded(msg, &enc, "REQ_SIGN decodes to another message");
		ok = challenge_len > 0 && challenge_len <= 1024 &&
		     piv_hash_from_name(hash_name, &hash) == 0 &&
		     (strcmp(kind, "rsa") == 0 || strcmp(kind, "ec") == 0);
	}
	piv_free_secret(&pin);
	free(kind);
	free(hash_name);
	return ok;
}

/* card.c forward_log */
static void
decode_log(struct piv_msg *msg)
{
	uint32_t prio = 0;
	const uint8_t *text;
	size_t len;
	char esc[600];

	msg->rpos = 0;
	if (piv_msg_get_u32(msg, &prio) != 0 || piv_msg_get(msg, &text, &len) != 0)
		return;
	piv_escape(text, len, esc, sizeof(esc));
	FUZZ_CHECK(printable(esc), "an escaped log line is not log-safe");
}

/* card.c read_candidate */
static void
decode_candidate(struct piv_msg *msg)
{
	struct piv_card_candidate c;
	uint32_t index, n_extra;
	struct piv_msg enc;
	bool ok = false;

	memset(&c, 0, sizeof(c));
	msg->rpos = 0;
	if (piv_msg_get_u32(msg, &index) != 0 || index != 0 ||
	    piv_msg_get_str(msg, &c.token_label) != 0 ||
	    piv_msg_get_str(msg, &c.token_serial) != 0 ||
	    piv_msg_get_u32(msg, &c.token_flags) != 0 ||
	    piv_msg_get_dup(msg, &c.cert.data, &c.cert.len) != 0 ||
	    piv_msg_get_u32(msg, &n_extra) != 0 || n_extra > PIV_MAX_EXTRA_CERTS)
		goto out;
	for (uint32_t i = 0; i < n_extra; i++) {
		if (piv_msg_get_dup(msg, &c.extra[i].data, &c.extra[i].len) != 0)
			goto out;
		c.n_extra++;
	}
	ok = piv_msg_end(msg) == 0;
out:
	if (ok) {
		piv_msg_init(&enc, PIV_MSG_CANDIDATE);
		FUZZ_CHECK(piv_msg_put_u32(&enc, index) == 0 && piv_msg_put_str(&enc, c.token_label) == 0 &&
		           piv_msg_put_str(&enc, c.token_serial) == 0 &&
		           piv_msg_put_u32(&enc, c.token_flags) == 0 &&
		           piv_msg_put(&enc, c.cert.data, c.cert.len) == 0 &&
		           piv_msg_put_u32(&enc, (uint32_t)c.n_extra) == 0, "CANDIDATE does not encode");
		for (size_t i = 0; i < c.n_extra; i++)
			FUZZ_CHECK(piv_msg_put(&enc, c.extra[i].data, c.extra[i].len) == 0,
			           "CANDIDATE does not encode");
		check_reencoded(msg, &enc, "CANDIDATE decodes to another message");
	}
	free(c.token_label);
	free(c.token_serial);
	free(c.cert.data);
	for (size_t i = 0; i < c.n_extra; i++)
		free(c.extra[i].data);
}

/* card.c piv_card_open, END_CERTS */
static void
decode_end_certs(struct piv_msg *msg)
{
	uint32_t status;
	char *text = NULL;
	char message[256];

	msg->rpos = 0;
	if (piv_msg_get_u32(msg, &status) != 0 || piv_msg_get_str(msg, &text) != 0)
		return;
	piv_escape_str(text, message, sizeof(message));
	FUZZ_CHECK(printable(message), "an escaped helper message is not log-safe");
	free(text);
}

/* card.c piv_card_sign, SIGNED (the same sequence the module runs in
 * stream mode; here for the round trip) */
static void
decode_signed(struct piv_msg *msg)
{
	uint32_t status, flags, mechanism;
	uint8_t *sig = NULL;
	size_t sig_len = 0;
	char *text = NULL;
	struct piv_msg enc;

	msg->rpos = 0;
	if (piv_msg_get_u32(msg, &status) == 0 && piv_msg_get_u32(msg, &flags) == 0 &&
	    piv_msg_get_u32(msg, &mechanism) == 0 && piv_msg_get_dup(msg, &sig, &sig_len) == 0 &&
	    piv_msg_get_str(msg, &text) == 0 && piv_msg_end(msg) == 0) {
		piv_msg_init(&enc, PIV_MSG_SIGNED);
		FUZZ_CHECK(piv_msg_put_u32(&enc, status) == 0 && piv_msg_put_u32(&enc, flags) == 0 &&
		           piv_msg_put_u32(&enc, mechanism) == 0 && piv_msg_put(&enc, sig, sig_len) == 0 &&
		           piv_msg_put_str(&enc, text) == 0, "SIGNED does not encode");
		check_reencoded(msg, &enc, "SIGNED decodes to another message");
	}
	free(sig);
	free(text);
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
