// What an idle process costs while its threads wait inside gRPC: THREADS
// threads block in gRPC and nothing else happens for SECONDS; the process's
// CPU time (all threads, user + system, getrusage) and voluntary context
// switches (each one a thread going to sleep after a wake-up) over that time.
//
// Usage: idle-cpu TARGET next|pluck THREADS SECONDS
//   next   each thread waits in CompletionQueue::Next on a queue of its own
//          with no calls on it (grpc_completion_queue_next), as an async
//          server's or client's polling threads do when there is no work
//   pluck  each thread waits in a synchronous read for a reply the server
//          holds back (a Count stream whose second reply is a minute away:
//          grpc_completion_queue_pluck), as a synchronous call waiting for a
//          slow reply does
// Prints: cpu_ms=<t> user_ms=<t> sys_ms=<t> wakeups=<n> seconds=<s> threads=<n> mode=<m>
// Measuring starts once every thread is asleep in the kernel.

#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bench_common.h"

namespace {

double Ms(const struct timeval& tv) { return tv.tv_sec * 1e3 + tv.tv_usec / 1e3; }

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc == 5 ? argv[2] : "";
  if ((mode != "next" && mode != "pluck") || std::atoi(argv[3]) < 1 || std::atof(argv[4]) <= 0) {
    std::fprintf(stderr, "usage: idle-cpu TARGET next|pluck THREADS SECONDS\n");
    return 2;
  }
  const std::string target = argv[1];
  const int nthreads = std::atoi(argv[3]);
  const double seconds = std::atof(argv[4]);

  // gRPC in use, as in any program that has these threads: a channel, one RPC.
  auto stub = bench::Echo::NewStub(bench::NewChannel(target));
  grpc::Status first = bench::Say(stub.get(), "idle-cpu-first", 2000);
  if (!first.ok()) {
    std::fprintf(stderr, "idle-cpu: first RPC failed: %s\n", bench::Describe(first).c_str());
    return 1;
  }

  std::vector<std::unique_ptr<grpc::CompletionQueue>> queues;
  std::vector<std::thread> waiters;
  std::vector<std::unique_ptr<bench::BlockedReader>> readers;
  if (mode == "next") {
    std::vector<std::atomic<pid_t>> tids(nthreads);
    for (int i = 0; i < nthreads; i++) {
      queues.push_back(std::make_unique<grpc::CompletionQueue>());
      grpc::CompletionQueue* cq = queues.back().get();
      waiters.emplace_back([cq, &tids, i] {
        tids[i] = bench::ThreadId();
        void* tag;
        bool ok;
        while (cq->Next(&tag, &ok)) {
        }
      });
    }
    for (int i = 0; i < nthreads; i++) {
      while (tids[i] == 0) std::this_thread::yield();
      if (!bench::AwaitBlocked(tids[i], 5000)) {
        std::fprintf(stderr, "idle-cpu: thread %d did not block in Next\n", i);
        return 1;
      }
    }
  } else {
    for (int i = 0; i < nthreads; i++) {
      readers.push_back(std::make_unique<bench::BlockedReader>());
      if (!readers.back()->Start(stub.get(), 60000)) {
        std::fprintf(stderr, "idle-cpu: thread %d did not block in its read\n", i);
        return 1;
      }
    }
  }

  struct rusage r0, r1;
  getrusage(RUSAGE_SELF, &r0);
  const int64_t t0 = bench::NowNs();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));  // the measurement itself
  getrusage(RUSAGE_SELF, &r1);
  const double elapsed = (bench::NowNs() - t0) / 1e9;

  for (auto& q : queues) q->Shutdown();
  for (auto& t : waiters) t.join();
  int intact = 0;
  for (auto& r : readers) intact += r->Stop();

  double user = Ms(r1.ru_utime) - Ms(r0.ru_utime), sys = Ms(r1.ru_stime) - Ms(r0.ru_stime);
  std::printf("cpu_ms=%.1f user_ms=%.1f sys_ms=%.1f wakeups=%ld seconds=%.3f threads=%d mode=%s\n",
              user + sys, user, sys, r1.ru_nvcsw - r0.ru_nvcsw, elapsed, nthreads, mode.c_str());
  return mode == "pluck" && intact != nthreads ? 1 : 0;
}
