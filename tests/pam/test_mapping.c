/* PAM integration tests, certificate to account: NSS, mapping files, matching rules, names without a user, and LDAP against the test slapd.
 * Run by pam-tests.sh (tests/pam/lib.h has what the groups share). */
#include "lib.h"

/* ---- mapping ------------------------------------------------------- */

static void
test_mapped_to_other_user(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256"), "bob", PIN, PAM_AUTH_ERR, false, "not mapped to bob", &o);
	outcome_free(&o);
}

static void
test_unknown_account(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "carol"), "carol", PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "carol"), NULL, PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
}

static void
test_usernameless(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "p256"), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	expect(&SETUP(.scenario = "bob"), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "bob");
	outcome_free(&o);
}

/* Username-less: PAM_USER becomes the account's own name (getpwnam's
 * pw_name), not the string the mapping produced. Here a mapping file says
 * "ALICE" and the directory behind nss_wrapper (tests/nss_pivtest.c)
 * matches names without case (issue 14.4). */
static void
test_usernameless_canonical_name(void **state)
{
	char extra[4300];
	struct outcome o;

	(void)state;
	shell("printf 'ALICE sha256=%%s\n' \"$(openssl x509 -in '%s/pki/alice-p256.crt' -noout "
	      "-fingerprint -sha256 | sed 's/.*=//')\" > '%s/map.txt' && chmod 600 '%s/map.txt'", fx,
	      work, work);
	{
		struct passwd *pw = getpwnam("ALICE"); /* the fixture: the directory answers */
		assert_non_null(pw);
		assert_string_equal(pw->pw_name, "alice");
	}
	snprintf(extra, sizeof(extra), "map = file:%s/map.txt", work);
	expect(&SETUP(.scenario = "p256", .extra = extra), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	must_log(&o, "mapped name ALICE is the account alice");
	must_log(&o, "authentication succeeded: account=alice ");
	outcome_free(&o);
}

static void
test_usernameless_ambiguous(void **state)
{
	struct outcome o;

	(void)state;
	/* Two cards that map to two accounts: no guessing. */
	expect(&SETUP(.scenario = "two"), NULL, PIN, PAM_AUTH_ERR, false, "more than one", &o);
	assert_string_equal(o.user_after, "");
	outcome_free(&o);
	/* An expired card and another user's card: the user hears about the
	 * one that got furthest, whichever order the slots come in. */
	expect(&SETUP(.scenario = "mixed"), "alice", PIN, PAM_AUTH_ERR, false, "not mapped to alice",
	       &o);
	outcome_free(&o);
	/* With a user name the matching card is chosen. */
	expect(&SETUP(.scenario = "two"), "bob", PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.token_env, "Bob card");
	outcome_free(&o);
}

static void
test_map_rules(void **state)
{
	struct outcome o;

	(void)state;
	/* First rule yields nothing (cn is not an account), second decides. */
	expect(&SETUP(.scenario = "p256", .extra = "map = name:{subject_dn_component.cn}\n"
	                                           "map = name:{subject_rfc822_name.short_name}"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* A match rule that excludes the certificate. */
	expect(&SETUP(.scenario = "p256", .extra = "match = <ISSUER>^CN=Other CA,.*\n"
	                                           "map = name:{subject_dn_component.uid}"),
	       "alice", PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	expect(&SETUP(.scenario = "p256", .extra = "match = <ISSUER>^CN=PIV Test Issuing CA,.*\n"
	                                           "map = name:{subject_principal.short_name}"),
	       "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* Two UIDs in one DN: libsss_certmap takes the most specific (bob),
	 * never both, never a guess between them. */
	expect(&SETUP(.scenario = "twouid"), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "bob");
	outcome_free(&o);
	expect(&SETUP(.scenario = "twouid"), "alice", PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	/* Hostile subject: the CN template yields no valid account. */
	expect(&SETUP(.scenario = "hostile", .extra = "map = name:{subject_dn_component.cn}"),
	       NULL, PIN, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
}

static void
expect_map_file(const char *user, int want_rv, bool want_prompt, const char *msg, const char *extra)
{
	char conf[8400];
	struct outcome o;

	/* extra first: a "match" line must come before the "map" it restricts */
	snprintf(conf, sizeof(conf), "%s\nmap = file:%s/map.txt", extra ? extra : "", work);
	expect(&SETUP(.scenario = "fascn", .extra = conf), user, PIN, want_rv, want_prompt, msg, &o);
	if (want_rv == PAM_SUCCESS && user == NULL)
		assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
}

static void
test_map_file_matchers(void **state)
{
	(void)state;
	/* The card's UID (fascnuser) is no account: only the file maps it. */
	write_map_from_cert("alice", "sha256",
	                    "openssl x509 -in \"$c\" -noout -fingerprint -sha256 | cut -d= -f2");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	expect_map_file(NULL, PAM_SUCCESS, true, NULL, NULL);
	write_map_from_cert("alice", "subject",
	                    "openssl x509 -in \"$c\" -noout -subject -nameopt RFC2253 | sed s/^subject=//");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	write_map_from_cert("alice", "issuer+serial",
	                    "echo $(openssl x509 -in \"$c\" -noout -issuer -nameopt RFC2253 | "
	                    "sed s/^issuer=//)\\;$(openssl x509 -in \"$c\" -noout -serial | cut -d= -f2)");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	write_map_from_cert("alice", "ski",
	                    "openssl x509 -in \"$c\" -noout -ext subjectKeyIdentifier | tail -n 1 | tr -d ' '");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	write_map("alice fascn=D4E739DA739CED39CE739D836858210842108421C84210C3EB\n");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	expect_map_file(NULL, PAM_SUCCESS, true, NULL, NULL);
	write_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	/* another card's binding does not map this one */
	write_map("alice uuid=00000000-0000-0000-0000-000000000000\n");
	expect_map_file("alice", PAM_AUTH_ERR, false, "not mapped to alice", NULL);
}

static void
test_map_file_decisions(void **state)
{
	(void)state;
	/* two users bound to one card: a user name is needed, and decides */
	write_map("alice fascn=D4E739DA739CED39CE739D836858210842108421C84210C3EB\n"
	          "bob uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file(NULL, PAM_AUTH_ERR, false, "more than one account", NULL);
	expect_map_file("bob", PAM_SUCCESS, true, NULL, NULL);
	expect_map_file("alice", PAM_SUCCESS, true, NULL, NULL);
	/* an account the file names that NSS does not know maps nobody */
	write_map("nosuchuser uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file(NULL, PAM_AUTH_ERR, false, "not mapped", NULL);
	/* a match line that excludes the card skips the file */
	write_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\n");
	expect_map_file("alice", PAM_AUTH_ERR, false, "not mapped",
	                "match = <ISSUER>^CN=Some Other CA,.*");
	/* a file that lists nothing falls through to the next rule */
	write_map("# nobody yet\n");
	{
		struct outcome o;
		char conf[8400];
		snprintf(conf, sizeof(conf), "map = file:%s/map.txt\nmap = name:{subject_dn_component.uid}",
		         work);
		expect(&SETUP(.scenario = "p256", .extra = conf), NULL, PIN, PAM_SUCCESS, true, NULL, &o);
		assert_string_equal(o.user_after, "alice");
		outcome_free(&o);
	}
	/* a syntax error refuses the whole file, with file and line */
	write_map("alice uuid=4d2b0e59-3c0a-4c2e-9d2e-0a1b2c3d4e5f\nbob sha265=00\n");
	{
		struct outcome o;
		char conf[8400];
		snprintf(conf, sizeof(conf), "map = file:%s/map.txt", work);
		expect(&SETUP(.scenario = "fascn", .extra = conf), "alice", PIN, PAM_SERVICE_ERR, false,
		       NULL, &o);
		must_log(&o, "map.txt:2: unknown matcher");
		outcome_free(&o);
		/* and an unsafe one too */
		shell("chmod 666 '%s/map.txt'", work);
		expect(&SETUP(.scenario = "fascn", .extra = conf), "alice", PIN, PAM_SERVICE_ERR, false,
		       NULL, &o);
		must_log(&o, "writable by group or others");
		outcome_free(&o);
	}
}

static void
test_hostile_subject_escaped(void **state)
{
	struct outcome o;

	(void)state;
	expect(&SETUP(.scenario = "hostile"), "alice", PIN, PAM_SUCCESS, true, NULL, &o);
	/* the newline and ESC of the CN reach the log only escaped */
	assert_null(strstr(o.log, "\x1b"));
	assert_null(strstr(o.log, "\nroot"));
	assert_non_null(strstr(o.log, "\\x1b"));
	outcome_free(&o);
}

/* ---- ldap: rules against the test slapd (mkldap.sh) ---------------- */

#define WHOLE_CERT "(pivCertificate={cert!bin})"
#define AD_ISSUER_SERIAL "(altSecurityIdentities=X509:<I>{issuer_dn!ad}<SR>{serial_number!hex_ur})"
#define AD_SKI "(altSecurityIdentities=X509:<SKI>{subject_key_id!hex_u})"
/* OpenLDAP's userCertificate (certificateExactMatch) takes a GSER
 * assertion of serial and issuer; \7b and \7d are its braces, which an
 * sss-certmap template cannot hold literally. (The rule of the OpenLDAP
 * example in pam_piv.conf(5).) */
#define OPENLDAP_USERCERT "(&(objectClass=posixAccount)(userCertificate=\\7b serialNumber " \
	"{serial_number!dec}, issuer rdnSequence:\"{issuer_dn}\" \\7d))"

/* An ldap: rule against the directory at uri; more: further lines (a
 * later key wins, a later map line is the next rule). */
static void
expect_ldap(const char *scenario, const char *uri, const char *rule, const char *more,
            const char *user, int want_rv, bool want_prompt, const char *msg, struct outcome *o)
{
	char *extra = NULL;

	assert_true(asprintf(&extra, "ldap_uri = %s\nldap_base = %s\nmap = ldap:LDAPU1:%s\n%s", uri,
	                     ldap_base, rule, more ? more : "") > 0);
	expect(&SETUP(.scenario = scenario, .extra = extra), user, PIN, want_rv, want_prompt, msg, o);
	free(extra);
}

/* Change the directory as its rootdn; "-c" goes on past errors (undo). */
static void
ldap_modify(const char *ldif, bool ignore_errors)
{
	shell("printf '%%s\\n' '%s' | LDAPNOINIT=1 timeout 10 ldapmodify -x %s -H '%s' -D '%s' -y '%s'"
	      " >/dev/null 2>&1%s", ldif, ignore_errors ? "-c" : "", ldap_uri, ldap_root_dn,
	      ldap_root_pw, ignore_errors ? " || true" : "");
}

static char bob_on_alice[1024];

static int
ldap_setup(void **state)
{
	per_test_timeout(state);
	server_mode("normal");
	return 0;
}

/* Whatever a test did to the directory or to slapd is undone, even when
 * it failed half-way. */
static int
ldap_teardown(void **state)
{
	(void)state;
	shell("kill -CONT $(cat '%s/ldap/slapd.pid')", fx);
	snprintf(bob_on_alice, sizeof(bob_on_alice),
	         "dn: uid=alice,%s\nchangetype: modify\ndelete: pivCertificate\n"
	         "pivCertificate:< file://%s/pki/bob-p256.der", ldap_base, fx);
	ldap_modify(bob_on_alice, true);
	return 0;
}

static void
test_ldap_whole_certificate(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	/* the filter carries the DER escaped byte by byte (logged escaped again) */
	must_log(&o, "searches with filter '(pivCertificate=\\x5c30\\x5c82");
	must_log(&o, "maps to account 'alice (entry uid=alice,ou=People,dc=example,dc=test)'");
	outcome_free(&o);
	/* username-less */
	expect_ldap("p256", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* bob's card is bob's */
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_AUTH_ERR, false,
	            "not mapped to alice", &o);
	outcome_free(&o);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "bob");
	outcome_free(&o);
	/* a match line that excludes the card skips the rule, and the
	 * directory is not asked */
	{
		char extra[1000];
		snprintf(extra, sizeof(extra),
		         "ldap_uri = ldap://127.0.0.1:9\nldap_base = %s\n"
		         "match = <ISSUER>^CN=Some Other CA,.*\nmap = ldap:LDAPU1:" WHOLE_CERT, ldap_base);
		expect(&SETUP(.scenario = "p256", .extra = extra), "alice", PIN, PAM_AUTH_ERR, false,
		       "not mapped", &o);
		must_log(&o, "certificate does not match");
		outcome_free(&o);
	}
}

/* Active Directory's strong mappings: issuer and serial (the serial's
 * bytes reversed, as AD stores them), and the subject key identifier. */
static void
test_ldap_ad_strong_mappings(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("rsa2048", ldap_uri, AD_ISSUER_SERIAL, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	/* (the library escapes even the blanks: \20, logged as \x5c20) */
	must_log(&o, "(altSecurityIdentities=X509:<I>C=US,O=PIV\\x5c20Test,CN=PIV\\x5c20Test"
	             "\\x5c20Issuing\\x5c20CA<SR>");
	outcome_free(&o);
	expect_ldap("rsa2048", ldap_uri, AD_ISSUER_SERIAL, NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_ldap("p384", ldap_uri, AD_SKI, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* the same rules do not map a card the directory does not list */
	expect_ldap("p256", ldap_uri, AD_ISSUER_SERIAL, NULL, "alice", PAM_AUTH_ERR, false,
	            "not mapped", &o);
	outcome_free(&o);
	expect_ldap("rsa2048", ldap_uri, AD_SKI, NULL, "alice", PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
}

static void
test_ldap_openldap_usercertificate(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", ldap_uri, OPENLDAP_USERCERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* same issuer, another serial: nobody */
	expect_ldap("rsa2048", ldap_uri, OPENLDAP_USERCERT, NULL, "alice", PAM_AUTH_ERR, false,
	            "not mapped", &o);
	outcome_free(&o);
}

/* One card in two entries: a user name decides, without one the login
 * is refused; entries whose accounts do not exist map nobody. */
static void
test_ldap_ambiguous(void **state)
{
	struct outcome o;

	(void)state;
	snprintf(bob_on_alice, sizeof(bob_on_alice),
	         "dn: uid=alice,%s\nchangetype: modify\nadd: pivCertificate\n"
	         "pivCertificate:< file://%s/pki/bob-p256.der", ldap_base, fx);
	ldap_modify(bob_on_alice, false);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_AUTH_ERR, false,
	            "more than one account", &o);
	outcome_free(&o);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, "bob", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	expect_ldap("bob", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* carol's card is in the entries carol and carol2, neither an account */
	expect_ldap("carol", ldap_uri, WHOLE_CERT, NULL, NULL, PAM_AUTH_ERR, false, "not mapped", &o);
	must_log(&o, "found an account that does not exist: 'carol2'");
	must_log(&o, "entries found, none with an existing account: '2'");
	outcome_free(&o);
}

/* "No entry" is an answer: the next rule has its turn. */
static void
test_ldap_no_entry(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("rsa3072", ldap_uri, WHOLE_CERT, NULL, "alice", PAM_AUTH_ERR, false, "not mapped", &o);
	must_log(&o, "entries found, none with an existing account: '0'");
	outcome_free(&o);
	expect_ldap("rsa3072", ldap_uri, WHOLE_CERT, "map = name:{subject_dn_component.uid}", NULL,
	            PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
	/* an entry without the account attribute maps nobody */
	expect_ldap("p256", ldap_uri, WHOLE_CERT, "ldap_user_attr = description", "alice", PAM_AUTH_ERR,
	            false, "not mapped", &o);
	must_log(&o, "entry uid=alice,ou=People,dc=example,dc=test has no account attribute");
	outcome_free(&o);
	/* a base that does not exist is the administrator's to fix */
	expect_ldap("p256", ldap_uri, WHOLE_CERT, "ldap_base = ou=Nowhere,dc=example,dc=test", "alice",
	            PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "No such object");
	outcome_free(&o);
}

/* A directory that cannot answer ends the mapping: the next rule, which
 * would map, is not reached. */
static void
test_ldap_down(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", "ldap://127.0.0.1:9", WHOLE_CERT, "map = name:{subject_dn_component.uid}",
	            "alice", PAM_AUTHINFO_UNAVAIL, false, "account directory unavailable", &o);
	must_log(&o, "Can't contact LDAP server");
	outcome_free(&o);
	expect_ldap("p256", "ldap://127.0.0.1:9", WHOLE_CERT, "card_only = yes", NULL,
	            PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	outcome_free(&o);
}

static void
expect_ldap_bounded(const char *uri, const char *more, const char *what)
{
	struct outcome o;
	char extra[1200];

	snprintf(extra, sizeof(extra), "net_timeout = 1\nldap_ca_file = %s\n%s", ldap_ca,
	         more ? more : "");
	expect_ldap("p256", uri, WHOLE_CERT, extra, "alice", PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	if (o.seconds > 2.0) {
		dump(&o);
		fail_msg("%s: took %.2fs, more than net_timeout + 1 s", what, o.seconds);
	}
	outcome_free(&o);
}

/* A server that accepts and never answers: at connect (plain, ldaps
 * handshake, StartTLS), and a slapd frozen after the connection. */
static void
test_ldap_hangs(void **state)
{
	char uri[100];

	(void)state;
	server_mode("hang");
	snprintf(uri, sizeof(uri), "ldap://127.0.0.1:%s", http_port);
	expect_ldap_bounded(uri, NULL, "silent server");
	expect_ldap_bounded(uri, "ldap_starttls = yes", "silent server, StartTLS");
	snprintf(uri, sizeof(uri), "ldaps://127.0.0.1:%s", http_port);
	expect_ldap_bounded(uri, NULL, "silent server, ldaps handshake");
	server_mode("normal");
	shell("kill -STOP $(cat '%s/ldap/slapd.pid')", fx);
	expect_ldap_bounded(ldap_uri, NULL, "frozen slapd");
	{
		char extra[2000];
		snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s", ldap_bind_dn,
		         ldap_pw);
		expect_ldap_bounded(ldap_uri, extra, "frozen slapd, bind");
	}
	shell("kill -CONT $(cat '%s/ldap/slapd.pid')", fx);
}

/* TLS: ldaps:// and StartTLS with the directory's CA; another CA is
 * refused; the CA file is trust material. */
static void
test_ldap_tls(void **state)
{
	struct outcome o;
	char extra[1200];

	(void)state;
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s", ldap_ca);
	expect_ldap("p256", ldaps_uri, WHOLE_CERT, extra, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	{
		/* libldap's TLS library (GnuTLS) can load PKCS#11 modules through
		 * p11-kit; the PAM process must still have none mapped. */
		static const char *const modules[] = { "softhsm", "p11-kit-trust", "opensc-pkcs11",
		                                       "p11shim", "/pkcs11/" };
		assert_non_null(o.maps);
		assert_non_null(strstr(o.maps, "libldap")); /* the module's libraries are seen */
		for (size_t i = 0; i < sizeof(modules) / sizeof(modules[0]); i++)
			if (strstr(o.maps, modules[i]) != NULL)
				fail_msg("the PAM process has a PKCS#11 module mapped: %s", modules[i]);
	}
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s\nldap_starttls = yes", ldap_ca);
	expect_ldap("p256", ldap_uri, WHOLE_CERT, extra, NULL, PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s", ldap_other_ca);
	expect_ldap("p256", ldaps_uri, WHOLE_CERT, extra, "alice", PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	must_log(&o, "Can't contact LDAP server");
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s\nldap_starttls = yes", ldap_other_ca);
	expect_ldap("p256", ldap_uri, WHOLE_CERT, extra, "alice", PAM_AUTHINFO_UNAVAIL, false, NULL, &o);
	must_log(&o, "StartTLS: Connect error");
	outcome_free(&o);
	shell("cp '%s' '%s/ldap-ca.pem' && chmod 666 '%s/ldap-ca.pem'", ldap_ca, work, work);
	snprintf(extra, sizeof(extra), "ldap_ca_file = %s/ldap-ca.pem", work);
	expect_ldap("p256", ldaps_uri, WHOLE_CERT, extra, "alice", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "not writable by group or others");
	outcome_free(&o);
}

static void
test_ldap_ldapi(void **state)
{
	struct outcome o;

	(void)state;
	expect_ldap("p256", ldapi_uri, WHOLE_CERT, NULL, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "alice");
	outcome_free(&o);
}

/* ou=Restricted shows only to the service account: a simple bind with
 * the password file, which must be root's alone. */
static void
test_ldap_bind(void **state)
{
	struct outcome o;
	char extra[3000];

	(void)state;
	snprintf(extra, sizeof(extra), "ldap_base = %s", ldap_suffix);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, NULL, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_base = %s\nldap_bind_dn = %s\nldap_bind_pw_file = %s",
	         ldap_suffix, ldap_bind_dn, ldap_pw);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, NULL, PAM_SUCCESS, true, NULL, &o);
	assert_string_equal(o.user_after, "erin");
	outcome_free(&o);
	/* a final newline is not part of the password */
	snprintf(extra, sizeof(extra), "ldap_base = %s\nldap_bind_dn = %s\nldap_bind_pw_file = %s",
	         ldap_suffix, ldap_bind_dn, ldap_pw_nl);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SUCCESS, true, NULL, &o);
	outcome_free(&o);
	/* a wrong password is a configuration error, not "no entry" */
	shell("printf 'not-the-password' > '%s/bad.pw' && chmod 600 '%s/bad.pw'", work, work);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/bad.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "bind as ldap_bind_dn: Invalid credentials");
	outcome_free(&o);
	/* readable by others, a symbolic link, empty: refused before any bind */
	shell("cp '%s' '%s/open.pw' && chmod 644 '%s/open.pw' && ln -sf '%s' '%s/link.pw' && "
	      ": > '%s/empty.pw' && chmod 600 '%s/empty.pw'",
	      ldap_pw, work, work, ldap_pw, work, work, work);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/open.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "readable by group or others");
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/link.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "is a symbolic link");
	outcome_free(&o);
	snprintf(extra, sizeof(extra), "ldap_bind_dn = %s\nldap_bind_pw_file = %s/empty.pw",
	         ldap_bind_dn, work);
	expect_ldap("p384", ldap_uri, WHOLE_CERT, extra, "erin", PAM_SERVICE_ERR, false, NULL, &o);
	must_log(&o, "must hold one line, the password");
	outcome_free(&o);
}

/* Certificate values cannot change the filter's meaning: a CN that is a
 * filter fragment is escaped (unescaped it would match every entry, alice
 * among them), and names a C string reads differently (NUL, not UTF-8)
 * map nobody, by any rule. */
static void
test_ldap_hostile_values(void **state)
{
	static const char *const bad_upn[] = { "upn-nul", "upn-badutf8" };
	struct outcome o;

	(void)state;
	expect_ldap("inject", ldap_uri, "(&(objectClass=posixAccount)(cn={subject_dn_component.cn}))",
	            NULL, "alice", PAM_AUTH_ERR, false, "not mapped", &o);
	must_log(&o, "(cn=\\x5c2a\\x5c29\\x5c28uid=\\x5c2a))");
	must_log(&o, "entries found, none with an existing account: '0'");
	outcome_free(&o);
	expect_ldap("hostile", ldap_uri, "(&(objectClass=posixAccount)(cn={subject_dn_component.cn}))",
	            NULL, NULL, PAM_AUTH_ERR, false, "not mapped", &o);
	outcome_free(&o);
	for (size_t i = 0; i < 2; i++) {
		expect_ldap(bad_upn[i], ldap_uri, "(uid={subject_principal.short_name})", NULL, "alice",
		            PAM_AUTH_ERR, false, "not mapped", &o);
		must_log(&o, "a name in the certificate holds a NUL byte or invalid UTF-8");
		outcome_free(&o);
		expect(&SETUP(.scenario = bad_upn[i], .extra = "map = name:{subject_principal.short_name}"),
		       NULL, PIN, PAM_AUTH_ERR, false, "not mapped", &o);
		must_log(&o, "NUL byte or invalid UTF-8");
		outcome_free(&o);
	}
}

/* cert_source = ldap: the entry's userCertificate;binary, through
 * pam-piv-authorized-keys (what sshd runs). */
static void
test_cert_source_ldap(void **state)
{
	char extra[4400], cmd[9000], *out;
	int status;

	(void)state;
	snprintf(extra, sizeof(extra), "cert_source = ldap\nldap_uri = %s\nldap_base = %s\n", ldap_uri,
	         ldap_base);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	snprintf(cmd, sizeof(cmd),
	         "'%s' --config '%s/current.conf' alice > '%s/keys.out' 2>/dev/null && "
	         "openssl x509 -in '%s/pki/alice-p256.crt' -pubkey -noout | "
	         "ssh-keygen -i -m PKCS8 -f /dev/stdin > '%s/keys.want'",
	         keys_tool, work, work, fx, work);
	status = system(cmd);
	assert_int_equal(status, 0);
	{
		char path[4200];
		char *want;
		snprintf(path, sizeof(path), "%s/keys.out", work);
		out = slurp(path);
		snprintf(path, sizeof(path), "%s/keys.want", work);
		want = slurp(path);
		want[strcspn(want, "\n")] = '\0';
		if (strstr(out, want) == NULL || strstr(out, "pam_piv-sha256:") == NULL)
			fail_msg("keys for alice from LDAP:\n%s\nwanted:\n%s", out, want);
		{
			/* exactly one key line */
			int lines = 0;
			for (const char *p = out; *p; p++)
				lines += *p == '\n';
			assert_int_equal(lines, 1);
		}
		free(want);
		free(out);
	}
	/* a directory that is down: no keys, and a non-zero exit for sshd's log */
	snprintf(extra, sizeof(extra), "cert_source = ldap\nldap_uri = ldap://127.0.0.1:9\n"
	         "ldap_base = %s\n", ldap_base);
	configure(&SETUP(.scenario = "p256", .extra = extra));
	snprintf(cmd, sizeof(cmd), "'%s' --config '%s/current.conf' alice > '%s/keys.out' 2>/dev/null",
	         keys_tool, work, work);
	status = system(cmd);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
	{
		char path[4200];
		snprintf(path, sizeof(path), "%s/keys.out", work);
		out = slurp(path);
		assert_string_equal(out, "");
		free(out);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_mapped_to_other_user, per_test_timeout),
		cmocka_unit_test_setup(test_unknown_account, per_test_timeout),
		cmocka_unit_test_setup(test_usernameless, per_test_timeout),
		cmocka_unit_test_setup(test_usernameless_ambiguous, per_test_timeout),
		cmocka_unit_test_setup(test_usernameless_canonical_name, per_test_timeout),
		cmocka_unit_test_setup(test_map_rules, per_test_timeout),
		cmocka_unit_test_setup(test_map_file_matchers, per_test_timeout),
		cmocka_unit_test_setup(test_map_file_decisions, per_test_timeout),
		cmocka_unit_test_setup(test_hostile_subject_escaped, per_test_timeout),
		cmocka_unit_test_setup_teardown(test_ldap_whole_certificate, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_ad_strong_mappings, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_openldap_usercertificate, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_ambiguous, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_no_entry, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_down, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_hangs, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_tls, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_ldapi, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_bind, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_ldap_hostile_values, ldap_setup, ldap_teardown),
		cmocka_unit_test_setup_teardown(test_cert_source_ldap, ldap_setup, ldap_teardown),
	};

	return PIV_TEST_MAIN("mapping", tests);
}
