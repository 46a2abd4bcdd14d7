#!/bin/sh
# Owns the private OpenLDAP directory of the PAM integration tests: its schema,
# its entries (computed from the test PKI that tests/mkpki.sh wrote to
# FX/pki), its TLS certificates, and the slapd that serves them.
# Usage: mkldap.sh start FX   wipe FX/ldap, build it, start slapd, self-check
#        mkldap.sh stop FX    stop that slapd (idempotent)
# slapd listens on fixed ports of 127.0.0.1, so "start" belongs in a private
# network namespace (tests/pam-tests.sh runs under unshare --net).
# FX/ldap/env is a sourceable file with the URIs, base, CA and bind settings.
set -eu

LDAP_PORT=3389
LDAPS_PORT=3636
SUFFIX=dc=example,dc=test
PEOPLE=ou=People,$SUFFIX
RESTRICTED=ou=Restricted,$SUFFIX
BIND_DN=cn=pam,ou=Services,$SUFFIX
ROOT_DN=cn=admin,$SUFFIX
SCHEMA_DIR=/etc/ldap/schema
MODULE_DIR=/usr/lib/ldap
# slapd ends by itself after this many seconds even if nobody stops it
LIFETIME=900

die() { printf 'mkldap.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 2 ] || die "usage: mkldap.sh start|stop FX"
ACTION=$1
if [ ! -d "$2" ]; then
	# nothing there, nothing to stop
	[ "$ACTION" != stop ] || exit 0
	die "$2 is not a directory"
fi
FX=$(cd "$2" && pwd -P)
# The path ends up in slapd.conf, LDIF file:// URLs and the ldapi:// URL;
# refusing odd characters spares quoting and URL-encoding all three.
case $FX in
*[!A-Za-z0-9._/+-]*) die "unsupported characters in the path $FX" ;;
esac
LDAP=$FX/ldap
PKI=$FX/pki
TLS=$LDAP/tls
CONF=$LDAP/slapd.conf
SOCK=$LDAP/ldapi
LDAPI_URI=ldapi://$(printf '%s' "$SOCK" | sed 's,/,%2F,g')
LDAP_URI=ldap://127.0.0.1:$LDAP_PORT
LDAPS_URI=ldaps://127.0.0.1:$LDAPS_PORT

# Inherited LDAP* variables (LDAPTLS_REQCERT=never, LDAPRC, LDAPURI, ...)
# would change what the self-checks test.
for v in $(env | sed -n 's/^\(LDAP[A-Za-z0-9_]*\)=.*/\1/p'); do
	unset "$v"
done

# ---- stop

# ours PID: PID runs timeout(1) or slapd with our slapd.conf, so a stale pid
# file never makes us kill a process that took over the number
ours() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	{ tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null | grep -Fqx "$CONF"
}

stop() {
	pids=
	for f in "$LDAP/slapd.pid" "$LDAP/timeout.pid"; do
		[ -s "$f" ] || continue
		p=$(cat "$f")
		if ours "$p"; then pids="$pids $p"; fi
	done
	# TERM: slapd shuts down cleanly (and removes its pid file); timeout(1)
	# passes it on to slapd and exits
	for p in $pids; do kill "$p" 2>/dev/null || :; done
	n=0
	for p in $pids; do
		while ours "$p"; do
			n=$((n + 1))
			if [ "$n" -gt 50 ]; then
				kill -KILL "$p" 2>/dev/null || :
			fi
			if [ "$n" -gt 100 ]; then
				die "slapd (pid $p) does not exit"
			fi
			nap
		done
	done
	rm -f "$LDAP/slapd.pid" "$LDAP/timeout.pid"
}

# a short pause; sleep(1) of coreutils and busybox takes fractions, POSIX not
nap() { sleep 0.1 2>/dev/null || sleep 1; }

# ---- helpers for "start"

LOG=$LDAP/openssl.log
ossl() {
	if ! openssl "$@" >"$LOG" 2>&1; then
		cat "$LOG" >&2
		die "openssl $1 failed (see above)"
	fi
}

# hexof FILE: the bytes of FILE as lower-case hex, one space before each
hexof() { od -An -tx1 -v "$1" | tr -d '\n' | tr -s ' '; }

# filterhex FILE: FILE as an LDAP filter assertion value, every byte escaped
filterhex() { hexof "$1" | sed 's/ /\\/g'; }

# filteresc STRING: STRING with the filter metacharacters escaped (RFC 4515)
filteresc() {
	printf '%s' "$1" | sed 's/\\/\\5c/g; s/\*/\\2a/g; s/(/\\28/g; s/)/\\29/g'
}

# altsec_sr CERT: Active Directory's "X509:<I>issuer<SR>serial" mapping.
# AD writes the issuer most general RDN first (X.500 order, RFC 2253
# escaping) and the serial number's bytes in reverse order.
altsec_sr() {
	issuer=$(openssl x509 -in "$1" -noout -issuer -nameopt RFC2253,-dn_rev) ||
		die "cannot read the issuer of $1"
	issuer=${issuer#issuer=}
	serial=$(openssl x509 -in "$1" -noout -serial) ||
		die "cannot read the serial of $1"
	serial=$(printf '%s' "${serial#serial=}" | tr a-f A-F)
	case $serial in '' | *[!0-9A-F]*) die "odd serial number in $1: $serial" ;; esac
	# whole bytes, and the magnitude only (no 00 sign byte)
	[ $((${#serial} % 2)) -eq 0 ] || serial=0$serial
	while [ "${#serial}" -gt 2 ]; do
		case $serial in 00*) serial=${serial#00} ;; *) break ;; esac
	done
	# that INTEGER (tag, length, a 00 if the top bit is set, the bytes) must
	# be in the DER, or we misread the serial
	len=$((${#serial} / 2)) sign=
	case $serial in [89A-F]*) len=$((len + 1)) sign=' 00' ;; esac
	spaced=$(printf '%s' "$serial" | tr A-F a-f | sed 's/../ &/g')
	case "$(hexof "${1%.crt}.der") " in
	*" 02 $(printf %02x "$len")$sign$spaced "*) ;;
	*) die "the serial $serial is not the one in ${1%.crt}.der" ;;
	esac
	reversed=$(printf '%s\n' "$serial" |
		awk '{ for (i = length($0) - 1; i >= 1; i -= 2) printf "%s", substr($0, i, 2) }')
	printf 'X509:<I>%s<SR>%s' "$issuer" "$reversed"
}

# altsec_ski CERT: AD's "X509:<SKI>hex" mapping (subjectKeyIdentifier)
altsec_ski() {
	ski=$(openssl x509 -in "$1" -noout -ext subjectKeyIdentifier | sed -n '2{s/^ *//;s/://g;p;}')
	case $ski in '' | *[!0-9A-F]*) die "cannot read the subjectKeyIdentifier of $1" ;; esac
	printf 'X509:<SKI>%s' "$ski"
}

# q ARGS...: ldapsearch that reads no ldap.conf, no ldaprc and no LDAP*
# variable (LDAPNOINIT), and gives up in bounded time
q() {
	LDAPNOINIT=1 timeout 10 ldapsearch -LLL -o nettimeout=5 -o ldif-wrap=no "$@"
}

# qtls CAFILE ARGS...: q for TLS. LDAPNOINIT would also ignore LDAPTLS_CACERT
# and ldapsearch has no option for a CA, so here libldap reads
# /etc/ldap/ldap.conf, and the variables override what could matter in it.
# HOME and the working directory are an empty directory: no ldaprc.
qtls() {
	ca=$1
	shift
	(
		cd "$LDAP/empty" &&
			HOME=$LDAP/empty LDAPTLS_CACERT=$ca LDAPTLS_REQCERT=demand \
				timeout 10 ldapsearch -LLL -o nettimeout=5 -o ldif-wrap=no "$@"
	)
}

# uids ARGS...: the uid values that a search (q ARGS) returns, sorted, on one line
# (a failed search gives a text that no check expects)
uids() {
	if ! out=$(q "$@" uid 2>&1); then
		printf '(ldapsearch failed: %s)' "$out"
		return
	fi
	printf '%s\n' "$out" | sed -n 's/^uid: //p' | sort | tr '\n' ' ' | sed 's/ $//'
}

# expect WHAT GOT WANT
expect() {
	[ "$2" = "$3" ] || die "self-check failed: $1: got \"$2\", want \"$3\""
}

# ---- start

start() {
	for f in alice-p256 alice-p384 alice-rsa2048 bob-p256 carol-p256; do
		[ -s "$PKI/$f.der" ] || die "$PKI/$f.der is missing: run tests/mkpki.sh first"
		[ -s "$PKI/$f.crt" ] ||
			die "$PKI/$f.crt is missing: run tests/mkpki.sh first"
	done
	PATH=$PATH:/usr/sbin
	for c in slapd slapadd ldapsearch openssl timeout od awk; do
		command -v "$c" >/dev/null 2>&1 || die "$c not found"
	done
	[ "${#SOCK}" -lt 108 ] || die "the ldapi socket path is too long: $SOCK"

	stop
	rm -rf "$LDAP"
	mkdir -p "$LDAP/db" "$TLS/db" "$LDAP/empty"
	chmod 700 "$LDAP/db" "$TLS"

	# passwords: bind.pw exactly the password, bind-nl.pw with the newline
	# that editors add (the module must accept both)
	(
		umask 077
		openssl rand -hex 16 | tr -d '\n' > "$LDAP/bind.pw"
		{ cat "$LDAP/bind.pw"; echo; } > "$LDAP/bind-nl.pw"
		openssl rand -hex 16 | tr -d '\n' > "$LDAP/admin.pw"
	)
	bind_pw=$(cat "$LDAP/bind.pw")
	admin_pw=$(cat "$LDAP/admin.pw")
	if [ "${#bind_pw}" -ne 32 ] || [ "${#admin_pw}" -ne 32 ]; then
		die "openssl rand gave no password"
	fi

	mktls
	mkschema
	mkconf "$admin_pw"
	mkdata

	# LDAPNOINIT: nor do slapadd and slapd read ldap.conf or an ldaprc
	if ! LDAPNOINIT=1 slapadd -q -f "$CONF" -l "$LDAP/data.ldif" >"$LDAP/slapadd.log" 2>&1; then
		cat "$LDAP/slapadd.log" >&2
		die "slapadd failed (see above)"
	fi

	# -d keeps slapd in the foreground (any level, even 0), so timeout(1)
	# can end it; -d stats logs each operation to slapd.log, to read when a
	# test fails. -s 0 (and loglevel 0): nothing to the host's syslog, which
	# a network namespace does not separate.
	LDAPNOINIT=1 timeout "$LIFETIME" slapd -d stats -s 0 -f "$CONF" \
		-h "$LDAP_URI/ $LDAPS_URI/ $LDAPI_URI/" \
		</dev/null >"$LDAP/slapd.log" 2>&1 &
	echo $! > "$LDAP/timeout.pid"
	# from here on, a failure must not leave slapd behind
	trap stop EXIT

	# up to ~10 s; each probe is short, for something else that took the
	# port might accept and never answer
	deadline=$(($(date +%s) + 10))
	until LDAPNOINIT=1 timeout 2 ldapsearch -x -o nettimeout=1 -H "$LDAP_URI" \
		-b "$SUFFIX" -s base 1.1 >/dev/null 2>&1; do
		if [ "$(date +%s)" -gt "$deadline" ] || ! ours "$(cat "$LDAP/timeout.pid")"; then
			cat "$LDAP/slapd.log" >&2
			die "slapd did not answer on $LDAP_URI (its log is above)"
		fi
		nap
	done
	[ -s "$LDAP/slapd.pid" ] || die "slapd wrote no $LDAP/slapd.pid"

	selfcheck
	mkenv
	trap - EXIT
}

# mktls: a CA of the directory, the server's certificate from it, and an
# unrelated CA for "wrong CA" tests. P-256 keys: GnuTLS (Debian's libldap
# and slapd) takes them, and they are made in no time.
mktls() {
	: > "$TLS/db/index.txt"
	echo 01 > "$TLS/db/serial"
	cat > "$TLS/ca.cnf" <<EOF
# written by tests/mkldap.sh
[ ca ]
default_ca = tlsca

[ tlsca ]
database        = $TLS/db/index.txt
serial          = $TLS/db/serial
new_certs_dir   = $TLS/db
default_md      = sha256
policy          = policy_any
unique_subject  = no
email_in_dn     = no
copy_extensions = none

[ policy_any ]
organizationName = optional
commonName       = supplied

[ req ]
distinguished_name = req_dn
prompt             = no

[ req_dn ]
CN = unused

[ v3_ca ]
basicConstraints     = critical, CA:TRUE
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[ v3_server ]
basicConstraints       = critical, CA:FALSE
keyUsage               = critical, digitalSignature
extendedKeyUsage       = serverAuth
subjectAltName         = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
	yesterday=$(( $(date -u +%s) - 86400 ))
	start_date=$(date -u -d "@$yesterday" +%Y%m%d%H%M%SZ) ||
		die "cannot compute a start date with date(1)"
	(
		umask 077
		for k in ldap-ca server other-ca; do
			ossl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 \
				-pkeyopt ec_param_enc:named_curve -out "$TLS/$k.key"
		done
	)
	# selfsign NAME SUBJECT
	selfsign() {
		ossl req -new -config "$TLS/ca.cnf" -key "$TLS/$1.key" -subj "$2" \
			-out "$TLS/db/$1.csr"
		ossl ca -batch -notext -config "$TLS/ca.cnf" -rand_serial -selfsign \
			-keyfile "$TLS/$1.key" -in "$TLS/db/$1.csr" -out "$TLS/$1.crt" \
			-extensions v3_ca -startdate "$start_date" -days 60
	}
	selfsign ldap-ca "/O=PIV Test LDAP/CN=PIV Test LDAP CA"
	selfsign other-ca "/O=PIV Test LDAP/CN=Some Other CA"
	ossl req -new -config "$TLS/ca.cnf" -key "$TLS/server.key" \
		-subj "/O=PIV Test LDAP/CN=127.0.0.1" -out "$TLS/db/server.csr"
	ossl ca -batch -notext -config "$TLS/ca.cnf" -rand_serial \
		-cert "$TLS/ldap-ca.crt" -keyfile "$TLS/ldap-ca.key" \
		-in "$TLS/db/server.csr" -out "$TLS/server.crt" \
		-extensions v3_server -startdate "$start_date" -days 30
	v=$(openssl verify -CAfile "$TLS/ldap-ca.crt" -purpose sslserver \
		"$TLS/server.crt" 2>&1) || die "server.crt does not verify: $v"
	rm -f "$LOG"
}

mkschema() {
	cat > "$LDAP/piv-test.schema" <<'EOF'
# written by tests/mkldap.sh: schema of the pam_piv tests only.
# 1.3.6.1.4.1.55555.1 is a made-up arc for these tests; never use it in a
# real directory.

# A whole DER certificate, compared byte for byte. OpenLDAP's userCertificate
# uses certificateExactMatch, which takes a serial and issuer, not a DER
# certificate, as its assertion value.
attributetype ( 1.3.6.1.4.1.55555.1.1 NAME 'pivCertificate'
	DESC 'test only: a whole DER certificate'
	EQUALITY octetStringMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.40 )

# Active Directory's explicit certificate mappings ("X509:<I>...<SR>...",
# "X509:<SKI>...") as in AD: a multi-valued Directory String.
attributetype ( 1.3.6.1.4.1.55555.1.2 NAME 'altSecurityIdentities'
	DESC 'test only: as in Active Directory'
	EQUALITY caseIgnoreMatch
	SUBSTR caseIgnoreSubstringsMatch
	SYNTAX 1.3.6.1.4.1.1466.115.121.1.15 )

objectclass ( 1.3.6.1.4.1.55555.1.3 NAME 'pivTestUser'
	DESC 'test only: an account with certificate mappings'
	SUP top AUXILIARY
	MAY ( pivCertificate $ altSecurityIdentities $ userCertificate ) )
EOF
}

# mkconf ROOTPW
mkconf() {
	(
		umask 077
		cat > "$CONF" <<EOF
# written by tests/mkldap.sh
include $SCHEMA_DIR/core.schema
include $SCHEMA_DIR/cosine.schema
include $SCHEMA_DIR/inetorgperson.schema
include $SCHEMA_DIR/nis.schema
include $LDAP/piv-test.schema

modulepath $MODULE_DIR
moduleload back_mdb
pidfile $LDAP/slapd.pid
argsfile $LDAP/slapd.args
# nothing to syslog (the host's, even in a network namespace): slapd runs
# with -d stats, its log is slapd.log
loglevel 0

TLSCACertificateFile $TLS/ldap-ca.crt
TLSCertificateFile $TLS/server.crt
TLSCertificateKeyFile $TLS/server.key

database mdb
maxsize 10485760
suffix "$SUFFIX"
rootdn "$ROOT_DN"
rootpw $1
directory $LDAP/db

# Restricted: only the service account reads it, never anonymous
access to dn.subtree="$RESTRICTED"
	by dn.exact="$BIND_DN" read
	by anonymous auth
	by * none
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by * read
EOF
	)
}

# mkdata: data.ldif, every certificate value taken from the PKI; 0600, for
# the service account's password is in it
mkdata() {
	altsec_alice_sr=$(altsec_sr "$PKI/alice-rsa2048.crt")
	altsec_alice_ski=$(altsec_ski "$PKI/alice-p384.crt")
	(
		umask 077
		ldif > "$LDAP/data.ldif"
	)
}

# ldif: the entries
ldif() {
	# person PARENT UID NUMBER [ATTRIBUTE-LINES]: an account below PARENT
	person() {
		cat <<EOF
dn: uid=$2,$1
objectClass: inetOrgPerson
objectClass: posixAccount
objectClass: pivTestUser
uid: $2
cn: $2
sn: $2
uidNumber: $3
gidNumber: $3
homeDirectory: /home/$2
mail: $2@example.test
${4:-}
EOF
	}
	cat <<EOF
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: example
o: PIV Test

dn: $PEOPLE
objectClass: organizationalUnit
ou: People

dn: $RESTRICTED
objectClass: organizationalUnit
ou: Restricted

dn: ou=Services,$SUFFIX
objectClass: organizationalUnit
ou: Services

dn: $BIND_DN
objectClass: applicationProcess
objectClass: simpleSecurityObject
cn: pam
userPassword: $bind_pw

EOF
	person "$PEOPLE" alice 1001 "pivCertificate:< file://$PKI/alice-p256.der
userCertificate;binary:< file://$PKI/alice-p256.der
altSecurityIdentities: $altsec_alice_sr
altSecurityIdentities: $altsec_alice_ski
"
	person "$PEOPLE" bob 1002 "pivCertificate:< file://$PKI/bob-p256.der
"
	# two accounts with one certificate: the mapping is ambiguous
	person "$PEOPLE" carol 1003 "pivCertificate:< file://$PKI/carol-p256.der
"
	person "$PEOPLE" carol2 1004 "pivCertificate:< file://$PKI/carol-p256.der
"
	person "$PEOPLE" dave 1005
	# readable only by the service account
	person "$RESTRICTED" erin 1006 "pivCertificate:< file://$PKI/alice-p384.der
"
}

# selfcheck: the directory answers as the tests expect; a message and
# non-zero on the first failure
selfcheck() {
	anon="-x -H $LDAP_URI"
	# shellcheck disable=SC2086 # anon is a list of arguments
	{
		expect "whole-DER pivCertificate filter (alice-p256)" \
			"$(uids $anon -b "$PEOPLE" "(pivCertificate=$(filterhex "$PKI/alice-p256.der"))")" alice
		expect "altSecurityIdentities <I><SR> (alice-rsa2048)" \
			"$(uids $anon -b "$PEOPLE" "(altSecurityIdentities=$(filteresc "$altsec_alice_sr"))")" alice
		lower=$(printf '%s' "${altsec_alice_sr%%<SR>*}" | tr '[:upper:]' '[:lower:]')"<SR>${altsec_alice_sr#*<SR>}"
		expect "altSecurityIdentities with a lower-case issuer" \
			"$(uids $anon -b "$PEOPLE" "(altSecurityIdentities=$(filteresc "$lower"))")" alice
		expect "altSecurityIdentities <SKI> (alice-p384)" \
			"$(uids $anon -b "$PEOPLE" "(altSecurityIdentities=$(filteresc "$altsec_alice_ski"))")" alice
		expect "ambiguous carol-p256" \
			"$(uids $anon -b "$PEOPLE" "(pivCertificate=$(filterhex "$PKI/carol-p256.der"))")" "carol carol2"
		erin="(pivCertificate=$(filterhex "$PKI/alice-p384.der"))"
		expect "anonymous search for erin" "$(uids $anon -b "$SUFFIX" "$erin")" ""
		expect "erin as $BIND_DN" \
			"$(uids $anon -D "$BIND_DN" -y "$LDAP/bind.pw" -b "$SUFFIX" "$erin")" erin
		expect "dave has no certificate" \
			"$(uids $anon -b "$PEOPLE" "(&(uid=dave)(pivCertificate=*))")" ""
		expect "ldapi" "$(uids -x -H "$LDAPI_URI" -b "$PEOPLE" "(uid=bob)")" bob
	}
	# -ZZ: StartTLS must succeed, no fallback to plain text
	out=$(qtls "$TLS/ldap-ca.crt" -x -ZZ -H "$LDAP_URI" -b "$PEOPLE" "(uid=bob)" uid 2>&1) ||
		die "self-check failed: StartTLS with ldap-ca.crt: $out"
	expect "StartTLS search" "$(printf '%s\n' "$out" | sed -n 's/^uid: //p')" bob
	out=$(qtls "$TLS/ldap-ca.crt" -x -H "$LDAPS_URI" -b "$PEOPLE" "(uid=bob)" uid 2>&1) ||
		die "self-check failed: ldaps with ldap-ca.crt: $out"
	expect "ldaps search" "$(printf '%s\n' "$out" | sed -n 's/^uid: //p')" bob
	# the wrong CA: the handshake fails (ldapsearch says no more than this)
	if out=$(qtls "$TLS/other-ca.crt" -x -ZZ -H "$LDAP_URI" -b "$PEOPLE" "(uid=bob)" uid 2>&1); then
		die "self-check failed: StartTLS works with other-ca.crt"
	fi
	case $out in
	*"ldap_start_tls: Connect error"*) ;;
	*) die "self-check failed: StartTLS with other-ca.crt fails for another reason: $out" ;;
	esac
	if out=$(qtls "$TLS/other-ca.crt" -x -H "$LDAPS_URI" -b "$PEOPLE" "(uid=bob)" uid 2>&1); then
		die "self-check failed: ldaps works with other-ca.crt"
	fi
	case $out in
	*"Can't contact LDAP server"*) ;;
	*) die "self-check failed: ldaps with other-ca.crt fails for another reason: $out" ;;
	esac
}

mkenv() {
	case $LDAP$altsec_alice_sr$altsec_alice_ski in
	*"'"*) die "a quote in a value of $LDAP/env" ;;
	esac
	cat > "$LDAP/env" <<EOF
# written by tests/mkldap.sh: the private slapd of the PAM tests
PIV_LDAP_URI='$LDAP_URI'
PIV_LDAPS_URI='$LDAPS_URI'
PIV_LDAPI_URI='$LDAPI_URI'
PIV_LDAP_SUFFIX='$SUFFIX'
PIV_LDAP_BASE='$PEOPLE'
PIV_LDAP_CA='$TLS/ldap-ca.crt'
PIV_LDAP_OTHER_CA='$TLS/other-ca.crt'
PIV_LDAP_BIND_DN='$BIND_DN'
PIV_LDAP_PW='$LDAP/bind.pw'
PIV_LDAP_PW_NL='$LDAP/bind-nl.pw'
# the rootdn, to change the directory from a test
PIV_LDAP_ROOT_DN='$ROOT_DN'
PIV_LDAP_ROOT_PW='$LDAP/admin.pw'
# alice's AD mappings as stored (alice-rsa2048 by issuer and serial, alice-p384 by SKI)
PIV_LDAP_ALTSEC_SR='$altsec_alice_sr'
PIV_LDAP_ALTSEC_SKI='$altsec_alice_ski'
export PIV_LDAP_URI PIV_LDAPS_URI PIV_LDAPI_URI PIV_LDAP_SUFFIX PIV_LDAP_BASE
export PIV_LDAP_CA PIV_LDAP_OTHER_CA PIV_LDAP_BIND_DN PIV_LDAP_PW PIV_LDAP_PW_NL
export PIV_LDAP_ROOT_DN PIV_LDAP_ROOT_PW PIV_LDAP_ALTSEC_SR PIV_LDAP_ALTSEC_SKI
EOF
}

case $ACTION in
start) start ;;
stop) stop ;;
*) die "usage: mkldap.sh start|stop FX" ;;
esac
