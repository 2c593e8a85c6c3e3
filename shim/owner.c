#include "owner.h"

#include <dlfcn.h>
#include <link.h>
#include <string.h>

/* Objects whose file name starts with one of these are gRPC. libgrpc covers
 * libgrpc.so, libgrpc_unsecure.so and the grpc++ libraries; c-ares sockets are
 * owned and polled by gRPC's resolver. */
static const char *const grpc_prefixes[] = { "libgrpc", "libgpr.", "libcares.", "libaddress_sorting." };

static const struct link_map *object_of(const void *addr)
{
	struct dl_find_object found;

	/* _dl_find_object takes no lock and does not allocate: safe in any hook. */
	if (_dl_find_object((void *)addr, &found) != 0)
		return NULL;
	return found.dlfo_link_map;
}

bool fs_owner_is_self(const void *addr)
{
	const struct link_map *self = object_of((const void *)fs_owner_is_self);

	return self != NULL && object_of(addr) == self;
}

bool fs_owner_is_grpc(const void *addr)
{
	const struct link_map *map = object_of(addr);
	const char *base;

	if (map == NULL || map->l_name == NULL || map == object_of((const void *)fs_owner_is_grpc))
		return false;
	base = strrchr(map->l_name, '/');
	base = base != NULL ? base + 1 : map->l_name;
	for (size_t i = 0; i < sizeof(grpc_prefixes) / sizeof(grpc_prefixes[0]); i++)
		if (strncmp(base, grpc_prefixes[i], strlen(grpc_prefixes[i])) == 0)
			return true;
	return false;
}
