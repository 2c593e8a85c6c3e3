# End-to-end checks of `grpc-forksafe --audit` on real programs, sourced by
# tests/wrapper/run.sh once the echo server runs (target=127.0.0.1:PORT). Each
# asserts the verdict and that the program's own output is what it is without
# the audit.

# shellcheck disable=SC2154 # W, B, ROOT, tmp, target, LIMIT come from run.sh
audit_end_to_end() {
  local fs=$B/tests/wrapper/forking-server p nobody

  # A grpc++ server forks while its sync threads wait in gRPC: the forks are
  # reported with the server and the threads, and, since no child used gRPC,
  # this run did not need the shim.
  run audit-server "$W" --audit "$fs" --forks 3 --interval-ms 50
  run plain-server "$fs" --forks 3 --interval-ms 50
  p=$(expect_status audit-server 0)
  p+=$(same_output plain-server audit-server)
  err audit-server | grep -qE '^grpc-forksafe: audit: 3 forks made while other threads were inside gRPC .*; first: forking-server\[[0-9]+\] forked child [0-9]+ with [0-9]+ other threads? inside gRPC$' ||
    p+="the forks with threads inside gRPC were not counted; "
  err audit-server | grep -qE '^grpc-forksafe: audit: 3 forks made while a gRPC server was running' ||
    p+="the forks with a live server were not counted; "
  err audit-server | tail -n 1 | grep -q '^grpc-forksafe: verdict: 3 forks with live gRPC state, but no child used it: this run did not need grpc-forksafe; a child that used gRPC would, and with other threads inside gRPC at the fork it could deadlock$' ||
    p+="verdict '$(err audit-server | tail -n 1)'; "
  check "--audit on a sync server that forks: the server and its threads inside gRPC are seen; output unchanged" "$p" \
    "$tmp/audit-server.err"

  # The server's child drops to another user and runs a gRPC client that
  # forks: that client's lines reach the report through the inherited
  # descriptor, and nothing of the shim's lands on the program's stderr.
  if [ "$(id -u)" -ne 0 ] || ! id nobody >/dev/null 2>&1; then
    pass "--audit across a change of user (skipped: needs root and user nobody)"
  else
    nobody=(setpriv --reuid=nobody --regid=nogroup --clear-groups --)
    run audit-setpriv "$W" --audit "$fs" --forks 1 -- "${nobody[@]}" "$CLIENT" new-channel --target "$target" --run setpriv
    run plain-setpriv "$fs" --forks 1 -- "${nobody[@]}" "$CLIENT" new-channel --target "$target" --run setpriv
    p=$(same_output plain-setpriv audit-setpriv)
    p+=$(no_shim_lines audit-setpriv)
    err audit-setpriv | grep -qE "^grpc-forksafe: audit: 1 fork whose child exec'd at once \(harmless\); first: forking-server\[" ||
      p+="the server's child, which exec'd, was not counted as such; "
    err audit-setpriv | grep -qE "^grpc-forksafe: audit: fork-client\[[0-9]+\] forked child [0-9]+ with 1 live channel" ||
      p+="the fork made as nobody did not reach the report; "
    err audit-setpriv | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe: 1 child process' ||
      p+="verdict '$(err audit-setpriv | tail -n 1)'; "
    check "--audit across a change of user (setpriv --reuid=nobody): the lines reach the report, none on stderr" "$p" \
      "$tmp/audit-setpriv.err"

    # Without the wrapper, a log file the new user cannot open: one line
    # saying so, not one per program started.
    : >"$tmp/private.log"
    chmod 0600 "$tmp/private.log"
    GRPC_FORKSAFE_LOG_FILE=$tmp/private.log LD_PRELOAD=$SHIM run log-once "${nobody[@]}" sh -c 'sh -c true; sh -c true; echo done'
    p=$(expect_status log-once 0)
    [ "$(out log-once)" = done ] || p+="printed '$(out log-once)'; "
    [ "$(grep -c 'GRPC_FORKSAFE_LOG_FILE=.* cannot be opened' "$tmp/log-once.err")" -eq 1 ] ||
      p+="$(grep -c 'cannot be opened' "$tmp/log-once.err") complaints about the log file, expected 1; "
    check "GRPC_FORKSAFE_LOG_FILE that cannot be opened: said once, not at every exec" "$p" "$tmp/log-once.err"
  fi

  audit_python
}

# grpcio: gRPC is compiled into the module, so the audit sees its descriptors
# but none of its channels. grpcio's own prefork handler sometimes hangs inside
# fork() when core's fork support is on (also without the shim), so it is
# turned off here, as it is in many deployments.
audit_python() {
  local py=/usr/bin/python3 p
  if ! "$py" -c 'import grpc' 2>/dev/null; then
    fail "--audit on grpcio programs" "$py cannot import grpc (python3-grpcio)"
    return
  fi
  export PYTHONPATH=$B/python:$ROOT/tests/python GRPC_ENABLE_FORK_SUPPORT=0

  # The child calls on its inherited channel: not harmless, whatever the
  # child's call did (stock grpcio may fail it, crash the child, or break the
  # parent's channel).
  run audit-py "$W" --audit "$py" tests/wrapper/py_inherited.py "$target"
  p=$(expect_status audit-py 0)
  out audit-py | head -n 1 | grep -q '^parent (pid [0-9]*): RPC before fork  *ok ' || p+="the first RPC failed; "
  err audit-py | grep -qE '^grpc-forksafe: audit: 1 fork made while gRPC compiled into the program held descriptors .*; first: python3\[[0-9]+\] forked child [0-9]+ with [1-9][0-9]* descriptors \([1-9][0-9]* sockets?\)$' ||
    p+="the fork with grpcio's descriptors (and its connection) was not reported; "
  err audit-py | tail -n 1 | grep -qE '^grpc-forksafe: verdict: (unknown: 1 fork was made while gRPC compiled into the program|this program needs grpc-forksafe)' ||
    p+="verdict '$(err audit-py | tail -n 1)'; "
  check "--audit on a grpcio program whose child uses its inherited channel: never 'does not need'" "$p" "$tmp/audit-py.err"

  # The child execs at once: harmless, and said so.
  run audit-py-exec "$W" --audit "$py" tests/wrapper/py_inherited.py "$target" exec
  run plain-py-exec "$py" tests/wrapper/py_inherited.py "$target" exec
  p=$(expect_status audit-py-exec 0)
  p+=$(same_output plain-py-exec audit-py-exec)
  err audit-py-exec | tail -n 1 | grep -q "^grpc-forksafe: verdict: 1 fork with live gRPC state, and every child exec'd at once, which is harmless: this program does not need grpc-forksafe$" ||
    p+="verdict '$(err audit-py-exec | tail -n 1)'; "
  check "--audit on a grpcio program whose child execs at once: does not need it; output unchanged" "$p" \
    "$tmp/audit-py-exec.err"
  unset PYTHONPATH GRPC_ENABLE_FORK_SUPPORT
}
