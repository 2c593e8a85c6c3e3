/* Which code a call comes from: tells gRPC's own calls to socket(), close()
 * and friends from everybody else's, by the caller's return address. */
#ifndef FORKSAFE_OWNER_H
#define FORKSAFE_OWNER_H

#include <stdbool.h>
#include <stddef.h>

enum fs_owner {
	FS_OWNER_OTHER,
	/* gRPC's shared libraries: libgrpc*, libgpr, and libaddress_sorting
	 * when no embedded gRPC uses it. The shim also reaches this gRPC's API. */
	FS_OWNER_SHARED,
	/* gRPC compiled into another object: Python's cygrpc module, an object
	 * named in GRPC_FORKSAFE_OBJECTS, or the program itself when it was
	 * linked with libgrpc.a. Only its libc calls are seen. */
	FS_OWNER_EMBEDDED,
};

/* Start-up: takes the user's object names (`names`, colon-separated, may be
 * NULL) and reads the program's symbol table for gRPC linked into it. */
void fs_owner_init(const char *names);

/* Never the shim itself. No allocation. Takes the loader's lock only for a
 * call from a library that both kinds of gRPC use (libaddress_sorting), to tell whose it
 * is: not for use under a shim lock. */
enum fs_owner fs_owner_of(const void *addr);

/* Whether any gRPC made the call. Lock-free, no allocation: safe in any hook
 * and under the shim's locks. */
bool fs_owner_is_grpc(const void *addr);

/* Whether gRPC core itself (libgrpc, libgpr; not grpc++, whose calls are the
 * application's) made the call. Lock-free, no allocation. */
bool fs_owner_is_grpc_core(const void *addr);

/* True when `addr` lies in the shim's own object. */
bool fs_owner_is_self(const void *addr);

/* The file name part of a path (what follows the last '/'). */
const char *fs_basename(const char *path);

#endif
