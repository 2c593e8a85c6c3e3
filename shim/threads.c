/*
 * gRPC's tracked threads, and core's wait for them in its prefork.
 *
 * gRPC 1.51 counts the threads it starts with grpc_core::Thread (unless told
 * not to), and grpc_prefork ends in Fork::AwaitThreads, which waits, with no
 * bound, until that count is zero. It has just stopped its executor and timer
 * threads, which end; but a grpc++ synchronous server's workers and the
 * threads that run callback-API completions ("nexting" threads) are counted
 * too and never end. Without the shim, core's prefork never runs (Debian's
 * libgrpc registers no fork handlers); with it, every fork of a process that
 * serves or uses callbacks would hang there for ever.
 *
 * Those threads spend their life in grpc_completion_queue_next, where the fork
 * path wakes them and parks them at the door (quiesce.c), outside gRPC, for as
 * long as the fork lasts: a child in which they are gone is as good as one in
 * which they ended. So the shim answers Fork::AwaitThreads itself: it waits,
 * within GRPC_FORKSAFE_QUIESCE_MS, until every counted thread other than the
 * forking one is parked (at the door, or at core's own block on entries), and
 * never calls core's wait. To know which parked threads are counted ones, the
 * shim follows Fork::IncThreadCount into the pthread_create that comes next
 * in the same thread (thd_posix.cc creates the thread right after counting
 * it) and marks the new thread's record.
 *
 * If the bound runs out (a server worker busy in a long handler, say), the
 * fork goes ahead all the same and the child is treated as one whose fork
 * went past the bound: its gRPC calls fail at once (forkpath.c). A fork never
 * hangs here.
 */
#include "threads.h"

#include <stdatomic.h>

#include "quiesce.h"

/* Counted threads alive, by the hooks' account (core's own count is private). */
static atomic_int alive;
/* This thread has just been counted by core and is about to create the thread. */
static __thread bool creating_counted __attribute__((tls_model("initial-exec")));
/* This thread is one core counts. */
static __thread bool counted __attribute__((tls_model("initial-exec")));
/* The last AwaitThreads of this thread gave up waiting. */
static __thread bool gave_up __attribute__((tls_model("initial-exec")));

void fs_threads_note_counted(void)
{
	atomic_fetch_add(&alive, 1);
	creating_counted = true;
}

void fs_threads_note_uncounted(void)
{
	/* A thread that failed to start is uncounted by its creator. */
	creating_counted = false;
	atomic_fetch_sub(&alive, 1);
	fs_quiesce_wake_forker(); /* a fork may be waiting for this thread */
}

bool fs_threads_take_creating(void)
{
	bool c = creating_counted;

	creating_counted = false;
	return c;
}

void fs_threads_mark_self(void)
{
	struct waiter *w;

	counted = true;
	if ((w = fs_quiesce_self()) != NULL)
		atomic_store(&w->tracked, true);
}

/* Under the quiesce lock. */
static bool others_parked(unsigned parked_counted)
{
	return fs_threads_busy() <= (int)parked_counted;
}

void fs_threads_await(void)
{
	gave_up = !fs_quiesce_await_parked(others_parked);
}

bool fs_threads_take_gave_up(void)
{
	bool g = gave_up;

	gave_up = false;
	return g;
}

int fs_threads_busy(void)
{
	return atomic_load(&alive) - (counted ? 1 : 0);
}

void fs_threads_child(void)
{
	atomic_store(&alive, counted ? 1 : 0);
	creating_counted = false;
}
