#!/bin/sh
# Brings the Debian 12 packages pam_piv builds, tests and demos against to
# the archive's current versions: installs the missing ones and upgrades
# the outdated ones (as root). Shared by ./demo, tests/check.sh and
# .ci/run, so that a run here tests what a new machine gets (OpenSSL's
# behaviour changes between 3.0 point releases). The package lists are
# refreshed when they are older than a day, or always with --update (CI).
# With --fuzzing, also what a build configured with CC=clang
# --enable-fuzzing needs (clang, libFuzzer, llvm-symbolizer); with
# --packaging, what tests/deb/deb-tests.sh needs (debhelper, lintian, blhc).
set -eu

PACKAGES="build-essential autoconf automake libtool pkg-config openssl
libssl-dev libssl3 libp11-kit-dev p11-kit libpam0g-dev libsss-certmap-dev libtalloc-dev
libcmocka-dev libpamtest0-dev libpam-wrapper libnss-wrapper libldap-dev
softhsm2 opensc pamtester faketime iproute2 util-linux slapd ldap-utils
openssh-server openssh-client sudo procps valgrind systemd libsystemd-dev dbus-daemon dconf-cli"
update=
for arg in "$@"; do
	case $arg in
	--fuzzing) PACKAGES="$PACKAGES clang libclang-rt-14-dev llvm-14" ;;
	--packaging) PACKAGES="$PACKAGES debhelper lintian devscripts blhc dpkg-dev" ;;
	--update) update=1 ;;
	*) echo "install-deps: unknown option $arg" >&2; exit 2 ;;
	esac
done

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
if [ "$(id -u)" != 0 ]; then
	if [ -n "$missing" ]; then
		echo "install-deps: missing packages:$missing" >&2
		echo "install-deps: run as root (or: sudo apt-get install$missing)" >&2
		exit 1
	fi
	# shellcheck disable=SC2086
	if apt-get -s -q install --no-install-recommends $PACKAGES 2>/dev/null | grep -q '^Inst '; then
		echo "install-deps: some packages are older than the archive's; as root this" >&2
		echo "install-deps: script upgrades them (tests may differ from a new machine's)" >&2
	fi
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
lists_fresh() {
	[ -n "$(find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -mmin -1440 2>/dev/null | head -n 1)" ]
}
if [ -n "$update" ] || [ -n "$missing" ] || ! lists_fresh; then
	apt-get update -q >/dev/null
fi
# What apt would install or upgrade (dependencies such as libssl3 follow
# their -dev package to the same version).
# shellcheck disable=SC2086
changes=$(apt-get -s -q install --no-install-recommends $PACKAGES | sed -n 's/^Inst \([^ ]*\) .*/\1/p' |
	tr '\n' ' ')
[ -n "$changes" ] || exit 0
echo "install-deps: installing or upgrading: $changes" >&2
# slapd and sshd are only for the tests, which start their own on loopback
# in a private network namespace: a newly installed package must neither
# create a directory nor start the system's server. A policy-rc.d of our
# own (101: "action forbidden") keeps those services down while installing,
# and goes again; services that were installed before are left to their
# usual restart.
echo "slapd slapd/no_configuration boolean true" | debconf-set-selections
policy=/usr/sbin/policy-rc.d
own_policy=
held=""
case " $missing " in *" slapd "*) held="$held slapd" ;; esac
case " $missing " in *" openssh-server "*) held="$held ssh sshd" ;; esac
if [ ! -e "$policy" ] && [ -n "$held" ]; then
	printf '#!/bin/sh\ncase "$1" in %s) exit 101 ;; esac\nexit 0\n' \
		"$(echo $held | tr ' ' '|')" > "$policy"
	chmod 755 "$policy"
	own_policy=1
fi
rc=0
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $PACKAGES >/dev/null || rc=$?
[ -z "$own_policy" ] || rm -f "$policy"
exit "$rc"
