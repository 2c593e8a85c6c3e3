/* One-time set-up: a constructor, and the same idempotent step at the top of
 * every hook that may run before it (another library's constructor can call
 * gRPC or fork before the shim's constructor has run). */
#ifndef FORKSAFE_INIT_H
#define FORKSAFE_INIT_H

#include <stdatomic.h>
#include <stdbool.h>

extern atomic_bool fs_ready;
void fs_init_slow(void);

static inline void fs_ensure_init(void)
{
	if (__builtin_expect(!atomic_load_explicit(&fs_ready, memory_order_acquire), 0))
		fs_init_slow();
}

/* For gRPC's hooks: the shim's set-up plus libgrpc's symbols and core's fork
 * support. Returns true when the shim acts on gRPC calls. */
bool fs_grpc_ensure(void);

#endif
