"""An ordinary grpcio client that forks, written the way an application would
write it: it knows nothing of grpc-forksafe. The Python twin of fork_demo.cc.

  1. the parent creates a channel and a stub and makes one RPC;
  2. it starts a multiprocessing child (start method 'fork'); the child opens
     a *new* channel to the same target and makes a few RPCs, then tries one
     RPC on the channel it inherited, and exits;
  3. once the child has exited, the parent makes the same number of RPCs on
     its original channel.

With Debian's python3-grpcio 1.51 the child's new channel fails
("UNAVAILABLE: Socket operation on non-socket"): gRPC closed the inherited
connection's socket at the fork but still writes to its number, which the
child has reused for something else. With LD_PRELOAD=build/libgrpc_forksafe.so
the child's and the parent's RPCs all succeed.

Usage: fork_demo.py TARGET [--rpcs N]     (e.g. fork_demo.py localhost:50051)
The generated stubs (echo_pb2, echo_pb2_grpc) must be on PYTHONPATH.
Prints one line per RPC and exits 0 only if every RPC the parent and the child
made on their own channels succeeded; the RPC on the inherited channel is
reported, not counted.
"""
import argparse
import multiprocessing
import os
import sys
import time

import grpc

import echo_pb2
import echo_pb2_grpc

DEADLINE_S = 2.0

# The child's RPCs have a deadline each; anything much longer means it hangs
# outside an RPC, and the parent stops waiting.
CHILD_GRACE_S = 5.0


def say(stub, role, what):
    """Makes one RPC and prints the outcome as one line, e.g.
    parent (pid 812): RPC 1 before fork ...  ok  1.9 ms  (server saw ipv4:127.0.0.1:40162)
    Returns True if it succeeded."""
    head = "%-6s (pid %d): %s" % (role, os.getpid(), what)
    start = time.monotonic()
    try:
        reply = stub.Say(echo_pb2.SayRequest(pid=os.getpid(), tag="%s: %s" % (role, what)), timeout=DEADLINE_S)
    except grpc.RpcError as exc:
        outcome = "%s: %s" % (exc.code().name, exc.details())
    except ValueError as exc:  # what grpcio raises for a call on a closed channel
        outcome = "ValueError: %s" % exc
    else:
        print("%-62s ok      %7.1f ms  (server saw %s)" % (head, (time.monotonic() - start) * 1e3, reply.peer),
              flush=True)
        return True
    print("%-62s FAILED  %7.1f ms  %s" % (head, (time.monotonic() - start) * 1e3, outcome), flush=True)
    return False


def new_stub(target):
    return echo_pb2_grpc.EchoStub(grpc.insecure_channel(target))


def run_child(target, rpcs, inherited_stub):
    """The child: RPCs on a new channel of its own, then one on the channel it
    inherited; exit status 0 only if the new channel's RPCs all succeeded."""
    stub = new_stub(target)
    ok = sum(say(stub, "child", "RPC %d on a new channel" % i) for i in range(1, rpcs + 1))
    say(inherited_stub, "child", "RPC on the inherited channel")
    print("child  (pid %d): %d of %d RPCs on the new channel succeeded" % (os.getpid(), ok, rpcs), flush=True)
    sys.exit(0 if ok == rpcs else 1)


def wait_for_child(proc, rpcs):
    """Waits for the child's RPCs and a grace period, kills it if it is still
    there; True if it exited with status 0."""
    budget = (rpcs + 1) * DEADLINE_S + CHILD_GRACE_S
    proc.join(budget)
    me = os.getpid()
    if proc.is_alive():
        print("parent (pid %d): child %d still running after %g s; killing it" % (me, proc.pid, budget), flush=True)
        proc.kill()
        proc.join()
        return False
    if proc.exitcode < 0:
        print("parent (pid %d): child %d was killed by signal %d" % (me, proc.pid, -proc.exitcode), flush=True)
        return False
    print("parent (pid %d): child %d exited with status %d" % (me, proc.pid, proc.exitcode), flush=True)
    return proc.exitcode == 0


def main():
    ap = argparse.ArgumentParser(description="An ordinary grpcio client that forks.")
    ap.add_argument("target", help="the echo server, e.g. localhost:50051")
    ap.add_argument("--rpcs", type=int, default=3, help="RPCs the child makes, and the parent after the fork")
    args = ap.parse_args()
    if args.rpcs < 1:
        ap.error("--rpcs must be at least 1")

    stub = new_stub(args.target)
    parent_ok = [say(stub, "parent", "RPC 1 before fork")]

    # 'fork' is multiprocessing's default on Linux up to Python 3.13; named
    # here so the demo forks whatever the interpreter's default.
    child = multiprocessing.get_context("fork").Process(target=run_child, args=(args.target, args.rpcs, stub))
    child.start()
    child_ok = wait_for_child(child, args.rpcs)

    for i in range(2, args.rpcs + 2):
        parent_ok.append(say(stub, "parent", "RPC %d after fork, original channel" % i))
    print("parent (pid %d): %d of %d RPCs succeeded" % (os.getpid(), sum(parent_ok), len(parent_ok)), flush=True)
    return 0 if all(parent_ok) and child_ok else 1


if __name__ == "__main__":
    sys.exit(main())
