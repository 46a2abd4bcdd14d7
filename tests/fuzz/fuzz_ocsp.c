/* Fuzz target: OCSP responses (ocsp.h) for a fixed certificate, issuer and
 * trust store. Input: a mode byte, then a DER OCSP response.
 *   bits 0-1: 0 judged as it is; 1 re-signed by the issuing CA; 2 by the
 *             CA's delegated responder; 3 by a stranger with the CA's name
 *   bit 2:    (re-signed) every single response made about our
 *             certificate, so the status and time checks run
 *   bit 3:    (re-signed) thisUpdate a minute ago, nextUpdate in an hour
 *   bit 4:    judged against a request with a nonce
 *   bit 5:    (re-signed) the request's nonce copied into the response
 *   bit 6:    read through the OCSP cache (piv_ocsp_check with the
 *             response as the cached file; the certificate names no
 *             responder, so nothing goes to the network)
 *   bit 7:    the nonce is required (ocsp_require_nonce)
 * The promise checked: only an answer signed by the CA or its responder is
 * ever good or revoked, and never one whose nonce differs. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ocsp.h>

#include "pki/cache.h"
#include "common/conf.h"
#include "fuzz_util.h"
#include "pki/ocsp.h"
#include "common/util.h"

#define SIGNER_CA 1
#define SIGNER_RESPONDER 2
#define SIGNER_STRANGER 3

static const struct fuzz_pki *pki;
static OCSP_CERTID *leaf_id;
static struct piv_conf conf;
static char cache_path[4200];
static const unsigned char request_nonce[16] = "pam_piv fuzz!!!";

/* A copy of bs's answers (optionally all about our certificate, with
 * fresh times) signed anew; NULL when bs cannot be re-issued. */
static OCSP_BASICRESP *
reissue(OCSP_BASICRESP *bs, uint8_t mode, OCSP_REQUEST *req)
{
	OCSP_BASICRESP *out = OCSP_BASICRESP_new();
	ASN1_GENERALIZEDTIME *fresh_this = ASN1_GENERALIZEDTIME_new();
	ASN1_GENERALIZEDTIME *fresh_next = ASN1_GENERALIZEDTIME_new();
	STACK_OF(X509) *certs = sk_X509_new_null();
	int signer = mode & 3;
	X509 *signer_cert;
	EVP_PKEY *signer_key;
	bool ok = out != NULL && certs != NULL && fresh_this != NULL && fresh_next != NULL &&
	          X509_gmtime_adj(fresh_this, -60) != NULL && X509_gmtime_adj(fresh_next, 3600) != NULL;

	for (int i = 0; ok && i < OCSP_resp_count(bs); i++) {
		OCSP_SINGLERESP *single = OCSP_resp_get0(bs, i), *copy;
		ASN1_GENERALIZEDTIME *revtime = NULL, *thisupd = NULL, *nextupd = NULL;
		int reason = -1;
		int status = OCSP_single_get0_status(single, &reason, &revtime, &thisupd, &nextupd);
		const OCSP_CERTID *id = (mode & 4) ? leaf_id : OCSP_SINGLERESP_get0_id(single);

		if (status < 0 || thisupd == NULL) {
			ok = false;
			break;
		}
		if (mode & 8) {
			thisupd = fresh_this;
			nextupd = fresh_next;
		}
		copy = OCSP_basic_add1_status(out, (OCSP_CERTID *)id, status, reason, revtime, thisupd,
		                              nextupd);
		ok = copy != NULL;
		for (int e = 0; ok && e < OCSP_SINGLERESP_get_ext_count(single); e++)
			ok = OCSP_SINGLERESP_add_ext(copy, OCSP_SINGLERESP_get_ext(single, e), -1) == 1;
	}
	for (int e = 0; ok && e < OCSP_BASICRESP_get_ext_count(bs); e++) {
		X509_EXTENSION *ext = OCSP_BASICRESP_get_ext(bs, e);
		/* the nonce is the request's when bit 5 says so */
		if ((mode & 32) && OBJ_obj2nid(X509_EXTENSION_get_object(ext)) == NID_id_pkix_OCSP_Nonce)
			continue;
		ok = OCSP_BASICRESP_add_ext(out, ext, -1) == 1;
	}
	if (ok && (mode & 32) && req != NULL)
		ok = OCSP_copy_nonce(out, req) == 1;
	if (signer == SIGNER_CA) {
		signer_cert = pki->ca;
		signer_key = pki->ca_key;
	} else if (signer == SIGNER_RESPONDER) {
		signer_cert = pki->responder;
		signer_key = pki->responder_key;
		ok = ok && sk_X509_push(certs, pki->responder);
	} else {
		signer_cert = pki->rogue;
		signer_key = pki->rogue_key;
		ok = ok && sk_X509_push(certs, pki->rogue);
	}
	ok = ok && OCSP_basic_sign(out, signer_cert, signer_key, EVP_sha256(), certs,
	                           signer == SIGNER_CA ? OCSP_NOCERTS : 0) == 1;
	sk_X509_free(certs);
	ASN1_GENERALIZEDTIME_free(fresh_this);
	ASN1_GENERALIZEDTIME_free(fresh_next);
	if (!ok) {
		OCSP_BASICRESP_free(out);
		ERR_clear_error();
		return NULL;
	}
	return out;
}

/* The response to judge: the input, or its re-issued form. *der is
 * malloc'd; *req_nonce tells whether the response carries a nonce other
 * than the request's (so that it must be refused). */
static uint8_t *
response_to_judge(const uint8_t *data, size_t len, uint8_t mode, OCSP_REQUEST *req,
                  size_t *der_len, bool *validly_signed)
{
	const unsigned char *p = data;
	OCSP_RESPONSE *resp = NULL, *again = NULL;
	OCSP_BASICRESP *bs = NULL, *signed_bs = NULL;
	unsigned char *der = NULL;
	uint8_t *out;
	int n;

	*validly_signed = false;
	if ((mode & 3) != 0 && (resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) != NULL &&
	    (bs = OCSP_response_get1_basic(resp)) != NULL &&
	    (signed_bs = reissue(bs, mode, req)) != NULL &&
	    (again = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, signed_bs)) != NULL &&
	    (n = i2d_OCSP_RESPONSE(again, &der)) > 0) {
		*validly_signed = (mode & 3) != SIGNER_STRANGER;
		out = malloc((size_t)n);
		if (out == NULL)
			fuzz_harness_error("out of memory");
		memcpy(out, der, (size_t)n);
		*der_len = (size_t)n;
	} else {
		out = malloc(len ? len : 1);
		if (out == NULL)
			fuzz_harness_error("out of memory");
		if (len > 0)
			memcpy(out, data, len);
		*der_len = len;
	}
	OPENSSL_free(der);
	OCSP_RESPONSE_free(again);
	OCSP_BASICRESP_free(signed_bs);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return out;
}

/* Does the response carry a nonce that is not the request's? */
static bool
foreign_nonce(const uint8_t *der, size_t len, OCSP_REQUEST *req)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	OCSP_BASICRESP *bs = resp != NULL ? OCSP_response_get1_basic(resp) : NULL;
	bool foreign = bs != NULL && req != NULL && OCSP_check_nonce(req, bs) == 0;

	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return foreign;
}

/* Does the response echo req's nonce? */
static bool
own_nonce(const uint8_t *der, size_t len, OCSP_REQUEST *req)
{
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
	OCSP_BASICRESP *bs = resp != NULL ? OCSP_response_get1_basic(resp) : NULL;
	bool own = bs != NULL && OCSP_check_nonce(req, bs) == 1;

	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return own;
}

static void
judge(const uint8_t *data, size_t len, uint8_t mode)
{
	OCSP_REQUEST *req = NULL;
	enum piv_rev_answer answer;
	time_t next_update = 0;
	bool validly_signed;
	char reason[300];
	uint8_t *der;
	size_t der_len;

	if ((mode & 16) && ((req = OCSP_REQUEST_new()) == NULL ||
	                    OCSP_request_add1_nonce(req, (unsigned char *)request_nonce,
	                                            sizeof(request_nonce)) != 1))
		fuzz_harness_error("cannot make a request");
	der = response_to_judge(data, len, mode, req, &der_len, &validly_signed);
	{
		/* bit 7: the nonce is required */
		const struct piv_ocsp_rules rules = { conf.ocsp_max_age, (mode & 128) != 0 };
		answer = piv_ocsp_judge(der, der_len, pki->leaf, pki->ca, pki->chain, pki->store, req,
		                        &rules, time(NULL), &next_update, reason, sizeof(reason));
	}
	FUZZ_CHECK(answer == PIV_REV_GOOD || answer == PIV_REV_REVOKED || answer == PIV_REV_UNKNOWN,
	           "an answer out of range");
	FUZZ_CHECK(memchr(reason, '\0', sizeof(reason)) != NULL, "reason not terminated");
	if (answer != PIV_REV_UNKNOWN) {
		FUZZ_CHECK(validly_signed, "an answer nobody we trust signed was believed");
		FUZZ_CHECK(!foreign_nonce(der, der_len, req), "an answer to another request was believed");
		FUZZ_CHECK(!(mode & 128) || req == NULL || own_nonce(der, der_len, req),
		           "an answer without the required nonce was believed");
	}
	if (mode & 64) {
		/* The same bytes as the cached answer: read, judged again without
		 * a request, and removed when they do not count. */
		fuzz_write_file(cache_path, der, der_len);
		answer = piv_ocsp_check(&conf, pki->leaf, pki->ca, pki->chain, pki->store, time(NULL),
		                        NULL, NULL, reason, sizeof(reason));
		FUZZ_CHECK(answer == PIV_REV_UNKNOWN || validly_signed,
		           "a cached answer nobody we trust signed was believed");
	}
	free(der);
	OCSP_REQUEST_free(req);
	ERR_clear_error();
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static const char conf_fmt[] = "ca_file = /nonexistent/ca.pem\ncache_dir = %s\n";
	struct piv_conf_error err;
	unsigned char *id_der = NULL;
	char conf_text[600], key[200];
	int id_len;

	(void)argc;
	(void)argv;
	pki = fuzz_pki();
	leaf_id = OCSP_cert_to_id(EVP_sha1(), pki->leaf, pki->ca);
	if (leaf_id == NULL || (id_len = i2d_OCSP_CERTID(leaf_id, &id_der)) <= 0)
		fuzz_harness_error("cannot make the certificate's OCSP id");
	snprintf(conf_text, sizeof(conf_text), conf_fmt, fuzz_tmpdir());
	if (piv_conf_load_string(&conf, "fuzz.conf", conf_text, 0, NULL, &err) != 0)
		fuzz_harness_error(err.msg);
	/* where ocsp.c keeps the certificate's answer (piv_ocsp_check) */
	piv_hex(id_der, (size_t)id_len > 90 ? 90 : (size_t)id_len, 0, key, sizeof(key));
	if (piv_cache_path(conf.cache_dir, "ocsp", key, ".der", cache_path, sizeof(cache_path)) != 0)
		fuzz_harness_error("cache path too long");
	OPENSSL_free(id_der);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	judge(data + 1, size - 1, data[0]);
	return 0;
}
