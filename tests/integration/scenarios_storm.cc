// fork-storm: the main thread forks again and again (--forks, 40) while
// other threads (--threads, 4) make synchronous unary RPCs nonstop on one
// shared channel. Every child makes one RPC on the stub it inherited (the
// shared one) and one on a channel of its own, and exits. At most 4 children
// are alive at a time; the oldest is reaped before the next fork.
//
// Prints, besides the usual lines (the threads' RPCs only when they fail):
//   parent pid=P RUN:storm: F forks in S s: R forks/s; children: N exited 0, M failed
//   parent pid=P RUN:parent-threads: ...
//   EXPECT-CALLS parent=<n> child=<n>   the calls the server must have seen,
//                                       per role (the threads' count varies)

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <deque>
#include <string>
#include <thread>
#include <vector>

#include "scenarios.h"

namespace fc {

int ForkStorm(const Options& o) {
  const int forks = o.forks > 0 ? o.forks : 40;
  const int nthreads = o.threads > 0 ? o.threads : 4;
  const size_t kAlive = 4;      // children alive at once
  const int kStartMs = 30000;   // bound on waiting for the threads to get going
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");

  Gate first;  // one arrival per thread, after its first RPC
  std::atomic<bool> stop{false};
  std::vector<std::atomic<long>> made(nthreads);
  std::vector<long> failed(nthreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; t++) {
    threads.emplace_back([&, t] {
      for (long j = 1; !stop; j++) {
        if (!SayQuiet(*stub, o, "parent-t" + std::to_string(t) + "-" + std::to_string(j)))
          failed[t]++;
        made[t]++;
        if (j == 1) first.Arrive();
      }
    });
  }
  if (!first.WaitFor(nthreads, kStartMs))
    Fail("not every thread completed an RPC within " + std::to_string(kStartMs) + " ms");

  std::vector<long> at_start(nthreads);
  for (int t = 0; t < nthreads; t++) at_start[t] = made[t];
  auto t0 = std::chrono::steady_clock::now();
  std::deque<pid_t> alive;
  int forked = 0, children_ok = 0, children_failed = 0;
  auto reap_oldest = [&] {
    if (WaitChild(alive.front(), "child")) children_ok++;
    else children_failed++;
    alive.pop_front();
  };
  for (int k = 1; k <= forks; k++) {
    pid_t pid = ForkChild([&] {
      Say(*stub, o, "child-inherited-" + std::to_string(k));
      auto own = NewStub(o);
      Say(*own, o, "child-new-" + std::to_string(k));
      return 0;
    });
    if (pid < 0) break;  // counted by ForkChild
    forked++;
    alive.push_back(pid);
    if (alive.size() >= kAlive) reap_oldest();
  }
  while (!alive.empty()) reap_oldest();
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<long> during(nthreads);
  for (int t = 0; t < nthreads; t++) during[t] = made[t] - at_start[t];
  stop = true;
  for (auto& th : threads) th.join();

  std::printf("%s pid=%d %s:storm: %d forks in %.2f s: %.1f forks/s; children: %d exited 0, %d "
              "failed\n",
              Role().c_str(), getpid(), o.run.c_str(), forked, seconds, forked / seconds,
              children_ok, children_failed);
  long total = 0, total_failed = 0, least_during = -1;
  for (int t = 0; t < nthreads; t++) {
    total += made[t];
    total_failed += failed[t];
    if (least_during < 0 || during[t] < least_during) least_during = during[t];
  }
  std::printf("%s pid=%d %s:parent-threads: %s %ld of %ld RPCs ok from %d threads; each made at "
              "least %ld during the forks\n",
              Role().c_str(), getpid(), o.run.c_str(), total_failed == 0 ? "ok" : "FAIL",
              total - total_failed, total, nthreads, least_during);
  if (total_failed > 0) Fail(std::to_string(total_failed) + " of the threads' RPCs failed");
  if (least_during <= 0) Fail("a thread made no RPC while the forks went on");
  ParentAfter(*stub, o);
  std::printf("EXPECT-CALLS parent=%ld child=%d\n", 1 + total + 3, 2 * forked);
  return 0;
}

}  // namespace fc
