/*
 * Threads blocked in gRPC make core skip its fork handlers (grpc_prefork
 * refuses while any other thread is inside gRPC), and every synchronous
 * grpc++ call, server-stream read and completion-queue thread is blocked in
 * grpc_completion_queue_next or _pluck (hooks_cq.c).
 *
 * The fork asks in two steps: first it waits for the threads in pluck(),
 * while those in next() go in and out as usual (a plucked call may need one
 * of them: a server of this process answering its own client, a callback
 * finishing the call); then it asks the threads in next() out. A call that
 * passed its gate just before the request and enters pluck() only then sends
 * the fork back to the first step: the threads in next() are let back in.
 *
 * - A thread waiting in next() is woken at once: the fork path posts an event
 *   with a private tag on its queue, through a connectivity watch on a lame
 *   channel with a deadline in the past (a public API that completes at once).
 *   The hook swallows that event and waits at the door, outside gRPC.
 * - A thread in pluck() is waiting for its own call, whose buffers are on its
 *   stack. It is not parked: a call left in flight across the fork would be
 *   completed in the child (its deadline timer fires there) into a stack no
 *   thread owns any more, which the child's new threads reuse. The fork waits
 *   for it to come out, its call done.
 * - While a fork is pending, new calls (hooks_grpc.c) and, from the second
 *   step on, next() wait at the door, outside gRPC, with nothing in flight.
 *   Parked threads are marked, for core's wait for its own threads
 *   (threads.c).
 *
 * A stream being read keeps its call in flight between reads, so its reader
 * is not brought out: the fork goes ahead when GRPC_FORKSAFE_QUIESCE_MS runs
 * out, core declines, and the shim says so. Each thread has a record the fork
 * path scans without allocating; records of threads that ended are reused.
 */
#include "quiesce.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/membarrier.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "config.h"
#include "grpclib.h"
#include "libc.h"
#include "locks.h"
#include "log.h"
#include "rbtree.h"

static _Atomic(struct waiter *) waiters;
__thread struct waiter *fs_quiesce_me __attribute__((tls_model("initial-exec")));
static pthread_key_t release_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t left = PTHREAD_COND_INITIALIZER;    /* a waiter left gRPC */
static pthread_cond_t resume = PTHREAD_COND_INITIALIZER;  /* the fork is done */
atomic_bool fs_quiesce_requested;
#define requested fs_quiesce_requested
atomic_bool fs_quiesce_parking;
/* Under the lock. `fork_epoch` counts the forks ended in this process,
 * `parking_round` the times a fork asked the threads in next() out. A thread
 * waits at the door only for the fork, or the round, it saw, never into the
 * next one (as a thread not scheduled in between would otherwise do). */
static unsigned long fork_epoch, parking_round;
/* The thread posting wake-ups, which holds the lock meanwhile: a gRPC call
 * made while posting that ends up in fs_quiesce_wake_forker (a thread gRPC
 * failed to start) must not take it again. */
static __thread bool posting __attribute__((tls_model("initial-exec")));
/* Fenced until fs_quiesce_init knows better: safe whatever the kernel. */
atomic_bool fs_quiesce_fenced = true;
/* membarrier failed at a fork although it had been registered: from then on
 * the fork path polls instead of trusting every wake-up to arrive. */
static bool degraded;

/* The private tag of wake-up events, and the lame channel that posts them. */
static char wake_tag;
static grpc_channel *_Atomic wake_channel;

/* Queues the application has shut down: nothing may be posted to them. */
struct shut_queue {
	RB_ENTRY(shut_queue) link;
	grpc_completion_queue *queue;
};
static int shut_cmp(const struct shut_queue *a, const struct shut_queue *b)
{
	return ((uintptr_t)a->queue > (uintptr_t)b->queue) - ((uintptr_t)a->queue < (uintptr_t)b->queue);
}
RB_HEAD(shut_tree, shut_queue);
FS_RB_GENERATE_STATIC(shut_tree, shut_queue, link, shut_cmp)
static struct shut_tree shut = RB_INITIALIZER(&shut);
/* How many queues `shut` holds, readable without the lock (see
 * fs_quiesce_note_destroy_slow). */
atomic_ulong fs_quiesce_shut_queues;
#define nshut fs_quiesce_shut_queues

static atomic_ulong waits, longest_ms;

/*
 * The handshake between a thread that waits in gRPC and a fork, and why the
 * waiting side needs no fence.
 *
 * Two questions are asked across threads, each a store followed by a load on
 * both sides (the "store buffering" pattern):
 *
 *   entering next():  W: inside = 1;  barrier;  r1 = parking
 *                     F: parking = 1;  barrier;  r2 = inside
 *   leaving either:   W: inside = 0;  barrier;  r1 = requested
 *                     F: requested = 1;  barrier;  r2 = inside
 *
 * (W: a thread in a hook, F: the fork path in fs_quiesce_begin, which reads
 * `inside` again each time it counts.) Entering, the outcome r1 == 0 with
 * r2 == 0 would let W wait in next() unseen, never woken for the fork; leaving,
 * r1 == 0 with r2 == 1 would leave F waiting for a broadcast W does not send
 * (a lost wake-up). With a full barrier on both sides neither can happen: of
 * the two barriers one comes first, and the load after the second one sees the
 * store before the first (for C11 seq_cst fences, the fence rule of
 * [atomics.order]). Every other outcome is handled: W that sees the request
 * backs out and tells F (fs_quiesce_back_out) or, leaving, wakes F; F that
 * sees W inside posts a wake-up to W's queue (swallowed by the hook if W
 * backed out) and waits for it to leave.
 *
 * A full fence costs every RPC some 20-40 cycles; forks are rare. So F pays
 * for both: after its store it calls membarrier(MEMBARRIER_CMD_PRIVATE_
 * EXPEDITED), which returns only once every other running thread of the
 * process has executed a full memory barrier (an IPI), and threads not
 * running have executed one in the scheduler when they were switched out.
 * Wherever that barrier falls in W's instruction stream, either it follows
 * W's store, which is then visible to F's load after the call returns; or it
 * precedes W's store and so also W's load, which is then performed after the
 * barrier, itself after F's store became visible (the system call is a full
 * barrier for F): W sees the request. W's side only has to keep its store
 * before its load in the instruction stream, which a compiler barrier
 * (atomic_signal_fence) does; the CPU may still let the load pass the store,
 * and that is exactly what membarrier covers. This is the pairing membarrier
 * exists for (membarrier(2): barrier() on the fast path, membarrier() on the
 * slow path).
 *
 * membarrier needs Linux 4.14 and a registration, made once, before the shim
 * first lets a thread wait in gRPC (fs_quiesce_init). Without it (an older
 * kernel, a seccomp filter) W issues a seq_cst fence instead
 * (fs_quiesce_fenced), and F one of its own: the plain symmetric handshake.
 * A child inherits the registration; should a kernel not pass it on, the
 * fork path registers again. If membarrier fails later all the same (a
 * seccomp filter installed meanwhile), threads are told to fence from then
 * on, and since some may not have heard yet, F no longer counts on every
 * wake-up: it polls, at this fork and every later one (`degraded`).
 *
 * F reads fs_quiesce_fenced under the lock, and it only changes under the
 * lock, so F's choice agrees with every W that can race with it. If F saw it
 * still set and fenced alone, and registration then cleared it (while F waits,
 * the lock released), any W now taking the light path read the cleared flag
 * after F's request was stored (F's store, F's unlock, the clearing, W's
 * acquire load of fs_grpc_outcome that precedes its fast path): W's load of
 * `requested` sees it, whatever W's barrier.
 *
 * What needs no handshake: pluck() is entered without asking (its call is in
 * flight and must complete), so a thread entering it while F counts may go
 * unseen, and a call may be created just before F's request is visible. Both
 * are inside gRPC with an ExecCtx, so core's grpc_prefork refuses, and the
 * fork path tries again until they are out (forkpath.c). Records are read
 * with acquire: `queue` is stored before `inside` (release), so F never
 * posts to a queue older than the one W entered with.
 */

static long membarrier(int cmd)
{
#ifdef __NR_membarrier
	return syscall(__NR_membarrier, cmd, 0, 0);
#else
	errno = ENOSYS;
	return -1;
#endif
}

/* Whether a seccomp filter is installed (/proc/self/status "Seccomp: 2"). A
 * filter may kill the process on a system call it does not know, and
 * membarrier is newer than many filters: under one the shim never calls it.
 * Read with open/read, which every filter that lets a program run allows. */
static bool under_seccomp_filter(void)
{
	char buf[4096];
	ssize_t n;
	int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
	const char *line;

	if (fd < 0)
		return true; /* cannot tell: assume the worst */
	n = read(fd, buf, sizeof(buf) - 1);
	fs_libc.close(fd);
	if (n <= 0)
		return true;
	buf[n] = '\0';
	line = strstr(buf, "\nSeccomp:");
	if (line == NULL)
		return (size_t)n == sizeof(buf) - 1; /* cut short: cannot tell; else no seccomp */
	line += strlen("\nSeccomp:");
	while (*line == ' ' || *line == '\t')
		line++;
	return *line != '0';
}

bool fs_quiesce_on;

void fs_quiesce_init(void)
{
	long cmds;

	if (under_seccomp_filter()) {
		fs_log(FS_DEBUG, "seccomp filter in place: membarrier not used; threads waiting in gRPC fence themselves");
		return;
	}
	cmds = membarrier(MEMBARRIER_CMD_QUERY);
	if (cmds < 0 || !(cmds & MEMBARRIER_CMD_PRIVATE_EXPEDITED) ||
	    !(cmds & MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) ||
	    membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) != 0) {
		fs_log(FS_DEBUG, "membarrier(PRIVATE_EXPEDITED) unavailable: threads waiting in gRPC fence themselves");
		return;
	}
	fs_lock(&lock, FS_LOCK_QUIESCE); /* see the note above membarrier() */
	atomic_store_explicit(&fs_quiesce_fenced, false, memory_order_relaxed);
	fs_unlock(&lock, FS_LOCK_QUIESCE);
}

/* F's barrier, between its store to `requested` and its loads of `inside`.
 * False when no barrier could be forced on the other threads. */
static bool barrier_all(void)
{
	atomic_thread_fence(memory_order_seq_cst);
	if (atomic_load_explicit(&fs_quiesce_fenced, memory_order_relaxed))
		return true; /* the other side fences itself */
	if (membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return true;
	if (errno == EPERM && membarrier(MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED) == 0 &&
	    membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) == 0)
		return true;
	return false;
}

static void release_record(void *record)
{
	struct waiter *w = record;

	atomic_store(&w->tracked, false);
	atomic_store(&w->in_use, false);
}

static void make_key(void)
{
	if (pthread_key_create(&release_key, release_record) != 0)
		release_key = (pthread_key_t)-1;
}

/* This thread's record (not on the fork path: may allocate once per thread). */
struct waiter *fs_quiesce_self_slow(void)
{
	struct waiter *w;
	bool free_one = false;

	if (fs_quiesce_me != NULL)
		return fs_quiesce_me;
	pthread_once(&key_once, make_key);
	for (w = atomic_load(&waiters); w != NULL; w = w->next)
		if (atomic_compare_exchange_strong(&w->in_use, &free_one, true))
			break;
		else
			free_one = false;
	if (w == NULL) {
		w = calloc(1, sizeof(*w));
		if (w == NULL)
			return NULL;
		atomic_store(&w->in_use, true);
		w->next = atomic_load(&waiters);
		while (!atomic_compare_exchange_weak(&waiters, &w->next, w)) {
		}
	}
	fs_quiesce_me = w;
	if (release_key != (pthread_key_t)-1)
		pthread_setspecific(release_key, w);
	return w;
}

/* Outside gRPC, until the fork pending now is done (new calls, channels) or,
 * for a thread that came out of next(), until it is let back in. A parked
 * thread is seen as such by core's wait for its own threads
 * (fs_quiesce_await_parked). */
static void wait_at_door(bool from_next)
{
	struct waiter *w = fs_quiesce_self();
	unsigned long my_epoch, my_round;

	fs_lock(&lock, FS_LOCK_QUIESCE);
	my_epoch = fork_epoch;
	my_round = parking_round;
	if (w != NULL && atomic_load(&requested)) {
		w->parked = true;
		pthread_cond_broadcast(&left);
	}
	while (atomic_load(&requested) && fork_epoch == my_epoch &&
	       (!from_next || (atomic_load(&fs_quiesce_parking) && parking_round == my_round)))
		pthread_cond_wait(&resume, &lock);
	if (w != NULL)
		w->parked = false;
	fs_unlock(&lock, FS_LOCK_QUIESCE);
}

void fs_quiesce_wait_at_door(void)
{
	wait_at_door(false);
}

void fs_quiesce_wait_next_door(void)
{
	wait_at_door(true);
}

void fs_quiesce_park(bool parked)
{
	struct waiter *w = fs_quiesce_self();

	if (w == NULL)
		return;
	fs_lock(&lock, FS_LOCK_QUIESCE);
	w->parked = parked;
	if (parked)
		pthread_cond_broadcast(&left);
	fs_unlock(&lock, FS_LOCK_QUIESCE);
}

/* A thread that was inside saw the request on its way out (or back). */
void fs_quiesce_wake_forker(void)
{
	if (posting) {
		pthread_cond_broadcast(&left); /* this thread holds the lock */
		return;
	}
	fs_lock(&lock, FS_LOCK_QUIESCE);
	pthread_cond_broadcast(&left);
	fs_unlock(&lock, FS_LOCK_QUIESCE);
}

/* Entering next(), the thread saw a fork's request: it is not inside after
 * all. The fork may have counted it already, so it is told. */
void fs_quiesce_back_out(struct waiter *w)
{
	atomic_store_explicit(&w->inside, false, memory_order_release);
	atomic_store_explicit(&w->queue, NULL, memory_order_relaxed);
	fs_quiesce_wake_forker();
}

grpc_channel *fs_quiesce_wake_channel(void)
{
	grpc_channel *c = atomic_load(&wake_channel), *none = NULL;

	if (c != NULL || fs_grpc.lame_client_channel_create == NULL)
		return c;
	c = fs_grpc.lame_client_channel_create("grpc-forksafe:wake-up", GRPC_STATUS_UNAVAILABLE,
					       "grpc-forksafe: wakes threads before a fork");
	if (!atomic_compare_exchange_strong(&wake_channel, &none, c)) {
		fs_grpc.channel_destroy(c);
		c = none;
	}
	return c;
}

bool fs_quiesce_is_wake(const grpc_event *ev)
{
	return ev->type == GRPC_OP_COMPLETE && ev->tag == &wake_tag;
}

/* Only queues served by next() ever get a wake-up; the per-call pluck queues
 * of synchronous calls are left out, at no cost. */
static bool served_by_next(grpc_completion_queue *cq)
{
	return fs_grpc.cq_completion_type == NULL || fs_grpc.cq_completion_type(cq) == GRPC_CQ_NEXT;
}

void fs_quiesce_note_shutdown(grpc_completion_queue *cq)
{
	struct shut_queue *s;

	if (!served_by_next(cq) || (s = calloc(1, sizeof(*s))) == NULL)
		return;
	s->queue = cq;
	fs_lock(&lock, FS_LOCK_QUIESCE);
	if (RB_INSERT(shut_tree, &shut, s) != NULL)
		free(s);
	else
		atomic_fetch_add_explicit(&nshut, 1, memory_order_relaxed);
	fs_unlock(&lock, FS_LOCK_QUIESCE);
}

/* A queue is shut down before it is destroyed, and the application orders
 * the two (destroy follows next() returning GRPC_QUEUE_SHUTDOWN, which follows
 * the shutdown): a queue recorded by note_shutdown is counted in `nshut` by
 * the time it is destroyed. With none recorded (every synchronous call's
 * queue), destroying costs one load (fs_quiesce_note_destroy). */
void fs_quiesce_note_destroy_slow(grpc_completion_queue *cq)
{
	struct shut_queue key = { .queue = cq }, *s;

	if (!served_by_next(cq))
		return;
	fs_lock(&lock, FS_LOCK_QUIESCE);
	s = RB_FIND(shut_tree, &shut, &key);
	if (s != NULL) {
		RB_REMOVE(shut_tree, &shut, s);
		atomic_fetch_sub_explicit(&nshut, 1, memory_order_relaxed);
	}
	fs_unlock(&lock, FS_LOCK_QUIESCE);
	free(s);
}

static bool is_shut(grpc_completion_queue *cq)
{
	struct shut_queue key = { .queue = cq };

	return RB_FIND(shut_tree, &shut, &key) != NULL;
}

static unsigned count_parked_tracked(void)
{
	unsigned n = 0;

	for (struct waiter *w = atomic_load(&waiters); w != NULL; w = w->next)
		n += w != fs_quiesce_me && atomic_load_explicit(&w->in_use, memory_order_acquire) &&
		     atomic_load_explicit(&w->tracked, memory_order_relaxed) && w->parked;
	return n;
}

/* Threads inside pluck(): inside, with no queue of next()'s. */
static unsigned count_plucking(void)
{
	unsigned n = 0;

	for (struct waiter *w = atomic_load(&waiters); w != NULL; w = w->next)
		n += w != fs_quiesce_me && atomic_load_explicit(&w->in_use, memory_order_acquire) &&
		     atomic_load_explicit(&w->inside, memory_order_acquire) &&
		     atomic_load_explicit(&w->queue, memory_order_relaxed) == NULL;
	return n;
}

static unsigned count_inside(void)
{
	unsigned n = 0;

	for (struct waiter *w = atomic_load(&waiters); w != NULL; w = w->next)
		n += w != fs_quiesce_me && atomic_load_explicit(&w->in_use, memory_order_acquire) &&
		     atomic_load_explicit(&w->inside, memory_order_acquire);
	return n;
}

static void add_ms(struct timespec *t, long ms)
{
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

static bool before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Under the lock: waits until count() is zero, or abort() (if given) is
 * not, or the deadline has passed; returns the last count. */
static unsigned wait_for(unsigned (*count)(void), unsigned (*abort)(void), const struct timespec *deadline,
			 bool exact)
{
	unsigned n;

	while ((n = count()) > 0 && (abort == NULL || abort() == 0)) {
		struct timespec until = *deadline, now;

		/* Without an exact handshake a leaving thread may not wake us:
		 * look again every millisecond. */
		if (!exact && clock_gettime(CLOCK_MONOTONIC, &now) == 0) {
			add_ms(&now, 1);
			if (before(&now, deadline))
				until = now;
		}
		if (pthread_cond_clockwait(&left, &lock, CLOCK_MONOTONIC, &until) == ETIMEDOUT &&
		    !before(&until, deadline))
			return count();
	}
	return n;
}

/* Under the lock: F's heavy barrier, after its store to `requested` or
 * `parking`. False when it could not be forced on the other threads; they
 * then fence themselves from now on, and those that did not yet hear are
 * found by polling, at this fork and every later one. */
static bool heavy_barrier(void)
{
	bool exact = barrier_all() && !degraded;

	if (!exact && !degraded) {
		degraded = true;
		atomic_store_explicit(&fs_quiesce_fenced, true, memory_order_relaxed);
		fs_log(FS_WARN, "membarrier failed (%s): threads waiting in gRPC fence themselves from now on",
		       strerror(errno));
	}
	return exact;
}

/* Under the lock, so no queue can be shut down between the check and the
 * post: posting to a shut-down queue is fatal in gRPC. */
static void post_wake_ups(grpc_channel *wake)
{
	posting = true;
	for (struct waiter *w = atomic_load(&waiters); wake != NULL && w != NULL; w = w->next) {
		grpc_completion_queue *q;

		if (w == fs_quiesce_me || !atomic_load_explicit(&w->inside, memory_order_acquire))
			continue;
		q = atomic_load_explicit(&w->queue, memory_order_relaxed);
		if (q != NULL && !is_shut(q))
			fs_grpc.channel_watch_connectivity_state(wake, GRPC_CHANNEL_IDLE,
								 fs_grpc.now(GPR_CLOCK_MONOTONIC), q, &wake_tag);
	}
	posting = false;
}

/* The bound of the fork in progress; set while `requested` is. */
static struct timespec fork_deadline;

/* Fork path (inside core's prefork). Allocates nothing. */
bool fs_quiesce_await_parked(bool (*done)(unsigned parked_tracked))
{
	bool ok;

	fs_lock(&lock, FS_LOCK_QUIESCE);
	for (;;) {
		ok = atomic_load(&requested) && done(count_parked_tracked());
		if (ok || !atomic_load(&requested))
			break;
		if (pthread_cond_clockwait(&left, &lock, CLOCK_MONOTONIC, &fork_deadline) == ETIMEDOUT) {
			ok = done(count_parked_tracked());
			break;
		}
	}
	fs_unlock(&lock, FS_LOCK_QUIESCE);
	return ok;
}

/* Under the lock: the two steps, within the fork's bound, until no thread is
 * inside; returns how many still are. */
static unsigned settle(grpc_channel *wake, bool exact)
{
	unsigned inside;

	for (;;) {
		/* Step 1: the threads in pluck(), while the threads in next() go
		 * on: a call may need one of them to complete (a server of this
		 * process answering its own client, a callback finishing it). */
		inside = wait_for(count_plucking, NULL, &fork_deadline, exact);
		if (inside != 0)
			return inside;
		/* Step 2: the threads in next(), the same handshake on `parking`. */
		parking_round++;
		atomic_store(&fs_quiesce_parking, true);
		exact = heavy_barrier();
		post_wake_ups(wake);
		inside = wait_for(count_inside, count_plucking, &fork_deadline, exact);
		if (inside == 0 || count_plucking() == 0)
			return inside;
		/* A call that passed its gate just before the request has entered
		 * pluck() since step 1 looked, and may need the threads just
		 * parked: let them go back into next() and start again. */
		atomic_store(&fs_quiesce_parking, false);
		pthread_cond_broadcast(&resume);
	}
}

static grpc_channel *current_wake(void)
{
	return fs_grpc.now != NULL ? atomic_load(&wake_channel) : NULL;
}

/* Fork path. Allocates nothing of its own; posting a wake-up is a gRPC call
 * (it allocates inside gRPC, before core's prefork, as any gRPC call would). */
unsigned fs_quiesce_begin(const struct timespec *deadline)
{
	unsigned inside;

	fs_lock(&lock, FS_LOCK_QUIESCE);
	fork_deadline = *deadline;
	atomic_store(&requested, true);
	inside = settle(current_wake(), heavy_barrier() /* the note above membarrier() */);
	fs_unlock(&lock, FS_LOCK_QUIESCE);
	return inside;
}

/* Fork path, when core found a thread inside gRPC after all: one whose call
 * passed its gate just before the request may have entered pluck() since,
 * waiting for a thread now parked. Then both steps again; else nothing. */
unsigned fs_quiesce_again(void)
{
	unsigned inside = 0;

	fs_lock(&lock, FS_LOCK_QUIESCE);
	if (count_plucking() > 0) {
		atomic_store(&fs_quiesce_parking, false);
		pthread_cond_broadcast(&resume);
		inside = settle(current_wake(), !degraded); /* `requested` is long seen */
	}
	fs_unlock(&lock, FS_LOCK_QUIESCE);
	return inside;
}

void fs_quiesce_end_parent(void)
{
	fs_lock(&lock, FS_LOCK_QUIESCE);
	fork_epoch++;
	atomic_store(&fs_quiesce_parking, false);
	atomic_store(&requested, false);
	pthread_cond_broadcast(&resume);
	fs_unlock(&lock, FS_LOCK_QUIESCE);
}

/* Fork path (child): only this thread exists; the others' records are free. */
void fs_quiesce_end_child(void)
{
	pthread_mutex_init(&lock, NULL);
	pthread_cond_init(&left, NULL);
	pthread_cond_init(&resume, NULL);
	atomic_store(&fs_quiesce_parking, false);
	atomic_store(&requested, false);
	atomic_store(&waits, 0); /* the parent's, copied */
	atomic_store(&longest_ms, 0);
	for (struct waiter *w = atomic_load(&waiters); w != NULL; w = w->next) {
		if (w == fs_quiesce_me)
			continue;
		atomic_store(&w->inside, false);
		atomic_store(&w->queue, NULL);
		atomic_store(&w->tracked, false);
		w->parked = false;
		atomic_store(&w->in_use, false);
	}
}

void fs_quiesce_note_wait(unsigned long ms)
{
	unsigned long old = atomic_load(&longest_ms);

	atomic_fetch_add(&waits, 1);
	while (ms > old && !atomic_compare_exchange_weak(&longest_ms, &old, ms)) {
	}
}

unsigned long fs_quiesce_waits(void)
{
	return atomic_load(&waits);
}

unsigned long fs_quiesce_longest_ms(void)
{
	return atomic_load(&longest_ms);
}
