# Running gunicorn as users start it, for the test scripts: --preload, sync
# workers, the application tests/python/gunicorn_app.py (a grpcio channel and
# stub made at import, one RPC per HTTP request), driven by
# tests/python/http_requests.py. Source this file (bash), set
#   GUNICORN_OUT      directory for each run's NAME.out, .err, .http, .http-err
#   GUNICORN_TARGET   the echo server's address (host:port)
#   GUNICORN_STUBS    directory holding echo_pb2.py and echo_pb2_grpc.py
#   GUNICORN_LIMIT    seconds the HTTP requests may take in all
#   GUNICORN_REQUESTS how many requests (default 60)
# then:
#   gunicorn_run NAME RPC_AT_IMPORT [PREFIX...]
#       PREFIX... gunicorn with 3 workers under timeout(1), which makes a
#       process group of its own; waits for the workers, makes the requests
#       (the driver's line, "N ok, N failed, ...", in NAME.http), then stops
#       it with SIGTERM. RPC_AT_IMPORT=1: the master makes an RPC before it
#       forks. The application's RPCs are tagged NAME:master:... and
#       NAME:worker:... in the echo server's log. Sets ST (gunicorn's, or the prefix's, exit status),
#       GUNICORN_PROBLEM (why the run went wrong, or empty) and
#       GUNICORN_FORK_HANGS. grpcio's prefork handler now and then hangs
#       inside os.fork() in the master, before the child exists, with or
#       without the shim (README, Known limits): such a run says nothing about
#       the children, and is made again, 3 runs at most.
#   gunicorn_kill_group
#       SIGKILL to whatever a run cut short left (for an EXIT trap).
GUNICORN=/usr/bin/gunicorn
GUNICORN_WORKERS=3
GUNICORN_REQUESTS=${GUNICORN_REQUESTS:-60}
GUNICORN_PID=
GUNICORN_PY=$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/python" && pwd)

gunicorn_run() {
  local name=$1 attempt
  GUNICORN_FORK_HANGS=0
  for attempt in 1 2 3; do
    gunicorn_attempt "$@"
    [ "$GUNICORN_HUNG_IN_FORK" = yes ] || break
    GUNICORN_FORK_HANGS=$((GUNICORN_FORK_HANGS + 1))
    cp "$GUNICORN_OUT/$name.err" "$GUNICORN_OUT/$name.fork-hang-$attempt.err"
  done
}

gunicorn_attempt() {
  local name=$1 rpc=$2 out=$GUNICORN_OUT/$1 port="" master booted _
  shift 2
  GUNICORN_PROBLEM="" GUNICORN_HUNG_IN_FORK=no
  : >"$out.http"
  # TMPDIR: an audit log left by a run cut short goes with the run's files.
  env -u GRPC_ENABLE_FORK_SUPPORT -u GRPC_DNS_RESOLVER PYTHONPATH="$GUNICORN_STUBS:$GUNICORN_PY" \
    PYTHONDONTWRITEBYTECODE=1 ECHO_TARGET="$GUNICORN_TARGET" RPC_AT_IMPORT="$rpc" RUN="$name" TMPDIR="$GUNICORN_OUT" \
    timeout -k 5 $((GUNICORN_LIMIT * 2)) "$@" "$GUNICORN" --preload -w $GUNICORN_WORKERS -k sync -b 127.0.0.1:0 \
    gunicorn_app:app </dev/null >"$out.out" 2>"$out.err" &
  GUNICORN_PID=$!
  # gunicorn says where it listens (port 0: the kernel chose) and its pid;
  # each worker says it boots once forked.
  for _ in $(seq 150); do
    [ "$(grep -c 'Booting worker with pid' "$out.err")" -ge $GUNICORN_WORKERS ] && break
    kill -0 "$GUNICORN_PID" 2>/dev/null || break
    sleep 0.1
  done
  port=$(sed -n 's|.*Listening at: http://127\.0\.0\.1:\([0-9][0-9]*\) .*|\1|p' "$out.err" | head -n 1)
  master=$(sed -n 's|.*Listening at: http://127\.0\.0\.1:[0-9]* (\([0-9][0-9]*\))$|\1|p' "$out.err" | head -n 1)
  booted=$(grep -c 'Booting worker with pid' "$out.err")
  if [ -n "$port" ] && [ "$booted" -ge $GUNICORN_WORKERS ]; then
    timeout -k 5 $((GUNICORN_LIMIT + 10)) /usr/bin/python3 "$GUNICORN_PY/http_requests.py" "http://127.0.0.1:$port" \
      "$GUNICORN_REQUESTS" "$GUNICORN_LIMIT" >"$out.http" 2>"$out.http-err" ||
      GUNICORN_PROBLEM="the HTTP client failed (status $?); "
  elif [ -n "$master" ] && kill -0 "$master" 2>/dev/null && [ "$(pgrep -c -P "$master")" -eq "$booted" ]; then
    # Every child made so far has booted: the master is inside fork().
    GUNICORN_HUNG_IN_FORK=yes
    ps -L -o pid,tid,stat,wchan:32,comm -p "$master" >>"$out.err" 2>&1
    # Booted workers, and a wrapper, whose report is moot, go too.
    gunicorn_kill_group
  else
    GUNICORN_PROBLEM="gunicorn did not start $GUNICORN_WORKERS workers within 15 s ($booted booted); "
  fi
  gunicorn_stop
}

# SIGKILL to everything in timeout(1)'s process group but timeout itself,
# which then exits by itself (and bash has no killed job to announce).
gunicorn_kill_group() {
  local pid
  [ -n "$GUNICORN_PID" ] || return 0
  for pid in $(pgrep -g "$GUNICORN_PID"); do
    [ "$pid" = "$GUNICORN_PID" ] || kill -KILL "$pid" 2>/dev/null
  done
}

# SIGTERM to timeout(1), which passes it on; gunicorn stops its workers
# (they get 30 s to finish a request). Whatever is left after 40 s is killed.
gunicorn_stop() {
  local _
  [ -n "$GUNICORN_PID" ] || return 0
  kill -TERM "$GUNICORN_PID" 2>/dev/null
  for _ in $(seq 400); do
    kill -0 "$GUNICORN_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$GUNICORN_PID" 2>/dev/null; then
    GUNICORN_PROBLEM+="gunicorn did not stop within 40 s of SIGTERM; "
    gunicorn_kill_group
  fi
  # The braces keep bash's notice of a killed job out of the test's output.
  # shellcheck disable=SC2034 # ST is read by the caller
  { wait "$GUNICORN_PID"; ST=$?; } 2>/dev/null
  GUNICORN_PID=
}
