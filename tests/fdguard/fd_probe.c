/*
 * fd-probe SCENARIO: an ordinary program whose "gRPC" is libfdside.so (named
 * in GRPC_FORKSAFE_OBJECTS by the tests), doing to its descriptors what
 * programs do: closing them from signal handlers, accepting on a blocking
 * socket, closefrom, dup2, vfork. It prints "RESULT ok" and exits 0 when
 * everything it checks holds, else "RESULT fail: why" and exits 1.
 * Checks of what only the shim provides (an inherited gRPC descriptor is a
 * dead placeholder in a child) are made when FDPROBE_SHIM=1; the rest must
 * hold with and without the shim.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fdside.h"

static bool shim_checks;

static int fail(const char *why)
{
	printf("RESULT fail: %s\n", why);
	return 1;
}

static ino_t inode(int fd)
{
	struct stat st;

	return fstat(fd, &st) == 0 ? st.st_ino : 0;
}

/* Runs `child` in a forked child; its exit status (or 100 + signal). */
static int in_child(int (*child)(void *), void *arg)
{
	pid_t pid = fork();
	int status;

	if (pid == 0)
		_exit(child(arg));
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return 99;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static int exit_at_once(void *unused)
{
	return 0;
}

/* --- close() and fork() from a signal handler while the thread is in close() */

static volatile sig_atomic_t handled;

static void on_alarm(int sig)
{
	int err = errno, p[2];

	if (pipe(p) == 0) {
		close(p[0]);
		close(p[1]);
	}
	if (handled % 16 == 0)
		(void)in_child(exit_at_once, NULL);
	handled++;
	errno = err;
}

static int signal_close(void)
{
	struct itimerval every = { { 0, 200 }, { 0, 200 } }, stop = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	sigset_t alrm;
	int keep[2], sv[2];
	long i;

	if (side_socketpair(keep) != 0) /* gRPC holds a descriptor from here on */
		return fail("socketpair");
	sigemptyset(&alrm);
	sigaddset(&alrm, SIGALRM);
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	for (i = 0; handled < 2000 && i < 2000000; i++) {
		if (side_socketpair(sv) != 0)
			return fail("socketpair in the loop");
		side_close(sv[0]);
		close(sv[1]);
		if (i % 500 == 0) {
			/* A fork interrupted by a fork is libc's own deadlock, not the test's. */
			sigprocmask(SIG_BLOCK, &alrm, NULL);
			if (in_child(exit_at_once, NULL) != 0)
				return fail("a child forked by the main thread failed");
			sigprocmask(SIG_UNBLOCK, &alrm, NULL);
		}
	}
	setitimer(ITIMER_REAL, &stop, NULL);
	printf("handled %d signals in %ld iterations\n", (int)handled, i);
	if (handled < 2000)
		return fail("too few signals arrived to tell");
	return 0;
}

/* --- a blocking accept() while other threads fork and close */

static int listen_fd, accepted = -2;
static _Atomic pid_t acceptor_tid;

static void *acceptor(void *unused)
{
	acceptor_tid = (pid_t)syscall(SYS_gettid);
	accepted = side_accept(listen_fd);
	return NULL;
}

/* Whether thread `tid` is blocked in accept or accept4 (x86_64 numbers). */
static bool blocked_in_accept(pid_t tid)
{
	char path[64], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	if ((f = fopen(path, "r")) == NULL)
		return false;
	if (fgets(buf, sizeof(buf), f) == NULL)
		buf[0] = '\0';
	fclose(f);
	return strncmp(buf, "43 ", 3) == 0 || strncmp(buf, "288 ", 4) == 0;
}

static int blocking_accept(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	pthread_t t;
	int p[2], c, tries;

	listen_fd = side_socket(AF_INET, SOCK_STREAM);
	if (listen_fd < 0 || bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    listen(listen_fd, 1) != 0 || getsockname(listen_fd, (struct sockaddr *)&addr, &len) != 0)
		return fail("listening socket");
	pthread_create(&t, NULL, acceptor, NULL);
	for (tries = 0; tries < 10000 && !(acceptor_tid != 0 && blocked_in_accept(acceptor_tid)); tries++)
		usleep(1000);
	if (tries == 10000)
		return fail("the accepting thread never blocked in accept");
	/* These must not wait for a client: none comes until they are done. */
	if (in_child(exit_at_once, NULL) != 0)
		return fail("the child forked during accept failed");
	if (pipe(p) != 0 || close(p[0]) != 0 || close(p[1]) != 0)
		return fail("pipe or close during accept");
	c = socket(AF_INET, SOCK_STREAM, 0);
	if (connect(c, (struct sockaddr *)&addr, sizeof(addr)) != 0)
		return fail("connect");
	pthread_join(t, NULL);
	if (accepted < 0)
		return fail("accept failed");
	return 0;
}

/* --- closefrom(3) in a child */

struct inherited {
	int fd;
	ino_t ino;
};

static int closefrom_child(void *arg)
{
	struct inherited *in = arg;
	int fd;

	if (shim_checks && (inode(in->fd) == 0 || inode(in->fd) == in->ino))
		return 2; /* not a placeholder */
	closefrom(3);
	fd = open("/dev/null", O_RDONLY);
	if (fd < 0)
		return 3;
	if (shim_checks && (fd == in->fd || fcntl(in->fd, F_GETFD) < 0))
		return 4; /* the placeholder's number was freed and reused */
	if (shim_checks && (side_close(in->fd) != 0 || fcntl(in->fd, F_GETFD) < 0))
		return 5; /* gRPC's own close must keep it taken too */
	return 0;
}

static int closefrom_in_child(void)
{
	int sv[2], rc;
	struct inherited in;

	if (side_socketpair(sv) != 0)
		return fail("socketpair");
	in = (struct inherited){ sv[0], inode(sv[0]) };
	rc = in_child(closefrom_child, &in);
	if (rc != 0) {
		fprintf(stderr, "child status %d\n", rc);
		return fail(rc == 4 ? "closefrom freed a placeholder's number" : "child");
	}
	return 0;
}

/* --- the application's epoll set on a number gRPC held: dup2, close_range */

static int epoll_child(void *arg)
{
	struct epoll_event ev;

	return epoll_wait(*(int *)arg, &ev, 1, 0) == 1 ? 0 : 2;
}

/* An epoll set of the application's with one ready descriptor in it. */
static int ready_epoll(void)
{
	int ep = epoll_create1(0), p[2];
	struct epoll_event ev = { .events = EPOLLIN };

	if (ep < 0 || pipe(p) != 0 || write(p[1], "x", 1) != 1 || epoll_ctl(ep, EPOLL_CTL_ADD, p[0], &ev) != 0)
		return -1;
	return ep;
}

static int app_epoll_on(int n, const char *how)
{
	int rc = in_child(epoll_child, &n);

	if (rc != 0) {
		fprintf(stderr, "child status %d\n", rc);
		return fail(how);
	}
	return epoll_child(&n) == 0 ? 0 : fail("the parent's epoll set");
}

static int dup2_in_parent(void)
{
	int n = side_eventfd(), ep = ready_epoll();

	if (n < 0 || ep < 0 || dup2(ep, n) != n)
		return fail("setup");
	close(ep);
	return app_epoll_on(n, "the application's epoll set put with dup2 at gRPC's old number was replaced");
}

static int close_range_in_parent(void)
{
	int n = side_eventfd(), ep;

	if (n < 0 || close_range((unsigned)n, (unsigned)n, 0) != 0)
		return fail("setup");
	ep = ready_epoll(); /* the lowest free number: gRPC's old one */
	if (ep != n)
		return fail("setup: the epoll set did not land on the closed number");
	return app_epoll_on(n, "the application's epoll set at a number closed by close_range was replaced");
}

/* --- the same after a close no hook sees (a raw system call): an epoll set
 * where gRPC's eventfd was can be told by its type (another eventfd cannot) */

static int raw_close(void)
{
	int n = side_eventfd(), ep;

	if (n < 0 || syscall(SYS_close, n) != 0 || (ep = ready_epoll()) != n)
		return fail("setup");
	return app_epoll_on(n, "the application's epoll set at a number closed by a raw close was replaced");
}

/* --- gRPC's own duplicate, made with fcntl(F_DUPFD) */

static int dupfd_child(void *arg)
{
	struct inherited *in = arg;

	return inode(in->fd) != 0 && inode(in->fd) != in->ino ? 0 : 2;
}

static int dupfd_by_grpc(void)
{
	int sv[2], d;
	struct inherited in;

	if (side_socketpair(sv) != 0 || (d = side_dupfd(sv[0])) < 0)
		return fail("setup");
	in = (struct inherited){ d, inode(d) };
	if (shim_checks && in_child(dupfd_child, &in) != 0)
		return fail("gRPC's duplicate made with F_DUPFD reached the child alive");
	return 0;
}

/* --- a vfork child closing descriptors before it execs */

static int vfork_close(void)
{
	int sv[2], status;
	struct inherited in;
	pid_t pid;

	if (side_socketpair(sv) != 0)
		return fail("socketpair");
	in = (struct inherited){ sv[0], inode(sv[0]) };
	pid = vfork();
	if (pid == 0) {
		close(sv[0]);
		close(sv[1]);
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid || status != 0)
		return fail("vfork");
	if (inode(sv[0]) != in.ino)
		return fail("the vfork child's close closed the parent's descriptor");
	if (shim_checks && in_child(dupfd_child, &in) != 0)
		return fail("after a vfork child's close, a forked child kept gRPC's socket alive");
	return 0;
}

static const struct {
	const char *name;
	int (*run)(void);
} scenarios[] = {
	{ "signal-close", signal_close },
	{ "blocking-accept", blocking_accept },
	{ "closefrom-child", closefrom_in_child },
	{ "dup2-parent", dup2_in_parent },
	{ "close-range-parent", close_range_in_parent },
	{ "raw-close", raw_close },
	{ "dupfd", dupfd_by_grpc },
	{ "vfork-close", vfork_close },
};

int main(int argc, char **argv)
{
	const char *s = getenv("FDPROBE_SHIM");

	shim_checks = s != NULL && strcmp(s, "1") == 0;
	setvbuf(stdout, NULL, _IONBF, 0);
	for (size_t i = 0; argc == 2 && i < sizeof(scenarios) / sizeof(scenarios[0]); i++) {
		if (strcmp(argv[1], scenarios[i].name) != 0)
			continue;
		if (scenarios[i].run() != 0)
			return 1;
		printf("RESULT ok\n");
		return 0;
	}
	fprintf(stderr, "usage: fd-probe SCENARIO (signal-close, blocking-accept, closefrom-child, dup2-parent, "
			"close-range-parent, raw-close, dupfd, vfork-close)\n");
	return 2;
}
