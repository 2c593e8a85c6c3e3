# Real Debian programs that use gRPC, run with the shim preloaded and without
# it: collectd with its grpc plugin serving and its exec plugin forking every
# second (tests/programs/collectd.sh).

.PHONY: test-programs
test-programs: $(SHIM)
	@tests/programs/collectd.sh --shim $(SHIM) --out $(BUILD)/tests/programs
