// Channels destroyed around a fork, and a fork made with clone().

#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "scenarios.h"

namespace fc {

// A channel the parent destroyed before the fork is not inherited (run.sh
// checks that the shim's fork line counts one live channel, not two), and the
// parent destroying the other one after the fork leaves the child's use of it
// working: the child's copy is its own.
int ParentDestroys(const Options& o) {
  int turn[2];
  if (pipe(turn) != 0) {
    Fail(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  auto gone = NewStub(o, 1);  // distinct indices: a connection each
  auto kept = NewStub(o, 2);
  Say(*gone, o, "parent-before");
  Say(*kept, o, "parent-before");
  gone.reset();  // the last reference: the channel is destroyed

  pid_t pid = ForkChild([&] {
    close(turn[1]);
    if (!AwaitTurn(turn[0])) {
      Fail("the parent never said it had destroyed its channel");
      return 1;
    }
    for (int i = 1; i <= 3; i++) Say(*kept, o, "child-" + std::to_string(i));
    return 0;
  });
  close(turn[0]);
  kept.reset();  // the parent's copy only
  SendTurn(turn[1]);
  close(turn[1]);
  WaitChild(pid, "child");
  auto fresh = NewStub(o);
  ParentAfter(*fresh, o);
  return 0;
}

namespace {
// A raw clone() child may not start threads (libc did not prepare it), so it
// does not use gRPC; it leaves at once.
struct CloneArgs {
  Stub* stub;
  const Options* o;
};

// One call on the inherited stub; the harness judges its line. Leaves at once:
// libc has not prepared this process for anything more.
int CloneChildBody(void* p) {
  auto* a = static_cast<CloneArgs*>(p);
  SetRole("child");
  Attempt(*a->stub, *a->o, "child-inherited");
  std::fflush(stdout);
  _exit(0);
}
}  // namespace

// clone() without CLONE_VM runs no pthread_atfork handlers. The parent's
// channel must survive, and the shim must see the fork exactly once (run.sh).
// The child's one call must end (run.sh says how), never hang.
int Clone(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  std::vector<char> stack(1024 * 1024);
  CloneArgs args{stub.get(), &o};
  std::fflush(stdout);
  pid_t pid = clone(CloneChildBody, stack.data() + stack.size(), SIGCHLD, &args);
  if (pid < 0) {
    Fail(std::string("clone: ") + std::strerror(errno));
    return 1;
  }
  WaitChildWithin(pid, "clone() child", 15000);
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
