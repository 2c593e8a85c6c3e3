// Unary RPC throughput of synchronous grpc++ client threads: as many Say
// RPCs as they can make, each thread one after the other, for a fixed time.
//
// Usage: unary TARGET SECONDS [THREADS]
//        unary TARGET --rpcs N [THREADS]
// Prints: rpcs_per_s=<rate> rpcs=<n> seconds=<s> failures=<n> threads=<n>
// A short warm-up (connection set-up, first allocations) is not counted.
// THREADS (default 1) threads share one channel and one stub.
//
// With --rpcs, each thread makes exactly N RPCs after the first one, with no
// timed warm-up, so that the work done does not depend on the speed of the
// machine: for counting instructions (valgrind --tool=callgrind), where two
// runs must make the same calls to be compared.

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bench_common.h"

int main(int argc, char** argv) {
  const bool counted = argc >= 3 && std::strcmp(argv[2], "--rpcs") == 0;
  const int first_optional = counted ? 4 : 3;
  if (argc < first_optional || argc > first_optional + 1 ||
      (counted ? std::atol(argv[3]) < 1 : std::atof(argv[2]) <= 0) ||
      (argc == first_optional + 1 && std::atoi(argv[first_optional]) < 1)) {
    std::fprintf(stderr, "usage: unary TARGET SECONDS [THREADS]\n       unary TARGET --rpcs N [THREADS]\n");
    return 2;
  }
  const std::string target = argv[1];
  const double seconds = counted ? 0 : std::atof(argv[2]);
  const long per_thread = counted ? std::atol(argv[3]) : 0;
  const int threads = argc == first_optional + 1 ? std::atoi(argv[first_optional]) : 1;

  auto stub = bench::Echo::NewStub(bench::NewChannel(target));
  grpc::Status first = bench::Say(stub.get(), "unary-first", counted ? 20000 : 2000);
  if (!first.ok()) {
    std::fprintf(stderr, "unary: first RPC failed: %s\n", bench::Describe(first).c_str());
    return 1;
  }
  // Every thread warms up until the same instant, then counts until the same end.
  const int64_t start = bench::NowNs() + (counted ? 0 : 500000000);
  const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
  std::atomic<long> rpcs{0}, failures{0};
  std::atomic<int64_t> last{0};
  auto work = [&] {
    long ok = 0, bad = 0;
    int64_t now;
    if (counted) {
      // Deadlines far away: a slowed-down process must not fail by time.
      for (long i = 0; i < per_thread; i++) {
        if (bench::Say(stub.get(), "unary", 60000).ok()) ok++;
        else bad++;
      }
      now = bench::NowNs();
    } else {
      while (bench::NowNs() < start) bench::Say(stub.get(), "unary-warmup", 2000);
      now = bench::NowNs();
      while (now < end) {
        if (bench::Say(stub.get(), "unary", 2000).ok()) ok++;
        else bad++;
        now = bench::NowNs();
      }
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
