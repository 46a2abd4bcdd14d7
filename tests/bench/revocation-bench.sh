#!/bin/sh
# Revocation cost: the same P-256 login with revocation off; with CRLs of 0
# (the test PKI's), 100,000 and 1,000,000 entries for the issuing CA, as
# DER and as PEM (with its hash link), each with a cold cache (emptied
# before every login: the detached builder reads, verifies and indexes the
# CRL while the login waits; its peak RSS from crl-builds.log) and a warm
# one (the index is only mapped and searched); with OCSP (openssl ocsp on loopback) cold and warm. Where
# Debian's libpam-pkcs11 is installed, pam_pkcs11 on the same card and CRLs
# (cert_policy crl_offline; it keeps no cache). Large CRLs are generated
# here by tests/mkbigcrl and never kept.
# Usage: tests/bench/revocation-bench.sh [RUNS]   (after make check; as root)
set -eu
# openssl ocsp binds every interface: run in a network namespace of our own.
if [ -z "${PIV_NETNS:-}" ]; then
	PIV_NETNS=1 exec unshare --net -- sh -c 'ip link set lo up && exec sh "$0" "$@"' "$0" "$@"
fi
PIV_OCSP_URL=http://127.0.0.1:8888
export PIV_OCSP_URL
. "$(dirname "$0")/lib.sh"
bench_init "${1:-30}"
mkbigcrl="$build/tests/mkbigcrl"
[ -x "$mkbigcrl" ] || { echo "build tests/mkbigcrl first (make check)" >&2; exit 1; }
pki="$work/fx/pki"

timeout 3600 openssl ocsp -index "$pki/ca/db/index.txt" -CA "$pki/ca/inter.crt" -port 8888 \
	-rsigner "$pki/ocsp-signer.crt" -rkey "$pki/ocsp-signer.key" -ndays 1 >/dev/null 2>&1 &
ocsp_pid=$!
trap 'kill $ocsp_pid 2>/dev/null; rm -rf "$work"' EXIT
until openssl ocsp -issuer "$pki/ca/inter.crt" -cert "$pki/alice-p256.crt" -url "$PIV_OCSP_URL" \
	-noverify >/dev/null 2>&1; do sleep 0.05; done

echo "revocation = none" | bench_conf p256
bench_run "no revocation" bench

# builder_rss CACHE: the largest peak RSS the CRL index builder logged
builder_rss() {
	sed -n 's/.*peak RSS \([0-9]*\) kB.*/\1/p' "$1/crl-builds.log" 2>/dev/null | sort -n | tail -n 1
}
for size in small 100000 1000000; do
	for form in der pem; do
		[ "$size" = small ] && [ "$form" = pem ] && continue
		dir="$work/crl-$size-$form"
		mkdir -p "$dir"
		cp "$pki/crl/root.crl" "$dir/root.crl"
		if [ "$size" = small ]; then
			cp "$pki/crl/inter.crl" "$dir/inter.crl"
		elif [ "$form" = der ]; then
			"$mkbigcrl" "$pki/ca/inter.crt" "$pki/ca/inter.key" "$size" "$dir/inter.crl" \
				--revoke-serial-of "$pki/alice-revoked.crt"
		else
			# the same CRL as PEM, laid out the way sites do: hash link and file
			openssl crl -inform DER -in "$work/crl-$size-der/inter.crl" -outform PEM \
				-out "$dir/inter.pem"
			ln -s inter.pem "$dir/$(openssl crl -in "$dir/inter.pem" -noout -hash).r0"
		fi
		cache="$work/cache-$size-$form"
		printf 'revocation = crl\ncrl_fetch = no\ncrl_dir = %s\ncache_dir = %s\nnet_timeout = 15\n' \
			"$dir" "$cache" | bench_conf p256
		bench_run "crl $size $form, cold" bench "rm -rf '$cache'"
		echo "    (index builder, peak RSS: $(builder_rss "$cache") kB)"
		bench_run "crl $size $form, warm" bench
	done
done

# OCSP for the card's certificate; the issuing CA (no responder) by CRL.
printf 'revocation = ocsp,crl\ncrl_fetch = no\ncrl_dir = %s\ncache_dir = %s/cache-ocsp\n' \
	"$work/crl-small-der" "$work" | bench_conf p256
bench_run "ocsp, cold cache" bench "rm -rf '$work/cache-ocsp'"
bench_run "ocsp, warm cache" bench

pam_pkcs11=$(ls /lib/*/security/pam_pkcs11.so /usr/lib/*/security/pam_pkcs11.so 2>/dev/null | head -n 1 || true)
if [ -z "$pam_pkcs11" ]; then
	echo "(libpam-pkcs11 is not installed: no pam_pkcs11 comparison)"
	exit 0
fi
SOFTHSM2_CONF="$work/fx/tok/p256/softhsm2.conf"
export SOFTHSM2_CONF
mkdir -p "$work/pp-ca"
cp "$pki/ca/root.crt" "$pki/ca/inter.crt" "$work/pp-ca/"
pkcs11_make_hash_link "$work/pp-ca" >/dev/null 2>&1
echo "auth required $pam_pkcs11 config_file=$work/pam_pkcs11.conf" > "$work/svc/pkcs11"
for size in none small 100000 1000000; do
	policy="ca,signature,crl_offline"
	crls="$work/pp-crl-$size"
	mkdir -p "$crls"
	if [ "$size" = none ]; then
		policy="ca,signature"
	else
		for c in "$work/crl-$size-der"/*.crl; do
			openssl crl -inform DER -in "$c" -outform PEM -out "$crls/$(basename "$c").pem"
		done
		pkcs11_make_hash_link "$crls" >/dev/null 2>&1
	fi
	cat > "$work/pam_pkcs11.conf" <<CONF
pam_pkcs11 {
  nullok = false; debug = false; use_first_pass = false; try_first_pass = false;
  use_authtok = false; card_only = true; wait_for_card = false;
  use_pkcs11_module = softhsm;
  pkcs11_module softhsm {
    module = $softhsm; description = "SoftHSM"; slot_description = "none";
    ca_dir = $work/pp-ca; crl_dir = $crls; support_threads = false;
    cert_policy = $policy; token_type = "Smart card";
  }
  use_mappers = uid;
  mapper_search_path = /lib/x86_64-linux-gnu/pam_pkcs11;
  mapper uid { debug = false; module = internal; ignorecase = false; mapfile = "none"; }
}
CONF
	bench_run "pam_pkcs11, crl $size" pkcs11
done
