"""A grpcio program whose child uses the channel it inherited: the case that
`grpc-forksafe --audit` cannot see into (gRPC is compiled into grpcio), and
must not call harmless.

  py_inherited.py TARGET [exec]

The parent makes one RPC, forks, and its child makes one RPC on the inherited
channel (or, with `exec`, execs /bin/true at once); the parent waits for it
and makes one more RPC. Prints one line per RPC (echo_calls.say), which say
how each went; exits 0.
"""
import os
import sys

import grpc

import echo_calls

CHILD_BUDGET_S = 10.0


def main():
    target = sys.argv[1]
    with_exec = len(sys.argv) > 2 and sys.argv[2] == "exec"
    channel = grpc.insecure_channel(target)
    echo = echo_calls.stub(channel)
    echo_calls.say(echo, "parent", "RPC before fork")
    pid = os.fork()
    if pid == 0:
        if with_exec:
            os.execv("/bin/true", ["true"])
        echo_calls.say(echo, "child", "RPC on the inherited channel")
        os._exit(0)
    echo_calls.wait_child(pid, CHILD_BUDGET_S)
    echo_calls.say(echo, "parent", "RPC after the child")
    return 0


if __name__ == "__main__":
    sys.exit(main())
