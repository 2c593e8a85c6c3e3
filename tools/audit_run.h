/* `grpc-forksafe --audit`: run the command as a child (not exec: the report
 * comes after it), then report and leave the way the command did. */
#ifndef GRPC_FORKSAFE_AUDIT_RUN_H
#define GRPC_FORKSAFE_AUDIT_RUN_H

/* LD_PRELOAD and GRPC_FORKSAFE_MODE are already set. Sets
 * GRPC_FORKSAFE_LOG_FD and GRPC_FORKSAFE_LOG_FILE to a private temporary file, runs argv, prints the
 * report on stderr, removes the file, and exits with the command's status or
 * dies of the command's signal. Never returns. */
_Noreturn void audit_run(char **argv);

#endif
