// Scenarios in which the program itself calls fork() with gRPC channels live.

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "scenarios.h"

namespace fc {
namespace {

std::string Numbered(const char* prefix, int i) { return prefix + std::to_string(i); }

}  // namespace

void ParentAfter(Stub& stub, const Options& o) {
  for (int i = 1; i <= 3; i++) Say(stub, o, Numbered("parent-after-", i));
}

// The child opens a channel of its own to the same target; stock gRPC hands it
// the parent's connection, and the parent's channel is dead afterwards.
int NewChannel(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([&] {
    auto fresh = NewStub(o);
    for (int i = 1; i <= 3; i++) Say(*fresh, o, Numbered("child-", i));
    return 0;
  });
  WaitChild(pid, "child");
  ParentAfter(*stub, o);
  return 0;
}

// The child keeps using the stub (and channel) it inherited.
int InheritedStub(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([&] {
    for (int i = 1; i <= 3; i++) Say(*stub, o, Numbered("child-", i));
    return 0;
  });
  WaitChild(pid, "child");
  ParentAfter(*stub, o);
  return 0;
}

// As InheritedStub, but the child then destroys the stub, and with it the
// last reference to the inherited channel, before it exits: what any program
// does when the object holding the stub goes out of scope.
int InheritedRelease(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([&] {
    for (int i = 1; i <= 3; i++) Say(*stub, o, Numbered("child-", i));
    stub.reset();
    std::printf("child pid=%d released the inherited stub\n", getpid());
    return 0;
  });
  WaitChild(pid, "child");
  ParentAfter(*stub, o);
  return 0;
}

// Parent and child take turns on their connections while both are alive. The
// child alternates between the inherited stub and a channel of its own.
int ParentDuring(const Options& o) {
  const int kRounds = 4;
  int to_parent[2], to_child[2];
  if (pipe(to_parent) != 0 || pipe(to_child) != 0) {
    Fail(std::string("pipe: ") + std::strerror(errno));
    return 1;
  }
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([&] {
    close(to_parent[0]);
    close(to_child[1]);
    std::unique_ptr<Stub> fresh;
    for (int i = 1; i <= kRounds; i++) {
      if (i > 1 && !AwaitTurn(to_child[0])) {
        Fail("parent stopped taking turns");
        return 1;
      }
      if (i % 2 == 1) {
        Say(*stub, o, Numbered("child-inherited-", i));
      } else {
        if (!fresh) fresh = NewStub(o);
        Say(*fresh, o, Numbered("child-new-", i));
      }
      SendTurn(to_parent[1]);
    }
    return 0;
  });
  close(to_parent[1]);
  close(to_child[0]);
  for (int i = 1; i <= kRounds; i++) {
    if (!AwaitTurn(to_parent[0])) {
      Fail("child stopped taking turns");
      break;
    }
    Say(*stub, o, Numbered("parent-during-", i));
    if (i < kRounds) SendTurn(to_child[1]);
  }
  close(to_parent[0]);
  close(to_child[1]);
  WaitChild(pid, "child");
  ParentAfter(*stub, o);
  return 0;
}

namespace {

// The child leaves at once without touching gRPC.
int ChildNoGrpc(const Options& o, ChildExit how) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([] { return 0; }, how);
  WaitChild(pid, "child");
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace

// exit() runs atexit handlers and static destructors in the child.
int ChildNoGrpcExit(const Options& o) { return ChildNoGrpc(o, ChildExit::kExit); }

// _exit() runs nothing: the kernel closes the child's copies of the fds.
int ChildNoGrpcUnderscoreExit(const Options& o) { return ChildNoGrpc(o, ChildExit::kUnderscoreExit); }

// Twenty channels, each with its own TCP connection (distinct channel
// arguments), all in use before the fork and used by both processes after it.
int TwentyChannels(const Options& o) {
  const int kChannels = 20;
  std::vector<std::unique_ptr<Stub>> stubs;
  for (int i = 0; i < kChannels; i++) {
    stubs.push_back(NewStub(o, i));
    Say(*stubs.back(), o, Numbered("parent-before-", i));
  }
  pid_t pid = ForkChild([&] {
    for (int i = 0; i < kChannels; i++) Say(*stubs[i], o, Numbered("child-", i));
    return 0;
  });
  WaitChild(pid, "child");
  for (int i = 0; i < kChannels; i++) Say(*stubs[i], o, Numbered("parent-after-", i));
  return 0;
}

}  // namespace fc
