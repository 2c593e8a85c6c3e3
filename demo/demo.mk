# The demo: the echo server (ECHO_SERVER, named in the Makefile) and two
# ordinary clients that fork, one grpc++, one Python (grpcio).

$(ECHO_SERVER): demo/echo_server.cc $(ECHO_OBJS)
	$(CXX) $(GRPCXX_CFLAGS) -o $@ $< $(ECHO_OBJS) $(GRPCXX_LIBS)

# An ordinary forking grpc++ client; it knows nothing of the shim.
FORK_DEMO := $(BUILD)/fork-demo

$(FORK_DEMO): demo/fork_demo.cc demo/status_name.h $(ECHO_OBJS)
	$(CXX) $(GRPCXX_CFLAGS) -o $@ $< $(ECHO_OBJS) $(GRPCXX_LIBS)

# The Python twin (demo/fork_demo.py), a grpcio program, needs the service's
# Python stubs: generated into the build directory, never kept in the tree.
PY_GEN   := $(BUILD)/python
PY_STUBS := $(PY_GEN)/echo_pb2.py $(PY_GEN)/echo_pb2_grpc.py

$(PY_STUBS) &: proto/echo.proto
	@mkdir -p $(PY_GEN)
	protoc -Iproto --python_out=$(PY_GEN) --grpc_out=$(PY_GEN) \
	       --plugin=protoc-gen-grpc=$$(command -v grpc_python_plugin) $<

# `make demo`: both clients without and with the shim, side by side.
demo:
	@scripts/ensure-deps demo
	@$(MAKE) --no-print-directory $(SHIM) $(ECHO_SERVER) $(FORK_DEMO) $(PY_STUBS)
	@BUILD=$(BUILD) demo/run-demo.sh
