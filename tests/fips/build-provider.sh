#!/bin/sh
# Builds the OpenSSL 3.0 FIPS provider (fips.so) from Debian's own openssl
# source package, of exactly the installed libssl3 version, and writes an
# OpenSSL config that loads only the base and fips providers.
# Why: Debian does not ship fips.so, and the tests must be able to run against
# an OpenSSL that is in FIPS-provider-only mode, as on a FIPS host.
# Nothing is installed over the system OpenSSL: all output stays in OUTDIR.
#
# usage: build-provider.sh OUTDIR      (as root: it may apt-get install/update)
# OUTDIR gets: fips.so, fipsmodule.cnf (from the system `openssl fipsinstall`),
#              openssl.cnf (use as OPENSSL_CONF or via in-fips.sh), version.
# Cached: a fips.so already in OUTDIR for the same libssl3 version is reused.
# env: JOBS (make -j, default nproc), KEEP_BUILD=1 keeps OUTDIR/.build,
#      FIPS_ALLOW_UPSTREAM_ORIG (default 1): if the archive serves the
#      version's upstream tarball but not its .dsc/.debian.tar.xz (seen on
#      2026-12-04 for 3.0.22-1~deb12u2: both 404), build from that tarball
#      (same version, sha256-checked against the signed Sources index, but
#      without Debian's patches), with a WARNING; 0 fails instead.
set -eu

me=build-provider.sh
die() { printf '%s: FAIL: %s\n' "$me" "$*" >&2; exit 1; }
say() { printf '%s: %s\n' "$me" "$*" >&2; }

[ $# -eq 1 ] || { echo "usage: $me OUTDIR" >&2; exit 2; }
mkdir -p "$1"
OUT=$(cd "$1" && pwd -P)
case $OUT in *[[:space:]]*) die "OUTDIR must not contain whitespace: $OUT" ;; esac
SYSCNF=/etc/ssl/openssl.cnf
SECT=fips_sect	# the section name fipsinstall writes into fipsmodule.cnf
t_start=$(date +%s)

VER=$(dpkg-query -W -f='${Version}' libssl3 2>/dev/null) || VER=
[ -n "$VER" ] || die "libssl3 is not installed"
command -v openssl >/dev/null || die "the openssl binary is not installed"
OSSLVER=$(dpkg-query -W -f='${Version}' openssl 2>/dev/null) || OSSLVER=
[ "$OSSLVER" = "$VER" ] ||
	die "openssl package ($OSSLVER) and libssl3 ($VER) differ; fipsinstall must come from the same version"
say "libssl3 $VER"

# ---- apt helpers ------------------------------------------------------------
need_root() { [ "$(id -u)" = 0 ] || die "must run as root to $*"; }

apt_install() {	# PKG...: install what is missing, updating lists once if needed
	need_root "apt-get install $*"
	export DEBIAN_FRONTEND=noninteractive
	apt-get install -y --no-install-recommends "$@" >&2 ||
		{ apt-get update >&2 || true; apt-get install -y --no-install-recommends "$@" >&2; } ||
		die "apt-get install $* failed"
}

have_src() {
	apt-cache showsrc --only-source openssl 2>/dev/null | grep -qx "Version: $VER"
}

SRCLIST=/etc/apt/sources.list.d/pam-piv-deb-src.sources
write_deb_src() {	# deb-src twins of the system's Debian deb stanzas
	need_root "write $SRCLIST"
	tmp=$SRCLIST.tmp.$$
	{
		echo "# written by pam_piv tests/fips/build-provider.sh: Debian sources,"
		echo "# to build the OpenSSL FIPS provider from the openssl source package"
		echo
		if [ -f /etc/apt/sources.list.d/debian.sources ]; then
			# copy each enabled stanza whose Types has "deb", as Types: deb-src
			awk 'BEGIN { RS = ""; ORS = "\n\n" }
			{
				if ($0 ~ /(^|\n)Enabled:[ \t]*[Nn]o/) next
				if ($0 !~ /(^|\n)Types:([^\n]*[ \t])?deb([ \t]|\n|$)/) next
				n = split($0, l, "\n"); s = ""
				for (i = 1; i <= n; i++) {
					if (l[i] ~ /^Types:/) l[i] = "Types: deb-src"
					else if (l[i] ~ /^Architectures:/) continue
					s = s l[i] "\n"
				}
				printf "%s\n", s
			}' /etc/apt/sources.list.d/debian.sources
		else
			code=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")
			cat <<EOF
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: $code $code-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://deb.debian.org/debian-security
Suites: $code-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
		fi
	} > "$tmp"
	grep -q '^Types: deb-src' "$tmp" || { rm -f "$tmp"; die "no Debian deb stanza found to mirror as deb-src"; }
	mv "$tmp" "$SRCLIST"
	say "wrote $SRCLIST"
}

# ---- 1. fips.so (cached per libssl3 version) --------------------------------
build_fips_so() {
	# tools: dpkg-source, a C toolchain, perl (Configure)
	miss=
	command -v dpkg-source >/dev/null || miss="$miss dpkg-dev"
	command -v cc >/dev/null || miss="$miss gcc libc6-dev"
	command -v make >/dev/null || miss="$miss make"
	command -v perl >/dev/null || miss="$miss perl"
	[ -z "$miss" ] || apt_install $miss

	if ! have_src; then
		write_deb_src
		say "apt-get update (openssl source $VER not in apt's lists yet)"
		apt-get update >&2 || say "apt-get update reported errors; checking anyway"
		have_src || die "Debian's archive has no source package openssl=$VER" \
			"(apt-cache showsrc openssl offers: $(apt-cache showsrc --only-source openssl 2>/dev/null |
				sed -n 's/^Version: //p' | tr '\n' ' '))"
	fi

	B=$OUT/.build
	mkdir -p "$B"
	rm -rf "$B/src"
	say "fetching openssl=$VER source"
	if (cd "$B" && apt-get source --download-only "openssl=$VER") >"$B/fetch.log" 2>&1; then
		dsc=$B/openssl_${VER#*:}.dsc
		[ -f "$dsc" ] || die "apt-get source did not give $dsc"
		# unpacks upstream + applies Debian's patches (3.0 quilt)
		dpkg-source -x "$dsc" "$B/src" >&2 || die "dpkg-source -x $dsc failed"
		KIND=
	else
		sed -n '/^\(Err\|E\):/,$p' "$B/fetch.log" >&2
		# The archive lists the version but serves only part of it (seen here:
		# .dsc and .debian.tar.xz 404, orig tarball 200). The upstream tarball
		# of the same version is usable when allowed, checked against the
		# sha256 in apt's (signed) Sources index.
		set -- $(apt-cache showsrc --only-source openssl 2>/dev/null | awk -v v="$VER" '
			/^$/ { inv = 0 } /^Version:/ { inv = ($2 == v) } /^[^ ]/ { sha = /^Checksums-Sha256:/ }
			inv && sha && $3 ~ /\.orig\.tar\.[a-z0-9]+$/ { print $3, $1; exit }')
		[ $# -eq 2 ] || die "apt-get source openssl=$VER failed (see $B/fetch.log)"
		if [ "${FIPS_ALLOW_UPSTREAM_ORIG:-1}" != 1 ]; then
			die "Debian's archive lists openssl $VER but did not serve all of its" \
				"source files (above). Set FIPS_ALLOW_UPSTREAM_ORIG=1 to build from the" \
				"upstream $1 of the same version (sha256-checked against the archive's" \
				"Sources index) WITHOUT Debian's patches."
		fi
		[ -f "$B/$1" ] || die "apt-get source did not fetch $1 either"
		echo "$2  $B/$1" | sha256sum -c --quiet - >&2 || die "$1: sha256 differs from the Sources index"
		say "WARNING: building from upstream $1 WITHOUT Debian's patches (FIPS_ALLOW_UPSTREAM_ORIG=1)"
		mkdir "$B/src"
		tar -xf "$B/$1" -C "$B/src" --strip-components=1 || die "cannot unpack $1"
		KIND=' upstream-orig'
	fi

	t0=$(date +%s)
	cd "$B/src"
	# enable-fips is all that matters; the no-* only trim Configure/generation.
	nice -n 19 ./Configure enable-fips no-tests no-legacy no-afalgeng \
		no-padlockeng no-capieng no-loadereng no-engine >"$B/configure.log" 2>&1 ||
		{ tail -20 "$B/configure.log" >&2; die "Configure failed (see $B/configure.log)"; }
	# only the generated headers, then the one module (make build_modules
	# would also build libcrypto for the test providers)
	nice -n 19 make -j"${JOBS:-$(nproc)}" build_generated >"$B/make.log" 2>&1 &&
	nice -n 19 make -j"${JOBS:-$(nproc)}" providers/fips.so >>"$B/make.log" 2>&1 ||
		{ tail -30 "$B/make.log" >&2; die "make providers/fips.so failed (see $B/make.log)"; }
	t1=$(date +%s)
	say "build stage (Configure + make build_generated providers/fips.so): $((t1 - t0)) s"
	cd "$OUT"

	# swap in the new module; its old fipsmodule.cnf (MAC) is void now
	cp "$B/src/providers/fips.so" "$OUT/fips.so.tmp"
	rm -f "$OUT/version" "$OUT/fipsmodule.cnf"
	mv "$OUT/fips.so.tmp" "$OUT/fips.so"
	echo "$VER$KIND" > "$OUT/version"
	[ "${KEEP_BUILD:-0}" = 1 ] || rm -rf "$B"
}

built=$(cat "$OUT/version" 2>/dev/null) || built=
if [ -f "$OUT/fips.so" ] && { [ "$built" = "$VER" ] ||
	{ [ "$built" = "$VER upstream-orig" ] && [ "${FIPS_ALLOW_UPSTREAM_ORIG:-1}" = 1 ]; }; }; then
	say "cached: $OUT/fips.so is for $built, not rebuilding"
else
	build_fips_so
fi

# ---- 2. fipsmodule.cnf: the system openssl checks and MACs the module ------
if [ ! -f "$OUT/fipsmodule.cnf" ]; then
	openssl fipsinstall -module "$OUT/fips.so" -out "$OUT/fipsmodule.cnf.tmp" \
		-section_name "$SECT" >&2 || die "openssl fipsinstall failed (self-tests?)"
	mv "$OUT/fipsmodule.cnf.tmp" "$OUT/fipsmodule.cnf"
fi
grep -q "^\[ *$SECT *\]" "$OUT/fipsmodule.cnf" || die "$OUT/fipsmodule.cnf has no [$SECT]"

# ---- 3. openssl.cnf: the system config with only base + fips providers -----
MARK='# pam_piv FIPS-only OpenSSL config'
grep -qF "$MARK" "$SYSCNF" &&
	die "$SYSCNF is already a FIPS-only config from here (run outside in-fips.sh)"
# Everything of the system file is kept (req/ca/... sections, ssl_conf and other
# openssl_init keys) except openssl_init's providers/alg_section, which ours
# replace; openssl_conf is pointed at openssl_init.
awk -v out="$OUT" -v sect="$SECT" -v mark="$MARK" -v syscnf="$SYSCNF" '
function block() {
	print ""
	print "# ---- " mark ": fips + base providers only, never default"
	print ".include " out "/fipsmodule.cnf"
	print ""
	print "# fipsinstall does not record where the module is; activate is repeated"
	print "# so that a missing fipsmodule.cnf fails (no MAC) instead of silently"
	print "# leaving only the base provider"
	print "[" sect "]"
	print "module = " out "/fips.so"
	print "activate = 1"
	print ""
	print "[pampiv_base_sect]"
	print "activate = 1"
	print ""
	print "[pampiv_provider_sect]"
	print "fips = " sect
	print "base = pampiv_base_sect"
	print ""
	print "[pampiv_alg_sect]"
	print "default_properties = fips=yes"
	print ""
	print "[openssl_init]"
	print "providers = pampiv_provider_sect"
	print "alg_section = pampiv_alg_sect"
	done = 1
}
BEGIN { print mark; print "# generated from " syscnf " by tests/fips/build-provider.sh"
	print "openssl_conf = openssl_init"; top = 1 }
/^[ \t]*\[/ { top = 0; ininit = 0 }
top && /^[ \t]*openssl_conf[ \t]*=/ { print "# (system) " $0; next }
/^[ \t]*\[[ \t]*openssl_init[ \t]*\]/ { if (!done) block(); ininit = 1; next }
ininit && /^[ \t]*(providers|alg_section)[ \t]*=/ { print "# (system) " $0; next }
{ print }
END { if (!done) { print "[pampiv_end_of_system_config]"; block() } }
' "$SYSCNF" > "$OUT/openssl.cnf.tmp"
mv "$OUT/openssl.cnf.tmp" "$OUT/openssl.cnf"

# ---- 4. verify, exactly as the tests will use it ---------------------------
fail=0
bad() { printf '%s: CHECK FAILED: %s\n' "$me" "$*" >&2; fail=1; }
ok() { printf '%s: ok: %s\n' "$me" "$*" >&2; }
tmpd=$(mktemp -d)
trap 'rm -rf "$tmpd"' EXIT
export OPENSSL_CONF="$OUT/openssl.cnf"

if openssl list -providers >"$tmpd/prov" 2>&1; then
	cat "$tmpd/prov" >&2
	# "  name" lines (2-space indent) are the loaded providers, each followed
	# by its "    status: ..." line
	st() { awk -v p="$1" '/^  [^ ]/ { cur = $1 } cur == p && /status:/ { print $2 }' "$tmpd/prov"; }
	[ "$(st fips)" = active ] && ok "fips provider active" || bad "fips provider not active"
	[ "$(st base)" = active ] && ok "base provider active" || bad "base provider not active"
	grep -q '^  default$' "$tmpd/prov" && bad "default provider is loaded" || ok "default provider not loaded"
	[ "$(awk '/^  [^ ]/' "$tmpd/prov" | wc -l)" -eq 2 ] || bad "providers other than fips+base loaded"
else
	cat "$tmpd/prov" >&2; bad "openssl list -providers failed"
fi
if echo abc | openssl dgst -sha256 >"$tmpd/out" 2>&1; then
	ok "dgst -sha256: $(cat "$tmpd/out")"
else cat "$tmpd/out" >&2; bad "openssl dgst -sha256 failed"; fi
if echo abc | openssl dgst -md5 >"$tmpd/out" 2>&1; then
	bad "openssl dgst -md5 worked (not FIPS-only): $(cat "$tmpd/out")"
else ok "dgst -md5 refused: $(head -1 "$tmpd/out")"; fi
if openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$tmpd/k.pem" 2>"$tmpd/out"; then
	ok "RSA-2048 key generation"
else cat "$tmpd/out" >&2; bad "RSA-2048 key generation failed"; fi

[ $fail -eq 0 ] || die "verification failed with OPENSSL_CONF=$OUT/openssl.cnf"
say "OK in $(($(date +%s) - t_start)) s: OPENSSL_CONF=$OUT/openssl.cnf (or tests/fips/in-fips.sh $OUT CMD...)"
