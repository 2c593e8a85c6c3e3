/* gRPC core's count of threads inside gRPC, around its own prefork. */
#ifndef FORKSAFE_EXECCTX_H
#define FORKSAFE_EXECCTX_H

#include <stdatomic.h>
#include <stdbool.h>

/* Set in the forking thread from the moment core's grpc_prefork has blocked
 * entries into gRPC until it returns. */
void fs_execctx_prefork_running(bool running);

/* How deep this thread is inside gRPC: core's counted ExecCtxs it has open
 * (core's prefork refuses while there is one), and the shim's hooks around
 * their calls into gRPC (which cover the instructions of gRPC's own before
 * and after its ExecCtx). A fork from a signal handler on such a thread must
 * not run gRPC code: the code it interrupted may hold any of gRPC's locks, or
 * be half-way through initialising a thread-local (forkpath.c). Counted
 * before entering and after leaving, so that a handler in between sees it. */
extern __thread unsigned fs_grpc_depth __attribute__((visibility("hidden"), tls_model("initial-exec")));

static inline void fs_grpc_enter(void)
{
	fs_grpc_depth++;
	atomic_signal_fence(memory_order_seq_cst);
}

static inline void fs_grpc_leave(void)
{
	atomic_signal_fence(memory_order_seq_cst);
	if (fs_grpc_depth > 0) /* an ExecCtx opened before the shim counted: never below zero */
		fs_grpc_depth--;
}

static inline bool fs_grpc_inside(void)
{
	return fs_grpc_depth > 0;
}

/* A hook's call into gRPC, counted as inside gRPC. */
#define FS_IN_GRPC(call)                                                                                    \
	({                                                                                                  \
		__typeof__(call) r_;                                                                        \
		fs_grpc_enter();                                                                            \
		r_ = (call);                                                                                \
		fs_grpc_leave();                                                                            \
		r_;                                                                                         \
	})
#define FS_IN_GRPC_VOID(call)                                                                               \
	do {                                                                                                \
		fs_grpc_enter();                                                                            \
		(call);                                                                                     \
		fs_grpc_leave();                                                                            \
	} while (0)

/* Fork path (child): the other threads' entries are gone with them. */
void fs_execctx_child(void);

/* Fork path (child whose core stays blocked for good: a raw clone() child):
 * entries into gRPC are let through uncounted from now on. */
void fs_execctx_child_unblocked(void);

#endif
