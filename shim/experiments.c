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
 *
 * It asks often (some 8 times per unary RPC), so the hook keeps each answer:
 * core computes all of them once, into a static it never changes again
 * (ForceEnableExperiment refuses once they are loaded), so an answer, once
 * given, is final. Answers are only kept once fs_experiments_init has decided
 * what to turn off: an answer given before (by a constructor, say) is passed on
 * but not kept.
 */
#include "experiments.h"

#include <dlfcn.h>
#include <elf.h>
#include <link.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "grpclib.h"
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

typedef bool (*is_enabled_fn)(size_t);
static _Atomic is_enabled_fn real_is_enabled;
static _Atomic size_t turned_off = SIZE_MAX;

/* Answers given, by id (gRPC 1.51 has 13 experiments): 0 or 1, or NOT_YET.
 * Filled only once `settled`. */
#define KEPT 64
#define NOT_YET 2
static _Atomic unsigned char answers[KEPT] = { [0 ... KEPT - 1] = NOT_YET };
static atomic_bool settled;

/* True when GRPC_EXPERIMENTS names the experiment, on or off: the user decides. */
static bool user_named(const char *name)
{
	const char *list = getenv("GRPC_EXPERIMENTS");

	return list != NULL && strstr(list, name) != NULL;
}

static void find_turned_off(void)
{
	const struct experiment_metadata *table;
	const ElfW(Sym) *sym = NULL;
	is_enabled_fn real;
	Dl_info info;
	size_t n;

	*(void **)&real = fs_grpc_symbol("_ZN9grpc_core19IsExperimentEnabledEm");
	atomic_store_explicit(&real_is_enabled, real, memory_order_relaxed);
	table = fs_grpc_symbol("_ZN9grpc_core21g_experiment_metadataE");
	if (real == NULL || table == NULL || !fs_mode_acts(fs_cfg.mode) || user_named(polling))
		return;
	/* The table's size comes from its symbol, so the search stays inside it. */
	if (dladdr1(table, &info, (void **)&sym, RTLD_DL_SYMENT) == 0 || sym == NULL)
		return;
	n = sym->st_size / sizeof(*table);
	for (size_t i = 0; i < n; i++) {
		if (table[i].name != NULL && strcmp(table[i].name, polling) == 0) {
			atomic_store_explicit(&turned_off, i, memory_order_relaxed);
			fs_log(FS_DEBUG, "gRPC experiment %s turned off: its poller thread blocks fork", polling);
			return;
		}
	}
}

void fs_experiments_init(void)
{
	find_turned_off();
	atomic_store_explicit(&settled, true, memory_order_release);
}

static __attribute__((noinline, cold)) bool ask(size_t id)
{
	/* Read before turned_off: once settled, turned_off is final. */
	bool keep = atomic_load_explicit(&settled, memory_order_acquire);
	is_enabled_fn real = atomic_load_explicit(&real_is_enabled, memory_order_relaxed);
	bool on;

	if (real == NULL) {
		*(void **)&real = fs_grpc_symbol("_ZN9grpc_core19IsExperimentEnabledEm");
		if (real == NULL)
			return false;
		atomic_store_explicit(&real_is_enabled, real, memory_order_relaxed);
	}
	on = id != atomic_load_explicit(&turned_off, memory_order_relaxed) && real(id);
	if (keep && id < KEPT)
		atomic_store_explicit(&answers[id], on, memory_order_relaxed);
	return on;
}

EXPORT bool _ZN9grpc_core19IsExperimentEnabledEm(size_t id);
EXPORT bool _ZN9grpc_core19IsExperimentEnabledEm(size_t id)
{
	if (__builtin_expect(id < KEPT, 1)) {
		unsigned char a = atomic_load_explicit(&answers[id], memory_order_relaxed);

		if (__builtin_expect(a < NOT_YET, 1))
			return a;
	}
	return ask(id);
}
