/* Fuzz target: the CRL index cache (crl.h) and the CRL reader behind it.
 * Input: a mode byte, then bytes that are
 *   - always an index file for piv_crl_open_index/piv_crl_index_has
 *     (bit 0: with a correct header hash, magic and version, so the reader
 *     gets past its checks; bit 1: and a record count that fits the size);
 *   - with bit 2, also a CRL file for piv_crl_build_index against the
 *     fixed issuer (bit 3: re-issued first, named and signed by that
 *     issuer, so the checks after the signature run; bit 4: as PEM).
 * Promises checked: an index that was built opens; a usable index holds
 * every serial its CRL revokes; a sorted index finds each of its records. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "pki/cache.h"
#include "pki/crl.h"
#include "fuzz_util.h"

/* crl.c's struct idx_header, as far as this harness rewrites it (crl.h
 * exports the layout); checked against a real index at startup. */
#define HDR_SIZE piv_crl_idx_header_size
#define HDR_COUNT_AT piv_crl_idx_count_offset
#define HDR_HASH_AT piv_crl_idx_hash_offset
#define IDX_MAGIC PIV_CRL_IDX_MAGIC

static char idx_path[512], crl_path[512], built_path[512];
static const struct fuzz_pki *pki;

static uint8_t *
read_file(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = malloc(1024 * 1024);

	if (f == NULL || buf == NULL)
		fuzz_harness_error("cannot read an index back");
	*len = fread(buf, 1, 1024 * 1024, f);
	fclose(f);
	return buf;
}

static void
fix_header(uint8_t *idx, size_t *len, bool fix_count)
{
	const uint32_t version = PIV_CRL_IDX_VERSION, record_size = PIV_CRL_RECORD;

	memcpy(idx, IDX_MAGIC, 8);
	memcpy(idx + 8, &version, 4);
	memcpy(idx + 12, &record_size, 4);
	if (fix_count) {
		uint64_t count = (*len - HDR_SIZE) / PIV_CRL_RECORD;
		memcpy(idx + HDR_COUNT_AT, &count, 8);
		*len = HDR_SIZE + count * PIV_CRL_RECORD;
	}
	piv_sha256(idx, HDR_HASH_AT, idx + HDR_HASH_AT);
}

static void
read_index(const uint8_t *data, size_t len, uint8_t mode)
{
	struct piv_crl_index idx;
	uint8_t *copy = malloc(len ? len : 1);
	uint8_t rec[PIV_CRL_RECORD];
	bool sorted = true;

	if (copy == NULL)
		fuzz_harness_error("out of memory");
	if (len > 0)
		memcpy(copy, data, len);
	if ((mode & 1) && len >= HDR_SIZE)
		fix_header(copy, &len, (mode & 2) != 0);
	fuzz_write_file(idx_path, copy, len);
	free(copy);
	/* asked for a content: another content's index never opens */
	{
		uint8_t other[32];
		memset(other, 0xa5, sizeof(other));
		if (piv_crl_open_index(idx_path, other, &idx) == 0) {
			FUZZ_CHECK(memcmp(idx.content_id, other, 32) == 0,
			           "an index of another content was opened");
			piv_crl_close_index(&idx);
		}
	}
	if (piv_crl_open_index(idx_path, NULL, &idx) != 0)
		return;
	FUZZ_CHECK(idx.map_len == len && idx.count == (len - HDR_SIZE) / PIV_CRL_RECORD,
	           "an index whose size does not fit its count was opened");
	FUZZ_CHECK(memchr(idx.reason, '\0', sizeof(idx.reason)) != NULL, "reason not terminated");
	for (uint64_t i = 1; i < idx.count && sorted; i++)
		sorted = memcmp(idx.records + (i - 1) * PIV_CRL_RECORD,
		                idx.records + i * PIV_CRL_RECORD, PIV_CRL_RECORD) <= 0;
	for (uint64_t i = 0; i < idx.count && i < 64; i++) {
		bool found = piv_crl_index_has(&idx, idx.records + i * PIV_CRL_RECORD);
		FUZZ_CHECK(found || !sorted, "a sorted index misses one of its records");
	}
	memset(rec, 0, sizeof(rec));
	(void)piv_crl_index_has(&idx, rec);
	memset(rec, 0xff, sizeof(rec));
	(void)piv_crl_index_has(&idx, rec);
	piv_crl_close_index(&idx);
	FUZZ_CHECK(idx.map == NULL && idx.count == 0, "close left the index set");
}

/* The CRL, re-issued by the fixed issuer when it parses. */
static void
write_crl(const uint8_t *data, size_t len, uint8_t mode, X509_CRL **resigned)
{
	const unsigned char *p = data;
	X509_CRL *crl = NULL;
	BIO *bio;

	*resigned = NULL;
	if (!(mode & 8)) {
		fuzz_write_file(crl_path, data, len);
		return;
	}
	if (len > 0 && data[0] == '-') {
		bio = BIO_new_mem_buf(data, (int)len);
		crl = bio != NULL ? PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL) : NULL;
		BIO_free(bio);
	} else {
		crl = d2i_X509_CRL(NULL, &p, (long)len);
	}
	if (crl == NULL || X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki->ca)) != 1 ||
	    X509_CRL_sign(crl, pki->ca_key, EVP_sha256()) <= 0) {
		X509_CRL_free(crl);
		ERR_clear_error();
		fuzz_write_file(crl_path, data, len);
		return;
	}
	bio = BIO_new_file(crl_path, "wb");
	if (bio == NULL || ((mode & 16) ? PEM_write_bio_X509_CRL(bio, crl) : i2d_X509_CRL_bio(bio, crl)) != 1)
		fuzz_harness_error("cannot write a CRL");
	BIO_free(bio);
	*resigned = crl;
}

static void
build_index(const uint8_t *data, size_t len, uint8_t mode)
{
	struct piv_crl_index idx;
	X509_CRL *crl = NULL;
	char why[300];

	write_crl(data, len, mode, &crl);
	if (piv_crl_build_index(crl_path, pki->ca, built_path, why, sizeof(why)) != 0) {
		X509_CRL_free(crl);
		return;
	}
	FUZZ_CHECK(piv_crl_open_index(built_path, NULL, &idx) == 0,
	           "an index just built does not open");
	if (crl != NULL && !(idx.flags & PIV_CRL_IDX_UNUSABLE)) {
		STACK_OF(X509_REVOKED) *revoked = X509_CRL_get_REVOKED(crl);
		for (int i = 0; i < sk_X509_REVOKED_num(revoked); i++) {
			X509_REVOKED *r = sk_X509_REVOKED_value(revoked, i);
			uint8_t rec[PIV_CRL_RECORD];
			if (piv_crl_serial_record(X509_REVOKED_get0_serialNumber(r), rec) != 0)
				continue;
			if (idx.flags & PIV_CRL_IDX_DELTA) {
				/* a delta's removeFromCRL entries revoke nothing */
				ASN1_ENUMERATED *reason = X509_REVOKED_get_ext_d2i(r, NID_crl_reason, NULL,
				                                                   NULL);
				long code = reason != NULL ? ASN1_ENUMERATED_get(reason) : -1;
				ASN1_ENUMERATED_free(reason);
				if (code == 8)
					continue;
			}
			FUZZ_CHECK(piv_crl_index_has(&idx, rec), "a revoked serial is not in the index");
		}
	}
	piv_crl_close_index(&idx);
	X509_CRL_free(crl);
	ERR_clear_error();
}

/* The harness rewrites headers: make sure it still knows their layout. */
static void
check_layout(void)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	ASN1_INTEGER *serial = ASN1_INTEGER_new();
	X509_REVOKED *r = X509_REVOKED_new();
	uint8_t hash[32];
	uint64_t count;
	uint8_t *idx;
	size_t len;
	char why[300];
	BIO *bio;

	if (crl == NULL || t == NULL || serial == NULL || r == NULL ||
	    X509_CRL_set_version(crl, 1) != 1 ||
	    X509_CRL_set_issuer_name(crl, X509_get_subject_name(pki->ca)) != 1 ||
	    X509_gmtime_adj(t, -60) == NULL || X509_CRL_set1_lastUpdate(crl, t) != 1 ||
	    X509_REVOKED_set_revocationDate(r, t) != 1 || X509_gmtime_adj(t, 86400) == NULL ||
	    X509_CRL_set1_nextUpdate(crl, t) != 1 || ASN1_INTEGER_set(serial, 0x1234) != 1 ||
	    X509_REVOKED_set_serialNumber(r, serial) != 1 || X509_CRL_add0_revoked(crl, r) != 1 ||
	    X509_CRL_sign(crl, pki->ca_key, EVP_sha256()) <= 0)
		fuzz_harness_error("cannot make a CRL");
	bio = BIO_new_file(crl_path, "wb");
	if (bio == NULL || i2d_X509_CRL_bio(bio, crl) != 1)
		fuzz_harness_error("cannot write a CRL");
	BIO_free(bio);
	if (piv_crl_build_index(crl_path, pki->ca, built_path, why, sizeof(why)) != 0)
		fuzz_harness_error(why);
	idx = read_file(built_path, &len);
	memcpy(&count, idx + HDR_COUNT_AT, 8);
	piv_sha256(idx, HDR_HASH_AT, hash);
	if (len != HDR_SIZE + PIV_CRL_RECORD || memcmp(idx, IDX_MAGIC, 8) != 0 || count != 1 ||
	    memcmp(hash, idx + HDR_HASH_AT, 32) != 0)
		fuzz_harness_error("the CRL index layout changed: update HDR_* in fuzz_crlidx.c");
	free(idx);
	ASN1_TIME_free(t);
	ASN1_INTEGER_free(serial);
	X509_CRL_free(crl);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	pki = fuzz_pki();
	fuzz_path(idx_path, sizeof(idx_path), "input.idx");
	fuzz_path(crl_path, sizeof(crl_path), "input.crl");
	fuzz_path(built_path, sizeof(built_path), "built.idx");
	check_layout();
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	read_index(data + 1, size - 1, data[0]);
	if (data[0] & 4)
		build_index(data + 1, size - 1, data[0]);
	return 0;
}
