/* A fresh gRPC in every child (GRPC_FORKSAFE_CHILD_GRPC=fresh): the child
 * never runs the gRPC it inherited; its calls go to private copies of gRPC
 * core's libraries, loaded by the parent before its first fork and
 * initialised by the child on its first gRPC call. */
#ifndef FORKSAFE_FRESH_H
#define FORKSAFE_FRESH_H

#include <stdbool.h>

#include <grpc/grpc.h>

/* Parent, before the fork path proper takes any lock: makes sure the next
 * generation's copies are loaded and every import of gRPC core is listed.
 * The first fork of each generation does the work (it loads libraries and
 * allocates); later forks find it done with a few loads. Returns true when
 * this fork can give its child a fresh gRPC: the fork path then runs no gRPC
 * code and waits for no thread. On failure it logs one warning, once, and
 * returns false: forks then take the inherited path (docs/design.md). */
bool fs_fresh_prepare(void);

/* The loading part of fs_fresh_prepare, without its lock: fork()'s hook
 * calls it before libc's fork, outside the atfork handlers (glibc holds its
 * atfork lock while they run, and a library loaded there could want it).
 * Forks libc makes itself (daemon, forkpty, system) load in the prepare. */
bool fs_fresh_load(void);

/* Parent step: releases what fs_fresh_prepare took. */
void fs_fresh_parent(void);

/* Whether a fork here needs a fresh gRPC for its child: gRPC is initialised,
 * or this process is itself a child running (or about to run) its copies. */
bool fs_fresh_wanted(void);

/* Child step, on the child's only thread, with the fork path's locks held:
 * points every import of the inherited gRPC core at the copies (functions
 * through lazy stubs), and the shim's own calls too. Stores and mprotect
 * only: no allocation, no lock, no gRPC code. */
void fs_fresh_child(void);

/* True in a child whose gRPC is (or will be, on first use) a fresh copy. */
bool fs_fresh_in_child(void);

/* The hooks' view: initialises the fresh copy if this child has not yet
 * (idempotent, thread-safe). Called by the first call through a stub, and by
 * hooks that need the copy's state settled (the channel table's stand-ins). */
void fs_fresh_switch(void);

/* grpc_init / grpc_shutdown by the program and gRPC's client libraries (the
 * hooks): a child initialises its copy as often as gRPC was initialised when
 * it was forked, so that the inherited objects' own shutdowns balance. */
void fs_fresh_note_init(int delta);

/* In a fresh child, the queue a hook must pass to the copies for `cq`: its
 * twin if it was made before the fork (cqtwin.c), else `cq`. Shutting down
 * and destroying such a queue go through these too. */
grpc_completion_queue *fs_fresh_cq(grpc_completion_queue *cq);
void fs_fresh_cq_shutdown(grpc_completion_queue *cq);
void fs_fresh_cq_destroy(grpc_completion_queue *cq);

/* In a fresh child, the credentials to pass to the copies for `creds`: the
 * object itself if made here, else its twin; NULL (with the reason) when no
 * twin can be made. */
grpc_channel_credentials *fs_fresh_creds(grpc_channel_credentials *creds, const char **why_not);

/* True in a fresh child for credentials made before the fork: releasing them
 * would run the inherited gRPC's code; they are kept instead. */
bool fs_fresh_inherited_creds(const void *creds);

/* Keeps an object of the inherited gRPC that the child dropped reachable. */
void fs_fresh_keep(void *object);

#endif
