// fork-client: an ordinary grpc++ client of the echo service that forks.
//
// Usage: fork-client SCENARIO --target HOST:PORT [--run ID] [--deadline-ms N] [--ca FILE]
//                   [--forks N] [--threads N] [--rpcs N]
//   SCENARIO: new-channel inherited-stub inherited-release parent-during child-no-grpc-exit
//             child-no-grpc-_exit fork-exec posix-spawn twenty-channels
//             busy-thread daemon forkpty generations channel-api channel-args
//             inherited-then-new async-cq tls-composite parent-destroys clone
//             busy-stream-no-grpc sync-threads async-thread fork-threads fork-storm
//             held-in-grpc channel-churn channel-churn-bare register-churn
//             fork-threads-busy inflight-async inflight-sync-stream sync-server
//             sync-server-forks callback-server callback-chain
//   --run          prefix of every request tag (default: the scenario name)
//   --deadline-ms  deadline of every RPC (default 2000)
//   --ca           PEM root certificates of a TLS server (tls-composite)
//   --forks        how many children: fork-storm (40), sync-server-forks (10), channel-churn (10),
//                  channel-churn-bare (30), register-churn (10)
//   --threads      sync-threads (8), fork-storm (4): threads making RPCs;
//                  channel-churn (1), channel-churn-bare (2): threads making
//                  channels; fork-threads, fork-threads-busy: threads forking (4)
//   --rpcs         sync-threads (300 per thread), async-thread (2000): RPCs made
// Prints one line per RPC ("<role> pid=<pid> <run>:<tag>: ok peer=<peer>" or
// "...: FAIL <CODE>(<n>) \"<message>\"") and exits 0 only if every RPC in
// every process succeeded and every child exited as expected.
//
// Modes used by the scenarios themselves, in exec'd or spawned copies:
//   fork-client rpc --target T --run ID --role ROLE --tag TAG
//   fork-client daemon-worker --target T --run ID --role parent

#include <limits.h>
#include <stdlib.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "scenarios.h"

namespace {

int Usage() {
  std::fprintf(stderr,
               "usage: fork-client SCENARIO --target HOST:PORT [--run ID] [--deadline-ms N]\n"
               "                   [--ca FILE] [--forks N] [--threads N] [--rpcs N]\n"
               "scenarios: new-channel inherited-stub inherited-release parent-during\n"
               "           child-no-grpc-exit child-no-grpc-_exit fork-exec posix-spawn\n"
               "           twenty-channels busy-thread daemon forkpty generations\n"
               "           channel-api channel-args inherited-then-new async-cq tls-composite\n"
               "           parent-destroys clone busy-stream-no-grpc beyond-bound sync-threads async-thread\n"
               "           fork-threads fork-storm held-in-grpc channel-churn\n"
               "           channel-churn-bare register-churn fork-threads-busy\n"
               "           inflight-async inflight-sync-stream sync-server sync-server-forks\n"
               "           callback-server"
               " callback-chain\n");
  return 2;
}

// Where this program is, for exec and posix_spawn of itself.
std::string SelfPath(const char* argv0) {
  char buf[PATH_MAX];
  if (std::strchr(argv0, '/') != nullptr && realpath(argv0, buf) != nullptr) return buf;
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return argv0;
  buf[n] = '\0';
  return buf;
}

}  // namespace

int main(int argc, char** argv) {
  // Line-buffered even into a file, so lines of parent and child interleave
  // in the order they happened.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // A process that writes to a pipe its peer has closed gets EPIPE and
  // reports it, instead of dying silently.
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) return Usage();

  const std::string scenario = argv[1];
  fc::Options o;
  o.run = scenario;
  o.self = SelfPath(argv[0]);
  std::string tag = "-";
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--target") o.target = v;
    else if (a == "--run") o.run = v;
    else if (a == "--deadline-ms") o.deadline_ms = std::atoi(v.c_str());
    else if (a == "--role") fc::SetRole(v);
    else if (a == "--tag") tag = v;
    else if (a == "--ca") o.ca_file = v;
    else if (a == "--forks") o.forks = std::atoi(v.c_str());
    else if (a == "--threads") o.threads = std::atoi(v.c_str());
    else if (a == "--rpcs") o.rpcs = std::atoi(v.c_str());
    else return Usage();
  }
  if (o.target.empty() || o.deadline_ms <= 0 || o.forks < 0 || o.threads < 0 || o.rpcs < 0)
    return Usage();

  int rc;
  if (scenario == "rpc") {
    rc = fc::OneRpc(o, tag);
  } else if (scenario == "daemon-worker") {
    rc = fc::DaemonWorker(o);
  } else {
    static const std::map<std::string, int (*)(const fc::Options&)> kScenarios = {
        {"new-channel", fc::NewChannel},
        {"inherited-stub", fc::InheritedStub},
        {"inherited-release", fc::InheritedRelease},
        {"parent-during", fc::ParentDuring},
        {"child-no-grpc-exit", fc::ChildNoGrpcExit},
        {"child-no-grpc-_exit", fc::ChildNoGrpcUnderscoreExit},
        {"fork-exec", fc::ForkExec},
        {"posix-spawn", fc::PosixSpawn},
        {"twenty-channels", fc::TwentyChannels},
        {"busy-thread", fc::BusyThread},
        {"daemon", fc::Daemon},
        {"forkpty", fc::ForkPty},
        {"generations", fc::Generations},
        {"channel-api", fc::ChannelApi},
        {"channel-args", fc::ChannelArgs},
        {"inherited-then-new", fc::InheritedThenNew},
        {"async-cq", fc::AsyncCq},
        {"tls-composite", fc::TlsComposite},
        {"parent-destroys", fc::ParentDestroys},
        {"clone", fc::Clone},
        {"busy-stream-no-grpc", fc::BusyStreamNoGrpc},
        {"beyond-bound", fc::BeyondBound},
        {"sync-threads", fc::SyncThreads},
        {"async-thread", fc::AsyncThread},
        {"fork-threads", fc::ForkThreads},
        {"fork-storm", fc::ForkStorm},
        {"held-in-grpc", fc::HeldInGrpc},
        {"channel-churn", fc::ChannelChurn},
        {"channel-churn-bare", fc::ChannelChurnBare},
        {"register-churn", fc::RegisterChurn},
        {"fork-threads-busy", fc::ForkThreadsBusy},
        {"inflight-async", fc::InflightAsync},
        {"inflight-sync-stream", fc::InflightSyncStream},
        {"sync-server", fc::SyncServer},
        {"sync-server-forks", fc::SyncServerForks},
        {"callback-server", fc::CallbackServer},
        {"callback-chain", fc::CallbackChain},
    };
    auto it = kScenarios.find(scenario);
    if (it == kScenarios.end()) return Usage();
    rc = it->second(o);
    // Only the process the harness started reports the verdict; children
    // leave from inside the scenario.
    int failures = fc::Failures();
    if (rc == 0 && failures == 0)
      std::printf("RESULT pid=%d %s: ok\n", getpid(), scenario.c_str());
    else
      std::printf("RESULT pid=%d %s: FAIL (%d failed calls or checks)\n", getpid(),
                  scenario.c_str(), failures + (rc != 0 && failures == 0));
  }
  return rc == 0 && fc::Failures() == 0 ? 0 : 1;
}
