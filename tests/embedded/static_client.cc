// static-client: a grpc++ client of the echo service with gRPC compiled in
// (linked with libgrpc.a), that forks with a live channel. It knows nothing
// of any preload shim; it reports, one line per call, what each process
// experienced, so that a harness can judge the run against what the server
// and the kernel saw.
//
// A child makes exactly one call, on the channel it inherited, and then no
// more use of gRPC: with gRPC compiled in, gRPC's own threads (timers,
// executor) are not copied by fork() and nothing can restart them, so a
// child's gRPC can do no more than find out, at once, that its inherited
// connection is gone. That one call is what every scenario exercises.
//
// Usage: static-client SCENARIO --target HOST:PORT [--run ID] [--deadline-ms N]
//                      [--attempt-ms N] [--sink PORT] [--forks N]
//   basic   the child calls once on the inherited channel; the parent calls
//           on its channel afterwards
//   leak    as basic, but the child first connects to the byte sink at --sink,
//           and after its call writes a marker of its own there
//   stream  the fork happens while a thread of the parent reads a server
//           stream; the child calls once on the inherited channel, and how
//           that ends is reported, not judged
//   forks   --forks children (10) one after the other, each calling once on
//           the inherited channel, the parent calling between them
//   --deadline-ms  deadline of the parent's calls (2000)
//   --attempt-ms   deadline of the child's call (500)
// Lines: "<role> pid=<pid> <run>:<tag>: ..." per call (see client.h and
// bounded.h), "... <run>:parent-connection: ..." for the parent's connection
// before and after, and "RESULT pid=<pid> <scenario>: ok|FAIL ...". Exits 0
// only if every check of every process passed.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bounded.h"
#include "client.h"
#include "fdtable.h"
#include "status_name.h"

namespace {

struct Config {
  fc::Options o;          // the parent's calls
  fc::Options child;      // a child's call: the same, with a short deadline
  int sink_port = -1;     // leak: the byte sink
  int forks = 10;         // forks: how many children
  // How long a child's one call may take before the child counts as hung:
  // its deadline plus a margin for a loaded machine (memcheck gets a longer
  // deadline, so a longer bound). The deadline itself cannot end the call:
  // gRPC's timer thread is not there in the child.
  int ChildBoundMs() const { return child.deadline_ms + 1500; }
  // How long the parent waits for a child: the child's bound, plus its exit.
  int ChildWaitMs() const { return ChildBoundMs() + 3000; }
};

// The parent's connection to the server, by the server's account (the peer
// port it reported for each call) and by the kernel's (this process's
// established connections to the server's port).
class ConnectionWatch {
 public:
  explicit ConnectionWatch(const fc::Options& o) : o_(o), server_port_(fc::PortOf(o.target)) {}

  // A parent call; its peer is noted.
  bool Say(fc::Stub& stub, const std::string& tag) {
    fc::Reply reply;
    calls_++;
    bool ok = fc::SayExpect(stub, o_, tag, fc::Expect(), &reply);
    if (ok) peers_.push_back(fc::PortOf(reply.peer()));
    return ok;
  }
  // A call made elsewhere (a stream), and the peer it reported, if it succeeded.
  void Note(bool ok, const std::string& peer) {
    calls_++;
    if (ok) peers_.push_back(fc::PortOf(peer));
  }
  void KernelBefore() { before_ = Kernel(); }

  // "...: same connection throughout" when every call succeeded over one
  // connection, the one the kernel showed before the fork and still shows;
  // else a counted failure.
  void Judge() {
    std::vector<int> after = Kernel();
    std::set<int> distinct(peers_.begin(), peers_.end());
    std::string facts = std::to_string(peers_.size()) + " of " + std::to_string(calls_) +
                        " calls ok, peer ports " + fc::PortList(peers_) + ", kernel before " +
                        fc::PortList(before_) + " after " + fc::PortList(after);
    const std::string line = o_.run + ":parent-connection: ";
    if (static_cast<int>(peers_.size()) == calls_ && distinct.size() == 1 && before_.size() == 1 &&
        before_ == after && *distinct.begin() == before_[0])
      std::printf("parent pid=%d %ssame connection throughout (%s)\n", getpid(), line.c_str(),
                  facts.c_str());
    else
      fc::Fail(line + "not one unchanged connection (" + facts + ")");
  }

 private:
  // The local ports of this process's connections to the server. The kernel
  // hands /proc/net/tcp out in pieces, and while other connections come and
  // go a line can come twice; a local port belongs to one connection to the
  // server at most, so each counts once.
  std::vector<int> Kernel() const {
    std::vector<int> ports = fc::OwnConnections(server_port_);
    ports.erase(std::unique(ports.begin(), ports.end()), ports.end());
    return ports;
  }

  const fc::Options& o_;
  int server_port_;
  int calls_ = 0;
  std::vector<int> peers_;
  std::vector<int> before_;
};

// In a child: runs work (its one gRPC call) bounded in time. A child whose
// gRPC hangs says so and goes on; it leaves with _exit (below), since nothing
// may unwind past a call still stuck inside gRPC.
void BoundedGrpc(const Config& c, const std::function<void()>& work) {
  if (!emb::RunBounded(work, c.ChildBoundMs()))
    fc::Fail(c.o.run + ":child-grpc: still inside gRPC after " + std::to_string(c.ChildBoundMs()) +
             " ms, its deadline (" + std::to_string(c.child.deadline_ms) + " ms) long past: hung");
}

// Forks a child that first checks, by the kernel's account, that every
// descriptor gRPC held at the fork no longer reaches the parent's objects
// (all of this process's descriptors but 0, 1 and 2 are gRPC's: main closed
// the rest), then runs work.
pid_t ForkBounded(const Config& c, const std::function<void()>& work) {
  const std::map<int, std::string> before = emb::FdIdentities();
  return fc::ForkChild(
      [&] {
        emb::CheckInheritedDead(before, c.o.run + ":inherited-fds");
        BoundedGrpc(c, work);
        return 0;
      },
      fc::ChildExit::kUnderscoreExit);
}

// A child's one call on the channel it inherited, tagged "<run>:<tag>":
// reported, not counted, for the harness to judge; after it the child leaves
// gRPC alone.
void InheritedCall(const Config& c, fc::Stub& inherited, const std::string& tag) {
  emb::AttemptSay(inherited, c.child, tag);
}

int Basic(const Config& c) {
  ConnectionWatch watch(c.o);
  auto stub = fc::NewStub(c.o);
  if (!watch.Say(*stub, "parent-before")) return 1;
  watch.KernelBefore();
  pid_t pid = ForkBounded(c, [&] { InheritedCall(c, *stub, "child-inherited"); });
  emb::WaitChildWithin(pid, "child", c.ChildWaitMs());
  for (int i = 1; i <= 3; i++) watch.Say(*stub, "parent-after-" + std::to_string(i));
  watch.Judge();
  return 0;
}

// A TCP connection of the program's own, to the byte sink. A plain function
// of the program, named and typed without any gRPC in it.
int ConnectSink(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sin = {};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<struct sockaddr*>(&sin), sizeof sin) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int LocalPort(int fd) {
  struct sockaddr_in sin = {};
  socklen_t len = sizeof sin;
  if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&sin), &len) != 0) return -1;
  return ntohs(sin.sin_port);
}

// The child connects to the sink before it touches gRPC: a descriptor gRPC
// in the child might mistake for one of its own. Whatever gRPC does, the
// sink must then receive the child's own marker and nothing else.
int Leak(const Config& c) {
  ConnectionWatch watch(c.o);
  auto stub = fc::NewStub(c.o);
  if (!watch.Say(*stub, "parent-before")) return 1;
  watch.KernelBefore();
  const std::string line = c.o.run + ":sink: ";
  const std::map<int, std::string> before = emb::FdIdentities();
  pid_t pid = fc::ForkChild(
      [&] {
        emb::CheckInheritedDead(before, c.o.run + ":inherited-fds");
        int sink = ConnectSink(c.sink_port);
        if (sink < 0) {
          fc::Fail(line + "cannot connect to the sink: " + std::strerror(errno));
          return 1;
        }
        std::printf("child pid=%d %sconnected from port %d on fd %d\n", getpid(), line.c_str(),
                    LocalPort(sink), sink);
        BoundedGrpc(c, [&] { InheritedCall(c, *stub, "child-inherited"); });
        const std::string marker = "marker from child " + std::to_string(getpid()) + "\n";
        ssize_t n = write(sink, marker.data(), marker.size());
        if (n == static_cast<ssize_t>(marker.size()))
          std::printf("child pid=%d %swrote %zd bytes from port %d\n", getpid(), line.c_str(), n,
                      LocalPort(sink));
        else
          fc::Fail(line + "the child's own connection is broken: write: " +
                   (n < 0 ? std::strerror(errno) : "short"));
        close(sink);
        return 0;
      },
      fc::ChildExit::kUnderscoreExit);
  emb::WaitChildWithin(pid, "child", c.ChildWaitMs());
  for (int i = 1; i <= 3; i++) watch.Say(*stub, "parent-after-" + std::to_string(i));
  watch.Judge();
  return 0;
}

// The fork happens while a thread of the parent is inside gRPC, reading a
// server stream. The child calls once on the inherited channel, whose
// connection carries that stream: with stock gRPC its request goes out on
// the parent's connection, in the middle of the parent's stream. How that
// call ends is not judged: the reader thread may hold one of gRPC's locks at
// the fork, and the child's copy of it is then never released.
int Stream(const Config& c) {
  const int kReplies = 30, kIntervalMs = 40;
  ConnectionWatch watch(c.o);
  auto stub = fc::NewStub(c.o);
  if (!watch.Say(*stub, "parent-before")) return 1;
  watch.KernelBefore();
  fc::Gate first_reply;
  const std::string tag = c.o.run + ":parent-stream";
  std::string stream_peer;
  bool stream_ok = false;
  std::thread reader([&] {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(kReplies * kIntervalMs + c.ChildWaitMs()));
    forksafe::echo::CountRequest req;
    req.set_pid(getpid());
    req.set_tag(tag);
    req.set_count(kReplies);
    req.set_interval_ms(kIntervalMs);
    auto stream = stub->Count(&ctx, req);
    fc::Reply reply;
    int n = 0, foreign = 0;
    while (stream->Read(&reply)) {
      if (reply.tag() != tag) foreign++;
      stream_peer = reply.peer();
      if (++n == 1) first_reply.Arrive();
    }
    grpc::Status st = stream->Finish();
    stream_ok = st.ok() && n == kReplies && foreign == 0;
    if (stream_ok)
      std::printf("parent pid=%d %s: ok %d replies peer=%s\n", getpid(), tag.c_str(), n,
                  stream_peer.c_str());
    else
      fc::Fail(tag + ": " + std::to_string(n) + " of " + std::to_string(kReplies) + " replies (" +
               std::to_string(foreign) + " for another call), stream ended " +
               CodeName(st.error_code()) + " \"" + st.error_message() + "\"");
    first_reply.Arrive();  // never leave the main thread waiting
  });
  pid_t pid = -1;
  if (first_reply.WaitFor(1, c.o.deadline_ms)) {
    // No check of the inherited descriptors here: the reader thread is
    // inside gRPC, which may open or close one between the look and the fork.
    pid = fc::ForkChild(
        [&] {
          BoundedGrpc(c, [&] { InheritedCall(c, *stub, "child-inherited"); });
          return 0;
        },
        fc::ChildExit::kUnderscoreExit);
    // Reported, not judged: whatever gRPC does in this child (fail, hang,
    // crash), the parent's stream must not notice.
    emb::WaitChildWithin(pid, "child", c.ChildWaitMs(), emb::kAnyStatus);
  } else {
    fc::Fail(tag + ": no reply within " + std::to_string(c.o.deadline_ms) + " ms: nothing forked");
  }
  reader.join();
  watch.Note(stream_ok, stream_peer);
  watch.Say(*stub, "parent-after-1");
  watch.Judge();
  return 0;
}

// Children one after the other, each calling once on the inherited
// channel, which the parent has used again since the last fork; the parent
// calls between them. The first child that hangs ends the series: the rest
// would only repeat it, each at the cost of the child's bound. A child that
// failed otherwise does not: the harness judges every child.
int Forks(const Config& c) {
  ConnectionWatch watch(c.o);
  auto stub = fc::NewStub(c.o);
  if (!watch.Say(*stub, "parent-before")) return 1;
  watch.KernelBefore();
  int ok = 0;
  for (int i = 1; i <= c.forks; i++) {
    const std::string name = "child" + std::to_string(i);
    pid_t pid = ForkBounded(c, [&] { InheritedCall(c, *stub, name + "-inherited"); });
    bool hung = false;
    ok += emb::WaitChildWithin(pid, name, c.ChildWaitMs(), 0, &hung);
    watch.Say(*stub, "parent-after-" + std::to_string(i));
    if (hung || pid < 0) break;
  }
  std::printf("parent pid=%d %s:forks: %d children, %d exited 0\n", getpid(), c.o.run.c_str(),
              c.forks, ok);
  watch.Judge();
  return 0;
}

int Usage() {
  std::fprintf(stderr,
               "usage: static-client basic|leak|stream|forks --target HOST:PORT [--run ID]\n"
               "                     [--deadline-ms N] [--attempt-ms N] [--sink PORT] [--forks N]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  // Descriptors this process was started with (a job server's pipe, a CI
  // runner's log) are not gRPC's: closed, so that every descriptor above 2
  // at a fork is gRPC's (see ForkBounded).
  close_range(3, ~0U, 0);
  // Line-buffered even into a file, so lines of parent and child interleave
  // in the order they happened.
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  // A write on a connection whose peer is gone is reported, not fatal.
  std::signal(SIGPIPE, SIG_IGN);
  if (argc < 2) return Usage();
  const std::string scenario = argv[1];
  Config c;
  c.o.run = scenario;
  int attempt_ms = 500;
  for (int i = 2; i < argc; i++) {
    std::string a = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (a == "--target") c.o.target = v;
    else if (a == "--run") c.o.run = v;
    else if (a == "--deadline-ms") c.o.deadline_ms = std::atoi(v.c_str());
    else if (a == "--attempt-ms") attempt_ms = std::atoi(v.c_str());
    else if (a == "--sink") c.sink_port = std::atoi(v.c_str());
    else if (a == "--forks") c.forks = std::atoi(v.c_str());
    else return Usage();
  }
  c.child = c.o;
  c.child.deadline_ms = attempt_ms;
  if (c.o.target.empty() || c.o.deadline_ms <= 0 || attempt_ms <= 0 || c.forks <= 0 ||
      (scenario == "leak" && c.sink_port <= 0))
    return Usage();

  static const std::map<std::string, int (*)(const Config&)> kScenarios = {
      {"basic", Basic}, {"leak", Leak}, {"stream", Stream}, {"forks", Forks}};
  auto it = kScenarios.find(scenario);
  if (it == kScenarios.end()) return Usage();
  int rc = it->second(c);
  int failures = fc::Failures();
  if (rc == 0 && failures == 0)
    std::printf("RESULT pid=%d %s: ok\n", getpid(), scenario.c_str());
  else
    std::printf("RESULT pid=%d %s: FAIL (%d failed calls or checks)\n", getpid(), scenario.c_str(),
                failures + (rc != 0 && failures == 0));
  return rc == 0 && failures == 0 ? 0 : 1;
}
