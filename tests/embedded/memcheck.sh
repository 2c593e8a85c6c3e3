# static-client's basic scenario under valgrind's memcheck with the shim
# preloaded, in every process (sourced by run.sh, bash). Judged as
# tests/integration/valgrind.sh judges its runs, with its suppressions and
# this directory's (the same blocks, as gRPC compiled in names them): any
# memcheck error in any process, or a definite leak whose stack passes
# through the shim, fails; so does a run in which the shim was not loaded.
# The scenario's own outcome is the basic checks' business, and is only
# reported here.

VG_ERROR=99  # memcheck's exit status when it found errors; the client never uses it
VG_SUPPS=("$(dirname "${BASH_SOURCE[0]}")/../integration/valgrind.supp" "$(dirname "${BASH_SOURCE[0]}")/valgrind.supp")

check_memcheck() {
  local run=memcheck-basic dir=$OUT/memcheck status p
  local name="memcheck: static-client basic with the shim, every process clean"
  command -v valgrind >/dev/null || { fail "$name" "valgrind is not installed"; return; }
  mkdir -p "$dir"
  # Deadlines four times the usual: memcheck runs a program some 30 times
  # slower, but these calls are short.
  timeout -k 10 "$VG_LIMIT" env -u GRPC_FORKSAFE_MODE -u GRPC_FORKSAFE_QUIESCE_MS -u GRPC_FORKSAFE_LOG_FILE \
    -u GRPC_ENABLE_FORK_SUPPORT LD_PRELOAD="$SHIM" GRPC_FORKSAFE_LOG=debug \
    valgrind --tool=memcheck --trace-children=yes --leak-check=full \
      --errors-for-leak-kinds=definite --error-exitcode=$VG_ERROR \
      "${VG_SUPPS[@]/#/--suppressions=}" --num-callers=40 --fullpath-after= --log-file="$dir/memcheck.%p" \
      "$BIN/static-client" basic "${STATIC_CLIENT_ARGS[@]}" --run "$run" --deadline-ms 8000 --attempt-ms 2000 \
      </dev/null >"$dir/client.out" 2>"$dir/client.err"
  status=$?
  case "$status" in
    "$VG_ERROR") problem "memcheck found errors in the parent" ;;
    124|137) problem "timed out after $VG_LIMIT s (hang)" ;;
  esac
  p=$(memcheck_logs_problems "$dir")
  [ -z "$p" ] || problem "${p%; }"
  P+=$(shim_log_problems "$dir/client.err" 1)
  verdict "$name" "$dir/client.out" "$dir/client.err"
  memcheck_logs_evidence "$dir" 60
  echo "  (memcheck run: $(grep -h '^RESULT' "$dir/client.out" || echo "no RESULT line, client status $status"))"
}
