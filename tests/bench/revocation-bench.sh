#!/bin/sh
# Revocation cost: the same P-256 login with revocation off, and with CRLs
# of 0 (the test PKI's), 100,000 and 1,000,000 entries for the issuing CA,
# each with a cold cache (emptied before every login: the CRL is parsed,
# verified and indexed) and a warm one (the index is only mapped and
# searched). Large CRLs are generated here by tests/mkbigcrl, never kept.
# Usage: tests/bench/revocation-bench.sh [RUNS]   (after make check; as root)
set -eu
. "$(dirname "$0")/lib.sh"
bench_init "${1:-30}"
mkbigcrl="$build/tests/mkbigcrl"
[ -x "$mkbigcrl" ] || { echo "build tests/mkbigcrl first (make check)" >&2; exit 1; }
pki="$work/fx/pki"

echo "revocation = none" | bench_conf p256
bench_run "no revocation" bench

for size in small 100000 1000000; do
	dir="$work/crl-$size"
	mkdir -p "$dir"
	cp "$pki/crl/root.crl" "$dir/root.crl"
	if [ "$size" = small ]; then
		cp "$pki/crl/inter.crl" "$dir/inter.crl"
	else
		"$mkbigcrl" "$pki/ca/inter.crt" "$pki/ca/inter.key" "$size" "$dir/inter.crl" \
			--revoke-serial-of "$pki/alice-revoked.crt"
	fi
	printf 'revocation = crl\ncrl_fetch = no\ncrl_dir = %s\ncache_dir = %s/cache-%s\n' \
		"$dir" "$work" "$size" | bench_conf p256
	bench_run "crl $size, cold cache" bench "rm -rf '$work/cache-$size'"
	bench_run "crl $size, warm cache" bench
done
