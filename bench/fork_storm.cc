// How fast a process can fork while its threads keep making RPCs: THREADS
// threads make synchronous Say RPCs back to back on one shared channel while
// the main thread forks for SECONDS. Each child makes one RPC on the stub it
// inherited and one on a brand-new channel (1 s deadline each) and leaves
// with status 0 if both succeeded. At most 4 children are alive at once; the
// oldest is reaped before the next fork, and one that has not exited 5 s
// after its fork is killed (it hung).
//
// Usage: fork-storm TARGET SECONDS THREADS
// Prints: forks_per_s=<r> forks=<n> seconds=<s> child_ok=<n> child_failed=<n>
//         child_hung=<n> parent_rpcs=<n> parent_failed=<n> parent_after=<ok|failed>
//         stuck_in_fork=0
// forks_per_s counts the children that exited 0. parent_after is one more RPC
// on the threads' channel once the storm is over. A fork() that has not
// returned in the parent after 10 s has hung: a watchdog thread then prints
// the line so far, with parent_after=- and stuck_in_fork=1, and the process
// exits with status 3.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <mutex>
#include <cstdlib>
#include <deque>
#include <thread>

#include "bench_common.h"

namespace {

struct Child {
  pid_t pid;
  int done_fd;  // read end of a pipe whose write end only the child holds
  int64_t forked_ns;
};

enum class Outcome { kOk, kFailed, kHung };

Outcome Reap(const Child& c) {
  int64_t left_ms = (c.forked_ns + 5000000000LL - bench::NowNs()) / 1000000;
  struct pollfd p = {c.done_fd, POLLIN, 0};
  bool hung = left_ms <= 0 || poll(&p, 1, static_cast<int>(left_ms)) == 0;
  close(c.done_fd);
  if (hung) kill(c.pid, SIGKILL);
  int status = 0;
  waitpid(c.pid, &status, 0);
  if (hung) return Outcome::kHung;
  return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? Outcome::kOk : Outcome::kFailed;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 4 || std::atof(argv[2]) <= 0 || std::atoi(argv[3]) < 1) {
    std::fprintf(stderr, "usage: fork-storm TARGET SECONDS THREADS\n");
    return 2;
  }
  const std::string target = argv[1];
  const double seconds = std::atof(argv[2]);
  const int nthreads = std::atoi(argv[3]);

  auto stub = bench::Echo::NewStub(bench::NewChannel(target));
  grpc::Status first = bench::Say(stub.get(), "fork-storm-first", 2000);
  if (!first.ok()) {
    std::fprintf(stderr, "fork-storm: first RPC failed: %s\n", bench::Describe(first).c_str());
    return 1;
  }

  std::atomic<bool> stop{false};
  std::atomic<long> rpcs{0}, failed{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < nthreads; i++) {
    threads.emplace_back([&] {
      while (!stop) {
        if (bench::Say(stub.get(), "fork-storm-thread", 1000).ok()) rpcs++;
        else failed++;
      }
    });
  }

  std::atomic<long> forks{0}, ok{0}, bad{0}, hung{0};
  const int64_t start = bench::NowNs();
  auto result = [&](double elapsed, const char* after, int stuck) {
    std::printf("forks_per_s=%.1f forks=%ld seconds=%.3f child_ok=%ld child_failed=%ld child_hung=%ld "
                "parent_rpcs=%ld parent_failed=%ld parent_after=%s stuck_in_fork=%d\n",
                ok / elapsed, forks.load(), elapsed, ok.load(), bad.load(), hung.load(),
                rpcs.load() + failed.load(), failed.load(), after, stuck);
  };
  // The watchdog: a fork() that never returns would otherwise leave no result.
  std::atomic<int64_t> in_fork_since{0};
  std::mutex wd_mu;
  std::condition_variable wd_cv;
  bool wd_stop = false;
  std::thread watchdog([&] {
    std::unique_lock<std::mutex> lock(wd_mu);
    while (!wd_cv.wait_for(lock, std::chrono::milliseconds(100), [&] { return wd_stop; })) {
      int64_t since = in_fork_since;
      if (since != 0 && bench::NowNs() - since > 10000000000LL) {
        result((bench::NowNs() - start) / 1e9, "-", 1);
        std::fflush(stdout);
        _exit(3);
      }
    }
  });

  std::deque<Child> alive;
  auto reap_oldest = [&] {
    switch (Reap(alive.front())) {
      case Outcome::kOk: ok++; break;
      case Outcome::kFailed: bad++; break;
      case Outcome::kHung: hung++; break;
    }
    alive.pop_front();
  };
  const int64_t end = start + static_cast<int64_t>(seconds * 1e9);
  while (bench::NowNs() < end) {
    int fds[2];
    if (pipe(fds) != 0) {
      std::perror("fork-storm: pipe");
      break;
    }
    std::fflush(stdout);
    int64_t t = bench::NowNs();
    in_fork_since = t;
    pid_t pid = fork();
    if (pid != 0) in_fork_since = 0;
    if (pid < 0) {
      std::perror("fork-storm: fork");
      close(fds[0]);
      close(fds[1]);
      break;
    }
    if (pid == 0) {
      close(fds[0]);
      bool inherited = bench::Say(stub.get(), "fork-storm-child-inherited", 1000).ok();
      auto own = bench::Echo::NewStub(bench::NewChannel(target));
      bool fresh = bench::Say(own.get(), "fork-storm-child-new", 1000).ok();
      _exit(inherited && fresh ? 0 : 1);
    }
    close(fds[1]);
    forks++;
    alive.push_back({pid, fds[0], t});
    if (alive.size() >= 4) reap_oldest();
  }
  while (!alive.empty()) reap_oldest();
  const double elapsed = (bench::NowNs() - start) / 1e9;
  stop = true;
  for (auto& t : threads) t.join();
  {
    std::lock_guard<std::mutex> lock(wd_mu);
    wd_stop = true;
    wd_cv.notify_all();
  }
  watchdog.join();
  bool after = bench::Say(stub.get(), "fork-storm-after", 1000).ok();
  result(elapsed, after ? "ok" : "failed", 0);
  return ok == forks && failed == 0 && after ? 0 : 1;
}
