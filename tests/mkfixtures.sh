#!/bin/sh
# Owns the whole test fixture tree: OUTDIR/pki (via mkpki.sh), one SoftHSM2
# instance per scenario under OUTDIR/tok/SCENARIO (via mktoken.sh), and the
# nss_wrapper OUTDIR/passwd and OUTDIR/group. Usage: mkfixtures.sh OUTDIR
# (PIV_CRL_BASE and PIV_OCSP_URL in the environment reach mkpki.sh.)
set -eu

die() { printf 'mkfixtures.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: mkfixtures.sh OUTDIR"
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
PKI=$OUT/pki
TOK=$OUT/tok

rm -rf "$PKI" "$TOK"
sh "$HERE/mkpki.sh" "$PKI"
mkdir -p "$TOK"

# ---- users for nss_wrapper (no carol on purpose: she has a valid card but no account)
cat > "$OUT/passwd" <<'EOF'
root:x:0:0:root:/nonexistent/root:/bin/false
alice:x:1001:1001:Alice Example:/nonexistent/alice:/bin/false
bob:x:1002:1002:Bob Example:/nonexistent/bob:/bin/false
erin:x:1006:1006:Erin Example:/nonexistent/erin:/bin/false
LONGUSER:x:1007:1007:Long Example:LONGHOME:/bin/false
nobody:x:65534:65534:nobody:/nonexistent/nobody:/bin/false
EOF
# a 256-character account name (the longest pam_piv accepts) with a
# 600-character home directory: the long names of the anchors' bugs. (Not
# longer: libpam's pam_modutil_getpwnam, under nss_wrapper, finds no entry
# longer than its first 1 KiB buffer.)
long_user=$(printf 'l%.0s' $(seq 1 256))
long_home=/$(printf 'h%.0s' $(seq 1 599))
sed -i "s|^LONGUSER:|$long_user:|; s|:LONGHOME:|:$long_home:|" "$OUT/passwd"
cat > "$OUT/group" <<'EOF'
root:x:0:
alice:x:1001:
bob:x:1002:
erin:x:1006:
LONGUSER:x:1007:
nogroup:x:65534:
EOF
sed -i "s|^LONGUSER:|$long_user:|" "$OUT/group"

# ---- tokens: every scenario is its own SoftHSM instance, built in parallel
ERR=$(mktemp -d "${TMPDIR:-/tmp}/mkfixtures.XXXXXX")
trap 'rm -rf "$ERR"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

mktoken() { sh "$HERE/mktoken.sh" "$@"; }

# card SCENARIO LEAF [mktoken options]: token SCENARIO with LEAF's cert and key
card() {
	s=$1 l=$2
	shift 2
	mktoken "$TOK/$s" "$s" --cert "$PKI/$l.der" --key "$PKI/$l.key" "$@"
}

scenario() {
	case $1 in
	rsa2048) card rsa2048 alice-rsa2048 --extra-cert "$PKI/ca/inter.der" ;;
	rsa3072|rsa4096|p256|p384|expired|notyet|untrusted|wrongeku|cardauth|cardauth-policy|nodigsig)
		card "$1" "alice-$1" ;;
	bob|carol) card "$1" "$1-p256" ;;
	twouid|hostile|inject|upn-nul|upn-badutf8) card "$1" "$1" ;;
	fascn) card fascn alice-fascn ;;
	mismatch)
		mktoken "$TOK/mismatch" mismatch --cert "$PKI/alice-p256.der" \
			--key "$PKI/bob-p256.key" ;;
	nokey) mktoken "$TOK/nokey" nokey --cert "$PKI/alice-p256.der" ;;
	alwaysauth) card alwaysauth alice-p256 --always-auth ;;
	revoked) card revoked alice-revoked ;;
	inter2) card inter2 alice-inter2 --extra-cert "$PKI/ca/inter2.der" ;;
	two)
		mktoken "$TOK/two" "Alice card" --cert "$PKI/alice-p256.der" --key "$PKI/alice-p256.key"
		mktoken "$TOK/two" "Bob card" --cert "$PKI/bob-p256.der" --key "$PKI/bob-p256.key" ;;
	mixed)
		mktoken "$TOK/mixed" "Old card" --cert "$PKI/alice-expired.der" --key "$PKI/alice-expired.key"
		mktoken "$TOK/mixed" "Bob card" --cert "$PKI/bob-p256.der" --key "$PKI/bob-p256.key" ;;
	twoalice)
		# a token that shows alice's (public) certificate with another key,
		# before alice's own card
		mktoken "$TOK/twoalice" "Not alice" --cert "$PKI/alice-p256.der" --key "$PKI/bob-p256.key"
		mktoken "$TOK/twoalice" "Alice card" --cert "$PKI/alice-p256.der" --key "$PKI/alice-p256.key" ;;
	empty) mktoken "$TOK/empty" ;;
	*) die "unknown scenario $1" ;;
	esac
}

SCENARIOS="rsa2048 rsa3072 rsa4096 p256 p384 bob carol expired notyet untrusted
	wrongeku cardauth cardauth-policy nodigsig twouid hostile mismatch nokey
	alwaysauth two twoalice mixed empty revoked inter2 fascn inject upn-nul upn-badutf8"

PIDS=
for s in $SCENARIOS; do
	( scenario "$s" ) 2>"$ERR/$s" &
	PIDS="$PIDS $!:$s"
done
fail=
for p in $PIDS; do
	wait "${p%%:*}" || fail="$fail ${p#*:}"
done
if [ -n "$fail" ]; then
	for s in $fail; do
		printf '== scenario %s\n' "$s" >&2
		cat "$ERR/$s" >&2
	done
	die "failed scenarios:$fail"
fi
