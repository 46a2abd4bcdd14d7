/* OpenSSL's FIPS provider and the signature strength pam_piv accepts
 * (fips.h). */
#include "config.h"

#include "pki/fips.h"

#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>

#include "common/util.h"

enum piv_fips_state
piv_fips_state(void)
{
	if (OSSL_PROVIDER_available(NULL, "fips") != 1)
		return PIV_FIPS_OFF;
	return EVP_default_properties_is_fips_enabled(NULL) ? PIV_FIPS_ON : PIV_FIPS_LOADED;
}

const char *
piv_fips_state_text(enum piv_fips_state state)
{
	switch (state) {
	case PIV_FIPS_ON: return "active (fips provider, default_properties fips=yes)";
	case PIV_FIPS_LOADED: return "loaded but not required (default_properties lacks fips=yes)";
	case PIV_FIPS_OFF: break;
	}
	return "not loaded";
}

int
piv_fips_check(bool required, char *why, size_t why_size)
{
	enum piv_fips_state state;

	if (!required || (state = piv_fips_state()) == PIV_FIPS_ON)
		return 0;
	piv_fmt(why, why_size, "fips_mode = required, but OpenSSL's FIPS provider is %s",
	        piv_fips_state_text(state));
	return -1;
}

/* The hash of an RSASSA-PSS signature (RFC 4055: SHA-1 when absent) */
static int
pss_digest(const X509_ALGOR *alg)
{
	RSA_PSS_PARAMS *pss;
	int nid = NID_sha1;

	if (alg->parameter == NULL || alg->parameter->type != V_ASN1_SEQUENCE)
		return NID_undef;
	pss = ASN1_TYPE_unpack_sequence(ASN1_ITEM_rptr(RSA_PSS_PARAMS), alg->parameter);
	if (pss == NULL)
		return NID_undef;
	if (pss->hashAlgorithm != NULL)
		nid = OBJ_obj2nid(pss->hashAlgorithm->algorithm);
	RSA_PSS_PARAMS_free(pss);
	return nid;
}

int
piv_signature_strong(const X509_ALGOR *alg, EVP_PKEY *key, char *why, size_t why_size)
{
	int sig_nid, md_nid = NID_undef, pk_nid = NID_undef, bits;

	if (alg == NULL || key == NULL) {
		piv_fmt(why, why_size, "signature without an algorithm or a key");
		return -1;
	}
	sig_nid = OBJ_obj2nid(alg->algorithm);
	if (sig_nid == NID_rsassaPss)
		md_nid = pss_digest(alg);
	else if (OBJ_find_sigid_algs(sig_nid, &md_nid, &pk_nid) != 1)
		md_nid = NID_undef;
	/* Ed25519 and Ed448 hash inside the algorithm */
	if (!(pk_nid == NID_ED25519 || pk_nid == NID_ED448) && md_nid != NID_sha256 &&
	    md_nid != NID_sha384 && md_nid != NID_sha512) {
		piv_fmt(why, why_size, "signed with %s: only SHA-256, SHA-384 and SHA-512 are accepted",
		        md_nid == NID_sha1 ? "SHA-1" : md_nid == NID_md5 ? "MD5" :
		        "an unknown or weak algorithm");
		return -1;
	}
	bits = EVP_PKEY_get_security_bits(key);
	if (bits < PIV_MIN_SECURITY_BITS) {
		piv_fmt(why, why_size, "signed with a %d-bit %s key (%d-bit security; at least %d "
		        "required)", EVP_PKEY_get_bits(key), EVP_PKEY_get0_type_name(key) != NULL ?
		        EVP_PKEY_get0_type_name(key) : "", bits, PIV_MIN_SECURITY_BITS);
		return -1;
	}
	return 0;
}
