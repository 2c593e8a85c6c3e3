/*
 * Core's thread count and its wait for it (Fork::IncThreadCount,
 * DecThreadCount, AwaitThreads), and pthread_create, which follows a count
 * in the same thread: thin hooks over threads.c, which says why.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "grpclib.h"
#include "init.h"
#include "libc.h"
#include "owner.h"
#include "quiesce.h"
#include "threads.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*count_fn)(void);
typedef int (*create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static _Atomic count_fn real_inc, real_dec, real_await;
static _Atomic create_fn real_create;

static void nothing(void)
{
}

static count_fn core_fn(_Atomic count_fn *slot, const char *name)
{
	count_fn f = atomic_load_explicit(slot, memory_order_relaxed);

	if (__builtin_expect(f == NULL, 0))
		*(void **)&f = fs_grpc_core_function((void *_Atomic *)slot, name, (void *)nothing);
	return f;
}

EXPORT void _ZN9grpc_core4Fork14IncThreadCountEv(void);
EXPORT void _ZN9grpc_core4Fork14IncThreadCountEv(void)
{
	core_fn(&real_inc, "_ZN9grpc_core4Fork14IncThreadCountEv")();
	if (fs_grpc_protects()) /* else the shim never answers core's wait */
		fs_threads_note_counted();
}

EXPORT void _ZN9grpc_core4Fork14DecThreadCountEv(void);
EXPORT void _ZN9grpc_core4Fork14DecThreadCountEv(void)
{
	core_fn(&real_dec, "_ZN9grpc_core4Fork14DecThreadCountEv")();
	if (fs_grpc_protects())
		fs_threads_note_uncounted();
}

/* Called by grpc_prefork in the forking thread, once core has stopped its
 * executor and timer threads. Allocates nothing. */
EXPORT void _ZN9grpc_core4Fork12AwaitThreadsEv(void);
EXPORT void _ZN9grpc_core4Fork12AwaitThreadsEv(void)
{
	if (!fs_quiesce_pending()) {
		/* Not the shim's fork (a program that runs core's handlers
		 * itself): core's own wait, as without the shim. */
		core_fn(&real_await, "_ZN9grpc_core4Fork12AwaitThreadsEv")();
		return;
	}
	fs_threads_await();
}

struct start {
	void *(*fn)(void *);
	void *arg;
};

static void *counted_thread(void *p)
{
	struct start s = *(struct start *)p;

	free(p);
	fs_threads_mark_self();
	return s.fn(s.arg);
}

/* One thread-local load for every thread but gRPC's counted ones. */
EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg);
EXPORT int pthread_create(pthread_t *thread, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	create_fn create = atomic_load_explicit(&real_create, memory_order_relaxed);
	struct start *s;
	int rc;

	if (__builtin_expect(create == NULL, 0)) {
		*(void **)&create = fs_next_symbol("pthread_create");
		if (create == NULL)
			return EAGAIN;
		atomic_store_explicit(&real_create, create, memory_order_relaxed);
	}
	/* Only libgpr's creation right after the count: a count whose thread
	 * was created some other way (not through this hook) must not mark an
	 * unrelated thread. */
	if (__builtin_expect(!fs_threads_take_creating(), 1) || !fs_owner_is_grpc_core(__builtin_return_address(0)))
		return create(thread, attr, fn, arg);
	/* Counted only for core's wait at a fork that stops gRPC: with a fresh
	 * gRPC in the child no fork waits for gRPC's threads. (The record would
	 * also be lost in a child forked before the new thread took it.) */
	if (!fs_quiesce_on)
		return create(thread, attr, fn, arg);
	if ((s = malloc(sizeof(*s))) == NULL)
		return create(thread, attr, fn, arg); /* unmarked: a fork waits for it, within the bound */
	s->fn = fn;
	s->arg = arg;
	rc = create(thread, attr, counted_thread, s);
	if (rc != 0)
		free(s);
	return rc;
}
