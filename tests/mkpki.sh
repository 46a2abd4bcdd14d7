#!/bin/sh
# Owns the test PKI: root/issuing/untrusted CAs and every leaf certificate and
# key the pam_piv tests use, generated with the openssl CLI into OUTDIR.
# Usage: mkpki.sh OUTDIR   (OUTDIR is created; existing files are overwritten)
set -eu

die() { printf 'mkpki.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: mkpki.sh OUTDIR"
command -v openssl >/dev/null 2>&1 || die "openssl not found"

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CA=$OUT/ca
CONF=$OUT/conf
DB=$CA/db
rm -rf "$CA" "$CONF"
mkdir -p "$CA" "$CONF" "$DB/newcerts"
: > "$DB/index.txt"
printf 'unique_subject = no\n' > "$DB/index.txt.attr"
echo 01 > "$DB/serial"

# openssl writes its own progress chatter to stderr; keep it, print it only on failure.
LOG=$CONF/openssl.log
ossl() {
	if ! openssl "$@" >"$LOG" 2>&1; then
		cat "$LOG" >&2
		die "openssl $1 failed (see above)"
	fi
}

# now - 1 day as GeneralizedTime (GNU date, with a BSD date fallback)
yesterday=$(( $(date -u +%s) - 86400 ))
START=$(date -u -d "@$yesterday" +%Y%m%d%H%M%SZ 2>/dev/null ||
	date -u -r "$yesterday" +%Y%m%d%H%M%SZ 2>/dev/null) ||
	die "cannot compute a start date with date(1)"

cat > "$CONF/ca.cnf" <<EOF
# written by tests/mkpki.sh
[ ca ]
default_ca = testca

[ testca ]
dir              = $DB
database         = $DB/index.txt
serial           = $DB/serial
new_certs_dir    = $DB/newcerts
default_md       = sha256
policy           = policy_any
unique_subject   = no
email_in_dn      = no
copy_extensions  = none
preserve         = yes

[ policy_any ]
countryName            = optional
organizationName       = optional
organizationalUnitName = optional
userId                 = optional
commonName             = optional

[ req ]
distinguished_name = req_dn
string_mask        = utf8only
utf8               = yes
prompt             = no

[ req_dn ]
CN = unused

[ v3_root ]
basicConstraints       = critical, CA:TRUE
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
certificatePolicies    = 2.5.29.32.0

[ v3_inter ]
basicConstraints       = critical, CA:TRUE, pathlen:0
keyUsage               = critical, keyCertSign, cRLSign
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
certificatePolicies    = 2.5.29.32.0
EOF

# ---- keys (generated in parallel: RSA key generation dominates the runtime)
# genkey NAME TYPE   TYPE = rsa2048|rsa3072|rsa4096|p256|p384
genkey() {
	case $2 in
	rsa*) set -- "$1" -algorithm RSA -pkeyopt "rsa_keygen_bits:${2#rsa}" ;;
	p256) set -- "$1" -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -pkeyopt ec_param_enc:named_curve ;;
	p384) set -- "$1" -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -pkeyopt ec_param_enc:named_curve ;;
	*) die "unknown key type $2" ;;
	esac
	k=$1; shift
	openssl genpkey "$@" -out "$k.key" 2>"$k.key.err" &&
		openssl pkcs8 -topk8 -nocrypt -in "$k.key" -outform DER -out "$k.key.der" 2>>"$k.key.err" &&
		rm -f "$k.key.err"
}

PIDS=
bg_genkey() { genkey "$@" & PIDS="$PIDS $!"; }

bg_genkey "$CA/root" rsa3072
bg_genkey "$CA/inter" p256
bg_genkey "$CA/other-root" p256
bg_genkey "$OUT/alice-rsa2048" rsa2048
bg_genkey "$OUT/alice-rsa3072" rsa3072
bg_genkey "$OUT/alice-rsa4096" rsa4096
bg_genkey "$OUT/alice-p384" p384
for n in alice-p256 bob-p256 carol-p256 alice-expired alice-notyet \
	alice-untrusted alice-wrongeku alice-cardauth alice-cardauth-policy \
	alice-nodigsig twouid hostile; do
	bg_genkey "$OUT/$n" p256
done

fail=0
for p in $PIDS; do wait "$p" || fail=1; done
if [ "$fail" -ne 0 ]; then
	cat "$OUT"/*.key.err "$CA"/*.key.err 2>/dev/null >&2 || :
	die "key generation failed"
fi

# ---- CAs
ossl req -new -config "$CONF/ca.cnf" -utf8 -key "$CA/root.key" \
	-subj "/C=US/O=PIV Test/CN=PIV Test Root CA" -out "$CONF/root.csr"
ossl ca -batch -notext -config "$CONF/ca.cnf" -utf8 -preserveDN -rand_serial \
	-selfsign -keyfile "$CA/root.key" -in "$CONF/root.csr" -out "$CA/root.crt" \
	-extensions v3_root -startdate "$START" -days 3650

ossl req -new -config "$CONF/ca.cnf" -utf8 -key "$CA/other-root.key" \
	-subj "/C=US/O=Evil/CN=Untrusted Root CA" -out "$CONF/other-root.csr"
ossl ca -batch -notext -config "$CONF/ca.cnf" -utf8 -preserveDN -rand_serial \
	-selfsign -keyfile "$CA/other-root.key" -in "$CONF/other-root.csr" \
	-out "$CA/other-root.crt" -extensions v3_root -startdate "$START" -days 3650

ossl req -new -config "$CONF/ca.cnf" -utf8 -key "$CA/inter.key" \
	-subj "/C=US/O=PIV Test/CN=PIV Test Issuing CA" -out "$CONF/inter.csr"
ossl ca -batch -notext -config "$CONF/ca.cnf" -utf8 -preserveDN -rand_serial \
	-cert "$CA/root.crt" -keyfile "$CA/root.key" -in "$CONF/inter.csr" \
	-out "$CA/inter.crt" -extensions v3_inter -startdate "$START" -days 1825
ossl x509 -in "$CA/inter.crt" -outform DER -out "$CA/inter.der"

cp "$CA/root.crt" "$CA/root.pem"
cp "$CA/inter.crt" "$OUT/intermediates.pem"

# ---- leaves
EKU_PIV="clientAuth, 1.3.6.1.4.1.311.20.2.2, 1.3.6.1.5.2.3.4"
POL_AUTH=2.16.840.1.101.3.2.1.3.13
POL_CARDAUTH=2.16.840.1.101.3.2.1.3.17

# leaf NAME UID "CN" — optional overrides via variables set just before the call:
#   ISSUER (inter|other-root) EKU POLICY KU SAN SUBJ NB NA (explicit dates)
leaf() {
	name=$1 uid=$2 cn=$3
	: "${ISSUER:=inter}" "${EKU:=$EKU_PIV}" "${POLICY:=$POL_AUTH}"
	: "${KU:=critical, digitalSignature}"
	: "${SAN:=email:$uid@example.test, otherName:1.3.6.1.4.1.311.20.2.3;UTF8:$uid@EXAMPLE.TEST}"
	: "${SUBJ:=/C=US/O=PIV Test/OU=People/UID=$uid/CN=$cn}"
	cat > "$CONF/$name.ext" <<EOF
[ ext ]
basicConstraints       = critical, CA:FALSE
keyUsage               = $KU
extendedKeyUsage       = $EKU
certificatePolicies    = $POLICY
subjectAltName         = $SAN
subjectKeyIdentifier   = hash
authorityKeyIdentifier = keyid:always
EOF
	if [ -n "${NB:-}" ]; then
		set -- -startdate "$NB" -enddate "${NA:?NB needs NA}"
	else
		set -- -startdate "$START" -days 365
	fi
	ossl req -new -config "$CONF/ca.cnf" -utf8 -key "$OUT/$name.key" \
		-subj "$SUBJ" -out "$CONF/$name.csr"
	ossl ca -batch -notext -config "$CONF/ca.cnf" -utf8 -preserveDN -rand_serial \
		-cert "$CA/$ISSUER.crt" -keyfile "$CA/$ISSUER.key" \
		-extfile "$CONF/$name.ext" -extensions ext \
		-in "$CONF/$name.csr" -out "$OUT/$name.crt" "$@"
	ossl x509 -in "$OUT/$name.crt" -outform DER -out "$OUT/$name.der"
	unset ISSUER EKU POLICY KU SAN SUBJ NB NA
}

for k in rsa2048 rsa3072 rsa4096 p256 p384; do
	leaf "alice-$k" alice "Alice Example"
done
leaf bob-p256 bob "Bob Example"
leaf carol-p256 carol "Carol Example"
NB=20200101000000Z NA=20210101000000Z leaf alice-expired alice "Alice Example"
NB=20990101000000Z NA=21000101000000Z leaf alice-notyet alice "Alice Example"
ISSUER=other-root leaf alice-untrusted alice "Alice Example"
EKU=emailProtection leaf alice-wrongeku alice "Alice Example"
EKU=2.16.840.1.101.3.6.8 POLICY=$POL_CARDAUTH leaf alice-cardauth alice "Alice Example"
POLICY=$POL_CARDAUTH leaf alice-cardauth-policy alice "Alice Example"
KU="critical, keyEncipherment" leaf alice-nodigsig alice "Alice Example"
SUBJ="/C=US/O=PIV Test/OU=People/UID=alice/UID=bob/CN=Two Names" \
SAN="email:alice@example.test, email:bob@example.test, otherName:1.3.6.1.4.1.311.20.2.3;UTF8:alice@EXAMPLE.TEST, otherName:1.3.6.1.4.1.311.20.2.3;UTF8:bob@EXAMPLE.TEST" \
	leaf twouid alice "Two Names"
# CN with LF, ESC "[31m", '"', '\' and an LDAP filter fragment. -subj takes raw
# bytes; '\\' is the -subj escape for one backslash.
HOSTILE_CN=$(printf 'Alice Example\nroot\033[31m "quoted" \\\\ *)(uid=*')
SUBJ="/C=US/O=PIV Test/OU=People/UID=alice/CN=$HOSTILE_CN" \
	leaf hostile alice "unused"

# ---- self-checks: fail loudly if the PKI is not what the tests expect
hexof() { od -An -tx1 -v "$1" | tr -s ' \n' '  '; }
case $(hexof "$OUT/hostile.der") in
*" 0a 72 6f 6f 74 1b 5b 33 31 6d 20 22 "*) ;;
*) die "hostile.der does not contain the raw LF/ESC bytes" ;;
esac
case $(openssl x509 -in "$OUT/twouid.crt" -noout -subject -nameopt RFC2253) in
*"UID=bob,UID=alice,"*) ;;
*) die "twouid.crt does not carry two UID RDNs" ;;
esac

v=$(openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/inter.crt" \
	-x509_strict -explicit_policy -policy "$POL_AUTH" -purpose sslclient \
	"$OUT/alice-p256.crt" 2>&1) || die "alice-p256 does not verify: $v"
if v=$(openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/inter.crt" \
	"$OUT/alice-expired.crt" 2>&1); then
	die "alice-expired unexpectedly verifies"
fi
case $v in *expired*) ;; *) die "alice-expired fails for the wrong reason: $v" ;; esac

# the database stays (for revocation/CRL tests); the per-serial copies go
rm -rf "$LOG" "$DB/newcerts" "$DB"/*.old
