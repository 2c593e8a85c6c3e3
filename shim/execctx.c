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

#include "grpclib.h"
#include "quiesce.h"

#define EXPORT __attribute__((visibility("default")))

/*
 * Every ExecCtx gRPC opens or closes (some 17 of each per unary RPC) passes
 * through these hooks, so each is a thread-local count (fs_grpc_depth) and a
 * jump through a pointer, which holds core's function until the process
 * first runs grpc_prefork:
 *
 * - entering: `inc_entry` leads elsewhere only while grpc_prefork runs; only
 *   then does a thread look at what it is (the forking thread, or one of
 *   gRPC's by its name). A thread that read the pointer just before it
 *   changed behaves as one that read a flag just before it changed would: its
 *   entry is counted (or let through) and its exit matches.
 * - leaving: from the first grpc_prefork on, `dec_entry` leads to
 *   dec_checking, for good (a thread may still be about to let itself through
 *   after the fork, so there is no safe moment to switch back; a child, with
 *   one thread, does). It is switched before `inc_entry`, which is stored with
 *   release, and a thread is let through only after an acquire fence
 *   (inc_in_prefork): a thread that was let through sees it.
 *   There, `passes` counts the entries let through and not yet left, over all
 *   threads. A thread that was let through added to it itself, before this
 *   load in its own order, and only its own exits take its passes away again,
 *   so it never reads zero while it owes one: reading zero means this
 *   thread's exit is an ordinary one. Only otherwise is the thread's own count
 *   (`passed`, thread-local) consulted.
 *
 * Core's functions are looked up on first use: until then the pointers hold a
 * function that looks them up.
 */
typedef void (*count_fn)(void);
static void first_inc(void);
static void first_dec(void);
static _Atomic count_fn real_inc;               /* core's, once looked up */
static _Atomic count_fn real_dec;
static _Atomic count_fn inc_entry = first_inc;  /* where the hooks go */
static _Atomic count_fn dec_entry = first_dec;
static atomic_uint passes;
static __thread bool forking __attribute__((tls_model("initial-exec")));
static __thread unsigned passed __attribute__((tls_model("initial-exec")));
__thread unsigned fs_grpc_depth __attribute__((tls_model("initial-exec")));

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

static count_fn core_inc(void)
{
	return core_fn(&real_inc, "_ZN9grpc_core4Fork17DoIncExecCtxCountEv");
}

static count_fn core_dec(void)
{
	return core_fn(&real_dec, "_ZN9grpc_core4Fork17DoDecExecCtxCountEv");
}

/* Until the lookup, unless grpc_prefork has redirected the hook meanwhile. */
static void first_inc(void)
{
	count_fn expected = first_inc;

	atomic_compare_exchange_strong(&inc_entry, &expected, core_inc());
	atomic_load_explicit(&inc_entry, memory_order_acquire)();
}

static void first_dec(void)
{
	count_fn expected = first_dec;

	atomic_compare_exchange_strong(&dec_entry, &expected, core_dec());
	atomic_load_explicit(&dec_entry, memory_order_relaxed)();
}

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

/* Entering while grpc_prefork runs. */
static void inc_in_prefork(void)
{
	/* With the hook's load of inc_entry, an acquire: this thread sees
	 * dec_entry as switched before inc_entry was. */
	atomic_thread_fence(memory_order_acquire);
	if (forking || grpc_internal_thread()) {
		passed++;
		atomic_fetch_add_explicit(&passes, 1, memory_order_relaxed);
		return;
	}
	/* Held by core until the fork is done, outside any ExecCtx: as good as
	 * parked at the shim's door, for core's wait for its threads (threads.c). */
	fs_quiesce_park(true);
	core_inc()();
	fs_quiesce_park(false);
}

/* Leaving, once a thread may have been let through. */
static void dec_checking(void)
{
	if (atomic_load_explicit(&passes, memory_order_relaxed) != 0 && passed > 0) {
		passed--; /* its entry was never counted */
		atomic_fetch_sub_explicit(&passes, 1, memory_order_relaxed);
		return;
	}
	core_dec()();
}

void fs_execctx_prefork_running(bool running)
{
	forking = running;
	if (running)
		atomic_store_explicit(&dec_entry, dec_checking, memory_order_relaxed);
	atomic_store_explicit(&inc_entry, running ? inc_in_prefork : core_inc(), memory_order_release);
}

/* In the child only the forking thread is left: only its passes remain owed,
 * and with none owed its exits need no checking. */
void fs_execctx_child(void)
{
	atomic_store_explicit(&passes, passed, memory_order_relaxed);
	if (passed == 0 && atomic_load_explicit(&dec_entry, memory_order_relaxed) == dec_checking)
		atomic_store_explicit(&dec_entry, core_dec(), memory_order_relaxed);
}

/* A child whose core was left blocked (a raw clone() child: core's prefork
 * ran, its postfork never will): entries are no longer counted, so the
 * child's gRPC calls, which fail at once there, do not wait for a fork that
 * ended in another process. */
void fs_execctx_child_unblocked(void)
{
	atomic_store_explicit(&dec_entry, nothing, memory_order_relaxed);
	atomic_store_explicit(&inc_entry, nothing, memory_order_release);
}

EXPORT void _ZN9grpc_core4Fork17DoIncExecCtxCountEv(void);
EXPORT void _ZN9grpc_core4Fork17DoIncExecCtxCountEv(void)
{
	fs_grpc_enter();
	atomic_load_explicit(&inc_entry, memory_order_relaxed)(); /* see inc_in_prefork */
}

EXPORT void _ZN9grpc_core4Fork17DoDecExecCtxCountEv(void);
EXPORT void _ZN9grpc_core4Fork17DoDecExecCtxCountEv(void)
{
	atomic_load_explicit(&dec_entry, memory_order_relaxed)();
	fs_grpc_leave();
}
