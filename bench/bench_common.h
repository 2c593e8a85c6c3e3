// Helpers shared by the benchmark programs in bench/. Each program prints its
// result as one line of key=value pairs, which bench/run-bench.sh parses.
#ifndef FORKSAFE_BENCH_COMMON_H
#define FORKSAFE_BENCH_COMMON_H

#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "echo.grpc.pb.h"
#include "status_name.h"

namespace bench {

using forksafe::echo::Echo;

// CLOCK_MONOTONIC is one clock for the whole machine, so a time taken in a
// parent before fork() can be compared with one taken in the child.
inline int64_t NowNs() {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec;
}

// A channel to `target`. With distinct >= 0 the channel gets a channel
// argument of its own, so gRPC's subchannel pool cannot hand it an existing
// connection: it opens its own TCP connection. With -1 it is a plain channel,
// as an ordinary application creates it.
inline std::shared_ptr<grpc::Channel> NewChannel(const std::string& target, int distinct = -1) {
  grpc::ChannelArguments args;
  if (distinct >= 0) args.SetInt("forksafe.bench.channel", distinct);
  return grpc::CreateCustomChannel(target, grpc::InsecureChannelCredentials(), args);
}

// A grpc++ synchronous echo server inside the benchmark's own process, on a
// free port of 127.0.0.1: Say echoes the tag and payload.
class SyncEchoServer {
 public:
  bool Start() {
    grpc::ServerBuilder builder;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port_);
    builder.RegisterService(&service_);
    server_ = builder.BuildAndStart();
    return server_ != nullptr && port_ > 0;
  }
  std::string Target() const { return "127.0.0.1:" + std::to_string(port_); }
  void Stop() {
    if (server_ != nullptr) server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  }

 private:
  class Service final : public Echo::Service {
    grpc::Status Say(grpc::ServerContext*, const forksafe::echo::SayRequest* req,
                     forksafe::echo::SayReply* reply) override {
      reply->set_server_pid(getpid());
      reply->set_tag(req->tag());
      reply->set_payload(req->payload());
      return grpc::Status::OK;
    }
  };
  Service service_;
  std::unique_ptr<grpc::Server> server_;
  int port_ = 0;
};

// One unary Say RPC with the given deadline.
inline grpc::Status Say(Echo::Stub* stub, const std::string& tag, int64_t deadline_ms) {
  forksafe::echo::SayRequest req;
  req.set_pid(getpid());
  req.set_tag(tag);
  forksafe::echo::SayReply reply;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(deadline_ms));
  return stub->Say(&ctx, req, &reply);
}


// "CODE: message" with spaces replaced, so it stays one key=value token.
inline std::string Describe(const grpc::Status& s) {
  std::string out = std::string(CodeName(s.error_code())) + ":" + s.error_message();
  std::replace(out.begin(), out.end(), ' ', '_');
  return out;
}

// The calling thread's kernel id.
inline pid_t ThreadId() { return static_cast<pid_t>(syscall(SYS_gettid)); }

// Waits until thread `tid` of this process is asleep in the kernel (state S
// in /proc/self/task/TID/stat), polling every 100 µs; false after timeout_ms.
// A thread that has just said it is about to wait inside gRPC, and does
// nothing else that can block, is then waiting inside gRPC.
inline bool AwaitBlocked(pid_t tid, int timeout_ms) {
  const std::string path = "/proc/self/task/" + std::to_string(tid) + "/stat";
  const int64_t end = NowNs() + int64_t{timeout_ms} * 1000000;
  do {
    std::ifstream in(path);
    std::ostringstream text;
    text << in.rdbuf();
    const std::string stat = text.str();
    size_t paren = stat.rfind(')');  // "tid (comm) S ...": the state follows it
    if (paren != std::string::npos && paren + 2 < stat.size() && stat[paren + 2] == 'S') return true;
    usleep(100);
  } while (NowNs() < end);
  return false;
}

// A thread that waits inside gRPC until cancelled: it opens a Count stream
// whose second reply is `hold_ms` away, reads the first reply, then blocks in
// the second Read (grpc_completion_queue_pluck), as a synchronous call waiting
// for a slow reply does. Start() returns once the thread is blocked there;
// Stop() cancels the stream and joins, and says whether the stream was intact
// until then (cancelled, not failed).
class BlockedReader {
 public:
  bool Start(Echo::Stub* stub, int hold_ms) {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(hold_ms + 60000));
    std::mutex mu;
    std::condition_variable cv;
    bool ready = false;
    thread_ = std::thread([&, stub, hold_ms] {
      forksafe::echo::CountRequest req;
      req.set_pid(getpid());
      req.set_tag("blocked-reader");
      req.set_count(2);
      req.set_interval_ms(hold_ms);
      auto reader = stub->Count(&ctx_, req);
      forksafe::echo::SayReply reply;
      first_ok_ = reader->Read(&reply);
      {
        std::lock_guard<std::mutex> lock(mu);
        tid_ = ThreadId();
        ready = true;
        cv.notify_all();
      }
      if (first_ok_) got_second_ = reader->Read(&reply);
      status_ = reader->Finish();
    });
    {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return ready; });
    }
    return first_ok_ && AwaitBlocked(tid_, 5000);
  }
  bool Stop() {
    ctx_.TryCancel();
    thread_.join();
    return first_ok_ && !got_second_ && status_.error_code() == grpc::StatusCode::CANCELLED;
  }

 private:
  grpc::ClientContext ctx_;
  std::thread thread_;
  pid_t tid_ = 0;
  bool first_ok_ = false, got_second_ = false;
  grpc::Status status_;
};

// Nearest-rank percentile (p in 0..100) of the samples; sorts them.
inline double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  size_t rank = static_cast<size_t>(p / 100.0 * v->size() + 0.999999);
  return (*v)[std::min(v->size(), std::max<size_t>(rank, 1)) - 1];
}

}  // namespace bench

#endif
