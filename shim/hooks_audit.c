/*
 * The hooks that exist for mode audit alone: servers started and destroyed,
 * and the completion-queue waits of a process the shim only watches (in modes
 * reconnect and close, hooks_cq.c brings such threads out before a fork; in
 * mode audit they stay inside, as they would without the shim, and a fork then
 * leaves the child with gRPC's locks in whatever state those threads had);
 * and the epoll waits of a child whose embedded gRPC may go on with the
 * epoll set, and so the connections, it inherited.
 */
#include <stdatomic.h>
#include <sys/epoll.h>

#include "audit.h"
#include "config.h"
#include "grpclib.h"
#include "init.h"
#include "libc.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))
#define CALLER __builtin_return_address(0)

typedef void (*server_fn)(grpc_server *);

/* Looked up on first use: a program that never starts a server never asks. */
static server_fn lookup(_Atomic server_fn *slot, const char *name)
{
	server_fn f = atomic_load_explicit(slot, memory_order_acquire);

	if (f == NULL) {
		/* Settled first: a libgrpc loaded RTLD_LOCAL (by a plugin) is found
		 * then, and fs_grpc_symbol looks there too. */
		(void)fs_grpc_settle();
		*(void **)&f = fs_grpc_symbol(name);
		if (f == NULL)
			fs_log(FS_ERROR, "%s: the installed libgrpc has no such function", name);
		atomic_store_explicit(slot, f, memory_order_release);
	}
	return f;
}

EXPORT void grpc_server_start(grpc_server *server)
{
	static _Atomic server_fn real;
	server_fn f = lookup(&real, "grpc_server_start");

	if (f == NULL)
		return;
	f(server);
	if (fs_grpc_settle() == FS_GRPC_WATCHED)
		fs_audit_server_started(server);
}

EXPORT void grpc_server_destroy(grpc_server *server)
{
	static _Atomic server_fn real;
	server_fn f = lookup(&real, "grpc_server_destroy");

	if (fs_grpc_settle() == FS_GRPC_WATCHED)
		fs_audit_server_destroyed(server);
	if (f != NULL)
		f(server);
}

grpc_event fs_audit_cq_next(grpc_completion_queue *cq, gpr_timespec deadline, void *reserved)
{
	grpc_event ev;

	atomic_fetch_add_explicit(&fs_audit_busy, 1, memory_order_relaxed);
	ev = fs_grpc.cq_next(cq, deadline, reserved);
	atomic_fetch_sub_explicit(&fs_audit_busy, 1, memory_order_relaxed);
	return ev;
}

grpc_event fs_audit_cq_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline, void *reserved)
{
	grpc_event ev;

	atomic_fetch_add_explicit(&fs_audit_busy, 1, memory_order_relaxed);
	ev = fs_grpc.cq_pluck(cq, tag, deadline, reserved);
	atomic_fetch_sub_explicit(&fs_audit_busy, 1, memory_order_relaxed);
	return ev;
}

/* Every process's waits pass here: one relaxed load unless this is an audit
 * child that still watches. */
EXPORT int epoll_wait(int epfd, struct epoll_event *events, int maxevents, int timeout)
{
	if (__builtin_expect(atomic_load_explicit(&fs_audit_watching_waits, memory_order_relaxed), 0))
		fs_audit_waited(epfd, CALLER);
	return fs_libc.epoll_wait(epfd, events, maxevents, timeout);
}

EXPORT int epoll_pwait(int epfd, struct epoll_event *events, int maxevents, int timeout, const sigset_t *sigmask)
{
	if (__builtin_expect(atomic_load_explicit(&fs_audit_watching_waits, memory_order_relaxed), 0))
		fs_audit_waited(epfd, CALLER);
	return fs_libc.epoll_pwait(epfd, events, maxevents, timeout, sigmask);
}
