"""A grpc.aio client that forks: the parent makes a call on an aio channel,
forks (os.fork()), and calls again once the child has ended; the child runs
an event loop of its own and makes 3 calls on a new aio channel.

grpcio 1.51 does not support fork with grpc.aio: this program shows what a
child gets, with and without the shim, and that the parent's aio channel is
unharmed either way.

Usage: aio_client.py TARGET
Prints one line per call (echo_calls.py's format) and how the child ended;
exit status 0 if the parent's calls succeeded, whatever the child did.
"""
import asyncio
import os
import sys
import time

import grpc

import echo_calls
import echo_pb2
import echo_pb2_grpc

if len(sys.argv) != 2:
    sys.exit(__doc__.split("\n\n")[2])
TARGET = sys.argv[1]
CHILD_BUDGET_S = 8.0


async def say(stub, who, what):
    start = time.monotonic()
    try:
        reply = await stub.Say(echo_pb2.SayRequest(pid=os.getpid(), tag="aio:%s:%s" % (who, what.replace(" ", "-"))),
                               timeout=echo_calls.DEADLINE_S)
    except Exception as exc:  # a test reports every way a call can fail
        print("%-62s FAILED  %7.1f ms  %s" % (echo_calls.head(who, what), (time.monotonic() - start) * 1e3,
                                              echo_calls.failure(exc)), flush=True)
        return False
    print("%-62s ok      %7.1f ms  (server saw %s)" % (echo_calls.head(who, what), (time.monotonic() - start) * 1e3,
                                                      reply.peer), flush=True)
    return True


async def child():
    async with grpc.aio.insecure_channel(TARGET) as channel:
        stub = echo_pb2_grpc.EchoStub(channel)
        return all([await say(stub, "child", "call %d on a new aio channel" % i) for i in (1, 2, 3)])


async def open_channel():
    """An aio channel belongs to the loop running when it is made."""
    return grpc.aio.insecure_channel(TARGET)


def main():
    loop = asyncio.new_event_loop()
    channel = loop.run_until_complete(open_channel())
    stub = echo_pb2_grpc.EchoStub(channel)
    ok = loop.run_until_complete(say(stub, "parent", "call before fork"))
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            code = 0 if asyncio.run(child()) else 1
        finally:
            os._exit(code)
    echo_calls.wait_child(pid, CHILD_BUDGET_S)
    ok &= loop.run_until_complete(say(stub, "parent", "call after the child"))
    loop.run_until_complete(channel.close())
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
