#!/bin/sh
# Card removal watcher benchmark (src/pam-piv-watch), on the rsa2048 virtual
# card (SoftHSM2 behind tests/libp11shim.so) and a private bus with the fake
# logind (tests/mkbus.sh, tests/login1d):
#  1. removal-to-action latency, RUNS times for each mode ("events": the shim
#     offers C_WaitForSlotEvent, P11SHIM_SLOT_EVENTS=1; "polling": it does
#     not, the watcher reads the slot once a second): from the moment the
#     presence file says "absent" to logind's LockSession (its own
#     CLOCK_REALTIME stamp in login1.log), median/p95/min/max in ms. The
#     card leaves at a random moment 0..JITTER_MS (default 1000) after the
#     watcher said ready: right after ready, the removal would always come
#     just after the first check (polling: ~950 ms every time).
#  2. the watcher's own cost while idle: one watcher per mode, both watched
#     over the same IDLE_SECONDS (default 30): CPU time of the watcher and its
#     card child (utime+stime) as a percentage of one core, and their VmRSS and private pages.
# Usage: tests/bench/watch-bench.sh [RUNS]   (after a build; as root)
#        env: BUILD_DIR (default: the source dir), IDLE_SECONDS, JITTER_MS
set -eu

runs=${1:-20}
idle=${IDLE_SECONDS:-30}
jitter=${JITTER_MS:-1000}
case $runs$idle$jitter in
*[!0-9]*) echo "usage: watch-bench.sh [RUNS] (RUNS, IDLE_SECONDS, JITTER_MS: numbers)" >&2; exit 2 ;;
esac
if [ "$runs" -eq 0 ] || [ "$idle" -eq 0 ]; then
	echo "RUNS and IDLE_SECONDS must be > 0" >&2
	exit 2
fi
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${BUILD_DIR:-$src}
watcher="$build/src/pam-piv-watch"
shim="$build/tests/.libs/libp11shim.so"
login1d="$build/tests/login1d"
for f in "$watcher" "$login1d"; do
	[ -x "$f" ] || { echo "$f: missing (make, make check's programs)" >&2; exit 1; }
done
[ -f "$shim" ] || { echo "$shim: missing (make check's programs)" >&2; exit 1; }
command -v pkcs11-tool >/dev/null || { echo "needs pkcs11-tool (OpenSC)" >&2; exit 1; }
softhsm=""
for m in /usr/lib/softhsm/libsofthsm2.so /usr/lib/*/softhsm/libsofthsm2.so; do
	[ -f "$m" ] && { softhsm=$m; break; }
done
[ -n "$softhsm" ] || { echo "needs SoftHSM2" >&2; exit 1; }
hz=$(getconf CLK_TCK)

work=$(mktemp -d /tmp/piv-watch-bench.XXXXXX)
chmod 700 "$work"
bus="$work/bus"
pids="" # the watchers running now
cleanup() {
	for p in $pids; do kill -KILL "$p" 2>/dev/null || :; done
	sh "$src/tests/mkbus.sh" stop "$bus" >/dev/null 2>&1 || :
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# a short pause, as mkbus.sh takes it
nap() { sleep "${1:-0.05}"; }

sh "$src/tests/mkfixtures.sh" "$work/fx" >"$work/fx.log" 2>&1 ||
	{ cat "$work/fx.log" >&2; echo "mkfixtures.sh failed" >&2; exit 1; }
label=rsa2048
conf="$work/fx/tok/$label/softhsm2.conf"
serial=$(SOFTHSM2_CONF=$conf pkcs11-tool --module "$softhsm" -L 2>/dev/null | awk -v l="$label" '
	/^ *token label *:/ { sub(/^[^:]*: */, ""); sub(/ *$/, ""); lab = $0 }
	/^ *serial num *:/ { sub(/^[^:]*: */, ""); sub(/ *$/, ""); if (lab == l) { print; exit } }')
[ -n "$serial" ] || { echo "no serial for token $label" >&2; exit 1; }

address=$(sh "$src/tests/mkbus.sh" start "$bus" "$login1d")
address=${address#DBUS_SYSTEM_BUS_ADDRESS=}
echo c1 > "$bus/sessions"
# A watcher that finds the session by the PAM process's pid (--pid,
# GetSessionByPID) is given ours, in session c1 for login1d.
pidopt=""
if "$watcher" --help 2>/dev/null | grep -q -e '--pid'; then
	pidopt="--pid $$"
	echo "$$ c1" > "$bus/pids"
fi

# presence STATE: the card in or out of its reader, atomically
presence() {
	echo "$1" > "$work/presence.tmp"
	mv -f "$work/presence.tmp" "$work/presence"
}
presence present

# start_watcher MODE READYFILE: starts one (pid in $wpid) and waits for it
start_watcher() {
	events=""
	[ "$1" = events ] && events=P11SHIM_SLOT_EVENTS=1
	: > "$2"
	# shellcheck disable=SC2086
	env -i PATH=/usr/bin:/bin SOFTHSM2_CONF="$conf" P11SHIM_TARGET="$softhsm" \
		P11SHIM_PRESENCE_FILE="$work/presence" $events \
		DBUS_SYSTEM_BUS_ADDRESS="$address" PIV_WATCH_LOG_FILE="$work/watch.log" \
		"$watcher" --module "$shim" --label "$label" --serial "$serial" $pidopt \
		--session c1 --user root --action lock --required --debug \
		3>"$2" </dev/null >/dev/null 2>>"$work/watch.err" &
	wpid=$!
	pids="$pids $wpid"
	n=0
	until grep -Eq '^ready( |$)' "$2"; do
		if grep -q '^error' "$2" || ! alive "$wpid"; then
			echo "watcher ($1) did not start:" >&2
			cat "$2" "$work/watch.err" >&2
			tail -n 5 "$work/watch.log" >&2 2>/dev/null || :
			exit 1
		fi
		n=$((n + 1))
		[ "$n" -le 200 ] || { echo "watcher ($1) not ready in 10 s" >&2; exit 1; }
		nap
	done
}

# alive PID: running and not a zombie
alive() {
	st=$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
	[ -n "$st" ] && [ "$st" != Z ]
}

# stop_watcher PID: SIGTERM, waits (5 s, then SIGKILL)
stop_watcher() {
	kill "$1" 2>/dev/null || :
	n=0
	while alive "$1"; do
		n=$((n + 1))
		if [ "$n" -gt 100 ]; then
			echo "watcher $1 ignores SIGTERM" >&2
			kill -KILL "$1" 2>/dev/null || :
		fi
		nap
	done
	wait "$1" 2>/dev/null || :
	rest=""
	for p in $pids; do [ "$p" = "$1" ] || rest="$rest $p"; done
	pids=$rest
}

# stats NAME < values (ms): one row of the latency table
stats() {
	sort -n | awk -v name="$1" '
		{ v[NR] = $1 }
		END {
			n = NR; med = (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2
			p95 = v[int(n * 0.95 + 0.999)]
			printf "%-10s %5d %10.1f %10.1f %10.1f %10.1f\n", name, n, med, p95, v[1], v[n]
		}'
}

echo "removal to LockSession (token $label, serial $serial; removal 0..$jitter ms after ready)"
printf "%-10s %5s %10s %10s %10s %10s\n" mode runs median_ms p95_ms min_ms max_ms
for mode in events polling; do
	: > "$work/lat-$mode"
	i=0
	while [ "$i" -lt "$runs" ]; do
		echo c1 > "$bus/sessions"
		: > "$bus/login1.log"
		start_watcher "$mode" "$work/ready"
		if [ "$jitter" -gt 0 ]; then
			ms=$(( $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % jitter ))
			sleep "$((ms / 1000)).$(printf %03d $((ms % 1000)))"
		fi
		t0=$(date +%s%3N)
		presence absent
		n=0
		until t1=$(awk '$1 == "LockSession" && $2 == "c1" { print $3; exit }' "$bus/login1.log") &&
			[ -n "$t1" ]; do
			n=$((n + 1))
			[ "$n" -le 200 ] || {
				echo "$mode: no LockSession in 10 s" >&2
				tail -n 5 "$work/watch.log" >&2 2>/dev/null || :
				exit 1
			}
			nap 0.01
		done
		echo $((t1 - t0)) >> "$work/lat-$mode"
		stop_watcher "$wpid"
		presence present
		i=$((i + 1))
	done
	stats "$mode" < "$work/lat-$mode"
done

# ticks PID: utime + stime (fields 14 and 15 of /proc/PID/stat)
ticks() {
	sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'
}
rss() {
	awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}
# private PID: the pages only this process has (Private_Clean + Private_Dirty)
private() {
	awk '/^Private_(Clean|Dirty):/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup"
}
echo c1 > "$bus/sessions"
presence present
: > "$work/idle" # MODE PARENT CHILD a line; idle.0 adds the ticks before
for mode in events polling; do
	start_watcher "$mode" "$work/ready-$mode"
	child=""
	n=0
	while [ -z "$child" ]; do
		child=$(pgrep -P "$wpid" | head -n 1) || :
		n=$((n + 1))
		[ "$n" -le 100 ] || { echo "$mode: the watcher has no child" >&2; exit 1; }
		[ -n "$child" ] || nap
	done
	echo "$mode $wpid $child" >> "$work/idle"
done
while read -r mode p c; do
	echo "$mode $p $c $(( $(ticks "$p") + $(ticks "$c") ))"
done < "$work/idle" > "$work/idle.0"
s0=$(date +%s%N)
sleep "$idle"
s1=$(date +%s%N)
echo
echo "idle cost over $(( (s1 - s0) / 1000000 )) ms (both watchers at once; CLK_TCK $hz)"
printf "%-10s %8s %11s %13s %12s %12s %15s\n" mode cpu_ticks cpu_percent rss_parent_kb rss_child_kb \
	rss_total_kb private_total_kb
while read -r mode p c b; do
	if ! alive "$p" || ! alive "$c"; then
		echo "$mode: the watcher ended while idle" >&2
		exit 1
	fi
	d=$(( $(ticks "$p") + $(ticks "$c") - b ))
	rp=$(rss "$p")
	rc=$(rss "$c")
	pv=$(( $(private "$p") + $(private "$c") ))
	awk -v m="$mode" -v d="$d" -v hz="$hz" -v ns="$((s1 - s0))" -v rp="$rp" -v rc="$rc" -v pv="$pv" 'BEGIN {
		printf "%-10s %8d %11.3f %13d %12d %12d %15d\n", m, d, d / hz / (ns / 1e9) * 100, rp, rc,
			rp + rc, pv }'
done < "$work/idle.0"
while read -r mode p c; do
	stop_watcher "$p"
done < "$work/idle"
