/* The PAM entry points: read the configuration, run one authentication
 * through auth.c with a PAM conversation, turn the outcome into a PAM code
 * (status.c), log one audit line, set PAM_USER and the token name; and the
 * sshd account check (sshd_key_check) through userkeys.c. */
#include "config.h"

#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#define PAM_SM_AUTH
#define PAM_SM_ACCOUNT
#define PAM_SM_SESSION
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include "pam/agentauth.h"
#include "pam/assess.h"
#include "pam/auth.h"
#include "pam/removal.h"
#include "common/conf.h"
#include "accounts/accounts.h"
#include "ssh/sshkey.h"
#include "pam/userkeys.h"
#include "common/status.h"
#include "common/util.h"

struct pam_ui_ctx {
	pam_handle_t *pamh;
	bool silent;
	bool debug;
};

static int
ui_ask_pin(void *ud, const char *prompt, char **pin)
{
	struct pam_ui_ctx *ctx = ud;
	char *answer = NULL;
	int rv = pam_prompt(ctx->pamh, PAM_PROMPT_ECHO_OFF, &answer, "%s", prompt);

	if (rv != PAM_SUCCESS || answer == NULL) {
		piv_free_secret(&answer);
		return -1;
	}
	*pin = answer;
	return 0;
}

static void
ui_info(void *ud, const char *text)
{
	struct pam_ui_ctx *ctx = ud;

	if (!ctx->silent)
		pam_info(ctx->pamh, "%s", text);
}

static void
ui_error(void *ud, const char *text)
{
	struct pam_ui_ctx *ctx = ud;

	if (!ctx->silent)
		pam_error(ctx->pamh, "%s", text);
}

static void
ui_log(void *ud, int prio, const char *text)
{
	struct pam_ui_ctx *ctx = ud;

	if (prio == LOG_DEBUG && !ctx->debug)
		return;
	pam_syslog(ctx->pamh, prio, "%s", text);
}

static bool
ui_account_exists(void *ud, const char *name)
{
	struct pam_ui_ctx *ctx = ud;

	return pam_modutil_getpwnam(ctx->pamh, name) != NULL;
}

/* agent = yes: the agent is the invoking user's, so it may only prove
 * the invoking user (agentauth.h); the socket is opened as that user. */
static int
ui_agent_caller(void *ud, const char *user, uid_t *uid, gid_t *gid, char *why, size_t why_size)
{
	struct pam_ui_ctx *ctx = ud;
	struct passwd *pw = pam_modutil_getpwnam(ctx->pamh, user);
	const void *item = NULL;
	const char *ruser = NULL;
	uid_t user_uid, ruser_uid;
	bool ruser_known = false;

	if (pw == NULL) {
		snprintf(why, why_size, "unknown account");
		return -1;
	}
	user_uid = pw->pw_uid;
	if (pam_get_item(ctx->pamh, PAM_RUSER, &item) == PAM_SUCCESS && item != NULL &&
	    *(const char *)item != '\0') {
		ruser = item;
		if ((pw = pam_modutil_getpwnam(ctx->pamh, ruser)) != NULL) {
			ruser_uid = pw->pw_uid;
			ruser_known = true;
		}
	}
	if (piv_agent_caller_check(getuid(), user_uid, ruser, ruser_known ? &ruser_uid : NULL, why,
	                           why_size) != 0)
		return -1;
	*uid = getuid();
	*gid = getgid();
	return 0;
}

/* SSH_AUTH_SOCK from the PAM environment, else from the process (sudo
 * keeps the invoking user's environment while it authenticates). Either
 * way untrusted: agentauth.c decides whether the socket is the user's. */
static const char *
ui_agent_socket(void *ud)
{
	struct pam_ui_ctx *ctx = ud;
	const char *path = pam_getenv(ctx->pamh, "SSH_AUTH_SOCK");

	return path != NULL ? path : getenv("SSH_AUTH_SOCK");
}

/* Where the login comes from, for the audit line (AU-3: the source):
 * "tty=... rhost=..." as the application set them, escaped; "-" when unset. */
static void
audit_source(pam_handle_t *pamh, char *out, size_t out_size)
{
	const void *tty = NULL, *rhost = NULL;
	char esc_tty[200], esc_rhost[400];

	if (pam_get_item(pamh, PAM_TTY, &tty) != PAM_SUCCESS || tty == NULL || !*(const char *)tty)
		tty = "-";
	if (pam_get_item(pamh, PAM_RHOST, &rhost) != PAM_SUCCESS || rhost == NULL ||
	    !*(const char *)rhost)
		rhost = "-";
	snprintf(out, out_size, "tty=%s rhost=%s", piv_escape_str(tty, esc_tty, sizeof(esc_tty)),
	         piv_escape_str(rhost, esc_rhost, sizeof(esc_rhost)));
}

static void
audit(pam_handle_t *pamh, const char *user, const struct piv_auth_result *res)
{
	char esc_user[300], from[600];

	piv_escape_str(user && *user ? user : "(none)", esc_user, sizeof(esc_user));
	audit_source(pamh, from, sizeof(from));
	if (res->status == PIV_OK) {
		pam_syslog(pamh, LOG_INFO,
		           "authentication succeeded: account=%s token=\"%s\" sha256=%s "
		           "subject=\"%s\" issuer=\"%s\" serial=%s %s",
		           res->account, res->token_label, res->cert.sha256, res->cert.subject,
		           res->cert.issuer, res->cert.serial, from);
	} else if (res->have_cert) {
		pam_syslog(pamh, res->status == PIV_E_CONFIG ? LOG_ALERT : LOG_NOTICE,
		           "authentication failed: user=%s result=%s reason=\"%s\" sha256=%s "
		           "subject=\"%s\" issuer=\"%s\" serial=%s %s",
		           esc_user, piv_status_name(res->status), res->reason, res->cert.sha256,
		           res->cert.subject, res->cert.issuer, res->cert.serial, from);
	} else {
		pam_syslog(pamh, res->status == PIV_E_CONFIG ? LOG_ALERT : LOG_NOTICE,
		           "authentication failed: user=%s result=%s reason=\"%s\" %s", esc_user,
		           piv_status_name(res->status), res->reason, from);
	}
}

PAM_EXTERN int
pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct pam_ui_ctx ctx = { pamh, (flags & PAM_SILENT) != 0, false };
	struct piv_ui ui = { &ctx, ui_ask_pin, ui_info, ui_error, ui_log, ui_account_exists, NULL,
	                     NULL, ui_agent_caller, ui_agent_socket, NULL, NULL };
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_auth_result *res = NULL;
	const void *item = NULL;
	const char *user = NULL;
	bool usernameless;
	char env[200];
	int code = PAM_AUTH_ERR;

	if (piv_conf_load(&conf, PIV_CONF_PATH, argc, argv, &err) != 0) {
		(void)pam_fail_delay(pamh, 2000000);
		pam_syslog(pamh, LOG_ALERT, "configuration error: %s", err.msg);
		return PAM_SERVICE_ERR;
	}
	if (conf.fail_delay > 0)
		(void)pam_fail_delay(pamh, conf.fail_delay * 1000U);
	ctx.debug = conf.debug;
	/* A user name given before us is the claim to check; none means a
	 * username-less login decided by the card. */
	if (pam_get_item(pamh, PAM_USER, &item) == PAM_SUCCESS && item != NULL)
		user = item;
	if (pam_get_item(pamh, PAM_SERVICE, &item) == PAM_SUCCESS && item != NULL)
		ui.service = item;
	if (pam_get_item(pamh, PAM_RHOST, &item) == PAM_SUCCESS && item != NULL)
		ui.rhost = item;
	res = calloc(1, sizeof(*res));
	if (res == NULL) {
		pam_syslog(pamh, LOG_CRIT, "authentication failed: out of memory");
		goto out; /* PAM_AUTH_ERR: an internal error (SPEC §4) */
	}
	usernameless = user == NULL || *user == '\0';
	piv_authenticate(&conf, user, &ui, res);
	code = piv_status_pam_code(res->status, conf.card_only);
	if (res->status == PIV_OK && usernameless) {
		/* The account's own name, not the string a rule produced: a
		 * directory that matches names without case, or an alias, would
		 * otherwise hand later modules (and sshd, login) a name that is
		 * not the account's. */
		struct passwd *pw = pam_modutil_getpwnam(pamh, res->account);
		if (pw == NULL || pw->pw_name == NULL || !piv_valid_account_name(pw->pw_name)) {
			res->status = PIV_E_INTERNAL;
			snprintf(res->reason, sizeof(res->reason), "the account is gone from NSS");
			code = PAM_AUTH_ERR;
		} else if (strcmp(pw->pw_name, res->account) != 0) {
			char mapped[300];
			piv_escape_str(res->account, mapped, sizeof(mapped));
			pam_syslog(pamh, LOG_INFO, "mapped name %s is the account %s", mapped,
			           pw->pw_name);
			snprintf(res->account, sizeof(res->account), "%s", pw->pw_name);
		}
	}
	if (res->status == PIV_OK) {
		if (usernameless && pam_set_item(pamh, PAM_USER, res->account) != PAM_SUCCESS) {
			res->status = PIV_E_INTERNAL;
			snprintf(res->reason, sizeof(res->reason), "cannot set PAM_USER");
			code = PAM_AUTH_ERR;
		} else {
			snprintf(env, sizeof(env), "PKCS11_LOGIN_TOKEN_NAME=%s", res->token_env);
			if (pam_putenv(pamh, env) != PAM_SUCCESS) {
				res->status = PIV_E_INTERNAL;
				snprintf(res->reason, sizeof(res->reason), "cannot set PAM environment");
				code = PAM_AUTH_ERR;
			} else if (piv_removal_remember(pamh, res) != PAM_SUCCESS) {
				res->status = PIV_E_INTERNAL;
				snprintf(res->reason, sizeof(res->reason), "cannot keep the card's "
				         "identity for the session (out of memory)");
				code = PAM_AUTH_ERR;
			}
		}
	}
	/* (setting PAM_USER freed the empty name user pointed to) */
	audit(pamh, usernameless ? NULL : user, res);
	/* Belt and braces: nothing but a complete success is PAM_SUCCESS, and
	 * authentication never answers PAM_IGNORE. */
	if (res->status != PIV_OK && (code == PAM_SUCCESS || code == PAM_IGNORE))
		code = PAM_AUTH_ERR;
out:
	free(res);
	piv_conf_free(&conf);
	return code;
}

PAM_EXTERN int
pam_sm_setcred(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)pamh;
	(void)flags;
	(void)argc;
	(void)argv;
	return PAM_SUCCESS;
}

/* ---- account: sshd_key_check ------------------------------------------ */

#define MAX_USED_KEYS 8

struct used_keys {
	uint8_t *blob[MAX_USED_KEYS];
	size_t len[MAX_USED_KEYS];
	bool matched[MAX_USED_KEYS];
	size_t n;
	bool too_many;
};

static void
collect_used(void *ud, const uint8_t *blob, size_t len)
{
	struct used_keys *used = ud;

	if (used->n >= MAX_USED_KEYS || (used->blob[used->n] = malloc(len ? len : 1)) == NULL) {
		used->too_many = true;
		return;
	}
	memcpy(used->blob[used->n], blob, len);
	used->len[used->n++] = len;
}

static void
match_valid(void *ud, X509 *leaf, const uint8_t *blob, size_t len)
{
	struct used_keys *used = ud;

	(void)leaf;
	for (size_t i = 0; i < used->n; i++)
		if (used->len[i] == len && memcmp(used->blob[i], blob, len) == 0)
			used->matched[i] = true;
}

static void
hook_log(void *ud, int prio, const char *text)
{
	ui_log(ud, prio, text);
}

static void
hook_trace(void *ud, const char *text)
{
	ui_log(ud, LOG_DEBUG, text);
}

/* sshd (OpenSSH 7.5 and later) tells PAM how the user authenticated in
 * SSH_AUTH_INFO_0, one "publickey TYPE BASE64" line per key. Every such key
 * must belong to a certificate of this user that is valid now: a key
 * authorized earlier stops working the moment its certificate is revoked
 * or expires. The account phase sees the keys only when another method
 * follows the key (sshd 9.2 adds the deciding method after
 * pam_acct_mgmt); the session phase always sees them, so the check runs
 * in both. fail_code: what a key that is not a valid certificate's gets. */
static int
key_check(pam_handle_t *pamh, int flags, int argc, const char **argv, const char *phase,
          int fail_code)
{
	struct pam_ui_ctx ctx = { pamh, (flags & PAM_SILENT) != 0, false };
	struct piv_assess_hooks hooks = { &ctx, hook_log, hook_trace, ui_account_exists };
	struct used_keys used;
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_trust trust;
	const void *item = NULL;
	const char *user, *info;
	char why[400], esc_user[300];
	size_t n_publickey = 0, n_valid = 0;
	enum piv_status st;
	int code = fail_code;

	memset(&used, 0, sizeof(used));
	if (piv_conf_load(&conf, PIV_CONF_PATH, argc, argv, &err) != 0) {
		pam_syslog(pamh, LOG_ALERT, "configuration error: %s", err.msg);
		return PAM_SERVICE_ERR;
	}
	ctx.debug = conf.debug;
	if (!conf.sshd_key_check) {
		piv_conf_free(&conf);
		return PAM_IGNORE; /* nothing this module checks here */
	}
	if (pam_get_item(pamh, PAM_USER, &item) != PAM_SUCCESS || item == NULL ||
	    *(const char *)item == '\0') {
		pam_syslog(pamh, LOG_NOTICE, "%s check failed: no user", phase);
		goto out;
	}
	user = item;
	piv_escape_str(user, esc_user, sizeof(esc_user));
	info = pam_getenv(pamh, "SSH_AUTH_INFO_0");
	if (info == NULL) {
		pam_syslog(pamh, LOG_NOTICE, "%s check failed: user=%s reason=\"SSH_AUTH_INFO_0 "
		           "is not set: sshd_key_check is only for sshd (OpenSSH 7.5 or later)\"",
		           phase, esc_user);
		goto out;
	}
	if (piv_ssh_auth_info_keys(info, collect_used, &used, &n_publickey) != 0 || used.too_many) {
		pam_syslog(pamh, LOG_NOTICE, "%s check failed: user=%s reason=\"unreadable "
		           "SSH_AUTH_INFO_0\"", phase, esc_user);
		goto out;
	}
	if (n_publickey == 0) {
		if (conf.debug)
			pam_syslog(pamh, LOG_DEBUG, "%s check: user=%s: no public key (yet)", phase,
			           esc_user);
		code = PAM_IGNORE;
		goto out;
	}
	if (piv_trust_load(&conf, &trust, why, sizeof(why)) != PIV_OK) {
		pam_syslog(pamh, LOG_ALERT, "configuration error: %s", why);
		code = PAM_SERVICE_ERR;
		goto out;
	}
	st = piv_user_keys(&conf, &trust, user, &hooks, match_valid, &used, &n_valid, why,
	                   sizeof(why));
	piv_trust_free(&trust);
	if (st != PIV_OK) {
		code = st == PIV_E_CONFIG ? PAM_SERVICE_ERR
		       : st == PIV_E_DIRECTORY ? PAM_AUTHINFO_UNAVAIL : fail_code;
		pam_syslog(pamh, st == PIV_E_CONFIG ? LOG_ALERT : LOG_NOTICE,
		           "%s check failed: user=%s result=%s reason=\"%s\"", phase, esc_user,
		           piv_status_name(st), why);
		goto out;
	}
	for (size_t i = 0; i < used.n; i++) {
		if (!used.matched[i]) {
			pam_syslog(pamh, LOG_NOTICE, "%s check failed: user=%s reason=\"public key "
			           "%zu of %zu is not the key of a valid certificate of the user (%zu valid)\"",
			           phase, esc_user, i + 1, used.n, n_valid);
			goto out;
		}
	}
	pam_syslog(pamh, LOG_INFO, "%s check succeeded: user=%s keys=%zu (each the key of a "
	           "valid certificate)", phase, esc_user, used.n);
	code = PAM_SUCCESS;
out:
	for (size_t i = 0; i < used.n; i++)
		free(used.blob[i]);
	piv_conf_free(&conf);
	return code;
}

PAM_EXTERN int
pam_sm_acct_mgmt(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	return key_check(pamh, flags, argc, argv, "account", PAM_PERM_DENIED);
}

/* The session opens when the key check (sshd_key_check) and the card
 * removal watch (removal_action) both allow it; sshd ends the connection
 * when pam_open_session fails (no command, no shell runs). */
PAM_EXTERN int
pam_sm_open_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct piv_conf conf;
	struct piv_conf_error err;
	int key_rc, watch_rc;

	key_rc = key_check(pamh, flags, argc, argv, "session", PAM_SESSION_ERR);
	if (key_rc != PAM_SUCCESS && key_rc != PAM_IGNORE)
		return key_rc;
	if (piv_conf_load(&conf, PIV_CONF_PATH, argc, argv, &err) != 0) {
		pam_syslog(pamh, LOG_ALERT, "configuration error: %s", err.msg);
		return PAM_SERVICE_ERR;
	}
	watch_rc = piv_removal_open(pamh, &conf, conf.debug);
	piv_conf_free(&conf);
	if (watch_rc != PAM_SUCCESS && watch_rc != PAM_IGNORE)
		return watch_rc;
	return key_rc == PAM_SUCCESS || watch_rc == PAM_SUCCESS ? PAM_SUCCESS : PAM_IGNORE;
}

PAM_EXTERN int
pam_sm_close_session(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	(void)flags;
	(void)argc;
	(void)argv;
	return piv_removal_close(pamh, false);
}

