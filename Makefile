# grpc-forksafe: build, test, demo and benchmarks.
# `make` builds the shim; `make test`, `make demo` and `make bench` install any
# missing Debian packages first (scripts/ensure-deps).

BUILD    ?= build
CC       ?= cc
CXX      ?= g++
VERSION  := 0.1.0

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wno-unused-parameter
CFLAGS   ?= -O2 -g
SHIM_CFLAGS := $(CFLAGS) $(WARN) -std=gnu11 -fPIC -fvisibility=hidden -D_GNU_SOURCE \
               -DFORKSAFE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags grpc 2>/dev/null)
SHIM_LDLIBS := -lbsd -ldl -lpthread

SHIM_SRCS := $(wildcard shim/*.c) $(wildcard shim/*.S)
SHIM_OBJS := $(patsubst shim/%,$(BUILD)/shim/%.o,$(basename $(SHIM_SRCS)))
SHIM      := $(BUILD)/libgrpc_forksafe.so
# The Python layer (shim/python/), in a directory next to the library, where
# the shim looks for it (shim/embedded.c).
PY_LAYER  := $(patsubst shim/python/%,$(BUILD)/python-layer/%,$(wildcard shim/python/*.py))

# Programs built from proto/ (tests, demo, benchmarks) share these.
GRPCXX_CFLAGS := -O2 -g -std=c++17 -Wall -I$(BUILD)/gen $(shell pkg-config --cflags grpc++ protobuf 2>/dev/null)
GRPCXX_LIBS   := $(shell pkg-config --libs grpc++ protobuf 2>/dev/null) -lpthread
ECHO_OBJS     := $(BUILD)/gen/echo.pb.o $(BUILD)/gen/echo.grpc.pb.o
# The server every test, demo and benchmark talks to (rule in demo/demo.mk).
ECHO_SERVER   := $(BUILD)/echo-server

.PHONY: all deps test test-unit demo bench clean
all: $(SHIM) $(PY_LAYER)

deps:
	@scripts/ensure-deps build

$(BUILD)/shim/%.o: shim/%.c $(wildcard shim/*.h) Makefile
	@mkdir -p $(@D)
	$(CC) $(SHIM_CFLAGS) -c $< -o $@

$(BUILD)/shim/%.o: shim/%.S Makefile
	@mkdir -p $(@D)
	$(CC) -c $< -o $@

$(BUILD)/python-layer/%.py: shim/python/%.py
	@mkdir -p $(@D)
	cp $< $@

# Whatever is built with the shim gets the layer beside it.
$(SHIM): $(SHIM_OBJS) shim/exports.map | $(PY_LAYER)
	$(CC) -shared -Wl,--version-script=shim/exports.map -Wl,-z,now -Wl,-z,relro \
	      -o $@ $(SHIM_OBJS) $(SHIM_LDLIBS)

$(BUILD)/gen/echo.pb.cc $(BUILD)/gen/echo.pb.h $(BUILD)/gen/echo.grpc.pb.cc $(BUILD)/gen/echo.grpc.pb.h &: proto/echo.proto
	@mkdir -p $(@D)
	protoc -Iproto --cpp_out=$(BUILD)/gen --grpc_out=$(BUILD)/gen \
	       --plugin=protoc-gen-grpc=$$(command -v grpc_cpp_plugin) $<

$(BUILD)/gen/%.o: $(BUILD)/gen/%.cc $(BUILD)/gen/echo.pb.h $(BUILD)/gen/echo.grpc.pb.h
	$(CXX) $(GRPCXX_CFLAGS) -c $< -o $@

include tests/unit/unit.mk
include tests/integration/integration.mk
include tests/passthrough/passthrough.mk
include tests/embedded/embedded.mk
include tests/fdguard/fdguard.mk
include demo/demo.mk
include tests/python/python.mk
include tests/programs/programs.mk
include tests/fuzz/fuzz.mk
include tests/rebind/rebind.mk
include tests/fresh/fresh.mk
include bench/bench.mk
include tools/tools.mk

# Everything `make test` runs; .ci/run calls exactly this.
test:
	@scripts/ensure-deps test
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory test-unit
	@$(MAKE) --no-print-directory test-fuzz
	@$(MAKE) --no-print-directory test-passthrough
	@$(MAKE) --no-print-directory test-fdguard
	@$(MAKE) --no-print-directory test-integration
	@$(MAKE) --no-print-directory test-integration-inherited
	@$(MAKE) --no-print-directory test-rebind
	@$(MAKE) --no-print-directory test-fresh
	@$(MAKE) --no-print-directory test-python
	@$(MAKE) --no-print-directory test-grpc-fork-suite
	@$(MAKE) --no-print-directory test-embedded
	@$(MAKE) --no-print-directory test-programs
	@$(MAKE) --no-print-directory test-valgrind
	@$(MAKE) --no-print-directory test-wrapper

clean:
	rm -rf $(BUILD)
