#!/bin/bash
# The fork storm, large: fork-client fork-storm with 1000 forks while 8 threads
# make RPCs nonstop, with the shim preloaded, against an echo server, judged
# like every integration scenario (tests/integration/run.sh): every RPC of the
# parent and of every child succeeded, every child exited 0, the server saw
# each call on a connection of its caller's own, the shim logged every fork
# once and ran core's fork handlers at each, and never gave up waiting for
# threads to leave gRPC. Prints the storm's rate in forks/s.
#
# Usage: stress.sh --shim SO --server BIN --client BIN --out DIR
# Environment: STRESS_FORKS (1000), STRESS_THREADS (8), STRESS_TIMEOUT,
#   seconds the storm may take (900).
# Prints "PASS name" or "FAIL name: reason" per check, then "N passed, M failed";
# exits non-zero if any check failed.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
parse_args "$@"
FORKS_N=${STRESS_FORKS:-1000}
THREADS_N=${STRESS_THREADS:-8}
LIMIT=${STRESS_TIMEOUT:-900}
S=fork-storm RUN=stress

start_server $((LIMIT + 60))
echo "echo-server on 127.0.0.1:$PORT; output in $OUT"
scenario_command "$S" "$RUN"
CMD+=(--forks "$FORKS_N" --threads "$THREADS_N")
echo "\$ LD_PRELOAD=$SHIM GRPC_FORKSAFE_LOG=info ${CMD[*]}" | sed "s|$PWD/||g"
started=$(date +%s.%N)
timeout -k 5 "$LIMIT" env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_LOG \
  -u GRPC_FORKSAFE_QUIESCE_MS -u GRPC_FORKSAFE_LOG_FILE \
  LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=info "${CMD[@]}" >"$OUT/$RUN.out" 2>"$OUT/$RUN.err"
STATUS=$?
elapsed=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
out=$OUT/$RUN.out err=$OUT/$RUN.err

storm=$(grep -E "^parent pid=[0-9]+ $RUN:storm: " "$out")
threads=$(grep -E "^parent pid=[0-9]+ $RUN:parent-threads: " "$out")
echo "${storm:-no storm line from the client} (whole run ${elapsed} s)"
[ -z "$threads" ] || echo "$threads"

# verdict NAME PROBLEMS [EVIDENCE FILE...]: one PASS or FAIL line.
verdict() {
  if [ -z "$2" ]; then pass "$1"; else fail "$1" "${2%; }" "${@:3}"; fi
}

p=""
[ "$STATUS" -eq 0 ] || p+="client $(describe_exit "$STATUS" "$LIMIT"); "
grep -q "^RESULT .*: ok$" "$out" || p+="no 'RESULT ... ok' line; "
verdict "fork-storm: the client finished and reported success" "$p" "$out" "$err"

n_ok=$(grep -cE "^parent pid=[0-9]+ child [0-9]+ exited 0: ok$" "$out")
n_bad=$(grep -cE "^parent pid=[0-9]+ child [0-9]+ .*: FAIL$" "$out")
p=""
[ "$n_ok" -eq "$FORKS_N" ] || p+="$n_ok of $FORKS_N children exited 0; "
[ "$n_bad" -eq 0 ] || p+="$n_bad children failed, e.g. $(grep -m1 -E "^parent pid=[0-9]+ child [0-9]+ .*: FAIL$" "$out"); "
verdict "fork-storm: every one of $FORKS_N children exited 0" "$p"

n_rpc_fail=$(grep -cE "^[a-z]+ pid=[0-9]+ $RUN:[^ ]+: FAIL" "$out")
p=""
[ "$n_rpc_fail" -eq 0 ] || p+="$n_rpc_fail RPCs failed, e.g. $(grep -m1 -E "^[a-z]+ pid=[0-9]+ $RUN:[^ ]+: FAIL" "$out"); "
[[ "$threads" == *": ok "* ]] || p+="the threads' RPCs: ${threads:-no line}; "
verdict "fork-storm: no RPC failed, in the parent's $THREADS_N threads or in any child" "$p"

calls=$(sed -n 's/^EXPECT-CALLS //p' "$out")
p=""
if [ -z "$calls" ]; then
  p+="no 'EXPECT-CALLS' line; "
else
  p+=$(check_server_log "$RUN" "$calls" "" "$SCENARIO_LOG")
fi
p+=$(check_connections_per_pid "$RUN" "$SCENARIO_LOG")
verdict "fork-storm: the server saw every call (${calls:-?}), each process on its own connections" "$p"

n_fork=$(count_shim_lines "fork: child" "$err")
n_ran=$(count_shim_lines "fork: child .*$CORE_RAN_WORDS" "$err")
n_quiesce=$(count_shim_lines "quiesce:" "$err")
p=""
[ "$n_fork" -eq "$FORKS_N" ] || p+="shim logged 'fork: child' $n_fork times for $FORKS_N forks; "
[ "$n_ran" -eq "$FORKS_N" ] || p+="the fork line said '$CORE_RAN_WORDS' at $n_ran of $FORKS_N forks; "
[ "$n_quiesce" -eq 0 ] || p+="the shim gave up waiting for threads $n_quiesce times: $(grep -m1 'grpc-forksafe: warn: quiesce:' "$err"); "
verdict "fork-storm: the shim saw $FORKS_N forks and each said '$CORE_RAN_WORDS'" "$p"

leftovers=$(reap_leftovers "$out" "$err")
p=""
[ -z "$leftovers" ] || p+="processes still running after the run (hung), killed: ${leftovers% }; "
verdict "fork-storm: no process left behind" "$p"

stop_server
summary
