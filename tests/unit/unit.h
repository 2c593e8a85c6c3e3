/* Shared helpers for the unit tests. */
#ifndef FORKSAFE_UNIT_H
#define FORKSAFE_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Everything the test wrote to the redirected stderr, as one string. */
static inline char *unit_read_stderr(void)
{
	FILE *f;
	static char buf[4096];
	size_t n;

	fflush(stderr);
	f = cr_get_redirected_stderr();
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	return buf;
}

static inline int unit_count_lines(const char *s)
{
	int n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

#endif
