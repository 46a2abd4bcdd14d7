/* Fuzz target: mapping files (mapfile.h). Input: the file's text, or
 * FACTS, a NUL byte, then the text, where FACTS are lines that replace the
 * certificate facts in the order sha256, subject, issuer, serial, ski,
 * fascn, uuid (so that matchers can match). Accounts found must be valid
 * account names, listed once, at most PIV_MAX_ACCOUNTS. */
#include "config.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz_util.h"
#include "accounts/mapfile.h"
#include "accounts/mapping.h"

static const struct piv_cert_facts fixed_facts = {
	.sha256 = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
	.subject = "CN=Alice Example,O=PIV Test,C=US",
	.issuer = "CN=Test CA,O=PIV Test,C=US",
	.serial = "0a0b0c",
	.ski = "5d3c1c6d2a0f4b7e8e1c9a3b2f6d7e8f9a0b1c2d",
	.fascn = "d4e739da739ced39ce739d836858210842108421c84210c3eb",
	.uuid = "4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f",
};

static void
set_fact(char *field, size_t field_size, const char *value)
{
	snprintf(field, field_size, "%s", value);
}

/* The facts part: one line per field, in struct order. */
static void
read_facts(char *lines, struct piv_cert_facts *f)
{
	char *fields[] = { f->sha256, f->subject, f->issuer, f->serial, f->ski, f->fascn, f->uuid };
	const size_t sizes[] = { sizeof(f->sha256), sizeof(f->subject), sizeof(f->issuer),
	                         sizeof(f->serial), sizeof(f->ski), sizeof(f->fascn),
	                         sizeof(f->uuid) };
	char *line = lines;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]) && line != NULL; i++) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		set_fact(fields[i], sizes[i], line);
		line = nl != NULL ? nl + 1 : NULL;
	}
}

/* Equal but for spaces, ignoring case: what two DNs that compare equal
 * after mapfile.c drops the spaces it may drop must be. */
static bool
same_without_spaces(const char *a, const char *b)
{
	for (;;) {
		while (*a == ' ')
			a++;
		while (*b == ' ')
			b++;
		if (*a == '\0' || *b == '\0')
			return *a == *b;
		if (tolower((unsigned char)*a) != tolower((unsigned char)*b))
			return false;
		a++;
		b++;
	}
}

/* A subject= or issuer+serial= line that maps must name the whole DN of
 * the certificate, not a longer one that merely begins with it. */
static void
check_dn_line(const char *line, const struct piv_cert_facts *facts)
{
	char *copy = strdup(line), *matcher, *end;
	struct piv_accounts acc;
	char why[300];
	const char *dn_fact = NULL;

	if (copy == NULL)
		return;
	matcher = copy + strspn(copy, " \t");
	matcher += strcspn(matcher, " \t");
	matcher += strspn(matcher, " \t");
	end = matcher + strlen(matcher);
	while (end > matcher && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r'))
		*--end = '\0';
	if (strncasecmp(matcher, "subject=", 8) == 0) {
		dn_fact = facts->subject;
		matcher += 8;
	} else if (strncasecmp(matcher, "issuer+serial=", 14) == 0 && strrchr(matcher, ';') != NULL) {
		dn_fact = facts->issuer;
		matcher += 14;
		*strrchr(matcher, ';') = '\0';
	}
	memset(&acc, 0, sizeof(acc));
	if (dn_fact != NULL &&
	    piv_mapfile_lookup_text("fuzz.map", (char *)line, facts, &acc, why, sizeof(why)) == PIV_OK &&
	    acc.n > 0)
		FUZZ_CHECK(same_without_spaces(matcher, dn_fact), "a DN matched a different DN");
	piv_accounts_free(&acc);
	free(copy);
}

static void
check_lines(const char *text, const struct piv_cert_facts *facts)
{
	char *copy = strdup(text), *line = copy;

	for (int n = 0; line != NULL && n < 64; n++) {
		char *nl = strchr(line, '\n');
		if (nl != NULL)
			*nl = '\0';
		check_dn_line(line, facts);
		line = nl != NULL ? nl + 1 : NULL;
	}
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	struct piv_cert_facts facts = fixed_facts;
	struct piv_accounts acc;
	char *facts_text = NULL, *text;
	char why[300];
	enum piv_status st;

	if (nul != NULL) {
		facts_text = fuzz_strndup(data, (size_t)(nul - data));
		read_facts(facts_text, &facts);
		text = fuzz_strndup(nul + 1, size - (size_t)(nul - data) - 1);
	} else {
		text = fuzz_strndup(data, size);
	}
	check_lines(text, &facts); /* before the lookup cuts text into lines */
	memset(&acc, 0, sizeof(acc));
	why[0] = '\0';
	st = piv_mapfile_lookup_text("fuzz.map", text, &facts, &acc, why, sizeof(why));
	FUZZ_CHECK(st == PIV_OK || st == PIV_E_CONFIG, "unexpected status");
	FUZZ_CHECK(acc.n <= PIV_MAX_ACCOUNTS, "too many accounts");
	if (st == PIV_OK) {
		for (size_t i = 0; i < acc.n; i++) {
			FUZZ_CHECK(piv_valid_account_name(acc.name[i]), "an invalid account name mapped");
			for (size_t j = 0; j < i; j++)
				FUZZ_CHECK(strcmp(acc.name[i], acc.name[j]) != 0, "an account listed twice");
		}
	} else {
		FUZZ_CHECK(why[0] != '\0' && strncmp(why, "fuzz.map", 8) == 0,
		           "a refused file without FILE: reason");
	}
	piv_accounts_free(&acc);
	free(text);
	free(facts_text);
	return 0;
}
