/*
 * signal-fork: a gRPC program (core's C API, Debian's libgrpc) whose main
 * thread creates channels, registers methods on them and destroys them in a
 * loop, and every CLONE_EVERY rounds forks, while a timer signal (SIGALRM,
 * every FORK_EVERY_US) interrupts it and the handler forks too (fork() is
 * async-signal-safe). With the shim preloaded the signal lands, now and then,
 * inside the shim's fork path or its channel-table lock, on the very thread
 * that holds them: the handler's fork must not wait for them.
 *
 * Every child, the handler's and the main thread's, exits at once; before
 * that, with FDPROBE_SHIM=1, it checks that gRPC's TCP connection, made
 * before the loop to a listener of the probe's own, is a dead placeholder
 * there (the descriptor guard). The handler and the main thread reap their
 * children and require status 0. Prints "RESULT ok" and exits 0, or
 * "RESULT fail: why" and exits 1; a deadlock is a hang (run.sh's timeout).
 *
 * What is kept out, being glibc's and not the shim's: glibc's fork() in a
 * process with threads takes malloc's locks around the system call, so a
 * handler that forks while its thread is inside malloc, or inside fork()
 * itself, deadlocks with or without the shim. So the main thread forks with
 * clone() (no CLONE_VM: the shim runs its whole fork path around it, glibc
 * takes no lock), and the probe's malloc family notes when the main thread
 * is inside it: the handler then does not fork (a skip). The kernel hands
 * the process's SIGALRM to any thread, gRPC's own too; there the handler
 * passes it on to the main thread.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

#define ROUNDS 50000        /* at most */
#define HANDLER_FORKS 400   /* the run ends once the handler has forked this often */
#define CLONE_EVERY 40      /* rounds between two forks of the main thread */
#define FORK_EVERY_US 2000  /* the timer's interval */
#define METHODS 16          /* registered on each channel */

/* --- malloc's locks, kept out of the test (see above) */

extern void *__libc_malloc(size_t);
extern void __libc_free(void *);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);

static __thread volatile sig_atomic_t in_malloc __attribute__((tls_model("initial-exec")));

#define GUARDED(call)                                                                                   \
	({                                                                                              \
		__typeof__(call) r_;                                                                    \
		in_malloc++;                                                                            \
		__atomic_signal_fence(__ATOMIC_SEQ_CST);                                                \
		r_ = call;                                                                              \
		__atomic_signal_fence(__ATOMIC_SEQ_CST);                                                \
		in_malloc--;                                                                            \
		r_;                                                                                     \
	})

void *malloc(size_t n) { return GUARDED(__libc_malloc(n)); }
void *calloc(size_t n, size_t m) { return GUARDED(__libc_calloc(n, m)); }
void *realloc(void *p, size_t n) { return GUARDED(__libc_realloc(p, n)); }
void *memalign(size_t a, size_t n) { return GUARDED(__libc_memalign(a, n)); }
void *aligned_alloc(size_t a, size_t n) { return GUARDED(__libc_memalign(a, n)); }
void free(void *p)
{
	in_malloc++;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__libc_free(p);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	in_malloc--;
}
int posix_memalign(void **out, size_t a, size_t n)
{
	void *p = GUARDED(__libc_memalign(a, n));

	if (p == NULL)
		return ENOMEM;
	*out = p;
	return 0;
}

/* --- the children */

static bool shim_checks;
static int grpc_fd = -1;        /* gRPC's connection to the listener */
static int grpc_port;           /* its local port, as the parent sees it */

/* The TCP port a descriptor is bound to (gRPC's sockets are IPv6, dual
 * stack), or 0 if it is no IP socket. Async-signal-safe. */
static int local_port(int fd)
{
	struct sockaddr_storage a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) != 0)
		return 0;
	if (a.ss_family == AF_INET)
		return ntohs(((struct sockaddr_in *)&a)->sin_port);
	if (a.ss_family == AF_INET6)
		return ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
	return 0;
}

/* What every child does, at once: 0, or 3 when gRPC's connection reached it
 * alive although the shim should have cut it off. Async-signal-safe. */
static int child_status(void)
{
	if (shim_checks && local_port(grpc_fd) == grpc_port)
		return 3;
	return 0;
}

static volatile sig_atomic_t handler_forks, handler_skips, handler_failures, last_bad_status;

static pid_t main_tid;

static void on_alarm(int sig)
{
	int err = errno, status;
	pid_t pid;

	/* Only the main thread goes into the shim's locked code. */
	if (gettid() != main_tid) {
		tgkill(getpid(), main_tid, SIGALRM);
		errno = err;
		return;
	}
	if (handler_forks >= HANDLER_FORKS) /* enough: the main thread goes on to the end */
		return;
	if (in_malloc) {
		handler_skips++;
		return;
	}
	pid = fork();
	if (pid == 0)
		_exit(child_status());
	if (pid < 0 || waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		handler_failures++;
		last_bad_status = pid < 0 ? -1 : status;
	}
	handler_forks++;
	errno = err;
}

static int clone_child(void *unused)
{
	return child_status();
}

/* The main thread's fork; its child's status, or 100 + signal, or 99. */
static int main_fork(void)
{
	static char stack[64 * 1024] __attribute__((aligned(16)));
	int status;
	pid_t pid = clone(clone_child, stack + sizeof(stack), SIGCHLD, NULL);

	if (pid < 0)
		return 99;
	while (waitpid(pid, &status, 0) != pid)
		if (errno != EINTR)
			return 99;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

static const char *const methods[METHODS] = {
	"/probe.Svc/M0", "/probe.Svc/M1", "/probe.Svc/M2",  "/probe.Svc/M3",  "/probe.Svc/M4",  "/probe.Svc/M5",
	"/probe.Svc/M6", "/probe.Svc/M7", "/probe.Svc/M8",  "/probe.Svc/M9",  "/probe.Svc/M10", "/probe.Svc/M11",
	"/probe.Svc/M12", "/probe.Svc/M13", "/probe.Svc/M14", "/probe.Svc/M15",
};

static int fail(const char *why)
{
	printf("RESULT fail: %s\n", why);
	return 1;
}

/* Has `channel` connect to `listener` and returns gRPC's socket, found by the
 * port the listener saw. The accepted end stays open for the whole run. */
static int connect_channel(int listener, grpc_channel *channel)
{
	struct sockaddr_in peer;
	socklen_t len = sizeof(peer);
	struct pollfd p = { .fd = listener, .events = POLLIN };
	int conn;

	grpc_channel_check_connectivity_state(channel, 1);
	if (poll(&p, 1, 10000) != 1 || (conn = accept(listener, (struct sockaddr *)&peer, &len)) < 0)
		return -1;
	grpc_port = ntohs(peer.sin_port);
	for (int fd = 3; fd < 1024; fd++)
		if (fd != conn && local_port(fd) == grpc_port)
			return fd;
	return -1;
}

int main(void)
{
	const char *s = getenv("FDPROBE_SHIM");
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	struct itimerval every = { { 0, FORK_EVERY_US }, { 0, FORK_EVERY_US } }, stop = { { 0, 0 }, { 0, 0 } };
	struct sigaction sa = { .sa_handler = on_alarm, .sa_flags = SA_RESTART };
	grpc_channel_credentials *creds;
	grpc_channel *keep;
	char target[64];
	int listener, rc, main_forks = 0;
	long i;

	setvbuf(stdout, NULL, _IONBF, 0);
	shim_checks = s != NULL && strcmp(s, "1") == 0;
	main_tid = gettid();
	listener = socket(AF_INET, SOCK_STREAM, 0);
	if (listener < 0 || bind(listener, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    getsockname(listener, (struct sockaddr *)&addr, &len) != 0 || listen(listener, 16) != 0)
		return fail("listener");
	snprintf(target, sizeof(target), "ipv4:127.0.0.1:%d", ntohs(addr.sin_port));

	grpc_init();
	creds = grpc_insecure_credentials_create();
	keep = grpc_channel_create(target, creds, NULL);
	if ((grpc_fd = connect_channel(listener, keep)) < 0)
		return fail("gRPC's connection to the listener not found");
	printf("gRPC's connection: fd %d, port %d\n", grpc_fd, grpc_port);

	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	for (i = 0; i < ROUNDS && handler_forks < HANDLER_FORKS; i++) {
		grpc_channel *c = grpc_channel_create(target, creds, NULL);

		if (c == NULL)
			return fail("grpc_channel_create");
		/* Each registration, and the channel's destruction, is a section
		 * under the shim's channel-table lock. */
		for (int m = 0; m < METHODS; m++)
			if (grpc_channel_register_call(c, methods[m], NULL, NULL) == NULL)
				return fail("grpc_channel_register_call");
		grpc_channel_destroy(c);
		if ((i + 1) % CLONE_EVERY == 0) {
			main_forks++;
			if ((rc = main_fork()) != 0) {
				printf("main thread's child: status %d\n", rc);
				return fail("a child forked by the main thread failed");
			}
		}
	}
	setitimer(ITIMER_REAL, &stop, NULL);
	printf("%ld rounds, %d forks by the main thread, %d by the handler (%d skipped inside malloc)\n", i,
	       main_forks, (int)handler_forks, (int)handler_skips);
	if (handler_failures > 0) {
		printf("%d of the handler's children failed; last status %d\n", (int)handler_failures,
		       (int)last_bad_status);
		return fail(shim_checks ? "a child of the handler's failed (or kept gRPC's connection alive)"
					: "a child of the handler's failed");
	}
	if (handler_forks < HANDLER_FORKS)
		return fail("too few signals arrived to tell");
	grpc_channel_destroy(keep);
	grpc_channel_credentials_release(creds);
	grpc_shutdown();
	close(listener);
	printf("RESULT ok\n");
	return 0;
}
