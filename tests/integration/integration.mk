# Integration tests: ordinary grpc++ programs that fork, run with the shim
# preloaded against a real echo server (tests/integration/run.sh), and the same
# under valgrind (tests/integration/valgrind.sh). `make stress`: the fork storm
# at full size (tests/integration/stress.sh), not part of `make test`.

INTEG_DIR    := tests/integration
INTEG_SRCS   := $(wildcard $(INTEG_DIR)/*.cc)
INTEG_OBJS   := $(INTEG_SRCS:$(INTEG_DIR)/%.cc=$(BUILD)/tests/obj/%.o)
FORK_CLIENT  := $(BUILD)/tests/fork-client
# A client of gRPC core's C API alone, no grpc++.
CAPI_CLIENT  := $(BUILD)/tests/channel-api-c
MEMCHECK_CONTROL := $(BUILD)/tests/libmemcheck_control.so

.PHONY: test-integration test-valgrind stress

# The clients are part of the default build.
all: $(FORK_CLIENT) $(CAPI_CLIENT)

$(BUILD)/tests/obj/%.o: $(INTEG_DIR)/%.cc $(wildcard $(INTEG_DIR)/*.h) demo/status_name.h $(BUILD)/gen/echo.pb.h $(BUILD)/gen/echo.grpc.pb.h
	@mkdir -p $(@D)
	$(CXX) $(GRPCXX_CFLAGS) -Idemo -c $< -o $@

# forkpty() lives in libutil on older glibc; on newer glibc libutil is empty.
$(FORK_CLIENT): $(INTEG_OBJS) $(ECHO_OBJS)
	@mkdir -p $(@D)
	$(CXX) -o $@ $(INTEG_OBJS) $(ECHO_OBJS) $(GRPCXX_LIBS) -lutil

$(CAPI_CLIENT): $(INTEG_DIR)/channel_api.c
	@mkdir -p $(@D)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra $(shell pkg-config --cflags grpc 2>/dev/null) -o $@ $< \
	  $(shell pkg-config --libs grpc 2>/dev/null)

# Not optimised: the control's invalid read and leak must stay in the code.
$(MEMCHECK_CONTROL): $(INTEG_DIR)/memcheck_control.c
	@mkdir -p $(@D)
	$(CC) -O0 -g -Wall -shared -fPIC -o $@ $<

test-integration: $(SHIM) $(ECHO_SERVER) $(FORK_CLIENT) $(CAPI_CLIENT)
	@$(INTEG_DIR)/run.sh --shim $(SHIM) --server $(ECHO_SERVER) --client $(FORK_CLIENT) \
	  --capi $(CAPI_CLIENT) --out $(BUILD)/tests/integration

# The same scenarios with the documented alternative, GRPC_FORKSAFE_CHILD_GRPC=inherited:
# the child keeps the gRPC it inherited, stopped and restarted around the fork.
.PHONY: test-integration-inherited
test-integration-inherited: $(SHIM) $(ECHO_SERVER) $(FORK_CLIENT) $(CAPI_CLIENT)
	@GRPC_FORKSAFE_CHILD_GRPC=inherited $(INTEG_DIR)/run.sh --shim $(SHIM) --server $(ECHO_SERVER) \
	  --client $(FORK_CLIENT) --capi $(CAPI_CLIENT) --out $(BUILD)/tests/integration-inherited

test-valgrind: $(SHIM) $(ECHO_SERVER) $(FORK_CLIENT) $(CAPI_CLIENT) $(MEMCHECK_CONTROL)
	@$(INTEG_DIR)/valgrind.sh --shim $(SHIM) --server $(ECHO_SERVER) --client $(FORK_CLIENT) \
	  --capi $(CAPI_CLIENT) --control $(MEMCHECK_CONTROL) --out $(BUILD)/tests/valgrind

# 1000 forks while 8 threads make RPCs; STRESS_FORKS, STRESS_THREADS and
# STRESS_TIMEOUT (seconds, 900) change it.
stress: $(SHIM) $(ECHO_SERVER) $(FORK_CLIENT)
	@$(INTEG_DIR)/stress.sh --shim $(SHIM) --server $(ECHO_SERVER) --client $(FORK_CLIENT) \
	  --out $(BUILD)/tests/stress
