#!/bin/sh
# The benchmarks: each one runs with and without the shim in the same session,
# alternating (without/with, then with/without, ...) so that drift in the
# machine's speed hits both sides alike. Every program runs under `timeout`.
# Writes a markdown report to $BUILD/bench/report.md and prints it.
#
# Usage: bench/run-bench.sh      (normally through `make bench`)
# Knobs (environment): BENCH_RUNS (7), BENCH_UNARY_SECONDS (3),
#   BENCH_FORK_ITERATIONS (500), BENCH_FIRST_RPC_SAMPLES (25)
set -u

BUILD=${BUILD:-build}
BIN=$BUILD/bench
SERVER=$BUILD/echo-server
SHIM=$(cd "$BUILD" 2>/dev/null && pwd)/libgrpc_forksafe.so
REPORT=$BIN/report.md
RUNS=${BENCH_RUNS:-7}
UNARY_SECONDS=${BENCH_UNARY_SECONDS:-3}
FORK_ITERATIONS=${BENCH_FORK_ITERATIONS:-500}
FIRST_RPC_SAMPLES=${BENCH_FIRST_RPC_SAMPLES:-25}

for f in "$SERVER" "$BIN/unary" "$BIN/fork-latency" "$BIN/first-rpc"; do
  if [ ! -x "$f" ]; then
    echo "bench: $f is missing; run \`make bench\` to build it" >&2
    exit 2
  fi
done
# Without the shim the benchmarks still run, with the "with shim" side empty.
sides="without with"
if [ ! -e "$SHIM" ]; then
  echo "bench: WARNING: $SHIM does not exist; measuring without the shim only" >&2
  sides="without"
fi

tmp=$(mktemp -d)
. "$(dirname "$0")/../scripts/echo-server.sh"
ECHO_SERVER_BIN=$SERVER
echo_server_stop_on_exit "$tmp"

# Where the client runs relative to the server decides unary throughput on a
# small VM far more than anything else (about 28k RPCs/s on the server's CPU,
# 10k on the other one: waking an idle CPU is slow). Left to the scheduler,
# runs flip between the two at random, so the server is pinned to the last
# CPU and the throughput client is pinned explicitly, once to each CPU.
ncpu=$(nproc)
server_cpu=$((ncpu - 1))
pin_server=""
placements="same"
if command -v taskset >/dev/null 2>&1; then
  pin_server="taskset -c $server_cpu"
  [ "$ncpu" -ge 2 ] && placements="same other"
fi

echo_server_start "$tmp" $pin_server || exit 2
target=127.0.0.1:$ECHO_PORT
started=$(date +%s)

# --- running ---------------------------------------------------------------

# order ROUND: the sides in the order round ROUND runs them (alternating).
order() {
  if [ "$sides" = without ]; then echo without
  elif [ $(($1 % 2)) -eq 1 ]; then echo "without with"
  else echo "with without"
  fi
}

# measure SIDE OUTFILE SECONDS PROGRAM ARGS...: runs PROGRAM with the shim
# preloaded or not, killed after SECONDS; appends its result line to OUTFILE
# (or a line "timeout=1"/"crashed=<status>" if it produced none) and echoes
# the command and its result.
measure() {
  side=$1 out=$2 limit=$3
  shift 3
  if [ "$side" = with ]; then preload="LD_PRELOAD=$SHIM"; else preload=""; fi
  printf '  %-8s $ %s%s\n' "$side" "${preload:+$preload }" "$*" | sed "s|$PWD/||g"
  if [ "$side" = with ]; then
    timeout -k 2 "$limit" env LD_PRELOAD="$SHIM" "$@" >"$tmp/line" 2>>"$tmp/stderr.$side"
  else
    timeout -k 2 "$limit" "$@" >"$tmp/line" 2>>"$tmp/stderr.$side"
  fi
  rc=$?
  line=$(grep -m1 '=' "$tmp/line")
  if [ -z "$line" ]; then
    if [ $rc -eq 124 ] || [ $rc -eq 137 ]; then line="timeout=1"; else line="crashed=$rc"; fi
  fi
  echo "$line" >>"$out"
  echo "             -> $line"
}

echo "grpc-forksafe benchmarks against the echo server at $target"
echo "(started: ${pin_server:+$pin_server }$SERVER --listen 127.0.0.1:0 --port-file FILE)"

echo
echo "== 1/3 Unary RPC throughput: one sync client thread, ${UNARY_SECONDS} s per run, $RUNS runs per side"
for placement in $placements; do
  pin=""
  if [ -n "$pin_server" ]; then
    if [ "$placement" = same ]; then pin="taskset -c $server_cpu"; else pin="taskset -c 0"; fi
  fi
  for round in $(seq "$RUNS"); do
    for side in $(order "$round"); do
      # shellcheck disable=SC2086 # $pin is a command prefix, split on purpose
      measure "$side" "$tmp/unary-$placement.$side" $((UNARY_SECONDS + 20)) \
        $pin "$BIN/unary" "$target" "$UNARY_SECONDS"
    done
  done
done

echo
echo "== 2/3 Parent-side fork() latency: $FORK_ITERATIONS forks per run, $RUNS runs per side"
for channels in 1 100; do
  for round in $(seq "$RUNS"); do
    for side in $(order "$round"); do
      measure "$side" "$tmp/fork$channels.$side" 120 \
        "$BIN/fork-latency" "$target" "$channels" "$FORK_ITERATIONS"
    done
  done
done

echo
echo "== 3/3 fork() to first successful RPC: $FIRST_RPC_SAMPLES samples (processes) per case and side"
for mode in inherited new-in-child never-forked; do
  for round in $(seq "$FIRST_RPC_SAMPLES"); do
    for side in $(order "$round"); do
      measure "$side" "$tmp/first-$mode.$side" 15 "$BIN/first-rpc" "$target" "$mode"
    done
  done
done

# --- statistics --------------------------------------------------------------

# values KEY [FILE]: the values of KEY=... in FILE's lines, or standard
# input's (lines without it are skipped; "-" values too).
values() {
  if [ $# -eq 2 ]; then
    [ -f "$2" ] || return 0
    values "$1" <"$2"
    return
  fi
  sed -n "s/.*\\<$1=\\([^ ]*\\).*/\\1/p" | grep -v '^-$'
}

# stat median|p90 < numbers: median (mean of the middle two when even) or
# nearest-rank 90th percentile; "-" when there are no numbers.
stat() {
  sort -g | awk -v what="$1" '
    { v[NR] = $1 }
    END {
      if (NR == 0) { print "-"; exit }
      if (what == "median") print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
      else { r = int(0.9 * NR); if (r < 0.9 * NR) r++; print v[r] }
    }'
}

# fmt DECIMALS NUMBER: NUMBER rounded, or "-".
fmt() { if [ "$2" = - ]; then echo -; else printf "%.${1}f" "$2"; fi; }

# ratio A B: A/B to 3 decimals, or "-".
ratio() {
  if [ "$1" = - ] || [ "$2" = - ]; then echo -; else awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; fi
}

# count FILE PATTERN: lines of FILE matching PATTERN.
count() { if [ -f "$1" ]; then grep -c "$2" "$1"; else echo 0; fi; }

# --- report ----------------------------------------------------------------

grpc_version=$(dpkg-query -W -f='${Version}' libgrpc29 2>/dev/null || echo unknown)
cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
shim_state="$SHIM (GRPC_FORKSAFE_MODE unset: the default, reconnect)"
[ "$sides" = without ] && shim_state="NOT AVAILABLE: $SHIM does not exist"

{
  echo "# grpc-forksafe benchmark report"
  echo
  echo "- Date: $(date -u '+%Y-%m-%d %H:%M UTC'); whole run: $(( $(date +%s) - started )) s"
  echo "- Machine: $(nproc) CPUs, $cpu; kernel $(uname -r)"
  echo "- gRPC: Debian libgrpc29 / libgrpc++1.51 $grpc_version"
  echo "- Shim: $(echo "$shim_state" | sed "s|$PWD/||g")"
  echo "- Server: ${pin_server:+$pin_server }$SERVER on $target (same machine, loopback)"
  echo "- Command: \`make bench\` (bench/run-bench.sh)"
  echo
  echo "## 1. Unary RPC throughput"
  echo
  echo "One synchronous grpc++ client thread making Say RPCs back to back for ${UNARY_SECONDS} s"
  echo "after a 0.5 s warm-up; $RUNS runs per side, alternating; median of the runs."
  if [ -n "$pin_server" ]; then
    echo "The server is pinned to CPU $server_cpu; the client runs once on that CPU (client"
    echo "and server take turns on one CPU: CPU-bound, so any CPU the shim costs shows"
    echo "fully) and once on CPU 0 (every call wakes the other CPU: latency-bound, like"
    echo "a server elsewhere)."
  fi
  echo
  echo "    ${pin_server:+taskset -c CPU }$BIN/unary $target $UNARY_SECONDS"
  echo
  echo "| client placement | without shim: RPCs/s | with shim: RPCs/s | ratio with/without | all runs without | all runs with | runs with errors (without / with) |"
  echo "|---|---:|---:|---:|---|---|---|"
  for placement in $placements; do
    case $placement in
      same) label="server's CPU ($server_cpu)" ;;
      other) label="other CPU (0)" ;;
    esac
    fa=$tmp/unary-$placement.without fb=$tmp/unary-$placement.with
    a=$(values rpcs_per_s "$fa" | stat median)
    b=$(values rpcs_per_s "$fb" | stat median)
    runs_a=$(values rpcs_per_s "$fa" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')
    runs_b=$(values rpcs_per_s "$fb" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')
    bad='timeout=\|crashed=\|failures=[1-9]'
    echo "| $label | $(fmt 0 "$a") | $(fmt 0 "$b") | $(ratio "$b" "$a") | ${runs_a:--} | ${runs_b:--} | $(count "$fa" "$bad") / $(count "$fb" "$bad") |"
  done
  echo
  echo "## 2. Parent-side fork() latency"
  echo
  echo "Time for fork() to return in the parent, which holds live channels (each"
  echo "with its own TCP connection, each used once). The child calls _exit(0) at"
  echo "once; the parent reaps it before the next fork. $FORK_ITERATIONS timed forks per run"
  echo "after 10 untimed; $RUNS runs per side; median of the runs' medians and p90s."
  echo
  echo "    $BIN/fork-latency $target CHANNELS $FORK_ITERATIONS"
  echo
  echo "The process's first fork() is not among the timed ones: it can pay one-off"
  echo "costs. Its own time (median over the runs) is in the last time column."
  echo
  echo "| live channels | without: median µs | without: p90 µs | with: median µs | with: p90 µs | ratio of medians | first fork() µs (without / with) | channels alive after (without / with) |"
  echo "|---:|---:|---:|---:|---:|---:|---|---|"
  for channels in 1 100; do
    am=$(values median_us "$tmp/fork$channels.without" | stat median)
    ap=$(values p90_us "$tmp/fork$channels.without" | stat median)
    bm=$(values median_us "$tmp/fork$channels.with" | stat median)
    bp=$(values p90_us "$tmp/fork$channels.with" | stat median)
    alive_a=$(values channels_ok_after "$tmp/fork$channels.without" | sort -u | paste -sd, -)
    alive_b=$(values channels_ok_after "$tmp/fork$channels.with" | sort -u | paste -sd, -)
    af=$(values first_us "$tmp/fork$channels.without" | stat median)
    bf=$(values first_us "$tmp/fork$channels.with" | stat median)
    echo "| $channels | $(fmt 1 "$am") | $(fmt 1 "$ap") | $(fmt 1 "$bm") | $(fmt 1 "$bp") | $(ratio "$bm" "$am") | $(fmt 0 "$af") / $(fmt 0 "$bf") | ${alive_a:--} / ${alive_b:--} |"
  done
  echo
  echo "## 3. From fork() to the first successful RPC"
  echo
  echo "One sample per process. The parent makes an RPC on a plain channel, forks,"
  echo "and the child makes RPCs (retrying at once on failure) until one succeeds"
  echo "or 2 s have passed since fork(); a child that has not reported after 4 s is"
  echo "killed. Then the parent makes one RPC (1 s deadline) on its own channel."
  echo "The baseline is a process that never forks creating a new channel (gRPC"
  echo "already warm). $FIRST_RPC_SAMPLES samples per case and side, alternating. Each sample's"
  echo "fork() is its process's first, like a server forking its workers at start-up."
  echo
  echo "    $BIN/first-rpc $target inherited|new-in-child|never-forked"
  echo
  echo "\"child running\" is the median time from fork() until fork() returned in the"
  echo "child, that is until the fork handlers had run there; it is part of the first column."
  echo
  echo "| case | side | median µs | p90 µs | child running, median µs | succeeded | needed retries | parent's channel alive after |"
  echo "|---|---|---:|---:|---:|---:|---:|---:|"
  for mode in inherited new-in-child never-forked; do
    case $mode in
      inherited) label="child, inherited stub" ;;
      new-in-child) label="child, brand-new channel" ;;
      never-forked) label="never forked, brand-new channel" ;;
    esac
    for side in without with; do
      f=$tmp/first-$mode.$side
      [ -f "$f" ] || continue
      n=$(wc -l <"$f")
      ok=$(count "$f" 'ok=1')
      retried=$(grep 'ok=1' "$f" | values attempts | grep -vc '^1$')
      if [ "$mode" = never-forked ]; then alive="n/a"; else alive="$(count "$f" 'parent_after=ok')/$n"; fi
      us=$(grep 'ok=1' "$f" | values us)
      running=$(values child_running_us "$f" | stat median)
      echo "| $label | $side shim | $(fmt 0 "$(echo "$us" | stat median)") | $(fmt 0 "$(echo "$us" | stat p90)") | $(fmt 0 "$running") | $ok/$n | $retried | $alive |"
    done
  done
  echo
  fails=$(cat "$tmp"/first-*.* 2>/dev/null | sed -n 's/.*error=\([^ ]*\).*/\1/p' | sort | uniq -c | sort -rn)
  if [ -n "$fails" ]; then
    echo "Errors seen by children whose RPCs never succeeded (count, last status):"
    echo
    echo "$fails" | sed 's/^ */    /'
    echo
  fi
  for side in without with; do
    if [ -s "$tmp/stderr.$side" ]; then
      echo "Standard error of the benchmark programs, $side shim (first 20 distinct lines):"
      echo
      sed -e 's/\[[0-9]*\]/[PID]/' -e 's/^\([EWID]\)[0-9]\{4\} [0-9:.]* *[0-9]* /\1 /' "$tmp/stderr.$side" | sort | uniq -c | sort -rn | head -20 | sed 's/^ */    /'
      echo
    fi
  done
} | sed "s|$PWD/||g" >"$REPORT"

echo
echo "Report written to $REPORT"
echo
cat "$REPORT"
