/* Shared by the PAM integration tests (tests/pam/test_*.c): the PAM
 * transaction under pam_wrapper, the conversation, writing configurations,
 * the test servers' logs, and the environment pam-tests.sh exports.
 * (Split from tests/test_pam.c, whose history is `git log -- tests/test_pam.c`.) */
#ifndef PIV_TESTS_PAM_LIB_H
#define PIV_TESTS_PAM_LIB_H

#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpamtest.h>
#include <security/pam_appl.h>

#define MAX_MSGS 16
#define PIN "123456"

/* What pam-tests.sh exports (piv_test_main reads it). */
extern const char *fx;           /* fixtures: pki/, tok/, passwd */
extern const char *work;         /* service files read current.conf from here */
extern const char *helper;       /* pam_piv_helper */
extern const char *crl_builder;  /* pam_piv_crlindex */
extern const char *shim;         /* tests/p11shim.c, the fault-injecting module */
extern const char *softhsm;
extern const char *www;          /* the test HTTP server's document root */
extern const char *http_port;    /* its port */
extern const char *check_tool;   /* pam-piv-check */
extern const char *keys_tool;    /* pam-piv-authorized-keys */
extern const char *refresh_tool; /* pam-piv-refresh */
/* the test slapd (mkldap.sh) */
extern const char *ldap_uri, *ldaps_uri, *ldapi_uri, *ldap_base, *ldap_suffix, *ldap_ca,
	*ldap_other_ca, *ldap_bind_dn, *ldap_pw, *ldap_pw_nl, *ldap_root_dn, *ldap_root_pw;

/* What the conversation saw. */
struct conv_log {
	const char *pin;          /* answer to an echo-off prompt; NULL cancels */
	int prompts;
	char info[MAX_MSGS][512];
	int n_info;
	char err[MAX_MSGS][512];
	int n_err;
	char last_prompt[256];
};
int conv_fn(int n, const struct pam_message **msgs, struct pam_response **resp, void *ud);
bool saw(char msgs[][512], int n, const char *needle);

/* ---- configuration ------------------------------------------------- */

struct setup {
	const char *scenario;       /* tok/SCENARIO */
	const char *extra;          /* more config lines */
	bool use_shim;
	const char *shim_env;       /* more helper_env lines, '\n'-separated */
	bool no_intermediates;
	bool default_revocation;    /* no "revocation" line: ocsp,crl */
};
void write_file(const char *path, const char *text, mode_t mode);
void configure(const struct setup *s);

/* ---- running a PAM transaction ------------------------------------ */

struct outcome {
	int rv;
	struct conv_log conv;
	char user_after[300];     /* PAM_USER after authentication */
	char token_env[256];      /* PKCS11_LOGIN_TOKEN_NAME */
	double seconds;
	char *log;                /* what pam_syslog said (pam_wrapper on stderr) */
	char *maps;               /* /proc/self/maps before pam_end (successes only) */
};
double now(void);
char *slurp(const char *path);
void run(const char *service, const char *user, const char *pin, int flags, struct outcome *out);
void outcome_free(struct outcome *out);
void dump(const struct outcome *o);

/* Run a shell command built from a format; the test fails if it does. */
void shell(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void serve(const char *name, const char *crl);
void server_mode(const char *mode);
int server_log_lines(const char *name);
int requests(void);
void must_log(struct outcome *o, const char *needle);
void expect(const struct setup *s, const char *user, const char *pin, int want_rv, bool want_prompt, const char *msg, struct outcome *out);

#define SETUP(...) ((struct setup){ __VA_ARGS__ })
int per_test_timeout(void **state);
void write_map(const char *lines);
void write_map_from_cert(const char *account, const char *kind, const char *command);
extern char cache_dir[4096];
int revocation_setup(void **state);
void expect_crl(const char *scenario, const char *more, const char *user, int want_rv, bool want_prompt, const char *msg, struct outcome *out);
int count_fds(void);
ssize_t read_proc(const char *pid, const char *name, char *buf, size_t size);
int count_helpers_now(void);
void check_helper_counter(void);
int count_helpers_settled(int expected);
int count_helpers(void);
void key_phases(const char *user, const char *info, int *acct_rv, int *session_rv, char **log);
char *auth_info_line(const char *cert, const char *more);
void check_must(const char *out, const char *needle);

/* Reads the environment pam-tests.sh exports and runs one group of tests
 * (PIV_TEST_FILTER=test_ocsp_* runs only the matching cases). */
int piv_test_main(const char *group, const struct CMUnitTest *tests, size_t n);
#define PIV_TEST_MAIN(group, tests) piv_test_main(group, tests, sizeof(tests) / sizeof((tests)[0]))

#endif
