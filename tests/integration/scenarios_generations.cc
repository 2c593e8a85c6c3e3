// Four generations: parent -> child -> grandchild -> great-grandchild. The
// parent's channel A is used by every one of them; channel B, made in the
// child, by the child and its descendants. Each process uses its stubs:
//
//   first   right after it was forked (B: the child, right after creating it);
//   during  once every descendant has used its stubs (the turn comes up the
//           chain through pipes), while they are all still alive;
//   again   (descendants) once every ancestor has used its stubs during
//           (the turn goes back down the chain);
//   after   (ancestors) once its child has exited.
//
// Pipes, not sleeps, order the turns; a process whose partner died sees the
// pipe closed and reports it instead of waiting.

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "scenarios.h"

namespace fc {
namespace {

const char* const kRoles[] = {"parent", "child", "grandchild", "greatgrandchild"};
const int kDeepest = 3;

// The ends of the pipes to this process's parent (-1 in the parent).
struct Link {
  int up = -1;    // written: "my descendants and I have used our stubs"
  int down = -1;  // read: "my ancestors have used theirs"
};

void UseStubs(Stub& a, Stub* b, const Options& o, const std::string& phase) {
  Say(a, o, Role() + "-A-" + phase);
  if (b != nullptr) Say(*b, o, Role() + "-B-" + phase);
}

int Generation(const Options& o, int level, Stub& a, std::unique_ptr<Stub>& b, Link link) {
  SetRole(kRoles[level]);
  if (level == 1) b = NewStub(o);  // channel B: made in the child, inherited below it
  if (level > 0) UseStubs(a, b.get(), o, "first");

  if (level == kDeepest) {
    SendTurn(link.up);
    if (!AwaitTurn(link.down)) {
      Fail("parent stopped taking turns");
      return 1;
    }
    UseStubs(a, b.get(), o, "again");
    return 0;
  }

  int up[2], down[2];
  if (pipe(up) != 0 || pipe(down) != 0) {
    Fail(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  pid_t pid = ForkChild([&] {
    // Only its own link: a pipe end left open here would hide an ancestor's death.
    close(up[0]);
    close(down[1]);
    if (link.up >= 0) close(link.up);
    if (link.down >= 0) close(link.down);
    Link mine;
    mine.up = up[1];
    mine.down = down[0];
    return Generation(o, level + 1, a, b, mine);
  });
  close(up[1]);
  close(down[0]);

  bool turns = AwaitTurn(up[0]);
  if (!turns) {
    Fail(std::string(kRoles[level + 1]) + " stopped taking turns");
  } else {
    UseStubs(a, b.get(), o, "during");
    if (level > 0) {
      SendTurn(link.up);
      if (!AwaitTurn(link.down)) {
        Fail("parent stopped taking turns");
        turns = false;
      } else {
        UseStubs(a, b.get(), o, "again");
      }
    }
  }
  if (turns) SendTurn(down[1]);
  close(up[0]);
  close(down[1]);
  WaitChild(pid, kRoles[level + 1]);
  UseStubs(a, b.get(), o, "after");
  if (level > 0) {
    close(link.up);
    close(link.down);
  }
  return 0;
}

}  // namespace

int Generations(const Options& o) {
  auto a = NewStub(o);
  std::unique_ptr<Stub> b;
  Say(*a, o, "parent-A-before");
  return Generation(o, 0, *a, b, Link());
}

}  // namespace fc
