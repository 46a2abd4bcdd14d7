#!/bin/sh
# Owns the generated seed corpora of the fuzz targets: a fresh test PKI
# (tests/mkpki.sh) and what is made from it — certificates, CRLs, OCSP
# responses (openssl ocsp), SSH keys, protocol frames and agent answers —
# in OUTDIR/<target>/, one file per seed. The hand-written seeds are in
# tests/fuzz/corpus/<target>/; run.sh uses both.
# Usage: mkcorpus.sh OUTDIR   (OUTDIR/pki holds the PKI; OUTDIR is replaced)
set -eu

die() { printf 'mkcorpus.sh: %s\n' "$*" >&2; exit 1; }

[ $# -eq 1 ] || die "usage: mkcorpus.sh OUTDIR"
command -v openssl >/dev/null 2>&1 || die "openssl not found"
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
LC_ALL=C
export LC_ALL

rm -rf "$1"
mkdir -p "$1"
OUT=$(cd "$1" && pwd)
PKI=$OUT/pki
TMP=$OUT/tmp
for t in conf mapfile cert proto crlidx ocsp ssh; do
	mkdir -p "$OUT/$t"
done
mkdir -p "$TMP"

# Nothing listens at these addresses: the fuzz targets never fetch.
PIV_CRL_BASE=http://127.0.0.1:1 PIV_OCSP_URL=http://127.0.0.1:8888 \
	sh "$top/tests/mkpki.sh" "$PKI" >"$TMP/mkpki.log" 2>&1 ||
	{ cat "$TMP/mkpki.log" >&2; die "tests/mkpki.sh failed"; }

# ---- binary encodings, with printf only ----------------------------
# u8 N, u32 N (big-endian): raw bytes (an octal escape is the only way
# printf writes any byte, so the format is built on purpose)
# shellcheck disable=SC2059
u8() { printf "\\$(printf '%03o' $(($1 & 255)))"; }
u32() { u8 $(($1 >> 24)); u8 $(($1 >> 16)); u8 $(($1 >> 8)); u8 "$1"; }
# str S: a proto/SSH string (u32 length, bytes)
str() { u32 ${#1}; printf '%s' "$1"; }
# blob FILE: FILE as a string
blob() { u32 "$(wc -c <"$1")"; cat "$1"; }
# int N: a proto integer field (a 4-byte string)
int() { u32 4; u32 "$1"; }
# framed FILE: FILE with its u32 length in front (a proto frame, an
# agent message)
framed() { u32 "$(wc -c <"$1")"; cat "$1"; }
# prefixed BYTE FILE OUT: the mode byte BYTE (octal) then FILE
# shellcheck disable=SC2059
prefixed() { { printf "\\$1"; cat "$2"; } >"$3"; }
# bytes N: N pseudo-random bytes
bytes() { openssl rand "$1"; }

# ---- fuzz_cert: every certificate of the PKI, as DER -----------------
for f in "$PKI"/*.der "$PKI"/ca/*.der; do
	case $f in *.key.der) continue ;; esac
	cp "$f" "$OUT/cert/$(basename "$f")"
done
for ca in root other-root; do
	openssl x509 -in "$PKI/ca/$ca.crt" -outform DER -out "$OUT/cert/$ca.der" 2>/dev/null ||
		die "cannot convert $ca.crt"
done
# Values longer than the facts of mapfile.h hold: a 60-byte serial, a
# 70-byte key identifier.
long_serial=$(printf '7f%.0s' $(seq 1 60))
long_ski=$(printf 'ab%.0s' $(seq 1 70))
openssl req -x509 -new -key "$PKI/alice-p256.key" -subj "/CN=Alice Example/UID=alice" \
	-set_serial "0x$long_serial" -days 1 -addext "subjectKeyIdentifier=$long_ski" \
	-outform DER -out "$OUT/cert/long-serial.der" >/dev/null 2>&1 ||
	die "cannot make the long-serial certificate"

# ---- fuzz_conf: the sample configuration -------------------------------
cp "$top/pam.d/pam_piv.conf.example" "$OUT/conf/example.conf"

# ---- fuzz_mapfile: facts of a real certificate and lines matching it ---
facts() {
	cert=$1
	openssl x509 -in "$cert" -noout -fingerprint -sha256 | sed 's/.*=//; s/://g' | tr 'A-F' 'a-f'
	openssl x509 -in "$cert" -noout -subject -nameopt RFC2253 | sed 's/^subject=//'
	openssl x509 -in "$cert" -noout -issuer -nameopt RFC2253 | sed 's/^issuer=//'
	openssl x509 -in "$cert" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
	openssl x509 -in "$cert" -noout -ext subjectKeyIdentifier 2>/dev/null |
		sed -n '2s/[ :]//gp' | tr 'A-F' 'a-f'
}
for name in alice-p256 alice-fascn hostile; do
	facts "$PKI/$name.crt" >"$TMP/facts"
	sha=$(sed -n 1p "$TMP/facts")
	subject=$(sed -n 2p "$TMP/facts")
	issuer=$(sed -n 3p "$TMP/facts")
	serial=$(sed -n 4p "$TMP/facts")
	ski=$(sed -n 5p "$TMP/facts")
	{
		cat "$TMP/facts"
		printf '\0'
		printf '# %s\n' "$name"
		printf 'alice sha256=%s\n' "$sha"
		printf 'alice subject=%s\n' "$subject"
		printf 'bob issuer+serial=%s;%s\n' "$issuer" "$serial"
		[ -z "$ski" ] || printf 'carol ski=%s\n' "$ski"
	} >"$OUT/mapfile/$name"
done

# DNs around the size of the facts (1023 characters)
long_cn=$(head -c 1020 /dev/zero | tr '\0' a)
{
	printf '%064d\nCN=%s\nCN=%s\n0a\n\0' 0 "$long_cn" "$long_cn"
	printf 'alice subject=CN=%s\n' "$long_cn"
	printf 'bob subject=CN=%sbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n' "$long_cn"
	printf 'carol issuer+serial=CN=%s;0A\n' "$long_cn"
} >"$OUT/mapfile/long-dn"

# ---- fuzz_crlidx: CRLs built as they are (mode 004), re-issued by the
# target's CA (014), and re-issued as PEM (034); index files the target
# completes (003: header hash and count; 001: header hash only) ---------
# CRLs with several entries (sorted into the index) and one with a serial
# longer than an index record holds, from openssl ca.
many_crl() { # NAME SERIAL...
	name=$1
	shift
	: >"$TMP/crl-index.txt"
	for serial in "$@"; do
		printf 'R\t%s\t%s,keyCompromise\t%s\tunknown\t/CN=revoked %s\n' 301231000000Z \
			240101000000Z "$serial" "$serial" >>"$TMP/crl-index.txt"
	done
	echo 01 >"$TMP/crlnumber"
	printf '[ca]\ndefault_ca = c\n[c]\ndatabase = %s\ncrlnumber = %s\ndefault_md = sha256\ndefault_crl_days = 1\n' \
		"$TMP/crl-index.txt" "$TMP/crlnumber" >"$TMP/crl.cnf"
	openssl ca -gencrl -config "$TMP/crl.cnf" -keyfile "$PKI/ca/inter.key" \
		-cert "$PKI/ca/inter.crt" -out "$PKI/crl/$name.crl.pem" >"$TMP/ca.log" 2>&1 ||
		{ cat "$TMP/ca.log" >&2; die "openssl ca -gencrl failed"; }
}
many_crl many 01 7F 80 00FF 0A0B0C 0102030405060708090A0B0C0D0E0F1011121314 FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF
many_crl oversized 02 0102030405060708090A0B0C0D0E0F101112131415161718
for f in "$PKI"/crl/*; do
	b=$(basename "$f")
	prefixed 004 "$f" "$OUT/crlidx/raw-$b"
	prefixed 014 "$f" "$OUT/crlidx/resigned-$b"
	prefixed 034 "$f" "$OUT/crlidx/resigned-pem-$b"
done
head -c 304 /dev/zero >"$TMP/header"
{ cat "$TMP/header"; head -c 48 /dev/zero; u8 0; u8 3; head -c 19 /dev/zero; printf '\001\002\003'; } >"$TMP/idx"
prefixed 003 "$TMP/idx" "$OUT/crlidx/index-3"
prefixed 001 "$TMP/idx" "$OUT/crlidx/index-hash-only"
prefixed 003 "$TMP/header" "$OUT/crlidx/index-empty"

# ---- fuzz_ocsp: answers of openssl ocsp for the test PKI -------------
# Mode bytes: 000 as it is; 015 re-signed by the target's CA, about its
# certificate, current; 016 the same by its delegated responder; 017 by a
# stranger; 115 the same as 015 through the cache; 075 with the request's
# nonce.
ocsp_answer() { # NAME CERT SIGNER-CERT SIGNER-KEY [extra options]
	name=$1 cert=$2 signer=$3 key=$4
	shift 4
	openssl ocsp -issuer "$PKI/ca/inter.crt" -cert "$cert" -reqout "$TMP/req.der" "$@" \
		>"$TMP/ocsp.log" 2>&1 || { cat "$TMP/ocsp.log" >&2; die "openssl ocsp (request) failed"; }
	openssl ocsp -index "$PKI/ca/db/index.txt" -CA "$PKI/ca/inter.crt" -rsigner "$signer" \
		-rkey "$key" -reqin "$TMP/req.der" -respout "$TMP/$name.der" -ndays 1 \
		>"$TMP/ocsp.log" 2>&1 || { cat "$TMP/ocsp.log" >&2; die "openssl ocsp (response) failed"; }
	for mode in 000 015 016 017 115 075; do
		prefixed "$mode" "$TMP/$name.der" "$OUT/ocsp/$name-$mode"
	done
}
ocsp_answer good "$PKI/alice-p256.crt" "$PKI/ocsp-signer.crt" "$PKI/ocsp-signer.key"
ocsp_answer revoked "$PKI/alice-revoked.crt" "$PKI/ocsp-signer.crt" "$PKI/ocsp-signer.key" -no_nonce
ocsp_answer by-ca "$PKI/alice-p384.crt" "$PKI/ca/inter.crt" "$PKI/ca/inter.key"
ocsp_answer unknown "$PKI/alice-untrusted.crt" "$PKI/ocsp-signer.crt" "$PKI/ocsp-signer.key"
ocsp_answer two "$PKI/alice-revoked.crt" "$PKI/ocsp-signer.crt" "$PKI/ocsp-signer.key" \
	-cert "$PKI/alice-p256.crt"
for status in 1 2 3 5 6; do # malformedRequest ... unauthorized
	{ printf '\060\003\012\001'; u8 "$status"; } >"$TMP/status"
	prefixed 000 "$TMP/status" "$OUT/ocsp/status-$status"
done

# ---- fuzz_proto: frame bodies (mode 000) and helper streams (odd) ------
cert=$PKI/alice-p256.der
frame_seed() { # NAME: the body in $TMP/body
	prefixed 000 "$TMP/body" "$OUT/proto/$1"
}
{ printf R; str p11-kit; str ""; str "pkcs11:type=cert;id=%01"; int 10; int 1; } >"$TMP/body"
frame_seed req-certs
{ printf S; int 0; int 0; str 123456; u32 32; bytes 32; str ec; str sha256; } >"$TMP/body"
frame_seed req-sign
{ printf L; int 6; str "C_Login: CKR_PIN_INCORRECT"; } >"$TMP/body"
frame_seed log
{ printf W; } >"$TMP/body"
frame_seed waiting
{ printf Q; } >"$TMP/body"
frame_seed quit
{ printf C; int 0; str "PIV_II"; str "0123456789abcdef"; int 1037; blob "$cert"; int 2;
	blob "$PKI/ca/inter.der"; blob "$OUT/cert/root.der"; } >"$TMP/body"
frame_seed candidate
{ printf E; int 0; str ""; } >"$TMP/body"
frame_seed end-certs
{ printf E; int 1; str "no matching token is present"; } >"$TMP/body"
frame_seed end-certs-nocard
# SIGNED: status, token flags, mechanism (CKM_ECDSA 0x1041, CKM_RSA_PKCS 1,
# CKM_SHA256_RSA_PKCS_PSS 0x43), signature, message
{ printf G; int 0; int 1037; int 4161; u32 64; bytes 64; str ""; } >"$TMP/body"
frame_seed signed-ec
cp "$TMP/body" "$TMP/signed-ec"
{ printf G; int 0; int 1037; int 1; u32 256; bytes 256; str ""; } >"$TMP/body"
frame_seed signed-rsa
cp "$TMP/body" "$TMP/signed-rsa"
{ printf G; int 2; int 1037; int 0; u32 0; str "CKR_PIN_INCORRECT"; } >"$TMP/body"
frame_seed signed-badpin
cp "$TMP/body" "$TMP/signed-badpin"
{ printf L; int 7; str "signing with CKM_ECDSA"; } >"$TMP/log"
# mode bits: 1 stream, 2 EC key, 4 SHA-384, 8 RSA-PSS
{ framed "$TMP/log"; framed "$TMP/signed-ec"; } >"$TMP/stream"
prefixed 003 "$TMP/stream" "$OUT/proto/stream-ec"
prefixed 007 "$TMP/stream" "$OUT/proto/stream-ec384"
{ framed "$TMP/log"; framed "$TMP/signed-rsa"; } >"$TMP/stream"
prefixed 001 "$TMP/stream" "$OUT/proto/stream-rsa"
prefixed 011 "$TMP/stream" "$OUT/proto/stream-rsa-pss"
framed "$TMP/signed-badpin" >"$TMP/stream"
prefixed 001 "$TMP/stream" "$OUT/proto/stream-badpin"

# ---- fuzz_ssh: keys of the PKI as SSH keys (text, mode "0"), signature
# blobs (mode "1"), agent answers (modes "2" and "3") -------------------
n=0
for name in alice-p256 alice-p384 alice-rsa2048; do
	n=$((n + 1))
	openssl pkey -in "$PKI/$name.key" -pubout -out "$TMP/pub.pem" 2>/dev/null ||
		die "cannot read $name.key"
	command -v ssh-keygen >/dev/null 2>&1 || break
	key=$(ssh-keygen -i -m PKCS8 -f "$TMP/pub.pem" 2>/dev/null | cut -d' ' -f1,2)
	[ -n "$key" ] || continue
	printf '0%s' "$key" >"$OUT/ssh/pubkey-$name"
	printf '0publickey %s\n' "$key" >"$OUT/ssh/auth-info-$name"
	printf '0password\npublickey %s some info\n' "$key" >"$OUT/ssh/auth-info2-$name"
	printf '%s' "${key#* }" | openssl base64 -d -A >"$TMP/blob-$n"
done
# ecdsa-sha2-nistp256 with a made-up r and s; rsa-sha2-256 of 256 bytes
{ u32 32; u8 1; bytes 31; u32 33; u8 0; u8 255; bytes 31; } >"$TMP/rs"
{ printf 1; str ecdsa-sha2-nistp256; blob "$TMP/rs"; } >"$OUT/ssh/sig-p256"
{ printf 1; str ecdsa-sha2-nistp384; blob "$TMP/rs"; } >"$OUT/ssh/sig-p384"
{ printf 1; str rsa-sha2-256; u32 256; bytes 256; } >"$OUT/ssh/sig-rsa"
{ printf 1; str ssh-rsa; u32 256; bytes 256; } >"$OUT/ssh/sig-rsa-sha1"
# SSH2_AGENT_IDENTITIES_ANSWER (12) with the keys above
{
	u8 12
	keys=0
	for b in "$TMP"/blob-*; do [ -f "$b" ] && keys=$((keys + 1)); done
	u32 "$keys"
	for b in "$TMP"/blob-*; do [ -f "$b" ] || continue; blob "$b"; str "card key $b"; done
} >"$TMP/answer"
{ printf 2; framed "$TMP/answer"; } >"$OUT/ssh/agent-list"
{ u8 12; u32 0; } >"$TMP/answer"
{ printf 2; framed "$TMP/answer"; } >"$OUT/ssh/agent-list-empty"
{ u8 5; } >"$TMP/answer"
{ printf 2; framed "$TMP/answer"; } >"$OUT/ssh/agent-failure"
# SSH2_AGENT_SIGN_RESPONSE (14)
{ str ecdsa-sha2-nistp256; blob "$TMP/rs"; } >"$TMP/sig"
{ u8 14; blob "$TMP/sig"; } >"$TMP/answer"
{ printf 3; framed "$TMP/answer"; } >"$OUT/ssh/agent-sign"
{ printf 3; framed "$TMP/answer"; printf 'trailing'; } >"$OUT/ssh/agent-sign-trailing"

rm -rf "$TMP"
for t in conf mapfile cert proto crlidx ocsp ssh; do
	printf '%-8s %4s seeds\n' "$t" "$(find "$OUT/$t" -type f | wc -l)"
done
