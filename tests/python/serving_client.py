"""A process that runs a grpcio server and forks, as ordinary programs do: the
server is started and has answered a call before the children are made, and
its polling thread keeps running through every fork.

Patterns (each child's outcome is its exit status):
  quiet      3 children from os.fork() that never use gRPC: two leave with
             os._exit(0), one through sys.exit(0) (Python's own shutdown)
  preexec    3 subprocess.run(..., preexec_fn=...) of /bin/true
  new        3 children, each makes a new channel to TARGET and to the
             parent's own server, 2 calls on each
  inherited  the parent calls TARGET on a module-level channel; 3 children
             make 3 calls each on it
  pool       a multiprocessing.Pool (start method fork) of 2 workers; 6 tasks,
             each one call on the module-level stub
Another process calls the parent's server all the while. Every child
also checks whether it holds the parent's listening socket (it
must never serve in the parent's place), and says so if it does. Then the
parent calls its own server and TARGET again.

Usage: serving_client.py TARGET PATTERN
       serving_client.py SERVER --load   (the other process)
Prints one line per call (echo_calls.py's format), one per child, the
slowest fork in ms, and "listener held by a child" if one did; exit status
0 if every call and every child succeeded, 1 if not.
"""
import multiprocessing
import os
import subprocess
import sys
import threading
import time
from concurrent import futures

import grpc

import echo_calls
import echo_pb2
import echo_pb2_grpc

PATTERNS = ("quiet", "preexec", "new", "inherited", "pool", "--load")
if len(sys.argv) != 3 or sys.argv[2] not in PATTERNS:
    sys.exit(__doc__.split("\n\n")[2])
TARGET, PATTERN = sys.argv[1:]
CHILD_BUDGET_S = 20

CHANNEL = grpc.insecure_channel(TARGET)
STUB = echo_calls.stub(CHANNEL)


class Echo(echo_pb2_grpc.EchoServicer):

    def Say(self, request, context):
        return echo_pb2.SayReply(server_pid=os.getpid(), peer=context.peer(), tag=request.tag)


def listener_inode(port):
    """The inode of the socket listening on port (grpcio listens on an IPv6
    socket that also takes IPv4)."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(path) as table:
            for line in table.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(":%04X" % port) and fields[3] == "0A":
                    return fields[9]
    print("%s: no listening socket found for port %d" % (echo_calls.head("parent", "check"), port), flush=True)
    return None


def holds(inode):
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink("/proc/self/fd/" + fd) == "socket:[%s]" % inode:
                return True
        except OSError:
            pass
    return False


def check_listener(inode):
    """In a child: one line if it holds the parent's listener. Not counted in
    the child's status (stock grpcio's children do hold it): the caller judges
    the line."""
    if inode is not None and holds(inode):
        print("%s: listener held by a child" % echo_calls.head("child", "check"), flush=True)
    return True


def forked(body):
    """Runs body() in a child from os.fork(); its result is the exit status."""
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if body() else 1
        finally:
            os._exit(code)
    return time.monotonic() - start, echo_calls.wait_child(pid, CHILD_BUDGET_S)


def pool_task(i):
    return echo_calls.say(STUB, "worker", "task %d on the inherited stub" % i) and check_listener(LISTENER)


def main():
    global LISTENER
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    echo_pb2_grpc.add_EchoServicer_to_server(Echo(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    own = echo_calls.stub(grpc.insecure_channel("127.0.0.1:%d" % port))
    LISTENER = listener_inode(port)
    ok = LISTENER is not None
    ok &= echo_calls.say(own, "parent", "call to its own server before forking")
    forks = []
    # Calls to its own server all through the forks, from another process:
    # the server is busy when it forks. (Started without a fork hook: no
    # preexec_fn.)
    loader = subprocess.Popen([sys.executable, __file__, "127.0.0.1:%d" % port, "--load"], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)

    def quiet():
        return check_listener(LISTENER)

    def new():
        fresh = echo_calls.stub(grpc.insecure_channel(TARGET))
        mine = echo_calls.stub(grpc.insecure_channel("127.0.0.1:%d" % port))
        calls = [echo_calls.say(fresh, "child", "call %d on a new channel" % i) for i in (1, 2)]
        calls += [echo_calls.say(mine, "child", "call %d to the parent's server" % i) for i in (1, 2)]
        return all(calls) and check_listener(LISTENER)

    def inherited():
        calls = [echo_calls.say(STUB, "child", "call %d on the inherited channel" % i) for i in (1, 2, 3)]
        return all(calls) and check_listener(LISTENER)

    if PATTERN == "quiet":
        for _ in range(2):
            took, child_ok = forked(quiet)
            forks.append(took)
            ok &= child_ok
        start = time.monotonic()
        pid = os.fork()
        if pid == 0:
            sys.exit(0 if quiet() else 1)
        forks.append(time.monotonic() - start)
        ok &= echo_calls.wait_child(pid, CHILD_BUDGET_S)
    elif PATTERN == "preexec":
        for _ in range(3):
            start = time.monotonic()
            child = subprocess.Popen(["/bin/true"], preexec_fn=lambda: None)
            forks.append(time.monotonic() - start)
            ok &= echo_calls.report_child(child.pid, child.wait(CHILD_BUDGET_S))
    elif PATTERN in ("new", "inherited"):
        if PATTERN == "inherited":
            ok &= echo_calls.say(STUB, "parent", "call before forking")
        for _ in range(3):
            took, child_ok = forked(new if PATTERN == "new" else inherited)
            forks.append(took)
            ok &= child_ok
    else:
        ok &= echo_calls.say(STUB, "parent", "call before the pool")
        start = time.monotonic()
        with multiprocessing.get_context("fork").Pool(2) as pool:
            forks.append(time.monotonic() - start)
            result = pool.map_async(pool_task, range(6))
            results = result.get(CHILD_BUDGET_S)
        print("%s: %d of 6 tasks succeeded" % (echo_calls.head("parent", "pool"), sum(results)), flush=True)
        ok &= all(results)

    try:
        load = loader.communicate(input="", timeout=CHILD_BUDGET_S)[0].strip()
    except subprocess.TimeoutExpired:
        loader.kill()
        load = "no answer"
    print("%s: %s" % (echo_calls.head("parent", "load on its own server"), load), flush=True)
    ok &= load.endswith(" 0 failed")
    print("%s: %.1f ms" % (echo_calls.head("parent", "slowest fork"), max(forks) * 1e3), flush=True)
    ok &= echo_calls.say(own, "parent", "call to its own server after the children")
    ok &= echo_calls.say(STUB, "parent", "call after the children")
    server.stop(None)
    return 0 if ok else 1


def keep_calling():
    """--load: calls TARGET until standard input ends, then prints how many
    calls it made and how many failed."""
    calls = failed = 0
    reader = threading.Thread(target=sys.stdin.read, daemon=True)
    reader.start()
    while reader.is_alive():
        try:
            STUB.Say(echo_pb2.SayRequest(pid=os.getpid(), tag="load"), timeout=echo_calls.DEADLINE_S)
        except grpc.RpcError:
            failed += 1
        calls += 1
    print("%d calls, %d failed" % (calls, failed), flush=True)
    return 0


LISTENER = None
if __name__ == "__main__":
    sys.exit(keep_calling() if PATTERN == "--load" else main())
