// fork() while several threads are busy inside gRPC, or fork from several
// threads at once.
//
// sync-threads: 8 threads make synchronous unary RPCs nonstop on one shared
// channel (300 each); the main thread forks once every one of them has
// completed an RPC. The child calls on the stub it inherited and on a channel
// of its own; every thread's RPCs succeed, and each thread still had RPCs to
// make when fork() returned (so the fork did happen while they were busy).
//
// async-thread: one thread keeps 4 asynchronous unary calls in flight on a
// completion queue it polls with AsyncNext (200 ms deadlines), 2000 calls in
// all; the main thread forks once one has completed. The child makes
// synchronous calls on the stub it inherited (the one the async calls use)
// and on a channel of its own; every async call completes with its own reply,
// some of them after the fork.
//
// fork-threads: 4 threads, released together, each fork(); each child calls
// on the inherited stub and on a channel of its own.
//
// --threads and --rpcs change the sizes.

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {
namespace {

const int kStartMs = 30000;  // bound on waiting for workers to get going

std::string Numbered(const std::string& prefix, int i) { return prefix + std::to_string(i); }

// The child of the busy scenarios: `inherited` calls on the stub it
// inherited, `fresh` on a channel it creates.
int ChildCalls(Stub& stub, const Options& o, int inherited, int fresh) {
  for (int i = 1; i <= inherited; i++) Say(stub, o, Numbered("child-inherited-", i));
  auto own = NewStub(o);
  for (int i = 1; i <= fresh; i++) Say(*own, o, Numbered("child-new-", i));
  return 0;
}

}  // namespace

int SyncThreads(const Options& o) {
  const int nthreads = o.threads > 0 ? o.threads : 8;
  const int rpcs = o.rpcs > 0 ? o.rpcs : 300;
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");

  Gate first;  // one arrival per thread, after its first RPC
  std::vector<std::atomic<int>> done(nthreads);
  std::vector<int> failed(nthreads, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < nthreads; t++) {
    threads.emplace_back([&, t] {
      for (int j = 1; j <= rpcs; j++) {
        if (!SayQuiet(*stub, o, "parent-t" + std::to_string(t) + "-" + std::to_string(j)))
          failed[t]++;
        done[t]++;
        if (j == 1) first.Arrive();
      }
    });
  }
  if (!first.WaitFor(nthreads, kStartMs))
    Fail("not every thread completed an RPC within " + std::to_string(kStartMs) + " ms");

  std::vector<int> at_fork(nthreads), at_return(nthreads);
  for (int t = 0; t < nthreads; t++) at_fork[t] = done[t];
  pid_t pid = ForkChild([&] { return ChildCalls(*stub, o, 2, 2); });
  for (int t = 0; t < nthreads; t++) at_return[t] = done[t];
  WaitChild(pid, "child");
  for (auto& th : threads) th.join();

  int total = 0;
  for (int t = 0; t < nthreads; t++) {
    total += done[t] - failed[t];
    bool ok = failed[t] == 0 && done[t] == rpcs;
    std::printf("%s pid=%d %s:parent-t%d: %s %d of %d RPCs ok; %d done when fork() was called, "
                "%d when it returned\n",
                Role().c_str(), getpid(), o.run.c_str(), t, ok ? "ok" : "FAIL",
                done[t] - failed[t], rpcs, at_fork[t], at_return[t]);
    if (!ok) Fail("thread " + std::to_string(t) + ": " + std::to_string(failed[t]) + " RPCs failed");
    if (at_return[t] >= rpcs)
      Fail("thread " + std::to_string(t) + " had made all its RPCs before fork() returned");
  }
  std::printf("%s pid=%d %s:parent-threads: %d RPCs ok from %d threads\n", Role().c_str(),
              getpid(), o.run.c_str(), total, nthreads);
  ParentAfter(*stub, o);
  return 0;
}

namespace {

struct AsyncCall {
  forksafe::echo::SayRequest req;
  Reply reply;
  grpc::Status status;
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientAsyncResponseReader<Reply>> rpc;
};

}  // namespace

int AsyncThread(const Options& o) {
  const int total = o.rpcs > 0 ? o.rpcs : 2000;
  const int kInFlight = 4;
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");

  grpc::CompletionQueue cq;
  Gate first;
  std::atomic<bool> forked{false};
  std::atomic<int> completed{0}, good{0}, after_fork{0}, timeouts{0};
  std::atomic<pid_t> poller_tid{0};
  std::thread poller([&] {
    poller_tid = ThreadId();
    int started = 0, outstanding = 0;
    auto start_one = [&] {
      auto* c = new AsyncCall;
      started++;
      c->req.set_pid(getpid());
      c->req.set_tag(o.run + ":parent-async-" + std::to_string(started));
      c->req.set_payload(c->req.tag());
      c->ctx.set_deadline(std::chrono::system_clock::now() +
                          std::chrono::milliseconds(o.deadline_ms));
      c->rpc = stub->PrepareAsyncSay(&c->ctx, c->req, &cq);
      c->rpc->StartCall();
      c->rpc->Finish(&c->reply, &c->status, c);
      outstanding++;
    };
    while (outstanding < kInFlight && started < total) start_one();
    auto last_event = std::chrono::steady_clock::now();
    while (outstanding > 0) {
      void* got = nullptr;
      bool ok = false;
      grpc::CompletionQueue::NextStatus next =
          cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() + std::chrono::milliseconds(200));
      if (next == grpc::CompletionQueue::TIMEOUT) {
        timeouts++;
        // Every call has a deadline: a queue silent for longer than that hangs.
        if (std::chrono::steady_clock::now() - last_event >
            std::chrono::milliseconds(o.deadline_ms + 5000)) {
          std::printf("%s pid=%d %s:parent-async: FAIL no completion for %d ms with %d calls in "
                      "flight (hang)\n",
                      Role().c_str(), getpid(), o.run.c_str(), o.deadline_ms + 5000, outstanding);
          std::fflush(stdout);
          _exit(3);
        }
        continue;
      }
      if (next == grpc::CompletionQueue::SHUTDOWN) {
        Fail("the completion queue shut down with calls in flight");
        break;
      }
      last_event = std::chrono::steady_clock::now();
      auto* c = static_cast<AsyncCall*>(got);
      outstanding--;
      if (forked) after_fork++;
      if (!ok || !c->status.ok()) {
        Fail(c->req.tag() + ": completion ok=" + std::to_string(ok) + " status " +
             std::to_string(static_cast<int>(c->status.error_code())) + " \"" +
             c->status.error_message() + "\"");
      } else if (c->reply.tag() != c->req.tag() || c->reply.payload() != c->req.payload()) {
        Fail(c->req.tag() + ": reply for another call (tag " + c->reply.tag() + ")");
      } else {
        good++;
      }
      if (++completed == 1) first.Arrive();
      delete c;
      if (started < total) start_one();
    }
  });
  if (!first.WaitFor(1, kStartMs))
    Fail("no async call completed within " + std::to_string(kStartMs) + " ms");
  // Asleep, the poller is waiting in AsyncNext (or, as briefly, starting a
  // call): inside gRPC either way.
  if (!AwaitBlocked(poller_tid, 5000)) Fail("the polling thread never waited");

  pid_t pid = ForkChild([&] { return ChildCalls(*stub, o, 2, 1); });
  forked = true;
  WaitChild(pid, "child");
  poller.join();
  DrainQueue(cq, "the parent's completion queue");
  bool ok = good == total;
  std::printf("%s pid=%d %s:parent-async: %s %d of %d calls ok; %d completed after fork() "
              "returned; %d AsyncNext timeouts\n",
              Role().c_str(), getpid(), o.run.c_str(), ok ? "ok" : "FAIL", good.load(), total,
              after_fork.load(), timeouts.load());
  if (completed != total)
    Fail("only " + std::to_string(completed) + " of " + std::to_string(total) + " calls completed");
  if (after_fork == 0) Fail("no async call completed after the fork: none was in flight");
  ParentAfter(*stub, o);
  return 0;
}

int ForkThreads(const Options& o) {
  const int nthreads = o.threads > 0 ? o.threads : 4;
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");

  Gate ready;  // every thread arrives, then waits for all: a barrier
  std::vector<std::thread> threads;
  for (int t = 1; t <= nthreads; t++) {
    threads.emplace_back([&, t] {
      ready.Arrive();
      if (!ready.WaitFor(nthreads, kStartMs)) {
        Fail("thread " + std::to_string(t) + ": the other threads never arrived");
        return;
      }
      pid_t pid = ForkChild([&] {
        Say(*stub, o, Numbered("child-inherited-", t));
        auto own = NewStub(o);
        Say(*own, o, Numbered("child-new-", t));
        return 0;
      });
      WaitChild(pid, "child");
    });
  }
  for (auto& th : threads) th.join();
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
