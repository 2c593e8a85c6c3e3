#include "libc.h"

#include <dlfcn.h>
#include <stdarg.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "log.h"
#include "owner.h"

/* Fallbacks: the kernel's system calls, for a hook that runs before the
 * constructor resolved libc or when libc does not export the symbol. */
static int sys_close(int fd) { return (int)syscall(SYS_close, fd); }
static int sys_socket(int d, int t, int p) { return (int)syscall(SYS_socket, d, t, p); }
static int sys_socketpair(int d, int t, int p, int sv[2]) { return (int)syscall(SYS_socketpair, d, t, p, sv); }
static int sys_accept(int fd, struct sockaddr *a, socklen_t *l) { return (int)syscall(SYS_accept4, fd, a, l, 0); }
static int sys_accept4(int fd, struct sockaddr *a, socklen_t *l, int f) { return (int)syscall(SYS_accept4, fd, a, l, f); }
static int sys_epoll_create(int size) { return (int)syscall(SYS_epoll_create1, size > 0 ? 0 : -1); }
static int sys_epoll_create1(int flags) { return (int)syscall(SYS_epoll_create1, flags); }
static int sys_eventfd(unsigned int v, int f) { return (int)syscall(SYS_eventfd2, v, f); }
static int sys_epoll_wait(int e, struct epoll_event *ev, int n, int t)
{
	return (int)syscall(SYS_epoll_pwait, e, ev, n, t, NULL, _NSIG / 8);
}
static int sys_epoll_pwait(int e, struct epoll_event *ev, int n, int t, const sigset_t *m)
{
	return (int)syscall(SYS_epoll_pwait, e, ev, n, t, m, _NSIG / 8);
}
static int sys_pipe(int fds[2]) { return (int)syscall(SYS_pipe2, fds, 0); }
static int sys_pipe2(int fds[2], int f) { return (int)syscall(SYS_pipe2, fds, f); }
static int sys_dup2(int o, int n) { return (int)syscall(SYS_dup2, o, n); }
static int sys_dup3(int o, int n, int f) { return (int)syscall(SYS_dup3, o, n, f); }
static int sys_fcntl(int fd, int cmd, ...)
{
	va_list ap;
	unsigned long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, unsigned long);
	va_end(ap);
	return (int)syscall(SYS_fcntl, fd, cmd, arg);
}
static int sys_close_range(unsigned int f, unsigned int l, int fl) { return (int)syscall(SYS_close_range, f, l, fl); }
static void sys_closefrom(int low) { syscall(SYS_close_range, (unsigned int)low, ~0U, 0); }

struct fs_libc fs_libc = {
	.close = sys_close,
	.socket = sys_socket,
	.socketpair = sys_socketpair,
	.accept = sys_accept,
	.accept4 = sys_accept4,
	.epoll_create = sys_epoll_create,
	.epoll_create1 = sys_epoll_create1,
	.eventfd = sys_eventfd,
	.epoll_wait = sys_epoll_wait,
	.epoll_pwait = sys_epoll_pwait,
	.pipe = sys_pipe,
	.pipe2 = sys_pipe2,
	.dup2 = sys_dup2,
	.dup3 = sys_dup3,
	.fcntl = sys_fcntl,
	.fcntl64 = sys_fcntl,
	.close_range = sys_close_range,
	.closefrom = sys_closefrom,
	/* fork, vfork, clone and the spawns have no safe system-call stand-in (libc
	 * keeps per-process state they must update): their hooks initialise the shim
	 * first, which resolves them. */
};

void *fs_next_symbol(const char *name)
{
	void *sym = dlsym(RTLD_NEXT, name);

	if (sym != NULL && fs_owner_is_self(sym)) {
		fs_log(FS_ERROR, "dlsym(RTLD_NEXT, \"%s\") returned the shim's own function; is it loaded twice?",
		       name);
		return NULL;
	}
	return sym;
}

#define RESOLVE(field)                                                                                      \
	do {                                                                                                \
		void *p = fs_next_symbol(#field);                                                     \
		if (p != NULL)                                                                              \
			*(void **)&fs_libc.field = p;                                                       \
	} while (0)

void fs_libc_resolve(void)
{
	RESOLVE(close);
	RESOLVE(socket);
	RESOLVE(socketpair);
	RESOLVE(accept);
	RESOLVE(accept4);
	RESOLVE(epoll_create);
	RESOLVE(epoll_create1);
	RESOLVE(eventfd);
	RESOLVE(epoll_wait);
	RESOLVE(epoll_pwait);
	RESOLVE(pipe);
	RESOLVE(pipe2);
	RESOLVE(dup2);
	RESOLVE(dup3);
	RESOLVE(fcntl);
	RESOLVE(fcntl64);
	RESOLVE(close_range);
	RESOLVE(closefrom);
	RESOLVE(fork);
	RESOLVE(vfork);
	RESOLVE(clone);
	RESOLVE(posix_spawn);
	RESOLVE(posix_spawnp);
}
