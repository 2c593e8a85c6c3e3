# Fuzz targets (libFuzzer, through clang, with ASan and UBSan): the settings
# parsers, the ELF symbol-table scan and the ELF edit of private copies. `make fuzz` runs each for
# FUZZ_SECONDS (60); `make test` runs each for 5 s (test-fuzz). Corpora live in
# tests/fuzz/corpus/; new inputs found go to $(BUILD)/fuzz/corpus-*, so the
# tree is never written to.

FUZZ_DIR     := tests/fuzz
FUZZ_OUT     := $(BUILD)/fuzz
FUZZ_MODULES := log config libc owner symranges elfcopy
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -D_GNU_SOURCE -Ishim -fsanitize=fuzzer,address,undefined \
                -fno-sanitize-recover=undefined $(shell pkg-config --cflags grpc 2>/dev/null)
FUZZ_TARGETS := $(FUZZ_OUT)/fuzz_config $(FUZZ_OUT)/fuzz_symranges $(FUZZ_OUT)/fuzz_elfcopy
FUZZ_SECONDS ?= 60

.PHONY: fuzz test-fuzz

$(FUZZ_OUT)/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(FUZZ_MODULES:%=shim/%.c) $(wildcard shim/*.h)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) -o $@ $< $(FUZZ_MODULES:%=shim/%.c) -lbsd -ldl -lpthread

# A real ELF file whose own functions carry gRPC's names: a seed for the scan.
$(FUZZ_OUT)/seed-elf: $(FUZZ_DIR)/seed_program.c
	@mkdir -p $(@D)
	$(CC) -O0 -o $@ $<

fuzz: $(FUZZ_TARGETS) $(FUZZ_OUT)/seed-elf
	@$(FUZZ_DIR)/run.sh --out $(FUZZ_OUT) --seconds $(FUZZ_SECONDS)

test-fuzz: $(FUZZ_TARGETS) $(FUZZ_OUT)/seed-elf
	@$(FUZZ_DIR)/run.sh --out $(FUZZ_OUT) --seconds 5
