#!/bin/sh
# The login sample (pam.d/login), GDM's smart card sample
# (pam.d/gdm-smartcard) and the pam-auth-update profile
# (pam.d/pam_piv.pam-auth-update) with the real libpam, through pamtester:
# the card with its PIN, the password without a card, a card that fails.
# The profile is installed with Debian's own pam-auth-update, which writes
# common-auth. Run by pam-tests.sh inside its private network and mount
# namespaces, as root: /etc/pam.d, /usr/share/pam-configs, /var/lib/pam
# and the account files seen here are bind mounts that exist only there.
set -eu

: "${top_srcdir:?}" "${PIV_FX:?}" "${PIV_MODULE:?}" "${PIV_HELPER:?}" "${SOFTHSM2_MODULE:?}"
: "${PIV_WWW:?}"

STAGE=/srv/piv-login
PIN=123456
ALICE_PW=alice-login-pw
failed=0
secdir=

# shellcheck source=tests/real-lib.sh
. "$top_srcdir/tests/real-lib.sh"

cleanup() {
	for m in /var/lib/pam /usr/share/pam-configs /etc/pam.d /etc/shadow /etc/group /etc/passwd \
		${secdir:+"$secdir"} "$STAGE"; do
		umount "$m" 2>/dev/null || true
	done
	rmdir "$STAGE" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

serve_crls
stage_tmpfs

# The samples name the module "pam_piv.so", as an installed system would:
# a copy of the module directory with the built module in it.
secdir=$(dirname "$(find /lib /usr/lib -path '*/security/pam_unix.so' 2>/dev/null | head -n 1)")
[ -n "$secdir" ] && [ "$secdir" != . ] || { say "login-tests: no PAM module directory"; exit 1; }
mkdir "$STAGE/security"
cp -a "$secdir/." "$STAGE/security/"
install -m 0644 "$PIV_MODULE" "$STAGE/security/pam_piv.so"
mount --bind "$STAGE/security" "$secdir"

conf() { write_conf "$1"; } # SCENARIO

# Accounts: root, nobody, alice with a password, bob.
stage_accounts / "$ALICE_PW"

# /etc/pam.d: a copy of the system's, with the login sample pointed at this
# configuration (config= is the only change).
mkdir "$STAGE/pam.d"
cp -a /etc/pam.d/. "$STAGE/pam.d/"
for sample in login gdm-smartcard; do
	sed "s|pam_piv.so|pam_piv.so config=$STAGE/pam_piv.conf|" "$top_srcdir/pam.d/$sample" \
		> "$STAGE/pam.d/$sample"
done
mount --bind "$STAGE/pam.d" /etc/pam.d

# A sanitizer build's module needs its runtimes first in pamtester;
# pamtester's own leaks are not ours to report, the module's errors are.
# (libcrypt too: pam_unix loads it after ASan has set up its crypt()
# interceptor, which then calls a null function.)
SAN_PRELOAD=$(ldd "$PIV_MODULE" | awk '/lib(a|ub)san\.so/ { printf "%s%s", sep, $3; sep = ":" }')
if [ -n "$SAN_PRELOAD" ]; then
	crypt=$(ldd "$secdir/pam_unix.so" | awk '/libcrypt\.so/ { print $3 }')
	SAN_PRELOAD=$SAN_PRELOAD${crypt:+:$crypt}
fi
mkdir -m 0700 "$STAGE/san"

# pamtester_case NAME SERVICE INPUT WANT_RC WANT_TEXT [NOT_TEXT]
pamtester_case() {
	rc=0
	out=$(printf '%s' "$3" | env ${SAN_PRELOAD:+LD_PRELOAD="$SAN_PRELOAD"} \
		${SAN_PRELOAD:+ASAN_OPTIONS="detect_leaks=0:log_path=$STAGE/san/asan"} \
		${SAN_PRELOAD:+UBSAN_OPTIONS="print_stacktrace=1:log_path=$STAGE/san/ubsan"} \
		timeout 60 pamtester -v "$2" alice authenticate 2>&1) || rc=$?
	case $rc:$out in
	*"${6:-@@none@@}"*) not_ok "$1: '$6' in the output"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	"$4":*"$5"*) ok "$1" ;;
	*) not_ok "$1: rc=$rc, wanted $4 and '$5'"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	esac
}

# pamtester_ops_case NAME SERVICE USER "OPERATIONS" INPUT WANT_RC WANT_TEXT
pamtester_ops_case() {
	rc=0
	out=$(printf '%s' "$5" | env ${SAN_PRELOAD:+LD_PRELOAD="$SAN_PRELOAD"} \
		${SAN_PRELOAD:+ASAN_OPTIONS="detect_leaks=0:log_path=$STAGE/san/asan"} \
		${SAN_PRELOAD:+UBSAN_OPTIONS="print_stacktrace=1:log_path=$STAGE/san/ubsan"} \
		timeout 60 pamtester -v "$2" "$3" $4 2>&1) || rc=$?
	case $rc:$out in
	"$6":*"$7"*) ok "$1" ;;
	*) not_ok "$1: rc=$rc, wanted $6 and '$7'"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	esac
}

conf p256
pamtester_case "login: the card and its PIN" login "$PIN
" 0 "successfully authenticated" "Password"
conf bob
pamtester_case "login: another user's card ends it, no password asked" login "" 1 \
	"PIV certificate is not mapped to alice" "Password"
conf empty
pamtester_case "login: no card, the password" login "$ALICE_PW
" 0 "No PIV card found"
# foreign_card = ignore: another user's card left in the reader does not
# lock alice out of her password
write_conf bob "foreign_card = ignore"
pamtester_case "login: another user's card with foreign_card = ignore, the password" login \
	"$ALICE_PW
" 0 "is not mapped to alice: it is not used" "PIN for"

# GDM's smart card service (pam.d/gdm-smartcard): no user name, the card
# names the account; its session line is pam_piv's removal watch, which
# with removal_action set refuses a session it cannot watch (here there is
# no logind, so no XDG_SESSION_ID).
conf p256
pamtester_ops_case "gdm-smartcard: the card alone, no user name" gdm-smartcard "" \
	"authenticate open_session close_session" "$PIN
" 0 "session has successfully been closed"
write_conf p256 "removal_action = lock"
pamtester_ops_case "gdm-smartcard: removal_action = lock and no logind session: no session" \
	gdm-smartcard "" "authenticate open_session" "$PIN
" 1 "Cannot make/remove an entry for the specified session"
write_conf p256 "removal_action = lock
removal_watch = optional"
pamtester_ops_case "gdm-smartcard: removal_watch = optional: the session opens unwatched" \
	gdm-smartcard "" "authenticate open_session close_session" "$PIN
" 0 "successfully opened a session"
conf empty
pamtester_ops_case "gdm-smartcard: no card, no login (card_only)" gdm-smartcard "" \
	"authenticate" "" 1 ""

# The pam-auth-update profile, enabled by Debian's tool into common-auth.
mkdir "$STAGE/pam-configs" "$STAGE/var-lib-pam"
cp -a /usr/share/pam-configs/. "$STAGE/pam-configs/"
sed "s|pam_piv.so|pam_piv.so config=$STAGE/pam_piv.conf|" \
	"$top_srcdir/pam.d/pam_piv.pam-auth-update" > "$STAGE/pam-configs/pam_piv"
[ -d /var/lib/pam ] && cp -a /var/lib/pam/. "$STAGE/var-lib-pam/"
mkdir -p /var/lib/pam 2>/dev/null || true
mount --bind "$STAGE/pam-configs" /usr/share/pam-configs
mount --bind "$STAGE/var-lib-pam" /var/lib/pam
DEBIAN_FRONTEND=noninteractive pam-auth-update --enable pam_piv >/dev/null 2>&1 ||
	{ not_ok "pam-auth-update --enable pam_piv"; exit 1; }
if grep -q "pam_piv.so config=$STAGE/pam_piv.conf" /etc/pam.d/common-auth; then
	ok "pam-auth-update: the profile is in common-auth, before pam_unix"
	grep -n 'pam_piv\|pam_unix' /etc/pam.d/common-auth | sed 's/^/#   /'
else
	not_ok "pam-auth-update: the profile is not in common-auth"
	sed 's/^/#   /' /etc/pam.d/common-auth
fi
# A service that is only "@include common-auth".
printf 'auth include common-auth\naccount include common-account\n' > "$STAGE/pam.d/piv-common"
conf p256
pamtester_case "common-auth: the card and its PIN" piv-common "$PIN
" 0 "successfully authenticated" "Password"
conf empty
pamtester_case "common-auth: no card, the password" piv-common "$ALICE_PW
" 0 "successfully authenticated"
conf expired
pamtester_case "common-auth: an expired card ends it" piv-common "" 1 \
	"PIV certificate has expired" "Password"
write_conf bob "foreign_card = ignore"
pamtester_case "common-auth: another user's card with foreign_card = ignore, the password" \
	piv-common "$ALICE_PW
" 0 "successfully authenticated" "PIN for"

for report in "$STAGE"/san/*; do
	[ -f "$report" ] || continue
	not_ok "sanitizer report $report"
	sed 's/^/#   /' "$report"
done

exit "$failed"
