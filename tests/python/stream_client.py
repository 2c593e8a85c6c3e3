"""Forking while another thread reads a server stream, an ordinary grpcio
program: a thread of the parent starts Echo.Count (N messages, one every
INTERVAL ms) on the parent's channel; once the first message is in, the main
thread starts a multiprocessing child (start method 'fork'), which makes RPCs
on a new channel of its own. Then the parent waits for the child, for the
stream's end, and makes one more RPC on its channel.

With --single-threaded the parent's channel reads the stream with grpcio's
experimental single-threaded unary-stream option: the reading thread itself
waits inside gRPC core for each message (200 ms at a time), so it is inside
gRPC at the fork, where gRPC core's fork handlers skip themselves. Without
it the reading thread waits in Python for grpcio's channel thread, and is
inside gRPC only while it asks for the next message, which the event that
ends the fork's pause (grpcio's channel thread handing on a message) makes
likely.

Usage: stream_client.py TARGET [--messages N] [--interval-ms MS] [--single-threaded]
Exit status: 0 only if the stream delivered every message and ended with OK
and the parent's last RPC succeeded: what the parent is promised. The child's
outcome is printed, for the caller to judge: without fork handling its
first RPC fails or hangs (it is then killed).
"""
import argparse
import multiprocessing
import os
import sys
import threading
import time

import grpc
import grpc.experimental

import echo_calls
import echo_pb2

CHILD_RPCS = 2


class StreamReader(threading.Thread):
    """Reads the whole stream; `first` is set when the first message is in
    (or the stream has failed), so the fork happens mid-stream."""

    def __init__(self, echo, messages, interval_ms):
        super().__init__(name="stream-reader", daemon=True)
        self.echo, self.messages, self.interval_ms = echo, messages, interval_ms
        self.first = threading.Event()
        self.received = 0
        self.outcome = "still running"

    def run(self):
        deadline = self.messages * self.interval_ms / 1e3 + 10
        start = time.monotonic()
        try:
            request = echo_pb2.CountRequest(pid=os.getpid(), tag="parent: stream", count=self.messages,
                                            interval_ms=self.interval_ms)
            for _ in self.echo.Count(request, timeout=deadline):
                self.received += 1
                self.first.set()
            self.outcome = "OK"
        except Exception as exc:  # every way the stream can end is reported
            self.outcome = echo_calls.failure(exc)
        finally:
            self.first.set()
        print("%s: %d of %d messages, %s, %.0f ms" % (
            echo_calls.head("parent", "stream on the original channel"), self.received, self.messages,
            self.outcome, (time.monotonic() - start) * 1e3), flush=True)


def child(target):
    with grpc.insecure_channel(target) as channel:
        echo = echo_calls.stub(channel)
        ok = sum(echo_calls.say(echo, "child", "RPC %d on a new channel" % i) for i in range(1, CHILD_RPCS + 1))
    sys.exit(0 if ok == CHILD_RPCS else 1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("target")
    ap.add_argument("--messages", type=int, default=20)
    ap.add_argument("--interval-ms", type=int, default=50)
    ap.add_argument("--single-threaded", action="store_true")
    args = ap.parse_args()

    options = [(grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)] if args.single_threaded else []
    channel = grpc.insecure_channel(args.target, options=options)
    echo = echo_calls.stub(channel)
    reader = StreamReader(echo, args.messages, args.interval_ms)
    reader.start()
    if not reader.first.wait(echo_calls.DEADLINE_S * 5):
        print("parent: the stream's first message did not come", flush=True)
        return 1
    print("%s: %d message(s) in" % (echo_calls.head("parent", "stream in flight"), reader.received), flush=True)
    proc = multiprocessing.get_context("fork").Process(target=child, args=(args.target,))
    # Around the fork, so that a run that hangs inside os.fork() shows it.
    print(echo_calls.head("parent", "forking"), flush=True)
    proc.start()
    print(echo_calls.head("parent", "forked"), flush=True)
    echo_calls.join_child(proc, CHILD_RPCS * echo_calls.DEADLINE_S + 3)
    reader.join(args.messages * args.interval_ms / 1e3 + 15)
    stream_ok = not reader.is_alive() and reader.outcome == "OK" and reader.received == args.messages
    if reader.is_alive():
        print("%s: still running; giving up" % echo_calls.head("parent", "stream on the original channel"),
              flush=True)
    last_ok = echo_calls.say(echo, "parent", "RPC after the stream, original channel")
    return 0 if stream_ok and last_ok else 1


if __name__ == "__main__":
    sys.exit(main())
