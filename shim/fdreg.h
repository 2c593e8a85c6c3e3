/* The file descriptors gRPC opened (sockets, epoll sets, eventfds, pipes), so
 * that a child can cut itself off from every one it inherited.
 *
 * A table indexed by descriptor number, one atomic word per number: nothing
 * here takes a lock, so close(), fork() and every hook below may run in a
 * signal handler that interrupted any of them, and no thread blocked in a
 * system call (a blocking accept) holds anything another thread waits for. */
#ifndef FORKSAFE_FDREG_H
#define FORKSAFE_FDREG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum fs_fd_kind { FS_FD_SOCKET, FS_FD_EPOLL, FS_FD_OTHER };

/* Creating a descriptor: fs_fdreg_begin_add before the system call publishes
 * a "creating" record, fs_fdreg_end_add right after it records the result,
 * registers it and retires the record. The fork path reads the records (see
 * fdreg.c on why a fork then sees either no descriptor or a registered one).
 * `blocking`: the call may block for long (accept), so a fork does not wait
 * for it. begin_add returns NULL when every record is taken: end_add then
 * only registers. Async-signal-safe, no heap allocation. */
struct fs_fd_creating;
struct fs_fd_creating *fs_fdreg_begin_add(enum fs_fd_kind kind, bool embedded, bool blocking);
/* `fds`: the `n` (1 or 2) descriptors made, or NULL when the call failed. */
void fs_fdreg_end_add(struct fs_fd_creating *c, const int *fds, int n, enum fs_fd_kind kind, bool embedded);
/* Registers an existing descriptor handed to gRPC (grpc_channel_create_from_fd). */
void fs_fdreg_adopt(int fd, enum fs_fd_kind kind, bool embedded);

/* Closes `fd` through `real_close` unless it is a neutralised inherited gRPC
 * descriptor that gRPC itself (code at `caller`) is closing: that number must
 * stay taken, because gRPC may still hold it in an inherited transport.
 * Async-signal-safe. */
int fs_fdreg_close(int fd, const void *caller, int (*real_close)(int));
/* The same, for a caller known to be gRPC's or not (c-ares' socket functions). */
int fs_fdreg_close_as(int fd, bool grpc, int (*real_close)(int));

/* close_range() and closefrom() (`last` ~0U): forgets the live entries in
 * the range and closes it, except the numbers held by dead placeholders
 * (bulk closes are not aimed at them; closing one explicitly is honoured).
 * With CLOSE_RANGE_CLOEXEC nothing is closed and nothing forgotten. */
int fs_fdreg_close_range(unsigned first, unsigned last, int flags,
			 int (*real_close_range)(unsigned, unsigned, int));

/* dup2()/dup3() onto `newfd`: whatever the registry held at `newfd` is gone
 * once the call succeeds; `newfd` then refers to what `oldfd` does, and is
 * registered as gRPC's when `grpc` (gRPC made the call) and `oldfd` is a live
 * gRPC descriptor. `dup` makes the call and returns its result. */
int fs_fdreg_dup_onto(int oldfd, int newfd, bool grpc, int (*dup)(int, int, int), int flags);
/* fcntl(F_DUPFD...) by gRPC made `newfd` from `oldfd`: registered alike. */
void fs_fdreg_dup_made(int oldfd, int newfd);

/* vfork(): the calling thread is about to share its memory with a child until
 * that child execs or exits. The child must not change the registry (it is
 * the parent's): every change checks whether it runs there. */
void fs_fdreg_vfork_enter(void);
/* A fork or clone() child (own memory): whatever vfork left noted on the
 * forking thread is the parent's business, not this process's. */
void fs_fdreg_forked_child(void);

/* Fork path, in the order the fork path calls them (the names keep the
 * fork path's shape; no lock is taken). None allocates from the heap.
 * fs_fdreg_lock: waits, for at most a few milliseconds, for other threads'
 * non-blocking creations to record their result. fs_fdreg_unlock: nothing.
 * fs_fdreg_child_reset_lock: in the child, registers what creations in flight
 * at the fork had made, and retires their records. */
void fs_fdreg_lock(void);
void fs_fdreg_unlock(void);
void fs_fdreg_child_reset_lock(void);
/* In the child: points every live inherited gRPC descriptor at a dead object of
 * its kind (dup3 over the same number, close-on-exec), so the child holds no
 * reference to the parent's sockets, epoll set or eventfds, and the number
 * stays reserved. Descriptors of embedded gRPC always; those of gRPC's shared
 * libraries only when `shared` (the shim drives that gRPC's own reset).
 * Returns how many were neutralised. */
unsigned fs_fdreg_neutralise_locked(bool shared);

/* Counts, for logs, statistics and tests. */
size_t fs_fdreg_live_locked(size_t *embedded);
/* Live sockets, of embedded gRPC when `embedded`, else of the shared one. */
size_t fs_fdreg_live_sockets_locked(bool embedded);
size_t fs_fdreg_count(void);
/* Up to `max` live descriptors of `kind`, of embedded gRPC when `embedded`,
 * with a token for each (see fs_fdreg_token). No allocation. */
size_t fs_fdreg_list_locked(enum fs_fd_kind kind, bool embedded, int *fds, uint64_t *tokens, size_t max);
/* What is registered at `fd` now, as an opaque token: it changes whenever the
 * number is forgotten or registered anew, so an equal token means the same
 * registration. 0 when nothing is. Lock-free, no allocation. */
uint64_t fs_fdreg_token(int fd);
bool fs_fdreg_is_reserved(int fd);
bool fs_fdreg_contains(int fd);

#endif
