/* The report `grpc-forksafe --audit` prints: what the shim, in mode audit,
 * wrote to its log file while the command ran. */
#ifndef GRPC_FORKSAFE_AUDIT_REPORT_H
#define GRPC_FORKSAFE_AUDIT_REPORT_H

#include <stdio.h>

/* Reads the whole log and writes to `out`: first every line that is not an
 * audit line, as it is (the shim's other messages, which the log file took
 * away from stderr), then each fork with live gRPC state and what its child
 * did with it, then one line starting "grpc-forksafe: verdict: ".
 * Returns 1 if the verdict is that the program needs grpc-forksafe, else 0. */
int audit_report(FILE *log, FILE *out);

#endif
