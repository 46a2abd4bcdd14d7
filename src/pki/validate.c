/* Certificate validation with OpenSSL: chain, dates, key usage, EKU,
 * policies, and the PIV Card Authentication rejection. Revocation will be
 * a further stage after this one (see the revocation issue). */
#include "config.h"
#include "pki/validate.h"
#include "common/util.h"

#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "pki/fips.h"
#include "pki/prove.h"

#define MAX_CA_DIR_FILES 4096

static const char *const card_auth_eku = "2.16.840.1.101.3.6.8";
/* id-fpki-common-cardAuth, id-fpki-common-piv-contentSigning-like card
 * authentication policies of the Federal PKI (common, derived, PIV-I). */
static const char *const card_auth_policies[] = {
	"2.16.840.1.101.3.2.1.3.17",
	"2.16.840.1.101.3.2.1.3.19",
	"2.16.840.1.101.3.2.1.3.46",
};

static int
load_pem_certs(const char *path, STACK_OF(X509) *into)
{
	BIO *bio = BIO_new_file(path, "r");
	int count = 0;
	X509 *cert;

	if (bio == NULL)
		return -1;
	while ((cert = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		if (!sk_X509_push(into, cert)) {
			X509_free(cert);
			BIO_free(bio);
			return -1;
		}
		count++;
	}
	BIO_free(bio);
	/* The loop ends with "no start line"; anything else is a broken file. */
	if (ERR_GET_REASON(ERR_peek_last_error()) != PEM_R_NO_START_LINE || count == 0) {
		ERR_clear_error();
		return -1;
	}
	ERR_clear_error();
	return 0;
}

/* Every file of a hashed CA directory is trust material, as the
 * directory is: root's alone (the file a link leads to, too). */
static int
check_ca_dir_files(const char *dir_path, char *why, size_t why_size)
{
	DIR *dir = opendir(dir_path);
	struct dirent *de;
	size_t n = 0;
	int ret = 0;

	if (dir == NULL) {
		piv_fmt(why, why_size, "%s: %s", dir_path, strerror(errno));
		return -1;
	}
	while (ret == 0 && (de = readdir(dir)) != NULL) {
		char path[4200];
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (++n > MAX_CA_DIR_FILES) {
			piv_fmt(why, why_size, "%s: more than %d files", dir_path, MAX_CA_DIR_FILES);
			ret = -1;
		} else if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir_path, de->d_name) >=
		           sizeof(path)) {
			piv_fmt(why, why_size, "%s: a name too long", dir_path);
			ret = -1;
		} else if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
			continue; /* OpenSSL looks up files only */
		} else {
			ret = piv_check_root_owned(path, false, why, why_size);
		}
	}
	closedir(dir);
	return ret;
}

enum piv_status
piv_trust_load(const struct piv_conf *conf, struct piv_trust *trust, char *why, size_t why_size)
{
	memset(trust, 0, sizeof(*trust));
	/* no trust, hence no login, where FIPS is required and not in force */
	if (piv_fips_check(conf->fips_required, why, why_size) != 0) {
		piv_conf_blame(conf, "fips_mode", why, why_size);
		return PIV_E_CONFIG;
	}
	trust->store = X509_STORE_new();
	trust->intermediates = sk_X509_new_null();
	if (trust->store == NULL || trust->intermediates == NULL)
		goto oom;
	/* also for the responder certificates OCSP_basic_verify checks */
	X509_VERIFY_PARAM_set_auth_level(X509_STORE_get0_param(trust->store), PIV_AUTH_LEVEL);
	if (conf->ca_file != NULL && piv_check_root_owned(conf->ca_file, false, why, why_size) != 0) {
		piv_conf_blame(conf, "ca_file", why, why_size);
		goto config;
	}
	if (conf->ca_dir != NULL && (piv_check_root_owned(conf->ca_dir, true, why, why_size) != 0 ||
	                             check_ca_dir_files(conf->ca_dir, why, why_size) != 0)) {
		piv_conf_blame(conf, "ca_dir", why, why_size);
		goto config;
	}
	if (conf->intermediates != NULL &&
	    piv_check_root_owned(conf->intermediates, false, why, why_size) != 0) {
		piv_conf_blame(conf, "intermediates", why, why_size);
		goto config;
	}
	if (conf->ca_file != NULL && X509_STORE_load_file(trust->store, conf->ca_file) != 1) {
		piv_fmt(why, why_size, "%s: cannot load trust anchors", conf->ca_file);
		piv_conf_blame(conf, "ca_file", why, why_size);
		goto config;
	}
	if (conf->ca_dir != NULL && X509_STORE_load_path(trust->store, conf->ca_dir) != 1) {
		piv_fmt(why, why_size, "%s: cannot use as a hashed certificate directory", conf->ca_dir);
		piv_conf_blame(conf, "ca_dir", why, why_size);
		goto config;
	}
	if (conf->intermediates != NULL &&
	    load_pem_certs(conf->intermediates, trust->intermediates) != 0) {
		piv_fmt(why, why_size, "%s: cannot read PEM certificates", conf->intermediates);
		piv_conf_blame(conf, "intermediates", why, why_size);
		goto config;
	}
	ERR_clear_error();
	return PIV_OK;
oom:
	piv_fmt(why, why_size, "out of memory");
	piv_trust_free(trust);
	return PIV_E_INTERNAL;
config:
	ERR_clear_error();
	piv_trust_free(trust);
	return PIV_E_CONFIG;
}

STACK_OF(X509) *
piv_trust_certs(const struct piv_conf *conf, const struct piv_trust *trust)
{
	STACK_OF(X509) *all = X509_STORE_get1_all_certs(trust->store);

	if (all == NULL && (all = sk_X509_new_null()) == NULL)
		return NULL;
	for (int i = 0; i < sk_X509_num(trust->intermediates); i++) {
		X509 *cert = sk_X509_value(trust->intermediates, i);
		if (X509_up_ref(cert) != 1 || !sk_X509_push(all, cert))
			X509_free(cert);
	}
	/* a hashed directory is read by OpenSSL on demand: its files here */
	if (conf->ca_dir != NULL) {
		DIR *dir = opendir(conf->ca_dir);
		struct dirent *de;
		while (dir != NULL && (de = readdir(dir)) != NULL && sk_X509_num(all) < MAX_CA_DIR_FILES) {
			char path[4200];
			X509 *cert;
			FILE *f;
			if (de->d_name[0] == '.' ||
			    (size_t)snprintf(path, sizeof(path), "%s/%s", conf->ca_dir, de->d_name) >=
			    sizeof(path) || (f = fopen(path, "re")) == NULL)
				continue;
			while ((cert = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
				if (!sk_X509_push(all, cert))
					X509_free(cert);
			fclose(f);
		}
		if (dir != NULL)
			closedir(dir);
	}
	ERR_clear_error();
	return all;
}

void
piv_trust_free(struct piv_trust *trust)
{
	X509_STORE_free(trust->store);
	sk_X509_pop_free(trust->intermediates, X509_free);
	memset(trust, 0, sizeof(*trust));
}

X509 *
piv_cert_from_der(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *cert;

	if (der == NULL || len == 0 || len > 64 * 1024)
		return NULL;
	cert = d2i_X509(NULL, &p, (long)len);
	if (cert != NULL && p != der + len) {
		X509_free(cert);
		cert = NULL;
	}
	ERR_clear_error();
	return cert;
}

static int
has_oid(const ASN1_OBJECT *obj, const char *dotted)
{
	char buf[128];

	if (OBJ_obj2txt(buf, sizeof(buf), obj, 1) <= 0)
		return 0;
	return strcmp(buf, dotted) == 0;
}

/* 1 if the certificate's EKU lists oid_text (name or dotted OID). */
static int
eku_has(EXTENDED_KEY_USAGE *eku, const char *oid_text)
{
	ASN1_OBJECT *want = OBJ_txt2obj(oid_text, 0);
	int found = 0;

	if (want == NULL)
		return 0;
	for (int i = 0; eku != NULL && i < sk_ASN1_OBJECT_num(eku); i++)
		if (OBJ_cmp(sk_ASN1_OBJECT_value(eku, i), want) == 0)
			found = 1;
	ASN1_OBJECT_free(want);
	return found;
}

static enum piv_status
check_leaf(const struct piv_conf *conf, X509 *leaf, char *why, size_t why_size)
{
	EXTENDED_KEY_USAGE *eku = NULL;
	CERTIFICATEPOLICIES *pols = NULL;
	enum piv_status st = PIV_OK;
	int crit = 0, is_ec, bits;
	enum piv_hash hash;
	size_t field_len;

	/* Of the leaf checks, Card Authentication comes first, so that the log
	 * names it rather than a key-usage or EKU detail. (Chain errors such
	 * as expiry are reported before any of these.) */
	eku = X509_get_ext_d2i(leaf, NID_ext_key_usage, &crit, NULL);
	if (eku == NULL && crit != -1) {
		piv_fmt(why, why_size, "malformed extended key usage");
		st = PIV_E_CERT_INVALID;
		goto out;
	}
	if (eku_has(eku, card_auth_eku)) {
		piv_fmt(why, why_size, "certificate asserts the PIV Card Authentication EKU");
		st = PIV_E_CERT_CARD_AUTH;
		goto out;
	}
	pols = X509_get_ext_d2i(leaf, NID_certificate_policies, &crit, NULL);
	if (pols == NULL && crit != -1) {
		piv_fmt(why, why_size, "malformed certificate policies");
		st = PIV_E_CERT_INVALID;
		goto out;
	}
	for (int i = 0; pols != NULL && i < sk_POLICYINFO_num(pols); i++) {
		const POLICYINFO *pi = sk_POLICYINFO_value(pols, i);
		for (size_t j = 0; j < sizeof(card_auth_policies) / sizeof(card_auth_policies[0]); j++) {
			if (has_oid(pi->policyid, card_auth_policies[j])) {
				piv_fmt(why, why_size, "certificate asserts the card authentication policy %s",
				        card_auth_policies[j]);
				st = PIV_E_CERT_CARD_AUTH;
				goto out;
			}
		}
	}
	if (!(X509_get_extension_flags(leaf) & EXFLAG_KUSAGE) ||
	    !(X509_get_key_usage(leaf) & KU_DIGITAL_SIGNATURE)) {
		piv_fmt(why, why_size, "key usage does not include digitalSignature");
		st = PIV_E_CERT_KEY_USAGE;
		goto out;
	}
	if (conf->require_eku.n > 0) {
		int any = 0;
		for (size_t i = 0; i < conf->require_eku.n && !any; i++)
			any = eku_has(eku, conf->require_eku.v[i]);
		if (!any) {
			piv_fmt(why, why_size, "none of the required extended key usages (require_eku)");
			st = PIV_E_CERT_EKU;
			goto out;
		}
	}
	if (piv_cert_key_kind(leaf, &is_ec, &hash, &field_len, &bits) != 0) {
		piv_fmt(why, why_size, "key is not RSA 2048-4096 or ECDSA P-256/P-384");
		st = PIV_E_CERT_KEY_TYPE;
		goto out;
	}
out:
	EXTENDED_KEY_USAGE_free(eku);
	CERTIFICATEPOLICIES_free(pols);
	return st;
}

static enum piv_status
status_of_verify_error(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return PIV_E_CERT_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return PIV_E_CERT_NOT_YET_VALID;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
		return PIV_E_CERT_UNTRUSTED;
	case X509_V_ERR_NO_EXPLICIT_POLICY:
	case X509_V_ERR_INVALID_POLICY_EXTENSION:
		return PIV_E_CERT_POLICY;
	default:
		return PIV_E_CERT_INVALID;
	}
}

enum piv_status
piv_validate(const struct piv_conf *conf, const struct piv_trust *trust,
             const uint8_t *cert_der, size_t cert_len,
             const struct piv_blob *extras, size_t n_extras,
             X509 **leaf_out, STACK_OF(X509) **chain_out, char *why, size_t why_size)
{
	STACK_OF(X509) *untrusted = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	X509 *leaf = NULL;
	enum piv_status st = PIV_E_INTERNAL;

	*leaf_out = NULL;
	if (chain_out != NULL)
		*chain_out = NULL;
	piv_fmt(why, why_size, "internal error");
	leaf = piv_cert_from_der(cert_der, cert_len);
	if (leaf == NULL) {
		piv_fmt(why, why_size, "certificate on the card is not valid DER X.509");
		return PIV_E_CERT_INVALID;
	}
	untrusted = sk_X509_dup(trust->intermediates);
	if (untrusted == NULL)
		goto out;
	/* sk_X509_dup does not take references; hold our own so the stack can
	 * be freed uniformly. */
	for (int i = 0; i < sk_X509_num(untrusted); i++)
		X509_up_ref(sk_X509_value(untrusted, i));
	for (size_t i = 0; i < n_extras; i++) {
		X509 *extra = piv_cert_from_der(extras[i].data, extras[i].len);
		if (extra == NULL)
			continue; /* a broken extra certificate cannot help a chain */
		if (!sk_X509_push(untrusted, extra)) {
			X509_free(extra);
			goto out;
		}
	}
	ctx = X509_STORE_CTX_new();
	if (ctx == NULL || X509_STORE_CTX_init(ctx, trust->store, leaf, untrusted) != 1)
		goto out;
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_X509_STRICT);
	/* 112-bit security all along the chain: no SHA-1 or MD5 signature, no
	 * RSA key under 2048 bits (fips.h) */
	X509_VERIFY_PARAM_set_auth_level(param, PIV_AUTH_LEVEL);
	if (conf->require_policy.n > 0) {
		for (size_t i = 0; i < conf->require_policy.n; i++) {
			ASN1_OBJECT *pol = OBJ_txt2obj(conf->require_policy.v[i], 1);
			if (pol == NULL || X509_VERIFY_PARAM_add0_policy(param, pol) != 1) {
				ASN1_OBJECT_free(pol);
				goto out;
			}
		}
		X509_VERIFY_PARAM_set_flags(param, X509_V_FLAG_POLICY_CHECK |
		                                   X509_V_FLAG_EXPLICIT_POLICY);
	}
	if (X509_verify_cert(ctx) != 1) {
		int err = X509_STORE_CTX_get_error(ctx);
		int depth = X509_STORE_CTX_get_error_depth(ctx);
		char detail[200];
		snprintf(detail, sizeof(detail), "%s (at chain depth %d)",
		         X509_verify_cert_error_string(err), depth);
		piv_fmt(why, why_size, "chain validation failed: %s", detail);
		st = status_of_verify_error(err);
		goto out;
	}
	st = check_leaf(conf, leaf, why, why_size);
	if (st == PIV_OK && conf->require_issuer.n > 0) {
		char issuer[1024], esc[600];
		bool listed = false;
		piv_name_rfc4514(X509_get_issuer_name(leaf), issuer, sizeof(issuer));
		for (size_t i = 0; i < conf->require_issuer.n && !listed; i++)
			listed = piv_dn_equal(conf->require_issuer.v[i], issuer);
		if (!listed) {
			piv_fmt(why, why_size, "issued by %s, which is not one of require_issuer",
			        piv_escape_str(issuer, esc, sizeof(esc)));
			st = PIV_E_CERT_UNTRUSTED;
		}
	}
	if (st == PIV_OK && chain_out != NULL && (*chain_out = X509_STORE_CTX_get1_chain(ctx)) == NULL)
		st = PIV_E_INTERNAL;
	if (st == PIV_OK) {
		*leaf_out = leaf;
		leaf = NULL;
		piv_fmt(why, why_size, "valid");
	}
out:
	ERR_clear_error();
	X509_STORE_CTX_free(ctx);
	sk_X509_pop_free(untrusted, X509_free);
	X509_free(leaf);
	return st;
}

/* RFC 4514 form with our escaping left out: comparisons are on what an
 * administrator would write. */
void
piv_name_rfc4514(const X509_NAME *name, char *out, size_t out_size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	out[0] = '\0';
	if (bio == NULL)
		return;
	if (X509_NAME_print_ex(bio, name, 0, XN_FLAG_RFC2253 & ~(unsigned long)ASN1_STRFLGS_ESC_MSB) >= 0 &&
	    (len = BIO_get_mem_data(bio, &data)) > 0 && (size_t)len < out_size) {
		memcpy(out, data, (size_t)len);
		out[len] = '\0';
	}
	BIO_free(bio);
}

int
piv_asn1_time_to_unix(const ASN1_TIME *t, int64_t *out)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return -1;
	*out = (int64_t)timegm(&tm);
	return 0;
}

static void
name_to_text(const X509_NAME *name, char *out, size_t out_size)
{
	BIO *bio = BIO_new(BIO_s_mem());
	char *data = NULL;
	long len;

	snprintf(out, out_size, "(unreadable)");
	if (bio == NULL)
		return;
	/* RFC 2253 form, but control and non-ASCII bytes are left to
	 * piv_escape, so that a log shows one escape (\x0a), not two. */
	if (X509_NAME_print_ex(bio, name, 0,
	                       XN_FLAG_RFC2253 & ~(unsigned long)(ASN1_STRFLGS_ESC_CTRL |
	                                                          ASN1_STRFLGS_ESC_MSB)) >= 0) {
		len = BIO_get_mem_data(bio, &data);
		if (len >= 0)
			piv_escape(data, (size_t)len, out, out_size);
	}
	BIO_free(bio);
}

void
piv_cert_identify(X509 *cert, struct piv_cert_id *id)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	const ASN1_INTEGER *serial;
	BIGNUM *bn = NULL;
	char *hex = NULL;

	memset(id, 0, sizeof(*id));
	if (X509_digest(cert, EVP_sha256(), md, &md_len) == 1)
		piv_hex(md, md_len, ':', id->sha256, sizeof(id->sha256));
	name_to_text(X509_get_subject_name(cert), id->subject, sizeof(id->subject));
	name_to_text(X509_get_issuer_name(cert), id->issuer, sizeof(id->issuer));
	serial = X509_get0_serialNumber(cert);
	if (serial != NULL && (bn = ASN1_INTEGER_to_BN(serial, NULL)) != NULL &&
	    (hex = BN_bn2hex(bn)) != NULL)
		piv_escape_str(hex, id->serial, sizeof(id->serial));
	OPENSSL_free(hex);
	BN_free(bn);
	ERR_clear_error();
}
