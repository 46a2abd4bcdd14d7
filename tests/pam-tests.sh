#!/bin/sh
# Runs the PAM integration tests (tests/pam/test_*) in a real libpam stack under
# pam_wrapper and nss_wrapper, after building the test PKI and the SoftHSM2
# virtual PIV cards. Needs root: configuration files must be root-owned.
set -eu

: "${top_srcdir:?run through make check}" "${top_builddir:?}"
if [ "$(id -u)" != 0 ]; then
	echo "pam-tests: must run as root (pam_piv only trusts root-owned configuration)" >&2
	exit 77
fi
# OpenSSL 3.0's OCSP responder binds every interface, so the whole suite
# runs in a private network namespace that has only a loopback interface:
# the servers are reachable from the tests and from nothing else. It also
# runs in a private mount namespace (private propagation), where the sshd
# and sudo tests bind-mount their accounts, sudoers and PAM stacks over the
# system's files: those mounts exist only for the processes of the tests.
if [ -z "${PIV_NETNS:-}" ]; then
	PIV_NETNS=1 exec unshare --net --mount --propagation private -- \
		sh -c 'ip link set lo up && exec sh "$0"' "$0"
fi
for lib in "$PAM_WRAPPER_LIB" "$NSS_WRAPPER_LIB" "$SOFTHSM2_MODULE" "$PIV_MODULE" "$PIV_SHIM" \
	"$PIV_NSS_MODULE"; do
	[ -f "$lib" ] || { echo "pam-tests: missing $lib" >&2; exit 1; }
done

PIV_FX="$top_builddir/tests/fx"
PIV_WORK="$PIV_FX/work"
PIV_WWW="$PIV_FX/www"
rm -rf "$PIV_FX"
mkdir -p "$PIV_WORK/svc" "$PIV_WWW"
chmod 700 "$PIV_FX"

# The CRL distribution points in the test certificates name this server, on
# 127.0.0.1 and a port the kernel picks; it ends with the tests (or by
# itself after its lifetime).
"$PIV_HTTPD" "$PIV_WWW" "$PIV_FX/httpd.port" --lifetime 900 &
httpd_pid=$!
trap 'kill "$httpd_pid" 2>/dev/null || true' EXIT INT TERM
responder_pids=""
i=0
while [ ! -s "$PIV_FX/httpd.port" ]; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || { echo "pam-tests: the test HTTP server did not start" >&2; exit 1; }
	sleep 0.05
done
PIV_HTTP_PORT=$(cat "$PIV_FX/httpd.port")
PIV_CRL_BASE="http://127.0.0.1:$PIV_HTTP_PORT"
# Inside the namespace every port is free: fixed ones for the responders.
PIV_OCSP_URL="http://127.0.0.1:8888"
export PIV_CRL_BASE PIV_OCSP_URL PIV_HTTP_PORT
sh "$top_srcdir/tests/mkfixtures.sh" "$PIV_FX"

# OCSP responders (openssl ocsp), each ending with the tests or by itself:
#   8888  the issuing CA's delegated responder (id-kp-OCSPSigning)
#   8889  the issuing CA answering itself
#   8890  signed by a key the CA never authorized (bob's card key)
pki="$PIV_FX/pki"
responder() { # port signer-cert signer-key
	timeout 900 openssl ocsp -index "$pki/ca/db/index.txt" -CA "$pki/ca/inter.crt" \
		-port "$1" -rsigner "$2" -rkey "$3" -ndays 1 >"$PIV_FX/ocsp-$1.log" 2>&1 &
	responder_pids="${responder_pids:-} $!"
}
responder 8888 "$pki/ocsp-signer.crt" "$pki/ocsp-signer.key"
responder 8889 "$pki/ca/inter.crt" "$pki/ca/inter.key"
responder 8890 "$pki/bob-p256.crt" "$pki/bob-p256.key"
# The directory for ldap: rules: OpenLDAP's slapd on 127.0.0.1:3389 (and
# StartTLS), :3636 (ldaps) and an ldapi socket, with entries computed from
# the test PKI; it ends with the tests or by itself.
# A private D-Bus with a fake logind (tests/login1d.c) for the card removal
# watcher (tests/pam/test_session): the watcher finds it through
# DBUS_SYSTEM_BUS_ADDRESS in its configured environment, never the real
# system bus. Watchers a failed case left behind end with it.
PIV_BUS_DIR="$PIV_FX/bus"
cleanup() {
	kill "$httpd_pid" $responder_pids 2>/dev/null || true
	sh "$top_srcdir/tests/mkldap.sh" stop "$PIV_FX" || true
	pkill -KILL -f "^pam-piv-watch --module $PIV_SHIM " 2>/dev/null || true
	sh "$top_srcdir/tests/mkbus.sh" stop "$PIV_BUS_DIR" || true
}
trap cleanup EXIT INT TERM
sh "$top_srcdir/tests/mkldap.sh" start "$PIV_FX"
PIV_BUS_ADDRESS=$(sh "$top_srcdir/tests/mkbus.sh" start "$PIV_BUS_DIR" "$PIV_LOGIN1D")
PIV_BUS_ADDRESS=${PIV_BUS_ADDRESS#DBUS_SYSTEM_BUS_ADDRESS=}
export PIV_BUS_DIR PIV_BUS_ADDRESS PIV_WATCHER
. "$PIV_FX/ldap/env"
export PIV_LDAP_URI PIV_LDAPS_URI PIV_LDAPI_URI PIV_LDAP_BASE PIV_LDAP_SUFFIX PIV_LDAP_CA \
	PIV_LDAP_OTHER_CA PIV_LDAP_BIND_DN PIV_LDAP_PW PIV_LDAP_PW_NL PIV_LDAP_ROOT_DN PIV_LDAP_ROOT_PW
for port in 8888 8889 8890; do
	i=0
	until openssl ocsp -issuer "$pki/ca/inter.crt" -cert "$pki/alice-p256.crt" \
		-url "http://127.0.0.1:$port" -noverify >/dev/null 2>&1; do
		i=$((i + 1))
		[ "$i" -lt 100 ] || { echo "pam-tests: OCSP responder $port did not start" >&2; exit 1; }
		sleep 0.05
	done
done
# Answers to replay through the HTTP server (it answers a POST with the
# file): one made for another request's nonce, one that went stale.
openssl ocsp -issuer "$pki/ca/inter.crt" -cert "$pki/alice-p256.crt" \
	-url "$PIV_OCSP_URL" -noverify -respout "$PIV_WWW/replay.ocsp" >/dev/null 2>&1
openssl ocsp -issuer "$pki/ca/inter.crt" -cert "$pki/alice-p256.crt" -no_nonce \
	-reqout "$PIV_FX/stale.req" >/dev/null 2>&1
faketime '3 days ago' openssl ocsp -index "$pki/ca/db/index.txt" -CA "$pki/ca/inter.crt" \
	-rsigner "$pki/ocsp-signer.crt" -rkey "$pki/ocsp-signer.key" -ndays 1 \
	-reqin "$PIV_FX/stale.req" -respout "$PIV_WWW/stale.ocsp" >/dev/null 2>&1
# Pre-produced answers (no nonce), for the replay tests: without nextUpdate
# (no -ndays) made now, ten minutes ago, and two years ago for
# alice-revoked while it was still good (an index from before the
# revocations); and a current one with a nextUpdate.
ocsp_answer() { # request answer-file [faketime-offset] [more openssl ocsp options]
	req=$1 answer=$2 when=${3:-now}
	shift 3
	index=$pki/ca/db/index.txt
	[ "$when" = "2 years ago" ] && index=$PIV_FX/index-before-revocation.txt
	faketime "$when" openssl ocsp -index "$index" -CA "$pki/ca/inter.crt" \
		-rsigner "$pki/ocsp-signer.crt" -rkey "$pki/ocsp-signer.key" "$@" \
		-reqin "$PIV_FX/$req" -respout "$PIV_WWW/$answer" >/dev/null 2>&1 ||
		{ echo "pam-tests: cannot make $answer" >&2; exit 1; }
}
sed 's/^R\t\([^\t]*\)\t[^\t]*\t/V\t\1\t\t/' "$pki/ca/db/index.txt" > "$PIV_FX/index-before-revocation.txt"
cp "$pki/ca/db/index.txt.attr" "$PIV_FX/index-before-revocation.txt.attr"
openssl ocsp -issuer "$pki/ca/inter.crt" -cert "$pki/alice-revoked.crt" -no_nonce \
	-reqout "$PIV_FX/revoked.req" >/dev/null 2>&1
ocsp_answer revoked.req old-good-revoked.ocsp "2 years ago"
ocsp_answer stale.req nonext-10min.ocsp "10 minutes ago"
ocsp_answer stale.req nonext-now.ocsp now
ocsp_answer stale.req nononce.ocsp now -ndays 1
ocsp_answer revoked.req stale-revoked.ocsp "3 days ago" -ndays 1
# A current answer signed with SHA-1 by the right responder, made as an
# outside responder would, with OpenSSL's default provider (an empty
# OPENSSL_CONF): in CI's FIPS stage this host's openssl refuses to sign it.
OPENSSL_CONF=/dev/null openssl ocsp -index "$pki/ca/db/index.txt" -CA "$pki/ca/inter.crt" \
	-rsigner "$pki/ocsp-signer.crt" -rkey "$pki/ocsp-signer.key" -ndays 1 -rmd sha1 \
	-reqin "$PIV_FX/stale.req" -respout "$PIV_WWW/sha1.ocsp" >/dev/null 2>&1 ||
	{ echo "pam-tests: cannot make sha1.ocsp" >&2; exit 1; }

# pam_wrapper copies the service directory when the process starts, so
# every stack the tests use is written here; each reads current.conf,
# which the tests rewrite case by case.
conf="config=$PIV_WORK/current.conf"
echo "auth required pam_deny.so" > "$PIV_WORK/svc/other"
echo "auth required $PIV_MODULE $conf" > "$PIV_WORK/svc/piv"
echo "auth required $PIV_MODULE $conf card_only" > "$PIV_WORK/svc/piv_cardonly"
echo "auth required $PIV_MODULE $conf bogus_key=1" > "$PIV_WORK/svc/piv_badarg"
echo "auth required $PIV_MODULE $conf map=name:{subject_dn_component.uid}" > "$PIV_WORK/svc/piv_argmap"
# The stacks of the anchors' CVEs: pam_piv "sufficient" before pam_deny, and
# Debian's "[success=1 default=ignore]" jump over pam_deny to pam_permit.
printf 'auth sufficient %s %s\nauth required pam_deny.so\n' "$PIV_MODULE" "$conf" \
	> "$PIV_WORK/svc/piv_sufficient"
printf 'auth [success=1 default=ignore] %s %s\nauth requisite pam_deny.so\nauth required pam_permit.so\n' \
	"$PIV_MODULE" "$conf" > "$PIV_WORK/svc/piv_jump"
# (pam_permit first: a stack whose only module ignores fails as a whole,
# so PAM_IGNORE shows as success and a refusal as the refusal)
printf 'account required pam_permit.so\naccount required %s %s sshd_key_check\n' \
	"$PIV_MODULE" "$conf" > "$PIV_WORK/svc/piv_keys"
printf 'session required pam_permit.so\nsession required %s %s sshd_key_check\n' \
	"$PIV_MODULE" "$conf" >> "$PIV_WORK/svc/piv_keys"
# Sessions (tests/pam/test_session): a card login, or a password login
# (pam_permit), each with pam_piv's session phase.
printf 'auth required %s %s\nsession required pam_permit.so\nsession required %s %s\n' \
	"$PIV_MODULE" "$conf" "$PIV_MODULE" "$conf" > "$PIV_WORK/svc/piv_session"
printf 'auth required pam_permit.so\nsession required pam_permit.so\nsession required %s %s\n' \
	"$PIV_MODULE" "$conf" > "$PIV_WORK/svc/piv_pwsession"
# Concurrent logins: one stack (and configuration, and card) per process.
i=0
while [ "$i" -lt 50 ]; do
	echo "auth required $PIV_MODULE config=$PIV_WORK/concurrent-$i.conf" > "$PIV_WORK/svc/piv_c$i"
	i=$((i + 1))
done

export PIV_FX PIV_WORK PIV_WWW
export PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$PIV_WORK/svc" PAM_WRAPPER_DEBUGLEVEL=2
export NSS_WRAPPER_PASSWD="$PIV_FX/passwd" NSS_WRAPPER_GROUP="$PIV_FX/group"
# and behind the files, a directory that matches names without case
# (tests/nss_pivtest.c: "ALICE" is alice)
export NSS_WRAPPER_MODULE_SO_PATH="$PIV_NSS_MODULE" NSS_WRAPPER_MODULE_FN_PREFIX=pivtest
# Sanitizer builds: the preloaded wrappers come before libasan, and
# RTLD_DEEPBIND (which ASan cannot live with) is turned off. Reports go to
# files, because the tests capture stderr to read pam_syslog lines.
# (pam_wrapper 1.1.4 reads UID_WRAPPER_DISABLE_DEEPBIND for its own libpam.)
export PAM_WRAPPER_DISABLE_DEEPBIND=1 NSS_WRAPPER_DISABLE_DEEPBIND=1 UID_WRAPPER_DISABLE_DEEPBIND=1
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:verify_asan_link_order=0:detect_leaks=1:log_path=$PIV_WORK/asan"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:print_stacktrace=1:log_path=$PIV_WORK/ubsan"
rc=0
# One program per concern (tests/pam/); PIV_TEST_GROUPS="mapping tools"
# runs only those, PIV_TEST_FILTER=test_ocsp_* only the matching cases.
# In a sanitizer build, LeakSanitizer's own tracer has been seen to crash
# at a group's exit ("Tracer caught signal 11 ... LeakSanitizer has
# encountered a fatal error"): no finding, but no leak check either. Such a
# group runs once more; a second tool failure, or any real report, fails.
lsan_tool_failure() { # REPORT...: true when each is only LSan's own failure
	for r in "$@"; do
		grep -q 'LeakSanitizer has encountered a fatal error' "$r" || return 1
		! grep -q -E 'ERROR: (AddressSanitizer|LeakSanitizer): ' "$r" || return 1
	done
}
for group in ${PIV_TEST_GROUPS:-card validation mapping access revocation tools session hostile}; do
	for attempt in 1 2; do
		echo "==== tests/pam/test_$group"
		mkdir -p "$PIV_WORK/san-$group"
		group_rc=0
		ASAN_OPTIONS="$ASAN_OPTIONS:log_path=$PIV_WORK/san-$group/asan" \
			LD_PRELOAD="$PAM_WRAPPER_LIB:$NSS_WRAPPER_LIB" "$top_builddir/tests/pam/test_$group" ||
			group_rc=$?
		set -- "$PIV_WORK/san-$group"/asan.*
		if [ "$attempt" = 1 ] && [ -f "$1" ] && lsan_tool_failure "$@"; then
			echo "==== tests/pam/test_$group: LeakSanitizer failed (its tracer), not a finding:"
			cat "$@"
			rm -f "$@"
			continue
		fi
		mv "$PIV_WORK/san-$group"/* "$PIV_WORK/" 2>/dev/null || true
		[ "$group_rc" = 0 ] || rc=1
		break
	done
done
# The real programs, with the samples of pam.d/ (not under the wrappers).
export PIV_MODULE PIV_HELPER PIV_CRL_BUILDER SOFTHSM2_MODULE PIV_FX PIV_HTTP_PORT top_srcdir top_builddir \
	PIV_CHECK_TOOL PIV_KEYS_TOOL
if [ -z "${PIV_TEST_FILTER:-}" ] || [ "${PIV_TEST_FILTER:-}" = real ]; then
	for t in ${PIV_REAL_TESTS:-ssh-tests.sh sudo-tests.sh login-tests.sh}; do
		[ -f "$top_srcdir/tests/$t" ] || continue
		echo "==== tests/$t"
		timeout 300 sh "$top_srcdir/tests/$t" || rc=1
	done
fi
# The soak once more under valgrind, last (it needs none of the servers):
# 200 mixed logins in this one process, no leak, no invalid access (not in
# a sanitizer build: the two do not mix; PIV_VALGRIND=0 leaves it out, as
# CI's distcheck does: about 2 minutes).
if { [ -z "${PIV_TEST_FILTER:-}" ] || [ "${PIV_TEST_FILTER:-}" = test_soak ]; } &&
	[ "${PIV_VALGRIND:-1}" != 0 ] && command -v valgrind >/dev/null 2>&1 &&
	! ldd "$PIV_MODULE" | grep -q 'libasan\.so'; then
	echo "==== test_soak under valgrind"
	PIV_TEST_FILTER=test_soak LD_PRELOAD="$PAM_WRAPPER_LIB:$NSS_WRAPPER_LIB" \
		timeout 900 valgrind --quiet --leak-check=full --errors-for-leak-kinds=definite \
		--error-exitcode=1 --num-callers=30 --log-file="$PIV_WORK/valgrind.log" \
		"$top_builddir/tests/pam/test_hostile" || { rc=1; cat "$PIV_WORK/valgrind.log"; }
fi
for report in "$PIV_WORK"/asan.* "$PIV_WORK"/ubsan.*; do
	[ -f "$report" ] || continue
	echo "==== sanitizer report $report" >&2
	cat "$report" >&2
	rc=1
done
exit $rc
