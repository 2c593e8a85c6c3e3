/* Bringing threads out of gRPC before a fork, and letting them go on after. */
#ifndef FORKSAFE_QUIESCE_H
#define FORKSAFE_QUIESCE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include <grpc/grpc.h>

/* For the completion-queue hooks (hooks_cq.c). */
struct waiter;
struct waiter *fs_quiesce_self(void);   /* this thread's record; NULL if out of memory */
bool fs_quiesce_enter(struct waiter *w, grpc_completion_queue *next_queue); /* false: wait at the door */
void fs_quiesce_enter_in_call(struct waiter *w); /* inside, even while a fork waits */
void fs_quiesce_leave(struct waiter *w);
void fs_quiesce_wait_at_door(void);
bool fs_quiesce_is_wake(const grpc_event *ev);
grpc_channel *fs_quiesce_wake_channel(void); /* made on first use */
void fs_quiesce_note_shutdown(grpc_completion_queue *cq);
void fs_quiesce_note_destroy(grpc_completion_queue *cq);

/* Fork path (parent, before core's prefork): asks every thread waiting in
 * grpc_completion_queue_next/pluck to leave gRPC and waits for them until
 * `deadline` (CLOCK_MONOTONIC). Returns how many are still inside. Threads
 * that arrive meanwhile wait at the door. */
unsigned fs_quiesce_begin(const struct timespec *deadline);

/* After the fork: in the parent the waiting threads go back in; in the child
 * they do not exist, and their records are freed for reuse. */
void fs_quiesce_end_parent(void);
void fs_quiesce_end_child(void);

/* Statistics for the exit summary. */
unsigned long fs_quiesce_waits(void);
unsigned long fs_quiesce_longest_ms(void);
void fs_quiesce_note_wait(unsigned long ms);

/* Call creation: waits, outside gRPC, while a fork is pending. One atomic
 * load when none is. */
extern atomic_bool fs_quiesce_requested;
static inline void fs_quiesce_gate(void)
{
	if (__builtin_expect(atomic_load_explicit(&fs_quiesce_requested, memory_order_acquire), 0))
		fs_quiesce_wait_at_door();
}

#endif
