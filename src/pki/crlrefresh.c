/* Keeping CRLs fresh ahead of the logins (see crlrefresh.h). */
#include "config.h"
#include "pki/crlrefresh.h"
#include "pki/cache.h"
#include "pki/crl.h"
#include "pki/crlfetch.h"
#include "pki/crlindex.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#define MAX_URLS 256
#define URL_LEN 1024
#define SKEW_MARGIN 600    /* seconds taken off If-Modified-Since: our clock may be ahead */
#define BACKOFF_FIRST 300
#define BACKOFF_MAX (4 * 3600)
#define STATE_MAGIC "PIVCRLR1"

/* What the refresher remembers of one distribution point. */
struct refresh_state {
	char magic[8];
	int64_t last_download;   /* this host's clock; 0: never */
	int64_t next_attempt;    /* not before (after a failure, or no news); 0: any time */
	uint32_t failures;       /* in a row */
	uint32_t pad;
	uint8_t hash[32];        /* SHA-256 of the above */
};

struct run {
	const struct piv_conf *conf;
	const struct piv_refresh_opts *opts;
	struct piv_refresh_counts *counts;
	STACK_OF(X509) *cas;     /* the trust material: who may have issued a CRL */
	char host_id[128];
	time_t now;
	char (*urls)[URL_LEN];
	size_t n_urls;
};

static void say(const struct run *run, int prio, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
say(const struct run *run, int prio, const char *fmt, ...)
{
	char line[2048];
	va_list ap;

	if (run->opts->say == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	run->opts->say(run->opts->ud, prio, line);
}

time_t
piv_crl_refresh_due(int64_t this_update, int64_t next_update, uint64_t host_seed)
{
	int64_t window = next_update - this_update, spread;

	if (window <= 0)
		return (time_t)this_update;
	spread = window / 8 > 0 ? (int64_t)(host_seed % (uint64_t)(window / 8)) : 0;
	return (time_t)(this_update + window / 4 * 3 + spread);
}

time_t
piv_crl_refresh_backoff(unsigned failures)
{
	time_t delay = BACKOFF_FIRST;

	for (unsigned i = 1; i < failures && delay < BACKOFF_MAX; i++)
		delay *= 2;
	return delay < BACKOFF_MAX ? delay : BACKOFF_MAX;
}

static uint64_t
host_seed(const struct run *run, const char *url)
{
	char buf[URL_LEN + 200];
	uint8_t h[32];
	uint64_t seed = 0;
	int n = snprintf(buf, sizeof(buf), "%s|%s", run->host_id, url);

	piv_sha256(buf, n > 0 ? (size_t)n : 0, h);
	for (size_t i = 0; i < 8; i++)
		seed = seed << 8 | h[i];
	return seed;
}

static void
read_host_id(struct run *run)
{
	int fd = open("/etc/machine-id", O_RDONLY | O_CLOEXEC | O_NOCTTY);
	ssize_t n = -1;

	if (fd >= 0) {
		n = read(fd, run->host_id, sizeof(run->host_id) - 1);
		close(fd);
	}
	if (n <= 0 && gethostname(run->host_id, sizeof(run->host_id) - 1) != 0)
		n = 0;
	else if (n <= 0)
		n = (ssize_t)strlen(run->host_id);
	run->host_id[n > 0 ? n : 0] = '\0';
	run->host_id[strcspn(run->host_id, "\n")] = '\0';
}

/* ---- the state file ---------------------------------------------------- */

static void
state_read(const struct run *run, const char *url, struct refresh_state *st)
{
	char path[4200];
	uint8_t check[32];
	int fd;

	memset(st, 0, sizeof(*st));
	if (piv_cache_path(run->conf->cache_dir, "cdpstate", url, "", path, sizeof(path)) != 0 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0)
		return;
	if (read(fd, st, sizeof(*st)) != (ssize_t)sizeof(*st) || memcmp(st->magic, STATE_MAGIC, 8) != 0)
		memset(st, 0, sizeof(*st));
	close(fd);
	piv_sha256(st, offsetof(struct refresh_state, hash), check);
	if (memcmp(check, st->hash, 32) != 0)
		memset(st, 0, sizeof(*st));
}

static void
state_write(const struct run *run, const char *url, struct refresh_state *st)
{
	char path[4200];

	memcpy(st->magic, STATE_MAGIC, 8);
	st->pad = 0;
	piv_sha256(st, offsetof(struct refresh_state, hash), st->hash);
	if (piv_cache_path(run->conf->cache_dir, "cdpstate", url, "", path, sizeof(path)) != 0 ||
	    piv_write_atomically(path, st, sizeof(*st), NULL, 0) != 0)
		say(run, LOG_WARNING, "cannot keep the state of %s in cache_dir", url);
}

/* ---- one CRL ------------------------------------------------------------ */

static int
index_now(const struct run *run, const char *path, struct piv_crl_index *idx, char *why,
          size_t why_size)
{
	double seconds = 0;

	if (sk_X509_num(run->cas) == 0) {
		piv_fmt(why, why_size, "no trusted CA to check CRLs with");
		return -1;
	}
	if (piv_crl_cache_build(run->conf->cache_dir, path, sk_X509_value(run->cas, 0), run->cas,
	                        &seconds, why, why_size) != 0)
		return -1;
	if (seconds >= 0.5)
		say(run, LOG_INFO, "%s: indexed in %.1f s", path, seconds);
	return piv_crl_cache_open(run->conf->cache_dir, path, false, idx);
}

/* Is the index what its CRL says, checked with the key of the CA that
 * issued it? (Not when it only knows that CA's name.) */
static bool
checked(const struct run *run, const struct piv_crl_index *idx)
{
	if (idx->flags & PIV_CRL_IDX_NAME_ONLY)
		for (int i = 0; i < sk_X509_num(run->cas); i++)
			if (!piv_crl_index_serves(idx, sk_X509_value(run->cas, i)))
				return false;
	return true;
}

static void
add_url(struct run *run, const char *url)
{
	if (strncmp(url, "http://", 7) != 0 || strlen(url) >= URL_LEN)
		return;
	for (size_t i = 0; i < run->n_urls; i++)
		if (strcmp(run->urls[i], url) == 0)
			return;
	if (run->n_urls < MAX_URLS)
		snprintf(run->urls[run->n_urls++], URL_LEN, "%s", url);
}

static void
noted_url(void *ud, const char *url)
{
	add_url(ud, url);
}

static void
warn_expiry(struct run *run, const char *url, const struct piv_crl_index *idx)
{
	int64_t left = idx->next_update - (int64_t)run->now;
	int64_t window = idx->next_update - idx->this_update;

	if (left <= 0) {
		say(run, LOG_ERR, "%s: the cached CRL expired %jd s ago without a successor: logins "
		    "get no answer from it", url, (intmax_t)-left);
		run->counts->expiring++;
	} else if (window > 0 && left < window / 16) {
		say(run, LOG_WARNING, "%s: the cached CRL expires in %jd s without a successor", url,
		    (intmax_t)left);
		run->counts->expiring++;
	}
}

static void
refresh_url(struct run *run, const char *url)
{
	const struct piv_conf *conf = run->conf;
	struct piv_crl_index idx;
	struct refresh_state st;
	char cached[4200], why[600];
	struct stat sb;
	bool have = false;
	time_t due = 0, ims = 0;
	enum piv_fetch_result r;

	memset(&idx, 0, sizeof(idx));
	if (piv_cache_path(conf->cache_dir, "crl", url, ".crl", cached, sizeof(cached)) != 0)
		return;
	if (stat(cached, &sb) == 0 &&
	    (piv_crl_cache_open(conf->cache_dir, cached, false, &idx) == 0 || index_now(run, cached,
	                                                                         &idx, why,
	                                                                         sizeof(why)) == 0))
		have = !(idx.flags & PIV_CRL_IDX_UNUSABLE) && idx.next_update > idx.this_update;
	state_read(run, url, &st);
	if (have)
		due = piv_crl_refresh_due(idx.this_update, idx.next_update, host_seed(run, url));
	if (!run->opts->force && ((int64_t)run->now < st.next_attempt || (have && run->now < due))) {
		time_t when = (int64_t)run->now < st.next_attempt ? (time_t)st.next_attempt : due;
		if (run->opts->verbose)
			say(run, LOG_DEBUG, "%s: not due; next attempt in %jd s", url,
			    (intmax_t)(when - run->now));
		run->counts->not_due++;
		if (have)
			warn_expiry(run, url, &idx);
		goto out;
	}
	/* what we have may have been current when we fetched it: ask whether
	 * it changed since (a little before, our clock may run ahead) */
	if (have && idx.next_update > (int64_t)run->now && st.last_download > SKEW_MARGIN)
		ims = (time_t)(st.last_download - SKEW_MARGIN);
	r = piv_crl_fetch(conf, url, cached, ims, why, sizeof(why));
	switch (r) {
	case PIV_FETCH_OK:
		st.last_download = (int64_t)run->now;
		st.failures = 0;
		st.next_attempt = 0;
		piv_crl_close_index(&idx);
		have = false;
		if (index_now(run, cached, &idx, why, sizeof(why)) == 0) {
			have = !(idx.flags & PIV_CRL_IDX_UNUSABLE);
			if (have)
				say(run, LOG_INFO, "%s: downloaded: %ju entries, nextUpdate in %jd s", url,
				    (uintmax_t)idx.count, (intmax_t)(idx.next_update - (int64_t)run->now));
			else
				say(run, LOG_WARNING, "%s: downloaded, but not usable: %s", url, idx.reason);
		} else {
			say(run, LOG_WARNING, "%s: downloaded, but not indexed: %s", url, why);
		}
		run->counts->downloaded++;
		break;
	case PIV_FETCH_NOT_MODIFIED:
		/* not published yet: again in a while (a 32nd of its window,
		 * from 5 minutes to an hour) */
		st.failures = 0;
		{
			int64_t wait = have ? (idx.next_update - idx.this_update) / 32 : BACKOFF_FIRST;
			wait = wait < BACKOFF_FIRST ? BACKOFF_FIRST : wait > 3600 ? 3600 : wait;
			st.next_attempt = (int64_t)run->now + wait;
		}
		if (run->opts->verbose)
			say(run, LOG_DEBUG, "%s: not modified", url);
		run->counts->not_modified++;
		break;
	case PIV_FETCH_FAILED:
		st.failures++;
		st.next_attempt = (int64_t)(run->now + piv_crl_refresh_backoff(st.failures));
		say(run, LOG_WARNING, "%s (attempt %u, next in %jd s)", why, st.failures,
		    (intmax_t)(st.next_attempt - (int64_t)run->now));
		run->counts->failed++;
		break;
	}
	state_write(run, url, &st);
	if (have)
		warn_expiry(run, url, &idx);
	/* a complete CRL's delta CRLs are kept fresh too */
	for (uint32_t i = 0; have && i < idx.n_freshest; i++)
		add_url(run, idx.freshest[i]);
out:
	piv_crl_close_index(&idx);
}

/* The CRLs of crl_file and crl_dir: indexed ahead of the logins. */
static void
index_local(struct run *run, const char *path)
{
	struct piv_crl_index idx;
	char why[600];

	if (piv_check_root_owned(path, false, why, sizeof(why)) != 0) {
		say(run, LOG_WARNING, "skipping %s", why);
		return;
	}
	if (piv_crl_cache_open(run->conf->cache_dir, path, false, &idx) == 0) {
		bool done = checked(run, &idx);
		piv_crl_close_index(&idx);
		if (done)
			return;
	}
	if (index_now(run, path, &idx, why, sizeof(why)) != 0) {
		say(run, LOG_WARNING, "%s: %s", path, why);
		return;
	}
	run->counts->indexed++;
	if (!(idx.flags & PIV_CRL_IDX_UNUSABLE) && idx.next_update <= (int64_t)run->now)
		say(run, LOG_WARNING, "%s: this CRL has expired: put its successor in place", path);
	piv_crl_close_index(&idx);
}

int
piv_crl_refresh(const struct piv_conf *conf, const struct piv_trust *trust,
                const struct piv_refresh_opts *opts, struct piv_refresh_counts *counts,
                char *why, size_t why_size)
{
	struct run run;
	int ret = -1;

	memset(&run, 0, sizeof(run));
	memset(counts, 0, sizeof(*counts));
	run.conf = conf;
	run.opts = opts;
	run.counts = counts;
	run.now = time(NULL);
	read_host_id(&run);
	if (piv_cache_dir_check(conf->cache_dir, why, why_size) != 0) {
		piv_conf_blame(conf, "cache_dir", why, why_size);
		return -1;
	}
	if ((run.urls = calloc(MAX_URLS, URL_LEN)) == NULL ||
	    (run.cas = piv_trust_certs(conf, trust)) == NULL) {
		piv_fmt(why, why_size, "out of memory");
		goto out;
	}
	/* local CRLs */
	if (conf->crl_file != NULL)
		index_local(&run, conf->crl_file);
	if (conf->crl_dir != NULL) {
		DIR *dir = opendir(conf->crl_dir);
		struct dirent *de;
		while (dir != NULL && (de = readdir(dir)) != NULL) {
			char path[4200];
			if (de->d_name[0] == '.' ||
			    (size_t)snprintf(path, sizeof(path), "%s/%s", conf->crl_dir, de->d_name) >=
			    sizeof(path))
				continue;
			index_local(&run, path);
		}
		if (dir != NULL)
			closedir(dir);
		else
			say(&run, LOG_WARNING, "crl_dir %s: %s", conf->crl_dir, strerror(errno));
	}
	/* the distribution points: the trusted CAs', the configured ones, and
	 * those the logins met */
	if (conf->crl_fetch) {
		for (int i = 0; i < sk_X509_num(run.cas); i++) {
			char cdps[4][1024];
			size_t n = piv_crl_http_cdps(sk_X509_value(run.cas, i), cdps, 4);
			for (size_t j = 0; j < n; j++)
				add_url(&run, cdps[j]);
		}
		for (size_t i = 0; i < conf->crl_url.n; i++)
			add_url(&run, conf->crl_url.v[i]);
		piv_crl_url_each(conf->cache_dir, noted_url, &run);
		/* (refresh_url may add delta CRLs' URLs at the end) */
		for (size_t i = 0; i < run.n_urls; i++) {
			piv_crl_url_note(conf->cache_dir, run.urls[i]);
			refresh_url(&run, run.urls[i]);
		}
	}
	piv_crl_cache_prune(conf->cache_dir, run.now);
	ret = 0;
out:
	sk_X509_pop_free(run.cas, X509_free);
	free(run.urls);
	return ret;
}
