#!/bin/sh
# Runs every fuzz target for SECONDS each, one after another, in a build
# configured with --enable-fuzzing (run it from the top of that build).
# Seeds: tests/fuzz/corpus/<target> (hand-written) and what mkcorpus.sh
# generates; what the runs find is kept in WORK/corpus/<target> for the
# next run. Prints a table and exits non-zero when a target crashed, leaked,
# hung or ran out of memory; the inputs that did it stay in
# WORK/artifacts/<target>/.
# Usage: tests/fuzz/run.sh SECONDS [TARGET...]
# env: PIV_FUZZ_WORK  work directory (default tests/fuzz/work in the build)
set -eu

die() { printf 'run.sh: %s\n' "$*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: run.sh SECONDS [TARGET...]"
secs=$1
shift
case $secs in '' | *[!0-9]*) die "SECONDS must be a whole number" ;; esac
here=$(cd "$(dirname "$0")" && pwd)
targets=${*:-conf mapfile cert proto crlidx ocsp ssh}
for t in $targets; do
	[ -x "tests/fuzz/fuzz_$t" ] ||
		die "tests/fuzz/fuzz_$t not built: run from a build configured with CC=clang --enable-fuzzing, after make"
done
command -v timeout >/dev/null 2>&1 || die "timeout(1) not found"
WORK=${PIV_FUZZ_WORK:-$(pwd)/tests/fuzz/work}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# Readable stack traces when llvm-symbolizer is only installed versioned.
if ! command -v llvm-symbolizer >/dev/null 2>&1; then
	for s in /usr/lib/llvm-*/bin/llvm-symbolizer; do
		[ -x "$s" ] && export ASAN_SYMBOLIZER_PATH="$s"
	done
fi
export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-}:halt_on_error=1:print_stacktrace=1"

echo "run.sh: generating seeds in $WORK/seeds"
sh "$here/mkcorpus.sh" "$WORK/seeds" >"$WORK/mkcorpus.log" 2>&1 ||
	{ cat "$WORK/mkcorpus.log" >&2; die "mkcorpus.sh failed"; }

failed=0
table=$WORK/results
: >"$table"
for t in $targets; do
	corpus=$WORK/corpus/$t
	art=$WORK/artifacts/$t
	log=$WORK/$t.log
	rm -rf "$art" # what earlier runs found was reported then
	mkdir -p "$corpus" "$art"
	seeds="$WORK/seeds/$t"
	[ -d "$here/corpus/$t" ] && seeds="$seeds $here/corpus/$t"
	before=$(find "$corpus" -type f | wc -l)
	printf 'run.sh: fuzz_%s for %ss\n' "$t" "$secs"
	rc=0
	# libFuzzer stops itself after max_total_time; timeout(1) is for a
	# target that cannot (stuck while loading the corpus, say).
	# shellcheck disable=SC2086
	timeout -k 10 $((secs + 300)) "tests/fuzz/fuzz_$t" -max_total_time="$secs" -timeout=10 \
		-rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$art/" \
		"$corpus" $seeds >"$log" 2>&1 || rc=$?
	after=$(find "$corpus" -type f | wc -l)
	execs=$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' "$log" | tail -n 1)
	[ -n "$execs" ] || execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	stats=$(grep -E '^#[0-9]+[[:space:]]+(DONE|INITED|NEW|REDUCE|pulse)' "$log" | tail -n 1)
	cov=$(printf '%s\n' "$stats" | sed -n 's/.* cov: \([0-9]*\).*/\1/p')
	ft=$(printf '%s\n' "$stats" | sed -n 's/.* ft: \([0-9]*\).*/\1/p')
	found=
	for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-*; do
		if [ -e "$f" ]; then found="$found ${f##*/}"; fi
	done
	found=${found# }
	if [ -n "$found" ]; then
		# shellcheck disable=SC2086 # libFuzzer's names: KIND-SHA1
		result=$(printf '%s\n' $found | sed 's/-.*//' | sort -u | tr '\n' ' ')
		result="FAILED: ${result% }"
		failed=1
	elif [ "$rc" -ne 0 ]; then
		result="FAILED: exit $rc"
		failed=1
	else
		result=ok
	fi
	printf '%-8s %12s %7s %8s %6s %6s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" \
		"$before" "$after" "$result" >>"$table"
	for f in $found; do
		printf '    %s/%s\n' "$art" "$f" >>"$table"
	done
	[ "$result" = ok ] || printf '    log: %s\n' "$log" >>"$table"
done

printf '\n%-8s %12s %7s %8s %6s %6s  %s\n' target executions cov ft corpus after result
cat "$table"
if [ "$failed" -ne 0 ]; then
	echo
	echo "run.sh: reproduce with: tests/fuzz/fuzz_TARGET ARTIFACT"
	exit 1
fi
