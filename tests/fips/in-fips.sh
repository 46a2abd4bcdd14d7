#!/bin/sh
# Runs CMD with a FIPS-only OpenSSL as the SYSTEM config: in a private mount
# namespace, /etc/ssl/openssl.cnf is bind-mounted (read-only) from
# OUTDIR/openssl.cnf made by build-provider.sh.
# Why: processes started with a cleared environment (env -i, PAM, sshd, sudo)
# ignore OPENSSL_CONF; this way every process sees what a real FIPS host has.
# The host's /etc/ssl/openssl.cnf is untouched outside the namespace.
#
# usage: in-fips.sh OUTDIR CMD [ARGS...]    (as root; exits with CMD's status)
set -eu

me=in-fips.sh
die() { printf '%s: %s\n' "$me" "$*" >&2; exit 125; }

[ $# -ge 2 ] || { echo "usage: $me OUTDIR CMD [ARGS...]" >&2; exit 2; }
[ "$(id -u)" = 0 ] || die "must run as root (it needs unshare -m and a bind mount)"
[ -d "$1" ] || die "no directory $1 (run tests/fips/build-provider.sh $1 first)"
D=$(cd "$1" && pwd -P)
CNF=$D/openssl.cnf
for f in "$CNF" "$D/fipsmodule.cnf" "$D/fips.so"; do
	[ -f "$f" ] || die "no $f (run tests/fips/build-provider.sh $1 first)"
done
[ -e /etc/ssl/openssl.cnf ] || die "no /etc/ssl/openssl.cnf to bind over"
shift
command -v unshare >/dev/null || die "unshare (util-linux) not found"

# the system path must win: an inherited OPENSSL_CONF would bypass it
unset OPENSSL_CONF

exec unshare -m --propagation private sh -c '
	cnf=$1; shift
	mount --bind "$cnf" /etc/ssl/openssl.cnf &&
	mount -o remount,bind,ro /etc/ssl/openssl.cnf ||
		{ echo "in-fips.sh: cannot bind-mount $cnf on /etc/ssl/openssl.cnf" >&2; exit 125; }
	exec "$@"
' in-fips "$CNF" "$@"
