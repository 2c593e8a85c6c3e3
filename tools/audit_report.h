/* The report `grpc-forksafe --audit` prints: what the shim, in mode audit,
 * wrote to its log while the command ran. */
#ifndef GRPC_FORKSAFE_AUDIT_REPORT_H
#define GRPC_FORKSAFE_AUDIT_REPORT_H

#include <stdio.h>

enum audit_verdict {
	AUDIT_DOES_NOT_NEED, /* no fork carried gRPC state, or every such child exec'd at once */
	AUDIT_NEEDS,         /* a child used gRPC state it inherited */
	AUDIT_NOT_THIS_RUN,  /* forks carried gRPC state, but no child was seen using it */
	AUDIT_UNKNOWN,       /* the audit could not see enough to tell */
};

/* Reads the whole log and writes to `out`: first every line that is not an
 * audit line, as it is (the shim's other messages, which the log took away
 * from stderr), then each fork with live gRPC state and what its child did
 * with it, then a count and the first example of each kind of fork, then one
 * line starting "grpc-forksafe: verdict: ". Returns the verdict. */
enum audit_verdict audit_report(FILE *log, FILE *out);

#endif
