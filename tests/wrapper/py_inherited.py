"""A grpcio program whose child uses the channel it inherited: the case that
`grpc-forksafe --audit` cannot see into (gRPC is compiled into grpcio), and
must not call harmless.

  py_inherited.py TARGET [exec|quiet]

The parent makes one RPC, forks, and its child makes one RPC on the inherited
channel (or, with `exec`, execs /bin/true at once; with `quiet`, leaves gRPC
alone and waits on an epoll set of its own); the parent waits for it and
makes one more RPC. Prints one line per RPC (echo_calls.say), which say
how each went; exits 0.
"""
import os
import select
import sys

import grpc

import echo_calls

CHILD_BUDGET_S = 10.0


def main():
    target = sys.argv[1]
    what = sys.argv[2] if len(sys.argv) > 2 else ""
    channel = grpc.insecure_channel(target)
    echo = echo_calls.stub(channel)
    echo_calls.say(echo, "parent", "RPC before fork")
    pid = os.fork()
    if pid == 0:
        if what == "exec":
            os.execv("/bin/true", ["true"])
        if what == "quiet":
            with select.epoll() as own:
                own.poll(0.1)
            os._exit(0)
        echo_calls.say(echo, "child", "RPC on the inherited channel")
        os._exit(0)
    echo_calls.wait_child(pid, CHILD_BUDGET_S)
    echo_calls.say(echo, "parent", "RPC after the child")
    return 0


if __name__ == "__main__":
    sys.exit(main())
