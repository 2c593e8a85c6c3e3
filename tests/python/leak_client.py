"""The leak test's client, an ordinary grpcio program: the parent makes an
RPC; a child made by os.fork() first opens plain TCP connections to an
unrelated server (the sink), then makes an RPC on the channel it inherited and
one on a new channel; then the parent makes another RPC.

Without help, gRPC core's fork handler closes the inherited connection's
socket in the child while the transport keeps its number; the sink connection
opened first gets that number, and the child's gRPC writes its HTTP/2 frames
(with the request's payload) into the sink. Each request carries a marker,
LEAKED-BY-<pid>, so the sink's data shows whose request reached it.

os.fork(), not multiprocessing: a multiprocessing child opens /dev/null for
its stdin before any of its code runs, and that takes the freed number first
(gRPC's writes then fail on a non-socket). With os.fork() the sink
connections are the child's first opens, so without help the leak shows in
nearly every run, and the test knows it can see one.

Usage: leak_client.py TARGET SINK_PORT     (the sink run with --connections 3)
Exit status: 0 if the parent's RPCs succeeded and the child ran to its end
(its RPCs may fail, cleanly); 1 otherwise.
"""
import os
import socket
import sys

import grpc

import echo_calls

# The child's two RPCs with their deadlines, and time to start and exit.
CHILD_BUDGET_S = 2 * echo_calls.DEADLINE_S + 10

# How many connections the child opens to the sink; the sink waits for as many.
SINK_CONNECTIONS = 3


def child(target, sink_port, inherited):
    echo_calls.show_env("child")
    # Opened before any gRPC call in the child, so they take the lowest free
    # numbers: the first is the one the inherited transport still believes is
    # its own if gRPC closed that socket at the fork. Several, because now and
    # then gRPC's post-fork handling has not yet made its new poller
    # descriptors when the child gets here; the transport's number is then the
    # second or third lowest.
    sinks = [socket.create_connection(("127.0.0.1", sink_port), timeout=5) for _ in range(SINK_CONNECTIONS)]
    print("%s: fds %s" % (echo_calls.head("child", "connected to the sink"),
                           " ".join(str(s.fileno()) for s in sinks)), flush=True)
    marker = b"LEAKED-BY-%d" % os.getpid()
    echo_calls.say(inherited, "child", "RPC on the inherited channel", marker + b"-inherited")
    with grpc.insecure_channel(target) as channel:
        echo_calls.say(echo_calls.stub(channel), "child", "RPC on a new channel", marker + b"-new")
    # The sink connections stay open until the process exits, so whatever
    # gRPC might still write into them arrives before the sink sees them close.


def main():
    if len(sys.argv) != 3:
        print("usage: leak_client.py TARGET SINK_PORT", file=sys.stderr)
        return 2
    target, sink_port = sys.argv[1], int(sys.argv[2])
    echo_calls.show_env("parent")
    channel = grpc.insecure_channel(target)
    echo = echo_calls.stub(channel)
    ok = echo_calls.say(echo, "parent", "RPC 1 before fork")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            child(target, sink_port, echo)
            code = 0
        finally:
            # The parent's interpreter state is not the child's to tear down.
            os._exit(code)
    child_ok = echo_calls.wait_child(pid, CHILD_BUDGET_S)
    ok = echo_calls.say(echo, "parent", "RPC 2 after fork, original channel") and ok
    return 0 if ok and child_ok else 1


if __name__ == "__main__":
    sys.exit(main())
