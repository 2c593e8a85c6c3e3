/* Calls alive in this process, counted only in audit mode: how many RPCs a
 * fork would interrupt. A call is alive from its creation until its last
 * reference is dropped (grpc_call_ref / grpc_call_unref). */
#ifndef FORKSAFE_CALLS_H
#define FORKSAFE_CALLS_H

#include <stddef.h>

#include <grpc/grpc.h>

void fs_calls_created(grpc_call *call);
void fs_calls_ref(grpc_call *call);
void fs_calls_unref(grpc_call *call);

/* Fork path: taken with the other locks, after the channel table's. */
void fs_calls_lock(void);
void fs_calls_unlock(void);
void fs_calls_child_reset_lock(void);
size_t fs_calls_count_locked(void);

#endif
