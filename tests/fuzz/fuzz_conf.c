/* Fuzz target: the configuration parser (conf.h), file text and module
 * arguments together. Input: the file's text, a NUL byte, then the module
 * arguments one per line; without a NUL the whole input is the file. A
 * configuration that loads must keep every promise conf.h makes to the
 * later stages. */
#include "config.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/conf.h"
#include "fuzz_util.h"

#define MAX_ARGS 32

static bool
absolute_or_null(const char *path)
{
	return path == NULL || path[0] == '/';
}

static bool
starts_with(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

static void
check_loaded(const struct piv_conf *conf)
{
	FUZZ_CHECK(conf->ca_file != NULL || conf->ca_dir != NULL, "loaded without trust anchors");
	FUZZ_CHECK(conf->pkcs11_module != NULL && conf->pkcs11_module[0] != '\0' &&
	           conf->cert_uri != NULL && conf->helper != NULL && conf->cache_dir != NULL &&
	           conf->ldap_user_attr != NULL, "a key with a default is unset");
	FUZZ_CHECK(absolute_or_null(conf->ca_file) && absolute_or_null(conf->ca_dir) &&
	           absolute_or_null(conf->intermediates) && absolute_or_null(conf->crl_file) &&
	           absolute_or_null(conf->crl_dir) && absolute_or_null(conf->cache_dir) &&
	           absolute_or_null(conf->ldap_bind_pw_file) &&
	           absolute_or_null(conf->ldap_ca_file) && absolute_or_null(conf->helper),
	           "a path is not absolute");
	FUZZ_CHECK(conf->ocsp_url == NULL || (starts_with(conf->ocsp_url, "http://") &&
	                                      strlen(conf->ocsp_url) > 7),
	           "ocsp_url is not an http:// URL");
	FUZZ_CHECK(conf->card_timeout >= 1 && conf->card_timeout <= 3600 &&
	           conf->card_wait <= 3600 && conf->net_timeout >= 1 && conf->net_timeout <= 300 &&
	           conf->fail_delay <= 60000, "a number out of its range");
	FUZZ_CHECK(conf->n_revocation <= 2, "more than two revocation methods");
	FUZZ_CHECK(conf->n_revocation < 2 || conf->revocation[0] != conf->revocation[1],
	           "a revocation method twice");
	FUZZ_CHECK(conf->n_rules >= 1 && conf->rules != NULL, "no mapping rule");
	for (size_t i = 0; i < conf->n_rules; i++) {
		const struct piv_rule *rule = &conf->rules[i];
		FUZZ_CHECK(rule->map != NULL, "rule without map");
		FUZZ_CHECK(rule->match == NULL || rule->match[0] != '\0', "empty match");
		if (starts_with(rule->map, "name:")) {
			FUZZ_CHECK(rule->map[5] != '\0', "name: without a template");
		} else if (starts_with(rule->map, "file:")) {
			FUZZ_CHECK(rule->map[5] == '/', "file: with a relative path");
		} else if (starts_with(rule->map, "ldap:")) {
			size_t len = strlen(rule->map);
			FUZZ_CHECK(starts_with(rule->map, "ldap:LDAPU1:(") ||
			           starts_with(rule->map, "ldap:LDAP:("), "ldap: rule without a filter");
			FUZZ_CHECK(rule->map[len - 1] == ')', "ldap: filter not closed");
			FUZZ_CHECK(conf->ldap_uri != NULL && conf->ldap_base != NULL,
			           "ldap: rule without a directory");
		} else {
			FUZZ_CHECK(0, "unknown rule kind");
		}
	}
	for (size_t i = 0; i < conf->helper_env.n; i++)
		FUZZ_CHECK(strchr(conf->helper_env.v[i], '=') != NULL &&
		           conf->helper_env.v[i][0] != '=', "helper_env without NAME=");
	FUZZ_CHECK(conf->cert_source == NULL || strcmp(conf->cert_source, "ldap") == 0 ||
	           starts_with(conf->cert_source, "dir:/"), "cert_source of an unknown kind");
	FUZZ_CHECK(!(conf->sshd_key_check || conf->agent) || conf->cert_source != NULL,
	           "sshd_key_check or agent without cert_source");
	if (conf->ldap_uri != NULL) {
		FUZZ_CHECK(starts_with(conf->ldap_uri, "ldap://") ||
		           starts_with(conf->ldap_uri, "ldaps://") ||
		           starts_with(conf->ldap_uri, "ldapi://"), "ldap_uri of an unknown scheme");
		FUZZ_CHECK(!starts_with(conf->ldap_uri, "ldaps://") || conf->ldap_ca_file != NULL,
		           "ldaps:// without ldap_ca_file");
		FUZZ_CHECK(!conf->ldap_starttls || conf->ldap_ca_file != NULL,
		           "ldap_starttls without ldap_ca_file");
		FUZZ_CHECK((conf->ldap_bind_dn == NULL) == (conf->ldap_bind_pw_file == NULL),
		           "ldap_bind_dn without ldap_bind_pw_file or the other way round");
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t text_len = nul != NULL ? (size_t)(nul - data) : size;
	char *text = fuzz_strndup(data, text_len);
	char *args = nul != NULL ? fuzz_strndup(nul + 1, size - text_len - 1) : NULL;
	const char *argv[MAX_ARGS];
	struct piv_conf_error err;
	struct piv_conf conf;
	int argc = 0;

	for (char *a = args; a != NULL && argc < MAX_ARGS;) {
		char *nl = strchr(a, '\n');
		if (nl != NULL)
			*nl = '\0';
		argv[argc++] = a;
		a = nl != NULL ? nl + 1 : NULL;
	}
	memset(&err, 'x', sizeof(err));
	if (piv_conf_load_string(&conf, "fuzz.conf", text, argc, argv, &err) == 0) {
		check_loaded(&conf);
		piv_conf_free(&conf);
	} else {
		FUZZ_CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0',
		           "failed without a reason");
		/* the message goes to syslog: nothing from the input may forge a line
		 * or drive a terminal */
		for (const char *m = err.msg; *m != '\0'; m++)
			FUZZ_CHECK(((unsigned char)*m >= 0x20 && *m != 0x7f) || *m == '\t',
			           "a control character in the error message");
		FUZZ_CHECK(conf.rules == NULL && conf.n_rules == 0 && conf.ca_file == NULL,
		           "a failed load left memory behind");
	}
	free(args);
	free(text);
	return 0;
}
