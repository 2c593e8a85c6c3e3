/*
 * gRPC 1.51 gives its EventEngine's thread pools and timer managers fork
 * handlers, registered through the constructor of their base class
 * grpc_event_engine::experimental::Forkable. Builds without
 * GRPC_POSIX_FORK_ALLOW_PTHREAD_ATFORK (Debian's among them) compile that
 * registry out: nothing stops or restarts those threads, and a child that
 * destroys the inherited engine waits forever for threads it never had.
 *
 * libgrpc calls Forkable's base constructor and destructor through its PLT,
 * so the shim keeps the registry itself and calls the handlers through the
 * objects' vtables, in the order upstream's atfork handlers use: before core's
 * prefork, and after core's postfork.
 */
#include "forkables.h"

#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "grpclib.h"
#include "libc.h"
#include "locks.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))

/* A handful exist (two per EventEngine); a fixed array keeps the fork path
 * free of allocation. */
#define MAX_FORKABLES 64

/* Itanium C++ ABI: the vtable of class Forkable { virtual ~Forkable();
 * virtual void PrepareFork(); virtual void PostforkParent(); virtual void
 * PostforkChild(); } holds the two destructors first. */
enum { SLOT_PREPARE = 2, SLOT_PARENT = 3, SLOT_CHILD = 4 };
typedef void (*method_fn)(void *self);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static void *live[MAX_FORKABLES];
static size_t nlive;
static bool overflow_reported;

/* The set the current fork stopped; only the forking thread touches it, and
 * forks are serialised by the fork path. */
static void *stopped[MAX_FORKABLES];
static size_t nstopped;

static void (*real_ctor)(void *);
static void (*real_dtor)(void *);
static const void *const *base_vptr; /* Forkable's own: not yet a complete object */

static void resolve(void)
{
	/* fs_grpc_symbol: also where libgrpc was loaded RTLD_LOCAL (a plugin). */
	if (real_ctor == NULL)
		*(void **)&real_ctor = fs_grpc_symbol("_ZN17grpc_event_engine12experimental8ForkableC2Ev");
	if (real_dtor == NULL)
		*(void **)&real_dtor = fs_grpc_symbol("_ZN17grpc_event_engine12experimental8ForkableD2Ev");
	if (base_vptr == NULL) {
		const void *const *vtable = fs_grpc_symbol("_ZTVN17grpc_event_engine12experimental8ForkableE");

		if (vtable != NULL)
			base_vptr = vtable + 2; /* past offset-to-top and type info */
	}
}

EXPORT void _ZN17grpc_event_engine12experimental8ForkableC2Ev(void *self);
EXPORT void _ZN17grpc_event_engine12experimental8ForkableC2Ev(void *self)
{
	resolve();
	if (real_ctor != NULL)
		real_ctor(self);
	fs_lock(&lock, FS_LOCK_FORKABLES);
	if (nlive < MAX_FORKABLES)
		live[nlive++] = self;
	else if (!overflow_reported) {
		overflow_reported = true;
		fs_log(FS_WARN, "more than %d gRPC EventEngine parts: the rest are not stopped around fork",
		       MAX_FORKABLES);
	}
	fs_unlock(&lock, FS_LOCK_FORKABLES);
}

EXPORT void _ZN17grpc_event_engine12experimental8ForkableD2Ev(void *self);
EXPORT void _ZN17grpc_event_engine12experimental8ForkableD2Ev(void *self)
{
	fs_lock(&lock, FS_LOCK_FORKABLES);
	for (size_t i = 0; i < nlive; i++) {
		if (live[i] == self) {
			/* Keep construction order: the fork path depends on it. */
			memmove(&live[i], &live[i + 1], (nlive - i - 1) * sizeof(live[0]));
			nlive--;
			break;
		}
	}
	fs_unlock(&lock, FS_LOCK_FORKABLES);
	resolve();
	if (real_dtor != NULL)
		real_dtor(self);
}

/* A part may run on another: a timer manager's loop occupies a thread of the
 * pool it was constructed with, so the pool cannot drain until the timer
 * manager has stopped. Parts are therefore stopped newest first and restarted
 * oldest first, as destructors and constructors would. */
static void call_all(int slot)
{
	if (slot == SLOT_PREPARE) {
		for (size_t i = nstopped; i-- > 0;)
			(*(method_fn **)stopped[i])[slot](stopped[i]);
	} else {
		for (size_t i = 0; i < nstopped; i++)
			(*(method_fn **)stopped[i])[slot](stopped[i]);
	}
}

void fs_forkables_prepare(void)
{
	nstopped = 0;
	fs_lock(&lock, FS_LOCK_FORKABLES);
	for (size_t i = 0; i < nlive; i++) {
		/* Still in its base constructor (another thread is making it): its
		 * handlers are not there yet, and it has no threads to stop. */
		if (base_vptr != NULL && *(const void *const **)live[i] == base_vptr)
			continue;
		stopped[nstopped++] = live[i];
	}
	fs_unlock(&lock, FS_LOCK_FORKABLES);
	/* Without the lock: stopping waits for threads that may be creating or
	 * destroying a part themselves. */
	call_all(SLOT_PREPARE);
}

void fs_forkables_parent(void)
{
	call_all(SLOT_PARENT);
	nstopped = 0;
}

void fs_forkables_child(void)
{
	call_all(SLOT_CHILD);
	nstopped = 0;
}

void fs_forkables_lock(void)
{
	fs_lock(&lock, FS_LOCK_FORKABLES);
}

void fs_forkables_unlock(void)
{
	fs_unlock(&lock, FS_LOCK_FORKABLES);
}

void fs_forkables_child_reset_lock(void)
{
	pthread_mutex_init(&lock, NULL);
	fs_lock(&lock, FS_LOCK_FORKABLES);
}
