#!/bin/sh
# Login latency benchmark: one full pam_piv authentication (helper start,
# card read, validation, mapping, PIN, signature, verification) through
# pamtester under pam_wrapper, RUNS times per virtual card; prints median,
# p95, min and max in milliseconds. Usage: tests/bench/login-bench.sh [RUNS]
# (after a build; as root). Cards: SoftHSM2 tokens from mkfixtures.sh.
set -eu
runs=${1:-50}
src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$src}
module="$build/src/.libs/pam_piv.so"
helper="$build/src/pam_piv_helper"
[ -f "$module" ] && [ -x "$helper" ] || { echo "build first (make)" >&2; exit 1; }
command -v pamtester >/dev/null || { echo "needs pamtester" >&2; exit 1; }

work=$(mktemp -d /tmp/piv-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 700 "$work"
sh "$src/tests/mkfixtures.sh" "$work/fx"
mkdir -p "$work/svc"
echo "auth required $module config=$work/pam_piv.conf" > "$work/svc/bench"
softhsm=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && { softhsm=$m; break; }
done
lib() { pkg-config --libs "$1" | tr -d ' '; }
preload="$(lib pam_wrapper):$(lib nss_wrapper)"

bench_card() { # scenario
	cat > "$work/pam_piv.conf" <<CONF
pkcs11_module = $softhsm
ca_file = $work/fx/pki/ca/root.pem
intermediates = $work/fx/pki/intermediates.pem
revocation = none
helper = $helper
helper_env = SOFTHSM2_CONF=$work/fx/tok/$1/softhsm2.conf
fail_delay = 0
CONF
	chmod 600 "$work/pam_piv.conf"
	: > "$work/times"
	i=0
	while [ "$i" -lt "$runs" ]; do
		t0=$(date +%s%N)
		echo 123456 | env PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/svc" \
			NSS_WRAPPER_PASSWD="$work/fx/passwd" NSS_WRAPPER_GROUP="$work/fx/group" \
			LD_PRELOAD="$preload" pamtester bench alice authenticate >/dev/null 2>&1 ||
			{ echo "login failed on $1" >&2; exit 1; }
		t1=$(date +%s%N)
		echo $(( (t1 - t0) / 1000 )) >> "$work/times"
		i=$((i + 1))
	done
	sort -n "$work/times" | awk -v card="$1" '
		{ v[NR] = $1 }
		END {
			n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			p95 = v[int(n * 0.95 + 0.999)]
			printf "%-10s %6d %10.1f %10.1f %10.1f %10.1f\n", card, n, med / 1000, p95 / 1000, v[1] / 1000, v[n] / 1000
		}'
}

# The baseline: pamtester + pam_wrapper with a module that does nothing.
baseline() {
	echo "auth required pam_permit.so" > "$work/svc/permit"
	: > "$work/times"
	i=0
	while [ "$i" -lt "$runs" ]; do
		t0=$(date +%s%N)
		env PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/svc" LD_PRELOAD="$preload" \
			pamtester permit alice authenticate >/dev/null 2>&1 || true
		t1=$(date +%s%N)
		echo $(( (t1 - t0) / 1000 )) >> "$work/times"
		i=$((i + 1))
	done
	sort -n "$work/times" | awk '{ v[NR] = $1 } END { n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2; printf "%-10s %6d %10.1f %10.1f %10.1f %10.1f\n", "pam_permit", n, med / 1000, v[int(n * 0.95 + 0.999)] / 1000, v[1] / 1000, v[n] / 1000 }'
}

printf "%-10s %6s %10s %10s %10s %10s\n" card runs median_ms p95_ms min_ms max_ms
# The new pam_wrapper service must be present before the first pamtester.
echo "auth required pam_permit.so" > "$work/svc/permit"
baseline
for card in rsa2048 p256 rsa3072 p384; do
	bench_card "$card"
done
