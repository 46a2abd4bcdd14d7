/* CRLs (see crl.h): which CRLs answer for a certificate, and what they
 * say together. Reading and indexing a CRL is crlindex.c's.
 *
 * Which CRLs answer for a certificate (RFC 5280 6.3.3): one of its issuer,
 * verified with the issuer's key from the validated chain, current, whose
 * issuingDistributionPoint covers it (the kind of certificate, and one of
 * the certificate's distribution point names when the CRL names any), and
 * not older than a CRL of the same issuer and scope seen before (the
 * highest cRLNumber is kept in cache_dir). A complete CRL that announces
 * delta CRLs (Freshest CRL) answers only together with a current delta
 * CRL for it. A serial listed in any CRL the issuer signed stays revoked
 * when no CRL can give a complete answer.
 *
 * A CRL not indexed yet is indexed by the detached builder (crl_builder)
 * while the login waits, at most until net_timeout is up; then the index
 * of the content the file had before serves while it is current, and
 * otherwise the CRL gives no answer: a login never does unbounded work. */
#include "config.h"
#include "pki/crl.h"
#include "pki/cache.h"
#include "pki/crlfetch.h"
#include "pki/validate.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/http.h>
#include <openssl/x509v3.h>

#define MAX_CRL_FILES 256
#define MAX_CDP_URLS 4
#define CLOCK_SKEW 300 /* seconds of clock difference tolerated */
#define BUILD_POLL_MS 20

static void log_to(piv_rev_log_fn log, void *ud, int prio, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
log_to(piv_rev_log_fn log, void *ud, int prio, const char *fmt, ...)
{
	char line[900];
	va_list ap;

	if (log == NULL)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	log(ud, prio, line);
}

/* ---- no rollback ------------------------------------------------------ */

/* cache_dir/crlnum-*: per issuer (name and key), scope (the
 * issuingDistributionPoint) and kind (complete or delta), the highest
 * cRLNumber and the latest thisUpdate of a CRL that was used. */
#define NUM_MAGIC "PIVCRLN1"

struct num_state {
	char magic[8];
	uint8_t number[PIV_CRL_RECORD];
	uint8_t has_number;
	uint8_t pad[7];
	int64_t this_update;
	uint8_t hash[32]; /* SHA-256 of everything above */
};

static int
lock_bounded(int fd)
{
	for (int i = 0; i < 200; i++) { /* 2 s: the holder only reads and writes 80 bytes */
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return 0;
		if (errno != EWOULDBLOCK && errno != EINTR)
			return -1;
		nanosleep(&(struct timespec){ 0, 10 * 1000 * 1000 }, NULL);
	}
	return -1;
}

/* 0 when the CRL of idx is not older than one already used for its issuer
 * and scope (and remember it), -1 with why when it is. */
static int
rollback_check(const char *cache_dir, const struct piv_crl_index *idx, char *why, size_t why_size)
{
	struct num_state st, seen;
	uint8_t key_bytes[32 * 3 + 1], h[32];
	char key[80], path[4200];
	bool numbered = (idx->flags & PIV_CRL_IDX_NUMBERED) != 0, valid, older, newer;
	int fd, ret = 0;

	memcpy(key_bytes, idx->issuer_name, 32);
	memcpy(key_bytes + 32, idx->issuer_key, 32);
	memcpy(key_bytes + 64, idx->scope_id, 32);
	key_bytes[96] = (idx->flags & PIV_CRL_IDX_DELTA) ? 'd' : 'c';
	piv_sha256(key_bytes, sizeof(key_bytes), h);
	piv_hex(h, 16, 0, key, sizeof(key));
	if (piv_cache_path(cache_dir, "crlnum", key, "", path, sizeof(path)) != 0)
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd < 0)
		return 0; /* cache_dir was checked: nothing to remember with */
	(void)lock_bounded(fd); /* unlocked, the worst is a lost update */
	memset(&seen, 0, sizeof(seen));
	valid = pread(fd, &seen, sizeof(seen), 0) == (ssize_t)sizeof(seen) &&
	        memcmp(seen.magic, NUM_MAGIC, 8) == 0;
	if (valid) {
		piv_sha256(&seen, offsetof(struct num_state, hash), h);
		valid = memcmp(h, seen.hash, 32) == 0;
	}
	if (!valid)
		memset(&seen, 0, sizeof(seen));
	/* cRLNumbers when both have one (they only grow), else thisUpdate */
	if (numbered && seen.has_number)
		older = memcmp(idx->number, seen.number, PIV_CRL_RECORD) < 0;
	else
		older = valid && idx->this_update < seen.this_update;
	if (older) {
		char have[60] = "", had[60] = "";
		if (numbered && seen.has_number) {
			piv_hex(idx->number + PIV_CRL_RECORD - idx->number[1], idx->number[1], 0, have,
			        sizeof(have));
			piv_hex(seen.number + PIV_CRL_RECORD - seen.number[1], seen.number[1], 0, had,
			        sizeof(had));
			piv_fmt(why, why_size, "CRL number %s is older than CRL number %s already used for "
			        "this issuer and scope (rollback)", have[0] ? have : "0", had[0] ? had : "0");
		} else {
			piv_fmt(why, why_size, "CRL is older than a CRL already used for this issuer and "
			        "scope (thisUpdate %jd s earlier: rollback)",
			        (intmax_t)(seen.this_update - idx->this_update));
		}
		ret = -1;
		goto out;
	}
	st = seen;
	newer = !valid || idx->this_update > seen.this_update;
	if (numbered && (!seen.has_number || memcmp(idx->number, seen.number, PIV_CRL_RECORD) > 0)) {
		memcpy(st.number, idx->number, PIV_CRL_RECORD);
		st.has_number = 1;
		newer = true;
	}
	if (newer) {
		memcpy(st.magic, NUM_MAGIC, 8);
		if (idx->this_update > st.this_update || !valid)
			st.this_update = idx->this_update;
		memset(st.pad, 0, sizeof(st.pad));
		piv_sha256(&st, offsetof(struct num_state, hash), st.hash);
		if (pwrite(fd, &st, sizeof(st), 0) != (ssize_t)sizeof(st) ||
		    ftruncate(fd, (off_t)sizeof(st)) != 0 || fsync(fd) != 0)
			(void)ftruncate(fd, 0); /* never a half-written state */
	}
out:
	close(fd); /* and unlock */
	return ret;
}

/* ---- one CRL for one certificate -------------------------------------- */

/* The certificate's side of the scope check: the names of its CRL
 * distribution points (RFC 5280 6.3.3 (b)(2)(i)). Points limited to some
 * reasons or with a cRLIssuer (partial and indirect CRLs) do not count. */
struct cert_dps {
	uint8_t names[16][32];
	uint32_t n;
};

static void
cert_dp_names(X509 *cert, struct cert_dps *dps)
{
	STACK_OF(DIST_POINT) *points = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);

	memset(dps, 0, sizeof(*dps));
	for (int i = 0; points != NULL && i < sk_DIST_POINT_num(points); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(points, i);
		uint32_t before = dps->n;
		if (dp->distpoint == NULL || dp->reasons != NULL || dp->CRLissuer != NULL)
			continue;
		if (piv_crl_dp_name_hashes(dp->distpoint, X509_get_issuer_name(cert), dps->names, &dps->n, 16) != 0)
			dps->n = before; /* this point's names are unreadable or too many */
	}
	sk_DIST_POINT_pop_free(points, DIST_POINT_free);
	ERR_clear_error();
}

/* Does a CRL that names distribution points cover one of the
 * certificate's? (One that names none covers every certificate of its
 * issuer.) */
static bool
dp_in_scope(const struct piv_crl_index *idx, const struct cert_dps *dps)
{
	if (idx->n_dp_names == 0)
		return true;
	for (uint32_t i = 0; i < idx->n_dp_names; i++)
		for (uint32_t j = 0; j < dps->n; j++)
			if (memcmp(idx->dp_names[i], dps->names[j], 32) == 0)
				return true;
	return false;
}

/* What one CRL file says of the certificate. */
struct crl_result {
	char source[1200];  /* as pam-piv-check shows it */
	bool verified;      /* the issuer's CRL, verified with its key: what it lists is revoked */
	bool listed;        /* verified, and the certificate's serial is in it */
	bool usable;        /* verified, in scope, current, no rollback */
	bool delta;         /* a delta CRL */
	bool needs_delta;   /* a complete CRL that announces delta CRLs */
	struct piv_crl_index crl; /* its index (verified ones), not mapped any more */
	char why[300];
};

/* Everything piv_crl_check needs for one certificate. */
struct crl_run {
	const struct piv_conf *conf;
	X509 *cert, *issuer;
	STACK_OF(X509) *chain;  /* the validated chain, or NULL */
	time_t now;
	bool is_ca;
	struct cert_dps dps;
	uint8_t want_name[32], want_key[32], serial[PIV_CRL_RECORD];
	piv_rev_log_fn log;
	void *ud;
	struct crl_result *res; /* every CRL consulted, in order */
	size_t n_res, max_res;
	char fetch_why[300];    /* the last download that failed */
	int64_t build_deadline; /* ms: how long the login waits for indexes */
};

static int
open_current(const struct crl_run *run, const char *crl_path, struct piv_crl_index *idx)
{
	if (piv_crl_cache_open(run->conf->cache_dir, crl_path, false, idx) != 0)
		return -1;
	if (!piv_crl_index_serves(idx, run->issuer)) {
		piv_crl_close_index(idx);
		return -1;
	}
	return 0;
}

/* The index of crl_path as it is now: from the cache, else made now (the
 * tools), else by the detached builder while the login waits, bounded;
 * else the index of what the file held before (*previous). */
static int
get_index(struct crl_run *run, const char *crl_path, struct piv_crl_index *idx, bool *previous,
          char *why, size_t why_size)
{
	const struct piv_conf *conf = run->conf;
	double seconds = 0;

	*previous = false;
	if (open_current(run, crl_path, idx) == 0)
		return 0;
	if (conf->crl_builder == NULL) {
		log_to(run->log, run->ud, LOG_DEBUG, "CRL %s: reading, verifying and indexing", crl_path);
		if (piv_crl_cache_build(conf->cache_dir, crl_path, run->issuer, run->chain, &seconds,
		                        why, why_size) != 0)
			return -1;
		log_to(run->log, run->ud, LOG_DEBUG, "CRL %s: indexed in %.2f s", crl_path, seconds);
		return open_current(run, crl_path, idx);
	}
	log_to(run->log, run->ud, LOG_DEBUG, "CRL %s: not indexed yet: the builder indexes it",
	       crl_path);
	if (piv_crl_cache_spawn(conf->crl_builder, conf->cache_dir, crl_path, run->issuer, run->chain,
	                        why, why_size) != 0) {
		log_to(run->log, run->ud, LOG_ERR, "%s", why);
		return -1;
	}
	while (piv_now_ms() < run->build_deadline) {
		struct timespec pause = { 0, BUILD_POLL_MS * 1000 * 1000 };
		if (open_current(run, crl_path, idx) == 0)
			return 0;
		nanosleep(&pause, NULL);
	}
	if (open_current(run, crl_path, idx) == 0)
		return 0;
	/* Still at work: what the file held before, if it is current yet. */
	if (piv_crl_cache_open(conf->cache_dir, crl_path, true, idx) == 0 &&
	    !!piv_crl_index_serves(idx, run->issuer)) {
		*previous = true;
		log_to(run->log, run->ud, LOG_WARNING, "CRL %s is still being indexed: the index of "
		       "its previous content serves meanwhile", crl_path);
		return 0;
	}
	piv_crl_close_index(idx);
	piv_fmt(why, why_size, "CRL is being indexed (not ready within net_timeout); no answer "
	        "from it until then");
	log_to(run->log, run->ud, LOG_WARNING, "CRL %s is still being indexed", crl_path);
	return -1;
}

static void
consult(struct crl_run *run, const char *crl_path, struct crl_result *res)
{
	struct piv_crl_index idx;
	char why[300];
	time_t now = run->now;
	bool previous = false;

	memset(&idx, 0, sizeof(idx));
	if (get_index(run, crl_path, &idx, &previous, why, sizeof(why)) != 0) {
		piv_fmt(res->why, sizeof(res->why), "%s", why);
		return;
	}
	if (idx.flags & (PIV_CRL_IDX_UNREADABLE | PIV_CRL_IDX_REJECTED)) {
		piv_fmt(res->why, sizeof(res->why), "%s", idx.reason);
		goto out;
	}
	if (memcmp(idx.issuer_name, run->want_name, 32) != 0) {
		piv_fmt(res->why, sizeof(res->why), "CRL of another issuer");
		goto out;
	}
	if ((idx.flags & PIV_CRL_IDX_NAME_ONLY) || memcmp(idx.issuer_key, run->want_key, 32) != 0) {
		piv_fmt(res->why, sizeof(res->why), "CRL not verified with this issuer's key");
		goto out;
	}
	/* The issuer signed it: a serial it lists is revoked, whatever else. */
	res->verified = true;
	res->listed = piv_crl_index_has(&idx, run->serial);
	res->delta = (idx.flags & PIV_CRL_IDX_DELTA) != 0;
	res->needs_delta = (idx.flags & PIV_CRL_IDX_FRESHEST) != 0;
	res->crl = idx;
	res->crl.map = NULL;
	res->crl.records = NULL;
	if ((idx.scope & PIV_CRL_SCOPE_ONLY_USER) && run->is_ca) {
		piv_fmt(res->why, sizeof(res->why), "CRL covers only end-entity certificates");
	} else if ((idx.scope & PIV_CRL_SCOPE_ONLY_CA) && !run->is_ca) {
		piv_fmt(res->why, sizeof(res->why), "CRL covers only CA certificates");
	} else if (!dp_in_scope(&idx, &run->dps)) {
		piv_fmt(res->why, sizeof(res->why), "CRL does not cover the certificate: its "
		        "issuingDistributionPoint names none of the certificate's CRL distribution "
		        "points");
	} else if (idx.this_update > (int64_t)now + CLOCK_SKEW) {
		piv_fmt(res->why, sizeof(res->why), "CRL is not yet valid (thisUpdate in the future)");
	} else if (idx.next_update <= (int64_t)now) {
		piv_fmt(res->why, sizeof(res->why), "CRL has expired (nextUpdate passed)");
	} else if (rollback_check(run->conf->cache_dir, &idx, res->why, sizeof(res->why)) != 0) {
		/* why says which */
	} else {
		res->usable = true;
		piv_fmt(res->why, sizeof(res->why),
		        "%s (%s%sCRL with %ju entries, thisUpdate %jd s ago, nextUpdate in %jd s)",
		        res->listed ? "revoked" : "not revoked",
		        previous ? "the previous content of the file, still being indexed: " : "",
		        res->delta ? "delta " : "",
		        (uintmax_t)idx.count, (intmax_t)((int64_t)now - idx.this_update),
		        (intmax_t)(idx.next_update - (int64_t)now));
	}
out:
	piv_crl_close_index(&idx);
}

/* Consult the CRL at path and keep what it says; NULL when no room. */
static struct crl_result *
add_source(struct crl_run *run, const char *path, const char *kind, const char *where)
{
	struct crl_result *res;

	if (run->n_res >= run->max_res)
		return NULL;
	res = &run->res[run->n_res++];
	memset(res, 0, sizeof(*res));
	piv_fmt(res->source, sizeof(res->source), "%s %s", kind, where);
	consult(run, path, res);
	log_to(run->log, run->ud, LOG_DEBUG, "%s: %s", res->source, res->why);
	return res;
}

/* A current delta CRL of the same scope that follows base: its
 * BaseCRLNumber at most base's cRLNumber, its own number higher. */
static const struct crl_result *
delta_for(const struct crl_run *run, const struct crl_result *base)
{
	for (size_t i = 0; i < run->n_res; i++) {
		const struct crl_result *d = &run->res[i];
		if (d->usable && d->delta && (base->crl.flags & PIV_CRL_IDX_NUMBERED) &&
		    memcmp(d->crl.scope_id, base->crl.scope_id, 32) == 0 &&
		    memcmp(d->crl.base_number, base->crl.number, PIV_CRL_RECORD) <= 0 &&
		    memcmp(d->crl.number, base->crl.number, PIV_CRL_RECORD) > 0)
			return d;
	}
	return NULL;
}

/* The answer of the CRLs consulted so far: revoked when a complete answer
 * (a usable CRL, with its delta when it announces delta CRLs) lists the
 * certificate, good when there are complete answers and none does. */
static enum piv_rev_answer
decide(const struct crl_run *run, char *reason, size_t reason_size)
{
	enum piv_rev_answer answer = PIV_REV_UNKNOWN;

	for (size_t i = 0; i < run->n_res; i++) {
		const struct crl_result *r = &run->res[i], *d = NULL;
		if (!r->usable || r->delta)
			continue;
		if (r->needs_delta && (d = delta_for(run, r)) == NULL)
			continue;
		if (r->listed || (d != NULL && d->listed)) {
			piv_fmt(reason, reason_size, "%s: %s", d != NULL && d->listed ? d->source : r->source,
			        d != NULL && d->listed ? d->why : r->why);
			return PIV_REV_REVOKED;
		}
		if (answer == PIV_REV_UNKNOWN) {
			answer = PIV_REV_GOOD;
			if (d != NULL)
				piv_fmt(reason, reason_size, "%s: %s; with its delta CRL %s", r->source, r->why,
				        d->source);
			else
				piv_fmt(reason, reason_size, "%s: %s", r->source, r->why);
		}
	}
	return answer;
}

/* Why no CRL answered: the most telling reason (a CRL of the issuer
 * before any other file), and why fetching failed. */
static void
explain(const struct crl_run *run, char *reason, size_t reason_size)
{
	const struct crl_result *best = NULL;
	char what[400];

	for (size_t i = 0; i < run->n_res; i++) {
		const struct crl_result *r = &run->res[i];
		if (best == NULL || (r->verified && !best->verified) ||
		    (r->usable && r->needs_delta && !(best->usable && best->needs_delta)))
			best = r;
	}
	if (best == NULL) {
		if (run->fetch_why[0] != '\0')
			piv_fmt(reason, reason_size, "%s", run->fetch_why);
		return;
	}
	if (best->usable && best->needs_delta)
		piv_fmt(what, sizeof(what), "the CRL announces delta CRLs (Freshest CRL) and no current "
		        "delta CRL for it is available");
	else if (best->usable && best->delta)
		piv_fmt(what, sizeof(what), "a delta CRL, used only together with its complete CRL");
	else
		piv_fmt(what, sizeof(what), "%s", best->why);
	if (run->fetch_why[0] != '\0')
		piv_fmt(reason, reason_size, "%s: %s; %s", best->source, what, run->fetch_why);
	else
		piv_fmt(reason, reason_size, "%s: %s", best->source, what);
}

size_t
piv_crl_http_cdps(X509 *cert, char urls[][1024], size_t max)
{
	STACK_OF(DIST_POINT) *dps = X509_get_ext_d2i(cert, NID_crl_distribution_points, NULL, NULL);
	size_t n = 0;

	for (int i = 0; dps != NULL && i < sk_DIST_POINT_num(dps) && n < max; i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if (dp->distpoint == NULL || dp->distpoint->type != 0 || dp->reasons != NULL ||
		    dp->CRLissuer != NULL)
			continue;
		for (int j = 0; j < sk_GENERAL_NAME_num(dp->distpoint->name.fullname) && n < max; j++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, j);
			const unsigned char *uri;
			int len;
			if (gn->type != GEN_URI)
				continue;
			uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
			len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
			if (len <= 7 || len >= 1024 || strncmp((const char *)uri, "http://", 7) != 0 ||
			    memchr(uri, '\0', (size_t)len) != NULL)
				continue;
			memcpy(urls[n], uri, (size_t)len);
			urls[n][len] = '\0';
			n++;
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	ERR_clear_error();
	return n;
}

/* The delta CRLs of the usable complete CRLs that announce them and have
 * none yet: from the cache, else fetched from their Freshest CRL URLs. */
static void
find_deltas(struct crl_run *run)
{
	size_t n_bases = run->n_res;

	for (size_t b = 0; b < n_bases; b++) {
		/* copied: the base's entry stays, but its URLs are read while
		 * entries are added */
		char urls[PIV_CRL_MAX_FRESHEST][PIV_CRL_URL_MAX];
		uint32_t n_urls;
		const struct crl_result *base = &run->res[b];
		if (!base->usable || base->delta || !base->needs_delta || delta_for(run, base) != NULL)
			continue;
		n_urls = base->crl.n_freshest;
		memcpy(urls, base->crl.freshest, sizeof(urls));
		for (uint32_t u = 0; u < n_urls && delta_for(run, &run->res[b]) == NULL; u++) {
			char cached[4200], why[300];
			struct stat st;
			struct crl_result *d = NULL;
			if (piv_cache_path(run->conf->cache_dir, "crl", urls[u], ".crl", cached,
			                   sizeof(cached)) != 0)
				continue;
			if (stat(cached, &st) == 0 &&
			    (d = add_source(run, cached, "cached delta CRL from", urls[u])) != NULL &&
			    delta_for(run, &run->res[b]) != NULL)
				break;
			if (!run->conf->crl_fetch)
				continue;
			log_to(run->log, run->ud, LOG_DEBUG, "fetching delta CRL %s", urls[u]);
			if (piv_crl_fetch(run->conf, urls[u], cached, 0, why, sizeof(why)) != PIV_FETCH_OK) {
				log_to(run->log, run->ud, LOG_WARNING, "%s", why);
				piv_fmt(run->fetch_why, sizeof(run->fetch_why), "%s", why);
				continue;
			}
			(void)add_source(run, cached, "delta CRL fetched from", urls[u]);
			piv_crl_url_note(run->conf->cache_dir, urls[u]);
		}
	}
}

/* The site's own CRLs: crl_file and the root-owned files of crl_dir
 * (pam-piv-refresh keeps the distribution points' there). */
static size_t
local_crl_files(const struct piv_conf *conf, char (*files)[1024], piv_rev_log_fn log, void *ud)
{
	size_t n = 0;

	if (conf->crl_file != NULL)
		snprintf(files[n++], sizeof(files[0]), "%s", conf->crl_file);
	if (conf->crl_dir != NULL) {
		DIR *dir = opendir(conf->crl_dir);
		struct dirent *de;
		while (dir != NULL && (de = readdir(dir)) != NULL && n < MAX_CRL_FILES) {
			char why[300];

			if (de->d_name[0] == '.')
				continue;
			if ((size_t)snprintf(files[n], sizeof(files[0]), "%s/%s", conf->crl_dir,
			                     de->d_name) >= sizeof(files[0]))
				continue;
			if (piv_check_root_owned(files[n], false, why, sizeof(why)) != 0) {
				log_to(log, ud, LOG_WARNING, "crl_dir: skipping %s", why);
				continue;
			}
			n++;
		}
		if (dir != NULL)
			closedir(dir);
		else
			log_to(log, ud, LOG_WARNING, "crl_dir %s: %s", conf->crl_dir, strerror(errno));
	}
	return n;
}

enum piv_rev_answer
piv_crl_check(const struct piv_conf *conf, X509 *cert, X509 *issuer, STACK_OF(X509) *chain,
              time_t now, piv_rev_log_fn log, void *ud, char *reason, size_t reason_size)
{
	char (*files)[1024] = calloc(MAX_CRL_FILES, sizeof(*files));
	struct crl_run run;
	enum piv_rev_answer answer = PIV_REV_UNKNOWN;
	size_t n_files = 0, n_urls;
	char urls[MAX_CDP_URLS][1024];

	memset(&run, 0, sizeof(run));
	piv_fmt(reason, reason_size, "no CRL for the issuer");
	run.max_res = MAX_CRL_FILES + 3 * MAX_CDP_URLS + 4 * PIV_CRL_MAX_FRESHEST;
	run.res = calloc(run.max_res, sizeof(*run.res));
	if (files == NULL || run.res == NULL)
		goto out;
	run.conf = conf;
	run.build_deadline = piv_now_ms() + (int64_t)conf->net_timeout * 1000;
	run.cert = cert;
	run.issuer = issuer;
	run.chain = chain;
	run.now = now;
	run.is_ca = X509_check_ca(cert) != 0;
	run.log = log;
	run.ud = ud;
	cert_dp_names(cert, &run.dps);
	if (piv_crl_name_hash(X509_get_subject_name(issuer), run.want_name) != 0 ||
	    piv_crl_key_hash(issuer, run.want_key) != 0 ||
	    piv_crl_serial_record(X509_get0_serialNumber(cert), run.serial) != 0) {
		piv_fmt(reason, reason_size, "internal error");
		goto out;
	}
	n_files = local_crl_files(conf, files, log, ud);
	n_urls = conf->crl_fetch ? piv_crl_http_cdps(cert, urls, MAX_CDP_URLS) : 0;

	/* Local CRLs first, then what was fetched before (the cache). */
	for (size_t i = 0; i < n_files; i++)
		(void)add_source(&run, files[i], "local CRL", files[i]);
	for (size_t u = 0; u < n_urls; u++) {
		char cached[4200];
		struct stat cst;
		if (piv_cache_path(conf->cache_dir, "crl", urls[u], ".crl", cached, sizeof(cached)) != 0 ||
		    stat(cached, &cst) != 0) /* stat, not access(2): under sudo the real uid is the caller's */
			continue;
		(void)add_source(&run, cached, "cached CRL from", urls[u]);
		piv_crl_url_note(conf->cache_dir, urls[u]);
	}
	if ((answer = decide(&run, reason, reason_size)) != PIV_REV_UNKNOWN)
		goto out;
	find_deltas(&run);
	if ((answer = decide(&run, reason, reason_size)) != PIV_REV_UNKNOWN)
		goto out;

	/* Nothing current: fetch from the distribution points. */
	for (size_t u = 0; u < n_urls && answer == PIV_REV_UNKNOWN; u++) {
		char cached[4200], why[300];
		if (piv_cache_path(conf->cache_dir, "crl", urls[u], ".crl", cached, sizeof(cached)) != 0)
			continue;
		log_to(log, ud, LOG_DEBUG, "fetching CRL %s", urls[u]);
		if (piv_crl_fetch(conf, urls[u], cached, 0, why, sizeof(why)) != PIV_FETCH_OK) {
			log_to(log, ud, LOG_WARNING, "%s", why);
			piv_fmt(run.fetch_why, sizeof(run.fetch_why), "%s", why);
			continue;
		}
		(void)add_source(&run, cached, "CRL fetched from", urls[u]);
		piv_crl_url_note(conf->cache_dir, urls[u]);
		find_deltas(&run);
		answer = decide(&run, reason, reason_size);
	}
	if (answer != PIV_REV_UNKNOWN)
		goto out;
	/* No complete answer. What the issuer signed still counts: a
	 * certificate listed in an expired CRL, a complete CRL without its
	 * delta, a lone delta, an older CRL, is revoked (revocation_fail =
	 * open or not). */
	for (size_t i = 0; i < run.n_res; i++) {
		if (run.res[i].listed) {
			piv_fmt(reason, reason_size, "%s: revoked: listed in a CRL that cannot give a "
			        "complete answer (%s)", run.res[i].source, run.res[i].why);
			answer = PIV_REV_REVOKED;
			goto out;
		}
	}
	explain(&run, reason, reason_size);
out:
	free(files);
	free(run.res);
	return answer;
}
