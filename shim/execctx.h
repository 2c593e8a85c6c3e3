/* gRPC core's count of threads inside gRPC, around its own prefork. */
#ifndef FORKSAFE_EXECCTX_H
#define FORKSAFE_EXECCTX_H

#include <stdbool.h>

/* Set in the forking thread from the moment core's grpc_prefork has blocked
 * entries into gRPC until it returns. */
void fs_execctx_prefork_running(bool running);

/* Fork path (child): the other threads' entries are gone with them. */
void fs_execctx_child(void);

/* Fork path (child whose core stays blocked for good: a raw clone() child):
 * entries into gRPC are let through uncounted from now on. */
void fs_execctx_child_unblocked(void);

#endif
