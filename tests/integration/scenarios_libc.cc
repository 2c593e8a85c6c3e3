// Scenarios in which new processes come from exec, posix_spawn, or a fork that
// happens inside libc (daemon, forkpty) rather than in the program.

#include <pty.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "scenarios.h"

extern char** environ;

namespace fc {
namespace {

// argv for a copy of this program that makes one RPC and exits 0 only if it
// succeeded: the exit status carries the new program's verdict.
std::vector<std::string> SelfArgs(const Options& o, const std::string& mode,
                                  const std::string& role, const std::string& tag) {
  return {o.self,  mode,  "--target", o.target, "--run", o.run, "--role", role,
          "--tag", tag, "--deadline-ms", std::to_string(o.deadline_ms)};
}

std::vector<char*> Argv(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  return argv;
}

pid_t Spawn(std::vector<std::string> args) {
  std::vector<char*> argv = Argv(args);
  pid_t pid = -1;
  int err = posix_spawn(&pid, argv[0], nullptr, nullptr, argv.data(), environ);
  if (err != 0) {
    Fail("posix_spawn " + args[0] + ": " + std::strerror(err));
    return -1;
  }
  return pid;
}

// Runs in a forked child: replaces it with args, or reports why not.
int Exec(std::vector<std::string> args) {
  std::vector<char*> argv = Argv(args);
  execv(argv[0], argv.data());
  Fail("exec " + args[0] + ": " + std::strerror(errno));
  return 127;
}

// Copies what the child writes on its terminal to stdout, line by line, until
// the child's side of the terminal is closed (read fails with EIO).
void RelayPty(int master) {
  std::string pending;
  char buf[4096];
  for (;;) {
    ssize_t n = read(master, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    pending.append(buf, static_cast<size_t>(n));
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      std::string line = pending.substr(0, nl);
      if (!line.empty() && line.back() == '\r') line.pop_back();  // the terminal's \r\n
      std::printf("pty| %s\n", line.c_str());
      pending.erase(0, nl + 1);
    }
  }
  if (!pending.empty()) std::printf("pty| %s\n", pending.c_str());
}

}  // namespace

int OneRpc(const Options& o, const std::string& tag) {
  auto stub = NewStub(o);
  return Say(*stub, o, tag) ? 0 : 1;
}

// The child execs, once a program unrelated to gRPC and once a copy of this
// program that makes an RPC of its own.
int ForkExec(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([] { return Exec({"/bin/true"}); }, ChildExit::kUnderscoreExit);
  WaitChild(pid, "exec'd /bin/true");
  pid = ForkChild([&] { return Exec(SelfArgs(o, "rpc", "exec", "exec-1")); },
                  ChildExit::kUnderscoreExit);
  WaitChild(pid, "exec'd fork-client rpc");
  ParentAfter(*stub, o);
  return 0;
}

// posix_spawn while the parent's channel is connected.
int PosixSpawn(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  WaitChild(Spawn({"/bin/true"}), "spawned /bin/true");
  WaitChild(Spawn(SelfArgs(o, "rpc", "spawned", "spawn-1")), "spawned fork-client rpc");
  ParentAfter(*stub, o);
  return 0;
}

// daemon() ends the process that calls it, so the gRPC user that calls it is
// a spawned copy of this program ("daemon-worker"). This process uses no gRPC:
// it adopts the daemon as a child subreaper, so that it can check how the
// daemon exited.
int Daemon(const Options& o) {
  SetRole("supervisor");
  if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
    Fail(std::string("prctl(PR_SET_CHILD_SUBREAPER): ") + std::strerror(errno));
    return 1;
  }
  WaitChild(Spawn(SelfArgs(o, "daemon-worker", "parent", "-")), "daemon-worker (leaves in daemon())");
  // The worker's exit reparented the daemon to this process before the worker
  // could be reaped, so the daemon is now the only child left.
  int status = 0;
  pid_t pid;
  do pid = waitpid(-1, &status, 0);
  while (pid < 0 && errno == EINTR);
  if (pid < 0) {
    Fail(std::string("no daemon to reap: ") + std::strerror(errno));
    return 1;
  }
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  std::printf("supervisor pid=%d daemon %d %s: %s\n", getpid(), pid, DescribeStatus(status).c_str(),
              ok ? "ok" : "FAIL");
  return ok ? 0 : 1;
}

int DaemonWorker(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::fflush(stdout);
  std::fflush(stderr);
  // Keep the working directory and stdio, so the daemon still reports.
  if (daemon(1, 1) != 0) {
    Fail(std::string("daemon: ") + std::strerror(errno));
    return 1;
  }
  // Only the daemon gets here. It keeps the worker's failure count: the
  // worker itself always exits 0, inside daemon().
  SetRole("child");
  for (int i = 1; i <= 3; i++) Say(*stub, o, "child-" + std::to_string(i));
  return 0;
}

// forkpty(): the child's stdio is a new terminal, whose output the parent relays.
int ForkPty(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::fflush(stdout);
  std::fflush(stderr);
  int master = -1;
  pid_t pid = forkpty(&master, nullptr, nullptr, nullptr);
  if (pid < 0) {
    Fail(std::string("forkpty: ") + std::strerror(errno));
    return 1;
  }
  if (pid == 0) {
    BecomeChild();
    for (int i = 1; i <= 3; i++) Say(*stub, o, "child-" + std::to_string(i));
    std::fflush(stdout);
    std::exit(Failures() == 0 ? 0 : 1);
  }
  RelayPty(master);
  close(master);
  WaitChild(pid, "forkpty child");
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
