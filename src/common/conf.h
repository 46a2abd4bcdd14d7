/* pam_piv configuration: one parser for /etc/security/pam_piv.conf and for
 * module arguments (arguments override the file). Everything is validated
 * here, so later stages can trust a loaded struct piv_conf. */
#ifndef PIV_CONF_H
#define PIV_CONF_H

#include <stdbool.h>
#include <stddef.h>

#define PIV_CONF_MAX_SIZE (64 * 1024)
#define PIV_CONF_MAX_LINE 4096
#define PIV_DEFAULT_CERT_URI "pkcs11:type=cert;id=%01"
#define PIV_DEFAULT_MAP "name:{subject_dn_component.uid}"
#define PIV_DEFAULT_CACHE_DIR "/var/cache/pam_piv"
#define PIV_DEFAULT_OCSP_MAX_AGE 3600

struct piv_strlist {
	char **v;
	size_t n;
};

/* One mapping rule: "map = KIND:ARGUMENT", optionally restricted by the
 * sss-certmap matching rule given on the "match" line before it. */
struct piv_rule {
	char *match; /* NULL: every certificate */
	char *map;   /* e.g. "name:{subject_dn_component.uid}" */
};

enum piv_rev_method {
	PIV_REV_METHOD_OCSP,
	PIV_REV_METHOD_CRL,
};

/* What happens to a session when the card that opened it leaves. */
enum piv_removal_action {
	PIV_REMOVAL_NONE,
	PIV_REMOVAL_LOCK,      /* logind LockSession */
	PIV_REMOVAL_TERMINATE, /* logind TerminateSession */
};

struct piv_conf {
	char *pkcs11_module;   /* "p11-kit", a path, or a p11-kit module name */
	char *token_uri;       /* NULL: any token */
	char *cert_uri;
	unsigned card_wait;    /* seconds */
	unsigned card_timeout; /* seconds */
	unsigned net_timeout;  /* seconds */
	char *ca_file;
	char *ca_dir;
	char *intermediates;
	struct piv_strlist require_eku;
	struct piv_strlist require_policy;
	struct piv_strlist require_issuer; /* RFC 4514 DNs; the leaf's issuer must be one */
	enum piv_rev_method revocation[2]; /* in order; none when n is 0 */
	size_t n_revocation;
	bool revocation_fail_open;
	char *crl_file;
	char *crl_dir;
	bool crl_fetch;
	struct piv_strlist crl_url; /* CRLs the refresher keeps fresh (http://) */
	char *cache_dir;
	char *ocsp_url;          /* NULL: from the certificate's AIA */
	unsigned ocsp_max_age;   /* seconds an OCSP answer without nextUpdate counts */
	bool ocsp_require_nonce; /* refuse OCSP answers without our nonce */
	struct piv_rule *rules;
	size_t n_rules;
	unsigned fail_delay;   /* milliseconds, pam_fail_delay on failure */
	bool card_only;
	bool debug;
	char *ldap_uri;          /* one ldap://, ldaps:// or ldapi:// URI */
	char *ldap_base;
	char *ldap_user_attr;    /* the account name attribute, default uid */
	char *ldap_bind_dn;      /* NULL: anonymous */
	char *ldap_bind_pw_file;
	bool ldap_starttls;
	char *ldap_ca_file;      /* CA of the directory server's certificate */
	char *cert_source;       /* "ldap", "dir:/PATH", or NULL */
	bool sshd_key_check;     /* account: sshd's public key must be a valid certificate's */
	bool agent;              /* auth: no card, prove a certificate's key via ssh-agent */
	struct piv_strlist allowed_services; /* NAME, +NAME, -NAME (access.h) */
	bool allow_remote;       /* the reader may answer logins with a remote PAM_RHOST */
	bool foreign_card_ignore; /* a card that maps to another user counts as no card */
	enum piv_removal_action removal_action; /* session: when the card leaves */
	bool removal_watch_required; /* a session whose card cannot be watched does not open */
	bool fips_required;          /* no login unless OpenSSL's FIPS provider is in force */
	char *helper;                /* card helper program */
	char *watcher;               /* card removal watcher (pam-piv-watch) */
	char *crl_builder;           /* CRL index builder; NULL: index in this process */
	struct piv_strlist helper_env; /* NAME=VALUE given to the helper */
	struct piv_strlist origins;  /* "KEY=FILE:LINE" (or "KEY=") per key set; the last counts */
};

/* Why loading failed: "FILE:LINE: message" or "argument 'x': message". */
struct piv_conf_error {
	char msg[512];
};

/* Load the configuration: the file named by a config=PATH argument (or
 * default_path), then the remaining module arguments on top. A missing file
 * is an error unless it is the default path (every key may then come from
 * arguments). Returns 0, or -1 with err filled. On error *conf is freed. */
int piv_conf_load(struct piv_conf *conf, const char *default_path,
                  int argc, const char **argv, struct piv_conf_error *err);

/* Parse from a string as if it were the file (for tests and fuzzing). */
int piv_conf_load_string(struct piv_conf *conf, const char *name,
                         const char *text, int argc, const char **argv,
                         struct piv_conf_error *err);

void piv_conf_free(struct piv_conf *conf);

/* Where key got its value, for messages about it found later (a path that
 * does not exist, a file root does not own): "FILE:LINE", "module
 * argument", or "default". */
const char *piv_conf_where(const struct piv_conf *conf, const char *key);

/* Put where key was set in front of why: "FILE:LINE: key: WHY". */
void piv_conf_blame(const struct piv_conf *conf, const char *key, char *why, size_t why_size);

/* 0 if the file may be trusted as configuration or a secret: a regular
 * file (no symlink), owned by root, not writable by group or others, at
 * most max_size bytes. On success *fd is open (O_CLOEXEC) for reading. */
int piv_open_trusted_file(const char *path, size_t max_size, int *fd,
                          char *why, size_t why_size);

/* Trust material (anchors, intermediates, CRLs): whoever can write it can
 * let anybody in, so it must be root's alone. Symbolic links are followed
 * (CA bundles often are links); the file or directory they lead to must be
 * owned by root and not writable by group or others. 0, or -1 with why. */
int piv_check_root_owned(const char *path, bool want_dir, char *why, size_t why_size);

#endif
