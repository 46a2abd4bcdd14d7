/* Card removal (removal_action): the authentication leaves the identity of
 * the card that proved the key as PAM data; the session phase starts
 * pam-piv-watch for it, which asks systemd-logind to lock or terminate the
 * session when that card leaves its reader; closing the session ends the
 * watcher. Sessions authenticated otherwise are not watched. */
#ifndef PIV_REMOVAL_H
#define PIV_REMOVAL_H

#include <security/pam_modules.h>

#include "common/conf.h"
#include "pam/auth.h"

/* After a successful authentication by a card: keep its label and serial
 * for the session phase. PAM_SUCCESS, or PAM_BUF_ERR. */
int piv_removal_remember(pam_handle_t *pamh, const struct piv_auth_result *res);

/* pam_sm_open_session: PAM_IGNORE when there is nothing to watch (no
 * removal_action, or no card authenticated this handle), PAM_SUCCESS when
 * the watcher runs, PAM_SESSION_ERR when it cannot and removal_watch is
 * required (PAM_IGNORE, logged, when optional). */
int piv_removal_open(pam_handle_t *pamh, const struct piv_conf *conf, bool debug);

/* pam_sm_close_session: ends this session's watcher. PAM_SUCCESS if there
 * was one, else PAM_IGNORE. */
int piv_removal_close(pam_handle_t *pamh, bool debug);

/* A logind session id as XDG_SESSION_ID carries it: 1 to 64 of
 * [A-Za-z0-9_-]. */
bool piv_valid_session_id(const char *id);

#endif
