// The asynchronous API: one completion queue and one stub, made before the
// fork. Every call is PrepareAsyncSay, StartCall, Finish, then AsyncNext with a
// bounded deadline, so a queue that never delivers is reported, not waited on.

#include <string>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {

int AsyncCq(const Options& o) {
  grpc::CompletionQueue cq;
  auto stub = NewStub(o);
  for (int i = 1; i <= 2; i++) AsyncSay(*stub, cq, o, "parent-before-" + std::to_string(i));

  pid_t pid = ForkChild([&] {
    // The queue and the stub the child inherited...
    for (int i = 1; i <= 3; i++) AsyncSay(*stub, cq, o, "child-inherited-cq-" + std::to_string(i));
    DrainQueue(cq, "the inherited completion queue");
    // ...and the inherited stub with a queue of the child's own.
    grpc::CompletionQueue own;
    AsyncSay(*stub, own, o, "child-own-cq-1");
    DrainQueue(own, "the child's completion queue");
    return 0;
  });
  WaitChild(pid, "child");
  for (int i = 1; i <= 3; i++) AsyncSay(*stub, cq, o, "parent-after-" + std::to_string(i));
  DrainQueue(cq, "the parent's completion queue");
  return 0;
}

}  // namespace fc
