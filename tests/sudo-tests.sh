#!/bin/sh
# The real sudo(8) with the pam.d/sudo sample of pam_piv: local card
# elevation, the password fallback without a card, and sudo over a
# forwarded ssh-agent. Run by pam-tests.sh inside its private network AND
# mount namespaces, as root: the accounts, /etc/sudoers and /etc/pam.d/sudo
# seen here are bind mounts that exist only in this namespace; sudo itself
# runs set-user-ID as it would for a user, with the real libpam.
set -eu

: "${top_srcdir:?}" "${PIV_FX:?}" "${PIV_MODULE:?}" "${PIV_HELPER:?}" "${SOFTHSM2_MODULE:?}"

# sudo is set-user-ID: the dynamic loader ignores LD_PRELOAD for it, so a
# module built with AddressSanitizer (whose runtime must come first)
# cannot be loaded into it. The code it runs is tested under the
# sanitizers in tests/pam/test_*, login-tests.sh and ssh-tests.sh.
if ldd "$PIV_MODULE" | grep -q 'libasan\.so'; then
	echo "ok - # SKIP sudo-tests: sanitizer build (sudo is set-user-ID)"
	exit 0
fi

STAGE=/srv/piv-sudo
PIN=123456
ALICE_PW=alice-secret-pw
failed=0
agent_pid=

# shellcheck source=tests/real-lib.sh
. "$top_srcdir/tests/real-lib.sh"

cleanup() {
	[ -z "$agent_pid" ] || kill $agent_pid 2>/dev/null || true
	for m in /etc/sudoers /etc/sudoers /etc/pam.d/su /etc/pam.d/sudo /etc/shadow /etc/group /etc/passwd "$STAGE"; do
		umount "$m" 2>/dev/null || true
	done
	rmdir "$STAGE" 2>/dev/null || true
}
trap cleanup EXIT INT TERM

: "${PIV_WWW:?}"
serve_crls
stage_tmpfs
install -m 0755 "$PIV_MODULE" "$STAGE/pam_piv.so"
mkdir -m 0755 "$STAGE/certs" "$STAGE/home"
cat "$PIV_FX/pki/alice-p256.crt" > "$STAGE/certs/alice.pem"
chmod 0644 "$STAGE/certs/alice.pem"

# conf SCENARIO [more lines]: pam_piv.conf for the card in tok/SCENARIO
conf() {
	write_conf "$1" "cert_source = dir:$STAGE/certs
debug = yes${2:+
$2}"
}

# Accounts: root, nobody, alice (password ALICE_PW) and bob.
stage_accounts "$STAGE/home" "$ALICE_PW"

# sudoers: alice may become root; no cached authentication between cases;
# SSH_AUTH_SOCK kept for the agent case (as pam.d/sudo says).
cat > "$STAGE/sudoers" <<'EOF'
Defaults !lecture, timestamp_timeout=0, passwd_tries=1, !syslog, !mail_badpass
Defaults env_keep += "SSH_AUTH_SOCK"
root  ALL=(ALL:ALL) ALL
alice ALL=(ALL:ALL) ALL
EOF
chmod 0440 "$STAGE/sudoers"
mount --bind "$STAGE/sudoers" /etc/sudoers

# pam.d/sudo: the sample itself, pointed at the built module and this
# configuration; "agent" variant with the commented line taken instead.
sample=$top_srcdir/pam.d/sudo
sed "s|pam_piv.so|$STAGE/pam_piv.so config=$STAGE/pam_piv.conf|" "$sample" > "$STAGE/pam.sudo"
sed -e "/^auth .*pam_piv.so *\$/d" -e "s|^#\(auth .*pam_piv.so agent\)\$|\1|" \
	-e "s|pam_piv.so|$STAGE/pam_piv.so config=$STAGE/pam_piv.conf|" "$sample" > "$STAGE/pam.sudo-agent"
grep -q "^auth .*pam_piv.so config=$STAGE/pam_piv.conf agent" "$STAGE/pam.sudo-agent" ||
	{ say "sudo-tests: pam.d/sudo has no commented agent line"; exit 1; }
chmod 0644 "$STAGE/pam.sudo" "$STAGE/pam.sudo-agent"
touch /etc/pam.d/sudo
mount --bind "$STAGE/pam.sudo" /etc/pam.d/sudo

# as_alice INPUT CMD...: run CMD as alice (uid 1001) with INPUT on stdin;
# sets out (stdout+stderr) and rc
as_alice() {
	input=$1
	shift
	rc=0
	out=$(printf '%s' "$input" | env -i PATH=/usr/bin:/bin HOME="$STAGE/home" \
		${SSH_AUTH_SOCK:+SSH_AUTH_SOCK="$SSH_AUTH_SOCK"} \
		setpriv --reuid=1001 --regid=1001 --init-groups timeout 60 "$@" 2>&1) || rc=$?
}

# sudo_case NAME SCENARIO INPUT WANT_RC WANT_TEXT [NOT_TEXT]: sudo -S
# prints the PAM prompts it answers from INPUT on stderr, so the output
# shows whether the PIN was asked. (sudo authenticates with PAM_SILENT:
# pam_piv's messages do not appear, its prompts do.)
sudo_case() {
	conf "$2"
	as_alice "$3" sudo -S id -u
	case $rc:$out in
	*"${6:-@@none@@}"*) not_ok "$1: '$6' in the output"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	"$4":*"$5"*) ok "$1" ;;
	*)
		not_ok "$1: rc=$rc, wanted $4 and '$5'"
		printf '%s\n' "$out" | sed 's/^/#   /'
		# what the module decided, step by step, as root
		"${PIV_CHECK_TOOL:-false}" --config "$STAGE/pam_piv.conf" --user alice 2>&1 |
			sed 's/^/#   check: /' || true ;;
	esac
}

sudo_case "card: right PIN" p256 "$PIN
" 0 "PIN for p256: 0"
sudo_case "card: wrong PIN" p256 "654321
" 1 "incorrect password attempt"
sudo_case "card: another user's card, no PIN asked" bob "" 1 \
	"incorrect password attempt" "PIN for"
sudo_case "card: revoked, no PIN asked" revoked "" 1 "incorrect password attempt" "PIN for"
sudo_case "no card: the password of common-auth" empty "$ALICE_PW
" 0 "password for alice: 0" "PIN for"
sudo_case "no card: a wrong password" empty "not-the-password
" 1 "incorrect password attempt" "PIN for"

# sudo over ssh: the card's key in alice's ssh-agent (ssh-add -s, as on a
# workstation), no local card, the sample's agent line.
mount --bind "$STAGE/pam.sudo-agent" /etc/pam.d/sudo
# start_agent UID SCENARIO DIR: a real ssh-agent of UID, in DIR (only UID
# can enter it), holding the key of the card tok/SCENARIO (ssh-add -s)
start_agent() {
	mkdir -m 0700 "$3"
	cp -a "$PIV_FX/tok/$2" "$3/tok"
	sed -i "s|$PIV_FX/tok/$2|$3/tok|" "$3/tok/softhsm2.conf"
	printf '#!/bin/sh\necho %s\n' "$PIN" > "$3/askpass"
	chmod 0755 "$3/askpass"
	chown -R "$1:$1" "$3"
	env -i PATH=/usr/bin:/bin SOFTHSM2_CONF="$3/tok/softhsm2.conf" \
		setpriv --reuid="$1" --regid="$1" --init-groups timeout 120 \
		ssh-agent -D -a "$3/sock" >"$3.log" 2>&1 &
	agent_pid="$agent_pid $!"
	i=0
	while [ ! -S "$3/sock" ] && [ "$i" -lt 100 ]; do sleep 0.05; i=$((i + 1)); done
	SSH_AUTH_SOCK=$3/sock SSH_ASKPASS=$3/askpass SSH_ASKPASS_REQUIRE=force \
		setpriv --reuid="$1" --regid="$1" --init-groups timeout 60 \
		ssh-add -s "$SOFTHSM2_MODULE" </dev/null >/dev/null 2>&1 ||
		{ say "sudo-tests: ssh-add -s as uid $1 failed"; cat "$3.log"; exit 1; }
}
adir=$STAGE/agent
start_agent 1001 p256 "$adir"
SSH_AUTH_SOCK=$adir/sock
sudo_case "agent: the key of a valid certificate, no PIN, no password" empty "" 0 "0" "assword"
printf '' > "$STAGE/certs/alice.pem"
sudo_case "agent: no valid certificate, back to the password" empty "$ALICE_PW
" 0 "password for alice: 0"
cat "$PIV_FX/pki/alice-p256.crt" > "$STAGE/certs/alice.pem"
SSH_AUTH_SOCK=
sudo_case "agent: none forwarded, back to the password" empty "$ALICE_PW
" 0 "password for alice: 0"

# Another user's agent. Bob's agent holds bob's card key, in a directory
# only bob can enter. Alice points SSH_AUTH_SOCK at it and asks to become
# bob: with su, and with sudo's targetpw (the PAM user is then the target).
# pam_piv must not open bob's socket for her: the agent proves only the
# user who invoked the program.
bdir=$STAGE/bob-agent
start_agent 1002 bob "$bdir"
cat "$PIV_FX/pki/bob-p256.crt" > "$STAGE/certs/bob.pem"
chmod 0644 "$STAGE/certs/bob.pem"

# su with the sample's agent line (pam.d/su is the sudo sample's stack:
# pam_piv agent, then common-auth)
mount --bind "$STAGE/pam.sudo-agent" /etc/pam.d/su 2>/dev/null ||
	{ touch /etc/pam.d/su; mount --bind "$STAGE/pam.sudo-agent" /etc/pam.d/su; }
# su_case NAME SOCKET TARGET INPUT WANT_RC WANT_TEXT [NOT_TEXT]
su_case() {
	conf empty
	SSH_AUTH_SOCK=$2
	as_alice "$4" su "$3" -c 'id -u'
	case $rc:$out in
	*"${7:-@@none@@}"*) not_ok "$1: '$7' in the output"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	"$5":*"$6"*) ok "$1" ;;
	*) not_ok "$1: rc=$rc, wanted $5 and '$6'"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	esac
}
su_case "su alice: alice's own agent proves her" "$adir/sock" alice "" 0 "1001"
su_case "su bob: bob's agent socket does not answer for alice" "$bdir/sock" bob "" 1 \
	"Authentication failure" "1002"
umount /etc/pam.d/su

# sudo -u bob with targetpw: the PAM user is bob
sed 's/^Defaults !lecture/Defaults targetpw, !lecture/' "$STAGE/sudoers" > "$STAGE/sudoers-targetpw"
chmod 0440 "$STAGE/sudoers-targetpw"
mount --bind "$STAGE/sudoers-targetpw" /etc/sudoers
SSH_AUTH_SOCK=$bdir/sock
sudo_target_case() {
	conf empty
	as_alice "$2" sudo -S -u bob id -u
	case $rc:$out in
	*"1002"*) not_ok "$1: alice became bob"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	"$3":*"$4"*) ok "$1" ;;
	*) not_ok "$1: rc=$rc, wanted $3 and '$4'"; printf '%s\n' "$out" | sed 's/^/#   /' ;;
	esac
}
sudo_target_case "sudo targetpw -u bob: bob's agent socket does not answer for alice" "" 1 \
	"password for bob"
SSH_AUTH_SOCK=
umount /etc/sudoers

exit "$failed"
