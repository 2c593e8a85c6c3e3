// grpc::StatusCode as text, for clients that print RPC results.
#ifndef FORKSAFE_DEMO_STATUS_NAME_H
#define FORKSAFE_DEMO_STATUS_NAME_H

#include <grpcpp/support/status.h>

inline const char* CodeName(grpc::StatusCode code) {
  static const char* const kNames[] = {
      "OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
      "ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
      "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
      "UNAUTHENTICATED"};  // grpc::StatusCode's values 0..16, in order
  unsigned i = static_cast<unsigned>(code);
  return i < sizeof kNames / sizeof kNames[0] ? kNames[i] : "UNKNOWN_CODE";
}

#endif
