/* Mapping files (map = file:PATH, SPEC §3): lines "account matcher" for the
 * cases no rule language covers well — a certificate fingerprint, a DN, an
 * issuer and serial, a subject key identifier, the PIV FASC-N or card
 * UUID. */
#ifndef PIV_MAPFILE_H
#define PIV_MAPFILE_H

#include <stddef.h>

#include <openssl/x509.h>

#include "accounts/accounts.h"
#include "common/status.h"

#define PIV_MAPFILE_MAX_SIZE (4 * 1024 * 1024)

/* What the matchers compare, taken once from the certificate. Hex is
 * lowercase without separators; DNs are RFC 4514 strings. */
struct piv_cert_facts {
	char sha256[65];
	char subject[1024];
	char issuer[1024];
	char serial[100];     /* without leading zeros */
	char ski[130];        /* "" when absent */
	char fascn[80];       /* "" when absent */
	char uuid[40];        /* "" when absent */
};

int piv_cert_facts(X509 *cert, struct piv_cert_facts *facts);

/* Add the accounts the file maps this certificate to. PIV_OK (possibly
 * with no account), or PIV_E_CONFIG with why = "FILE:LINE: reason" for an
 * unsafe file or a line that does not parse (the whole file is refused:
 * a typo must not silently drop a binding). */
enum piv_status piv_mapfile_lookup(const char *path, const struct piv_cert_facts *facts,
                                   struct piv_accounts *acc, char *why, size_t why_size);

/* The same over text in memory (tests, fuzzing). */
enum piv_status piv_mapfile_lookup_text(const char *name, char *text,
                                        const struct piv_cert_facts *facts,
                                        struct piv_accounts *acc, char *why, size_t why_size);

#endif
