/* cert_source (see certsrc.h): dir:PATH holds PATH/ACCOUNT.pem, written by
 * the administrator; ldap takes the account's entry's
 * userCertificate;binary. Nothing read here is trusted: a certificate only
 * counts once it validates and maps back to the account. */
#include "config.h"
#include "accounts/certsrc.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>

#include "accounts/directory.h"
#include "accounts/accounts.h"
#include "common/util.h"

#define PEM_FILE_MAX (1024 * 1024)
#define CERT_MAX_DER (64 * 1024)
#define LDAP_CERT_ATTR "userCertificate;binary"

void
piv_cert_list_free(struct piv_cert_list *list)
{
	for (size_t i = 0; i < list->n; i++)
		free(list->cert[i].data);
	memset(list, 0, sizeof(*list));
}

static int
list_add(struct piv_cert_list *list, const uint8_t *der, size_t len)
{
	uint8_t *copy;

	if (list->n >= PIV_MAX_SOURCE_CERTS || len == 0 || len > CERT_MAX_DER)
		return -1;
	if ((copy = malloc(len)) == NULL)
		return -1;
	memcpy(copy, der, len);
	list->cert[list->n].data = copy;
	list->cert[list->n].len = len;
	list->n++;
	return 0;
}

static enum piv_status
from_dir(const char *dir, const char *user, struct piv_cert_list *list, char *why,
         size_t why_size)
{
	char path[4200], inner[400];
	struct stat st;
	BIO *bio = NULL;
	X509 *cert;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s.pem", dir, user) >= sizeof(path))
		return PIV_E_INTERNAL;
	/* lstat, not access(2): under sudo the real uid is the caller's */
	if (lstat(path, &st) != 0 && errno == ENOENT)
		return PIV_OK; /* no certificates for this account */
	/* The administrator's file: root's alone, like the configuration. */
	if (piv_open_trusted_file(path, PEM_FILE_MAX, &fd, inner, sizeof(inner)) != 0) {
		piv_fmt(why, why_size, "%s", inner);
		return PIV_E_CONFIG;
	}
	bio = BIO_new_fd(fd, BIO_CLOSE);
	if (bio == NULL) {
		close(fd);
		return PIV_E_INTERNAL;
	}
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		unsigned char *der = NULL;
		int len = i2d_X509(cert, &der);
		int rc = len > 0 ? list_add(list, der, (size_t)len) : -1;
		OPENSSL_free(der);
		X509_free(cert);
		if (rc != 0) {
			piv_fmt(why, why_size, "%s: more than %d certificates, or one too large",
			        path, PIV_MAX_SOURCE_CERTS);
			BIO_free(bio);
			return PIV_E_CONFIG;
		}
	}
	/* The end of the file is the only acceptable way to stop. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE) {
		piv_fmt(why, why_size, "%s: not a PEM file of certificates", path);
		BIO_free(bio);
		ERR_clear_error();
		piv_cert_list_free(list);
		return PIV_E_CONFIG;
	}
	ERR_clear_error();
	BIO_free(bio);
	return PIV_OK;
}

struct ldap_certs {
	struct piv_cert_list *list;
	size_t skipped;
};

static void
ldap_cert_value(void *ud, const char *dn, const char *value, size_t len)
{
	struct ldap_certs *c = ud;

	(void)dn;
	if (value == NULL)
		return;
	if (list_add(c->list, (const uint8_t *)value, len) != 0)
		c->skipped++;
}

static enum piv_status
from_ldap(const struct piv_conf *conf, const char *user, struct piv_cert_list *list, char *why,
          size_t why_size)
{
	struct ldap_certs certs = { list, 0 };
	struct piv_dir *dir = NULL;
	struct piv_sigpipe_guard guard;
	enum piv_status st;
	size_t entries = 0;
	char *filter = piv_dir_equality_filter(conf->ldap_user_attr, user);

	if (filter == NULL)
		return PIV_E_INTERNAL;
	piv_sigpipe_block(&guard);
	st = piv_dir_open(conf, &dir, why, why_size);
	if (st == PIV_OK)
		st = piv_dir_search(dir, filter, LDAP_CERT_ATTR, ldap_cert_value, &certs, &entries, why,
		                    why_size);
	piv_dir_close(dir);
	piv_sigpipe_restore(&guard);
	free(filter);
	if (st != PIV_OK)
		piv_cert_list_free(list);
	return st;
}

enum piv_status
piv_cert_source_get(const struct piv_conf *conf, const char *user, struct piv_cert_list *list,
                    char *why, size_t why_size)
{
	memset(list, 0, sizeof(*list));
	if (conf->cert_source == NULL) {
		piv_fmt(why, why_size, "no cert_source configured");
		return PIV_E_CONFIG;
	}
	/* The name becomes a file name or a filter value: only real names. */
	if (!piv_valid_account_name(user)) {
		piv_fmt(why, why_size, "not a valid account name");
		return PIV_E_NOT_MAPPED;
	}
	if (strcmp(conf->cert_source, "ldap") == 0)
		return from_ldap(conf, user, list, why, why_size);
	{
		enum piv_status st = from_dir(conf->cert_source + 4, user, list, why, why_size);
		if (st == PIV_E_CONFIG)
			piv_conf_blame(conf, "cert_source", why, why_size);
		return st;
	}
}
