// Bounded gRPC calls and waits, for processes whose gRPC may hang.

#include "bounded.h"

#include "status_name.h"

#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <thread>

namespace emb {

grpc::Status AttemptSay(fc::Stub& stub, const fc::Options& o, const std::string& tag,
                        fc::Reply* reply) {
  const std::string full_tag = o.run + ":" + tag;
  forksafe::echo::SayRequest req;
  req.set_pid(getpid());
  req.set_tag(full_tag);
  req.set_payload(full_tag);
  fc::Reply got;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  auto start = std::chrono::steady_clock::now();
  grpc::Status st = stub.Say(&ctx, req, &got);
  long long ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - start)
                     .count();
  const char* role = fc::Role().c_str();
  if (st.ok() && (got.tag() != full_tag || got.payload() != full_tag)) {
    // A reply meant for another call: two processes are reading one connection.
    st = grpc::Status(grpc::StatusCode::DATA_LOSS, "reply for another call: " + got.tag());
  }
  if (st.ok())
    std::printf("%s pid=%d %s: attempt OK in %lld ms peer=%s\n", role, getpid(), full_tag.c_str(),
                ms, got.peer().c_str());
  else
    std::printf("%s pid=%d %s: attempt %s(%d) \"%s\" in %lld ms\n", role, getpid(),
                full_tag.c_str(), CodeName(st.error_code()), static_cast<int>(st.error_code()),
                st.error_message().c_str(), ms);
  if (reply != nullptr) *reply = got;
  return st;
}

bool AttemptUntilOk(fc::Stub& stub, const fc::Options& o, const std::string& prefix, int tries) {
  const std::string full = o.run + ":" + prefix;
  for (int i = 1; i <= tries; i++) {
    fc::Reply reply;
    if (AttemptSay(stub, o, prefix + "-" + std::to_string(i), &reply).ok()) {
      std::printf("%s pid=%d %s: succeeded at attempt %d of %d peer=%s\n", fc::Role().c_str(),
                  getpid(), full.c_str(), i, tries, reply.peer().c_str());
      return true;
    }
  }
  fc::Fail(full + ": no attempt of " + std::to_string(tries) + " succeeded");
  return false;
}

bool RunBounded(const std::function<void()>& body, int timeout_ms) {
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto state = std::make_shared<State>();
  std::thread([state, body] {
    body();
    std::lock_guard<std::mutex> lock(state->mu);
    state->done = true;
    state->cv.notify_all();
  }).detach();
  std::unique_lock<std::mutex> lock(state->mu);
  return state->cv.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                            [&] { return state->done; });
}

namespace {

// True once pid has exited, false if timeout_ms passed first; the child is
// not reaped. A pidfd becomes readable when its process exits: a wait with
// a timeout, without polling. Where pidfd_open is missing (valgrind's
// memcheck does not know it) the child's state is polled instead.
bool ExitsWithin(pid_t pid, int timeout_ms) {
  int pidfd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  if (pidfd >= 0) {
    struct pollfd p = {pidfd, POLLIN, 0};
    int n;
    do n = poll(&p, 1, timeout_ms);
    while (n < 0 && errno == EINTR);
    close(pidfd);
    return n > 0;
  }
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  do {
    siginfo_t info = {};
    if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
        info.si_pid == pid)
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  } while (std::chrono::steady_clock::now() < end);
  return false;
}

}  // namespace

bool WaitChildWithin(pid_t pid, const std::string& what, int timeout_ms, int want_status,
                     bool* hung_out) {
  if (pid <= 0) return false;
  const bool exited = ExitsWithin(pid, timeout_ms);
  if (hung_out != nullptr) *hung_out = !exited;
  const std::string hung = "hung: killed after " + std::to_string(timeout_ms) + " ms";
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
  }
  if (want_status == kAnyStatus) {
    int status = 0;
    if (exited) waitpid(pid, &status, 0);
    std::printf("%s pid=%d %s %d %s: reported\n", fc::Role().c_str(), getpid(), what.c_str(), pid,
                exited ? fc::DescribeStatus(status).c_str() : hung.c_str());
    return true;
  }
  if (!exited) {
    fc::Fail(what + " " + std::to_string(pid) + " " + hung);
    return false;
  }
  return fc::WaitChild(pid, what, want_status);
}

}  // namespace emb
