/* CRLs (see crl.h). A CRL is parsed and its signature verified once per
 * version; the result is kept in cache_dir as a sorted array of serials
 * with a small header, and later logins only map that file and binary
 * search it, so a million-entry CRL costs what an empty one does. */
#include "config.h"
#include "crl.h"
#include "cache.h"
#include "validate.h"
#include "util.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/http.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define IDX_MAGIC "PIVCRLI1"
#define IDX_VERSION 1u
#define MAX_CRL_FILES 256
#define MAX_CRL_SIZE (256L * 1024 * 1024)
#define CLOCK_SKEW 300 /* seconds of clock difference tolerated */

/* The index header. Host byte order: the cache is local to the host. */
struct idx_header {
	char magic[8];
	uint32_t version;
	uint32_t record_size;
	uint64_t count;
	int64_t this_update;
	int64_t next_update;
	uint32_t scope;
	uint32_t flags;          /* IDX_* below */
	uint8_t source_id[32];   /* identity of the CRL file it was built from */
	uint8_t issuer_name[32]; /* SHA-256 of the issuer name's DER */
	uint8_t issuer_key[32];  /* SHA-256 of the verifying key's SPKI DER */
	char reason[128];        /* why the CRL is not usable (flags) */
	uint8_t header_hash[32]; /* SHA-256 of everything above */
};

/* An index also remembers a CRL that cannot be used, so that a login does
 * not parse it again until the file changes: */
#define IDX_UNREADABLE 1u /* not a CRL at all */
#define IDX_NAME_ONLY 2u  /* another issuer's CRL; issuer_name is the CRL's */
#define IDX_REJECTED 4u   /* failed the checks against issuer_key's owner */

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

int
piv_crl_serial_record(const ASN1_INTEGER *serial, uint8_t rec[PIV_CRL_RECORD])
{
	const unsigned char *mag = ASN1_STRING_get0_data(serial);
	int len = ASN1_STRING_length(serial);

	memset(rec, 0, PIV_CRL_RECORD);
	/* Leading zero bytes are not part of the value. */
	while (len > 0 && mag[0] == 0) {
		mag++;
		len--;
	}
	if (len > PIV_CRL_MAX_SERIAL)
		return -1;
	rec[0] = ASN1_STRING_type(serial) == V_ASN1_NEG_INTEGER ? 1 : 0;
	rec[1] = (uint8_t)len;
	if (len > 0)
		memcpy(rec + PIV_CRL_RECORD - len, mag, (size_t)len);
	return 0;
}

static int
record_cmp(const void *a, const void *b)
{
	return memcmp(a, b, PIV_CRL_RECORD);
}

/* What identifies one version of a file without reading it: a new CRL
 * written in place of the old changes size, mtime or inode. */
static int
file_identity(const char *path, uint8_t out[32])
{
	struct stat st;
	char buf[4200];
	int n;

	if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	n = snprintf(buf, sizeof(buf), "%s|%ju|%ju|%jd|%jd.%09ld|%jd.%09ld", path,
	             (uintmax_t)st.st_dev, (uintmax_t)st.st_ino, (intmax_t)st.st_size,
	             (intmax_t)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	             (intmax_t)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return -1;
	piv_sha256(buf, (size_t)n, out);
	return 0;
}

static int
name_hash(const X509_NAME *name, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_X509_NAME(name, &der);

	if (len <= 0)
		return -1;
	piv_sha256(der, (size_t)len, out);
	OPENSSL_free(der);
	return 0;
}

static int
key_hash(X509 *cert, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);

	if (len <= 0)
		return -1;
	piv_sha256(der, (size_t)len, out);
	OPENSSL_free(der);
	return 0;
}

/* Read a CRL file, DER or PEM, of bounded size. */
static X509_CRL *
read_crl(const char *path, char *why, size_t why_size)
{
	BIO *bio = NULL;
	X509_CRL *crl = NULL;
	struct stat st;
	int fd;
	unsigned char first = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > MAX_CRL_SIZE) {
		piv_fmt(why, why_size, "cannot read %s", path);
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	if (read(fd, &first, 1) != 1 || lseek(fd, 0, SEEK_SET) != 0) {
		close(fd);
		piv_fmt(why, why_size, "cannot read %s", path);
		return NULL;
	}
	bio = BIO_new_fd(fd, BIO_CLOSE);
	if (bio == NULL) {
		close(fd);
		return NULL;
	}
	crl = first == '-' ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)
	                   : d2i_X509_CRL_bio(bio, NULL);
	BIO_free(bio);
	ERR_clear_error();
	if (crl == NULL)
		piv_fmt(why, why_size, "%s is not a CRL", path);
	return crl;
}

/* The checks that make a CRL usable at all for this issuer; the time
 * window is checked at each use, from the index. */
static int
check_crl(X509_CRL *crl, X509 *issuer, uint32_t *scope, char *why, size_t why_size)
{
	ISSUING_DIST_POINT *idp = NULL;
	int crit = 0, ret = -1;
	uint32_t ku;

	*scope = 0;
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
		piv_fmt(why, why_size, "CRL issued by another CA");
		return -1;
	}
	ku = X509_get_key_usage(issuer);
	if ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) && !(ku & KU_CRL_SIGN)) {
		piv_fmt(why, why_size, "the issuer may not sign CRLs (no cRLSign key usage)");
		return -1;
	}
	if (X509_CRL_verify(crl, X509_get0_pubkey(issuer)) != 1) {
		piv_fmt(why, why_size, "CRL signature does not verify with the issuer's key");
		goto out;
	}
	if (X509_CRL_get0_nextUpdate(crl) == NULL) {
		piv_fmt(why, why_size, "CRL has no nextUpdate");
		goto out;
	}
	/* A delta CRL only makes sense with its base: never mistake one for
	 * a complete list. */
	if (X509_CRL_get_ext_by_NID(crl, NID_delta_crl, -1) >= 0) {
		piv_fmt(why, why_size, "delta CRLs are not supported");
		goto out;
	}
	for (int i = 0; i < X509_CRL_get_ext_count(crl); i++) {
		X509_EXTENSION *ext = X509_CRL_get_ext(crl, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (X509_EXTENSION_get_critical(ext) && nid != NID_issuing_distribution_point &&
		    nid != NID_crl_number && nid != NID_authority_key_identifier) {
			piv_fmt(why, why_size, "CRL has an unknown critical extension");
			goto out;
		}
	}
	idp = X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
	if (idp == NULL && crit != -1) {
		piv_fmt(why, why_size, "malformed issuingDistributionPoint");
		goto out;
	}
	if (idp != NULL) {
		if (idp->indirectCRL || idp->onlysomereasons != NULL || idp->onlyattr) {
			piv_fmt(why, why_size, "indirect or partial CRLs are not supported");
			goto out;
		}
		if (idp->onlyuser)
			*scope |= PIV_CRL_SCOPE_ONLY_USER;
		if (idp->onlyCA)
			*scope |= PIV_CRL_SCOPE_ONLY_CA;
	}
	ret = 0;
out:
	ISSUING_DIST_POINT_free(idp);
	ERR_clear_error();
	return ret;
}

static int
write_index(const char *idx_path, struct idx_header *hdr, const uint8_t *records,
            char *why, size_t why_size)
{
	memcpy(hdr->magic, IDX_MAGIC, 8);
	hdr->version = IDX_VERSION;
	hdr->record_size = PIV_CRL_RECORD;
	piv_sha256(hdr, offsetof(struct idx_header, header_hash), hdr->header_hash);
	if (piv_write_atomically(idx_path, hdr, sizeof(*hdr), records,
	                     (size_t)hdr->count * PIV_CRL_RECORD) != 0) {
		piv_fmt(why, why_size, "cannot write the CRL index %s: %s", idx_path, strerror(errno));
		return -1;
	}
	return 0;
}

int
piv_crl_build_index(const char *crl_path, X509 *issuer, const char *idx_path, char *why,
                    size_t why_size)
{
	struct idx_header hdr;
	STACK_OF(X509_REVOKED) *revoked;
	X509_CRL *crl = NULL;
	uint8_t *records = NULL;
	size_t count = 0;
	uint32_t scope = 0;
	int ret = -1;

	memset(&hdr, 0, sizeof(hdr));
	/* The identity is taken before reading, so a CRL replaced while we
	 * read it gives an index that no longer matches (and is rebuilt). */
	if (file_identity(crl_path, hdr.source_id) != 0) {
		piv_fmt(why, why_size, "cannot read %s", crl_path);
		return -1;
	}
	crl = read_crl(crl_path, hdr.reason, sizeof(hdr.reason));
	if (crl == NULL) {
		hdr.flags = IDX_UNREADABLE;
		ret = write_index(idx_path, &hdr, NULL, why, why_size);
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
		hdr.flags = IDX_NAME_ONLY;
		piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL of another issuer");
		if (name_hash(X509_CRL_get_issuer(crl), hdr.issuer_name) == 0)
			ret = write_index(idx_path, &hdr, NULL, why, why_size);
		goto out;
	}
	if (name_hash(X509_get_subject_name(issuer), hdr.issuer_name) != 0 ||
	    key_hash(issuer, hdr.issuer_key) != 0)
		goto out;
	if (check_crl(crl, issuer, &scope, hdr.reason, sizeof(hdr.reason)) != 0 ||
	    piv_asn1_time_to_unix(X509_CRL_get0_lastUpdate(crl), &hdr.this_update) != 0 ||
	    piv_asn1_time_to_unix(X509_CRL_get0_nextUpdate(crl), &hdr.next_update) != 0)
		goto rejected;
	revoked = X509_CRL_get_REVOKED(crl);
	count = (size_t)(revoked ? sk_X509_REVOKED_num(revoked) : 0);
	records = calloc(count ? count : 1, PIV_CRL_RECORD);
	if (records == NULL)
		goto out;
	for (size_t i = 0; i < count; i++) {
		X509_REVOKED *r = sk_X509_REVOKED_value(revoked, (int)i);
		const STACK_OF(X509_EXTENSION) *exts = X509_REVOKED_get0_extensions(r);
		for (int e = 0; e < sk_X509_EXTENSION_num(exts); e++) {
			/* certificateIssuer and friends: an indirect CRL in disguise */
			if (X509_EXTENSION_get_critical(sk_X509_EXTENSION_value(exts, e))) {
				piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL entry with a critical extension");
				goto rejected;
			}
		}
		if (piv_crl_serial_record(X509_REVOKED_get0_serialNumber(r),
		                          records + i * PIV_CRL_RECORD) != 0) {
			piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL entry with an oversized serial");
			goto rejected;
		}
	}
	qsort(records, count, PIV_CRL_RECORD, record_cmp);
	hdr.count = count;
	hdr.scope = scope;
	ret = write_index(idx_path, &hdr, records, why, why_size);
	goto out;
rejected:
	hdr.flags = IDX_REJECTED;
	hdr.count = 0;
	ret = write_index(idx_path, &hdr, NULL, why, why_size);
out:
	free(records);
	X509_CRL_free(crl);
	ERR_clear_error();
	return ret;
}

int
piv_crl_open_index(const char *idx_path, const char *crl_path, struct piv_crl_index *idx)
{
	struct idx_header hdr;
	uint8_t id[32], check[32];
	struct stat st;
	void *map;
	int fd;

	memset(idx, 0, sizeof(*idx));
	if (crl_path != NULL && file_identity(crl_path, id) != 0)
		return -1;
	fd = open(idx_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size < sizeof(hdr)) {
		close(fd);
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED)
		return -1;
	/* A binary search touches a few pages; read-ahead would pull in
	 * megabytes of a large index for nothing. */
	(void)madvise(map, (size_t)st.st_size, MADV_RANDOM);
	memcpy(&hdr, map, sizeof(hdr));
	piv_sha256(&hdr, offsetof(struct idx_header, header_hash), check);
	/* Truncated, foreign, corrupt or stale: never trusted, rebuilt. */
	if (memcmp(hdr.magic, IDX_MAGIC, 8) != 0 || hdr.version != IDX_VERSION ||
	    hdr.record_size != PIV_CRL_RECORD || memcmp(check, hdr.header_hash, 32) != 0 ||
	    hdr.count > ((uint64_t)st.st_size - sizeof(hdr)) / PIV_CRL_RECORD ||
	    sizeof(hdr) + hdr.count * PIV_CRL_RECORD != (uint64_t)st.st_size ||
	    (crl_path != NULL && memcmp(hdr.source_id, id, 32) != 0)) {
		munmap(map, (size_t)st.st_size);
		return -1;
	}
	idx->map = map;
	idx->map_len = (size_t)st.st_size;
	idx->count = hdr.count;
	idx->records = (const uint8_t *)map + sizeof(hdr);
	idx->this_update = hdr.this_update;
	idx->next_update = hdr.next_update;
	idx->scope = hdr.scope;
	idx->flags = hdr.flags;
	memcpy(idx->reason, hdr.reason, sizeof(idx->reason));
	idx->reason[sizeof(idx->reason) - 1] = '\0';
	memcpy(idx->issuer_name, hdr.issuer_name, 32);
	memcpy(idx->issuer_key, hdr.issuer_key, 32);
	return 0;
}

void
piv_crl_close_index(struct piv_crl_index *idx)
{
	if (idx->map != NULL)
		munmap((void *)idx->map, idx->map_len);
	memset(idx, 0, sizeof(*idx));
}

bool
piv_crl_index_has(const struct piv_crl_index *idx, const uint8_t rec[PIV_CRL_RECORD])
{
	uint64_t lo = 0, hi = idx->count;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		int c = memcmp(idx->records + mid * PIV_CRL_RECORD, rec, PIV_CRL_RECORD);
		if (c == 0)
			return true;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* The answer of one CRL file for cert. */
struct crl_result {
	bool usable;        /* verified, current, in scope */
	bool revoked;
	bool expired;
	char why[300];
};

static void
consult(const struct piv_conf *conf, const char *crl_path, X509 *cert, X509 *issuer, time_t now,
        bool is_ca, piv_rev_log_fn log, void *ud, struct crl_result *res)
{
	struct piv_crl_index idx;
	uint8_t want_name[32], want_key[32], rec[PIV_CRL_RECORD];
	char idx_path[4200], why[300];

	memset(res, 0, sizeof(*res));
	memset(&idx, 0, sizeof(idx));
	if (piv_cache_path(conf->cache_dir, "crlidx", crl_path, ".idx", idx_path, sizeof(idx_path)) != 0 ||
	    name_hash(X509_get_subject_name(issuer), want_name) != 0 ||
	    key_hash(issuer, want_key) != 0 ||
	    piv_crl_serial_record(X509_get0_serialNumber(cert), rec) != 0) {
		piv_fmt(res->why, sizeof(res->why), "internal error");
		return;
	}
	if (piv_crl_open_index(idx_path, crl_path, &idx) == 0 && !(idx.flags & IDX_UNREADABLE) &&
	    memcmp(idx.issuer_name, want_name, 32) == 0 &&
	    ((idx.flags & IDX_NAME_ONLY) || memcmp(idx.issuer_key, want_key, 32) != 0)) {
		/* Names our issuer but was not checked with this key: rebuild. */
		piv_crl_close_index(&idx);
	}
	if (idx.map == NULL) {
		log_to(log, ud, LOG_DEBUG, "CRL %s: verifying and indexing", crl_path);
		if (piv_crl_build_index(crl_path, issuer, idx_path, why, sizeof(why)) != 0) {
			piv_fmt(res->why, sizeof(res->why), "%s", why);
			return;
		}
		/* Not tied to the file's identity this time: a concurrent login may
		 * already have replaced a fetched CRL with its own copy (and index),
		 * and every index in cache_dir was made from a verified CRL. */
		(void)piv_crl_open_index(idx_path, NULL, &idx);
	}
	if (idx.map == NULL) {
		piv_fmt(res->why, sizeof(res->why), "CRL index unusable");
		return;
	}
	if (idx.flags & (IDX_UNREADABLE | IDX_REJECTED)) {
		piv_fmt(res->why, sizeof(res->why), "%s", idx.reason);
	} else if (memcmp(idx.issuer_name, want_name, 32) != 0) {
		piv_fmt(res->why, sizeof(res->why), "CRL of another issuer");
	} else if ((idx.flags & IDX_NAME_ONLY) || memcmp(idx.issuer_key, want_key, 32) != 0) {
		piv_fmt(res->why, sizeof(res->why), "CRL not verified with this issuer's key");
	} else if ((idx.scope & PIV_CRL_SCOPE_ONLY_USER) && is_ca) {
		piv_fmt(res->why, sizeof(res->why), "CRL covers only end-entity certificates");
	} else if ((idx.scope & PIV_CRL_SCOPE_ONLY_CA) && !is_ca) {
		piv_fmt(res->why, sizeof(res->why), "CRL covers only CA certificates");
	} else if (idx.this_update > (int64_t)now + CLOCK_SKEW) {
		piv_fmt(res->why, sizeof(res->why), "CRL is not yet valid (thisUpdate in the future)");
	} else if (idx.next_update <= (int64_t)now) {
		res->expired = true;
		piv_fmt(res->why, sizeof(res->why), "CRL has expired (nextUpdate passed)");
	} else {
		res->usable = true;
		res->revoked = piv_crl_index_has(&idx, rec);
		piv_fmt(res->why, sizeof(res->why),
		        "%s (CRL with %ju entries, thisUpdate %jd s ago, nextUpdate in %jd s)",
		        res->revoked ? "revoked" : "not revoked", (uintmax_t)idx.count,
		        (intmax_t)((int64_t)now - idx.this_update),
		        (intmax_t)(idx.next_update - (int64_t)now));
	}
	piv_crl_close_index(&idx);
}

/* HTTP URIs of the certificate's CRL distribution points. */
static size_t
http_cdps(X509 *cert, char urls[][1024], size_t max)
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

/* Fetch url into path (atomically), bounded by net_timeout and a size
 * cap. The proxy is "" so that no environment variable (the caller's, under
 * sudo) can send the request elsewhere. */
static int
fetch(const struct piv_conf *conf, const char *url, const char *path, char *why, size_t why_size)
{
	BIO *resp;
	char *data = NULL;
	long len;
	int ret = -1;

	resp = OSSL_HTTP_get(url, "", NULL, NULL, NULL, NULL, NULL, 0, NULL, NULL, 1,
	                     (size_t)MAX_CRL_SIZE, (int)conf->net_timeout);
	if (resp == NULL) {
		unsigned long e = ERR_peek_last_error();
		piv_fmt(why, why_size, "fetching %s failed: %s", url,
		        e ? ERR_reason_error_string(e) : "no answer");
		ERR_clear_error();
		return -1;
	}
	len = BIO_get_mem_data(resp, &data);
	if (len <= 0 || data == NULL) {
		piv_fmt(why, why_size, "fetching %s gave nothing", url);
	} else if (piv_write_atomically(path, data, (size_t)len, NULL, 0) != 0) {
		piv_fmt(why, why_size, "cannot store %s: %s", path, strerror(errno));
	} else {
		ret = 0;
	}
	BIO_free(resp);
	ERR_clear_error();
	return ret;
}

enum piv_rev_answer
piv_crl_check(const struct piv_conf *conf, X509 *cert, X509 *issuer, time_t now,
              piv_rev_log_fn log, void *ud, char *reason, size_t reason_size)
{
	char (*files)[1024] = calloc(MAX_CRL_FILES, sizeof(*files));
	enum piv_rev_answer answer = PIV_REV_UNKNOWN;
	size_t n_files = 0;
	bool usable = false, stale_fetched = false;
	char urls[4][1024];
	size_t n_urls;
	struct crl_result res;
	bool is_ca = X509_check_ca(cert) != 0;

	piv_fmt(reason, reason_size, "no CRL for the issuer");
	if (files == NULL)
		return PIV_REV_UNKNOWN;
	if (conf->crl_file != NULL)
		snprintf(files[n_files++], sizeof(files[0]), "%s", conf->crl_file);
	if (conf->crl_dir != NULL) {
		DIR *dir = opendir(conf->crl_dir);
		struct dirent *de;
		while (dir != NULL && (de = readdir(dir)) != NULL && n_files < MAX_CRL_FILES) {
			if (de->d_name[0] == '.')
				continue;
			char why[300];
			if ((size_t)snprintf(files[n_files], sizeof(files[0]), "%s/%s", conf->crl_dir,
			                     de->d_name) >= sizeof(files[0]))
				continue;
			if (piv_check_root_owned(files[n_files], false, why, sizeof(why)) != 0) {
				log_to(log, ud, LOG_WARNING, "crl_dir: skipping %s", why);
				continue;
			}
			n_files++;
		}
		if (dir != NULL)
			closedir(dir);
		else
			log_to(log, ud, LOG_WARNING, "crl_dir %s: %s", conf->crl_dir, strerror(errno));
	}
	n_urls = conf->crl_fetch ? http_cdps(cert, urls, 4) : 0;

	/* Local CRLs first, then what was fetched before (the cache). */
	for (size_t i = 0; i < n_files + n_urls; i++) {
		char cached[4200];
		const char *path = files[i];
		if (i >= n_files) {
			if (piv_cache_path(conf->cache_dir, "crl", urls[i - n_files], ".crl", cached, sizeof(cached)) != 0)
				continue;
			/* stat, not access(2): under sudo the real uid is the caller's */
			struct stat cst;
			if (stat(cached, &cst) != 0)
				continue;
			path = cached;
		}
		consult(conf, path, cert, issuer, now, is_ca, log, ud, &res);
		/* the source, as pam-piv-check shows it: a local file, or the
		 * cached copy of what a distribution point served */
		char source[1200];
		if (i < n_files)
			piv_fmt(source, sizeof(source), "local CRL %s", path);
		else
			piv_fmt(source, sizeof(source), "cached CRL from %s", urls[i - n_files]);
		log_to(log, ud, LOG_DEBUG, "%s: %s", source, res.why);
		if (res.usable && res.revoked) {
			piv_fmt(reason, reason_size, "%s: %s", source, res.why);
			answer = PIV_REV_REVOKED;
			goto out;
		}
		if (res.usable)
			usable = true;
		else if (i >= n_files)
			stale_fetched = true;
		if (res.usable || !usable)
			piv_fmt(reason, reason_size, "%s: %s", source, res.why);
	}
	if (usable) {
		answer = PIV_REV_GOOD;
		goto out;
	}

	/* Nothing current: fetch from the distribution points. */
	for (size_t u = 0; u < n_urls; u++) {
		char cached[4200], why[300];
		if (piv_cache_path(conf->cache_dir, "crl", urls[u], ".crl", cached, sizeof(cached)) != 0)
			continue;
		log_to(log, ud, LOG_DEBUG, "fetching CRL %s%s", urls[u],
		       stale_fetched ? " (cached copy is not current)" : "");
		if (fetch(conf, urls[u], cached, why, sizeof(why)) != 0) {
			log_to(log, ud, LOG_WARNING, "%s", why);
			piv_fmt(reason, reason_size, "%s", why);
			continue;
		}
		consult(conf, cached, cert, issuer, now, is_ca, log, ud, &res);
		log_to(log, ud, LOG_DEBUG, "CRL fetched from %s: %s", urls[u], res.why);
		piv_fmt(reason, reason_size, "CRL fetched from %s: %s", urls[u], res.why);
		if (res.usable) {
			answer = res.revoked ? PIV_REV_REVOKED : PIV_REV_GOOD;
			goto out;
		}
	}
out:
	free(files);
	return answer;
}
