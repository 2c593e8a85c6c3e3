// How long fork() takes to return in the parent when the process has live,
// used gRPC channels: the cost the shim adds to every fork() by preparing
// gRPC for it.
//
// Usage: fork-latency TARGET CHANNELS ITERATIONS
// Prints: median_us=<t> p90_us=<t> first_us=<t> iterations=<n> channels=<n>
//         channels_ok_after=<ok>/<checked>
// first_us is the process's first fork(), which is not among the timed ones.
//
// Each channel gets a distinct channel argument, so each has its own TCP
// connection, and makes one RPC before timing starts. The child _exit(0)s at
// once; the parent times fork() itself, then reaps the child before the next
// iteration. Afterwards every channel makes one more RPC to show the parent's
// channels survived (checking stops after 3 failures).

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>

#include "bench_common.h"

int main(int argc, char** argv) {
  if (argc != 4 || std::atoi(argv[2]) < 1 || std::atoi(argv[3]) < 1) {
    std::fprintf(stderr, "usage: fork-latency TARGET CHANNELS ITERATIONS\n");
    return 2;
  }
  const std::string target = argv[1];
  const int channels = std::atoi(argv[2]);
  const int iterations = std::atoi(argv[3]);

  std::vector<std::unique_ptr<bench::Echo::Stub>> stubs;
  for (int i = 0; i < channels; i++) {
    stubs.push_back(bench::Echo::NewStub(bench::NewChannel(target, i)));
    grpc::Status s = bench::Say(stubs.back().get(), "fork-latency-setup", 5000);
    if (!s.ok()) {
      std::fprintf(stderr, "fork-latency: RPC on channel %d failed: %s\n", i,
                   bench::Describe(s).c_str());
      return 1;
    }
  }

  const int warmup = 10;
  std::vector<double> us;
  double first_us = 0;  // the process's first fork, reported on its own: it pays one-off costs
  for (int i = 0; i < warmup + iterations; i++) {
    int64_t t0 = bench::NowNs();
    pid_t pid = fork();
    int64_t t1 = bench::NowNs();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      std::perror("fork-latency: fork");
      return 1;
    }
    int status;
    waitpid(pid, &status, 0);
    if (i == 0) first_us = (t1 - t0) / 1e3;
    if (i >= warmup) us.push_back((t1 - t0) / 1e3);
  }

  // Stops after a few failures so that a broken run still ends in seconds.
  int ok_after = 0, checked = 0;
  for (auto& stub : stubs) {
    checked++;
    if (bench::Say(stub.get(), "fork-latency-after", 1000).ok()) ok_after++;
    else if (checked - ok_after >= 3) break;
  }

  double p90 = bench::Percentile(&us, 90);
  double median = bench::Percentile(&us, 50);
  std::printf("median_us=%.1f p90_us=%.1f first_us=%.1f iterations=%d channels=%d channels_ok_after=%d/%d\n",
              median, p90, first_us, iterations, channels, ok_after, checked);
  return ok_after == channels ? 0 : 1;
}
