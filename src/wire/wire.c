/* The messages of the module↔helper conversation, both directions; see
 * wire.h. Each decoder is the only reader of its message anywhere. */
#include "config.h"
#include "wire/wire.h"
#include "common/util.h"

#include <stdlib.h>
#include <string.h>
#include <syslog.h>

/* ---- M→H REQ_CERTS ------------------------------------------------- */

int
piv_wire_put_certs_req(struct piv_msg *msg, const char *module, const char *token_uri,
                       const char *cert_uri, uint32_t card_wait, bool debug)
{
	piv_msg_init(msg, PIV_MSG_REQ_CERTS);
	if (piv_msg_put_str(msg, module) != 0 || piv_msg_put_str(msg, token_uri) != 0 ||
	    piv_msg_put_str(msg, cert_uri) != 0 || piv_msg_put_u32(msg, card_wait) != 0 ||
	    piv_msg_put_u32(msg, debug ? 1 : 0) != 0)
		return -1;
	return 0;
}

void
piv_wire_certs_req_free(struct piv_wire_certs_req *req)
{
	free(req->module);
	free(req->token_uri);
	free(req->cert_uri);
	memset(req, 0, sizeof(*req));
}

int
piv_wire_get_certs_req(struct piv_msg *msg, struct piv_wire_certs_req *out)
{
	uint32_t debug = 0;

	memset(out, 0, sizeof(*out));
	if (msg->type != PIV_MSG_REQ_CERTS || piv_msg_get_str(msg, &out->module) != 0 ||
	    piv_msg_get_str(msg, &out->token_uri) != 0 || piv_msg_get_str(msg, &out->cert_uri) != 0 ||
	    piv_msg_get_u32(msg, &out->card_wait) != 0 || piv_msg_get_u32(msg, &debug) != 0 ||
	    piv_msg_end(msg) != 0 || out->card_wait > PIV_WIRE_MAX_CARD_WAIT || debug > 1) {
		piv_wire_certs_req_free(out);
		return -1;
	}
	out->debug = debug == 1;
	return 0;
}

/* ---- H→M LOG ------------------------------------------------------- */

int
piv_wire_put_log(struct piv_msg *msg, int prio, const char *text)
{
	piv_msg_init(msg, PIV_MSG_LOG);
	if (prio < 0 || piv_msg_put_u32(msg, (uint32_t)prio) != 0 ||
	    piv_msg_put_str(msg, text) != 0)
		return -1;
	return 0;
}

int
piv_wire_get_log(struct piv_msg *msg, int *prio, char *text, size_t text_size)
{
	uint32_t p = LOG_DEBUG;
	const uint8_t *raw;
	size_t len;

	if (msg->type != PIV_MSG_LOG || piv_msg_get_u32(msg, &p) != 0 ||
	    piv_msg_get(msg, &raw, &len) != 0 || piv_msg_end(msg) != 0)
		return -1;
	*prio = p > LOG_DEBUG || p < LOG_ERR ? LOG_ERR : (int)p;
	piv_escape(raw, len, text, text_size);
	return 0;
}

/* ---- H→M CANDIDATE ------------------------------------------------- */

int
piv_wire_put_candidate(struct piv_msg *msg, uint32_t index, const struct piv_card_candidate *c)
{
	piv_msg_init(msg, PIV_MSG_CANDIDATE);
	if (c->n_extra > PIV_MAX_EXTRA_CERTS || piv_msg_put_u32(msg, index) != 0 ||
	    piv_msg_put_str(msg, c->token_label) != 0 || piv_msg_put_str(msg, c->token_serial) != 0 ||
	    piv_msg_put_u32(msg, c->token_flags) != 0 ||
	    piv_msg_put(msg, c->cert.data, c->cert.len) != 0 ||
	    piv_msg_put_u32(msg, (uint32_t)c->n_extra) != 0)
		return -1;
	for (size_t i = 0; i < c->n_extra; i++)
		if (piv_msg_put(msg, c->extra[i].data, c->extra[i].len) != 0)
			return -1;
	return 0;
}

void
piv_card_candidate_free(struct piv_card_candidate *c)
{
	free(c->token_label);
	free(c->token_serial);
	free(c->cert.data);
	for (size_t i = 0; i < c->n_extra; i++)
		free(c->extra[i].data);
	memset(c, 0, sizeof(*c));
}

int
piv_wire_get_candidate(struct piv_msg *msg, uint32_t want_index, struct piv_card_candidate *out)
{
	uint32_t index, n_extra;

	memset(out, 0, sizeof(*out));
	if (msg->type != PIV_MSG_CANDIDATE || piv_msg_get_u32(msg, &index) != 0 ||
	    index != want_index || piv_msg_get_str(msg, &out->token_label) != 0 ||
	    piv_msg_get_str(msg, &out->token_serial) != 0 ||
	    piv_msg_get_u32(msg, &out->token_flags) != 0 ||
	    piv_msg_get_dup(msg, &out->cert.data, &out->cert.len) != 0 ||
	    piv_msg_get_u32(msg, &n_extra) != 0 || n_extra > PIV_MAX_EXTRA_CERTS)
		goto bad;
	for (uint32_t i = 0; i < n_extra; i++) {
		if (piv_msg_get_dup(msg, &out->extra[i].data, &out->extra[i].len) != 0)
			goto bad;
		out->n_extra++;
	}
	if (piv_msg_end(msg) != 0)
		goto bad;
	return 0;
bad:
	piv_card_candidate_free(out);
	return -1;
}

/* ---- H→M END_CERTS ------------------------------------------------- */

int
piv_wire_put_end_certs(struct piv_msg *msg, uint32_t status, const char *message)
{
	piv_msg_init(msg, PIV_MSG_END_CERTS);
	if (piv_msg_put_u32(msg, status) != 0 || piv_msg_put_str(msg, message) != 0)
		return -1;
	return 0;
}

int
piv_wire_get_end_certs(struct piv_msg *msg, uint32_t *status, char *message, size_t message_size)
{
	const uint8_t *raw;
	size_t len;

	if (msg->type != PIV_MSG_END_CERTS || piv_msg_get_u32(msg, status) != 0 ||
	    piv_msg_get(msg, &raw, &len) != 0 || memchr(raw, '\0', len) != NULL ||
	    piv_msg_end(msg) != 0)
		return -1;
	piv_escape(raw, len, message, message_size);
	return 0;
}

/* ---- M→H REQ_SIGN -------------------------------------------------- */

int
piv_wire_put_sign_req(struct piv_msg *msg, const struct piv_sign_request *req)
{
	piv_msg_init(msg, PIV_MSG_REQ_SIGN);
	if (req->index > UINT32_MAX || piv_msg_put_u32(msg, (uint32_t)req->index) != 0 ||
	    piv_msg_put_u32(msg, req->pinpad ? 1 : 0) != 0 ||
	    piv_msg_put_str(msg, req->pinpad ? NULL : req->pin) != 0 ||
	    piv_msg_put(msg, req->challenge, req->challenge_len) != 0 ||
	    piv_msg_put_str(msg, req->is_ec ? "ec" : "rsa") != 0 ||
	    piv_msg_put_str(msg, piv_hash_name(req->hash)) != 0)
		return -1;
	return 0;
}

int
piv_wire_get_sign_req(struct piv_msg *msg, struct piv_sign_request *req, char **pin)
{
	uint32_t index = 0, pinpad = 0;
	char *kind = NULL, *hash_name = NULL;
	int rc = -1;

	memset(req, 0, sizeof(*req));
	*pin = NULL;
	if (msg->type != PIV_MSG_REQ_SIGN || piv_msg_get_u32(msg, &index) != 0 ||
	    piv_msg_get_u32(msg, &pinpad) != 0 || piv_msg_get_str(msg, pin) != 0 ||
	    piv_msg_get(msg, &req->challenge, &req->challenge_len) != 0 ||
	    piv_msg_get_str(msg, &kind) != 0 || piv_msg_get_str(msg, &hash_name) != 0 ||
	    piv_msg_end(msg) != 0 || pinpad > 1 || (pinpad == 1 && (*pin)[0] != '\0') ||
	    req->challenge_len == 0 || req->challenge_len > PIV_WIRE_MAX_CHALLENGE ||
	    piv_hash_from_name(hash_name, &req->hash) != 0 ||
	    (strcmp(kind, "rsa") != 0 && strcmp(kind, "ec") != 0))
		goto out;
	req->index = index;
	req->pinpad = pinpad == 1;
	req->is_ec = strcmp(kind, "ec") == 0;
	if (req->pinpad)
		piv_free_secret(pin);
	req->pin = *pin;
	rc = 0;
out:
	if (rc != 0) {
		piv_free_secret(pin);
		memset(req, 0, sizeof(*req));
	}
	free(kind);
	free(hash_name);
	return rc;
}

/* ---- H→M SIGNED ---------------------------------------------------- */

int
piv_wire_put_signed(struct piv_msg *msg, uint32_t status, uint32_t token_flags,
                    uint32_t mechanism, const uint8_t *sig, size_t sig_len, const char *message)
{
	piv_msg_init(msg, PIV_MSG_SIGNED);
	if (sig_len > PIV_MAX_SIG_LEN || piv_msg_put_u32(msg, status) != 0 ||
	    piv_msg_put_u32(msg, token_flags) != 0 || piv_msg_put_u32(msg, mechanism) != 0 ||
	    piv_msg_put(msg, sig, sig_len) != 0 || piv_msg_put_str(msg, message) != 0)
		return -1;
	return 0;
}

void
piv_sign_result_free(struct piv_sign_result *res)
{
	free(res->sig);
	res->sig = NULL;
	res->sig_len = 0;
}

int
piv_wire_get_signed(struct piv_msg *msg, struct piv_sign_result *res)
{
	const uint8_t *raw;
	size_t len;

	memset(res, 0, sizeof(*res));
	if (msg->type != PIV_MSG_SIGNED || piv_msg_get_u32(msg, &res->helper_status) != 0 ||
	    piv_msg_get_u32(msg, &res->token_flags) != 0 ||
	    piv_msg_get_u32(msg, &res->mechanism) != 0 ||
	    piv_msg_get_dup(msg, &res->sig, &res->sig_len) != 0 ||
	    piv_msg_get(msg, &raw, &len) != 0 || memchr(raw, '\0', len) != NULL ||
	    piv_msg_end(msg) != 0 || res->sig_len > PIV_MAX_SIG_LEN) {
		piv_sign_result_free(res);
		memset(res, 0, sizeof(*res));
		return -1;
	}
	piv_escape(raw, len, res->message, sizeof(res->message));
	return 0;
}
