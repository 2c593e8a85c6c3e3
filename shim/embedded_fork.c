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
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "fdreg.h"
#include "log.h"
#include "owner.h"

/* One registration of an embedded gRPC's handlers. Filled before the
 * trampolines are handed to libc, never changed afterwards. */
struct slot {
	fs_atfork_fn prepare, parent, child;
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
	fs_atfork_fn prepare, parent, child;
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
static int capture(fs_atfork_fn prepare, fs_atfork_fn parent, fs_atfork_fn child)
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

bool fs_embedded_fork_register(fs_atfork_fn handlers[3])
{
	int slot;

	if (!capturing() || (slot = capture(handlers[0], handlers[1], handlers[2])) < 0)
		return false;
	fs_log(FS_DEBUG, "embedded gRPC's fork handlers #%u registered through the shim", slots[slot].index);
	if (handlers[0] != NULL)
		handlers[0] = trampolines[slot].prepare;
	if (handlers[1] != NULL)
		handlers[1] = trampolines[slot].parent;
	if (handlers[2] != NULL)
		handlers[2] = trampolines[slot].child;
	return true;
}

void fs_embedded_fork_joining(void)
{
	if (in_core_prepare)
		core_joins++;
}

bool fs_embedded_fork_name_core(const void *in_object, unsigned index)
{
	const void *object;

	if (!capturing() || (object = embedded_object(in_object)) == NULL)
		return false;
	atomic_store_explicit(&core_index, index, memory_order_relaxed);
	atomic_store_explicit(&core_object, object, memory_order_release);
	fs_log(FS_DEBUG, "embedded gRPC: its fork handlers #%u are core's; run again while they skip themselves",
	       index);
	return true;
}

void fs_embedded_fork_retry(bool retry)
{
	atomic_store_explicit(&core_retry, retry, memory_order_relaxed);
}
