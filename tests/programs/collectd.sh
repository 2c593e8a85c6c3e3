#!/bin/bash
# A real Debian program that serves gRPC and forks: collectd (collectd-core),
# its grpc plugin serving on loopback and its exec plugin starting a probe
# (fork, exec, as user nobody) every second. A client queries the grpc plugin
# nonstop for 10 s while collectd runs, once without the shim and once with
# it. With the shim, collectd must fork as often as without it, every query
# must succeed, nothing of the shim may appear in collectd's output, and the
# shim (logging at info into a file) must have handled every fork: by
# default without running any gRPC code (the child gets a fresh gRPC), with
# GRPC_FORKSAFE_CHILD_GRPC=inherited with core's handlers run.
#
# Usage: collectd.sh --shim SO --out DIR
# Environment: FORKSAFE_COLLECTD_SECONDS, how long the client queries (10).

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/verdicts.sh"

SHIM='' OUT=''
while [ $# -gt 0 ]; do
  case "$1" in
    --shim) SHIM=$(realpath -m "$2"); shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) echo "usage: $0 --shim SO --out DIR" >&2; exit 2 ;;
  esac
done
[ -n "$SHIM" ] && [ -n "$OUT" ] || { echo "usage: $0 --shim SO --out DIR" >&2; exit 2; }
[ -e "$SHIM" ] || { echo "$0: $SHIM does not exist (run make first)" >&2; exit 2; }
COLLECTD=$(command -v collectd || echo /usr/sbin/collectd)
[ -x "$COLLECTD" ] || { echo "$0: collectd not found (apt-get install collectd-core)" >&2; exit 2; }
SECONDS_=${FORKSAFE_COLLECTD_SECONDS:-10}
rm -rf "$OUT"
mkdir -p "$OUT"

# The probe runs as nobody, which must reach it and write its mark: a world-
# readable directory of its own under /tmp, whatever the checkout's.
WORK=$(mktemp -d /tmp/forksafe-collectd.XXXXXX)
chmod 755 "$WORK"
mkdir -m 1777 "$WORK/marks"
trap 'rm -rf "$WORK"' EXIT
cat >"$WORK/probe.sh" <<'PROBE'
#!/bin/sh
# One value per run; each run is one fork and exec of collectd's.
echo "$$" >>"$(dirname "$0")/marks/runs"
echo "PUTVAL \"forksafe-test/exec-probe/gauge-runs\" interval=1 N:$$"
PROBE
chmod 755 "$WORK/probe.sh"

# A free loopback port for the grpc plugin.
PORT=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat >"$WORK/collectd.conf" <<CONF
Interval 1
FQDNLookup false
Hostname "forksafe-test"
LoadPlugin exec
LoadPlugin grpc
LoadPlugin csv
<Plugin exec>
  Exec "nobody:nogroup" "$WORK/probe.sh"
</Plugin>
<Plugin grpc>
  <Listen "127.0.0.1" "$PORT">
  </Listen>
</Plugin>
<Plugin csv>
  DataDir "$WORK/csv"
</Plugin>
CONF

# The client: QueryValues, the grpc plugin's server-streaming method, called
# through grpcio with raw bytes (an empty request), one call after another.
cat >"$WORK/query.py" <<'PY'
import sys, time
import grpc
port, seconds = sys.argv[1], float(sys.argv[2])
ok = failed = 0
first_error = ""
end = time.monotonic() + seconds
while time.monotonic() < end:
    with grpc.insecure_channel("127.0.0.1:" + port) as ch:
        try:
            list(ch.unary_stream("/collectd.Collectd/QueryValues")(b"", timeout=2))
            ok += 1
        except grpc.RpcError as e:
            failed += 1
            first_error = first_error or "%s %s" % (e.code(), e.details())
    time.sleep(0.05)
print("queries ok=%d failed=%d %s" % (ok, failed, first_error))
PY

# Runs collectd in the foreground ($1: run name, then the environment for it)
# while the client queries; sets RUNS (probe runs), QUERIES (the client's
# line) and STATUS (collectd's exit status after SIGTERM).
run_collectd() {
  local run=$1 pid _
  shift
  rm -f "$WORK/marks/runs"
  timeout -k 5 $((SECONDS_ + 60)) env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_LOG \
    -u GRPC_FORKSAFE_LOG_FILE "$@" "$COLLECTD" -f -C "$WORK/collectd.conf" \
    >"$OUT/$run.out" 2>"$OUT/$run.err" &
  pid=$!
  # Until the grpc plugin accepts connections (10 s at most).
  for _ in $(seq 100); do
    grep -q "grpc: Listening on" "$OUT/$run.out" "$OUT/$run.err" 2>/dev/null && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  QUERIES=$(timeout $((SECONDS_ + 30)) /usr/bin/python3 "$WORK/query.py" "$PORT" "$SECONDS_" 2>&1)
  RUNS=$(wc -l <"$WORK/marks/runs" 2>/dev/null || echo 0)
  kill -TERM "$pid" 2>/dev/null
  wait "$pid"
  STATUS=$?
}

run_collectd stock
stock_runs=$RUNS stock_queries=$QUERIES
problems=""
[ "$STATUS" -eq 0 ] || problems+="collectd exited $STATUS; "
[[ "$QUERIES" =~ ^queries\ ok=[1-9][0-9]*\ failed=0 ]] || problems+="the client saw: $QUERIES; "
[ "$RUNS" -ge $((SECONDS_ - 2)) ] || problems+="only $RUNS probe runs in $SECONDS_ s; "
name="without the shim, collectd serves gRPC and forks its probe every second ($RUNS runs, $QUERIES)"
if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$OUT/stock.out" "$OUT/stock.err"; fi

# The shim's lines go to a file every process can append to (the probe's
# shell runs as nobody); collectd's own output must hold none of them.
install -m 0666 /dev/null "$WORK/shim.log"
run_collectd shim LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=info GRPC_FORKSAFE_LOG_FILE="$WORK/shim.log"
cp "$WORK/shim.log" "$OUT/shim.log"
problems=""
[ "$STATUS" -eq 0 ] || problems+="collectd exited $STATUS; "
[[ "$QUERIES" =~ ^queries\ ok=[1-9][0-9]*\ failed=0 ]] || problems+="the client saw: $QUERIES; "
[ "$RUNS" -ge $((stock_runs - 1)) ] || problems+="$RUNS probe runs, against $stock_runs without the shim; "
n=$(cat "$OUT/shim.out" "$OUT/shim.err" | grep -c "grpc-forksafe")
[ "$n" -eq 0 ] || problems+="$n lines of the shim in collectd's output; "
# Each fork for the probe must have been handled: by default the child gets a
# fresh gRPC and nothing of gRPC runs at the fork; with the inherited gRPC,
# core's handlers must have run.
if [ "${GRPC_FORKSAFE_CHILD_GRPC:-fresh}" = fresh ]; then
  handled='the child gets a fresh gRPC of its own'
else
  handled='core fork handlers ran'
fi
forks=$(grep -cE "grpc-forksafe: info: fork: child [0-9]+ is generation 1; .*$handled" "$OUT/shim.log")
[ "$forks" -ge "$RUNS" ] || problems+="the shim handled $forks forks saying '$handled', for $RUNS probe runs; "
n=$(grep -cE "grpc-forksafe: (warn|error):" "$OUT/shim.log")
[ "$n" -eq 0 ] || problems+="the shim logged $n warn or error lines; "
name="with the shim, collectd forks as often ($RUNS runs against $stock_runs, $QUERIES), quietly"
if [ -z "$problems" ]; then pass "$name"; else fail "$name" "${problems%; }" "$OUT/shim.out" "$OUT/shim.err" "$OUT/shim.log"; fi
summary "collectd"
