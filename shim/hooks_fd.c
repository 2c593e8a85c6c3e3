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
#include <stdarg.h>
#include <stdbool.h>
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

/* The creation is announced to the registry before the call and its result
 * recorded right after, without a lock (fdreg.c says how a fork then sees
 * either no descriptor or a registered one). `plain` is the call as made,
 * `cloexec` the same call with close-on-exec; `blocking`: the call may wait
 * for long (accept), so forks do not wait for it. */
#define REGISTERED(kind, blocking, plain, cloexec)                                                          \
	do {                                                                                                \
		enum fs_owner owner_ = tracked(CALLER);                                                     \
		bool emb_ = owner_ == FS_OWNER_EMBEDDED;                                                    \
		struct fs_fd_creating *c_;                                                                  \
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
		c_ = fs_fdreg_begin_add(kind, emb_, blocking);                                              \
		fd_ = cloexec;                                                                              \
		err_ = errno;                                                                               \
		fs_fdreg_end_add(c_, fd_ >= 0 ? &fd_ : NULL, 1, kind, emb_);                                \
		errno = err_;                                                                               \
		return fd_;                                                                                 \
	} while (0)

EXPORT int socket(int domain, int type, int protocol)
{
	REGISTERED(FS_FD_SOCKET, false, fs_libc.socket(domain, type, protocol),
		   fs_libc.socket(domain, type | SOCK_CLOEXEC, protocol));
}

EXPORT int accept(int fd, struct sockaddr *addr, socklen_t *len)
{
	REGISTERED(FS_FD_SOCKET, true, fs_libc.accept(fd, addr, len), fs_libc.accept4(fd, addr, len, SOCK_CLOEXEC));
}

EXPORT int accept4(int fd, struct sockaddr *addr, socklen_t *len, int flags)
{
	REGISTERED(FS_FD_SOCKET, true, fs_libc.accept4(fd, addr, len, flags),
		   fs_libc.accept4(fd, addr, len, flags | SOCK_CLOEXEC));
}

EXPORT int epoll_create(int size)
{
	/* epoll_create1 needs no size hint; a bad size is still refused as before. */
	REGISTERED(FS_FD_EPOLL, false, fs_libc.epoll_create(size),
		   size <= 0 ? fs_libc.epoll_create(size) : fs_libc.epoll_create1(EPOLL_CLOEXEC));
}

EXPORT int epoll_create1(int flags)
{
	REGISTERED(FS_FD_EPOLL, false, fs_libc.epoll_create1(flags), fs_libc.epoll_create1(flags | EPOLL_CLOEXEC));
}

EXPORT int eventfd(unsigned int initval, int flags)
{
	REGISTERED(FS_FD_OTHER, false, fs_libc.eventfd(initval, flags), fs_libc.eventfd(initval, flags | EFD_CLOEXEC));
}

/* Two descriptors at once, announced and registered together. */
#define REGISTERED_PAIR(kind, fds, plain, cloexec)                                                          \
	do {                                                                                                \
		enum fs_owner owner_ = tracked(CALLER);                                                     \
		bool emb_ = owner_ == FS_OWNER_EMBEDDED;                                                    \
		struct fs_fd_creating *c_;                                                                  \
		int rc_, err_;                                                                              \
		if (owner_ == FS_OWNER_OTHER)                                                               \
			return plain;                                                                       \
		c_ = fs_fdreg_begin_add(kind, emb_, false);                                                 \
		rc_ = cloexec;                                                                              \
		err_ = errno;                                                                               \
		fs_fdreg_end_add(c_, rc_ == 0 ? fds : NULL, 2, kind, emb_);                                 \
		errno = err_;                                                                               \
		return rc_;                                                                                 \
	} while (0)

EXPORT int pipe(int fds[2])
{
	REGISTERED_PAIR(FS_FD_OTHER, fds, fs_libc.pipe(fds), fs_libc.pipe2(fds, O_CLOEXEC));
}

EXPORT int pipe2(int fds[2], int flags)
{
	REGISTERED_PAIR(FS_FD_OTHER, fds, fs_libc.pipe2(fds, flags), fs_libc.pipe2(fds, flags | O_CLOEXEC));
}

EXPORT int socketpair(int domain, int type, int protocol, int fds[2])
{
	REGISTERED_PAIR(FS_FD_SOCKET, fds, fs_libc.socketpair(domain, type, protocol, fds),
			fs_libc.socketpair(domain, type | SOCK_CLOEXEC, protocol, fds));
}

EXPORT int close(int fd)
{
	return fs_fdreg_close(fd, CALLER, fs_libc.close);
}

/* Every other call that closes a number or puts something else at it goes
 * through the registry too: an entry left behind would make a child replace
 * whatever the application later put at that number with a dead placeholder
 * (an epoll set or eventfd of the same type as gRPC's cannot be told from it:
 * they share one inode). */
EXPORT int close_range(unsigned int first, unsigned int last, int flags)
{
	return fs_fdreg_close_range(first, last, flags, fs_libc.close_range);
}

static int closefrom_range(unsigned int first, unsigned int last, int flags)
{
	if (fs_libc.close_range(first, last, flags) == 0 || errno != ENOSYS)
		return 0; /* closefrom() reports nothing */
	/* A kernel without close_range: libc's closefrom has its own way. */
	if (last == ~0U)
		fs_libc.closefrom((int)first);
	else
		for (unsigned int fd = first; fd <= last; fd++)
			fs_libc.close((int)fd);
	return 0;
}

EXPORT void closefrom(int lowfd)
{
	int err = errno;

	if (lowfd < 0)
		lowfd = 0; /* as libc does */
	fs_fdreg_close_range((unsigned int)lowfd, ~0U, 0, closefrom_range);
	errno = err;
}

static int dup2_call(int oldfd, int newfd, int flags)
{
	return fs_libc.dup2(oldfd, newfd);
}

static int dup3_call(int oldfd, int newfd, int flags)
{
	return fs_libc.dup3(oldfd, newfd, flags);
}

EXPORT int dup2(int oldfd, int newfd)
{
	return fs_fdreg_dup_onto(oldfd, newfd, tracked(CALLER) != FS_OWNER_OTHER, dup2_call, 0);
}

EXPORT int dup3(int oldfd, int newfd, int flags)
{
	/* gRPC's copy is close-on-exec, like everything else it opens. */
	bool grpc = tracked(CALLER) != FS_OWNER_OTHER;

	return fs_fdreg_dup_onto(oldfd, newfd, grpc, dup3_call, grpc ? flags | O_CLOEXEC : flags);
}

/* fcntl's third argument is an int, a long or a pointer depending on the
 * command; all travel in one register, so it is passed on as an unsigned long. */
static int fcntl_hooked(int (*real)(int, int, ...), const void *caller, int fd, int cmd, unsigned long arg)
{
	int newfd, err;

	if ((cmd != F_DUPFD && cmd != F_DUPFD_CLOEXEC) || tracked(caller) == FS_OWNER_OTHER)
		return real(fd, cmd, arg);
	newfd = real(fd, F_DUPFD_CLOEXEC, arg);
	err = errno;
	if (newfd >= 0)
		fs_fdreg_dup_made(fd, newfd);
	errno = err;
	return newfd;
}

EXPORT int fcntl(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return fcntl_hooked(fs_libc.fcntl, CALLER, fd, cmd, arg);
}

EXPORT int fcntl64(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return fcntl_hooked(fs_libc.fcntl64, CALLER, fd, cmd, arg);
}
