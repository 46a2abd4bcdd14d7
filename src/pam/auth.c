/* One authentication, start to decision (see auth.h). The PIN is asked only
 * after the certificate is validated and mapped, so a bad card never costs
 * a PIN try; the challenge comes from the host and the signature is checked
 * against the validated certificate's key. */
#include "config.h"
#include "pam/auth.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#include <openssl/x509.h>
#include <p11-kit/pkcs11.h>

#include "pam/access.h"
#include "pam/agentauth.h"
#include "pam/assess.h"
#include "wire/card.h"
#include "accounts/mapping.h"
#include "wire/proto.h"
#include "pki/prove.h"
#include "pki/revocation.h"
#include "common/util.h"

struct auth_run {
	const struct piv_conf *conf;
	const struct piv_ui *ui;
	struct piv_auth_result *res;
};

static void ui_log(const struct piv_ui *ui, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
ui_log(const struct piv_ui *ui, int prio, const char *fmt, ...)
{
	char line[1024];
	va_list ap;

	if (ui->log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	ui->log(ui->ud, prio, line);
}

/* Log lines from the card helper and the revocation checks; debug lines
 * only with debug on. */
static void
log_cb(void *ud, int prio, const char *text)
{
	struct auth_run *run = ud;

	if (prio == LOG_DEBUG && !run->conf->debug)
		return;
	run->ui->log(run->ui->ud, prio, text);
}

static void
card_waiting_cb(void *ud)
{
	struct auth_run *run = ud;

	if (run->ui->info)
		run->ui->info(run->ui->ud, "Please insert your PIV card");
}

static void
map_trace_cb(void *ud, const char *line)
{
	struct auth_run *run = ud;

	if (run->conf->debug)
		run->ui->log(run->ui->ud, LOG_DEBUG, line);
}

static bool
exists_cb(void *ud, const char *name)
{
	struct auth_run *run = ud;

	return run->ui->account_exists(run->ui->ud, name);
}

static void
user_error(struct auth_run *run, enum piv_status st, const char *user)
{
	const char *text = piv_status_user_text(st);
	char line[400];

	if (text == NULL || run->ui->error == NULL)
		return;
	if (st == PIV_E_NOT_MAPPED) {
		char esc[300];
		snprintf(line, sizeof(line), "PIV certificate is not mapped to %s",
		         piv_escape_str(user && *user ? user : "any account", esc, sizeof(esc)));
		text = line;
	}
	run->ui->error(run->ui->ud, text);
}

static enum piv_sig_scheme
scheme_of(uint32_t mechanism, bool *known)
{
	*known = true;
	switch (mechanism) {
	case CKM_SHA256_RSA_PKCS:
	case CKM_RSA_PKCS:
		return PIV_SIG_RSA_PKCS1;
	case CKM_SHA256_RSA_PKCS_PSS:
	case CKM_RSA_PKCS_PSS:
		return PIV_SIG_RSA_PSS;
	case CKM_ECDSA:
	case CKM_ECDSA_SHA256:
	case CKM_ECDSA_SHA384:
		return PIV_SIG_ECDSA_RAW;
	default:
		*known = false;
		return PIV_SIG_RSA_PKCS1;
	}
}

static const char *
pin_flags_text(uint32_t flags)
{
	if (flags & CKF_USER_PIN_FINAL_TRY)
		return " (one try left: a wrong PIN will lock the card)";
	if (flags & CKF_USER_PIN_COUNT_LOW)
		return " (few tries left)";
	return "";
}

/* PIN, challenge, signature, verification. */
static enum piv_status
prove(struct auth_run *run, struct piv_card *card, size_t index, X509 *leaf)
{
	const struct piv_card_candidate *c = &card->cand[index];
	struct piv_sign_request req;
	struct piv_sign_result sr;
	uint8_t challenge[PIV_CHALLENGE_LEN];
	char prompt[200], label[140], *pin = NULL;
	enum piv_status st;
	size_t field_len;
	enum piv_hash hash;
	int is_ec = 0, bits = 0;
	bool known;

	memset(&req, 0, sizeof(req));
	if (piv_cert_key_kind(leaf, &is_ec, &hash, &field_len, &bits) != 0)
		return PIV_E_CERT_KEY_TYPE;
	if (c->token_flags & CKF_USER_PIN_LOCKED) {
		snprintf(run->res->reason, sizeof(run->res->reason), "the card reports its PIN locked");
		user_error(run, PIV_E_PIN_LOCKED, NULL);
		return PIV_E_PIN_LOCKED;
	}
	piv_escape_str(c->token_label, label, sizeof(label));
	if (c->token_flags & CKF_USER_PIN_FINAL_TRY)
		run->ui->info(run->ui->ud, "Warning: this is the final PIN try before the card locks");
	else if (c->token_flags & CKF_USER_PIN_COUNT_LOW)
		run->ui->info(run->ui->ud, "Warning: few PIN tries left before the card locks");

	req.pinpad = (c->token_flags & CKF_PROTECTED_AUTHENTICATION_PATH) != 0;
	if (req.pinpad) {
		snprintf(prompt, sizeof(prompt), "Enter the PIN for %s on the PIN pad", label);
		run->ui->info(run->ui->ud, prompt);
	} else {
		/* The warning goes into the prompt too: under PAM_SILENT (sudo
		 * always sets it) the info message above is never shown. */
		snprintf(prompt, sizeof(prompt), "PIN for %s%s: ", label,
		         (c->token_flags & CKF_USER_PIN_FINAL_TRY) ? " (FINAL TRY before the card locks)"
		         : (c->token_flags & CKF_USER_PIN_COUNT_LOW) ? " (few tries left)" : "");
		run->res->pin_prompted = true;
		if (run->ui->ask_pin(run->ui->ud, prompt, &pin) != 0 || pin == NULL) {
			snprintf(run->res->reason, sizeof(run->res->reason), "PIN conversation failed");
			piv_free_secret(&pin);
			return PIV_E_CONV;
		}
	}
	if (piv_make_challenge(challenge, sizeof(challenge)) != 0) {
		piv_free_secret(&pin);
		return PIV_E_INTERNAL;
	}
	req.index = index;
	req.pin = pin;
	req.challenge = challenge;
	req.challenge_len = sizeof(challenge);
	req.is_ec = is_ec != 0;
	req.hash = hash;
	st = piv_card_sign(card, &req, &sr);
	piv_free_secret(&pin);
	if (st != PIV_OK) {
		snprintf(run->res->reason, sizeof(run->res->reason), "card helper failed while signing");
		return st;
	}
	switch (sr.helper_status) {
	case PIV_H_OK:
		break;
	case PIV_H_PIN_INCORRECT:
	case PIV_H_PIN_LEN:
		snprintf(run->res->reason, sizeof(run->res->reason), "wrong PIN%s",
		         pin_flags_text(sr.token_flags));
		if (run->ui->error) {
			char text[200];
			snprintf(text, sizeof(text), "Wrong PIN%s", sr.token_flags & CKF_USER_PIN_LOCKED
			         ? ": the PIN is now locked" : pin_flags_text(sr.token_flags));
			run->ui->error(run->ui->ud, text);
		}
		piv_sign_result_free(&sr);
		return (sr.token_flags & CKF_USER_PIN_LOCKED) ? PIV_E_PIN_LOCKED : PIV_E_PIN_WRONG;
	case PIV_H_PIN_LOCKED:
		snprintf(run->res->reason, sizeof(run->res->reason), "PIN is locked");
		user_error(run, PIV_E_PIN_LOCKED, NULL);
		piv_sign_result_free(&sr);
		return PIV_E_PIN_LOCKED;
	case PIV_H_NO_KEY:
		snprintf(run->res->reason, sizeof(run->res->reason), "%s", sr.message);
		piv_sign_result_free(&sr);
		return PIV_E_NO_KEY;
	default:
		snprintf(run->res->reason, sizeof(run->res->reason), "card error: %s", sr.message);
		piv_sign_result_free(&sr);
		return PIV_E_HELPER;
	}
	{
		enum piv_sig_scheme scheme = scheme_of(sr.mechanism, &known);
		int ok = known && piv_verify_signature(leaf, scheme, hash, challenge, sizeof(challenge),
		                                       sr.sig, sr.sig_len);
		piv_sign_result_free(&sr);
		if (!ok) {
			snprintf(run->res->reason, sizeof(run->res->reason),
			         "the card's signature does not verify with the certificate's key");
			return PIV_E_SIGNATURE;
		}
	}
	return PIV_OK;
}

/* agent = yes and no card (agentauth.h). */
static enum piv_status
agent_login(struct auth_run *run, const struct piv_trust *trust, const char *user,
            const struct piv_assess_hooks *hooks, const char *card_message)
{
	const struct piv_ui *ui = run->ui;
	struct piv_agent_login login = { user, 0, 0, NULL, ui->service };
	struct piv_agent_result ar;
	enum piv_status st;
	char why[300];

	piv_fmt(why, sizeof(why), "%s", user == NULL ? "a user name is needed" : "not available here");
	if (user == NULL || ui->agent_caller == NULL || ui->agent_socket == NULL ||
	    ui->agent_caller(ui->ud, user, &login.uid, &login.gid, why, sizeof(why)) != 0) {
		piv_fmt(run->res->reason, sizeof(run->res->reason), "%s; agent: %s", card_message,
		         why);
		user_error(run, PIV_E_NO_CARD, user);
		return PIV_E_NO_CARD;
	}
	login.socket_path = ui->agent_socket(ui->ud);
	st = piv_agent_authenticate(run->conf, trust, &login, hooks, &ar);
	if (ar.have_cert) {
		run->res->cert = ar.cert;
		run->res->have_cert = true;
	}
	if (st == PIV_OK) {
		snprintf(run->res->account, sizeof(run->res->account), "%s", user);
		snprintf(run->res->token_label, sizeof(run->res->token_label), "ssh-agent");
		snprintf(run->res->token_env, sizeof(run->res->token_env), "ssh-agent");
		snprintf(run->res->reason, sizeof(run->res->reason), "%s", ar.why);
		return PIV_OK;
	}
	piv_fmt(run->res->reason, sizeof(run->res->reason), "%s; %s", card_message, ar.why);
	user_error(run, st, user);
	return st;
}

/* Validates and maps every certificate the cards show (verdicts[i] for
 * card->cand[i]) and counts the usable ones in *n_ok. With a PAM user,
 * the first card that maps to that user is used; without one, there must
 * be exactly one usable card (the caller checks n_ok). Returns the index
 * of the first usable certificate, PIV_MAX_CANDIDATES if none is. */
static size_t
assess_all(struct auth_run *run, const struct piv_trust *trust, const struct piv_card *card,
           const char *user, const struct piv_assess_hooks *hooks,
           struct piv_assessment *verdicts, size_t *n_ok)
{
	const struct piv_conf *conf = run->conf;
	const struct piv_ui *ui = run->ui;
	size_t chosen = PIV_MAX_CANDIDATES;

	*n_ok = 0;
	for (size_t i = 0; i < card->n_cand; i++) {
		if (ui->candidate != NULL)
			ui->candidate(ui->ud, i, card->cand[i].token_label, &card->cand[i].cert,
			              card->cand[i].extra, card->cand[i].n_extra);
		piv_assess(conf, trust, card->cand[i].cert.data, card->cand[i].cert.len,
		           card->cand[i].extra, card->cand[i].n_extra, user, hooks, &verdicts[i]);
		if (ui->verdict != NULL)
			ui->verdict(ui->ud, i, verdicts[i].status, verdicts[i].why);
		if (conf->debug) {
			char label[140];
			ui_log(ui, LOG_DEBUG, "token '%s' certificate %zu: %s: %s",
			       piv_escape_str(card->cand[i].token_label, label, sizeof(label)), i,
			       piv_status_name(verdicts[i].status), verdicts[i].why);
		}
		if (verdicts[i].status == PIV_OK) {
			(*n_ok)++;
			if (chosen == PIV_MAX_CANDIDATES)
				chosen = i;
		}
	}
	return chosen;
}

/* No certificate is usable: says why, for the certificate that got
 * furthest (one that validated but mapped elsewhere says more than another
 * card's expiry), or, with foreign_card = ignore and only other users'
 * valid cards present, answers as if there were no card, so that the
 * password still works. */
static enum piv_status
none_usable(struct auth_run *run, const struct piv_card *card,
            const struct piv_assessment *verdicts, const char *user)
{
	const struct piv_ui *ui = run->ui;
	struct piv_auth_result *res = run->res;
	size_t shown = 0, n_foreign = 0;
	enum piv_status st;
	X509 *cert;

	for (size_t i = card->n_cand; i-- > 0;) {
		if (verdicts[i].status == PIV_E_NOT_MAPPED || verdicts[i].status == PIV_E_AMBIGUOUS)
			shown = i;
		n_foreign += verdicts[i].status == PIV_E_NOT_MAPPED;
	}
	if (run->conf->foreign_card_ignore && user != NULL && n_foreign == card->n_cand) {
		char esc[300], text[400];
		snprintf(res->reason, sizeof(res->reason), "the card%s present map%s to other "
		         "accounts than %s (foreign_card = ignore)", card->n_cand > 1 ? "s" : "",
		         card->n_cand > 1 ? "" : "s", piv_escape_str(user, esc, sizeof(esc)));
		snprintf(text, sizeof(text), "The PIV card in the reader is not mapped to %s: "
		         "it is not used", esc);
		if (ui->info != NULL)
			ui->info(ui->ud, text);
		return PIV_E_NO_CARD;
	}
	st = verdicts[shown].status;
	snprintf(res->reason, sizeof(res->reason), "%s", verdicts[shown].why);
	cert = piv_cert_from_der(card->cand[shown].cert.data, card->cand[shown].cert.len);
	if (cert != NULL) {
		piv_cert_identify(cert, &res->cert);
		res->have_cert = true;
		X509_free(cert);
	}
	user_error(run, st, user);
	return st;
}

/* What the result says about the card chosen, before its PIN is asked. */
static void
record_choice(struct piv_auth_result *res, const struct piv_card_candidate *cand,
              const struct piv_assessment *verdict)
{
	piv_cert_identify(verdict->leaf, &res->cert);
	res->have_cert = true;
	piv_escape_str(cand->token_label, res->token_label, sizeof(res->token_label));
	/* PKCS11_LOGIN_TOKEN_NAME keeps a UTF-8 label readable; only bytes
	 * that could steer a terminal or a parser are replaced. */
	snprintf(res->token_env, sizeof(res->token_env), "%s", cand->token_label);
	for (char *p = res->token_env; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	snprintf(res->account, sizeof(res->account), "%s", verdict->account);
	res->by_card = true;
	snprintf(res->card_label, sizeof(res->card_label), "%s", cand->token_label);
	snprintf(res->card_serial, sizeof(res->card_serial), "%s",
	         cand->token_serial != NULL ? cand->token_serial : "");
}

enum piv_status
piv_authenticate(const struct piv_conf *conf, const char *user, const struct piv_ui *ui,
                 struct piv_auth_result *res)
{
	struct auth_run run = { conf, ui, res };
	struct piv_trust trust;
	struct piv_card card;
	struct piv_assessment verdicts[PIV_MAX_CANDIDATES];
	const struct piv_assess_hooks hooks = { &run, log_cb, map_trace_cb, exists_cb };
	size_t chosen = PIV_MAX_CANDIDATES, n_ok = 0;
	enum piv_status st;

	memset(res, 0, sizeof(*res));
	memset(verdicts, 0, sizeof(verdicts));
	memset(&card, 0, sizeof(card));
	card.fd = -1;
	card.pid = -1;
	if (user != NULL && *user == '\0')
		user = NULL;

	/* Trust material first: a broken configuration must not touch a card. */
	st = piv_trust_load(conf, &trust, res->reason, sizeof(res->reason));
	if (st != PIV_OK)
		goto done;

	/* Is the reader here for this login at all? Not for a service it is
	 * not allowed for, nor for a login from elsewhere: the card is not
	 * touched, nobody is asked for its PIN, and the stack goes on. */
	if (piv_reader_access(conf, ui->service, ui->rhost, card.message,
	                      sizeof(card.message)) != PIV_OK) {
		ui_log(ui, LOG_DEBUG, "%s", card.message);
		if (conf->agent) {
			st = agent_login(&run, &trust, user, &hooks, card.message);
		} else {
			st = PIV_E_NO_CARD;
			snprintf(res->reason, sizeof(res->reason), "%s", card.message);
		}
		goto done;
	}

	st = piv_card_open(&card, conf, log_cb, card_waiting_cb, &run);
	if (st == PIV_E_NO_CARD && conf->agent) {
		/* No card here: the user's forwarded ssh-agent may prove one. */
		st = agent_login(&run, &trust, user, &hooks, card.message);
		goto done;
	}
	if (st != PIV_OK) {
		snprintf(res->reason, sizeof(res->reason), "%s",
		         st == PIV_E_NO_CARD ? card.message : "card helper failed");
		if (st == PIV_E_NO_CARD)
			user_error(&run, st, user);
		goto done;
	}

	/* Validate and map every candidate before any PIN. */
	chosen = assess_all(&run, &trust, &card, user, &hooks, verdicts, &n_ok);
	if (chosen == PIV_MAX_CANDIDATES) {
		st = none_usable(&run, &card, verdicts, user);
		goto done;
	}
	if (user == NULL && n_ok > 1) {
		st = PIV_E_AMBIGUOUS;
		snprintf(res->reason, sizeof(res->reason),
		         "%zu cards map to accounts; a user name is needed", n_ok);
		user_error(&run, st, user);
		goto done;
	}
	if (n_ok > 1) {
		/* A certificate is public: another token can show the user's
		 * own. Which token holds the key is not known before the PIN,
		 * so the PIN goes to none of them. */
		char esc[300];
		st = PIV_E_AMBIGUOUS;
		snprintf(res->reason, sizeof(res->reason), "%zu certificates on the tokens present map "
		         "to %s; the PIN is not asked: remove all cards but one", n_ok,
		         piv_escape_str(user, esc, sizeof(esc)));
		if (ui->error != NULL)
			ui->error(ui->ud, "More than one PIV card maps to this account: remove all cards "
			          "but one");
		goto done;
	}
	record_choice(res, &card.cand[chosen], &verdicts[chosen]);
	st = prove(&run, &card, chosen, verdicts[chosen].leaf);
	if (st == PIV_OK)
		snprintf(res->reason, sizeof(res->reason), "%s; signature verified",
		         verdicts[chosen].why);
done:
	for (size_t i = 0; i < PIV_MAX_CANDIDATES; i++)
		X509_free(verdicts[i].leaf);
	piv_card_close(&card);
	if (trust.store != NULL)
		piv_trust_free(&trust);
	res->status = st;
	return st;
}
