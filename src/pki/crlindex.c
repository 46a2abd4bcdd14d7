/* The cache of CRL indexes (see crlindex.h). */
#include "config.h"
#include "pki/crlindex.h"
#include "pki/cache.h"
#include "pki/crlstream.h"
#include "common/util.h"
#include "pki/validate.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#define CRL_REASON_REMOVE_FROM_CRL 8
#define PRUNE_AFTER (7 * 86400) /* seconds */

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
	uint8_t content_id[32];  /* SHA-256 of the CRL's DER (of the file, if unreadable) */
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



int
piv_crl_serial_bytes_record(const uint8_t *content, size_t len, uint8_t rec[PIV_CRL_RECORD])
{
	uint8_t mag[64];
	size_t start = 0;
	bool negative = len > 0 && (content[0] & 0x80);

	memset(rec, 0, PIV_CRL_RECORD);
	if (len == 0 || len > sizeof(mag))
		return -1;
	if (!negative) {
		memcpy(mag, content, len);
	} else {
		/* the magnitude of a two's complement value: invert, add one */
		unsigned carry = 1;
		for (size_t i = len; i-- > 0;) {
			unsigned v = (unsigned)(uint8_t)~content[i] + carry;
			mag[i] = (uint8_t)v;
			carry = v >> 8;
		}
	}
	while (start < len && mag[start] == 0)
		start++;
	if (len - start > PIV_CRL_MAX_SERIAL)
		return -1;
	rec[0] = negative ? 1 : 0;
	rec[1] = (uint8_t)(len - start);
	memcpy(rec + PIV_CRL_RECORD - (len - start), mag + start, len - start);
	return 0;
}

static int
record_cmp(const void *a, const void *b)
{
	return memcmp(a, b, PIV_CRL_RECORD);
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

int
piv_crl_name_hash(const X509_NAME *name, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_X509_NAME(name, &der);

	return hash_der(len, der, out);
}

int
piv_crl_key_hash(X509 *cert, uint8_t out[32])
{
	unsigned char *der = NULL;
	int len = i2d_PUBKEY(X509_get0_pubkey(cert), &der);

	return hash_der(len, der, out);
}

/* An INTEGER extension of the CRL (cRLNumber, deltaCRLIndicator) as an
 * index record: 0 and *present, 0 when absent, -1 when malformed. */
static int
number_ext(const STACK_OF(X509_EXTENSION) *exts, int nid, uint8_t rec[PIV_CRL_RECORD],
           bool *present)
{
	int crit = 0, rc;
	ASN1_INTEGER *n = X509V3_get_d2i(exts, nid, &crit, NULL);

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

int
piv_crl_dp_name_hashes(DIST_POINT_NAME *dpn, const X509_NAME *issuer, uint8_t (*names)[32], uint32_t *n,
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
freshest_urls(const STACK_OF(X509_EXTENSION) *exts, struct idx_header *hdr)
{
	int crit = 0;
	STACK_OF(DIST_POINT) *dps = X509V3_get_d2i(exts, NID_freshest_crl, &crit, NULL);

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
check_crl(const struct piv_crl_view *v, X509 *issuer, struct idx_header *hdr, char *why,
          size_t why_size)
{
	const STACK_OF(X509_EXTENSION) *exts = v->extensions;
	ISSUING_DIST_POINT *idp = NULL;
	int crit = 0, ret = -1, idx_pos;
	bool present;
	uint32_t ku;

	if (X509_NAME_cmp(v->issuer, X509_get_subject_name(issuer)) != 0) {
		piv_fmt(why, why_size, "CRL issued by another CA");
		return -1;
	}
	ku = X509_get_key_usage(issuer);
	if ((X509_get_extension_flags(issuer) & EXFLAG_KUSAGE) && !(ku & KU_CRL_SIGN)) {
		piv_fmt(why, why_size, "the issuer may not sign CRLs (no cRLSign key usage)");
		return -1;
	}
	/* (the signature is verified while the entries are read: build_from_der) */
	if (v->next_update == NULL) {
		piv_fmt(why, why_size, "CRL has no nextUpdate");
		goto out;
	}
	for (int i = 0; i < sk_X509_EXTENSION_num(exts); i++) {
		X509_EXTENSION *ext = sk_X509_EXTENSION_value(exts, i);
		int nid = OBJ_obj2nid(X509_EXTENSION_get_object(ext));
		if (X509_EXTENSION_get_critical(ext) && nid != NID_issuing_distribution_point &&
		    nid != NID_crl_number && nid != NID_authority_key_identifier &&
		    nid != NID_delta_crl) {
			piv_fmt(why, why_size, "CRL has an unknown critical extension");
			goto out;
		}
	}
	if (number_ext(exts, NID_crl_number, hdr->number, &present) != 0) {
		piv_fmt(why, why_size, "malformed cRLNumber");
		goto out;
	}
	if (present)
		hdr->flags |= PIV_CRL_IDX_NUMBERED;
	/* A delta CRL lists only what changed since its base: it is kept as
	 * such and used only together with that base. */
	if (number_ext(exts, NID_delta_crl, hdr->base_number, &present) != 0) {
		piv_fmt(why, why_size, "malformed deltaCRLIndicator");
		goto out;
	}
	if (present) {
		hdr->flags |= PIV_CRL_IDX_DELTA;
		if (!(hdr->flags & PIV_CRL_IDX_NUMBERED)) {
			piv_fmt(why, why_size, "delta CRL without a cRLNumber");
			goto out;
		}
	} else if (freshest_urls(exts, hdr) != 0) {
		piv_fmt(why, why_size, "malformed Freshest CRL extension");
		goto out;
	}
	idp = X509V3_get_d2i(exts, NID_issuing_distribution_point, &crit, NULL);
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
		    piv_crl_dp_name_hashes(idp->distpoint, v->issuer, hdr->dp_names,
		                   &hdr->n_dp_names, PIV_CRL_MAX_DP_NAMES) != 0) {
			piv_fmt(why, why_size, "issuingDistributionPoint with more than %d names, or "
			        "unreadable", PIV_CRL_MAX_DP_NAMES);
			goto out;
		}
		/* the scope, for delta CRLs and the rollback check: the whole
		 * extension as the CA wrote it */
		idx_pos = X509v3_get_ext_by_NID(exts, NID_issuing_distribution_point, -1);
		value = X509_EXTENSION_get_data(X509v3_get_ext(exts, idx_pos));
		piv_sha256(ASN1_STRING_get0_data(value), (size_t)ASN1_STRING_length(value),
		           hdr->scope_id);
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

/* Index the CRL in der (content id: SHA-256 of what was read) for issuer. */
/* In place, no memory of its own (glibc's qsort takes a copy as large as
 * what it sorts): a heap sort of the records. */
static void
sift_down(uint8_t *rec, size_t start, size_t n)
{
	uint8_t tmp[PIV_CRL_RECORD];
	size_t root = start;

	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && record_cmp(rec + child * PIV_CRL_RECORD,
		                                rec + (child + 1) * PIV_CRL_RECORD) < 0)
			child++;
		if (record_cmp(rec + root * PIV_CRL_RECORD, rec + child * PIV_CRL_RECORD) >= 0)
			return;
		memcpy(tmp, rec + root * PIV_CRL_RECORD, PIV_CRL_RECORD);
		memcpy(rec + root * PIV_CRL_RECORD, rec + child * PIV_CRL_RECORD, PIV_CRL_RECORD);
		memcpy(rec + child * PIV_CRL_RECORD, tmp, PIV_CRL_RECORD);
		root = child;
	}
}

static void
sort_records(uint8_t *rec, size_t n)
{
	uint8_t tmp[PIV_CRL_RECORD];
	size_t i;

	/* CAs commonly list their entries in serial order already */
	for (i = 1; i < n && record_cmp(rec + (i - 1) * PIV_CRL_RECORD, rec + i * PIV_CRL_RECORD) <= 0;
	     i++)
		;
	if (i >= n)
		return;
	for (i = n / 2; i-- > 0;)
		sift_down(rec, i, n);
	for (i = n; i-- > 1;) {
		memcpy(tmp, rec, PIV_CRL_RECORD);
		memcpy(rec, rec + i * PIV_CRL_RECORD, PIV_CRL_RECORD);
		memcpy(rec + i * PIV_CRL_RECORD, tmp, PIV_CRL_RECORD);
		sift_down(rec, 0, i);
	}
}

#define HASH_STEP (4 * 1024 * 1024)

/* The certificate among issuer and others that issued the CRL (by name),
 * or NULL. */
static X509 *
crl_issuer_of(const X509_NAME *crl_issuer, X509 *issuer, STACK_OF(X509) *others)
{
	if (X509_NAME_cmp(crl_issuer, X509_get_subject_name(issuer)) == 0)
		return issuer;
	for (int i = 0; i < sk_X509_num(others); i++)
		if (X509_NAME_cmp(crl_issuer, X509_get_subject_name(sk_X509_value(others, i))) == 0)
			return sk_X509_value(others, i);
	return NULL;
}

static int
build_from_der(struct piv_crl_der *der, bool readable, const char *read_why, X509 *issuer,
               STACK_OF(X509) *others, const char *idx_path, char *why, size_t why_size)
{
	struct idx_header hdr;
	struct piv_crl_view view;
	EVP_MD_CTX *verify = NULL;
	uint8_t *records = NULL;
	const uint8_t *pos, *hashed, *tbs_end;
	size_t cap, n_records = 0;
	struct piv_crl_entry e;
	int ret = -1, rc;

	memset(&hdr, 0, sizeof(hdr));
	memset(&view, 0, sizeof(view));
	piv_sha256(der->der, der->len, hdr.content_id);
	if (!readable || piv_crl_view_parse(der->der, der->len, &view, hdr.reason,
	                                    sizeof(hdr.reason)) != 0) {
		if (!readable)
			piv_fmt(hdr.reason, sizeof(hdr.reason), "%s", read_why);
		hdr.flags = PIV_CRL_IDX_UNREADABLE;
		ret = write_index(idx_path, &hdr, NULL, why, why_size);
		goto out;
	}
	hdr.reason[0] = '\0';
	/* Verified with the key of whichever certificate of the chain issued
	 * it: then the index answers for every issuer of the chain. */
	if ((issuer = crl_issuer_of(view.issuer, issuer, others)) == NULL) {
		hdr.flags = PIV_CRL_IDX_NAME_ONLY;
		piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL of another issuer");
		if (piv_crl_name_hash(view.issuer, hdr.issuer_name) == 0)
			ret = write_index(idx_path, &hdr, NULL, why, why_size);
		goto out;
	}
	if (piv_crl_name_hash(X509_get_subject_name(issuer), hdr.issuer_name) != 0 ||
	    piv_crl_key_hash(issuer, hdr.issuer_key) != 0)
		goto out;
	if (check_crl(&view, issuer, &hdr, hdr.reason, sizeof(hdr.reason)) != 0 ||
	    piv_asn1_time_to_unix(view.this_update, &hdr.this_update) != 0 ||
	    piv_asn1_time_to_unix(view.next_update, &hdr.next_update) != 0)
		goto rejected;
	/* One pass over the CRL: the signed bytes are hashed as the entries
	 * are read, and what was read is given back, so the DER and the
	 * records are not both whole in memory. Nothing is written before the
	 * signature verified. */
	if ((verify = piv_crl_verify_init(&view, X509_get0_pubkey(issuer), hdr.reason,
	                                  sizeof(hdr.reason))) == NULL)
		goto rejected;
	tbs_end = view.tbs + view.tbs_len;
	hashed = view.entries != NULL ? view.entries : tbs_end;
	if (piv_crl_verify_update(verify, view.tbs, (size_t)(hashed - view.tbs)) != 0)
		goto rejected;
	/* An entry takes at least 14 bytes of DER: no more records than that. */
	cap = view.entries_len / 14 + 1;
	if ((records = malloc(cap * PIV_CRL_RECORD)) == NULL) {
		piv_fmt(why, why_size, "out of memory for %zu entries", cap);
		goto out;
	}
	pos = view.entries;
	while ((rc = piv_crl_view_next(&view, &pos, &e, hdr.reason, sizeof(hdr.reason))) == 1) {
		if ((size_t)(pos - hashed) >= HASH_STEP) {
			if (piv_crl_verify_update(verify, hashed, (size_t)(pos - hashed)) != 0)
				goto rejected;
			hashed = pos;
			piv_crl_der_release(der, hashed);
		}
		/* certificateIssuer and friends: an indirect CRL in disguise */
		if (e.critical_extension) {
			piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL entry with a critical extension");
			goto rejected;
		}
		if ((hdr.flags & PIV_CRL_IDX_DELTA) && e.reason == CRL_REASON_REMOVE_FROM_CRL)
			continue;
		if (n_records >= cap ||
		    piv_crl_serial_bytes_record(e.serial, e.serial_len,
		                                records + n_records * PIV_CRL_RECORD) != 0) {
			piv_fmt(hdr.reason, sizeof(hdr.reason), "CRL entry with an oversized serial");
			goto rejected;
		}
		n_records++;
	}
	if (rc < 0)
		goto rejected;
	rc = piv_crl_verify_update(verify, hashed, (size_t)(tbs_end - hashed));
	rc = piv_crl_verify_final(&view, verify, hdr.reason, sizeof(hdr.reason)) == 1 && rc == 0;
	verify = NULL;
	if (!rc)
		goto rejected;
	sort_records(records, n_records);
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
	EVP_MD_CTX_free(verify);
	free(records);
	piv_crl_view_free(&view);
	ERR_clear_error();
	return ret;
}

/* Read a CRL file in bulk; an unreadable one is read as bytes, for its
 * content id. */
static int
read_for_index(const char *crl_path, struct piv_crl_der *der, bool *readable, char *read_why,
               size_t read_why_size)
{
	*readable = piv_crl_der_read(crl_path, der, read_why, read_why_size) == 0;
	if (*readable)
		return 0;
	/* not a CRL: what it is, by its bytes */
	{
		struct stat st;
		int fd = open(crl_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
		void *map;
		memset(der, 0, sizeof(*der));
		if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
		    st.st_size > PIV_CRL_MAX_FILE ||
		    (map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0)) == MAP_FAILED) {
			if (fd >= 0)
				close(fd);
			return -1;
		}
		close(fd);
		der->der = map;
		der->len = (size_t)st.st_size;
		der->mapped = true;
		return 0;
	}
}

int
piv_crl_build_index(const char *crl_path, X509 *issuer, const char *idx_path, char *why,
                    size_t why_size)
{
	struct piv_crl_der der;
	char read_why[128];
	bool readable;
	int ret;

	if (read_for_index(crl_path, &der, &readable, read_why, sizeof(read_why)) != 0) {
		piv_fmt(why, why_size, "cannot read %s", crl_path);
		return -1;
	}
	ret = build_from_der(&der, readable, read_why, issuer, NULL, idx_path, why, why_size);
	piv_crl_der_free(&der);
	return ret;
}

int
piv_crl_open_index(const char *idx_path, const uint8_t *content_id, struct piv_crl_index *idx)
{
	struct idx_header hdr;
	uint8_t check[32];
	struct stat st;
	void *map;
	int fd;

	memset(idx, 0, sizeof(*idx));
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
	    (content_id != NULL && memcmp(hdr.content_id, content_id, 32) != 0)) {
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
	memcpy(idx->content_id, hdr.content_id, 32);
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

bool
piv_crl_index_serves(const struct piv_crl_index *idx, X509 *issuer)
{
	uint8_t want_name[32], want_key[32];

	if (idx->flags & PIV_CRL_IDX_UNREADABLE)
		return true;
	if (piv_crl_name_hash(X509_get_subject_name(issuer), want_name) != 0 ||
	    piv_crl_key_hash(issuer, want_key) != 0)
		return false;
	if (memcmp(idx->issuer_name, want_name, 32) != 0)
		return true; /* another issuer's CRL, for this one too */
	return !(idx->flags & PIV_CRL_IDX_NAME_ONLY) && memcmp(idx->issuer_key, want_key, 32) == 0;
}

/* ---- the cache: pointers from file versions and paths to content ------ */

#define PTR_MAGIC "PIVCRLP1"

struct ptr_file {
	char magic[8];
	uint8_t content_id[32];
	uint8_t hash[32]; /* SHA-256 of the above */
};

/* What identifies one version of a file without reading it: a new CRL
 * written in place of the old changes its size, times or inode. Not the
 * path: a hash link and its file are one version. */
static int
version_key(const char *crl_path, char *out, size_t out_size)
{
	struct stat st;
	char buf[200];
	int n;

	if (stat(crl_path, &st) != 0 || !S_ISREG(st.st_mode))
		return -1;
	n = snprintf(buf, sizeof(buf), "%ju|%ju|%jd|%jd.%09ld|%jd.%09ld", (uintmax_t)st.st_dev,
	             (uintmax_t)st.st_ino, (intmax_t)st.st_size, (intmax_t)st.st_mtim.tv_sec,
	             st.st_mtim.tv_nsec, (intmax_t)st.st_ctim.tv_sec, st.st_ctim.tv_nsec);
	if (n < 0 || (size_t)n >= sizeof(buf) || (size_t)n >= out_size)
		return -1;
	memcpy(out, buf, (size_t)n + 1);
	return 0;
}

static int
read_ptr(const char *path, uint8_t content_id[32])
{
	struct ptr_file p;
	uint8_t check[32];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, &p, sizeof(p));
	close(fd);
	if (n != (ssize_t)sizeof(p) || memcmp(p.magic, PTR_MAGIC, 8) != 0)
		return -1;
	piv_sha256(&p, offsetof(struct ptr_file, hash), check);
	if (memcmp(check, p.hash, 32) != 0)
		return -1;
	memcpy(content_id, p.content_id, 32);
	return 0;
}

static int
write_ptr(const char *path, const uint8_t content_id[32])
{
	struct ptr_file p;

	memset(&p, 0, sizeof(p));
	memcpy(p.magic, PTR_MAGIC, 8);
	memcpy(p.content_id, content_id, 32);
	piv_sha256(&p, offsetof(struct ptr_file, hash), p.hash);
	return piv_write_atomically(path, &p, sizeof(p), NULL, 0);
}

static int
index_path_of(const char *cache_dir, const uint8_t content_id[32], char *out, size_t out_size)
{
	char hex[65];

	piv_hex(content_id, 32, 0, hex, sizeof(hex));
	return (size_t)snprintf(out, out_size, "%s/crlidx-%s.idx", cache_dir, hex) < out_size ? 0 : -1;
}

int
piv_crl_cache_open(const char *cache_dir, const char *crl_path, bool previous,
                   struct piv_crl_index *idx)
{
	char key[200], ptr[4200], idx_path[4200];
	uint8_t content_id[32];

	memset(idx, 0, sizeof(*idx));
	if (previous) {
		if (piv_cache_path(cache_dir, "crlname", crl_path, "", ptr, sizeof(ptr)) != 0)
			return -1;
	} else if (version_key(crl_path, key, sizeof(key)) != 0 ||
	           piv_cache_path(cache_dir, "crlsrc", key, "", ptr, sizeof(ptr)) != 0) {
		return -1;
	}
	if (read_ptr(ptr, content_id) != 0 ||
	    index_path_of(cache_dir, content_id, idx_path, sizeof(idx_path)) != 0)
		return -1;
	return piv_crl_open_index(idx_path, content_id, idx);
}

int
piv_crl_cache_build(const char *cache_dir, const char *crl_path, X509 *issuer,
                    STACK_OF(X509) *others, double *seconds, char *why, size_t why_size)
{
	char key[200], ptr[4200], idx_path[4200], read_why[128];
	struct piv_crl_index idx;
	struct piv_crl_der der;
	int64_t t0 = piv_now_ms();
	bool readable, reuse = false;
	int ret = -1;

	memset(&der, 0, sizeof(der));
	/* The version is taken before reading: a CRL replaced meanwhile gets
	 * a version of its own, and is indexed when it is next asked for. */
	if (version_key(crl_path, key, sizeof(key)) != 0 ||
	    read_for_index(crl_path, &der, &readable, read_why, sizeof(read_why)) != 0) {
		piv_fmt(why, why_size, "cannot read %s", crl_path);
		goto out;
	}
	{
		uint8_t content_id[32];
		piv_sha256(der.der, der.len, content_id);
		if (index_path_of(cache_dir, content_id, idx_path, sizeof(idx_path)) != 0)
			goto out;
		/* the same content under another name: its index serves, when
		 * it was made for this issuer (or says nothing about it) */
		if (piv_crl_open_index(idx_path, content_id, &idx) == 0) {
			reuse = piv_crl_index_serves(&idx, issuer);
			/* ... unless it only knows the name of its issuer, who is
			 * among the others now: then it is verified this time */
			for (int i = 0; reuse && (idx.flags & PIV_CRL_IDX_NAME_ONLY) &&
			                i < sk_X509_num(others); i++)
				reuse = piv_crl_index_serves(&idx, sk_X509_value(others, i));
			piv_crl_close_index(&idx);
		}
		if (!reuse && build_from_der(&der, readable, read_why, issuer, others, idx_path, why,
		                             why_size) != 0)
			goto out;
		if (piv_cache_path(cache_dir, "crlsrc", key, "", ptr, sizeof(ptr)) != 0 ||
		    write_ptr(ptr, content_id) != 0 ||
		    piv_cache_path(cache_dir, "crlname", crl_path, "", ptr, sizeof(ptr)) != 0 ||
		    write_ptr(ptr, content_id) != 0) {
			piv_fmt(why, why_size, "cannot write to cache_dir %s: %s", cache_dir, strerror(errno));
			goto out;
		}
	}
	ret = 0;
out:
	piv_crl_der_free(&der);
	if (seconds != NULL)
		*seconds = (double)(piv_now_ms() - t0) / 1000.0;
	return ret;
}

int
piv_crl_cache_lock(const char *cache_dir, const char *crl_path, int *fd)
{
	char key[200], path[4200];

	*fd = -1;
	if (version_key(crl_path, key, sizeof(key)) != 0 ||
	    piv_cache_path(cache_dir, "crllock", key, "", path, sizeof(path)) != 0 ||
	    (*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600)) < 0)
		return -1;
	if (flock(*fd, LOCK_EX | LOCK_NB) != 0) {
		close(*fd);
		*fd = -1;
		return -1;
	}
	{
		/* who holds it, for whoever looks */
		char pid[32];
		int n = snprintf(pid, sizeof(pid), "%ld\n", (long)getpid());
		if (ftruncate(*fd, 0) != 0 || pwrite(*fd, pid, (size_t)n, 0) != n) {
			/* the lock holds all the same */
		}
	}
	return 0;
}

/* Files of the cache that serve nothing any more: indexes of CRLs a week
 * past their nextUpdate and made more than a week ago, pointers to indexes
 * that are gone, locks nobody holds that are an hour old. */
static void prune_pass(const char *cache_dir, time_t now, bool pointers);

void
piv_crl_cache_prune(const char *cache_dir, time_t now)
{
	/* indexes first: the pointers to those just gone go in the second pass */
	prune_pass(cache_dir, now, false);
	prune_pass(cache_dir, now, true);
}

static void
prune_pass(const char *cache_dir, time_t now, bool pointers)
{
	DIR *dir = opendir(cache_dir);
	struct dirent *de;

	while (dir != NULL && (de = readdir(dir)) != NULL) {
		char path[4200];
		struct stat st;
		bool drop = false;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", cache_dir, de->d_name) >= sizeof(path) ||
		    lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (pointers != (strncmp(de->d_name, "crlsrc-", 7) == 0 ||
		                 strncmp(de->d_name, "crlname-", 8) == 0))
			continue;
		if (strncmp(de->d_name, "crlidx-", 7) == 0) {
			struct piv_crl_index idx;
			if (piv_crl_open_index(path, NULL, &idx) == 0) {
				/* (one made in the last week stays: an expired CRL still
				 * in crl_dir is asked for, and would be made again) */
				drop = !(idx.flags & PIV_CRL_IDX_UNUSABLE) &&
				       idx.next_update + PRUNE_AFTER < (int64_t)now &&
				       st.st_mtime + PRUNE_AFTER < now;
				piv_crl_close_index(&idx);
			} else {
				drop = st.st_mtime + 3600 < now; /* damaged, and not being written */
			}
		} else if (strncmp(de->d_name, "crlsrc-", 7) == 0 ||
		           strncmp(de->d_name, "crlname-", 8) == 0) {
			uint8_t content_id[32];
			char idx_path[4200];
			drop = read_ptr(path, content_id) != 0 ||
			       index_path_of(cache_dir, content_id, idx_path, sizeof(idx_path)) != 0 ||
			       access(idx_path, F_OK) != 0;
		} else if (strncmp(de->d_name, "crllock-", 8) == 0 && st.st_mtime + 3600 < now) {
			int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
			drop = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
			if (fd >= 0)
				close(fd);
		}
		if (drop)
			(void)unlink(path);
	}
	if (dir != NULL)
		closedir(dir);
}

/* A lock file that exists and is held: a builder is at work. */
static bool
build_in_progress(const char *cache_dir, const char *crl_path)
{
	char key[200], path[4200];
	bool held = false;
	int fd;

	if (version_key(crl_path, key, sizeof(key)) != 0 ||
	    piv_cache_path(cache_dir, "crllock", key, "", path, sizeof(path)) != 0 ||
	    (fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY)) < 0)
		return false;
	if (flock(fd, LOCK_SH | LOCK_NB) != 0)
		held = errno == EWOULDBLOCK;
	close(fd);
	return held;
}

int
piv_crl_cache_spawn(const char *builder, const char *cache_dir, const char *crl_path,
                    X509 *issuer, STACK_OF(X509) *others, char *why, size_t why_size)
{
	unsigned char *der = NULL;
	int der_len = 0, pipefd[2] = { -1, -1 }, status = 0, ret = -1;
	pid_t pid;

	{
		/* it runs as root: root's alone, like the card helper */
		struct stat st;
		if (stat(builder, &st) != 0 || !S_ISREG(st.st_mode) || !(st.st_mode & S_IXUSR) ||
		    st.st_uid != 0 || (st.st_mode & (S_IWGRP | S_IWOTH))) {
			piv_fmt(why, why_size, "CRL index builder %s: not a root-owned executable that "
			        "only root can write", builder);
			return -1;
		}
	}
	if (build_in_progress(cache_dir, crl_path))
		return 0;
	{
		/* the issuer first, then the rest of the chain, DER after DER */
		BIO *mem = BIO_new(BIO_s_mem());
		char *data;
		long n;
		bool ok = mem != NULL && i2d_X509_bio(mem, issuer) == 1;
		for (int i = 0; ok && i < sk_X509_num(others); i++)
			ok = i2d_X509_bio(mem, sk_X509_value(others, i)) == 1;
		if (ok && (n = BIO_get_mem_data(mem, &data)) > 0 && n <= 65535 &&
		    (der = OPENSSL_malloc((size_t)n)) != NULL) {
			memcpy(der, data, (size_t)n);
			der_len = (int)n;
		}
		BIO_free(mem);
	}
	if (der_len <= 0 || pipe2(pipefd, O_CLOEXEC) != 0) {
		piv_fmt(why, why_size, "cannot start the CRL index builder");
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		piv_fmt(why, why_size, "cannot start the CRL index builder: %s", strerror(errno));
		goto out;
	}
	if (pid == 0) {
		/* The builder outlives the login (a login killed meanwhile loses
		 * nothing): a grandchild in a session of its own, reparented. */
		static char *const clean_env[] = { "PATH=/usr/sbin:/usr/bin:/sbin:/bin", NULL };
		char *argv[] = { (char *)builder, (char *)cache_dir, (char *)crl_path, NULL };
		pid_t grandchild = fork();
		if (grandchild != 0)
			_exit(grandchild < 0 ? 1 : 0);
		(void)setsid();
		if (dup2(pipefd[0], STDIN_FILENO) < 0)
			_exit(1);
		{
			int null = open("/dev/null", O_RDWR | O_CLOEXEC);
			if (null >= 0) {
				(void)dup2(null, STDOUT_FILENO);
				(void)dup2(null, STDERR_FILENO);
			}
		}
		closefrom(3);
		execve(builder, argv, clean_env);
		_exit(127);
	}
	close(pipefd[0]);
	pipefd[0] = -1;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	{
		/* a certificate is small: one write, the pipe takes it whole */
		struct piv_sigpipe_guard guard;
		piv_sigpipe_block(&guard);
		ret = write(pipefd[1], der, (size_t)der_len) == der_len ? 0 : -1;
		piv_sigpipe_restore(&guard);
	}
	if (ret != 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		piv_fmt(why, why_size, "cannot start the CRL index builder %s", builder);
		ret = -1;
	}
out:
	if (pipefd[0] >= 0)
		close(pipefd[0]);
	if (pipefd[1] >= 0)
		close(pipefd[1]);
	OPENSSL_free(der);
	return ret;
}
