// fork() while other threads keep changing what a fork has to carry over
// (channels, their arguments and credentials, registered methods), from
// several threads at once under RPC load, and from a thread that has an RPC of
// its own in flight.
//
// channel-churn: a thread (--threads, 1) creates a channel (grpc++
// CreateChannel), makes one RPC on it and destroys it, nonstop; the main
// thread forks (--forks, 10) meanwhile.
//
// channel-churn-bare: two threads (--threads) create channels with many
// arguments (ints, strings and a pointer argument whose copies are counted)
// and destroy them, keeping up to 8 alive each, with no RPC, so that they
// spend their time in channel creation and destruction; the main thread forks
// 30 times (--forks). All the copies of the pointer argument made for the
// channels (by gRPC, and by the shim, which keeps a deep copy of each tracked
// channel's arguments) must have been destroyed, once each, when the channels
// are gone.
//
// register-churn: two threads register methods on channels nonstop: one
// creates generated stubs on the channel the child inherits (each
// registers its methods through grpc_channel_register_call) and calls through
// the last; the other makes a channel, registers 16 methods on it by hand
// (grpc::internal::RpcMethod, what generated code does), calls through the
// registered one, calls through a generic stub (no registration) on the
// shared channel, and destroys its channel. The main thread forks 10 times.
// Each child also makes a new generated stub on the inherited channel and
// calls through it.
//
// fork-threads-busy: 4 threads (--threads) fork together, in 3 rounds, while
// 4 other threads make RPCs nonstop on the shared channel.
//
// In those four, before each fork every worker thread must have completed a
// round since the previous fork returned (counted, never timed): each fork
// lands while the workers are mid-loop, and a worker left stuck by a fork is
// reported. Every child calls on the stub it inherited and on a channel of its
// own and must exit 0 within a bound (a hang is reported as such); the workers'
// RPCs must all succeed.
//
// inflight-async: the main thread starts an asynchronous unary call (its
// result not yet asked for) and an asynchronous server stream (one of its 5
// replies read) on channel A, forks, and then finishes both: each must
// complete on A's connection with its own replies. The child calls on
// channel B, which it inherited, and on a channel of its own.
//
// inflight-sync-stream: the same with a synchronous stream reader
// (ClientReader) on A, one reply read and more on their way at the fork.
//
// Prints, besides the usual lines, in the scenarios with worker threads:
//   parent pid=P RUN:forks: F forks in S s; children: N exited 0, M failed; longest fork() T ms
//   parent pid=P RUN:workers: ok|FAIL R rounds, X failed, from T threads; each made at least L during the forks
//   EXPECT-CALLS parent=<n> child=<n>   (the workers' call count varies)
// channel-churn-bare:
//   parent pid=P RUN:parent-args: ok|FAIL C copies of the pointer argument made, L not destroyed
// inflight-*:
//   parent pid=P RUN:parent-inflight-stream: ok 5 replies, N read after fork() returned, peer=A

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <grpc/grpc.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/client_unary_call.h>
#include <grpcpp/impl/rpc_method.h>

#include "scenarios.h"

namespace fc {
namespace {

const int kStartMs = 30000;  // bound on waiting for workers to get going

std::string Numbered(const std::string& prefix, long i) { return prefix + std::to_string(i); }

// How long a child may take, or a worker may go without completing a round:
// a few of the longest an RPC can take, so that only a hang trips it.
int HangBoundMs(const Options& o) { return 3 * o.deadline_ms; }

long long MillisSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

// Threads that run a step again and again until stopped, each counting its
// rounds and the rounds whose step failed. The forking thread waits on those
// counts, never on a clock, to know that every worker is still going.
class Workers {
 public:
  // step(thread, round) does one round; false if it failed (it reports why).
  using Step = std::function<bool(int, long)>;

  Workers(int n, Step step) : step_(std::move(step)), rounds_(n, 0), failed_(n, 0) {
    for (int t = 0; t < n; t++) threads_.emplace_back([this, t] { Run(t); });
  }
  ~Workers() { Stop(); }

  int size() const { return static_cast<int>(rounds_.size()); }

  // Waits until every worker has completed `more` rounds beyond those it had
  // completed at the call. False, naming the first one behind in *laggard, if
  // one has not within timeout_ms.
  bool AwaitRounds(long more, int timeout_ms, int* laggard) {
    std::unique_lock<std::mutex> lock(mu_);
    std::vector<long> want(rounds_);
    for (long& w : want) w += more;
    bool ok = cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] {
      for (size_t t = 0; t < want.size(); t++)
        if (rounds_[t] < want[t]) return false;
      return true;
    });
    if (!ok)
      for (size_t t = 0; t < want.size(); t++)
        if (rounds_[t] < want[t]) {
          *laggard = static_cast<int>(t);
          break;
        }
    return ok;
  }

  std::vector<long> Rounds() {
    std::lock_guard<std::mutex> lock(mu_);
    return rounds_;
  }

  long Failed() {
    std::lock_guard<std::mutex> lock(mu_);
    long n = 0;
    for (long f : failed_) n += f;
    return n;
  }

  void Stop() {
    stop_ = true;
    for (auto& th : threads_)
      if (th.joinable()) th.join();
  }

 private:
  void Run(int t) {
    for (long i = 1; !stop_; i++) {
      bool ok = step_(t, i);
      std::lock_guard<std::mutex> lock(mu_);
      rounds_[t]++;
      if (!ok) failed_[t]++;
      cv_.notify_all();
    }
  }

  const Step step_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<long> rounds_, failed_;
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
};

// Waits until every worker has completed two more rounds: one that may have
// begun before the last fork returned, and one begun after it. False (and a
// counted failure) if one has not within the bound: a fork left it stuck.
bool AwaitWorkers(Workers& w, const Options& o, const std::string& when) {
  int laggard = -1;
  if (w.AwaitRounds(2, HangBoundMs(o), &laggard)) return true;
  Fail("worker thread " + std::to_string(laggard) + " completed no round within " +
       std::to_string(HangBoundMs(o)) + " ms " + when + " (hang)");
  return false;
}

// Reports the workers' rounds and failures (`during`: the rounds each made
// between at_start, taken before the first fork, and at_end, after the last).
void ReportWorkers(Workers& w, const Options& o, const std::vector<long>& at_start,
                   const std::vector<long>& at_end) {
  std::vector<long> rounds = w.Rounds();
  long total = 0, least_during = -1, failed = w.Failed();
  for (size_t t = 0; t < rounds.size(); t++) {
    total += rounds[t];
    long during = at_end[t] - at_start[t];
    if (least_during < 0 || during < least_during) least_during = during;
  }
  std::printf("%s pid=%d %s:workers: %s %ld rounds, %ld failed, from %d threads; each made at "
              "least %ld during the forks\n",
              Role().c_str(), getpid(), o.run.c_str(), failed == 0 ? "ok" : "FAIL", total, failed,
              w.size(), least_during);
  if (failed > 0) Fail(std::to_string(failed) + " of the worker threads' rounds failed");
  if (least_during <= 0) Fail("a worker thread made no round while the forks went on");
}

// Forks `forks` times from this thread while `w` goes on; each fork waits
// until every worker has completed a round since the previous one returned
// (AwaitWorkers). Each child runs child(k) and must exit 0 within the bound;
// at most 4 are alive at a time. Prints the "forks:" line; returns how many
// forks were made.
int ForkWhileBusy(Workers& w, const Options& o, int forks, const std::function<int(int)>& child) {
  const size_t kAlive = 4;
  std::deque<pid_t> alive;
  int forked = 0, children_ok = 0, children_failed = 0;
  auto reap_oldest = [&] {
    if (WaitChildWithin(alive.front(), "child", HangBoundMs(o))) children_ok++;
    else children_failed++;
    alive.pop_front();
  };
  auto t0 = std::chrono::steady_clock::now();
  long long longest_ms = 0;
  for (int k = 1; k <= forks; k++) {
    if (!AwaitWorkers(w, o, "before fork " + std::to_string(k))) break;
    auto before = std::chrono::steady_clock::now();
    pid_t pid = ForkChild([&] { return child(k); });
    longest_ms = std::max<long long>(longest_ms, MillisSince(before));
    if (pid < 0) break;  // counted by ForkChild
    forked++;
    alive.push_back(pid);
    if (alive.size() >= kAlive) reap_oldest();
  }
  while (!alive.empty()) reap_oldest();
  AwaitWorkers(w, o, "after the last fork");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s pid=%d %s:forks: %d forks in %.2f s; children: %d exited 0, %d failed; "
              "longest fork() %lld ms\n",
              Role().c_str(), getpid(), o.run.c_str(), forked, seconds, children_ok,
              children_failed, longest_ms);
  return forked;
}

// The child of the busy scenarios: one call on the stub it inherited, one on
// a channel of its own.
int InheritedAndNew(Stub& stub, const Options& o, int k) {
  Say(stub, o, Numbered("child-inherited-", k));
  auto own = NewStub(o);
  Say(*own, o, Numbered("child-new-", k));
  return 0;
}

// Forks `forks` times from this thread while `w` goes on (ForkWhileBusy),
// stops the workers, then makes the parent's calls after; prints the report
// lines, EXPECT-CALLS included (`rpcs_per_round`: the RPCs each worker's
// round makes, per worker; `child_calls`: the RPCs each child makes).
int ForkDuringWorkers(const Options& o, Stub& stub, Workers& w, int forks,
                      const std::function<int(int)>& child, const std::vector<int>& rpcs_per_round,
                      int child_calls) {
  int laggard = -1;
  if (!w.AwaitRounds(1, kStartMs, &laggard))
    Fail("worker thread " + std::to_string(laggard) + " completed no round within " +
         std::to_string(kStartMs) + " ms");
  std::vector<long> at_start = w.Rounds();
  int forked = ForkWhileBusy(w, o, forks, child);
  std::vector<long> at_end = w.Rounds();
  w.Stop();
  ReportWorkers(w, o, at_start, at_end);
  ParentAfter(stub, o);
  std::vector<long> rounds = w.Rounds();
  long worker_rpcs = 0;
  for (size_t t = 0; t < rounds.size(); t++) worker_rpcs += rounds[t] * rpcs_per_round[t];
  std::printf("EXPECT-CALLS parent=%ld child=%d\n", 1 + worker_rpcs + 3, child_calls * forked);
  return 0;
}

// --- channel-churn-bare's pointer argument -----------------------------------

// Its copies, made and destroyed through its vtable by whoever copies channel
// arguments. Each copy must be destroyed once: never more destroys than
// copies, and none left once every channel and argument list is gone.
struct CountedArg {
  std::mutex mu;
  std::condition_variable cv;
  long live = 0;      // copies not yet destroyed
  long copies = 0;
  bool negative = false;  // a destroy without a copy to match it
};
CountedArg g_counted;
char g_counted_value;  // what the argument points to

void* CountedCopy(void* p) {
  std::lock_guard<std::mutex> lock(g_counted.mu);
  g_counted.copies++;
  g_counted.live++;
  return p;
}
void CountedDestroy(void*) {
  std::lock_guard<std::mutex> lock(g_counted.mu);
  if (--g_counted.live < 0) g_counted.negative = true;
  g_counted.cv.notify_all();
}
int CountedCmp(void* a, void* b) { return (a > b) - (a < b); }
const grpc_arg_pointer_vtable kCountedVtable = {CountedCopy, CountedDestroy, CountedCmp};

// Many arguments, as a real program's channels carry: the shim keeps a deep
// copy of them for each channel it tracks.
grpc::ChannelArguments ManyArgs(int thread) {
  grpc::ChannelArguments args;
  args.SetInt("forksafe.test.churn-thread", thread);
  for (int i = 0; i < 12; i++) {
    args.SetInt("forksafe.test.int-" + std::to_string(i), i * 1000 + thread);
    args.SetString("forksafe.test.string-" + std::to_string(i),
                   "a string argument long enough to be copied " + std::to_string(i));
  }
  args.SetPointerWithVtable("forksafe.test.counted", &g_counted_value, &kCountedVtable);
  return args;
}

// --- register-churn ------------------------------------------------------------

const int kHandRegistered = 16;
const char kSayMethod[] = "/forksafe.echo.Echo/Say";

// The methods registered by hand: Say first, then methods nobody calls.
const std::vector<std::string>& HandMethods() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v{kSayMethod};
    for (int i = 1; i < kHandRegistered; i++) v.push_back("/forksafe.test.Unused/M" + std::to_string(i));
    return v;
  }();
  return names;
}

// One Say call through a generic stub: grpc_channel_create_call with the
// method's name, no registration. Its own completion queue, bounded.
bool GenericSay(grpc::GenericStub& generic, const Options& o, const std::string& tag) {
  forksafe::echo::SayRequest req = SayRequestFor(o, tag);
  grpc::ByteBuffer request, response;
  bool own = false;
  grpc::Status st = grpc::SerializationTraits<forksafe::echo::SayRequest>::Serialize(req, &request, &own);
  Reply reply;
  if (st.ok()) {
    grpc::CompletionQueue cq;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
    auto rpc = generic.PrepareUnaryCall(&ctx, kSayMethod, request, &cq);
    rpc->StartCall();
    int done = 0;
    rpc->Finish(&response, &st, &done);
    void* got = nullptr;
    bool ok = false;
    // The call's deadline ends it; the queue gets a margin on top.
    auto next = cq.AsyncNext(&got, &ok, std::chrono::system_clock::now() +
                                            std::chrono::milliseconds(o.deadline_ms + 3000));
    if (next != grpc::CompletionQueue::GOT_EVENT || got != &done || !ok) {
      std::printf("%s pid=%d %s: FAIL generic call: no completion (hang)\n", Role().c_str(),
                  getpid(), req.tag().c_str());
      std::fflush(stdout);
      _exit(3);  // the queue cannot be destroyed with the call pending
    }
    DrainQueue(cq, "a generic call's completion queue");
    if (st.ok()) st = grpc::SerializationTraits<Reply>::Deserialize(&response, &reply);
  }
  return CheckSay(req, st, reply, true);
}

// --- the in-flight scenarios ---------------------------------------------------

const int kStreamReplies = 5;
const int kStreamIntervalMs = 200;

forksafe::echo::CountRequest StreamRequest(const Options& o, const std::string& tag) {
  forksafe::echo::CountRequest req;
  req.set_pid(getpid());
  req.set_tag(o.run + ":" + tag);
  req.set_count(kStreamReplies);
  req.set_interval_ms(kStreamIntervalMs);
  return req;
}

std::chrono::system_clock::time_point StreamDeadline(const Options& o) {
  return std::chrono::system_clock::now() +
         std::chrono::milliseconds(o.deadline_ms + kStreamReplies * kStreamIntervalMs);
}

// Judges a stream's replies: all of them, each with the stream's tag, on
// the connection `peer` (A's). Prints its line.
void CheckStream(const std::string& tag, const grpc::Status& st, const std::vector<Reply>& replies,
                 int after_fork, const std::string& peer) {
  std::string wrong;
  if (!st.ok())
    wrong = "status " + std::to_string(static_cast<int>(st.error_code())) + " \"" +
            st.error_message() + "\"";
  else if (static_cast<int>(replies.size()) != kStreamReplies)
    wrong = std::to_string(replies.size()) + " of " + std::to_string(kStreamReplies) + " replies";
  for (const Reply& r : replies) {
    if (!wrong.empty()) break;
    if (r.tag() != tag) wrong = "a reply for another call (tag " + r.tag() + ")";
    else if (r.peer() != peer) wrong = "a reply on connection " + r.peer() + ", not A's " + peer;
  }
  if (wrong.empty()) {
    std::printf("%s pid=%d %s: ok %d replies, %d read after fork() returned, peer=%s\n",
                Role().c_str(), getpid(), tag.c_str(), kStreamReplies, after_fork, peer.c_str());
  } else {
    Fail(tag + ": " + wrong);
  }
}

// The child of the in-flight scenarios: channel B, inherited, and its own.
int ChildOnB(Stub& b, const Options& o) {
  Say(b, o, "child-inherited-b");
  auto own = NewStub(o);
  Say(*own, o, "child-new-1");
  return 0;
}

// Two channels with connections of their own, each used once: A carries the
// call in flight at the fork, B is the one the child uses. Returns A's peer.
std::string TwoChannels(const Options& o, std::unique_ptr<Stub>* a, std::unique_ptr<Stub>* b) {
  *a = NewStub(o, 1);
  *b = NewStub(o, 2);
  Reply on_a, on_b;
  SayExpect(**a, o, "parent-before-a", Expect(), &on_a);
  SayExpect(**b, o, "parent-before-b", Expect(), &on_b);
  if (on_a.peer() == on_b.peer()) Fail("channels A and B share connection " + on_a.peer());
  return on_a.peer();
}

// After the in-flight call: A once more, then the parent's three calls on B.
void ParentAfterBoth(Stub& a, Stub& b, const Options& o) {
  Say(a, o, "parent-after-a");
  ParentAfter(b, o);
}

}  // namespace

int ChannelChurn(const Options& o) {
  const int forks = o.forks > 0 ? o.forks : 10;
  const int nthreads = o.threads > 0 ? o.threads : 1;
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  Workers w(nthreads, [&](int t, long i) {
    // A channel of its own each round, as a program that makes one per
    // request does; it goes away with the stub at the end of the round.
    auto own = forksafe::echo::Echo::NewStub(
        grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials()));
    return SayQuiet(*own, o, "parent-churn-t" + std::to_string(t) + "-" + std::to_string(i));
  });
  return ForkDuringWorkers(o, *stub, w, forks, [&](int k) { return InheritedAndNew(*stub, o, k); },
                           std::vector<int>(nthreads, 1), 2);
}

int ChannelChurnBare(const Options& o) {
  const int forks = o.forks > 0 ? o.forks : 30;
  const int nthreads = o.threads > 0 ? o.threads : 2;
  const size_t kKept = 8;  // channels each thread keeps alive
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  {
    std::vector<std::deque<std::shared_ptr<grpc::Channel>>> kept(nthreads);
    Workers w(nthreads, [&](int t, long) {
      kept[t].push_back(grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(),
                                                  ManyArgs(t)));
      if (kept[t].size() > kKept) kept[t].pop_front();
      return true;
    });
    ForkDuringWorkers(o, *stub, w, forks, [&](int k) { return InheritedAndNew(*stub, o, k); },
                      std::vector<int>(nthreads, 0), 2);
  }  // the workers have stopped: their channels go here

  // gRPC may let go of a destroyed channel's arguments a little later, from
  // its own threads: wait for the last copy, with a bound.
  std::unique_lock<std::mutex> lock(g_counted.mu);
  bool gone = g_counted.cv.wait_for(lock, std::chrono::milliseconds(HangBoundMs(o)),
                                    [] { return g_counted.live <= 0; });
  std::printf("%s pid=%d %s:parent-args: %s %ld copies of the pointer argument made, %ld not "
              "destroyed%s\n",
              Role().c_str(), getpid(), o.run.c_str(), gone && !g_counted.negative ? "ok" : "FAIL",
              g_counted.copies, g_counted.live,
              g_counted.negative ? "; destroyed more often than copied" : "");
  if (!gone) Fail(std::to_string(g_counted.live) + " copies of a channel's pointer argument were never destroyed");
  if (g_counted.negative) Fail("a copy of a channel's pointer argument was destroyed twice");
  return 0;
}

int RegisterChurn(const Options& o) {
  const int forks = o.forks > 0 ? o.forks : 10;
  const int kStubsPerRound = 8;
  auto shared = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  auto stub = forksafe::echo::Echo::NewStub(shared);
  Say(*stub, o, "parent-before");
  grpc::GenericStub generic(shared);
  Workers w(2, [&](int t, long i) {
    const std::string tag = "parent-churn-t" + std::to_string(t) + "-" + std::to_string(i);
    if (t == 0) {
      // Generated stubs on the shared channel: each registers Say and Count.
      std::unique_ptr<Stub> fresh;
      for (int j = 0; j < kStubsPerRound; j++) fresh = forksafe::echo::Echo::NewStub(shared);
      return SayQuiet(*fresh, o, tag);
    }
    // A channel of its own with methods registered by hand, one call through
    // the registered Say, one through the generic stub; then it goes.
    auto channel = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
    std::vector<grpc::internal::RpcMethod> methods;
    for (const std::string& name : HandMethods())
      methods.emplace_back(name.c_str(), grpc::internal::RpcMethod::NORMAL_RPC, channel);
    forksafe::echo::SayRequest req = SayRequestFor(o, tag + "-registered");
    Reply reply;
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
    grpc::Status st = grpc::internal::BlockingUnaryCall(channel.get(), methods[0], &ctx, req, &reply);
    bool ok = CheckSay(req, st, reply, true);
    return GenericSay(generic, o, tag + "-generic") && ok;
  });
  return ForkDuringWorkers(
      o, *stub, w, forks,
      [&](int k) {
        Say(*stub, o, Numbered("child-inherited-", k));
        // Registers Say on the inherited channel, here.
        auto restub = forksafe::echo::Echo::NewStub(shared);
        Say(*restub, o, Numbered("child-restub-", k));
        auto own = NewStub(o);
        Say(*own, o, Numbered("child-new-", k));
        return 0;
      },
      {1, 2}, 3);
}

int ForkThreadsBusy(const Options& o) {
  const int nforkers = o.threads > 0 ? o.threads : 4;
  const int kRpcThreads = 4, kRounds = 3;
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  Workers w(kRpcThreads, [&](int t, long i) {
    return SayQuiet(*stub, o, "parent-t" + std::to_string(t) + "-" + std::to_string(i));
  });
  int laggard = -1;
  if (!w.AwaitRounds(1, kStartMs, &laggard))
    Fail("RPC thread " + std::to_string(laggard) + " completed no RPC within " +
         std::to_string(kStartMs) + " ms");
  std::vector<long> at_start = w.Rounds();

  // Each round the forking threads wait for the main thread's go, then fork
  // together; the main thread opens a round only once the RPC threads have
  // gone on since the last one.
  Gate go, forked;
  std::atomic<int> children_ok{0}, children_failed{0};
  std::atomic<long long> longest_ms{0};  // of any fork() call, as its thread saw it
  std::vector<std::thread> forkers;
  for (int f = 1; f <= nforkers; f++) {
    forkers.emplace_back([&, f] {
      for (int r = 1; r <= kRounds; r++) {
        if (!go.WaitFor(r, kStartMs)) {
          Fail("forking thread " + std::to_string(f) + ": round " + std::to_string(r) + " never began");
          return;
        }
        const int k = (r - 1) * nforkers + f;
        auto before = std::chrono::steady_clock::now();
        pid_t pid = ForkChild([&] { return InheritedAndNew(*stub, o, k); });
        long long ms = MillisSince(before);
        for (long long seen = longest_ms; ms > seen && !longest_ms.compare_exchange_weak(seen, ms);) {
        }
        forked.Arrive();
        if (WaitChildWithin(pid, "child", HangBoundMs(o))) children_ok++;
        else children_failed++;
      }
    });
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int r = 1; r <= kRounds; r++) {
    if (!AwaitWorkers(w, o, "before round " + std::to_string(r))) break;
    go.Arrive();
    if (!forked.WaitFor(r * nforkers, HangBoundMs(o))) {
      Fail("round " + std::to_string(r) + ": not every thread's fork() returned within " +
           std::to_string(HangBoundMs(o)) + " ms (hang)");
      break;
    }
  }
  for (auto& th : forkers) th.join();
  AwaitWorkers(w, o, "after the last round");
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::vector<long> at_end = w.Rounds();
  w.Stop();
  std::printf("%s pid=%d %s:forks: %d forks in %.2f s; children: %d exited 0, %d failed; "
              "longest fork() %lld ms\n",
              Role().c_str(), getpid(), o.run.c_str(), children_ok + children_failed, seconds,
              children_ok.load(), children_failed.load(), longest_ms.load());
  ReportWorkers(w, o, at_start, at_end);
  ParentAfter(*stub, o);
  long rpcs = 0;
  for (long r : w.Rounds()) rpcs += r;
  std::printf("EXPECT-CALLS parent=%ld child=%d\n", 1 + rpcs + 3,
              2 * (children_ok + children_failed));
  return 0;
}

int InflightAsync(const Options& o) {
  std::unique_ptr<Stub> a, b;
  const std::string peer_a = TwoChannels(o, &a, &b);
  grpc::CompletionQueue cq;
  // Tags of the completions this thread waits for.
  int stream_started = 0, stream_read = 0, stream_finished = 0, unary_finished = 0;

  // A unary call, started; its result is asked for only after the fork.
  forksafe::echo::SayRequest unary_req = SayRequestFor(o, "parent-inflight-unary");
  Reply unary_reply;
  grpc::Status unary_status;
  grpc::ClientContext unary_ctx;
  unary_ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms));
  auto unary = a->PrepareAsyncSay(&unary_ctx, unary_req, &cq);
  unary->StartCall();

  // A server stream, its first reply read.
  forksafe::echo::CountRequest stream_req = StreamRequest(o, "parent-inflight-stream");
  grpc::ClientContext stream_ctx;
  stream_ctx.set_deadline(StreamDeadline(o));
  auto stream = a->PrepareAsyncCount(&stream_ctx, stream_req, &cq);
  std::vector<Reply> replies;
  Reply next_reply;
  grpc::Status stream_status;
  bool unary_done = false, stream_done = false, forked = false;
  int after_fork = 0;
  pid_t pid = -1;

  // Every completion, in whatever order they come; the fork happens once the
  // stream's first reply is in. The calls' deadlines end them; the queue gets
  // a margin on top.
  auto limit = StreamDeadline(o) + std::chrono::milliseconds(3000);
  stream->StartCall(&stream_started);
  while (!unary_done || !stream_done) {
    void* got = nullptr;
    bool ok = false;
    if (cq.AsyncNext(&got, &ok, limit) != grpc::CompletionQueue::GOT_EVENT) {
      std::printf("%s pid=%d %s:parent-inflight: FAIL no completion for the calls on A (hang)\n",
                  Role().c_str(), getpid(), o.run.c_str());
      std::fflush(stdout);
      _exit(3);  // the queue cannot be destroyed with calls pending
    }
    if (got == &stream_started) {
      if (ok) stream->Read(&next_reply, &stream_read);
      else stream->Finish(&stream_status, &stream_finished);
    } else if (got == &stream_read) {
      if (!ok) {
        stream->Finish(&stream_status, &stream_finished);
        continue;
      }
      replies.push_back(next_reply);
      if (forked) after_fork++;
      if (!forked) {
        // The unary call started, the stream with more replies to come: fork.
        pid = ForkChild([&] { return ChildOnB(*b, o); });
        forked = true;
        unary->Finish(&unary_reply, &unary_status, &unary_finished);
      }
      stream->Read(&next_reply, &stream_read);
    } else if (got == &stream_finished) {
      stream_done = true;
      if (!forked) {
        Fail("the stream ended without a reply: no fork was made");
        unary->Finish(&unary_reply, &unary_status, &unary_finished);
      }
    } else if (got == &unary_finished) {
      unary_done = true;
    } else {
      Fail("the completion queue returned an unknown tag");
    }
  }
  if (CheckSay(unary_req, unary_status, unary_reply) && unary_reply.peer() != peer_a)
    Fail(unary_req.tag() + ": completed on connection " + unary_reply.peer() + ", not A's " + peer_a);
  CheckStream(stream_req.tag(), stream_status, replies, after_fork, peer_a);
  DrainQueue(cq, "the parent's completion queue");
  WaitChildWithin(pid, "child", HangBoundMs(o));
  ParentAfterBoth(*a, *b, o);
  return 0;
}

int InflightSyncStream(const Options& o) {
  std::unique_ptr<Stub> a, b;
  const std::string peer_a = TwoChannels(o, &a, &b);
  forksafe::echo::CountRequest req = StreamRequest(o, "parent-inflight-stream");
  grpc::ClientContext ctx;
  ctx.set_deadline(StreamDeadline(o));
  auto reader = a->Count(&ctx, req);
  std::vector<Reply> replies;
  Reply reply;
  pid_t pid = -1;
  int after_fork = 0;
  if (reader->Read(&reply)) {
    replies.push_back(reply);
    // The stream is open with more replies to come, and this thread, its
    // reader, forks.
    pid = ForkChild([&] { return ChildOnB(*b, o); });
    while (reader->Read(&reply)) {
      replies.push_back(reply);
      after_fork++;
    }
  } else {
    Fail("the stream delivered no reply: no fork was made");
  }
  grpc::Status st = reader->Finish();
  CheckStream(req.tag(), st, replies, after_fork, peer_a);
  WaitChildWithin(pid, "child", HangBoundMs(o));
  ParentAfterBoth(*a, *b, o);
  return 0;
}

}  // namespace fc
