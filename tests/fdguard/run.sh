#!/usr/bin/env bash
# The descriptor guard, judged by what real processes see: each fd-probe
# scenario runs without the shim (it must pass: nothing the shim adds may
# break it) and with the shim, its library named in GRPC_FORKSAFE_OBJECTS, where the
# probe also checks what only the shim provides (FDPROBE_SHIM=1). A run that
# does not end within FDGUARD_TIMEOUT seconds (20) has hung: that is a failure.
# ares-probe, a gRPC program that also uses c-ares for its own names, runs
# the same way (without GRPC_FORKSAFE_OBJECTS), and so does signal-fork,
# whose timer signal's handler forks while the main thread is inside the
# shim's locked code.
# Usage: run.sh SHIM PROBE ARES_PROBE SIGNAL_FORK OUTDIR
set -u
shim=$(realpath "$1")
probe=$(realpath "$2")
ares_probe=$(realpath "$3")
signal_fork=$(realpath "$4")
out=$5
rm -rf "$out" && mkdir -p "$out"
LIMIT=${FDGUARD_TIMEOUT:-20}
. "$(dirname "$0")/../../scripts/verdicts.sh"

# run NAME [VAR=value...] -- COMMAND...: status in STATUS, output in $out/NAME.*
run() {
  local name=$1 envs=()
  shift
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  timeout -k 5 "$LIMIT" env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_LOG \
    -u GRPC_FORKSAFE_LOG_FILE -u GRPC_FORKSAFE_OBJECTS "${envs[@]}" "$@" \
    </dev/null >"$out/$name.out" 2>"$out/$name.err"
  STATUS=$?
}

# judge NAME [EXPECTED]: EXPECTED, a basic regular expression, matches the
# shim's warn lines that the scenario calls for; any other is a complaint.
judge() {
  local name=$1 expected=${2:-^$}
  if [ "$STATUS" -eq 124 ] || [ "$STATUS" -eq 137 ]; then
    fail "$name" "hung (no end within $LIMIT s)" "$out/$name.out" "$out/$name.err"
  elif [ "$STATUS" -ne 0 ] || ! grep -qx 'RESULT ok' "$out/$name.out"; then
    fail "$name" "exited $STATUS: $(grep -m1 '^RESULT' "$out/$name.out")" "$out/$name.out" "$out/$name.err"
  elif grep 'grpc-forksafe: \(error\|warn\)' "$out/$name.err" | grep -qv "$expected"; then
    fail "$name" "the shim complained" "$out/$name.err"
  else
    pass "$name"
  fi
}

for s in signal-close blocking-accept closefrom-child dup2-parent close-range-parent raw-close dupfd vfork-close; do
  run "$s-plain" -- "$probe" "$s"
  judge "$s-plain"
  run "$s" LD_PRELOAD="$shim" GRPC_FORKSAFE_OBJECTS=libfdside. FDPROBE_SHIM=1 -- "$probe" "$s"
  judge "$s"
done
run own-c-ares-plain -- "$ares_probe"
judge own-c-ares-plain
run own-c-ares LD_PRELOAD="$shim" FDPROBE_SHIM=1 -- "$ares_probe"
judge own-c-ares

# The shim's lines (info) must show forks that found their thread inside its
# locked code, or the run tells nothing. A fork that finds the thread inside
# gRPC instead is expected too, with its warn lines: its child cannot use gRPC.
run signal-fork-plain -- "$signal_fork"
judge signal-fork-plain
run signal-fork LD_PRELOAD="$shim" FDPROBE_SHIM=1 GRPC_FORKSAFE_LOG=info -- "$signal_fork"
if [ "$STATUS" -eq 0 ] && ! grep -q "forked by a signal handler that interrupted grpc-forksafe's" "$out/signal-fork.err"; then
  fail signal-fork "no fork of the handler's landed in the shim's locked code" "$out/signal-fork.out"
else
  judge signal-fork "forking thread was inside gRPC\|child: gRPC cannot be used here"
fi
summary fdguard
