"""What the Python test clients share: stubs for the echo server, waiting
for a child with a time limit, and one printed line per RPC, in the format of
the demos:

  parent (pid 812): RPC 1 before fork, original channel ...  ok  1.9 ms  (server saw ipv4:127.0.0.1:40162)
  child  (pid 813): RPC on the inherited channel ...  FAILED  0.1 ms  ValueError: Cannot invoke RPC on closed channel!

The stubs (echo_pb2, echo_pb2_grpc) are generated into the build directory,
which the caller puts on PYTHONPATH.
"""
import os
import select
import signal
import time

import grpc

import echo_pb2
import echo_pb2_grpc

# Every RPC gets a deadline: a test must see a failure, never wait forever.
DEADLINE_S = 2.0


def stub(channel):
    return echo_pb2_grpc.EchoStub(channel)


def head(who, what):
    return "%-6s (pid %d): %s" % (who, os.getpid(), what)


def failure(exc):
    """One line for an RPC's exception: the status for a gRPC error, the
    exception's type and text for anything else (a closed channel raises
    ValueError)."""
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return "%s: %s" % (exc.code().name, exc.details())
    return "%s: %s" % (type(exc).__name__, exc)


def say(echo, who, what, payload=b""):
    """One unary RPC, printed as one line; True if it succeeded."""
    start = time.monotonic()
    try:
        reply = echo.Say(echo_pb2.SayRequest(pid=os.getpid(), tag="%s: %s" % (who, what), payload=payload),
                         timeout=DEADLINE_S)
    except Exception as exc:  # a test reports every way an RPC can fail
        print("%-62s FAILED  %7.1f ms  %s" % (head(who, what), (time.monotonic() - start) * 1e3, failure(exc)),
              flush=True)
        return False
    print("%-62s ok      %7.1f ms  (server saw %s)" % (head(who, what), (time.monotonic() - start) * 1e3, reply.peer),
          flush=True)
    return True


def show_env(who):
    """The two variables the shim may set for grpcio's fork handling, as this
    process sees them."""
    for var in ("GRPC_ENABLE_FORK_SUPPORT", "GRPC_DNS_RESOLVER"):
        print("%s: env %s=%s" % (head(who, "environment"), var, os.environ.get(var, "<unset>")), flush=True)


def report_child(pid, exitcode):
    """Prints how a child ended (exitcode as multiprocessing gives it: the
    negated signal number if a signal killed it); True if it exited with 0."""
    if exitcode < 0:
        print("%s: child %d was killed by signal %d" % (head("parent", "wait"), pid, -exitcode), flush=True)
    else:
        print("%s: child %d exited with status %d" % (head("parent", "wait"), pid, exitcode), flush=True)
    return exitcode == 0


def report_hung(pid, budget_s):
    print("%s: child %d still running after %g s; killing it" % (head("parent", "wait"), pid, budget_s), flush=True)
    return False


def abort(pid):
    """Stops a hung child with SIGABRT first: under PYTHONFAULTHANDLER=1 it
    prints where each of its threads was before it dies."""
    try:
        os.kill(pid, signal.SIGABRT)
    except ProcessLookupError:
        pass


# How long a child gets to print its tracebacks after SIGABRT.
ABORT_GRACE_S = 2.0


def join_child(proc, budget_s):
    """Waits for a multiprocessing child at most budget_s seconds, kills it if
    it is still there, and prints how it ended. True if it exited with 0."""
    proc.join(budget_s)
    if proc.is_alive():
        abort(proc.pid)
        proc.join(ABORT_GRACE_S)
        proc.kill()
        proc.join()
        return report_hung(proc.pid, budget_s)
    return report_child(proc.pid, proc.exitcode)


def wait_child(pid, budget_s):
    """The same for a child made by os.fork(): its pidfd becomes readable
    when it exits."""
    pidfd = os.pidfd_open(pid)
    try:
        exited = select.select([pidfd], [], [], budget_s)[0]
        if not exited:
            abort(pid)
            select.select([pidfd], [], [], ABORT_GRACE_S)
            os.kill(pid, signal.SIGKILL)
    finally:
        os.close(pidfd)
    if not exited:
        os.waitpid(pid, 0)
        return report_hung(pid, budget_s)
    return report_child(pid, os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
