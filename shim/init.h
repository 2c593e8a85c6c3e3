/* One-time set-up: a constructor, and the same idempotent step at the top of
 * every hook that may run before it (another library's constructor can call
 * gRPC or fork before the shim's constructor has run). */
#ifndef FORKSAFE_INIT_H
#define FORKSAFE_INIT_H

#include <stdatomic.h>
#include <stdbool.h>

#include <grpc/grpc.h>

extern atomic_bool fs_ready __attribute__((visibility("hidden")));
void fs_init_slow(void);

static inline void fs_ensure_init(void)
{
	if (__builtin_expect(!atomic_load_explicit(&fs_ready, memory_order_acquire), 0))
		fs_init_slow();
}

/* What fs_grpc_ensure() found, fixed once it has run: the mode and libgrpc
 * are settled by then and never change afterwards (a child inherits them). */
enum fs_grpc_outcome {
	FS_GRPC_UNSETTLED = 0, /* fs_grpc_ensure() has not finished yet */
	FS_GRPC_IGNORED,       /* mode off, or libgrpc passed through */
	FS_GRPC_WATCHED,       /* acted on: mode audit */
	FS_GRPC_PROTECTED,     /* acted on: mode reconnect or close */
};
extern _Atomic unsigned char fs_grpc_outcome __attribute__((visibility("hidden")));
enum fs_grpc_outcome fs_grpc_ensure_slow(void);

/* For gRPC's hooks: the shim's set-up plus libgrpc's symbols and core's fork
 * support. Once settled, one load. */
static inline enum fs_grpc_outcome fs_grpc_settle(void)
{
	enum fs_grpc_outcome o = atomic_load_explicit(&fs_grpc_outcome, memory_order_acquire);

	return __builtin_expect(o != FS_GRPC_UNSETTLED, 1) ? o : fs_grpc_ensure_slow();
}

/* True when the shim acts on gRPC calls (any mode but off). */
static inline bool fs_grpc_ensure(void)
{
	return fs_grpc_settle() >= FS_GRPC_WATCHED;
}

/* True when, in addition, it changes what happens at a fork (fs_mode_acts). */
static inline bool fs_grpc_protects(void)
{
	return fs_grpc_settle() == FS_GRPC_PROTECTED;
}

/* A lame channel whose calls fail at once, saying that gRPC cannot be used in
 * this child (fs_grpc_unusable). */
grpc_channel *fs_unusable_channel(const char *target);

#endif
