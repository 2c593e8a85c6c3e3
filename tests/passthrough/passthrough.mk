# Pass-through: a program without gRPC, or with a libgrpc the shim cannot act
# on, runs exactly as without the shim.
PT := $(BUILD)/passthrough
PT_CFLAGS := -O1 -g -std=gnu11 -Wall $(shell pkg-config --cflags grpc 2>/dev/null)

$(PT)/missing/libgrpc.so.29: tests/passthrough/fake_grpc.c
	@mkdir -p $(@D)
	$(CC) $(PT_CFLAGS) -shared -fPIC -Wl,-soname,libgrpc.so.29 -o $@ $<

$(PT)/untested/libgrpc.so.29: tests/passthrough/fake_grpc.c
	@mkdir -p $(@D)
	$(CC) $(PT_CFLAGS) -DUNTESTED_VERSION -shared -fPIC -Wl,-soname,libgrpc.so.29 -o $@ $< -ldl

$(PT)/fork-once: tests/passthrough/fork_once.c $(PT)/missing/libgrpc.so.29
	$(CC) $(PT_CFLAGS) -o $@ $< $(PT)/missing/libgrpc.so.29

.PHONY: test-passthrough
test-passthrough: $(SHIM) $(PT)/fork-once $(PT)/untested/libgrpc.so.29
	@tests/passthrough/run.sh $(SHIM) $(PT)
