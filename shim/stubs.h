/* The lazy stubs of a child's fresh gRPC (stubs_x86_64.S, fresh.c). Read by
 * the assembler too: definitions only. */
#ifndef FORKSAFE_STUBS_H
#define FORKSAFE_STUBS_H

/* How many imports of gRPC core's functions (and pointers of the shim's own)
 * can go through stubs. libgrpc++ makes about 330; past this many no fresh
 * gRPC is prepared, and children of that process cannot use gRPC. */
#define FS_STUBS 2048
/* Each stub's size: stub i is at fs_stubs + FS_STUB_SIZE * i. */
#define FS_STUB_SIZE 16

#ifndef __ASSEMBLER__
#include <stdint.h>

extern const char fs_stubs[] __attribute__((visibility("hidden")));

/* Called by stub i on its first use: initialises the fresh copy if nobody has
 * yet, and returns the function stub i stands for. */
uintptr_t fs_stub_resolve(unsigned i) __attribute__((visibility("hidden")));

static inline uintptr_t fs_stub_address(unsigned i)
{
	return (uintptr_t)fs_stubs + (uintptr_t)FS_STUB_SIZE * i;
}
#endif

#endif
