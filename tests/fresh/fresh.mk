# A fresh gRPC in a forked child: fresh-c, a client of gRPC core's C API whose
# child and grandchild load private copies of gRPC (shim/copyset.c, linked in
# directly; nothing preloaded), checked by tests/fresh/run.sh, once more under
# memcheck. `make test-fresh`; not part of `make test` yet.

FRESH_DIR    := tests/fresh
FRESH_CLIENT := $(BUILD)/tests/fresh-c
FRESH_SHIM_OBJS := $(BUILD)/shim/copyset.o $(BUILD)/shim/elfcopy.o $(BUILD)/shim/log.o

.PHONY: test-fresh

$(FRESH_CLIENT): $(FRESH_DIR)/fresh.c $(FRESH_SHIM_OBJS) shim/copyset.h
	@mkdir -p $(@D)
	$(CC) -O2 -g -std=gnu11 -Wall -Wextra -Ishim $(shell pkg-config --cflags grpc 2>/dev/null) -o $@ $< \
	  $(FRESH_SHIM_OBJS) $(shell pkg-config --libs grpc 2>/dev/null) -lbsd -ldl -lpthread

test-fresh: $(ECHO_SERVER) $(FRESH_CLIENT)
	@$(FRESH_DIR)/run.sh --server $(ECHO_SERVER) --client $(FRESH_CLIENT) --out $(BUILD)/tests/fresh
