#!/bin/bash
# A fresh gRPC in a forked child (shim/copyset.c), judged by fresh-c against a
# real echo server: the child and grandchild load private copies of gRPC and
# call through them while the parent's stream goes on (see fresh.c). Checks:
#   - first run, empty cache: every check passes, both generations built;
#   - second run: both generations reuse the cache;
#   - with libgrpc++ loaded in the parent, each generation copies it too;
#   - 4 sibling children loading at once into an empty cache: one set
#     written, the others use it, nothing left behind;
#   - a library file changed (its mtime, on a private copy of libgpr found
#     through LD_LIBRARY_PATH): the set is made again, never reused;
#   - an unsafe cache directory (group-writable, a symbolic link) is refused
#     with one warn line, and the child says why;
#   - the first run once more under memcheck, children traced: no error in
#     the parent, the child or the grandchild.
# Usage: run.sh --server BIN --client BIN --out DIR [--no-valgrind]
# Environment: FRESH_TIMEOUT, seconds one run may take (60; 600 under memcheck).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/../../scripts/verdicts.sh"
. "$HERE/../../scripts/echo-server.sh"
. "$HERE/../../scripts/memcheck-logs.sh"

SERVER='' CLIENT='' OUT='' VALGRIND=1
while [ $# -gt 0 ]; do
  case $1 in
    --server) SERVER=$2; shift 2 ;;
    --client) CLIENT=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --no-valgrind) VALGRIND=0; shift ;;
    *) echo "usage: $0 --server BIN --client BIN --out DIR [--no-valgrind]" >&2; exit 2 ;;
  esac
done
[ -n "$SERVER" ] && [ -n "$CLIENT" ] && [ -n "$OUT" ] ||
  { echo "usage: $0 --server BIN --client BIN --out DIR [--no-valgrind]" >&2; exit 2; }
CLIENT=$(realpath "$CLIENT")
LIMIT=${FRESH_TIMEOUT:-60}
rm -rf "$OUT" && mkdir -p "$OUT"
OUT=$(realpath "$OUT")

# shellcheck disable=SC2034 # read by echo-server.sh
ECHO_SERVER_BIN=$SERVER
trap 'echo_server_stop' EXIT
trap 'exit 130' INT TERM
echo_server_start "$OUT" timeout 1800 || { fail "echo-server" "did not start" "$OUT/server.err"; summary fresh; exit 1; }
TARGET=127.0.0.1:$ECHO_PORT
echo "echo-server on $TARGET; output in $OUT"

# run NAME [VAR=value...] -- ARGS...: fresh-c with ARGS, output in
# $OUT/NAME.out and .err, exit status in STATUS.
run() {
  local name=$1 envs=()
  shift
  while [ "$1" != "--" ]; do envs+=("$1"); shift; done
  shift
  timeout -k 5 "$LIMIT" env -u LD_PRELOAD GRPC_ENABLE_FORK_SUPPORT=false "${envs[@]}" \
    "$CLIENT" --target "$TARGET" --run "$name" "$@" </dev/null >"$OUT/$name.out" 2>"$OUT/$name.err"
  STATUS=$?
}

# What is wrong with run NAME (expected to pass): prints the problems.
problems() {
  local name=$1 out=$OUT/$1.out
  [ "$STATUS" -eq 0 ] || printf 'exited %d%s; ' "$STATUS" "$( [ "$STATUS" -ge 124 ] && echo ' (timeout: hung?)')"
  grep -q '^RESULT pid=[0-9]* fresh: ok$' "$out" || printf "no 'RESULT ... fresh: ok'; "
  ! grep -q ' FAIL ' "$out" || printf 'failed checks: %s; ' "$(grep -m3 ' FAIL ' "$out" | tr '\n' ' ')"
}

# The server saw run NAME's Say calls from 3 processes on 3 connections.
server_problems() {
  local name=$1 pids peers
  pids=$(awk -v r="$name" '$2 ~ "^" r ":gen[12]-say$|^" r ":parent-before$" { print $1 }' "$OUT/calls.log" | sort -u | wc -l)
  peers=$(awk -v r="$name" '$2 ~ "^" r ":gen[12]-say$|^" r ":parent-before$" { print $3 }' "$OUT/calls.log" | sort -u | wc -l)
  [ "$pids" -eq 3 ] && [ "$peers" -eq 3 ] ||
    printf 'the server saw the calls from %d processes on %d connections, not 3 and 3; ' "$pids" "$peers"
}

# timing NAME ROLE: "built" or "reused" for that role's load.
timing() {
  sed -nE "s/^TIMING $2 gen=[0-9]+ (built|reused).*/\1/p" "$OUT/$1.out" | head -n 1
}

verdict() {
  local name=$1 p=$2
  shift 2
  if [ -z "$p" ]; then pass "$name"; else fail "$name" "${p%; }" "$@"; fi
}

# 1. First run, empty cache.
run first -- --cache "$OUT/cache"
p=$(problems first)$(server_problems first)
[ "$(timing first child)" = built ] || p+="the child did not build generation 1; "
[ "$(timing first grandchild)" = built ] || p+="the grandchild did not build generation 2; "
verdict "fresh: child and grandchild call through their own copies (built); the parent's stream goes on" "$p" \
  "$OUT/first.out" "$OUT/first.err"

# 2. Again: reused.
run again -- --cache "$OUT/cache"
p=$(problems again)$(server_problems again)
[ "$(timing again child)" = reused ] || p+="the child did not reuse generation 1; "
[ "$(timing again grandchild)" = reused ] || p+="the grandchild did not reuse generation 2; "
n=$(find "$OUT/cache" -mindepth 1 -maxdepth 1 | wc -l)
[ "$n" -eq 2 ] || p+="the cache holds $n entries, not 2 sets; "
verdict "fresh: a second run reuses both generations' sets" "$p" "$OUT/again.out" "$OUT/again.err"

# 2b. libgrpc++ loaded: copied too.
run grpcxx -- --cache "$OUT/cache" --grpcxx 1
p=$(problems grpcxx)$(server_problems grpcxx)
[ "$(timing grpcxx child)" = built ] || p+="the child did not build a set with libgrpc++; "
n=$(sed -nE 's/^TIMING child gen=1 .* members=([0-9]+).*/\1/p' "$OUT/grpcxx.out")
m=$(sed -nE 's/^TIMING child gen=1 .* members=([0-9]+).*/\1/p' "$OUT/first.out")
[ -n "$n" ] && [ -n "$m" ] && [ "$n" -gt "$m" ] || p+="the set with libgrpc++ has ${n:-?} libraries, without ${m:-?}; "
verdict "fresh: with libgrpc++ loaded, both generations copy it too" "$p" "$OUT/grpcxx.out" "$OUT/grpcxx.err"

# 3. Siblings racing.
run siblings -- --cache "$OUT/cache-race" --siblings 4
p=$(problems siblings)
built=$(grep -c '^TIMING sibling gen=1 built' "$OUT/siblings.out")
reused=$(grep -c '^TIMING sibling gen=1 reused' "$OUT/siblings.out")
lost=$(grep -c '^TIMING sibling gen=1 reused lost-race' "$OUT/siblings.out")
[ "$built" -eq 1 ] && [ "$reused" -eq 3 ] || p+="$built siblings built the set and $reused reused it, not 1 and 3; "
n=$(find "$OUT/cache-race" -mindepth 1 -maxdepth 1 | wc -l)
[ "$n" -eq 1 ] || p+="the cache holds $n entries, not one set: $(find "$OUT/cache-race" -mindepth 1 -maxdepth 1 -printf '%f '); "
verdict "fresh: 4 siblings load one set ($lost wrote theirs and lost the race)" "$p" "$OUT/siblings.out" \
  "$OUT/siblings.err"

# 4. A member changed on disk: never reused.
mkdir -p "$OUT/libs"
cp /usr/lib/x86_64-linux-gnu/libgpr.so.29 "$OUT/libs/"
run changed-1 LD_LIBRARY_PATH="$OUT/libs" -- --cache "$OUT/cache-changed"
touch -d '1 minute ago' "$OUT/libs/libgpr.so.29"
run changed-2 LD_LIBRARY_PATH="$OUT/libs" -- --cache "$OUT/cache-changed"
p=$(problems changed-1)$(problems changed-2)
[ "$(timing changed-1 child)" = built ] || p+="the first run did not build; "
[ "$(timing changed-2 child)" = built ] || p+="the run after the change reused the old set; "
n=$(find "$OUT/cache-changed" -mindepth 1 -maxdepth 1 -name '*-g01' | wc -l)
[ "$n" -eq 2 ] || p+="$n generation-1 sets in the cache, not 2; "
verdict "fresh: a library changed on disk gets a set of its own" "$p" "$OUT/changed-2.out" "$OUT/changed-2.err"

# 5. Unsafe cache directories.
mkdir -m 0777 "$OUT/cache-open" && chmod 0777 "$OUT/cache-open"
mkdir -m 0700 "$OUT/cache-real" && ln -s "$OUT/cache-real" "$OUT/cache-link"
for kind in open link; do
  run "unsafe-$kind" -- --cache "$OUT/cache-$kind"
  p=""
  [ "$STATUS" -ne 0 ] || p+="fresh-c passed with the cache refused?; "
  [ "$STATUS" -lt 124 ] || p+="exited $STATUS (hung?); "
  case $kind in
    open) why='writable by group or others' what='group-writable' ;;
    link) why='it is a symbolic link' what='a symbolic link' ;;
  esac
  grep -q "^child pid=[0-9]* FAIL fs_copyset_load(1): refusing the cache directory .*$why" "$OUT/unsafe-$kind.out" ||
    p+="the child did not say the directory was refused ($why); "
  n=$(grep -c "grpc-forksafe: warn: copyset: refusing the cache directory .*$why" "$OUT/unsafe-$kind.err")
  [ "$n" -eq 1 ] || p+="$n warn lines, not 1; "
  n=$(find -L "$OUT/cache-$kind" -mindepth 1 | wc -l)
  [ "$n" -eq 0 ] || p+="$n files written into the refused directory; "
  grep -q '^parent pid=[0-9]* the parent.s stream delivered 4 of 4 replies: ok$' "$OUT/unsafe-$kind.out" ||
    p+="the parent's stream suffered; "
  verdict "fresh: a cache directory that is $what is refused" "$p" "$OUT/unsafe-$kind.out" "$OUT/unsafe-$kind.err"
done

# 6. Memcheck, every process.
if [ "$VALGRIND" -eq 1 ]; then
  if ! command -v valgrind >/dev/null; then
    fail "fresh under memcheck" "valgrind is not installed"
  else
    dir=$OUT/memcheck
    mkdir -p "$dir"
    LIMIT=${FRESH_TIMEOUT:-600}
    # Deadlines 4 times the usual: memcheck runs programs some 30 times slower.
    timeout -k 10 "$LIMIT" env -u LD_PRELOAD GRPC_ENABLE_FORK_SUPPORT=false \
      valgrind --tool=memcheck --trace-children=yes --leak-check=full --errors-for-leak-kinds=definite \
        --error-exitcode=99 --suppressions="$HERE/../integration/valgrind.supp" \
        --num-callers=40 \
        --log-file="$dir/memcheck.%p" \
        "$CLIENT" --target "$TARGET" --run vg --cache "$OUT/cache-vg" --deadline-ms 20000 \
      </dev/null >"$OUT/vg.out" 2>"$OUT/vg.err"
    STATUS=$?
    p=$(problems vg)$(server_problems vg)$(memcheck_logs_problems "$dir")
    n=$(find "$dir" -name 'memcheck.*' | wc -l)
    [ "$n" -eq 3 ] || p+="memcheck logs for $n processes, not 3 (parent, child, grandchild); "
    verdict "fresh under memcheck: 0 errors in parent, child and grandchild" "$p" "$OUT/vg.out" "$OUT/vg.err"
    [ -z "$p" ] || memcheck_logs_evidence "$dir"
    grep -h '^TIMING' "$OUT/vg.out" | sed 's/^/  memcheck: /'
  fi
fi

grep -h '^TIMING' "$OUT/first.out" "$OUT/again.out" | sed 's/^/  /'
echo_server_stop
summary fresh
