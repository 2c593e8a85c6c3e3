#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <bsd/stdlib.h>
#include <unistd.h>

int fs_log_level = FS_WARN;

static const char *const level_names[] = { "error", "warn", "info", "debug" };

void fs_log_emit(enum fs_level level, const char *fmt, ...)
{
	int saved = errno;
	char line[768];
	size_t used;
	int n;
	va_list ap;

	n = snprintf(line, sizeof(line), "%s[%d]: grpc-forksafe: %s: ", getprogname(), (int)getpid(),
		     level_names[level]);
	used = n > 0 ? (size_t)n : 0;
	if (used < sizeof(line)) {
		va_start(ap, fmt);
		n = vsnprintf(line + used, sizeof(line) - used, fmt, ap);
		va_end(ap);
		used += n > 0 ? (size_t)n : 0;
	}
	if (used > sizeof(line) - 1)
		used = sizeof(line) - 1; /* truncated: keep the newline */
	line[used++] = '\n';
	/* A short write to stderr is not worth retrying: the host program's output matters more. */
	if (write(STDERR_FILENO, line, used) < 0) {
	}
	errno = saved;
}
