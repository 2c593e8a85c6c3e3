# End-to-end checks of `grpc-forksafe --audit` on real programs, sourced by
# tests/wrapper/run.sh once the echo server runs (target=127.0.0.1:PORT). Each
# asserts the verdict and that the program's own output is what it is without
# the audit.

# shellcheck disable=SC2154 # W, B, ROOT, tmp, target, LIMIT come from run.sh
audit_end_to_end() {
  local fs=$B/tests/wrapper/forking-server p nobody why

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
  why=$(as_nobody_unavailable "$SHIM" "$CLIENT")
  if [ -n "$why" ]; then
    pass "--audit across a change of user (skipped: $why)"
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

  fi

  audit_python
  audit_gunicorn
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
  # parent's channel). Without grpcio's fork handling the child's gRPC goes on
  # with the epoll set and the connection it inherited, and the audit sees it
  # wait on that epoll set.
  run audit-py "$W" --audit "$py" tests/wrapper/py_inherited.py "$target"
  p=$(expect_status audit-py 0)
  out audit-py | head -n 1 | grep -q '^parent (pid [0-9]*): RPC before fork  *ok ' || p+="the first RPC failed; "
  err audit-py | grep -qE '^grpc-forksafe: audit: 1 fork made while gRPC compiled into the program held descriptors .*; first: python3\[[0-9]+\] forked child [0-9]+ with [1-9][0-9]* descriptors \([1-9][0-9]* sockets?\)$' ||
    p+="the fork with grpcio's descriptors (and its connection) was not reported; "
  err audit-py | grep -qE "^grpc-forksafe: audit:   child [0-9]+ used gRPC compiled into cygrpc\.[^ ]*, which it inherited \(it waited on that gRPC's epoll set" ||
    p+="the child's wait on its inherited epoll set was not reported; "
  err audit-py | tail -n 1 | grep -q '^grpc-forksafe: verdict: this program needs grpc-forksafe: 1 child process used gRPC state inherited across fork(); run it as: grpc-forksafe COMMAND$' ||
    p+="verdict '$(err audit-py | tail -n 1)'; "
  check "--audit on a grpcio program whose child uses its inherited channel: needs grpc-forksafe" "$p" "$tmp/audit-py.err"

  # The child does not touch gRPC (it polls an epoll set of its own): the
  # audit cannot tell, and says so.
  run audit-py-quiet "$W" --audit "$py" tests/wrapper/py_inherited.py "$target" quiet
  run plain-py-quiet "$py" tests/wrapper/py_inherited.py "$target" quiet
  p=$(expect_status audit-py-quiet 0)
  p+=$(same_output plain-py-quiet audit-py-quiet)
  err audit-py-quiet | tail -n 1 | grep -q '^grpc-forksafe: verdict: unknown: 1 fork was made while gRPC compiled into the program (Python' ||
    p+="verdict '$(err audit-py-quiet | tail -n 1)'; "
  check "--audit on a grpcio program whose child polls an epoll set of its own: unknown, not 'needs'" "$p" \
    "$tmp/audit-py-quiet.err"

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

# gunicorn, started as users start it, with --preload (scripts/gunicorn.sh):
# the application module (tests/python/gunicorn_app.py) makes a grpcio
# channel at import, in the master, which then forks its workers; each HTTP
# request makes one RPC on the channel the worker inherited. Run twice:
# without an RPC in the master (the channel has no connection yet at the
# fork) and with one (it has).
#
# The audit's verdict for gunicorn: every worker that served a request used
# the channel it inherited from the master, and the audit sees grpcio (whose
# own fork handling is on by default) open a connection of its own in that
# worker. Never "does not need", and not "unknown" either. The driver's line
# (60 ok, 0 failed, ...) is in gunicorn-*.http.
audit_gunicorn() {
  local variant rpc sockets p answered verdict http_audit http_plain plain_hangs p_note
  if [ ! -x "$GUNICORN" ]; then
    fail "--audit on gunicorn" "$GUNICORN is missing (Debian's gunicorn package; scripts/ensure-deps test)"
    return
  fi
  GUNICORN_OUT=$tmp GUNICORN_TARGET=$target GUNICORN_STUBS=$B/python GUNICORN_LIMIT=$LIMIT
  # A test cut short leaves no gunicorn behind.
  trap 'gunicorn_kill_group; echo_server_stop; rm -rf "$tmp"' EXIT
  for variant in import-channel import-rpc; do
    [ $variant = import-rpc ] && rpc=1 sockets="1 socket" || rpc=0 sockets="0 sockets"
    gunicorn_run "gunicorn-plain-$variant" $rpc
    p=$GUNICORN_PROBLEM plain_hangs=$GUNICORN_FORK_HANGS p_note=""
    p+=$(expect_status "gunicorn-plain-$variant" 0)
    gunicorn_run "gunicorn-audit-$variant" $rpc "$W" --audit
    p+=$GUNICORN_PROBLEM
    p+=$(expect_status "gunicorn-audit-$variant" 0)
    p+=$(no_shim_lines "gunicorn-audit-$variant")
    http_plain=$(cat "$tmp/gunicorn-plain-$variant.http")
    http_audit=$(cat "$tmp/gunicorn-audit-$variant.http")
    # The same answers: as many 200s (and failures) with the audit as without.
    [ -n "$http_plain" ] && [ "${http_plain%%, answered*}" = "${http_audit%%, answered*}" ] ||
      p+="HTTP answers without the audit: '$http_plain', with it: '$http_audit'; "
    err "gunicorn-audit-$variant" | grep -q "^grpc-forksafe: audit: $GUNICORN_WORKERS forks with live gRPC state:\$" ||
      p+="the $GUNICORN_WORKERS forks of the workers were not reported; "
    err "gunicorn-audit-$variant" | grep -qE "^grpc-forksafe: audit: python3\[[0-9]+\] forked child [0-9]+ with [0-9]+ descriptors of gRPC compiled into the program \($sockets; its channels are not seen\)\$" ||
      p+="no fork reported with grpcio's descriptors ($sockets); "
    answered=$(sed -n 's/.*, answered by \([0-9]*\) process.*/\1/p' "$tmp/gunicorn-audit-$variant.http")
    [ "$answered" = 1 ] && verdict="1 child process" || verdict="${answered:-?} child processes"
    verdict="grpc-forksafe: verdict: this program needs grpc-forksafe: $verdict used gRPC state inherited across fork(); run it as: grpc-forksafe COMMAND"
    [ "$(err "gunicorn-audit-$variant" | grep '^grpc-forksafe: verdict: ')" = "$verdict" ] ||
      p+="verdict '$(err "gunicorn-audit-$variant" | grep '^grpc-forksafe: verdict: ')', expected '$verdict'; "
    [ $((plain_hangs + GUNICORN_FORK_HANGS)) -eq 0 ] || p_note="; grpcio hung inside os.fork() in $((plain_hangs + GUNICORN_FORK_HANGS)) run(s) before"
    check "--audit on gunicorn --preload -w $GUNICORN_WORKERS ($variant): needs grpc-forksafe; HTTP answers unchanged${p_note:-}" \
      "$p" "$tmp/gunicorn-audit-$variant.err" "$tmp/gunicorn-audit-$variant.http-err" "$tmp/gunicorn-plain-$variant.err"
  done
  echo_server_stop_on_exit "$tmp"
}
