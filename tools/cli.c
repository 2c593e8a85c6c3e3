#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

void cli_say(const char *fmt, ...)
{
	va_list ap;

	fputs("grpc-forksafe: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_exec_failed(const char *cmd, int err)
{
	struct stat st;

	if (err == ENOENT) {
		if (strchr(cmd, '/') == NULL)
			cli_say("%s: command not found (searched PATH)", cmd);
		else if (stat(cmd, &st) == 0)
			/* The file is there: execve's ENOENT is about what it names. */
			cli_say("%s: cannot run: the interpreter on its #! line, or its ELF loader, does not exist",
				cmd);
		else
			cli_say("%s: no such file", cmd);
		return EXIT_NOT_FOUND;
	}
	cli_say("%s: cannot run: %s", cmd, strerror(err));
	return EXIT_CANNOT_RUN;
}
