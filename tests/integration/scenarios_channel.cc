// What a channel carries into a child besides its target: its connectivity
// API, its channel arguments, and what the child's first call on it meets.

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include <grpcpp/grpcpp.h>

#include "scenarios.h"

namespace fc {
namespace {

const char* StateName(grpc_connectivity_state s) {
  switch (s) {
    case GRPC_CHANNEL_IDLE: return "IDLE";
    case GRPC_CHANNEL_CONNECTING: return "CONNECTING";
    case GRPC_CHANNEL_READY: return "READY";
    case GRPC_CHANNEL_TRANSIENT_FAILURE: return "TRANSIENT_FAILURE";
    case GRPC_CHANNEL_SHUTDOWN: return "SHUTDOWN";
  }
  return "?";
}

// A check that is not an RPC: printed as "<role> pid=N <what>: ok" or counted.
void Check(bool ok, const std::string& what) {
  if (ok)
    std::printf("%s pid=%d %s: ok\n", Role().c_str(), getpid(), what.c_str());
  else
    Fail(what);
}

bool Contains(const std::vector<int>& v, int x) { return std::find(v.begin(), v.end(), x) != v.end(); }

}  // namespace

// The child asks the channel it inherited for its state, waits for it to be
// READY, and asks for its load-balancing policy and service config, all before
// its first RPC. The kernel must then show a TCP connection to the server that
// the child holds itself, other than the parent's: a READY that only repeats
// the parent's state, or rides on the parent's connection, fails.
int ChannelApi(const Options& o) {
  const int server_port = PortOf(o.target);
  auto channel = grpc::CreateChannel(o.target, grpc::InsecureChannelCredentials());
  auto stub = forksafe::echo::Echo::NewStub(channel);
  Say(*stub, o, "parent-before");
  std::vector<int> parent_ports = OwnConnections(server_port);
  Check(channel->GetState(false) == GRPC_CHANNEL_READY && !parent_ports.empty(),
        "parent READY with its own connection(s) " + PortList(parent_ports));

  pid_t pid = ForkChild([&] {
    grpc_connectivity_state first = channel->GetState(true);
    std::printf("child pid=%d GetState(true) on the inherited channel: %s\n", getpid(),
                StateName(first));
    auto deadline = std::chrono::system_clock::now() + std::chrono::milliseconds(o.deadline_ms);
    Check(channel->WaitForConnected(deadline), "WaitForConnected before the deadline");
    grpc_connectivity_state now = channel->GetState(false);
    Check(now == GRPC_CHANNEL_READY, std::string("GetState(false) is READY (") + StateName(now) + ")");

    std::vector<int> mine = OwnConnections(server_port);
    bool shared = false;
    for (int p : mine) shared = shared || Contains(parent_ports, p);
    Check(!mine.empty() && !shared, "at READY the child holds connection(s) " + PortList(mine) +
                                        " of its own, the parent " + PortList(parent_ports));

    std::string lb = channel->GetLoadBalancingPolicyName();
    Check(!lb.empty(), "GetLoadBalancingPolicyName \"" + lb + "\"");
    std::string config = channel->GetServiceConfigJSON();
    std::printf("child pid=%d GetServiceConfigJSON: \"%s\"\n", getpid(), config.c_str());

    Reply r;
    if (SayExpect(*stub, o, "child-1", Expect(), &r))
      Check(Contains(mine, PortOf(r.peer())),
            "the child's RPC used the connection it was READY on " + PortList(mine));
    Say(*stub, o, "child-2");
    return 0;
  });
  WaitChild(pid, "child");
  Check(channel->GetState(false) == GRPC_CHANNEL_READY, "parent still READY");
  Check(OwnConnections(server_port) == parent_ports,
        "parent still holds its connection(s) " + PortList(parent_ports));
  ParentAfter(*stub, o);
  return 0;
}

// The program bounds the size of a reply and prefixes its user agent. A child
// using the inherited stub must get both: a reply over the bound fails with
// RESOURCE_EXHAUSTED (it would succeed on a channel made without the bound),
// and the server sees the prefix.
int ChannelArgs(const Options& o) {
  const int kMaxReceive = 4096;
  const std::string kAgent = "forksafe-test";
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(kMaxReceive);
  args.SetUserAgentPrefix(kAgent);
  auto stub = forksafe::echo::Echo::NewStub(
      grpc::CreateCustomChannel(o.target, grpc::InsecureChannelCredentials(), args));

  Expect small;
  small.check = [&](const Reply& r) {
    return r.user_agent().compare(0, kAgent.size(), kAgent) == 0
               ? std::string()
               : "user agent \"" + r.user_agent() + "\" lacks the prefix " + kAgent;
  };
  Expect big;
  big.payload.assign(8 * kMaxReceive, 'x');  // echoed back: a reply 8 times over the bound
  big.code = grpc::StatusCode::RESOURCE_EXHAUSTED;

  SayExpect(*stub, o, "parent-before-small", small);
  SayExpect(*stub, o, "parent-before-big", big);
  pid_t pid = ForkChild([&] {
    SayExpect(*stub, o, "child-small-1", small);
    SayExpect(*stub, o, "child-big", big);
    SayExpect(*stub, o, "child-small-2", small);
    return 0;
  });
  WaitChild(pid, "child");
  SayExpect(*stub, o, "parent-after-small", small);
  SayExpect(*stub, o, "parent-after-big", big);
  return 0;
}

// The child's first call goes to the inherited stub and is reported, not
// judged (the harness judges it: under the default policy it must succeed,
// under the close policy it must fail at once); then the child makes its own
// channel, which must work.
int InheritedThenNew(const Options& o) {
  auto stub = NewStub(o);
  Say(*stub, o, "parent-before");
  pid_t pid = ForkChild([&] {
    Attempt(*stub, o, "child-inherited-1");
    auto fresh = NewStub(o);
    for (int i = 1; i <= 2; i++) Say(*fresh, o, "child-new-" + std::to_string(i));
    return 0;
  });
  WaitChild(pid, "child");
  ParentAfter(*stub, o);
  return 0;
}

}  // namespace fc
