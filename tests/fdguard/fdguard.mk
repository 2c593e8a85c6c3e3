# The descriptor guard under real programs: fd-probe, a plain C program whose
# "gRPC" is libfdside.so (named in GRPC_FORKSAFE_OBJECTS), run without and
# with the shim (tests/fdguard/run.sh).

FDG_DIR := tests/fdguard
FDG_OUT := $(BUILD)/tests/fdguard
FDG_SIDE  := $(FDG_OUT)/libfdside.so
FDG_PROBE := $(FDG_OUT)/fd-probe
# c-ares used by the program itself and by gRPC's resolver, side by side.
FDG_ARES  := $(FDG_OUT)/ares-probe
# A timer signal's handler that forks while the main thread is inside the
# shim's locked code (its fork path, the channel table).
FDG_SIGFORK := $(FDG_OUT)/signal-fork

.PHONY: test-fdguard

$(FDG_SIDE): $(FDG_DIR)/fdside.c
	@mkdir -p $(@D)
	$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter -shared -fPIC -o $@ $<

$(FDG_PROBE): $(FDG_DIR)/fd_probe.c $(FDG_DIR)/fdside.h $(FDG_SIDE)
	$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter -o $@ $< -L$(FDG_OUT) -lfdside -Wl,-rpath,'$$ORIGIN' -lpthread

$(FDG_ARES): $(FDG_DIR)/ares_probe.c
	@mkdir -p $(@D)
	$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter $(shell pkg-config --cflags grpc libcares 2>/dev/null) \
	  -o $@ $< $(shell pkg-config --libs grpc libcares 2>/dev/null)

$(FDG_SIGFORK): $(FDG_DIR)/signal_fork.c
	@mkdir -p $(@D)
	$(CC) -O1 -g -std=gnu11 -Wall -Wextra -Wno-unused-parameter $(shell pkg-config --cflags grpc 2>/dev/null) \
	  -o $@ $< $(shell pkg-config --libs grpc 2>/dev/null)

test-fdguard: $(SHIM) $(FDG_PROBE) $(FDG_ARES) $(FDG_SIGFORK)
	@$(FDG_DIR)/run.sh $(SHIM) $(FDG_PROBE) $(FDG_ARES) $(FDG_SIGFORK) $(FDG_OUT)/run
