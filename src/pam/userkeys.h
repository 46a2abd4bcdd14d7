/* A user's currently valid certificates from cert_source, each assessed
 * like a card's certificate (chain, EKU/policy, card-auth rule,
 * revocation, mapping back to the same user): the keys sshd may accept
 * (pam-piv-authorized-keys, the account check) and an ssh-agent may prove
 * (agent = yes). */
#ifndef PIV_USERKEYS_H
#define PIV_USERKEYS_H

#include <stddef.h>
#include <stdint.h>

#include <openssl/x509.h>

#include "pam/assess.h"
#include "common/conf.h"
#include "common/status.h"
#include "pki/validate.h"

/* One valid certificate: its SSH public key blob (wire format) too. */
typedef void (*piv_user_key_fn)(void *ud, X509 *leaf, const uint8_t *ssh_blob, size_t blob_len);

/* Calls fn for each valid certificate of user; hooks->log hears why the
 * others are not. *n_valid counts them. PIV_OK (possibly none valid),
 * or the cert_source's own failure (PIV_E_CONFIG, PIV_E_DIRECTORY, ...). */
enum piv_status piv_user_keys(const struct piv_conf *conf, const struct piv_trust *trust,
                              const char *user, const struct piv_assess_hooks *hooks,
                              piv_user_key_fn fn, void *ud, size_t *n_valid, char *why,
                              size_t why_size);

#endif
