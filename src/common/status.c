/* The decision table of SPEC §4: reason → PAM code and user text. Kept in
 * one place so that no path can invent its own return code. */
#include "config.h"
#include "common/status.h"

#include <stddef.h>

#include <security/pam_modules.h>

static const struct {
	const char *name;
	int pam_code;
	const char *user_text;
} table[PIV_STATUS_COUNT] = {
	[PIV_OK] = { "success", PAM_SUCCESS, NULL },
	[PIV_E_NO_CARD] = { "no-card", PAM_AUTHINFO_UNAVAIL, "No PIV card found" },
	[PIV_E_CERT_UNTRUSTED] = { "cert-untrusted", PAM_AUTH_ERR,
		"PIV certificate is not trusted" },
	[PIV_E_CERT_EXPIRED] = { "cert-expired", PAM_AUTH_ERR, "PIV certificate has expired" },
	[PIV_E_CERT_NOT_YET_VALID] = { "cert-not-yet-valid", PAM_AUTH_ERR,
		"PIV certificate is not yet valid" },
	[PIV_E_CERT_KEY_USAGE] = { "cert-key-usage", PAM_AUTH_ERR,
		"PIV certificate is not for digital signatures" },
	[PIV_E_CERT_EKU] = { "cert-eku", PAM_AUTH_ERR,
		"PIV certificate lacks a required extended key usage" },
	[PIV_E_CERT_POLICY] = { "cert-policy", PAM_AUTH_ERR,
		"PIV certificate lacks a required certificate policy" },
	[PIV_E_CERT_CARD_AUTH] = { "cert-card-auth", PAM_AUTH_ERR,
		"PIV Card Authentication certificates cannot be used to log in" },
	[PIV_E_CERT_KEY_TYPE] = { "cert-key-type", PAM_AUTH_ERR,
		"PIV certificate key type or size is not supported" },
	[PIV_E_CERT_INVALID] = { "cert-invalid", PAM_AUTH_ERR, "PIV certificate is invalid" },
	[PIV_E_CERT_REVOKED] = { "cert-revoked", PAM_AUTH_ERR, "PIV certificate has been revoked" },
	[PIV_E_REVOCATION_UNKNOWN] = { "revocation-unknown", PAM_AUTH_ERR,
		"revocation status unavailable" },
	[PIV_E_NOT_MAPPED] = { "not-mapped", PAM_AUTH_ERR, "certificate is not mapped to USER" },
	[PIV_E_AMBIGUOUS] = { "ambiguous", PAM_AUTH_ERR,
		"certificate maps to more than one account: enter a user name" },
	[PIV_E_DIRECTORY] = { "directory-unavailable", PAM_AUTHINFO_UNAVAIL,
		"account directory unavailable" },
	[PIV_E_PIN_WRONG] = { "pin-wrong", PAM_AUTH_ERR, "Wrong PIN" },
	[PIV_E_PIN_LOCKED] = { "pin-locked", PAM_MAXTRIES, "PIN is locked" },
	[PIV_E_NO_KEY] = { "no-key", PAM_AUTH_ERR, NULL },
	[PIV_E_SIGNATURE] = { "bad-signature", PAM_AUTH_ERR, NULL },
	[PIV_E_CONFIG] = { "config-error", PAM_SERVICE_ERR, NULL },
	[PIV_E_HELPER] = { "helper-failed", PAM_AUTH_ERR, NULL },
	[PIV_E_CONV] = { "conversation-failed", PAM_AUTH_ERR, NULL },
	[PIV_E_INTERNAL] = { "internal-error", PAM_AUTH_ERR, NULL },
};

int
piv_status_pam_code(enum piv_status status, bool card_only)
{
	if ((unsigned)status >= PIV_STATUS_COUNT)
		return PAM_AUTH_ERR;
	if (status == PIV_E_NO_CARD && card_only)
		return PAM_AUTH_ERR;
	return table[status].pam_code;
}

const char *
piv_status_user_text(enum piv_status status)
{
	if ((unsigned)status >= PIV_STATUS_COUNT)
		return NULL;
	return table[status].user_text;
}

const char *
piv_status_name(enum piv_status status)
{
	if ((unsigned)status >= PIV_STATUS_COUNT)
		return "unknown";
	return table[status].name;
}
