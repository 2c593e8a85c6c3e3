/*
 * Core's fork handlers inside grpcio, run again while another thread is
 * inside gRPC.
 *
 * grpcio has gRPC core compiled in. With its fork support on (policy
 * `reset`), core's first grpc_init registers grpc_prefork,
 * grpc_postfork_parent and grpc_postfork_child with pthread_atfork, right
 * after the EventEngine's three. grpc_prefork runs once, inside fork(): if a
 * thread other than the forking one is inside gRPC at that instant (holds an
 * ExecCtx), it skips itself, and so does grpc_postfork_child. The child then
 * has no executor or timer threads and a poller that was never reset: a
 * channel it makes never resolves its target (the native resolver runs on
 * the executor), no deadline fires, and its first call waits for ever. A
 * thread reading a server stream makes that likely: the event that lets the
 * forking thread past the Python layer's pause (grpcio's channel thread
 * handing on a message) also wakes the reader, which goes straight back into
 * gRPC to ask for the next message, as the fork begins.
 *
 * In a Python interpreter the forking thread holds the GIL throughout fork():
 * a Python thread that leaves gRPC cannot enter it again before the fork is
 * over. So when core's prefork has skipped itself, calling it again a moment
 * later finds the others gone. The shim registers trampolines of its own in
 * place of an embedded gRPC's handlers (same order, same object) and, once the
 * Python layer has said which of an object's registrations is core's (it
 * knows grpcio's version: grpc_forksafe_fork.py), calls core's prepare handler
 * again every millisecond until it has run or GRPC_FORKSAFE_QUIESCE_MS is up.
 * Past the bound the fork goes ahead as before, without core's handlers.
 *
 * Whether it ran: a grpc_prefork that runs stops core's executors and timer
 * threads and joins them from the forking thread (at least one thread per
 * executor, two executors); one that skipped joins nothing. It is called
 * again only when it joined nothing: a second call after one that ran would
 * wait for ever (core blocks new entries until the fork is over). And only
 * while the embedded gRPC holds a descriptor (from grpc_init to
 * grpc_shutdown): a prefork of a core that is not initialised returns at once
 * too, and there is nothing to reset.
 *
 * Not while a thread stays inside gRPC for good: grpc.aio's poller thread
 * waits there with no deadline, and the layer says so before each fork; the
 * prepare handler is then called once, as without the shim. Without the
 * Python layer's word (another grpcio, an interpreter that does not load the
 * layer) the trampolines only pass each call on.
 */
#include "embedded_fork.h"

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "fdreg.h"
#include "init.h"
#include "libc.h"
#include "log.h"
#include "owner.h"

#define EXPORT __attribute__((visibility("default")))

typedef void (*handler_fn)(void);
typedef int (*register_fn)(handler_fn, handler_fn, handler_fn, void *);
typedef int (*join_fn)(pthread_t, void **);

/* One registration of an embedded gRPC's handlers. Filled before the
 * trampolines are handed to libc, never changed afterwards. */
struct slot {
	handler_fn prepare, parent, child;
	const void *object; /* load address of the object that holds them */
	unsigned index;     /* how many of that object's registrations came before */
};

/* grpcio 1.51 makes two registrations; more objects or more registrations
 * than this are passed on unchanged. */
#define NSLOTS 8
#define NOBJECTS 4

static struct slot slots[NSLOTS];
static unsigned nslots;
static struct {
	const void *object;
	unsigned registered;
} objects[NOBJECTS];
static pthread_mutex_t register_lock = PTHREAD_MUTEX_INITIALIZER;

/* Which registration is core's, as the Python layer named it. */
static const void *_Atomic core_object;
static _Atomic unsigned core_index;
/* Whether a skipped prepare is worth calling again: not while a thread that
 * never leaves gRPC (grpc.aio's poller) is running, as the layer tells. */
static atomic_bool core_retry = true;

static _Atomic register_fn real_register;
static _Atomic join_fn real_join;

/* Joins made by this thread while it runs core's prepare handler. */
static __thread bool in_core_prepare __attribute__((tls_model("initial-exec")));
static __thread unsigned core_joins __attribute__((tls_model("initial-exec")));
static __thread struct fs_embedded_core_outcome last __attribute__((tls_model("initial-exec")));

struct fs_embedded_core_outcome fs_embedded_core_take(void)
{
	struct fs_embedded_core_outcome o = last;

	last.what = FS_EMBEDDED_CORE_UNKNOWN;
	return o;
}

static long ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* gRPC is running while it holds descriptors: its epoll set from grpc_init
 * to grpc_shutdown. In a child, the inherited ones are placeholders, not live:
 * a core that was not reset there counts as not running. */
static bool embedded_running(void)
{
	size_t embedded;

	fs_fdreg_live_locked(&embedded);
	return embedded > 0;
}

static bool is_core(const struct slot *s)
{
	const void *object = atomic_load_explicit(&core_object, memory_order_acquire);

	return object != NULL && s->object == object && s->index == atomic_load_explicit(&core_index, memory_order_relaxed);
}

/* Fork path, prepare: no allocation. */
static void core_prepare(const struct slot *s)
{
	const struct timespec pause = { 0, 1000000 };
	struct timespec start;
	struct fs_embedded_core_outcome o = { FS_EMBEDDED_CORE_SKIPPED, 0, 0 };

	clock_gettime(CLOCK_MONOTONIC, &start);
	in_core_prepare = true;
	for (;;) {
		unsigned joins = core_joins;

		o.attempts++;
		s->prepare();
		if (core_joins != joins) {
			o.what = FS_EMBEDDED_CORE_RAN;
			break;
		}
		if (!embedded_running()) {
			o.what = FS_EMBEDDED_CORE_IDLE;
			break;
		}
		if (!atomic_load_explicit(&core_retry, memory_order_relaxed) || ms_since(&start) >= fs_cfg.quiesce_ms)
			break;
		nanosleep(&pause, NULL);
	}
	in_core_prepare = false;
	o.waited_ms = ms_since(&start);
	last = o;
}

static void run_prepare(unsigned i)
{
	const struct slot *s = &slots[i];

	if (is_core(s))
		core_prepare(s);
	else
		s->prepare();
}

#define TRAMPOLINES(i)                                    \
	static void prepare_##i(void)                     \
	{                                                 \
		run_prepare(i);                           \
	}                                                 \
	static void parent_##i(void)                      \
	{                                                 \
		slots[i].parent();                        \
	}                                                 \
	static void child_##i(void)                       \
	{                                                 \
		slots[i].child();                         \
	}
TRAMPOLINES(0)
TRAMPOLINES(1)
TRAMPOLINES(2)
TRAMPOLINES(3)
TRAMPOLINES(4)
TRAMPOLINES(5)
TRAMPOLINES(6)
TRAMPOLINES(7)

static const struct {
	handler_fn prepare, parent, child;
} trampolines[NSLOTS] = {
#define T(i) { prepare_##i, parent_##i, child_##i }
	T(0), T(1), T(2), T(3), T(4), T(5), T(6), T(7),
#undef T
};

/* The load address of the embedded gRPC object holding `addr`, or NULL. */
static const void *embedded_object(const void *addr)
{
	Dl_info info;

	if (addr == NULL || fs_owner_of(addr) != FS_OWNER_EMBEDDED || dladdr(addr, &info) == 0)
		return NULL;
	return info.dli_fbase;
}

static bool capturing(void)
{
	return fs_mode_acts(fs_cfg.mode) && fs_cfg.embedded == FS_EMBEDDED_RESET;
}

/* Returns the slot for this registration, or -1: passed on unchanged. */
static int capture(handler_fn prepare, handler_fn parent, handler_fn child)
{
	const void *object = embedded_object((const void *)(prepare != NULL ? prepare : parent != NULL ? parent : child));
	int slot = -1;
	unsigned k;

	if (object == NULL)
		return -1;
	pthread_mutex_lock(&register_lock);
	for (k = 0; k < NOBJECTS && objects[k].object != NULL && objects[k].object != object; k++)
		;
	if (k < NOBJECTS) {
		objects[k].object = object;
		if (nslots < NSLOTS) {
			slot = (int)nslots++;
			slots[slot] = (struct slot){ prepare, parent, child, object, objects[k].registered };
		}
		objects[k].registered++;
	}
	pthread_mutex_unlock(&register_lock);
	return slot;
}

/* What pthread_atfork() calls (glibc links pthread_atfork into each object
 * as a stub that names the object's __dso_handle), so grpcio's calls land
 * here. */
EXPORT int __register_atfork(handler_fn prepare, handler_fn parent, handler_fn child, void *dso);
EXPORT int __register_atfork(handler_fn prepare, handler_fn parent, handler_fn child, void *dso)
{
	register_fn reg = atomic_load_explicit(&real_register, memory_order_relaxed);
	int slot = -1;

	if (__builtin_expect(reg == NULL, 0)) {
		*(void **)&reg = fs_next_symbol("__register_atfork");
		if (reg == NULL)
			return -1; /* ENOMEM, as glibc reports a failed registration */
		atomic_store_explicit(&real_register, reg, memory_order_relaxed);
	}
	/* The shim's own registration comes from inside its set-up. */
	if (!fs_owner_is_self((const void *)(prepare != NULL ? prepare : parent != NULL ? parent : child))) {
		fs_ensure_init();
		if (capturing())
			slot = capture(prepare, parent, child);
	}
	if (slot < 0)
		return reg(prepare, parent, child, dso);
	fs_log(FS_DEBUG, "embedded gRPC's fork handlers #%u registered through the shim", slots[slot].index);
	return reg(prepare != NULL ? trampolines[slot].prepare : NULL, parent != NULL ? trampolines[slot].parent : NULL,
		   child != NULL ? trampolines[slot].child : NULL, dso);
}

/* Counts the joins of core's prepare handler (see above). */
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
	if (in_core_prepare)
		core_joins++;
	return join(thread, result);
}

/* Called by the Python layer (grpc_forksafe_fork.py) once it has checked
 * grpcio's version: the registration numbered `index` (from 0) of the object
 * that holds `in_object` is core's grpc_prefork, grpc_postfork_parent and
 * grpc_postfork_child. Returns 1 if the shim will call core's prepare
 * handler again while it skips itself, 0 if not (a policy other than
 * `reset`, or not an embedded gRPC object). */
EXPORT int grpc_forksafe_embedded_core_handlers(const void *in_object, unsigned index);
EXPORT int grpc_forksafe_embedded_core_handlers(const void *in_object, unsigned index)
{
	const void *object;

	fs_ensure_init();
	if (!capturing() || (object = embedded_object(in_object)) == NULL)
		return 0;
	atomic_store_explicit(&core_index, index, memory_order_relaxed);
	atomic_store_explicit(&core_object, object, memory_order_release);
	fs_log(FS_DEBUG, "embedded gRPC: its fork handlers #%u are core's; run again while they skip themselves",
	       index);
	return 1;
}

/* Called by the Python layer before each fork: 0 while a thread of grpcio's
 * stays inside gRPC for good (grpc.aio's poller waits there with no
 * deadline), so that a skipped prepare is not called again for nothing until
 * the bound; 1 otherwise. */
EXPORT void grpc_forksafe_embedded_core_retry(int retry);
EXPORT void grpc_forksafe_embedded_core_retry(int retry)
{
	atomic_store_explicit(&core_retry, retry != 0, memory_order_relaxed);
}
