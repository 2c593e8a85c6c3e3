/* Bringing threads out of gRPC before a fork, and letting them go on after.
 *
 * The hooks' side (completion-queue waits, call creation) is inline here and
 * costs, while no fork is pending, a few plain loads and stores: no locked
 * instruction, no fence. What makes that enough is the note on the handshake
 * in quiesce.c. */
#ifndef FORKSAFE_QUIESCE_H
#define FORKSAFE_QUIESCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <grpc/grpc.h>

#define FS_HIDDEN __attribute__((visibility("hidden")))

/* One per thread that has waited in gRPC; the fork path scans them all. */
struct waiter {
	struct waiter *next;                    /* all records, never unlinked */
	_Atomic(grpc_completion_queue *) queue; /* set while inside next() */
	atomic_bool inside;                     /* inside a real next() or pluck() */
	atomic_bool in_use;                     /* owned by a live thread */
	atomic_bool tracked;                    /* one of core's tracked threads (threads.c) */
	bool parked;                            /* waiting out a fork (under the quiesce lock) */
};

/* Set (under the quiesce lock) from the moment a fork asks threads out of
 * gRPC until it lets them go on in the parent. */
extern atomic_bool fs_quiesce_requested FS_HIDDEN;
/* Set (under the quiesce lock) once the fork, no thread being left in
 * pluck(), asks the threads in next() out; cleared with the request. Until
 * then they go in and out of next() as usual, since a call being plucked may
 * need them. */
extern atomic_bool fs_quiesce_parking FS_HIDDEN;
/* True when the fork path cannot force a barrier on the other threads
 * (membarrier unavailable): the waiting side then fences itself. Settled once,
 * before the first thread can wait in gRPC (fs_quiesce_init); turned on later
 * only if membarrier stops working. */
extern atomic_bool fs_quiesce_fenced FS_HIDDEN;
extern __thread struct waiter *fs_quiesce_me FS_HIDDEN __attribute__((tls_model("initial-exec")));

/* Once, when the shim first acts on gRPC in mode reconnect or close: before
 * any thread can wait in gRPC through the hooks. */
void fs_quiesce_init(void);

/* Whether forks quiesce at all: only when the child keeps the inherited gRPC
 * (GRPC_FORKSAFE_CHILD_GRPC=inherited). Set once, before any thread can wait
 * in gRPC; with a fresh gRPC in the child the completion-queue hooks skip the
 * bookkeeping altogether. */
extern bool fs_quiesce_on FS_HIDDEN;

/* This thread's record; NULL if out of memory. Not for the fork path. */
struct waiter *fs_quiesce_self_slow(void);
static inline struct waiter *fs_quiesce_self(void)
{
	struct waiter *w = fs_quiesce_me;

	return __builtin_expect(w != NULL, 1) ? w : fs_quiesce_self_slow();
}

/* Outside gRPC until the pending fork is done: new calls and channels. */
void fs_quiesce_wait_at_door(void);
/* The same for a thread the fork asked out of next(): until the fork is done,
 * or lets the threads in next() go back in (quiesce.c). */
void fs_quiesce_wait_next_door(void);
void fs_quiesce_wake_forker(void);
void fs_quiesce_back_out(struct waiter *w);

/* Between this thread's store to its record and its load of
 * fs_quiesce_requested: the light half of the handshake in quiesce.c. */
static inline void fs_quiesce_barrier(void)
{
	if (__builtin_expect(atomic_load_explicit(&fs_quiesce_fenced, memory_order_relaxed), 0))
		atomic_thread_fence(memory_order_seq_cst);
	else
		atomic_signal_fence(memory_order_seq_cst); /* the compiler keeps the order */
}

static inline bool fs_quiesce_pending(void)
{
	return atomic_load_explicit(&fs_quiesce_requested, memory_order_relaxed);
}

/* Marks the thread inside next() on `queue`; false (and not inside) when a
 * fork asked first: the caller then waits at the door and tries again. */
static inline bool fs_quiesce_enter(struct waiter *w, grpc_completion_queue *queue)
{
	atomic_store_explicit(&w->queue, queue, memory_order_relaxed);
	atomic_store_explicit(&w->inside, true, memory_order_release); /* queue first */
	fs_quiesce_barrier();
	if (__builtin_expect(!atomic_load_explicit(&fs_quiesce_parking, memory_order_relaxed), 1))
		return true;
	fs_quiesce_back_out(w);
	return false;
}

/* Marks the thread inside pluck(): it goes in even while a fork waits (its
 * call is in flight), so it asks nothing. Its queue is already NULL. */
static inline void fs_quiesce_enter_in_call(struct waiter *w)
{
	atomic_store_explicit(&w->inside, true, memory_order_relaxed);
}

/* Out of next() or pluck(); wakes a fork that waits for this thread. */
static inline void fs_quiesce_leave(struct waiter *w, bool had_queue)
{
	atomic_store_explicit(&w->inside, false, memory_order_release);
	if (had_queue)
		atomic_store_explicit(&w->queue, NULL, memory_order_relaxed);
	fs_quiesce_barrier();
	if (__builtin_expect(fs_quiesce_pending(), 0))
		fs_quiesce_wake_forker();
}

/* Call creation: waits, outside gRPC, while a fork is pending. One load when
 * none is. (A call that passes just before a fork asks is core's business:
 * grpc_prefork refuses while it is inside, and the fork path tries again.) */
static inline void fs_quiesce_gate(void)
{
	if (__builtin_expect(fs_quiesce_pending(), 0))
		fs_quiesce_wait_at_door();
}

/* Core's prefork (Fork::AwaitThreads, threads.c) waits for its tracked
 * threads; those parked at the door never leave it while the fork is pending.
 * Waits, within the fork's bound, until `done` (called under the quiesce
 * lock, with the number of other tracked threads parked) says enough are;
 * false if the bound ran out first. Outside a fork: false at once. */
bool fs_quiesce_await_parked(bool (*done)(unsigned parked_tracked));
/* Marks this thread as waiting out a fork where gRPC makes it wait (core's
 * own block on entries), and back; wakes a fork waiting for it. */
void fs_quiesce_park(bool parked);

bool fs_quiesce_is_wake(const grpc_event *ev);
grpc_channel *fs_quiesce_wake_channel(void); /* made on first use */
void fs_quiesce_note_shutdown(grpc_completion_queue *cq);
void fs_quiesce_note_destroy_slow(grpc_completion_queue *cq);
/* How many shut-down queues are recorded; see fs_quiesce_note_destroy_slow. */
extern atomic_ulong fs_quiesce_shut_queues FS_HIDDEN;
static inline void fs_quiesce_note_destroy(grpc_completion_queue *cq)
{
	if (__builtin_expect(atomic_load_explicit(&fs_quiesce_shut_queues, memory_order_relaxed) != 0, 0))
		fs_quiesce_note_destroy_slow(cq);
}

/* Fork path (parent, before core's prefork): asks every thread waiting in
 * grpc_completion_queue_next/pluck to leave gRPC and waits for them until
 * `deadline` (CLOCK_MONOTONIC). Returns how many are still inside. Threads
 * that arrive meanwhile wait at the door. */
unsigned fs_quiesce_begin(const struct timespec *deadline);

/* Fork path, after core refused because a thread was inside gRPC: if a call
 * that passed its gate just before the fork is now being plucked, both steps
 * of fs_quiesce_begin again, within the same bound; returns how many threads
 * are still inside (0 when there was nothing to do). */
unsigned fs_quiesce_again(void);

/* After the fork: in the parent the waiting threads go back in; in the child
 * they do not exist, and their records are freed for reuse. */
void fs_quiesce_end_parent(void);
void fs_quiesce_end_child(void);

/* Statistics for the exit summary. */
unsigned long fs_quiesce_waits(void);
unsigned long fs_quiesce_longest_ms(void);
void fs_quiesce_note_wait(unsigned long ms);

#endif
