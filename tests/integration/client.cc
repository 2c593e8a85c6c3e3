// RPC, fork and wait helpers shared by every fork-client scenario.

#include "client.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <grpcpp/grpcpp.h>

namespace fc {
namespace {

std::string g_role = "parent";
std::atomic<int> g_failures{0};  // a scenario may call from two threads

const char* CodeName(grpc::StatusCode code) {
  // Indexed by grpc::StatusCode, whose values are fixed by the gRPC protocol.
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED",
      "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED",
      "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL",
      "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"};
  unsigned i = static_cast<unsigned>(code);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "?";
}

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

bool Say(Stub& stub, const Options& o, const std::string& tag) {
  const std::string full_tag = o.run + ":" + tag;
  forksafe::echo::SayRequest req;
  req.set_pid(getpid());
  req.set_tag(full_tag);
  req.set_payload(full_tag);
  forksafe::echo::SayReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));

  grpc::Status st = stub.Say(&ctx, req, &reply);
  bool ok = st.ok();
  if (ok && (reply.tag() != full_tag || reply.payload() != full_tag)) {
    // A reply meant for another call: two processes are reading one connection.
    std::printf("%s pid=%d %s: FAIL reply for another call (tag %s) peer=%s\n", g_role.c_str(),
                getpid(), full_tag.c_str(), reply.tag().c_str(), reply.peer().c_str());
    ok = false;
  } else if (ok) {
    std::printf("%s pid=%d %s: ok peer=%s\n", g_role.c_str(), getpid(), full_tag.c_str(),
                reply.peer().c_str());
  } else {
    std::printf("%s pid=%d %s: FAIL %s(%d) \"%s\"\n", g_role.c_str(), getpid(), full_tag.c_str(),
                CodeName(st.error_code()), static_cast<int>(st.error_code()),
                st.error_message().c_str());
  }
  if (!ok) g_failures++;
  return ok;
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

}  // namespace fc
