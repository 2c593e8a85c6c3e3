# Shared by run.sh and valgrind.sh (sourced, bash): arguments, the echo server,
# verdicts, and the checks made on what the server and the kernel saw.
# The scenario tables are read by the scripts that source this file:
# shellcheck disable=SC2034

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/echo-server.sh"

SHIM='' SERVER='' CLIENT='' OUT='' CONTROL='' PORT='' SERVER_LOG=''
SCENARIOS=()
parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --shim) SHIM=$(realpath -m "$2"); shift 2 ;;
      --server) SERVER=$(realpath -m "$2"); shift 2 ;;
      --client) CLIENT=$(realpath -m "$2"); shift 2 ;;
      --out) OUT=$2; shift 2 ;;
      --control) CONTROL=$(realpath -m "$2"); shift 2 ;;
      -*) echo "usage: $0 --shim SO --server BIN --client BIN --out DIR [--control LIB] [SCENARIO...]" >&2; exit 2 ;;
      *) SCENARIOS+=("$1"); shift ;;
    esac
  done
  if [ -z "$SHIM" ] || [ -z "$SERVER" ] || [ -z "$CLIENT" ] || [ -z "$OUT" ]; then
    echo "usage: $0 --shim SO --server BIN --client BIN --out DIR [--control LIB] [SCENARIO...]" >&2
    exit 2
  fi
  for f in "$SHIM" "$SERVER" "$CLIENT" ${CONTROL:+"$CONTROL"}; do
    [ -e "$f" ] || { echo "$0: $f does not exist (run make first)" >&2; exit 2; }
  done
  rm -rf "$OUT"
  mkdir -p "$OUT"
}

# --- the scenarios ----------------------------------------------------------

# All of fork-client's scenarios, in the order run.sh runs them.
ALL_SCENARIOS=(new-channel inherited-stub inherited-release parent-during child-no-grpc-exit
               child-no-grpc-_exit fork-exec posix-spawn twenty-channels busy-thread daemon forkpty)

# What each scenario must leave behind. calls: the calls the server must see,
# per role (the role is the tag's first word). forks: fork, daemon and forkpty
# calls, each of which the shim must log exactly once in the parent (1 where
# not listed). spawns: posix_spawn calls made while gRPC is in use, likewise
# (checked only where listed: daemon's supervisor spawns before any gRPC).
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
  [busy-thread]="parent=5"
  [daemon]="parent=1 child=3"
  [forkpty]="parent=4 child=3"
)
# Where each call must have had a connection of its own (distinct channel args).
declare -A DISTINCT=([twenty-channels]="parent-before=20")
declare -A FORKS=([fork-exec]=2 [posix-spawn]=0)
declare -A SPAWNS=([posix-spawn]=2)
# Forks at which core's handlers must be reported skipped (0 where not listed):
# everywhere else the shim must have seen core run them.
declare -A SKIPPED=([busy-thread]=1)

# --- verdicts ---------------------------------------------------------------

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS $1"; }
fail() {
  FAILED=$((FAILED + 1))
  echo "FAIL $1: $2"
  # The evidence, so that a failure in CI can be understood from its log alone.
  local f
  for f in "${@:3}"; do
    [ -s "$f" ] || continue
    echo "  --- $f (last 40 lines)"
    tail -n 40 "$f" | sed 's/^/  | /'
  done
}
summary() {
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}

# --- the echo server --------------------------------------------------------

# One server for the whole run. Its own lifetime is bounded too, in case this
# script is killed before its trap can stop it.
start_server() {
  local lifetime=$1
  ECHO_SERVER_BIN=$SERVER
  SERVER_LOG=$OUT/calls.log
  trap echo_server_stop EXIT
  if ! echo_server_start "$OUT" timeout "$lifetime"; then
    echo "FAIL echo-server: did not start"
    exit 1
  fi
  PORT=$ECHO_PORT
}
stop_server() { echo_server_stop; }

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
# ("parent-before=20"). Prints the problems; silent if none.
check_server_log() {
  local run=$1 expect=$2 distinct=${3:-}
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
    }' "$SERVER_LOG"
}

# Counts the shim's log lines in file $2 whose text starts with $1 ("fork:
# child"), at any level: a fork the shim handled in a degraded way is logged
# at warn, and is still one fork seen.
count_shim_lines() { grep -cE -- "grpc-forksafe: [a-z]+: $1" "$2"; }

# A run is over when the process the harness started has exited; anything it
# left running (a daemon or a pty child hung in gRPC, in a session of its own
# that timeout(1) cannot reach) is a hang. Such processes, found by the pids
# the run printed, are killed only if their command line is still this client
# (directly or under valgrind). Prints the pids it killed, on one line.
reap_leftovers() {
  local pid
  grep -ohE '(pid=|fork-client\[)[0-9]+' "$@" 2>/dev/null | grep -oE '[0-9]+' | sort -u |
    while read -r pid; do
      tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$CLIENT" || continue
      kill -KILL "$pid" 2>/dev/null && printf '%s ' "$pid"
    done
}
