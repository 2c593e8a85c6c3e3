/* What mode audit reports at a fork besides channels and calls: servers,
 * threads inside gRPC, whether gRPC is initialised, and the descriptors of
 * gRPC compiled into the program; and, in a child, what it then did. Only the
 * report of `grpc-forksafe --audit` depends on the wording of these lines. */
#ifndef FORKSAFE_AUDIT_H
#define FORKSAFE_AUDIT_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>

#include "fdreg.h"

struct fs_audit_fork {
	bool initialised;        /* grpc_is_initialized(): gRPC's own threads run */
	unsigned servers;        /* started and not yet destroyed */
	unsigned busy;           /* other threads inside a completion-queue wait */
	size_t embedded_fds;     /* descriptors of gRPC compiled into the program */
	size_t embedded_sockets; /* of those, sockets (connections, listeners) */
};

/* Threads inside grpc_completion_queue_next or _pluck, counted in mode audit. */
extern atomic_uint fs_audit_busy __attribute__((visibility("hidden")));

/* Fork path (parent), before the shim's locks: asks gRPC whether it is
 * initialised (core's own lock, as core_prefork does). No allocation. */
void fs_audit_fork_prepare(struct fs_audit_fork *a);
/* Fork path, under the fd registry's lock. */
void fs_audit_fork_locked(struct fs_audit_fork *a);
/* The parent's line for one fork; `child` is the pid or why it is unknown.
 * Says nothing for a fork that carries no gRPC state at all. */
void fs_audit_log_fork(const char *child, size_t channels, size_t calls, const struct fs_audit_fork *a);
/* Fork path (child): remembers what was inherited. No allocation. */
void fs_audit_child(const struct fs_audit_fork *a);

/* True only in a child, in mode audit, that inherited epoll sets of gRPC
 * compiled into the program and has not yet reported using them: the epoll
 * hooks test it and nothing else otherwise. */
extern atomic_bool fs_audit_watching_waits __attribute__((visibility("hidden")));

/* epoll_wait() or epoll_pwait() on `epfd` by `caller`, while
 * fs_audit_watching_waits: reported once if embedded gRPC waits on an epoll
 * set it inherited (its own inherited gRPC at work, on the parent's
 * connections). */
void fs_audit_waited(int epfd, const void *caller);

/* A descriptor opened by `caller` that the shim does not track in mode audit:
 * registered if gRPC compiled into the program opened it, and reported once
 * in a child that inherited that gRPC's descriptors. */
void fs_audit_fd_opened(int fd, enum fs_fd_kind kind, const void *caller);

/* At start-up in mode audit, when the lines go to a file or descriptor: one
 * line, so that the report can tell a forked child that exec'd. */
void fs_audit_started(void);

/* Servers: counted from grpc_server_start to grpc_server_destroy. */
void fs_audit_server_started(grpc_server *server);
void fs_audit_server_destroyed(grpc_server *server);
unsigned fs_audit_servers(void);

/* The completion-queue waits of mode audit, counted in fs_audit_busy
 * (hooks_audit.c). */
grpc_event fs_audit_cq_next(grpc_completion_queue *cq, gpr_timespec deadline, void *reserved);
grpc_event fs_audit_cq_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline, void *reserved);

#endif
