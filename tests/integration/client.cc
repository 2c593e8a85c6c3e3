// RPC, fork and wait helpers shared by every fork-client scenario.

#include "client.h"

#include "status_name.h"

#include <dirent.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>

#include <grpcpp/grpcpp.h>

namespace fc {
namespace {

std::string g_role = "parent";
std::atomic<int> g_failures{0};  // a scenario may call from two threads

}  // namespace

void SetRole(const std::string& role) { g_role = role; }

const std::string& Role() { return g_role; }

void BecomeChild() {
  g_role = "child";
  g_failures = 0;
}

int Failures() { return g_failures; }

void Fail(const std::string& what) {
  g_failures++;
  std::printf("%s pid=%d FAIL %s\n", g_role.c_str(), getpid(), what.c_str());
}

std::unique_ptr<Stub> NewStub(const Options& o, int index) {
  grpc::ChannelArguments args;
  if (index >= 0) args.SetInt("forksafe.test.index", index);
  return forksafe::echo::Echo::NewStub(
      grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));
}

namespace {

long long MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

forksafe::echo::SayRequest Request(const std::string& full_tag, const Expect& expect) {
  forksafe::echo::SayRequest req;
  req.set_pid(getpid());
  req.set_tag(full_tag);
  req.set_payload(expect.payload.empty() ? full_tag : expect.payload);
  return req;
}

// Judges a finished call against `expect` and prints its line.
bool Report(const std::string& full_tag, const forksafe::echo::SayRequest& req,
            const grpc::Status& st, const Reply& reply, const Expect& expect,
            bool quiet = false) {
  const char* role = g_role.c_str();
  bool ok = false;
  if (st.error_code() != expect.code) {
    if (expect.code == grpc::StatusCode::OK) {
      std::printf("%s pid=%d %s: FAIL %s(%d) \"%s\"\n", role, getpid(), full_tag.c_str(),
                  CodeName(st.error_code()), static_cast<int>(st.error_code()),
                  st.error_message().c_str());
    } else {
      std::printf("%s pid=%d %s: FAIL %s(%d) \"%s\", expected %s peer=%s\n", role, getpid(),
                  full_tag.c_str(), CodeName(st.error_code()), static_cast<int>(st.error_code()),
                  st.error_message().c_str(), CodeName(expect.code), reply.peer().c_str());
    }
  } else if (!st.ok()) {
    std::printf("%s pid=%d %s: ok, failed as expected %s(%d) \"%s\"\n", role, getpid(),
                full_tag.c_str(), CodeName(st.error_code()), static_cast<int>(st.error_code()),
                st.error_message().c_str());
    ok = true;
  } else if (reply.tag() != full_tag || reply.payload() != req.payload()) {
    // A reply meant for another call: two processes are reading one connection.
    std::printf("%s pid=%d %s: FAIL reply for another call (tag %s) peer=%s\n", role, getpid(),
                full_tag.c_str(), reply.tag().c_str(), reply.peer().c_str());
  } else {
    std::string wrong = expect.check ? expect.check(reply) : std::string();
    if (wrong.empty()) {
      if (!quiet)
        std::printf("%s pid=%d %s: ok peer=%s\n", role, getpid(), full_tag.c_str(),
                    reply.peer().c_str());
      ok = true;
    } else {
      std::printf("%s pid=%d %s: FAIL %s peer=%s\n", role, getpid(), full_tag.c_str(),
                  wrong.c_str(), reply.peer().c_str());
    }
  }
  if (!ok) g_failures++;
  return ok;
}

}  // namespace

forksafe::echo::SayRequest SayRequestFor(const Options& o, const std::string& tag) {
  return Request(o.run + ":" + tag, Expect());
}

bool CheckSay(const forksafe::echo::SayRequest& req, const grpc::Status& st, const Reply& reply,
              bool quiet) {
  return Report(req.tag(), req, st, reply, Expect(), quiet);
}

bool Say(Stub& stub, const Options& o, const std::string& tag) {
  return SayExpect(stub, o, tag, Expect());
}

namespace {

bool SayCall(Stub& stub, const Options& o, const std::string& tag, const Expect& expect,
             Reply* out, bool quiet) {
  const std::string full_tag = o.run + ":" + tag;
  forksafe::echo::SayRequest req = Request(full_tag, expect);
  Reply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  if (expect.call_creds) ctx.set_credentials(expect.call_creds);
  grpc::Status st = stub.Say(&ctx, req, &reply);
  bool ok = Report(full_tag, req, st, reply, expect, quiet);
  if (out != nullptr) *out = reply;
  return ok;
}

}  // namespace

bool SayExpect(Stub& stub, const Options& o, const std::string& tag, const Expect& expect,
               Reply* out) {
  return SayCall(stub, o, tag, expect, out, false);
}

bool SayQuiet(Stub& stub, const Options& o, const std::string& tag) {
  return SayCall(stub, o, tag, Expect(), nullptr, true);
}

bool AsyncSay(Stub& stub, grpc::CompletionQueue& cq, const Options& o, const std::string& tag,
              Reply* out) {
  const std::string full_tag = o.run + ":" + tag;
  Expect expect;
  forksafe::echo::SayRequest req = Request(full_tag, expect);
  Reply reply;
  grpc::Status st;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  auto rpc = stub.PrepareAsyncSay(&ctx, req, &cq);
  rpc->StartCall();
  int done_tag = 0;
  rpc->Finish(&reply, &st, &done_tag);

  // The call's own deadline ends it; the queue gets a margin on top of that.
  auto limit = std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms + 3000);
  void* got = nullptr;
  bool ok = false;
  grpc::CompletionQueue::NextStatus next = cq.AsyncNext(&got, &ok, limit);
  if (next == grpc::CompletionQueue::TIMEOUT) {
    ctx.TryCancel();
    next = cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() + std::chrono::seconds(2));
    if (next == grpc::CompletionQueue::TIMEOUT) {
      std::printf("%s pid=%d %s: FAIL no completion %d ms after the deadline, even cancelled "
                  "(hang)\n",
                  g_role.c_str(), getpid(), full_tag.c_str(), 3000 + 2000);
      std::fflush(stdout);
      _exit(3);
    }
  }
  if (next != grpc::CompletionQueue::GOT_EVENT || got != &done_tag || !ok) {
    std::printf("%s pid=%d %s: FAIL completion queue returned %s (tag %s, ok %d)\n",
                g_role.c_str(), getpid(), full_tag.c_str(),
                next == grpc::CompletionQueue::SHUTDOWN ? "SHUTDOWN"
                : next == grpc::CompletionQueue::TIMEOUT ? "TIMEOUT"
                                                           : "an event",
                got == &done_tag ? "ours" : "another", ok);
    g_failures++;
    return false;
  }
  bool good = Report(full_tag, req, st, reply, expect);
  if (out != nullptr) *out = reply;
  return good;
}

void Attempt(Stub& stub, const Options& o, const std::string& tag) {
  const std::string full_tag = o.run + ":" + tag;
  forksafe::echo::SayRequest req = Request(full_tag, Expect());
  Reply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  auto start = std::chrono::steady_clock::now();
  grpc::Status st = stub.Say(&ctx, req, &reply);
  long long ms = MillisSince(start);
  if (st.ok()) {
    std::printf("%s pid=%d %s: attempt OK in %lld ms peer=%s\n", g_role.c_str(), getpid(),
                full_tag.c_str(), ms, reply.peer().c_str());
  } else {
    std::printf("%s pid=%d %s: attempt %s(%d) \"%s\" in %lld ms\n", g_role.c_str(), getpid(),
                full_tag.c_str(), CodeName(st.error_code()), static_cast<int>(st.error_code()),
                st.error_message().c_str(), ms);
  }
}

bool DrainQueue(grpc::CompletionQueue& cq, const std::string& what) {
  cq.Shutdown();
  auto limit = std::chrono::system_clock::now() + std::chrono::seconds(5);
  void* got;
  bool ok;
  for (;;) {
    grpc::CompletionQueue::NextStatus next = cq.AsyncNext(&got, &ok, limit);
    if (next == grpc::CompletionQueue::SHUTDOWN) return true;
    if (next == grpc::CompletionQueue::TIMEOUT) {
      Fail(what + ": did not drain within 5 s of its shutdown");
      return false;
    }
  }
}

int PortOf(const std::string& address) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return -1;
  char* end = nullptr;
  long port = std::strtol(address.c_str() + colon + 1, &end, 10);
  return *end == '\0' && port > 0 && port < 65536 ? static_cast<int>(port) : -1;
}

std::vector<int> OwnConnections(int remote_port) {
  // Inodes of the sockets this process holds.
  std::set<unsigned long> inodes;
  if (DIR* dir = opendir("/proc/self/fd")) {
    while (struct dirent* e = readdir(dir)) {
      char link[PATH_MAX], path[300];
      std::snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
      ssize_t n = readlink(path, link, sizeof link - 1);
      if (n <= 0) continue;
      link[n] = '\0';
      unsigned long inode;
      if (std::sscanf(link, "socket:[%lu]", &inode) == 1) inodes.insert(inode);
    }
    closedir(dir);
  }
  // Their TCP connections to remote_port: "sl local rem st ... uid timeout inode".
  std::vector<int> ports;
  for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    FILE* f = std::fopen(table, "r");
    if (f == nullptr) continue;
    char line[512];
    if (std::fgets(line, sizeof line, f) == nullptr) {  // the header
      std::fclose(f);
      continue;
    }
    while (std::fgets(line, sizeof line, f) != nullptr) {
      char local[64], remote[64];
      unsigned st;
      unsigned long inode;
      if (std::sscanf(line, "%*s %63s %63s %x %*s %*s %*s %*s %*s %lu", local, remote, &st,
                      &inode) != 4)
        continue;
      const char* lp = std::strrchr(local, ':');
      const char* rp = std::strrchr(remote, ':');
      if (lp == nullptr || rp == nullptr || st != 1 /* ESTABLISHED */) continue;
      if (std::strtol(rp + 1, nullptr, 16) != remote_port || inodes.count(inode) == 0) continue;
      ports.push_back(static_cast<int>(std::strtol(lp + 1, nullptr, 16)));
    }
    std::fclose(f);
  }
  std::sort(ports.begin(), ports.end());
  return ports;
}

std::string PortList(const std::vector<int>& ports) {
  std::string s = "[";
  for (size_t i = 0; i < ports.size(); i++) s += (i ? " " : "") + std::to_string(ports[i]);
  return s + "]";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  if (in) text << in.rdbuf();
  return text.str();
}

pid_t ForkChild(const std::function<int()>& body, ChildExit how) {
  // Unflushed output would otherwise be written twice, once by each process.
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    Fail(std::string("fork: ") + std::strerror(errno));
    return -1;
  }
  if (pid > 0) return pid;

  BecomeChild();
  int status = body() != 0 || g_failures > 0 ? 1 : 0;
  std::fflush(stdout);
  if (how == ChildExit::kUnderscoreExit) _exit(status);
  std::exit(status);
}

bool SendTurn(int fd) {
  char c = 't';
  ssize_t n;
  do n = write(fd, &c, 1);
  while (n < 0 && errno == EINTR);
  return n == 1;
}

bool AwaitTurn(int fd) {
  char c;
  ssize_t n;
  do n = read(fd, &c, 1);
  while (n < 0 && errno == EINTR);
  return n == 1;
}

void Gate::Arrive() {
  std::lock_guard<std::mutex> lock(mu_);
  count_++;
  cv_.notify_all();
}

bool Gate::WaitFor(int n, int timeout_ms) {
  std::unique_lock<std::mutex> lock(mu_);
  return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return count_ >= n; });
}

pid_t ThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

bool AwaitBlocked(pid_t tid, int timeout_ms) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    // "tid (comm) S ...": the state follows the last ')'.
    std::string stat = ReadFile(path);
    size_t paren = stat.rfind(')');
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'S')
      return true;
    usleep(100);
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

std::string DescribeStatus(int status) {
  char buf[64];
  if (WIFEXITED(status))
    std::snprintf(buf, sizeof buf, "exited %d", WEXITSTATUS(status));
  else if (WIFSIGNALED(status))
    std::snprintf(buf, sizeof buf, "killed by signal %d", WTERMSIG(status));
  else
    std::snprintf(buf, sizeof buf, "status 0x%x", status);
  return buf;
}

bool WaitChild(pid_t pid, const std::string& what, int want_status) {
  if (pid <= 0) return false;
  int status = 0;
  pid_t r;
  do r = waitpid(pid, &status, 0);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    Fail("waitpid " + what + ": " + std::strerror(errno));
    return false;
  }
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == want_status;
  std::printf("%s pid=%d %s %d %s: %s\n", g_role.c_str(), getpid(), what.c_str(), pid,
              DescribeStatus(status).c_str(), ok ? "ok" : "FAIL");
  if (!ok) g_failures++;
  return ok;
}

bool WaitChildWithin(pid_t pid, const std::string& what, int timeout_ms, int want_status) {
  if (pid <= 0) return false;
  // A pidfd becomes readable when the process exits: poll() waits for that
  // or for the bound, whichever comes first.
  int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) return WaitChild(pid, what, want_status);  // a kernel without pidfds
  struct pollfd p = {fd, POLLIN, 0};
  int n;
  do n = poll(&p, 1, timeout_ms);
  while (n < 0 && errno == EINTR);
  close(fd);
  if (n == 0) {
    std::printf("%s pid=%d %s %d still running after %d ms (hang): FAIL\n", g_role.c_str(),
                getpid(), what.c_str(), pid, timeout_ms);
    std::fflush(stdout);
    g_failures++;
    kill(pid, SIGKILL);
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return false;
  }
  return WaitChild(pid, what, want_status);
}

}  // namespace fc
