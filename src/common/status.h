/* The reasons a login ends, and the one table that turns a reason into a
 * PAM return code and the words the user sees (SPEC §4). Every stage
 * returns one of these; only the PAM layer turns them into PAM codes. */
#ifndef PIV_STATUS_H
#define PIV_STATUS_H

#include <stdbool.h>

enum piv_status {
	PIV_OK = 0,
	PIV_E_NO_CARD,            /* no token, no reader, module will not load */
	PIV_E_CERT_UNTRUSTED,
	PIV_E_CERT_EXPIRED,
	PIV_E_CERT_NOT_YET_VALID,
	PIV_E_CERT_KEY_USAGE,
	PIV_E_CERT_EKU,
	PIV_E_CERT_POLICY,
	PIV_E_CERT_CARD_AUTH,     /* PIV Card Authentication certificate */
	PIV_E_CERT_KEY_TYPE,
	PIV_E_CERT_INVALID,       /* malformed or otherwise invalid */
	PIV_E_CERT_REVOKED,       /* the certificate or an issuing CA */
	PIV_E_REVOCATION_UNKNOWN,
	PIV_E_NOT_MAPPED,         /* maps to no account or to another one */
	PIV_E_AMBIGUOUS,          /* username-less login, several accounts */
	PIV_E_DIRECTORY,          /* the LDAP directory could not answer */
	PIV_E_PIN_WRONG,
	PIV_E_PIN_LOCKED,
	PIV_E_NO_KEY,             /* no private key for the certificate */
	PIV_E_SIGNATURE,          /* proof of possession failed */
	PIV_E_CONFIG,
	PIV_E_HELPER,             /* helper crashed, timed out, spoke nonsense */
	PIV_E_CONV,               /* conversation failed or was cancelled */
	PIV_E_INTERNAL,
	PIV_STATUS_COUNT
};

/* The PAM return code for a status (never PAM_IGNORE; PAM_SUCCESS only for
 * PIV_OK). card_only turns "no card" into an authentication failure. */
int piv_status_pam_code(enum piv_status status, bool card_only);

/* The fixed sentence shown to the user for a status, or NULL when nothing
 * is shown (SPEC §4 "the user is told"). */
const char *piv_status_user_text(enum piv_status status);

/* A short stable name for logs ("cert-expired"). */
const char *piv_status_name(enum piv_status status);

#endif
