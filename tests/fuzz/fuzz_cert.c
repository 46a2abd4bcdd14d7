/* Fuzz target: what is read out of a certificate (DER input): the audit
 * identity (validate.h), the mapping facts (mapfile.h), the key kind and
 * SSH key (prove.h, sshkey.h), and the name: rules through
 * libsss_certmap (mapping.h). Log lines must stay log-safe, the SSH key
 * line must parse back to its blob, and only valid, existing account
 * names may come out of the mapping. */
#include "config.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "common/conf.h"
#include "fuzz_util.h"
#include "accounts/mapfile.h"
#include "accounts/mapping.h"
#include "pki/prove.h"
#include "ssh/sshkey.h"
#include "pki/validate.h"

static const char conf_text[] =
	"ca_file = /nonexistent/ca.pem\n"
	"match = <SAN:rfc822Name>.*@example\\.test\n"
	"map = name:{subject_rfc822_name.short_name}\n"
	"map = name:{subject_dn_component.uid}\n"
	"map = name:{subject_principal.short_name}\n"
	"map = name:{subject_rfc822_name.short_name}\n"
	"map = name:{subject_dn_component.cn}\n";

static struct piv_conf conf;

static const char *const existing[] = { "alice", "bob", "carol", "hostile" };

static bool
printable(const char *s, size_t size)
{
	size_t i;

	for (i = 0; i < size && s[i] != '\0'; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return i < size;
}

static bool
account_exists(void *ud, const char *name)
{
	(void)ud;
	FUZZ_CHECK(piv_valid_account_name(name), "NSS asked about an invalid account name");
	for (size_t i = 0; i < sizeof(existing) / sizeof(existing[0]); i++)
		if (strcmp(existing[i], name) == 0)
			return true;
	return false;
}

static void
trace(void *ud, const char *line)
{
	(void)ud;
	FUZZ_CHECK(printable(line, strlen(line) + 1), "a mapping trace line is not log-safe");
}

static bool
lower_hex(const char *s, size_t want_len)
{
	size_t n = strlen(s);

	if (want_len != 0 && n != want_len)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

static void
check_ssh_key(X509 *cert, const char *comment)
{
	EVP_PKEY *pkey = X509_get0_pubkey(cert);
	uint8_t *blob = NULL, *parsed = NULL;
	size_t blob_len = 0, parsed_len = 0;
	char *line = NULL;

	if (piv_ssh_pubkey_line(pkey, comment, &line) != 0) {
		FUZZ_CHECK(piv_ssh_pubkey_blob(pkey, &blob, &blob_len) != 0,
		           "a key with a blob but no authorized_keys line");
		ERR_clear_error();
		return;
	}
	FUZZ_CHECK(strchr(line, '\n') == NULL && strchr(line, '\r') == NULL,
	           "an authorized_keys line spans lines");
	FUZZ_CHECK(piv_ssh_pubkey_blob(pkey, &blob, &blob_len) == 0, "a line but no blob");
	/* "TYPE BASE64 COMMENT": the first two fields must parse back. */
	char *second_space = strchr(line, ' ');
	FUZZ_CHECK(second_space != NULL, "an authorized_keys line without a key");
	second_space = strchr(second_space + 1, ' ');
	if (second_space != NULL)
		*second_space = '\0';
	FUZZ_CHECK(piv_ssh_parse_pubkey(line, &parsed, &parsed_len) == 0,
	           "our own authorized_keys line does not parse");
	FUZZ_CHECK(parsed_len == blob_len && memcmp(parsed, blob, blob_len) == 0,
	           "our own authorized_keys line parses to another key");
	free(parsed);
	free(blob);
	free(line);
	ERR_clear_error();
}

/* The whole of an ASN.1 string as lowercase hex, leading zero bytes
 * dropped (but one kept), as mapfile.h promises for facts; "" when it
 * would not fit in out_size. */
static void
full_hex(const ASN1_STRING *str, bool drop_zeros, char *out, size_t out_size)
{
	static const char digits[] = "0123456789abcdef";
	const unsigned char *p = ASN1_STRING_get0_data(str);
	int len = ASN1_STRING_length(str);

	out[0] = '\0';
	while (drop_zeros && len > 1 && p[0] == 0) {
		p++;
		len--;
	}
	if (len < 0 || 2 * (size_t)len >= out_size)
		return;
	for (int i = 0; i < len; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * len] = '\0';
}

static void
check_cert(X509 *cert)
{
	struct piv_cert_id id;
	struct piv_cert_facts facts;
	int is_ec = 0, bits = 0;
	enum piv_hash hash;
	size_t field_len = 0;

	piv_cert_identify(cert, &id);
	FUZZ_CHECK(printable(id.sha256, sizeof(id.sha256)) && printable(id.subject, sizeof(id.subject)) &&
	           printable(id.issuer, sizeof(id.issuer)) && printable(id.serial, sizeof(id.serial)),
	           "a certificate identity is not log-safe");
	if (piv_cert_facts(cert, &facts) == 0) {
		FUZZ_CHECK(lower_hex(facts.sha256, 64), "sha256 fact is not 64 hex digits");
		const ASN1_OCTET_STRING *ski = X509_get0_subject_key_id(cert);
		char want[sizeof(facts.ski)];
		FUZZ_CHECK(lower_hex(facts.serial, 0) && lower_hex(facts.ski, 0),
		           "serial or ski fact is not lowercase hex");
		/* A fact is the whole value or nothing: a cut one would match
		 * every certificate that shares its beginning. A negative serial
		 * (RFC 5280 forbids it) is no fact: its magnitude is another's. */
		if (ASN1_STRING_type(X509_get0_serialNumber(cert)) == V_ASN1_NEG_INTEGER)
			want[0] = '\0';
		else
			full_hex(X509_get0_serialNumber(cert), true, want, sizeof(facts.serial));
		FUZZ_CHECK(strcmp(facts.serial, want) == 0, "serial fact is not the whole serial");
		if (ski != NULL)
			full_hex(ski, false, want, sizeof(facts.ski));
		else
			want[0] = '\0';
		FUZZ_CHECK(strcmp(facts.ski, want) == 0, "ski fact is not the whole key identifier");
		FUZZ_CHECK(facts.fascn[0] == '\0' || lower_hex(facts.fascn, 50),
		           "FASC-N fact is not 50 hex digits");
		FUZZ_CHECK(facts.uuid[0] == '\0' || (strlen(facts.uuid) == 36 && facts.uuid[8] == '-' &&
		                                     strspn(facts.uuid, "0123456789abcdef-") == 36),
		           "UUID fact is not a UUID");
		FUZZ_CHECK(memchr(facts.subject, '\0', sizeof(facts.subject)) != NULL &&
		           memchr(facts.issuer, '\0', sizeof(facts.issuer)) != NULL,
		           "a DN fact is not terminated");
	}
	if (piv_cert_key_kind(cert, &is_ec, &hash, &field_len, &bits) == 0)
		FUZZ_CHECK(is_ec ? (field_len == 32 || field_len == 48) : (bits >= 2048 && bits <= 4096),
		           "an unsupported key passed piv_cert_key_kind");
	check_ssh_key(cert, id.subject);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct piv_conf_error err;

	(void)argc;
	(void)argv;
	if (piv_conf_load_string(&conf, "fuzz.conf", conf_text, 0, NULL, &err) != 0) {
		fprintf(stderr, "fuzz_cert: %s\n", err.msg);
		exit(2);
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct piv_accounts acc;
	enum piv_status st;
	char why[300];
	X509 *cert = piv_cert_from_der(data, size);
	bool parsed = cert != NULL;

	if (cert != NULL) {
		check_cert(cert);
		X509_free(cert);
	}
	why[0] = '\0';
	st = piv_map_cert(&conf, data, size, account_exists, trace, NULL, &acc, why, sizeof(why));
	FUZZ_CHECK(st == PIV_OK || st == PIV_E_NOT_MAPPED, "mapping failed with name: rules only");
	if (st == PIV_OK) {
		FUZZ_CHECK(parsed, "a certificate that does not parse was mapped");
		FUZZ_CHECK(acc.n >= 1 && acc.n <= PIV_MAX_ACCOUNTS && acc.rule < conf.n_rules,
		           "mapped without accounts");
		for (size_t i = 0; i < acc.n; i++)
			FUZZ_CHECK(piv_valid_account_name(acc.name[i]) && account_exists(NULL, acc.name[i]),
			           "mapped to an invalid or missing account");
	} else {
		FUZZ_CHECK(acc.n == 0, "not mapped, yet accounts");
	}
	piv_accounts_free(&acc);
	ERR_clear_error();
	return 0;
}
