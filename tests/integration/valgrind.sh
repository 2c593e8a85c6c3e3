#!/bin/bash
# Memcheck over fork-client scenarios with the shim preloaded, in every process
# (forked children inherit memcheck; exec'd programs are traced too). A check
# fails on any memcheck error in any process (invalid access, use of
# uninitialised memory, a definite leak not in valgrind.supp), on a definite
# leak whose stack passes through the shim, on a scenario failure, or when the
# shim's log lines show that it was not loaded.
#
# Usage: valgrind.sh --shim SO --server BIN --client BIN --out DIR
#                    [--capi BIN] [--control LIB] [SCENARIO...]
#   --control  libmemcheck_control.so: first check that memcheck, set up like
#              this, fails a run that has an invalid read and a definite leak.
# Environment: FORKSAFE_VALGRIND_TIMEOUT, seconds one scenario may take (600).
# Output format as run.sh: "PASS name" / "FAIL name: reason", "N passed, M failed".

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/../../scripts/memcheck-logs.sh"
parse_args "$@"
LIMIT=${FORKSAFE_VALGRIND_TIMEOUT:-600}
VG_ERROR=99   # memcheck's exit status when it found errors; no scenario uses it
SUPP=$HERE/valgrind.supp

# The scenarios that matter most for memory: the child's own channel, the
# inherited one used and then released, both processes busy at once; inherited
# channels through generations, with their arguments, TLS and call
# credentials, connectivity watchers and completion queues; a fork while 8
# threads are in the middle of RPCs (smaller: 20 RPCs per thread); a fork with
# calls in flight on another channel (asynchronous, and a stream being read),
# finished afterwards.
[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=(new-channel inherited-stub inherited-release parent-during twenty-channels
                                         generations channel-api channel-args async-cq tls-composite c-channel-api
                                         sync-threads inflight-async inflight-sync-stream)
# Arguments a scenario gets under memcheck only, and what they change.
declare -A VG_ARGS=([sync-threads]="--rpcs 150")
CALLS["sync-threads"]="parent=1204 child=4"
MUST_SAY["sync-threads"]='^parent pid=[0-9]+ RUN:parent-threads: 1200 RPCs ok from 8 threads$'
runnable_scenarios

command -v valgrind >/dev/null || { echo "FAIL valgrind: not installed"; summary; exit 1; }

# Runs the command $3... under memcheck with LD_PRELOAD=$2, one log per
# process in $1/memcheck.<pid>, stdout and stderr in $1/client.*. Returns the
# client's (or memcheck's, or timeout's) exit status.
memcheck() {
  local dir=$1 preload=$2
  shift 2
  mkdir -p "$dir"
  # valgrind puts its own preload libraries in front of LD_PRELOAD and keeps
  # the rest, so the client loads the shim. RPC deadlines are 10 times the
  # usual: memcheck runs programs some 30 times slower.
  timeout -k 10 "$LIMIT" env -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_QUIESCE_MS -u GRPC_FORKSAFE_LOG_FILE \
    LD_PRELOAD="$preload" GRPC_FORKSAFE_LOG=info \
    valgrind --tool=memcheck --trace-children=yes --leak-check=full \
      --errors-for-leak-kinds=definite --error-exitcode=$VG_ERROR \
      --suppressions="$SUPP" --num-callers=40 --fullpath-after= --log-file="$dir/memcheck.%p" \
      "$@" --deadline-ms 20000 \
      >"$dir/client.out" 2>"$dir/client.err"
}

# The same memcheck run, with a library preloaded next to the shim that
# makes an invalid read and leaks a block, must fail: proof that this setup
# catches both.
check_control() {
  local dir=$OUT/control problems=""
  memcheck "$dir" "$SHIM:$CONTROL" "$CLIENT" rpc --target "127.0.0.1:$PORT" --run vg-control \
    --role control --tag control-1
  local status=$?
  [ "$status" -eq "$VG_ERROR" ] || problems+="memcheck exited $status, not $VG_ERROR; "
  grep -q "Invalid read of size 1" "$dir"/memcheck.* || problems+="invalid read not reported; "
  grep -A4 "definitely lost in loss record" "$dir"/memcheck.* | grep -q leak_one_block ||
    problems+="definite leak not reported; "
  local name="valgrind control: an invalid read and a leak in a preloaded library are caught"
  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$dir"/memcheck.*; fi
}

check_scenario() {
  local s=$1 problems="" n leftovers
  if [ -z "${CALLS[$s]+x}" ]; then
    fail "$s" "no scenario checked under valgrind by that name"
    return
  fi
  local dir=$OUT/$s out=$OUT/$s/client.out err=$OUT/$s/client.err
  scenario_command "$s" "vg-$s"
  # shellcheck disable=SC2206 # VG_ARGS holds words to split
  CMD+=(${VG_ARGS[$s]:-})
  memcheck "$dir" "$SHIM" "${CMD[@]}"
  local status=$?

  case "$status" in
    0) ;;
    "$VG_ERROR") problems+="memcheck found errors in the parent; " ;;
    *) problems+="client $(describe_exit "$status" "$LIMIT"); " ;;
  esac
  # Every process has its own log. One without a summary was killed or hung.
  problems+=$(memcheck_logs_problems "$dir")

  # The shim must really have been loaded under valgrind: its parent-side fork
  # line once, and its child-side line from the child.
  n=$(count_shim_lines "fork: child" "$err")
  [ "$n" -eq "${FORKS[$s]:-1}" ] ||
    problems+="shim logged 'fork: child' $n times for ${FORKS[$s]:-1} forks (not loaded?); "
  [ "$(count_shim_lines "child: " "$err")" -gt 0 ] || problems+="no shim log line from the child; "
  problems+=$(check_must_say "$s" "$out" "vg-$s")
  problems+=$(check_server_log "vg-$s" "${CALLS[$s]}" "${DISTINCT[$s]:-}" "$SCENARIO_LOG")
  problems+=$(check_connections_per_pid "vg-$s" "$SCENARIO_LOG")
  leftovers=$(reap_leftovers "$out" "$err")
  [ -z "$leftovers" ] || problems+="processes still running after the run (hung), killed: ${leftovers% }; "

  if [ -z "$problems" ]; then
    pass "valgrind $s"
  else
    fail "valgrind $s" "${problems%; }" "$out" "$err"
    memcheck_logs_evidence "$dir"
  fi
}

start_server $((LIMIT * (${#SCENARIOS[@]} + 1) + 60))
echo "echo-server on 127.0.0.1:$PORT${TLS_PORT:+, with TLS on localhost:$TLS_PORT}; output in $OUT"
[ -z "$CONTROL" ] || check_control
for s in "${SCENARIOS[@]}"; do check_scenario "$s"; done
stop_server
summary
