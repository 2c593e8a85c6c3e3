"""Helpers for grpc-fork-suite.sh, which runs gRPC 1.51.1's own Python fork
tests (src/python/grpcio_tests/tests/fork/ of Debian's grpc source package,
fetched into build/ at test time) against the shim. gRPC's files are imported
from there, never copied or changed.

  server
      serves gRPC's interop TestService (tests.interop.service) on a server
      made by tests.unit.test_common, on a free loopback port, and prints the
      port: what the suite's own _fork_interop_test.py starts.
  inherited --server_port PORT --test_case NAME [--server_host HOST]
      one of gRPC's scenarios whose child calls on a channel it inherited,
      with the same steps (gRPC's own helpers from tests.fork.methods) but
      what the shim's default (reconnect) promises where grpcio 1.51 promises
      a ValueError: the child's call succeeds, its response is checked as the
      suite checks it, and the parent's calls are unchanged. For
      in_progress_bidi_continue_call the stream the child inherited in
      progress is still reported as grpcio's own fork handling reports it:
      CANCELLED, "Channel closed due to fork".
      Exit status 0 if the scenario passed; a failure raises, as in client.py.
"""
import argparse
import logging
import sys
import time

import grpc

from src.proto.grpc.testing import test_pb2_grpc
from tests.fork import methods


def serve():
    from tests.interop import service
    from tests.unit import test_common

    server = test_common.test_server()
    test_pb2_grpc.add_TestServiceServicer_to_server(service.TestService(), server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    print(port, flush=True)
    server.wait_for_termination()


def _async_unary_same_channel(channel, args):

    def child_target():
        methods._async_unary(stub)

    stub = test_pb2_grpc.TestServiceStub(channel)
    methods._async_unary(stub)
    child_process = methods._ChildProcess(child_target)
    child_process.start()
    methods._async_unary(stub)
    child_process.finish()


def _blocking_unary_same_channel(channel, args):

    def child_target():
        methods._blocking_unary(stub)

    stub = test_pb2_grpc.TestServiceStub(channel)
    methods._blocking_unary(stub)
    child_process = methods._ChildProcess(child_target)
    child_process.start()
    child_process.finish()


def _await_inherited_end(call):
    """The inherited call's code and details; raises if it is still in
    progress after the suite's RPC timeout (the child cannot drive it)."""
    deadline = time.monotonic() + methods._RPC_TIMEOUT_S
    while not call.done():
        if time.monotonic() > deadline:
            raise ValueError("the call in progress at the fork is still in progress in the child after %d s"
                             % methods._RPC_TIMEOUT_S)
        time.sleep(0.01)
    return call.code(), call.details()


def _in_progress_bidi_continue_call(channel, args):

    def child_target(parent_bidi_call, parent_channel, args):
        methods._async_unary(test_pb2_grpc.TestServiceStub(parent_channel))
        code, details = _await_inherited_end(parent_bidi_call)
        if code != grpc.StatusCode.CANCELLED:
            raise ValueError("Expected inherited code CANCELLED, got %s" % code)
        if details != "Channel closed due to fork":
            raise ValueError("Expected inherited details Channel closed due to fork, got %s" % details)

    methods._ping_pong_with_child_processes_after_first_response(channel, None, child_target,
                                                                 run_after_close=False)


def _in_progress_bidi_same_channel_async_call(channel, args):

    def child_target(parent_bidi_call, parent_channel, args):
        methods._async_unary(test_pb2_grpc.TestServiceStub(parent_channel))

    methods._ping_pong_with_child_processes_after_first_response(channel, None, child_target)


def _in_progress_bidi_same_channel_blocking_call(channel, args):

    def child_target(parent_bidi_call, parent_channel, args):
        methods._blocking_unary(test_pb2_grpc.TestServiceStub(parent_channel))

    methods._ping_pong_with_child_processes_after_first_response(channel, None, child_target)


INHERITED = {
    "async_unary_same_channel": _async_unary_same_channel,
    "blocking_unary_same_channel": _blocking_unary_same_channel,
    "in_progress_bidi_continue_call": _in_progress_bidi_continue_call,
    "in_progress_bidi_same_channel_async_call": _in_progress_bidi_same_channel_async_call,
    "in_progress_bidi_same_channel_blocking_call": _in_progress_bidi_same_channel_blocking_call,
}


def inherited(argv):
    parser = argparse.ArgumentParser(prog="grpc_fork_suite.py inherited")
    parser.add_argument("--server_host", default="localhost")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--test_case", choices=sorted(INHERITED), required=True)
    args = vars(parser.parse_args(argv))
    args["use_tls"] = False
    logging.basicConfig(level=logging.INFO)
    logging.getLogger(__name__).info("Running %s, the child's call on its inherited channel expected to succeed",
                                     args["test_case"])
    channel = methods._channel(args)
    INHERITED[args["test_case"]](channel, args)
    channel.close()


if __name__ == "__main__":
    if sys.argv[1:2] == ["server"]:
        serve()
    elif sys.argv[1:2] == ["inherited"]:
        inherited(sys.argv[2:])
    else:
        sys.exit("usage: grpc_fork_suite.py server | inherited --server_port PORT --test_case NAME")
