/* pam_piv_helper: the only process that loads PKCS#11 code. The module
 * starts it with a clean environment and a socket on fd 3, and kills it at
 * card_timeout; it reports what the card says and never decides a login.
 * Protocol: proto.h. */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "helper/p11.h"
#include "wire/proto.h"
#include "pki/prove.h"
#include "common/util.h"
#include "wire/wire.h"

#define MODULE_FD 3

struct helper {
	int fd;
	bool debug;
	struct p11_ctx p11;
	struct p11_cand cand[PIV_MAX_CANDIDATES];
	size_t n_cand;
};

static void helper_log(void *ud, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
helper_log(void *ud, int prio, const char *fmt, ...)
{
	struct helper *h = ud;
	struct piv_msg msg;
	char text[512];
	va_list ap;

	if (prio == LOG_DEBUG && !h->debug)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (piv_wire_put_log(&msg, prio, text) == 0)
		(void)piv_msg_send(h->fd, &msg, -1);
	piv_msg_clear(&msg);
}

static int
send_end(struct helper *h, uint32_t status, const char *message)
{
	struct piv_msg msg;
	int rc = -1;

	if (piv_wire_put_end_certs(&msg, status, message) == 0)
		rc = piv_msg_send(h->fd, &msg, -1);
	piv_msg_clear(&msg);
	return rc;
}

static int
send_candidate(struct helper *h, size_t index)
{
	struct p11_cand *c = &h->cand[index];
	struct piv_card_candidate view;
	struct piv_msg msg;
	int rc = -1;

	/* borrowed, not copied: nothing here is freed */
	memset(&view, 0, sizeof(view));
	view.token_label = c->label;
	view.token_serial = c->serial;
	view.token_flags = (uint32_t)c->token_flags;
	view.cert = c->cert;
	view.n_extra = c->n_extra;
	memcpy(view.extra, c->extra, sizeof(view.extra));
	if (piv_wire_put_candidate(&msg, (uint32_t)index, &view) == 0)
		rc = piv_msg_send(h->fd, &msg, -1);
	piv_msg_clear(&msg);
	return rc;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Load the module(s), find the card (waiting up to card_wait), and send
 * the candidate certificates. */
static int
do_certs(struct helper *h, struct piv_msg *req)
{
	struct piv_wire_certs_req r;
	size_t tokens_seen = 0;
	bool told_waiting = false;
	int64_t wait_until;
	int rc = -1;

	if (piv_wire_get_certs_req(req, &r) != 0)
		return -1;
	h->debug = r.debug;
	if (p11_load(&h->p11, r.module, helper_log, h) != 0) {
		rc = send_end(h, PIV_H_NO_CARD, "the PKCS#11 module could not be loaded");
		goto out;
	}
	wait_until = piv_now_ms() + (int64_t)r.card_wait * 1000;
	for (;;) {
		if (p11_find(&h->p11, r.token_uri, r.cert_uri, h->cand, PIV_MAX_CANDIDATES, &h->n_cand,
		             &tokens_seen) != 0) {
			rc = send_end(h, PIV_H_ERROR, "token search failed");
			goto out;
		}
		if (h->n_cand > 0 || piv_now_ms() >= wait_until)
			break;
		if (!told_waiting) {
			struct piv_msg w;
			piv_msg_init(&w, PIV_MSG_WAITING);
			(void)piv_msg_send(h->fd, &w, -1);
			piv_msg_clear(&w);
			told_waiting = true;
		}
		sleep_ms(250);
	}
	for (size_t i = 0; i < h->n_cand; i++)
		if (send_candidate(h, i) != 0)
			goto out;
	if (h->n_cand > 0)
		rc = send_end(h, PIV_H_OK, "");
	else
		rc = send_end(h, PIV_H_NO_CARD, tokens_seen > 0
		              ? "the card holds no certificate matching the 'cert' URI"
		              : "no matching token is present");
out:
	piv_wire_certs_req_free(&r);
	return rc;
}

static int
do_sign(struct helper *h, struct piv_msg *req)
{
	struct piv_sign_request sr;
	struct p11_sign_out out;
	struct piv_msg reply;
	char *pin = NULL;
	int rc = -1;

	memset(&out, 0, sizeof(out));
	if (piv_wire_get_sign_req(req, &sr, &pin) != 0)
		return -1;
	if (sr.index >= h->n_cand)
		goto out;
	p11_sign(&h->p11, &h->cand[sr.index], sr.pin, sr.challenge, sr.challenge_len, sr.is_ec,
	         sr.hash, &out);
	piv_free_secret(&pin);

	if (piv_wire_put_signed(&reply, out.status, (uint32_t)out.token_flags,
	                        (uint32_t)out.mechanism, out.sig, out.sig_len, out.message) == 0)
		rc = piv_msg_send(h->fd, &reply, -1);
	piv_msg_clear(&reply);
out:
	piv_free_secret(&pin);
	free(out.sig);
	return rc;
}

int
main(void)
{
	struct helper h;
	struct piv_msg msg;
	struct rlimit no_core = { 0, 0 };
	struct stat st;
	int rc = 1;

	/* The helper holds the PIN: no core dumps, no ptrace by the user. */
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	setrlimit(RLIMIT_CORE, &no_core);
	memset(&h, 0, sizeof(h));
	h.fd = MODULE_FD;
	if (fstat(h.fd, &st) != 0 || !S_ISSOCK(st.st_mode)) {
		fprintf(stderr, "pam_piv_helper: started by pam_piv.so only\n");
		return 2;
	}
	memset(&msg, 0, sizeof(msg));
	if (piv_msg_recv(h.fd, &msg, -1) != PIV_PROTO_OK || msg.type != PIV_MSG_REQ_CERTS)
		goto out;
	if (do_certs(&h, &msg) != 0)
		goto out;
	for (;;) {
		int r = piv_msg_recv(h.fd, &msg, -1);
		if (r == PIV_PROTO_EOF || (r == PIV_PROTO_OK && msg.type == PIV_MSG_QUIT)) {
			rc = 0;
			break;
		}
		if (r != PIV_PROTO_OK || msg.type != PIV_MSG_REQ_SIGN || do_sign(&h, &msg) != 0)
			break;
	}
out:
	piv_msg_clear(&msg);
	for (size_t i = 0; i < h.n_cand; i++)
		p11_cand_free(&h.cand[i]);
	p11_unload(&h.p11);
	return rc;
}
