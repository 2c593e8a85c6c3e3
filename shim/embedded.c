/*
 * gRPC compiled into another object cannot be reached through its API: the
 * shim guards its descriptors (fdreg.c) whatever the policy. That alone keeps
 * every byte away from foreign peers, but the child's gRPC still holds its
 * inherited connections: an RPC that gRPC sends on one fails (UNAVAILABLE)
 * before gRPC reconnects.
 *
 * Python's grpcio has fork handling of its own, off by default. Turned on, it
 * pauses grpcio's threads before the fork, so that gRPC core's own fork
 * handlers can run, and in the child closes every inherited channel (their
 * use raises ValueError) and waits for core to shut down, ending the child
 * with status 64 when it does not: with the default c-ares resolver and a
 * target given by DNS name, and in every child of a process that serves.
 * Policy `reset` (the default) sets
 *     GRPC_ENABLE_FORK_SUPPORT=1  GRPC_DNS_RESOLVER=native
 * in a Python interpreter, before Python copies its environment, each only
 * if the user has not set it. Policy `guard` leaves the environment alone.
 *
 * In modes reconnect and close, `reset` also puts the directory
 * `python-layer` next to this library (build tree and installation alike)
 * first on PYTHONPATH: its sitecustomize.py takes the entry off again before
 * the program runs, and runs grpcio's fork handling from Python's own fork
 * hooks instead of grpcio's, without the wait that ends children, and gives
 * each inherited channel a connection of the child's own (reconnect) or
 * closes it as grpcio would (close) (shim/python/). An interpreter that
 * ignores PYTHONPATH (-E, -I) or imports no sitecustomize (-S) loads no
 * layer, and then grpcio's own handling runs; modes off and audit change
 * nothing at all.
 */
#include "embedded.h"

#include <bsd/stdlib.h>
#include <dlfcn.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/auxv.h>

#include "config.h"
#include "log.h"
#include "owner.h"

static int find_libpython(struct dl_phdr_info *info, size_t size, void *unused)
{
	return strncmp(fs_basename(info->dlpi_name), "libpython3", 10) == 0;
}

/* Debian's python3 has libpython linked in; embedding programs load it. */
static bool is_python(void)
{
	const char *name = getprogname();

	return (name != NULL && strncmp(name, "python", 6) == 0) || dl_iterate_phdr(find_libpython, NULL) != 0;
}

static void set_default(const char *var, const char *value)
{
	const char *user = getenv(var);

	if (user != NULL) {
		fs_log(FS_DEBUG, "embedded: %s=%s left as the user set it", var, user);
		return;
	}
	if (setenv(var, value, 0) == 0)
		fs_log(FS_DEBUG, "embedded: %s=%s set for grpcio's fork handling", var, value);
}

/* Puts the layer's directory first on PYTHONPATH, if it is there to load. */
static void add_python_layer(void)
{
	Dl_info self;
	char lib[PATH_MAX], *dir = NULL, *path = NULL;
	const char *user = getenv("PYTHONPATH");

	if (dladdr((void *)add_python_layer, &self) == 0 || self.dli_fname == NULL ||
	    realpath(self.dli_fname, lib) == NULL) {
		fs_log(FS_WARN, "embedded: cannot find the shim's own path; inherited grpcio channels stay closed");
		return;
	}
	*strrchr(lib, '/') = '\0';
	if (asprintf(&dir, "%s/python-layer", lib) < 0)
		return;
	if (access(dir, R_OK | X_OK) != 0) {
		fs_log(FS_WARN, "embedded: no Python layer at %s; inherited grpcio channels stay closed", dir);
	} else if (user == NULL ? setenv("PYTHONPATH", dir, 1) == 0
				: (asprintf(&path, "%s:%s", dir, user) >= 0 && setenv("PYTHONPATH", path, 1) == 0)) {
		fs_log(FS_DEBUG, "embedded: %s first on PYTHONPATH for the Python layer", dir);
	}
	free(path);
	free(dir);
}

void fs_embedded_init(void)
{
	if (!fs_mode_acts(fs_cfg.mode) || fs_cfg.embedded != FS_EMBEDDED_RESET || !is_python())
		return;
	/* A setuid interpreter gets no setting from the shim either. */
	if (getauxval(AT_SECURE) != 0)
		return;
	set_default("GRPC_ENABLE_FORK_SUPPORT", "1");
	set_default("GRPC_DNS_RESOLVER", "native");
	if (fs_cfg.mode == FS_MODE_RECONNECT || fs_cfg.mode == FS_MODE_CLOSE)
		add_python_layer();
}
