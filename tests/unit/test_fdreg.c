/* The fd registry: what a child does to the descriptors gRPC opened. Each test
 * forks for real and checks what the kernel reports in both processes. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdreg.h"
#include "libc.h"

static ino_t inode(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* An address inside libgrpc, to stand for "gRPC's own code" as a caller. */
static const void *grpc_code(void)
{
	void *lib = dlopen("libgrpc.so.29", RTLD_LAZY);

	cr_assert_not_null(lib, "libgrpc.so.29: %s", dlerror());
	return dlsym(lib, "grpc_init");
}

static void setup(void)
{
	fs_libc_resolve();
}

TestSuite(fdreg, .init = setup, .timeout = 20);

/* Runs `child` in a forked child after neutralising (shared gRPC's
 * descriptors too, or embedded gRPC's only); returns its exit status. */
static int in_child_neutralising(bool shared, int (*child)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		fs_fdreg_lock();
		fs_fdreg_neutralise_locked(shared);
		fs_fdreg_unlock();
		_exit(child(arg));
	}
	cr_assert_gt(pid, 0);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static int in_child(int (*child)(void *), void *arg)
{
	return in_child_neutralising(true, child, arg);
}

struct pair {
	int grpc_end, peer_end;
	ino_t grpc_ino;
	const void *grpc_caller;
};

static int neutralised_child(void *arg)
{
	struct pair *p = arg;
	char c = 'x';

	if (inode(p->grpc_end) == 0)
		return 1; /* the number must stay taken */
	if (inode(p->grpc_end) == p->grpc_ino)
		return 2; /* ... by something other than the inherited socket */
	if (!fs_fdreg_is_reserved(p->grpc_end))
		return 3;
	if (send(p->grpc_end, &c, 1, MSG_NOSIGNAL) >= 0)
		return 4; /* nothing written reaches anybody */
	if ((fcntl(p->grpc_end, F_GETFD) & FD_CLOEXEC) == 0)
		return 5; /* and nothing of it survives an exec */
	/* gRPC closing it (as core's child handler does) keeps the number taken. */
	if (fs_fdreg_close(p->grpc_end, p->grpc_caller, fs_libc.close) != 0 || inode(p->grpc_end) == 0)
		return 6;
	/* The application closing it really closes it. */
	if (fs_fdreg_close(p->grpc_end, (void *)neutralised_child, fs_libc.close) != 0 ||
	    fcntl(p->grpc_end, F_GETFD) != -1)
		return 7;
	return 0;
}

Test(fdreg, a_child_drops_the_inherited_socket_and_keeps_its_number)
{
	int sv[2];
	struct pair p;
	char buf[4];
	struct pollfd pfd;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	p = (struct pair){ sv[0], sv[1], inode(sv[0]), grpc_code() };
	fs_fdreg_adopt(sv[0], FS_FD_SOCKET, false);
	cr_assert_eq(in_child(neutralised_child, &p), 0);

	/* The parent's connection is untouched: no EOF, no shutdown, data flows both ways. */
	pfd = (struct pollfd){ .fd = sv[1], .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 0), 0, "the peer saw something from the child");
	cr_assert_eq(write(sv[0], "ok", 2), 2);
	cr_assert_eq(read(sv[1], buf, sizeof(buf)), 2);
	cr_assert_eq(write(sv[1], "ok", 2), 2);
	cr_assert_eq(read(sv[0], buf, sizeof(buf)), 2);
	cr_assert(fs_fdreg_contains(sv[0]));
	cr_assert_not(fs_fdreg_is_reserved(sv[0]), "the parent's entry must stay live");
}

static int epoll_child(void *arg)
{
	int ep = *(int *)arg;
	struct epoll_event ev;

	if (!fs_fdreg_is_reserved(ep))
		return 1;
	/* An empty set of its own: the parent's ready socket is not reported. */
	return epoll_wait(ep, &ev, 1, 0) == 0 ? 0 : 2;
}

Test(fdreg, an_inherited_epoll_set_becomes_an_empty_one)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), sv[2];
	struct epoll_event ev = { .events = EPOLLIN };

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(epoll_ctl(ep, EPOLL_CTL_ADD, sv[0], &ev), 0);
	cr_assert_eq(write(sv[1], "x", 1), 1);
	fs_fdreg_adopt(ep, FS_FD_EPOLL, false);
	cr_assert_eq(in_child(epoll_child, &ep), 0);
	cr_assert_eq(epoll_wait(ep, &ev, 1, 0), 1, "the parent's set lost its event");
}

static int stale_child(void *arg)
{
	int *fds = arg; /* [0] the number, [1] the inode now there */

	return inode(fds[0]) == (ino_t)fds[1] && !fs_fdreg_contains(fds[0]) ? 0 : 1;
}

Test(fdreg, a_number_reused_behind_the_registrys_back_is_left_alone)
{
	int sv[2], fds[2], fd;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fs_fdreg_adopt(sv[0], FS_FD_SOCKET, false);
	/* Closed without passing through the registry (as close_range would) and reused. */
	syscall(SYS_close, sv[0]);
	fd = open("/dev/null", O_RDONLY);
	cr_assert_eq(fd, sv[0]);
	fds[0] = fd;
	fds[1] = (int)inode(fd);
	cr_assert_eq(in_child(stale_child, fds), 0);
}

Test(fdreg, closing_a_live_descriptor_forgets_it)
{
	int sv[2];
	size_t before = fs_fdreg_count();

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fs_fdreg_adopt(sv[0], FS_FD_SOCKET, false);
	cr_assert_eq(fs_fdreg_count(), before + 1);
	cr_assert_eq(fs_fdreg_close(sv[0], grpc_code(), fs_libc.close), 0);
	cr_assert_eq(fs_fdreg_count(), before);
	cr_assert_eq(fcntl(sv[0], F_GETFD), -1);
	cr_assert_eq(errno, EBADF);
}

static int embedded_only_child(void *arg)
{
	int *fds = arg; /* [0] embedded gRPC's, [1] its inode, [2] shared gRPC's, [3] its inode */

	if (!fs_fdreg_is_reserved(fds[0]) || inode(fds[0]) == (ino_t)fds[1])
		return 1; /* embedded gRPC's descriptor is guarded in any case */
	if (fs_fdreg_is_reserved(fds[2]) || inode(fds[2]) != (ino_t)fds[3])
		return 2; /* the shared library's is left to the fork path that resets it */
	return 0;
}

/* Embedded gRPC's descriptors are guarded even when the shared library's are
 * not touched (no shared gRPC loaded, or passed through). */
Test(fdreg, embedded_grpc_descriptors_are_guarded_on_their_own)
{
	int a[2], b[2], fds[4];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	fs_fdreg_adopt(a[0], FS_FD_SOCKET, true);
	fs_fdreg_adopt(b[0], FS_FD_SOCKET, false);
	fds[0] = a[0];
	fds[1] = (int)inode(a[0]);
	fds[2] = b[0];
	fds[3] = (int)inode(b[0]);
	cr_assert_eq(in_child_neutralising(false, embedded_only_child, fds), 0);
}

/* The audit tells an epoll set a child inherited from one gRPC made again
 * on the same number: listed with a token, which a new registration changes. */
Test(fdreg, listed_epoll_sets_keep_their_token_until_registered_anew)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), other = epoll_create1(EPOLL_CLOEXEC), sv[2], fds[4], again;
	uint64_t tokens[4], token = 0;
	size_t n, i;

	cr_assert(ep >= 0 && other >= 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	fs_fdreg_adopt(ep, FS_FD_EPOLL, true);
	fs_fdreg_adopt(other, FS_FD_EPOLL, false); /* the shared library's: not listed */
	fs_fdreg_adopt(sv[0], FS_FD_SOCKET, true);  /* a socket: not listed */
	n = fs_fdreg_list_locked(FS_FD_EPOLL, true, fds, tokens, 4);
	for (i = 0; i < n; i++) {
		cr_assert(fds[i] != other && fds[i] != sv[0], "fd %d listed", fds[i]);
		if (fds[i] == ep)
			token = tokens[i];
	}
	cr_assert_neq(token, 0, "the embedded epoll set was not listed");
	cr_assert_eq(fs_fdreg_token(ep), token);
	cr_assert_eq(fs_fdreg_list_locked(FS_FD_EPOLL, true, fds, tokens, 0), 0);

	cr_assert_eq(fs_fdreg_close(ep, grpc_code(), fs_libc.close), 0);
	cr_assert_eq(fs_fdreg_token(ep), 0);
	again = epoll_create1(EPOLL_CLOEXEC);
	cr_assert_eq(again, ep, "the number was not reused");
	fs_fdreg_adopt(again, FS_FD_EPOLL, true);
	cr_assert(fs_fdreg_token(again) != 0 && fs_fdreg_token(again) != token);

	fs_fdreg_close(again, grpc_code(), fs_libc.close);
	fs_fdreg_close(other, grpc_code(), fs_libc.close);
	fs_fdreg_close(sv[0], grpc_code(), fs_libc.close);
	close(sv[1]);
}

/* close() is async-signal-safe: a handler may close (and fork) while its
 * thread is inside the registry's close. Nothing there may wait for the
 * interrupted thread; a hang ends in the suite's timeout. */
static int handler_fd[2] = { -1, -1 };
static volatile sig_atomic_t handled;
static const void *handler_grpc; /* dlopen is no function for a handler */

static void close_in_handler(int sig)
{
	int err = errno, sv[2];

	if (fs_libc.socketpair(AF_UNIX, SOCK_STREAM, 0, sv) == 0) {
		fs_fdreg_adopt(sv[0], FS_FD_SOCKET, true);
		fs_fdreg_close(sv[0], handler_grpc, fs_libc.close);
		fs_fdreg_close(sv[1], (void *)close_in_handler, fs_libc.close);
	}
	if (handled % 8 == 0) {
		pid_t pid;

		fs_fdreg_lock();
		pid = fork();
		if (pid == 0) {
			fs_fdreg_child_reset_lock();
			fs_fdreg_neutralise_locked(true);
			_exit(0);
		}
		fs_fdreg_unlock();
		waitpid(pid, NULL, 0);
	}
	handled++;
	errno = err;
}

Test(fdreg, a_signal_handler_closes_and_forks_while_its_thread_is_in_close)
{
	struct itimerval every = { { 0, 100 }, { 0, 100 } }, stop = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa = { .sa_handler = close_in_handler, .sa_flags = SA_RESTART };
	long i;

	handler_grpc = grpc_code();
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, handler_fd), 0);
	fs_fdreg_adopt(handler_fd[0], FS_FD_SOCKET, true);
	cr_assert_eq(sigaction(SIGALRM, &sa, NULL), 0);
	setitimer(ITIMER_REAL, &every, NULL);
	for (i = 0; handled < 500 && i < 5000000; i++) {
		int sv[2];

		cr_assert_eq(fs_libc.socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
		fs_fdreg_adopt(sv[0], FS_FD_SOCKET, true);
		fs_fdreg_close(sv[0], handler_grpc, fs_libc.close);
		fs_fdreg_close(sv[1], (void *)close_in_handler, fs_libc.close);
	}
	setitimer(ITIMER_REAL, &stop, NULL);
	cr_assert_geq(handled, 500, "only %d signals in %ld iterations", (int)handled, i);
	cr_assert(fs_fdreg_contains(handler_fd[0]));
}

static int range_child(void *arg)
{
	int *fds = arg; /* [0] a placeholder, [1] a live entry, [2] the application's */

	if (fs_fdreg_close_range((unsigned)fds[0] < (unsigned)fds[1] ? (unsigned)fds[0] : (unsigned)fds[1], ~0U, 0,
				 fs_libc.close_range) != 0)
		return 1;
	if (fcntl(fds[0], F_GETFD) < 0 || !fs_fdreg_is_reserved(fds[0]))
		return 2; /* the placeholder's number stays taken */
	if (fcntl(fds[1], F_GETFD) >= 0 || fs_fdreg_contains(fds[1]))
		return 3; /* the live one is closed and forgotten */
	if (fcntl(fds[2], F_GETFD) >= 0)
		return 4; /* everything else in the range is closed */
	return 0;
}

Test(fdreg, a_bulk_close_forgets_live_entries_and_keeps_placeholders)
{
	int a[2], b[2], c, fds[3];
	pid_t pid;
	int status;

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	fs_fdreg_adopt(a[0], FS_FD_SOCKET, true);
	pid = fork();
	if (pid == 0) {
		fs_fdreg_child_reset_lock();
		fs_fdreg_neutralise_locked(true); /* a[0] is a placeholder from here on */
		if (socketpair(AF_UNIX, SOCK_STREAM, 0, b) != 0)
			_exit(10);
		fs_fdreg_adopt(b[0], FS_FD_SOCKET, true);
		c = open("/dev/null", O_RDONLY);
		fds[0] = a[0];
		fds[1] = b[0];
		fds[2] = c > a[0] && c > b[0] ? c : -1;
		_exit(fds[2] < 0 ? 11 : range_child(fds));
	}
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}

static int failing_dup(int oldfd, int newfd, int flags)
{
	errno = EBADF;
	return -1;
}

static int real_dup3(int oldfd, int newfd, int flags)
{
	return fs_libc.dup3(oldfd, newfd, flags);
}

Test(fdreg, dup_onto_a_number_forgets_it_and_a_failed_one_changes_nothing)
{
	int sv[2], other[2];
	size_t before = fs_fdreg_count();

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
	fs_fdreg_adopt(sv[0], FS_FD_SOCKET, false);
	cr_assert_eq(fs_fdreg_dup_onto(other[0], sv[0], false, failing_dup, 0), -1);
	cr_assert_eq(errno, EBADF);
	cr_assert(fs_fdreg_contains(sv[0]), "a failed dup must leave the entry");
	cr_assert_eq(fs_fdreg_dup_onto(other[0], sv[0], false, real_dup3, O_CLOEXEC), sv[0]);
	cr_assert_not(fs_fdreg_contains(sv[0]), "the number now holds the application's socket");
	cr_assert_eq(fs_fdreg_count(), before);
	/* gRPC's own duplicate of its descriptor is gRPC's too. */
	fs_fdreg_adopt(other[1], FS_FD_SOCKET, true);
	cr_assert_eq(fs_fdreg_dup_onto(other[1], sv[1], true, real_dup3, O_CLOEXEC), sv[1]);
	cr_assert(fs_fdreg_contains(sv[1]));
	fs_fdreg_close(sv[1], (void *)real_dup3, fs_libc.close);
	fs_fdreg_close(other[1], (void *)real_dup3, fs_libc.close);
	cr_assert_eq(fs_fdreg_count(), before);
}

static int shared_placeholder_child(void *arg)
{
	int *fds = arg; /* three sockets and an eventfd of gRPC's */

	for (int i = 0; i < 4; i++)
		if (!fs_fdreg_is_reserved(fds[i]))
			return 1;
	/* One dead socket dup3'd over every number: one open file description. */
	for (int i = 1; i < 4; i++)
		if (inode(fds[i]) != inode(fds[0]))
			return 2;
	return 0;
}

Test(fdreg, placeholders_of_a_kind_share_one_dead_object)
{
	int a[2], b[2], c[2], fds[4];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, a), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, b), 0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, c), 0);
	fds[0] = a[0];
	fds[1] = b[0];
	fds[2] = c[0];
	fds[3] = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(fds[3], 0);
	for (int i = 0; i < 3; i++)
		fs_fdreg_adopt(fds[i], FS_FD_SOCKET, true);
	fs_fdreg_adopt(fds[3], FS_FD_OTHER, true);
	cr_assert_eq(in_child(shared_placeholder_child, fds), 0);
}
