/* pam-piv-refresh: keeps the CRLs of pam_piv's configuration downloaded,
 * verified and indexed ahead of the logins (crlrefresh.h), run by a
 * systemd timer (pam-piv-refresh.timer), by the path unit when crl_dir
 * changes, or by hand after a new CRL was put in place. */
#include "config.h"

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "common/conf.h"
#include "pki/crlrefresh.h"
#include "common/util.h"
#include "pki/validate.h"

struct out {
	bool prefix; /* journald's "<N>" priority prefix (not a terminal) */
	bool quiet;
};

static void
print_line(void *ud, int prio, const char *line)
{
	const struct out *o = ud;
	char esc[2100];

	if (o->quiet && prio > LOG_WARNING)
		return;
	/* what comes from a CRL or a server is escaped like every log line */
	piv_escape_str(line, esc, sizeof(esc));
	if (o->prefix)
		printf("<%d>%s\n", prio, esc);
	else
		printf("%s\n", esc);
	fflush(stdout);
}

static void
usage(FILE *out)
{
	fprintf(out, "usage: pam-piv-refresh [--config PATH] [--force] [--verbose | --quiet]\n");
}

static void
help(void)
{
	usage(stdout);
	printf("\n"
	       "Keeps the CRLs pam_piv uses current and indexed, so that logins find\n"
	       "them ready: indexes the CRLs of crl_file and crl_dir, and downloads the\n"
	       "CRL of each distribution point (of the trusted CAs, crl_url, and those\n"
	       "logins met) when three quarters of the cached one's validity have\n"
	       "passed, at a time of this host's own within the next eighth, with a\n"
	       "conditional request. A distribution point that is down is tried again\n"
	       "after 5 minutes, doubling up to 4 hours; the cached CRL stays.\n"
	       "\n"
	       "  --config PATH   the configuration file (default %s)\n"
	       "  --force         ask every distribution point now, due or not\n"
	       "  --verbose       also say what is not due\n"
	       "  --quiet         only warnings and errors\n"
	       "  --version       print the version and exit\n"
	       "  --help          print this help and exit\n"
	       "\n"
	       "Exit status: 0 done; 1 a distribution point failed or a CRL expires\n"
	       "without a successor; 2 configuration error; 4 usage error.\n"
	       "See pam-piv-refresh(8).\n", PIV_CONF_PATH);
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "force", no_argument, NULL, 'f' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = PIV_CONF_PATH;
	char config_arg[4200], why[1200];
	const char *args[1];
	struct out out = { !isatty(STDOUT_FILENO), false };
	struct piv_refresh_opts ro = { false, false, print_line, &out };
	struct piv_refresh_counts counts;
	struct piv_conf conf;
	struct piv_conf_error err;
	struct piv_trust trust;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "c:fvqhV", opts, NULL)) != -1) {
		switch (opt) {
		case 'c': config = optarg; break;
		case 'f': ro.force = true; break;
		case 'v': ro.verbose = true; break;
		case 'q': out.quiet = true; break;
		case 'h': help(); return 0;
		case 'V': printf("pam-piv-refresh (pam_piv) %s\n", PACKAGE_VERSION); return 0;
		default: usage(stderr); return 4;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 4;
	}
	umask(077);
	snprintf(config_arg, sizeof(config_arg), "config=%s", config);
	args[0] = config_arg;
	if (piv_conf_load(&conf, PIV_CONF_PATH, 1, args, &err) != 0) {
		print_line(&out, LOG_ALERT, err.msg);
		return 2;
	}
	if (piv_trust_load(&conf, &trust, why, sizeof(why)) != PIV_OK) {
		print_line(&out, LOG_ALERT, why);
		piv_conf_free(&conf);
		return 2;
	}
	rc = 0;
	if (conf.n_revocation == 0) {
		print_line(&out, LOG_INFO, "revocation = none: no CRL to keep");
	} else if (piv_crl_refresh(&conf, &trust, &ro, &counts, why, sizeof(why)) != 0) {
		print_line(&out, LOG_ALERT, why);
		rc = 2;
	} else {
		char line[300];
		snprintf(line, sizeof(line), "%u downloaded, %u not modified, %u failed, %u not due, "
		         "%u local CRLs indexed%s", counts.downloaded, counts.not_modified, counts.failed,
		         counts.not_due, counts.indexed,
		         counts.expiring ? "; some CRLs expire without a successor" : "");
		print_line(&out, counts.failed || counts.expiring ? LOG_WARNING : LOG_INFO, line);
		rc = counts.failed || counts.expiring ? 1 : 0;
	}
	piv_trust_free(&trust);
	piv_conf_free(&conf);
	return rc;
}
