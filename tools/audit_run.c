#include "audit_run.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "audit_report.h"
#include "cli.h"

/* Signals someone may send to this process meaning the command: passed on. */
static const int forwarded[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2, SIGALRM };

static volatile sig_atomic_t child_pid;

static void forward(int sig, siginfo_t *info, void *context)
{
	(void)context;
	/* A signal from the terminal (Ctrl-C, hang-up) already went to the
	 * command, which is in the same process group; one sent to this process
	 * by kill() is meant for the command too, so it gets a copy. Either way
	 * this process lives on to wait and report. */
	if (info->si_code != SI_KERNEL && child_pid > 0)
		kill(child_pid, sig);
}

/* Where the inheritable copy of the log's descriptor goes: high, out of the
 * way of programs that take the lowest free numbers, as the shim's own. */
#define LOG_FD_FLOOR 100

/* A private file for the shim's lines: mkstemp makes it mode 0600, owned by
 * us, under a name nobody can guess; the shim adds O_NOFOLLOW. Opened for
 * appending: every process of the command writes to it. */
static int make_log(char **path)
{
	const char *dir = getenv("TMPDIR");
	int fd;

	if (dir == NULL || *dir == '\0')
		dir = "/tmp";
	if (asprintf(path, "%s/grpc-forksafe-audit.XXXXXX", dir) < 0) {
		cli_say("out of memory");
		return -1;
	}
	if ((fd = mkostemp(*path, O_CLOEXEC | O_APPEND)) < 0)
		cli_say("cannot create the audit log in %s: %s (set TMPDIR to a writable directory)", dir,
			strerror(errno));
	return fd;
}

/* Starts argv in a child. A close-on-exec pipe carries execvp's errno back,
 * so "cannot run" is told apart from a command that ran and failed.
 * Returns the child's pid, or -(exit code) after one message. */
static pid_t start(char **argv, const sigset_t *old_mask)
{
	int pipefd[2], err;
	ssize_t n;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) != 0 || (pid = fork()) < 0) {
		cli_say("cannot start %s: %s", argv[0], strerror(errno));
		return -EXIT_WRAPPER;
	}
	if (pid == 0) {
		sigprocmask(SIG_SETMASK, old_mask, NULL);
		execvp(argv[0], argv);
		err = errno;
		if (write(pipefd[1], &err, sizeof(err)) < 0) {
		}
		_exit(EXIT_CANNOT_RUN);
	}
	close(pipefd[1]);
	while ((n = read(pipefd[0], &err, sizeof(err))) < 0 && errno == EINTR)
		;
	close(pipefd[0]);
	if (n == (ssize_t)sizeof(err)) {
		waitpid(pid, NULL, 0);
		return -cli_exec_failed(argv[0], err);
	}
	return pid;
}

/* Read through a description of its own: the command's processes share the
 * one it writes through, and a straggler's append would move our offset. */
static void report(int fd)
{
	char self[64];
	FILE *log;
	int rfd;

	snprintf(self, sizeof(self), "/proc/self/fd/%d", fd);
	if ((rfd = open(self, O_RDONLY | O_CLOEXEC)) < 0 || (log = fdopen(rfd, "r")) == NULL) {
		cli_say("cannot read the audit log: %s", strerror(errno));
		return;
	}
	fflush(stdout);
	audit_report(log, stderr);
	fclose(log);
	close(fd);
}

/* Ends this process the way the command ended. */
static _Noreturn void leave_like(int status)
{
	sigset_t set;
	int sig;

	if (WIFEXITED(status))
		exit(WEXITSTATUS(status));
	sig = WTERMSIG(status);
	/* The command dumped its core already if it was going to; not twice. */
	setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 });
	signal(sig, SIG_DFL);
	sigemptyset(&set);
	sigaddset(&set, sig);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	raise(sig);
	exit(128 + sig); /* a signal that does not kill by default: as a shell would say it */
}

_Noreturn void audit_run(char **argv)
{
	struct sigaction sa;
	sigset_t block, old_mask;
	char *path = NULL, number[16];
	int fd, inherited, status;
	pid_t pid;

	if ((fd = make_log(&path)) < 0)
		exit(EXIT_WRAPPER);
	/* The shim writes to an inherited descriptor, GRPC_FORKSAFE_LOG_FD: a
	 * process that changed user (a worker dropping root) cannot open a
	 * private file of ours, but writes to what it inherited. It is not closed
	 * on exec, so that programs the command execs inherit it too; the path
	 * is for processes that closed it. A mark inherited from the caller
	 * would silence the shim's complaint that neither can be used. */
	if ((inherited = fcntl(fd, F_DUPFD, LOG_FD_FLOOR)) < 0) {
		cli_say("cannot duplicate the audit log's descriptor: %s", strerror(errno));
		unlink(path);
		exit(EXIT_WRAPPER);
	}
	snprintf(number, sizeof(number), "%d", inherited);
	if (setenv("GRPC_FORKSAFE_LOG_FD", number, 1) != 0 || setenv("GRPC_FORKSAFE_LOG_FILE", path, 1) != 0 ||
	    unsetenv("GRPC_FORKSAFE_LOG_WARNED") != 0) {
		cli_say("cannot set GRPC_FORKSAFE_LOG_FD and GRPC_FORKSAFE_LOG_FILE: %s", strerror(errno));
		unlink(path);
		exit(EXIT_WRAPPER);
	}

	/* Handlers are installed only once the child exists, and the signals
	 * are held until then: the child starts with the dispositions we got. */
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaddset(&block, forwarded[i]);
	sigprocmask(SIG_BLOCK, &block, &old_mask);
	if ((pid = start(argv, &old_mask)) < 0) {
		unlink(path);
		exit(-pid);
	}
	close(inherited); /* the command has it; ours is `fd` */
	child_pid = pid;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = forward;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(forwarded) / sizeof(forwarded[0]); i++)
		sigaction(forwarded[i], &sa, NULL);
	sigprocmask(SIG_SETMASK, &old_mask, NULL);

	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			cli_say("waiting for %s: %s", argv[0], strerror(errno));
			unlink(path);
			exit(EXIT_WRAPPER);
		}
	child_pid = 0;

	report(fd);
	unlink(path);
	free(path);
	leave_like(status);
}
