// The fork-client scenarios. Each runs in the process the harness started
// (the "parent"), forks or spawns as its name says, and returns nonzero on a
// failure that is not already counted by fc::Failures().
#pragma once

#include "client.h"

namespace fc {

// Plain fork() (scenarios_fork.cc).
int NewChannel(const Options& o);
int InheritedStub(const Options& o);
int InheritedRelease(const Options& o);
int ParentDuring(const Options& o);
int ChildNoGrpcExit(const Options& o);
int ChildNoGrpcUnderscoreExit(const Options& o);
int TwentyChannels(const Options& o);

// Channels destroyed around a fork; a fork by clone() (scenarios_lifecycle.cc).
int ParentDestroys(const Options& o);
int Clone(const Options& o);

// Descendants of descendants, each using what it inherited (scenarios_generations.cc).
int Generations(const Options& o);

// What a channel carries into a child besides its target (scenarios_channel.cc):
// its connectivity API, its arguments, and the first call a child makes on it.
int ChannelApi(const Options& o);
int ChannelArgs(const Options& o);
int InheritedThenNew(const Options& o);

// TLS with call credentials composed in, the credentials dropped by the
// program at once (scenarios_tls.cc). Needs --ca and a TLS server.
int TlsComposite(const Options& o);

// The asynchronous API: a completion queue and stub made before the fork
// (scenarios_async.cc).
int AsyncCq(const Options& o);

// fork() while another thread is blocked in gRPC (scenarios_threads.cc).
int BusyThread(const Options& o);
int BusyStreamNoGrpc(const Options& o);
int BeyondBound(const Options& o);

// fork() while threads are busy in gRPC, or from several threads at once
// (scenarios_busy.cc); again and again (scenarios_storm.cc).
int SyncThreads(const Options& o);
int AsyncThread(const Options& o);
int ForkThreads(const Options& o);
int ForkStorm(const Options& o);

// fork() while other threads create and destroy channels, register methods,
// or make RPCs while several threads fork; fork() from a thread with an RPC of
// its own in flight (scenarios_concurrency.cc).
int ChannelChurn(const Options& o);
int ChannelChurnBare(const Options& o);
int RegisterChurn(const Options& o);
int ForkThreadsBusy(const Options& o);
int InflightAsync(const Options& o);
int InflightSyncStream(const Options& o);

// fork() while a thread is held inside gRPC where nothing can wake it
// (scenarios_quiesce.cc).
int HeldInGrpc(const Options& o);

// fork() from a process that serves (grpc++ synchronous or callback server),
// or whose callback-API calls start each other (scenarios_serving.cc).
int SyncServer(const Options& o);
int SyncServerForks(const Options& o);
int CallbackServer(const Options& o);
int CallbackChain(const Options& o);

// Processes made by exec, posix_spawn, or forks inside libc (scenarios_libc.cc).
int ForkExec(const Options& o);
int PosixSpawn(const Options& o);
int Daemon(const Options& o);
int ForkPty(const Options& o);

// The parent's three RPCs on its original stub once its child is gone.
void ParentAfter(Stub& stub, const Options& o);

// Helpers for the above, also used by exec'd and spawned copies of fork-client.
int OneRpc(const Options& o, const std::string& tag);  // mode "rpc"
int DaemonWorker(const Options& o);                     // mode "daemon-worker"

}  // namespace fc
