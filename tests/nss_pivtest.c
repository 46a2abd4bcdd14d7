/* A test NSS module for nss_wrapper (NSS_WRAPPER_MODULE_SO_PATH,
 * NSS_WRAPPER_MODULE_FN_PREFIX=pivtest): a directory that matches names
 * without case, as SSSD or winbind can be configured to. "ALICE" and
 * "Alice" are the account alice; the exact name "alice" is left to the
 * files backend. It knows nothing else. */
#include "config.h"

#include <errno.h>
#include <grp.h>
#include <nss.h>
#include <pwd.h>
#include <string.h>
#include <strings.h>
#include <sys/types.h>

enum nss_status _nss_pivtest_getpwnam_r(const char *name, struct passwd *pw, char *buf,
                                        size_t buflen, int *errnop);
enum nss_status _nss_pivtest_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen,
                                        int *errnop);
enum nss_status _nss_pivtest_setpwent(void);
enum nss_status _nss_pivtest_getpwent_r(struct passwd *pw, char *buf, size_t buflen, int *errnop);
enum nss_status _nss_pivtest_endpwent(void);
enum nss_status _nss_pivtest_initgroups_dyn(const char *user, gid_t group, long *start, long *size,
                                            gid_t **groups, long limit, int *errnop);
enum nss_status _nss_pivtest_getgrnam_r(const char *name, struct group *gr, char *buf,
                                        size_t buflen, int *errnop);
enum nss_status _nss_pivtest_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen,
                                        int *errnop);
enum nss_status _nss_pivtest_setgrent(void);
enum nss_status _nss_pivtest_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop);
enum nss_status _nss_pivtest_endgrent(void);

static char *
put(char **p, char *end, const char *s)
{
	size_t len = strlen(s) + 1;
	char *at = *p;

	if ((size_t)(end - *p) < len)
		return NULL;
	memcpy(at, s, len);
	*p += len;
	return at;
}

enum nss_status
_nss_pivtest_getpwnam_r(const char *name, struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
	char *p = buf, *end = buf + buflen;

	if (strcasecmp(name, "alice") != 0 || strcmp(name, "alice") == 0)
		return NSS_STATUS_NOTFOUND;
	if ((pw->pw_name = put(&p, end, "alice")) == NULL || (pw->pw_passwd = put(&p, end, "x")) == NULL ||
	    (pw->pw_gecos = put(&p, end, "Alice Example")) == NULL ||
	    (pw->pw_dir = put(&p, end, "/nonexistent/alice")) == NULL ||
	    (pw->pw_shell = put(&p, end, "/bin/false")) == NULL) {
		*errnop = ERANGE;
		return NSS_STATUS_TRYAGAIN;
	}
	pw->pw_uid = 1001;
	pw->pw_gid = 1001;
	return NSS_STATUS_SUCCESS;
}

enum nss_status
_nss_pivtest_getpwuid_r(uid_t uid, struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
	(void)uid, (void)pw, (void)buf, (void)buflen, (void)errnop;
	return NSS_STATUS_NOTFOUND;
}

enum nss_status _nss_pivtest_setpwent(void) { return NSS_STATUS_SUCCESS; }
enum nss_status _nss_pivtest_endpwent(void) { return NSS_STATUS_SUCCESS; }

enum nss_status
_nss_pivtest_getpwent_r(struct passwd *pw, char *buf, size_t buflen, int *errnop)
{
	(void)pw, (void)buf, (void)buflen, (void)errnop;
	return NSS_STATUS_NOTFOUND;
}

enum nss_status
_nss_pivtest_initgroups_dyn(const char *user, gid_t group, long *start, long *size, gid_t **groups,
                            long limit, int *errnop)
{
	(void)user, (void)group, (void)start, (void)size, (void)groups, (void)limit, (void)errnop;
	return NSS_STATUS_NOTFOUND;
}

enum nss_status
_nss_pivtest_getgrnam_r(const char *name, struct group *gr, char *buf, size_t buflen, int *errnop)
{
	(void)name, (void)gr, (void)buf, (void)buflen, (void)errnop;
	return NSS_STATUS_NOTFOUND;
}

enum nss_status
_nss_pivtest_getgrgid_r(gid_t gid, struct group *gr, char *buf, size_t buflen, int *errnop)
{
	(void)gid, (void)gr, (void)buf, (void)buflen, (void)errnop;
	return NSS_STATUS_NOTFOUND;
}

enum nss_status _nss_pivtest_setgrent(void) { return NSS_STATUS_SUCCESS; }
enum nss_status _nss_pivtest_endgrent(void) { return NSS_STATUS_SUCCESS; }

enum nss_status
_nss_pivtest_getgrent_r(struct group *gr, char *buf, size_t buflen, int *errnop)
{
	(void)gr, (void)buf, (void)buflen, (void)errnop;
	return NSS_STATUS_NOTFOUND;
}
