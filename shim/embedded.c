/*
 * gRPC compiled into another object cannot be reached through its API: the
 * shim guards its descriptors (fdreg.c) whatever the policy. That alone keeps
 * every byte away from foreign peers, but the child's gRPC still holds its
 * inherited connections: an RPC that gRPC sends on one fails (UNAVAILABLE)
 * before gRPC reconnects.
 *
 * Python's grpcio has fork handling of its own, off by default: in the child
 * it closes every inherited channel (their use raises ValueError) and restarts
 * gRPC core, so new channels work at once. It needs core to shut down within
 * its time limit, which the default c-ares resolver misses when a channel
 * names its target by DNS name (the child exits with status 64); the native
 * resolver does not. Policy `reset` (the default) therefore sets
 *     GRPC_ENABLE_FORK_SUPPORT=1  GRPC_DNS_RESOLVER=native
 * in a Python interpreter, before Python copies its environment, each only
 * if the user has not set it. Policy `guard` leaves the environment alone.
 */
#include "embedded.h"

#include <bsd/stdlib.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
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

void fs_embedded_init(void)
{
	if (!fs_mode_acts(fs_cfg.mode) || fs_cfg.embedded != FS_EMBEDDED_RESET || !is_python())
		return;
	/* A setuid interpreter gets no setting from the shim either. */
	if (getauxval(AT_SECURE) != 0)
		return;
	set_default("GRPC_ENABLE_FORK_SUPPORT", "1");
	set_default("GRPC_DNS_RESOLVER", "native");
}
