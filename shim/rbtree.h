/* libbsd's red-black trees, with the one piece its header leaves undefined. */
#ifndef FORKSAFE_RBTREE_H
#define FORKSAFE_RBTREE_H

#include <bsd/sys/tree.h>

/* RB_GENERATE_STATIC needs __unused, which libbsd's cdefs deliberately does
 * not define (glibc has a struct member of that name). */
#define FS_RB_GENERATE_STATIC(name, type, field, cmp)                                                       \
	RB_GENERATE_INTERNAL(name, type, field, cmp, __attribute__((unused)) static)

#endif
