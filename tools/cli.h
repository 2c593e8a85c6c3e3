/* What every part of the grpc-forksafe command shares: its exit codes and its
 * one-line messages on stderr. */
#ifndef GRPC_FORKSAFE_CLI_H
#define GRPC_FORKSAFE_CLI_H

/* The conventions of env(1), nice(1) and timeout(1), so that a caller can
 * tell the wrapper's own failures from the command's. */
enum {
	EXIT_USAGE = 2,         /* bad option or value: the command never ran */
	EXIT_WRAPPER = 125,     /* grpc-forksafe itself failed (library missing, ...) */
	EXIT_CANNOT_RUN = 126,  /* the command exists but cannot be executed */
	EXIT_NOT_FOUND = 127,   /* the command does not exist */
};

/* Prints "grpc-forksafe: <text>" and a newline on stderr. */
void cli_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Explains why execvp(cmd) failed with errno `err` and returns the exit code
 * for it: 127 when there is nothing to run, 126 otherwise. */
int cli_exec_failed(const char *cmd, int err);

#endif
