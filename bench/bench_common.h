// Helpers shared by the benchmark programs in bench/. Each program prints its
// result as one line of key=value pairs, which bench/run-bench.sh parses.
#ifndef FORKSAFE_BENCH_COMMON_H
#define FORKSAFE_BENCH_COMMON_H

#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
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

// Nearest-rank percentile (p in 0..100) of the samples; sorts them.
inline double Percentile(std::vector<double>* v, double p) {
  if (v->empty()) return 0;
  std::sort(v->begin(), v->end());
  size_t rank = static_cast<size_t>(p / 100.0 * v->size() + 0.999999);
  return (*v)[std::min(v->size(), std::max<size_t>(rank, 1)) - 1];
}

}  // namespace bench

#endif
