/* Core's fork handlers inside an embedded gRPC (grpcio), run again while
 * another thread is inside gRPC (embedded_fork.c). The hooks that feed it are
 * in hooks_atfork.c. */
#ifndef FORKSAFE_EMBEDDED_FORK_H
#define FORKSAFE_EMBEDDED_FORK_H

#include <stdbool.h>

typedef void (*fs_atfork_fn)(void);

/* A pthread_atfork registration: prepare, parent, child (any may be NULL).
 * When they are an embedded gRPC's (and the policy is `reset`), replaces each
 * by a trampoline of the shim's and returns true. */
bool fs_embedded_fork_register(fs_atfork_fn handlers[3]);

/* pthread_join, about to join: counted while core's prepare handler runs. */
void fs_embedded_fork_joining(void);

/* The Python layer's word: the registration numbered `index` (from 0) of the
 * object holding `in_object` is core's. False if the shim does not act on it. */
bool fs_embedded_fork_name_core(const void *in_object, unsigned index);

/* Whether a prepare handler that skipped itself is called again (the layer
 * says no while grpc.aio's poller runs). */
void fs_embedded_fork_retry(bool retry);

/* What core's prepare handler, compiled into grpcio, did at the last fork of
 * this thread. */
enum fs_embedded_core {
	FS_EMBEDDED_CORE_UNKNOWN, /* not run through the shim, or not named by the Python layer */
	FS_EMBEDDED_CORE_RAN,     /* it stopped core's threads: the child's core is reset */
	FS_EMBEDDED_CORE_SKIPPED, /* a thread stayed inside gRPC until the bound */
	FS_EMBEDDED_CORE_IDLE,    /* gRPC holds no descriptor: not initialised, nothing to reset */
};

struct fs_embedded_core_outcome {
	enum fs_embedded_core what;
	unsigned attempts; /* calls of core's prepare handler */
	long waited_ms;    /* from the first call to the last */
};

/* The outcome of this thread's last fork, and forgets it: the fork path
 * (forkpath.c) takes it once for its log lines. Core's prepare handler,
 * registered after the shim's, runs before the shim's own. */
struct fs_embedded_core_outcome fs_embedded_core_take(void);

#endif
