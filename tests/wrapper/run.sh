#!/usr/bin/env bash
# Tests of the operator's side: the grpc-forksafe command (options, exit
# status, signals, LD_PRELOAD, --audit), `make install` / `make uninstall`,
# the manual pages, and that README.md and the manual document exactly the
# settings the shim reads.
#
# Usage: run.sh --build DIR --make MAKE     (normally through `make test-wrapper`)
# Environment: FORKSAFE_TEST_TIMEOUT, seconds one program may take (60).
# Prints "PASS name" or "FAIL name: reason" per check, then "N passed, M failed";
# exits non-zero if any check failed.

# shellcheck disable=SC2016 # single-quoted scripts are expanded by the shell that runs them
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=build MAKE_CMD=make
while [ $# -gt 0 ]; do
  case "$1" in
    --build) BUILD=$2; shift 2 ;;
    --make) MAKE_CMD=$2; shift 2 ;;
    *) echo "usage: $0 --build DIR --make MAKE" >&2; exit 2 ;;
  esac
done
cd "$ROOT" || exit 2
B=$(realpath -m "$BUILD")
W=$B/grpc-forksafe SHIM=$B/libgrpc_forksafe.so CLIENT=$B/tests/fork-client REPORT=$B/tests/wrapper/audit-report
for f in "$W" "$SHIM" "$CLIENT" "$REPORT" "$B/echo-server" "$B/tests/wrapper/fork-exec"; do
  [ -x "$f" ] || [ -f "$f" ] || { echo "$0: $f does not exist (run make first)" >&2; exit 2; }
done
LIMIT=${FORKSAFE_TEST_TIMEOUT:-60}
VERSION=$(sed -n 's/^VERSION *:= *//p' Makefile)

# Whatever the caller runs under is not part of the test.
unset LD_PRELOAD GRPC_FORKSAFE_MODE GRPC_FORKSAFE_LOG GRPC_FORKSAFE_LOG_FILE GRPC_FORKSAFE_ALLOW_UNTESTED

tmp=$(mktemp -d)
# shellcheck source=scripts/echo-server.sh
. scripts/echo-server.sh
ECHO_SERVER_BIN=$B/echo-server
echo_server_stop_on_exit "$tmp"

# shellcheck source=scripts/verdicts.sh
. scripts/verdicts.sh
# shellcheck source=scripts/gunicorn.sh
. scripts/gunicorn.sh
# check NAME PROBLEMS [EVIDENCE FILES...]: PASS if PROBLEMS is empty.
check() { if [ -z "$2" ]; then pass "$1"; else fail "$1" "${2%; }" "${@:3}"; fi; }

# run NAME CMD...: CMD under timeout (RUN_LIMIT seconds, else LIMIT), output in $tmp/NAME.out and .err; sets ST.
run() {
  local name=$1
  shift
  # The braces keep bash's "Terminated" notice, for commands that are
  # meant to die of a signal, out of the test's output.
  { timeout -k 5 "${RUN_LIMIT:-$LIMIT}" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err"; ST=$?; } 2>/dev/null
}
out() { cat "$tmp/$1.out"; }
# Lines as one line, for a message.
oneline() { printf '%s\n' "$1" | paste -sd' '; }
err() { cat "$tmp/$1.err"; }
# Problems with run NAME's status ($2 wanted) and stderr line count ($3 wanted, optional).
expect_status() {
  local name=$1 want=$2 lines=${3:-}
  [ "$ST" -eq "$want" ] || printf 'exit status %s, expected %s; ' "$ST" "$want"
  [ -z "$lines" ] || [ "$(wc -l <"$tmp/$name.err")" -eq "$lines" ] ||
    printf '%s lines on stderr, expected %s; ' "$(wc -l <"$tmp/$name.err")" "$lines"
}

# --- the command line ------------------------------------------------------

run help "$W" --help
p=$(expect_status help 0 0)
out help | grep -q '^Usage: grpc-forksafe ' || p+="no usage line; "
for word in --mode --log --audit --version reconnect close audit off; do
  out help | grep -qe "$word" || p+="--help does not mention $word; "
done
check "--help" "$p" "$tmp/help.out"

run version "$W" --version
p=$(expect_status version 0 0)
[ "$(out version)" = "grpc-forksafe $VERSION" ] || p+="printed '$(out version)', expected 'grpc-forksafe $VERSION'; "
for page in man/*.[1-8]; do
  grep -q "^\.TH .*\"grpc-forksafe $VERSION\"" "$page" || p+="$page does not say version $VERSION in .TH; "
done
check "--version (and the manual pages) match the Makefile's VERSION" "$p"

run true "$W" true
check "exit status 0 passed through" "$(expect_status true 0 0)" "$tmp/true.err"

run three "$W" sh -c 'exit 3'
check "exit status 3 passed through" "$(expect_status three 3 0)" "$tmp/three.err"

run missing "$W" no-such-command-grpc-forksafe
p=$(expect_status missing 127 1)
err missing | grep -q 'no-such-command-grpc-forksafe' || p+="the message does not name the command; "
check "a command that does not exist: 127 and one line" "$p" "$tmp/missing.err"

printf '#!/bin/sh\ntouch "%s/ran"\n' "$tmp" >"$tmp/not-executable"
chmod 0644 "$tmp/not-executable"
run noexec "$W" "$tmp/not-executable"
p=$(expect_status noexec 126 1)
[ ! -e "$tmp/ran" ] || p+="the file ran; "
check "a command that is not executable: 126 and one line" "$p" "$tmp/noexec.err"

# Each usage error: status 2, one line naming the culprit (and, for a bad
# option or value, what is accepted), and the command never runs (it would
# leave a file behind).
p="" i=0
usage_case() { # usage_case WORD ACCEPTED(yes/no) ARGS...
  local word=$1 accepted=$2 q
  shift 2
  i=$((i + 1))
  run usage$i "$W" "$@"
  q=$(expect_status usage$i 2 1)
  err usage$i | grep -qF -e "$word" || q+="the message does not name '$word'; "
  [ "$accepted" = no ] || err usage$i | grep -qF '(accepted: ' || q+="the message does not say what is accepted; "
  [ -z "$q" ] || p+="'grpc-forksafe $*': $q"
}
ran=$tmp/usage-ran
usage_case --bogus yes --bogus touch "$ran"
usage_case sometimes yes --mode=sometimes touch "$ran"
usage_case 7 yes --log 7 touch "$ran"
usage_case loud yes --log loud touch "$ran"
usage_case " 5" yes --quiesce-ms " 5" touch "$ran"
usage_case 600001 yes --quiesce-ms 600001 touch "$ran"
usage_case --mode no --mode
usage_case "--mode off" no --audit --mode off touch "$ran"
usage_case "--log error" no --audit --log error touch "$ran"
usage_case "no command" no
usage_case "no command" no --log info --
[ ! -e "$ran" ] || p+="the command ran after a usage error; "
check "usage errors: 2 and one line, the command never runs" "$p" "$tmp"/usage*.err

run mode-log "$W" --mode Close --log=1 --quiesce-ms=250 \
  sh -c 'echo "mode=$GRPC_FORKSAFE_MODE log=$GRPC_FORKSAFE_LOG quiesce=$GRPC_FORKSAFE_QUIESCE_MS"'
p=$(expect_status mode-log 0)
[ "$(out mode-log)" = "mode=close log=1 quiesce=250" ] || p+="the command saw '$(out mode-log)'; "
check "--mode, --log and --quiesce-ms set GRPC_FORKSAFE_MODE, _LOG and _QUIESCE_MS" "$p" "$tmp/mode-log.err"

# The shell run by the wrapper kills itself: the caller must see the signal.
run sigterm "$W" sh -c 'kill -TERM $$'
check "a command killed by SIGTERM: the wrapper's status shows it (143)" "$(expect_status sigterm 143)"

# --- LD_PRELOAD ------------------------------------------------------------

# Two libraries of the user's, separated as users do (a space); they must
# stay, after the shim, in their order.
for lib in first second; do cc -shared -fPIC -o "$tmp/$lib.so" -x c /dev/null; done
LD_PRELOAD="$tmp/first.so $tmp/second.so" run preload "$W" sh -c 'printf "%s\n" "$LD_PRELOAD"'
p=$(expect_status preload 0 0)
[ "$(out preload)" = "$SHIM:$tmp/first.so:$tmp/second.so" ] ||
  p+="LD_PRELOAD was '$(out preload)', expected '$SHIM:$tmp/first.so:$tmp/second.so'; "
# grep reads its own maps: both libraries must be loaded in the command.
LD_PRELOAD="$tmp/first.so" run preload-maps "$W" grep -ohE '(libgrpc_forksafe|first)\.so' /proc/self/maps
[ "$(sort -u "$tmp/preload-maps.out" | paste -sd' ')" = "first.so libgrpc_forksafe.so" ] ||
  p+="the command mapped '$(sort -u "$tmp/preload-maps.out" | paste -sd' ')'; "
LD_PRELOAD="$tmp/first.so:$SHIM" run preload-twice "$W" sh -c 'printf "%s\n" "$LD_PRELOAD"'
[ "$(out preload-twice)" = "$SHIM:$tmp/first.so" ] || p+="with the shim already listed, LD_PRELOAD was '$(out preload-twice)'; "
check "an existing LD_PRELOAD is kept, after the shim" "$p" "$tmp/preload.err"

# --- a log file or descriptor that cannot be used ---------------------------

# The complaint is one line, from the first process under the shim, however
# many programs that process and its children exec (the shim marks the
# environment: GRPC_FORKSAFE_LOG_WARNED=1); the program's output and exit
# status stay its own.
FORK_EXEC=$B/tests/wrapper/fork-exec
# log_once NAME STATUS OUTPUT PATTERN [VAR=VALUE...] -- CMD...: CMD with the
# shim preloaded and the variables set; problems unless it exits with STATUS,
# prints OUTPUT, and its stderr holds exactly one line of the shim's, which
# matches PATTERN.
log_once() {
  local name=$1 status=$2 output=$3 pattern=$4 envs=() n
  shift 4
  while [ "$1" != -- ]; do envs+=("$1"); shift; done
  shift
  run "$name" env -u GRPC_FORKSAFE_LOG_WARNED -u GRPC_FORKSAFE_LOG_FD LD_PRELOAD="$SHIM" "${envs[@]}" "$@"
  expect_status "$name" "$status"
  [ "$(out "$name")" = "$output" ] || printf '%s printed %s; ' "$name" "'$(oneline "$(out "$name")")'"
  n=$(grep -cE '^[^ ]+\[[0-9]+\]: grpc-forksafe: ' "$tmp/$name.err")
  [ "$n" -eq 1 ] || printf '%s: %s lines of the shim on stderr, expected 1; ' "$name" "$n"
  grep -qE "^[^ ]+\[[0-9]+\]: grpc-forksafe: warn: $pattern\$" "$tmp/$name.err" ||
    printf '%s: no line matching "%s"; ' "$name" "$pattern"
}
missing=$tmp/no-such-directory/forksafe.log
said='GRPC_FORKSAFE_LOG_FILE="[^"]*" cannot be opened \(No such file or directory\); logging to stderr'
five='for i in 1 2 3 4 5; do /bin/true; done'
p=$(log_once file-sh 3 "done" "$said" GRPC_FORKSAFE_LOG_FILE="$missing" -- sh -c "$five; echo done; exit 3")
p+=$(log_once file-forks 0 "5 of 5 children exited with 0" "$said" GRPC_FORKSAFE_LOG_FILE="$missing" -- \
  "$FORK_EXEC" 5 /bin/sh -c 'sh -c true')
p+=$(log_once file-python 0 "done" "$said" GRPC_FORKSAFE_LOG_FILE="$missing" -- /usr/bin/python3 -c \
  'import subprocess
for _ in range(5): subprocess.run(["/bin/true"], check=True)
print("done")')
p+=$(log_once file-mark 0 1 "$said" GRPC_FORKSAFE_LOG_FILE="$missing" -- sh -c 'sh -c "echo \$GRPC_FORKSAFE_LOG_WARNED"')
p+=$(log_once fd-sh 0 "done" 'GRPC_FORKSAFE_LOG_FD=99 cannot be used \(it is not open\); logging to stderr' \
  GRPC_FORKSAFE_LOG_FD=99 -- sh -c "$five; echo done")
[ ! -e "$tmp/no-such-directory" ] || p+="the missing directory was created; "
check "a log file in a missing directory, a log descriptor not open: said once in all, not at each of 5 execs" "$p" \
  "$tmp"/file-*.err "$tmp/fd-sh.err"

# Why checks that run programs as user nobody cannot run here, or nothing:
# they need root, the user, and a build tree nobody can reach (a clone in a
# directory only root may enter, such as one made by mktemp -d, is not).
as_nobody_unavailable() {
  local f
  if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
    echo "needs root and user nobody"
    return
  fi
  for f in "$@"; do
    setpriv --reuid=nobody --regid=nogroup --clear-groups -- test -r "$f" ||
      { echo "user nobody cannot reach $f"; return; }
  done
}

# A log file the process may not open, after a change of user.
why=$(as_nobody_unavailable "$SHIM" "$FORK_EXEC")
if [ -n "$why" ]; then
  pass "a log file the user may not open (skipped: $why)"
else
  nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
  : >"$tmp/private.log"
  chmod 0600 "$tmp/private.log"
  said='GRPC_FORKSAFE_LOG_FILE="[^"]*" cannot be opened \(Permission denied\); logging to stderr'
  p=$(log_once private-sh 0 "done" "$said" GRPC_FORKSAFE_LOG_FILE="$tmp/private.log" -- "${nobody[@]}" sh -c "$five; echo done")
  p+=$(log_once private-forks 0 "5 of 5 children exited with 0" "$said" GRPC_FORKSAFE_LOG_FILE="$tmp/private.log" -- \
    "${nobody[@]}" "$FORK_EXEC" 5 /bin/true)
  [ ! -s "$tmp/private.log" ] || p+="something was written to the private file; "
  check "a root-owned 0600 log file, as nobody: said once in all, not at each of 5 execs" "$p" "$tmp"/private-*.err
fi

# --- the audit report on hand-made logs -------------------------------------

# audit_log NAME LINES...: each line gets the shim's prefix.
audit_log() {
  local name=$1 line
  shift
  : >"$tmp/$name.log"
  for line in "$@"; do printf '%s\n' "$line" >>"$tmp/$name.log"; done
}
P='srv[100]: grpc-forksafe: warn:'
audit_log needs "$P audit: fork: child 101 inherits 2 live channels and 1 calls in flight" \
  "srv[101]: grpc-forksafe: warn: audit: inherited channel to dns:///backend:443 used in this child" \
  "srv[101]: grpc-forksafe: warn: audit: inherited channel to dns:///backend:443 used in this child" \
  "$P audit: fork: child 102 inherits 1 live channels and 0 calls in flight" \
  "srv[102]: grpc-forksafe: warn: audit: new channel to 10.0.0.1:50051 in this child would share the connection of an inherited channel" \
  "$P fork: an unrelated warning" \
  "$P audit: fork: child ? (forked inside libc) inherits 1 live channels and 0 calls in flight"
audit_log unused "$P audit: fork: child 101 inherits 1 live channels and 0 calls in flight"
audit_log empty
audit_log blind "$P gRPC core 30.0.0 is untested: passing it through"
# The full fork line: a server with threads waiting in gRPC forks three
# children; one execs at once, one uses nothing, one would share a connection.
R='0 servers, 0 threads inside gRPC, gRPC initialised; 0 descriptors of embedded gRPC (0 sockets)'
audit_log kinds "$P audit: fork: child 201 inherits 0 live channels and 0 calls in flight; 1 servers, 3 threads inside gRPC, gRPC initialised; 0 descriptors of embedded gRPC (0 sockets)" \
  "true[201]: grpc-forksafe: warn: audit: exec: program started" \
  "$P audit: fork: child 202 inherits 0 live channels and 0 calls in flight; 1 servers, 2 threads inside gRPC, gRPC initialised; 0 descriptors of embedded gRPC (0 sockets)" \
  "$P audit: fork: child 203 inherits 1 live channels and 0 calls in flight; $R" \
  "srv[203]: grpc-forksafe: warn: audit: new channel to t:1 in this child would share the connection of an inherited channel"
audit_log execd "$P audit: fork: child 301 inherits 1 live channels and 0 calls in flight; $R" \
  "sh[301]: grpc-forksafe: warn: audit: exec: program started" \
  "sh[302]: grpc-forksafe: warn: audit: exec: program started" \
  "$P audit: fork: child 302 inherits 1 live channels and 0 calls in flight; $R"
# Embedded gRPC: children whose use cannot be seen, and one that opened a socket.
E='0 servers, 0 threads inside gRPC, gRPC not initialised; 5 descriptors of embedded gRPC (2 sockets)'
audit_log embedded "py[400]: grpc-forksafe: warn: audit: fork: child 401 inherits 0 live channels and 0 calls in flight; $E"
audit_log embedded-used "py[400]: grpc-forksafe: warn: audit: fork: child 401 inherits 0 live channels and 0 calls in flight; $E" \
  "py[401]: grpc-forksafe: warn: audit: embedded gRPC (cygrpc.cpython-311-x86_64-linux-gnu.so) opened a socket in this child, which inherited 5 of its descriptors"
# A child whose embedded gRPC goes on with the epoll set (and connections) it inherited.
audit_log embedded-waited "py[400]: grpc-forksafe: warn: audit: fork: child 401 inherits 0 live channels and 0 calls in flight; $E" \
  "py[401]: grpc-forksafe: warn: audit: embedded gRPC (cygrpc.cpython-311-x86_64-linux-gnu.so) waited on the epoll set it inherited in this child, which inherited 5 of its descriptors"
p=""
run needs "$REPORT" "$tmp/needs.log"
[ "$ST" -eq 1 ] || p+="needs: status $ST; "
out needs | grep -q 'srv\[100\] forked child 101 with 2 live channels and 1 call in flight' || p+="needs: fork 101 not reported; "
out needs | grep -q 'child 101 used 2 inherited channels to dns:///backend:443$' ||
  p+="needs: child 101's two channels not reported as such; "
out needs | grep -q 'srv\[100\] forked a child (pid unknown: forked inside libc) with 1 live channel' ||
  p+="needs: the fork inside libc not reported; "
out needs | grep -q 'child 102 made a new channel to 10.0.0.1:50051, which would share' || p+="needs: child 102's new channel not reported; "
out needs | grep -q '^srv\[100\]: grpc-forksafe: warn: fork: an unrelated warning$' || p+="needs: the other warning was not repeated; "
out needs | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe: 2 child processes' ||
  p+="needs: verdict '$(out needs | tail -n 1)'; "
run unused "$REPORT" "$tmp/unused.log"
out unused | tail -n 1 | grep -q '^grpc-forksafe: verdict: 1 fork with live gRPC state, but no child used it' ||
  p+="unused: verdict '$(out unused | tail -n 1)'; "
run empty "$REPORT" "$tmp/empty.log"
[ "$(out empty)" = "grpc-forksafe: verdict: no fork with live gRPC state: this program does not need grpc-forksafe" ] ||
  p+="empty: printed '$(out empty)'; "
run blind "$REPORT" "$tmp/blind.log"
out blind | tail -n 1 | grep -q 'verdict: no fork with live gRPC state seen, but the library reported problems' ||
  p+="blind: verdict '$(out blind | tail -n 1)'; "
run kinds "$REPORT" "$tmp/kinds.log"
[ "$ST" -eq 1 ] || p+="kinds: status $ST; "
out kinds | grep -q "^grpc-forksafe: audit: 1 fork whose child exec'd at once (harmless); first: srv\[100\] forked child 201, which exec'd$" ||
  p+="kinds: no exec'd kind; "
out kinds | grep -q '^grpc-forksafe: audit: 1 fork made while other threads were inside gRPC .*; first: srv\[100\] forked child 202 with 2 other threads inside gRPC$' ||
  p+="kinds: the busy kind does not count 1 (the exec'd child is harmless) and name child 202; "
out kinds | grep -q '^grpc-forksafe: audit: 1 fork made while a gRPC server was running .*; first: srv\[100\] forked child 202 with 1 live server$' ||
  p+="kinds: no server kind; "
out kinds | grep -q '^grpc-forksafe: audit: 1 fork whose child made a channel that would share an inherited connection; first: srv\[100\] forked child 203, which made a new channel to t:1' ||
  p+="kinds: no shared-connection kind; "
out kinds | grep -q 'forked child 201 with 0 live channels and 0 calls in flight, 1 live server, 3 other threads inside gRPC, gRPC initialised$' ||
  p+="kinds: fork 201 not listed with what it carried; "
out kinds | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe: 1 child process' ||
  p+="kinds: verdict '$(out kinds | tail -n 1)'; "
run execd "$REPORT" "$tmp/execd.log"
[ "$ST" -eq 0 ] || p+="execd: status $ST; "
out execd | tail -n 1 | grep -q "^grpc-forksafe: verdict: 2 forks with live gRPC state, and every child exec'd at once, which is harmless: this program does not need grpc-forksafe$" ||
  p+="execd: verdict '$(out execd | tail -n 1)'; "
run embedded "$REPORT" "$tmp/embedded.log"
[ "$ST" -eq 3 ] || p+="embedded: status $ST; "
out embedded | grep -q 'py\[400\] forked child 401 with 5 descriptors of gRPC compiled into the program (2 sockets; its channels are not seen)$' ||
  p+="embedded: fork 401 not listed with its descriptors; "
out embedded | tail -n 1 | grep -q '^grpc-forksafe: verdict: unknown: 1 fork was made while gRPC compiled into the program' ||
  p+="embedded: verdict '$(out embedded | tail -n 1)'; "
run embedded-used "$REPORT" "$tmp/embedded-used.log"
[ "$ST" -eq 1 ] || p+="embedded-used: status $ST; "
out embedded-used | grep -q '^grpc-forksafe: audit:   child 401 used gRPC compiled into cygrpc.cpython-311-x86_64-linux-gnu.so, which it inherited' ||
  p+="embedded-used: the child's use not reported; "
out embedded-used | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe: 1 child process' ||
  p+="embedded-used: verdict '$(out embedded-used | tail -n 1)'; "
run embedded-waited "$REPORT" "$tmp/embedded-waited.log"
[ "$ST" -eq 1 ] || p+="embedded-waited: status $ST; "
out embedded-waited | grep -q "^grpc-forksafe: audit:   child 401 used gRPC compiled into cygrpc.cpython-311-x86_64-linux-gnu.so, which it inherited (it waited on that gRPC's epoll set, which it shares with its parent" ||
  p+="embedded-waited: the child's use not reported; "
out embedded-waited | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe: 1 child process' ||
  p+="embedded-waited: verdict '$(out embedded-waited | tail -n 1)'; "
check "the audit report on hand-made logs: forks, uses, kinds, each verdict" "$p" "$tmp"/needs.err "$tmp"/unused.err \
  "$tmp"/kinds.out "$tmp"/embedded.out

# --- --audit, end to end -----------------------------------------------------

# Problems if the two runs' stdout differ other than in numbers (pids, ports,
# times): the audit must not change what the program does.
same_output() {
  local a b
  a=$(sed -E 's/[0-9]+/N/g' "$tmp/$1.out")
  b=$(sed -E 's/[0-9]+/N/g' "$tmp/$2.out")
  [ "$a" = "$b" ] || printf 'its output changed under --audit: %s; ' "$(diff <(echo "$a") <(echo "$b") | grep '^[<>]' | head -n 4 | paste -sd' ')"
}
# Problems if stderr holds a line of the shim's own ("prog[pid]: grpc-forksafe: ..."):
# with --audit, everything the shim says goes to the log.
no_shim_lines() {
  local lines
  lines=$(grep -E '^[^ ]+\[[0-9]+\]: grpc-forksafe: ' "$tmp/$1.err" | head -n 2)
  [ -z "$lines" ] || printf 'the shim wrote on stderr: %s; ' "$(oneline "$lines")"
}
# The checks of --audit that need the echo server (ECHO_PORT) and the test programs.
# shellcheck source=tests/wrapper/audit.sh
. tests/wrapper/audit.sh

mkdir -p "$tmp/audit-tmp"
# A program that writes an audit line itself: the wrapper's plumbing (the
# private file, the environment, the report, the status) without the shim.
# The fork line goes through the inherited descriptor, the use line by path.
TMPDIR=$tmp/audit-tmp GRPC_FORKSAFE_LOG_WARNED=1 run plumbing "$W" --audit bash -c '
  [ "$GRPC_FORKSAFE_MODE" = audit ] || echo "mode is $GRPC_FORKSAFE_MODE" >&2
  [ "$(stat -c %a "$GRPC_FORKSAFE_LOG_FILE")" = 600 ] || echo "log file not private" >&2
  [ "${GRPC_FORKSAFE_LOG_WARNED-unset}" = unset ] || echo "a mark from the caller was kept" >&2
  [ "$GRPC_FORKSAFE_LOG_FD" -ge 100 ] || echo "log descriptor $GRPC_FORKSAFE_LOG_FD is not out of the way" >&2
  echo "sh[1]: grpc-forksafe: warn: audit: fork: child 2 inherits 1 live channels and 0 calls in flight" >&"$GRPC_FORKSAFE_LOG_FD"
  echo "sh[2]: grpc-forksafe: warn: audit: inherited channel to x:1 used in this child" >>"$GRPC_FORKSAFE_LOG_FILE"
  exit 7'
p=$(expect_status plumbing 7)
err plumbing | grep -qE '^mode is|not private|was kept|out of the way' &&
  p+="$(err plumbing | grep -E '^mode is|not private|was kept|out of the way' | head -n 1); "
err plumbing | tail -n 1 | grep -q 'verdict: this program needs grpc-forksafe' || p+="no 'needs' verdict at the end; "
[ -z "$(ls -A "$tmp/audit-tmp")" ] || p+="left $(ls "$tmp/audit-tmp") in TMPDIR; "
check "--audit: private log file and descriptor, report, exit status 7 passed through, nothing left behind" "$p" \
  "$tmp/plumbing.err"

run audit-nofork "$W" --audit sh -c '(true); exit 5'
p=$(expect_status audit-nofork 5)
err audit-nofork | tail -n 1 | grep -q 'verdict: no fork with live gRPC state: this program does not need grpc-forksafe' ||
  p+="verdict '$(err audit-nofork | tail -n 1)'; "
check "--audit on a shell that forks without gRPC: does not need it" "$p" "$tmp/audit-nofork.err"

run audit-signal "$W" --audit sh -c 'kill -TERM $$'
p=$(expect_status audit-signal 143)
err audit-signal | grep -q 'verdict: ' || p+="no verdict; "
check "--audit: the command's signal is passed on (143) after the report" "$p" "$tmp/audit-signal.err"

# kill(1) aimed at the wrapper reaches the command, and the wrapper still reports.
timeout -k 5 "$LIMIT" "$W" --audit sleep 30 >"$tmp/audit-kill.out" 2>"$tmp/audit-kill.err" &
wpid=$!
for _ in $(seq 50); do pgrep -P "$wpid" >/dev/null && break; sleep 0.1; done
wrapper=$(pgrep -P "$wpid" | head -n 1)
for _ in $(seq 50); do pgrep -P "$wrapper" sleep >/dev/null && break; sleep 0.1; done
started=$SECONDS
kill -TERM "$wrapper" 2>/dev/null
wait "$wpid"
ST=$?
p=$(expect_status audit-kill 143)
[ $((SECONDS - started)) -lt 10 ] || p+="the command did not stop when the wrapper was killed; "
err audit-kill | grep -q 'verdict: ' || p+="no verdict; "
check "--audit: SIGTERM sent to the wrapper reaches the command" "$p" "$tmp/audit-kill.err"

if ! echo_server_start "$tmp" timeout $((LIMIT * 10 + 120)); then
  fail "echo-server" "did not start; the checks that need it are skipped"
else
  target=127.0.0.1:$ECHO_PORT

  # A child makes its own channel to the parent's target: stock gRPC gives it
  # the parent's connection.
  # Stock gRPC's child sometimes hangs here (without the shim too): cut short.
  RUN_LIMIT=20 run audit-new "$W" --audit "$CLIENT" new-channel --target "$target" --run audit-new
  p=""
  grep -q 'RESULT .*: ok$' "$tmp/audit-new.out" && want=0 || want=1
  [ "$ST" -eq "$want" ] || [ "$ST" -eq 124 ] || p+="status $ST while fork-client said $(grep RESULT "$tmp/audit-new.out"); "
  err audit-new | grep -qE 'fork-client\[[0-9]+\] forked child [0-9]+ with 1 live channel and 0 calls in flight' ||
    p+="the fork was not reported; "
  err audit-new | grep -qE "child [0-9]+ made a new channel to $target, which would share" ||
    p+="the child's new channel was not reported; "
  err audit-new | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe' ||
    p+="verdict '$(err audit-new | tail -n 1)'; "
  check "--audit fork-client new-channel: the fork, the shared connection, needs grpc-forksafe" "$p" "$tmp/audit-new.err"

  # With stock gRPC the child's call may never complete: it is cut short.
  RUN_LIMIT=20 run audit-stub "$W" --audit "$CLIENT" inherited-stub --target "$target" --run audit-stub
  p=""
  err audit-stub | grep -qE "child [0-9]+ used its inherited channel to $target\$" ||
    p+="the child's use of its inherited channel was not reported; "
  err audit-stub | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe' ||
    p+="verdict '$(err audit-stub | tail -n 1)'; "
  check "--audit fork-client inherited-stub: the inherited channel used, needs grpc-forksafe" "$p" "$tmp/audit-stub.err"

  # Children made by fork+exec start afresh: forks with live state, each
  # child exec'd at once, which is harmless.
  run audit-exec "$W" --audit "$CLIENT" fork-exec --target "$target" --run audit-exec
  p=$(expect_status audit-exec 0)
  err audit-exec | grep -q "^grpc-forksafe: audit: 2 forks whose child exec'd at once (harmless); first: fork-client\[" ||
    p+="the exec'd children were not counted; "
  err audit-exec | tail -n 1 | grep -q "^grpc-forksafe: verdict: 2 forks with live gRPC state, and every child exec'd at once, which is harmless: this program does not need grpc-forksafe" ||
    p+="verdict '$(err audit-exec | tail -n 1)'; "
  run plain-exec "$CLIENT" fork-exec --target "$target" --run audit-exec
  p+=$(same_output plain-exec audit-exec)
  check "--audit fork-client fork-exec: two forks whose children exec'd: does not need it; output unchanged" "$p" \
    "$tmp/audit-exec.err"

  # posix_spawn is no fork: a gRPC program that does not need the shim.
  run audit-spawn "$W" --audit "$CLIENT" posix-spawn --target "$target" --run audit-spawn
  p=$(expect_status audit-spawn 0)
  err audit-spawn | tail -n 1 | grep -q '^grpc-forksafe: verdict: no fork with live gRPC state: this program does not need' ||
    p+="verdict '$(err audit-spawn | tail -n 1)'; "
  check "--audit fork-client posix-spawn: does not need grpc-forksafe" "$p" "$tmp/audit-spawn.err"

  audit_end_to_end

  # --- make install / uninstall ----------------------------------------------

  dest=$tmp/dest
  RUN_LIMIT=$((LIMIT * 3)) run install "$MAKE_CMD" --no-print-directory -C "$ROOT" BUILD="$BUILD" \
    install DESTDIR="$dest" PREFIX=/usr/local
  p=$(expect_status install 0)
  for f in bin/grpc-forksafe lib/grpc-forksafe/libgrpc_forksafe.so share/man/man1/grpc-forksafe.1 \
           share/man/man7/libgrpc_forksafe.7; do
    [ -f "$dest/usr/local/$f" ] || p+="$f not installed; "
  done
  [ -x "$dest/usr/local/bin/grpc-forksafe" ] || p+="bin/grpc-forksafe not executable; "
  installed=$dest/usr/local/bin/grpc-forksafe
  run installed-preload "$installed" sh -c 'printf "%s\n" "$LD_PRELOAD"'
  [ "$(out installed-preload)" = "$dest/usr/local/lib/grpc-forksafe/libgrpc_forksafe.so" ] ||
    p+="the installed wrapper preloads '$(out installed-preload)'; "
  # An unmodified gRPC program, through the installed wrapper, works.
  run installed-run "$installed" --log info "$CLIENT" new-channel --target "$target" --run installed-run
  [ "$ST" -eq 0 ] && grep -q 'RESULT .*: ok$' "$tmp/installed-run.out" ||
    p+="fork-client new-channel failed (status $ST) under the installed wrapper; "
  grep -qE 'fork-client\[[0-9]+\]: grpc-forksafe: [a-z]+: fork: child' "$tmp/installed-run.err" ||
    p+="the installed shim did not report the fork; "
  check "make install DESTDIR=... PREFIX=/usr/local, then fork-client through the installed wrapper" "$p" \
    "$tmp/install.out" "$tmp/install.err" "$tmp/installed-run.out" "$tmp/installed-run.err"

  run uninstall "$MAKE_CMD" --no-print-directory -C "$ROOT" BUILD="$BUILD" \
    uninstall DESTDIR="$dest" PREFIX=/usr/local
  p=$(expect_status uninstall 0)
  left=$(find "$dest" ! -type d | sed "s|^$dest||")
  [ -z "$left" ] || p+="left behind: $(oneline "$left"); "
  check "make uninstall DESTDIR=... leaves no file behind" "$p" "$tmp/uninstall.err"

  # LIBDIR chosen apart from PREFIX: the wrapper must find the library there.
  dest2=$tmp/dest2
  RUN_LIMIT=$((LIMIT * 3)) run install2 "$MAKE_CMD" --no-print-directory -C "$ROOT" BUILD="$BUILD" \
    install DESTDIR="$dest2" PREFIX=/opt/gf LIBDIR=/usr/lib/x86_64-linux-gnu
  p=$(expect_status install2 0)
  run installed2 "$dest2/opt/gf/bin/grpc-forksafe" sh -c 'printf "%s\n" "$LD_PRELOAD"'
  [ "$(out installed2)" = "$dest2/usr/lib/x86_64-linux-gnu/grpc-forksafe/libgrpc_forksafe.so" ] ||
    p+="the wrapper preloads '$(out installed2)' $(err installed2); "
  check "make install with LIBDIR outside PREFIX: the wrapper finds the library" "$p" "$tmp/install2.err"
fi

# --- documentation -----------------------------------------------------------

p=""
for page in man/*.[1-8]; do
  warnings=$(MANWIDTH=80 timeout -k 5 "$LIMIT" man --warnings -l "$page" 2>&1 >/dev/null)
  [ -z "$warnings" ] || p+="$page: $(echo "$warnings" | head -n 3 | tr '\n' ' '); "
done
check "man --warnings -l man/*: no warning" "$p"

# Every GRPC_FORKSAFE_* the shim's code names is documented in README.md and
# in libgrpc_forksafe(7), and nothing documented is unknown to the code.
names() { grep -ohE 'GRPC_FORKSAFE_[A-Z][A-Z_]*' "$@" | sed 's/_*$//' | sort -u; }
code=$(names shim/*.c shim/*.h)
p=""
[ -n "$code" ] || p+="found no GRPC_FORKSAFE_ variable in shim/; "
for doc in README.md man/libgrpc_forksafe.7; do
  missing=$(comm -23 <(echo "$code") <(names "$doc"))
  [ -z "$missing" ] || p+="$doc does not document $(oneline "$missing"); "
done
for doc in README.md man/*.[1-8]; do
  unknown=$(comm -13 <(echo "$code") <(names "$doc"))
  [ -z "$unknown" ] || p+="$doc documents $(oneline "$unknown"), which shim/ does not read; "
done
# The values of GRPC_FORKSAFE_MODE: shim/config.c's table, README's row, the manual's POLICIES.
modes() { sort -u | grep .; }
code_modes=$(grep -ohE '\{ *"[a-z]+", *FS_MODE_' shim/config.c | grep -oE '"[a-z]+"' | tr -d '"' | modes)
readme_modes=$(grep '^| `GRPC_FORKSAFE_MODE`' README.md | cut -d'|' -f3 | grep -oE '`[a-z]+`' | tr -d '`' | modes)
man_modes=$(awk '/^\.SH/ { in_p = ($2 == "POLICIES") } in_p && prev == ".TP" && $1 == ".B" { print $2 } { prev = $1 }' \
  man/libgrpc_forksafe.7 | modes)
[ -n "$code_modes" ] || p+="found no mode table in shim/config.c; "
[ "$code_modes" = "$readme_modes" ] || p+="modes: shim/config.c has $(oneline "$code_modes"), README.md $(oneline "$readme_modes"); "
[ "$code_modes" = "$man_modes" ] || p+="modes: shim/config.c has $(oneline "$code_modes"), libgrpc_forksafe(7) $(oneline "$man_modes"); "
check "README.md and libgrpc_forksafe(7) document exactly the settings (and modes) shim/ reads" "$p"

summary
