#!/bin/bash
# gRPC compiled into the program (libgrpc.a): the shim cannot reach any of
# its functions, only its libc calls, so gRPC's own fork handling (its
# threads stopped and restarted) does not happen. What the shim guarantees
# then, and what these checks hold it to: the parent keeps working over its
# connection, untouched; in a child every descriptor gRPC held is dead, and
# no byte the child's gRPC writes reaches anyone; the child's first call
# that meets its inherited connection fails at once, UNAVAILABLE; no
# descriptor of gRPC's survives exec. A child that goes on using gRPC is
# outside it. The checks run clients built that way against a real echo
# server and judge what each process reported, what the server, a byte sink
# and the kernel saw, and what the shim logged:
#   - static-client forks with a live channel (basic, leak, stream, forks),
#     each child making one call on the inherited channel; basic, leak and
#     stream also run without the shim, where they must fail as stock gRPC
#     does;
#   - exec-client, built against libgrpc.so and with libgrpc.a, starts a
#     program in every way there is, also from a forked child, and that
#     program lists what it inherited: no descriptor of gRPC's may be among
#     them;
#   - the basic scenario once more, under memcheck.
#
# Usage: run.sh --shim SO --server BIN --bin DIR --out DIR
#   --bin  the directory holding static-client, exec-client-static,
#          exec-client-dynamic, fd-lister and byte-sink
# Environment: FORKSAFE_TEST_TIMEOUT, seconds one program may run (60);
# FORKSAFE_VALGRIND_TIMEOUT, the same under memcheck (240).
# Prints "PASS name" or "FAIL name: reason" per check, notes in parentheses,
# then "N passed, M failed"; exits non-zero if any check failed. Every run's
# output is kept in DIR.

set -u
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
. "$HERE/fork_checks.sh"
. "$HERE/exec_checks.sh"
. "$HERE/memcheck.sh"
parse_args "$@"
LIMIT=${FORKSAFE_TEST_TIMEOUT:-60}
VG_LIMIT=${FORKSAFE_VALGRIND_TIMEOUT:-240}

# The programs must be what the checks assume: gRPC compiled in (no gRPC
# library loaded, core's own functions defined in the program) and a symbol
# table to find it by; and the dynamic build really dynamic.
check_builds() {
  local b libs
  for b in static-client exec-client-static; do
    libs=$(ldd "$BIN/$b" | grep -oE 'lib(grpc|gpr|upb|address_sorting)[^ ]*\.so[^ ]*' | paste -sd' ' -)
    [ -z "$libs" ] || problem "$b loads $libs"
    nm "$BIN/$b" 2>/dev/null | grep -qE ' T grpc_init$' || problem "$b has no grpc_init of its own (stripped?)"
  done
  ldd "$BIN/exec-client-dynamic" | grep -q 'libgrpc\.so' || problem "exec-client-dynamic does not load libgrpc.so"
  verdict "the static clients have gRPC compiled in (no libgrpc, libgpr, libupb loaded; symbol table kept); the dynamic one loads libgrpc.so"
}

start=$(date +%s)
start_echo_server $((LIMIT * 20 + VG_LIMIT))
trap echo_server_stop EXIT
echo "echo-server on 127.0.0.1:$PORT; output in $OUT"
STATIC_CLIENT_ARGS=(--target "127.0.0.1:$PORT")
EXEC_CLIENT_ARGS=(--target "127.0.0.1:$PORT")

check_builds
check_basic
check_stock basic
check_leak
check_stock_leak
check_stream
# Here the child hangs or crashes with the shim too (a thread of the parent
# was inside gRPC at the fork): only the parent counts.
check_stock stream parent
check_forks
for build in dynamic static; do
  check_exec "$build"
  report_stock_exec "$build"
done
check_memcheck
echo_server_stop
echo "  (took $(($(date +%s) - start)) s)"
summary embedded
