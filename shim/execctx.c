/*
 * grpc_prefork (gRPC 1.51) first blocks new entries into gRPC (every
 * ExecCtx constructor waits in Fork::DoIncExecCtxCount while a fork is
 * pending), then joins its executor and timer threads. A thread of theirs
 * that is finishing a closure which opens a nested ExecCtx (destroying a
 * call's security context does) then waits for the fork, and the fork waits
 * for it: a deadlock in core's own fork support, seen under fork storms with
 * RPCs in flight.
 *
 * The forking thread meets the same wait: after the joins, grpc_prefork runs
 * the executors' leftover closures itself, and those open nested ExecCtxs
 * against the block it has just set.
 *
 * While the shim runs grpc_prefork, the forking thread and gRPC's own
 * executor and timer threads (known by the names gRPC gives them) are let
 * through instead: they are only finishing what the fork waits for. Each such entry is counted per thread
 * and its exit is not passed on, so core's count stays exact. Application
 * threads still wait, as core intends.
 */
#include "execctx.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include "libc.h"

#define EXPORT __attribute__((visibility("default")))

static atomic_bool prefork_running;
static __thread bool forking __attribute__((tls_model("initial-exec")));
static __thread unsigned passed __attribute__((tls_model("initial-exec")));
static void (*real_inc)(void);
static void (*real_dec)(void);

/* Thread names gRPC 1.51 gives its executor and timer threads (as the kernel
 * keeps them: 15 characters). */
static const char *const internal_names[] = { "default-executo", "resolver-execut", "grpc_global_tim" };

static bool grpc_internal_thread(void)
{
	char name[16];

	if (pthread_getname_np(pthread_self(), name, sizeof(name)) != 0)
		return false;
	for (size_t i = 0; i < sizeof(internal_names) / sizeof(internal_names[0]); i++)
		if (strncmp(name, internal_names[i], strlen(internal_names[i])) == 0)
			return true;
	return false;
}

void fs_execctx_prefork_running(bool running)
{
	forking = running;
	atomic_store(&prefork_running, running);
}

EXPORT void _ZN9grpc_core4Fork17DoIncExecCtxCountEv(void);
EXPORT void _ZN9grpc_core4Fork17DoIncExecCtxCountEv(void)
{
	if (atomic_load_explicit(&prefork_running, memory_order_acquire) && (forking || grpc_internal_thread())) {
		passed++;
		return;
	}
	if (real_inc == NULL)
		*(void **)&real_inc = fs_next_symbol("_ZN9grpc_core4Fork17DoIncExecCtxCountEv");
	if (real_inc != NULL)
		real_inc();
}

EXPORT void _ZN9grpc_core4Fork17DoDecExecCtxCountEv(void);
EXPORT void _ZN9grpc_core4Fork17DoDecExecCtxCountEv(void)
{
	if (passed > 0) {
		passed--; /* its entry was never counted */
		return;
	}
	if (real_dec == NULL)
		*(void **)&real_dec = fs_next_symbol("_ZN9grpc_core4Fork17DoDecExecCtxCountEv");
	if (real_dec != NULL)
		real_dec();
}
