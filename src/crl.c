/* CRLs (see crl.h). A CRL is parsed and its signature verified once per
 * version; the result is kept in cache_dir as a sorted array of serials
 * with a small header, and later logins only map that file and binary
 * search it, so a million-entry CRL costs what an empty one does.
 *
 * Which CRLs answer for a certificate (RFC 5280 6.3.3): one of its issuer,
 * verified with the issuer's key from the validated chain, current, whose
 * issuingDistributionPoint covers it (the kind of certificate, and one of
 * the certificate's distribution point names when the CRL names any), and
 * not older than a CRL of the same issuer and scope seen before (the
 * highest cRLNumber is kept in cache_dir). A complete CRL that announces
 * delta CRLs (Freshest CRL) answers only together with a current delta
 * CRL for it. A serial listed in any CRL the issuer signed stays revoked
 * when no CRL can give a complete answer. */
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
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/http.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#define MAX_CRL_FILES 256
#define MAX_CDP_URLS 4
#define MAX_CRL_SIZE (256L * 1024 * 1024)
#define CLOCK_SKEW 300 /* seconds of clock difference tolerated */
#define CRL_REASON_REMOVE_FROM_CRL 8

/* The index header. Host byte order: the cache is local to the host. */
struct idx_header {
	char magic[8];
	uint32_t version;
	uint32_t record_size;
	uint64_t count;
	int64_t this_update;
	int64_t next_update;
	uint32_t scope;
	uint32_t flags;          /* PIV_CRL_IDX_* */
	uint8_t source_id[32];   /* identity of the CRL file it was built from */
	uint8_t issuer_name[32]; /* SHA-256 of the issuer name's DER */
	uint8_t issuer_key[32];  /* SHA-256 of the verifying key's SPKI DER */
	uint8_t number[PIV_CRL_RECORD];
	uint8_t base_number[PIV_CRL_RECORD];
	uint8_t scope_id[32];
	uint32_t n_dp_names;
	uint32_t n_freshest;
	uint8_t dp_names[PIV_CRL_MAX_DP_NAMES][32];
	char freshest[PIV_CRL_MAX_FRESHEST][PIV_CRL_URL_MAX];
	char reason[128];        /* why the CRL is not usable (flags) */
	uint8_t header_hash[32]; /* SHA-256 of everything above */
};

const size_t piv_crl_idx_header_size = sizeof(struct idx_header);
const size_t piv_crl_idx_count_offset = offsetof(struct idx_header, count);
const size_t piv_crl_idx_hash_offset = offsetof(struct idx_header, header_hash);

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

/* SHA-256 of DER that an i2d function just made (len, der: its result),
 * which is freed. */
static int
hash_der(int len, unsigned char *der, uint8_t out[32])
{
	if (len <= 0 || der == NULL)
		return -1;
	piv_sha256(der, (size_t)len, out);
	OPENSSL_free(der);
	return 0;
}

static int
name_hash(const X509_NAME *name, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_X509_NAME(name, &der);

	return hash_der(len, der, out);
}

static int
key_hash(X509 *cert, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);

	return hash_der(len, der, out);
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

/* An INTEGER extension of the CRL (cRLNumber, deltaCRLIndicator) as an
 * index record: 0 and *present, 0 when absent, -1 when malformed. */
static int
number_ext(X509_CRL *crl, int nid, uint8_t rec[PIV_CRL_RECORD], bool *present)
{
	int crit = 0, rc;
	ASN1_INTEGER *n = X509_CRL_get_ext_d2i(crl, nid, &crit, NULL);

	*present = false;
	if (n == NULL)
		return crit == -1 ? 0 : -1; /* -2: twice; otherwise undecodable */
	rc = piv_crl_serial_record(n, rec);
	ASN1_INTEGER_free(n);
	/* CRLNumber ::= INTEGER (0..MAX), at most 20 octets */
	if (rc != 0 || rec[0] != 0 || rec[1] > 21)
		return -1;
	*present = true;
	return 0;
}

static int
general_name_hash(GENERAL_NAME *gn, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_GENERAL_NAME(gn, &der);

	return hash_der(len, der, out);
}

/* The names of a distribution point: its full names, or its name relative
 * to the issuer (the CRL's, or the certificate's) as a directoryName.
 * Hashes go to names[*n...]; -1 when more than max or unreadable. */
static int
dp_name_hashes(DIST_POINT_NAME *dpn, const X509_NAME *issuer, uint8_t (*names)[32], uint32_t *n,
               uint32_t max)
{
	if (dpn->type == 0) {
		for (int i = 0; i < sk_GENERAL_NAME_num(dpn->name.fullname); i++) {
			if (*n >= max ||
			    general_name_hash(sk_GENERAL_NAME_value(dpn->name.fullname, i), names[*n]) != 0)
				return -1;
			(*n)++;
		}
		return 0;
	}
	{
		GENERAL_NAME *gn;
		int rc;
		if (*n >= max || DIST_POINT_set_dpname(dpn, issuer) != 1 || dpn->dpname == NULL ||
		    (gn = GENERAL_NAME_new()) == NULL)
			return -1;
		gn->type = GEN_DIRNAME;
		gn->d.directoryName = dpn->dpname; /* borrowed */
		rc = general_name_hash(gn, names[*n]);
		gn->d.directoryName = NULL;
		GENERAL_NAME_free(gn);
		if (rc != 0)
			return -1;
		(*n)++;
		return 0;
	}
}

/* The http:// URLs of a complete CRL's Freshest CRL extension (where its
 * delta CRLs are). -1 when the extension is malformed. */
static int
freshest_urls(X509_CRL *crl, struct idx_header *hdr)
{
	int crit = 0;
	STACK_OF(DIST_POINT) *dps = X509_CRL_get_ext_d2i(crl, NID_freshest_crl, &crit, NULL);

	if (dps == NULL)
		return crit == -1 ? 0 : -1;
	hdr->flags |= PIV_CRL_IDX_FRESHEST;
	for (int i = 0; i < sk_DIST_POINT_num(dps); i++) {
		DIST_POINT *dp = sk_DIST_POINT_value(dps, i);
		if (dp->distpoint == NULL || dp->distpoint->type != 0 || dp->reasons != NULL ||
		    dp->CRLissuer != NULL)
			continue;
		for (int j = 0; j < sk_GENERAL_NAME_num(dp->distpoint->name.fullname); j++) {
			GENERAL_NAME *gn = sk_GENERAL_NAME_value(dp->distpoint->name.fullname, j);
			const unsigned char *uri;
			int len;
			if (gn->type != GEN_URI || hdr->n_freshest >= PIV_CRL_MAX_FRESHEST)
				continue;
			uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
			len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
			if (len <= 7 || len >= PIV_CRL_URL_MAX || strncmp((const char *)uri, "http://", 7) != 0 ||
			    memchr(uri, '\0', (size_t)len) != NULL)
				continue;
			memcpy(hdr->freshest[hdr->n_freshest], uri, (size_t)len);
			hdr->freshest[hdr->n_freshest][len] = '\0';
			hdr->n_freshest++;
		}
	}
	sk_DIST_POINT_pop_free(dps, DIST_POINT_free);
	return 0;
}

/* The checks that make a CRL usable at all for this issuer, and what the
 * index keeps of its scope, numbers and delta CRLs; the time window and
 * the scope are checked at each use, from the index. */
static int
check_crl(X509_CRL *crl, X509 *issuer, struct idx_header *hdr, char *why, size_t why_size)
{
	ISSUING_DIST_POINT *idp = NULL;
	int crit = 0, ret = -1, idx_pos;
	bool present;
	uint32_t ku;

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
	for (int i = 0; i < X509_CRL_get_ext_count(crl); i++) {
		X509_EXTENSION *ext = X509_CRL_get_ext(crl, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (X509_EXTENSION_get_critical(ext) && nid != NID_issuing_distribution_point &&
		    nid != NID_crl_number && nid != NID_authority_key_identifier &&
		    nid != NID_delta_crl) {
			piv_fmt(why, why_size, "CRL has an unknown critical extension");
			goto out;
		}
	}
	if (number_ext(crl, NID_crl_number, hdr->number, &present) != 0) {
		piv_fmt(why, why_size, "malformed cRLNumber");
		goto out;
	}
	if (present)
		hdr->flags |= PIV_CRL_IDX_NUMBERED;
	/* A delta CRL lists only what changed since its base: it is kept as
	 * such and used only together with that base. */
	if (number_ext(crl, NID_delta_crl, hdr->base_number, &present) != 0) {
		piv_fmt(why, why_size, "malformed deltaCRLIndicator");
		goto out;
	}
	if (present) {
		hdr->flags |= PIV_CRL_IDX_DELTA;
		if (!(hdr->flags & PIV_CRL_IDX_NUMBERED)) {
			piv_fmt(why, why_size, "delta CRL without a cRLNumber");
			goto out;
		}
	} else if (freshest_urls(crl, hdr) != 0) {
		piv_fmt(why, why_size, "malformed Freshest CRL extension");
		goto out;
	}
	idp = X509_CRL_get_ext_d2i(crl, NID_issuing_distribution_point, &crit, NULL);
	if (idp == NULL && crit != -1) {
		piv_fmt(why, why_size, "malformed issuingDistributionPoint");
		goto out;
	}
	if (idp != NULL) {
		ASN1_OCTET_STRING *value;
		if (idp->indirectCRL || idp->onlysomereasons != NULL || idp->onlyattr) {
			piv_fmt(why, why_size, "indirect or partial CRLs are not supported");
			goto out;
		}
		if (idp->onlyuser)
			hdr->scope |= PIV_CRL_SCOPE_ONLY_USER;
		if (idp->onlyCA)
			hdr->scope |= PIV_CRL_SCOPE_ONLY_CA;
		if (idp->distpoint != NULL &&
		    dp_name_hashes(idp->distpoint, X509_CRL_get_issuer(crl), hdr->dp_names,
		                   &hdr->n_dp_names, PIV_CRL_MAX_DP_NAMES) != 0) {
			piv_fmt(why, why_size, "issuingDistributionPoint with more than %d names, or "
			        "unreadable", PIV_CRL_MAX_DP_NAMES);
			goto out;
		}
		/* the scope, for delta CRLs and the rollback check: the whole
		 * extension as the CA wrote it */
		idx_pos = X509_CRL_get_ext_by_NID(crl, NID_issuing_distribution_point, -1);
		value = X509_EXTENSION_get_data(X509_CRL_get_ext(crl, idx_pos));
		piv_sha256(ASN1_STRING_get0_data(value), (size_t)ASN1_STRING_length(value),
		           hdr->scope_id);
	}
	ret = 0;
out:
	ISSUING_DIST_POINT_free(idp);
	ERR_clear_error();
	return ret;
}

/* A delta CRL's entry with reason removeFromCRL ends a certificateHold of
 * the base: it revokes nothing. */
static bool
removes_from_crl(X509_REVOKED *r)
{
	int crit = 0;
	ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, &crit, NULL);
	bool remove = reason != NULL && ASN1_ENUMERATED_get(reason) == CRL_REASON_REMOVE_FROM_CRL;

	ASN1_ENUMERATED_free(reason);
	return remove;
}

static int
write_index(const char *idx_path, struct idx_header *hdr, const uint8_t *records,
            char *why, size_t why_size)
{
	memcpy(hdr->magic, PIV_CRL_IDX_MAGIC, 8);
	hdr->version = PIV_CRL_IDX_VERSION;
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
	size_t count = 0, n_records = 0;
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
		hdr.flags = PIV_CRL_IDX_UNREADABLE;
		ret = write_index(idx_path, &hdr, NULL, why, why_size);
		goto out;
	}
	if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0) {
		hdr.flags = PIV_CRL_IDX_NAME_ONLY;
		piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL of another issuer");
		if (name_hash(X509_CRL_get_issuer(crl), hdr.issuer_name) == 0)
			ret = write_index(idx_path, &hdr, NULL, why, why_size);
		goto out;
	}
	if (name_hash(X509_get_subject_name(issuer), hdr.issuer_name) != 0 ||
	    key_hash(issuer, hdr.issuer_key) != 0)
		goto out;
	if (check_crl(crl, issuer, &hdr, hdr.reason, sizeof(hdr.reason)) != 0 ||
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
		if ((hdr.flags & PIV_CRL_IDX_DELTA) && removes_from_crl(r))
			continue;
		if (piv_crl_serial_record(X509_REVOKED_get0_serialNumber(r),
		                          records + n_records * PIV_CRL_RECORD) != 0) {
			piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL entry with an oversized serial");
			goto rejected;
		}
		n_records++;
	}
	qsort(records, n_records, PIV_CRL_RECORD, record_cmp);
	hdr.count = n_records;
	ret = write_index(idx_path, &hdr, records, why, why_size);
	goto out;
rejected:
	/* what a rejected CRL says is not kept: only why */
	hdr.flags = PIV_CRL_IDX_REJECTED;
	hdr.count = 0;
	hdr.scope = 0;
	hdr.n_dp_names = 0;
	hdr.n_freshest = 0;
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
	if (memcmp(hdr.magic, PIV_CRL_IDX_MAGIC, 8) != 0 || hdr.version != PIV_CRL_IDX_VERSION ||
	    hdr.record_size != PIV_CRL_RECORD || memcmp(check, hdr.header_hash, 32) != 0 ||
	    hdr.count > ((uint64_t)st.st_size - sizeof(hdr)) / PIV_CRL_RECORD ||
	    sizeof(hdr) + hdr.count * PIV_CRL_RECORD != (uint64_t)st.st_size ||
	    hdr.n_dp_names > PIV_CRL_MAX_DP_NAMES || hdr.n_freshest > PIV_CRL_MAX_FRESHEST ||
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
	memcpy(idx->number, hdr.number, PIV_CRL_RECORD);
	memcpy(idx->base_number, hdr.base_number, PIV_CRL_RECORD);
	memcpy(idx->scope_id, hdr.scope_id, 32);
	idx->n_dp_names = hdr.n_dp_names;
	memcpy(idx->dp_names, hdr.dp_names, sizeof(idx->dp_names));
	idx->n_freshest = hdr.n_freshest;
	for (size_t i = 0; i < PIV_CRL_MAX_FRESHEST; i++) {
		memcpy(idx->freshest[i], hdr.freshest[i], PIV_CRL_URL_MAX);
		idx->freshest[i][PIV_CRL_URL_MAX - 1] = '\0';
	}
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
		if (dp_name_hashes(dp->distpoint, X509_get_issuer_name(cert), dps->names, &dps->n, 16) != 0)
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
	time_t now;
	bool is_ca;
	struct cert_dps dps;
	uint8_t want_name[32], want_key[32], serial[PIV_CRL_RECORD];
	piv_rev_log_fn log;
	void *ud;
	struct crl_result *res; /* every CRL consulted, in order */
	size_t n_res, max_res;
	char fetch_why[300];    /* the last download that failed */
};

static void
consult(struct crl_run *run, const char *crl_path, struct crl_result *res)
{
	struct piv_crl_index idx;
	char idx_path[4200], why[300];
	time_t now = run->now;

	memset(&idx, 0, sizeof(idx));
	if (piv_cache_path(run->conf->cache_dir, "crlidx", crl_path, ".idx", idx_path,
	                   sizeof(idx_path)) != 0) {
		piv_fmt(res->why, sizeof(res->why), "internal error");
		return;
	}
	if (piv_crl_open_index(idx_path, crl_path, &idx) == 0 &&
	    !(idx.flags & PIV_CRL_IDX_UNREADABLE) && memcmp(idx.issuer_name, run->want_name, 32) == 0 &&
	    ((idx.flags & PIV_CRL_IDX_NAME_ONLY) || memcmp(idx.issuer_key, run->want_key, 32) != 0)) {
		/* Names our issuer but was not checked with this key: rebuild. */
		piv_crl_close_index(&idx);
	}
	if (idx.map == NULL) {
		log_to(run->log, run->ud, LOG_DEBUG, "CRL %s: verifying and indexing", crl_path);
		if (piv_crl_build_index(crl_path, run->issuer, idx_path, why, sizeof(why)) != 0) {
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
		        "%s (%sCRL with %ju entries, thisUpdate %jd s ago, nextUpdate in %jd s)",
		        res->listed ? "revoked" : "not revoked", res->delta ? "delta " : "",
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
			if (fetch(run->conf, urls[u], cached, why, sizeof(why)) != 0) {
				log_to(run->log, run->ud, LOG_WARNING, "%s", why);
				piv_fmt(run->fetch_why, sizeof(run->fetch_why), "%s", why);
				continue;
			}
			(void)add_source(run, cached, "delta CRL fetched from", urls[u]);
		}
	}
}

enum piv_rev_answer
piv_crl_check(const struct piv_conf *conf, X509 *cert, X509 *issuer, time_t now,
              piv_rev_log_fn log, void *ud, char *reason, size_t reason_size)
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
	run.cert = cert;
	run.issuer = issuer;
	run.now = now;
	run.is_ca = X509_check_ca(cert) != 0;
	run.log = log;
	run.ud = ud;
	cert_dp_names(cert, &run.dps);
	if (name_hash(X509_get_subject_name(issuer), run.want_name) != 0 ||
	    key_hash(issuer, run.want_key) != 0 ||
	    piv_crl_serial_record(X509_get0_serialNumber(cert), run.serial) != 0) {
		piv_fmt(reason, reason_size, "internal error");
		goto out;
	}
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
	n_urls = conf->crl_fetch ? http_cdps(cert, urls, MAX_CDP_URLS) : 0;

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
		if (fetch(conf, urls[u], cached, why, sizeof(why)) != 0) {
			log_to(log, ud, LOG_WARNING, "%s", why);
			piv_fmt(run.fetch_why, sizeof(run.fetch_why), "%s", why);
			continue;
		}
		(void)add_source(&run, cached, "CRL fetched from", urls[u]);
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
