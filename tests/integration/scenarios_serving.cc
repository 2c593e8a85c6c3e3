// fork() from a process that serves, or whose callbacks keep RPCs going:
// gRPC's own threads (a synchronous server's workers, the threads that run
// callbacks) are busy or waiting in gRPC at every moment.
//
// sync-server, callback-server: the process runs an echo server of its own
// (grpc++ synchronous, or callback API) on a port of 127.0.0.1, calls it and
// the harness's echo server, then forks. fork() must return (the run's
// timeout turns a hang into a failure), and the parent says how long it took.
// Two threads of the parent call its own server nonstop meanwhile, so the
// server's threads are busy at the fork; none of their calls may fail.
// The child calls its parent's server (still served by the parent) on a
// channel of its own, the harness's server on the stub it inherited and on a
// channel of its own. The parent, after the child is gone, calls both again
// and checks that its own server answered every call of both processes.
//
// sync-server-forks: the same server and load, and 10 forks back to back
// (--forks), each child calling its parent's server and the inherited stub
// once: a fork must never find the server's threads still parked from the
// fork before.
//
// callback-chain: 4 chains of callback-API calls, each call started from the
// previous one's completion callback, run on one channel while the main
// thread forks; the child calls on the inherited stub and on a channel of its
// own. Every chained call succeeds, and the chains go on after the fork.

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {
namespace {

using forksafe::echo::Echo;
using forksafe::echo::SayRequest;

const int kChildWaitMs = 15000;  // a child still running then has hung
const int kLoadThreads = 2;      // clients of the parent's own server
const int kLoadMax = 1000000;    // calls per load thread at most

// What both kinds of in-process server do with a call: echo it, and count
// the calls whose tag starts with each role.
class Served {
 public:
  void Fill(grpc::ServerContextBase* ctx, const SayRequest* req, Reply* reply) {
    reply->set_server_pid(getpid());
    reply->set_peer(ctx->peer());
    reply->set_tag(req->tag());
    reply->set_payload(req->payload());
    std::lock_guard<std::mutex> lock(mu_);
    reply->set_seq(++calls_);
    if (req->tag().find(":own-child-") != std::string::npos) child_calls_++;
  }
  int ChildCalls() {
    std::lock_guard<std::mutex> lock(mu_);
    return child_calls_;
  }

 private:
  std::mutex mu_;
  int calls_ = 0;
  int child_calls_ = 0;
};

class SyncEcho final : public Echo::Service {
 public:
  explicit SyncEcho(Served* served) : served_(served) {}
  grpc::Status Say(grpc::ServerContext* ctx, const SayRequest* req, Reply* reply) override {
    served_->Fill(ctx, req, reply);
    return grpc::Status::OK;
  }

 private:
  Served* served_;
};

class CallbackEcho final : public Echo::CallbackService {
 public:
  explicit CallbackEcho(Served* served) : served_(served) {}
  grpc::ServerUnaryReactor* Say(grpc::CallbackServerContext* ctx, const SayRequest* req,
                                Reply* reply) override {
    served_->Fill(ctx, req, reply);
    grpc::ServerUnaryReactor* r = ctx->DefaultReactor();
    r->Finish(grpc::Status::OK);
    return r;
  }

 private:
  Served* served_;
};

long long MsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               t)
      .count();
}

// A stub on a channel to 127.0.0.1:port.
std::unique_ptr<Stub> StubTo(int port) {
  return Echo::NewStub(grpc::CreateChannel("127.0.0.1:" + std::to_string(port),
                                           grpc::InsecureChannelCredentials()));
}

// Forks, timing fork() in the parent, and runs `child` in the child.
pid_t TimedFork(const Options& o, const std::function<int()>& child) {
  auto t = std::chrono::steady_clock::now();
  pid_t pid = ForkChild(child);
  std::printf("%s pid=%d %s:fork: fork() returned in the parent after %lld ms\n", Role().c_str(),
              getpid(), o.run.c_str(), MsSince(t));
  std::fflush(stdout);
  return pid;
}

// forks > 1: that many forks back to back, each child making one call to its
// parent's server and one on the stub it inherited.
int Serving(const Options& o, grpc::Service* service, Served& served, int forks = 1) {
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port <= 0) {
    Fail("could not start a server of its own on 127.0.0.1");
    return 1;
  }
  auto own = StubTo(port);
  auto stub = NewStub(o);
  Say(*own, o, "own-parent-before");
  Say(*stub, o, "parent-before");

  // Clients of the parent's server keep its workers busy across the fork.
  std::atomic<bool> stop{false};
  std::atomic<int> load_done{0}, load_failed{0};
  Gate going;
  std::vector<std::thread> load;
  for (int t = 0; t < kLoadThreads; t++)
    load.emplace_back([&, t] {
      auto mine = StubTo(port);
      for (int j = 1; !stop && j <= kLoadMax; j++) {
        if (!SayQuiet(*mine, o, "own-load" + std::to_string(t) + "-" + std::to_string(j)))
          load_failed++;
        if (++load_done == kLoadThreads) going.Arrive();
      }
    });
  if (!going.WaitFor(1, kChildWaitMs)) Fail("the load on the parent's own server did not start");

  int at_fork = load_done;
  const int child_own_calls = forks == 1 ? 2 : forks;
  if (forks == 1) {
    pid_t pid = TimedFork(o, [&] {
      auto parents = StubTo(port);
      Say(*parents, o, "own-child-1");
      Say(*parents, o, "own-child-2");
      Say(*stub, o, "child-inherited");
      auto fresh = NewStub(o);
      Say(*fresh, o, "child-new");
      return 0;
    });
    WaitChildWithin(pid, "child", kChildWaitMs);
  } else {
    long long longest = 0;
    for (int i = 1; i <= forks; i++) {
      auto t = std::chrono::steady_clock::now();
      pid_t pid = ForkChild([&] {
        auto parents = StubTo(port);
        Say(*parents, o, "own-child-" + std::to_string(i));
        Say(*stub, o, "child-inherited-" + std::to_string(i));
        return 0;
      });
      longest = std::max(longest, MsSince(t));
      WaitChildWithin(pid, "child", kChildWaitMs);
    }
    std::printf("%s pid=%d %s:forks: %d forks back to back; the longest fork() returned after %lld ms\n",
                Role().c_str(), getpid(), o.run.c_str(), forks, longest);
    std::printf("EXPECT-CALLS parent=4 child=%d\n", forks);
  }
  stop = true;
  for (auto& th : load) th.join();
  std::printf("%s pid=%d %s:own-load: %s %d calls from %d threads, %d failed, %d after the fork\n",
              Role().c_str(), getpid(), o.run.c_str(), load_failed == 0 ? "ok" : "FAIL",
              load_done.load(), kLoadThreads, load_failed.load(), load_done - at_fork);
  if (load_failed != 0) Fail("calls to the parent's own server failed around the fork");
  Say(*own, o, "own-parent-after");
  ParentAfter(*stub, o);
  int served_child = served.ChildCalls();
  std::printf("%s pid=%d %s:own-server: %s served %d of the children's %d calls\n", Role().c_str(),
              getpid(), o.run.c_str(), served_child == child_own_calls ? "ok" : "FAIL", served_child,
              child_own_calls);
  if (served_child != child_own_calls) Fail("the parent's own server did not serve the child's calls");
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  return 0;
}

}  // namespace

int SyncServer(const Options& o) {
  Served served;
  SyncEcho service(&served);
  return Serving(o, &service, served);
}

int SyncServerForks(const Options& o) {
  Served served;
  SyncEcho service(&served);
  return Serving(o, &service, served, o.forks > 0 ? o.forks : 10);
}

int CallbackServer(const Options& o) {
  Served served;
  CallbackEcho service(&served);
  return Serving(o, &service, served);
}

namespace {

// Calls that start each other from their completion callbacks until told to
// stop; counts what came back.
class Chain {
 public:
  Chain(Stub* stub, const Options& o, int id) : stub_(stub), o_(o), id_(id) {}
  void Start() { Next(); }
  void Stop() { stop_ = true; }
  // Waits until the chain has ended (its last call done) or timeout_ms passed.
  bool AwaitEnd(int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return ended_; });
  }
  bool AwaitDone(int n, int timeout_ms) {
    std::unique_lock<std::mutex> lock(mu_);
    return cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return done_ >= n; });
  }
  int Done() {
    std::lock_guard<std::mutex> lock(mu_);
    return done_;
  }
  int Failed() {
    std::lock_guard<std::mutex> lock(mu_);
    return failed_;
  }

 private:
  struct Call {
    grpc::ClientContext ctx;
    SayRequest req;
    Reply reply;
  };
  void Next() {
    auto* call = new Call;
    call->req = SayRequestFor(o_, "parent-chain" + std::to_string(id_) + "-" +
                                      std::to_string(++started_));
    call->ctx.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(o_.deadline_ms));
    stub_->async()->Say(&call->ctx, &call->req, &call->reply, [this, call](grpc::Status st) {
      bool ok = CheckSay(call->req, st, call->reply, true);
      delete call;
      bool more;
      {
        std::lock_guard<std::mutex> lock(mu_);
        done_++;
        if (!ok) failed_++;
        more = !stop_;
        if (!more) ended_ = true;
      }
      cv_.notify_all();
      if (more) Next();
    });
  }

  Stub* stub_;
  const Options& o_;
  const int id_;
  int started_ = 0;  // only the chain's own callbacks touch it, one at a time
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable cv_;
  int done_ = 0, failed_ = 0;
  bool ended_ = false;
};

}  // namespace

int CallbackChain(const Options& o) {
  const int kChains = 4;
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::vector<std::unique_ptr<Chain>> chains;
  for (int i = 0; i < kChains; i++) chains.emplace_back(new Chain(stub.get(), o, i));
  for (auto& c : chains) c->Start();
  for (auto& c : chains)
    if (!c->AwaitDone(5, kChildWaitMs)) Fail("a chain of callback calls did not get going");

  std::vector<int> at_fork;
  for (auto& c : chains) at_fork.push_back(c->Done());
  pid_t pid = TimedFork(o, [&] {
    Say(*stub, o, "child-inherited");
    auto fresh = NewStub(o);
    Say(*fresh, o, "child-new");
    return 0;
  });
  WaitChildWithin(pid, "child", kChildWaitMs);
  // The chains must still be going: 5 more calls each after the child is gone.
  for (size_t i = 0; i < chains.size(); i++)
    if (!chains[i]->AwaitDone(chains[i]->Done() + 5, kChildWaitMs))
      Fail("chain " + std::to_string(i) + " stopped after the fork");
  int total = 0, failed = 0;
  for (auto& c : chains) {
    c->Stop();
    if (!c->AwaitEnd(kChildWaitMs)) Fail("a chain of callback calls did not end");
    total += c->Done();
    failed += c->Failed();
  }
  std::printf("%s pid=%d %s:parent-chains: %s %d callback calls from %d chains, %d failed\n",
              Role().c_str(), getpid(), o.run.c_str(), failed == 0 ? "ok" : "FAIL", total,
              kChains, failed);
  std::printf("EXPECT-CALLS parent=%d child=2\n", total + 4);
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
