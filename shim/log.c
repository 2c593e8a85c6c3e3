#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <bsd/stdlib.h>
#include <unistd.h>

int fs_log_level = FS_WARN;

/* Where lines go, and what that descriptor was when opened: a program may
 * close every descriptor and reuse the number for a socket, and a log line
 * must never land there. */
static int log_fd = STDERR_FILENO;
static dev_t log_dev;
static ino_t log_ino;

/* Log files live on a high number, out of the way of programs that expect the
 * lowest free ones. */
#define LOG_FD_FLOOR 100

static const char *const level_names[] = { "error", "warn", "info", "debug" };

/* The log file while it is still the one opened; stderr otherwise. */
static int target_fd(void)
{
	struct stat st;

	if (log_fd == STDERR_FILENO)
		return log_fd;
	if (fstat(log_fd, &st) == 0 && st.st_dev == log_dev && st.st_ino == log_ino)
		return log_fd;
	log_fd = STDERR_FILENO;
	return log_fd;
}

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
	/* A short write is not worth retrying: the host program's output matters more. */
	if (write(target_fd(), line, used) < 0) {
	}
	errno = saved;
}

bool fs_log_to_stderr(void)
{
	return target_fd() == STDERR_FILENO;
}

const char *fs_log_use_fd(int fd)
{
	struct stat st;
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fstat(fd, &st) != 0)
		return "it is not open";
	if ((flags & O_ACCMODE) == O_RDONLY)
		return "it is not open for writing";
	/* Never a socket or a terminal: the number may have been reused by the
	 * program for something of its own, and a line must never land there. */
	if (S_ISREG(st.st_mode) && !(flags & O_APPEND))
		return "it is a file not opened for appending";
	if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode))
		return "it is neither a file nor a pipe";
	log_dev = st.st_dev;
	log_ino = st.st_ino;
	log_fd = fd;
	return NULL;
}

int fs_log_open_file(const char *path)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	int high, err;

	if (fd < 0 || fstat(fd, &st) != 0) {
		err = errno;
		if (fd >= 0)
			close(fd);
		return err;
	}
	high = fcntl(fd, F_DUPFD_CLOEXEC, LOG_FD_FLOOR);
	if (high >= 0) {
		close(fd);
		fd = high;
	}
	log_dev = st.st_dev;
	log_ino = st.st_ino;
	log_fd = fd;
	return 0;
}
