// An ordinary grpc++ client that forks, written the way an application would
// write it: it knows nothing of grpc-forksafe.
//
//   1. the parent creates a channel and a stub and makes one RPC;
//   2. it forks; the child opens a *new* channel to the same target, makes a
//      few RPCs and exits;
//   3. once the child has exited, the parent makes the same number of RPCs on
//      its original stub.
//
// Stock gRPC 1.51 lets the child's new channel share the parent's TCP
// connection, and from then on the parent's channel is dead (its RPCs run
// into their deadline). With LD_PRELOAD=build/libgrpc_forksafe.so every RPC
// succeeds.
//
// Usage: fork-demo TARGET [--rpcs N]     (e.g. fork-demo 127.0.0.1:50051)
// Prints one line per RPC and exits 0 only if every RPC succeeded in both
// processes.

#include <poll.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "status_name.h"

using forksafe::echo::Echo;
using forksafe::echo::SayReply;
using forksafe::echo::SayRequest;

namespace {

constexpr int kDeadlineSeconds = 2;

// The child makes its RPCs with a 2 s deadline each; anything much longer
// means it hangs outside an RPC, and the parent stops waiting.
constexpr int kChildGraceSeconds = 5;

struct Counts {
  int ok = 0;
  int total = 0;
};


// Makes one RPC and prints the outcome as one line, e.g.
//   parent (pid 812): RPC 1 before fork, original channel ........ ok  1.9 ms  (server saw ipv4:127.0.0.1:40162)
bool Say(Echo::Stub* stub, const char* role, const std::string& what, Counts* counts) {
  SayRequest req;
  req.set_pid(getpid());
  req.set_tag(std::string(role) + ": " + what);
  SayReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(kDeadlineSeconds));

  auto start = std::chrono::steady_clock::now();
  grpc::Status status = stub->Say(&ctx, req, &reply);
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  counts->total++;
  char head[160];
  std::snprintf(head, sizeof head, "%-6s (pid %d): %s", role, (int)getpid(), what.c_str());
  if (status.ok()) {
    counts->ok++;
    std::printf("%-62s ok      %7.1f ms  (server saw %s)\n", head, ms, reply.peer().c_str());
  } else {
    std::printf("%-62s FAILED  %7.1f ms  %s: %s\n", head, ms,
                CodeName(status.error_code()),
                status.error_message().c_str());
  }
  return status.ok();
}

std::shared_ptr<grpc::Channel> NewChannel(const std::string& target) {
  return grpc::CreateChannel(target, grpc::InsecureChannelCredentials());
}

// The child: a new channel to the same target, `rpcs` RPCs, then exit status
// 0 only if all of them succeeded.
int RunChild(const std::string& target, int rpcs) {
  auto stub = Echo::NewStub(NewChannel(target));
  Counts counts;
  for (int i = 1; i <= rpcs; i++)
    Say(stub.get(), "child", "RPC " + std::to_string(i) + " on a new channel", &counts);
  std::printf("child  (pid %d): %d of %d RPCs succeeded\n", (int)getpid(), counts.ok, counts.total);
  return counts.ok == counts.total ? 0 : 1;
}

// Waits up to kChildGraceSeconds past the child's RPC deadlines for it to
// exit; kills it if it does not. Returns true if it exited with status 0.
bool WaitForChild(pid_t child, int rpcs) {
  int budget_ms = (rpcs * kDeadlineSeconds + kChildGraceSeconds) * 1000;
  int status = 0;
  for (int waited = 0; waited < budget_ms; waited += 10) {
    pid_t r = waitpid(child, &status, WNOHANG);
    if (r == child) {
      if (WIFEXITED(status)) {
        std::printf("parent (pid %d): child %d exited with status %d\n", (int)getpid(), (int)child,
                    WEXITSTATUS(status));
        return WEXITSTATUS(status) == 0;
      }
      std::printf("parent (pid %d): child %d was killed by signal %d\n", (int)getpid(), (int)child,
                  WTERMSIG(status));
      return false;
    }
    poll(nullptr, 0, 10);
  }
  std::printf("parent (pid %d): child %d still running after %d s; killing it\n", (int)getpid(),
              (int)child, budget_ms / 1000);
  kill(child, SIGKILL);
  waitpid(child, &status, 0);
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || argv[1][0] == '-') {
    std::fprintf(stderr, "usage: fork-demo TARGET [--rpcs N]\n");
    return 2;
  }
  std::string target = argv[1];
  int rpcs = 3;
  if (argc == 4 && std::string(argv[2]) == "--rpcs") rpcs = std::atoi(argv[3]);
  if (rpcs < 1 || (argc != 2 && argc != 4)) {
    std::fprintf(stderr, "usage: fork-demo TARGET [--rpcs N]\n");
    return 2;
  }
  // Line-buffered even into a pipe, so parent and child lines interleave in
  // the order they happen and nothing buffered is duplicated by fork().
  setvbuf(stdout, nullptr, _IOLBF, 0);

  auto channel = NewChannel(target);
  auto stub = Echo::NewStub(channel);
  Counts parent;
  Say(stub.get(), "parent", "RPC 1 before fork", &parent);

  std::fflush(stdout);
  pid_t child = fork();
  if (child < 0) {
    std::perror("fork");
    return 1;
  }
  if (child == 0) {
    int code = RunChild(target, rpcs);
    std::fflush(stdout);
    // _exit, the usual way out of a forked child: the parent's atexit
    // handlers and static destructors are not the child's to run.
    _exit(code);
  }

  bool child_ok = WaitForChild(child, rpcs);
  for (int i = 2; i <= rpcs + 1; i++)
    Say(stub.get(), "parent", "RPC " + std::to_string(i) + " after fork, original channel", &parent);
  std::printf("parent (pid %d): %d of %d RPCs succeeded\n", (int)getpid(), parent.ok, parent.total);
  return parent.ok == parent.total && child_ok ? 0 : 1;
}
