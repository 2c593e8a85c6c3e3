/* A gRPC-shaped program: creates a channel, forks, and both processes make a
 * call on it. Linked against the stand-in libgrpc, so it prints which channel
 * each call reached. */
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/grpc.h>

static void call(grpc_channel *channel)
{
	grpc_slice method;

	memset(&method, 0, sizeof(method));
	grpc_channel_create_call(channel, NULL, 0, NULL, method, NULL, (gpr_timespec){ 0, 0, GPR_CLOCK_MONOTONIC },
				 NULL);
}

int main(void)
{
	grpc_channel *channel;
	pid_t pid;
	int status;

	grpc_init();
	channel = grpc_channel_create("localhost:1", NULL, NULL);
	pid = fork();
	if (pid == 0) {
		call(channel);
		_exit(0);
	}
	waitpid(pid, &status, 0);
	call(channel);
	grpc_channel_destroy(channel);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
