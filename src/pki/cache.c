/* cache_dir (see cache.h): its safety check, file naming, and atomic
 * writes shared by the CRL and OCSP caches. */
#include "config.h"
#include "pki/cache.h"
#include "common/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

void
piv_sha256(const void *data, size_t len, uint8_t out[32])
{
	unsigned int n = 32;

	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

int
piv_cache_dir_check(const char *dir, char *why, size_t why_size)
{
	struct stat st;

	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		piv_fmt(why, why_size, "cache_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (lstat(dir, &st) != 0) {
		piv_fmt(why, why_size, "cache_dir %s: %s", dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH))) {
		piv_fmt(why, why_size, "cache_dir %s: must be a directory owned by uid %u and not "
		        "writable by group or others", dir, (unsigned)geteuid());
		return -1;
	}
	return 0;
}

int
piv_cache_path(const char *dir, const char *prefix, const char *key, const char *suffix,
               char *out, size_t out_size)
{
	uint8_t h[32];
	char hex[65];

	piv_sha256(key, strlen(key), h);
	piv_hex(h, sizeof(h), 0, hex, sizeof(hex));
	return (size_t)snprintf(out, out_size, "%s/%s-%s%s", dir, prefix, hex, suffix) < out_size
	       ? 0 : -1;
}

static int
write_all(int fd, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int
piv_write_atomically(const char *path, const void *head, size_t head_len, const void *body,
                     size_t body_len)
{
	char tmp[4200];
	int fd;

	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path) >= sizeof(tmp))
		return -1;
	fd = mkstemp(tmp);
	if (fd < 0)
		return -1;
	if (fchmod(fd, 0600) != 0 || (head_len > 0 && write_all(fd, head, head_len) != 0) ||
	    (body_len > 0 && write_all(fd, body, body_len) != 0) || fsync(fd) != 0) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	if (close(fd) != 0 || rename(tmp, path) != 0) {
		unlink(tmp);
		return -1;
	}
	return 0;
}
