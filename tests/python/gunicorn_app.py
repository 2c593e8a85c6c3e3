"""A plain WSGI application for gunicorn, as users write one: a grpcio
channel and stub made at import time (so, with `--preload`, in gunicorn's
master, before it forks its workers), and one RPC to the echo server per HTTP
request.

  ECHO_TARGET=127.0.0.1:PORT [RPC_AT_IMPORT=1] [RUN=NAME] gunicorn --preload ... gunicorn_app:app

With RPC_AT_IMPORT=1 the master also makes one RPC while importing the
module, so its channel holds a connection when the workers are forked. Each
RPC's tag starts with RUN (default "gunicorn"), then ":master:import" or
":worker:PATH", without spaces: the echo server's log tells the runs apart.
Each request is answered "200 OK" with "ok PID" when its RPC succeeded, and
"502 Bad Gateway" with the RPC's error otherwise.
"""
import os

import grpc

import echo_pb2
import echo_pb2_grpc

# Every RPC has a deadline: a request never waits forever.
DEADLINE_S = 2.0

channel = grpc.insecure_channel(os.environ["ECHO_TARGET"])
echo = echo_pb2_grpc.EchoStub(channel)


def say(tag):
    return echo.Say(echo_pb2.SayRequest(pid=os.getpid(), tag=tag), timeout=DEADLINE_S)


RUN = os.environ.get("RUN", "gunicorn")

if os.environ.get("RPC_AT_IMPORT") == "1":
    say(RUN + ":master:import")


def app(environ, start_response):
    try:
        say(RUN + ":worker:" + environ.get("PATH_INFO", "/"))
    except Exception as exc:  # the client is told whatever went wrong
        status, body = "502 Bad Gateway", "failed %d %s: %s\n" % (os.getpid(), type(exc).__name__, exc)
    else:
        status, body = "200 OK", "ok %d\n" % os.getpid()
    data = body.encode()
    start_response(status, [("Content-Type", "text/plain"), ("Content-Length", str(len(data)))])
    return [data]
