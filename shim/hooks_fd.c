/*
 * The libc calls through which gRPC opens and closes descriptors. Only calls
 * made from gRPC's own code (told by the caller's return address, owner.c)
 * are registered; everybody else's pass straight through, untouched.
 *
 * gRPC's descriptors are also made close-on-exec in the same call that
 * creates them. gRPC sets the flag itself, but in a second call: a thread
 * that forks and execs in between would hand the new program a socket of
 * gRPC's. Nothing in gRPC means a descriptor to outlive an exec.
 *
 * These hooks may run before the shim's constructor (from another library's
 * constructor); fs_libc falls back to raw system calls until it is resolved.
 */
#include <errno.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "audit.h"
#include "config.h"
#include "fdreg.h"
#include "grpclib.h"
#include "libc.h"
#include "owner.h"

#define EXPORT __attribute__((visibility("default")))
#define CALLER __builtin_return_address(0)

/* Whose call this is, as far as the shim acts on it. The shared library's
 * descriptors are left alone when that gRPC is passed through (untested
 * version, missing symbols); embedded gRPC's are guarded whatever its
 * version, since the guard asks nothing of gRPC itself. */
static enum fs_owner tracked(const void *caller)
{
	enum fs_owner owner;

	if (!fs_mode_acts(fs_cfg.mode))
		return FS_OWNER_OTHER;
	owner = fs_owner_of(caller);
	if (owner == FS_OWNER_SHARED && fs_grpc_state() == FS_GRPC_PASSTHROUGH)
		return FS_OWNER_OTHER;
	return owner;
}

/* Creation and registration happen under the registry lock, which the fork
 * path also takes: a fork sees either no descriptor or a registered one. gRPC
 * makes all of these non-blocking, so the lock is held only for a system call.
 * `plain` is the call as made, `cloexec` the same call with close-on-exec. */
#define REGISTERED(kind, plain, cloexec)                                                                    \
	do {                                                                                                \
		enum fs_owner owner_ = tracked(CALLER);                                                     \
		void *spare_;                                                                               \
		int fd_, err_;                                                                              \
		if (owner_ == FS_OWNER_OTHER) {                                                             \
			if (__builtin_expect(fs_cfg.mode != FS_MODE_AUDIT, 1))                              \
				return plain;                                                               \
			/* Audit: the call as made, then counted if embedded gRPC made it. */               \
			fd_ = plain;                                                                        \
			err_ = errno;                                                                       \
			fs_audit_fd_opened(fd_, kind, CALLER);                                              \
			errno = err_;                                                                       \
			return fd_;                                                                         \
		}                                                                                           \
		spare_ = fs_fdreg_begin_add();                                                              \
		fd_ = cloexec;                                                                              \
		err_ = errno;                                                                               \
		fs_fdreg_end_add(spare_, fd_, kind, owner_ == FS_OWNER_EMBEDDED);                           \
		errno = err_;                                                                               \
		return fd_;                                                                                 \
	} while (0)

EXPORT int socket(int domain, int type, int protocol)
{
	REGISTERED(FS_FD_SOCKET, fs_libc.socket(domain, type, protocol),
		   fs_libc.socket(domain, type | SOCK_CLOEXEC, protocol));
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	REGISTERED(FS_FD_SOCKET, fs_libc.accept(fd, addr, len), fs_libc.accept4(fd, addr, len, SOCK_CLOEXEC));
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	REGISTERED(FS_FD_SOCKET, fs_libc.accept4(fd, addr, len, flags),
		   fs_libc.accept4(fd, addr, len, flags | SOCK_CLOEXEC));
}

EXPORT int epoll_create(int size)
{
	/* epoll_create1 needs no size hint; a bad size is still refused as before. */
	REGISTERED(FS_FD_EPOLL, fs_libc.epoll_create(size),
		   size <= 0 ? fs_libc.epoll_create(size) : fs_libc.epoll_create1(EPOLL_CLOEXEC));
}

EXPORT int epoll_create1(int flags)
{
	REGISTERED(FS_FD_EPOLL, fs_libc.epoll_create1(flags), fs_libc.epoll_create1(flags | EPOLL_CLOEXEC));
}

EXPORT int eventfd(unsigned int initval, int flags)
{
	REGISTERED(FS_FD_OTHER, fs_libc.eventfd(initval, flags), fs_libc.eventfd(initval, flags | EFD_CLOEXEC));
}

/* Two descriptors at once: registered one after the other. gRPC uses pipes
 * and socket pairs only where eventfd is missing and for in-process
 * transports, so the short window in which a fork could miss them is accepted. */
static int register_pair(int rc, int fds[2], enum fs_fd_kind kind, enum fs_owner owner)
{
	int err = errno;

	if (rc == 0) {
		fs_fdreg_adopt(fds[0], kind, owner == FS_OWNER_EMBEDDED);
		fs_fdreg_adopt(fds[1], kind, owner == FS_OWNER_EMBEDDED);
	}
	errno = err;
	return rc;
}

EXPORT int pipe(int fds[2])
{
	enum fs_owner owner = tracked(CALLER);

	if (owner == FS_OWNER_OTHER)
		return fs_libc.pipe(fds);
	return register_pair(fs_libc.pipe2(fds, O_CLOEXEC), fds, FS_FD_OTHER, owner);
}

EXPORT int pipe2(int fds[2], int flags)
{
	enum fs_owner owner = tracked(CALLER);

	if (owner == FS_OWNER_OTHER)
		return fs_libc.pipe2(fds, flags);
	return register_pair(fs_libc.pipe2(fds, flags | O_CLOEXEC), fds, FS_FD_OTHER, owner);
}

EXPORT int socketpair(int domain, int type, int protocol, int fds[2])
{
	enum fs_owner owner = tracked(CALLER);

	if (owner == FS_OWNER_OTHER)
		return fs_libc.socketpair(domain, type, protocol, fds);
	return register_pair(fs_libc.socketpair(domain, type | SOCK_CLOEXEC, protocol, fds), fds, FS_FD_SOCKET,
			     owner);
}

EXPORT int close(int fd)
{
	return fs_fdreg_close(fd, CALLER, fs_libc.close);
}
