/* One-line diagnostics on stderr: "<prog>[<pid>]: grpc-forksafe: <level>: <text>". */
#ifndef FORKSAFE_LOG_H
#define FORKSAFE_LOG_H

#include <stdbool.h>

enum fs_level { FS_ERROR, FS_WARN, FS_INFO, FS_DEBUG };

/* Written once while the shim initialises, read everywhere after. */
extern int fs_log_level;

/* The level test comes first so that a filtered message is never formatted:
 * debug lines on the RPC path cost one comparison when debug is off. */
#define fs_log(level, ...)                                                                  \
	do {                                                                                \
		if ((int)(level) <= fs_log_level)                                              \
			fs_log_emit((level), __VA_ARGS__);                                  \
	} while (0)

/* Formats into a stack buffer and writes it with one write(2): no allocation,
 * no stdio lock, errno preserved, so it is usable on the fork path. */
void fs_log_emit(enum fs_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Sends the lines to `path` instead of stderr: appended, created 0600, never
 * through a symbolic link, closed on exec (an exec'd program under the shim
 * opens it again). Returns 0, or the errno that kept it from being opened
 * (stderr stays; the caller says so). Children share the descriptor: their
 * lines land there too. */
int fs_log_open_file(const char *path);

/* Sends the lines to the inherited descriptor `fd` (GRPC_FORKSAFE_LOG_FD):
 * used only when open for writing and a pipe or a file opened for appending.
 * Returns NULL, or why it cannot be used (stderr stays). */
const char *fs_log_use_fd(int fd);

/* True while the lines go to stderr. */
bool fs_log_to_stderr(void);

#endif
