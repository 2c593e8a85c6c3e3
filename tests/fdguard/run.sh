#!/usr/bin/env bash
# The descriptor guard, judged by what real processes see: each fd-probe
# scenario runs without the shim (it must pass: nothing the shim adds may
# break it) and with the shim, its library named in GRPC_FORKSAFE_OBJECTS, where the
# probe also checks what only the shim provides (FDPROBE_SHIM=1). A run that
# does not end within FDGUARD_TIMEOUT seconds (20) has hung: that is a failure.
# Usage: run.sh SHIM PROBE OUTDIR
set -u
shim=$(realpath "$1")
probe=$(realpath "$2")
out=$3
rm -rf "$out" && mkdir -p "$out"
LIMIT=${FDGUARD_TIMEOUT:-20}
. "$(dirname "$0")/../../scripts/verdicts.sh"

# run NAME [VAR=value...] -- SCENARIO: status in STATUS, output in $out/NAME.*
run() {
  local name=$1 envs=()
  shift
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  timeout -k 5 "$LIMIT" env -u LD_PRELOAD -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_LOG \
    -u GRPC_FORKSAFE_LOG_FILE -u GRPC_FORKSAFE_OBJECTS "${envs[@]}" "$probe" "$1" \
    </dev/null >"$out/$name.out" 2>"$out/$name.err"
  STATUS=$?
}

judge() {
  local name=$1
  if [ "$STATUS" -eq 124 ] || [ "$STATUS" -eq 137 ]; then
    fail "$name" "hung (no end within $LIMIT s)" "$out/$name.out" "$out/$name.err"
  elif [ "$STATUS" -ne 0 ] || ! grep -qx 'RESULT ok' "$out/$name.out"; then
    fail "$name" "exited $STATUS: $(grep -m1 '^RESULT' "$out/$name.out")" "$out/$name.out" "$out/$name.err"
  elif grep -q 'grpc-forksafe: \(error\|warn\)' "$out/$name.err"; then
    fail "$name" "the shim complained" "$out/$name.err"
  else
    pass "$name"
  fi
}

for s in signal-close blocking-accept closefrom-child dup2-parent close-range-parent dupfd vfork-close; do
  run "$s-plain" -- "$s"
  judge "$s-plain"
  run "$s" LD_PRELOAD="$shim" GRPC_FORKSAFE_OBJECTS=libfdside. FDPROBE_SHIM=1 -- "$s"
  judge "$s"
done
summary fdguard
