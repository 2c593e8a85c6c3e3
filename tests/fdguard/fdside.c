/* The "gRPC" side of fd-probe: a shared object the tests name in
 * GRPC_FORKSAFE_OBJECTS, so that every descriptor it opens is taken for
 * gRPC's (embedded), while the probe program's own stay the application's. */
#include <fcntl.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

int side_socketpair(int sv[2])
{
	return socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
}

int side_socket(int domain, int type)
{
	return socket(domain, type, 0);
}

int side_accept(int fd)
{
	return accept(fd, NULL, NULL);
}

int side_eventfd(void)
{
	return eventfd(0, 0);
}

int side_dupfd(int fd)
{
	return fcntl(fd, F_DUPFD, 0);
}

int side_close(int fd)
{
	return close(fd);
}
