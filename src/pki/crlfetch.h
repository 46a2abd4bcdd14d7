/* Downloading a CRL from an http:// distribution point: bounded by
 * net_timeout and the CRL size cap, through no proxy, stored atomically;
 * optionally a conditional request (If-Modified-Since), so that a CRL
 * that has not changed costs no download. */
#ifndef PIV_CRLFETCH_H
#define PIV_CRLFETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "common/conf.h"

enum piv_fetch_result {
	PIV_FETCH_OK,            /* a new copy is at path */
	PIV_FETCH_NOT_MODIFIED,  /* 304: the copy at path is the server's */
	PIV_FETCH_FAILED,        /* why says why; path is untouched */
};

/* GET url into path. if_modified_since: 0 for an unconditional request. */
enum piv_fetch_result piv_crl_fetch(const struct piv_conf *conf, const char *url, const char *path,
                                    time_t if_modified_since, char *why, size_t why_size);

/* The distribution points this host uses, for the refresher: a login that
 * fetches a CRL (or finds it cached) notes its URL in cache_dir once. */
void piv_crl_url_note(const char *cache_dir, const char *url);
/* Each noted URL, to fn. */
void piv_crl_url_each(const char *cache_dir, void (*fn)(void *ud, const char *url), void *ud);

#endif
