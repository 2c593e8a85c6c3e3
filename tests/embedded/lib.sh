# Shared by tests/embedded/run.sh and the checks it sources (bash): arguments,
# running a program, the byte sink, and reading the server's and the shim's
# records.

. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/echo-server.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/verdicts.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/server-log.sh"
. "$(dirname "${BASH_SOURCE[0]}")/../../scripts/memcheck-logs.sh"

SHIM='' SERVER='' BIN='' OUT=''
USAGE="usage: $0 --shim SO --server BIN --bin DIR --out DIR"
parse_args() {
  while [ $# -gt 0 ]; do
    case "$1" in
      --shim) SHIM=$(realpath -m "$2"); shift 2 ;;
      --server) SERVER=$(realpath -m "$2"); shift 2 ;;
      --bin) BIN=$(realpath -m "$2"); shift 2 ;;
      --out) OUT=$2; shift 2 ;;
      *) echo "$USAGE" >&2; exit 2 ;;
    esac
  done
  if [ -z "$SHIM" ] || [ -z "$SERVER" ] || [ -z "$BIN" ] || [ -z "$OUT" ]; then
    echo "$USAGE" >&2
    exit 2
  fi
  local f
  for f in "$SHIM" "$SERVER" "$BIN"/{static-client,exec-client-static,exec-client-dynamic,fd-lister,byte-sink}; do
    [ -e "$f" ] || { echo "$0: $f does not exist (run make first)" >&2; exit 2; }
  done
  rm -rf "$OUT"
  mkdir -p "$OUT"
  OUT=$(realpath "$OUT")
}

# run_prog NAME [VAR=value...] -- COMMAND...: runs COMMAND under timeout(1)
# (LIMIT seconds; a hang is a failure like any other) with the environment
# given and nothing else of the caller's preload or shim settings; stdin
# /dev/null, stdout and stderr in $OUT/NAME.out and .err. Sets STATUS.
# timeout(1) signals its whole process group, so a hung forked child goes
# too. env(1), not the shell, applies the preload: timeout itself must not
# run under the shim.
run_prog() {
  local name=$1 envs=()
  shift
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  timeout -k 5 "$LIMIT" env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_LOG \
    -u GRPC_FORKSAFE_LOG_FILE -u GRPC_FORKSAFE_QUIESCE_MS -u GRPC_FORKSAFE_OBJECTS \
    -u GRPC_FORKSAFE_EMBEDDED -u GRPC_ENABLE_FORK_SUPPORT "${envs[@]}" "$@" \
    </dev/null >"$OUT/$name.out" 2>"$OUT/$name.err"
  STATUS=$?
}

# "exited 0", "timed out after 60 s (hang)", ... for a status from timeout(1).
describe_exit() {
  case "$1" in
    124|137) echo "timed out after $LIMIT s (hang)" ;;
    *) echo "exited $1" ;;
  esac
}

# --- the echo server and the byte sink ---------------------------------------

start_echo_server() {
  ECHO_SERVER_BIN=$SERVER
  SERVER_LOG=$OUT/calls.log
  if ! echo_server_start "$OUT" timeout "$1"; then
    echo "FAIL echo-server: did not start"
    exit 1
  fi
  PORT=$ECHO_PORT
}

# A byte sink of its own for run $1: its log is complete once it has exited,
# which stop_sink waits for. Sets SINK_PID and SINK_PORT.
start_sink() {
  local dir=$OUT/$1.sink
  mkdir -p "$dir"
  timeout "$LIMIT" "$BIN/byte-sink" "$dir/port" "$dir/log" 2>"$dir/err" &
  SINK_PID=$!
  SINK_LOG=$dir/log
  await_port_file "$dir/port" "$SINK_PID"
  SINK_PORT=$(cat "$dir/port" 2>/dev/null)
  [ -n "$SINK_PORT" ]
}
stop_sink() {
  kill "$SINK_PID" 2>/dev/null
  wait "$SINK_PID" 2>/dev/null
}

# --- what the server saw ------------------------------------------------------

# The server logs "<caller pid> <run>:<tag> <peer>" per call. Prints the
# peers (one per line, sorted, unique) of run $1's calls whose tag starts
# with $2 ("parent-", "child").
peers_of() {
  awk -v p="$1:$2" 'index($2, p) == 1 { print $3 }' "$SERVER_LOG" | sort -u
}

# Number of run $1's calls whose tag starts with $2.
calls_of() {
  awk -v p="$1:$2" 'index($2, p) == 1 { n++ } END { print n + 0 }' "$SERVER_LOG"
}

# Problems with where run $1's calls went: the parent's ($2 of them, tags
# "parent-...") all on one connection, no child's call ("child...") on it,
# and no connection carrying the calls of two processes. Silent if none.
connection_problems() {
  local run=$1 want=$2 n parent shared
  n=$(calls_of "$run" parent-)
  [ "$n" -eq "$want" ] || printf 'the server saw %d parent calls, not %d; ' "$n" "$want"
  parent=$(peers_of "$run" parent-)
  [ "$(grep -c . <<<"$parent")" -le 1 ] ||
    printf "the parent's calls came over %s, not one connection; " "$(paste -sd' ' - <<<"$parent")"
  shared=$(comm -12 <(echo "$parent") <(peers_of "$run" child) | paste -sd' ' -)
  [ -z "$shared" ] || printf "a child called over the parent's connection %s; " "$shared"
  check_connections_per_pid "$run" "$SERVER_LOG"
}

# --- what the shim said -------------------------------------------------------

# Problems with the shim's log in $1 (a run at GRPC_FORKSAFE_LOG=debug with
# $2 forks): it must have found gRPC in the program at start-up, and each
# child must have neutralised at least one inherited descriptor.
shim_log_problems() {
  local err=$1 forks=$2 n
  grep -qE "grpc-forksafe: debug: [^ ]+ has gRPC linked in \([1-9][0-9]* functions\)" "$err" ||
    printf 'the shim did not say it found gRPC linked into the program; '
  n=$(grep -cE "grpc-forksafe: [a-z]+: child: generation [0-9]+, [1-9][0-9]* inherited gRPC fds neutralised" "$err")
  [ "$n" -eq "$forks" ] ||
    printf '%d child log lines say inherited gRPC fds were neutralised (count > 0), not %d; ' "$n" "$forks"
}

# Lines of file $1 matching $2 (an extended regular expression), for notes.
lines() { grep -E -- "$2" "$1"; }
