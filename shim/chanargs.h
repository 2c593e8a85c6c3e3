/* Channel arguments: a deep copy kept for as long as a channel may need to be
 * recreated, and the per-generation argument that keeps a child's channels off
 * every ancestor's connections. */
#ifndef FORKSAFE_CHANARGS_H
#define FORKSAFE_CHANARGS_H

#include <stdbool.h>

#include <grpc/grpc.h>

/* The key of the argument added to channels made in a forked generation. gRPC
 * shares a subchannel (one TCP connection) between channels whose address and
 * arguments are equal; a child inherits the parent's subchannel pool, so
 * without a distinguishing argument a child's new channel would pick the
 * parent's connection back up. */
#define FS_GENERATION_ARG "forksafe.generation"

/* Deep copy: strings duplicated, pointer arguments copied through their own
 * vtable (which takes a reference). NULL in, NULL out; NULL on allocation
 * failure too, with *ok set false. */
grpc_channel_args *fs_chanargs_copy(const grpc_channel_args *src, int *ok);
void fs_chanargs_free(grpc_channel_args *args);

/* Equal as gRPC's subchannel pool would see them: same keys, types and values
 * in the same order (pointer values through their vtable's cmp). NULL and an
 * empty set are equal. */
bool fs_chanargs_equal(const grpc_channel_args *a, const grpc_channel_args *b);

/* A shallow view of `src` plus FS_GENERATION_ARG = generation, in storage the
 * caller frees with fs_chanargs_free_view. Returns NULL on allocation failure. */
grpc_channel_args *fs_chanargs_with_generation(const grpc_channel_args *src, unsigned generation);
void fs_chanargs_free_view(grpc_channel_args *view);

#endif
