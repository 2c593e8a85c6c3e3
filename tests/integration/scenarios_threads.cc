// fork() while another thread of the parent is blocked inside gRPC, as in
// any program with a background RPC in flight. gRPC core's own fork handlers
// skip all their work when that is so, and the shim cannot yet make gRPC
// usable in such a child (README, "Known limits"): this child therefore does
// not use gRPC. What is checked is that the parent's stream and its later
// RPCs are unaffected, and (by run.sh) that the shim says, at warn, that core
// skipped its handlers instead of pretending all is well.

#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {
namespace {

const int kReplies = 10;
const int kIntervalMs = 100;

// A server stream of kReplies replies, kIntervalMs apart, read to the end.
// Signals `started` after the first reply, when the thread is certain to be
// waiting inside gRPC for the next one for a while.
void ReadStream(Stub& stub, const Options& o, int started) {
  const std::string tag = o.run + ":parent-stream";
  forksafe::echo::CountRequest req;
  req.set_pid(getpid());
  req.set_tag(tag);
  req.set_count(kReplies);
  req.set_interval_ms(kIntervalMs);
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(o.deadline_ms + kReplies * kIntervalMs));

  auto reader = stub.Count(&ctx, req);
  forksafe::echo::SayReply reply;
  int n = 0;
  std::string peer;
  while (reader->Read(&reply)) {
    peer = reply.peer();
    if (++n == 1) SendTurn(started);
  }
  if (n == 0) SendTurn(started);  // never leave the forking thread waiting
  grpc::Status st = reader->Finish();
  if (st.ok() && n == kReplies) {
    std::printf("%s pid=%d %s: ok %d replies peer=%s\n", Role().c_str(), getpid(), tag.c_str(), n,
                peer.c_str());
  } else {
    Fail(tag + ": " + std::to_string(n) + " of " + std::to_string(kReplies) + " replies, status " +
         std::to_string(static_cast<int>(st.error_code())) + " \"" + st.error_message() + "\"");
  }
}

}  // namespace

int BusyThread(const Options& o) {
  int started[2];
  if (pipe(started) != 0) {
    Fail(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::thread streamer([&] { ReadStream(*stub, o, started[1]); });
  AwaitTurn(started[0]);

  pid_t pid = ForkChild([] { return 0; });
  WaitChild(pid, "child");
  streamer.join();
  close(started[0]);
  close(started[1]);
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
