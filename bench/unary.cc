// Unary RPC throughput of one synchronous grpc++ client thread: as many Say
// RPCs as it can make, one after the other, for a fixed time.
//
// Usage: unary TARGET SECONDS
// Prints: rpcs_per_s=<rate> rpcs=<n> seconds=<s> failures=<n>
// A short warm-up (connection set-up, first allocations) is not counted.

#include <cstdio>
#include <cstdlib>

#include "bench_common.h"

int main(int argc, char** argv) {
  if (argc != 3 || std::atof(argv[2]) <= 0) {
    std::fprintf(stderr, "usage: unary TARGET SECONDS\n");
    return 2;
  }
  const std::string target = argv[1];
  const double seconds = std::atof(argv[2]);

  auto stub = bench::Echo::NewStub(bench::NewChannel(target));
  grpc::Status first = bench::Say(stub.get(), "unary-first", 2000);
  if (!first.ok()) {
    std::fprintf(stderr, "unary: first RPC failed: %s\n", bench::Describe(first).c_str());
    return 1;
  }
  for (int64_t end = bench::NowNs() + 500000000; bench::NowNs() < end;)
    bench::Say(stub.get(), "unary-warmup", 2000);

  long rpcs = 0, failures = 0;
  const int64_t start = bench::NowNs();
  const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
  int64_t now = start;
  while (now < end) {
    if (bench::Say(stub.get(), "unary", 2000).ok()) rpcs++;
    else failures++;
    now = bench::NowNs();
  }
  double elapsed = (now - start) / 1e9;
  std::printf("rpcs_per_s=%.1f rpcs=%ld seconds=%.3f failures=%ld\n", rpcs / elapsed, rpcs, elapsed,
              failures);
  return failures == 0 ? 0 : 1;
}
