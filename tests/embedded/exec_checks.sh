# Exec hygiene (sourced by run.sh, bash): exec-client, built against
# libgrpc.so and with libgrpc.a compiled in, starts fd-lister in every way a
# program can while its channel is live, and from a forked child; the lister
# must inherit 0, 1, 2 and the client's controls, nothing else. The dynamic
# build's child uses gRPC first, on a channel of its own; the static build's
# does not: with gRPC compiled in, a child must not use gRPC (its threads are
# not restarted), and what counts is that it can still start programs that
# inherit nothing of gRPC's. Uses problem and verdict from fork_checks.sh.

EXEC_CLIENT_ARGS=()  # set by run.sh: --target ...
PARENT_WAYS=(posix_spawn system vfork fork popen)
CHILD_WAYS=(child-posix_spawn child-system)

# What the forked child of build $1 does with gRPC before it starts the lister.
child_grpc() { if [ "$1" = dynamic ]; then echo new-channel; else echo none; fi; }

# exec-client of build $1 as run $2, with the environment that follows.
run_exec() {
  local build=$1 run=$2
  shift 2
  run_prog "$run" "$@" -- "$BIN/exec-client-$build" "${EXEC_CLIENT_ARGS[@]}" --lister "$BIN/fd-lister" --run "$run" \
    --child-grpc "$(child_grpc "$build")"
}

# A child's calls on a channel of its own, tagged "<run>:<prefix>-N": one
# attempt must have succeeded; every attempt before it must have failed
# cleanly with UNAVAILABLE (it met the inherited connection). Sets ATTEMPT
# to "K of N", or to "none".
judge_own_channel() {
  local run=$1 prefix=$2 out=$OUT/$1.out ok k i line
  ATTEMPT=none
  ok=$(grep -E "^child pid=[0-9]+ $run:$prefix: succeeded at attempt [0-9]+ of [0-9]+ " "$out")
  if [ -z "$ok" ]; then
    problem "$prefix: $(grep -E "$run:($prefix|child-grpc)[:-]" "$out" | sed 's/^child pid=[0-9]* //' |
                        tail -n 2 | paste -sd'|')"
    return
  fi
  ATTEMPT=$(sed -nE 's/.* succeeded at attempt ([0-9]+ of [0-9]+) .*/\1/p' <<<"$ok")
  k=${ATTEMPT%% *}
  for ((i = 1; i < k; i++)); do
    line=$(grep -E "^child pid=[0-9]+ $run:$prefix-$i: attempt " "$out")
    [[ "$line" == *": attempt UNAVAILABLE(14) "* ]] ||
      problem "$prefix-$i failed other than cleanly with UNAVAILABLE: ${line#*: attempt }"
  done
}

# The control of run $1 named $2 (file, socket, handler-socket): its number.
control_fd() {
  sed -nE "s/.* $1:controls:(.* )?$2=([0-9]+).*/\2/p" "$OUT/$1.out" | head -n 1
}

# What lister run $2 (a way) of run $1 saw besides 0, 1, 2 and the controls,
# one "fd N -> TARGET" per line.
lister_extras() {
  sed -nE "s/^$1:$2 fd ([0-9]+ -> [^ ]+) flags=[^ ]+$/fd \1/p" "$OUT/$1.out" | grep -vE '^fd [012] -> '
}

# The lister runs of run $1 in the ways that follow: each must have listed
# its descriptors to the end, found the file and socket controls, and
# nothing else but 0, 1 and 2.
judge_listers() {
  local run=$1 way extras fd
  local file socket
  file=$(control_fd "$run" file)
  socket=$(control_fd "$run" socket)
  [ -n "$file" ] && [ -n "$socket" ] || { problem "no controls line"; return; }
  shift
  for way in "$@"; do
    if ! grep -qE "^$run:$way end: " "$OUT/$run.out"; then
      problem "$way: the lister did not run to the end"
      continue
    fi
    extras=$(lister_extras "$run" "$way" | paste -sd, -)
    [ -z "$extras" ] || problem "$way: inherited $extras"
    for fd in "$file" "$socket"; do
      grep -qE "^$run:$way fd $fd -> .* control$" "$OUT/$run.out" ||
        problem "$way: control fd $fd missing (the listing cannot be trusted)"
    done
  done
}

# The client's own list $2 (self, child-self) of run $1 must show, besides
# the controls, descriptors of each kind that follows ("socket",
# "anon_inode:[eventpoll]", ...): something of gRPC's that could have leaked.
judge_something_to_leak() {
  local run=$1 list=$2 kinds kind
  shift 2
  kinds=$(grep -E "^$run:$list fd [0-9]+ -> " "$OUT/$run.out" | grep -vE ' fd [012] -> ' |
          grep -vE " fd ($(control_fd "$run" file)|$(control_fd "$run" socket)|$(control_fd "$run" handler-socket)) -> " |
          grep -oE -- '-> [^ ]+' | sed -E 's/^-> //; s/^socket:.*/socket/' | sort -u)
  for kind in "$@"; do
    grep -qxF -- "$kind" <<<"$kinds" || problem "$list: no $kind of gRPC's open when the lister started"
  done
}

# Build $1 with the shim.
check_exec() {
  local build=$1 run=exec-$1 out=$OUT/exec-$1.out err=$OUT/exec-$1.err line
  run_exec "$build" "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=debug
  judge_something_to_leak "$run" self socket 'anon_inode:[eventpoll]' 'anon_inode:[eventfd]'
  # In the child gRPC's inherited descriptors may be dead stand-ins (sockets,
  # epoll sets); the dynamic build's new connection is a socket too.
  judge_something_to_leak "$run" child-self socket 'anon_inode:[eventpoll]'
  verdict "exec hygiene ($build): there was something to leak: gRPC's socket, epoll set and eventfd in the client, sockets and epoll sets in its child" "$out"
  judge_listers "$run" "${PARENT_WAYS[@]}"
  line=$(grep -E "^child pid=[0-9]+ $run:controls-in-child: " "$out")
  [[ "$line" == *"file same, socket same"* ]] ||
    problem "a fork changed the program's own descriptors: ${line#*controls-in-child: }${line:-no report from the child}"
  verdict "exec hygiene ($build): posix_spawn, system(), vfork+execv, fork+execv, popen() with a live channel: the program started inherits 0, 1, 2 and the controls only (and a fork leaves the controls alone)" "$out"
  judge_listers "$run" "${CHILD_WAYS[@]}"
  if [ "$build" = dynamic ]; then
    verdict "exec hygiene ($build): a forked child that used gRPC starts it with posix_spawn and system(): 0, 1, 2 and the controls only" "$out" "$err"
    judge_own_channel "$run" child-new
    verdict "exec hygiene ($build): that child's own channel worked (its first attempt may fail UNAVAILABLE)" "$out" "$err"
    echo "  ($run: the child's attempt that succeeded: $ATTEMPT)"
  else
    # What the verdict says of the child must hold: it made no call.
    [ "$(calls_of "$run" child)" -eq 0 ] || problem "the server saw calls of the child"
    verdict "exec hygiene ($build): a forked child, making no gRPC call, starts it with posix_spawn and system(): 0, 1, 2 and the controls only" "$out" "$err"
  fi
  # A socket the program opens itself, in a function whose signature names a
  # gRPC type (as a service handler's does), is the program's: inheritable as
  # the program made it, and in every listing.
  line=$(grep -E "^parent pid=[0-9]+ $run:control handler-socket fd=[0-9]+ cloexec=" "$out")
  [[ "$line" == *" cloexec=0" ]] ||
    problem "the shim made it close-on-exec (${line#*:control }): it took it for gRPC's"
  judge_listers_handler "$run"
  line=$(grep -E "^child pid=[0-9]+ $run:controls-in-child: " "$out")
  [[ "$line" == *"handler-socket same"* ]] ||
    problem "in the forked child it is not the program's socket any more: ${line#*controls-in-child: }"
  verdict "attribution ($build): a socket the program opens in a function taking grpc::ServerContext* stays the program's (inheritable; the same socket in a forked child)" "$out" "$err"
  grep -oE "grpc-forksafe: debug: [^ ]+ has gRPC linked in \([0-9]+ functions\)" "$err" | head -n 1 |
    sed "s/^/  ($run: the shim said: /; s/$/)/"
}

judge_listers_handler() {
  local run=$1 fd way
  fd=$(control_fd "$run" handler-socket)
  for way in "${PARENT_WAYS[@]}" "${CHILD_WAYS[@]}"; do
    grep -qE "^$run:$way fd $fd -> .* control$" "$OUT/$run.out" || { problem "missing from the listings ($way first)"; return; }
  done
}

# Build $1 without the shim: reported, not judged. gRPC 1.51 sets
# close-on-exec on its descriptors itself, in a second call after creating
# each: only a program starting another in that window would pass one on.
report_stock_exec() {
  local build=$1 run=stock-exec-$1 way extras found=""
  run_exec "$build" "$run"
  for way in "${PARENT_WAYS[@]}" "${CHILD_WAYS[@]}"; do
    extras=$(lister_extras "$run" "$way" | paste -sd, -)
    [ -z "$extras" ] || found+="$way: $extras; "
    grep -qE "^$run:$way end: " "$OUT/$run.out" || found+="$way: the lister did not run; "
  done
  echo "  (without the shim, $build: ${found:-the started program inherited 0, 1, 2 and the controls only, in every way})"
}
