/* The PAM entry points: read the configuration, run one authentication
 * through auth.c with a PAM conversation, turn the outcome into a PAM code
 * (status.c), log one audit line, set PAM_USER and the token name. */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>

#define PAM_SM_AUTH
#include <security/pam_ext.h>
#include <security/pam_modules.h>
#include <security/pam_modutil.h>

#include "auth.h"
#include "conf.h"
#include "status.h"
#include "util.h"

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

static void
audit(pam_handle_t *pamh, const char *user, const struct piv_auth_result *res)
{
	char esc_user[300];

	piv_escape_str(user && *user ? user : "(none)", esc_user, sizeof(esc_user));
	if (res->status == PIV_OK) {
		pam_syslog(pamh, LOG_INFO,
		           "authentication succeeded: account=%s token=\"%s\" sha256=%s "
		           "subject=\"%s\" issuer=\"%s\" serial=%s",
		           res->account, res->token_label, res->cert.sha256, res->cert.subject,
		           res->cert.issuer, res->cert.serial);
	} else if (res->have_cert) {
		pam_syslog(pamh, res->status == PIV_E_CONFIG ? LOG_ALERT : LOG_NOTICE,
		           "authentication failed: user=%s result=%s reason=\"%s\" sha256=%s "
		           "subject=\"%s\" issuer=\"%s\" serial=%s",
		           esc_user, piv_status_name(res->status), res->reason, res->cert.sha256,
		           res->cert.subject, res->cert.issuer, res->cert.serial);
	} else {
		pam_syslog(pamh, res->status == PIV_E_CONFIG ? LOG_ALERT : LOG_NOTICE,
		           "authentication failed: user=%s result=%s reason=\"%s\"", esc_user,
		           piv_status_name(res->status), res->reason);
	}
}

PAM_EXTERN int
pam_sm_authenticate(pam_handle_t *pamh, int flags, int argc, const char **argv)
{
	struct pam_ui_ctx ctx = { pamh, (flags & PAM_SILENT) != 0, false };
	struct piv_ui ui = { &ctx, ui_ask_pin, ui_info, ui_error, ui_log, ui_account_exists };
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_auth_result *res = NULL;
	const void *item = NULL;
	const char *user = NULL;
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
	res = calloc(1, sizeof(*res));
	if (res == NULL) {
		pam_syslog(pamh, LOG_CRIT, "authentication failed: out of memory");
		goto out; /* PAM_AUTH_ERR: an internal error (SPEC §4) */
	}
	piv_authenticate(&conf, user, &ui, res);
	code = piv_status_pam_code(res->status, conf.card_only);
	if (res->status == PIV_OK) {
		if ((user == NULL || *user == '\0') &&
		    pam_set_item(pamh, PAM_USER, res->account) != PAM_SUCCESS) {
			res->status = PIV_E_INTERNAL;
			snprintf(res->reason, sizeof(res->reason), "cannot set PAM_USER");
			code = PAM_AUTH_ERR;
		} else {
			snprintf(env, sizeof(env), "PKCS11_LOGIN_TOKEN_NAME=%s", res->token_env);
			if (pam_putenv(pamh, env) != PAM_SUCCESS) {
				res->status = PIV_E_INTERNAL;
				snprintf(res->reason, sizeof(res->reason), "cannot set PAM environment");
				code = PAM_AUTH_ERR;
			}
		}
	}
	audit(pamh, user, res);
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
