# `make bench`: throughput, fork() latency and first-RPC latency, each with
# and without the shim in the same run, and the same with threads busy in
# gRPC (fork latency, a fork storm, idle CPU); the report lands in
# $(BUILD)/bench/report.md.
BENCH_DIR   := $(BUILD)/bench
BENCH_PROGS := $(BENCH_DIR)/unary $(BENCH_DIR)/fork-latency $(BENCH_DIR)/first-rpc \
               $(BENCH_DIR)/fork-storm $(BENCH_DIR)/idle-cpu

$(BENCH_DIR)/unary: bench/unary.cc
$(BENCH_DIR)/fork-latency: bench/fork_latency.cc
$(BENCH_DIR)/first-rpc: bench/first_rpc.cc
$(BENCH_DIR)/fork-storm: bench/fork_storm.cc
$(BENCH_DIR)/idle-cpu: bench/idle_cpu.cc

$(BENCH_PROGS): bench/bench_common.h demo/status_name.h $(ECHO_OBJS)
	@mkdir -p $(@D)
	$(CXX) $(GRPCXX_CFLAGS) -Ibench -Idemo -o $@ $(filter %.cc,$^) $(ECHO_OBJS) $(GRPCXX_LIBS)

bench:
	@scripts/ensure-deps bench
	@$(MAKE) --no-print-directory $(SHIM) $(ECHO_SERVER) $(BENCH_PROGS)
	@BUILD=$(BUILD) bench/run-bench.sh
