/*
 * fd-lister LABEL [CONTROL...]: prints every descriptor this process has
 * open, one line each, and exits. Run by a client through each way of
 * starting a program (posix_spawn, vfork, fork, system, popen) to show what
 * that program inherited across exec:
 *   LABEL fd N -> TARGET flags=0xF [control]
 *   LABEL end: K fds, C of T controls
 * TARGET is what /proc/self/fd/N links to; F the descriptor flags (FD_CLOEXEC
 * is 0x1; a descriptor that outlived exec never has it, but it is shown all
 * the same). The CONTROLs are descriptor numbers the client left inheritable
 * on purpose: each must be there, or this listing proves nothing. The
 * directory stream used for the listing is left out.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *label = argc > 1 ? argv[1] : "fd-lister";
	DIR *dir = opendir("/proc/self/fd");
	struct dirent *e;
	int count = 0, controls = 0;

	if (dir == NULL) {
		perror("fd-lister: /proc/self/fd");
		return 1;
	}
	while ((e = readdir(dir)) != NULL) {
		char path[64], target[PATH_MAX];
		ssize_t n;
		char *end;
		long fd = strtol(e->d_name, &end, 10);

		if (*end != '\0' || end == e->d_name || fd == dirfd(dir))
			continue;
		snprintf(path, sizeof(path), "/proc/self/fd/%ld", fd);
		n = readlink(path, target, sizeof(target) - 1);
		target[n > 0 ? n : 0] = '\0';
		int control = 0;
		for (int i = 2; i < argc; i++)
			control |= atoi(argv[i]) == fd;
		printf("%s fd %ld -> %s flags=0x%x%s\n", label, fd, n > 0 ? target : "?", fcntl((int)fd, F_GETFD),
		       control ? " control" : "");
		count++;
		controls += control;
	}
	closedir(dir);
	printf("%s end: %d fds, %d of %d controls\n", label, count, controls, argc > 2 ? argc - 2 : 0);
	return fflush(stdout) == 0 ? 0 : 1;
}
