#!/bin/sh
# Owns the test PKI: root/issuing/untrusted CAs, every leaf certificate and
# key the pam_piv tests use, and the CRLs (OUTDIR/crl), generated with the
# openssl CLI into OUTDIR.
# Usage: mkpki.sh OUTDIR   (OUTDIR is created; existing files are overwritten)
# env: PIV_CRL_BASE  base URL of the CRL distribution points written into the
#                    certificates (default http://127.0.0.1:9/crl: nothing
#                    listens there); leaves of CA X point to BASE/X.crl, the
#                    issuing CAs to BASE/root.crl
#      PIV_OCSP_URL  if set, every leaf gets authorityInfoAccess OCSP;URI:URL
set -eu

die() { printf 'mkpki.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: mkpki.sh OUTDIR"
command -v openssl >/dev/null 2>&1 || die "openssl not found"

# Only URL characters that need no quoting in an openssl config value.
urlok() {
	case $1 in
	*[!]A-Za-z0-9:/._~%@+=?\&[-]*|'') return 1 ;;
	esac
}
CRL_BASE=${PIV_CRL_BASE:-http://127.0.0.1:9/crl}
CRL_BASE=${CRL_BASE%/}
urlok "$CRL_BASE" || die "PIV_CRL_BASE is not a plain URL: $CRL_BASE"
OCSP_URL=${PIV_OCSP_URL:-}
[ -z "$OCSP_URL" ] || urlok "$OCSP_URL" || die "PIV_OCSP_URL is not a plain URL: $OCSP_URL"

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
CA=$OUT/ca
CONF=$OUT/conf
DB=$CA/db
CRL=$OUT/crl
rm -rf "$CA" "$CONF" "$CRL"
mkdir -p "$CA" "$CONF" "$DB/newcerts" "$CRL"
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

# gtime SECONDS [FORMAT]: that instant (UTC), GeneralizedTime by default
gtime() {
	date -u -d "@$1" "+${2:-%Y%m%d%H%M%SZ}" 2>/dev/null ||
		date -u -r "$1" "+${2:-%Y%m%d%H%M%SZ}" 2>/dev/null ||
		die "cannot format a date with date(1)"
}
now=$(date -u +%s)
CRL_LAST=$(gtime $((now - 3600)))            # current CRLs: now-1h ..
CRL_NEXT=$(gtime $((now + 7 * 86400)))       #               .. now+7d
FUT_LAST=$(gtime $((now + 2 * 86400)))       # not yet valid: now+2d ..
FUT_NEXT=$(gtime $((now + 30 * 86400)))      #                .. now+30d
REV_AT=$(gtime $((now - 7200)) %y%m%d%H%M%SZ) # revocation date (index.txt: UTCTime)
# crlNumbers (hex) of the issuing CA's CRLs; the delta CRL's base is inter.crl
INTER_CRLNUM=02

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
crlDistributionPoints  = URI:$CRL_BASE/root.crl

# CRL generation (openssl ca -gencrl -name crl_DB): each CA's CRL lists the
# revoked entries of its own database; DB/index.txt records every certificate.
[ crl_inter ]
database   = $DB/inter.txt
crlnumber  = $DB/crlnumber
default_md = sha256

[ crl_root ]
database   = $DB/root.txt
crlnumber  = $DB/crlnumber
default_md = sha256

[ crl_empty ]
database   = $DB/empty.txt
crlnumber  = $DB/crlnumber
default_md = sha256

[ crlext ]
authorityKeyIdentifier = keyid:always

# deltaCRLIndicator (2.5.29.27; the CLI has no name for it), BaseCRLNumber = inter.crl's
[ crlext_delta ]
authorityKeyIdentifier = keyid:always
2.5.29.27              = critical, DER:02:01:$INTER_CRLNUM

# scope: an issuingDistributionPoint naming another distribution point
# (partA) or the one the issuing CA's leaves name
[ crlext_idp_other ]
authorityKeyIdentifier   = keyid:always
issuingDistributionPoint = critical, @idp_other

[ idp_other ]
fullname = URI:$CRL_BASE/partA.crl

[ crlext_idp_own ]
authorityKeyIdentifier   = keyid:always
issuingDistributionPoint = critical, @idp_own

[ idp_own ]
fullname = URI:$CRL_BASE/inter.crl

# a complete CRL that announces its delta CRLs (as AD CS does by default),
# and that delta CRL (BaseCRLNumber 0x30)
[ crlext_fresh ]
authorityKeyIdentifier = keyid:always
freshestCRL            = URI:$CRL_BASE/inter-delta-fresh.crl

[ crlext_delta_fresh ]
authorityKeyIdentifier = keyid:always
2.5.29.27              = critical, DER:02:01:30

[ crlext_critical ]
authorityKeyIdentifier = keyid:always
1.2.3.4                = critical, DER:05:00
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
bg_genkey "$CA/inter2" p256
bg_genkey "$OUT/alice-rsa2048" rsa2048
bg_genkey "$OUT/alice-rsa3072" rsa3072
bg_genkey "$OUT/alice-rsa4096" rsa4096
bg_genkey "$OUT/alice-p384" p384
for n in alice-p256 bob-p256 carol-p256 alice-expired alice-notyet \
	alice-untrusted alice-wrongeku alice-cardauth alice-cardauth-policy \
	alice-nodigsig twouid hostile alice-revoked alice-inter2 ocsp-signer alice-fascn \
	inject upn-nul upn-badutf8; do
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

# a second issuing CA, revoked in root.crl
ossl req -new -config "$CONF/ca.cnf" -utf8 -key "$CA/inter2.key" \
	-subj "/C=US/O=PIV Test/CN=PIV Test Issuing CA 2" -out "$CONF/inter2.csr"
ossl ca -batch -notext -config "$CONF/ca.cnf" -utf8 -preserveDN -rand_serial \
	-cert "$CA/root.crt" -keyfile "$CA/root.key" -in "$CONF/inter2.csr" \
	-out "$CA/inter2.crt" -extensions v3_inter -startdate "$START" -days 1825
ossl x509 -in "$CA/inter2.crt" -outform DER -out "$CA/inter2.der"

cp "$CA/root.crt" "$CA/root.pem"
cp "$CA/inter.crt" "$OUT/intermediates.pem"
cat "$CA/inter.crt" "$CA/inter2.crt" > "$OUT/intermediates-all.pem"

# ---- leaves
EKU_PIV="clientAuth, 1.3.6.1.4.1.311.20.2.2, 1.3.6.1.5.2.3.4"
POL_AUTH=2.16.840.1.101.3.2.1.3.13
POL_CARDAUTH=2.16.840.1.101.3.2.1.3.17

# leaf NAME UID "CN" — optional overrides via variables set just before the call:
#   ISSUER (inter|inter2|other-root) EKU POLICY KU SAN SUBJ NB NA (explicit dates)
# Leaves of inter and inter2 point to their CA's CRL (PIV_CRL_BASE/CA.crl).
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
	case $ISSUER in
	inter|inter2)
		printf 'crlDistributionPoints  = URI:%s/%s.crl\n' "$CRL_BASE" "$ISSUER" \
			>> "$CONF/$name.ext" ;;
	esac
	if [ -n "$OCSP_URL" ]; then
		printf 'authorityInfoAccess    = OCSP;URI:%s\n' "$OCSP_URL" >> "$CONF/$name.ext"
	fi
	# more config sections (e.g. a SAN section), after every [ ext ] line
	if [ -n "${EXTRA:-}" ]; then
		printf '%s\n' "$EXTRA" >> "$CONF/$name.ext"
	fi
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
	unset ISSUER EKU POLICY KU SAN SUBJ NB NA EXTRA
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
leaf alice-revoked alice "Alice Example"
ISSUER=inter2 leaf alice-inter2 alice "Alice Example"
# a PIV card's identifiers: the FASC-N (otherName 2.16.840.1.101.3.6.6) and
# the card UUID (urn:uuid: URI), for mapping files; its UID is "fascnuser",
# an account that does not exist, so only a mapping file can map it
SAN="@piv_san" EXTRA="[ piv_san ]
otherName.1 = 2.16.840.1.101.3.6.6;FORMAT:HEX,OCTETSTRING:D4E739DA739CED39CE739D836858210842108421C84210C3EB
URI.1 = urn:uuid:4D2B0E59-3C0A-4C2E-9D2E-0A1B2C3D4E5F" \
	leaf alice-fascn fascnuser "Alice Card"
# A CN that is an LDAP filter fragment: unescaped in a filter such as
# (&(objectClass=posixAccount)(cn={subject_dn_component.cn})) it would
# match every entry.
SUBJ="/C=US/O=PIV Test/OU=People/UID=mallory/CN=*)(uid=*" leaf inject mallory "unused"
# UPNs a C string reads differently, issued with a placeholder byte that
# is patched (and the certificate signed again) further down, since no
# openssl command writes a NUL or a non-UTF-8 byte into a UTF8String:
# upn-nul: "alice" NUL "@evil.example" (a truncating reader sees alice);
# upn-badutf8: "alice" 0xFF "@EXAMPLE.TEST" (not UTF-8).
SAN="otherName:1.3.6.1.4.1.311.20.2.3;UTF8:aliceX@evil.example" \
	leaf upn-nul mallory "Mallory Example"
SAN="otherName:1.3.6.1.4.1.311.20.2.3;UTF8:aliceY@EXAMPLE.TEST" \
	leaf upn-badutf8 mallory "Mallory Example"
# the issuing CA's delegated OCSP responder (id-kp-OCSPSigning)
EKU=OCSPSigning SAN="DNS:ocsp.example.test" SUBJ="/C=US/O=PIV Test/CN=PIV Test OCSP Responder" \
	leaf ocsp-signer ocsp "unused"

# ---- revocation: alice-revoked (by inter) and inter2 (by root)
# openssl ca -revoke marks them in the shared database; their revocation date
# is moved back to REV_AT (before the CRLs' lastUpdate). Each CA's CRL
# database gets its own entries only.
serial() { openssl x509 -in "$1" -noout -serial | sed 's/^serial=//'; }
ossl ca -batch -config "$CONF/ca.cnf" -cert "$CA/inter.crt" -keyfile "$CA/inter.key" \
	-revoke "$OUT/alice-revoked.crt" -crl_reason keyCompromise
ossl ca -batch -config "$CONF/ca.cnf" -cert "$CA/root.crt" -keyfile "$CA/root.key" \
	-revoke "$CA/inter2.crt" -crl_reason cACompromise
awk -F '\t' -v OFS='\t' -v d="$REV_AT" '$1 == "R" { sub(/^[0-9]+Z/, d, $3) } 1' \
	"$DB/index.txt" > "$DB/index.txt.new"
mv "$DB/index.txt.new" "$DB/index.txt"
# dbline CERT: its (revoked) line of the shared database
dbline() {
	s=$(serial "$1") || die "cannot read the serial of $1"
	awk -F '\t' -v s="$s" '$1 == "R" && $4 == s' "$DB/index.txt" | grep . ||
		die "$1 is not revoked in $DB/index.txt"
}
dbline "$OUT/alice-revoked.crt" > "$DB/inter.txt"
dbline "$CA/inter2.crt" > "$DB/root.txt"
: > "$DB/empty.txt"

# ---- CRLs (DER in crl/; openssl ca writes PEM, into conf/gencrl.pem)
# gencrl NAME DB CA-CERT CA-KEY CRLNUMBER LASTUPDATE NEXTUPDATE [EXTSECTION]
gencrl() {
	printf '%s\n' "$5" > "$DB/crlnumber"
	ossl ca -batch -config "$CONF/ca.cnf" -name "crl_$2" -gencrl \
		-cert "$3" -keyfile "$4" -crl_lastupdate "$6" -crl_nextupdate "$7" \
		-crlexts "${8:-crlext}" -out "$CONF/gencrl.pem"
	ossl crl -in "$CONF/gencrl.pem" -outform DER -out "$CRL/$1"
}
# icrl NAME DB CRLNUMBER LASTUPDATE NEXTUPDATE [EXTSECTION]: a CRL by inter
icrl() {
	n=$1 d=$2
	shift 2
	gencrl "$n" "$d" "$CA/inter.crt" "$CA/inter.key" "$@"
}
icrl inter-expired.crl empty 01 20200101000000Z 20200201000000Z
icrl inter.crl inter "$INTER_CRLNUM" "$CRL_LAST" "$CRL_NEXT"
cp "$CONF/gencrl.pem" "$CRL/inter.crl.pem"
icrl inter-empty.crl empty 03 "$CRL_LAST" "$CRL_NEXT"
icrl inter-nonext.crl empty 04 "$CRL_LAST" "$CRL_NEXT"
icrl inter-critical.crl empty 05 "$CRL_LAST" "$CRL_NEXT" crlext_critical
icrl inter-delta.crl empty 06 "$CRL_LAST" "$CRL_NEXT" crlext_delta
icrl inter-future.crl empty 07 "$FUT_LAST" "$FUT_NEXT"
# expired, but listing alice-revoked: the issuer said it, it stays said
icrl inter-expired-listing.crl inter 01 20200101000000Z 20200201000000Z
# current but older than inter.crl (01 < 02), from before the revocation
icrl inter-old.crl empty 01 "$CRL_LAST" "$CRL_NEXT"
icrl inter-idp-other.crl inter 20 "$CRL_LAST" "$CRL_NEXT" crlext_idp_other
icrl inter-idp-own.crl inter 21 "$CRL_LAST" "$CRL_NEXT" crlext_idp_own
# the complete CRL lists nobody; its delta CRL lists alice-revoked
icrl inter-base-fresh.crl empty 30 "$CRL_LAST" "$CRL_NEXT" crlext_fresh
icrl inter-delta-fresh.crl inter 31 "$CRL_LAST" "$CRL_NEXT" crlext_delta_fresh
gencrl root.crl root "$CA/root.crt" "$CA/root.key" 01 "$CRL_LAST" "$CRL_NEXT"
cp "$CONF/gencrl.pem" "$CRL/root.crl.pem"
gencrl inter2.crl empty "$CA/inter2.crt" "$CA/inter2.key" 01 "$CRL_LAST" "$CRL_NEXT"
gencrl inter-by-other.crl empty "$CA/other-root.crt" "$CA/other-root.key" 01 \
	"$CRL_LAST" "$CRL_NEXT"

# inter-forged.crl: inter's name and key identifier, other-root's signature.
# openssl ca insists that the key fits the certificate, so it signs with a
# look-alike of inter: same subject and subjectKeyIdentifier, other-root's key.
INTER_SKI=$(openssl x509 -in "$CA/inter.crt" -noout -ext subjectKeyIdentifier |
	sed -n '2s/^ *//p')
case $INTER_SKI in
??:*) ;;
*) die "cannot read the subjectKeyIdentifier of inter.crt" ;;
esac
cat > "$CONF/forged.cnf" <<EOF
# written by tests/mkpki.sh: a look-alike of inter with other-root's key
[ req ]
distinguished_name = req_dn
string_mask        = utf8only
utf8               = yes
prompt             = no
x509_extensions    = ext

[ req_dn ]
CN = unused

[ ext ]
basicConstraints     = critical, CA:TRUE, pathlen:0
keyUsage             = critical, keyCertSign, cRLSign
subjectKeyIdentifier = $INTER_SKI
EOF
ossl req -new -x509 -config "$CONF/forged.cnf" -utf8 -key "$CA/other-root.key" \
	-subj "/C=US/O=PIV Test/CN=PIV Test Issuing CA" -days 30 -out "$CONF/forged-inter.crt"
gencrl inter-forged.crl empty "$CONF/forged-inter.crt" "$CA/other-root.key" 08 \
	"$CRL_LAST" "$CRL_NEXT"

# byte-level helpers for the CRLs the CLI cannot make
fsize() { sz=$(wc -c < "$1") && echo $((sz)); }
# bytes FILE OFFSET COUNT: COUNT bytes of FILE from OFFSET
bytes() { dd if="$1" bs=1 skip="$2" count="$3" 2>/dev/null; }
# byte N: the byte of value N
# shellcheck disable=SC2059 # the format is the octal escape
byte() { printf "\\$(printf %03o "$1")"; }
# derlen N: a DER length field
derlen() {
	if [ "$1" -lt 128 ]; then byte "$1"
	elif [ "$1" -lt 256 ]; then byte 129; byte "$1"
	else byte 130; byte $(($1 / 256)); byte $(($1 % 256))
	fi
}

# inter-nonext.crl: openssl ca always writes a nextUpdate, so it is cut out of
# the TBSCertList (the 5th element: version, signature, issuer, thisUpdate,
# nextUpdate) and the result is signed again with inter's key.
f=$CRL/inter-nonext.crl t=$CONF/nonext
ossl asn1parse -inform DER -in "$f" -out /dev/null
# offsets: TBS start/header/length, the nextUpdate element, signatureAlgorithm
# shellcheck disable=SC2046
set -- $(awk '
	{
		off = $1; sub(/:.*/, "", off)
		match($0, /d=[0-9]+/); d = substr($0, RSTART + 2, RLENGTH - 2)
		match($0, /hl=[0-9]+/); hl = substr($0, RSTART + 3, RLENGTH - 3)
		match($0, / l= *[0-9]+/); l = substr($0, RSTART + 3, RLENGTH - 3) + 0
		tag = $0; sub(/.*(prim|cons): */, "", tag); sub(/ .*/, "", tag)
	}
	d == 1 { n1++ }
	d == 1 && n1 == 1 { tbs = off " " hl " " l }
	d == 1 && n1 == 2 { alg = off " " (hl + l) }
	d == 2 && n1 == 1 && ++n2 == 5 { next5 = off " " (hl + l) " " tag }
	END { print tbs, next5, alg }' "$LOG")
if [ $# -ne 8 ] || [ "$6" != UTCTIME ]; then
	die "unexpected structure of $f"
fi
tbs_start=$(($1 + $2)) tbs_end=$(($1 + $2 + $3))
nu_off=$4 nu_end=$(($4 + $5)) alg_off=$7 alg_len=$8
{
	printf '\060'
	derlen $((tbs_end - tbs_start - (nu_end - nu_off)))
	bytes "$f" "$tbs_start" $((nu_off - tbs_start))
	bytes "$f" "$nu_end" $((tbs_end - nu_end))
} > "$t.tbs"
ossl dgst -sha256 -sign "$CA/inter.key" -out "$t.sig" "$t.tbs"
siglen=$(fsize "$t.sig")
bytes "$f" "$alg_off" "$alg_len" > "$t.alg"
{ printf '\003'; derlen $((siglen + 1)); printf '\000'; cat "$t.sig"; } > "$t.bits"
{
	printf '\060'
	derlen $(($(fsize "$t.tbs") + alg_len + $(fsize "$t.bits")))
	cat "$t.tbs" "$t.alg" "$t.bits"
} > "$f"
rm -f "$t".* "$CONF/gencrl.pem"

# inter-badsig.crl: inter.crl with the last byte (inside the signature) flipped
n=$(fsize "$CRL/inter.crl")
last=$(od -An -tu1 -j $((n - 1)) -N 1 "$CRL/inter.crl" | tr -d ' ')
{ bytes "$CRL/inter.crl" 0 $((n - 1)); byte $((last ^ 1)); } > "$CRL/inter-badsig.crl"
# truncated.crl: the first half of inter.crl
bytes "$CRL/inter.crl" 0 $((n / 2)) > "$CRL/truncated.crl"
# garbage.crl: 2000 fixed pseudo-random bytes (an AES-CTR keystream)
dd if=/dev/zero bs=2000 count=1 2>/dev/null |
	ossl enc -aes-128-ctr -nosalt -K 7069762d746573742d67617262616765 \
		-iv 00000000000000000000000000000000 -out "$CRL/garbage.crl"

# patch_cert NAME FROM TO: replace the hex byte sequence FROM (unique, same
# length as TO) in NAME's TBSCertificate and sign it again with inter's key
hexof() { od -An -tx1 -v "$1" | tr -s ' \n' '  '; }
unhex() { for h in $1; do byte $((0x$h)); done; }
patch_cert() {
	f=$OUT/$1.der t=$CONF/patch
	ossl asn1parse -inform DER -in "$f" -out /dev/null
	# shellcheck disable=SC2046
	set -- "$@" $(awk '
		{
			off = $1; sub(/:.*/, "", off)
			match($0, /d=[0-9]+/); d = substr($0, RSTART + 2, RLENGTH - 2)
			match($0, /hl=[0-9]+/); hl = substr($0, RSTART + 3, RLENGTH - 3)
			match($0, / l= *[0-9]+/); l = substr($0, RSTART + 3, RLENGTH - 3) + 0
		}
		d == 1 && ++n1 <= 2 { printf "%s %s ", off, hl + l }' "$LOG")
	[ $# -eq 7 ] || die "unexpected structure of $f"
	bytes "$f" "$4" "$5" > "$t.tbs0"
	case $(hexof "$t.tbs0") in
	*" $2 "*) ;;
	*) die "$f: no $2 to patch" ;;
	esac
	unhex "$(hexof "$t.tbs0" | sed "s/ $2 / $3 /")" > "$t.tbs"
	[ "$(fsize "$t.tbs")" -eq "$5" ] || die "$f: patching changed the length"
	ossl dgst -sha256 -sign "$CA/inter.key" -out "$t.sig" "$t.tbs"
	bytes "$f" "$6" "$7" > "$t.alg"
	siglen=$(fsize "$t.sig")
	{ printf '\003'; derlen $((siglen + 1)); printf '\000'; cat "$t.sig"; } > "$t.bits"
	{
		printf '\060'
		derlen $(($5 + $7 + $(fsize "$t.bits")))
		cat "$t.tbs" "$t.alg" "$t.bits"
	} > "$f"
	ossl x509 -inform DER -in "$f" -out "$OUT/$1.crt"
	rm -f "$t".*
}
patch_cert upn-nul "61 6c 69 63 65 58 40" "61 6c 69 63 65 00 40"
patch_cert upn-badutf8 "61 6c 69 63 65 59 40" "61 6c 69 63 65 ff 40"

# ---- self-checks: fail loudly if the PKI is not what the tests expect
case $(hexof "$OUT/hostile.der") in
*" 0a 72 6f 6f 74 1b 5b 33 31 6d 20 22 "*) ;;
*) die "hostile.der does not contain the raw LF/ESC bytes" ;;
esac
case $(hexof "$OUT/upn-nul.der") in
*" 61 6c 69 63 65 00 40 65 76 69 6c "*) ;;
*) die "upn-nul.der does not carry alice NUL @evil" ;;
esac
for c in upn-nul upn-badutf8; do
	v=$(openssl verify -CAfile "$CA/root.crt" -untrusted "$CA/inter.crt" "$OUT/$c.crt" 2>&1) ||
		die "$c does not verify after patching: $v"
done
case $(hexof "$OUT/upn-badutf8.der") in
*" 61 6c 69 63 65 ff 40 "*) ;;
*) die "upn-badutf8.der does not carry the 0xFF byte" ;;
esac
case $(openssl x509 -in "$OUT/inject.crt" -noout -subject -nameopt RFC2253) in
*"CN=\\*)(uid=\\*"*|*"CN=*)(uid=*"*) ;;
*) die "inject.crt does not carry the filter fragment in its CN" ;;
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

# CRLs: every one parses and prints (but garbage and truncated), is what its
# name says, and openssl's own CRL checking agrees with the revocations.
for f in "$CRL"/*.crl; do
	case ${f##*/} in
	garbage.crl|truncated.crl)
		if openssl crl -inform DER -in "$f" -noout >/dev/null 2>&1; then
			die "${f##*/} unexpectedly parses as a CRL"
		fi ;;
	*)
		v=$(openssl crl -inform DER -in "$f" -noout -text 2>&1) ||
			die "${f##*/} does not parse: $v" ;;
	esac
done
for f in inter root; do
	openssl crl -in "$CRL/$f.crl.pem" -outform DER | cmp -s - "$CRL/$f.crl" ||
		die "$f.crl.pem is not $f.crl"
done
case $(openssl crl -inform DER -in "$CRL/inter-nonext.crl" -noout -nextupdate 2>&1) in
"nextUpdate=NONE") ;;
*) die "inter-nonext.crl has a nextUpdate" ;;
esac
v=$(openssl crl -inform DER -in "$CRL/inter-nonext.crl" -noout -CAfile "$CA/inter.crt" 2>&1) ||
	die "inter-nonext.crl: bad signature: $v"
# vfy CERT CA CRL...: openssl verify with CRL checks of the whole chain
vfy() {
	c=$1 i=$2
	shift 2
	for f in "$@"; do
		set -- "$@" -CRLfile "$CRL/$f"
		shift
	done
	openssl verify -crl_check_all -CAfile "$CA/root.crt" -untrusted "$CA/$i.crt" "$@" "$c" 2>&1
}
v=$(vfy "$OUT/alice-p256.crt" inter inter.crl root.crl) ||
	die "alice-p256 does not verify with inter.crl and root.crl: $v"
v=$(vfy "$OUT/alice-inter2.crt" inter2 inter2.crl root.crl) &&
	die "alice-inter2 unexpectedly verifies with inter2.crl and root.crl"
case $v in
*"error 23 at 1 depth"*) ;;
*) die "alice-inter2 fails for the wrong reason: $v" ;;
esac
v=$(vfy "$OUT/alice-revoked.crt" inter inter.crl root.crl) &&
	die "alice-revoked unexpectedly verifies with inter.crl and root.crl"
case $v in
*"error 23 at 0 depth"*) ;;
*) die "alice-revoked fails for the wrong reason: $v" ;;
esac
# wrong CRLs for a good card: what openssl says (X509_V_ERR_*)
for x in inter-badsig.crl:8 inter-forged.crl:8 inter-expired.crl:12 inter-future.crl:11 \
	inter-critical.crl:36 inter-by-other.crl:3; do
	v=$(vfy "$OUT/alice-p256.crt" inter "${x%:*}" root.crl) &&
		die "alice-p256 unexpectedly verifies with ${x%:*}"
	case $v in
	*"error ${x#*:} at 0 depth"*) ;;
	*) die "${x%:*}: alice-p256 fails for the wrong reason: $v" ;;
	esac
done
# The delta CRL is checked for what it is, not for what `openssl verify`
# makes of it: OpenSSL before 3.0.20 took a lone delta CRL for a complete
# one (openssl/openssl#31040) and later releases refuse it. pam_piv's own
# refusal is what test_crl and tests/pam/test_revocation assert.
case $(openssl crl -inform DER -in "$CRL/inter-delta.crl" -noout -text 2>&1) in
*"Delta CRL Indicator: critical"*) ;;
*) die "inter-delta.crl has no critical deltaCRLIndicator" ;;
esac
for x in inter-empty.crl inter-nonext.crl; do
	v=$(vfy "$OUT/alice-revoked.crt" inter "$x" root.crl) ||
		die "alice-revoked does not verify with $x: $v"
done

# the database stays (for revocation/CRL tests); the per-serial copies go
rm -rf "$LOG" "$DB/newcerts" "$DB"/*.old
