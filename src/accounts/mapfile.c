/* Mapping files (see mapfile.h). The file is read whole, with the same
 * safety rules as the configuration, and every line must parse. */
#include "config.h"
#include "accounts/mapfile.h"
#include "common/conf.h"
#include "common/util.h"
#include "pki/validate.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

static const char *const fascn_oid = "2.16.840.1.101.3.6.6";

/* All of in, or "" when it does not fit: a value cut short would match
 * every certificate whose value begins the same way. */
static void
lower_hex(const unsigned char *in, size_t len, char *out, size_t out_size)
{
	static const char digits[] = "0123456789abcdef";
	size_t o = 0;

	out[0] = '\0';
	if (2 * len + 1 > out_size)
		return;
	for (size_t i = 0; i < len; i++) {
		out[o++] = digits[in[i] >> 4];
		out[o++] = digits[in[i] & 15];
	}
	out[o] = '\0';
}

/* 8-4-4-4-12 hex digits: what a uuid= matcher can name. */
static bool
uuid_syntax(const char *s, size_t len)
{
	if (len != 36)
		return false;
	for (size_t i = 0; i < len; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? s[i] != '-' : !isxdigit((unsigned char)s[i]))
			return false;
	}
	return true;
}

int
piv_cert_facts(X509 *cert, struct piv_cert_facts *f)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;
	const ASN1_INTEGER *serial = X509_get0_serialNumber(cert);
	const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);
	GENERAL_NAMES *sans;

	memset(f, 0, sizeof(*f));
	if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1)
		return -1;
	lower_hex(md, md_len, f->sha256, sizeof(f->sha256));
	piv_name_rfc4514(X509_get_subject_name(cert), f->subject, sizeof(f->subject));
	piv_name_rfc4514(X509_get_issuer_name(cert), f->issuer, sizeof(f->issuer));
	/* RFC 5280 serials are positive; a negative one is no serial fact (its
	 * magnitude would match the line of another certificate) */
	if (serial != NULL && ASN1_STRING_type(serial) == V_ASN1_INTEGER) {
		const unsigned char *p = ASN1_STRING_get0_data(serial);
		int len = ASN1_STRING_length(serial);
		while (len > 1 && p[0] == 0) {
			p++;
			len--;
		}
		lower_hex(p, (size_t)len, f->serial, sizeof(f->serial));
	}
	if (ski != NULL)
		lower_hex(ASN1_STRING_get0_data(ski), (size_t)ASN1_STRING_length(ski), f->ski,
		          sizeof(f->ski));
	sans = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; sans != NULL && i < sk_GENERAL_NAME_num(sans); i++) {
		GENERAL_NAME *gn = sk_GENERAL_NAME_value(sans, i);
		if (gn->type == GEN_OTHERNAME && f->fascn[0] == '\0') {
			char oid[64];
			ASN1_TYPE *v = gn->d.otherName->value;
			OBJ_obj2txt(oid, sizeof(oid), gn->d.otherName->type_id, 1);
			if (strcmp(oid, fascn_oid) == 0 && v != NULL && v->type == V_ASN1_OCTET_STRING &&
			    ASN1_STRING_length(v->value.octet_string) == 25)
				lower_hex(ASN1_STRING_get0_data(v->value.octet_string), 25, f->fascn,
				          sizeof(f->fascn));
		} else if (gn->type == GEN_URI && f->uuid[0] == '\0') {
			const char *uri = (const char *)ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
			int len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
			/* Anything else (a NUL inside, not hex) is no card UUID. */
			if (len == 45 && strncasecmp(uri, "urn:uuid:", 9) == 0 && uuid_syntax(uri + 9, 36)) {
				for (int k = 0; k < 36; k++)
					f->uuid[k] = (char)tolower((unsigned char)uri[9 + k]);
				f->uuid[36] = '\0';
			}
		}
	}
	GENERAL_NAMES_free(sans);
	ERR_clear_error();
	return 0;
}

/* Hex with optional ':' separators, to lowercase without them. */
static bool
norm_hex(const char *in, char *out, size_t out_size, size_t want_digits)
{
	size_t o = 0;

	for (; *in; in++) {
		if (*in == ':')
			continue;
		if (!isxdigit((unsigned char)*in) || o + 1 >= out_size)
			return false;
		out[o++] = (char)tolower((unsigned char)*in);
	}
	out[o] = '\0';
	return o > 0 && (want_digits == 0 || o == want_digits);
}

static bool
serial_equal(const char *written, const char *cert_serial)
{
	char hex[100];
	const char *p = hex;

	if (cert_serial[0] == '\0' || !norm_hex(written, hex, sizeof(hex), 0))
		return false;
	while (p[0] == '0' && p[1] != '\0')
		p++;
	/* the certificate's form keeps whole bytes: "0a" for 10 */
	if (strlen(p) % 2 == 1 && cert_serial[0] == '0')
		cert_serial++;
	return strcmp(p, cert_serial) == 0;
}

/* One matcher against the facts: 1 match, 0 no match, -1 syntax error. */
static int
match_one(const char *matcher, const struct piv_cert_facts *f, const char **why)
{
	const char *eq = strchr(matcher, '=');
	char hex[140];
	size_t klen;

	if (eq == NULL) {
		*why = "expected KIND=VALUE after the account";
		return -1;
	}
	klen = (size_t)(eq - matcher);
	const char *v = eq + 1;
#define KIND(name) (klen == strlen(name) && strncasecmp(matcher, name, klen) == 0)
	if (KIND("sha256")) {
		if (!norm_hex(v, hex, sizeof(hex), 64)) {
			*why = "sha256= takes 64 hex digits (colons allowed)";
			return -1;
		}
		return strcmp(hex, f->sha256) == 0;
	}
	if (KIND("subject")) {
		if (*v == '\0') {
			*why = "subject= takes a DN";
			return -1;
		}
		return piv_dn_equal(v, f->subject);
	}
	if (KIND("issuer+serial")) {
		const char *semi = strrchr(v, ';');
		char dn[1024];
		if (semi == NULL || semi == v || (size_t)(semi - v) >= sizeof(dn) ||
		    !norm_hex(semi + 1, hex, sizeof(hex), 0)) {
			*why = "issuer+serial= takes DN;HEXSERIAL";
			return -1;
		}
		memcpy(dn, v, (size_t)(semi - v));
		dn[semi - v] = '\0';
		return piv_dn_equal(dn, f->issuer) && serial_equal(semi + 1, f->serial);
	}
	if (KIND("ski")) {
		if (!norm_hex(v, hex, sizeof(hex), 0)) {
			*why = "ski= takes hex digits (colons allowed)";
			return -1;
		}
		return f->ski[0] != '\0' && strcmp(hex, f->ski) == 0;
	}
	if (KIND("fascn")) {
		if (!norm_hex(v, hex, sizeof(hex), 50)) {
			*why = "fascn= takes the 25-byte FASC-N as 50 hex digits";
			return -1;
		}
		return f->fascn[0] != '\0' && strcmp(hex, f->fascn) == 0;
	}
	if (KIND("uuid")) {
		char u[40];
		size_t n = strlen(v);
		if (n != 36 || v[8] != '-' || v[13] != '-' || v[18] != '-' || v[23] != '-') {
			*why = "uuid= takes a UUID (8-4-4-4-12 hex digits)";
			return -1;
		}
		for (size_t i = 0; i < n; i++) {
			if (v[i] != '-' && !isxdigit((unsigned char)v[i])) {
				*why = "uuid= takes a UUID (8-4-4-4-12 hex digits)";
				return -1;
			}
			u[i] = (char)tolower((unsigned char)v[i]);
		}
		u[n] = '\0';
		return f->uuid[0] != '\0' && strcmp(u, f->uuid) == 0;
	}
#undef KIND
	*why = "unknown matcher (sha256=, subject=, issuer+serial=, ski=, fascn=, uuid=)";
	return -1;
}

static int
add_account(struct piv_accounts *acc, const char *name)
{
	for (size_t i = 0; i < acc->n; i++)
		if (strcmp(acc->name[i], name) == 0)
			return 0; /* the same user listed twice is fine */
	if (acc->n >= PIV_MAX_ACCOUNTS || (acc->name[acc->n] = strdup(name)) == NULL)
		return -1;
	acc->n++;
	return 0;
}

enum piv_status
piv_mapfile_lookup_text(const char *name, char *text, const struct piv_cert_facts *f,
                        struct piv_accounts *acc, char *why, size_t why_size)
{
	unsigned lineno = 0;
	char *next;

	for (char *line = text; line != NULL; line = next) {
		char *nl = strchr(line, '\n'), *account, *matcher, *end;
		const char *err = NULL;
		int m;

		next = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		if (strlen(line) > PIV_CONF_MAX_LINE) {
			piv_fmt(why, why_size, "%s:%u: line too long", name, lineno);
			return PIV_E_CONFIG;
		}
		for (char *p = line; *p; p++) {
			if ((unsigned char)*p < 0x20 && *p != '\t' && *p != '\r') {
				piv_fmt(why, why_size, "%s:%u: control character", name, lineno);
				return PIV_E_CONFIG;
			}
		}
		account = line + strspn(line, " \t");
		if (*account == '\0' || *account == '#' || *account == '\r')
			continue;
		matcher = account + strcspn(account, " \t");
		if (*matcher == '\0') {
			piv_fmt(why, why_size, "%s:%u: expected 'account matcher'", name, lineno);
			return PIV_E_CONFIG;
		}
		*matcher++ = '\0';
		matcher += strspn(matcher, " \t");
		end = matcher + strlen(matcher);
		while (end > matcher && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
			*--end = '\0';
		if (!piv_valid_account_name(account)) {
			piv_fmt(why, why_size, "%s:%u: not a valid account name", name, lineno);
			return PIV_E_CONFIG;
		}
		m = match_one(matcher, f, &err);
		if (m < 0) {
			piv_fmt(why, why_size, "%s:%u: %s", name, lineno, err);
			return PIV_E_CONFIG;
		}
		if (m > 0 && add_account(acc, account) != 0) {
			piv_fmt(why, why_size, "%s: too many accounts for one certificate", name);
			return PIV_E_CONFIG;
		}
	}
	return PIV_OK;
}

enum piv_status
piv_mapfile_lookup(const char *path, const struct piv_cert_facts *f, struct piv_accounts *acc,
                   char *why, size_t why_size)
{
	enum piv_status st;
	char *text;
	ssize_t n;
	size_t len = 0;
	int fd;

	if (piv_open_trusted_file(path, PIV_MAPFILE_MAX_SIZE, &fd, why, why_size) != 0)
		return PIV_E_CONFIG;
	text = malloc(PIV_MAPFILE_MAX_SIZE + 1);
	if (text == NULL) {
		close(fd);
		return PIV_E_INTERNAL;
	}
	while ((n = read(fd, text + len, PIV_MAPFILE_MAX_SIZE - len)) > 0 ||
	       (n < 0 && errno == EINTR))
		if (n > 0)
			len += (size_t)n;
	close(fd);
	if (n < 0 || memchr(text, '\0', len) != NULL) {
		piv_fmt(why, why_size, "%s: cannot read", path);
		free(text);
		return PIV_E_CONFIG;
	}
	text[len] = '\0';
	st = piv_mapfile_lookup_text(path, text, f, acc, why, why_size);
	free(text);
	return st;
}
