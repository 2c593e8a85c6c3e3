# Python tests: ordinary grpcio programs (Debian's python3-grpcio, with gRPC
# core compiled in) that fork, with the shim preloaded and without
# (tests/python/run.sh). `make measure-python`: the Python demo under each
# policy, counted and timed (tests/python/measure-policies.sh), not part of
# `make test`. The stubs (PY_STUBS, PY_GEN) are made by the rule in
# demo/demo.mk, which the Makefile includes first.

PY_TEST_OUT := $(BUILD)/tests/python

.PHONY: test-python measure-python

test-python: $(SHIM) $(PY_LAYER) $(ECHO_SERVER) $(PY_STUBS)
	@scripts/ensure-deps python
	@tests/python/run.sh --shim $(SHIM) --server $(ECHO_SERVER) --stubs $(PY_GEN) --out $(PY_TEST_OUT)

measure-python: $(SHIM) $(ECHO_SERVER) $(PY_STUBS)
	@scripts/ensure-deps demo
	@tests/python/measure-policies.sh --build $(BUILD)
