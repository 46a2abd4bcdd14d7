#!/bin/sh
# Installs the Debian 12 packages pam_piv needs to build, test and run its
# demo — only those missing, and only as root. Shared by ./demo,
# tests/check.sh and .ci/run. With --fuzzing, also what a build configured
# with CC=clang --enable-fuzzing needs (clang, libFuzzer, llvm-symbolizer).
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config openssl
libssl-dev libp11-kit-dev p11-kit libpam0g-dev libsss-certmap-dev libtalloc-dev
libcmocka-dev libpamtest0-dev libpam-wrapper libnss-wrapper libldap-dev
softhsm2 opensc pamtester faketime iproute2 util-linux slapd ldap-utils
openssh-server openssh-client sudo procps valgrind"
if [ "${1:-}" = --fuzzing ]; then
	PACKAGES="$PACKAGES clang libclang-rt-14-dev llvm-14"
fi

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != 0 ]; then
	echo "install-deps: missing packages:$missing" >&2
	echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "install-deps: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -q >/dev/null
# slapd and sshd are only for the tests, which start their own on loopback
# in a private network namespace: the packages must neither create a
# directory nor start the system's servers. A policy-rc.d of our own (101: "action
# forbidden") keeps the service down while installing, and goes again.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
policy=/usr/sbin/policy-rc.d
own_policy=
if [ ! -e "$policy" ]; then
	printf '#!/bin/sh\nexit 101\n' > "$policy"
	chmod 755 "$policy"
	own_policy=1
fi
rc=0
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null || rc=$?
[ -z "$own_policy" ] || rm -f "$policy"
exit "$rc"
