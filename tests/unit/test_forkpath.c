/* Fork bookkeeping: generations, and locks that a child can always take. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "chantab.h"
#include "fdreg.h"
#include "forkpath.h"
#include "libc.h"

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
