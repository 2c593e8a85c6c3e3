// Shared pieces of fork-client: an ordinary grpc++ program that forks in the
// ways real programs do. It knows nothing of any preload shim; it only
// reports, one line per RPC, what each process experienced, so that a harness
// can judge the run from the outside.
#pragma once

#include <sys/types.h>

#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"

namespace fc {

using Stub = forksafe::echo::Echo::Stub;
using Reply = forksafe::echo::SayReply;

struct Options {
  std::string target;        // host:port of the echo server
  std::string run;           // prefix of every tag, so one server log can hold many runs
  std::string self;          // absolute path of this program, for exec and spawn
  int deadline_ms = 2000;    // every RPC has one, so a broken channel fails instead of hanging
  std::string ca_file;       // PEM root certificates, for the scenarios that use TLS
  // Sizes of the multi-threaded scenarios; 0: the scenario's own default.
  int forks = 0;             // fork-storm: how many children
  int threads = 0;           // threads making RPCs (or forking, in fork-threads)
  int rpcs = 0;              // sync-threads, async-thread: RPCs per thread
};

// The process's role in the report ("parent", "child", ...). A forked child
// changes it; an exec'd or spawned copy of this program gets it from --role.
void SetRole(const std::string& role);
const std::string& Role();

// What a freshly forked process calls first: role "child", no failures yet
// (the parent's are the parent's to report).
void BecomeChild();

// Calls made in this process that did not succeed (RPCs and checks alike).
int Failures();

// Records a failed check (not an RPC) in this process, with a readable reason.
void Fail(const std::string& what);

// A stub on a channel of its own. index >= 0 sets the channel argument
// "forksafe.test.index", which keeps gRPC from sharing the TCP connection
// with channels that have another index.
std::unique_ptr<Stub> NewStub(const Options& o, int index = -1);

// One unary Say call tagged "<run>:<tag>", printed as one line.
bool Say(Stub& stub, const Options& o, const std::string& tag);

// What a call must come to, beyond echoing its tag and payload.
struct Expect {
  std::string payload;                              // sent and echoed; empty: the full tag
  grpc::StatusCode code = grpc::StatusCode::OK;     // the status it must end with
  // For a successful call: "" if the reply is right, else what is wrong with it.
  std::function<std::string(const Reply&)> check;
  // Call credentials for this call alone (ClientContext::set_credentials).
  std::shared_ptr<grpc::CallCredentials> call_creds;
};

// One unary Say call tagged "<run>:<tag>" that must come to `expect`; printed
// as one line ("...: ok peer=<peer>", or "...: ok, failed as expected CODE(n)
// \"message\"", or "...: FAIL ..."). The reply is copied to *out if given.
bool SayExpect(Stub& stub, const Options& o, const std::string& tag, const Expect& expect,
               Reply* out = nullptr);

// The same call on an asynchronous stub: PrepareAsyncSay, StartCall, Finish,
// and cq.AsyncNext with a bounded deadline. A completion that never comes is
// reported and the process leaves with status 3 (its queue cannot be destroyed
// safely with a call still pending).
bool AsyncSay(Stub& stub, grpc::CompletionQueue& cq, const Options& o, const std::string& tag,
              Reply* out = nullptr);

// As Say, but prints nothing when the call succeeds: for threads that make
// RPCs nonstop. A failure is printed and counted as usual.
bool SayQuiet(Stub& stub, const Options& o, const std::string& tag);

// The request Say sends for the call tagged "<run>:<tag>", for calls made
// through another API (a generic stub, a method registered by hand, an
// asynchronous call finished later).
forksafe::echo::SayRequest SayRequestFor(const Options& o, const std::string& tag);

// Judges such a call's outcome as Say judges its own, and prints its line
// (nothing when it succeeded and quiet is set).
bool CheckSay(const forksafe::echo::SayRequest& req, const grpc::Status& st, const Reply& reply,
              bool quiet = false);

// One Say call whose outcome is reported, not judged: "...: attempt OK in
// <ms> ms peer=<peer>" or "...: attempt <CODE>(<n>) \"<message>\" in <ms> ms".
// It counts as no failure; the harness judges the line.
void Attempt(Stub& stub, const Options& o, const std::string& tag);

// Shuts cq down and drains it, with a bounded wait; false (and a counted
// failure) if it did not drain.
bool DrainQueue(grpc::CompletionQueue& cq, const std::string& what);

// The port of a "host:port" target, or of a peer as gRPC reports it
// ("ipv4:127.0.0.1:40000"); -1 if there is none.
int PortOf(const std::string& address);

// The local ports of this process's own ESTABLISHED TCP connections to
// remote_port, from /proc/self/fd and /proc/self/net/tcp{,6}: what the kernel
// says this process holds, whatever gRPC believes.
std::vector<int> OwnConnections(int remote_port);

// "[40000 40002]"
std::string PortList(const std::vector<int>& ports);

// The text of a file, or "" if it cannot be read.
std::string ReadFile(const std::string& path);

enum class ChildExit { kExit, kUnderscoreExit };

// Forks; the child runs body and leaves with status 0 only if body returned 0
// and none of its RPCs failed. Returns the child's pid to the parent.
pid_t ForkChild(const std::function<int()>& body, ChildExit how = ChildExit::kExit);

// Waits for pid and checks that it exited with want_status.
bool WaitChild(pid_t pid, const std::string& what, int want_status = 0);

// As WaitChild, for at most timeout_ms: a child still running then has hung.
// It is reported as such ("... still running after N ms (hang): FAIL"), killed
// and reaped, and counted as a failure.
bool WaitChildWithin(pid_t pid, const std::string& what, int timeout_ms, int want_status = 0);

// One byte over a pipe, so that processes or threads take turns without
// sleeping. AwaitTurn is false once the other side has closed the pipe.
bool SendTurn(int fd);
bool AwaitTurn(int fd);

// A count that threads raise and other threads wait on (a condition
// variable, never a sleep): "every worker has made its first RPC", or, when
// each worker waits for all, a barrier that releases them together.
class Gate {
 public:
  void Arrive();
  // True once the count has reached n; false if timeout_ms passed first.
  bool WaitFor(int n, int timeout_ms);

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int count_ = 0;
};

// The calling thread's kernel id.
pid_t ThreadId();

// Waits until thread `tid` of this process is asleep in the kernel (state S
// in /proc/self/task/TID/stat), polling; false after timeout_ms. A thread
// that has just signalled that it is about to call into gRPC, and does
// nothing else that can block, is then blocked inside gRPC.
bool AwaitBlocked(pid_t tid, int timeout_ms);

// Describes a waitpid status: "exited 0", "killed by signal 9".
std::string DescribeStatus(int status);

}  // namespace fc
