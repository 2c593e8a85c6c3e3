# gRPC compiled into the program: a client linked with libgrpc.a (static-client)
# forks against a real echo server with the shim preloaded, and a client built
# both ways (exec-client, against libgrpc.so and with libgrpc.a) starts a
# program that lists the descriptors it inherited (tests/embedded/run.sh).

EMB_DIR  := tests/embedded
EMB_OUT  := $(BUILD)/tests/embedded
EMB_OBJ  := $(EMB_OUT)/obj

# gRPC's own libraries go in as archives, everything they use (abseil, OpenSSL,
# c-ares, re2, zlib, protobuf) stays shared: the program then holds gRPC the
# way a program built against a vendored gRPC does, with no libgrpc*.so,
# libgpr.so or libupb.so loaded. pkg-config's order is the link order the
# archives need (grpc++ before grpc before upb, address_sorting and gpr).
EMB_ARCHIVES    := grpc++ grpc address_sorting upb gpr
EMB_STATIC_LIBS := $(foreach l,$(shell pkg-config --libs grpc++ protobuf 2>/dev/null),\
                     $(if $(filter $(l),$(EMB_ARCHIVES:%=-l%)),-l:lib$(l:-l%=%).a,$(l))) -lpthread

EMB_CXX_OBJS := $(EMB_OBJ)/bounded.o $(EMB_OBJ)/fdtable.o $(BUILD)/tests/obj/client.o $(ECHO_OBJS)

EMB_STATIC_CLIENT := $(EMB_OUT)/static-client
EMB_EXEC_STATIC   := $(EMB_OUT)/exec-client-static
EMB_EXEC_DYNAMIC  := $(EMB_OUT)/exec-client-dynamic
EMB_LISTER        := $(EMB_OUT)/fd-lister
EMB_SINK          := $(EMB_OUT)/byte-sink
EMB_PROGRAMS      := $(EMB_STATIC_CLIENT) $(EMB_EXEC_STATIC) $(EMB_EXEC_DYNAMIC) $(EMB_LISTER) $(EMB_SINK)

.PHONY: test-embedded

$(EMB_OBJ)/%.o: $(EMB_DIR)/%.cc $(wildcard $(EMB_DIR)/*.h) $(INTEG_DIR)/client.h demo/status_name.h $(BUILD)/gen/echo.pb.h $(BUILD)/gen/echo.grpc.pb.h
	@mkdir -p $(@D)
	$(CXX) $(GRPCXX_CFLAGS) -I$(INTEG_DIR) -Idemo -c $< -o $@

# Not stripped, ever: the shim finds gRPC's code by the program's symbol table.
$(EMB_STATIC_CLIENT): $(EMB_OBJ)/static_client.o $(EMB_CXX_OBJS)
	$(CXX) -o $@ $^ $(EMB_STATIC_LIBS)

$(EMB_EXEC_STATIC): $(EMB_OBJ)/exec_client.o $(EMB_CXX_OBJS)
	$(CXX) -o $@ $^ $(EMB_STATIC_LIBS)

$(EMB_EXEC_DYNAMIC): $(EMB_OBJ)/exec_client.o $(EMB_CXX_OBJS)
	$(CXX) -o $@ $^ $(GRPCXX_LIBS)

# Plain C, no gRPC: what they report cannot depend on the shim's view of gRPC.
$(EMB_LISTER): $(EMB_DIR)/fd_lister.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -o $@ $<

$(EMB_SINK): $(EMB_DIR)/byte_sink.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -o $@ $<

test-embedded: $(SHIM) $(ECHO_SERVER) $(EMB_PROGRAMS)
	@$(EMB_DIR)/run.sh --shim $(SHIM) --server $(ECHO_SERVER) --bin $(EMB_OUT) --out $(EMB_OUT)/run
