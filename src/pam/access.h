/* Which logins may use the local card reader at all, decided from the PAM
 * service and PAM_RHOST before the card is touched (allowed_services,
 * allow_remote): the reader belongs to whoever sits at this host, not to
 * a password login from elsewhere that happens to carry the same name. */
#ifndef PIV_ACCESS_H
#define PIV_ACCESS_H

#include <stdbool.h>
#include <stddef.h>

#include "common/conf.h"
#include "common/status.h"

/* Is a PAM_RHOST value this host? Unset or empty, localhost, a loopback
 * address (127.0.0.0/8, ::1, ::ffff:127.x), or this host's own name
 * (hostname, compared case-insensitively, also by its first label). No
 * name is looked up: the value comes from the application, and a login
 * does no DNS. */
bool piv_rhost_is_local(const char *rhost, const char *hostname);

/* Does allowed_services let the PAM service use the card? rules as
 * configured: no rules means every service but sshd; a plain name
 * replaces that default with the names listed; +NAME adds, -NAME removes
 * (in order, the last word on a name wins). */
bool piv_service_allowed(const struct piv_strlist *rules, const char *service);

/* PIV_OK when the local reader may be used for this login; PIV_E_NO_CARD
 * with why when it may not. service or rhost NULL: not known (the tools). */
enum piv_status piv_reader_access(const struct piv_conf *conf, const char *service,
                                  const char *rhost, char *why, size_t why_size);

#endif
