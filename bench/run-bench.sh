#!/bin/sh
# The benchmarks: each one runs with and without the shim in the same session,
# alternating (without/with, then with/without, ...) so that drift in the
# machine's speed hits both sides alike. Every program runs under `timeout`.
# Writes a markdown report to $BUILD/bench/report.md and prints it.
#
# Usage: bench/run-bench.sh      (normally through `make bench`)
# Knobs (environment): BENCH_RUNS (7), BENCH_UNARY_SECONDS (3),
#   BENCH_FORK_ITERATIONS (500), BENCH_FIRST_RPC_SAMPLES (25),
#   BENCH_BUSY_FORKS (10), BENCH_BUSY_RUNS (3), BENCH_STORM_SECONDS (5),
#   BENCH_STORM_RUNS (3), BENCH_IDLE_SECONDS (5), BENCH_IDLE_RUNS (3),
#   BENCH_THREADS (8)
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
BUSY_FORKS=${BENCH_BUSY_FORKS:-10}
BUSY_RUNS=${BENCH_BUSY_RUNS:-3}
STORM_SECONDS=${BENCH_STORM_SECONDS:-5}
STORM_RUNS=${BENCH_STORM_RUNS:-3}
IDLE_SECONDS=${BENCH_IDLE_SECONDS:-5}
IDLE_RUNS=${BENCH_IDLE_RUNS:-3}
THREADS=${BENCH_THREADS:-8}

for f in "$SERVER" "$BIN/unary" "$BIN/fork-latency" "$BIN/first-rpc" "$BIN/fork-storm" "$BIN/idle-cpu"; do
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
echo "== 1/7 Unary RPC throughput: one sync client thread, ${UNARY_SECONDS} s per run, $RUNS runs per side"
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
echo "== 2/7 Parent-side fork() latency: $FORK_ITERATIONS forks per run, $RUNS runs per side"
for channels in 1 100; do
  for round in $(seq "$RUNS"); do
    for side in $(order "$round"); do
      measure "$side" "$tmp/fork$channels.$side" 120 \
        "$BIN/fork-latency" "$target" "$channels" "$FORK_ITERATIONS"
    done
  done
done

echo
echo "== 3/7 fork() to first successful RPC: $FIRST_RPC_SAMPLES samples (processes) per case and side"
for mode in inherited new-in-child never-forked; do
  for round in $(seq "$FIRST_RPC_SAMPLES"); do
    for side in $(order "$round"); do
      measure "$side" "$tmp/first-$mode.$side" 15 "$BIN/first-rpc" "$target" "$mode"
    done
  done
done

echo
# busy_args CASE: fork-latency's options for a case of figure 4.
busy_args() {
  case $1 in
    idle) echo "--busy 0" ;;
    held1) echo "--busy 1" ;;
    heldN) echo "--busy $THREADS" ;;
    activeN) echo "--active $THREADS" ;;
    serving) echo "--serve 2" ;;
  esac
}
BUSY_CASES="idle held1 heldN activeN serving"

echo "== 4/7 fork() latency with threads in gRPC: $BUSY_FORKS forks per run, $BUSY_RUNS runs per side"
for case in $BUSY_CASES; do
  for round in $(seq "$BUSY_RUNS"); do
    for side in $(order "$round"); do
      # shellcheck disable=SC2046 # the options are words
      measure "$side" "$tmp/busy-$case.$side" $((BUSY_FORKS * 3 + 60)) \
        "$BIN/fork-latency" "$target" 1 "$BUSY_FORKS" $(busy_args "$case")
    done
  done
done

echo
echo "== 5/7 Fork storm: $THREADS threads making RPCs, forking for ${STORM_SECONDS} s per run, $STORM_RUNS runs per side"
for round in $(seq "$STORM_RUNS"); do
  for side in $(order "$round"); do
    measure "$side" "$tmp/storm.$side" $((STORM_SECONDS + 40)) \
      "$BIN/fork-storm" "$target" "$STORM_SECONDS" "$THREADS"
  done
done

echo
echo "== 6/7 Unary RPC throughput: $THREADS sync client threads, ${UNARY_SECONDS} s per run, $RUNS runs per side"
for round in $(seq "$RUNS"); do
  for side in $(order "$round"); do
    measure "$side" "$tmp/unary-threads.$side" $((UNARY_SECONDS + 20)) \
      "$BIN/unary" "$target" "$UNARY_SECONDS" "$THREADS"
  done
done

echo
echo "== 7/7 Idle CPU: $THREADS threads waiting in gRPC, ${IDLE_SECONDS} s per run, $IDLE_RUNS runs per side"
for mode in next pluck; do
  for round in $(seq "$IDLE_RUNS"); do
    for side in $(order "$round"); do
      measure "$side" "$tmp/idle-$mode.$side" $((IDLE_SECONDS + 30)) \
        "$BIN/idle-cpu" "$target" "$mode" "$THREADS" "$IDLE_SECONDS"
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
  echo "## 4. fork() latency with threads in gRPC"
  echo
  echo "As figure 2 (one live channel), while other threads are inside gRPC. Blocked:"
  echo "each waits in a synchronous read (grpc_completion_queue_pluck) of a server"
  echo "stream whose next reply the server holds back for a minute, and is cancelled"
  echo "at the end (\"intact\" counts the streams still waiting, unharmed, until"
  echo "then). Making RPCs: each makes synchronous Say RPCs back to back, whose"
  echo "replies come at once. Serving: the process runs a grpc++ synchronous server"
  echo "of its own, which two of its threads call back to back during the forks."
  echo "Without the shim, gRPC core skips its fork handlers"
  echo "whenever another thread is inside gRPC; with it, the fork first waits for"
  echo "the threads to leave gRPC, for at most GRPC_FORKSAFE_QUIESCE_MS (1000 ms)."
  echo "$BUSY_FORKS timed forks per run after 10 untimed (2 with blocked threads);"
  echo "$BUSY_RUNS runs per side; median of the runs' medians and p90s."
  echo
  echo "    $BIN/fork-latency $target 1 $BUSY_FORKS [--busy N | --active N | --serve 2]"
  echo
  echo "| other threads | without: median µs | without: p90 µs | with: median µs | with: p90 µs | ratio of medians | channel alive after (without / with) | streams intact after (without / with) | runs failed (without / with) |"
  echo "|---|---:|---:|---:|---:|---:|---|---|---|"
  for case in $BUSY_CASES; do
    case $case in
      idle) label="none" ;;
      held1) label="1 blocked" ;;
      heldN) label="$THREADS blocked" ;;
      activeN) label="$THREADS making RPCs" ;;
      serving) label="a sync server of its own, 2 threads calling it" ;;
    esac
    fa=$tmp/busy-$case.without fb=$tmp/busy-$case.with
    am=$(values median_us "$fa" | stat median)
    ap=$(values p90_us "$fa" | stat median)
    bm=$(values median_us "$fb" | stat median)
    bp=$(values p90_us "$fb" | stat median)
    alive_a=$(values channels_ok_after "$fa" | sort -u | paste -sd, -)
    alive_b=$(values channels_ok_after "$fb" | sort -u | paste -sd, -)
    intact_a=$(values busy_ok_after "$fa" | sort -u | paste -sd, -)
    intact_b=$(values busy_ok_after "$fb" | sort -u | paste -sd, -)
    bad='timeout=\|crashed=\|active_failed=[1-9]\|served_failed=[1-9]'
    echo "| $label | $(fmt 1 "$am") | $(fmt 1 "$ap") | $(fmt 1 "$bm") | $(fmt 1 "$bp") | $(ratio "$bm" "$am") | ${alive_a:--} / ${alive_b:--} | ${intact_a:--} / ${intact_b:--} | $(count "$fa" "$bad") / $(count "$fb" "$bad") |"
  done
  echo
  echo "## 5. Fork storm"
  echo
  echo "$THREADS threads make synchronous Say RPCs back to back (1 s deadline) on one"
  echo "shared channel while the main thread forks for ${STORM_SECONDS} s. Each child makes one RPC"
  echo "on the stub it inherited and one on a brand-new channel (1 s deadline each)"
  echo "and exits 0 if both succeeded; at most 4 children are alive at a time, and"
  echo "one still running 5 s after its fork is killed (hung). forks/s counts the"
  echo "children that exited 0. Then the parent makes one more RPC on its channel."
  echo "$STORM_RUNS runs per side; forks/s is the median run, the counts are summed over runs."
  echo
  echo "    $BIN/fork-storm $target $STORM_SECONDS $THREADS"
  echo
  echo "| side | forks/s (median) | all runs | forks | children exited 0 / failed / hung | parent's RPCs / failed | parent's channel alive after | runs that timed out or crashed |"
  echo "|---|---:|---|---:|---|---|---|---:|"
  for side in without with; do
    f=$tmp/storm.$side
    [ -f "$f" ] || continue
    m=$(values forks_per_s "$f" | stat median)
    runs=$(values forks_per_s "$f" | awk '{ printf "%s%.1f", (NR > 1 ? " " : ""), $1 }')
    sum() { values "$1" "$f" | awk '{ s += $1 } END { print s + 0 }'; }
    echo "| $side shim | $(fmt 1 "$m") | ${runs:--} | $(sum forks) | $(sum child_ok) / $(sum child_failed) / $(sum child_hung) | $(sum parent_rpcs) / $(sum parent_failed) | $(count "$f" 'parent_after=ok')/$(wc -l <"$f") | $(count "$f" 'timeout=\|crashed=') |"
  done
  echo
  echo "## 6. Unary RPC throughput, $THREADS client threads"
  echo
  echo "As figure 1, but $THREADS synchronous client threads share one channel and stub,"
  echo "each making Say RPCs back to back for ${UNARY_SECONDS} s after a common 0.5 s warm-up; the"
  echo "client is not pinned (its threads use both CPUs, the server is pinned as"
  echo "above). $RUNS runs per side, alternating; median of the runs."
  echo
  echo "    $BIN/unary $target $UNARY_SECONDS $THREADS"
  echo
  echo "| threads | without shim: RPCs/s | with shim: RPCs/s | ratio with/without | all runs without | all runs with | runs with errors (without / with) |"
  echo "|---:|---:|---:|---:|---|---|---|"
  fa=$tmp/unary-threads.without fb=$tmp/unary-threads.with
  a=$(values rpcs_per_s "$fa" | stat median)
  b=$(values rpcs_per_s "$fb" | stat median)
  runs_a=$(values rpcs_per_s "$fa" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')
  runs_b=$(values rpcs_per_s "$fb" | awk '{ printf "%s%.0f", (NR > 1 ? " " : ""), $1 }')
  bad='timeout=\|crashed=\|failures=[1-9]'
  echo "| $THREADS | $(fmt 0 "$a") | $(fmt 0 "$b") | $(ratio "$b" "$a") | ${runs_a:--} | ${runs_b:--} | $(count "$fa" "$bad") / $(count "$fb" "$bad") |"
  echo
  echo "## 7. CPU time of an idle process with threads waiting in gRPC"
  echo
  echo "$THREADS threads wait inside gRPC and nothing else happens for ${IDLE_SECONDS} s: the process's"
  echo "CPU time (all threads, user + system, from getrusage) and voluntary context"
  echo "switches (a thread going back to sleep after a wake-up) over that time. next:"
  echo "each thread in CompletionQueue::Next on an empty queue of its own; pluck: each"
  echo "in a synchronous read of a stream whose next reply is a minute away."
  echo "$IDLE_RUNS runs per case and side; medians."
  echo
  echo "    $BIN/idle-cpu $target next|pluck $THREADS $IDLE_SECONDS"
  echo
  echo "| threads wait in | without: CPU ms | with: CPU ms | extra CPU, % of one CPU | without: wake-ups | with: wake-ups | with: wake-ups per thread per s | runs failed (without / with) |"
  echo "|---|---:|---:|---:|---:|---:|---:|---|"
  for mode in next pluck; do
    fa=$tmp/idle-$mode.without fb=$tmp/idle-$mode.with
    ac=$(values cpu_ms "$fa" | stat median)
    bc=$(values cpu_ms "$fb" | stat median)
    aw=$(values wakeups "$fa" | stat median)
    bw=$(values wakeups "$fb" | stat median)
    extra=$(awk -v a="$ac" -v b="$bc" -v s="$IDLE_SECONDS" 'BEGIN { if (a == "-" || b == "-") print "-"; else printf "%.3f", (b - a) / (s * 10) }')
    per=$(awk -v w="$bw" -v t="$THREADS" -v s="$IDLE_SECONDS" 'BEGIN { if (w == "-") print "-"; else printf "%.1f", w / t / s }')
    echo "| $mode | $(fmt 1 "$ac") | $(fmt 1 "$bc") | $extra | $(fmt 0 "$aw") | $(fmt 0 "$bw") | $per | $(count "$fa" 'timeout=\|crashed=') / $(count "$fb" 'timeout=\|crashed=') |"
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
      sed -e 's/\[[0-9]*\]/[PID]/' -e 's/child [0-9][0-9]*/child N/g' -e 's/^\([EWID]\)[0-9]\{4\} [0-9:.]* *[0-9]* /\1 /' "$tmp/stderr.$side" | sort | uniq -c | sort -rn | head -20 | sed 's/^ */    /'
      echo
    fi
  done
} | sed "s|$PWD/||g" >"$REPORT"

echo
echo "Report written to $REPORT"
echo
cat "$REPORT"
