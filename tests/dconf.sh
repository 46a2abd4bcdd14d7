#!/bin/sh
# The GNOME sample (data/gnome/): dconf compiles the keyfile and its lock
# into a database, and a profile that uses it reads removal-action as
# lock-screen and the key as locked. Needs dconf (package dconf-cli);
# skipped without it.
set -eu
: "${top_srcdir:?run through make check}"

if ! command -v dconf >/dev/null 2>&1; then
	echo "dconf: no dconf (package dconf-cli): skipped"
	exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/piv-dconf.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/local.d/locks"
cp "$top_srcdir/data/gnome/00-pam-piv-smartcard" "$work/local.d/"
cp "$top_srcdir/data/gnome/locks/00-pam-piv-smartcard" "$work/local.d/locks/"
dconf compile "$work/local" "$work/local.d" || { echo "dconf: the sample does not compile"; exit 1; }
printf 'file-db:%s\n' "$work/local" > "$work/profile"
key=/org/gnome/settings-daemon/peripherals/smartcard/removal-action
value=$(DCONF_PROFILE="$work/profile" dconf read "$key")
[ "$value" = "'lock-screen'" ] || { echo "dconf: $key is '$value', not 'lock-screen'"; exit 1; }
# The lock: the database has a .locks table naming the key by its whole
# path (the values are stored by path component, so the whole path is only
# there when the lock is).
strings -a "$work/local" | grep -qx '\.locks' &&
	strings -a "$work/local" | grep -qxF "$key" ||
	{ echo "dconf: no lock for $key"; exit 1; }
echo "dconf: $key = $value, locked"
