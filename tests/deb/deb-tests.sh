#!/bin/sh
# The Debian package, end to end, as root on a clean Debian 12 machine (CI
# runs it after the project's own build and tests; tests/install-deps.sh
# installs what it needs):
#   1. builds libpam-piv from a copy of this tree (dpkg-buildpackage -us -uc
#      -b; the developer's tree is never touched), then lintian (no error, no
#      warning), blhc on the build log and hardening-check on every binary;
#   2. installs it with apt-get in a throwaway root: a private mount
#      namespace in which /usr, /etc and /var are overlays (the host's
#      directories below, a tmpfs above) and /run is an empty tmpfs, so that
#      no maintainer script reaches a host daemon (systemd, D-Bus, nscd);
#   3. checks that the package enabled nothing, then does what an
#      administrator does: pam-auth-update --enable pam_piv, the trust
#      material and /etc/security/pam_piv.conf for a SoftHSM2 card built
#      with tests/mkpki.sh and tests/mktoken.sh, an account; and logs in
#      with pamtester through a service that is "@include common-auth": the
#      PIN (success), a wrong PIN, a revoked card (failures), then
#      pam-piv-check's dry run. Only installed files are used: the module,
#      its helper and CRL indexer from their compiled-in paths, the default
#      cache_dir, no PIV_* variable;
#   4. purges it and checks that nothing of it is left (its files, the
#      profile, the cache, pam_piv in /etc/pam.d), listing whatever the
#      overlays hold beyond apt and dpkg bookkeeping and the test's own
#      files.
# Finally the host is checked unchanged. Every step has a time limit; the
# exit status is 0 only if every check passed. DEB_TESTS_KEEP=1 keeps the
# work directory, DEB_TESTS_TMP=DIR puts it in DIR (default /tmp).
# Usage: sh tests/deb/deb-tests.sh
# (sh -c '...' strings are expanded by that sh, not this one)
# shellcheck disable=SC2016
set -eu

say() { printf '%s\n' "$*"; }
die() { say "deb-tests: $*" >&2; exit 2; }
# The results of both halves (host and namespace) go to one file, $RES.
pass() { printf 'ok    %s\n' "$1" >> "$RES"; say "ok - $1"; }
fail() {
	printf 'FAIL  %s\n' "$1" >> "$RES"
	say "not ok - $1"
	[ $# -lt 2 ] || [ -z "$2" ] || printf '%s\n' "$2" | tail -n 40 | sed 's/^/#   /'
}
# check NAME CMD...: the command's success is the check's
check() {
	n=$1
	shift
	if out=$("$@" 2>&1); then pass "$n"; else fail "$n" "$out"; fi
}
elapsed() { echo $(( $(date +%s) - start )); }
step() { say ""; say "==== $1 ($(elapsed)s)"; }

PIN=123456
SERVICE=piv-deb-test

# ---------------------------------------------------------------------------
# the throwaway root (run as: unshare -m --propagation private sh THIS --inside WORK)

inside() {
	WORK=$1
	# shellcheck disable=SC1091
	. "$WORK/env"
	start=$STARTED
	# Nothing but the installed files: no test override of the module's paths.
	for v in $(env | sed -n 's/^\(PIV_[A-Za-z0-9_]*\)=.*/\1/p'); do unset "$v"; done
	export DEBIAN_FRONTEND=noninteractive LC_ALL=C

	step "throwaway root: overlays on /usr, /etc and /var, an empty /run"
	OV=$WORK/ovl
	L=$WORK/lower
	mount -t tmpfs -o mode=0700 tmpfs "$OV"
	for d in usr etc var; do
		mkdir -p "$OV/$d.up" "$OV/$d.wk" "$L/$d"
		mount --bind "/$d" "$L/$d" # the host's, to compare with
		mount -t overlay overlay -o "lowerdir=/$d,upperdir=$OV/$d.up,workdir=$OV/$d.wk" "/$d"
	done
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
	mkdir -m 1777 /run/lock
	mkdir -m 1777 "$OV/tmp"
	export TMPDIR="$OV/tmp"
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
		chmod 0755 /usr/sbin/policy-rc.d
		own_policy=1
	fi
	check "the overlays are in place (a file written to /etc is not the host's)" \
		sh -c "touch /etc/.deb-tests && [ -e '$OV/etc.up/.deb-tests' ] && [ ! -e '$L/etc/.deb-tests' ] && rm /etc/.deb-tests"
	# A cache_dir that the host has already (a run of the module from the
	# build tree makes it) would hide whether the package makes one.
	if [ -e /var/cache/pam_piv ]; then
		say "# the host has a /var/cache/pam_piv of no package: removed in the throwaway root"
		rm -rf /var/cache/pam_piv
		host_cache=1
	fi

	step "install: apt-get install $(basename "$DEB")"
	# What the package ships and, of that, what the host has already (the
	# directories it shares with other packages), for the purge check.
	dpkg-deb --fsys-tarfile "$DEB" | tar tf - | sed 's|^\./|/|; s|/$||' | grep -v '^/*$' > "$WORK/shipped"
	while IFS= read -r p; do
		if [ -e "$p" ] || [ -L "$p" ]; then say "$p"; fi
	done < "$WORK/shipped" > "$WORK/preexisting"
	# --no-install-recommends: pcscd and opensc-pkcs11 would come from the
	# archive (a download, and pcscd's own maintainer scripts) and play no
	# part in a SoftHSM login.
	rc=0
	timeout -k 10 600 apt-get install -y -q --no-install-recommends -o Dpkg::Use-Pty=0 "$DEB" \
		> "$WORK/apt-install.log" 2>&1 || rc=$?
	if [ "$rc" = 0 ] && [ "$(dpkg-query -W -f='${Status}' libpam-piv 2>/dev/null)" = "install ok installed" ]; then
		pass "apt-get install ./$(basename "$DEB")"
	else
		fail "apt-get install ./$(basename "$DEB") (rc=$rc)" "$(cat "$WORK/apt-install.log")"
		return 0
	fi
	module=/lib/$MA/security/pam_piv.so
	check "the module is where libpam looks: $module (dpkg -S: libpam-piv)" \
		sh -c "[ -f '$module' ] && dpkg -S '$module' | grep -q '^libpam-piv:'"
	check "the module starts the installed helper (its compiled-in path)" \
		grep -q -a -F /usr/libexec/pam_piv/pam_piv_helper "$module"
	check "the helpers are in /usr/libexec/pam_piv" \
		sh -c '[ -x /usr/libexec/pam_piv/pam_piv_helper ] && [ -x /usr/libexec/pam_piv/pam_piv_crlindex ] && [ -x /usr/libexec/pam_piv/pam-piv-watch ]'
	check "the package enabled nothing: no pam_piv in /etc/pam.d/common-*" \
		sh -c '! grep -n pam_piv /etc/pam.d/common-*'
	check "the profile is registered: /usr/share/pam-configs/pam_piv, Default: no" \
		grep -qx 'Default: no' /usr/share/pam-configs/pam_piv
	check "the refresher's units are not enabled (no pam-piv-* link in /etc/systemd)" \
		sh -c '! find /etc/systemd -name "pam-piv-*" | grep .'
	check "the units run the installed refresher (ExecStart=/usr/sbin/pam-piv-refresh)" \
		grep -q '^ExecStart=/usr/sbin/pam-piv-refresh ' /lib/systemd/system/pam-piv-refresh.service
	check "tmpfiles.d made the cache: /var/cache/pam_piv, root, 0700" \
		sh -c '[ "$(stat -c "%F %U %a" /var/cache/pam_piv)" = "directory root 700" ]'
	check "no /etc/security/pam_piv.conf from the package (no conffile)" \
		sh -c '[ ! -e /etc/security/pam_piv.conf ] && ! dpkg-query -W -f="\${Conffiles}" libpam-piv | grep .'

	step "as an administrator: account, trust material, pam_piv.conf, pam-auth-update --enable"
	# (the certificates map to the account "alice", by their UID component)
	if ! getent passwd alice >/dev/null; then
		useradd -M -d /nonexistent -s /bin/sh alice
		own_alice=1
	fi
	install -d -m 0755 /etc/ssl/piv /etc/ssl/piv/crls
	install -m 0644 "$FX/pki/ca/root.pem" /etc/ssl/piv/root-ca.pem
	install -m 0644 "$FX/pki/intermediates.pem" /etc/ssl/piv/issuing-cas.pem
	install -m 0644 "$FX/pki/crl/inter.crl" "$FX/pki/crl/root.crl" /etc/ssl/piv/crls/
	write_conf alice
	printf '@include common-auth\n@include common-account\n' > "/etc/pam.d/$SERVICE"
	check "pam-auth-update --enable pam_piv" timeout 120 pam-auth-update --enable pam_piv
	check "common-auth has pam_piv, before pam_unix" \
		sh -c 'p=$(grep -n "pam_piv\.so" /etc/pam.d/common-auth | cut -d: -f1); u=$(grep -n "pam_unix\.so" /etc/pam.d/common-auth | head -n 1 | cut -d: -f1); [ -n "$p" ] && [ -n "$u" ] && [ "$p" -lt "$u" ]'

	step "logins: pamtester $SERVICE alice authenticate (@include common-auth)"
	login_case "the card and its PIN: success" "$PIN" 0 "successfully authenticated" "Password"
	check "the installed CRL indexer filled the default cache_dir" \
		sh -c '[ -n "$(find /var/cache/pam_piv -type f | head -n 1)" ]'
	login_case "a wrong PIN: failure, no password fallback" 654321 1 "Wrong PIN" "Password"
	write_conf revoked
	login_case "a revoked card: failure before any PIN" "" 1 "PIV certificate has been revoked" "PIN for"
	write_conf alice
	check "pam-piv-check --user alice --pin-stdin (the installed tool's dry run)" \
		sh -c "printf '%s\n' '$PIN' | timeout 60 /usr/bin/pam-piv-check --user alice --pin-stdin"

	step "purge: apt-get purge libpam-piv"
	rc=0
	timeout -k 10 600 apt-get purge -y -q -o Dpkg::Use-Pty=0 libpam-piv > "$WORK/apt-purge.log" 2>&1 || rc=$?
	if [ "$rc" = 0 ] && ! dpkg-query -W -f='${Status}' libpam-piv 2>/dev/null | grep -q 'installed\|config-files'; then
		pass "apt-get purge -y libpam-piv"
	else
		fail "apt-get purge -y libpam-piv (rc=$rc)" "$(cat "$WORK/apt-purge.log")"
	fi
	left=$(grep -vxF -f "$WORK/preexisting" "$WORK/shipped" | while IFS= read -r p; do
		if [ -e "$p" ] || [ -L "$p" ]; then say "$p"; fi
	done)
	if [ -z "$left" ]; then
		pass "none of the $(wc -l < "$WORK/shipped") paths of dpkg -c is left (but the $(wc -l < "$WORK/preexisting") shared directories)"
	else
		fail "files of the package are left" "$left"
	fi
	check "no /usr/share/pam-configs/pam_piv" test ! -e /usr/share/pam-configs/pam_piv
	check "no /var/cache/pam_piv" test ! -e /var/cache/pam_piv
	check "no pam_piv in /etc/pam.d/common-*" sh -c '! grep -n pam_piv /etc/pam.d/common-*'
	check "no pam_piv in pam-auth-update's state (/var/lib/pam)" sh -c '! grep -rn pam_piv /var/lib/pam'
	check "the administrator's /etc/security/pam_piv.conf stays" test -f /etc/security/pam_piv.conf
	# the test's own files
	rm -f "/etc/pam.d/$SERVICE" /etc/security/pam_piv.conf
	rm -rf /etc/ssl/piv
	[ -z "${own_alice:-}" ] || userdel alice
	[ -z "${own_policy:-}" ] || rm -f /usr/sbin/policy-rc.d
	check "/etc/pam.d is the host's again, byte for byte" diff -r "$L/etc/pam.d" /etc/pam.d

	# What the overlays hold now: besides apt's and dpkg's bookkeeping (and
	# the account files that useradd/userdel rewrote), nothing.
	: > "$WORK/leftovers"
	: > "$WORK/bookkeeping"
	for d in usr etc var; do
		(cd "$OV/$d.up" && find . -mindepth 1 | sed 's|^\./||' | sort) | while IFS= read -r p; do
			f=$OV/$d.up/$p
			if [ -d "$f" ] && [ ! -L "$f" ] && [ -d "$L/$d/$p" ]; then
				continue # a directory of the host's, copied up
			fi
			if [ -c "$f" ] && [ "$(stat -c %t:%T "$f")" = 0:0 ]; then
				if [ "$d/$p" = var/cache/pam_piv ] && [ -n "${host_cache:-}" ]; then
					say "/$d/$p (the host's, removed by the test)" >> "$WORK/bookkeeping"
				else
					say "/$d/$p (deleted: the host has it)" >> "$WORK/leftovers"
				fi
				continue
			fi
			# rewritten, and the same as the host's (common-* after
			# pam-auth-update --enable and the purge)
			if [ -f "$f" ] && [ ! -L "$f" ] && [ -f "$L/$d/$p" ] && cmp -s "$f" "$L/$d/$p" &&
				[ "$(stat -c %a:%u:%g "$f")" = "$(stat -c %a:%u:%g "$L/$d/$p")" ]; then
				say "/$d/$p (rewritten, as the host's)" >> "$WORK/bookkeeping"
				continue
			fi
			case $d/$p in
			var/lib/dpkg/* | var/lib/apt/* | var/cache/apt/* | var/cache/debconf/* | \
			var/cache/man/* | var/cache/ldconfig/* | var/log/apt/* | var/log/dpkg.log | \
			var/log/alternatives.log | var/lib/pam/* | var/log/lastlog | var/log/faillog | \
			etc/passwd | etc/passwd- | etc/group | etc/group- | etc/shadow | etc/shadow- | \
			etc/gshadow | etc/gshadow- | etc/subuid | etc/subuid- | etc/subgid | etc/subgid- | \
			etc/.pwd.lock)
				say "/$d/$p" >> "$WORK/bookkeeping" ;;
			*) say "/$d/$p" >> "$WORK/leftovers" ;;
			esac
		done
	done
	if [ -s "$WORK/leftovers" ]; then
		fail "the overlays hold more than bookkeeping" "$(cat "$WORK/leftovers")"
	else
		pass "the overlays hold nothing but bookkeeping ($(wc -l < "$WORK/bookkeeping") files of apt, dpkg, debconf, man-db, pam-auth-update, useradd, or as the host's)"
	fi
	sed 's/ (.*//' "$WORK/bookkeeping" | awk -F/ '{ k = "/" $2 "/" $3 (NF > 3 ? "/" $4 : ""); n[k]++ }
		END { for (k in n) printf "#   left in the overlays: %-30s %d\n", k, n[k] }' | sort
	return 0
}

# write_conf CARD: /etc/security/pam_piv.conf for the SoftHSM2 instance
# $FX/tok/CARD, with the trust material of /etc/ssl/piv, CRLs from crl_dir
# only (the certificates' distribution points are on 127.0.0.1:9, where
# nothing listens), and everything else at the defaults: helper,
# crl_builder, cache_dir, the mapping rule (name:{subject_dn_component.uid}).
write_conf() {
	{
		printf '# written by tests/deb/deb-tests.sh\n'
		printf 'pkcs11_module = %s\n' "$SOFTHSM2_MODULE"
		printf 'ca_file = /etc/ssl/piv/root-ca.pem\n'
		printf 'intermediates = /etc/ssl/piv/issuing-cas.pem\n'
		printf 'require_eku = msSmartcardLogin\n'
		printf 'revocation = crl\nrevocation_fail = closed\ncrl_fetch = no\n'
		printf 'crl_dir = /etc/ssl/piv/crls\n'
		printf 'helper_env = SOFTHSM2_CONF=%s/tok/%s/softhsm2.conf\n' "$FX" "$1"
		printf 'fail_delay = 0\n'
	} > /etc/security/pam_piv.conf
	chmod 0644 /etc/security/pam_piv.conf
}

# login_case NAME INPUT WANT_RC WANT_TEXT NOT_TEXT
login_case() {
	rc=0
	out=$(printf '%s\n' "$2" | timeout 60 pamtester -v "$SERVICE" alice authenticate 2>&1) || rc=$?
	case $rc:$out in
	*"$5"*) fail "$1: '$5' in the output" "$out" ;;
	"$3":*"$4"*) pass "$1"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	*) fail "$1: rc=$rc, wanted $3 and '$4'" "$out" ;;
	esac
}

# ---------------------------------------------------------------------------
# the host

# host_state: what must not change on the host
host_state() {
	dpkg-query -W -f='libpam-piv: ${Status}\n' libpam-piv 2>/dev/null || say "libpam-piv: unknown"
	for p in /usr/share/pam-configs/pam_piv "/lib/$MA/security/pam_piv.so" /usr/libexec/pam_piv \
		/usr/lib/tmpfiles.d/pam_piv.conf /lib/systemd/system/pam-piv-refresh.timer \
		/var/cache/pam_piv /etc/security/pam_piv.conf /etc/ssl/piv /usr/sbin/policy-rc.d \
		/etc/pam.d/common-auth /etc/pam.d/common-account /etc/pam.d/common-password \
		/etc/pam.d/common-session /etc/pam.d/common-session-noninteractive /etc/pam.d/$SERVICE \
		/etc/passwd /etc/group /etc/shadow /var/lib/dpkg/status /var/lib/pam/seen; do
		if [ -f "$p" ]; then
			say "$p $(sha256sum < "$p" | cut -c1-16)"
		elif [ -e "$p" ]; then
			say "$p exists"
		else
			say "$p absent"
		fi
	done
}

cleanup() {
	rc=$?
	if [ -n "${WORK:-}" ] && [ -d "$WORK" ]; then
		if [ "${DEB_TESTS_KEEP:-0}" = 1 ]; then
			say "deb-tests: kept $WORK"
		else
			rm -rf "$WORK"
		fi
	fi
	exit "$rc"
}

main() {
	[ "$(id -u)" = 0 ] || die "run as root"
	start=$(date +%s)
	top=$(cd "$(dirname "$0")/../.." && pwd)
	self=$top/tests/deb/deb-tests.sh
	for t in dpkg-buildpackage dpkg-checkbuilddeps lintian blhc hardening-check apt-get pamtester \
		pam-auth-update softhsm2-util pkcs11-tool openssl unshare timeout useradd; do
		command -v "$t" >/dev/null 2>&1 || die "$t is missing (sh tests/install-deps.sh)"
	done
	MA=$(dpkg-architecture -qDEB_HOST_MULTIARCH)
	SOFTHSM2_MODULE=
	for m in /usr/lib/softhsm/libsofthsm2.so "/usr/lib/$MA/softhsm/libsofthsm2.so"; do
		[ -n "$SOFTHSM2_MODULE" ] || [ ! -f "$m" ] || SOFTHSM2_MODULE=$m
	done
	[ -n "$SOFTHSM2_MODULE" ] || die "no SoftHSM2 module (softhsm2)"
	case $(dpkg-query -W -f='${Status}' libpam-piv 2>/dev/null || :) in
	*installed* | *config-files*) die "libpam-piv is installed on this host: the test needs a host without it" ;;
	esac

	# Not under /usr, /etc or /var, which get overlays.
	base=${DEB_TESTS_TMP:-/tmp}
	case $(cd "$base" && pwd -P)/ in
	/usr/* | /etc/* | /var/*) die "DEB_TESTS_TMP ($base) is under /usr, /etc or /var" ;;
	esac
	WORK=$(mktemp -d "$base/deb-tests.XXXXXX")
	trap cleanup EXIT
	trap 'exit 129' HUP
	trap 'exit 130' INT
	trap 'exit 143' TERM
	chmod 0711 "$WORK" # apt reads the .deb as _apt
	# the temporary files of every tool (lintian leaves some) go with it
	mkdir -m 0700 "$WORK/tmp"
	export TMPDIR="$WORK/tmp"
	RES=$WORK/results
	: > "$RES"
	host_state > "$WORK/host.before"

	step "build: dpkg-buildpackage -us -uc -b in a copy of the tree"
	VERSION=$(dpkg-parsechangelog -l "$top/debian/changelog" -S Version)
	SRC=$WORK/build/pam-piv-$VERSION
	mkdir -p "$SRC"
	if git -C "$top" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
		# committed files and new ones not ignored, as they are in the tree
		(cd "$top" && git ls-files -z --cached --others --exclude-standard |
			tar --null -T - --ignore-failed-read -cf - 2>/dev/null) | tar -xf - -C "$SRC"
	else
		(cd "$top" && tar -cf - .) | tar -xf - -C "$SRC"
	fi
	rc=0
	(cd "$SRC" && timeout -k 10 1800 nice -n 19 dpkg-buildpackage -us -uc -b) \
		> "$WORK/build/build.log" 2>&1 || rc=$?
	changes=$WORK/build/pam-piv_${VERSION}_$(dpkg-architecture -qDEB_HOST_ARCH).changes
	DEB=$WORK/build/libpam-piv_${VERSION}_$(dpkg-architecture -qDEB_HOST_ARCH).deb
	if [ "$rc" = 0 ] && [ -f "$DEB" ] && [ -f "$changes" ]; then
		pass "dpkg-buildpackage -us -uc -b ($(dpkg-deb -f "$DEB" Package) $(dpkg-deb -f "$DEB" Version), $(du -k "$DEB" | cut -f1) KiB)"
	else
		fail "dpkg-buildpackage -us -uc -b (rc=$rc)" "$(tail -n 60 "$WORK/build/build.log")"
		summary
		return
	fi
	chmod 0755 "$WORK/build"

	step "lint: lintian --pedantic (fails on errors and warnings), blhc, hardening-check"
	rc=0
	timeout -k 10 600 lintian --fail-on error,warning --info --display-info --pedantic --show-overrides "$changes" \
		> "$WORK/lintian.log" 2>&1 || rc=$?
	if [ "$rc" = 0 ]; then
		grep '^[A-Z]: ' "$WORK/lintian.log" | grep -v '^N: ' | sed 's/^/#   /' || :
		pass "lintian: no error or warning ($(grep -c '^[IP]: ' "$WORK/lintian.log" || :) info/pedantic tags, $(grep -c '^O: ' "$WORK/lintian.log" || :) overridden)"
	else
		fail "lintian (rc=$rc)" "$(grep -v '^running with root privileges' "$WORK/lintian.log")"
	fi
	check "blhc --all --debian: the build used dpkg-buildflags' hardening flags" \
		timeout 120 blhc --all --debian "$WORK/build/build.log"
	mkdir "$WORK/extract"
	dpkg-deb -x "$DEB" "$WORK/extract"
	elves=$(find "$WORK/extract" -type f \( -name '*.so' -o -perm -u+x \) | sort)
	# (--nocfprotection: Debian 12's glibc start files carry no CET note, so
	# nothing linked on Debian 12 has one: sshd and pam_unix.so neither.
	# Stack clash protection, "unknown" when no frame is large, does not
	# count.)
	# shellcheck disable=SC2086
	check "hardening-check: PIE, stack protector, fortify, relro, bindnow on $(echo $elves | wc -w) ELF files" \
		timeout 120 hardening-check --nocfprotection $elves

	step "fixtures: a test PKI (tests/mkpki.sh) and SoftHSM2 cards (tests/mktoken.sh)"
	FX=$WORK/fx
	rc=0
	{
		timeout -k 10 300 sh "$top/tests/mkpki.sh" "$FX/pki" &&
			timeout -k 10 120 sh "$top/tests/mktoken.sh" "$FX/tok/alice" alice \
				--cert "$FX/pki/alice-p256.der" --key "$FX/pki/alice-p256.key" &&
			timeout -k 10 120 sh "$top/tests/mktoken.sh" "$FX/tok/revoked" revoked \
				--cert "$FX/pki/alice-revoked.der" --key "$FX/pki/alice-revoked.key"
	} > "$WORK/fixtures.log" 2>&1 || rc=$?
	if [ "$rc" = 0 ]; then
		pass "alice's P-256 card and her revoked card, PIN $PIN"
	else
		fail "fixtures (rc=$rc)" "$(cat "$WORK/fixtures.log")"
		summary
		return
	fi

	cat > "$WORK/env" <<EOF
RES='$RES'
FX='$FX'
DEB='$DEB'
MA='$MA'
SOFTHSM2_MODULE='$SOFTHSM2_MODULE'
STARTED='$start'
EOF
	mkdir "$WORK/ovl" "$WORK/lower"
	rc=0
	timeout -k 10 1200 unshare -m --propagation private sh "$self" --inside "$WORK" || rc=$?
	[ "$rc" = 0 ] || fail "the throwaway root's steps ended (rc=$rc)"

	step "host: unchanged"
	host_state > "$WORK/host.after"
	if diff "$WORK/host.before" "$WORK/host.after" > "$WORK/host.diff"; then
		pass "nothing changed on the host: $(wc -l < "$WORK/host.before") paths and states compared (e.g. $(grep pam-configs "$WORK/host.after"))"
	else
		fail "the host changed" "$(cat "$WORK/host.diff")"
	fi
	summary
}

summary() {
	say ""
	say "==== summary ($(elapsed)s)"
	cat "$RES"
	total=$(wc -l < "$RES")
	bad=$(grep -c '^FAIL' "$RES" || :)
	say "$((total - bad)) passed, $bad failed, wall time $(elapsed)s"
	[ "$bad" = 0 ] && [ "$total" -gt 0 ]
}

if [ "${1:-}" = --inside ]; then
	inside "$2"
else
	main
fi
