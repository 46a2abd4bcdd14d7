/* pam_piv_crlindex: the detached CRL index builder (crlindex.h).
 *
 *   pam_piv_crlindex CACHE_DIR CRL_FILE    (the issuer's certificate, then
 *                                           the rest of its chain, DER, on
 *                                           standard input)
 *
 * Started by a login (pam_piv) that found a CRL without an index. It runs
 * on its own after the login has given up waiting or was killed, in a
 * session of its own: reads the CRL in bulk, verifies it with the issuer's
 * key, writes the index atomically, records it, and appends one line to
 * CACHE_DIR/crl-builds.log. One builder per version of a file: a second
 * one finds the first one's lock and ends at once. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509.h>

#include "pki/cache.h"
#include "pki/crlindex.h"
#include "common/util.h"

#define MAX_CERT 65536
#define LOG_MAX (256 * 1024)

static void
note(const char *cache_dir, const char *crl_path, const char *what)
{
	char path[4200], line[1200], stamp[40], esc[900];
	struct stat st;
	time_t now = time(NULL);
	struct tm tm;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/crl-builds.log", cache_dir) >= sizeof(path))
		return;
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return;
	if (fstat(fd, &st) == 0 && st.st_size > LOG_MAX)
		(void)ftruncate(fd, 0);
	gmtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
	snprintf(line, sizeof(line), "%s %s %s\n", stamp, piv_escape_str(crl_path, esc, sizeof(esc)),
	         what);
	(void)write(fd, line, strlen(line));
	close(fd);
}

int
main(int argc, char **argv)
{
	unsigned char *buf = NULL;
	const unsigned char *p;
	size_t len = 0;
	X509 *issuer = NULL;
	STACK_OF(X509) *others = NULL;
	struct piv_crl_index idx;
	char why[400], what[600];
	double seconds = 0;
	int lock_fd = -1, rc = 1;

	if (argc != 3 || argv[1][0] != '/' || argv[2][0] != '/') {
		fprintf(stderr, "usage: pam_piv_crlindex CACHE_DIR CRL_FILE < ISSUER.der\n");
		return 2;
	}
	umask(077);
	/* Started from a set-user-ID program (sudo, su), the real uid is
	 * still the invoking user's: this process is root's alone. */
	if (geteuid() == 0 && (setgroups(0, NULL) != 0 || setresgid(0, 0, 0) != 0 ||
	                       setresuid(0, 0, 0) != 0))
		return 1;
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	(void)setpriority(PRIO_PROCESS, 0, 10); /* background work */
	if ((buf = malloc(MAX_CERT)) == NULL)
		return 1;
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf + len, MAX_CERT - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == MAX_CERT)
			break;
	}
	/* the issuer, then the rest of its chain */
	p = buf;
	if (len == 0 || len == MAX_CERT || (others = sk_X509_new_null()) == NULL ||
	    (issuer = d2i_X509(NULL, &p, (long)len)) == NULL) {
		fprintf(stderr, "pam_piv_crlindex: no issuer certificate on standard input\n");
		goto out;
	}
	while (p < buf + len) {
		X509 *cert = d2i_X509(NULL, &p, (long)(buf + len - p));
		if (cert == NULL || !sk_X509_push(others, cert)) {
			X509_free(cert);
			fprintf(stderr, "pam_piv_crlindex: garbage after the certificates\n");
			goto out;
		}
	}
	if (piv_cache_dir_check(argv[1], why, sizeof(why)) != 0) {
		fprintf(stderr, "pam_piv_crlindex: %s\n", why);
		goto out;
	}
	if (piv_crl_cache_lock(argv[1], argv[2], &lock_fd) != 0) {
		rc = 0; /* another builder is at work on this very file */
		goto out;
	}
	/* done meanwhile, by a builder that just let go of the lock */
	if (piv_crl_cache_open(argv[1], argv[2], false, &idx) == 0) {
		bool serves = piv_crl_index_serves(&idx, issuer);
		piv_crl_close_index(&idx);
		if (serves) {
			rc = 0;
			goto out;
		}
	}
	{
		struct rusage ru;
		long peak_kb;
		int built = piv_crl_cache_build(argv[1], argv[2], issuer, others, &seconds, why,
		                                sizeof(why));
		peak_kb = getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss : 0;
		if (built == 0) {
			snprintf(what, sizeof(what), "indexed in %.2f s, peak RSS %ld kB", seconds, peak_kb);
			rc = 0;
		} else {
			snprintf(what, sizeof(what), "failed after %.2f s: %s", seconds, why);
		}
	}
	note(argv[1], argv[2], what);
	piv_crl_cache_prune(argv[1], time(NULL));
out:
	if (lock_fd >= 0)
		close(lock_fd);
	X509_free(issuer);
	sk_X509_pop_free(others, X509_free);
	free(buf);
	ERR_clear_error();
	return rc;
}
