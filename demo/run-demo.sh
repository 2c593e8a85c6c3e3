#!/bin/sh
# The demo: run the same unmodified forking client twice against a local echo
# server, once as it is and once with the shim preloaded, and show side by
# side what happened to the parent's and the child's RPCs. Twice over: the
# grpc++ client (build/fork-demo, gRPC as a shared library) and its Python
# twin (demo/fork_demo.py, Debian's python3-grpcio, gRPC compiled in).
#
# Usage: demo/run-demo.sh        (normally through `make demo`, which builds
#                                 everything first)
# Environment: PYTHON, the interpreter python3-grpcio is installed for
#              (/usr/bin/python3).
# Exit status: 0 only if the runs with the shim succeeded.
set -u

BUILD=${BUILD:-build}
SERVER=$BUILD/echo-server
CLIENT=$BUILD/fork-demo
SHIM=$(cd "$(dirname "$BUILD/libgrpc_forksafe.so")" 2>/dev/null && pwd)/libgrpc_forksafe.so
PYTHON=${PYTHON:-/usr/bin/python3}
PY_CLIENT=$(dirname "$0")/fork_demo.py
PY_STUBS=$BUILD/python
RPCS=3             # RPCs the child makes, and the parent after the fork
RUN_TIMEOUT=30     # seconds; a run needs at most ~21 (2 s deadline per RPC)

for f in "$SERVER" "$CLIENT" "$SHIM" "$PY_STUBS/echo_pb2.py" "$PY_STUBS/echo_pb2_grpc.py"; do
  if [ ! -e "$f" ]; then
    echo "demo: $f is missing; run \`make demo\` to build it" >&2
    exit 2
  fi
done
if ! "$PYTHON" -c 'import grpc' 2>/dev/null; then
  echo "demo: $PYTHON cannot import grpc; install python3-grpcio (\`make demo\` does)" >&2
  exit 2
fi

tmp=$(mktemp -d)
. "$(dirname "$0")/../scripts/echo-server.sh"
ECHO_SERVER_BIN=$SERVER
echo_server_stop_on_exit "$tmp"

# The server picks a free port and writes it to a file once it accepts calls.
echo_server_start "$tmp" || exit 2
target=127.0.0.1:$ECHO_PORT
# The Python client names the server by DNS name, as applications do: name
# resolution is part of what gRPC does around a fork.
py_target=localhost:$ECHO_PORT

# run NAME CLIENT [VAR=VALUE...]: runs the grpc++ (CLIENT cpp) or the Python
# (CLIENT py) client with that environment under `timeout`, shows its output
# indented, keeps it in $tmp/NAME.out and its exit status in $tmp/NAME.rc.
run() {
  name=$1 client=$2
  shift 2
  case $client in
    cpp) set -- "$@" "$CLIENT" "$target" --rpcs $RPCS ;;
    py) set -- "$@" PYTHONPATH="$PY_STUBS" "$PYTHON" "$PY_CLIENT" "$py_target" --rpcs $RPCS ;;
  esac
  echo
  echo "\$ $*" | sed -e "s|$PWD/||g"
  timeout -k 2 $RUN_TIMEOUT env "$@" >"$tmp/$name.out" 2>&1
  echo $? >"$tmp/$name.rc"
  sed 's/^/    /' "$tmp/$name.out"
}

echo "grpc-forksafe demo: an ordinary grpc++ client makes an RPC, forks; the child"
echo "makes $RPCS RPCs on a new channel to the same server and exits; then the parent"
echo "makes $RPCS more RPCs on its original channel. Every RPC has a 2 s deadline."
echo "Echo server: $target"

echo
echo "=== Run 1: without the shim ==="
run plain cpp
echo
echo "=== Run 2: with the shim (LD_PRELOAD) ==="
run shim cpp LD_PRELOAD="$SHIM"

echo
echo "The same client in Python (grpcio, which has its own copy of gRPC compiled in),"
echo "with a multiprocessing child; the child also tries one RPC on the channel it"
echo "inherited. Echo server: $py_target"

echo
echo "=== Run 3: Python, without the shim ==="
run py-plain py
echo
echo "=== Run 4: Python, with the shim (LD_PRELOAD) ==="
run py-shim py LD_PRELOAD="$SHIM"

# count NAME ROLE: "ok/total" for that role's numbered RPCs (those on its own
# channels). The totals are what the client plans to make, so RPCs never
# reached (a hang, a crash) count as failed.
count() {
  case $2 in parent) total=$((RPCS + 1)) ;; child) total=$RPCS ;; esac
  ok=$(grep -c "^$2 *(pid [0-9]*): RPC [0-9]* .* ok " "$tmp/$1.out")
  echo "$ok/$total"
}

# connection NAME: whether the child's first RPC reached the server over the
# parent's TCP connection (the server reports the caller's address and port).
connection() {
  p=$(sed -n 's/^parent .*RPC 1 before fork .*(server saw \(.*\))$/\1/p' "$tmp/$1.out")
  c=$(sed -n 's/^child .*RPC 1 on a new channel .*(server saw \(.*\))$/\1/p' "$tmp/$1.out")
  if [ -z "$p" ] || [ -z "$c" ]; then echo "unknown"
  elif [ "$p" = "$c" ]; then echo "the parent's (shared)"
  else echo "its own"
  fi
}

# inherited NAME: what the Python child's RPC on its inherited channel did.
inherited() {
  line=$(grep '^child .*: RPC on the inherited channel ' "$tmp/$1.out")
  case $line in
    "") echo "not made" ;;
    *" ok "*) echo "ok" ;;
    *) echo "failed ($(printf "%s\n" "$line" | sed 's/.*FAILED *[0-9.]* ms *\([A-Za-z_]*\).*/\1/'))" ;;
  esac
}

verdict() {
  rc=$(cat "$tmp/$1.rc")
  if [ "$rc" = 0 ]; then echo "PASS"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "FAIL (timed out after ${RUN_TIMEOUT} s)"
  else echo "FAIL (exit status $rc)"
  fi
}

row() { printf '%-44s %-24s %s\n' "$@"; }

echo
echo "=== Summary: grpc++ ==="
row "" "without shim" "with shim"
row "parent RPCs ok (1 before fork + $RPCS after)" "$(count plain parent)" "$(count shim parent)"
row "child RPCs ok (new channel)" "$(count plain child)" "$(count shim child)"
row "child's TCP connection" "$(connection plain)" "$(connection shim)"
row "verdict" "$(verdict plain)" "$(verdict shim)"
echo
if [ "$(cat "$tmp/plain.rc")" != 0 ] && [ "$(connection plain)" = "the parent's (shared)" ]; then
  echo "Without the shim the child's new channel reused the parent's TCP connection"
  echo "(gRPC's subchannel pool survives fork), so both processes write on one socket"
  echo "and the parent's channel stops working."
fi

echo
echo "=== Summary: Python (grpcio) ==="
row "" "without shim" "with shim"
row "parent RPCs ok (1 before fork + $RPCS after)" "$(count py-plain parent)" "$(count py-shim parent)"
row "child RPCs ok (new channel)" "$(count py-plain child)" "$(count py-shim child)"
row "child's RPC on the inherited channel" "$(inherited py-plain)" "$(inherited py-shim)"
row "verdict" "$(verdict py-plain)" "$(verdict py-shim)"
echo
if grep -q '^child .*on a new channel .*Socket operation on non-socket' "$tmp/py-plain.out"; then
  echo "Without the shim gRPC closed the child's inherited socket at the fork but kept"
  echo "writing to its number, which the child had already reused for something else;"
  echo "had that been a connection of the child's own, gRPC would have written into it."
fi
if [ "$(inherited py-shim)" = "failed (ValueError)" ]; then
  echo "With the shim grpcio's own fork handling runs: it closes the inherited channel"
  echo "in the child (calls on it raise ValueError) and new channels work."
elif [ "$(inherited py-shim)" = "ok" ]; then
  echo "With the shim the child's inherited channel was given a connection of its own"
  echo "at the fork, and its calls and those on new channels work."
fi

echo
shim_rc=$(cat "$tmp/shim.rc")
py_shim_rc=$(cat "$tmp/py-shim.rc")
if [ "$shim_rc" = 0 ] && [ "$py_shim_rc" = 0 ]; then
  echo "With the shim every RPC the parents and children made on their own channels succeeded."
  exit 0
fi
echo "With the shim a run FAILED; its output is above."
exit 1
