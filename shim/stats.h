/* Counters for the summary a process logs at exit (level info). */
#ifndef FORKSAFE_STATS_H
#define FORKSAFE_STATS_H

#include <stdatomic.h>

struct fs_stats {
	atomic_ulong forks;        /* forks this process made that the shim handled */
	atomic_ulong channels;     /* channels tracked in this process */
	atomic_ulong replaced;     /* inherited channels given a stand-in here */
	atomic_ulong neutralised;  /* inherited gRPC descriptors neutralised here */
};

/* Relaxed increments only: cheap, and safe on the fork path. */
extern struct fs_stats fs_stats;

#define fs_stat_add(field, n) atomic_fetch_add_explicit(&fs_stats.field, (n), memory_order_relaxed)

/* Fork path (child): the copied counts were the parent's. */
void fs_stats_child(void);

#endif
