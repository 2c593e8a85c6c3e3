#include "stats.h"

#include "config.h"
#include "forkpath.h"
#include "log.h"
#include "quiesce.h"

struct fs_stats fs_stats;

/* A child starts with the parent's counts copied: they describe the parent.
 * Each process reports only what happened in it, so the child's are reset on
 * the fork path (see fs_stats_child). */
void fs_stats_child(void)
{
	atomic_store_explicit(&fs_stats.forks, 0, memory_order_relaxed);
	atomic_store_explicit(&fs_stats.channels, 0, memory_order_relaxed);
	atomic_store_explicit(&fs_stats.replaced, 0, memory_order_relaxed);
	atomic_store_explicit(&fs_stats.neutralised, 0, memory_order_relaxed);
}

__attribute__((destructor)) static void report(void)
{
	if (fs_cfg.mode == FS_MODE_OFF || FS_INFO > fs_log_level)
		return;
	if (fs_stats.channels == 0 && fs_stats.replaced == 0 && fs_stats.neutralised == 0)
		return; /* gRPC was not used here: a shell's summary would be noise */
	fs_log(FS_INFO,
	       "summary: %lu forks, %lu channels tracked, %lu inherited channels given a stand-in, %lu "
	       "inherited gRPC fds neutralised, %lu quiesce waits (longest %lu ms) (generation %u)",
	       (unsigned long)fs_stats.forks, (unsigned long)fs_stats.channels,
	       (unsigned long)fs_stats.replaced, (unsigned long)fs_stats.neutralised, fs_quiesce_waits(),
	       fs_quiesce_longest_ms(), fs_generation);
}
