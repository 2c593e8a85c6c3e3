# The fork scenarios of static-client, judged by what each process reported,
# what the server saw, and what the shim logged (sourced by run.sh, bash).
# Each runs with the shim; where stock gRPC has a failure to show, also
# without it, and must fail that way: proof the check can tell.
#
# With gRPC compiled in, the shim cannot reach gRPC's fork handling, and
# gRPC's own threads are not restarted in a child. What it guarantees there,
# and all these checks ask: the parent keeps working over its connection,
# untouched; in a child every descriptor gRPC held is dead, so nothing the
# child's gRPC writes reaches anyone; and the child's first call that meets
# its inherited connection fails at once, UNAVAILABLE, instead of hanging.
# A child makes that one call and no other.
#
# The judging functions add what is wrong to P ("problem; problem; ") and
# leave what the notes need in globals; verdict turns P into PASS or FAIL.

STATIC_CLIENT_ARGS=()  # set by run.sh: --target ...
# The deadline of a child's call: the longest it may take to come back.
ATTEMPT_MS=500
P=''

problem() { P+="$*; "; }

verdict() {
  local name=$1
  shift
  if [ -z "$P" ]; then pass "$name"; else fail "$name" "${P%; }" "$@"; fi
  P=''
}

# static-client scenario $1 as run $2 with the environment that follows (and
# the words of SCENARIO_ARGS); output in $OUT/$2.out and .err, status in STATUS.
run_static() {
  local scenario=$1 run=$2
  shift 2
  # shellcheck disable=SC2086 # SCENARIO_ARGS holds words
  run_prog "$run" "$@" -- "$BIN/static-client" "$scenario" "${STATIC_CLIENT_ARGS[@]}" --run "$run" \
    --attempt-ms "$ATTEMPT_MS" ${SCENARIO_ARGS:-}
}

# The parent of run $1: its $2 calls all succeeded, over the connection it
# had before the fork (the client's own check, from the replies' peers and
# the kernel's table), and the server agrees.
judge_parent() {
  local run=$1 calls=$2 out=$OUT/$1.out
  grep -qE "^parent pid=[0-9]+ $run:parent-connection: same connection throughout" "$out" ||
    problem "$(grep -E "$run:parent-connection: |^parent pid=[0-9]+ $run:parent-[a-z0-9-]+: FAIL" "$out" |
               sed 's/^parent pid=[0-9]* //' | head -n 3 | paste -sd'|')"
  P+=$(connection_problems "$run" "$calls")
}

# A child's one call on its inherited channel, tagged "<run>:<tag>": it must
# have come back within its deadline, UNAVAILABLE (its write met the dead
# connection) or OK over a connection of the child's own; never hung,
# crashed, failed another way, or succeeded over the parent's connection.
# Sets INHERITED to how it ended, for the notes.
judge_inherited() {
  local run=$1 tag=$2 line ms peer
  line=$(grep -E "^child pid=[0-9]+ $run:$tag: attempt " "$OUT/$run.out")
  INHERITED=${line#*: attempt }
  INHERITED=${INHERITED:-never came back}
  if [[ "$line" =~ :\ attempt\ OK\ in\ ([0-9]+)\ ms\ peer=([^ ]+)$ ]]; then
    peer=${BASH_REMATCH[2]}
    ! grep -qxF -- "$peer" <(peers_of "$run" parent-) ||
      problem "$tag succeeded over the parent's connection $peer"
  elif [[ ! "$line" =~ :\ attempt\ UNAVAILABLE\(14\)\ .*\ in\ ([0-9]+)\ ms$ ]]; then
    problem "$tag: $INHERITED"
    return
  fi
  ms=${BASH_REMATCH[1]}
  [ "$ms" -le "$ATTEMPT_MS" ] ||
    problem "$tag came back after $ms ms, past its $ATTEMPT_MS ms deadline"
}

# The server saw run $1's children exactly in the calls they reported OK:
# nothing of a call that failed in the child reached it, and no child made
# a call besides its one.
judge_children_at_server() {
  local run=$1 ok seen
  ok=$(grep -cE "^child pid=[0-9]+ $run:child[0-9]*-inherited: attempt OK " "$OUT/$run.out")
  seen=$(calls_of "$run" child)
  [ "$seen" -eq "$ok" ] ||
    problem "the server saw $seen calls of the children, who reported $ok that succeeded"
}

# The child the parent of run $1 calls $2 ("child", "child3") ended by itself:
# not killed as hung, not by a signal. Its exit status is 0 unless it
# counted failures, each the business of its own check (its inherited
# descriptors, the sink); any other failure it reported is a problem here.
judge_child_end() {
  local run=$1 name=$2 line pid others
  line=$(grep -E "^parent pid=[0-9]+ (FAIL )?$name [0-9]+ " "$OUT/$run.out")
  if [[ ! "$line" =~ ^parent\ pid=[0-9]+\ $name\ ([0-9]+)\ exited\ [0-9]+:\ (ok|FAIL)$ ]]; then
    problem "$name: $(sed -E 's/^parent pid=[0-9]+ (FAIL )?//' <<<"${line:-no word of it from the parent}")"
    return
  fi
  pid=${BASH_REMATCH[1]}
  others=$(grep -E "^child pid=$pid FAIL " "$OUT/$run.out" | grep -vE " FAIL $run:(inherited-fds|sink): " |
           sed -E 's/^child pid=[0-9]+ FAIL //' | head -n 2 | paste -sd'|')
  [ -z "$others" ] || problem "$name: $others"
}

# Each of the $2 children of run $1 found, by the kernel's account, every
# descriptor gRPC held at the fork dead (another object, or an epoll set
# watching nothing) before it did anything else; and the shim said, for each,
# that it neutralised some.
judge_inherited_dead() {
  local run=$1 children=$2 n
  n=$(grep -cE "^child pid=[0-9]+ $run:inherited-fds: ([1-9][0-9]*) of \1 inherited descriptors dead$" "$OUT/$run.out")
  [ "$n" -eq "$children" ] ||
    problem "$n of $children children found every inherited descriptor dead: $(grep -E "$run:inherited-fds: " "$OUT/$run.out" |
                                                                              sed 's/^child pid=[0-9]* //' | sort -u | head -n 2 | paste -sd'|')"
  P+=$(shim_log_problems "$OUT/$run.err" "$children")
}

judge_no_hang() {
  [ "$STATUS" -ne 124 ] && [ "$STATUS" -ne 137 ] || problem "client $(describe_exit "$STATUS")"
}

# basic: the child calls once on the inherited channel, and that call comes
# back at once; the parent keeps its connection.
check_basic() {
  local run=basic out=$OUT/basic.out err=$OUT/basic.err
  run_static basic "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=debug
  judge_inherited "$run" child-inherited
  judge_children_at_server "$run"
  judge_child_end "$run" child
  verdict "basic: the child's one call on the inherited channel comes back within its deadline, UNAVAILABLE (or OK over a connection of its own), and reaches the server only if OK; the child then leaves gRPC alone and ends by itself" "$out" "$err"
  echo "  ($run: the child's call: $INHERITED; the server saw the child from" \
       "$(peers_of "$run" child | paste -sd' ' - | grep . || echo nowhere)," \
       "the parent from $(peers_of "$run" parent- | paste -sd' ' -))"
  judge_parent "$run" 4
  judge_no_hang
  verdict "basic: the parent's calls after the fork succeed over its connection from before the fork; no connection is shared" "$out" "$err"
  judge_inherited_dead "$run" 1
  verdict "basic: the shim found gRPC in the program; in the child every descriptor gRPC held is dead, by the kernel's account" "$out" "$err"
  echo "  ($run: $(grep -oE "$run:inherited-fds: .*" "$out" | sed "s/^$run://"); the shim: $(grep -oE "child: generation [0-9]+, [0-9]+ inherited gRPC fds neutralised" "$err"))"
}

# How stock run $1 (no shim) failed, in STOCK_HOW; a problem if it did not
# fail as stock gRPC does: the parent's channel dead or its stream cut short
# once the child used the shared connection, or (unless $2 is "parent") the
# child hung inside gRPC.
judge_stock() {
  local run=$1 only=${2:-} out=$OUT/$1.out parent_failed hung shared
  parent_failed=$(grep -oE "$run:parent-[a-z0-9-]+: (FAIL [A-Z_]+|[0-9]+ of [0-9]+ replies)" "$out" |
                  sed "s/^$run://" | sort -u | paste -sd, -)
  hung=$(grep -cE "$run:child-grpc: still inside gRPC|child [0-9]+ hung" "$out")
  shared=$(comm -12 <(peers_of "$run" parent-) <(peers_of "$run" child) | paste -sd' ' -)
  local how=()
  [ -z "$parent_failed" ] || how+=("the parent's calls after the fork failed: $parent_failed")
  [ "$hung" -eq 0 ] || how+=("the child hung inside gRPC")
  [ -z "$shared" ] || how+=("the server saw the child's calls on the parent's connection $shared")
  STOCK_HOW=$(printf '%s; ' "${how[@]}")
  STOCK_HOW=${STOCK_HOW%; }
  [ "$STATUS" -ne 0 ] || problem "client exited 0"
  if [ "$only" = parent ]; then
    [ -n "$parent_failed" ] || problem "the parent's calls did not fail"
  else
    [ -n "$parent_failed" ] || [ "$hung" -gt 0 ] || problem "neither did the parent's calls fail nor did the child hang"
  fi
}

# Scenario $1 without the shim must fail as stock gRPC does ($2: "parent"
# when only the parent's failure counts). Stock gRPC now and then fails in
# another way than the ones looked for (the child hangs before it has written
# anything, say): one more run is allowed.
check_stock() {
  local scenario=$1 only=${2:-} run attempt
  for attempt in 1 2; do
    run=stock-$scenario-$attempt
    # The parent's calls fail by running into their deadlines: short ones.
    SCENARIO_ARGS="--deadline-ms 1000" run_static "$scenario" "$run"
    judge_stock "$run" "$only"
    [ -n "$P" ] && [ $attempt -eq 1 ] || break
    echo "  ($run: stock gRPC did not fail visibly: ${P%; }; once more)"
    P=''
  done
  verdict "without the shim, $scenario fails as with stock gRPC" "$OUT/$run.out"
  [ -z "$STOCK_HOW" ] || echo "  ($run: $STOCK_HOW)"
}

# The sink's record of run $1: one connection, the child's, holding the
# child's marker and not one byte more. Sets SINK_SAW.
judge_sink() {
  local run=$1 line port bytes others
  SINK_SAW=
  line=$(grep -E "^child pid=[0-9]+ $run:sink: wrote [0-9]+ bytes from port [0-9]+$" "$OUT/$run.out")
  if [ -z "$line" ]; then
    problem "the child did not write its marker: $(grep -E "$run:sink: " "$OUT/$run.out" | tail -n 1 |
                                                  sed 's/^child pid=[0-9]* //')"
    return
  fi
  bytes=$(sed -nE 's/.* wrote ([0-9]+) bytes .*/\1/p' <<<"$line")
  port=${line##* }
  SINK_SAW=$(grep -E "^conn peer=$port " "$SINK_LOG")
  if [ -z "$SINK_SAW" ]; then
    problem "the sink has no record of the connection from port $port"
  elif [[ "$SINK_SAW" != "conn peer=$port bytes=$bytes first=\"marker from child "* ]]; then
    problem "the sink received other than the child's $bytes-byte marker: ${SINK_SAW#conn }"
  fi
  others=$(grep -vE "^conn peer=$port " "$SINK_LOG" | sed 's/^conn //' | head -n 3 | paste -sd'|')
  [ -z "$others" ] || problem "the sink had other connections too: $others"
}

# leak: the child connects to the sink first, then makes its one call on the
# inherited channel. Nothing gRPC writes may reach the sink: were an
# inherited number of gRPC's reused for the child's own connection, the
# call's bytes would go there.
check_leak() {
  local run=leak out=$OUT/leak.out err=$OUT/leak.err
  start_sink "$run" || { fail "leak" "the byte sink did not start"; return; }
  SCENARIO_ARGS="--sink $SINK_PORT" run_static leak "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=debug
  stop_sink
  judge_sink "$run"
  verdict "leak: the sink got one connection, the child's own, opened before its gRPC call: its marker and not one byte of gRPC's" \
    "$out" "$SINK_LOG"
  judge_inherited "$run" child-inherited
  judge_children_at_server "$run"
  judge_child_end "$run" child
  verdict "leak: the child's one call on the inherited channel comes back within its deadline, UNAVAILABLE (or OK over a connection of its own), and reaches the server only if OK; the child ends by itself" "$out" "$err"
  echo "  ($run: the child's call: $INHERITED)"
  judge_parent "$run" 4
  judge_no_hang
  verdict "leak: the parent's calls after the fork succeed over its connection from before the fork" "$out" "$err"
  judge_inherited_dead "$run" 1
  verdict "leak: the shim found gRPC in the program; in the child every descriptor gRPC held is dead, by the kernel's account" "$out" "$err"
}

# The same without the shim. With gRPC compiled in and no fork handling at
# all, the child keeps gRPC's inherited descriptors open, so no number is
# reused and the sink gets nothing of gRPC's; the child's calls go out on
# the parent's connection instead, and that is the failure to see.
check_stock_leak() {
  local run=stock-leak
  start_sink "$run" || { fail "without the shim, leak" "the byte sink did not start"; return; }
  SCENARIO_ARGS="--sink $SINK_PORT --deadline-ms 1000" run_static leak "$run"
  stop_sink
  judge_stock "$run"
  verdict "without the shim, leak fails as with stock gRPC" "$OUT/$run.out"
  echo "  ($run: $STOCK_HOW)"
  judge_sink "$run"
  if [ -n "$P" ]; then echo "  ($run: ${P%; })"; else echo "  ($run: the sink got the child's marker only: ${SINK_SAW#conn })"; fi
  P=''
}

# stream: the fork happens while a thread of the parent reads a server
# stream, and the child calls on the inherited channel that carries it.
check_stream() {
  local run=stream out=$OUT/stream.out err=$OUT/stream.err
  run_static stream "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=debug
  grep -qE "^parent pid=[0-9]+ $run:parent-stream: ok 30 replies " "$out" ||
    problem "$(grep -E "$run:parent-stream: " "$out" | sed 's/^parent pid=[0-9]* //')"
  judge_parent "$run" 3
  judge_no_hang
  verdict "stream: the parent's stream, in flight at the fork, delivers all 30 replies; its connection stays" "$out" "$err"
  echo "  ($run, not judged: the child's call on the inherited channel:" \
       "$(grep -oE "$run:child-inherited: attempt .*" "$out" | sed "s/^$run:child-inherited: attempt //" |
          grep . || echo 'never came back');" \
       "$(grep -oE "child [0-9]+ [^:]+: reported" "$out" | cut -d' ' -f3- | sed 's/: reported//; s/^/the child /'))"
}

# forks: children one after the other, each calling once on the inherited
# channel, which the parent keeps using between the forks.
check_forks() {
  local run=forks out=$OUT/forks.out err=$OUT/forks.err i forked
  run_static forks "$run" LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=debug
  # The series ends at the first child that hangs: judge those it forked.
  forked=$(grep -cE "^parent pid=[0-9]+ (FAIL )?child[0-9]+ [0-9]+ " "$out")
  [ "$forked" -eq 10 ] || problem "the series stopped after $forked of 10 children"
  for i in $(seq "$forked"); do
    judge_inherited "$run" "child$i-inherited"
    judge_child_end "$run" "child$i"
  done
  judge_children_at_server "$run"
  verdict "forks: 10 children in a row: each one's call on the inherited channel comes back within its deadline, UNAVAILABLE (or OK over a connection of its own), and reaches the server only if OK; each ends by itself" "$out" "$err"
  echo "  ($run: the children's calls: $(grep -oE "$run:child[0-9]+-inherited: attempt [A-Z]+[^\"]*" "$out" |
                                        sed -E 's/.*: attempt //; s/ +$//' | sort | uniq -c |
                                        sed -E 's/^ *([0-9]+) (.*)/\1 x \2/' | paste -sd, - | grep . || echo none))"
  judge_parent "$run" $((forked + 1))
  judge_no_hang
  verdict "forks: the parent's calls between the forks all succeed over its first connection; no connection is shared" "$out" "$err"
  # All 10: a child that was never forked proves nothing.
  judge_inherited_dead "$run" 10
  verdict "forks: in each child every descriptor gRPC held is dead, by the kernel's account, and the shim says so" "$out" "$err"
}
