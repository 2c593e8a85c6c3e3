/*
 * gRPC 1.51's "posix_event_engine_enable_polling" experiment (on by default
 * only in builds without NDEBUG, Debian's among them) parks one EventEngine
 * thread-pool thread in a 24-hour epoll_wait that nothing wakes for a fork.
 * The pool can then never drain before a fork, and without draining it a
 * child inherits a pool whose threads it does not have. In this gRPC the
 * EventEngine poller serves nothing unless the event_engine_client or
 * event_engine_listener experiments are on, so the shim answers "off" for
 * it, as a release build would, unless GRPC_EXPERIMENTS names it.
 *
 * libgrpc asks grpc_core::IsExperimentEnabled(id) through its PLT; the id of
 * the experiment is looked up by name in core's exported metadata table.
 */
#include "experiments.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "libc.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))

static const char polling[] = "posix_event_engine_enable_polling";

/* grpc_core::ExperimentMetadata in gRPC 1.51. */
struct experiment_metadata {
	const char *name;
	const char *description;
	bool default_value;
};

static bool (*real_is_enabled)(size_t);
static size_t turned_off = SIZE_MAX;

/* True when GRPC_EXPERIMENTS names the experiment, on or off: the user decides. */
static bool user_named(const char *name)
{
	const char *list = getenv("GRPC_EXPERIMENTS");

	return list != NULL && strstr(list, name) != NULL;
}

void fs_experiments_init(void)
{
	const struct experiment_metadata *table;
	const ElfW(Sym) *sym = NULL;
	Dl_info info;
	size_t n;

	*(void **)&real_is_enabled = fs_next_symbol("_ZN9grpc_core19IsExperimentEnabledEm");
	table = fs_next_symbol("_ZN9grpc_core21g_experiment_metadataE");
	if (real_is_enabled == NULL || table == NULL || fs_cfg.mode == FS_MODE_OFF || user_named(polling))
		return;
	/* The table's size comes from its symbol, so the search stays inside it. */
	if (dladdr1(table, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL)
		return;
	n = sym->st_size / sizeof(*table);
	for (size_t i = 0; i < n; i++) {
		if (table[i].name != NULL && strcmp(table[i].name, polling) == 0) {
			turned_off = i;
			fs_log(FS_DEBUG, "gRPC experiment %s turned off: its poller thread blocks fork", polling);
			return;
		}
	}
}

EXPORT bool _ZN9grpc_core19IsExperimentEnabledEm(size_t id);
EXPORT bool _ZN9grpc_core19IsExperimentEnabledEm(size_t id)
{
	if (real_is_enabled == NULL) {
		*(void **)&real_is_enabled = fs_next_symbol("_ZN9grpc_core19IsExperimentEnabledEm");
		if (real_is_enabled == NULL)
			return false;
	}
	if (id == turned_off)
		return false;
	return real_is_enabled(id);
}
