/* The shim's own mutexes, and which of them this thread holds.
 *
 * fork() is async-signal-safe, so a signal handler may fork while its thread
 * is inside one of the shim's locked sections, or inside the fork path itself.
 * Taking any of those locks then would wait for this very thread, so the fork
 * path takes none of them (forkpath.c). To know, every section marks its lock
 * before taking it and unmarks it after releasing it: a handler that
 * interrupts either step sees the mark. A thread waiting on a condition
 * variable keeps the mark although the mutex is released meanwhile; a fork
 * from its signal handler merely takes the cautious path too.
 *
 * The mark is a plain read-modify-write of a thread-local word: a handler
 * that runs in between restores whatever it changed before it returns. */
#ifndef FORKSAFE_LOCKS_H
#define FORKSAFE_LOCKS_H

#include <pthread.h>
#include <stdatomic.h>

/* The one lock order: a thread that holds one of these takes only later ones. */
enum fs_lock_id {
	FS_LOCK_FORK,      /* forkpath.c: one fork at a time; marked for the whole fork path */
	FS_LOCK_QUIESCE,   /* quiesce.c: the threads waiting in gRPC */
	FS_LOCK_FORKABLES, /* forkables.c: the EventEngine parts */
	FS_LOCK_CHANTAB,   /* chantab.c: the channel table */
	FS_LOCK_CALLS,     /* calls.c: calls alive (audit mode) */
	/* Leaves: nothing else is taken while one is held, and neither is held
	 * while gRPC is called. */
	FS_LOCK_CREDREC,   /* credrec.c: how credentials were made, their twins */
	FS_LOCK_CQTWIN,    /* cqtwin.c: completion queues made here, their twins */
};
#define FS_LOCK_BIT(id) (1u << (id))

/* The marks of this thread (defined in forkpath.c). */
extern __thread unsigned fs_locks_held __attribute__((visibility("hidden"), tls_model("initial-exec")));

static inline void fs_lock_mark(enum fs_lock_id id)
{
	fs_locks_held |= FS_LOCK_BIT(id);
	atomic_signal_fence(memory_order_seq_cst);
}

static inline void fs_lock_unmark(enum fs_lock_id id)
{
	atomic_signal_fence(memory_order_seq_cst);
	fs_locks_held &= ~FS_LOCK_BIT(id);
}

static inline void fs_lock(pthread_mutex_t *m, enum fs_lock_id id)
{
	fs_lock_mark(id);
	pthread_mutex_lock(m);
}

static inline void fs_unlock(pthread_mutex_t *m, enum fs_lock_id id)
{
	pthread_mutex_unlock(m);
	fs_lock_unmark(id);
}

#endif
