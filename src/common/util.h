/* Small helpers shared by the module, the helper and the tools: wiping
 * secrets, escaping untrusted bytes for logs and messages, monotonic time.
 * Nothing here keeps state. */
#ifndef PIV_UTIL_H
#define PIV_UTIL_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bytes owned by whoever holds the struct (a certificate's DER, ...). */
struct piv_blob {
	uint8_t *data;
	size_t len;
};

#define return_val_if_fail(expr, val) \
	do { if (!(expr)) return (val); } while (0)

/* Overwrite a secret so the compiler cannot drop the store. */
void piv_wipe(void *p, size_t len);
/* Wipe a NUL-terminated secret, free it, and clear the pointer. */
void piv_free_secret(char **secret);

/* Escape bytes that came from a card, a certificate or the network so they
 * can go into one log line or one terminal message: printable ASCII other
 * than backslash and double quote passes; everything else becomes \xHH.
 * Always NUL-terminates; truncates with "..." when out is too small.
 * Returns out. */
char *piv_escape(const void *in, size_t in_len, char *out, size_t out_size);
/* Same for a NUL-terminated string (NULL gives "(none)"). */
char *piv_escape_str(const char *in, char *out, size_t out_size);

/* Uppercase hex with a separator (0 for none). out_size >= 3 * len. */
char *piv_hex(const uint8_t *in, size_t len, char sep, char *out, size_t out_size);

/* snprintf that may truncate, with the format checked by the compiler. */
void piv_fmt(char *out, size_t out_size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Network code in the PAM process (revocation, LDAP) writes to sockets
 * that the peer may close; the libraries write without MSG_NOSIGNAL, and
 * the application's SIGPIPE disposition is not ours to change. Block it
 * around such work; restoring discards a SIGPIPE raised meanwhile (this
 * thread's) and puts the mask back. */
struct piv_sigpipe_guard {
	sigset_t old;
	bool was_pending;
	bool active;
};
void piv_sigpipe_block(struct piv_sigpipe_guard *g);
void piv_sigpipe_restore(struct piv_sigpipe_guard *g);

/* Milliseconds on the monotonic clock. */
int64_t piv_now_ms(void);

/* Two distinguished names in RFC 4514 form, as an administrator writes
 * one and as a certificate's prints: spaces around separators do not
 * count, case does not count, and an empty or overlong DN matches none. */
bool piv_dn_equal(const char *written, const char *cert_dn);

/* Strict decimal parse of an unsigned value in [min, max]. 0 on success. */
int piv_parse_uint(const char *s, unsigned min, unsigned max, unsigned *out);

#endif
