/* Which loaded object a code address belongs to: tells gRPC's own calls to
 * socket(), close() and friends from everybody else's. */
#ifndef FORKSAFE_OWNER_H
#define FORKSAFE_OWNER_H

#include <stdbool.h>

/* True when `addr` lies in gRPC's libraries (libgrpc*, libgpr, and the c-ares
 * library gRPC resolves names with), never in the shim itself. Lock-free. */
bool fs_owner_is_grpc(const void *addr);

/* True when `addr` lies in the shim's own object. */
bool fs_owner_is_self(const void *addr);

#endif
