#!/bin/bash
# Integration tests: runs fork-client, an ordinary grpc++ program that forks,
# with the shim preloaded, against one echo server, and judges each scenario by
# what every process reported, how each exited, what the server saw, and what
# the shim logged. One scenario also runs without the shim, and with the shim
# switched off, and must fail: these checks catch the bug the shim exists to fix.
#
# Usage: run.sh --shim SO --server BIN --client BIN --out DIR [SCENARIO...]
# Environment: FORKSAFE_TEST_TIMEOUT, seconds one scenario may take (60).
# Prints "PASS name" or "FAIL name: reason" per check, then "N passed, M failed";
# exits non-zero if any check failed. Each run's output is kept in DIR.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
parse_args "$@"
LIMIT=${FORKSAFE_TEST_TIMEOUT:-60}

[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")

# Runs the client for scenario $1 under run id $2, with the environment that
# follows ("LD_PRELOAD=..."); output in $OUT/$2.out and .err. Sets STATUS.
run_client() {
  local scenario=$1 run=$2
  shift 2
  # env(1), not the shell, applies the preload: timeout(1) itself must not
  # load the shim, or its own fork would be counted. Whatever preload and
  # shim mode the caller has set is not part of the test.
  timeout -k 5 "$LIMIT" env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE "$@" "$CLIENT" "$scenario" --target "127.0.0.1:$PORT" --run "$run" \
    >"$OUT/$run.out" 2>"$OUT/$run.err"
  STATUS=$?
}

# The scenario with the shim preloaded: everything must succeed.
check_scenario() {
  local s=$1 problems="" n leftovers
  if [ -z "${CALLS[$s]+x}" ]; then
    fail "$s" "no such scenario"
    return
  fi
  run_client "$s" "$s" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=info
  local out=$OUT/$s.out err=$OUT/$s.err

  [ "$STATUS" -eq 0 ] || problems+="client $(describe_exit "$STATUS" "$LIMIT"); "
  grep -q "^RESULT .*: ok$" "$out" || problems+="no 'RESULT ... ok' line; "
  problems+=$(check_server_log "$s" "${CALLS[$s]}" "${DISTINCT[$s]:-}")
  n=$(count_shim_lines "fork: child" "$err")
  [ "$n" -eq "${FORKS[$s]:-1}" ] ||
    problems+="shim logged 'fork: child' $n times for ${FORKS[$s]:-1} forks; "
  n=$(count_shim_lines "fork: child .*core fork handlers SKIPPED" "$err")
  [ "$n" -eq "${SKIPPED[$s]:-0}" ] ||
    problems+="shim reported core's fork handlers skipped $n times, expected ${SKIPPED[$s]:-0}; "
  n=$(count_shim_lines "posix_spawn: child" "$err")
  [ -z "${SPAWNS[$s]+x}" ] || [ "$n" -eq "${SPAWNS[$s]}" ] ||
    problems+="shim logged 'posix_spawn: child' $n times for ${SPAWNS[$s]} spawns; "
  leftovers=$(reap_leftovers "$out" "$err")
  [ -z "$leftovers" ] || problems+="processes still running after the run (hung), killed: ${leftovers% }; "

  if [ -z "$problems" ]; then pass "$s"; else fail "$s" "${problems%; }" "$out" "$err"; fi
}

# The client must fail the way stock gRPC does without the shim, and with the
# shim switched off: the parent's channel dead after the child used the shared
# connection, and the server seeing the child on the parent's connection. $1
# names the check, $2 the run; the environment for the client follows.
check_fails_as_stock() {
  local name=$1 run=$2 s=new-channel problems="" log_problems
  shift 2
  run_client "$s" "$run" "$@"
  local out=$OUT/$run.out err=$OUT/$run.err
  case "$STATUS" in
    0) problems+="client exited 0; " ;;
    124|137) problems+="client $(describe_exit "$STATUS" "$LIMIT") instead of failing; " ;;
  esac
  grep -qE "^parent pid=[0-9]+ $run:parent-after-[0-9]+: FAIL " "$out" ||
    problems+="the parent's RPCs after the fork did not fail; "
  log_problems=$(check_server_log "$run" "${CALLS[$s]}")
  [[ "$log_problems" == *"child and parent both used"* ]] ||
    problems+="the server log check did not see the shared connection; "
  reap_leftovers "$out" "$err" >/dev/null

  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$out" "$err"; fi
}

start_server $((LIMIT * (${#SCENARIOS[@]} + 1) + 60))
echo "echo-server on 127.0.0.1:$PORT; output in $OUT"
check_fails_as_stock "without the shim, new-channel fails as with stock gRPC" without-shim
check_fails_as_stock "with GRPC_FORKSAFE_MODE=off, new-channel fails as with stock gRPC" mode-off \
  LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=off
for s in "${SCENARIOS[@]}"; do check_scenario "$s"; done
stop_server
summary
