#!/bin/bash
# Integration tests: runs fork-client, an ordinary grpc++ program that forks,
# and channel-api-c, an ordinary client of gRPC core's C API, with the shim
# preloaded, against an echo server (a second one serves TLS), and judges each
# scenario by what every process reported, how each exited, what the server
# saw, and what the shim logged. Some scenarios also run without the shim,
# with the shim switched off, and with its audit policy, and must fail as with
# stock gRPC: these checks catch the bug the shim exists to fix. One runs with
# the close policy, under which a child's call on an inherited channel must
# fail at once.
#
# Usage: run.sh --shim SO --server BIN --client BIN --out DIR [--capi BIN] [SCENARIO...]
# Environment: FORKSAFE_TEST_TIMEOUT, seconds one scenario may take (60).
# Prints "PASS name" or "FAIL name: reason" per check, then "N passed, M failed";
# exits non-zero if any check failed. Each run's output is kept in DIR.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
parse_args "$@"
LIMIT=${FORKSAFE_TEST_TIMEOUT:-60}
# The runs expected to fail as stock gRPC does take some 6 s (three RPCs into
# their 2 s deadline; inflight-async, whose child hangs, some 12 s); a run that
# takes longer has hung.
STOCK_LIMIT=$((LIMIT < 20 ? LIMIT : 20))

[ ${#SCENARIOS[@]} -gt 0 ] || SCENARIOS=("${ALL_SCENARIOS[@]}")
runnable_scenarios

# Runs the client for scenario $1 under run id $2, with the environment that
# follows ("LD_PRELOAD=..."); output in $OUT/$2.out and .err. Sets STATUS,
# and SCENARIO_LOG to the server log of its calls.
run_client() {
  local scenario=$1 run=$2
  shift 2
  scenario_command "$scenario" "$run"
  # env(1), not the shell, applies the preload: timeout(1) itself must not
  # load the shim, or its own fork would be counted. Whatever preload and
  # shim settings the caller has set are not part of the test.
  timeout -k 5 "${CLIENT_LIMIT:-$LIMIT}" env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_LOG \
    -u GRPC_FORKSAFE_QUIESCE_MS -u GRPC_FORKSAFE_LOG_FILE "$@" "${CMD[@]}" \
    >"$OUT/$run.out" 2>"$OUT/$run.err"
  STATUS=$?
}

# What is wrong with run $2 of scenario $1 (with the shim preloaded, output
# in $OUT/$2.out and .err, exit status in STATUS), judged by the scenario's
# tables in lib.sh. Prints the problems; silent if none.
scenario_problems() {
  local s=$1 run=$2 n calls
  local out=$OUT/$run.out err=$OUT/$run.err
  [ "$STATUS" -eq 0 ] || printf 'client %s; ' "$(describe_exit "$STATUS" "$LIMIT")"
  grep -q "^RESULT .*: ok$" "$out" || printf "no 'RESULT ... ok' line; "
  check_must_say "$s" "$out" "$run"
  [ -z "${SHIM_MUST_SAY[$s]+x}" ] || grep -qE -- "${SHIM_MUST_SAY[$s]}" "$err" ||
    printf "the shim's log has no line matching '%s'; " "${SHIM_MUST_SAY[$s]}"
  calls=${CALLS[$s]}
  if [ "$calls" = reported ]; then
    calls=$(sed -n 's/^EXPECT-CALLS //p' "$out")
    [ -n "$calls" ] || printf "no 'EXPECT-CALLS' line; "
  fi
  [ -z "$calls" ] || check_server_log "$run" "$calls" "${DISTINCT[$s]:-}" "$SCENARIO_LOG"
  check_connections_per_pid "$run" "$SCENARIO_LOG"
  n=$(count_shim_lines "fork: child" "$err")
  [ "$n" -eq "${FORKS[$s]:-1}" ] ||
    printf "shim logged 'fork: child' %d times for %d forks; " "$n" "${FORKS[$s]:-1}"
  n=$(count_shim_lines "fork: child .*core fork handlers SKIPPED" "$err")
  [ "$n" -eq "${SKIPPED[$s]:-0}" ] ||
    printf "shim reported core's fork handlers skipped %d times, expected %d; " "$n" "${SKIPPED[$s]:-0}"
  if [ -n "${CORE_RAN[$s]+x}" ]; then
    n=$(count_shim_lines "fork: child .*$CORE_RAN_WORDS" "$err")
    [ "$n" -eq "${FORKS[$s]:-1}" ] ||
      printf "shim's fork line said '%s' at %d forks of %d; " "$CORE_RAN_WORDS" "$n" "${FORKS[$s]:-1}"
  fi
  n=$(count_shim_lines "quiesce:" "$err")
  [ "$n" -eq "${QUIESCE_WARNS[$s]:-0}" ] ||
    printf "shim logged 'quiesce:' (gave up waiting for threads) %d times, expected %d; " "$n" "${QUIESCE_WARNS[$s]:-0}"
  n=$(count_shim_lines "posix_spawn: child" "$err")
  [ -z "${SPAWNS[$s]+x}" ] || [ "$n" -eq "${SPAWNS[$s]}" ] ||
    printf "shim logged 'posix_spawn: child' %d times for %d spawns; " "$n" "${SPAWNS[$s]}"
  if [ "$s" = held-in-grpc ] && [ "$CHILD_GRPC" = fresh ]; then
    fork_wait_problems "$run" 300
  elif [ "$s" = held-in-grpc ]; then
    quiesce_bound_problems "$run" 50 900
  fi
}

# With a fresh gRPC in the child, held-in-grpc's fork must not wait for the
# thread held inside gRPC: fork() returns in the parent within $2 ms (the
# first fork of a process also loads the children's copies of gRPC).
fork_wait_problems() {
  local run=$1 high=$2 fork_ms
  fork_ms=$(sed -nE "s/^parent pid=[0-9]+ $run:fork: fork\(\) returned in the parent after ([0-9]+) ms$/\1/p" "$OUT/$run.out")
  if [ -z "$fork_ms" ]; then
    printf 'the client did not say how long fork() took; '
  elif [ "$fork_ms" -gt "$high" ]; then
    printf 'fork() took %d ms in the parent, more than %d: it waited for the thread inside gRPC; ' "$fork_ms" "$high"
  fi
}

# held-in-grpc runs with GRPC_FORKSAFE_QUIESCE_MS=50: the shim must have given
# up after at least $2 ms, and fork() must have returned in the parent well
# before the default bound of 1000 ms (at most $3 ms). $1: the run.
quiesce_bound_problems() {
  local run=$1 low=$2 high=$3 gave fork_ms
  gave=$(sed -nE 's/.*grpc-forksafe: warn: quiesce: gave up after ([0-9]+) ms.*/\1/p' "$OUT/$run.err" | head -n 1)
  fork_ms=$(sed -nE "s/^parent pid=[0-9]+ $run:fork: fork\(\) returned in the parent after ([0-9]+) ms$/\1/p" "$OUT/$run.out")
  if [ -z "$gave" ]; then
    printf 'no "gave up after N ms" in the shim'"'"'s log; '
  elif [ "$gave" -lt "$low" ] || [ "$gave" -gt "$high" ]; then
    printf 'the shim gave up after %d ms, not between %d and %d; ' "$gave" "$low" "$high"
  fi
  if [ -z "$fork_ms" ]; then
    printf 'the client did not say how long fork() took; '
  elif [ "$fork_ms" -lt "$low" ] || [ "$fork_ms" -gt "$high" ]; then
    printf 'fork() took %d ms in the parent, not between %d and %d; ' "$fork_ms" "$low" "$high"
  fi
}

# Scenario $1 with the shim preloaded and its own environment from
# SCENARIO_ENV: everything must succeed.
check_scenario() {
  local s=$1 problems leftovers
  if [ -z "${CALLS[$s]+x}" ]; then
    fail "$s" "no such scenario"
    return
  fi
  # shellcheck disable=SC2086 # SCENARIO_ENV holds VAR=value words
  run_client "$s" "$s" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=info ${SCENARIO_ENV[$s]:-}
  problems=$(scenario_problems "$s" "$s")
  leftovers=$(reap_leftovers "$OUT/$s.out" "$OUT/$s.err")
  [ -z "$leftovers" ] || problems+="processes still running after the run (hung), killed: ${leftovers% }; "
  local name=$s
  [ -z "${SCENARIO_ENV[$s]:-}" ] || name="$s (${SCENARIO_ENV[$s]})"
  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$OUT/$s.out" "$OUT/$s.err"; fi
}

# A bad GRPC_FORKSAFE_QUIESCE_MS ($1; $2 names the run) gets exactly one warn
# line naming the variable and the default (1000 ms), and the default is what
# is used: busy-thread, whose streaming thread the shim must wait for, passes
# every one of its checks, without the shim giving up.
check_bad_quiesce_ms() {
  local value=$1 run=quiesce-ms-$2 s=busy-thread problems leftovers n
  local name="GRPC_FORKSAFE_QUIESCE_MS=$value: one warn line, and the default is used"
  run_client "$s" "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=info GRPC_FORKSAFE_QUIESCE_MS="$value"
  problems=$(scenario_problems "$s" "$run")
  n=$(grep -c "grpc-forksafe: warn: .*GRPC_FORKSAFE_QUIESCE_MS" "$OUT/$run.err")
  [ "$n" -eq 1 ] || problems+="$n warn lines name GRPC_FORKSAFE_QUIESCE_MS, not 1; "
  grep "grpc-forksafe: warn: .*GRPC_FORKSAFE_QUIESCE_MS" "$OUT/$run.err" | grep -qw 1000 ||
    problems+="the warn line does not name the default, 1000; "
  leftovers=$(reap_leftovers "$OUT/$run.out" "$OUT/$run.err")
  [ -z "$leftovers" ] || problems+="processes still running after the run (hung), killed: ${leftovers% }; "
  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$OUT/$run.out" "$OUT/$run.err"; fi
}

# What is wrong with run $2 of scenario $1 (new-channel, inherited-stub or
# inflight-async), if it did not fail the way stock gRPC does: the parent's
# channel dead after the child used the shared connection, and the server
# seeing the child on the parent's connection. inflight-async may fail in
# other ways instead: the child, before it writes anything, reads from the
# connection of channel A (it shares the parent's epoll set and socket), and
# the parent's calls in flight there lose their replies; or the parent dies of
# a signal (seen once in some 40 runs). Prints the problems; silent if none.
stock_failure_problems() {
  local s=$1 run=$2 log_problems problems=""
  case "$STATUS" in
    0) printf 'client exited 0; ' ;;
    124|137) printf 'client %s instead of failing; ' "$(describe_exit "$STATUS" "$STOCK_LIMIT")" ;;
  esac
  grep -qE "^parent pid=[0-9]+ $run:parent-after-[0-9]+: FAIL " "$OUT/$run.out" ||
    problems+="the parent's RPCs after the fork did not fail; "
  log_problems=$(check_server_log "$run" "${CALLS[$s]}")
  [[ "$log_problems" == *"child and parent both used"* ]] ||
    problems+='the server log check did not see the shared connection; '
  if [ -n "$problems" ] && [ "$s" = inflight-async ]; then
    grep -qE "^parent pid=[0-9]+ (FAIL $run:parent-inflight-|$run:parent-inflight-[a-z]+: FAIL )" "$OUT/$run.out" &&
      return
    [ "$STATUS" -gt 128 ] && [ "$STATUS" -ne 137 ] && return
  fi
  [ -z "$problems" ] || printf '%s' "$problems"
}

# Runs scenario $1 as run $2, with the environment that follows, as stock gRPC
# would run it, and sets PROBLEMS to what is wrong with its failure. Stock
# gRPC has a second way to fail: now and then (more often on a loaded machine)
# its child hangs inside gRPC, on state owned by threads fork() did not copy,
# and the parent waits for it. Such a run shows nothing of the shared
# connection, so it is kept as $2.hung.* and the run made once more.
run_as_stock() {
  local s=$1 run=$2 _
  shift 2
  for _ in 1 2; do
    CLIENT_LIMIT=$STOCK_LIMIT run_client "$s" "$run" "$@"
    reap_leftovers "$OUT/$run.out" "$OUT/$run.err" >/dev/null
    if { [ "$STATUS" -eq 124 ] || [ "$STATUS" -eq 137 ]; } &&
       grep -qE "^parent pid=[0-9]+ $run:parent-before[^ ]*: ok" "$OUT/$run.out" &&
       ! grep -qE "^parent pid=[0-9]+ child [0-9]+ exited" "$OUT/$run.out"; then
      mv "$OUT/$run.out" "$OUT/$run.hung.out"
      mv "$OUT/$run.err" "$OUT/$run.hung.err"
      echo "  ($run: the child hung, as stock gRPC's children do now and then; once more)"
      continue
    fi
    PROBLEMS=$(stock_failure_problems "$s" "$run")
    return
  done
  PROBLEMS="the child hung in both runs (see $run.hung.out); the failure that shows the shared connection was never seen; "
}

# Scenario $3 must fail the way stock gRPC does, without the shim or with the
# shim switched off. $1 names the check, $2 the run; the environment for the
# client follows.
check_fails_as_stock() {
  local name=$1 run=$2 s=$3
  shift 3
  run_as_stock "$s" "$run" "$@"
  if [ -z "$PROBLEMS" ]; then pass "$name"; else fail "$name" "${PROBLEMS%; }" "$OUT/$run.out" "$OUT/$run.err"; fi
}

# Counts the lines of file $3 that process $2 logged at warn with text
# starting with $1 (fixed text, not a pattern).
count_warn_lines() {
  grep -cF -- "[$2]: grpc-forksafe: warn: $1" "$3"
}

# The audit policy changes nothing (scenario $1 fails exactly as with stock
# gRPC) but says what would have gone wrong: at the fork, in the parent, how
# much the child inherits; in the child, once, the use it makes of what it
# inherited ($2: the text of the line that scenario must produce).
check_audit() {
  local s=$1 child_line=$2 run=audit-$1 problems parent child n
  local name="with GRPC_FORKSAFE_MODE=audit, $s fails as with stock gRPC and is reported"
  run_as_stock "$s" "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=audit
  local out=$OUT/$run.out err=$OUT/$run.err
  problems=$PROBLEMS
  parent=$(sed -nE 's/^RESULT pid=([0-9]+) .*/\1/p' "$out")
  child=$(sed -nE 's/^parent pid=[0-9]+ child ([0-9]+) exited.*/\1/p' "$out")
  if [ -z "$parent" ] || [ -z "$child" ]; then
    problems+="no parent or child pid in the output; "
  else
    n=$(count_warn_lines "audit: fork: child $child inherits 1 live channels and 0 calls in flight" "$parent" "$err")
    [ "$n" -eq 1 ] ||
      problems+="parent $parent logged 'audit: fork: child $child inherits 1 live channels and 0 calls in flight' $n times, not once; "
    n=$(count_warn_lines "$child_line" "$child" "$err")
    [ "$n" -eq 1 ] || problems+="child $child logged '$child_line' $n times, not once; "
  fi
  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$out" "$err"; fi
}

# The close policy: the child's call on the inherited stub fails at once
# (well within its 2 s deadline, before reaching the server) with UNAVAILABLE
# and a message that says why and what to do; the channel the child then
# makes works; the parent works before and after.
check_close() {
  local s=inherited-then-new run=close-mode problems="" line ms leftovers
  local name="with GRPC_FORKSAFE_MODE=close, a child's call on an inherited channel fails at once"
  run_client "$s" "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=close GRPC_FORKSAFE_LOG=info
  local out=$OUT/$run.out err=$OUT/$run.err
  [ "$STATUS" -eq 0 ] || problems+="client $(describe_exit "$STATUS" "$LIMIT"); "
  grep -q "^RESULT .*: ok$" "$out" || problems+="no 'RESULT ... ok' line; "
  line=$(grep -E "^child pid=[0-9]+ $run:child-inherited-1: attempt " "$out")
  if ! [[ "$line" =~ \ attempt\ UNAVAILABLE\(14\)\ \"(.*)\"\ in\ ([0-9]+)\ ms$ ]]; then
    problems+="the call on the inherited stub did not fail with UNAVAILABLE (${line:-no line}); "
  else
    ms=${BASH_REMATCH[2]}
    [[ "${BASH_REMATCH[1]}" == *"inherited across fork()"* ]] ||
      problems+="its message does not say 'inherited across fork()'; "
    [[ "${BASH_REMATCH[1],,}" =~ create.*(own\ channel|channel\ of\ its\ own) ]] ||
      problems+="its message does not tell the child to create its own channel; "
    [ "$ms" -lt 500 ] || problems+="it took $ms ms, not at once; "
  fi
  problems+=$(check_server_log "$run" "parent=4 child=2" "" "$SCENARIO_LOG")
  problems+=$(check_connections_per_pid "$run" "$SCENARIO_LOG")
  leftovers=$(reap_leftovers "$out" "$err")
  [ -z "$leftovers" ] || problems+="processes still running after the run (hung), killed: ${leftovers% }; "
  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$out" "$err"; fi
}

# Never worse: without the shim, a process that serves (or keeps callback
# calls going) forks at once, though stock gRPC's child hangs or fails; with
# the shim it must fork at once too (check_scenario asserts that and the
# rest: the child's calls, the parent's server and channels after the fork).
check_serving_without_shim() {
  local s=$1 run=without-shim-$1 problems=""
  local name="without the shim, $s: fork() returns at once"
  # Only the fork is judged: what stock gRPC does after it (its child hangs,
  # and the parent may then wait for it) is stock gRPC's business.
  run_client "$s" "$run"
  local out=$OUT/$run.out err=$OUT/$run.err
  problems+=$(check_lines "$(serving_parent_lines)" "$out" "$run")
  reap_leftovers "$out" "$err" >/dev/null
  if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$out" "$err"; fi
}

start_server $((LIMIT * (${#SCENARIOS[@]} + 10) + 60))
echo "echo-server on 127.0.0.1:$PORT${TLS_PORT:+, with TLS on localhost:$TLS_PORT}; output in $OUT"
# What runs without the shim, with it off, or auditing does not depend on
# what a child's gRPC would be: checked once, in the default mode's run.
if [ "$CHILD_GRPC" = fresh ]; then
  check_fails_as_stock "without the shim, new-channel fails as with stock gRPC" without-shim new-channel
  check_fails_as_stock "with GRPC_FORKSAFE_MODE=off, new-channel fails as with stock gRPC" mode-off new-channel \
    LD_PRELOAD="$SHIM" GRPC_FORKSAFE_MODE=off
  # A fork with calls in flight on another channel: stock gRPC's child shares
  # the connection of the channel it inherited, and the parent's calls there
  # fail, or reads the replies the parent's calls in flight are waiting for; and
  # it hangs, which the client reports after 6 s.
  check_fails_as_stock "without the shim, inflight-async fails as with stock gRPC" without-shim-inflight \
    inflight-async
  check_audit new-channel "audit: new channel to 127.0.0.1:$PORT in this child would share the connection of an inherited channel"
  check_audit inherited-stub "audit: inherited channel to 127.0.0.1:$PORT used in this child"
fi
check_close
for s in "${SCENARIOS[@]}"; do
  [ -z "${SERVING[$s]+x}" ] || [ "$CHILD_GRPC" != fresh ] || check_serving_without_shim "$s"
  check_scenario "$s"
done
if [ "$CHILD_GRPC" = inherited ]; then
  check_bad_quiesce_ms abc abc
  check_bad_quiesce_ms -1 negative
  check_bad_quiesce_ms 99999999 too-large
fi
stop_server
summary
