#include "preload.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define LIBNAME "libgrpc_forksafe.so"

/* Set at build time. FORKSAFE_LIB_REL is the library's directory relative to
 * the directory this program lives in: "." in the build tree; in an
 * installation the path from BINDIR to LIBDIR/grpc-forksafe, so that a tree
 * installed with DESTDIR, or moved, still works. FORKSAFE_LIB_ABS, set only
 * for an installation, is tried when this program cannot find itself. */
#ifndef FORKSAFE_LIB_REL
#define FORKSAFE_LIB_REL "."
#endif

/* The directory holding this program, with symbolic links resolved. */
static int own_dir(char *dir, size_t size)
{
	ssize_t n = readlink("/proc/self/exe", dir, size - 1);
	char *slash;

	if (n <= 0 || (size_t)n >= size - 1)
		return -1;
	dir[n] = '\0';
	if ((slash = strrchr(dir, '/')) == NULL)
		return -1;
	*slash = '\0';
	return 0;
}

char *preload_find_library(void)
{
	char dir[PATH_MAX], candidate[PATH_MAX + sizeof(FORKSAFE_LIB_REL "/" LIBNAME)];
	char *found;

	if (own_dir(dir, sizeof(dir)) == 0) {
		snprintf(candidate, sizeof(candidate), "%s/%s/%s", dir, FORKSAFE_LIB_REL, LIBNAME);
		/* realpath: LD_PRELOAD must not depend on the working directory. */
		if ((found = realpath(candidate, NULL)) != NULL && access(found, R_OK) == 0)
			return found;
		free(found);
	} else {
		snprintf(candidate, sizeof(candidate), "%s/%s (/proc/self/exe unreadable)", FORKSAFE_LIB_REL,
			 LIBNAME);
	}
#ifdef FORKSAFE_LIB_ABS
	if (access(FORKSAFE_LIB_ABS "/" LIBNAME, R_OK) == 0)
		return strdup(FORKSAFE_LIB_ABS "/" LIBNAME);
	cli_say("%s is missing, and so is %s: reinstall with make install", candidate, FORKSAFE_LIB_ABS "/" LIBNAME);
#else
	cli_say("%s is missing: build it with make", candidate);
#endif
	return NULL;
}

static int set_preload(const char *value)
{
	if (setenv("LD_PRELOAD", value, 1) == 0)
		return 0;
	cli_say("cannot set LD_PRELOAD: %s", strerror(errno));
	return -1;
}

int preload_install(const char *lib)
{
	const char *old = getenv("LD_PRELOAD");
	char *copy, *entry, *save, *value;
	size_t size;
	int rc;

	/* The dynamic loader splits LD_PRELOAD at spaces and colons. */
	if (strpbrk(lib, " :") != NULL) {
		cli_say("%s: LD_PRELOAD cannot carry a path with a space or a colon; install elsewhere", lib);
		return -1;
	}
	if (old == NULL || *old == '\0')
		return set_preload(lib);

	/* The shim goes first: its hooks then see gRPC's calls before any other
	 * preloaded library can; the user's entries follow in their order. */
	size = strlen(lib) + 1 + strlen(old) + 1;
	copy = strdup(old);
	value = malloc(size);
	if (copy == NULL || value == NULL) {
		free(copy);
		free(value);
		cli_say("out of memory");
		return -1;
	}
	strcpy(value, lib);
	for (entry = strtok_r(copy, " :", &save); entry != NULL; entry = strtok_r(NULL, " :", &save)) {
		if (strcmp(entry, lib) == 0)
			continue; /* run under grpc-forksafe twice: keep one copy */
		strcat(value, ":");
		strcat(value, entry);
	}
	rc = set_preload(value);
	free(copy);
	free(value);
	return rc;
}
