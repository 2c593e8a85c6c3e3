"""A TCP sink: accepts connections on 127.0.0.1, sends nothing, and records
how many bytes each connection sent before it closed. The leak test gives its
port to a forked child that must never let gRPC write into such a connection.

Usage: sink.py PORT_FILE RESULT_FILE [--connections N] [--limit SECONDS]

Writes its port to PORT_FILE once it accepts connections (written under
another name and renamed, so a reader never sees half of it). Once N
connections (1 by default) have closed, writes one line per connection,
"connection K: B bytes", to RESULT_FILE, everything received to
RESULT_FILE.data, and exits 0. If that has not happened within the limit
(30 s by default), or on SIGTERM, it writes what it has, adds "incomplete",
and exits 1.
"""
import argparse
import os
import selectors
import signal
import socket
import time


class Stopped(Exception):
    """SIGTERM: whoever started the sink knows no more connections will come."""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port_file")
    ap.add_argument("result_file")
    ap.add_argument("--connections", type=int, default=1)
    ap.add_argument("--limit", type=float, default=30.0)
    args = ap.parse_args()

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    tmp = args.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % listener.getsockname()[1])
    os.rename(tmp, args.port_file)

    def stop(signum, frame):
        raise Stopped()

    signal.signal(signal.SIGTERM, stop)

    sel = selectors.DefaultSelector()
    sel.register(listener, selectors.EVENT_READ)
    received = []  # bytes per connection, in the order they were accepted
    data = bytearray()
    closed = 0
    deadline = time.monotonic() + args.limit
    try:
        while closed < args.connections:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for key, _ in sel.select(left):
                if key.fileobj is listener:
                    conn, _ = listener.accept()
                    conn.setblocking(False)
                    sel.register(conn, selectors.EVENT_READ, len(received))
                    received.append(0)
                    continue
                try:
                    chunk = key.fileobj.recv(65536)
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[key.data] += len(chunk)
                    data += chunk
                else:
                    sel.unregister(key.fileobj)
                    key.fileobj.close()
                    closed += 1
    except Stopped:
        pass

    with open(args.result_file + ".data", "wb") as f:
        f.write(data)
    with open(args.result_file, "w") as f:
        for i, n in enumerate(received, 1):
            f.write("connection %d: %d bytes\n" % (i, n))
        if closed < args.connections:
            f.write("incomplete: %d of %d connections closed\n" % (closed, args.connections))
    return 0 if closed >= args.connections else 1


if __name__ == "__main__":
    raise SystemExit(main())
