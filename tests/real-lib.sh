# Shared by the tests that run real programs over the samples of pam.d/
# (sudo-tests.sh, login-tests.sh), sourced after STAGE is set: TAP lines,
# the CRL server put back to normal, a private tmpfs stage, pam_piv.conf
# for a SoftHSM card, and the test accounts bind-mounted over the system's
# (inside pam-tests.sh's private mount namespace only).

say() { printf '%s\n' "$*"; }
ok() { say "ok - $1"; }
not_ok() { say "not ok - $1"; failed=1; }

# The CRLs the certificates point to, served as they are (a test before
# may have left the server misbehaving).
serve_crls() {
	for crl in inter root inter2; do
		cp "$PIV_FX/pki/crl/$crl.crl" "$PIV_WWW/$crl.crl"
	done
	printf 'normal' > "$PIV_WWW/.mode"
}

stage_tmpfs() {
	mkdir -p "$STAGE"
	mount -t tmpfs -o mode=0755 tmpfs "$STAGE"
	install -m 0755 "$PIV_HELPER" "$STAGE/pam_piv_helper"
	install -m 0755 "$PIV_CRL_BUILDER" "$STAGE/pam_piv_crlindex"
}

# write_conf SCENARIO [LINES]: $STAGE/pam_piv.conf for the card in
# tok/SCENARIO, revocation on, with LINES (newline-separated) added.
write_conf() {
	{
		printf 'pkcs11_module = %s\n' "$SOFTHSM2_MODULE"
		printf 'ca_file = %s/pki/ca/root.pem\n' "$PIV_FX"
		printf 'intermediates = %s/pki/intermediates.pem\n' "$PIV_FX"
		printf 'revocation = ocsp,crl\ncache_dir = %s/cache\n' "$STAGE"
		printf 'helper = %s/pam_piv_helper\n' "$STAGE"
		printf 'crl_builder = %s/pam_piv_crlindex\n' "$STAGE"
		printf 'helper_env = SOFTHSM2_CONF=%s/tok/%s/softhsm2.conf\n' "$PIV_FX" "$1"
		printf 'fail_delay = 0\n'
		[ $# -lt 2 ] || printf '%s\n' "$2"
	} > "$STAGE/pam_piv.conf"
	chmod 0644 "$STAGE/pam_piv.conf"
}

# stage_accounts HOME PASSWORD: root, nobody, alice (with PASSWORD) and bob,
# both with home HOME, bind-mounted over /etc/passwd, group and shadow.
stage_accounts() {
	hash=$(openssl passwd -6 "$2")
	grep -E '^(root|nobody):' /etc/passwd > "$STAGE/passwd"
	printf 'alice:x:1001:1001:Alice:%s:/bin/sh\nbob:x:1002:1002:Bob:%s:/bin/sh\n' \
		"$1" "$1" >> "$STAGE/passwd"
	grep -E '^(root|nogroup|shadow):' /etc/group > "$STAGE/group"
	printf 'alice:x:1001:\nbob:x:1002:\n' >> "$STAGE/group"
	{
		printf 'root:*:19000:0:99999:7:::\nnobody:*:19000:0:99999:7:::\n'
		printf 'alice:%s:19000:0:99999:7:::\nbob:*:19000:0:99999:7:::\n' "$hash"
	} > "$STAGE/shadow"
	chmod 0644 "$STAGE/passwd" "$STAGE/group"
	chmod 0640 "$STAGE/shadow"
	chgrp shadow "$STAGE/shadow" 2>/dev/null || true
	mount --bind "$STAGE/passwd" /etc/passwd
	mount --bind "$STAGE/group" /etc/group
	mount --bind "$STAGE/shadow" /etc/shadow
}
