#include "owner.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <bsd/stdlib.h>

#include "log.h"
#include "symranges.h"

/* Objects whose file name starts with one of these are gRPC's shared
 * libraries. libgrpc covers libgrpc.so, libgrpc_unsecure.so and the grpc++
 * libraries. */
static const char *const shared_prefixes[] = { "libgrpc", "libgpr." };

/* gRPC's own helper library, used by whichever copy of gRPC is loaded (the
 * c-ares resolver sorts addresses with it; its sockets live for one call):
 * the shared gRPC's when one is loaded, an embedded gRPC's otherwise.
 * libcares is not here: programs use it for their own DNS too, and the
 * sockets of gRPC's c-ares channels are told apart by channel (hooks_ares.c). */
static const char *const helper_prefixes[] = { "libaddress_sorting." };

/* Objects that carry a copy of gRPC inside them: Debian's python3-grpcio
 * (grpc/_cython/cygrpc.cpython-*.so). */
static const char *const embedded_prefixes[] = { "cygrpc." };

/* GRPC_FORKSAFE_OBJECTS, split in place: file name prefixes of further
 * objects to treat as embedded gRPC. */
#define MAX_USER_OBJECTS 16
static char user_buf[512];
static const char *user_names[MAX_USER_OBJECTS];
static size_t nuser;

static const struct link_map *object_of(const void *addr)
{
	struct dl_find_object found;

	/* _dl_find_object takes no lock and does not allocate: safe in any hook. */
	if (_dl_find_object((void *)addr, &found) != 0)
		return NULL;
	return found.dlfo_link_map;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

const char *fs_basename(const char *path)
{
	const char *slash = strrchr(path, '/');

	return slash != NULL ? slash + 1 : path;
}

static bool starts_with_any(const char *base, const char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static int find_shared_grpc(struct dl_phdr_info *info, size_t size, void *unused)
{
	return starts_with_any(fs_basename(info->dlpi_name), shared_prefixes, COUNT(shared_prefixes));
}

static const char *program_name(void)
{
	const char *name = getprogname();

	return name != NULL ? name : "";
}

void fs_owner_init(const char *names)
{
	char *save = NULL, *tok;
	size_t functions;

	if (names != NULL && *names != '\0') {
		if (strlen(names) >= sizeof(user_buf)) {
			fs_log(FS_WARN, "GRPC_FORKSAFE_OBJECTS is longer than %zu characters: ignored",
			       sizeof(user_buf) - 1);
		} else {
			strcpy(user_buf, names);
			for (tok = strtok_r(user_buf, ":", &save); tok != NULL; tok = strtok_r(NULL, ":", &save)) {
				if (nuser == MAX_USER_OBJECTS) {
					fs_log(FS_WARN, "GRPC_FORKSAFE_OBJECTS names more than %d objects: the rest are ignored",
					       MAX_USER_OBJECTS);
					break;
				}
				user_names[nuser++] = tok;
			}
		}
	}
	functions = fs_symranges_load("/proc/self/exe");
	if (functions > 0)
		fs_log(FS_DEBUG, "%s has gRPC linked in (%zu functions): its descriptors are tracked as embedded gRPC",
		       program_name(), functions);
}

/* `which`: whether a helper library's call must be told apart (shared or
 * embedded gRPC's), which needs the loader's lock; close() only asks whether
 * the caller is gRPC at all. */
static enum fs_owner classify(const void *addr, bool which)
{
	const struct link_map *map = object_of(addr);
	const char *base;

	if (map == NULL || map->l_name == NULL || map == object_of((const void *)classify))
		return FS_OWNER_OTHER;
	if (map->l_name[0] == '\0') {
		/* The program itself. */
		if (nuser > 0 && starts_with_any(program_name(), user_names, nuser))
			return FS_OWNER_EMBEDDED;
		return fs_symranges_contains((uintptr_t)addr - map->l_addr) ? FS_OWNER_EMBEDDED : FS_OWNER_OTHER;
	}
	base = fs_basename(map->l_name);
	if (starts_with_any(base, shared_prefixes, COUNT(shared_prefixes)))
		return FS_OWNER_SHARED;
	if (starts_with_any(base, helper_prefixes, COUNT(helper_prefixes)))
		/* dl_iterate_phdr takes the loader's lock, never the shim's; address
		 * sorting opens a socket per resolution, so this is not a hot path. */
		return !which || dl_iterate_phdr(find_shared_grpc, NULL) ? FS_OWNER_SHARED : FS_OWNER_EMBEDDED;
	if (starts_with_any(base, embedded_prefixes, COUNT(embedded_prefixes)) ||
	    starts_with_any(base, user_names, nuser))
		return FS_OWNER_EMBEDDED;
	return FS_OWNER_OTHER;
}

enum fs_owner fs_owner_of(const void *addr)
{
	return classify(addr, true);
}

bool fs_owner_is_grpc(const void *addr)
{
	return classify(addr, false) != FS_OWNER_OTHER;
}

bool fs_owner_is_grpc_core(const void *addr)
{
	static const char *const core_prefixes[] = { "libgrpc.so", "libgrpc_unsecure.so", "libgpr." };
	const struct link_map *map = object_of(addr);

	return map != NULL && map->l_name != NULL &&
	       starts_with_any(fs_basename(map->l_name), core_prefixes, COUNT(core_prefixes));
}

bool fs_owner_is_self(const void *addr)
{
	const struct link_map *self = object_of((const void *)fs_owner_is_self);

	return self != NULL && object_of(addr) == self;
}
