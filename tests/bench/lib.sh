# Shared by the benchmarks in tests/bench/ (sourced, not run): a private
# work directory with the test PKI and virtual cards, a pam_wrapper service,
# and a timer that runs one pamtester login RUNS times and prints
# median/p95/min/max milliseconds and the peak RSS of the login process.

bench_init() { # RUNS
	runs=$1
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
	echo "auth required pam_permit.so" > "$work/svc/permit"
	softhsm=""
	for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
		[ -f "$m" ] && { softhsm=$m; break; }
	done
	preload="$(pkg-config --libs pam_wrapper | tr -d ' '):$(pkg-config --libs nss_wrapper | tr -d ' ')"
	gnu_time=""
	[ -x /usr/bin/time ] && /usr/bin/time -f %M true 2>/dev/null && gnu_time=/usr/bin/time
	printf "%-28s %5s %10s %10s %10s %10s %9s\n" case runs median_ms p95_ms min_ms max_ms rss_kb
}

# The base configuration for a card; more lines come on stdin.
bench_conf() { # card
	{
		cat <<CONF
pkcs11_module = $softhsm
ca_file = $work/fx/pki/ca/root.pem
intermediates = $work/fx/pki/intermediates.pem
helper = $helper
crl_builder = $build/src/pam_piv_crlindex
helper_env = SOFTHSM2_CONF=$work/fx/tok/$1/softhsm2.conf
fail_delay = 0
CONF
		cat
	} > "$work/pam_piv.conf"
	chmod 600 "$work/pam_piv.conf"
}

# bench_run NAME SERVICE [BEFORE-EACH-COMMAND]
bench_run() {
	: > "$work/times"
	: > "$work/rss"
	i=0
	while [ "$i" -lt "$runs" ]; do
		[ -n "${3:-}" ] && eval "$3"
		t0=$(date +%s%N)
		# shellcheck disable=SC2086
		echo 123456 | env PAM_WRAPPER=1 PAM_WRAPPER_SERVICE_DIR="$work/svc" \
			NSS_WRAPPER_PASSWD="$work/fx/passwd" NSS_WRAPPER_GROUP="$work/fx/group" \
			LD_PRELOAD="$preload" ${gnu_time:+$gnu_time -a -o "$work/rss" -f %M} \
			pamtester "$2" alice authenticate >/dev/null 2>"$work/err" ||
			{ echo "$1: login failed" >&2; cat "$work/err" >&2; exit 1; }
		t1=$(date +%s%N)
		echo $(( (t1 - t0) / 1000 )) >> "$work/times"
		i=$((i + 1))
	done
	rss=$(sort -n "$work/rss" | tail -n 1)
	sort -n "$work/times" | awk -v name="$1" -v rss="${rss:--}" '
		{ v[NR] = $1 }
		END {
			n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			p95 = v[int(n * 0.95 + 0.999)]
			printf "%-28s %5d %10.1f %10.1f %10.1f %10.1f %9s\n", name, n, med / 1000, p95 / 1000, v[1] / 1000, v[n] / 1000, rss
		}'
}
