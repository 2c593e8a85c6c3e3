/*
 * Process creation. Each way of making a process reaches the fork path exactly
 * once:
 *   fork(), daemon(), forkpty() and anything else built on libc's fork run the
 *     pthread_atfork handlers registered at start-up (init.c); fork()'s hook
 *     only adds the child's pid to the log line.
 *   clone() without CLONE_VM runs no atfork handlers: its hook runs the steps.
 *   vfork() and posix_spawn() children share the parent's memory until they
 *     exec, and must not use gRPC: they are seen and logged, and a vfork
 *     child's closes leave the parent's descriptor registry as it was.
 */
#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <unistd.h>

#include "fdreg.h"
#include "forkpath.h"
#include "init.h"
#include "libc.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT pid_t fork(void)
{
	pid_t pid;
	int err;

	fs_ensure_init();
	fs_fork_hook_enter();
	pid = fs_libc.fork();
	err = errno;
	if (pid == 0)
		fs_fdreg_forked_child();
	fs_fork_hook_leave(pid, err);
	errno = err;
	return pid;
}

struct clone_start {
	int (*fn)(void *);
	void *arg;
};

/* Runs first in a clone() child; the record lives in the parent's frame, which
 * the child has a copy of (no CLONE_VM). */
static int clone_child_start(void *p)
{
	struct clone_start *start = p;

	fs_fdreg_forked_child();
	fs_fork_child_of_clone();
	fs_fork_hook_leave(0, 0);
	return start->fn(start->arg);
}

EXPORT int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	struct clone_start start = { fn, arg };
	pid_t *parent_tid, *child_tid;
	void *tls;
	va_list ap;
	int pid, err;

	va_start(ap, arg);
	parent_tid = va_arg(ap, pid_t *);
	tls = va_arg(ap, void *);
	child_tid = va_arg(ap, pid_t *);
	va_end(ap);

	fs_ensure_init();
	/* With CLONE_VM the child shares this memory: a thread or a vfork-like
	 * child. Nothing of gRPC is duplicated, so there is nothing to do. */
	if ((flags & CLONE_VM) || !fs_forkpath_active())
		return fs_libc.clone(fn, stack, flags, arg, parent_tid, tls, child_tid);
	fs_fork_hook_enter();
	fs_fork_prepare();
	pid = fs_libc.clone(clone_child_start, stack, flags, &start, parent_tid, tls, child_tid);
	err = errno;
	fs_fork_parent();
	fs_fork_hook_leave(pid, err);
	errno = err;
	return pid;
}

/* Called by the vfork entry point (vfork_x86_64.S) before it jumps to libc's
 * vfork: the hook itself must not have a frame of its own when the child
 * returns, so all it can do is note the event and hand back the target. */
__attribute__((visibility("hidden"))) void *fs_vfork_target(void);
void *fs_vfork_target(void)
{
	fs_ensure_init();
	/* The child's changes to the registry would be the parent's. */
	fs_fdreg_vfork_enter();
	if (fs_forkpath_active())
		fs_log(fs_forkpath_grpc_in_use() ? FS_INFO : FS_DEBUG,
		       "vfork: the child shares this memory until it execs; nothing to do");
	return fs_libc.vfork != NULL ? (void *)fs_libc.vfork : (void *)fs_libc.fork;
}

static int spawned(const char *how, int rc, const pid_t *pid)
{
	if (rc == 0 && pid != NULL && fs_forkpath_active())
		fs_log(fs_forkpath_grpc_in_use() ? FS_INFO : FS_DEBUG, "%s: child %d", how, (int)*pid);
	return rc;
}

EXPORT int posix_spawn(pid_t *pid, const char *path, const posix_spawn_file_actions_t *actions,
		       const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	fs_ensure_init();
	return spawned("posix_spawn", fs_libc.posix_spawn(pid, path, actions, attr, argv, envp), pid);
}

EXPORT int posix_spawnp(pid_t *pid, const char *file, const posix_spawn_file_actions_t *actions,
			const posix_spawnattr_t *attr, char *const argv[], char *const envp[])
{
	fs_ensure_init();
	return spawned("posix_spawnp", fs_libc.posix_spawnp(pid, file, actions, attr, argv, envp), pid);
}
