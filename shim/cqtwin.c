#include "cqtwin.h"

#include "rbtree.h"
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "locks.h"
#include "log.h"

/* A queue the module knows: made in a forked generation, or a callback queue
 * (any generation), or an inherited queue a twin was made for. */
struct queue {
	RB_ENTRY(queue) by_ptr;
	grpc_completion_queue *cq;
	unsigned generation; /* made in; 0 for an inherited queue never recorded */
	bool callback;
	grpc_completion_queue_functor *functor; /* callback queues: the application's (or grpc++'s) */
	grpc_completion_queue *twin;            /* in the current generation's instance */
};

static int queue_cmp(const struct queue *a, const struct queue *b)
{
	return ((uintptr_t)a->cq > (uintptr_t)b->cq) - ((uintptr_t)a->cq < (uintptr_t)b->cq);
}

RB_HEAD(queue_tree, queue);
FS_RB_GENERATE_STATIC(queue_tree, queue, by_ptr, queue_cmp)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* One thread makes twins at a time, with the lock released while it calls
 * gRPC: a second twin of a callback queue could not be thrown away without
 * shutting it down, which runs the application's functor. */
static pthread_cond_t made_twin = PTHREAD_COND_INITIALIZER;
static bool making;
static struct queue_tree queues = RB_INITIALIZER(&queues);
static size_t nqueues, ntwins;
static unsigned current;

static struct queue *find(grpc_completion_queue *cq)
{
	struct queue key = { .cq = cq };

	return RB_FIND(queue_tree, &queues, &key);
}

static void remove_locked(struct queue *q)
{
	RB_REMOVE(queue_tree, &queues, q);
	nqueues--;
	if (q->twin != NULL)
		ntwins--;
}

static void wait_for_maker_locked(void)
{
	while (making)
		pthread_cond_wait(&made_twin, &lock);
}

void fs_cqtwin_note_created(grpc_completion_queue *cq, grpc_cq_completion_type type,
			    grpc_completion_queue_functor *functor)
{
	struct queue *q, *old;

	if (cq == NULL)
		return;
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		fs_log(FS_WARN, "out of memory: completion queue %p is not recorded; a child cannot make its twin",
		       (void *)cq);
		return;
	}
	q->cq = cq;
	q->callback = type == GRPC_CQ_CALLBACK;
	q->functor = q->callback ? functor : NULL;
	fs_lock(&lock, FS_LOCK_CQTWIN);
	if (current == 0 && !q->callback) {
		fs_unlock(&lock, FS_LOCK_CQTWIN);
		free(q);
		return;
	}
	q->generation = current;
	/* Still here: destroyed without passing through the shim, its address
	 * now reused. */
	old = find(cq);
	if (old != NULL)
		remove_locked(old);
	RB_INSERT(queue_tree, &queues, q);
	nqueues++;
	fs_unlock(&lock, FS_LOCK_CQTWIN);
	free(old);
}

void fs_cqtwin_note_destroyed(grpc_completion_queue *cq)
{
	struct queue *q;

	fs_lock(&lock, FS_LOCK_CQTWIN);
	wait_for_maker_locked();
	q = find(cq);
	if (q != NULL)
		remove_locked(q);
	fs_unlock(&lock, FS_LOCK_CQTWIN);
	free(q);
}

static grpc_cq_polling_type polling_of(grpc_completion_queue *cq, const struct fs_cq_ops *fresh)
{
	/* Core exports no accessor for the polling type; these two tell the three
	 * apart: only a default-polling queue listens, and only a non-polling one
	 * has no pollset. */
	if (fresh->can_listen == NULL || fresh->can_listen(cq))
		return GRPC_CQ_DEFAULT_POLLING;
	if (fresh->pollset != NULL && fresh->pollset(cq) == NULL)
		return GRPC_CQ_NON_POLLING;
	return GRPC_CQ_NON_LISTENING;
}

/* Makes the twin of inherited `cq`, without the lock. NULL and *why on failure. */
static grpc_completion_queue *make_twin(grpc_completion_queue *cq, bool known_callback,
					grpc_completion_queue_functor *functor, const struct fs_cq_ops *fresh,
					const char **why)
{
	grpc_completion_queue_attributes attrs = { .version = GRPC_CQ_CURRENT_VERSION };
	const grpc_completion_queue_factory *factory;
	grpc_completion_queue *t;

	if (fresh->completion_type == NULL || fresh->create == NULL || fresh->factory_lookup == NULL) {
		*why = "the fresh gRPC lacks the functions that make a queue like it";
		return NULL;
	}
	attrs.cq_completion_type = fresh->completion_type(cq);
	if (attrs.cq_completion_type == GRPC_CQ_CALLBACK && (!known_callback || functor == NULL)) {
		*why = "a callback queue whose shutdown functor was not recorded";
		return NULL;
	}
	attrs.cq_polling_type = polling_of(cq, fresh);
	attrs.cq_shutdown_cb = attrs.cq_completion_type == GRPC_CQ_CALLBACK ? functor : NULL;
	factory = fresh->factory_lookup(&attrs);
	t = factory != NULL ? fresh->create(factory, &attrs, NULL) : NULL;
	if (t == NULL)
		*why = "the fresh gRPC made no queue";
	return t;
}

grpc_completion_queue *fs_cqtwin_route(grpc_completion_queue *cq, const struct fs_cq_ops *fresh)
{
	struct queue *q, *spare;
	grpc_completion_queue *t;
	grpc_completion_queue_functor *functor = NULL;
	bool callback = false;
	unsigned from = 0;
	const char *why = NULL;

	if (cq == NULL)
		return NULL;
	fs_lock(&lock, FS_LOCK_CQTWIN);
	if (current == 0) {
		/* Nothing is inherited in a process that never forked. */
		fs_unlock(&lock, FS_LOCK_CQTWIN);
		return cq;
	}
	wait_for_maker_locked();
	q = find(cq);
	if (q != NULL && (q->generation == current || q->twin != NULL)) {
		t = q->generation == current ? cq : q->twin;
		fs_unlock(&lock, FS_LOCK_CQTWIN);
		return t;
	}
	if (q != NULL) {
		callback = q->callback;
		functor = q->functor;
		from = q->generation;
	}
	making = true;
	fs_unlock(&lock, FS_LOCK_CQTWIN);

	spare = calloc(1, sizeof(*spare));
	t = spare != NULL ? make_twin(cq, callback, functor, fresh, &why) : NULL;
	if (spare == NULL)
		why = "out of memory";

	fs_lock(&lock, FS_LOCK_CQTWIN);
	making = false;
	pthread_cond_broadcast(&made_twin);
	if (t != NULL) {
		q = find(cq);
		if (q == NULL) {
			/* Never recorded, so made in generation 0 (every forked
			 * generation records its queues), or destroyed meanwhile:
			 * the application's race. */
			q = spare;
			spare = NULL;
			q->cq = cq;
			RB_INSERT(queue_tree, &queues, q);
			nqueues++;
		}
		q->twin = t;
		ntwins++;
	}
	fs_unlock(&lock, FS_LOCK_CQTWIN);
	free(spare);
	if (t == NULL)
		fs_log(FS_ERROR, "no twin for completion queue %p inherited from generation %u: %s", (void *)cq, from,
		       why);
	else
		fs_log(FS_DEBUG, "completion queue %p inherited from generation %u: twin %p", (void *)cq, from,
		       (void *)t);
	return t;
}

void fs_cqtwin_shutdown(grpc_completion_queue *cq, const struct fs_cq_ops *fresh)
{
	grpc_completion_queue *t = fs_cqtwin_route(cq, fresh);

	if (t != NULL && fresh->shutdown != NULL)
		fresh->shutdown(t);
}

bool fs_cqtwin_destroy(grpc_completion_queue *cq, const struct fs_cq_ops *fresh)
{
	struct queue *q;
	grpc_completion_queue *gone;
	bool inherited;

	fs_lock(&lock, FS_LOCK_CQTWIN);
	wait_for_maker_locked();
	q = find(cq);
	inherited = !(current == 0 || (q != NULL && q->generation == current));
	if (!inherited)
		gone = cq;
	else
		gone = q != NULL ? q->twin : NULL; /* NULL: no twin was made; nothing to do */
	if (q != NULL)
		remove_locked(q);
	fs_unlock(&lock, FS_LOCK_CQTWIN);
	free(q);
	if (gone != NULL && fresh->destroy != NULL)
		fresh->destroy(gone);
	return inherited;
}

void fs_cqtwin_reset(unsigned generation)
{
	struct queue *q, *next;

	fs_lock(&lock, FS_LOCK_CQTWIN);
	wait_for_maker_locked();
	current = generation;
	for (q = RB_MIN(queue_tree, &queues); q != NULL; q = next) {
		next = RB_NEXT(queue_tree, &queues, q);
		if (q->twin != NULL) {
			q->twin = NULL;
			ntwins--;
		}
		/* Only a callback queue's record still says something a twin
		 * needs; an unrecorded queue counts as inherited anyway. */
		if (!q->callback) {
			remove_locked(q);
			free(q);
		}
	}
	fs_unlock(&lock, FS_LOCK_CQTWIN);
}

void fs_cqtwin_lock(void)
{
	fs_lock(&lock, FS_LOCK_CQTWIN);
}

void fs_cqtwin_unlock(void)
{
	fs_unlock(&lock, FS_LOCK_CQTWIN);
}

/* In the child, while it has one thread: the lock is re-made rather than
 * unlocked. A twin another thread was making at the fork is never finished;
 * the child's reset drops twins anyway. */
void fs_cqtwin_child_reset_lock(void)
{
	pthread_mutex_init(&lock, NULL);
	pthread_cond_init(&made_twin, NULL);
	making = false;
	fs_lock(&lock, FS_LOCK_CQTWIN);
}

size_t fs_cqtwin_count(void)
{
	size_t n;

	fs_lock(&lock, FS_LOCK_CQTWIN);
	n = nqueues;
	fs_unlock(&lock, FS_LOCK_CQTWIN);
	return n;
}

size_t fs_cqtwin_twins(void)
{
	size_t n;

	fs_lock(&lock, FS_LOCK_CQTWIN);
	n = ntwins;
	fs_unlock(&lock, FS_LOCK_CQTWIN);
	return n;
}
