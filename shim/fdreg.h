/* The file descriptors gRPC opened (sockets, epoll sets, eventfds, pipes), so
 * that a child can cut itself off from every one it inherited. */
#ifndef FORKSAFE_FDREG_H
#define FORKSAFE_FDREG_H

#include <stdbool.h>
#include <stddef.h>

enum fs_fd_kind { FS_FD_SOCKET, FS_FD_EPOLL, FS_FD_OTHER };

/* Takes the registry lock and returns a spare entry for fs_fdreg_add_locked;
 * the caller then makes the descriptor while holding the lock, so that a fork
 * cannot fall between its creation and its registration. */
void *fs_fdreg_begin_add(void);
/* Registers `fd` (if >= 0) with the spare entry, drops the lock. */
void fs_fdreg_end_add(void *spare, int fd, enum fs_fd_kind kind, bool embedded);
/* Registers an existing descriptor handed to gRPC (grpc_channel_create_from_fd,
 * or one of a pair gRPC just made). */
void fs_fdreg_adopt(int fd, enum fs_fd_kind kind, bool embedded);

/* Closes `fd` through `real_close` unless it is a neutralised inherited gRPC
 * descriptor that gRPC itself (code at `caller`) is closing: that number must stay taken, because
 * gRPC may still hold it in an inherited transport. */
int fs_fdreg_close(int fd, const void *caller, int (*real_close)(int));

/* Fork path, in the order the fork path calls them. None allocates. */
void fs_fdreg_lock(void);
void fs_fdreg_unlock(void);
void fs_fdreg_child_reset_lock(void);
/* In the child: points every live inherited gRPC descriptor at a dead object of
 * its kind (dup3 over the same number, close-on-exec), so the child holds no
 * reference to the parent's sockets, epoll set or eventfds, and the number
 * stays reserved. Descriptors of embedded gRPC always; those of gRPC's shared
 * libraries only when `shared` (the shim drives that gRPC's own reset).
 * Returns how many were neutralised. Lock must be held. */
unsigned fs_fdreg_neutralise_locked(bool shared);

/* Counts, for logs, statistics and tests. */
size_t fs_fdreg_live_locked(size_t *embedded);
/* Live sockets, of embedded gRPC when `embedded`, else of the shared one. */
size_t fs_fdreg_live_sockets_locked(bool embedded);
size_t fs_fdreg_count(void);
bool fs_fdreg_is_reserved(int fd);
bool fs_fdreg_contains(int fd);

#endif
