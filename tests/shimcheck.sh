#!/bin/sh
# Checks that every fault of the test PKCS#11 module tests/p11shim.c shows
# up as designed, seen through OpenSC's pkcs11-tool against a SoftHSM token
# of its own (made here with tests/mktoken.sh): one ok/not ok line each.
# Usage: tests/shimcheck.sh [-v] [SHIM.so]
#   SHIM.so defaults to $PIV_SHIM, then tests/.libs/libp11shim.so here;
#   -v shows pkcs11-tool's output and the shim's log for every check.
set -u

here=$(cd "$(dirname "$0")" && pwd)
VERBOSE=
[ "${1:-}" = -v ] && { VERBOSE=1; shift; }
SHIM=${1:-${PIV_SHIM:-$here/.libs/libp11shim.so}}
die() { printf 'shimcheck: %s\n' "$*" >&2; exit 2; }

[ -f "$SHIM" ] || die "no shim at $SHIM (make tests/libp11shim.la)"
# A sanitizer build's shim needs its runtimes first in pkcs11-tool, whose
# own leaks are not ours; the crashes on purpose are not reports either.
SAN_PRELOAD=$(ldd "$SHIM" | awk '/lib(a|ub)san\.so/ { printf "%s%s", sep, $3; sep = ":" }')
if [ -n "$SAN_PRELOAD" ]; then
	export LD_PRELOAD="$SAN_PRELOAD"
	export ASAN_OPTIONS="detect_leaks=0:handle_segv=0"
fi
for tool in pkcs11-tool softhsm2-util openssl cmp od timeout; do
	command -v "$tool" >/dev/null 2>&1 || die "$tool not found"
done
# Nothing of the caller's may change what the shim does.
for v in $(env | sed -n 's/^\(P11SHIM_[A-Z_]*\)=.*/\1/p'); do
	unset "$v"
done

TMP=$(mktemp -d "${TMPDIR:-/tmp}/shimcheck.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$TMP"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM
cd "$TMP" || exit 2

# ---- a card: an EC P-256 key and its certificate (CKA_ID 01), and a
# second certificate whose key is not on the card
mkcert() {
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$1.key" -out "$1.pem" -subj "/CN=shimcheck $1" -days 30 \
		>/dev/null 2>&1 &&
		openssl x509 -in "$1.pem" -outform DER -out "$1.der"
}
mkcert card || die "cannot make a certificate"
mkcert other || die "cannot make a certificate"
sh "$here/mktoken.sh" tok shimcheck --cert card.der --key card.key ||
	die "cannot make the token"
SOFTHSM2_CONF=$TMP/tok/softhsm2.conf
export SOFTHSM2_CONF
PIN=123456
CERT_LEN=$(wc -c <card.der)
HALF=$((CERT_LEN / 2))
printf 'the challenge' | openssl dgst -sha256 -binary >digest
# the same digest with its last byte inverted: what P11SHIM_SIG=other signs
last=$(tail -c 1 digest | od -An -tu1 | tr -d ' ')
head -c 31 digest >digest.other
# shellcheck disable=SC2059 # an octal escape built on purpose
printf "\\$(printf %03o $((255 - last)))" >>digest.other

# ---- running pkcs11-tool through the shim
# p11 'VAR=VALUE ...' ARGS...: pkcs11-tool --module SHIM ARGS with those
# P11SHIM_* variables (values without blanks); leaves out, err, log, $rc.
p11() {
	vars=$1
	shift
	rm -f out err log obj sig
	set -f
	# shellcheck disable=SC2086 # the variables are split on purpose
	env $vars P11SHIM_LOG="$TMP/log" timeout 60 \
		pkcs11-tool --module "$SHIM" "$@" >out 2>err
	rc=$?
	set +f
	touch log obj sig
	if [ -n "$VERBOSE" ]; then
		printf '  $ %s pkcs11-tool %s  => %s\n' "$vars" "$*" "$rc"
		sed 's/^/  | /' out err
		grep -v '^process ' log | sed 's/^/  log: /'
	fi
}
read_cert() { p11 "$1" --token-label shimcheck --read-object --type cert --id "${2:-01}" -o obj; }
sign() { p11 "$1" --token-label shimcheck --login --pin $PIN --sign --id 01 -m ECDSA -i digest -o sig; }
# verify SIGFILE DIGESTFILE: does the card's key sign it (through SoftHSM)?
verify() {
	env SOFTHSM2_CONF="$SOFTHSM2_CONF" pkcs11-tool --module "$SHIM" \
		--token-label shimcheck --verify --id 01 -m ECDSA -i "$2" \
		--signature-file "$1" 2>/dev/null | grep -q '^Signature is valid'
}
size() { wc -c <"$1" | tr -d ' '; }
has() { grep -q -- "$1" "$2"; }
count() { grep -c -- "$1" "$2"; }

n=0
failed=0
check() {
	n=$((n + 1))
	name=$1
	shift
	if "$@"; then
		echo "ok $n - $name"
	else
		echo "not ok $n - $name"
		failed=$((failed + 1))
		[ -n "$VERBOSE" ] || {
			sed 's/^/#   /' err | head -5
			grep -v '^process ' log | tail -5 | sed 's/^/#   log: /'
		}
	fi
}

# ---- without any knob the shim changes nothing
t_plain() {
	read_cert "" && [ $rc -eq 0 ] && cmp -s obj card.der &&
		sign "" && [ $rc -eq 0 ] && verify sig digest
}
check "no knob: certificate and signature as on the card" t_plain

# ---- P11SHIM_FAIL, HANG, CRASH: any function, any CK_RV, the Nth call
t_fail_nth() {
	p11 "P11SHIM_FAIL=C_GetTokenInfo:CKR_DEVICE_ERROR:2" -L &&
		[ "$(count 'C_GetTokenInfo rv=0x30$' log)" -eq 1 ] &&
		[ "$(sed -n '/^C_GetTokenInfo/{p;q;}' log)" = "C_GetTokenInfo rv=0x0" ] &&
		has 'token label *: shimcheck' out && has CKR_DEVICE_ERROR out
}
check "FAIL=C_GetTokenInfo:CKR_DEVICE_ERROR:2: only the 2nd C_GetTokenInfo fails" t_fail_nth
t_fail_pulled() {
	# pkcs11-tool answers a failed C_Sign by starting over with C_SignInit
	# and C_SignUpdate, which SoftHSM refuses for raw ECDSA: the C_SignInit
	# must succeed, as the injected failure ended SoftHSM's operation too.
	sign "P11SHIM_FAIL=C_Sign:CKR_DEVICE_REMOVED:1" && [ $rc -ne 0 ] &&
		[ "$(size sig)" -eq 0 ] && has '^C_Login user=1 rv=0x0$' log &&
		[ "$(grep -A1 '^C_Sign rv=0x32$' log | sed -n 2p)" = "C_SignInit mech=0x1041 rv=0x0" ]
}
check "FAIL=C_Sign:CKR_DEVICE_REMOVED:1: card pulled after a good C_Login" t_fail_pulled
t_fail_number() {
	sign "P11SHIM_FAIL=C_Login:0xa0" && [ $rc -ne 0 ] &&
		has 'C_Login failed: rv = CKR_PIN_INCORRECT' err &&
		p11 "P11SHIM_FAIL=C_GetInfo:6" -I && [ $rc -ne 0 ] &&
		has 'C_GetInfo.*CKR_FUNCTION_FAILED' err
}
check "FAIL=C_Login:0xa0, C_GetInfo:6: return values by number, forwarded functions too" t_fail_number
t_hang_nth() {
	env P11SHIM_HANG=C_GetTokenInfo:2 P11SHIM_LOG="$TMP/log" timeout 5 \
		pkcs11-tool --module "$SHIM" -L >out 2>err
	rc=$?
	[ $rc -eq 124 ] && has '^C_GetTokenInfo rv=0x0$' log && has '^C_GetTokenInfo hang$' log
}
rm -f log
check "HANG=C_GetTokenInfo:2: the 2nd C_GetTokenInfo never returns" t_hang_nth
t_crash_nth() {
	rm -f log
	p11 "P11SHIM_CRASH=C_GetTokenInfo:2" -L
	[ $rc -eq 139 ] && [ "$(count '^C_GetTokenInfo rv=0x0$' log)" -eq 1 ] &&
		has '^C_GetTokenInfo crash$' log
}
check "CRASH=C_GetTokenInfo:2: dies of SIGSEGV in the 2nd C_GetTokenInfo" t_crash_nth
t_config_error() {
	for bad in P11SHIM_FAIL=C_Sign:CKR_NOPE P11SHIM_FAIL=C_Sign:CKR_OK:0 \
		P11SHIM_HANG=C_Nope P11SHIM_SIG=longer P11SHIM_SLOTS=2000 \
		P11SHIM_OBJECTS=3:/nonexistent P11SHIM_CERT=other: \
		P11SHIM_REMOVED_AFTER=C_Login:x P11SHIM_ATTR_LEN=big; do
		p11 "$bad" -L
		[ $rc -ne 0 ] && has 'p11shim: config error' err || return 1
	done
}
check "a bad value in any knob fails C_Initialize" t_config_error

# ---- P11SHIM_ATTR_LEN: CKA_VALUE of certificates
t_attr_huge() {
	read_cert "P11SHIM_ATTR_LEN=huge" && has 'size query says 0x7fffffff' log &&
		[ $rc -eq 0 ] && cmp -s obj card.der
}
check "ATTR_LEN=huge: size query 0x7fffffff (pkcs11-tool allocates it, reads the real value)" t_attr_huge
t_attr_unavailable() {
	read_cert "P11SHIM_ATTR_LEN=unavailable" &&
		has 'size query says 0xffffffffffffffff' log && [ $rc -ne 0 ] &&
		has 'get CKA_VALUE failed' err
}
check "ATTR_LEN=unavailable: size query CK_UNAVAILABLE_INFORMATION with CKR_OK" t_attr_unavailable
t_attr_zero() {
	read_cert "P11SHIM_ATTR_LEN=zero" && has 'size query says 0x0$' log &&
		[ $rc -ne 0 ] && has 'get CKA_VALUE failed' err
}
check "ATTR_LEN=zero: size query 0" t_attr_zero
t_attr_number() {
	read_cert "P11SHIM_ATTR_LEN=65537" && has 'size query says 0x10001$' log &&
		[ $rc -eq 0 ] && cmp -s obj card.der
}
check "ATTR_LEN=65537: size query just above 64 KiB" t_attr_number
t_attr_grow() {
	read_cert "P11SHIM_ATTR_LEN=grow" &&
		has "CKA_VALUE of $CERT_LEN bytes into $CERT_LEN: read says $((CERT_LEN + 1))" log &&
		[ "$(size obj)" -eq $((CERT_LEN + 1)) ] && cmp -s -n "$CERT_LEN" obj card.der
}
check "ATTR_LEN=grow: the read says 1 byte more than the buffer (pkcs11-tool writes it out)" t_attr_grow
t_attr_shrink() {
	read_cert "P11SHIM_ATTR_LEN=shrink" && [ $rc -eq 0 ] &&
		[ "$(size obj)" -eq "$HALF" ] && cmp -s -n "$HALF" obj card.der
}
check "ATTR_LEN=shrink: the read gives and says half the announced length" t_attr_shrink
t_attr_underfill() {
	read_cert "P11SHIM_ATTR_LEN=underfill" && [ $rc -eq 0 ] &&
		has "read gives $HALF, says $CERT_LEN" log &&
		[ "$(size obj)" -eq "$CERT_LEN" ] && cmp -s -n "$HALF" obj card.der &&
		! cmp -s obj card.der
}
check "ATTR_LEN=underfill: the read says the full length, fills half" t_attr_underfill

# ---- P11SHIM_CERT
t_cert_truncated() {
	read_cert "P11SHIM_CERT=truncated" && [ $rc -eq 0 ] &&
		[ "$(size obj)" -eq "$HALF" ] && cmp -s -n "$HALF" obj card.der
}
check "CERT=truncated: first half of the certificate" t_cert_truncated
t_cert_garbage() {
	read_cert "P11SHIM_CERT=garbage" && [ $rc -eq 0 ] && mv obj garbage1 &&
		read_cert "P11SHIM_CERT=garbage" && cmp -s obj garbage1 &&
		[ "$(size obj)" -eq "$CERT_LEN" ] && ! cmp -s obj card.der &&
		! openssl x509 -inform DER -in obj -noout 2>/dev/null
}
check "CERT=garbage: as many bytes, not a certificate, the same every run" t_cert_garbage
t_cert_other() {
	read_cert "P11SHIM_CERT=other:$TMP/other.der" && [ $rc -eq 0 ] &&
		cmp -s obj other.der && openssl x509 -inform DER -in obj -noout &&
		p11 "P11SHIM_CERT=other:$TMP/other.der" --token-label shimcheck -O --type cert &&
		has 'subject: *DN: CN=shimcheck card' out
}
check "CERT=other:PATH: another valid certificate (CKA_SUBJECT stays the card's)" t_cert_other
t_cert_and_len() {
	read_cert "P11SHIM_CERT=truncated P11SHIM_ATTR_LEN=shrink" && [ $rc -eq 0 ] &&
		[ "$(size obj)" -eq $((HALF / 2)) ] && cmp -s -n $((HALF / 2)) obj card.der
}
check "CERT=truncated with ATTR_LEN=shrink: the lies stack" t_cert_and_len

# ---- P11SHIM_SIG (ECDSA P-256: 64 bytes r||s)
t_sig_short() {
	sign "P11SHIM_SIG=short" && [ $rc -eq 0 ] && [ "$(size sig)" -eq 63 ] &&
		! verify sig digest
}
check "SIG=short: 63-byte signature, does not verify" t_sig_short
t_sig_long() {
	sign "P11SHIM_SIG=long" && [ $rc -eq 0 ] && [ "$(size sig)" -eq 65 ] &&
		head -c 64 sig >sig64 && verify sig64 digest
}
check "SIG=long: 65 bytes, the real signature and a 0 byte" t_sig_long
t_sig_zeros() {
	sign "P11SHIM_SIG=zeros" && [ $rc -eq 0 ] && [ "$(size sig)" -eq 64 ] &&
		[ "$(tr -d '\000' <sig | wc -c)" -eq 0 ] && ! verify sig digest
}
check "SIG=zeros: 64 zero bytes" t_sig_zeros
t_sig_other() {
	sign "P11SHIM_SIG=other" && [ $rc -eq 0 ] && [ "$(size sig)" -eq 64 ] &&
		! verify sig digest && verify sig digest.other
}
check "SIG=other: a valid signature by the card's key of another digest" t_sig_other

# ---- P11SHIM_SLOTS
t_slots() {
	p11 "P11SHIM_SLOTS=64" -L && [ $rc -eq 0 ] &&
		[ "$(count '^Slot [0-9]* (0xf15100[0-3][0-9a-f]): p11shim fake slot' out)" -eq 64 ] &&
		[ "$(count 'token label *: p11shim empty' out)" -eq 64 ] &&
		[ "$(count '^Slot ' out)" -eq 66 ] &&
		has '^Slot 0 (0xf1510000)' out && has '^Slot 64 .*SoftHSM' out
}
check "SLOTS=64: 64 fake slots with initialized tokens, before the 2 real ones" t_slots
t_slots_last() {
	p11 "P11SHIM_SLOTS=3:last" -L && [ $rc -eq 0 ] &&
		has '^Slot 0 .*SoftHSM' out && has '^Slot 4 (0xf1510002)' out
}
check "SLOTS=3:last: fake slots after the real ones" t_slots_last
t_slots_token() {
	p11 "P11SHIM_SLOTS=64" --slot 0xf1510007 --login --pin $PIN -O &&
		[ $rc -eq 0 ] && ! has 'Object;' out &&
		has '^C_Login user=1 rv=0x0$' log && has '^C_FindObjects rv=0x0$' log &&
		has '^C_FindObjectsFinal rv=0x0$' log &&
		p11 "P11SHIM_SLOTS=64" --slot 0xf1510007 --login --pin 000000 -O &&
		has 'CKR_PIN_INCORRECT' err &&
		sign "P11SHIM_SLOTS=64" && [ $rc -eq 0 ] && verify sig digest
}
check "SLOTS=64: a fake token logs in, finds nothing; the real card still signs" t_slots_token

# ---- P11SHIM_OBJECTS
t_objects() {
	p11 "P11SHIM_OBJECTS=500" --token-label shimcheck -O --type cert &&
		[ $rc -eq 0 ] && [ "$(count '^Certificate Object' out)" -eq 501 ] &&
		[ "$(sed -n 's/^ *ID: *\(f1....\)$/\1/p' out | sort -u | wc -l)" -eq 500 ] &&
		has '500 fake objects match' log
}
check "OBJECTS=500: 500 more certificates with distinct CKA_IDs" t_objects
t_objects_read() {
	read_cert "P11SHIM_OBJECTS=500" f101f3 && [ $rc -eq 0 ] &&
		[ "$(size obj)" -eq 768 ] && mv obj garbage499 &&
		read_cert "P11SHIM_OBJECTS=500" f10000 && ! cmp -s obj garbage499 &&
		read_cert "P11SHIM_OBJECTS=500" && cmp -s obj card.der &&
		has '^C_FindObjectsInit lie: 0 fake objects match' log
}
check "OBJECTS=500: each reads as its own garbage; --id 01 matches no fake one" t_objects_read
t_objects_other() {
	p11 "P11SHIM_OBJECTS=3:first:$TMP/other.der" --token-label shimcheck -O --type cert &&
		[ $rc -eq 0 ] &&
		[ "$(sed -n 's/^ *label: *//p' out | head -1)" = "p11shim extra certificate 0" ] &&
		[ "$(count '^Certificate Object' out)" -eq 4 ] &&
		read_cert "P11SHIM_OBJECTS=3:first:$TMP/other.der" f10002 && cmp -s obj other.der
}
check "OBJECTS=3:first:PATH: a real other certificate each, found first" t_objects_other

# ---- already logged in
t_already() {
	sign "P11SHIM_LOGIN_RV=already_logged_in" && [ $rc -ne 0 ] &&
		has '^C_Login user=1 rv=0x100$' log &&
		has 'C_Login failed: rv = CKR_USER_ALREADY_LOGGED_IN' err &&
		sign "P11SHIM_FAIL=C_Login:CKR_USER_ALREADY_LOGGED_IN:1" &&
		has '^C_Login user=1 rv=0x100$' log
}
check "LOGIN_RV=already_logged_in (or FAIL=C_Login:CKR_USER_ALREADY_LOGGED_IN:1)" t_already

# ---- P11SHIM_REMOVED_AFTER
t_removed_login() {
	sign "P11SHIM_REMOVED_AFTER=C_Login" && [ $rc -ne 0 ] &&
		has '^C_Login user=1 card removed$' log &&
		has 'failed: rv = CKR_DEVICE_REMOVED' err
}
check "REMOVED_AFTER=C_Login: every call after a good login says CKR_DEVICE_REMOVED" t_removed_login
t_removed_rv() {
	sign "P11SHIM_REMOVED_AFTER=C_Login P11SHIM_REMOVED_RV=CKR_SESSION_HANDLE_INVALID" &&
		[ $rc -ne 0 ] && has 'failed: rv = CKR_SESSION_HANDLE_INVALID' err
}
check "REMOVED_RV=CKR_SESSION_HANDLE_INVALID: the return value after removal" t_removed_rv
t_removed_sign() {
	sign "P11SHIM_REMOVED_AFTER=C_Sign" && [ $rc -eq 0 ] && verify sig digest &&
		has '^C_Sign card removed$' log && has '^C_CloseSession rv=0x0$' log
}
check "REMOVED_AFTER=C_Sign: the signature arrives, C_CloseSession still reaches SoftHSM" t_removed_sign
t_removed_slots() {
	p11 "P11SHIM_REMOVED_AFTER=C_GetTokenInfo P11SHIM_SLOTS=2" -L && [ $rc -eq 0 ] &&
		[ "$(count 'token label *: p11shim empty' out)" -eq 2 ] &&
		has 'token label *: shimcheck' out &&
		[ "$(sed -n '/^Slot 3 /{n;p;}' out)" = "  (empty)" ] &&
		p11 "P11SHIM_REMOVED_AFTER=C_GetSlotList:1" -T && [ $rc -ne 0 ] &&
		has '^No slots' err && has '^C_GetSlotList lie: 0 fake and 0 real slots' log
}
check "REMOVED_AFTER=C_GetTokenInfo, C_GetSlotList:1: real tokens vanish, fake ones stay" t_removed_slots

# ---- everything at once, and against the fake handles
t_combined() {
	vars="P11SHIM_SLOTS=8 P11SHIM_OBJECTS=20 P11SHIM_CERT=truncated P11SHIM_SIG=zeros P11SHIM_ALWAYS_AUTH=1 P11SHIM_FAIL=C_GetInfo:CKR_OK"
	read_cert "$vars" && [ $rc -eq 0 ] && [ "$(size obj)" -eq "$HALF" ] &&
		sign "$vars" && [ $rc -eq 0 ] && [ "$(size sig)" -eq 64 ] &&
		has '^C_Login user=2 rv=0x0$' log && has 'signature of 64 bytes zeroed' log &&
		p11 "$vars" --token-label shimcheck -O && [ $rc -eq 0 ] &&
		[ "$(count '^Certificate Object' out)" -eq 21 ]
}
check "SLOTS, OBJECTS, CERT, SIG, ALWAYS_AUTH and FAIL together" t_combined
t_torture() {
	vars="P11SHIM_SLOTS=4 P11SHIM_OBJECTS=30 P11SHIM_ATTR_LEN=grow P11SHIM_CERT=garbage P11SHIM_SIG=long P11SHIM_REMOVED_AFTER=C_Sign"
	for args in "-L" "-O" "--test --login --pin $PIN" "--slot 0xf1510001 --test --login --pin $PIN" \
		"--slot 0xf1510003 --list-mechanisms" "--token-label shimcheck --login --pin $PIN -O"; do
		# shellcheck disable=SC2086 # the arguments are split on purpose
		p11 "$vars" $args
		[ $rc -lt 124 ] || return 1
	done
}
check "all knobs through pkcs11-tool --test and listings: the shim never crashes" t_torture

echo "1..$n"
[ "$failed" -eq 0 ] || { echo "# $failed of $n checks failed"; exit 1; }
