#include "grpclib.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "libc.h"
#include "log.h"
#include "owner.h"

struct fs_grpc fs_grpc;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static _Atomic int state = FS_GRPC_UNRESOLVED;
/* libgrpc loaded RTLD_LOCAL, once found (resolve_once); else NULL. */
static void *_Atomic local_lib;

/* gRPC core versions this shim was tested with ("29.0.0" is gRPC 1.51). The
 * fork path leans on what core does in its fork hooks, so an unknown core is
 * passed through untouched unless the user opts in. */
static const char *const tested_core_majors[] = { "29." };

struct sym {
	const char *name;
	void **slot;
	bool required;
};

#define SYM(field, name, req) { name, (void **)&fs_grpc.field, req }
static const struct sym syms[] = {
	SYM(init, "grpc_init", true),
	SYM(shutdown, "grpc_shutdown", false),
	SYM(is_initialized, "grpc_is_initialized", true),
	SYM(version_string, "grpc_version_string", true),
	SYM(channel_create, "grpc_channel_create", true),
	SYM(channel_create_from_fd, "grpc_channel_create_from_fd", false),
	SYM(channel_destroy, "grpc_channel_destroy", true),
	SYM(channel_create_call, "grpc_channel_create_call", true),
	SYM(channel_create_registered_call, "grpc_channel_create_registered_call", true),
	SYM(channel_register_call, "grpc_channel_register_call", true),
	SYM(channel_credentials_release, "grpc_channel_credentials_release", true),
	SYM(server_add_channel_from_fd, "grpc_server_add_channel_from_fd", false),
	SYM(lame_client_channel_create, "grpc_lame_client_channel_create", true),
	SYM(channel_check_connectivity_state, "grpc_channel_check_connectivity_state", false),
	SYM(channel_watch_connectivity_state, "grpc_channel_watch_connectivity_state", false),
	SYM(channel_num_external_connectivity_watchers, "grpc_channel_num_external_connectivity_watchers", false),
	SYM(channel_support_connectivity_watcher, "grpc_channel_support_connectivity_watcher", false),
	SYM(channel_get_target, "grpc_channel_get_target", false),
	SYM(channel_get_info, "grpc_channel_get_info", false),
	SYM(channel_reset_connect_backoff, "grpc_channel_reset_connect_backoff", false),
	SYM(call_ref, "grpc_call_ref", false),
	SYM(call_unref, "grpc_call_unref", false),
	SYM(cq_next, "grpc_completion_queue_next", true),
	SYM(cq_pluck, "grpc_completion_queue_pluck", true),
	SYM(cq_shutdown, "grpc_completion_queue_shutdown", true),
	SYM(cq_destroy, "grpc_completion_queue_destroy", true),
	SYM(cq_completion_type, "_Z27grpc_get_cq_completion_typeP21grpc_completion_queue", false),
	SYM(cq_create, "grpc_completion_queue_create", false),
	SYM(cq_create_for_next, "grpc_completion_queue_create_for_next", false),
	SYM(cq_create_for_pluck, "grpc_completion_queue_create_for_pluck", false),
	SYM(cq_create_for_callback, "grpc_completion_queue_create_for_callback", false),
	SYM(cq_factory_lookup, "grpc_completion_queue_factory_lookup", false),
	SYM(cq_can_listen, "_Z18grpc_cq_can_listenP21grpc_completion_queue", false),
	SYM(cq_pollset, "_Z15grpc_cq_pollsetP21grpc_completion_queue", false),
	SYM(insecure_credentials_create, "grpc_insecure_credentials_create", false),
	SYM(local_credentials_create, "grpc_local_credentials_create", false),
	SYM(ssl_credentials_create, "grpc_ssl_credentials_create", false),
	SYM(ssl_credentials_create_ex, "grpc_ssl_credentials_create_ex", false),
	SYM(composite_channel_credentials_create, "grpc_composite_channel_credentials_create", false),
	SYM(composite_call_credentials_create, "grpc_composite_call_credentials_create", false),
	SYM(access_token_credentials_create, "grpc_access_token_credentials_create", false),
	SYM(metadata_credentials_create_from_plugin, "grpc_metadata_credentials_create_from_plugin", false),
	SYM(google_default_credentials_create, "grpc_google_default_credentials_create", false),
	SYM(call_credentials_release, "grpc_call_credentials_release", false),
	SYM(now, "gpr_now", false),
	SYM(prefork, "_Z12grpc_preforkv", true),
	SYM(postfork_parent, "_Z20grpc_postfork_parentv", true),
	SYM(postfork_child, "_Z19grpc_postfork_childv", true),
	SYM(fork_enable, "_ZN9grpc_core4Fork6EnableEb", true),
	SYM(fork_block_exec_ctx, "_ZN9grpc_core4Fork12BlockExecCtxEv", false),
	SYM(poll_strategy_name, "_Z27grpc_get_poll_strategy_namev", false),
	SYM(fork_support_enabled, "_ZN9grpc_core4Fork16support_enabled_E", false),
};

/* libgrpc loaded with RTLD_LOCAL (by a plugin, say) is invisible to
 * RTLD_NEXT, yet its callers still reach the shim's hooks: look it up by name.
 * The callback only copies the name: dl_iterate_phdr holds the loader's lock
 * while it runs, and a dlopen there would take the loader's other lock in the
 * opposite order to a dlopen running in another thread. */
struct libgrpc_name {
	char path[4096];
	bool found;
};

static int find_libgrpc(struct dl_phdr_info *info, size_t size, void *out)
{
	struct libgrpc_name *name = out;
	const char *base = fs_basename(info->dlpi_name);

	if (strncmp(base, "libgrpc.so", 10) != 0 && strncmp(base, "libgrpc_unsecure.so", 19) != 0)
		return 0;
	if (strlen(info->dlpi_name) >= sizeof(name->path))
		return 0;
	strcpy(name->path, info->dlpi_name);
	name->found = true;
	return 1;
}

static bool version_tested(const char *v)
{
	for (size_t i = 0; i < sizeof(tested_core_majors) / sizeof(tested_core_majors[0]); i++)
		if (strncmp(v, tested_core_majors[i], strlen(tested_core_majors[i])) == 0)
			return true;
	return false;
}

static void resolve_once(void)
{
	static struct libgrpc_name name; /* once, at resolution: no stack for 4 KiB */
	void *handle = NULL;
	const char *missing = NULL;
	unsigned nmissing = 0;
	const char *version;

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		*syms[i].slot = fs_next_symbol(syms[i].name);
	if (fs_grpc.channel_create == NULL && dl_iterate_phdr(find_libgrpc, &name) && name.found &&
	    (handle = dlopen(name.path, RTLD_LAZY | RTLD_NOLOAD)) != NULL) {
		for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
			*syms[i].slot = dlsym(handle, syms[i].name);
		/* The handle is kept: it pins a library that was loaded anyway. */
		atomic_store(&local_lib, handle);
	}
	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++) {
		if (syms[i].required && *syms[i].slot == NULL) {
			if (missing == NULL)
				missing = syms[i].name;
			nmissing++;
		}
	}
	if (missing != NULL) {
		fs_log(FS_WARN, "libgrpc lacks %s%s: gRPC passes through the shim untouched", missing,
		       nmissing > 1 ? " and other symbols the shim needs" : "");
		atomic_store(&state, FS_GRPC_PASSTHROUGH);
		return;
	}
	version = fs_grpc.version_string();
	if (!version_tested(version) && !fs_cfg.allow_untested) {
		fs_log(FS_WARN,
		       "gRPC core %s is untested (tested: 29.x, gRPC 1.51): gRPC passes through the shim untouched; "
		       "GRPC_FORKSAFE_ALLOW_UNTESTED=1 makes it act anyway",
		       version);
		atomic_store(&state, FS_GRPC_PASSTHROUGH);
		return;
	}
	fs_log(FS_DEBUG, "gRPC core %s found", version);
	atomic_store(&state, FS_GRPC_ACTIVE);
}

void fs_grpc_resolve(void)
{
	pthread_once(&once, resolve_once);
}

enum fs_grpc_state fs_grpc_state(void)
{
	return atomic_load_explicit(&state, memory_order_acquire);
}

static void *_Atomic instance;

void fs_grpc_use_instance(void *handle)
{
	atomic_store(&instance, handle);
}

/* The core functions the hooks resolved (fs_grpc_core_function), for
 * fs_grpc_own_slots. Filled once per slot; a race may list a slot twice,
 * which does no harm. */
#define MAX_CORE_SLOTS 32
static struct {
	void *_Atomic *slot;
	const char *name;
} core_slots[MAX_CORE_SLOTS];
static _Atomic unsigned ncore_slots;

void fs_grpc_own_slots(void (*cb)(void **slot, const char *name, bool data))
{
	unsigned n = atomic_load(&ncore_slots);

	for (size_t i = 0; i < sizeof(syms) / sizeof(syms[0]); i++)
		if (*syms[i].slot != NULL)
			cb(syms[i].slot, syms[i].name, syms[i].slot == (void **)&fs_grpc.fork_support_enabled);
	for (unsigned i = 0; i < n && i < MAX_CORE_SLOTS; i++)
		if (core_slots[i].name != NULL)
			cb((void **)core_slots[i].slot, core_slots[i].name, false);
}

void *fs_grpc_symbol(const char *name)
{
	void *inst = atomic_load(&instance);
	void *p = inst != NULL ? dlsym(inst, name) : NULL;
	void *lib = atomic_load(&local_lib);

	if (p != NULL)
		return p;
	p = fs_next_symbol(name);

	/* dlsym on libgrpc's handle searches its dependencies too (libgpr). */
	return p != NULL || lib == NULL ? p : dlsym(lib, name);
}

void *fs_grpc_core_function(void *_Atomic *slot, const char *name, void *fallback)
{
	void *f = atomic_load_explicit(slot, memory_order_relaxed);

	enum fs_grpc_state st;

	if (f != NULL)
		return f;
	/* The state first: once it is settled, the handle of a libgrpc loaded
	 * RTLD_LOCAL is known, so a failed lookup after it is final. */
	st = fs_grpc_state();
	f = fs_grpc_symbol(name);
	if (f == NULL && st == FS_GRPC_UNRESOLVED)
		return fallback; /* libgrpc may not be found yet (loaded RTLD_LOCAL): ask again */
	if (f == NULL)
		f = fallback;
	else {
		unsigned i = atomic_fetch_add(&ncore_slots, 1);

		if (i < MAX_CORE_SLOTS) {
			core_slots[i].slot = slot;
			core_slots[i].name = name;
		}
	}
	atomic_store_explicit(slot, f, memory_order_relaxed);
	return f;
}
