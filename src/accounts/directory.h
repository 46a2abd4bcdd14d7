/* The LDAP directory behind ldap: mapping rules (SPEC §3): one connection
 * per login, opened on first use, every step inside one net_timeout
 * budget. Only libldap is spoken here; the filter comes from
 * libsss_certmap, already escaped (RFC 4515). */
#ifndef PIV_DIRECTORY_H
#define PIV_DIRECTORY_H

#include <stddef.h>

#include "common/conf.h"
#include "common/status.h"

struct piv_dir;

/* Connect (StartTLS when configured), bind (simple with the password
 * file, or anonymous). The net_timeout budget starts here.
 * PIV_OK; PIV_E_DIRECTORY when the directory cannot be reached or does
 * not answer in time; PIV_E_CONFIG when our own settings are at fault
 * (unsafe password file, refused credentials). why says which. */
enum piv_status piv_dir_open(const struct piv_conf *conf, struct piv_dir **out,
                             char *why, size_t why_size);

/* One value of the attribute asked for, of one entry found (dn escaped-safe only
 * after piv_escape: it comes from the server). */
typedef void (*piv_dir_value_fn)(void *ud, const char *dn, const char *value, size_t len);

/* Search the subtree under ldap_base with the filter; fn sees every value
 * of attr (NULL value: an entry without it); *entries counts the entries
 * found. PIV_E_AMBIGUOUS when more than PIV_MAX_ACCOUNTS entries match. */
enum piv_status piv_dir_search(struct piv_dir *dir, const char *filter, const char *attr,
                               piv_dir_value_fn fn, void *ud, size_t *entries, char *why,
                               size_t why_size);

/* filter's "(attr=VALUE)" with VALUE escaped as RFC 4515 wants; NULL if
 * out of memory. Free with free(). */
char *piv_dir_equality_filter(const char *attr, const char *value);

void piv_dir_close(struct piv_dir *dir);

#endif
