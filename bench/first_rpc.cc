// How soon a process can make its first successful RPC: one sample per run.
//
// Usage: first-rpc TARGET MODE
//   inherited     the parent makes an RPC, forks; the child calls on the stub
//                 it inherited. Timed from fork() to the child's first success.
//   new-in-child  the same, but the child creates a brand-new channel and
//                 stub. Timed from fork() (channel creation included).
//   never-forked  a process that never forks creates a brand-new channel and
//                 stub. Timed from channel creation. gRPC is already warm (an
//                 RPC on another channel came first), as it is in a child.
// Prints: mode=<m> ok=<0|1> us=<t> attempts=<n> [error=<last status>]
//         child_running_us=<t> parent_after=<ok|failed|->
// child_running_us is the time from fork() until fork() returned in the child.
//
// The child retries failed RPCs at once until one succeeds or 2 s have
// passed since fork() (each attempt's deadline is what is left of the 2 s),
// so "us" is the time to the first *successful* RPC and "attempts" says how
// many it took. In the fork modes the parent then makes one RPC on its own
// channel (1 s deadline) to show whether it survived what the child did.

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <cstring>

#include "bench_common.h"

namespace {

constexpr int64_t kBudgetNs = 2000000000;  // per sample, from the start time
constexpr int kMaxAttempts = 1000;         // a fast-failing channel cannot spin forever

// Makes RPCs on `stub` until one succeeds or the budget from `t0` is spent;
// returns the result line's fields after "mode=...".
std::string TimeFirstSuccess(bench::Echo::Stub* stub, int64_t t0) {
  grpc::Status last;
  int attempts = 0;
  while (attempts < kMaxAttempts) {
    int64_t left_ms = (t0 + kBudgetNs - bench::NowNs()) / 1000000;
    if (left_ms <= 0) break;
    attempts++;
    last = bench::Say(stub, "first-rpc", left_ms);
    if (last.ok()) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "ok=1 us=%.1f attempts=%d", (bench::NowNs() - t0) / 1e3, attempts);
      return buf;
    }
  }
  return "ok=0 us=- attempts=" + std::to_string(attempts) + " error=" + bench::Describe(last);
}

// Reads the child's one-line result from `fd`, waiting at most `ms`.
std::string ReadResult(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  if (poll(&p, 1, ms) <= 0) return "";
  char buf[512];
  ssize_t n = read(fd, buf, sizeof buf - 1);
  return n > 0 ? std::string(buf, n) : "";
}

}  // namespace

int main(int argc, char** argv) {
  std::string mode = argc == 3 ? argv[2] : "";
  if (mode != "inherited" && mode != "new-in-child" && mode != "never-forked") {
    std::fprintf(stderr, "usage: first-rpc TARGET inherited|new-in-child|never-forked\n");
    return 2;
  }
  const std::string target = argv[1];

  if (mode == "never-forked") {
    // Warm gRPC up on a channel whose argument keeps its connection apart.
    auto warm = bench::Echo::NewStub(bench::NewChannel(target, 0));
    grpc::Status s = bench::Say(warm.get(), "first-rpc-warmup", 2000);
    if (!s.ok()) {
      std::fprintf(stderr, "first-rpc: warm-up RPC failed: %s\n", bench::Describe(s).c_str());
      return 1;
    }
    int64_t t0 = bench::NowNs();
    auto stub = bench::Echo::NewStub(bench::NewChannel(target));
    std::string r = TimeFirstSuccess(stub.get(), t0);
    std::printf("mode=%s %s child_running_us=- parent_after=-\n", mode.c_str(), r.c_str());
    return r.compare(0, 4, "ok=1") == 0 ? 0 : 1;
  }

  // An ordinary parent: one plain channel, used once before the fork.
  auto stub = bench::Echo::NewStub(bench::NewChannel(target));
  grpc::Status s = bench::Say(stub.get(), "first-rpc-parent", 2000);
  if (!s.ok()) {
    std::fprintf(stderr, "first-rpc: parent's RPC failed: %s\n", bench::Describe(s).c_str());
    return 1;
  }
  int fds[2];
  if (pipe(fds) != 0) return 1;
  std::fflush(stdout);

  int64_t t0 = bench::NowNs();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("first-rpc: fork");
    return 1;
  }
  if (pid == 0) {
    // When fork() returns here, the fork handlers (the shim's and gRPC's) have
    // run in the child: this splits "us" into fork() itself and what follows.
    int64_t t_child = bench::NowNs();
    close(fds[0]);
    std::string r;
    if (mode == "inherited") {
      r = TimeFirstSuccess(stub.get(), t0);
    } else {
      auto fresh = bench::Echo::NewStub(bench::NewChannel(target));
      r = TimeFirstSuccess(fresh.get(), t0);
    }
    char running[64];
    std::snprintf(running, sizeof running, " child_running_us=%.1f", (t_child - t0) / 1e3);
    r += running;
    if (write(fds[1], r.data(), r.size()) < 0) _exit(3);
    _exit(0);
  }
  close(fds[1]);

  // The child's budget is 2 s; give it 2 s more before calling it hung.
  std::string r = ReadResult(fds[0], 4000);
  if (r.empty()) {
    r = "ok=0 us=- attempts=? error=child_hung_or_died_without_a_result";
    kill(pid, SIGKILL);
  }
  int status;
  waitpid(pid, &status, 0);
  bool parent_ok = bench::Say(stub.get(), "first-rpc-parent-after", 1000).ok();
  std::printf("mode=%s %s parent_after=%s\n", mode.c_str(), r.c_str(), parent_ok ? "ok" : "failed");
  return r.compare(0, 4, "ok=1") == 0 && parent_ok ? 0 : 1;
}
