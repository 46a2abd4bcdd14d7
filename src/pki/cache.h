/* cache_dir: where fetched CRLs, CRL indexes and OCSP responses live. It
 * must be a private directory of the user the module runs as; files in it
 * are written whole (temporary file, fsync, rename), so concurrent logins
 * never see a partial one. */
#ifndef PIV_CACHE_H
#define PIV_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* Make sure dir exists (created 0700) and is safe: a directory (not a
 * symlink) owned by the effective user, not writable by group or others.
 * 0, or -1 with why. */
int piv_cache_dir_check(const char *dir, char *why, size_t why_size);

/* DIR/PREFIX-<sha256(key)>SUFFIX. 0, or -1 when it does not fit. */
int piv_cache_path(const char *dir, const char *prefix, const char *key, const char *suffix,
                   char *out, size_t out_size);

/* head then body (either may be empty) to path, atomically. 0 or -1. */
int piv_write_atomically(const char *path, const void *head, size_t head_len, const void *body,
                         size_t body_len);

void piv_sha256(const void *data, size_t len, uint8_t out[32]);

#endif
