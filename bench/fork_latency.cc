// How long fork() takes to return in the parent when the process has live,
// used gRPC channels: the cost the shim adds to every fork() by preparing
// gRPC for it.
//
// Usage: fork-latency TARGET CHANNELS ITERATIONS [--busy N] [--active N] [--serve N]
// Prints: median_us=<t> p90_us=<t> max_us=<t> first_us=<t> iterations=<n> channels=<n>
//         channels_ok_after=<ok>/<checked> busy=<n> busy_ok_after=<ok>/<n>
//         active=<n> active_rpcs=<n> active_failed=<n> serve=<n> served_rpcs=<n>
//         served_failed=<n>
// first_us is the process's first fork(), which is not among the timed ones.
//
// --busy N: N other threads are blocked inside gRPC during every fork, each
// waiting in a synchronous read (grpc_completion_queue_pluck) for a reply the
// server holds back (a Count stream whose second reply is a minute away), on
// the first channel. Stock gRPC skips its fork handlers then; the shim first
// tries to bring the threads out of gRPC. Afterwards each stream is
// cancelled: busy_ok_after counts those that were intact until then. With
// --busy, 2 forks instead of 10 go untimed first.
// --active N: N other threads make synchronous Say RPCs back to back on the
// first channel (replies come at once) during every fork; active_rpcs and
// active_failed count their RPCs.
// --serve N: the process runs a grpc++ synchronous echo server of its own,
// and N other threads make Say RPCs to it back to back during every fork:
// a process that serves, with its server's threads busy. served_rpcs and
// served_failed count those RPCs.
//
// Each channel gets a distinct channel argument, so each has its own TCP
// connection, and makes one RPC before timing starts. The child _exit(0)s at
// once; the parent times fork() itself, then reaps the child before the next
// iteration. Afterwards every channel makes one more RPC to show the parent's
// channels survived (checking stops after 3 failures).

#include <sys/wait.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "bench_common.h"

int main(int argc, char** argv) {
  int busy = 0, active = 0, serve = 0;
  bool bad_option = false;
  for (int i = 4; i < argc; i += 2) {
    if (i + 1 < argc && std::strcmp(argv[i], "--busy") == 0) busy = std::atoi(argv[i + 1]);
    else if (i + 1 < argc && std::strcmp(argv[i], "--active") == 0) active = std::atoi(argv[i + 1]);
    else if (i + 1 < argc && std::strcmp(argv[i], "--serve") == 0) serve = std::atoi(argv[i + 1]);
    else bad_option = true;
  }
  if (argc < 4 || bad_option || std::atoi(argv[2]) < 1 || std::atoi(argv[3]) < 1 || busy < 0 ||
      active < 0 || serve < 0) {
    std::fprintf(stderr,
                 "usage: fork-latency TARGET CHANNELS ITERATIONS [--busy N] [--active N] [--serve N]\n");
    return 2;
  }
  const std::string target = argv[1];
  const int channels = std::atoi(argv[2]);
  const int iterations = std::atoi(argv[3]);

  std::vector<std::unique_ptr<bench::Echo::Stub>> stubs;
  for (int i = 0; i < channels; i++) {
    stubs.push_back(bench::Echo::NewStub(bench::NewChannel(target, i)));
    grpc::Status s = bench::Say(stubs.back().get(), "fork-latency-setup", 5000);
    if (!s.ok()) {
      std::fprintf(stderr, "fork-latency: RPC on channel %d failed: %s\n", i,
                   bench::Describe(s).c_str());
      return 1;
    }
  }

  std::vector<std::unique_ptr<bench::BlockedReader>> readers;
  for (int i = 0; i < busy; i++) {
    readers.push_back(std::make_unique<bench::BlockedReader>());
    if (!readers.back()->Start(stubs[0].get(), 60000)) {
      std::fprintf(stderr, "fork-latency: busy thread %d did not block in its read\n", i);
      return 1;
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<long> active_rpcs{0}, active_failed{0};
  std::vector<std::thread> actives;
  for (int i = 0; i < active; i++) {
    actives.emplace_back([&] {
      while (!stop) {
        if (bench::Say(stubs[0].get(), "fork-latency-active", 2000).ok()) active_rpcs++;
        else active_failed++;
      }
    });
  }

  // The process's own server, and its clients.
  bench::SyncEchoServer own;
  std::unique_ptr<bench::Echo::Stub> own_stub;
  std::atomic<long> served_rpcs{0}, served_failed{0};
  if (serve > 0) {
    if (!own.Start()) {
      std::fprintf(stderr, "fork-latency: could not start a server of its own\n");
      return 1;
    }
    own_stub = bench::Echo::NewStub(bench::NewChannel(own.Target()));
    for (int i = 0; i < serve; i++) {
      actives.emplace_back([&] {
        while (!stop) {
          if (bench::Say(own_stub.get(), "fork-latency-served", 2000).ok()) served_rpcs++;
          else served_failed++;
        }
      });
    }
  }

  const int warmup = busy > 0 ? 2 : 10;
  std::vector<double> us;
  double first_us = 0;  // the process's first fork, reported on its own: it pays one-off costs
  for (int i = 0; i < warmup + iterations; i++) {
    int64_t t0 = bench::NowNs();
    pid_t pid = fork();
    int64_t t1 = bench::NowNs();
    if (pid == 0) _exit(0);
    if (pid < 0) {
      std::perror("fork-latency: fork");
      return 1;
    }
    int status;
    waitpid(pid, &status, 0);
    if (i == 0) first_us = (t1 - t0) / 1e3;
    if (i >= warmup) us.push_back((t1 - t0) / 1e3);
  }

  int busy_ok = 0;
  for (auto& r : readers) busy_ok += r->Stop();
  stop = true;
  for (auto& t : actives) t.join();

  // Stops after a few failures so that a broken run still ends in seconds.
  int ok_after = 0, checked = 0;
  for (auto& stub : stubs) {
    checked++;
    if (bench::Say(stub.get(), "fork-latency-after", 1000).ok()) ok_after++;
    else if (checked - ok_after >= 3) break;
  }

  double p90 = bench::Percentile(&us, 90);
  double median = bench::Percentile(&us, 50);
  double max = bench::Percentile(&us, 100);
  std::printf("median_us=%.1f p90_us=%.1f max_us=%.1f first_us=%.1f iterations=%d channels=%d channels_ok_after=%d/%d "
              "busy=%d busy_ok_after=%d/%d active=%d active_rpcs=%ld active_failed=%ld serve=%d "
              "served_rpcs=%ld served_failed=%ld\n",
              median, p90, max, first_us, iterations, channels, ok_after, checked, busy, busy_ok, busy,
              active, active_rpcs.load(), active_failed.load(), serve, served_rpcs.load(),
              served_failed.load());
  own.Stop();
  return ok_after == channels && busy_ok == busy && active_failed == 0 && served_failed == 0 ? 0 : 1;
}
