#include "owner.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <bsd/stdlib.h>

#include "log.h"
#include "symranges.h"

/* Objects whose file name starts with one of these are gRPC's shared
 * libraries. libgrpc covers libgrpc.so, libgrpc_unsecure.so and the grpc++
 * libraries; c-ares sockets are owned and polled by gRPC's resolver. */
static const char *const shared_prefixes[] = { "libgrpc", "libgpr.", "libcares.", "libaddress_sorting." };

/* Objects that carry a copy of gRPC inside them: Debian's python3-grpcio
 * (grpc/_cython/cygrpc.cpython-*.so). */
static const char *const embedded_prefixes[] = { "cygrpc." };

/* GRPC_FORKSAFE_OBJECTS, split in place: file name prefixes of further
 * objects to treat as embedded gRPC. */
#define MAX_USER_OBJECTS 16
static char user_buf[512];
static const char *user_names[MAX_USER_OBJECTS];
static size_t nuser;

static size_t program_functions;

static const struct link_map *object_of(const void *addr)
{
	struct dl_find_object found;

	/* _dl_find_object takes no lock and does not allocate: safe in any hook. */
	if (_dl_find_object((void *)addr, &found) != 0)
		return NULL;
	return found.dlfo_link_map;
}

static bool starts_with_any(const char *base, const char *const *prefixes, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (strncmp(base, prefixes[i], strlen(prefixes[i])) == 0)
			return true;
	return false;
}

static const char *program_name(void)
{
	const char *name = getprogname();

	return name != NULL ? name : "";
}

void fs_owner_init(const char *names)
{
	char *save = NULL, *tok;

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
	program_functions = fs_symranges_load("/proc/self/exe");
	if (program_functions > 0)
		fs_log(FS_DEBUG, "%s has gRPC linked in (%zu functions): its descriptors are tracked as embedded gRPC",
		       program_name(), program_functions);
}

size_t fs_owner_program_grpc_functions(void)
{
	return program_functions;
}

enum fs_owner fs_owner_of(const void *addr)
{
	const struct link_map *map = object_of(addr);
	const char *base;

	if (map == NULL || map->l_name == NULL || map == object_of((const void *)fs_owner_of))
		return FS_OWNER_OTHER;
	if (map->l_name[0] == '\0') {
		/* The program itself. */
		if (nuser > 0 && starts_with_any(program_name(), user_names, nuser))
			return FS_OWNER_EMBEDDED;
		return fs_symranges_contains((uintptr_t)addr - map->l_addr) ? FS_OWNER_EMBEDDED : FS_OWNER_OTHER;
	}
	base = strrchr(map->l_name, '/');
	base = base != NULL ? base + 1 : map->l_name;
	if (starts_with_any(base, shared_prefixes, sizeof(shared_prefixes) / sizeof(shared_prefixes[0])))
		return FS_OWNER_SHARED;
	if (starts_with_any(base, embedded_prefixes, sizeof(embedded_prefixes) / sizeof(embedded_prefixes[0])) ||
	    starts_with_any(base, user_names, nuser))
		return FS_OWNER_EMBEDDED;
	return FS_OWNER_OTHER;
}

bool fs_owner_is_self(const void *addr)
{
	const struct link_map *self = object_of((const void *)fs_owner_is_self);

	return self != NULL && object_of(addr) == self;
}
