/* Downloading a CRL (see crlfetch.h) with OpenSSL's HTTP client. */
#include "config.h"
#include "pki/crlfetch.h"
#include "pki/cache.h"
#include "pki/crlstream.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>
#include <string.h>

#include <openssl/conf.h>
#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/x509v3.h>

/* OpenSSL's HTTP client takes 200 (and redirects) as answers; anything
 * else is an error whose data says "code=NNN". */
static bool
answered_not_modified(void)
{
	const char *data = NULL;
	int flags = 0;
	bool seen = false;
	unsigned long e;

	/* (the queue holds the status among what followed from it) */
	while ((e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags)) != 0)
		if (data != NULL && (flags & ERR_TXT_STRING) && strstr(data, "code=304") != NULL)
			seen = true;
	return seen;
}

enum piv_fetch_result
piv_crl_fetch(const struct piv_conf *conf, const char *url, const char *path,
              time_t if_modified_since, char *why, size_t why_size)
{
	STACK_OF(CONF_VALUE) *headers = NULL;
	enum piv_fetch_result ret = PIV_FETCH_FAILED;
	BIO *resp;
	char *data = NULL;
	long len;

	if (if_modified_since > 0) {
		char date[64];
		struct tm tm;
		if (gmtime_r(&if_modified_since, &tm) == NULL ||
		    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0 ||
		    X509V3_add_value("If-Modified-Since", date, &headers) != 1) {
			piv_fmt(why, why_size, "cannot make a conditional request for %s", url);
			goto out;
		}
	}
	/* The proxy is "": no environment variable (the caller's, under sudo)
	 * can send the request elsewhere. */
	resp = OSSL_HTTP_get(url, "", NULL, NULL, NULL, NULL, NULL, 0, headers, NULL, 1,
	                     (size_t)PIV_CRL_MAX_FILE, (int)conf->net_timeout);
	if (resp == NULL) {
		unsigned long e = ERR_peek_last_error();
		piv_fmt(why, why_size, "fetching %s failed: %s", url,
		        e ? ERR_reason_error_string(e) : "no answer");
		if (if_modified_since > 0 && answered_not_modified()) {
			why[0] = '\0';
			ret = PIV_FETCH_NOT_MODIFIED;
		}
		goto out;
	}
	len = BIO_get_mem_data(resp, &data);
	if (len <= 0 || data == NULL)
		piv_fmt(why, why_size, "fetching %s gave nothing", url);
	else if (piv_write_atomically(path, data, (size_t)len, NULL, 0) != 0)
		piv_fmt(why, why_size, "cannot store %s: %s", path, strerror(errno));
	else
		ret = PIV_FETCH_OK;
	BIO_free(resp);
out:
	sk_CONF_VALUE_pop_free(headers, X509V3_conf_free);
	ERR_clear_error();
	return ret;
}

#define URL_MAX 1024

void
piv_crl_url_note(const char *cache_dir, const char *url)
{
	char path[4200];
	struct stat st;
	size_t len = strlen(url);

	if (len == 0 || len >= URL_MAX ||
	    piv_cache_path(cache_dir, "cdpurl", url, "", path, sizeof(path)) != 0 ||
	    lstat(path, &st) == 0)
		return; /* noted already (or nothing to note) */
	(void)piv_write_atomically(path, url, len, NULL, 0);
}

void
piv_crl_url_each(const char *cache_dir, void (*fn)(void *ud, const char *url), void *ud)
{
	DIR *dir = opendir(cache_dir);
	struct dirent *de;

	while (dir != NULL && (de = readdir(dir)) != NULL) {
		char path[4200], url[URL_MAX + 1], check[4200];
		ssize_t n;
		int fd;
		if (strncmp(de->d_name, "cdpurl-", 7) != 0 || strchr(de->d_name, '.') != NULL ||
		    (size_t)snprintf(path, sizeof(path), "%s/%s", cache_dir, de->d_name) >= sizeof(path) ||
		    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0)
			continue;
		n = read(fd, url, URL_MAX);
		close(fd);
		if (n <= 7 || memchr(url, '\0', (size_t)n) != NULL)
			continue;
		url[n] = '\0';
		/* the name must be this URL's: nothing else is believed */
		if (strncmp(url, "http://", 7) != 0 ||
		    piv_cache_path(cache_dir, "cdpurl", url, "", check, sizeof(check)) != 0 ||
		    strcmp(check, path) != 0)
			continue;
		fn(ud, url);
	}
	if (dir != NULL)
		closedir(dir);
}
