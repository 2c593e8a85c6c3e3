/*
 * ares-probe: a program that resolves names with c-ares itself, beside a gRPC
 * channel whose resolver uses c-ares too. Both send their queries to a DNS
 * "server" of the probe's own (a UDP socket that only listens), which tells
 * the two c-ares sockets apart by the name asked for. After a fork the
 * child's copy of the program's own c-ares socket must be intact; with
 * FDPROBE_SHIM=1 gRPC's must be a dead placeholder. Prints "RESULT ok" and
 * exits 0, or "RESULT fail: why" and exits 1.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

static int fail(const char *why)
{
	printf("RESULT fail: %s\n", why);
	return 1;
}

/* The UDP port a descriptor is bound to, or 0 if it is no IPv4 socket. */
static int udp_port(int fd)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);

	if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET)
		return 0;
	return ntohs(a.sin_port);
}

static int fd_with_port(int port)
{
	for (int fd = 3; fd < 1024; fd++)
		if (udp_port(fd) == port)
			return fd;
	return -1;
}

/* Waits for a query whose name contains `label` (DNS wire form); returns the
 * port it came from, or 0. */
static int query_from(int dns, const char *label)
{
	char buf[512];
	struct sockaddr_in from;

	for (;;) {
		struct pollfd p = { .fd = dns, .events = POLLIN };
		socklen_t len = sizeof(from);
		ssize_t n;

		if (poll(&p, 1, 10000) != 1)
			return 0;
		n = recvfrom(dns, buf, sizeof(buf), 0, (struct sockaddr *)&from, &len);
		if (n > 12 && memmem(buf + 12, (size_t)n - 12, label, strlen(label)) != NULL)
			return ntohs(from.sin_port);
	}
}

static void ignore_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
}

int main(void)
{
	const char *s = getenv("FDPROBE_SHIM");
	bool shim_checks = s != NULL && strcmp(s, "1") == 0;
	struct sockaddr_in addr = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(addr);
	char target[128], servers[64];
	grpc_channel_credentials *creds;
	grpc_channel *channel;
	ares_channel own;
	int dns, grpc_port, own_port, grpc_fd, own_fd, status;
	pid_t pid;

	setvbuf(stdout, NULL, _IONBF, 0);
	dns = socket(AF_INET, SOCK_DGRAM, 0);
	if (dns < 0 || bind(dns, (struct sockaddr *)&addr, sizeof(addr)) != 0 ||
	    getsockname(dns, (struct sockaddr *)&addr, &len) != 0)
		return fail("DNS socket");

	grpc_init();
	snprintf(target, sizeof(target), "dns://127.0.0.1:%d/grpcside.example.test:443", ntohs(addr.sin_port));
	creds = grpc_insecure_credentials_create();
	channel = grpc_channel_create(target, creds, NULL);
	grpc_channel_check_connectivity_state(channel, 1); /* starts resolving */
	if ((grpc_port = query_from(dns, "\x08grpcside")) == 0)
		return fail("gRPC's resolver sent no query");

	if (ares_library_init(ARES_LIB_INIT_ALL) != ARES_SUCCESS || ares_init(&own) != ARES_SUCCESS)
		return fail("ares_init");
	snprintf(servers, sizeof(servers), "127.0.0.1:%d", ntohs(addr.sin_port));
	if (ares_set_servers_ports_csv(own, servers) != ARES_SUCCESS)
		return fail("ares_set_servers_ports_csv");
	ares_query(own, "ownside.example.test", ns_c_in, ns_t_a, ignore_answer, NULL);
	if ((own_port = query_from(dns, "\x07ownside")) == 0)
		return fail("the program's own c-ares sent no query");
	grpc_fd = fd_with_port(grpc_port);
	own_fd = fd_with_port(own_port);
	printf("gRPC's c-ares socket: fd %d port %d; the program's: fd %d port %d\n", grpc_fd, grpc_port, own_fd,
	       own_port);
	if (grpc_fd < 0 || own_fd < 0 || grpc_fd == own_fd)
		return fail("cannot tell the two c-ares sockets apart");

	pid = fork();
	if (pid == 0) {
		if (udp_port(own_fd) != own_port)
			_exit(2); /* the program's own socket was cut off */
		if (shim_checks && udp_port(grpc_fd) == grpc_port)
			_exit(3); /* gRPC's reached the child alive */
		_exit(0);
	}
	if (pid < 0 || waitpid(pid, &status, 0) != pid)
		return fail("fork");
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		printf("child status %d\n", status);
		return fail(WIFEXITED(status) && WEXITSTATUS(status) == 2
				    ? "the program's own c-ares socket was cut off in the child"
				    : "gRPC's c-ares socket reached the child alive");
	}
	if (udp_port(own_fd) != own_port || udp_port(grpc_fd) != grpc_port)
		return fail("the parent's sockets changed");
	ares_destroy(own);
	ares_library_cleanup();
	grpc_channel_destroy(channel);
	grpc_channel_credentials_release(creds);
	grpc_shutdown();
	printf("RESULT ok\n");
	return 0;
}
