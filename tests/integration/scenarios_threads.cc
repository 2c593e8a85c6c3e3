// fork() while another thread of the parent is blocked inside gRPC, as in
// any program with a background RPC in flight: a server stream read by
// another thread, which waits inside gRPC (grpc_completion_queue_pluck) for
// each reply.
//
// busy-thread: 10 replies, 100 ms apart. The child uses gRPC (the stub it
// inherited, and a channel of its own); the parent's stream delivers every
// reply and its later RPCs succeed. run.sh also checks that the shim reports
// core's fork handlers as having run. How long fork() took and how many
// replies came after it returned is reported, not judged (the shim may wait
// for the stream to end before it forks).
//
// busy-stream-no-grpc: 3 replies, 1 s apart; the child leaves without using
// gRPC. run.sh runs it with GRPC_FORKSAFE_QUIESCE_MS=0, so that the shim does
// not wait for the streaming thread: the fork must still complete, the shim
// must say so at warn, and neither process may hang; the parent's stream
// (still in flight after the fork) and its later RPCs must be unaffected.
//
// beyond-bound: the same fork, but the child does use gRPC: a call on the
// stub it inherited and one on a channel of its own. Core's fork handlers did
// not run, so gRPC's threads are not restarted in the child: each call must
// fail at once with UNAVAILABLE, saying why, instead of hanging.

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <functional>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {
namespace {

struct StreamShape {
  int replies;
  int interval_ms;
};

// A server stream of shape.replies replies, shape.interval_ms apart, read to
// the end. Stores its thread id in *tid and signals `started` after the first
// reply, just before it waits inside gRPC for the next one for a while.
// `after_fork` counts the replies read once `forked` is set (when fork() has
// returned in the parent).
void ReadStream(Stub& stub, const Options& o, StreamShape shape, int started,
                std::atomic<pid_t>* tid, const std::atomic<bool>& forked,
                std::atomic<int>& after_fork) {
  *tid = ThreadId();
  const std::string tag = o.run + ":parent-stream";
  forksafe::echo::CountRequest req;
  req.set_pid(getpid());
  req.set_tag(tag);
  req.set_count(shape.replies);
  req.set_interval_ms(shape.interval_ms);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(o.deadline_ms + shape.replies * shape.interval_ms));

  auto reader = stub.Count(&ctx, req);
  forksafe::echo::SayReply reply;
  int n = 0;
  std::string peer;
  while (reader->Read(&reply)) {
    peer = reply.peer();
    if (forked) after_fork++;
    if (++n == 1) SendTurn(started);
  }
  if (n == 0) SendTurn(started);  // never leave the forking thread waiting
  grpc::Status st = reader->Finish();
  if (st.ok() && n == shape.replies) {
    std::printf("%s pid=%d %s: ok %d replies peer=%s\n", Role().c_str(), getpid(), tag.c_str(), n,
                peer.c_str());
  } else {
    Fail(tag + ": " + std::to_string(n) + " of " + std::to_string(shape.replies) +
         " replies, status " + std::to_string(static_cast<int>(st.error_code())) + " \"" +
         st.error_message() + "\"");
  }
}

// Forks while another thread reads a stream of the given shape; the child
// runs child_body. Then the parent's three RPCs on the same stub. With
// in_flight_after, some replies must arrive after fork() returned.
int ForkDuringStream(const Options& o, StreamShape shape, bool in_flight_after,
                     const std::function<int(Stub&)>& child_body) {
  int started[2];
  if (pipe(started) != 0) {
    Fail(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::atomic<bool> forked{false};
  std::atomic<int> after_fork{0};
  std::atomic<pid_t> tid{0};
  std::thread streamer(
      [&] { ReadStream(*stub, o, shape, started[1], &tid, forked, after_fork); });
  AwaitTurn(started[0]);
  // Once it sleeps, the streaming thread is waiting for its next reply, inside
  // gRPC: nothing else between its signal and the next Read can block.
  if (!AwaitBlocked(tid, 5000)) Fail("the streaming thread never blocked waiting for a reply");
  auto t0 = std::chrono::steady_clock::now();
  pid_t pid = ForkChild([&] { return child_body(*stub); });
  auto fork_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                     std::chrono::steady_clock::now() - t0).count();
  forked = true;
  std::printf("%s pid=%d %s:fork: fork() returned in the parent after %lld ms\n", Role().c_str(),
              getpid(), o.run.c_str(), static_cast<long long>(fork_ms));
  WaitChild(pid, "child");
  streamer.join();
  close(started[0]);
  close(started[1]);
  std::printf("%s pid=%d %s:parent-stream: %d replies read after fork() returned\n",
              Role().c_str(), getpid(), o.run.c_str(), after_fork.load());
  if (in_flight_after && after_fork == 0)
    Fail("the stream delivered no reply after the fork: it was not in flight");
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace

int BusyThread(const Options& o) {
  return ForkDuringStream(o, {10, 100}, false, [&](Stub& stub) {
    Say(stub, o, "child-inherited-1");
    auto fresh = NewStub(o);
    Say(*fresh, o, "child-new-1");
    return 0;
  });
}

int BusyStreamNoGrpc(const Options& o) {
  return ForkDuringStream(o, {3, 1000}, true, [](Stub&) { return 0; });
}

int BeyondBound(const Options& o) {
  return ForkDuringStream(o, {3, 1000}, true, [&](Stub& stub) {
    Attempt(stub, o, "child-inherited");
    auto fresh = NewStub(o);
    Attempt(*fresh, o, "child-new");
    return 0;
  });
}

}  // namespace fc
