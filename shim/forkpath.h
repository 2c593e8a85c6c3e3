/* What happens around every fork of a process: quiesce, fork, recover. */
#ifndef FORKSAFE_FORKPATH_H
#define FORKSAFE_FORKPATH_H

#include <stdbool.h>
#include <sys/types.h>

/* How many forks separate this process from the first one the shim ran in.
 * A channel made in an earlier generation is inherited. Changed only by the
 * child's fork path, while the child has a single thread. */
extern unsigned fs_generation __attribute__((visibility("hidden")));

/* Why gRPC cannot be used in this child; NULL where it can. Set in a child
 * whose fork went ahead without core's fork handlers because a thread stayed
 * inside gRPC past GRPC_FORKSAFE_QUIESCE_MS, in a raw clone() child, and in
 * the child of a fork made by a thread that was inside gRPC or the shim's
 * locked code (a signal handler's): gRPC's threads are not restarted there,
 * so every channel, inherited or new, fails its calls at once instead of
 * hanging. Inherited by the child's own children. */
extern const char *fs_grpc_unusable __attribute__((visibility("hidden")));

/* The three steps, in pthread_atfork's shape. fork() and everything built on
 * libc's fork reaches them through pthread_atfork; clone() without CLONE_VM
 * runs no atfork handlers, so its hook calls them itself. */
void fs_fork_prepare(void);
void fs_fork_parent(void);
void fs_fork_child(void);
/* The child step for a raw clone() child, in which libc supports no threads:
 * descriptors are neutralised, gRPC is not restarted. */
void fs_fork_child_of_clone(void);

/* fork()'s hook brackets libc's fork with these so that the parent's log line
 * can name the child (an atfork handler never learns the pid). hook_leave is
 * called in the child too, with pid 0. */
void fs_fork_hook_enter(void);
void fs_fork_hook_leave(pid_t pid, int err);

/* The hook on core's Fork::BlockExecCtx reports its answer here: it is how the
 * shim learns whether core really ran its prefork handler or skipped it. */
void fs_fork_note_core_block(bool blocked);

/* True when the shim acts on forks and gRPC in this process. */
bool fs_forkpath_active(void);

/* True when gRPC is initialised here (not for the fork path: takes core's lock). */
bool fs_forkpath_grpc_in_use(void);

#endif
