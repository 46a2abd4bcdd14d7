#!/bin/sh
# Owns one SoftHSM2 instance per DIR and the PIV-card-like tokens in it
# (objects, IDs and labels as OpenSC's PIV driver presents a real card).
# Usage: see usage() below.
set -eu

usage() {
	cat >&2 <<'EOF'
usage: mktoken.sh DIR                   create DIR/softhsm2.conf + DIR/tokens only
       mktoken.sh DIR LABEL [options]   add a token LABEL to the instance in DIR
options:
  --cert FILE.der        PIV Authentication certificate (CKA_ID 01)
  --key FILE             its private key, PKCS#8 PEM or DER (CKA_ID 01, CKA_SIGN);
                         the matching public key object is written too
  --extra-cert FILE.der  another certificate, CKA_ID 02, 03, ... (repeatable)
  --always-auth          private key gets CKA_ALWAYS_AUTHENTICATE=true
  --pin PIN              user PIN (default 123456)
  --so-pin SOPIN         SO PIN (default 12345678)
env: SOFTHSM2_MODULE overrides the SoftHSM PKCS#11 module path
EOF
	exit 2
}
die() { printf 'mktoken.sh: %s\n' "$*" >&2; exit 1; }

[ $# -ge 1 ] || usage
case $1 in -*) usage ;; esac
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
shift

# ---- the SoftHSM instance
mkdir -p "$DIR/tokens"
if [ ! -f "$DIR/softhsm2.conf" ]; then
	cat > "$DIR/softhsm2.conf" <<EOF
# written by tests/mktoken.sh
directories.tokendir = $DIR/tokens
objectstore.backend = file
log.level = ERROR
slots.removable = false
EOF
fi
[ $# -ge 1 ] || exit 0

# ---- options
LABEL=$1
shift
case $LABEL in -*|'') usage ;; esac
[ ${#LABEL} -le 32 ] || die "token label longer than 32 bytes: $LABEL"
CERT='' KEY='' EXTRA='' ALWAYS='' PIN=123456 SOPIN=12345678
NL='
'
need() { [ $# -ge 2 ] || die "$1 needs an argument"; }
while [ $# -gt 0 ]; do
	case $1 in
	--cert) need "$@"; CERT=$2; shift 2 ;;
	--key) need "$@"; KEY=$2; shift 2 ;;
	--extra-cert) need "$@"; EXTRA="$EXTRA$2$NL"; shift 2 ;;
	--always-auth) ALWAYS=--always-auth; shift ;;
	--pin) need "$@"; PIN=$2; shift 2 ;;
	--so-pin) need "$@"; SOPIN=$2; shift 2 ;;
	-h|--help) usage ;;
	*) die "unknown option: $1" ;;
	esac
done
[ -z "$ALWAYS" ] || [ -n "$KEY" ] || die "--always-auth needs --key"
for f in "$CERT" "$KEY"; do
	[ -z "$f" ] || [ -r "$f" ] || die "cannot read $f"
done
while IFS= read -r f; do
	[ -z "$f" ] || [ -r "$f" ] || die "cannot read $f"
done <<EOF
$EXTRA
EOF

MODULE=${SOFTHSM2_MODULE:-}
if [ -z "$MODULE" ]; then
	for m in /usr/lib/softhsm/libsofthsm2.so \
		/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so \
		/usr/lib64/pkcs11/libsofthsm2.so /usr/local/lib/softhsm/libsofthsm2.so; do
		if [ -f "$m" ]; then MODULE=$m; break; fi
	done
fi
[ -f "${MODULE:-/nonexistent}" ] || die "SoftHSM2 module not found (set SOFTHSM2_MODULE)"
command -v softhsm2-util >/dev/null 2>&1 || die "softhsm2-util not found"
command -v pkcs11-tool >/dev/null 2>&1 || die "pkcs11-tool (OpenSC) not found"

SOFTHSM2_CONF=$DIR/softhsm2.conf
export SOFTHSM2_CONF

TMP=$(mktemp -d "${TMPDIR:-/tmp}/mktoken.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# run CMD...: quiet on success, its output on failure
run() {
	if ! "$@" >"$TMP/log" 2>&1; then
		cat "$TMP/log" >&2
		die "failed: $*"
	fi
}

pkcs11-tool --module "$MODULE" --list-token-slots >"$TMP/slots" 2>&1 || :
sed -n 's/^ *token label *: //p' "$TMP/slots" | sed 's/ *$//' >"$TMP/labels"
while IFS= read -r l; do
	[ "$l" != "$LABEL" ] || die "a token labelled '$LABEL' already exists in $DIR"
done <"$TMP/labels"

# Check every input parses before creating the token, so that a bad call
# leaves no half-built token behind.
isder() {
	openssl x509 -inform DER -in "$1" -noout 2>/dev/null ||
		die "$1 is not a DER X.509 certificate"
}
[ -z "$CERT" ] || isder "$CERT"
n=1
while IFS= read -r f; do
	[ -n "$f" ] || continue
	isder "$f"
	n=$((n + 1))
	[ "$n" -le 24 ] || die "too many --extra-cert (a PIV card has 24 certificate slots)"
done <<EOF
$EXTRA
EOF
if [ -n "$KEY" ]; then
	openssl pkey -in "$KEY" -pubout -outform DER -out "$TMP/pub.der" 2>"$TMP/log" ||
		{ cat "$TMP/log" >&2; die "cannot read the private key $KEY"; }
fi

run softhsm2-util --init-token --free --label "$LABEL" --pin "$PIN" --so-pin "$SOPIN"

p11() {
	run pkcs11-tool --module "$MODULE" --token-label "$LABEL" --login --pin "$PIN" "$@"
}

if [ -n "$CERT" ]; then
	p11 --write-object "$CERT" --type cert --id 01 \
		--label "Certificate for PIV Authentication"
fi
if [ -n "$KEY" ]; then
	p11 --write-object "$KEY" --type privkey --id 01 --label "PIV AUTH key" \
		--usage-sign $ALWAYS
	p11 --write-object "$TMP/pub.der" --type pubkey --id 01 --label "PIV AUTH pubkey" \
		--usage-sign
fi

# Extra certificates: IDs and labels as OpenSC's pkcs15-piv.c numbers them
# (the IDs are decimal digits read as hex: ..., 09, 10, 11, ...).
n=2
while IFS= read -r f; do
	[ -n "$f" ] || continue
	case $n in
	2) l="Certificate for Digital Signature" ;;
	3) l="Certificate for Key Management" ;;
	4) l="Certificate for Card Authentication" ;;
	*) l="Retired Certificate for Key Management $((n - 4))" ;;
	esac
	p11 --write-object "$f" --type cert --id "$(printf %02d "$n")" --label "$l"
	n=$((n + 1))
done <<EOF
$EXTRA
EOF
