/*
 * Threads blocked in gRPC make core skip its fork handlers (grpc_prefork
 * refuses while any other thread is inside gRPC), and every synchronous
 * grpc++ call, server-stream read and completion-queue thread is blocked in
 * grpc_completion_queue_next or _pluck (hooks_cq.c).
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
 * - While a fork is pending, new calls (hooks_grpc.c) and next() wait at the
 *   door, outside gRPC, with nothing in flight.
 *
 * A stream being read keeps its call in flight between reads, so its reader
 * is not brought out: the fork goes ahead when GRPC_FORKSAFE_QUIESCE_MS runs
 * out, core declines, and the shim says so. Each thread has a record the fork
 * path scans without allocating; records of threads that ended are reused.
 */
#include "quiesce.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#include "config.h"
#include "grpclib.h"
#include "log.h"
#include "rbtree.h"

struct waiter {
	struct waiter *next;                    /* all records, never unlinked */
	_Atomic(grpc_completion_queue *) queue; /* set while inside next() */
	atomic_bool inside;                     /* inside a real next() or pluck() */
	atomic_bool in_use;                     /* owned by a live thread */
};

static _Atomic(struct waiter *) waiters;
static __thread struct waiter *self __attribute__((tls_model("initial-exec")));
static pthread_key_t release_key;
static pthread_once_t key_once = PTHREAD_ONCE_INIT;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t left = PTHREAD_COND_INITIALIZER;    /* a waiter left gRPC */
static pthread_cond_t resume = PTHREAD_COND_INITIALIZER;  /* the fork is done */
atomic_bool fs_quiesce_requested;
#define requested fs_quiesce_requested

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

static atomic_ulong waits, longest_ms;

static void release_record(void *record)
{
	atomic_store(&((struct waiter *)record)->in_use, false);
}

static void make_key(void)
{
	if (pthread_key_create(&release_key, release_record) != 0)
		release_key = (pthread_key_t)-1;
}

/* This thread's record (not on the fork path: may allocate once per thread). */
struct waiter *fs_quiesce_self(void)
{
	struct waiter *w;
	bool free_one = false;

	if (self != NULL)
		return self;
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
	self = w;
	if (release_key != (pthread_key_t)-1)
		pthread_setspecific(release_key, w);
	return w;
}

/* Outside gRPC, until no fork is pending. */
void fs_quiesce_wait_at_door(void)
{
	pthread_mutex_lock(&lock);
	while (atomic_load(&requested))
		pthread_cond_wait(&resume, &lock);
	pthread_mutex_unlock(&lock);
}

/* Marks the thread inside; false (and not inside) when a fork asked first.
 * The store-then-load pairs with the fork path's store-then-scan (both
 * sequentially consistent), so one of the two always sees the other. */
bool fs_quiesce_enter(struct waiter *w, grpc_completion_queue *next_queue)
{
	atomic_store(&w->queue, next_queue);
	atomic_store(&w->inside, true);
	if (!atomic_load(&requested))
		return true;
	atomic_store(&w->inside, false);
	atomic_store(&w->queue, NULL);
	return false;
}

/* The queue is already NULL: every leave() clears it. */
void fs_quiesce_enter_in_call(struct waiter *w)
{
	atomic_store(&w->inside, true);
}

void fs_quiesce_leave(struct waiter *w)
{
	atomic_store(&w->inside, false);
	atomic_store(&w->queue, NULL);
	if (atomic_load(&requested)) {
		pthread_mutex_lock(&lock);
		pthread_cond_broadcast(&left);
		pthread_mutex_unlock(&lock);
	}
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
	pthread_mutex_lock(&lock);
	if (RB_INSERT(shut_tree, &shut, s) != NULL)
		free(s);
	pthread_mutex_unlock(&lock);
}

void fs_quiesce_note_destroy(grpc_completion_queue *cq)
{
	struct shut_queue key = { .queue = cq }, *s;

	if (!served_by_next(cq))
		return;
	pthread_mutex_lock(&lock);
	s = RB_FIND(shut_tree, &shut, &key);
	if (s != NULL)
		RB_REMOVE(shut_tree, &shut, s);
	pthread_mutex_unlock(&lock);
	free(s);
}

static bool is_shut(grpc_completion_queue *cq)
{
	struct shut_queue key = { .queue = cq };

	return RB_FIND(shut_tree, &shut, &key) != NULL;
}

static unsigned count_inside(void)
{
	unsigned n = 0;

	for (struct waiter *w = atomic_load(&waiters); w != NULL; w = w->next)
		n += atomic_load(&w->in_use) && atomic_load(&w->inside) && w != self;
	return n;
}

/* Fork path. Allocates nothing of its own; posting a wake-up is a gRPC call
 * (it allocates inside gRPC, before core's prefork, as any gRPC call would). */
unsigned fs_quiesce_begin(const struct timespec *deadline)
{
	grpc_channel *wake = fs_grpc.now != NULL ? atomic_load(&wake_channel) : NULL;
	unsigned inside;

	pthread_mutex_lock(&lock);
	atomic_store(&requested, true);
	/* Held while posting, so no queue can be shut down between the check and
	 * the post: posting to a shut-down queue is fatal in gRPC. */
	for (struct waiter *w = atomic_load(&waiters); wake != NULL && w != NULL; w = w->next) {
		grpc_completion_queue *q = atomic_load(&w->queue);

		if (w != self && q != NULL && atomic_load(&w->inside) && !is_shut(q))
			fs_grpc.channel_watch_connectivity_state(wake, GRPC_CHANNEL_IDLE,
								 fs_grpc.now(GPR_CLOCK_MONOTONIC), q, &wake_tag);
	}
	while ((inside = count_inside()) > 0)
		if (pthread_cond_clockwait(&left, &lock, CLOCK_MONOTONIC, deadline) == ETIMEDOUT) {
			inside = count_inside();
			break;
		}
	pthread_mutex_unlock(&lock);
	return inside;
}

void fs_quiesce_end_parent(void)
{
	pthread_mutex_lock(&lock);
	atomic_store(&requested, false);
	pthread_cond_broadcast(&resume);
	pthread_mutex_unlock(&lock);
}

/* Fork path (child): only this thread exists; the others' records are free. */
void fs_quiesce_end_child(void)
{
	pthread_mutex_init(&lock, NULL);
	pthread_cond_init(&left, NULL);
	pthread_cond_init(&resume, NULL);
	atomic_store(&requested, false);
	atomic_store(&waits, 0); /* the parent's, copied */
	atomic_store(&longest_ms, 0);
	for (struct waiter *w = atomic_load(&waiters); w != NULL; w = w->next) {
		if (w == self)
			continue;
		atomic_store(&w->inside, false);
		atomic_store(&w->queue, NULL);
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
