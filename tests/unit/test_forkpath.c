/* Fork bookkeeping: generations, and locks that a child can always take. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chantab.h"
#include "execctx.h"
#include "fdreg.h"
#include "forkpath.h"
#include "libc.h"
#include "locks.h"

static void setup(void)
{
	fs_libc_resolve();
	cr_assert_eq(pthread_atfork(fs_fork_prepare, fs_fork_parent, fs_fork_child), 0);
}

TestSuite(forkpath, .init = setup, .timeout = 30);

static int wait_status(pid_t pid)
{
	int status;

	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

Test(forkpath, each_fork_adds_one_generation_in_the_child_only)
{
	pid_t pid;

	cr_assert_eq(fs_generation, 0);
	pid = fork();
	if (pid == 0) {
		pid_t grandchild;

		if (fs_generation != 1)
			_exit(1);
		grandchild = fork();
		if (grandchild == 0)
			_exit(fs_generation == 2 ? 0 : 2);
		if (fs_generation != 1)
			_exit(3);
		_exit(wait_status(grandchild));
	}
	cr_assert_eq(wait_status(pid), 0);
	cr_assert_eq(fs_generation, 0, "the parent's generation changed");
}

static atomic_bool stop;

/* Takes and drops the shim's locks as fast as it can, as busy gRPC threads would. */
static void *hammer(void *arg)
{
	int sv[2];

	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return NULL;
	while (!atomic_load(&stop)) {
		fs_fdreg_adopt(sv[0], FS_FD_SOCKET, false);
		fs_chantab_track((grpc_channel *)sv, "t", NULL, NULL, fs_generation);
		fs_chantab_untrack((grpc_channel *)sv, fs_generation);
		(void)fs_fdreg_contains(sv[0]);
	}
	return NULL;
}

Test(forkpath, a_child_never_inherits_a_lock_held_by_another_thread)
{
	pthread_t threads[2];
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	for (int i = 0; i < 2; i++)
		pthread_create(&threads[i], NULL, hammer, NULL);
	for (int i = 0; i < 200; i++) {
		pid_t pid = fork();

		if (pid == 0) {
			/* Every lock must be free here; a deadlock trips the suite's timeout.
			 * The hammering threads' own entries may have been copied in. */
			size_t before = fs_chantab_count();

			fs_fdreg_adopt(sv[0], FS_FD_SOCKET, false);
			fs_chantab_track((grpc_channel *)sv, "t", NULL, NULL, fs_generation);
			if (fs_chantab_count() != before + 1)
				_exit(1);
			fs_chantab_untrack((grpc_channel *)sv, fs_generation);
			_exit(fs_chantab_count() == before && fs_fdreg_contains(sv[0]) ? 0 : 2);
		}
		cr_assert_eq(wait_status(pid), 0, "fork %d", i);
	}
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(threads[i], NULL);
}

/* A signal handler may fork while its thread is inside one of the shim's
 * locked sections: here the thread holds the channel table's lock, as the
 * code a handler interrupted would. The fork must not wait for it. */
Test(forkpath, a_fork_on_a_thread_holding_a_shim_lock_takes_no_lock)
{
	int sv[2];
	pid_t pid;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fs_chantab_lock();
	pid = fork(); /* a deadlock trips the suite's timeout */
	if (pid == 0) {
		/* The interrupted section goes on, and ends, in the child too. */
		fs_chantab_unlock();
		if (fs_generation != 1 || fs_locks_held != 0)
			_exit(1);
		fs_chantab_track((grpc_channel *)sv, "t", NULL, NULL, fs_generation);
		fs_chantab_untrack((grpc_channel *)sv, fs_generation);
		_exit(0);
	}
	fs_chantab_unlock();
	cr_assert_eq(wait_status(pid), 0);
	cr_assert_eq(fs_generation, 0, "the parent's generation changed");
	cr_assert_eq(fs_locks_held, 0);
	/* Nothing is left held: an ordinary fork takes every lock again. */
	pid = fork();
	if (pid == 0)
		_exit(fs_generation == 1 ? 0 : 1);
	cr_assert_eq(wait_status(pid), 0);
}

/* ... or inside the fork path itself, which holds every lock from its
 * prepare step to its parent step. */
Test(forkpath, a_fork_inside_the_fork_path_leaves_that_fork_alone)
{
	pid_t pid;

	fs_fork_prepare(); /* an outer fork, interrupted before libc's fork */
	pid = fork();
	if (pid == 0)
		_exit(fs_generation == 1 ? 0 : 1);
	cr_assert_eq(wait_status(pid), 0);
	fs_fork_parent(); /* the outer fork ends as it began */
	cr_assert_eq(fs_locks_held, 0);
	cr_assert_eq(fs_generation, 0, "the parent's generation changed");
	pid = fork();
	if (pid == 0)
		_exit(fs_generation == 1 ? 0 : 1);
	cr_assert_eq(wait_status(pid), 0);
}

/* ... or inside gRPC, whose own locks it may hold: gRPC is left alone, and
 * the child cannot use it. */
Test(forkpath, a_fork_on_a_thread_inside_grpc_leaves_grpc_alone)
{
	pid_t pid;

	fs_grpc_enter();
	pid = fork();
	if (pid == 0) {
		fs_grpc_leave();
		_exit(fs_generation == 1 && fs_grpc_unusable != NULL ? 0 : 1);
	}
	fs_grpc_leave();
	cr_assert_eq(wait_status(pid), 0);
	cr_assert_null(fs_grpc_unusable, "the parent was marked");
	cr_assert_eq(fs_locks_held, 0);
}
