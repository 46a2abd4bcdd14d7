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
# two cards in two readers, as the fixtures' scenario "two": a SoftHSM
# instance of their own, so that the checks above keep one card
if ! sh "$here/mktoken.sh" two "Alice card" --cert card.der --key card.key ||
	! sh "$here/mktoken.sh" two "Bob card" --cert other.der --key other.key; then
	die "cannot make the tokens of two cards"
fi
TWO="SOFTHSM2_CONF=$TMP/two/softhsm2.conf"
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
		P11SHIM_REMOVED_AFTER=C_Login:x P11SHIM_ATTR_LEN=big \
		P11SHIM_SLOT_EVENTS=maybe P11SHIM_PRESENCE_LABEL= \
		P11SHIM_PRESENCE_LABEL=shimcheck \
		P11SHIM_PRESENCE_LABEL=123456789012345678901234567890123; do
		p11 "$bad" -L
		[ $rc -ne 0 ] && has 'p11shim: config error' err || return 1
	done
}
check "a bad value in any knob fails C_Initialize" t_config_error
t_config_label() {
	p11 "P11SHIM_PRESENCE_LABEL= P11SHIM_PRESENCE_FILE=$TMP/presence" -L &&
		[ $rc -ne 0 ] && has 'config error: P11SHIM_PRESENCE_LABEL: empty label' err &&
		p11 "P11SHIM_PRESENCE_LABEL=shimcheck" -L && [ $rc -ne 0 ] &&
		has 'config error: P11SHIM_PRESENCE_LABEL needs P11SHIM_PRESENCE_FILE' err
}
check "PRESENCE_LABEL empty, or with no presence file: a configuration error" t_config_label

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

# ---- P11SHIM_PRESENCE_FILE, P11SHIM_FAULT_FILE: changed while running
# put FILE WORD: replaces FILE at once, as the shim's comment asks
put() { printf '%s\n' "$2" >"$1.new" && mv -f "$1.new" "$1"; }
PRES="P11SHIM_PRESENCE_FILE=$TMP/presence"
t_presence_absent() {
	put presence absent
	p11 "$PRES" -L && [ $rc -eq 0 ] && ! has 'token label' out &&
		[ "$(count '^  (empty)$' out)" -eq 2 ] && has '^C_Initialize presence=absent$' log &&
		p11 "$PRES" -T && [ $rc -ne 0 ] && has '^No slots' err &&
		p11 "$PRES" --slot-index 0 -O && [ $rc -ne 0 ] &&
		has 'C_OpenSession failed: rv = CKR_TOKEN_NOT_PRESENT' err
}
check "PRESENCE_FILE absent: no token listed, C_OpenSession CKR_TOKEN_NOT_PRESENT" t_presence_absent
t_presence_other() {
	put presence other
	p11 "$PRES" -L && [ $rc -eq 0 ] && has 'token label *: other card$' out &&
		has 'serial num *: OTHERCARD0000001$' out && ! has shimcheck out &&
		p11 "$PRES" --token-label "other card" --login --pin $PIN -O && [ $rc -eq 0 ] &&
		! has 'Object;' out && has '^C_FindObjects lie: other card: 1 objects hidden$' log
}
check "PRESENCE_FILE other: another label and serial, none of the card's objects" t_presence_other
t_presence_present() {
	put presence present
	p11 "$PRES" -L && [ $rc -eq 0 ] && has 'token label *: shimcheck$' out &&
		! has OTHERCARD out && ! has presence= log &&
		rm -f presence && read_cert "$PRES" && [ $rc -eq 0 ] && cmp -s obj card.der &&
		: >presence && sign "$PRES" && [ $rc -eq 0 ] && verify sig digest
}
check "PRESENCE_FILE present, missing or empty: the card as it is" t_presence_present
# labelled LABEL CMD ARGS...: CMD with P11SHIM_PRESENCE_LABEL=LABEL, which
# has a blank and so cannot go through p11's variables
labelled() {
	P11SHIM_PRESENCE_LABEL=$1
	export P11SHIM_PRESENCE_LABEL
	shift
	"$@"
	lrc=$?
	unset P11SHIM_PRESENCE_LABEL
	return $lrc
}
t_presence_label() {
	put presence absent
	p11 "$TWO $PRES" -L && [ $rc -eq 0 ] && ! has 'token label' out &&
		[ "$(count '^  (empty)$' out)" -eq 3 ] &&
		labelled "Bob card" p11 "$TWO $PRES" -L && [ $rc -eq 0 ] &&
		has 'token label *: Alice card$' out && ! has 'Bob card' out &&
		[ "$(count '^  (empty)$' out)" -eq 1 ] &&
		labelled "Bob card" p11 "$TWO $PRES" --token-label "Alice card" \
			--read-object --type cert --id 01 -o obj &&
		[ $rc -eq 0 ] && cmp -s obj card.der &&
		labelled "Bob card" p11 "$TWO $PRES" --token-label "Bob card" -O &&
		[ $rc -ne 0 ] &&
		put presence other && labelled "Bob card" p11 "$TWO $PRES" -L &&
		[ $rc -eq 0 ] && has 'token label *: Alice card$' out &&
		has 'token label *: other card$' out && ! has 'Bob card' out &&
		[ "$(count OTHERCARD0000001 out)" -eq 1 ]
}
check "PRESENCE_LABEL=\"Bob card\": only Bob's card is pulled or replaced, Alice's stays" t_presence_label
t_fault_file() {
	rm -f fault
	p11 "P11SHIM_FAULT_FILE=$TMP/fault" -L && [ $rc -eq 0 ] &&
		put fault crash && p11 "P11SHIM_FAULT_FILE=$TMP/fault" -L &&
		[ $rc -eq 139 ] && has '^C_Initialize crash$' log &&
		put fault hang && rm -f log &&
		env P11SHIM_FAULT_FILE="$TMP/fault" P11SHIM_LOG="$TMP/log" timeout 5 \
			pkcs11-tool --module "$SHIM" -L >out 2>err
	rc=$?
	[ $rc -eq 124 ] && has '^C_Initialize hang$' log &&
		put fault other && p11 "P11SHIM_FAULT_FILE=$TMP/fault" -L && [ $rc -eq 0 ]
}
check "FAULT_FILE: crash dies of SIGSEGV, hang never returns, anything else: nothing" t_fault_file

# ---- C_WaitForSlotEvent, which pkcs11-tool never calls: a small program
cat >waitcheck.c <<'EOF_C'
/* waitcheck SHIM PRESENCE FAULT events|label|unsupported|crash */
#define _POSIX_C_SOURCE 200809L
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <p11-kit/pkcs11.h>

static CK_FUNCTION_LIST_PTR f;
static const char *presence, *fault;
static int failures;

static void put(const char *path, const char *word)
{
	char tmp[4200];
	snprintf(tmp, sizeof tmp, "%s.new", path);
	FILE *fp = fopen(tmp, "w");
	if (fp == NULL || fprintf(fp, "%s\n", word) < 0 || fclose(fp) != 0 ||
	    rename(tmp, path) != 0) {
		perror(tmp);
		exit(2);
	}
}

static void expect(const char *what, int good, CK_RV rv)
{
	printf("%s %s (rv=0x%lx)\n", good ? "good" : "BAD", what, rv);
	failures += !good;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void msleep(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

struct later { const char *path, *word; };
static void *put_later(void *arg)
{
	const struct later *l = arg;
	msleep(300);
	put(l->path, l->word);
	return NULL;
}

struct waiter { CK_SLOT_ID slot; CK_RV rv; double took; };
static void *wait_blocking(void *arg)
{
	struct waiter *w = arg;
	double t = now();
	w->rv = f->C_WaitForSlotEvent(0, &w->slot, NULL);
	w->took = now() - t;
	return NULL;
}

static CK_SLOT_ID token_slot(const char *label)
{
	CK_SLOT_ID slots[16];
	CK_ULONG n = 16;
	CK_TOKEN_INFO ti;
	CK_UTF8CHAR padded[32];
	memset(padded, ' ', sizeof padded);
	memcpy(padded, label, strlen(label));
	if (f->C_GetSlotList(CK_TRUE, slots, &n) == CKR_OK)
		for (CK_ULONG i = 0; i < n; i++)
			if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
			    memcmp(ti.label, padded, sizeof padded) == 0)
				return slots[i];
	fprintf(stderr, "no token %s\n", label);
	exit(2);
}

static CK_ULONG find_all(CK_SESSION_HANDLE s, CK_RV *rv)
{
	CK_OBJECT_HANDLE objs[16];
	CK_ULONG n = 0;
	*rv = f->C_FindObjectsInit(s, NULL, 0);
	if (*rv == CKR_OK) {
		*rv = f->C_FindObjects(s, objs, 16, &n);
		f->C_FindObjectsFinal(s);
	}
	return n;
}

static void events(void)
{
	CK_SLOT_ID slot = token_slot("shimcheck"), got = 0;
	CK_SESSION_HANDLE s1, s2, s3;
	CK_SESSION_INFO si;
	CK_TOKEN_INFO ti;
	CK_ULONG n = 0;
	CK_RV rv;
	pthread_t th;

	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
	expect("no event after C_Initialize", rv == CKR_NO_EVENT, rv);
	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL);
	expect("NULL pSlot", rv == CKR_ARGUMENTS_BAD, rv);
	rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s1);
	if (rv == CKR_OK)
		rv = f->C_Login(s1, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6);
	expect("session and login on the card", rv == CKR_OK, rv);

	put(presence, "absent");
	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
	expect("removal is an event for the card's slot", rv == CKR_OK && got == slot, rv);
	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
	expect("only once", rv == CKR_NO_EVENT, rv);
	rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
	expect("no slot with a token", rv == CKR_OK && n == 0, rv);
	rv = f->C_GetTokenInfo(slot, &ti);
	expect("C_GetTokenInfo", rv == CKR_TOKEN_NOT_PRESENT, rv);
	find_all(s1, &rv);
	expect("the session's calls", rv == CKR_DEVICE_REMOVED, rv);

	struct later back = { presence, "present" };
	pthread_create(&th, NULL, put_later, &back);
	double t = now();
	rv = f->C_WaitForSlotEvent(0, &got, NULL);
	t = now() - t;
	pthread_join(th, NULL);
	expect("a blocking wait returns on insertion", rv == CKR_OK && got == slot &&
	       t > 0.2 && t < 2, rv);
	find_all(s1, &rv);
	expect("the session of before stays dead", rv == CKR_DEVICE_REMOVED, rv);
	rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s2);
	if (rv == CKR_OK)
		rv = f->C_GetSessionInfo(s2, &si);
	expect("a new session, not logged in", rv == CKR_OK &&
	       si.state == CKS_RO_PUBLIC_SESSION, rv);
	n = find_all(s2, &rv);
	expect("finds the card's objects", rv == CKR_OK && n > 0, rv);

	put(presence, "other");
	rv = f->C_GetTokenInfo(slot, &ti);
	expect("another card", rv == CKR_OK &&
	       memcmp(ti.serialNumber, "OTHERCARD0000001", 16) == 0 &&
	       memcmp(ti.label, "other card                      ", 32) == 0, rv);
	find_all(s2, &rv);
	expect("the first card's session", rv == CKR_DEVICE_REMOVED, rv);
	rv = f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s3);
	n = rv == CKR_OK ? find_all(s3, &rv) : 1;
	expect("a session on the other card finds nothing", rv == CKR_OK && n == 0, rv);
	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
	expect("the change seen by other calls is an event", rv == CKR_OK, rv);
	rv = f->C_CloseSession(s1);
	expect("C_CloseSession of a dead session", rv == CKR_OK, rv);

	struct waiter w = { 0, 0, 0 };
	pthread_create(&th, NULL, wait_blocking, &w);
	msleep(300);
	rv = f->C_Finalize(NULL);
	pthread_join(th, NULL);
	expect("C_Finalize", rv == CKR_OK, rv);
	expect("C_Finalize ends a blocked wait", w.rv == CKR_CRYPTOKI_NOT_INITIALIZED &&
	       w.took < 2, w.rv);
}

/* P11SHIM_PRESENCE_LABEL="Bob card": Bob's card leaves and comes back,
 * then another card takes its place; Alice's never moves. */
static void label(void)
{
	CK_SLOT_ID alice = token_slot("Alice card"), bob = token_slot("Bob card");
	CK_SLOT_ID got = 0;
	CK_SESSION_HANDLE sa, sb, sb2;
	CK_SESSION_INFO si;
	CK_SLOT_INFO li;
	CK_TOKEN_INFO ti;
	CK_ULONG before = 0, n = 0;
	CK_RV rv;
	pthread_t th;

	printf("bob 0x%lx\n", bob);
	f->C_GetSlotList(CK_TRUE, NULL, &before);
	rv = f->C_OpenSession(alice, CKF_SERIAL_SESSION, NULL, NULL, &sa);
	if (rv == CKR_OK)
		rv = f->C_Login(sa, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6);
	if (rv == CKR_OK)
		rv = f->C_OpenSession(bob, CKF_SERIAL_SESSION, NULL, NULL, &sb);
	if (rv == CKR_OK)
		rv = f->C_Login(sb, CKU_USER, (CK_UTF8CHAR_PTR)"123456", 6);
	expect("sessions and logins on both cards", rv == CKR_OK, rv);

	put(presence, "absent");
	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
	expect("Bob's removal is an event for Bob's slot", rv == CKR_OK && got == bob, rv);
	rv = f->C_GetSlotList(CK_TRUE, NULL, &n);
	expect("only Bob's slot leaves the list", rv == CKR_OK && n + 1 == before, rv);
	rv = f->C_GetSlotInfo(bob, &li);
	expect("Bob's slot is empty", rv == CKR_OK && !(li.flags & CKF_TOKEN_PRESENT), rv);
	rv = f->C_GetSlotInfo(alice, &li);
	expect("Alice's is not", rv == CKR_OK && (li.flags & CKF_TOKEN_PRESENT), rv);
	rv = f->C_GetTokenInfo(bob, &ti);
	expect("C_GetTokenInfo of Bob's", rv == CKR_TOKEN_NOT_PRESENT, rv);
	rv = f->C_GetTokenInfo(alice, &ti);
	expect("C_GetTokenInfo of Alice's", rv == CKR_OK, rv);
	find_all(sb, &rv);
	expect("Bob's session is dead", rv == CKR_DEVICE_REMOVED, rv);
	n = find_all(sa, &rv);
	expect("Alice's session still finds her objects", rv == CKR_OK && n > 0, rv);
	rv = f->C_OpenSession(bob, CKF_SERIAL_SESSION, NULL, NULL, &sb2);
	expect("no session on Bob's slot", rv == CKR_TOKEN_NOT_PRESENT, rv);

	struct later back = { presence, "present" };
	pthread_create(&th, NULL, put_later, &back);
	rv = f->C_WaitForSlotEvent(0, &got, NULL);
	pthread_join(th, NULL);
	expect("a blocking wait reports Bob's return", rv == CKR_OK && got == bob, rv);
	find_all(sb, &rv);
	expect("Bob's session of before stays dead", rv == CKR_DEVICE_REMOVED, rv);
	rv = f->C_OpenSession(bob, CKF_SERIAL_SESSION, NULL, NULL, &sb2);
	if (rv == CKR_OK)
		rv = f->C_GetSessionInfo(sb2, &si);
	expect("a new session on Bob's, not logged in", rv == CKR_OK &&
	       si.state == CKS_RO_PUBLIC_SESSION, rv);
	rv = f->C_GetSessionInfo(sa, &si);
	expect("Alice stays logged in", rv == CKR_OK &&
	       si.state == CKS_RO_USER_FUNCTIONS, rv);

	put(presence, "other");
	rv = f->C_GetTokenInfo(bob, &ti);
	expect("another card in Bob's reader", rv == CKR_OK &&
	       memcmp(ti.label, "other card                      ", 32) == 0, rv);
	rv = f->C_GetTokenInfo(alice, &ti);
	expect("Alice's card in hers", rv == CKR_OK &&
	       memcmp(ti.label, "Alice card                      ", 32) == 0, rv);
	find_all(sb2, &rv);
	expect("Bob's second session is dead", rv == CKR_DEVICE_REMOVED, rv);
	n = find_all(sa, &rv);
	expect("Alice's session still finds her objects", rv == CKR_OK && n > 0, rv);
	rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
	expect("the change is an event for Bob's slot", rv == CKR_OK && got == bob, rv);
	rv = f->C_Finalize(NULL);
	expect("C_Finalize", rv == CKR_OK, rv);
}

int main(int argc, char **argv)
{
	CK_C_INITIALIZE_ARGS args = { .flags = CKF_OS_LOCKING_OK };
	CK_C_GetFunctionList get;
	CK_SLOT_ID got;
	CK_RV rv;
	if (argc != 5)
		return 2;
	presence = argv[2];
	fault = argv[3];
	void *dl = dlopen(argv[1], RTLD_NOW);
	void *sym = dl != NULL ? dlsym(dl, "C_GetFunctionList") : NULL;
	if (sym == NULL)
		return 2;
	memcpy(&get, &sym, sizeof get);
	if (get(&f) != CKR_OK || f->C_Initialize(&args) != CKR_OK)
		return 2;
	if (strcmp(argv[4], "events") == 0) {
		events();
	} else if (strcmp(argv[4], "label") == 0) {
		label();
	} else if (strcmp(argv[4], "unsupported") == 0) {
		rv = f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &got, NULL);
		expect("no P11SHIM_SLOT_EVENTS", rv == CKR_FUNCTION_NOT_SUPPORTED, rv);
		f->C_Finalize(NULL);
	} else {
		pthread_t th;
		struct later crash = { fault, "crash" };
		pthread_create(&th, NULL, put_later, &crash);
		rv = f->C_WaitForSlotEvent(0, &got, NULL);
		expect("still alive", 0, rv);
	}
	return failures > 0;
}
EOF_C
WAITCHECK=
# shellcheck disable=SC2046 # the flags are split on purpose
if command -v "${CC:-cc}" >/dev/null 2>&1 &&
	"${CC:-cc}" -std=c11 -o waitcheck waitcheck.c $(pkg-config --cflags p11-kit-1 2>/dev/null) \
		-pthread -ldl >waitcheck.err 2>&1; then
	WAITCHECK=$TMP/waitcheck
fi
# waitcheck 'VAR=VALUE ...' MODE: like p11, the program above instead
waitcheck() {
	rm -f out err log
	put presence present
	# shellcheck disable=SC2086 # the variables are split on purpose
	env $1 P11SHIM_LOG="$TMP/log" timeout 60 \
		"$WAITCHECK" "$SHIM" "$TMP/presence" "$TMP/fault" "$2" >out 2>err
	rc=$?
	touch log
	if [ -n "$VERBOSE" ]; then
		sed 's/^/  | /' out err
	else
		grep '^BAD' out >>err || :
	fi
}
skip_check() { n=$((n + 1)); echo "ok $n - $1 # SKIP cannot build waitcheck.c with ${CC:-cc}"; }
t_slot_events() {
	waitcheck "$PRES P11SHIM_SLOT_EVENTS=1" events && [ $rc -eq 0 ] &&
		[ "$(count '^good' out)" -eq 19 ] && ! has BAD out &&
		has '^C_WaitForSlotEvent slot=0x[0-9a-f]* rv=0x0$' log &&
		has '^C_WaitForSlotEvent rv=0x8$' log && has '^C_WaitForSlotEvent rv=0x190$' log &&
		has '^C_OpenSession lie: logged out the card that left$' log
}
t_slot_events_off() {
	waitcheck "$PRES" unsupported && [ $rc -eq 0 ] &&
		has '^C_WaitForSlotEvent rv=0x54$' log
}
t_slot_events_crash() {
	rm -f fault
	waitcheck "$PRES P11SHIM_SLOT_EVENTS=1 P11SHIM_FAULT_FILE=$TMP/fault" crash &&
		[ $rc -eq 139 ] && has '^C_WaitForSlotEvent crash$' log
}
t_slot_events_label() {
	labelled "Bob card" waitcheck "$TWO $PRES P11SHIM_SLOT_EVENTS=1" label &&
		[ "$rc" -eq 0 ] && [ "$(count '^good' out)" -eq 20 ] && ! has BAD out &&
		bob=$(sed -n 's/^bob //p' out) && [ -n "$bob" ] &&
		[ "$(count "^C_WaitForSlotEvent slot=$bob rv=0x0\$" log)" -eq 3 ] &&
		[ "$(count '^C_WaitForSlotEvent slot=' log)" -eq 3 ] &&
		[ "$(count '^C_OpenSession lie: logged out the card that left$' log)" -eq 1 ]
}
for t in "t_slot_events:SLOT_EVENTS=1: C_WaitForSlotEvent sees removal, insertion, another card; C_Finalize wakes it" \
	"t_slot_events_label:PRESENCE_LABEL=\"Bob card\": events name Bob's slot; Alice's sessions and login live on" \
	"t_slot_events_off:without SLOT_EVENTS, C_WaitForSlotEvent is CKR_FUNCTION_NOT_SUPPORTED" \
	"t_slot_events_crash:FAULT_FILE crash kills a blocked C_WaitForSlotEvent"; do
	if [ -n "$WAITCHECK" ]; then
		check "${t#*:}" "${t%%:*}"
	else
		skip_check "${t#*:}"
	fi
done

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
