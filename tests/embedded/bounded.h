// gRPC calls in a process whose gRPC may never return: a child forked from a
// program with gRPC compiled in, where gRPC's own threads (timers, executor)
// were not copied and so a call's deadline may never fire. Everything here
// is bounded by a clock the test owns, so a stuck call is reported as a hang
// instead of hanging the test.
#pragma once

#include <sys/types.h>

#include <functional>
#include <string>

#include <grpcpp/grpcpp.h>

#include "client.h"

namespace emb {

// One Say call tagged "<run>:<tag>" with deadline o.deadline_ms, reported as
// fc::Attempt reports it ("...: attempt OK in <ms> ms peer=<peer>" or "...:
// attempt <CODE>(<n>) \"<message>\" in <ms> ms") and not counted as a failure.
grpc::Status AttemptSay(fc::Stub& stub, const fc::Options& o, const std::string& tag,
                        fc::Reply* reply = nullptr);

// Up to `tries` attempts on stub, tagged "<prefix>-1", "<prefix>-2", ..., until
// one succeeds; then one line "...<run>:<prefix>: succeeded at attempt K of N
// peer=<peer>" or "...: FAIL no attempt of N succeeded" (a counted failure).
bool AttemptUntilOk(fc::Stub& stub, const fc::Options& o, const std::string& prefix, int tries);

// Runs body on a thread of its own and waits for it at most timeout_ms. True
// if it finished. A body that did not finish is left running, stuck inside
// gRPC with references into the caller's frame: the process must then leave
// with _exit, without returning from that frame.
bool RunBounded(const std::function<void()>& body, int timeout_ms);

// want_status for a child whose end is reported but not judged.
constexpr int kAnyStatus = -1;

// As fc::WaitChild, but waits at most timeout_ms: a child still running then
// is killed and reported ("... FAIL <what> <pid> hung: killed after <ms> ms").
// With kAnyStatus the child's end, even a hang, is reported and not counted
// as a failure: "<role> pid=N <what> <pid> <how it ended>: reported".
// *hung, if given, tells whether the child was killed for running too long.
bool WaitChildWithin(pid_t pid, const std::string& what, int timeout_ms, int want_status = 0,
                     bool* hung = nullptr);

}  // namespace emb
