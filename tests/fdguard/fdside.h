/* Descriptors opened by "gRPC's" code (fdside.c), for the probe. */
#ifndef FDSIDE_H
#define FDSIDE_H

int side_socketpair(int sv[2]);
int side_socket(int domain, int type);
int side_accept(int fd);
int side_eventfd(void);
int side_dupfd(int fd);
int side_close(int fd);

#endif
