# The demo: the echo server and an ordinary client that forks.
ECHO_SERVER := $(BUILD)/echo-server

$(ECHO_SERVER): demo/echo_server.cc $(ECHO_OBJS)
	$(CXX) $(GRPCXX_CFLAGS) -o $@ $< $(ECHO_OBJS) $(GRPCXX_LIBS)
