/* gRPC's counted threads and the shim's answer to core's wait for them. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "libc.h"
#include "quiesce.h"
#include "threads.h"

static void setup(void)
{
	fs_libc_resolve();
}

TestSuite(threads, .init = setup, .timeout = 30);

static struct timespec in_ms(long ms)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	return t;
}

static atomic_bool marked, quit;

/* A counted thread as core starts one; with `arg` set it parks at the door
 * whenever a fork is pending, as a server worker woken in next() does. */
static void *counted_thread(void *arg)
{
	fs_threads_mark_self();
	atomic_store(&marked, true);
	while (!atomic_load(&quit)) {
		if (arg != NULL && fs_quiesce_pending())
			fs_quiesce_wait_at_door();
		sched_yield();
	}
	return NULL;
}

static pthread_t start_counted(bool parks)
{
	pthread_t t;

	atomic_store(&marked, false);
	atomic_store(&quit, false);
	fs_threads_note_counted();
	cr_assert(fs_threads_take_creating(), "the count did not mark the thread being created");
	cr_assert_not(fs_threads_take_creating(), "the mark outlived the one creation");
	cr_assert_eq(pthread_create(&t, NULL, counted_thread, parks ? &t : NULL), 0);
	while (!atomic_load(&marked))
		sched_yield();
	return t;
}

static void end_counted(pthread_t t)
{
	atomic_store(&quit, true);
	pthread_join(t, NULL);
	fs_threads_note_uncounted();
}

Test(threads, core_wait_ends_once_every_counted_thread_is_parked)
{
	struct timespec deadline = in_ms(20000);
	pthread_t t = start_counted(true);

	cr_assert_eq(fs_threads_busy(), 1);
	cr_assert_eq(fs_quiesce_begin(&deadline), 0);
	fs_threads_await();
	cr_assert_not(fs_threads_take_gave_up(), "the wait gave up although the thread was parked");
	fs_quiesce_end_parent();
	end_counted(t);
	cr_assert_eq(fs_threads_busy(), 0);
}

Test(threads, core_wait_gives_up_at_the_bound_for_a_busy_thread)
{
	struct timespec deadline = in_ms(50);
	pthread_t t = start_counted(false);

	cr_assert_eq(fs_quiesce_begin(&deadline), 0);
	fs_threads_await();
	cr_assert(fs_threads_take_gave_up(), "the wait did not give up on a thread that never parks");
	cr_assert_not(fs_threads_take_gave_up(), "the answer was not cleared");
	fs_quiesce_end_parent();
	end_counted(t);
}

Test(threads, a_child_counts_no_thread_but_its_own)
{
	fs_threads_note_counted();
	fs_threads_note_counted();
	(void)fs_threads_take_creating();
	cr_assert_eq(fs_threads_busy(), 2);
	fs_threads_child();
	cr_assert_eq(fs_threads_busy(), 0, "the parent's threads are still counted in the child");
}
