# Criterion unit tests of the shim's modules, built with ASan and UBSan. The
# hooks themselves (hooks_*.c, init.c) are left out: these binaries call the
# modules directly and interpose nothing.
UNIT_MODULES := log config audit libc owner symranges fdident fdreg chanargs chantab calls stats quiesce execctx forkpath forkables grpclib experiments threads embedded_fork elfcopy copyset credrec cqtwin rebind fresh
UNIT_CFLAGS  := -O1 -g -std=gnu11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Ishim \
                -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
                $(shell pkg-config --cflags grpc 2>/dev/null)
UNIT_TESTS   := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(wildcard tests/unit/test_*.c))

$(BUILD)/unit/%: tests/unit/%.c tests/unit/unit.h $(UNIT_MODULES:%=shim/%.c) shim/stubs_x86_64.S $(wildcard shim/*.h)
	@mkdir -p $(@D)
	$(CC) $(UNIT_CFLAGS) -o $@ $< $(UNIT_MODULES:%=shim/%.c) shim/stubs_x86_64.S -lcriterion -lbsd -ldl -lpthread

.PHONY: test-unit
test-unit: $(UNIT_TESTS)
	@failed=0; for t in $(UNIT_TESTS); do \
	  echo "== $$t"; ASAN_OPTIONS=detect_leaks=1 $$t --jobs 2 || failed=1; \
	done; exit $$failed
