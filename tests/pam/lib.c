/* Shared by the PAM integration tests: see lib.h. */
#include "lib.h"

const char *fx;        /* fixtures: pki/, tok/, passwd */
const char *work;      /* service files read current.conf from here */
const char *helper;
const char *crl_builder; /* pam_piv_crlindex */
const char *shim;
const char *softhsm;
const char *www;       /* the test HTTP server's document root */
const char *http_port; /* its port */
const char *check_tool; /* pam-piv-check */
const char *keys_tool;  /* pam-piv-authorized-keys */
const char *refresh_tool; /* pam-piv-refresh */
const char *ldap_uri, *ldaps_uri, *ldapi_uri, *ldap_base, *ldap_suffix, *ldap_ca,
	*ldap_other_ca, *ldap_bind_dn, *ldap_pw, *ldap_pw_nl, *ldap_root_dn, *ldap_root_pw;

int
conv_fn(int n, const struct pam_message **msgs, struct pam_response **resp, void *ud)
{
	struct conv_log *log = ud;
	struct pam_response *r = calloc((size_t)n, sizeof(*r));

	if (r == NULL)
		return PAM_BUF_ERR;
	for (int i = 0; i < n; i++) {
		const struct pam_message *m = msgs[i];
		switch (m->msg_style) {
		case PAM_PROMPT_ECHO_OFF:
			log->prompts++;
			snprintf(log->last_prompt, sizeof(log->last_prompt), "%s", m->msg);
			if (log->pin == NULL) {
				free(r);
				return PAM_CONV_ERR;
			}
			r[i].resp = strdup(log->pin);
			break;
		case PAM_PROMPT_ECHO_ON:
			free(r);
			return PAM_CONV_ERR; /* the module never asks for echoed input */
		case PAM_TEXT_INFO:
			if (log->n_info < MAX_MSGS)
				snprintf(log->info[log->n_info++], 512, "%s", m->msg);
			break;
		case PAM_ERROR_MSG:
			if (log->n_err < MAX_MSGS)
				snprintf(log->err[log->n_err++], 512, "%s", m->msg);
			break;
		default:
			break;
		}
	}
	*resp = r;
	return PAM_SUCCESS;
}

bool
saw(char msgs[][512], int n, const char *needle)
{
	for (int i = 0; i < n; i++)
		if (strstr(msgs[i], needle) != NULL)
			return true;
	return false;
}

void
write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "w");
	assert_non_null(f);
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(tmp, mode), 0);
	assert_int_equal(rename(tmp, path), 0);
}

void
configure(const struct setup *s)
{
	char path[4096], text[16384], intermediates[4200] = "";
	int n;

	if (!s->no_intermediates)
		snprintf(intermediates, sizeof(intermediates),
		         "intermediates = %s/pki/intermediates.pem\n", fx);
	n = snprintf(text, sizeof(text),
	             "# written by tests/pam\n"
	             "pkcs11_module = %s\n"
	             "ca_file = %s/pki/ca/root.pem\n"
	             "%s"
	             "%s"
	             "helper = %s\n"
	             "crl_builder = %s\n"
	             "helper_env = SOFTHSM2_CONF=%s/tok/%s/softhsm2.conf\n"
	             "fail_delay = 0\n"
	             "card_timeout = 10\n"
	             "debug = yes\n",
	             s->use_shim ? shim : softhsm, fx, intermediates,
	             s->default_revocation ? "" : "revocation = none\n", helper, crl_builder, fx,
	             s->scenario);
	if (s->use_shim)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "helper_env = P11SHIM_TARGET=%s\n", softhsm);
	/* In sanitizer builds the helper's reports land where pam-tests.sh
	 * looks for them (its stderr is /dev/null); harmless otherwise. */
	if (s->shim_env == NULL || strstr(s->shim_env, "ASAN_OPTIONS") == NULL)
		n += snprintf(text + n, sizeof(text) - (size_t)n,
		              "helper_env = ASAN_OPTIONS=log_path=%s/asan.helper:detect_leaks=1\n"
		              "helper_env = UBSAN_OPTIONS=log_path=%s/ubsan.helper:print_stacktrace=1\n",
		              work, work);
	if (s->shim_env != NULL) {
		const char *p = s->shim_env;
		while (*p) {
			size_t len = strcspn(p, "\n");
			n += snprintf(text + n, sizeof(text) - (size_t)n, "helper_env = %.*s\n",
			              (int)len, p);
			p += len;
			if (*p == '\n')
				p++;
		}
	}
	if (s->extra != NULL)
		n += snprintf(text + n, sizeof(text) - (size_t)n, "%s\n", s->extra);
	assert_true(n > 0 && (size_t)n < sizeof(text));
	snprintf(path, sizeof(path), "%s/current.conf", work);
	write_file(path, text, 0600);
}

double
now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

char *
slurp(const char *path)
{
	FILE *f = fopen(path, "r");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (f == NULL)
		return strdup("");
	/* read to the end: /proc files have no size */
	do {
		if (cap - len < 4096) {
			char *grown = realloc(buf, cap + 65536);
			assert_non_null(grown);
			buf = grown;
			cap += 65536;
		}
		n = fread(buf + len, 1, cap - len - 1, f);
		len += n;
	} while (n > 0);
	fclose(f);
	buf[len] = '\0';
	return buf;
}

void
run(const char *service, const char *user, const char *pin, int flags, struct outcome *out)
{
	struct pam_testcase tests[] = {
		pam_test_flags(PAMTEST_AUTHENTICATE, PAM_SUCCESS, flags),
		pam_test(PAMTEST_KEEPHANDLE, PAM_SUCCESS),
	};
	char log_path[4096];
	int saved_stderr, log_fd;
	pam_handle_t *ph;
	const void *item = NULL;
	const char *env;
	double t0;

	memset(out, 0, sizeof(*out));
	out->conv.pin = pin;
	/* pam_wrapper writes pam_syslog lines to stderr: capture them. */
	snprintf(log_path, sizeof(log_path), "%s/pam-%d.log", work, (int)getpid());
	fflush(stderr);
	saved_stderr = dup(2);
	log_fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved_stderr >= 0 && log_fd >= 0);
	dup2(log_fd, 2);
	close(log_fd);
	t0 = now();
	/* libpamtest's run_pamtest_conv macro is misparenthesised; call the
	 * function it stands for. */
	(void)_pamtest_conv(service, user, conv_fn, &out->conv, tests,
	                    sizeof(tests) / sizeof(tests[0]), NULL);
	out->seconds = now() - t0;
	fflush(stderr);
	dup2(saved_stderr, 2);
	close(saved_stderr);
	out->log = slurp(log_path);

	out->rv = tests[0].op_rv;
	/* libpamtest stops at the first case whose result differs from the
	 * expected one, so the handle is kept only after a success. */
	ph = tests[1].case_out.ph;
	if (out->rv != PAM_SUCCESS || ph == NULL)
		return;
	if (pam_get_item(ph, PAM_USER, &item) == PAM_SUCCESS && item != NULL)
		snprintf(out->user_after, sizeof(out->user_after), "%s", (const char *)item);
	env = pam_getenv(ph, "PKCS11_LOGIN_TOKEN_NAME");
	if (env != NULL)
		snprintf(out->token_env, sizeof(out->token_env), "%s", env);
	/* what the process has mapped while the module is still loaded */
	out->maps = slurp("/proc/self/maps");
	pam_end(ph, out->rv);
}

void
outcome_free(struct outcome *out)
{
	free(out->log);
	out->log = NULL;
	free(out->maps);
	out->maps = NULL;
}

void
dump(const struct outcome *o)
{
	fprintf(stderr, "rv=%d (%s) prompts=%d %.2fs\n", o->rv, pam_strerror(NULL, o->rv),
	        o->conv.prompts, o->seconds);
	for (int i = 0; i < o->conv.n_info; i++)
		fprintf(stderr, "  info: %s\n", o->conv.info[i]);
	for (int i = 0; i < o->conv.n_err; i++)
		fprintf(stderr, "  error: %s\n", o->conv.err[i]);
	fprintf(stderr, "%s", o->log ? o->log : "");
}

void
shell(const char *fmt, ...)
{
	char *cmd = NULL;
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = vasprintf(&cmd, fmt, ap);
	va_end(ap);
	assert_true(rc > 0);
	rc = system(cmd);
	if (rc != 0)
		fail_msg("'%s' failed (%d)", cmd, rc);
	free(cmd);
}

void
serve(const char *name, const char *crl)
{
	shell("cp '%s/pki/crl/%s' '%s/%s.tmp' && mv '%s/%s.tmp' '%s/%s'", fx, crl, www, name, www,
	      name, www, name);
}

void
server_mode(const char *mode)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/.mode", www);
	write_file(path, mode, 0644);
}

/* Lines in one of the test server's logs (.requests, .statuses). */
int
server_log_lines(const char *name)
{
	char path[4096];
	char *text;
	int n = 0;

	snprintf(path, sizeof(path), "%s/%s", www, name);
	text = slurp(path);
	for (char *p = text; *p; p++)
		n += *p == '\n';
	free(text);
	return n;
}

int
requests(void)
{
	return server_log_lines(".requests");
}

void
must_log(struct outcome *o, const char *needle)
{
	if (strstr(o->log, needle) == NULL) {
		dump(o);
		fail_msg("missing '%s' in the log", needle);
	}
}

/* One authentication with expectations. msg: a substring of an error
 * message the user must see (NULL: none required). */
void
expect(const struct setup *s, const char *user, const char *pin, int want_rv,
       bool want_prompt, const char *msg, struct outcome *out)
{
	configure(s);
	run("piv", user, pin, 0, out);
	if (out->rv != want_rv || (out->conv.prompts > 0) != want_prompt ||
	    (msg != NULL && !saw(out->conv.err, out->conv.n_err, msg))) {
		dump(out);
		fail_msg("%s: want rv=%d prompt=%d msg='%s'", s->scenario, want_rv, want_prompt,
		         msg ? msg : "");
	}
}

int
per_test_timeout(void **state)
{
	(void)state;
	alarm(120); /* a hang fails this test run instead of stalling CI */
	return 0;
}

/* ---- mapping files ------------------------------------------------- */

void
write_map(const char *lines)
{
	char path[4200];

	snprintf(path, sizeof(path), "%s/map.txt", work);
	write_file(path, lines, 0600);
}

/* A mapping file with one line made from the card's certificate by the
 * openssl CLI (not by our code): ACCOUNT KIND=$(COMMAND). */
void
write_map_from_cert(const char *account, const char *kind, const char *command)
{
	shell("c='%s/pki/alice-fascn.crt'; printf '# generated\n%s %s=%%s\n' \"$(%s)\" > '%s/map.txt' "
	      "&& chmod 600 '%s/map.txt'", fx, account, kind, command, work, work);
}

/* ---- revocation with CRLs served by tests/httpd on 127.0.0.1 ------- */

/* Each test starts with the good CRLs served, a working server and an
 * empty cache of its own. */
char cache_dir[4096];

int
revocation_setup(void **state)
{
	static int n;

	per_test_timeout(state);
	serve("inter.crl", "inter.crl");
	serve("root.crl", "root.crl");
	serve("inter2.crl", "inter2.crl");
	server_mode("normal");
	snprintf(cache_dir, sizeof(cache_dir), "%s/cache-%d", work, ++n);
	shell("rm -rf '%s'", cache_dir);
	return 0;
}

void
expect_crl(const char *scenario, const char *more, const char *user, int want_rv,
           bool want_prompt, const char *msg, struct outcome *out)
{
	char *extra = NULL;

	assert_true(asprintf(&extra, "revocation = crl\ncache_dir = %s\n%s", cache_dir,
	                     more ? more : "") > 0);
	expect(&SETUP(.scenario = scenario, .extra = extra), user, PIN, want_rv, want_prompt, msg,
	       out);
	free(extra);
}

/* Open file descriptors of this process (the directory's own included,
 * the same every time). */
int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	return n;
}

/* The whole of a /proc file (NUL bytes kept) in buf; its length, or -1. */
ssize_t
read_proc(const char *pid, const char *name, char *buf, size_t size)
{
	char path[300];
	ssize_t n, len = 0;
	int fd;

	snprintf(path, sizeof(path), "/proc/%s/%s", pid, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	while (len < (ssize_t)size && (n = read(fd, buf + len, size - (size_t)len)) > 0)
		len += n;
	close(fd);
	return len;
}

/* Helpers of this run: processes started as pam_piv_helper whose
 * SOFTHSM2_CONF (every test configuration sets it) points into this run's
 * fixtures. Helpers of another run on the machine do not count. */
int
count_helpers_now(void)
{
	char want[4300], buf[65536];
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	assert_non_null(d);
	snprintf(want, sizeof(want), "SOFTHSM2_CONF=%s/", fx);
	while ((de = readdir(d)) != NULL) {
		ssize_t len;
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		len = read_proc(de->d_name, "cmdline", buf, sizeof(buf) - 1);
		if (len <= 0 || strcmp(buf, "pam_piv_helper") != 0)
			continue;
		len = read_proc(de->d_name, "environ", buf, sizeof(buf) - 1);
		for (ssize_t i = 0; i < len; i += (ssize_t)strlen(buf + i) + 1) {
			buf[len] = '\0';
			if (strncmp(buf + i, want, strlen(want)) == 0) {
				n++;
				break;
			}
		}
	}
	closedir(d);
	return n;
}

/* The counter sees a helper of this run, and only while it lives: a
 * counter that always said 0 would make every "no helper left" vacuous. */
void
check_helper_counter(void)
{
	char env[4400];
	char *const envp[] = { env, NULL };
	int before = count_helpers_now(), status;
	pid_t pid;

	snprintf(env, sizeof(env), "SOFTHSM2_CONF=%s/tok/none/softhsm2.conf", fx);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execle("/bin/sleep", "pam_piv_helper", "30", (char *)NULL, envp);
		_exit(127);
	}
	for (int i = 0; i < 50 && count_helpers_now() == before; i++) {
		struct timespec ts = { 0, 20 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	assert_int_equal(count_helpers_now(), before + 1);
	kill(pid, SIGKILL);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(count_helpers_now(), before);
}

/* The helpers alive; a helper that was just killed and reaped may still be
 * tearing down (seconds, with ASan's shadow memory), so a count above the
 * expected one is looked at again for up to 3 s before it counts. */
int
count_helpers_settled(int expected)
{
	int n = count_helpers_now();

	for (int i = 0; i < 30 && n > expected; i++) {
		struct timespec ts = { 0, 100 * 1000 * 1000 };
		nanosleep(&ts, NULL);
		n = count_helpers_now();
	}
	return n;
}

int
count_helpers(void)
{
	return count_helpers_now();
}

/* ---- sshd_key_check: the account and session phases ------------------ */

/* pam_acct_mgmt and pam_open_session of the piv_keys stack (pam_permit,
 * then pam_piv sshd_key_check) for user, with SSH_AUTH_INFO_0 = info
 * (NULL: unset) in the PAM environment, as sshd sets it. */
void
key_phases(const char *user, const char *info, int *acct_rv, int *session_rv, char **log)
{
	struct conv_log cl = { 0 };
	struct pam_conv conv = { conv_fn, &cl };
	pam_handle_t *ph = NULL;
	char log_path[4200], env[8192];
	int saved, fd;

	snprintf(log_path, sizeof(log_path), "%s/keys-%d.log", work, (int)getpid());
	fflush(stderr);
	saved = dup(2);
	fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	assert_true(saved >= 0 && fd >= 0);
	dup2(fd, 2);
	close(fd);
	assert_int_equal(pam_start("piv_keys", user, &conv, &ph), PAM_SUCCESS);
	if (info != NULL) {
		snprintf(env, sizeof(env), "SSH_AUTH_INFO_0=%s", info);
		assert_int_equal(pam_putenv(ph, env), PAM_SUCCESS);
	}
	*acct_rv = pam_acct_mgmt(ph, 0);
	*session_rv = pam_open_session(ph, 0);
	pam_end(ph, *session_rv);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	*log = slurp(log_path);
}

/* "publickey TYPE BASE64" of a certificate's key, as sshd writes it. */
char *
auth_info_line(const char *cert, const char *more)
{
	char cmd[4400], *out, *line = NULL;
	FILE *p;
	char buf[4096] = "";

	snprintf(cmd, sizeof(cmd), "openssl x509 -in '%s/pki/%s.crt' -pubkey -noout | "
	         "ssh-keygen -i -m PKCS8 -f /dev/stdin", fx, cert);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(buf, sizeof(buf), p));
	assert_int_equal(pclose(p), 0);
	buf[strcspn(buf, "\n")] = '\0';
	assert_true(asprintf(&line, "publickey %s\n%s", buf, more ? more : "") > 0);
	out = line;
	return out;
}

void
check_must(const char *out, const char *needle)
{
	if (strstr(out, needle) == NULL)
		fail_msg("pam-piv-check output lacks '%s':\n%s", needle, out);
}

int
piv_test_main(const char *group, const struct CMUnitTest *tests, size_t n)
{
	fx = getenv("PIV_FX");
	work = getenv("PIV_WORK");
	helper = getenv("PIV_HELPER");
	crl_builder = getenv("PIV_CRL_BUILDER");
	shim = getenv("PIV_SHIM");
	softhsm = getenv("SOFTHSM2_MODULE");
	www = getenv("PIV_WWW");
	http_port = getenv("PIV_HTTP_PORT");
	check_tool = getenv("PIV_CHECK_TOOL");
	keys_tool = getenv("PIV_KEYS_TOOL");
	refresh_tool = getenv("PIV_REFRESH_TOOL");
	ldap_uri = getenv("PIV_LDAP_URI");
	ldaps_uri = getenv("PIV_LDAPS_URI");
	ldapi_uri = getenv("PIV_LDAPI_URI");
	ldap_base = getenv("PIV_LDAP_BASE");
	ldap_suffix = getenv("PIV_LDAP_SUFFIX");
	ldap_ca = getenv("PIV_LDAP_CA");
	ldap_other_ca = getenv("PIV_LDAP_OTHER_CA");
	ldap_bind_dn = getenv("PIV_LDAP_BIND_DN");
	ldap_pw = getenv("PIV_LDAP_PW");
	ldap_pw_nl = getenv("PIV_LDAP_PW_NL");
	ldap_root_dn = getenv("PIV_LDAP_ROOT_DN");
	ldap_root_pw = getenv("PIV_LDAP_ROOT_PW");
	if (!fx || !work || !helper || !crl_builder || !shim || !softhsm || !www || !http_port || !check_tool ||
	    !keys_tool || !refresh_tool ||
	    !ldap_uri ||
	    !ldaps_uri || !ldapi_uri || !ldap_base || !ldap_suffix || !ldap_ca || !ldap_other_ca ||
	    !ldap_bind_dn || !ldap_pw || !ldap_pw_nl || !ldap_root_dn || !ldap_root_pw) {
		fprintf(stderr, "run through tests/pam-tests.sh\n");
		return 1;
	}
	if (getenv("PIV_TEST_FILTER") != NULL)
		cmocka_set_test_filter(getenv("PIV_TEST_FILTER"));
	return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}
