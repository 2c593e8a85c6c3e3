# The demo: the echo server (ECHO_SERVER, named in the Makefile) and an
# ordinary client that forks.

$(ECHO_SERVER): demo/echo_server.cc $(ECHO_OBJS)
	$(CXX) $(GRPCXX_CFLAGS) -o $@ $< $(ECHO_OBJS) $(GRPCXX_LIBS)

# An ordinary forking grpc++ client; it knows nothing of the shim.
FORK_DEMO := $(BUILD)/fork-demo

$(FORK_DEMO): demo/fork_demo.cc demo/status_name.h $(ECHO_OBJS)
	$(CXX) $(GRPCXX_CFLAGS) -o $@ $< $(ECHO_OBJS) $(GRPCXX_LIBS)

# `make demo`: the same client without and with the shim, side by side.
demo:
	@scripts/ensure-deps demo
	@$(MAKE) --no-print-directory $(SHIM) $(ECHO_SERVER) $(FORK_DEMO)
	@BUILD=$(BUILD) demo/run-demo.sh
