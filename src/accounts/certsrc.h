/* cert_source: a user's certificates when the card is not in a local
 * reader (sshd, sudo over ssh). The certificates found here are only
 * candidates: every one is assessed exactly like a card's (assess.h). */
#ifndef PIV_CERTSRC_H
#define PIV_CERTSRC_H

#include <stddef.h>

#include "common/conf.h"
#include "common/status.h"
#include "pki/validate.h"

#define PIV_MAX_SOURCE_CERTS 16

struct piv_cert_list {
	struct piv_blob cert[PIV_MAX_SOURCE_CERTS];
	size_t n;
};

/* The certificates cert_source holds for user (none is not an error).
 * PIV_E_CONFIG (no cert_source, unsafe file), PIV_E_DIRECTORY (LDAP could
 * not answer), PIV_E_INTERNAL; why says which. */
enum piv_status piv_cert_source_get(const struct piv_conf *conf, const char *user,
                                    struct piv_cert_list *list, char *why, size_t why_size);

void piv_cert_list_free(struct piv_cert_list *list);

#endif
