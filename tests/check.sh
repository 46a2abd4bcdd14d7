#!/bin/sh
# The test command of the README: installs what is missing (as root on
# Debian 12), bootstraps, builds and runs `make check`. Extra arguments go
# to ./configure (e.g. --enable-asan). BUILD_DIR selects an out-of-tree
# build directory (default: the source tree).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
sh "$src/tests/install-deps.sh"
cd "$src"
[ -x configure ] && [ configure -nt configure.ac ] && [ configure -nt Makefile.am ] ||
	autoreconf -fi >/dev/null
build=${BUILD_DIR:-$src}
mkdir -p "$build"
cd "$build"
"$src/configure" -q "$@"
make -j"$(nproc)" >/dev/null
if ! make -j"$(nproc)" check; then
	for log in test-suite.log tests/*.log; do
		[ -f "$log" ] && { echo "==== $log"; tail -n 80 "$log"; }
	done
	exit 1
fi
