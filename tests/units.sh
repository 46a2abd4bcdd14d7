#!/bin/sh
# The refresher's systemd units (data/): systemd-analyze verify accepts
# them as they are installed (the service pointing at the built
# pam-piv-refresh), and the service keeps its hardening and runs the
# refresher the way the README says. Needs systemd-analyze (package
# systemd); skipped without it.
set -eu
: "${top_srcdir:?run through make check}" "${top_builddir:?}" "${PIV_REFRESH_TOOL:?}"

if ! command -v systemd-analyze >/dev/null 2>&1; then
	echo "units: no systemd-analyze (package systemd): skipped"
	exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/piv-units.XXXXXX")
trap 'rm -rf "$work"' EXIT
sed "s|@sbindir@/pam-piv-refresh|$PIV_REFRESH_TOOL|" "$top_srcdir/data/pam-piv-refresh.service.in" \
	> "$work/pam-piv-refresh.service"
cp "$top_srcdir/data/pam-piv-refresh.timer" "$top_srcdir/data/pam-piv-refresh.path" "$work/"
failed=0
# (--man=no: the man pages are not installed here)
if out=$(cd "$work" && SYSTEMD_LOG_LEVEL=warning systemd-analyze verify --man=no \
	./pam-piv-refresh.service ./pam-piv-refresh.timer ./pam-piv-refresh.path 2>&1); then
	[ -z "$out" ] || { echo "units: systemd-analyze verify warns:"; echo "$out"; failed=1; }
else
	echo "units: systemd-analyze verify refuses them:"
	echo "$out"
	failed=1
fi
# the hardening the man page promises stays in place
for line in ProtectSystem=strict PrivateTmp=yes NoNewPrivileges=yes CapabilityBoundingSet= \
	CacheDirectory=pam_piv ProtectHome=yes RestrictAddressFamilies=; do
	grep -q "^$line" "$work/pam-piv-refresh.service" ||
		{ echo "units: the service lost $line"; failed=1; }
done
grep -q '^Unit=pam-piv-refresh.service' "$work/pam-piv-refresh.path" ||
	{ echo "units: the path unit does not start the service"; failed=1; }
grep -q '^OnUnitActiveSec=' "$work/pam-piv-refresh.timer" ||
	{ echo "units: the timer does not repeat"; failed=1; }
# the service's command line is one the refresher takes
"$PIV_REFRESH_TOOL" --help | grep -q -- '--quiet' || { echo "units: no --quiet"; failed=1; }
[ "$failed" = 0 ] && echo "units: verified"
exit "$failed"
