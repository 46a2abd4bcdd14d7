#!/bin/sh
# Installs the Debian 12 packages pam_piv needs to build, test and run its
# demo — only those missing, and only as root. Shared by ./demo,
# tests/check.sh and .ci/run.
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config openssl
libssl-dev libp11-kit-dev p11-kit libpam0g-dev libsss-certmap-dev libtalloc-dev
libcmocka-dev libpamtest0-dev libpam-wrapper libnss-wrapper
softhsm2 opensc pamtester faketime iproute2 util-linux"

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
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing >/dev/null
