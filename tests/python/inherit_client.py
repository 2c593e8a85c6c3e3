"""Calls on a channel a child inherited, written as applications write them: a
module-level channel and stub, made when the module loads, before any fork.

Patterns:
  unused  the parent never calls; a child from os.fork() makes 3 unary calls
  used    the same, after one call of the parent's; the parent calls again
          once the child has exited
  kinds   the parent calls once; the child makes a unary .future() call, a
          unary-stream call (Count) and a stream-unary call, on callables
          the parent made
  pool    a multiprocessing.Pool (start method fork) of 2 workers; 200
          tasks, each one unary call on the module-level stub
  executor  the same with a concurrent.futures.ProcessPoolExecutor
  tls     as used, on a secure_channel (TLS, the root certificate read from
          the file TLS_ROOT names, and access-token call credentials): every
          call must reach the server over TLS with the token
  nested  the parent calls once; the child calls through an intercepted
          channel (grpc.intercept_channel) made by the parent, forks a child
          of its own that makes 2 such calls, and calls again once it has
          exited: 4 calls in the children
  in-progress  the parent calls once and starts a server stream (Count, 20
          messages 50 ms apart), reads its first message and forks; in the
          child that stream must end at once as grpcio's fork handling ends
          it (CANCELLED, "Channel closed due to fork", its done-callback
          run in the child), and 3 unary calls
          follow; the parent reads the rest of its stream (all of it, OK)
          once the child has exited: 4 results in the child

Usage: inherit_client.py TARGET PATTERN RUN
  RUN starts every call's tag ("RUN:child:call-1-on-the-inherited-channel",
  no spaces: the server's log is read by fields), so that the log tells the
  runs apart.
Prints one line per call (echo_calls.py's format, with the peer the server
saw), and "parent (pid N): forking" and "... forked" around the fork (for a
pool: its start); exit status 0 if every call succeeded, 1 if not, 2 on bad usage.
"""
import concurrent.futures
import multiprocessing
import os
import sys
import time

import grpc

import echo_calls
import echo_pb2
import echo_pb2_grpc

if len(sys.argv) != 4 or sys.argv[2] not in ("unused", "used", "kinds", "pool", "executor", "nested", "tls",
                                             "in-progress"):
    sys.exit(__doc__.split("\n\n")[2])
TARGET, PATTERN, RUN = sys.argv[1:]
# The call credentials' token, which the server reports back.
TOKEN = "forksafe-token"


def channel():
    if PATTERN != "tls":
        return grpc.insecure_channel(TARGET)
    with open(os.environ["TLS_ROOT"], "rb") as root:
        credentials = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(root_certificates=root.read()),
                                                         grpc.access_token_call_credentials(TOKEN))
    return grpc.secure_channel(TARGET, credentials)


CHANNEL = channel()
STUB = echo_pb2_grpc.EchoStub(CHANNEL)
# Callables of the other kinds, made by hand: Say and Count take one request,
# which a streaming client call sends as a stream of one.
SAY_STREAM_UNARY = CHANNEL.stream_unary("/forksafe.echo.Echo/Say",
                                        request_serializer=echo_pb2.SayRequest.SerializeToString,
                                        response_deserializer=echo_pb2.SayReply.FromString)


class PassThrough(grpc.UnaryUnaryClientInterceptor):
    """An interceptor that changes nothing: the channel it wraps is what the
    layer renews."""

    def intercept_unary_unary(self, continuation, client_call_details, request):
        return continuation(client_call_details, request)


INTERCEPTED = echo_pb2_grpc.EchoStub(grpc.intercept_channel(CHANNEL, PassThrough()))

DEADLINE_S = echo_calls.DEADLINE_S
CHILD_BUDGET_S = 15.0
# Tasks a pool or an executor runs.
TASKS = 200
STREAM_MESSAGES = 20
STREAM_INTERVAL_MS = 50


def request(who, what):
    return echo_pb2.SayRequest(pid=os.getpid(), tag="%s:%s:%s" % (RUN, who, what.replace(" ", "-")))


def attempt(who, what, call):
    """Runs call() (which returns the peer the server saw) and prints one line."""
    start = time.monotonic()
    try:
        peer = call()
    except Exception as exc:  # a test reports every way a call can fail
        print("%-62s FAILED  %7.1f ms  %s" % (echo_calls.head(who, what), (time.monotonic() - start) * 1e3,
                                              echo_calls.failure(exc)), flush=True)
        return False
    print("%-62s ok      %7.1f ms  (server saw %s)" % (echo_calls.head(who, what), (time.monotonic() - start) * 1e3,
                                                      peer), flush=True)
    return True


def unary(who, what, stub=STUB):
    def call():
        reply = stub.Say(request(who, what), timeout=DEADLINE_S)
        if PATTERN == "tls" and not (reply.secure and reply.authorization == "Bearer " + TOKEN):
            raise RuntimeError("the server saw security type %r and authorization %r"
                               % (reply.security_type, reply.authorization))
        return reply.peer

    return attempt(who, what, call)


def child_nested():
    ok = unary("child", "call 1 through the inherited intercepted channel", INTERCEPTED)
    print(echo_calls.head("child", "forking"), flush=True)
    pid = os.fork()
    if pid == 0:
        os._exit(0 if all([unary("child", "grandchild call %d, intercepted channel" % i, INTERCEPTED) for i in (1, 2)])
                 else 1)
    print(echo_calls.head("child", "forked"), flush=True)
    ok &= echo_calls.wait_child(pid, CHILD_BUDGET_S / 2)
    return ok & unary("child", "call 2 through the inherited intercepted channel", INTERCEPTED)


def child_kinds():
    ok = attempt("child", "future call on the inherited channel",
                 lambda: STUB.Say.future(request("child", "future"), timeout=DEADLINE_S).result().peer)

    def count():
        replies = list(STUB.Count(echo_pb2.CountRequest(pid=os.getpid(), tag="%s:child:count" % RUN, count=3,
                                                        interval_ms=10), timeout=DEADLINE_S))
        if len(replies) != 3:
            raise RuntimeError("%d of 3 replies" % len(replies))
        return replies[0].peer

    ok &= attempt("child", "unary-stream call on the inherited channel", count)
    ok &= attempt("child", "stream-unary call on the inherited channel",
                  lambda: SAY_STREAM_UNARY(iter([request("child", "stream-unary")]), timeout=DEADLINE_S).peer)
    return ok


# The processes in which the stream's done-callback ran.
STREAM_DONE = []


def child_in_progress(stream):
    """The stream in progress at the fork ends within DEADLINE_S, CANCELLED by
    the fork, its done-callback runs, and no message of it reaches the child;
    then 3 unary calls."""
    what = "stream in progress at the fork ends"
    start = time.monotonic()
    seen = "still in progress after %g s" % DEADLINE_S
    while time.monotonic() - start < DEADLINE_S:
        if stream.done():
            try:
                reply = next(stream)
                seen = "a message came: %s" % reply.tag
            except grpc.RpcError as exc:
                seen = "%s: %s" % (exc.code().name, exc.details())
            except Exception as exc:  # a test reports every way a call can end
                seen = echo_calls.failure(exc)
            break
        time.sleep(0.01)
    ok = seen == "CANCELLED: Channel closed due to fork"
    if ok and os.getpid() not in STREAM_DONE:
        ok, seen = False, seen + ", but its done-callback did not run"
    print("%-62s %-7s %7.1f ms  %s" % (echo_calls.head("child", what), "ok" if ok else "FAILED",
                                        (time.monotonic() - start) * 1e3, seen), flush=True)
    return all([ok] + [unary("child", "call %d on the inherited channel" % i) for i in (1, 2, 3)])


def rest_of_stream(stream):
    replies = list(stream)
    if len(replies) != STREAM_MESSAGES - 1:
        raise RuntimeError("%d of the stream's last %d messages" % (len(replies), STREAM_MESSAGES - 1))
    return replies[-1].peer


def fork_and_check():
    ok = True
    stream = None
    if PATTERN != "unused":
        ok &= unary("parent", "call before fork")
    if PATTERN == "in-progress":
        stream = STUB.Count(echo_pb2.CountRequest(pid=os.getpid(), tag="%s:parent:stream" % RUN, count=STREAM_MESSAGES,
                                                  interval_ms=STREAM_INTERVAL_MS), timeout=DEADLINE_S * 5)
        ok &= attempt("parent", "stream's first message before fork", lambda: next(stream).peer)
        stream.add_done_callback(lambda _: STREAM_DONE.append(os.getpid()))
    # Bracketed, so that a hang inside os.fork() (grpcio's prefork handler
    # waiting for core's threads, with or without the shim) can be told apart.
    print(echo_calls.head("parent", "forking"), flush=True)
    pid = os.fork()
    if pid == 0:
        if PATTERN == "kinds":
            child_ok = child_kinds()
        elif PATTERN == "nested":
            child_ok = child_nested()
        elif PATTERN == "in-progress":
            child_ok = child_in_progress(stream)
        else:
            child_ok = all([unary("child", "call %d on the inherited channel" % i) for i in (1, 2, 3)])
        os._exit(0 if child_ok else 1)
    print(echo_calls.head("parent", "forked"), flush=True)
    ok &= echo_calls.wait_child(pid, CHILD_BUDGET_S)
    if stream is not None:
        ok &= attempt("parent", "rest of the stream, after the child", lambda: rest_of_stream(stream))
    if PATTERN != "unused":
        ok &= unary("parent", "call after the child")
    return ok


def task(i):
    """One pool task: (ok, the worker's line)."""
    who = "worker"
    what = "task %d on the inherited channel" % i
    start = time.monotonic()
    try:
        peer = STUB.Say(request(who, what), timeout=DEADLINE_S).peer
    except Exception as exc:  # reported by the parent
        return False, "%-62s FAILED  %7.1f ms  %s" % (echo_calls.head(who, what), (time.monotonic() - start) * 1e3,
                                                       echo_calls.failure(exc))
    return True, "%-62s ok      %7.1f ms  (server saw %s)" % (echo_calls.head(who, what),
                                                           (time.monotonic() - start) * 1e3, peer)


def pool():
    ok = unary("parent", "call before the pool")
    print(echo_calls.head("parent", "forking"), flush=True)
    if PATTERN == "pool":
        with multiprocessing.get_context("fork").Pool(2) as workers:
            print(echo_calls.head("parent", "forked"), flush=True)
            try:
                results = workers.map_async(task, range(1, TASKS + 1)).get(CHILD_BUDGET_S)
            except multiprocessing.TimeoutError:
                print("parent: the pool's tasks did not finish in %g s" % CHILD_BUDGET_S, flush=True)
                workers.terminate()
                return False
    else:
        # Its workers are forked on the first submit, from the executor's own
        # management thread or the caller's, as the executor decides.
        workers = concurrent.futures.ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("fork"))
        try:
            # The first task's answer says the workers have been forked.
            workers.submit(os.getpid).result(timeout=CHILD_BUDGET_S)
            print(echo_calls.head("parent", "forked"), flush=True)
            results = list(workers.map(task, range(1, TASKS + 1), timeout=CHILD_BUDGET_S))
        except concurrent.futures.TimeoutError:
            print("parent: the executor's tasks did not finish in %g s" % CHILD_BUDGET_S, flush=True)
            workers.shutdown(wait=False, cancel_futures=True)
            for process in list(getattr(workers, "_processes", {}).values()):
                process.kill()
            return False
        workers.shutdown()
    for task_ok, line in results:
        print(line, flush=True)
        ok &= task_ok
    return ok & unary("parent", "call after the pool")


sys.exit(0 if (pool() if PATTERN in ("pool", "executor") else fork_and_check()) else 1)
