#!/bin/sh
# The demo: run the same unmodified forking client (build/fork-demo) twice
# against a local echo server, once as it is and once with the shim preloaded,
# and show side by side what happened to the parent's and the child's RPCs.
#
# Usage: demo/run-demo.sh        (normally through `make demo`, which builds
#                                 everything first)
# Exit status: 0 only if the run with the shim succeeded.
set -u

BUILD=${BUILD:-build}
SERVER=$BUILD/echo-server
CLIENT=$BUILD/fork-demo
SHIM=$(cd "$(dirname "$BUILD/libgrpc_forksafe.so")" 2>/dev/null && pwd)/libgrpc_forksafe.so
RPCS=3             # RPCs the child makes, and the parent after the fork
RUN_TIMEOUT=30     # seconds; a run needs at most ~15 (2 s deadline per RPC)

for f in "$SERVER" "$CLIENT" "$SHIM"; do
  if [ ! -e "$f" ]; then
    echo "demo: $f is missing; run \`make demo\` to build it" >&2
    exit 2
  fi
done

tmp=$(mktemp -d)
. "$(dirname "$0")/../scripts/echo-server.sh"
ECHO_SERVER_BIN=$SERVER
echo_server_stop_on_exit "$tmp"

# The server picks a free port and writes it to a file once it accepts calls.
echo_server_start "$tmp" || exit 2
target=127.0.0.1:$ECHO_PORT

# run NAME [VAR=VALUE...]: runs the client with that environment under
# `timeout`, shows its output indented, keeps it in $tmp/NAME.out and its
# exit status in $tmp/NAME.rc.
run() {
  name=$1
  shift
  echo
  echo "\$ $* $CLIENT $target --rpcs $RPCS" | sed -e "s|$PWD/||g" -e 's/^\$  /$ /'
  timeout -k 2 $RUN_TIMEOUT env "$@" "$CLIENT" "$target" --rpcs $RPCS >"$tmp/$name.out" 2>&1
  echo $? >"$tmp/$name.rc"
  sed 's/^/    /' "$tmp/$name.out"
}

echo "grpc-forksafe demo: an ordinary grpc++ client makes an RPC, forks; the child"
echo "makes $RPCS RPCs on a new channel to the same server and exits; then the parent"
echo "makes $RPCS more RPCs on its original channel. Every RPC has a 2 s deadline."
echo "Echo server: $target"

echo
echo "=== Run 1: without the shim ==="
run plain
echo
echo "=== Run 2: with the shim (LD_PRELOAD) ==="
run shim LD_PRELOAD="$SHIM"

# count NAME ROLE: "ok/total" for that role's RPCs. The totals are what the
# client plans to make, so RPCs never reached (a hang, a crash) count as failed.
count() {
  case $2 in parent) total=$((RPCS + 1)) ;; child) total=$RPCS ;; esac
  ok=$(grep -c "^$2 *(pid [0-9]*): RPC .* ok " "$tmp/$1.out")
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

verdict() {
  rc=$(cat "$tmp/$1.rc")
  if [ "$rc" = 0 ]; then echo "PASS"
  elif [ "$rc" = 124 ] || [ "$rc" = 137 ]; then echo "FAIL (timed out after ${RUN_TIMEOUT} s)"
  else echo "FAIL (exit status $rc)"
  fi
}

echo
echo "=== Summary ==="
row() { printf '%-44s %-24s %s\n' "$@"; }
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
if [ "$(cat "$tmp/shim.rc")" = 0 ]; then
  echo "With the shim every RPC in both processes succeeded."
  exit 0
fi
echo "With the shim the run FAILED; its output is above."
exit 1
