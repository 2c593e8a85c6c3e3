/* What the hooks on gRPC's API share: reaching the real function. */
#ifndef FORKSAFE_HOOKS_H
#define FORKSAFE_HOOKS_H

#include "grpclib.h"
#include "init.h"

/* A hook whose real function is missing can only have been reached because
 * the shim's definition satisfied a symbol libgrpc lacks: one error line. */
void fs_hook_missing(const char *name);

/* Returns __VA_ARGS__ from the hook, after that line, when libgrpc has no
 * function `fn` (resolving it first if nothing has yet). */
#define REAL(fn, name, ...)                                                                                 \
	do {                                                                                                \
		if (__builtin_expect(fs_grpc.fn == NULL, 0) && (fs_grpc_ensure(), fs_grpc.fn == NULL)) {    \
			fs_hook_missing(name);                                                              \
			return __VA_ARGS__;                                                             \
		}                                                                                           \
	} while (0)

#endif
