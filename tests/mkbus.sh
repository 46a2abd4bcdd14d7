#!/bin/sh
# Owns the private D-Bus of the card removal watcher's tests: a dbus-daemon
# listening on DIR/bus and, on it, tests/login1d, the fake systemd-logind.
# Usage: mkbus.sh start DIR LOGIN1D   start both; prints on stdout
#                                     DBUS_SYSTEM_BUS_ADDRESS=<address>
#        mkbus.sh stop DIR            stop both (idempotent)
# DIR (created if missing) then holds:
#   bus.conf, bus        the daemon's configuration and socket
#   address, dbus.pid    what dbus-daemon printed
#   sessions             login1d's known session ids, one a line (empty)
#   pids                 "PID ID" lines: which process is in which session
#   login1.log           login1d's record of the calls (tests/login1d.c)
#   refuse               absent; create it to make login1d deny Lock/Terminate
#   login1d.pid          written by login1d once it owns org.freedesktop.login1
#   dbus.err, login1d.err  their diagnostics
# The bus is a test bus: everybody may connect, own any name and send
# anything. It never touches the system bus: nothing here reads
# DBUS_SYSTEM_BUS_ADDRESS, and login1d is told its bus explicitly.
# A session user connects too (the watcher runs as the user): DIR and its
# parents must be searchable by that user; the socket is made 0666.
# login1d ends by itself after LIFETIME seconds; dbus-daemon has no such
# limit, so a caller stops the bus in its exit trap.
set -eu

LIFETIME=900
# unix socket paths hold at most 107 bytes
MAX_SOCKET_PATH=107

die() { printf 'mkbus.sh: %s\n' "$*" >&2; exit 1; }
usage() { die "usage: mkbus.sh start DIR LOGIN1D | mkbus.sh stop DIR"; }

[ $# -ge 2 ] || usage
ACTION=$1
case $ACTION in
start) [ $# -eq 3 ] || usage ;;
stop)
	[ $# -eq 2 ] || usage
	# nothing there, nothing to stop
	[ -d "$2" ] || exit 0
	;;
*) usage ;;
esac
mkdir -p "$2"
DIR=$(cd "$2" && pwd -P)
CONF=$DIR/bus.conf
SOCKET=$DIR/bus
LOGIN1D_PIDFILE=$DIR/login1d.pid
DBUS_PIDFILE=$DIR/dbus.pid

# a short pause; sleep(1) of coreutils and busybox takes fractions, POSIX not
nap() { sleep 0.1 2>/dev/null || sleep 1; }

# ours PID ARG: PID is alive and has ARG as one of its arguments, so a stale
# pid file never makes us kill a process that took over the number (a zombie
# has no arguments left: it counts as gone)
ours() {
	case $1 in '' | *[!0-9]*) return 1 ;; esac
	{ tr '\0' '\n' < "/proc/$1/cmdline"; } 2>/dev/null | grep -Fqx -e "$2"
}

# stop_one PIDFILE ARG NAME
stop_one() {
	[ -s "$1" ] || { rm -f "$1"; return 0; }
	p=$(cat "$1")
	if ours "$p" "$2"; then
		kill "$p" 2>/dev/null || :
		n=0
		while ours "$p" "$2"; do
			n=$((n + 1))
			if [ "$n" -gt 50 ]; then
				kill -KILL "$p" 2>/dev/null || :
			fi
			if [ "$n" -gt 100 ]; then
				die "$3 (pid $p) does not exit"
			fi
			nap
		done
	fi
	rm -f "$1"
}

stop() {
	# login1d first, so it does not see its bus go away under it
	stop_one "$LOGIN1D_PIDFILE" "$LOGIN1D_PIDFILE" login1d
	stop_one "$DBUS_PIDFILE" "--config-file=$CONF" dbus-daemon
	rm -f "$SOCKET"
}

start() {
	login1d=$1
	[ -x "$login1d" ] || die "$login1d: not an executable"
	command -v dbus-daemon >/dev/null 2>&1 || die "dbus-daemon not found"
	[ "${#SOCKET}" -le "$MAX_SOCKET_PATH" ] ||
		die "$SOCKET: too long for a unix socket path"
	# nothing to escape, neither in the XML nor in the D-Bus address
	case $SOCKET in
	*[!A-Za-z0-9_./-]*) die "$SOCKET: unusual characters in the path" ;;
	esac

	# a previous run's processes in DIR go first
	stop
	rm -f "$DIR/address" "$DIR/dbus.err" "$DIR/login1d.err" \
		"$DIR/login1.log" "$DIR/refuse"
	: > "$DIR/sessions"

	cat > "$CONF" <<EOF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<!-- Written by tests/mkbus.sh: a private bus of the test suite, for a fake
     systemd-logind; everybody may connect, own and send. -->
<busconfig>
  <type>system</type>
  <listen>unix:path=$SOCKET</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow eavesdrop="true"/>
  </policy>
</busconfig>
EOF

	# --fork: the parent returns once the daemon listens, after printing
	# the address on fd 3 and the pid on fd 4
	if ! dbus-daemon --config-file="$CONF" --fork --nosyslog \
		--print-address=3 --print-pid=4 \
		3>"$DIR/address" 4>"$DBUS_PIDFILE" \
		</dev/null >"$DIR/dbus.err" 2>&1; then
		cat "$DIR/dbus.err" >&2
		die "dbus-daemon did not start (see above)"
	fi
	trap 'stop' EXIT
	address=$(sed -n 1p "$DIR/address")
	pid=$(sed -n 1p "$DBUS_PIDFILE")
	[ -n "$address" ] || die "dbus-daemon printed no address"
	ours "$pid" "--config-file=$CONF" ||
		die "dbus-daemon (pid '$pid') is not running"
	[ -S "$SOCKET" ] || die "$SOCKET: no socket"
	chmod 0666 "$SOCKET"

	# the timeout in login1d's hands (--max-seconds); its output must not
	# hold our stdout open, or $(mkbus.sh start ...) would never return
	: >"$DIR/pids"
	"$login1d" --address "$address" --sessions "$DIR/sessions" --pids "$DIR/pids" \
		--log "$DIR/login1.log" --refuse-file "$DIR/refuse" \
		--pidfile "$LOGIN1D_PIDFILE" --max-seconds "$LIFETIME" \
		</dev/null >"$DIR/login1d.err" 2>&1 &
	spawned=$!
	n=0
	while [ ! -s "$LOGIN1D_PIDFILE" ]; do
		if ! kill -0 "$spawned" 2>/dev/null; then
			cat "$DIR/login1d.err" >&2
			die "login1d exited at start (see above)"
		fi
		n=$((n + 1))
		[ "$n" -le 50 ] || {
			kill "$spawned" 2>/dev/null || :
			cat "$DIR/login1d.err" >&2
			die "login1d did not come up in 5 s"
		}
		nap
	done
	trap - EXIT
	printf 'DBUS_SYSTEM_BUS_ADDRESS=%s\n' "$address"
}

case $ACTION in
start) start "$3" ;;
stop) stop ;;
esac
