# Starting and stopping build/echo-server, for the demo, the benchmarks and
# the tests. Source this file and set ECHO_SERVER_BIN, then:
#   echo_server_start DIR [PREFIX...]
#       runs PREFIX... $ECHO_SERVER_BIN on a free loopback port (a prefix such
#       as `timeout 600` or `taskset -c 1`), logging every call to
#       DIR/calls.log; sets ECHO_PID and ECHO_PORT once it accepts calls, or
#       says why not and returns 1.
#   echo_server_stop [PID]
#       SIGTERM (the server shuts down gracefully), SIGKILL if it is still
#       there 5 s later; PID defaults to ECHO_PID.
#   echo_server_stop_on_exit DIR
#       arranges for the server to be stopped and DIR removed when the
#       script exits, also on SIGINT and SIGTERM.
#   make_tls_cert DIR
#       a throwaway self-signed certificate for localhost and 127.0.0.1,
#       which TLS clients also take as their only root: DIR/cert.pem and
#       DIR/key.pem (openssl's output in DIR/openssl.log); false if it failed.
#   with_tls_files DIR COMMAND...
#       a prefix for echo_server_start: the server serves TLS with DIR's
#       certificate and key.
#   await_port_file FILE PID
#       waits, 10 s at most, until the server of PID (this one or a test's
#       own, such as a byte sink) has written its port to FILE; false if it
#       did not, or ended first.

await_port_file() {
  local file=$1 pid=$2 _
  for _ in $(seq 100); do
    [ -s "$file" ] && return 0
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  [ -s "$file" ]
}

echo_server_start() {
  local dir=$1
  shift
  rm -f "$dir/server.port"
  "$@" "$ECHO_SERVER_BIN" --listen 127.0.0.1:0 --port-file "$dir/server.port" \
    --log "$dir/calls.log" 2>"$dir/server.err" &
  ECHO_PID=$!
  # The server writes its port once it accepts calls.
  await_port_file "$dir/server.port" "$ECHO_PID"
  ECHO_PORT=$(cat "$dir/server.port" 2>/dev/null)
  if [ -z "$ECHO_PORT" ]; then
    echo "echo-server did not start within 10 s:" >&2
    cat "$dir/server.err" >&2
    return 1
  fi
}

echo_server_stop() {
  local pid="${1:-${ECHO_PID:-}}" _
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null
  wait "$pid" 2>/dev/null
  [ -n "${1:-}" ] || ECHO_PID=
}

echo_server_stop_on_exit() {
  # shellcheck disable=SC2064 # DIR is expanded now, on purpose
  trap "echo_server_stop; rm -rf '$1'" EXIT
  trap 'exit 130' INT TERM
}

make_tls_cert() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
    -subj /CN=localhost -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    -keyout "$1/key.pem" -out "$1/cert.pem" >"$1/openssl.log" 2>&1
}

# exec keeps the pid the one echo_server_start started.
with_tls_files() {
  local dir=$1
  shift
  exec "$@" --tls-cert "$dir/cert.pem" --tls-key "$dir/key.pem"
}
