#!/bin/sh
# Proves pam_piv with the real OpenSSH programs: sshd learns a user's keys
# from pam-piv-authorized-keys and runs the sample pam.d/sshd stack (its
# sshd_key_check account line); ssh signs with a SoftHSM2 PIV card through
# PKCS11Provider. Run by pam-tests.sh, as root, inside its private network
# and mount namespaces, after tests/pam/test_*, with top_srcdir, top_builddir,
# PIV_FX, PIV_MODULE, PIV_HELPER, SOFTHSM2_MODULE, PIV_HTTP_PORT (and maybe
# PIV_KEYS_TOOL) set and the OCSP responder on 127.0.0.1:8888 up. What it
# sets up lives in a tmpfs on /mnt and in mounts of that namespace (over
# /etc/passwd, group, shadow, pam.d/sshd, and /dev for a /dev/log), and goes
# when the script ends; it also publishes the CRLs in the HTTP server's
# document root and creates /run/sshd if missing (and removes it again).
set -eu

: "${top_srcdir:?run through pam-tests.sh}" "${top_builddir:?}" "${PIV_FX:?}" \
	"${PIV_MODULE:?}" "${PIV_HELPER:?}" "${PIV_CRL_BUILDER:?}" "${SOFTHSM2_MODULE:?}" "${PIV_HTTP_PORT:?}"

die() {
	printf 'ssh-tests: %s\n' "$*" >&2
	exit 1
}

[ "$(id -u)" = 0 ] || die "must run as root"
# sshd listens on a fixed port and /etc and /dev get covered: that is only
# harmless in namespaces of our own, never in the host's.
for ns in net mnt; do
	[ "$(readlink "/proc/self/ns/$ns")" != "$(readlink "/proc/1/ns/$ns")" ] ||
		die "not in a private $ns namespace (pam-tests.sh runs this under unshare)"
done
for prog in /usr/sbin/sshd /usr/bin/ssh /usr/bin/ssh-keygen; do
	[ -x "$prog" ] || die "missing $prog (openssh-server, openssh-client)"
done
for prog in pgrep ss setpriv perl mountpoint; do
	command -v "$prog" >/dev/null || die "missing $prog (procps, iproute2, util-linux, perl-base)"
done

abspath() { (cd "$(dirname "$1")" && printf '%s/%s\n' "$(pwd)" "$(basename "$1")"); }
PIV_FX=$(cd "$PIV_FX" && pwd)
PIV_MODULE=$(abspath "$PIV_MODULE")
PIV_HELPER=$(abspath "$PIV_HELPER")
PIV_CRL_BUILDER=$(abspath "$PIV_CRL_BUILDER")
KEYS_CMD=$(abspath "${PIV_KEYS_TOOL:-$top_builddir/src/pam-piv-authorized-keys}")
SAMPLE=$(abspath "$top_srcdir/pam.d/sshd")
for f in "$PIV_MODULE" "$PIV_HELPER" "$KEYS_CMD" "$SAMPLE" "$SOFTHSM2_MODULE"; do
	[ -f "$f" ] || die "missing $f"
done

PKI=$PIV_FX/pki
NL='
'
# sshd wants the AuthorizedKeysCommand and every directory above it owned by
# root and not writable by others, which a build tree under /tmp is not.
S=/mnt/piv
PORT=2222
PASSWORD='alice-Pa55-word'
CONF=$S/pam_piv.conf
LOGS=$S/log

mounts=""         # newest first: the order to unmount in
sshd_waiter=""    # the timeout(1) process that runs the current sshd
syslog_pid=""
made_privsep=""
failed=0

listening() { [ -n "$(ss -Hltn "sport = :$PORT")" ]; }

stop_sshd() {
	[ -n "$sshd_waiter" ] || return 0
	listener=$(cat "$S/sshd.pid" 2>/dev/null || true)
	if [ -n "$listener" ]; then
		# a connection's processes still closing are reaped by the
		# listener only while it lives; orphans would stay zombies
		i=0
		while [ -n "$(pgrep -P "$listener")" ] && [ "$i" -lt 60 ]; do
			i=$((i + 1))
			sleep 0.05
		done
		kill "$listener" 2>/dev/null || true
	else
		kill "$sshd_waiter" 2>/dev/null || true
	fi
	i=0
	while kill -0 "$sshd_waiter" 2>/dev/null; do
		i=$((i + 1))
		if [ "$i" -eq 100 ]; then
			echo "ssh-tests: sshd ignored SIGTERM" >&2
			kill -KILL "${listener:-$sshd_waiter}" 2>/dev/null || true
		fi
		sleep 0.05
	done
	wait "$sshd_waiter" 2>/dev/null || true
	sshd_waiter=""
	rm -f "$S/sshd.pid"
	i=0
	while listening; do
		i=$((i + 1))
		if [ "$i" -ge 100 ]; then
			echo "ssh-tests: port $PORT still busy after sshd ended" >&2
			return 1
		fi
		sleep 0.05
	done
}

# The sshd processes of this namespace: only ours can be here.
our_sshds() { pgrep --ns $$ --nslist net -x sshd || true; }

cleanup() {
	set +e
	stop_sshd
	# A session still closing is left a moment, then ended by its pid.
	i=0
	while [ -n "$(our_sshds)" ] && [ "$i" -lt 40 ]; do
		i=$((i + 1))
		sleep 0.05
	done
	left=$(our_sshds)
	if [ -n "$left" ]; then
		echo "ssh-tests: sshd processes left behind: $left" >&2
		for pid in $left; do kill "$pid" 2>/dev/null; done
		failed=1
	fi
	# the logs outlive the tmpfs, next to the fixtures
	if [ -d "$LOGS" ]; then
		rm -rf "$PIV_FX/ssh-logs"
		cp -R "$LOGS" "$PIV_FX/ssh-logs"
	fi
	if [ -n "$syslog_pid" ]; then
		kill "$syslog_pid" 2>/dev/null
		wait "$syslog_pid" 2>/dev/null
	fi
	for m in $mounts; do
		# lazily if busy: /dev is the overlay that this very shell uses
		umount "$m" 2>/dev/null || umount -l "$m"
	done
	[ -z "$made_privsep" ] || rmdir /run/sshd
}
trap 'cleanup; [ "$failed" = 0 ] || exit 1' EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

add_mount() { # mount(8) arguments, the target last
	mount "$@"
	for target do :; done
	mounts="$target $mounts"
}

# ---- staging tree --------------------------------------------------------
mount --make-rprivate /
add_mount -t tmpfs -o mode=755 piv-ssh /mnt
mkdir -m 755 "$S" "$S/certs" "$S/home" "$S/etc" "$S/authorized_keys" "$S/clienthome"
mkdir -m 700 "$S/cache" "$LOGS"
install -m 755 "$KEYS_CMD" "$S/pam-piv-authorized-keys"
install -m 755 "$PIV_MODULE" "$S/pam_piv.so"
install -m 755 "$PIV_HELPER" "$S/pam_piv_helper"
install -m 755 "$PIV_CRL_BUILDER" "$S/pam_piv_crlindex"
install -m 644 "$PKI/ca/root.pem" "$S/root.pem"
install -m 644 "$PKI/intermediates.pem" "$S/intermediates.pem"
# the module runs as root inside sshd and uses cache_dir; the keys command
# runs as nobody and keeps a private cache by itself
cat >"$CONF" <<EOF
ca_file = $S/root.pem
intermediates = $S/intermediates.pem
revocation = ocsp,crl
cache_dir = $S/cache
cert_source = dir:$S/certs
helper = $S/pam_piv_helper
crl_builder = $S/pam_piv_crlindex
debug = yes
fail_delay = 0
EOF
# bob's certificate sits in alice's file on purpose: it maps to bob, so it
# must never yield a key for alice
cat "$PKI/alice-p256.crt" "$PKI/alice-rsa2048.crt" "$PKI/alice-revoked.crt" \
	"$PKI/bob-p256.crt" >"$S/certs/alice.pem"
cat "$PKI/bob-p256.crt" >"$S/certs/bob.pem"
chmod 644 "$CONF" "$S/certs/alice.pem" "$S/certs/bob.pem"

# The OpenSSH form of each certificate's key, to compare with what the keys
# command prints and to list in authorized_keys files.
sshkey_of() { # NAME: the key of $PKI/NAME.crt as "TYPE BASE64"
	openssl x509 -pubkey -noout -in "$PKI/$1.crt" >"$S/$1.spki"
	ssh-keygen -i -m PKCS8 -f "$S/$1.spki" | cut -d' ' -f1,2
}
for c in alice-p256 alice-rsa2048 alice-revoked bob-p256; do
	sshkey_of "$c" >"$S/$c.sshpub"
done

# ---- accounts ------------------------------------------------------------
# sshd needs root, its privilege separation user and the command user.
for name in root sshd nobody; do
	grep "^$name:" /etc/passwd >>"$S/etc/passwd" || die "no $name in /etc/passwd"
done
cat >>"$S/etc/passwd" <<EOF
alice:x:1001:1001:Alice Example:$S/home/alice:/bin/sh
bob:x:1002:1002:Bob Example:$S/home/bob:/bin/sh
EOF
grep -E '^(root|nogroup):' /etc/group >"$S/etc/group"
printf 'alice:x:1001:\nbob:x:1002:\n' >>"$S/etc/group"
# shadow entries of our own: no copy of root's real hash goes anywhere
hash=$(openssl passwd -6 "$PASSWORD")
{
	printf 'root:*:19000:0:99999:7:::\nsshd:!:19000::::::\nnobody:*:19000:0:99999:7:::\n'
	printf 'alice:%s:19000:0:99999:7:::\nbob:*:19000:0:99999:7:::\n' "$hash"
} >"$S/etc/shadow"
chmod 644 "$S/etc/passwd" "$S/etc/group"
chmod 640 "$S/etc/shadow"
mkdir -m 755 "$S/home/alice" "$S/home/bob"
chown 1001:1001 "$S/home/alice"
chown 1002:1002 "$S/home/bob"
for f in passwd group shadow; do
	add_mount --bind "$S/etc/$f" "/etc/$f"
done

# ---- syslog --------------------------------------------------------------
# pam_piv reports through syslog(3), which sshd's -E log does not catch, and
# this machine may have no /dev/log at all: /dev becomes an overlay (its
# upper layer in our tmpfs, so the host's /dev never changes) whose /dev/log
# is a socket read by a few lines of Perl into $LOGS/syslog.
mkdir "$S/hostdev" "$S/devup" "$S/devwork"
add_mount --rbind /dev "$S/hostdev"
add_mount -t overlay piv-dev -o "lowerdir=$S/hostdev,upperdir=$S/devup,workdir=$S/devwork" /dev
for d in pts shm mqueue hugepages; do
	if mountpoint -q "$S/hostdev/$d"; then
		add_mount --rbind "$S/hostdev/$d" "/dev/$d"
	fi
done
rm -f /dev/log
: >"$LOGS/syslog"
timeout 300 perl -MSocket -MIO::Handle -e '
	socket(my $s, PF_UNIX, SOCK_DGRAM, 0) or die "socket: $!";
	bind($s, pack_sockaddr_un($ARGV[0])) or die "bind $ARGV[0]: $!";
	chmod(0666, $ARGV[0]);
	open(my $out, ">>", $ARGV[1]) or die "$ARGV[1]: $!";
	$out->autoflush(1);
	while (defined(recv($s, my $msg, 65536, 0))) {
		$msg =~ s/\n+\z//;
		print $out "$msg\n";
	}' /dev/log "$LOGS/syslog" &
syslog_pid=$!
i=0
until [ -S /dev/log ]; do
	i=$((i + 1))
	[ "$i" -lt 100 ] || die "the syslog reader did not start"
	sleep 0.05
done

# ---- CRLs ----------------------------------------------------------------
# The test HTTP server serves what its document root holds, which tests/pam/test_revocation
# changed case by case: publish the CA's current CRLs (the intermediate's
# revocation is known only from root.crl) and make it behave.
www=${PIV_WWW:-$PIV_FX/www}
[ -d "$www" ] || die "no document root $www for the test HTTP server"
openssl x509 -noout -ext crlDistributionPoints -in "$PKI/alice-p256.crt" |
	grep -q "http://127.0.0.1:$PIV_HTTP_PORT/" ||
	die "the test certificates name another CRL server than 127.0.0.1:$PIV_HTTP_PORT"
for crl in root.crl inter.crl; do
	cp "$PKI/crl/$crl" "$www/$crl.tmp"
	mv "$www/$crl.tmp" "$www/$crl"
done
echo normal >"$www/.mode"

# ---- PAM -----------------------------------------------------------------
# The sample stack itself, with only the module's path (and configuration)
# changed; its @include lines use this machine's common-* files.
[ -f /etc/pam.d/sshd ] || die "no /etc/pam.d/sshd to cover (openssh-server)"
sed '/^[[:space:]]*#/!s|pam_piv\.so|'"$S"'/pam_piv.so config='"$CONF"'|' "$SAMPLE" >"$S/etc/pam.sshd"
[ "$(grep -c "^account[[:space:]].*$S/pam_piv.so config=$CONF sshd_key_check" "$S/etc/pam.sshd")" = 1 ] ||
	die "the sample $SAMPLE has not exactly one pam_piv account line"
# the control for case 5: the same stack without pam_piv's account line
sed '/^[[:space:]]*\(account\|session\)[[:space:]].*pam_piv\.so/d' "$S/etc/pam.sshd" >"$S/etc/pam.sshd-noacct"
! grep -v '^[[:space:]]*#' "$S/etc/pam.sshd-noacct" | grep -q pam_piv || die "could not drop pam_piv from the control stack"
cp "$S/etc/pam.sshd" "$S/etc/pam.active"
mkdir "$S/etc/pamd-copy"
cp -a /etc/pam.d/. "$S/etc/pamd-copy/"
chmod 644 "$S/etc/pam.sshd" "$S/etc/pam.sshd-noacct" "$S/etc/pam.active"
# sshd reads the stack at each connection; cases swap what this file holds
add_mount --bind "$S/etc/pam.active" /etc/pam.d/sshd

# ---- sshd and ssh --------------------------------------------------------
if [ ! -d /run/sshd ]; then
	mkdir -m 755 /run/sshd
	made_privsep=1
fi
# FIPS-approved algorithms only (ECDSA P-256 host key, ECDH P-256, AES,
# HMAC-SHA-256), on both ends: OpenSSH's own Ed25519 and Curve25519 fail
# where OpenSSL is FIPS-only (CI's FIPS stage, a FIPS host).
ssh-keygen -q -t ecdsa -b 256 -N '' -C piv-test-host -f "$S/ssh_host_ecdsa_key"
SSH_ALGS="KexAlgorithms ecdh-sha2-nistp256
Ciphers aes256-gcm@openssh.com,aes128-ctr
MACs hmac-sha2-256
HostKeyAlgorithms ecdsa-sha2-nistp256"

sshd_config() { # NAME EXTRA-LINES: writes $S/sshd_config-NAME
	cat >"$S/sshd_config-$1" <<EOF
ListenAddress 127.0.0.1
Port $PORT
HostKey $S/ssh_host_ecdsa_key
$SSH_ALGS
PidFile $S/sshd.pid
UsePAM yes
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication yes
PermitRootLogin no
StrictModes no
UseDNS no
PrintMotd no
LoginGraceTime 30
AuthorizedKeysCommandUser nobody
LogLevel DEBUG1
$2
EOF
}
KEYS_LINE="AuthorizedKeysCommand $S/pam-piv-authorized-keys --config $CONF %u"
sshd_config keys "AuthorizedKeysFile none
$KEYS_LINE
AuthenticationMethods publickey"
sshd_config twofactor "AuthorizedKeysFile none
$KEYS_LINE
AuthenticationMethods publickey,keyboard-interactive"
sshd_config file "AuthorizedKeysFile $S/authorized_keys/%u
AuthorizedKeysCommand none
AuthenticationMethods publickey"
sshd_config file-twofactor "AuthorizedKeysFile $S/authorized_keys/%u
AuthorizedKeysCommand none
AuthenticationMethods publickey,keyboard-interactive"
# case 5's file lists the revoked card's key too: only the account check
# stands between it and a login
cat "$S/alice-p256.sshpub" "$S/alice-revoked.sshpub" >"$S/authorized_keys/alice"
chmod 644 "$S/authorized_keys/alice"

# Each case looks only at the log lines written since it began.
mark() { wc -l <"$1"; }
since() { tail -n "+$(($2 + 1))" "$1"; } # FILE MARK

# A sanitizer build's module needs its runtimes loaded before anything else
# in sshd; sshd's own leaks are not ours to report, the module's errors are.
SAN_PRELOAD=$(ldd "$PIV_MODULE" | awk '/lib(a|ub)san\.so/ { printf "%s%s", sep, $3; sep = ":" }')

SSHD_LOG=""
start_sshd() { # NAME
	SSHD_LOG=$LOGS/sshd-$1.log
	/usr/sbin/sshd -t -f "$S/sshd_config-$1" || die "sshd -t rejects sshd_config-$1"
	rm -f "$S/sshd.pid"
	: >>"$SSHD_LOG"
	env ${SAN_PRELOAD:+LD_PRELOAD="$SAN_PRELOAD"} \
		${SAN_PRELOAD:+ASAN_OPTIONS="detect_leaks=0:log_path=$LOGS/asan"} \
		${SAN_PRELOAD:+UBSAN_OPTIONS="print_stacktrace=1:log_path=$LOGS/ubsan"} \
		timeout 300 /usr/sbin/sshd -D -e -f "$S/sshd_config-$1" -E "$SSHD_LOG" \
		</dev/null >>"$SSHD_LOG" 2>&1 &
	sshd_waiter=$!
	i=0
	# sshd writes its pid file once it listens
	until [ -s "$S/sshd.pid" ] && listening; do
		i=$((i + 1))
		if [ "$i" -ge 100 ] || ! kill -0 "$sshd_waiter" 2>/dev/null; then
			tail -n 20 "$SSHD_LOG" >&2
			die "sshd ($1) did not start"
		fi
		sleep 0.05
	done
}

cat >"$S/askpass" <<'EOF'
#!/bin/sh
# ssh's askpass: the card's PIN, or the password keyboard-interactive asks.
printf '%s\n' "$1" >>"$PIV_ASKPASS_LOG"
case $1 in
*PIN*) echo 123456 ;;
*assword*) printf '%s\n' "$PIV_TEST_PASSWORD" ;;
*) exit 1 ;;
esac
EOF
chmod 755 "$S/askpass"

# ssh as USER with card SCENARIO, preferring METHODS, answering PASSWORD;
# leaves ssh's exit status in ssh_rc, its output in $LOGS/ID.out and .err.
# Nothing of root's own ssh set-up is read: no config, no keys, no agent.
# The card's keys are the only identities; IdentitiesOnly=yes would drop
# them (ssh keeps a PKCS#11 key under it only when an IdentityFile names
# its public half).
ssh_as() { # ID SCENARIO USER METHODS [PASSWORD]
	ssh_id=$1 ssh_out=$LOGS/$1.out ssh_err=$LOGS/$1.err
	sshd_mark=$(mark "$SSHD_LOG")
	syslog_mark=$(mark "$LOGS/syslog")
	ssh_rc=0
	env -i PATH=/usr/bin:/bin HOME="$S/clienthome" \
		SOFTHSM2_CONF="$PIV_FX/tok/$2/softhsm2.conf" \
		SSH_ASKPASS="$S/askpass" SSH_ASKPASS_REQUIRE=force \
		PIV_TEST_PASSWORD="${5:-}" PIV_ASKPASS_LOG="$LOGS/$1.askpass" \
		timeout 30 ssh -v -F /dev/null -p "$PORT" \
		-o PKCS11Provider="$SOFTHSM2_MODULE" -o IdentitiesOnly=no -o IdentityFile=none \
		-o IdentityAgent=none -o KexAlgorithms=ecdh-sha2-nistp256 \
		-o Ciphers=aes256-gcm@openssh.com -o MACs=hmac-sha2-256 \
		-o HostKeyAlgorithms=ecdsa-sha2-nistp256 \
		-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
		-o GlobalKnownHostsFile=/dev/null -o PreferredAuthentications="$4" \
		-o NumberOfPasswordPrompts=1 -o ConnectTimeout=5 \
		"$3@${SSH_HOST:-127.0.0.1}" 'echo ok-$(id -un)' </dev/null >"$ssh_out" 2>"$ssh_err" || ssh_rc=$?
}

# ---- reporting -----------------------------------------------------------
ok() { echo "ok - $1"; }
not_ok() { # NAME WHY
	echo "not ok - $1"
	echo "#   $2"
	failed=1
}
show() { # TITLE: standard input, indented as a comment
	echo "#   --- $1"
	sed 's/^/#   /'
}
not_ok_ssh() { # NAME WHY: with what this case's ssh, sshd and syslog said
	not_ok "$1" "$2 (ssh exit $ssh_rc)"
	show "ssh stdout" <"$ssh_out"
	grep -v -e 'kex' -e 'KEX' -e 'seqnr' -e 'rekey' -e 'NEWKEYS' "$ssh_err" |
		tail -n 25 | show "ssh -v"
	since "$SSHD_LOG" "$sshd_mark" | grep -v -e 'kex' -e 'KEX' -e 'seqnr' -e 'rekey' -e 'NEWKEYS' |
		tail -n 40 | show "sshd log"
	since "$LOGS/syslog" "$syslog_mark" | tail -n 25 | show "syslog"
}
sshd_says() { since "$SSHD_LOG" "$sshd_mark" | grep -q -e "$1"; }
syslog_says() { since "$LOGS/syslog" "$syslog_mark" | grep -q -e "$1"; }
logged_in_as() { [ "$ssh_rc" = 0 ] && grep -qx "ok-$1" "$ssh_out"; }
refused() { [ "$ssh_rc" = 255 ] && ! grep -q '^ok-' "$ssh_out"; }
# the card signed: ssh asked for its PIN only to sign with it
card_signed() { grep -q PIN "$LOGS/$ssh_id.askpass" 2>/dev/null; }
# the card's key was offered, or a refusal would prove nothing
card_offered() { grep -q 'Offering public key: .* token' "$ssh_err"; }
check() { # NAME WHY CONDITION...: ok if the condition (a command) holds
	name=$1 why=$2
	shift 2
	if "$@"; then ok "$name"; else not_ok_ssh "$name" "$why"; fi
}

# ---- 1. pam-piv-authorized-keys as the AuthorizedKeysCommandUser ---------
keys_as_nobody() { # USER: output in $LOGS/keys-USER.out and .err, status keys_rc
	# (the user may be a hostile name: not part of a path)
	keys_file=$LOGS/keys-$(printf '%s' "$1" | tr -c 'A-Za-z0-9_-' '_')
	keys_out=$keys_file.out keys_err=$keys_file.err
	keys_rc=0
	env -i PATH=/usr/bin:/bin setpriv --reuid=65534 --regid=65534 --clear-groups \
		"$S/pam-piv-authorized-keys" --config "$CONF" "$1" \
		>"$keys_out" 2>"$keys_err" || keys_rc=$?
}
keys_check() { # NAME WHY CONDITION...
	name=$1 why=$2
	shift 2
	if "$@"; then
		ok "$name"
	else
		not_ok "$name" "$why (exit $keys_rc)"
		show "printed" <"$keys_out"
		tail -n 30 "$keys_err" | show "stderr"
	fi
}
# "TYPE BASE64" of each printed line, sorted
printed_keys() { cut -d' ' -f1,2 "$keys_out" | sort; }

keys_as_nobody alice
want=$(sort "$S/alice-p256.sshpub" "$S/alice-rsa2048.sshpub")
keys_check "1a keys command: alice gets exactly her p256 and rsa2048 keys" \
	"expected the keys of alice-p256 and alice-rsa2048:$NL$want" \
	eval '[ "$keys_rc" = 0 ] && [ "$(wc -l <"$keys_out")" = 2 ] && [ "$(printed_keys)" = "$want" ]'
for c in alice-revoked bob-p256; do
	keys_check "1b keys command: not the key of $c for alice" "$c's key printed for alice" \
		eval '! grep -qF "$(cut -d" " -f2 "$S/$c.sshpub")" "$keys_out"'
done
keys_as_nobody bob
keys_check "1c keys command: bob gets his key" "expected exactly bob-p256's key" \
	eval '[ "$keys_rc" = 0 ] && [ "$(wc -l <"$keys_out")" = 1 ] &&
		[ "$(printed_keys)" = "$(cat "$S/bob-p256.sshpub")" ]'
keys_as_nobody nosuchuser
keys_check "1d keys command: an unknown user gets nothing, exit 0" "output or failure" \
	eval '[ "$keys_rc" = 0 ] && [ ! -s "$keys_out" ]'
keys_as_nobody '../etc/x'
keys_check "1e keys command: '../etc/x' gets nothing" "printed keys, or refused for another reason" \
	eval '[ -f "$keys_out" ] && [ ! -s "$keys_out" ] && grep -q "not a valid account name" "$keys_err"'

# ---- 2-4. publickey, the keys from AuthorizedKeysCommand -------------------
start_sshd keys

login_ok() { logged_in_as "$1" && card_signed && sshd_says "Accepted publickey for $1 "; }
key_refused() {
	refused && card_offered && grep -q 'Permission denied (publickey' "$ssh_err" &&
		sshd_says "Failed publickey for $1 "
}

ssh_as 2a p256 alice publickey
check "2a publickey: alice's p256 card logs in as alice" "expected a login" login_ok alice
ssh_as 2b rsa2048 alice publickey
check "2b publickey: alice's rsa2048 card logs in as alice" "expected a login" login_ok alice

ssh_as 3 revoked alice publickey
check "3 publickey: alice's revoked card is refused" \
	"expected 'Permission denied (publickey)'" key_refused alice

ssh_as 4a bob alice publickey
check "4a publickey: bob's card cannot log in as alice" \
	"expected 'Permission denied (publickey)'" key_refused alice
ssh_as 4b bob bob publickey
check "4b publickey: bob's card logs in as bob" "expected a login" login_ok bob
stop_sshd

# ---- 5. the key check of the sample stack ----------------------------------
# The keys come from an authorized_keys file that still lists the revoked
# card: sshd accepts its signature, and only pam_piv's sshd_key_check can
# refuse it. sshd 9.2's privileged monitor runs pam_acct_mgmt before it
# adds the deciding method to SSH_AUTH_INFO_0, so with publickey as the
# only method the account phase sees no key (pam_piv: PAM_IGNORE) and the
# session phase refuses; sshd then runs no command.
start_sshd file
session_refused() {
	! grep -q '^ok-' "$ssh_out" && [ "$ssh_rc" != 0 ] && card_signed &&
		sshd_says "Accepted publickey for alice " &&
		sshd_says "pam_open_session" &&
		syslog_says 'pam_piv(sshd:session): session check failed: user=alice '
}
ssh_as 5a revoked alice publickey
check "5a key check: a listed but revoked key is refused (session phase)" \
	"expected sshd's PAM session failure and pam_piv's 'session check failed'" session_refused

session_passed() {
	logged_in_as alice && card_signed &&
		syslog_says 'pam_piv(sshd:session): session check succeeded: user=alice keys=1 '
}
ssh_as 5b p256 alice publickey
check "5b key check: a listed, valid key passes it" \
	"expected a login and pam_piv's 'session check succeeded'" session_passed
stop_sshd

# The same with the password as a second factor: sshd then runs the account
# phase after keyboard-interactive, when the first factor's key is known.
start_sshd file-twofactor
account_refused_2fa() {
	refused && card_signed && sshd_says "Partial publickey for alice " &&
		! sshd_says "Accepted keyboard-interactive/pam for alice " &&
		syslog_says 'pam_piv(sshd:account): account check failed: user=alice '
}
ssh_as 5c revoked alice publickey,keyboard-interactive "$PASSWORD"
check "5c account check: with a password as second factor, a listed but revoked key is refused" \
	"expected pam_piv's 'account check failed' after the password" account_refused_2fa
stop_sshd

# The control: without pam_piv's account and session lines the revoked card
# gets in, so 5a cannot pass for another reason.
cat "$S/etc/pam.sshd-noacct" >"$S/etc/pam.active"
start_sshd file
control_in() { logged_in_as alice && card_signed && ! syslog_says 'pam_piv('; }
ssh_as 5d revoked alice publickey
check "5d control: without the pam_piv lines the revoked card logs in" \
	"expected a login with no pam_piv involved" control_in
stop_sshd
cat "$S/etc/pam.sshd" >"$S/etc/pam.active"

# ---- 6. two factors: the card, then the password ----------------------------
start_sshd twofactor
both_ok() {
	logged_in_as alice && card_signed && sshd_says "Partial publickey for alice " &&
		sshd_says "Accepted keyboard-interactive/pam for alice " &&
		syslog_says 'pam_piv(sshd:account): account check succeeded: user=alice keys=1 '
}
ssh_as 6a p256 alice publickey,keyboard-interactive "$PASSWORD"
check "6a two factors: the p256 card and alice's password log in" \
	"expected publickey, then keyboard-interactive and the account check to pass" both_ok

password_refused() {
	refused && card_signed && grep -q assword "$LOGS/$ssh_id.askpass" &&
		grep -q 'Permission denied (keyboard-interactive)' "$ssh_err" &&
		sshd_says "Failed keyboard-interactive/pam for alice "
}
ssh_as 6b p256 alice publickey,keyboard-interactive wrong-password
check "6b two factors: the right card and a wrong password are refused" \
	"expected a refusal after the password was asked" password_refused

no_password_asked() {
	key_refused alice && ! grep -q assword "$LOGS/$ssh_id.askpass" 2>/dev/null
}
ssh_as 6c revoked alice publickey,keyboard-interactive "$PASSWORD"
check "6c two factors: the revoked card is refused before any password" \
	"expected 'Permission denied (publickey)' and no password prompt" no_password_asked
stop_sshd

# ---- 8. the console's reader does not answer a password login over ssh ----
# pam_piv in common-auth, as Debian's pam-auth-update puts it there from
# the profile (pam.d/pam_piv.pam-auth-update), and alice's card in this
# host's reader (SoftHSM). Alice logs in over ssh with her password
# (keyboard-interactive): the card must not be used, its PIN not asked.
add_mount -t tmpfs -o mode=755 piv-pamd /etc/pam.d
cp -a "$S/etc/pamd-copy/." /etc/pam.d/
cp "$S/etc/pam.sshd" /etc/pam.d/sshd
mkdir "$S/pam-configs" "$S/var-lib-pam"
cp -a /usr/share/pam-configs/. "$S/pam-configs/"
LOCAL_CONF=$S/pam_piv-reader.conf
sed "s|pam_piv.so|$S/pam_piv.so config=$LOCAL_CONF|" "$top_srcdir/pam.d/pam_piv.pam-auth-update" \
	>"$S/pam-configs/pam_piv"
[ -d /var/lib/pam ] && cp -a /var/lib/pam/. "$S/var-lib-pam/"
mkdir -p /var/lib/pam
add_mount --bind "$S/pam-configs" /usr/share/pam-configs
add_mount --bind "$S/var-lib-pam" /var/lib/pam
DEBIAN_FRONTEND=noninteractive pam-auth-update --enable pam_piv >/dev/null 2>&1 ||
	die "pam-auth-update --enable pam_piv failed"
grep -q "pam_piv.so config=$LOCAL_CONF" /etc/pam.d/common-auth ||
	die "pam-auth-update did not put the profile into common-auth"
reader_conf() { # EXTRA-LINES
	{
		cat "$CONF"
		printf 'pkcs11_module = %s\n' "$SOFTHSM2_MODULE"
		printf 'helper_env = SOFTHSM2_CONF=%s/tok/p256/softhsm2.conf\n' "$PIV_FX"
		printf '%s\n' "$1"
	} >"$LOCAL_CONF"
	chmod 644 "$LOCAL_CONF"
}
# a second address of this network namespace, not loopback: a login
# through it has PAM_RHOST 192.0.2.1, another host as far as pam_piv knows
ip addr add 192.0.2.1/32 dev lo || die "cannot add 192.0.2.1 to lo"
sshd_config password "AuthorizedKeysFile none
AuthorizedKeysCommand none
AuthenticationMethods keyboard-interactive
ListenAddress 192.0.2.1"
start_sshd password
pin_asked() { grep -q PIN "$LOGS/$ssh_id.askpass" 2>/dev/null; }
password_login() {
	logged_in_as alice && ! pin_asked && grep -q assword "$LOGS/$ssh_id.askpass" &&
		sshd_says "Accepted keyboard-interactive/pam for alice " &&
		syslog_says 'pam_piv(sshd:auth): authentication failed: user=alice result=no-card .*allowed_services'
}
reader_conf ""
ssh_as 8a empty alice keyboard-interactive "$PASSWORD"
check "8a common-auth over ssh: the password, the console's card is not touched" \
	"expected a password login with no PIN prompt" password_login
# the control: a site that lets the reader answer sshd logins from
# anywhere gets the PIN prompt, so 8a cannot pass for another reason
pin_login() { logged_in_as alice && pin_asked && ! grep -q assword "$LOGS/$ssh_id.askpass"; }
reader_conf "allowed_services = +sshd
allow_remote = yes"
ssh_as 8b empty alice keyboard-interactive "$PASSWORD"
check "8b control: with allowed_services = +sshd and allow_remote, the PIN is asked" \
	"expected the PIN prompt of the console's card" pin_login
# sshd allowed, but the login comes from elsewhere (PAM_RHOST is the
# client's address, 127.0.0.1 here: loopback is this host), so the
# service rule alone stands between a remote user and the reader
reader_conf "allowed_services = +sshd"
ssh_as 8c empty alice keyboard-interactive "$PASSWORD"
check "8c allowed_services = +sshd from loopback (this host): the PIN is asked" \
	"expected the PIN prompt" pin_login
remote_password_login() {
	logged_in_as alice && ! pin_asked && grep -q assword "$LOGS/$ssh_id.askpass" &&
		syslog_says 'pam_piv(sshd:auth): authentication failed: user=alice result=no-card .*login from 192.0.2.1 (PAM_RHOST; allow_remote = no)'
}
SSH_HOST=192.0.2.1
ssh_as 8d empty alice keyboard-interactive "$PASSWORD"
SSH_HOST=
check "8d allowed_services = +sshd from another address: the password, no PIN" \
	"expected a password login with no PIN prompt" remote_password_login
stop_sshd

if [ -n "$SAN_PRELOAD" ]; then
	reports=$(find "$LOGS" -name 'asan.*' -o -name 'ubsan.*')
	if [ -z "$reports" ]; then
		ok "7 sanitizers: no reports from pam_piv inside sshd"
	else
		not_ok "7 sanitizers: no reports from pam_piv inside sshd" "reports: $reports"
		for r in $reports; do show "$r" <"$r"; done
	fi
fi

[ "$failed" = 0 ] || echo "ssh-tests: some cases failed; logs in $PIV_FX/ssh-logs" >&2
