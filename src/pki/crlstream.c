/* Reading a CRL without building it (see crlstream.h). The DER is walked
 * with ASN1_get_object; the small fields (names, times, algorithms,
 * extensions) are decoded with OpenSSL's d2i functions, the entries are
 * read where they lie, one at a time, nothing allocated per entry. A file is mapped, not copied;
 * PEM is decoded with EVP_DecodeUpdate chunk by chunk, and the pages of
 * the text already decoded are given back, so a 47 MB PEM CRL costs its
 * DER and no more. */
#include "config.h"
#include "pki/crlstream.h"
#include "common/util.h"
#include "pki/fips.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#define PEM_BEGIN "-----BEGIN X509 CRL-----"
#define PEM_END "-----END X509 CRL-----"
#define DECODE_CHUNK (1024 * 1024)

/* DER of reasonCode (2.5.29.21), the content of its OBJECT IDENTIFIER */
static const uint8_t oid_reason_code[] = { 0x55, 0x1d, 0x15 };

/* ---- reading ------------------------------------------------------------ */

static int
pem_to_der(const uint8_t *text, size_t len, struct piv_crl_der *text_map, struct piv_crl_der *out,
           char *why, size_t why_size)
{
	const uint8_t *begin = NULL, *end = NULL, *p;
	EVP_ENCODE_CTX *ctx = NULL;
	size_t cap, done = 0;
	int n, ret = -1;

	/* the first "BEGIN X509 CRL" line, and its "END" */
	for (p = text; (p = memmem(p, (size_t)(text + len - p), PEM_BEGIN, sizeof(PEM_BEGIN) - 1)) != NULL;
	     p++) {
		if (p == text || p[-1] == '\n') {
			begin = p + sizeof(PEM_BEGIN) - 1;
			break;
		}
	}
	if (begin == NULL) {
		piv_fmt(why, why_size, "no \"" PEM_BEGIN "\" line");
		return -1;
	}
	while (begin < text + len && (*begin == '\r' || *begin == ' ' || *begin == '\t'))
		begin++;
	if (begin >= text + len || *begin != '\n') {
		piv_fmt(why, why_size, "malformed PEM header line");
		return -1;
	}
	begin++;
	/* base64 has no '-': the next one starts the END line */
	p = memchr(begin, '-', (size_t)(text + len - begin));
	if (p != NULL && p[-1] == '\n' && (size_t)(text + len - p) >= sizeof(PEM_END) - 1 &&
	    memcmp(p, PEM_END, sizeof(PEM_END) - 1) == 0)
		end = p;
	if (end == NULL) {
		piv_fmt(why, why_size, "no \"" PEM_END "\" line");
		return -1;
	}
	if (memchr(begin, ':', (size_t)(end - begin)) != NULL) {
		piv_fmt(why, why_size, "PEM headers (an encrypted PEM?) are not supported");
		return -1;
	}
	cap = (size_t)(end - begin) / 4 * 3 + 3;
	if ((out->der = malloc(cap)) == NULL || (ctx = EVP_ENCODE_CTX_new()) == NULL) {
		piv_fmt(why, why_size, "out of memory");
		goto out;
	}
	EVP_DecodeInit(ctx);
	for (p = begin; p < end;) {
		size_t chunk = (size_t)(end - p) > DECODE_CHUNK ? DECODE_CHUNK : (size_t)(end - p);
		if (EVP_DecodeUpdate(ctx, out->der + done, &n, p, (int)chunk) < 0 || n < 0 ||
		    done + (size_t)n > cap) {
			piv_fmt(why, why_size, "bad base64 in the PEM block");
			goto out;
		}
		done += (size_t)n;
		p += chunk;
		if (text_map != NULL) /* the text decoded so far is not read again */
			piv_crl_der_release(text_map, p);
	}
	if (EVP_DecodeFinal(ctx, out->der + done, &n) < 0 || n < 0 || done + (size_t)n > cap) {
		piv_fmt(why, why_size, "bad base64 at the end of the PEM block");
		goto out;
	}
	out->len = done + (size_t)n;
	ret = out->len > 0 ? 0 : -1;
	if (ret != 0)
		piv_fmt(why, why_size, "empty PEM block");
out:
	EVP_ENCODE_CTX_free(ctx);
	if (ret != 0) {
		free(out->der);
		out->der = NULL;
		out->len = 0;
	}
	return ret;
}

static bool
looks_like_pem(const uint8_t *data, size_t len)
{
	size_t i = 0;

	while (i < len && (data[i] == ' ' || data[i] == '\t' || data[i] == '\r' || data[i] == '\n'))
		i++;
	return i < len && data[i] == '-';
}

int
piv_crl_der_from_mem(const uint8_t *data, size_t len, struct piv_crl_der *out, char *why,
                     size_t why_size)
{
	memset(out, 0, sizeof(*out));
	if (len == 0 || len > (size_t)PIV_CRL_MAX_FILE) {
		piv_fmt(why, why_size, "empty or larger than %ld bytes", PIV_CRL_MAX_FILE);
		return -1;
	}
	if (looks_like_pem(data, len))
		return pem_to_der(data, len, NULL, out, why, why_size);
	if ((out->der = malloc(len)) == NULL) {
		piv_fmt(why, why_size, "out of memory");
		return -1;
	}
	memcpy(out->der, data, len);
	out->len = len;
	return 0;
}

int
piv_crl_der_read(const char *path, struct piv_crl_der *out, char *why, size_t why_size)
{
	struct stat st;
	void *map;
	int fd, ret;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size <= 0 ||
	    st.st_size > PIV_CRL_MAX_FILE) {
		piv_fmt(why, why_size, "cannot read %s%s", path,
		        fd >= 0 && st.st_size > PIV_CRL_MAX_FILE ? " (too large)" : "");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		piv_fmt(why, why_size, "cannot map %s: %s", path, strerror(errno));
		return -1;
	}
	(void)madvise(map, (size_t)st.st_size, MADV_SEQUENTIAL);
	if (looks_like_pem(map, (size_t)st.st_size)) {
		struct piv_crl_der text = { map, (size_t)st.st_size, true, 0 };
		ret = pem_to_der(map, (size_t)st.st_size, &text, out, why, why_size);
		munmap(map, (size_t)st.st_size);
	} else {
		/* DER is used where it lies: no copy */
		out->der = map;
		out->len = (size_t)st.st_size;
		out->mapped = true;
		ret = 0;
	}
	if (ret != 0)
		piv_fmt(why + strlen(why), why_size - strlen(why), " in %s", path);
	return ret;
}

void
piv_crl_der_free(struct piv_crl_der *d)
{
	if (d->der != NULL) {
		if (d->mapped)
			munmap(d->der, d->len);
		else
			free(d->der);
	}
	memset(d, 0, sizeof(*d));
}

/* ---- the frame ------------------------------------------------------- */

/* One TLV at *p (before end): its tag and class, constructed or not, and
 * its content's start and length. Only definite DER lengths. */
static int
tlv(const uint8_t **p, const uint8_t *end, int *tag, int *class, bool *constructed,
    const uint8_t **content, size_t *content_len)
{
	const unsigned char *q = *p;
	long len = 0;
	int rc;

	if (*p >= end || end - *p > LONG_MAX)
		return -1;
	rc = ASN1_get_object(&q, &len, tag, class, (long)(end - *p));
	if ((rc & 0x80) || (rc & 0x01) || len < 0 || len > end - q)
		return -1;
	*constructed = (rc & V_ASN1_CONSTRUCTED) != 0;
	*content = q;
	*content_len = (size_t)len;
	*p = q + len;
	return 0;
}

static bool
is_time_tag(int tag, int class)
{
	return class == V_ASN1_UNIVERSAL && (tag == V_ASN1_UTCTIME || tag == V_ASN1_GENERALIZEDTIME);
}

/* The tag of the TLV at p, without moving. */
static int
peek(const uint8_t *p, const uint8_t *end, int *tag, int *class, bool *constructed)
{
	const uint8_t *content;
	size_t len;

	return tlv(&p, end, tag, class, constructed, &content, &len);
}

int
piv_crl_view_parse(const uint8_t *der, size_t len, struct piv_crl_view *v, char *why,
                   size_t why_size)
{
	const uint8_t *p = der, *end = der + len, *outer, *tbs_end, *content, *q;
	size_t outer_len, content_len;
	int tag, class;
	bool cons;

	memset(v, 0, sizeof(*v));
	piv_fmt(why, why_size, "not a CRL");
	/* CertificateList ::= SEQUENCE { tbsCertList, signatureAlgorithm, signature } */
	if (tlv(&p, end, &tag, &class, &cons, &outer, &outer_len) != 0 || tag != V_ASN1_SEQUENCE ||
	    class != V_ASN1_UNIVERSAL || !cons || p != end)
		goto bad;
	p = outer;
	end = outer + outer_len;
	v->tbs = p;
	if (tlv(&p, end, &tag, &class, &cons, &content, &content_len) != 0 ||
	    tag != V_ASN1_SEQUENCE || class != V_ASN1_UNIVERSAL || !cons)
		goto bad;
	v->tbs_len = (size_t)(p - v->tbs);
	tbs_end = p;
	q = content;
	/* version INTEGER OPTIONAL: v2 is 1 */
	if (peek(q, tbs_end, &tag, &class, &cons) == 0 && tag == V_ASN1_INTEGER &&
	    class == V_ASN1_UNIVERSAL) {
		ASN1_INTEGER *version = d2i_ASN1_INTEGER(NULL, &q, tbs_end - q);
		long value = version != NULL ? ASN1_INTEGER_get(version) : -1;
		ASN1_INTEGER_free(version);
		if (value != 1) {
			piv_fmt(why, why_size, "CRL version is not v2");
			goto bad;
		}
		v->version = 1;
	}
	if ((v->tbs_sig_alg = d2i_X509_ALGOR(NULL, &q, tbs_end - q)) == NULL ||
	    (v->issuer = d2i_X509_NAME(NULL, &q, tbs_end - q)) == NULL ||
	    peek(q, tbs_end, &tag, &class, &cons) != 0 || !is_time_tag(tag, class) ||
	    (v->this_update = d2i_ASN1_TIME(NULL, &q, tbs_end - q)) == NULL)
		goto bad;
	if (q < tbs_end && peek(q, tbs_end, &tag, &class, &cons) == 0 && is_time_tag(tag, class) &&
	    (v->next_update = d2i_ASN1_TIME(NULL, &q, tbs_end - q)) == NULL)
		goto bad;
	/* revokedCertificates SEQUENCE OF SEQUENCE OPTIONAL: kept as bytes */
	if (q < tbs_end && peek(q, tbs_end, &tag, &class, &cons) == 0 && tag == V_ASN1_SEQUENCE &&
	    class == V_ASN1_UNIVERSAL) {
		if (!cons || tlv(&q, tbs_end, &tag, &class, &cons, &v->entries, &v->entries_len) != 0)
			goto bad;
	}
	/* crlExtensions [0] EXPLICIT Extensions OPTIONAL (v2 only) */
	if (q < tbs_end) {
		const uint8_t *exts;
		size_t exts_len;
		if (tlv(&q, tbs_end, &tag, &class, &cons, &exts, &exts_len) != 0 || tag != 0 ||
		    class != V_ASN1_CONTEXT_SPECIFIC || !cons || v->version != 1)
			goto bad;
		if ((v->extensions = d2i_X509_EXTENSIONS(NULL, &exts, (long)exts_len)) == NULL ||
		    exts != q) {
			piv_fmt(why, why_size, "malformed CRL extensions");
			goto bad;
		}
	}
	if (q != tbs_end)
		goto bad;
	if ((v->sig_alg = d2i_X509_ALGOR(NULL, &p, end - p)) == NULL ||
	    (v->signature = d2i_ASN1_BIT_STRING(NULL, &p, end - p)) == NULL || p != end)
		goto bad;
	ERR_clear_error();
	return 0;
bad:
	ERR_clear_error();
	piv_crl_view_free(v);
	return -1;
}

void
piv_crl_view_free(struct piv_crl_view *v)
{
	X509_ALGOR_free(v->tbs_sig_alg);
	X509_NAME_free(v->issuer);
	ASN1_TIME_free(v->this_update);
	ASN1_TIME_free(v->next_update);
	sk_X509_EXTENSION_pop_free(v->extensions, X509_EXTENSION_free);
	X509_ALGOR_free(v->sig_alg);
	ASN1_BIT_STRING_free(v->signature);
	memset(v, 0, sizeof(*v));
}

/* ---- the signature ----------------------------------------------------- */

static const EVP_MD *
digest_of(const X509_ALGOR *alg)
{
	int nid = alg != NULL ? OBJ_obj2nid(alg->algorithm) : NID_sha1;

	switch (nid) {
	case NID_sha256: return EVP_sha256();
	case NID_sha384: return EVP_sha384();
	case NID_sha512: return EVP_sha512();
	default: return NULL; /* SHA-1 and others: refused */
	}
}

/* RSASSA-PSS parameters (RFC 4055): the hash, MGF1 with a hash, the salt
 * length, trailer 1. */
static int
pss_setup(EVP_MD_CTX *mctx, EVP_PKEY *key, const X509_ALGOR *alg, char *why, size_t why_size)
{
	RSA_PSS_PARAMS *pss = NULL;
	X509_ALGOR *mgf_hash = NULL;
	EVP_PKEY_CTX *pctx = NULL;
	const EVP_MD *md, *mgf_md;
	long salt = 20;
	int ret = -1;

	if (alg->parameter == NULL || alg->parameter->type != V_ASN1_SEQUENCE ||
	    (pss = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), alg->parameter)) == NULL) {
		piv_fmt(why, why_size, "malformed RSASSA-PSS parameters");
		goto out;
	}
	md = digest_of(pss->hashAlgorithm);
	if (pss->maskGenAlgorithm == NULL || OBJ_obj2nid(pss->maskGenAlgorithm->algorithm) != NID_mgf1 ||
	    pss->maskGenAlgorithm->parameter == NULL ||
	    pss->maskGenAlgorithm->parameter->type != V_ASN1_SEQUENCE ||
	    (mgf_hash = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(X509_ALGOR),
	                                          pss->maskGenAlgorithm->parameter)) == NULL)
		mgf_md = NULL;
	else
		mgf_md = digest_of(mgf_hash);
	if (pss->saltLength != NULL)
		salt = ASN1_INTEGER_get(pss->saltLength);
	if (md == NULL || mgf_md == NULL || salt < 0 || salt > 1024 ||
	    (pss->trailerField != NULL && ASN1_INTEGER_get(pss->trailerField) != 1)) {
		piv_fmt(why, why_size, "RSASSA-PSS with parameters other than SHA-2 and MGF1");
		goto out;
	}
	if (EVP_DigestVerifyInit(mctx, &pctx, md, NULL, key) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)salt) != 1 ||
	    EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf_md) != 1) {
		piv_fmt(why, why_size, "cannot verify RSASSA-PSS with this key");
		goto out;
	}
	ret = 0;
out:
	RSA_PSS_PARAMS_free(pss);
	X509_ALGOR_free(mgf_hash);
	return ret;
}

EVP_MD_CTX *
piv_crl_verify_init(const struct piv_crl_view *v, EVP_PKEY *key, char *why, size_t why_size)
{
	EVP_MD_CTX *mctx = NULL;
	int nid, md_nid = NID_undef, pkey_nid = NID_undef;
	const EVP_MD *md = NULL;

	if (v->sig_alg == NULL || v->tbs_sig_alg == NULL || v->signature == NULL || key == NULL ||
	    X509_ALGOR_cmp(v->sig_alg, v->tbs_sig_alg) != 0) {
		piv_fmt(why, why_size, "the CRL's two signature algorithms differ");
		return NULL;
	}
	if ((v->signature->flags & 0x07) != 0) { /* unused bits in a signature */
		piv_fmt(why, why_size, "malformed CRL signature");
		return NULL;
	}
	if (piv_signature_strong(v->sig_alg, key, why, why_size) != 0)
		return NULL;
	if ((mctx = EVP_MD_CTX_new()) == NULL)
		goto bad;
	nid = OBJ_obj2nid(v->sig_alg->algorithm);
	if (nid == NID_rsassaPss) {
		if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA ||
		    pss_setup(mctx, key, v->sig_alg, why, why_size) != 0)
			goto bad;
	} else {
		if (!OBJ_find_sigid_algs(nid, &md_nid, &pkey_nid) ||
		    (md_nid != NID_sha256 && md_nid != NID_sha384 && md_nid != NID_sha512) ||
		    !((pkey_nid == NID_rsaEncryption && EVP_PKEY_get_base_id(key) == EVP_PKEY_RSA) ||
		      (pkey_nid == NID_X9_62_id_ecPublicKey && EVP_PKEY_get_base_id(key) == EVP_PKEY_EC))) {
			piv_fmt(why, why_size, "CRL signature algorithm not accepted (RSA or ECDSA with "
			        "SHA-256, SHA-384 or SHA-512 only)");
			goto bad;
		}
		md = EVP_get_digestbynid(md_nid);
		if (md == NULL || EVP_DigestVerifyInit(mctx, NULL, md, NULL, key) != 1) {
			piv_fmt(why, why_size, "cannot verify with the issuer's key");
			goto bad;
		}
	}
	return mctx;
bad:
	EVP_MD_CTX_free(mctx);
	ERR_clear_error();
	return NULL;
}

int
piv_crl_verify_update(EVP_MD_CTX *ctx, const uint8_t *data, size_t len)
{
	return len == 0 || EVP_DigestVerifyUpdate(ctx, data, len) == 1 ? 0 : -1;
}

int
piv_crl_verify_final(const struct piv_crl_view *v, EVP_MD_CTX *ctx, char *why, size_t why_size)
{
	int ok = EVP_DigestVerifyFinal(ctx, ASN1_STRING_get0_data(v->signature),
	                               (size_t)ASN1_STRING_length(v->signature)) == 1;

	if (!ok)
		piv_fmt(why, why_size, "CRL signature does not verify with the issuer's key");
	EVP_MD_CTX_free(ctx);
	ERR_clear_error();
	return ok;
}

int
piv_crl_view_verify(const struct piv_crl_view *v, EVP_PKEY *key, char *why, size_t why_size)
{
	EVP_MD_CTX *ctx = piv_crl_verify_init(v, key, why, why_size);

	if (ctx == NULL)
		return 0;
	if (piv_crl_verify_update(ctx, v->tbs, v->tbs_len) != 0) {
		EVP_MD_CTX_free(ctx);
		piv_fmt(why, why_size, "cannot hash the CRL");
		return 0;
	}
	return piv_crl_verify_final(v, ctx, why, why_size);
}

void
piv_crl_der_release(struct piv_crl_der *d, const uint8_t *upto)
{
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t start, end;

	if (d->der == NULL || page <= 0 || upto <= d->der + d->released || upto > d->der + d->len)
		return;
	/* whole pages within [der + released, upto) */
	start = ((uintptr_t)(d->der + d->released) + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
	end = (uintptr_t)upto & ~((uintptr_t)page - 1);
	if (end > start)
		(void)madvise((void *)start, end - start, MADV_DONTNEED);
	d->released = (size_t)(upto - d->der);
}

/* ---- the entries ----------------------------------------------------- */

/* crlEntryExtensions: whether one is critical, and the reason code. */
static int
entry_extensions(const uint8_t *p, const uint8_t *end, struct piv_crl_entry *e)
{
	while (p < end) {
		const uint8_t *ext, *ext_end, *oid, *val, *q;
		size_t ext_len, oid_len, val_len;
		int tag, class;
		bool cons;

		if (tlv(&p, end, &tag, &class, &cons, &ext, &ext_len) != 0 || tag != V_ASN1_SEQUENCE ||
		    !cons)
			return -1;
		ext_end = ext + ext_len;
		q = ext;
		if (tlv(&q, ext_end, &tag, &class, &cons, &oid, &oid_len) != 0 ||
		    tag != V_ASN1_OBJECT || class != V_ASN1_UNIVERSAL || cons || oid_len == 0)
			return -1;
		if (q < ext_end && peek(q, ext_end, &tag, &class, &cons) == 0 &&
		    tag == V_ASN1_BOOLEAN && class == V_ASN1_UNIVERSAL) {
			const uint8_t *b;
			size_t b_len;
			if (tlv(&q, ext_end, &tag, &class, &cons, &b, &b_len) != 0 || b_len != 1)
				return -1;
			if (b[0] != 0)
				e->critical_extension = true;
		}
		if (tlv(&q, ext_end, &tag, &class, &cons, &val, &val_len) != 0 ||
		    tag != V_ASN1_OCTET_STRING || class != V_ASN1_UNIVERSAL || cons || q != ext_end)
			return -1;
		if (oid_len == sizeof(oid_reason_code) &&
		    memcmp(oid, oid_reason_code, sizeof(oid_reason_code)) == 0) {
			const uint8_t *r, *val_end = val + val_len;
			size_t r_len;
			/* CRLReason ::= ENUMERATED, one octet in practice */
			if (tlv(&val, val_end, &tag, &class, &cons, &r, &r_len) != 0 ||
			    tag != V_ASN1_ENUMERATED || r_len != 1 || val != val_end)
				return -1;
			e->reason = r[0];
		}
	}
	return 0;
}

int
piv_crl_view_next(const struct piv_crl_view *v, const uint8_t **pos, struct piv_crl_entry *e,
                  char *why, size_t why_size)
{
	const uint8_t *end, *entry, *entry_end, *q, *content;
	size_t entry_len, content_len;
	int tag, class;
	bool cons;

	memset(e, 0, sizeof(*e));
	e->reason = -1;
	if (v->entries == NULL || *pos == NULL) /* no revokedCertificates */
		return 0;
	end = v->entries + v->entries_len;
	if (*pos >= end)
		return 0;
	if (tlv(pos, end, &tag, &class, &cons, &entry, &entry_len) != 0 || tag != V_ASN1_SEQUENCE ||
	    class != V_ASN1_UNIVERSAL || !cons)
		goto bad;
	entry_end = entry + entry_len;
	q = entry;
	/* userCertificate CertificateSerialNumber */
	if (peek(q, entry_end, &tag, &class, &cons) != 0 || tag != V_ASN1_INTEGER ||
	    class != V_ASN1_UNIVERSAL || cons || tlv(&q, entry_end, &tag, &class, &cons, &content,
	                                             &content_len) != 0 || content_len == 0 ||
	    content_len > 64) {
		piv_fmt(why, why_size, "CRL entry with a malformed serial number");
		return -1;
	}
	/* DER: the shortest two's complement form */
	if (content_len > 1 && ((content[0] == 0x00 && !(content[1] & 0x80)) ||
	                        (content[0] == 0xff && (content[1] & 0x80)))) {
		piv_fmt(why, why_size, "CRL entry with a serial number not in DER");
		return -1;
	}
	e->serial = content;
	e->serial_len = content_len;
	/* revocationDate Time */
	if (peek(q, entry_end, &tag, &class, &cons) != 0 || !is_time_tag(tag, class) ||
	    tlv(&q, entry_end, &tag, &class, &cons, &content, &content_len) != 0)
		goto bad;
	/* crlEntryExtensions Extensions OPTIONAL */
	if (q < entry_end) {
		if (tlv(&q, entry_end, &tag, &class, &cons, &content, &content_len) != 0 ||
		    tag != V_ASN1_SEQUENCE || !cons || q != entry_end ||
		    entry_extensions(content, content + content_len, e) != 0) {
			piv_fmt(why, why_size, "CRL entry with malformed extensions");
			return -1;
		}
	}
	return 1;
bad:
	piv_fmt(why, why_size, "malformed CRL entry");
	return -1;
}
