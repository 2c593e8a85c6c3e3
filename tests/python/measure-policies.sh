#!/bin/bash
# Which default suits gRPC compiled into Python's grpcio: runs the Python
# demo (demo/fork_demo.py) N times under each of five settings and prints, per
# setting, in how many runs the parent's and the child's RPCs (on their own
# channels) all succeeded, how many of the child's RPCs succeeded in all, how
# many runs hung (stopped after 30 s), the mean wall time of the runs that
# ended, and what the child's RPC on its inherited channel did. Not part of
# `make test`: it measures, it does not judge.
#
# Then a second table: the busy patterns of tests/python/run.sh (a channel
# used before the fork, a child that forks again, a thread reading a stream
# at the fork (waiting in Python, or inside gRPC), a process running a
# grpc.server forking quiet, preexec_fn and client children), M runs each per
# setting, counted as ok (exit status 0), failed or hung.
#
# Usage: tests/python/measure-policies.sh [--runs N] [--pattern-runs M] [--build DIR]
#   (`make measure-python` builds what it needs and runs it)
# Settings:
#   plain           no shim
#   shim-reset      the shim, default policy (GRPC_FORKSAFE_EMBEDDED=reset)
#   shim-guard      the shim, GRPC_FORKSAFE_EMBEDDED=guard
#   fork+native     no shim; GRPC_ENABLE_FORK_SUPPORT=1 GRPC_DNS_RESOLVER=native
#   fork-only       no shim; GRPC_ENABLE_FORK_SUPPORT=1
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RUNS=20
PATTERN_RUNS=5
BUILD=build
while [ $# -gt 0 ]; do
	case $1 in
	--runs) RUNS=$2; shift 2 ;;
	--pattern-runs) PATTERN_RUNS=$2; shift 2 ;;
	--build) BUILD=$2; shift 2 ;;
	*) echo "usage: measure-policies.sh [--runs N] [--pattern-runs M] [--build DIR]" >&2; exit 2 ;;
	esac
done
BUILD=$(cd "$BUILD" && pwd) || exit 2
PYTHON=${PYTHON:-/usr/bin/python3}
DEMO=$HERE/../../demo/fork_demo.py
SHIM=$BUILD/libgrpc_forksafe.so
# RPCs the demo's child makes on its new channel (fork_demo.py's default).
CHILD_RPCS=3
# A demo run needs at most ~21 s (2 s deadline per RPC, 5 s grace for the
# child); one that takes longer has hung.
RUN_TIMEOUT=30

tmp=$(mktemp -d)
. "$HERE/../../scripts/echo-server.sh"
ECHO_SERVER_BIN=$BUILD/echo-server
echo_server_stop_on_exit "$tmp"
echo_server_start "$tmp" || exit 2
target=localhost:$ECHO_PORT

# measure NAME [VAR=VALUE...]: RUNS demo runs with that environment; prints
# one row of the table.
measure() {
	local name=$1 i start end rc out parent=0 child=0 child_rpcs=0 hung=0 total_ms=0 ended=0
	shift
	for i in $(seq "$RUNS"); do
		out=$tmp/$name.$i.out
		start=$(date +%s%N)
		# env(1) applies the preload, so timeout(1) itself runs without the
		# shim; settings from the caller's environment are not part of it.
		timeout -k 2 $RUN_TIMEOUT env -u LD_PRELOAD -u GRPC_FORKSAFE_EMBEDDED -u GRPC_ENABLE_FORK_SUPPORT \
			-u GRPC_DNS_RESOLVER -u GRPC_FORKSAFE_MODE PYTHONPATH="$BUILD/python" "$@" \
			"$PYTHON" "$DEMO" "$target" >"$out" 2>&1
		rc=$?
		end=$(date +%s%N)
		# A hung run's time is the time limit's; it is counted apart.
		if [ $rc = 124 ] || [ $rc = 137 ]; then
			hung=$((hung + 1))
		else
			total_ms=$((total_ms + (end - start) / 1000000))
			ended=$((ended + 1))
		fi
		grep -qE '^parent \(pid [0-9]+\): ([0-9]+) of \1 RPCs succeeded' "$out" && parent=$((parent + 1))
		grep -qE '^child +\(pid [0-9]+\): ([0-9]+) of \1 RPCs on the new channel succeeded' "$out" &&
			grep -q '^parent .*: child [0-9]* exited with status 0$' "$out" && child=$((child + 1))
		child_rpcs=$((child_rpcs + $(grep -c '^child .*: RPC [0-9]* on a new channel *ok ' "$out")))
	done
	# The inherited channel's outcomes, most frequent first: "ok" or the
	# failure's status, "none" where the child never got that far.
	local inherited
	inherited=$(for i in $(seq "$RUNS"); do
		sed -n 's/^child .*RPC on the inherited channel *\(ok\|FAILED *[0-9.]* ms *\)\([A-Za-z_]*\).*/\1\2/p' \
			"$tmp/$name.$i.out" | sed 's/^FAILED *[0-9.]* ms */failed /' | grep . || echo none
	done | sort | uniq -c | sort -rn | awk '{ n = $1; $1 = ""; printf "%s%d×%s", sep, n, $0; sep = ", " }')
	printf '%-12s %6s %9s %9s %11s %5s %9.2f s  %s\n' "$name" "$RUNS" "$parent" "$child" \
		"$child_rpcs/$((RUNS * CHILD_RPCS))" "$hung" \
		"$(echo "$total_ms $ended" | awk '{ print $2 ? $1 / $2 / 1000 : 0 }')" "$inherited"
}

echo "Python demo, $RUNS runs per setting, target $target"
printf '%-12s %6s %9s %9s %11s %5s %11s  %s\n' setting runs parent-ok child-ok child-RPCs hung "mean time" \
	"child's RPC on the inherited channel"
measure plain
measure shim-reset LD_PRELOAD="$SHIM"
measure shim-guard LD_PRELOAD="$SHIM" GRPC_FORKSAFE_EMBEDDED=guard
measure fork+native GRPC_ENABLE_FORK_SUPPORT=1 GRPC_DNS_RESOLVER=native
measure fork-only GRPC_ENABLE_FORK_SUPPORT=1

# pattern NAME SCRIPT ARGS... -- [VAR=VALUE...]: PATTERN_RUNS runs of a test
# program under one setting; prints "ok/failed/hung".
pattern() {
	local name=$1 args=() i rc ok=0 failed=0 hung=0
	shift
	while [ "$1" != "--" ]; do args+=("$1"); shift; done
	shift
	for i in $(seq "$PATTERN_RUNS"); do
		timeout -k 2 40 env -u LD_PRELOAD -u GRPC_FORKSAFE_EMBEDDED -u GRPC_ENABLE_FORK_SUPPORT \
			-u GRPC_DNS_RESOLVER -u GRPC_FORKSAFE_MODE PYTHONPATH="$BUILD/python:$HERE" PYTHONDONTWRITEBYTECODE=1 \
			"$@" "$PYTHON" "${args[@]}" >"$tmp/$name.$i.out" 2>&1 </dev/null
		rc=$?
		# stream_client.py judges only the parent: its child must end well too.
		[ $rc = 0 ] && grep -q ': wait: child [0-9]* ' "$tmp/$name.$i.out" &&
			! grep -q ': wait: child [0-9]* exited with status 0$' "$tmp/$name.$i.out" && rc=1
		case $rc in 0) ok=$((ok + 1)) ;; 124|137) hung=$((hung + 1)) ;; *) failed=$((failed + 1)) ;; esac
		# A hung child that outlived its parent goes too.
		pkill -KILL -f "$HERE/$(basename "${args[0]}")" 2>/dev/null
	done
	printf '%s/%s/%s' "$ok" "$failed" "$hung"
}

echo
echo "Busy patterns, $PATTERN_RUNS runs per setting: ok/failed/hung"
printf '%-18s %12s %12s %12s %12s\n' pattern plain shim-reset shim-guard fork+native
for p in "used:inherit_client.py used" "nested:inherit_client.py nested" "stream:stream_client.py --messages 20" \
	"stream-in-core:stream_client.py --single-threaded --interval-ms 200 --messages 10" \
	"server-quiet:serving_client.py quiet" "server-preexec:serving_client.py preexec" \
	"server-new:serving_client.py new" "server-inherited:serving_client.py inherited"; do
	name=${p%%:*} cmd=${p#*:}
	script=$HERE/${cmd%% *} rest=${cmd#* }
	# inherit_client.py takes TARGET PATTERN RUN; the others TARGET ARGS.
	# shellcheck disable=SC2086 # rest is words
	if [ "${cmd%% *}" = inherit_client.py ]; then set -- "$script" "$target" $rest "measure-$name"; else set -- "$script" "$target" $rest; fi
	printf '%-18s %12s %12s %12s %12s\n' "$name" \
		"$(pattern "$name-plain" "$@" --)" \
		"$(pattern "$name-reset" "$@" -- LD_PRELOAD="$SHIM")" \
		"$(pattern "$name-guard" "$@" -- LD_PRELOAD="$SHIM" GRPC_FORKSAFE_EMBEDDED=guard)" \
		"$(pattern "$name-fork" "$@" -- GRPC_ENABLE_FORK_SUPPORT=1 GRPC_DNS_RESOLVER=native)"
done
