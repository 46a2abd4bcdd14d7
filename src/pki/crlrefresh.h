/* Keeping CRLs fresh ahead of the logins (pam-piv-refresh). For each
 * distribution point this host uses (the CDPs of the trusted CAs, crl_url,
 * and every URL a login fetched from), the CRL is downloaded when about
 * three quarters of the cached one's thisUpdate..nextUpdate window have
 * passed, at a point of the next eighth that is this host's own (so a
 * fleet spreads over it), with a conditional request (If-Modified-Since),
 * and indexed at once; the CRLs of crl_dir are indexed too. A CDP that is
 * down leaves the cached CRL in place and is tried again with a growing
 * delay; one that has not given a successor when a sixteenth of the
 * cached CRL's window is left is said. Logins then find every CRL current
 * and indexed: no network, no indexing. */
#ifndef PIV_CRLREFRESH_H
#define PIV_CRLREFRESH_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "common/conf.h"
#include "pki/validate.h"

/* When a cached CRL with this window is due for a refresh on this host:
 * thisUpdate + 3/4 of the window + spread, spread in [0, 1/8 window) from
 * host_seed (stable per host and URL). */
time_t piv_crl_refresh_due(int64_t this_update, int64_t next_update, uint64_t host_seed);

/* The delay before trying a CDP again after `failures` failures in a row:
 * 5 minutes, doubling, at most 4 hours. */
time_t piv_crl_refresh_backoff(unsigned failures);

struct piv_refresh_opts {
	bool force;       /* every CRL now, due or not (still conditional) */
	bool verbose;     /* also what is not due */
	void (*say)(void *ud, int prio, const char *line);
	void *ud;
};

struct piv_refresh_counts {
	unsigned downloaded, not_modified, failed, not_due, indexed, expiring;
};

/* One run. 0, or -1 when the configuration or cache_dir is unusable (why). */
int piv_crl_refresh(const struct piv_conf *conf, const struct piv_trust *trust,
                    const struct piv_refresh_opts *opts, struct piv_refresh_counts *counts,
                    char *why, size_t why_size);

#endif
