// Unary RPC throughput of synchronous grpc++ client threads: as many Say
// RPCs as they can make, each thread one after the other, for a fixed time.
//
// Usage: unary TARGET SECONDS [THREADS]
// Prints: rpcs_per_s=<rate> rpcs=<n> seconds=<s> failures=<n> threads=<n>
// A short warm-up (connection set-up, first allocations) is not counted.
// THREADS (default 1) threads share one channel and one stub.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "bench_common.h"

int main(int argc, char** argv) {
  if ((argc != 3 && argc != 4) || std::atof(argv[2]) <= 0 || (argc == 4 && std::atoi(argv[3]) < 1)) {
    std::fprintf(stderr, "usage: unary TARGET SECONDS [THREADS]\n");
    return 2;
  }
  const std::string target = argv[1];
  const double seconds = std::atof(argv[2]);
  const int threads = argc == 4 ? std::atoi(argv[3]) : 1;

  auto stub = bench::Echo::NewStub(bench::NewChannel(target));
  grpc::Status first = bench::Say(stub.get(), "unary-first", 2000);
  if (!first.ok()) {
    std::fprintf(stderr, "unary: first RPC failed: %s\n", bench::Describe(first).c_str());
    return 1;
  }
  // Every thread warms up until the same instant, then counts until the same end.
  const int64_t start = bench::NowNs() + 500000000;
  const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
  std::atomic<long> rpcs{0}, failures{0};
  std::atomic<int64_t> last{0};
  auto work = [&] {
    while (bench::NowNs() < start) bench::Say(stub.get(), "unary-warmup", 2000);
    long ok = 0, bad = 0;
    int64_t now = bench::NowNs();
    while (now < end) {
      if (bench::Say(stub.get(), "unary", 2000).ok()) ok++;
      else bad++;
      now = bench::NowNs();
    }
    rpcs += ok;
    failures += bad;
    int64_t seen = last;
    while (now > seen && !last.compare_exchange_weak(seen, now)) {
    }
  };
  std::vector<std::thread> pool;
  for (int i = 1; i < threads; i++) pool.emplace_back(work);
  work();
  for (auto& t : pool) t.join();

  // Until the last thread's last RPC ended: every counted RPC is inside.
  double elapsed = (last - start) / 1e9;
  std::printf("rpcs_per_s=%.1f rpcs=%ld seconds=%.3f failures=%ld threads=%d\n", rpcs / elapsed,
              rpcs.load(), elapsed, failures.load(), threads);
  return failures == 0 ? 0 : 1;
}
