/* The LDAP directory of ldap: mapping rules (see directory.h).
 *
 * Bounding: one budget of net_timeout covers the whole conversation of a
 * login (connect, TLS, bind, every search). Before each step the time left
 * goes to libldap as its network timeout (connect and TLS handshake) and
 * its API timeout (waiting for each answer), and to the socket itself as
 * SO_RCVTIMEO/SO_SNDTIMEO, so that no blocking read inside a library can
 * outlive it. */
#include "config.h"
#include "accounts/directory.h"
#include "common/util.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <lber.h>
#include <ldap.h>

#include "accounts/accounts.h"

#define PW_FILE_MAX 1024

struct piv_dir {
	LDAP *ld;
	const struct piv_conf *conf;
	int64_t deadline; /* monotonic ms */
	struct ldap_conncb conncb;
};

static bool
time_left(const struct piv_dir *dir, struct timeval *tv)
{
	int64_t left = dir->deadline - piv_now_ms();

	if (left <= 0)
		return false;
	tv->tv_sec = (time_t)(left / 1000);
	tv->tv_usec = (suseconds_t)(left % 1000) * 1000;
	return true;
}

static const char *
uri_for_log(const struct piv_dir *dir, char *buf, size_t size)
{
	return piv_escape_str(dir->conf->ldap_uri, buf, size);
}

/* Give libldap the time that is left before the next step. */
static enum piv_status
arm(struct piv_dir *dir, const char *step, char *why, size_t why_size)
{
	struct timeval tv;
	char u[200];

	if (!time_left(dir, &tv)) {
		piv_fmt(why, why_size, "LDAP %s: %s: net_timeout (%u s) used up",
		        uri_for_log(dir, u, sizeof(u)), step, dir->conf->net_timeout);
		return PIV_E_DIRECTORY;
	}
	if (ldap_set_option(dir->ld, LDAP_OPT_NETWORK_TIMEOUT, &tv) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(dir->ld, LDAP_OPT_TIMEOUT, &tv) != LDAP_OPT_SUCCESS) {
		piv_fmt(why, why_size, "LDAP: cannot set the timeouts");
		return PIV_E_INTERNAL;
	}
	return PIV_OK;
}

/* Every new connection: its socket's own timeouts end with the budget. */
static int
on_connect(LDAP *ld, Sockbuf *sb, LDAPURLDesc *srv, struct sockaddr *addr,
           struct ldap_conncb *ctx)
{
	struct piv_dir *dir = ctx->lc_arg;
	struct timeval tv;
	ber_socket_t fd = -1;

	(void)ld;
	(void)srv;
	(void)addr;
	if (!time_left(dir, &tv))
		tv = (struct timeval){ 0, 1000 };
	if (ber_sockbuf_ctrl(sb, LBER_SB_OPT_GET_FD, &fd) != 1 || fd < 0)
		return -1;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) != 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) != 0)
		return -1;
	return 0;
}

static void
on_disconnect(LDAP *ld, Sockbuf *sb, struct ldap_conncb *ctx)
{
	(void)ld;
	(void)sb;
	(void)ctx;
}

/* A failed step: say what the library and the server said, and whose
 * fault it is. Settings the directory refuses are ours to fix
 * (PAM_SERVICE_ERR); everything else means it could not answer. */
static enum piv_status
failure(struct piv_dir *dir, const char *step, int rc, char *why, size_t why_size)
{
	char *diag = NULL;
	char u[200], d[200];

	if (ldap_get_option(dir->ld, LDAP_OPT_DIAGNOSTIC_MESSAGE, &diag) != LDAP_OPT_SUCCESS)
		diag = NULL;
	piv_fmt(why, why_size, "LDAP %s: %s: %s%s%s%s", uri_for_log(dir, u, sizeof(u)), step,
	        ldap_err2string(rc), diag && *diag ? " (" : "",
	        diag && *diag ? piv_escape_str(diag, d, sizeof(d)) : "", diag && *diag ? ")" : "");
	ldap_memfree(diag);
	switch (rc) {
	case LDAP_INVALID_CREDENTIALS:
	case LDAP_INAPPROPRIATE_AUTH:
	case LDAP_INSUFFICIENT_ACCESS:
	case LDAP_CONFIDENTIALITY_REQUIRED:
	case LDAP_STRONG_AUTH_REQUIRED:
	case LDAP_NO_SUCH_OBJECT:
	case LDAP_INVALID_DN_SYNTAX:
	case LDAP_FILTER_ERROR:
	case LDAP_UNDEFINED_TYPE:
	case LDAP_INAPPROPRIATE_MATCHING:
		return PIV_E_CONFIG;
	default:
		return PIV_E_DIRECTORY;
	}
}

/* The bind password: a secret file that only root may read, not just
 * write. One line; a final newline is not part of the password. */
static enum piv_status
read_password(const char *path, struct berval *pw, char *why, size_t why_size)
{
	char buf[PW_FILE_MAX + 2];
	char inner[300];
	struct stat st;
	size_t len = 0;
	int fd;

	if (piv_open_trusted_file(path, PW_FILE_MAX, &fd, inner, sizeof(inner)) != 0) {
		piv_fmt(why, why_size, "%s", inner);
		return PIV_E_CONFIG;
	}
	if (fstat(fd, &st) != 0 || (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
		close(fd);
		piv_fmt(why, why_size, "%s: readable by group or others "
		        "(it holds a password: chmod 600)", path);
		return PIV_E_CONFIG;
	}
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len >= sizeof(buf) - 1)
			break;
	}
	close(fd);
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	if (len == 0 || len > PW_FILE_MAX || memchr(buf, '\n', len) != NULL ||
	    memchr(buf, '\0', len) != NULL) {
		piv_wipe(buf, sizeof(buf));
		piv_fmt(why, why_size, "%s: must hold one line, the password", path);
		return PIV_E_CONFIG;
	}
	pw->bv_val = malloc(len + 1);
	if (pw->bv_val == NULL) {
		piv_wipe(buf, sizeof(buf));
		return PIV_E_INTERNAL;
	}
	memcpy(pw->bv_val, buf, len);
	pw->bv_val[len] = '\0';
	pw->bv_len = len;
	piv_wipe(buf, sizeof(buf));
	return PIV_OK;
}

static enum piv_status
set_options(struct piv_dir *dir, char *why, size_t why_size)
{
	const struct piv_conf *conf = dir->conf;
	int version = LDAP_VERSION3, deref = LDAP_DEREF_NEVER;
	bool tls = conf->ldap_starttls || strncmp(conf->ldap_uri, "ldaps:", 6) == 0;
	char inner[300];

	dir->conncb = (struct ldap_conncb){ on_connect, on_disconnect, dir };
	if (ldap_set_option(dir->ld, LDAP_OPT_PROTOCOL_VERSION, &version) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(dir->ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(dir->ld, LDAP_OPT_DEREF, &deref) != LDAP_OPT_SUCCESS ||
	    /* Only the asynchronous connect waits for the TLS handshake with
	     * poll() and the network timeout; the synchronous one retries the
	     * handshake in a busy loop for as long as the peer keeps silent. */
	    ldap_set_option(dir->ld, LDAP_OPT_CONNECT_ASYNC, LDAP_OPT_ON) != LDAP_OPT_SUCCESS ||
	    ldap_set_option(dir->ld, LDAP_OPT_CONNECT_CB, &dir->conncb) != LDAP_OPT_SUCCESS) {
		piv_fmt(why, why_size, "LDAP: cannot set the connection options");
		return PIV_E_INTERNAL;
	}
	if (!tls)
		return PIV_OK;
	/* The CA decides who may answer for the directory: trust material. */
	if (piv_check_root_owned(conf->ldap_ca_file, false, inner, sizeof(inner)) != 0) {
		piv_fmt(why, why_size, "%s", inner);
		piv_conf_blame(conf, "ldap_ca_file", why, why_size);
		return PIV_E_CONFIG;
	}
	{
		int hard = LDAP_OPT_X_TLS_HARD, min = LDAP_OPT_X_TLS_PROTOCOL_TLS1_2, server = 0;
		if (ldap_set_option(dir->ld, LDAP_OPT_X_TLS_CACERTFILE, conf->ldap_ca_file) !=
		            LDAP_OPT_SUCCESS ||
		    ldap_set_option(dir->ld, LDAP_OPT_X_TLS_REQUIRE_CERT, &hard) != LDAP_OPT_SUCCESS ||
		    ldap_set_option(dir->ld, LDAP_OPT_X_TLS_PROTOCOL_MIN, &min) != LDAP_OPT_SUCCESS ||
		    ldap_set_option(dir->ld, LDAP_OPT_X_TLS_NEWCTX, &server) != LDAP_OPT_SUCCESS) {
			piv_fmt(why, why_size, "LDAP: cannot set up TLS with ldap_ca_file %s",
			        conf->ldap_ca_file);
			return PIV_E_CONFIG;
		}
	}
	return PIV_OK;
}

enum piv_status
piv_dir_open(const struct piv_conf *conf, struct piv_dir **out, char *why, size_t why_size)
{
	struct piv_dir *dir;
	enum piv_status st;
	int rc;

	*out = NULL;
	dir = calloc(1, sizeof(*dir));
	if (dir == NULL)
		return PIV_E_INTERNAL;
	dir->conf = conf;
	dir->deadline = piv_now_ms() + (int64_t)conf->net_timeout * 1000;
	if (ldap_initialize(&dir->ld, conf->ldap_uri) != LDAP_SUCCESS) {
		piv_fmt(why, why_size, "LDAP: cannot use ldap_uri");
		free(dir);
		return PIV_E_CONFIG;
	}
	st = set_options(dir, why, why_size);
	if (st == PIV_OK && conf->ldap_starttls) {
		st = arm(dir, "StartTLS", why, why_size);
		if (st == PIV_OK && (rc = ldap_start_tls_s(dir->ld, NULL, NULL)) != LDAP_SUCCESS)
			st = failure(dir, "StartTLS", rc, why, why_size);
	}
	if (st == PIV_OK && conf->ldap_bind_dn != NULL) {
		struct berval pw = { 0, NULL };
		st = read_password(conf->ldap_bind_pw_file, &pw, why, why_size);
		if (st == PIV_E_CONFIG)
			piv_conf_blame(conf, "ldap_bind_pw_file", why, why_size);
		if (st == PIV_OK)
			st = arm(dir, "bind", why, why_size);
		if (st == PIV_OK) {
			rc = ldap_sasl_bind_s(dir->ld, conf->ldap_bind_dn, LDAP_SASL_SIMPLE, &pw, NULL,
			                      NULL, NULL);
			if (rc != LDAP_SUCCESS)
				st = failure(dir, "bind as ldap_bind_dn", rc, why, why_size);
		}
		if (pw.bv_val != NULL) {
			piv_wipe(pw.bv_val, pw.bv_len);
			free(pw.bv_val);
		}
	}
	if (st != PIV_OK) {
		piv_dir_close(dir);
		return st;
	}
	*out = dir;
	return PIV_OK;
}

enum piv_status
piv_dir_search(struct piv_dir *dir, const char *filter, const char *attr, piv_dir_value_fn fn,
               void *ud, size_t *entries, char *why, size_t why_size)
{
	char *attrs[] = { (char *)attr, NULL };
	LDAPMessage *res = NULL;
	enum piv_status st;
	struct timeval tv;
	int rc;

	*entries = 0;
	st = arm(dir, "search", why, why_size);
	if (st != PIV_OK || !time_left(dir, &tv))
		return st != PIV_OK ? st : PIV_E_DIRECTORY;
	rc = ldap_search_ext_s(dir->ld, dir->conf->ldap_base, LDAP_SCOPE_SUBTREE, filter, attrs, 0,
	                       NULL, NULL, &tv, PIV_MAX_ACCOUNTS + 1, &res);
	if (rc == LDAP_SIZELIMIT_EXCEEDED) {
		ldap_msgfree(res);
		piv_fmt(why, why_size, "LDAP search: more than %d entries match the certificate",
		        PIV_MAX_ACCOUNTS);
		return PIV_E_AMBIGUOUS;
	}
	if (rc != LDAP_SUCCESS) {
		ldap_msgfree(res);
		return failure(dir, "search", rc, why, why_size);
	}
	for (LDAPMessage *e = ldap_first_entry(dir->ld, res); e != NULL;
	     e = ldap_next_entry(dir->ld, e)) {
		char *dn = ldap_get_dn(dir->ld, e);
		struct berval **vals = ldap_get_values_len(dir->ld, e, attr);

		(*entries)++;
		if (vals == NULL || vals[0] == NULL)
			fn(ud, dn ? dn : "", NULL, 0);
		for (size_t i = 0; vals != NULL && vals[i] != NULL; i++)
			fn(ud, dn ? dn : "", vals[i]->bv_val, vals[i]->bv_len);
		ldap_value_free_len(vals);
		ldap_memfree(dn);
	}
	ldap_msgfree(res);
	return PIV_OK;
}

char *
piv_dir_equality_filter(const char *attr, const char *value)
{
	struct berval in = { strlen(value), (char *)value }, out = { 0, NULL };
	char *filter = NULL;

	if (ldap_bv2escaped_filter_value(&in, &out) != 0)
		return NULL;
	if (asprintf(&filter, "(%s=%s)", attr, out.bv_val) < 0)
		filter = NULL;
	ldap_memfree(out.bv_val);
	return filter;
}

void
piv_dir_close(struct piv_dir *dir)
{
	if (dir == NULL)
		return;
	if (dir->ld != NULL)
		ldap_unbind_ext_s(dir->ld, NULL, NULL);
	free(dir);
}
