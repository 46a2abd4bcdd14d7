#!/bin/sh
# Login latency benchmark: one full pam_piv authentication (helper start,
# card read, validation, mapping, PIN, signature, verification) through
# pamtester under pam_wrapper, RUNS times per virtual card (SoftHSM2), with
# revocation off; a pam_permit login is the harness's own cost.
# Usage: tests/bench/login-bench.sh [RUNS]   (after a build; as root)
set -eu
. "$(dirname "$0")/lib.sh"
bench_init "${1:-50}"
bench_run "pam_permit (harness)" permit
for card in rsa2048 p256 rsa3072 p384; do
	echo "revocation = none" | bench_conf "$card"
	bench_run "$card" bench
done
