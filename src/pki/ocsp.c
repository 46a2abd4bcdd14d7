/* OCSP (see ocsp.h). The request carries a fresh nonce; the answer counts
 * only when its signer is the issuing CA or a responder that CA delegated
 * to, when it covers this very certificate, and when it is current (an
 * answer without nextUpdate for ocsp_max_age after its thisUpdate). A
 * good or revoked answer is kept in cache_dir until its nextUpdate and is
 * verified again each time it is used. */
#include "config.h"
#include "pki/ocsp.h"
#include "pki/cache.h"
#include "common/util.h"
#include "pki/fips.h"
#include "pki/validate.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/http.h>
#include <openssl/ocsp.h>
#include <openssl/x509v3.h>

#define MAX_OCSP_RESPONSE (100 * 1024)
#define CLOCK_SKEW 300

/* 0 from OCSP_check_nonce: a replayed answer to somebody else's question.
 * No nonce at all (-1) is allowed unless required: many responders
 * pre-produce their answers, and the age limits bound how long such an
 * answer can be replayed. */
static bool
nonce_refused(OCSP_REQUEST *req, OCSP_BASICRESP *bs, bool require_nonce, char *reason,
              size_t reason_size)
{
	int rc;

	if (req == NULL || (rc = OCSP_check_nonce(req, bs)) == 1)
		return false;
	if (rc == 0) {
		piv_fmt(reason, reason_size, "OCSP nonce does not match the request");
		return true;
	}
	if (require_nonce) {
		piv_fmt(reason, reason_size, "OCSP response carries no nonce (ocsp_require_nonce = yes)");
		return true;
	}
	return false;
}

/* What a current answer says, with its age (next: its nextUpdate, 0 for
 * none). */
static enum piv_rev_answer
current_answer(int status, int rev_reason, time_t now, int64_t this_t, int64_t next,
               char *reason, size_t reason_size)
{
	char age[120] = "";

	piv_fmt(age, sizeof(age), ", thisUpdate %jd s ago", (intmax_t)(now - this_t));
	if (next > 0)
		piv_fmt(age + strlen(age), sizeof(age) - strlen(age), ", nextUpdate in %jd s",
		        (intmax_t)(next - now));
	switch (status) {
	case V_OCSP_CERTSTATUS_GOOD:
		piv_fmt(reason, reason_size, "OCSP: good%s", age);
		return PIV_REV_GOOD;
	case V_OCSP_CERTSTATUS_REVOKED:
		piv_fmt(reason, reason_size, "OCSP: revoked (%s)%s",
		        rev_reason >= 0 ? OCSP_crl_reason_str(rev_reason) : "no reason given", age);
		return PIV_REV_REVOKED;
	default:
		piv_fmt(reason, reason_size, "OCSP: the responder does not know the certificate");
		return PIV_REV_UNKNOWN;
	}
}

/* OCSP_basic_verify accepts any signature the provider can check; ours
 * must have 112-bit security (fips.h), like the chain and the CRLs. */
static bool
response_weak(OCSP_BASICRESP *bs, STACK_OF(X509) *chain, char *reason, size_t reason_size)
{
	X509 *signer = NULL;
	char why[200];

	if (OCSP_resp_get0_signer(bs, &signer, chain) != 1 || signer == NULL) {
		piv_fmt(reason, reason_size, "OCSP response signer not found");
		return true;
	}
	if (piv_signature_strong(OCSP_resp_get0_tbs_sigalg(bs), X509_get0_pubkey(signer), why,
	                         sizeof(why)) != 0) {
		piv_fmt(reason, reason_size, "OCSP response too weak: %s", why);
		return true;
	}
	return false;
}

enum piv_rev_answer
piv_ocsp_judge(const unsigned char *der, size_t len, X509 *cert, X509 *issuer,
               STACK_OF(X509) *chain, X509_STORE *store, void *req_ptr,
               const struct piv_ocsp_rules *rules, time_t now, time_t *next_update,
               char *reason, size_t reason_size)
{
	OCSP_REQUEST *req = req_ptr;
	const unsigned char *p = der;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_CERTID *id = NULL;
	ASN1_GENERALIZEDTIME *thisupd = NULL, *nextupd = NULL, *revtime = NULL;
	enum piv_rev_answer answer = PIV_REV_UNKNOWN;
	int status = 0, rev_reason = 0, rc;
	int64_t next = 0, this_t = 0;

	*next_update = 0;
	if (len == 0 || len > MAX_OCSP_RESPONSE ||
	    (resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL || p != der + len) {
		piv_fmt(reason, reason_size, "not an OCSP response");
		goto out;
	}
	rc = OCSP_response_status(resp);
	if (rc != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
		piv_fmt(reason, reason_size, "responder answered %s", OCSP_response_status_str(rc));
		goto out;
	}
	if ((bs = OCSP_response_get1_basic(resp)) == NULL) {
		piv_fmt(reason, reason_size, "not a basic OCSP response");
		goto out;
	}
	if (nonce_refused(req, bs, rules->require_nonce, reason, reason_size))
		goto out;
	/* The signer must be the CA that issued cert, or a responder with
	 * id-kp-OCSPSigning issued by it, chaining to our anchors. */
	if (response_weak(bs, chain, reason, reason_size))
		goto out;
	if (OCSP_basic_verify(bs, chain, store, 0) <= 0) {
		piv_fmt(reason, reason_size, "OCSP response not signed by the CA or its responder");
		goto out;
	}
	if ((id = OCSP_cert_to_id(EVP_sha1(), cert, issuer)) == NULL)
		goto out;
	if (OCSP_resp_find_status(bs, id, &status, &rev_reason, &revtime, &thisupd, &nextupd) != 1) {
		piv_fmt(reason, reason_size, "OCSP response does not cover the certificate");
		goto out;
	}
	/* thisUpdate and nextUpdate must bracket the present (nextUpdate not
	 * before thisUpdate); an answer without nextUpdate says nothing of how
	 * long it holds, so it counts for max_age after its thisUpdate. */
	if (piv_asn1_time_to_unix(thisupd, &this_t) != 0 ||
	    (nextupd != NULL && (piv_asn1_time_to_unix(nextupd, &next) != 0 || next < this_t))) {
		piv_fmt(reason, reason_size, "OCSP response with unreadable or inverted "
		        "thisUpdate/nextUpdate");
		goto out;
	}
	if (this_t > (int64_t)now + CLOCK_SKEW) {
		piv_fmt(reason, reason_size, "OCSP response is not yet valid (thisUpdate in the future)");
		goto out;
	}
	if (nextupd != NULL && (*next_update = (time_t)next) <= now)
		piv_fmt(reason, reason_size, "OCSP response is stale (nextUpdate passed)");
	else if (nextupd == NULL && (int64_t)now - this_t > (int64_t)rules->max_age)
		piv_fmt(reason, reason_size, "OCSP response is stale: no nextUpdate, and thisUpdate "
		        "is %jd s old (ocsp_max_age = %u)", (intmax_t)((int64_t)now - this_t),
		        rules->max_age);
	else
		reason[0] = '\0';
	if (reason[0] != '\0') {
		/* What the CA signed stays said: a revocation does not end with
		 * the answer's validity (a certificateHold may). */
		if (status == V_OCSP_CERTSTATUS_REVOKED &&
		    rev_reason != OCSP_REVOKED_STATUS_CERTIFICATEHOLD) {
			answer = PIV_REV_REVOKED;
			piv_fmt(reason, reason_size, "OCSP: revoked (%s), in an answer that is no longer "
			        "current (a revocation stays)",
			        rev_reason >= 0 ? OCSP_crl_reason_str(rev_reason) : "no reason given");
		}
		goto out;
	}
	answer = current_answer(status, rev_reason, now, this_t, nextupd != NULL ? next : 0, reason,
	                        reason_size);
out:
	OCSP_CERTID_free(id);
	OCSP_BASICRESP_free(bs);
	OCSP_RESPONSE_free(resp);
	ERR_clear_error();
	return answer;
}

/* POST the request to url, bounded by net_timeout (connect, send and
 * receive together) and a size cap; no proxy from the environment. */
static unsigned char *
post(const struct piv_conf *conf, const char *url, OCSP_REQUEST *req, size_t *len, char *why,
     size_t why_size)
{
	char *host = NULL, *port = NULL, *path = NULL;
	BIO *req_bio = NULL, *resp = NULL;
	unsigned char *out = NULL;
	char *data = NULL;
	long n;
	int ssl = 0;

	if (OSSL_HTTP_parse_url(url, &ssl, NULL, &host, &port, NULL, &path, NULL, NULL) != 1 ||
	    ssl) {
		piv_fmt(why, why_size, "unusable OCSP URL %s (http:// only)", url);
		goto out;
	}
	req_bio = ASN1_item_i2d_mem_bio(ASN1_ITEM_rptr(OCSP_REQUEST), (const ASN1_VALUE *)req);
	if (req_bio == NULL)
		goto out;
	resp = OSSL_HTTP_transfer(NULL, host, port, path, 0, "", NULL, NULL, NULL, NULL, NULL, 0,
	                          NULL, "application/ocsp-request", req_bio,
	                          "application/ocsp-response", 1, MAX_OCSP_RESPONSE,
	                          (int)conf->net_timeout, 0);
	if (resp == NULL) {
		unsigned long e = ERR_peek_last_error();
		piv_fmt(why, why_size, "OCSP request to %s failed: %s", url,
		        e ? ERR_reason_error_string(e) : "no answer");
		goto out;
	}
	n = BIO_get_mem_data(resp, &data);
	if (n <= 0 || data == NULL || (out = malloc((size_t)n)) == NULL) {
		piv_fmt(why, why_size, "OCSP responder %s sent nothing", url);
		goto out;
	}
	memcpy(out, data, (size_t)n);
	*len = (size_t)n;
out:
	OPENSSL_free(host);
	OPENSSL_free(port);
	OPENSSL_free(path);
	BIO_free(req_bio);
	BIO_free(resp);
	ERR_clear_error();
	return out;
}

static unsigned char *
read_cached(const char *path, size_t *len)
{
	unsigned char *buf = NULL;
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0 &&
	    st.st_size <= MAX_OCSP_RESPONSE && (buf = malloc((size_t)st.st_size)) != NULL &&
	    read(fd, buf, (size_t)st.st_size) == st.st_size) {
		*len = (size_t)st.st_size;
	} else {
		free(buf);
		buf = NULL;
	}
	close(fd);
	return buf;
}

/* The responder: ocsp_url when set, else the first http:// OCSP access
 * location of the certificate's AIA. */
static int
responder_url(const struct piv_conf *conf, X509 *cert, char *out, size_t out_size)
{
	STACK_OF(OPENSSL_STRING) *urls;
	int found = -1;

	if (conf->ocsp_url != NULL) {
		piv_fmt(out, out_size, "%s", conf->ocsp_url);
		return 0;
	}
	urls = X509_get1_ocsp(cert);
	for (int i = 0; urls != NULL && i < sk_OPENSSL_STRING_num(urls) && found != 0; i++) {
		const char *u = sk_OPENSSL_STRING_value(urls, i);
		if (strncmp(u, "http://", 7) == 0 && strlen(u) < out_size) {
			piv_fmt(out, out_size, "%s", u);
			found = 0;
		}
	}
	X509_email_free(urls);
	return found;
}

enum piv_rev_answer
piv_ocsp_check(const struct piv_conf *conf, X509 *cert, X509 *issuer, STACK_OF(X509) *chain,
               X509_STORE *store, time_t now, piv_rev_log_fn log, void *ud, char *reason,
               size_t reason_size)
{
	enum piv_rev_answer answer = PIV_REV_UNKNOWN;
	OCSP_CERTID *id = NULL;
	OCSP_REQUEST *req = NULL;
	unsigned char *id_der = NULL, *der = NULL;
	char key[200], path[4200], url[1024], line[600];
	time_t next_update = 0;
	size_t len = 0;
	int id_len;
	const struct piv_ocsp_rules rules = { conf->ocsp_max_age, conf->ocsp_require_nonce };

	piv_fmt(reason, reason_size, "OCSP failed");
	if ((id = OCSP_cert_to_id(EVP_sha1(), cert, issuer)) == NULL ||
	    (id_len = i2d_OCSP_CERTID(id, &id_der)) <= 0)
		goto out;
	piv_hex(id_der, (size_t)id_len > 90 ? 90 : (size_t)id_len, 0, key, sizeof(key));
	if (piv_cache_path(conf->cache_dir, "ocsp", key, ".der", path, sizeof(path)) != 0)
		goto out;

	/* A cached answer, verified again, while it is current. */
	if ((der = read_cached(path, &len)) != NULL) {
		struct piv_ocsp_rules cached_rules = rules;
		cached_rules.require_nonce = false; /* checked when it arrived */
		answer = piv_ocsp_judge(der, len, cert, issuer, chain, store, NULL, &cached_rules, now,
		                        &next_update, reason, reason_size);
		free(der);
		der = NULL;
		if (answer != PIV_REV_UNKNOWN) {
			piv_fmt(line, sizeof(line), "OCSP answer from the cache: %s", reason);
			piv_fmt(reason + strlen(reason), reason_size - strlen(reason), " (cached answer)");
			if (log)
				log(ud, LOG_DEBUG, line);
			goto out;
		}
		unlink(path);
	}
	if (responder_url(conf, cert, url, sizeof(url)) != 0) {
		piv_fmt(reason, reason_size, "the certificate names no OCSP responder");
		goto out;
	}
	if ((req = OCSP_REQUEST_new()) == NULL ||
	    OCSP_request_add0_id(req, id) == NULL)
		goto out;
	id = NULL; /* owned by req */
	if (OCSP_request_add1_nonce(req, NULL, -1) != 1)
		goto out;
	der = post(conf, url, req, &len, reason, reason_size);
	if (der == NULL)
		goto out;
	answer = piv_ocsp_judge(der, len, cert, issuer, chain, store, req, &rules, now,
	                        &next_update, reason, reason_size);
	if (answer != PIV_REV_UNKNOWN)
		piv_fmt(reason + strlen(reason), reason_size - strlen(reason), " (from %s)", url);
	if (answer != PIV_REV_UNKNOWN && next_update > now &&
	    piv_write_atomically(path, der, len, NULL, 0) != 0 && log != NULL)
		log(ud, LOG_WARNING, "cannot store the OCSP response in cache_dir");
out:
	OPENSSL_free(id_der);
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(req);
	free(der);
	ERR_clear_error();
	return answer;
}
