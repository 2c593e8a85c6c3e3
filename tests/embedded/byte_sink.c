/*
 * byte-sink PORT_FILE LOG: a TCP server on 127.0.0.1 (any free port, written
 * to PORT_FILE once it accepts connections) that reads everything every
 * client sends and, when the connection ends, logs one line to LOG:
 *   conn peer=PORT bytes=N first="...the first 48 bytes, escaped..."
 * It is the "unrelated server" a forked child talks to besides gRPC: any
 * byte gRPC writes into the wrong descriptor shows up here.
 *
 * SIGTERM ends it. Connections still open then are read to the end of what
 * their peers sent (the kernel holds it already: a peer's write on loopback
 * is delivered before it returns) and logged too, so the log is complete
 * once this process has exited.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CONNS 64
#define SHOWN 48

struct conn {
	int fd, peer;
	unsigned long bytes;
	unsigned char first[SHOWN];
};

static struct conn conns[MAX_CONNS];
static int nconns;
static FILE *logf;

static void log_conn(const struct conn *c)
{
	size_t shown = c->bytes < SHOWN ? c->bytes : SHOWN;

	fprintf(logf, "conn peer=%d bytes=%lu first=\"", c->peer, c->bytes);
	for (size_t i = 0; i < shown; i++) {
		unsigned char ch = c->first[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			fputc(ch, logf);
		else
			fprintf(logf, "\\x%02x", ch);
	}
	fprintf(logf, "\"\n");
	fflush(logf);
}

/* Reads what is there; true when the connection has ended (EOF or error). */
static int drain(struct conn *c, int flags)
{
	unsigned char buf[4096];

	for (;;) {
		ssize_t n = recv(c->fd, buf, sizeof(buf), flags);

		if (n > 0) {
			for (ssize_t i = 0; i < n && c->bytes + i < SHOWN; i++)
				c->first[c->bytes + i] = buf[i];
			c->bytes += (unsigned long)n;
			if (!(flags & MSG_DONTWAIT))
				return 0;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return 1;
	}
}

/* Takes every connection waiting in the listen queue. */
static void accept_all(int lfd)
{
	while (nconns < MAX_CONNS) {
		struct sockaddr_in peer;
		socklen_t plen = sizeof(peer);
		int fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_CLOEXEC);

		if (fd < 0)
			return;
		conns[nconns++] = (struct conn){ .fd = fd, .peer = ntohs(peer.sin_port) };
	}
}

static void finish(int i)
{
	log_conn(&conns[i]);
	close(conns[i].fd);
	conns[i] = conns[--nconns];
}

int main(int argc, char **argv)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(sin);
	sigset_t term;
	int lfd, sfd, one = 1;
	FILE *pf;

	if (argc != 3) {
		fprintf(stderr, "usage: byte-sink PORT_FILE LOG\n");
		return 2;
	}
	if ((logf = fopen(argv[2], "w")) == NULL) {
		perror(argv[2]);
		return 1;
	}
	/* SIGTERM arrives through a descriptor, in the same poll as the sockets. */
	sigemptyset(&term);
	sigaddset(&term, SIGTERM);
	sigprocmask(SIG_BLOCK, &term, NULL);
	sfd = signalfd(-1, &term, SFD_CLOEXEC);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (sfd < 0 || lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
	    bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 16) != 0 ||
	    getsockname(lfd, (struct sockaddr *)&sin, &len) != 0) {
		perror("byte-sink");
		return 1;
	}
	if ((pf = fopen(argv[1], "w")) == NULL || fprintf(pf, "%d\n", ntohs(sin.sin_port)) < 0 || fclose(pf) != 0) {
		perror(argv[1]);
		return 1;
	}
	for (;;) {
		struct pollfd p[MAX_CONNS + 2];

		p[0] = (struct pollfd){ .fd = sfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = lfd, .events = nconns < MAX_CONNS ? POLLIN : 0 };
		for (int i = 0; i < nconns; i++)
			p[i + 2] = (struct pollfd){ .fd = conns[i].fd, .events = POLLIN };
		if (poll(p, (nfds_t)nconns + 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			perror("byte-sink: poll");
			return 1;
		}
		if (p[0].revents)
			break;
		/* Backwards: finish() moves the last connection into slot i. */
		for (int i = nconns - 1; i >= 0; i--)
			if (p[i + 2].revents && drain(&conns[i], 0))
				finish(i);
		if (p[1].revents & POLLIN)
			accept_all(lfd);
	}
	/* A connection the kernel completed but this loop had not yet taken
	 * counts as much as any other. */
	accept_all(lfd);
	for (int i = nconns - 1; i >= 0; i--) {
		drain(&conns[i], MSG_DONTWAIT);
		finish(i);
	}
	return fclose(logf) == 0 ? 0 : 1;
}
