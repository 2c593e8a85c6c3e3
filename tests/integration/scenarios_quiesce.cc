// held-in-grpc: fork() while another thread is held inside gRPC where no
// completion queue can wake it: in a call-credentials plugin that gRPC runs
// on the calling thread (IsBlocking() false), in the middle of
// grpc_call_start_batch. The plugin waits until the main thread lets it go,
// after the fork. run.sh runs this with a short GRPC_FORKSAFE_QUIESCE_MS: the
// fork must give up waiting for the thread after that long and go ahead,
// and neither process may hang. The child does not use gRPC; the parent's
// held call completes (with the plugin's metadata) once let go, and its later
// RPCs succeed.
//
// Prints "parent pid=P RUN:fork: fork() returned in the parent after N ms".

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>

#include "scenarios.h"

namespace fc {
namespace {

const char kToken[] = "Bearer held-in-grpc";

struct Hold {
  std::mutex mu;
  std::condition_variable cv;
  bool entered = false;
  bool released = false;
  int entered_fd = -1;  // one byte when the first call is held
};

// Holds the first call it sees until released; later calls pass at once.
class HoldingPlugin : public grpc::MetadataCredentialsPlugin {
 public:
  explicit HoldingPlugin(std::shared_ptr<Hold> hold) : hold_(std::move(hold)) {}
  bool IsBlocking() const override { return false; }  // runs on the calling thread
  grpc::Status GetMetadata(grpc::string_ref, grpc::string_ref, const grpc::AuthContext&,
                           std::multimap<grpc::string, grpc::string>* metadata) override {
    std::unique_lock<std::mutex> lock(hold_->mu);
    if (!hold_->entered) {
      hold_->entered = true;
      SendTurn(hold_->entered_fd);
      hold_->cv.wait(lock, [&] { return hold_->released; });
    }
    metadata->insert(std::make_pair("authorization", kToken));
    return grpc::Status::OK;
  }

 private:
  std::shared_ptr<Hold> hold_;
};

}  // namespace

int HeldInGrpc(const Options& o) {
  int entered[2];
  if (pipe(entered) != 0) {
    Fail(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  auto hold = std::make_shared<Hold>();
  hold->entered_fd = entered[1];
  // The channel is plaintext: the plugin's credentials must be allowed on it.
  Expect held;
  held.call_creds = grpc::experimental::MetadataCredentialsFromPlugin(
      std::unique_ptr<grpc::MetadataCredentialsPlugin>(new HoldingPlugin(hold)),
      GRPC_SECURITY_NONE);
  held.check = [](const Reply& r) -> std::string {
    return r.authorization() == kToken ? "" : "the server saw authorization \"" +
                                                  r.authorization() + "\", not the plugin's";
  };

  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::thread caller([&] { SayExpect(*stub, o, "parent-held", held); });
  AwaitTurn(entered[0]);

  // The caller is now inside grpc_call_start_batch, in the plugin.
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ForkChild([] { return 0; });
  auto fork_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0).count();
  std::printf("%s pid=%d %s:fork: fork() returned in the parent after %lld ms\n", Role().c_str(),
              getpid(), o.run.c_str(), static_cast<long long>(fork_ms));
  {
    std::lock_guard<std::mutex> lock(hold->mu);
    hold->released = true;
    hold->cv.notify_all();
  }
  WaitChild(pid, "child");
  caller.join();
  close(entered[0]);
  close(entered[1]);
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
