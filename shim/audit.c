/*
 * Mode audit changes nothing; it only counts, so that `grpc-forksafe --audit`
 * can say what each fork carried across and what the child did with it. A
 * fork is worth a line when the child inherits anything of gRPC's: channels or
 * calls (libgrpc.so), a started server, gRPC initialised (its threads, which
 * the child does not get), or descriptors of gRPC compiled into the program
 * (Python's grpcio, libgrpc.a), whose channels the shim cannot see at all.
 */
#include "audit.h"

#include <bsd/stdlib.h>
#include <dlfcn.h>
#include <stdio.h>

#include "config.h"
#include "execctx.h"
#include "forkpath.h"
#include "grpclib.h"
#include "log.h"
#include "owner.h"

atomic_uint fs_audit_busy;

/* Started servers, by address, so that destroying one that was never started
 * counts nothing; a program with more than this many keeps the rest in
 * `extra`, never taken away again. Scanned on the fork path: no lock. */
#define MAX_SERVERS 64
static _Atomic(grpc_server *) servers[MAX_SERVERS];
static atomic_uint extra_servers;

/* What this child inherited of embedded gRPC, and whether its own use of it
 * was reported yet. Written by the fork path while the child has one thread. */
static size_t inherited_embedded;
static atomic_bool embedded_use_reported;

/* The epoll sets of embedded gRPC this child inherited, as registered at the
 * fork: gRPC keeps one (or a few), and a set it closes and makes again in the
 * child (grpcio's own fork handling does) gets another token. */
#define MAX_INHERITED_EPOLLS 8
static int inherited_epolls[MAX_INHERITED_EPOLLS];
static uint64_t inherited_epoll_tokens[MAX_INHERITED_EPOLLS];
static size_t n_inherited_epolls;
atomic_bool fs_audit_watching_waits;

void fs_audit_server_started(grpc_server *server)
{
	for (size_t i = 0; i < MAX_SERVERS; i++) {
		grpc_server *empty = NULL;

		if (atomic_compare_exchange_strong(&servers[i], &empty, server))
			return;
	}
	atomic_fetch_add(&extra_servers, 1);
}

void fs_audit_server_destroyed(grpc_server *server)
{
	for (size_t i = 0; i < MAX_SERVERS; i++) {
		grpc_server *mine = server;

		if (atomic_compare_exchange_strong(&servers[i], &mine, NULL))
			return;
	}
}

unsigned fs_audit_servers(void)
{
	unsigned n = atomic_load(&extra_servers);

	for (size_t i = 0; i < MAX_SERVERS; i++)
		n += atomic_load_explicit(&servers[i], memory_order_relaxed) != NULL;
	return n;
}

void fs_audit_fork_prepare(struct fs_audit_fork *a)
{
	/* Inside gRPC, this thread may hold the lock that is_initialized takes
	 * (a signal handler's fork): it is initialised, then. */
	a->initialised = fs_grpc_state() == FS_GRPC_ACTIVE && fs_grpc.is_initialized != NULL &&
			 (fs_grpc_inside() || fs_grpc.is_initialized());
	a->servers = fs_audit_servers();
	a->busy = atomic_load(&fs_audit_busy);
	a->embedded_fds = 0;
	a->embedded_sockets = 0;
}

void fs_audit_fork_locked(struct fs_audit_fork *a)
{
	a->embedded_sockets = fs_fdreg_live_sockets_locked(true);
}

void fs_audit_log_fork(const char *child, size_t channels, size_t calls, const struct fs_audit_fork *a)
{
	if (channels == 0 && calls == 0 && a->servers == 0 && a->busy == 0 && !a->initialised &&
	    a->embedded_fds == 0)
		return;
	fs_log(FS_WARN,
	       "audit: fork: child %s inherits %zu live channels and %zu calls in flight; %u servers, %u threads "
	       "inside gRPC, gRPC %s; %zu descriptors of embedded gRPC (%zu sockets)",
	       child, channels, calls, a->servers, a->busy, a->initialised ? "initialised" : "not initialised",
	       a->embedded_fds, a->embedded_sockets);
}

void fs_audit_child(const struct fs_audit_fork *a)
{
	inherited_embedded = a->embedded_fds;
	atomic_store_explicit(&embedded_use_reported, false, memory_order_relaxed);
	n_inherited_epolls = a->embedded_fds == 0 ? 0
						  : fs_fdreg_list_locked(FS_FD_EPOLL, true, inherited_epolls,
									 inherited_epoll_tokens, MAX_INHERITED_EPOLLS);
	atomic_store_explicit(&fs_audit_watching_waits, n_inherited_epolls > 0, memory_order_relaxed);
	/* The other threads' waits ended with them. */
	atomic_store_explicit(&fs_audit_busy, 0, memory_order_relaxed);
}

/* The object that holds `addr`, for the line: a shared object's file name, or
 * the program's. */
static const char *object_name(const void *addr)
{
	Dl_info info;

	if (dladdr(addr, &info) != 0 && info.dli_fname != NULL && info.dli_fname[0] != '\0')
		return fs_basename(info.dli_fname);
	return getprogname();
}

void fs_audit_fd_opened(int fd, enum fs_fd_kind kind, const void *caller)
{
	if (fd < 0 || fs_owner_of(caller) != FS_OWNER_EMBEDDED)
		return;
	fs_fdreg_adopt(fd, kind, true);
	/* A socket is a connection (or a name lookup) of the child's own: its
	 * gRPC is at work in a process that inherited that gRPC's state. */
	if (fs_generation == 0 || inherited_embedded == 0 || kind != FS_FD_SOCKET ||
	    atomic_exchange(&embedded_use_reported, true))
		return;
	atomic_store_explicit(&fs_audit_watching_waits, false, memory_order_relaxed);
	fs_log(FS_WARN,
	       "audit: embedded gRPC (%s) opened a socket in this child, which inherited %zu of its descriptors",
	       object_name(caller), inherited_embedded);
}

void fs_audit_waited(int epfd, const void *caller)
{
	size_t i = 0;

	while (i < n_inherited_epolls && inherited_epolls[i] != epfd)
		i++;
	/* Anybody else's epoll set, or gRPC's own made in this child. */
	if (i == n_inherited_epolls || fs_fdreg_token(epfd) != inherited_epoll_tokens[i] ||
	    fs_owner_of(caller) != FS_OWNER_EMBEDDED)
		return;
	atomic_store_explicit(&fs_audit_watching_waits, false, memory_order_relaxed);
	if (atomic_exchange(&embedded_use_reported, true))
		return;
	fs_log(FS_WARN,
	       "audit: embedded gRPC (%s) waited on the epoll set it inherited in this child, which inherited %zu of "
	       "its descriptors",
	       object_name(caller), inherited_embedded);
}

void fs_audit_started(void)
{
	if (fs_cfg.mode == FS_MODE_AUDIT && !fs_log_to_stderr())
		fs_log(FS_WARN, "audit: exec: program started");
}
