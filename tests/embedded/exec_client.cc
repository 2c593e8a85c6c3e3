// exec-client: a grpc++ client that, with a live channel, starts another
// program (fd-lister) in every way a program can: posix_spawn, vfork and
// execv, fork and execv, system(), popen(); then starts it with posix_spawn
// and system() from inside a forked child. The started program lists the
// descriptors it inherited: gRPC's must not be among them. It knows nothing
// of any preload shim; the same source is built against libgrpc.so and with
// libgrpc.a compiled in.
//
// Usage: exec-client --target HOST:PORT --lister PATH [--run ID] [--deadline-ms N]
//                    [--attempt-ms N] [--child-grpc new-channel|none]
//   --child-grpc  what the forked child does with gRPC before it starts the
//                 lister: calls on a channel of its own (new-channel, the
//                 default), or nothing (none). A child of a program with
//                 gRPC compiled in must not use gRPC: gRPC's own threads are
//                 not there in it, and nothing restarts them.
// Lines: the lister's own ("<run>:<how> fd N -> ...", see fd_lister.c), this
// process's descriptors before it starts the lister ("<run>:self fd N -> ..."),
// the controls ("<run>:controls: file=N socket=N handler-socket=N",
// "<run>:control <name> fd=N cloexec=0|1"), per call as in client.h and
// bounded.h, and "RESULT pid=<pid> exec: ok|FAIL ...".

#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "bounded.h"
#include "client.h"
#include "fdtable.h"

extern char** environ;

namespace {

struct Controls {
  int file = -1;            // open() without O_CLOEXEC
  int socket = -1;          // socket() without SOCK_CLOEXEC, in a plain function
  int handler_socket = -1;  // the same, in a function that takes a gRPC type
  std::string Args() const {
    return std::to_string(file) + " " + std::to_string(socket) + " " +
           std::to_string(handler_socket);
  }
};

// A socket of the program's own, opened where nothing names gRPC. The
// compiler barrier keeps the call from becoming a tail call, so socket() is
// called from inside this function, as in any real program.
__attribute__((noinline)) int ProgramSocket() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  asm volatile("" ::: "memory");
  return fd;
}

// The same, from a function whose signature names a gRPC type, as a service
// handler's does (Service::Say(grpc::ServerContext*, ...)) when the handler
// opens a connection of its own. It is still the program's descriptor.
__attribute__((noinline)) int HandlerSocket(grpc::ServerContext* /*unused*/) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  asm volatile("" ::: "memory");
  return fd;
}

Controls OpenControls(const fc::Options& o) {
  Controls c;
  c.file = open("/dev/null", O_RDONLY);
  c.socket = ProgramSocket();
  c.handler_socket = HandlerSocket(nullptr);
  if (c.file < 0 || c.socket < 0 || c.handler_socket < 0)
    fc::Fail(o.run + ":controls: cannot open them: " + std::strerror(errno));
  std::printf("%s pid=%d %s:controls: file=%d socket=%d handler-socket=%d\n", fc::Role().c_str(),
              getpid(), o.run.c_str(), c.file, c.socket, c.handler_socket);
  const std::pair<const char*, int> each[] = {
      {"file", c.file}, {"socket", c.socket}, {"handler-socket", c.handler_socket}};
  for (const auto& e : each)
    std::printf("%s pid=%d %s:control %s fd=%d cloexec=%d\n", fc::Role().c_str(), getpid(),
                o.run.c_str(), e.first, e.second, (fcntl(e.second, F_GETFD) & FD_CLOEXEC) != 0);
  return c;
}

// In a forked child: the controls are the program's, and a fork must leave
// them as they were, the same objects on the same numbers. Prints
// "child pid=N <run>:controls-in-child: file same, socket same, ..." with
// "REPLACED (was -> is)" for any that is not.
void ControlsInChild(const Controls& c, const std::map<int, std::string>& parent,
                     const fc::Options& o) {
  const std::map<int, std::string> now = emb::FdIdentities();
  const std::pair<const char*, int> each[] = {
      {"file", c.file}, {"socket", c.socket}, {"handler-socket", c.handler_socket}};
  std::string report;
  for (const auto& e : each) {
    auto was = parent.find(e.second), is = now.find(e.second);
    std::string w = was == parent.end() ? "none" : was->second;
    std::string i = is == now.end() ? "none" : is->second;
    report += std::string(report.empty() ? "" : ", ") + e.first +
              (w == i ? " same" : " REPLACED (" + w + " -> " + i + ")");
  }
  std::printf("child pid=%d %s:controls-in-child: %s\n", getpid(), o.run.c_str(), report.c_str());
}

struct Lister {
  std::string path;
  const Controls* controls;
  // argv for the lister, labelled "<run>:<how>".
  std::vector<std::string> Argv(const std::string& label) const {
    return {path, label, std::to_string(controls->file), std::to_string(controls->socket),
            std::to_string(controls->handler_socket)};
  }
  std::string Command(const std::string& label) const {
    return "'" + path + "' " + label + " " + controls->Args();
  }
};

std::vector<char*> CArgv(std::vector<std::string>& args) {
  std::vector<char*> out;
  for (auto& a : args) out.push_back(&a[0]);
  out.push_back(nullptr);
  return out;
}

bool Reap(pid_t pid, const std::string& how) {
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0) return true;
  fc::Fail(how + ": the lister " + fc::DescribeStatus(status));
  return false;
}

void ViaPosixSpawn(const Lister& l, const std::string& label) {
  auto args = l.Argv(label);
  auto argv = CArgv(args);
  pid_t pid;
  int rc = posix_spawn(&pid, l.path.c_str(), nullptr, nullptr, argv.data(), environ);
  if (rc != 0) fc::Fail(label + ": posix_spawn: " + std::strerror(rc));
  else Reap(pid, label);
}

void ViaVfork(const Lister& l, const std::string& label) {
  auto args = l.Argv(label);
  auto argv = CArgv(args);
  pid_t pid = vfork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) fc::Fail(label + ": vfork: " + std::strerror(errno));
  else Reap(pid, label);
}

void ViaFork(const Lister& l, const std::string& label) {
  auto args = l.Argv(label);
  auto argv = CArgv(args);
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv.data());
    _exit(127);
  }
  if (pid < 0) fc::Fail(label + ": fork: " + std::strerror(errno));
  else Reap(pid, label);
}

void ViaSystem(const Lister& l, const std::string& label) {
  int status = std::system(l.Command(label).c_str());
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fc::Fail(label + ": system(): " + fc::DescribeStatus(status));
}

void ViaPopen(const Lister& l, const std::string& label) {
  FILE* f = popen(l.Command(label).c_str(), "r");
  if (f == nullptr) {
    fc::Fail(label + ": popen: " + std::strerror(errno));
    return;
  }
  char line[PATH_MAX + 128];
  while (std::fgets(line, sizeof line, f) != nullptr) std::fputs(line, stdout);
  int status = pclose(f);
  if (status == -1 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
    fc::Fail(label + ": popen: " + fc::DescribeStatus(status));
}

// Every way to start the lister, each preceded by this process's own list.
void StartListers(const Lister& l, const fc::Options& o, const std::string& prefix,
                  bool all_ways) {
  std::fflush(stdout);  // the listers write to the same file
  emb::PrintFds(o.run + ":" + prefix + "self");
  ViaPosixSpawn(l, o.run + ":" + prefix + "posix_spawn");
  ViaSystem(l, o.run + ":" + prefix + "system");
  if (!all_ways) return;
  ViaVfork(l, o.run + ":" + prefix + "vfork");
  ViaFork(l, o.run + ":" + prefix + "fork");
  ViaPopen(l, o.run + ":" + prefix + "popen");
}

int Usage() {
  std::fprintf(stderr,
               "usage: exec-client --target HOST:PORT --lister PATH [--run ID] [--deadline-ms N]\n"
               "                   [--attempt-ms N] [--child-grpc new-channel|none]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Descriptors this process was started with (a job server's pipe, a CI
  // runner's log) would show up in every listing as if leaked here: the test
  // starts from 0, 1 and 2 alone.
  close_range(3, ~0U, 0);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::signal(SIGPIPE, SIG_IGN);
  fc::Options o;
  o.run = "exec";
  Lister lister;
  int attempt_ms = 500;
  bool child_grpc = true;
  for (int i = 1; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--target") o.target = v;
    else if (a == "--lister") lister.path = v;
    else if (a == "--run") o.run = v;
    else if (a == "--deadline-ms") o.deadline_ms = std::atoi(v.c_str());
    else if (a == "--attempt-ms") attempt_ms = std::atoi(v.c_str());
    else if (a == "--child-grpc" && (v == "new-channel" || v == "none")) child_grpc = v == "new-channel";
    else return Usage();
  }
  if (o.target.empty() || lister.path.empty() || o.deadline_ms <= 0 || attempt_ms <= 0)
    return Usage();

  // A live channel: after a call, gRPC holds its connection, epoll sets and
  // eventfds.
  auto stub = fc::NewStub(o);
  fc::Say(*stub, o, "parent-before");
  const Controls controls = OpenControls(o);
  lister.controls = &controls;
  StartListers(lister, o, "", true);

  // A forked child starts the lister too; where its gRPC is usable, after
  // using it.
  fc::Options child = o;
  child.deadline_ms = attempt_ms;
  const int tries = 4, bound_ms = tries * attempt_ms + 1500;
  const std::map<int, std::string> before = emb::FdIdentities();
  pid_t pid = fc::ForkChild(
      [&] {
        ControlsInChild(controls, before, o);
        if (child_grpc && !emb::RunBounded(
                [&] {
                  auto fresh = fc::NewStub(child);
                  emb::AttemptUntilOk(*fresh, child, "child-new", tries);
                },
                bound_ms))
          fc::Fail(o.run + ":child-grpc: still inside gRPC after " + std::to_string(bound_ms) +
                   " ms, every deadline long past: hung");
        StartListers(lister, o, "child-", false);
        return 0;
      },
      fc::ChildExit::kUnderscoreExit);
  emb::WaitChildWithin(pid, "child", bound_ms + 5000);
  fc::Say(*stub, o, "parent-after");

  int failures = fc::Failures();
  if (failures == 0)
    std::printf("RESULT pid=%d exec: ok\n", getpid());
  else
    std::printf("RESULT pid=%d exec: FAIL (%d failed calls or checks)\n", getpid(), failures);
  return failures == 0 ? 0 : 1;
}
