# Shared by run.sh, valgrind.sh and stress.sh (sourced, bash): arguments, the echo server,
# verdicts, and the checks made on what the server and the kernel saw.
# The scenario tables are read by the scripts that source this file:
# shellcheck disable=SC2034

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/echo-server.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/server-log.sh"

SHIM='' SERVER='' CLIENT='' CAPI='' OUT='' CONTROL='' PORT='' SERVER_LOG=''
TLS_PID='' TLS_PORT='' TLS_DIR='' TLS_LIFETIME=''
SCENARIOS=()
USAGE="usage: $0 --shim SO --server BIN --client BIN --out DIR [--capi BIN] [--control LIB] [SCENARIO...]"
parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --shim) SHIM=$(realpath -m "$2"); shift 2 ;;
      --server) SERVER=$(realpath -m "$2"); shift 2 ;;
      --client) CLIENT=$(realpath -m "$2"); shift 2 ;;
      --out) OUT=$2; shift 2 ;;
      --control) CONTROL=$(realpath -m "$2"); shift 2 ;;
      --capi) CAPI=$(realpath -m "$2"); shift 2 ;;
      -*) echo "$USAGE" >&2; exit 2 ;;
      *) SCENARIOS+=("$1"); shift ;;
    esac
  done
  if [ -z "$SHIM" ] || [ -z "$SERVER" ] || [ -z "$CLIENT" ] || [ -z "$OUT" ]; then
    echo "$USAGE" >&2
    exit 2
  fi
  for f in "$SHIM" "$SERVER" "$CLIENT" ${CAPI:+"$CAPI"} ${CONTROL:+"$CONTROL"}; do
    [ -e "$f" ] || { echo "$0: $f does not exist (run make first)" >&2; exit 2; }
  done
  rm -rf "$OUT"
  mkdir -p "$OUT"
}

# --- the scenarios ----------------------------------------------------------

# All scenarios, in the order run.sh runs them: fork-client's, then
# channel-api-c's (c-channel-api, run only when --capi names it).
ALL_SCENARIOS=(new-channel inherited-stub inherited-release parent-during child-no-grpc-exit
               child-no-grpc-_exit fork-exec posix-spawn twenty-channels busy-thread daemon forkpty
               generations channel-api channel-args inherited-then-new async-cq tls-composite
               c-channel-api parent-destroys clone busy-stream-no-grpc beyond-bound sync-threads async-thread
               fork-threads fork-storm held-in-grpc channel-churn channel-churn-bare register-churn
               fork-threads-busy inflight-async inflight-sync-stream sync-server sync-server-forks
               callback-server callback-chain)

# What each scenario must leave behind. calls: the calls the server must see,
# per role (the role is the tag's first word). forks: fork, daemon and forkpty
# calls, each of which the shim must log exactly once in the parent (1 where
# not listed). spawns: posix_spawn calls made while gRPC is in use, likewise
# (checked only where listed: daemon's supervisor spawns before any gRPC).
# "reported": the client says how many calls each role made, on a line
# "EXPECT-CALLS parent=N child=M" (fork-storm's threads, and the worker threads
# of the churn scenarios and fork-threads-busy, make as many as they can).
declare -A CALLS=(
  [new-channel]="parent=4 child=3"
  [inherited-stub]="parent=4 child=3"
  [inherited-release]="parent=4 child=3"
  [parent-during]="parent=8 child=4"
  [child-no-grpc-exit]="parent=4"
  [child-no-grpc-_exit]="parent=4"
  [fork-exec]="parent=4 exec=1"
  [posix-spawn]="parent=4 spawn=1"
  [twenty-channels]="parent=40 child=20"
  [busy-thread]="parent=5 child=2"
  [daemon]="parent=1 child=3"
  [forkpty]="parent=4 child=3"
  [generations]="parent=3 child=8 grandchild=8 greatgrandchild=4"
  [channel-api]="parent=4 child=2"
  [channel-args]="parent=4 child=3"
  [inherited-then-new]="parent=4 child=3"
  [async-cq]="parent=5 child=4"
  [tls-composite]="parent=4 child=3"
  [c-channel-api]="parent=2 child=1"
  [parent-destroys]="parent=5 child=3"
  [clone]="parent=4"
  [busy-stream-no-grpc]="parent=5"
  [beyond-bound]="parent=5"
  [sync-threads]="parent=2404 child=4"
  [async-thread]="parent=2004 child=3"
  [fork-threads]="parent=4 child=8"
  [fork-storm]=reported
  [held-in-grpc]="parent=5"
  [channel-churn]=reported
  [channel-churn-bare]="parent=4 child=60"
  [register-churn]=reported
  [fork-threads-busy]=reported
  [inflight-async]="parent=8 child=2"
  [inflight-sync-stream]="parent=7 child=2"
  [sync-server]="parent=4 child=2"
  [sync-server-forks]=reported
  [callback-server]="parent=4 child=2"
  [callback-chain]=reported
)
# Where each call must have had a connection of its own (distinct channel args).
# (inflight-*: channels A and B, the one with the call in flight and the one the
# child uses, have connections of their own.)
declare -A DISTINCT=([twenty-channels]="parent-before=20" [inflight-async]="parent-before=2"
                     [inflight-sync-stream]="parent-before=2")
declare -A FORKS=([sync-server-forks]=10 [fork-exec]=2 [posix-spawn]=0 [generations]=3 [fork-threads]=4 [fork-storm]=40
                  [channel-churn]=10 [channel-churn-bare]=30 [register-churn]=10 [fork-threads-busy]=12)
declare -A SPAWNS=([posix-spawn]=2)
# Forks at which core's handlers must be reported skipped (0 where not listed):
# everywhere else the shim must have seen core run them. The shim waits for
# threads in gRPC (busy-thread) to leave it first, so core runs there too;
# where it gives up waiting (below), core skips.
declare -A SKIPPED=([busy-stream-no-grpc]=1 [held-in-grpc]=1 [beyond-bound]=1)
# Scenarios in which every fork the parent logs must say "core fork handlers
# ran": forks made while other threads were busy in gRPC, or from several
# threads at once, or with a call of the forking thread's own in flight.
declare -A CORE_RAN=([busy-thread]=1 [sync-threads]=1 [async-thread]=1 [fork-threads]=1
                     [fork-storm]=1 [channel-churn]=1 [channel-churn-bare]=1 [register-churn]=1
                     [fork-threads-busy]=1 [inflight-async]=1 [inflight-sync-stream]=1
                     [sync-server]=1 [sync-server-forks]=1 [callback-server]=1 [callback-chain]=1)
# The shim's warn lines "quiesce: ..." (it gave up waiting for threads to
# leave gRPC) each scenario must log (0 where not listed).
declare -A QUIESCE_WARNS=([busy-stream-no-grpc]=1 [held-in-grpc]=1 [beyond-bound]=1)
# The environment a scenario runs with, besides the preload and the log level.
declare -A SCENARIO_ENV=(
  [busy-stream-no-grpc]="GRPC_FORKSAFE_QUIESCE_MS=0"
  [beyond-bound]="GRPC_FORKSAFE_QUIESCE_MS=0"
  [held-in-grpc]="GRPC_FORKSAFE_QUIESCE_MS=50"
)
# Lines the client's output must hold (extended regular expressions, one per
# line of the value, each matching some line; RUN stands for the run id): what
# the client reports without judging it.
# Lines the shim's log (the client's stderr) must hold, likewise (one expression).
declare -A SHIM_MUST_SAY=(
  [parent-destroys]='grpc-forksafe: info: fork: child [0-9]+ is generation 1; 1 channels,'
  [clone]='grpc-forksafe: info: child \(clone\): generation 1, [1-9][0-9]* inherited gRPC fds neutralised'
  [held-in-grpc]='grpc-forksafe: warn: quiesce: gave up after [0-9]+ ms'
  [beyond-bound]='grpc-forksafe: warn: child: gRPC cannot be used here'
)
# What a scenario of forks among worker threads (scenarios_concurrency.cc)
# must report: $1 forks, each child exited 0; $2 worker threads, none failed,
# each went on during the forks.
busy_lines() {
  printf '%s\n%s' \
    "^parent pid=[0-9]+ RUN:forks: $1 forks in [0-9.]+ s; children: $1 exited 0, 0 failed;" \
    "^parent pid=[0-9]+ RUN:workers: ok [0-9]+ rounds, 0 failed, from $2 threads; each made at least [1-9]"
}
# The scenarios of a process that serves. Without the shim such a process
# forks at once (stock gRPC's child then hangs, and now and then a reply
# meant for the child reaches one of the parent's calls): fork() returning at
# once is what a run without the shim must show, and the run with the shim
# must show it too, besides everything else (MUST_SAY).
declare -A SERVING=([sync-server]=1 [callback-server]=1 [callback-chain]=1)
serving_parent_lines() {
  printf '%s\n' "^parent pid=[0-9]+ RUN:fork: fork\\(\\) returned in the parent after [0-9]{1,3} ms\$"
}
# What the parent of a serving scenario must report with the shim: its
# server went on serving its load threads, and its channel to the echo
# server works after the fork.
serving_lines() {
  serving_parent_lines
  printf '%s\n' "^parent pid=[0-9]+ RUN:parent-after-3: ok peer=" \
    "^parent pid=[0-9]+ RUN:own-load: ok [0-9]+ calls from 2 threads, 0 failed, [1-9][0-9]* after the fork\$"
}
declare -A MUST_SAY=(
  [inherited-then-new]='^child pid=[0-9]+ RUN:child-inherited-1: attempt OK in [0-9]+ ms peer='
  [busy-thread]='^parent pid=[0-9]+ RUN:parent-stream: ok 10 replies '
  [sync-threads]='^parent pid=[0-9]+ RUN:parent-threads: 2400 RPCs ok from 8 threads$'
  [async-thread]='^parent pid=[0-9]+ RUN:parent-async: ok 2000 of 2000 calls ok; [1-9][0-9]* completed after fork'
  [busy-stream-no-grpc]='^parent pid=[0-9]+ RUN:parent-stream: ok 3 replies '
  [beyond-bound]='^parent pid=[0-9]+ RUN:parent-stream: ok 3 replies 
^child pid=[0-9]+ RUN:child-inherited: attempt UNAVAILABLE\(14\) "grpc-forksafe: gRPC cannot be used in this child.*" in [0-9]{1,3} ms$
^child pid=[0-9]+ RUN:child-new: attempt UNAVAILABLE\(14\) "grpc-forksafe: gRPC cannot be used in this child.*" in [0-9]{1,3} ms$'
  [clone]='^child pid=[0-9]+ RUN:child-inherited: attempt UNAVAILABLE\(14\) "grpc-forksafe: gRPC cannot be used in this child.*" in [0-9]{1,3} ms$
^parent pid=[0-9]+ clone\(\) child [0-9]+ exited 0: ok$'
  [fork-storm]='^parent pid=[0-9]+ RUN:storm: 40 forks in [0-9.]+ s: [0-9.]+ forks/s; children: 40 exited 0, 0 failed$'
  [held-in-grpc]='^parent pid=[0-9]+ RUN:parent-held: ok peer='
  [channel-churn]=$(busy_lines 10 1)
  [channel-churn-bare]="$(busy_lines 30 2)
^parent pid=[0-9]+ RUN:parent-args: ok [1-9][0-9]* copies of the pointer argument made, 0 not destroyed\$"
  [register-churn]=$(busy_lines 10 2)
  [fork-threads-busy]=$(busy_lines 12 4)
  [inflight-async]='^parent pid=[0-9]+ RUN:parent-inflight-unary: ok peer=
^parent pid=[0-9]+ RUN:parent-inflight-stream: ok 5 replies, [0-9]+ read after fork\(\) returned, peer='
  [inflight-sync-stream]='^parent pid=[0-9]+ RUN:parent-inflight-stream: ok 5 replies, [0-9]+ read after fork\(\) returned, peer='
  [sync-server]="$(serving_lines)
^parent pid=[0-9]+ RUN:own-server: ok served 2 of the children's 2 calls\$"
  [sync-server-forks]="^parent pid=[0-9]+ RUN:forks: 10 forks back to back; the longest fork\\(\\) returned after [0-9]{1,3} ms\$
^parent pid=[0-9]+ RUN:own-server: ok served 10 of the children's 10 calls\$
^parent pid=[0-9]+ RUN:own-load: ok [0-9]+ calls from 2 threads, 0 failed, [1-9][0-9]* after the fork\$"
  [callback-server]="$(serving_lines)
^parent pid=[0-9]+ RUN:own-server: ok served 2 of the children's 2 calls\$"
  [callback-chain]="$(serving_parent_lines)
^parent pid=[0-9]+ RUN:parent-after-3: ok peer=
^parent pid=[0-9]+ RUN:parent-chains: ok [0-9]+ callback calls from 4 chains, 0 failed\$"
)
# What a child's gRPC is (GRPC_FORKSAFE_CHILD_GRPC; the shim's default is
# fresh). With a fresh gRPC in the child, no fork waits for any thread and
# core's fork handlers never run: every fork of a process using gRPC must say
# that its child gets a fresh gRPC, and the scenarios built to defeat the
# quiesce bound find nothing to defeat: beyond-bound's child makes both its
# calls, on a connection of its own, and held-in-grpc's fork does not wait
# for the held thread (run.sh).
CHILD_GRPC=${GRPC_FORKSAFE_CHILD_GRPC:-fresh}
CORE_RAN_WORDS='core fork handlers ran'
if [ "$CHILD_GRPC" = fresh ]; then
  CORE_RAN_WORDS='the child gets a fresh gRPC of its own'
  SKIPPED=()
  QUIESCE_WARNS=()
  unset 'SHIM_MUST_SAY[held-in-grpc]' 'SHIM_MUST_SAY[beyond-bound]'
  CALLS[beyond-bound]="parent=5 child=2"
  MUST_SAY[beyond-bound]='^parent pid=[0-9]+ RUN:parent-stream: ok 3 replies 
^child pid=[0-9]+ RUN:child-inherited: attempt OK in [0-9]+ ms
^child pid=[0-9]+ RUN:child-new: attempt OK in [0-9]+ ms'
fi

# Scenarios run by channel-api-c instead of fork-client.
declare -A CAPI_SCENARIOS=([c-channel-api]=1)
# Scenarios that talk to the TLS server (localhost, the throwaway certificate).
declare -A TLS_SCENARIOS=([tls-composite]=1)

# The command line that runs scenario $1 under run id $2, in the array CMD,
# and the server log its calls go to, in SCENARIO_LOG.
scenario_command() {
  local s=$1 run=$2 program=$CLIENT
  [ -z "${CAPI_SCENARIOS[$s]+x}" ] || program=$CAPI
  if [ -n "${TLS_SCENARIOS[$s]+x}" ]; then
    CMD=("$program" "$s" --target "localhost:$TLS_PORT" --run "$run" --ca "$TLS_DIR/cert.pem")
    SCENARIO_LOG=$TLS_DIR/calls.log
  else
    CMD=("$program" "$s" --target "127.0.0.1:$PORT" --run "$run")
    SCENARIO_LOG=$SERVER_LOG
  fi
}

# Drops the scenarios this run cannot run (channel-api-c's without --capi),
# saying so.
runnable_scenarios() {
  local s kept=()
  for s in "${SCENARIOS[@]}"; do
    if [ -n "${CAPI_SCENARIOS[$s]+x}" ] && [ -z "$CAPI" ]; then
      echo "SKIP $s: no --capi program given"
      continue
    fi
    kept+=("$s")
  done
  SCENARIOS=("${kept[@]}")
}

needs_tls() {
  local s
  for s in "${SCENARIOS[@]}"; do [ -z "${TLS_SCENARIOS[$s]+x}" ] || return 0; done
  return 1
}

# --- verdicts ---------------------------------------------------------------

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/verdicts.sh"

# --- the echo server --------------------------------------------------------

# One server for the whole run, and a second one serving TLS when a scenario
# needs it. Their own lifetimes are bounded too, in case this script is killed
# before its trap can stop them.
start_server() {
  local lifetime=$1
  ECHO_SERVER_BIN=$SERVER
  SERVER_LOG=$OUT/calls.log
  trap stop_server EXIT
  if ! echo_server_start "$OUT" timeout "$lifetime"; then
    echo "FAIL echo-server: did not start"
    exit 1
  fi
  PORT=$ECHO_PORT
  if needs_tls && ! start_tls_server "$lifetime"; then
    echo "FAIL echo-server with TLS: did not start"
    exit 1
  fi
}
stop_server() {
  echo_server_stop
  stop_tls_server
}

# The echo server with TLS, its calls logged to $TLS_DIR/calls.log; sets
# TLS_PID and TLS_PORT once it accepts calls, or says why not and returns 1.
start_tls_server() {
  local lifetime=$1 main_pid=${ECHO_PID:-} main_port=${ECHO_PORT:-} ok=0
  TLS_DIR=$OUT/tls-server
  mkdir -p "$TLS_DIR"
  command -v openssl >/dev/null || { echo "openssl is not installed" >&2; return 1; }
  make_tls_cert "$TLS_DIR" || { cat "$TLS_DIR/openssl.log" >&2; return 1; }
  TLS_LIFETIME=$lifetime
  echo_server_start "$TLS_DIR" with_tls || ok=1
  TLS_PID=$ECHO_PID TLS_PORT=$ECHO_PORT
  # The plain server stays the one ECHO_PID names.
  ECHO_PID=$main_pid ECHO_PORT=$main_port
  return $ok
}
# A prefix for echo_server_start: the server command it is given, bounded in
# time, with the TLS files appended.
with_tls() {
  with_tls_files "$TLS_DIR" timeout "$TLS_LIFETIME" "$@"
}
stop_tls_server() {
  [ -n "$TLS_PID" ] || return 0
  echo_server_stop "$TLS_PID"
  TLS_PID=
}

# --- checks -----------------------------------------------------------------

# "exited 0", "timed out after 60 s (hang)", ... for a status from timeout(1).
describe_exit() {
  case "$1" in
    124|137) echo "timed out after $2 s (hang)" ;;
    *) echo "exited $1" ;;
  esac
}

# Checks the server's record of run $1 ("<pid> <run>:<role>-... <peer>" per
# call) against the expected number of calls per role ($2, "parent=4 child=3
# exec=1"), and that no child call used a connection (peer address) that a
# parent call used, nor the parent's pid. $3, optional: the number of distinct
# connections used by the calls whose tag starts with a prefix
# ("parent-before=20"). $4, optional: the server log (default $SERVER_LOG).
# Prints the problems; silent if none.
check_server_log() {
  local run=$1 expect=$2 distinct=${3:-} log=${4:-$SERVER_LOG}
  awk -v run="$run" -v expect="$expect" -v distinct="$distinct" '
    BEGIN { if (distinct != "") { split(distinct, d, "="); prefix = d[1]; want_peers = d[2] } }
    index($2, run ":") == 1 {
      tag = substr($2, length(run) + 2)
      role = tag; sub(/-.*/, "", role)
      calls[role]++; peers[role, $3] = 1; pids[role, $1] = 1
      if (prefix != "" && index(tag, prefix) == 1 && !(($3) in prefixed)) { prefixed[$3] = 1; n_prefixed++ }
    }
    END {
      if (prefix != "" && n_prefixed + 0 != want_peers + 0)
        printf "%s calls used %d distinct connections, expected %d; ", prefix, n_prefixed, want_peers
      n = split(expect, want, " ")
      for (i = 1; i <= n; i++) {
        split(want[i], kv, "=")
        if (calls[kv[1]] + 0 != kv[2] + 0)
          printf "server saw %d %s calls, expected %d; ", calls[kv[1]], kv[1], kv[2]
        seen[kv[1]] = 1
      }
      for (r in calls) if (!(r in seen)) printf "server saw %d unexpected %s calls; ", calls[r], r
      for (key in peers) {
        split(key, k, SUBSEP)
        if (k[1] == "child" && (("parent", k[2]) in peers)) { shared++; example = k[2] }
      }
      if (shared) printf "child and parent both used %d connection(s), e.g. %s; ", shared, example
      for (key in pids) {
        split(key, k, SUBSEP)
        if (k[1] == "child" && (("parent", k[2]) in pids)) printf "child calls carry the parent pid %s; ", k[2]
      }
    }' "$log"
}

# Checks that file $2 holds a line matching each MUST_SAY regex of scenario
# $1 for run $3. Prints the problems; silent if none.
check_must_say() {
  [ -z "${MUST_SAY[$1]+x}" ] || check_lines "${MUST_SAY[$1]}" "$2" "$3"
}

# The same for the expressions $1 (one per line), in file $2, run $3.
check_lines() {
  local re
  while IFS= read -r re; do
    re=${re//RUN/$3}
    grep -qE -- "$re" "$2" || printf 'no line matching /%s/; ' "$re"
  done <<<"$1"
}

# Counts the shim's log lines in file $2 whose text starts with $1 ("fork:
# child"), at any level: a fork the shim handled in a degraded way is logged
# at warn, and is still one fork seen.
count_shim_lines() { grep -cE -- "grpc-forksafe: [a-z]+: $1" "$2"; }

# A run is over when the process the harness started has exited; anything it
# left running (a daemon or a pty child hung in gRPC, in a session of its own
# that timeout(1) cannot reach; a descendant of a process timeout(1) killed)
# is a hang. Such processes, found by the pids the run printed, are killed
# only if their command line is still one of the clients (directly or under
# valgrind). Prints the pids it killed, on one line.
reap_leftovers() {
  local pid cmdline
  grep -ohE '(pid=|fork-client\[|channel-api-c\[)[0-9]+' "$@" 2>/dev/null | grep -oE '[0-9]+' | sort -u |
    while read -r pid; do
      cmdline=$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")
      [[ "$cmdline" == *"$CLIENT"* ]] || { [ -n "$CAPI" ] && [[ "$cmdline" == *"$CAPI"* ]]; } || continue
      kill -KILL "$pid" 2>/dev/null && printf '%s ' "$pid"
    done
}
