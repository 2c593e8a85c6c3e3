/*
 * The libc calls through which gRPC opens and closes descriptors. Only calls
 * made from gRPC's own code (told by the caller's return address) are
 * registered; everybody else's pass straight through.
 *
 * These hooks may run before the shim's constructor (from another library's
 * constructor); fs_libc falls back to raw system calls until it is resolved.
 */
#include <errno.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "fdreg.h"
#include "grpclib.h"
#include "libc.h"
#include "owner.h"

#define EXPORT __attribute__((visibility("default")))
#define CALLER __builtin_return_address(0)

static bool tracked_caller(const void *caller)
{
	return fs_mode_acts(fs_cfg.mode) && fs_grpc_state() != FS_GRPC_PASSTHROUGH && fs_owner_is_grpc(caller);
}

/* Creation and registration happen under the registry lock, which the fork
 * path also takes: a fork sees either no descriptor or a registered one. gRPC
 * makes all of these non-blocking, so the lock is held only for a system call. */
#define REGISTERED(kind, call)                                                                              \
	do {                                                                                                \
		void *spare_;                                                                               \
		int fd_, err_;                                                                              \
		if (!tracked_caller(CALLER))                                                                \
			return call;                                                                        \
		spare_ = fs_fdreg_begin_add();                                                              \
		fd_ = call;                                                                                 \
		err_ = errno;                                                                               \
		fs_fdreg_end_add(spare_, fd_, kind);                                                        \
		errno = err_;                                                                               \
		return fd_;                                                                                 \
	} while (0)

EXPORT int socket(int domain, int type, int protocol)
{
	REGISTERED(FS_FD_SOCKET, fs_libc.socket(domain, type, protocol));
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	REGISTERED(FS_FD_SOCKET, fs_libc.accept(fd, addr, len));
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	REGISTERED(FS_FD_SOCKET, fs_libc.accept4(fd, addr, len, flags));
}

EXPORT int epoll_create(int size)
{
	REGISTERED(FS_FD_EPOLL, fs_libc.epoll_create(size));
}

EXPORT int epoll_create1(int flags)
{
	REGISTERED(FS_FD_EPOLL, fs_libc.epoll_create1(flags));
}

EXPORT int eventfd(unsigned int initval, int flags)
{
	REGISTERED(FS_FD_OTHER, fs_libc.eventfd(initval, flags));
}

/* Two descriptors at once: registered one after the other. gRPC uses pipes
 * and socket pairs only where eventfd is missing and for in-process
 * transports, so the short window in which a fork could miss them is accepted. */
static int register_pair(int rc, int fds[2], enum fs_fd_kind kind)
{
	int err = errno;

	if (rc == 0) {
		fs_fdreg_adopt(fds[0], kind);
		fs_fdreg_adopt(fds[1], kind);
	}
	errno = err;
	return rc;
}

EXPORT int pipe(int fds[2])
{
	if (!tracked_caller(CALLER))
		return fs_libc.pipe(fds);
	return register_pair(fs_libc.pipe(fds), fds, FS_FD_OTHER);
}

EXPORT int pipe2(int fds[2], int flags)
{
	if (!tracked_caller(CALLER))
		return fs_libc.pipe2(fds, flags);
	return register_pair(fs_libc.pipe2(fds, flags), fds, FS_FD_OTHER);
}

EXPORT int socketpair(int domain, int type, int protocol, int fds[2])
{
	if (!tracked_caller(CALLER))
		return fs_libc.socketpair(domain, type, protocol, fds);
	return register_pair(fs_libc.socketpair(domain, type, protocol, fds), fds, FS_FD_SOCKET);
}

EXPORT int close(int fd)
{
	return fs_fdreg_close(fd, CALLER, fs_libc.close);
}
