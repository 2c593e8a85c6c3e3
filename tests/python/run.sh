#!/bin/bash
# Python tests: ordinary grpcio programs (Debian's python3-grpcio, which has
# gRPC core compiled into it) that fork, run against an echo server with the
# shim preloaded and, where a check must show that it can see the bug, without.
#
#   stock demo      without the shim the demo's child fails (the bug is seen)
#   demo            with the shim the demo succeeds, 5 runs in a row
#   leak            a child's gRPC writes nothing into an unrelated connection
#                   that took the number of an inherited socket (and, without
#                   the shim, it does: the test can see a leak)
#   guard           GRPC_FORKSAFE_EMBEDDED=guard: nobody hangs or crashes,
#                   nothing leaks, the environment is left alone
#   user's choice   GRPC_ENABLE_FORK_SUPPORT=0 from the user is kept
#   stream          a fork while another thread reads a server stream, waiting
#                   in Python or inside gRPC: the parent and the child's calls
#                   on a channel of its own all succeed
#   exec            programs started from a gRPC process get none of gRPC's
#                   descriptors
#   inherited       a module-level channel made before the fork works in the
#                   child (os.fork(), unused or used by the parent; other
#                   call kinds; multiprocessing.Pool workers; a grandchild,
#                   through grpc.intercept_channel; over TLS with call
#                   credentials; a stream in progress at the fork, which the
#                   child sees end CANCELLED, as grpcio ends it, while the
#                   parent reads it to its end): every call, the first
#                   included, on a connection of the child's own, wherever
#                   and also where it works without the shim
#   close mode      GRPC_FORKSAFE_MODE=close keeps grpcio's closed channels
#   sitecustomize   the user's own sitecustomize still runs; programs started
#                   from the interpreter get the user's PYTHONPATH
#   other grpcio    a grpcio other than 1.51 is left alone, with one warning
#   gunicorn        gunicorn --preload, 3 sync workers, a channel made at
#                   import: 200 requests, each an RPC, all succeed; with and
#                   without an RPC in the master before it forks
#   aio             a grpc.aio client forks: its aio channel keeps working, the
#                   child does no worse than without the shim
#   serving         a process running a grpcio server forks children that
#                   never use gRPC, preexec_fn children, and client children
#                   (new and inherited channels, pool workers): all succeed,
#                   none holds the parent's listening socket, the parent
#                   still serves; each also run without the shim
#
# Usage: run.sh --shim SO --server BIN --stubs DIR --out DIR
#   DIR of --stubs holds echo_pb2.py and echo_pb2_grpc.py; --out keeps every
#   run's output. Environment: PYTHON (/usr/bin/python3, the interpreter
#   Debian's python3-grpcio is installed for).
# Prints "PASS name" or "FAIL name: reason" per check, then a summary; exits
# non-zero if any check failed. Every run is under timeout(1): a hang fails.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
. "$ROOT/scripts/verdicts.sh"
. "$ROOT/scripts/echo-server.sh"
. "$ROOT/scripts/server-log.sh"
. "$ROOT/scripts/gunicorn.sh"

usage() { echo "usage: run.sh --shim SO --server BIN --stubs DIR --out DIR" >&2; exit 2; }
SHIM='' SERVER='' STUBS='' OUT=''
while [ $# -gt 0 ]; do
	[ $# -ge 2 ] || usage
	case $1 in
	--shim) SHIM=$(realpath "$2") ;;
	--server) SERVER=$(realpath "$2") ;;
	--stubs) STUBS=$(realpath "$2") ;;
	--out) OUT=$2 ;;
	*) usage ;;
	esac
	shift 2
done
if [ -z "$SHIM" ] || [ -z "$SERVER" ] || [ -z "$STUBS" ] || [ -z "$OUT" ]; then usage; fi
PYTHON=${PYTHON:-/usr/bin/python3}
if ! "$PYTHON" -c 'import grpc' 2>/dev/null; then
	echo "run.sh: $PYTHON cannot import grpc; install python3-grpcio" >&2
	exit 2
fi
DEMO=$ROOT/demo/fork_demo.py
# The slowest expected run, the leak client without the shim, takes some 5 s
# (two RPCs into their 2 s deadline); 30 s means it hung.
LIMIT=30
DEMO_RUNS=5
STREAM_MESSAGES=20

rm -rf "$OUT"
mkdir -p "$OUT/server"
OUT=$(realpath "$OUT")
# A run that hangs gets SIGABRT, on which Python prints every thread's
# traceback (PYTHONFAULTHANDLER); no core file is wanted.
ulimit -c 0

ECHO_SERVER_BIN=$SERVER
trap 'gunicorn_kill_group; echo_server_stop' EXIT
trap 'exit 130' INT TERM
echo_server_start "$OUT/server" || exit 2
SERVER_LOG=$OUT/server/calls.log
# A DNS name, as applications write it: name resolution is part of what
# gRPC does around a fork, and what the default policy sets up for.
TARGET=localhost:$ECHO_PORT
# An IP literal, for runs under the guard policy: there grpcio keeps its
# default resolver (c-ares), with which stock gRPC hangs in os.fork() in several
# percent of runs when the target is a DNS name (core's prefork handler waits for
# an executor thread that waits for the fork), with or without the shim.
TARGET_IP=127.0.0.1:$ECHO_PORT

# run NAME [VAR=VALUE...] -- SCRIPT [ARGS...]: runs SCRIPT with that
# environment, output in $OUT/NAME.out and .err; sets STATUS. env(1) applies
# the preload, so timeout(1) itself runs without the shim; settings from the
# caller's environment are not part of the test; the helpers imported from
# this directory leave no byte code in the source tree. timeout(1) makes a
# process group of its own: whatever the run left in it (a hung child whose
# parent crashed) is killed once the run has ended.
run() {
	local name=$1 envs=() group
	shift
	while [ "$1" != "--" ]; do envs+=("$1"); shift; done
	shift
	timeout -s ABRT -k 5 $LIMIT env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_EMBEDDED \
		-u GRPC_FORKSAFE_LOG -u GRPC_FORKSAFE_LOG_FILE -u GRPC_ENABLE_FORK_SUPPORT -u GRPC_DNS_RESOLVER \
		PYTHONPATH="$STUBS:$HERE" PYTHONDONTWRITEBYTECODE=1 PYTHONFAULTHANDLER=1 "${envs[@]}" "$PYTHON" "$@" \
		</dev/null >"$OUT/$name.out" 2>"$OUT/$name.err" &
	group=$!
	wait $group
	STATUS=$?
	pkill -KILL -g $group 2>/dev/null
}

hung() { [ "$STATUS" = 124 ] || [ "$STATUS" = 137 ]; }

describe_status() {
	if hung; then echo "hung (stopped after $LIMIT s; Python's tracebacks are in the .err file)"
	elif [ "$STATUS" -gt 128 ]; then echo "killed by signal $((STATUS - 128))"
	else echo "exit status $STATUS"
	fi
}

# The demo's own verdicts, from its output (see demo/fork_demo.py).
demo_parent_ok() { grep -qE '^parent \(pid [0-9]+\): ([0-9]+) of \1 RPCs succeeded$' "$1"; }
demo_child_ok() { grep -qE '^child +\(pid [0-9]+\): ([0-9]+) of \1 RPCs on the new channel succeeded$' "$1"; }
# peer ROLE WHAT FILE: the address the server saw for that RPC, if it succeeded.
peer() { sed -n "s/^$1 *(pid [0-9]*): $2.* ok .*(server saw \(.*\))$/\1/p" "$3" | head -1; }

# --- The sink: an unrelated server the leak client's child connects to.
SINK_CONNECTIONS=3   # as many as leak_client.py opens

# leak_run NAME [VAR=VALUE...]: the leak client against a fresh sink, its
# channels to LEAK_TARGET (TARGET unless set). Sets
# STATUS, SINK_BYTES (everything the sink received), SINK_DONE (every
# connection came and went), and SINK_DATA (the bytes' file).
leak_run() {
	local name=$1 sink_pid _
	shift
	rm -f "$OUT/$name.sink-port"
	"$PYTHON" "$HERE/sink.py" "$OUT/$name.sink-port" "$OUT/$name.sink" --connections $SINK_CONNECTIONS \
		--limit $LIMIT 2>"$OUT/$name.sink-err" &
	sink_pid=$!
	if ! await_port_file "$OUT/$name.sink-port" $sink_pid; then
		kill $sink_pid 2>/dev/null
		wait $sink_pid
		STATUS=2 SINK_BYTES=0 SINK_DONE=no SINK_DATA=/dev/null
		echo "the sink did not start: $(cat "$OUT/$name.sink-err")" >"$OUT/$name.err"
		return
	fi
	run "$name" "$@" -- "$HERE/leak_client.py" "${LEAK_TARGET:-$TARGET}" "$(cat "$OUT/$name.sink-port")"
	# The client has ended, and with it its child (it waits for the child or
	# kills it): every connection to the sink is closed, and the sink, once it
	# has read them to the end, exits. If the child never connected, nothing
	# more will come: 5 s on, the sink is told so and writes what it has.
	for _ in $(seq 50); do
		kill -0 $sink_pid 2>/dev/null || break
		sleep 0.1
	done
	kill -TERM $sink_pid 2>/dev/null
	wait $sink_pid
	SINK_BYTES=$(awk '/^connection/ { n += $3 } END { print n + 0 }' "$OUT/$name.sink")
	SINK_DONE=$(grep -q '^incomplete' "$OUT/$name.sink" && echo no || echo yes)
	SINK_DATA=$OUT/$name.sink.data
}

# env_seen FILE ROLE VAR: what that process printed for the variable.
env_seen() { sed -n "s/^$2 *(pid [0-9]*): environment: env $3=//p" "$1" | head -1; }

# leak_problems NAME: what is wrong with a leak client run that must not
# leak (the parent's RPCs failed, the child did not get through both RPCs,
# the sink got bytes); silent if nothing.
leak_problems() {
	local out=$OUT/$1.out
	[ "$STATUS" = 0 ] || printf 'client %s; ' "$(describe_status)"
	grep -q '^child .*: RPC on the inherited channel ' "$out" || printf 'the child made no RPC on its inherited channel; '
	grep -q '^child .*: RPC on a new channel ' "$out" || printf 'the child made no RPC on a new channel; '
	[ "$SINK_DONE" = yes ] || printf 'the sink did not see the child connect and close (%s); ' \
		"$(paste -sd' ' "$OUT/$1.sink")"
	[ "$SINK_BYTES" = 0 ] || printf 'the sink received %s bytes (%s); ' "$SINK_BYTES" \
		"$(grep -ao 'LEAKED-BY-[0-9]*-[a-z]*' "$SINK_DATA" | sort -u | paste -sd' ')"
}

# outcome FILE WHAT: "ok" or the failure of the child's RPC named WHAT.
outcome() {
	sed -n "s/^child *(pid [0-9]*): $2 *\(ok\|FAILED *[0-9.]* ms *\)\(.*\)/\1\2/p" "$1" | head -1 |
		sed -e 's/^ok .*/ok/' -e 's/^FAILED *[0-9.]* ms */failed: /'
}

# --- a. Without the shim the demo's child fails: the check sees the bug.
# Stock gRPC also hangs in os.fork() now and then (core's prefork handler
# waits for an executor thread that waits for the fork); such a run shows
# nothing about the child, so up to three runs are made.
check_stock_demo() {
	local i out
	for i in 1 2 3; do
		run "demo-stock-$i" -- "$DEMO" "$TARGET"
		hung || break
	done
	out=$OUT/demo-stock-$i.out
	if hung; then
		fail "stock demo" "all 3 runs hung (stock gRPC's fork hang); the bug could not be observed" "$out" "$OUT/demo-stock-$i.err"
	elif [ "$STATUS" = 1 ] && grep -q '^child .*: RPC [0-9]* on a new channel *FAILED' "$out"; then
		pass "stock demo: without the shim the child's new channel fails ($(grep -m1 '^child .*: RPC [0-9]* on a new channel *FAILED' "$out" |
			sed 's/.*FAILED *[0-9.]* ms *//'))"
	else
		fail "stock demo" "without the shim the child's RPCs did not fail ($(describe_status)): the test cannot see the bug" \
			"$out" "$OUT/demo-stock-$i.err"
	fi
}

# --- b. With the shim the demo succeeds, every time, and the child's calls
# go over a connection of its own.
# A run that hangs inside os.fork() itself, before any child exists, is
# grpcio's own prefork hang (see check a) and is made again, 3 times at most
# over all runs.
demo_fork_hang() { hung && ! grep -q '^child ' "$1" && grep -q 'popen_fork.py", line [0-9]* in _launch' "$2"; }

check_demo() {
	local i out problems="" p c again=0
	for i in $(seq $DEMO_RUNS); do
		run "demo-shim-$i" LD_PRELOAD="$SHIM" -- "$DEMO" "$TARGET"
		out=$OUT/demo-shim-$i.out
		while demo_fork_hang "$out" "$OUT/demo-shim-$i.err" && [ $again -lt 3 ]; do
			again=$((again + 1))
			cp "$OUT/demo-shim-$i.err" "$OUT/demo-shim-$i.fork-hang-$again.err"
			run "demo-shim-$i" LD_PRELOAD="$SHIM" -- "$DEMO" "$TARGET"
		done
		p=$(peer parent "RPC 1 before fork" "$out")
		c=$(peer child "RPC 1 on a new channel" "$out")
		if [ "$STATUS" != 0 ]; then problems="run $i: $(describe_status)"
		elif ! demo_parent_ok "$out"; then problems="run $i: the parent's RPCs did not all succeed"
		elif ! demo_child_ok "$out"; then problems="run $i: the child's RPCs did not all succeed"
		elif ! grep -q '^child .*: RPC on the inherited channel *ok ' "$out"; then
			# The demo keeps no reference to its channel, only to the stub.
			problems="run $i: the child's RPC on the stub it inherited failed"
		elif [ -z "$p" ] || [ "$p" = "$c" ]; then problems="run $i: the child used the parent's connection ($c)"
		fi
		[ -z "$problems" ] || break
	done
	if [ -z "$problems" ]; then
		pass "demo: with the shim parent and child succeed, $DEMO_RUNS runs in a row$([ $again = 0 ] || echo "; $again run(s) made again after a hang inside os.fork()")"
	else
		fail "demo" "$problems" "$out" "$OUT/demo-shim-$i.err"
	fi
}

# --- c. The leak. With the shim the sink gets nothing; the default policy
# turns on grpcio's fork handling through the environment.
check_leak() {
	local problems fs dns
	leak_run leak-shim LD_PRELOAD="$SHIM"
	problems=$(leak_problems leak-shim)
	if [ -z "$problems" ]; then
		pass "leak: with the shim the sink receives 0 bytes (child's inherited channel: $(outcome "$OUT/leak-shim.out" 'RPC on the inherited channel'); new channel: $(outcome "$OUT/leak-shim.out" 'RPC on a new channel'))"
	else
		fail "leak" "$problems" "$OUT/leak-shim.out" "$OUT/leak-shim.err"
	fi
	fs=$(env_seen "$OUT/leak-shim.out" child GRPC_ENABLE_FORK_SUPPORT)
	dns=$(env_seen "$OUT/leak-shim.out" child GRPC_DNS_RESOLVER)
	if [ "$fs" = 1 ] && [ "$dns" = native ]; then
		pass "default policy: GRPC_ENABLE_FORK_SUPPORT=1 and GRPC_DNS_RESOLVER=native set for grpcio"
	else
		fail "default policy" "the child saw GRPC_ENABLE_FORK_SUPPORT=$fs GRPC_DNS_RESOLVER=$dns, expected 1 and native" "$OUT/leak-shim.out"
	fi
}

# Without the shim the child's gRPC writes its request into the sink. Up to
# three runs: stock gRPC hangs in os.fork() now and then, and now and then
# its post-fork work races the child's first connection (leak_client.py).
check_stock_leak() {
	local i markers
	for i in 1 2 3; do
		leak_run "leak-stock-$i"
		! hung && [ "$SINK_BYTES" -gt 0 ] && break
	done
	if [ "$SINK_BYTES" -gt 0 ]; then
		markers=$(grep -ao 'LEAKED-BY-[0-9]*-[a-z]*' "$SINK_DATA" | sort -u | paste -sd' ')
		pass "stock leak: without the shim the sink receives $SINK_BYTES bytes of the child's gRPC frames${markers:+, with its request payloads ($markers)}"
	else
		fail "stock leak" "without the shim the sink received nothing in 3 runs ($(describe_status)): the test cannot see the leak" \
			"$OUT/leak-stock-$i.out" "$OUT/leak-stock-$i.sink"
	fi
}

# --- d. GRPC_FORKSAFE_EMBEDDED=guard: descriptors guarded, environment
# untouched. The child's RPCs may fail, but cleanly, and nothing leaks.
check_guard() {
	local problems role var seen out
	LEAK_TARGET=$TARGET_IP leak_run leak-guard LD_PRELOAD="$SHIM" GRPC_FORKSAFE_EMBEDDED=guard
	problems=$(leak_problems leak-guard)
	for role in parent child; do
		for var in GRPC_ENABLE_FORK_SUPPORT GRPC_DNS_RESOLVER; do
			seen=$(env_seen "$OUT/leak-guard.out" $role $var)
			[ "$seen" = "<unset>" ] || problems+="the $role saw $var=$seen; "
		done
	done
	if [ -z "$problems" ]; then
		pass "guard: nothing leaks, environment untouched (child's inherited channel: $(outcome "$OUT/leak-guard.out" 'RPC on the inherited channel'); new channel: $(outcome "$OUT/leak-guard.out" 'RPC on a new channel'))"
	else
		fail "guard" "$problems" "$OUT/leak-guard.out" "$OUT/leak-guard.err"
	fi

	# The demo too: the parent stays healthy; the child ends by itself.
	run demo-guard LD_PRELOAD="$SHIM" GRPC_FORKSAFE_EMBEDDED=guard -- "$DEMO" "$TARGET_IP"
	out=$OUT/demo-guard.out
	if hung; then
		fail "guard demo" "$(describe_status)" "$out" "$OUT/demo-guard.err"
	elif ! demo_parent_ok "$out"; then
		fail "guard demo" "the parent's RPCs did not all succeed" "$out"
	elif ! grep -q '^parent .*: child [0-9]* exited with status [01]$' "$out"; then
		fail "guard demo" "the child did not end by itself" "$out" "$OUT/demo-guard.err"
	else
		pass "guard demo: the parent's RPCs succeed; the child's: $(grep -c '^child .*RPC [0-9]* on a new channel *ok' "$out") of 3 ok, the rest failed cleanly"
	fi
}

# --- e. The user's own GRPC_ENABLE_FORK_SUPPORT=0 wins over the default
# policy; the descriptors are guarded all the same and the parent is safe.
# The variable also turns off gRPC core's own fork handlers: the child is
# left with gRPC state it cannot use (it may hang in its RPCs until the
# client gives up on it), which is reported, not judged.
check_user_choice() {
	local problems="" role seen out=$OUT/leak-user.out
	leak_run leak-user LD_PRELOAD="$SHIM" GRPC_ENABLE_FORK_SUPPORT=0
	hung && problems+="client $(describe_status); "
	for role in parent child; do
		seen=$(env_seen "$out" $role GRPC_ENABLE_FORK_SUPPORT)
		[ "$seen" = 0 ] || problems+="the $role saw GRPC_ENABLE_FORK_SUPPORT=$seen; "
	done
	grep -q '^parent .*RPC 2 after fork.* ok ' "$out" || problems+="the parent's RPC after the fork failed; "
	[ "$SINK_BYTES" = 0 ] || problems+="the sink received $SINK_BYTES bytes; "
	if [ -z "$problems" ]; then
		pass "user's choice: GRPC_ENABLE_FORK_SUPPORT=0 is kept, the parent is fine, nothing leaks (child: $(
			sed -n 's/^parent .*: wait: child [0-9]* //p' "$out"))"
	else
		fail "user's choice" "$problems" "$out" "$OUT/leak-user.err"
	fi
}

# --- f. A fork while another thread reads a server stream. Two ways: the
# reading thread waits in Python for grpcio's channel thread and asks gRPC
# for each next message (often right as the fork begins: the same event lets
# the fork and the reader go on), or it waits inside gRPC itself for each
# message (grpcio's single-threaded unary-stream option; 200 ms between
# messages, so it is inside gRPC at the fork). Either way a thread inside gRPC
# makes core's fork handlers skip themselves, and then the child's first call
# on a new channel hangs: with the shim, the parent's stream and next RPC
# succeed and so do the child's RPCs on a channel of its own. Without the shim:
# reported, not judged.
stream_summary() {
	local out=$OUT/$1.out
	printf 'stream: %s; child: %s, new-channel RPCs ok: %s of 2; parent after: %s' \
		"$(sed -n 's/^parent .*: stream on the original channel: \(.*\), [0-9]* ms$/\1/p' "$out" | grep . || echo 'no end')" \
		"$(sed -n 's/^parent .*: wait: child [0-9]* //p' "$out" | grep . || echo 'not reported')" \
		"$(stream_child_calls "$out")" \
		"$(grep -q '^parent .*RPC after the stream.* ok ' "$out" && echo ok || echo failed)"
}
stream_child_calls() { grep -c '^child .*RPC [0-9]* on a new channel *ok' "$1"; }

# check_stream NAME WHAT [ARGS...]: stream_client.py ARGS, with and without the shim.
check_stream() {
	local name=$1 what=$2 problems=""
	shift 2
	run_forking "$name-shim" LD_PRELOAD="$SHIM" -- "$HERE/stream_client.py" "$TARGET" "$@"
	[ "$STATUS" = 0 ] || problems+="$(describe_status); "
	[ "$(stream_child_calls "$OUT/$name-shim.out")" = 2 ] || problems+="the child's RPCs on a new channel failed; "
	if [ -z "$problems" ]; then
		pass "$name: $what, with the shim the parent's stream delivers every message, its next RPC succeeds, and so do the child's ($(stream_summary "$name-shim")$(fork_hangs_note))"
	else
		fail "$name" "$problems$(stream_summary "$name-shim")" "$OUT/$name-shim.out" "$OUT/$name-shim.err"
	fi
	run_forking "$name-stock" -- "$HERE/stream_client.py" "$TARGET" "$@"
	echo "  (without the shim: $(describe_status); $(stream_summary "$name-stock"))"
}

# --- g. Programs started from a gRPC process get none of its descriptors.
check_exec() {
	mkdir -p "$OUT/exec-shim.d" "$OUT/exec-stock.d"
	run exec-shim LD_PRELOAD="$SHIM" -- "$HERE/exec_client.py" "$TARGET" "$HERE/list_fds.py" "$OUT/exec-shim.d"
	case $STATUS in
	0) pass "exec: with the shim programs started 5 ways get only 0, 1, 2 and the control fd" ;;
	2) fail "exec" "a started program did not get the control descriptor: the listing cannot be trusted" "$OUT/exec-shim.out" "$OUT/exec-shim.err" ;;
	*) fail "exec" "$(describe_status): $(grep -v 'other fds: none' "$OUT/exec-shim.out" | grep 'other fds' | paste -sd'|')" \
		"$OUT/exec-shim.out" "$OUT/exec-shim.err" ;;
	esac
	# Without the shim: reported, not judged.
	run exec-stock -- "$HERE/exec_client.py" "$TARGET" "$HERE/list_fds.py" "$OUT/exec-stock.d"
	echo "  (without the shim: $(describe_status); $(grep -c 'other fds: none' "$OUT/exec-stock.out") of 5 ways clean$(
		grep 'other fds: ' "$OUT/exec-stock.out" | grep -v 'other fds: none' | sed 's/^/; /' | paste -sd' '))"
}

# --- h. Calls on a channel the child inherited (inherit_client.py), each
# pattern without and with the shim. With it, every call of the child's (or
# the pool's workers') succeeds, the first included, and no connection
# carries the calls of two processes (the server's log). Without it: reported;
# it may fail only where the shim's run succeeds, which this check demands.
inherit_calls() { grep -cE '^(child|worker) .* ok ' "$1"; }

# run_forking NAME [VAR=VALUE...] -- inherit_client.py ARGS: run, made again
# (3 runs at most) while a run hangs inside os.fork() itself, before the new
# child exists: grpcio's own prefork hang (see check a), with or without the
# shim whenever core's fork handlers run, which says nothing about the child.
# The parent's fork, or a child's (pattern nested), is bracketed by
# "forking" and "forked" lines (a child that hangs is stopped by its parent,
# whose run then fails). Sets STATUS and FORK_HANGS.
hung_in_fork() {
	local who
	for who in parent child; do
		[ "$(grep -c "^$who .*: forking\$" "$1")" -gt "$(grep -c "^$who .*: forked\$" "$1")" ] && return 0
	done
	return 1
}

run_forking() {
	local name=$1 i
	shift
	FORK_HANGS=0
	for i in 1 2 3; do
		run "$name" "$@"
		[ "$STATUS" != 0 ] && hung_in_fork "$OUT/$name.out" || break
		FORK_HANGS=$((FORK_HANGS + 1))
		cp "$OUT/$name.err" "$OUT/$name.fork-hang-$i.err"
	done
}
fork_hangs_note() { [ "$FORK_HANGS" = 0 ] || echo "; $FORK_HANGS run(s) before hung inside os.fork()"; }

# check_inherited PATTERN EXPECTED [TARGET LOG VAR=VALUE...]: the server at
# TARGET (default the echo server) logs to LOG; VAR=VALUE for both runs.
check_inherited() {
	local pattern=$1 expected=$2 target=${3:-$TARGET} log=${4:-$SERVER_LOG} out problems="" n first conns stock
	local envs=("${@:5}")
	run_forking "inherit-$pattern-stock" "${envs[@]}" -- "$HERE/inherit_client.py" "$target" "$pattern" "inherit-$pattern-stock"
	stock="$(describe_status), $(inherit_calls "$OUT/inherit-$pattern-stock.out") of $expected child calls ok$(
		grep -m1 -E '^(child|worker) .* FAILED' "$OUT/inherit-$pattern-stock.out" | sed 's/.*FAILED *[0-9.]* ms */, first failure: /')"
	run_forking "inherit-$pattern-shim" LD_PRELOAD="$SHIM" "${envs[@]}" -- "$HERE/inherit_client.py" "$target" "$pattern" \
		"inherit-$pattern-shim"
	out=$OUT/inherit-$pattern-shim.out
	[ "$STATUS" = 0 ] || problems+="$(describe_status); "
	n=$(inherit_calls "$out")
	first=$(grep -m1 -E '^(child|worker) .* FAILED' "$out" | sed 's/.*FAILED *[0-9.]* ms *//')
	[ "$n" = "$expected" ] || problems+="$n of $expected child calls succeeded${first:+ (first failure: $first)}; "
	grep -q '^parent .* FAILED' "$out" && problems+="a call of the parent's failed; "
	conns=$(check_connections_per_pid "inherit-$pattern-shim" "$log")
	problems+=$conns
	grep -q "^[0-9]* inherit-$pattern-shim:\(child\|worker\):" "$log" ||
		problems+="the server's log has no call of the child's; "
	if [ -z "$problems" ]; then
		pass "inherited $pattern: with the shim $n of $expected child calls succeed, on connections of their own$(fork_hangs_note) (without: $stock)"
	else
		fail "inherited $pattern" "$problems (without the shim: $stock)" "$out" "$OUT/inherit-$pattern-shim.err"
	fi
}

# The same over TLS with call credentials, against a TLS echo server of its own.
check_inherited_tls() {
	local dir=$OUT/tls-server main_pid=$ECHO_PID main_port=$ECHO_PORT tls_port
	mkdir -p "$dir"
	if ! make_tls_cert "$dir"; then
		fail "inherited tls" "openssl could not make a certificate" "$dir/openssl.log"
		return
	fi
	if ! echo_server_start "$dir" with_tls_files "$dir"; then
		ECHO_PID=$main_pid ECHO_PORT=$main_port
		fail "inherited tls" "the TLS echo server did not start" "$dir/server.err"
		return
	fi
	# The plain server stays the one ECHO_PID names (the EXIT trap stops it).
	local tls_pid=$ECHO_PID
	tls_port=$ECHO_PORT ECHO_PID=$main_pid ECHO_PORT=$main_port
	check_inherited tls 3 "localhost:$tls_port" "$dir/calls.log" TLS_ROOT="$dir/cert.pem"
	echo_server_stop "$tls_pid"
}

# --- i. GRPC_FORKSAFE_MODE=close: the layer closes inherited channels as
# grpcio's fork handling would, so the child's calls on one fail at once
# (ValueError, closed channel) and the parent's go on.
check_close_mode() {
	local out=$OUT/inherit-close.out n
	run_forking inherit-close LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=close -- "$HERE/inherit_client.py" "$TARGET" used inherit-close
	n=$(grep -c '^child .*FAILED .*ValueError: Cannot invoke RPC on closed channel!' "$out")
	if hung; then
		fail "close mode" "$(describe_status)" "$out" "$OUT/inherit-close.err"
	elif [ "$n" = 3 ] && ! grep -q '^parent .* FAILED' "$out"; then
		pass "close mode: the child's 3 calls on its inherited channel fail at once (closed channel); the parent's succeed$(fork_hangs_note)"
	else
		fail "close mode" "expected the child's 3 calls to fail on a closed channel, $n did" "$out" "$OUT/inherit-close.err"
	fi
}

# --- j. The user's sitecustomize and PYTHONPATH, with the layer in between:
# the user's runs, PYTHONPATH is what the user set (or unset) in the program
# and in what it starts, the layer's directory is off sys.path; and the
# layer works all the same.
site_seen() { sed -n "s/^$2: $3=//p" "$1" | head -1; }

check_site() {
	local user=$OUT/usersite problems="" out=$OUT/site-user.out who
	mkdir -p "$user"
	printf 'import sys
print("user sitecustomize ran", file=sys.stderr)
' >"$user/sitecustomize.py"
	run site-user LD_PRELOAD="$SHIM" PYTHONPATH="$user:$STUBS:$HERE" -- "$HERE/site_client.py"
	[ "$STATUS" = 0 ] || problems+="$(describe_status); "
	grep -q '^user sitecustomize ran$' "$OUT/site-user.err" || problems+="the user's sitecustomize did not run; "
	[ "$(site_seen "$out" self sitecustomize)" = "$user/sitecustomize.py" ] ||
		problems+="sitecustomize is $(site_seen "$out" self sitecustomize), not the user's; "
	[ "$(site_seen "$out" self PYTHONPATH)" = "$user:$STUBS:$HERE" ] ||
		problems+="the program saw PYTHONPATH=$(site_seen "$out" self PYTHONPATH); "
	[ "$(site_seen "$out" exec PYTHONPATH)" = "$user:$STUBS:$HERE" ] ||
		problems+="a started program saw PYTHONPATH=$(site_seen "$out" exec PYTHONPATH); "
	grep -q '^self: layer on sys.path: no$' "$out" || problems+="the layer's directory is left on sys.path; "

	# PYTHONPATH unset by the user: unset again for the program (env -u
	# after run's own setting).
	timeout -s ABRT -k 5 $LIMIT env -u PYTHONPATH LD_PRELOAD="$SHIM" PYTHONDONTWRITEBYTECODE=1 "$PYTHON" \
		"$HERE/site_client.py" </dev/null >"$OUT/site-unset.out" 2>"$OUT/site-unset.err"
	STATUS=$?
	[ "$STATUS" = 0 ] || problems+="unset: $(describe_status); "
	for who in self exec; do
		[ "$(site_seen "$OUT/site-unset.out" $who PYTHONPATH)" = "<unset>" ] ||
			problems+="unset: $who saw PYTHONPATH=$(site_seen "$OUT/site-unset.out" $who PYTHONPATH); "
	done

	run_forking inherit-site LD_PRELOAD="$SHIM" PYTHONPATH="$user:$STUBS:$HERE" -- "$HERE/inherit_client.py" "$TARGET" used inherit-site
	[ "$STATUS" = 0 ] || problems+="with the user's sitecustomize the child's inherited channel failed ($(describe_status)); "
	if [ -z "$problems" ]; then
		pass "sitecustomize: the user's runs, PYTHONPATH is the user's in the program and what it starts (set and unset), inherited channels renewed"
	else
		fail "sitecustomize" "$problems" "$out" "$OUT/site-user.err"
	fi
}

# --- k. A grpcio the layer does not know (a stand-in package calling itself
# 1.99.0): nothing patched, one warning line, none at GRPC_FORKSAFE_LOG=error.
check_other_grpcio() {
	local fake=$OUT/fake-grpcio problems="" n
	mkdir -p "$fake/grpc/_cython"
	printf 'from grpc._cython import cygrpc\nfrom grpc import _channel\n' >"$fake/grpc/__init__.py"
	printf '__version__ = "1.99.0"\n' >"$fake/grpc/_grpcio_metadata.py"
	printf 'class Channel:\n    pass\n' >"$fake/grpc/_channel.py"
	: >"$fake/grpc/_cython/__init__.py"
	printf 'class _ForkState:\n    fork_handler_registered = False\n_fork_state = _ForkState()\n' \
		>"$fake/grpc/_cython/cygrpc.py"
	run other-grpcio LD_PRELOAD="$SHIM" PYTHONPATH="$fake" -- -c 'import grpc._channel as c, grpc._cython.cygrpc as g
print(c.Channel.__init__ is object.__init__, g._fork_state.fork_handler_registered)'
	[ "$STATUS" = 0 ] || problems+="$(describe_status); "
	grep -qx 'True False' "$OUT/other-grpcio.out" || problems+="the stand-in's Channel or fork state was changed; "
	n=$(grep -c 'grpc-forksafe: ' "$OUT/other-grpcio.err")
	[ "$n" = 1 ] && grep -q 'grpc-forksafe: warn: .*grpcio 1.99.0, not 1.51' "$OUT/other-grpcio.err" ||
		problems+="expected one warning naming grpcio 1.99.0, got $n line(s); "
	run other-grpcio-quiet LD_PRELOAD="$SHIM" PYTHONPATH="$fake" GRPC_FORKSAFE_LOG=error -- -c 'import grpc'
	grep -q 'grpc-forksafe: ' "$OUT/other-grpcio-quiet.err" && problems+="GRPC_FORKSAFE_LOG=error still printed a warning; "
	if [ -z "$problems" ]; then
		pass "other grpcio: a grpcio other than 1.51 is left alone, with one warning ($(sed 's/.*grpc-forksafe: //' "$OUT/other-grpcio.err"))"
	else
		fail "other grpcio" "$problems" "$OUT/other-grpcio.out" "$OUT/other-grpcio.err"
	fi
}

# --- k. A process that serves forks: children that never use gRPC,
# preexec_fn children and client children (new channels, inherited channels,
# pool workers) all succeed with the shim, wherever they succeed without it
# too, while another process calls the server through every fork; no child
# holds the parent's listening socket; the parent still serves.
serving_summary() {
	local out=$OUT/$1.out
	printf '%s, %s of %s children ok, %s failed call(s), load on its server: %s, slowest fork %s' "$(describe_status)" \
		"$(grep -cE '(child [0-9]+ exited with status 0|6 of 6 tasks succeeded)' "$out")" "$2" \
		"$(grep -c ' FAILED ' "$out")" \
		"$(sed -n 's/^parent .*: load on its own server: //p' "$out" | grep . || echo 'not reported')" \
		"$(sed -n 's/^parent .*: slowest fork: //p' "$out" | grep . || echo 'not reached')"
}

check_serving() {
	local pattern=$1 children=$2 out problems="" stock
	run "serving-$pattern-stock" -- "$HERE/serving_client.py" "$TARGET" "$pattern"
	local stock_status=$STATUS
	stock="$(serving_summary "serving-$pattern-stock" "$children")"
	grep -q 'listener held by a child' "$OUT/serving-$pattern-stock.out" && stock+=", a child held the listener"
	run "serving-$pattern-shim" LD_PRELOAD="$SHIM" -- "$HERE/serving_client.py" "$TARGET" "$pattern"
	out=$OUT/serving-$pattern-shim.out
	[ "$STATUS" = 0 ] || problems+="$(serving_summary "serving-$pattern-shim" "$children"); "
	[ "$stock_status" = 0 ] && [ "$STATUS" != 0 ] && problems+="worse than without the shim; "
	grep -q 'listener held by a child' "$out" && problems+="a child holds the parent's listening socket; "
	grep -q '^parent .*own server after the children *ok ' "$out" || problems+="the parent no longer serves; "
	grep -q 'grpc-forksafe: ' "$OUT/serving-$pattern-shim.err" && problems+="the shim printed a line; "
	if [ -z "$problems" ]; then
		pass "serving $pattern: with the shim $(serving_summary "serving-$pattern-shim" "$children") (without: $stock)"
	else
		fail "serving $pattern" "$problems (without the shim: $stock)" "$out" "$OUT/serving-$pattern-shim.err"
	fi
}

# --- l. gunicorn --preload with 3 sync workers, started as users start it
# (scripts/gunicorn.sh); the application makes a channel at import, and one
# RPC per request on it. 200 requests: with the shim every one succeeds,
# each worker on connections of its own; with and without an RPC in the
# master before it forks; each also run without the shim.
check_gunicorn() {
	local variant=$1 rpc=$2 problems="" stock http note=""
	if [ ! -x "$GUNICORN" ]; then
		fail "gunicorn $variant" "$GUNICORN is missing (Debian's gunicorn package; scripts/ensure-deps test)"
		return
	fi
	gunicorn_run "gunicorn-$variant-stock" "$rpc"
	stock="$(cat "$OUT/gunicorn-$variant-stock.http")${GUNICORN_PROBLEM:+; $GUNICORN_PROBLEM}"
	[ "$GUNICORN_FORK_HANGS" = 0 ] || note+="; $GUNICORN_FORK_HANGS run(s) without the shim hung inside os.fork()"
	gunicorn_run "gunicorn-$variant-shim" "$rpc" env LD_PRELOAD="$SHIM"
	[ "$GUNICORN_FORK_HANGS" = 0 ] || note+="; $GUNICORN_FORK_HANGS run(s) with the shim hung inside os.fork()"
	problems+=$GUNICORN_PROBLEM
	[ "$ST" = 0 ] || problems+="gunicorn's exit status $ST; "
	http=$(cat "$OUT/gunicorn-$variant-shim.http")
	[ "${http%%, answered*}" = "$GUNICORN_REQUESTS ok, 0 failed, 0 not sent" ] || problems+="HTTP: '$http'; "
	problems+=$(check_connections_per_pid "gunicorn-$variant-shim")
	grep -q "^[0-9]* gunicorn-$variant-shim:worker:" "$SERVER_LOG" || problems+="the server's log has no call of a worker's; "
	grep -q 'grpc-forksafe: ' "$OUT/gunicorn-$variant-shim.err" && problems+="the shim printed a line; "
	if [ -z "$problems" ]; then
		pass "gunicorn $variant: with the shim $http, on connections of their own$note (without: $stock)"
	else
		fail "gunicorn $variant" "$problems (without the shim: $stock)" "$OUT/gunicorn-$variant-shim.err" \
			"$OUT/gunicorn-$variant-shim.http-err"
	fi
}

# --- m. grpc.aio, which grpcio 1.51 does not fork with: the parent's aio
# channel keeps working with the shim, and the child does no worse than
# without it.
aio_child() { sed -n 's/^parent .*: wait: child [0-9]* //p' "$OUT/$1.out" | grep . || echo 'not reported'; }

check_aio() {
	local problems="" stock stock_child
	run aio-stock -- "$HERE/aio_client.py" "$TARGET"
	stock="$(describe_status), child: $(aio_child aio-stock)"
	stock_child=$(aio_child aio-stock)
	run aio-shim LD_PRELOAD="$SHIM" -- "$HERE/aio_client.py" "$TARGET"
	[ "$STATUS" = 0 ] || problems+="the parent's aio calls failed ($(describe_status)); "
	[ "$stock_child" = "exited with status 0" ] && [ "$(aio_child aio-shim)" != "exited with status 0" ] &&
		problems+="the child did worse than without the shim ($(aio_child aio-shim)); "
	if [ -z "$problems" ]; then
		pass "aio: with the shim the parent's aio channel keeps working; child: $(aio_child aio-shim) (without: $stock)"
	else
		fail "aio" "$problems (without the shim: $stock)" "$OUT/aio-shim.out" "$OUT/aio-shim.err"
	fi
}

check_stock_demo
check_demo
check_leak
check_stock_leak
check_guard
check_user_choice
check_stream stream "a thread reading a stream at the fork" --messages $STREAM_MESSAGES
check_stream stream-in-core "a thread waiting inside gRPC for a stream's next message at the fork" \
	--single-threaded --interval-ms 200 --messages 10
check_exec
check_inherited unused 3
check_inherited used 3
check_inherited kinds 3
check_inherited pool 200
check_inherited executor 200
check_inherited nested 4
check_inherited_tls
check_inherited in-progress 4
check_close_mode
check_site
check_other_grpcio
check_aio
check_serving quiet 3
check_serving preexec 3
check_serving new 3
check_serving inherited 3
check_serving pool 1
GUNICORN_OUT=$OUT GUNICORN_TARGET=$TARGET GUNICORN_STUBS=$STUBS GUNICORN_LIMIT=60 GUNICORN_REQUESTS=200
check_gunicorn import-channel 0
check_gunicorn import-rpc 1
summary python
