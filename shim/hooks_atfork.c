/*
 * pthread_atfork registrations and pthread_join, for gRPC compiled into
 * grpcio, and the two functions the Python layer calls: thin hooks over
 * embedded_fork.c, which says why.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>

#include "embedded_fork.h"
#include "init.h"
#include "libc.h"
#include "owner.h"

#define EXPORT __attribute__((visibility("default")))

typedef int (*register_fn)(fs_atfork_fn, fs_atfork_fn, fs_atfork_fn, void *);
typedef int (*join_fn)(pthread_t, void **);

static _Atomic register_fn real_register;
static _Atomic join_fn real_join;

/* What pthread_atfork() calls: glibc links pthread_atfork into each object as
 * a stub that passes the object's __dso_handle on, so grpcio's registrations
 * land here. */
EXPORT int __register_atfork(fs_atfork_fn prepare, fs_atfork_fn parent, fs_atfork_fn child, void *dso);
EXPORT int __register_atfork(fs_atfork_fn prepare, fs_atfork_fn parent, fs_atfork_fn child, void *dso)
{
	register_fn reg = atomic_load_explicit(&real_register, memory_order_relaxed);
	fs_atfork_fn handlers[3] = { prepare, parent, child };

	if (__builtin_expect(reg == NULL, 0)) {
		*(void **)&reg = fs_next_symbol("__register_atfork");
		if (reg == NULL)
			return ENOMEM; /* as glibc reports a registration it could not make */
		atomic_store_explicit(&real_register, reg, memory_order_relaxed);
	}
	/* The shim's own registration comes from inside its set-up. */
	if (!fs_owner_is_self((const void *)(prepare != NULL ? prepare : parent != NULL ? parent : child))) {
		fs_ensure_init();
		fs_embedded_fork_register(handlers);
	}
	return reg(handlers[0], handlers[1], handlers[2], dso);
}

EXPORT int pthread_join(pthread_t thread, void **result);
EXPORT int pthread_join(pthread_t thread, void **result)
{
	join_fn join = atomic_load_explicit(&real_join, memory_order_relaxed);

	if (__builtin_expect(join == NULL, 0)) {
		*(void **)&join = fs_next_symbol("pthread_join");
		if (join == NULL)
			return ENOSYS;
		atomic_store_explicit(&real_join, join, memory_order_relaxed);
	}
	fs_embedded_fork_joining();
	return join(thread, result);
}

/* Called by the Python layer (grpc_forksafe_fork.py) once it has checked
 * grpcio's version: the registration numbered `index` (from 0) of the object
 * that holds `in_object` is core's grpc_prefork, grpc_postfork_parent and
 * grpc_postfork_child. Returns 1 if the shim will call core's prepare handler
 * again while it skips itself, 0 if not (a policy other than `reset`, or not
 * an embedded gRPC object). */
EXPORT int grpc_forksafe_embedded_core_handlers(const void *in_object, unsigned index);
EXPORT int grpc_forksafe_embedded_core_handlers(const void *in_object, unsigned index)
{
	fs_ensure_init();
	return fs_embedded_fork_name_core(in_object, index);
}

/* Called by the Python layer before each fork: 0 while a thread of grpcio's
 * stays inside gRPC for good (grpc.aio's poller waits there with no
 * deadline), so that a skipped prepare is not called again for nothing until
 * the bound; 1 otherwise. */
EXPORT void grpc_forksafe_embedded_core_retry(int retry);
EXPORT void grpc_forksafe_embedded_core_retry(int retry)
{
	fs_embedded_fork_retry(retry != 0);
}
