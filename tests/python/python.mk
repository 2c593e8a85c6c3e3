# Python tests: ordinary grpcio programs (Debian's python3-grpcio, with gRPC
# core compiled in) that fork, with the shim preloaded and without
# (tests/python/run.sh). `make test-grpc-fork-suite`, also part of `make
# test`: gRPC 1.51.1's own Python fork tests (tests/python/grpc-fork-suite.sh),
# fetched once from Debian's grpc source package into
# $(BUILD)/grpc-fork-suite (apt-get as root, from Debian's mirrors: some
# 19 MB); GRPC_FORK_SUITE_SURVEY=N runs each scenario N times under every
# setting instead and prints a table. `make measure-python`: the Python
# demo and the busy patterns under each policy, counted and timed
# (tests/python/measure-policies.sh), not part of `make test`. The stubs
# (PY_STUBS, PY_GEN) are made by the rule in demo/demo.mk, which the
# Makefile includes first.

PY_TEST_OUT := $(BUILD)/tests/python

.PHONY: test-python measure-python test-grpc-fork-suite

test-python: $(SHIM) $(PY_LAYER) $(ECHO_SERVER) $(PY_STUBS)
	@scripts/ensure-deps python
	@tests/python/run.sh --shim $(SHIM) --server $(ECHO_SERVER) --stubs $(PY_GEN) --out $(PY_TEST_OUT)

measure-python: $(SHIM) $(ECHO_SERVER) $(PY_STUBS)
	@scripts/ensure-deps demo
	@tests/python/measure-policies.sh --build $(BUILD)

GRPC_FORK_SUITE_SURVEY ?=
test-grpc-fork-suite: $(SHIM) $(PY_LAYER)
	@scripts/ensure-deps demo
	@tests/python/grpc-fork-suite.sh --shim $(SHIM) --cache $(BUILD)/grpc-fork-suite \
		--out $(BUILD)/tests/grpc-fork-suite$(if $(GRPC_FORK_SUITE_SURVEY),-survey --survey $(GRPC_FORK_SUITE_SURVEY))
