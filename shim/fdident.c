#include "fdident.h"

#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "libc.h"

enum { ANON_OTHER = 1, ANON_EVENTFD, ANON_EPOLL };

/* The kernel's eventfd-id (in /proc/self/fdinfo) is no identity: ids are
 * reused as soon as an eventfd is closed, so a new eventfd on a reused number
 * may well carry the old one's. Only the type is told. */

/* "/proc/self/<dir>/<fd>" without snprintf, which is not async-signal-safe. */
static void proc_path(char *buf, const char *dir, int fd)
{
	char digits[12];
	int n = 0;

	strcpy(buf, "/proc/self/");
	strcat(buf, dir);
	strcat(buf, "/");
	do
		digits[n++] = (char)('0' + fd % 10);
	while ((fd /= 10) > 0);
	buf += strlen(buf);
	while (n > 0)
		*buf++ = digits[--n];
	*buf = '\0';
}

uint64_t fs_fdident_anon(int fd)
{
	char path[40], target[64];
	ssize_t n;

	if (fd < 0)
		return 0;
	proc_path(path, "fd", fd);
	n = readlink(path, target, sizeof(target) - 1);
	if (n <= 0)
		return 0;
	target[n] = '\0';
	if (strncmp(target, "anon_inode:", 11) != 0)
		return 0;
	if (strcmp(target + 11, "[eventfd]") == 0)
		return ANON_EVENTFD;
	if (strcmp(target + 11, "[eventpoll]") == 0)
		return ANON_EPOLL;
	return ANON_OTHER;
}
