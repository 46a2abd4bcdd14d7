/* pam-piv-authorized-keys USER: an sshd AuthorizedKeysCommand that prints
 * the OpenSSH public keys of USER's certificates (from cert_source) that
 * validate exactly as a card login would, and nothing for the rest.
 * Made to run as an unprivileged AuthorizedKeysCommandUser: it needs to
 * read the configuration and the trust material, nothing else, and keeps
 * its revocation cache in a private directory unless told otherwise. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include <openssl/x509.h>

#include "pam/assess.h"
#include "common/conf.h"
#include "ssh/sshkey.h"
#include "pam/userkeys.h"
#include "common/util.h"

struct run {
	bool debug;
	int printed;
};

static void
log_line(void *ud, int prio, const char *text)
{
	struct run *run = ud;

	if (prio == LOG_DEBUG && !run->debug)
		return;
	/* sshd logs what the command writes to stderr */
	fprintf(stderr, "pam-piv-authorized-keys: %s\n", text);
}

static void
trace_line(void *ud, const char *text)
{
	log_line(ud, LOG_DEBUG, text);
}

static bool
account_exists(void *ud, const char *name)
{
	(void)ud;
	return getpwnam(name) != NULL;
}

static void
print_key(void *ud, X509 *leaf, const uint8_t *blob, size_t blob_len)
{
	struct run *run = ud;
	struct piv_cert_id id;
	char comment[160], *line = NULL;

	(void)blob;
	(void)blob_len;
	piv_cert_identify(leaf, &id);
	/* the fingerprint without colons: what ties the key to its certificate */
	{
		size_t n = (size_t)snprintf(comment, sizeof(comment), "pam_piv-sha256:");
		for (const char *p = id.sha256; *p && n + 1 < sizeof(comment); p++)
			if (*p != ':')
				comment[n++] = *p;
		comment[n] = '\0';
	}
	if (piv_ssh_pubkey_line(X509_get0_pubkey(leaf), comment, &line) == 0) {
		printf("%s\n", line);
		run->printed++;
	}
	free(line);
}

static void
remove_scratch(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	char path[4200];

	while (d != NULL && (de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		unlink(path);
	}
	if (d != NULL)
		closedir(d);
	rmdir(dir);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: pam-piv-authorized-keys [--config PATH] [--cache-dir DIR] [--debug] USER\n");
}

static void
help(void)
{
	usage(stdout);
	printf("\n"
	       "sshd's AuthorizedKeysCommand: prints the SSH public keys of USER's\n"
	       "certificates from cert_source that are valid now (chain, dates, usage,\n"
	       "policies, revocation, and mapped back to USER), one authorized_keys line\n"
	       "each; why the others are left out goes to standard error.\n"
	       "\n"
	       "  --config PATH     the configuration file (default %s)\n"
	       "  --cache-dir DIR   where to keep revocation answers (default: the\n"
	       "                    module's cache_dir as root, else a private temporary\n"
	       "                    directory for this run)\n"
	       "  --debug           every step on standard error\n"
	       "  --version         print the version and exit\n"
	       "  --help            print this help and exit\n"
	       "\n"
	       "Exit status: 0 (keys printed or none), 1 error (configuration, directory),\n"
	       "2 usage error. See pam-piv-authorized-keys(8).\n", PIV_CONF_PATH);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "cache-dir", required_argument, NULL, 'C' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = PIV_CONF_PATH, *cache_dir = NULL;
	char config_arg[4200], scratch[] = "/tmp/pam-piv-keys.XXXXXX", why[400];
	const char *args[1];
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_trust trust;
	struct run run = { false, 0 };
	struct piv_assess_hooks hooks = { &run, log_line, trace_line, account_exists };
	bool made_scratch = false;
	enum piv_status st;
	size_t n_valid = 0;
	int c, rc = 1;

	while ((c = getopt_long(argc, argv, "c:C:dhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c': config = optarg; break;
		case 'C': cache_dir = optarg; break;
		case 'd': run.debug = true; break;
		case 'h': help(); return 0;
		case 'V': printf("pam-piv-authorized-keys (pam_piv) %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 != argc) {
		usage(stderr);
		return 2;
	}
	snprintf(config_arg, sizeof(config_arg), "config=%s", config);
	args[0] = config_arg;
	if (piv_conf_load(&conf, PIV_CONF_PATH, 1, args, &err) != 0) {
		fprintf(stderr, "pam-piv-authorized-keys: configuration error: %s\n", err.msg);
		return 1;
	}
	run.debug = run.debug || conf.debug;
	/* A backstop over the per-request bounds: sshd waits for us. */
	alarm(4 * conf.net_timeout + 10);
	if (cache_dir != NULL) {
		free(conf.cache_dir);
		conf.cache_dir = strdup(cache_dir);
	} else if (geteuid() != 0 && conf.n_revocation > 0) {
		/* cache_dir is root's; unprivileged we keep a private one for this run */
		if (mkdtemp(scratch) == NULL) {
			fprintf(stderr, "pam-piv-authorized-keys: cannot create a cache directory: %s\n",
			        strerror(errno));
			goto out;
		}
		made_scratch = true;
		free(conf.cache_dir);
		conf.cache_dir = strdup(scratch);
	}
	if (conf.cache_dir == NULL)
		goto out;
	if (piv_trust_load(&conf, &trust, why, sizeof(why)) != PIV_OK) {
		fprintf(stderr, "pam-piv-authorized-keys: configuration error: %s\n", why);
		goto out;
	}
	st = piv_user_keys(&conf, &trust, argv[optind], &hooks, print_key, &run, &n_valid, why,
	                   sizeof(why));
	piv_trust_free(&trust);
	if (st != PIV_OK) {
		fprintf(stderr, "pam-piv-authorized-keys: %s: %s\n", piv_status_name(st), why);
		goto out;
	}
	if (fflush(stdout) != 0)
		goto out;
	rc = 0;
out:
	if (made_scratch)
		remove_scratch(scratch);
	piv_conf_free(&conf);
	return rc;
}
