#include "calls.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

#include "locks.h"
#include "log.h"
#include "rbtree.h"

struct live_call {
	RB_ENTRY(live_call) by_call;
	grpc_call *call;
	unsigned long refs;
};

static int call_cmp(const struct live_call *a, const struct live_call *b)
{
	return ((uintptr_t)a->call > (uintptr_t)b->call) - ((uintptr_t)a->call < (uintptr_t)b->call);
}

RB_HEAD(call_tree, live_call);
FS_RB_GENERATE_STATIC(call_tree, live_call, by_call, call_cmp)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct call_tree calls = RB_INITIALIZER(&calls);
static size_t ncalls;

static struct live_call *find(grpc_call *call)
{
	struct live_call key = { .call = call };

	return RB_FIND(call_tree, &calls, &key);
}

void fs_calls_created(grpc_call *call)
{
	struct live_call *c = calloc(1, sizeof(*c));

	if (c == NULL || call == NULL) {
		free(c);
		return;
	}
	c->call = call;
	c->refs = 1;
	fs_lock(&lock, FS_LOCK_CALLS);
	if (RB_INSERT(call_tree, &calls, c) == NULL)
		ncalls++;
	else
		free(c); /* an address reused after a call the shim never saw end */
	fs_unlock(&lock, FS_LOCK_CALLS);
}

void fs_calls_ref(grpc_call *call)
{
	struct live_call *c;

	fs_lock(&lock, FS_LOCK_CALLS);
	if ((c = find(call)) != NULL)
		c->refs++;
	fs_unlock(&lock, FS_LOCK_CALLS);
}

void fs_calls_unref(grpc_call *call)
{
	struct live_call *c, *gone = NULL;

	fs_lock(&lock, FS_LOCK_CALLS);
	if ((c = find(call)) != NULL && --c->refs == 0) {
		RB_REMOVE(call_tree, &calls, c);
		ncalls--;
		gone = c;
	}
	fs_unlock(&lock, FS_LOCK_CALLS);
	free(gone);
}

void fs_calls_lock(void)
{
	fs_lock(&lock, FS_LOCK_CALLS);
}

void fs_calls_unlock(void)
{
	fs_unlock(&lock, FS_LOCK_CALLS);
}

void fs_calls_child_reset_lock(void)
{
	pthread_mutex_init(&lock, NULL);
	fs_lock(&lock, FS_LOCK_CALLS);
}

size_t fs_calls_count_locked(void)
{
	return ncalls;
}
