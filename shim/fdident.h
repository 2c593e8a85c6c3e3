/* What a descriptor number refers to, beyond its device and inode: epoll sets
 * and eventfds all share one anonymous inode, so fstat cannot tell one from
 * another. */
#ifndef FORKSAFE_FDIDENT_H
#define FORKSAFE_FDIDENT_H

#include <stdint.h>

/* For an object on an anonymous inode, its type (eventfd, epoll set, other)
 * as a non-zero value, read from /proc/self/fd: an eventfd put where an epoll
 * set was is told, another epoll set is not. 0 for any other object, or when
 * /proc cannot be read. System calls only: no allocation, async-signal-safe. */
uint64_t fs_fdident_anon(int fd);

#endif
