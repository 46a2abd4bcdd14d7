#!/bin/sh
# Mapping cost: the same full login (p256 card, revocation off) with each
# kind of mapping rule, LDAP over every transport to a local slapd
# (tests/mkldap.sh). Runs in a private network namespace (slapd listens on
# fixed loopback ports), as root.
# Usage: tests/bench/mapping-bench.sh [RUNS]   (after a build)
set -eu
if [ -z "${PIV_BENCH_NETNS:-}" ]; then
	PIV_BENCH_NETNS=1 exec unshare --net -- sh -c 'ip link set lo up && exec sh "$0" "$@"' "$0" "$@"
fi
. "$(dirname "$0")/lib.sh"
bench_init "${1:-30}"
sh "$src/tests/mkldap.sh" start "$work/fx" >/dev/null
trap 'sh "$src/tests/mkldap.sh" stop "$work/fx"; rm -rf "$work"' EXIT
. "$work/fx/ldap/env"

rule='map = ldap:LDAPU1:(pivCertificate={cert!bin})'
ldap() { # URI [more lines]
	printf 'revocation = none\nldap_uri = %s\nldap_base = %s\n%s\n%s\n' "$1" "$PIV_LDAP_BASE" \
		"$rule" "${2:-}" | bench_conf p256
}

bench_run "pam_permit (harness)" permit
echo "revocation = none" | bench_conf p256
bench_run "name: (uid in the DN)" bench
sha=$(openssl x509 -in "$work/fx/pki/alice-p256.crt" -noout -fingerprint -sha256 | sed 's/.*=//')
printf 'alice sha256=%s\n' "$sha" > "$work/map.txt"
chmod 600 "$work/map.txt"
printf 'revocation = none\nmap = file:%s/map.txt\n' "$work" | bench_conf p256
bench_run "file: (fingerprint)" bench
ldap "$PIV_LDAPI_URI"
bench_run "ldap: ldapi://" bench
ldap "$PIV_LDAP_URI"
bench_run "ldap: ldap://127.0.0.1" bench
ldap "$PIV_LDAPS_URI" "ldap_ca_file = $PIV_LDAP_CA"
bench_run "ldap: ldaps://" bench
ldap "$PIV_LDAP_URI" "ldap_starttls = yes
ldap_ca_file = $PIV_LDAP_CA"
bench_run "ldap: StartTLS" bench
ldap "$PIV_LDAPS_URI" "ldap_ca_file = $PIV_LDAP_CA
ldap_bind_dn = $PIV_LDAP_BIND_DN
ldap_bind_pw_file = $PIV_LDAP_PW"
bench_run "ldap: ldaps:// + simple bind" bench
