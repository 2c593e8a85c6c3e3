/* fork-exec N PROGRAM [ARGS...]: forks N children one after another, each of
 * which execs PROGRAM at once; waits for each. Prints one line saying how
 * many exited with 0; exits 0 if all did, 1 otherwise. The tests run it
 * under the shim with a log file that cannot be opened: the complaint must
 * come once, from this process, and not again from a child or a program it
 * runs. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	int n, ok = 0;

	if (argc < 3 || (n = atoi(argv[1])) <= 0 || n > 1000) {
		fprintf(stderr, "usage: fork-exec N PROGRAM [ARGS...] (N from 1 to 1000)\n");
		return 64;
	}
	for (int i = 0; i < n; i++) {
		int status;
		pid_t pid = fork();

		if (pid < 0) {
			perror("fork");
			break;
		}
		if (pid == 0) {
			execv(argv[2], argv + 2);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
			ok++;
	}
	printf("%d of %d children exited with 0\n", ok, n);
	return ok == n ? 0 : 1;
}
