#!/bin/bash
# Runs each fuzz target for a bounded time on its corpus (tests/fuzz/corpus/
# NAME, plus what earlier runs found in OUT/corpus-NAME) and says whether it
# found a crash. Usage: run.sh --out DIR --seconds N
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/verdicts.sh"
OUT='' SECS=''
while [ $# -gt 1 ]; do
  case $1 in
    --out) OUT=$2 ;;
    --seconds) SECS=$2 ;;
    *) echo "usage: $0 --out DIR --seconds N" >&2; exit 2 ;;
  esac
  shift 2
done
[ -n "$OUT" ] && [ -n "$SECS" ] || { echo "usage: $0 --out DIR --seconds N" >&2; exit 2; }

for name in config symranges elfcopy; do
  bin=$OUT/fuzz_$name found=$OUT/corpus-$name log=$OUT/$name.log
  mkdir -p "$found" "$OUT/crashes-$name"
  [ "$name" != symranges ] || cp "$OUT/seed-elf" "$found/seed-elf"
  # A real library of gRPC's (65 KB) with names to rename and a unique symbol.
  [ "$name" != elfcopy ] || [ ! -r /usr/lib/x86_64-linux-gnu/libgpr.so.29 ] ||
    cp /usr/lib/x86_64-linux-gnu/libgpr.so.29 "$found/libgpr.so.29"
  # -close_fd_mask=2: the parsers' one-line warnings would flood the log.
  timeout -k 5 $((SECS + 60)) "$bin" -max_total_time="$SECS" -close_fd_mask=2 \
    -artifact_prefix="$OUT/crashes-$name/" "$found" "$HERE/corpus/$name" >"$log" 2>&1
  status=$?
  runs=$(sed -nE 's/^Done ([0-9]+) runs.*/\1/p' "$log")
  if [ "$status" -eq 0 ] && [ -n "$runs" ]; then
    pass "fuzz_$name: $runs inputs in $SECS s, no crash"
  else
    fail "fuzz_$name: exit status $status (crash inputs in $OUT/crashes-$name)" "see $log" "$log"
  fi
done
summary fuzz
