/* Mapping a validated certificate to accounts with libsss_certmap rules
 * (SPEC §3), and the decision whether the PAM user may log in with it. */
#ifndef PIV_MAPPING_H
#define PIV_MAPPING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "accounts/accounts.h"
#include "common/conf.h"
#include "common/status.h"

/* Does this account exist for NSS? (pam_modutil_getpwnam in the module.) */
typedef bool (*piv_account_exists_fn)(void *ud, const char *name);
/* Debug trace of each rule's result (may be NULL). */
typedef void (*piv_map_trace_fn)(void *ud, const char *line);

/* Run the rules in order; the first rule that yields existing accounts
 * decides. PIV_OK with acc filled, PIV_E_NOT_MAPPED when no rule yields an
 * account, PIV_E_CONFIG (why: e.g. a mapping file's FILE:LINE) or
 * PIV_E_INTERNAL on failure. */
enum piv_status piv_map_cert(const struct piv_conf *conf, const uint8_t *der, size_t len,
                             piv_account_exists_fn exists, piv_map_trace_fn trace, void *ud,
                             struct piv_accounts *acc, char *why, size_t why_size);

/* The decision: with a PAM user, it must be among the accounts; without,
 * there must be exactly one (returned in *chosen). */
enum piv_status piv_map_decide(const struct piv_accounts *acc, const char *pam_user,
                               const char **chosen);

#endif
