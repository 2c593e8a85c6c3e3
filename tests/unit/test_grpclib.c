/* Finding a libgrpc that was loaded with RTLD_LOCAL, where RTLD_NEXT cannot
 * see it. The loader's dl_iterate_phdr and dlopen are wrapped here to catch
 * a dlopen made from inside an iteration callback: the iteration holds the
 * loader's lock, and a dlopen under it takes locks in the opposite order to a
 * dlopen in another thread. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <link.h>
#include <stdbool.h>

#include "config.h"
#include "grpclib.h"
#include "libc.h"

static __thread int iterating;
static int dlopen_while_iterating;

int dl_iterate_phdr(int (*cb)(struct dl_phdr_info *, size_t, void *), void *data)
{
	int (*real)(int (*)(struct dl_phdr_info *, size_t, void *), void *) =
		(int (*)(int (*)(struct dl_phdr_info *, size_t, void *), void *))dlsym(RTLD_NEXT, "dl_iterate_phdr");
	int rc;

	iterating++;
	rc = real(cb, data);
	iterating--;
	return rc;
}

void *dlopen(const char *file, int mode)
{
	void *(*real)(const char *, int) = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");

	if (iterating)
		dlopen_while_iterating++;
	return real(file, mode);
}

Test(grpclib, a_libgrpc_loaded_rtld_local_is_found_without_dlopen_inside_the_loader_walk)
{
	void *lib;

	fs_libc_resolve();
	fs_cfg.allow_untested = true;
	lib = dlopen("libgrpc.so.29", RTLD_LAZY | RTLD_LOCAL);
	cr_assert_not_null(lib, "libgrpc.so.29: %s", dlerror());
	cr_assert_null(dlsym(RTLD_NEXT, "grpc_channel_create"), "libgrpc must be invisible to RTLD_NEXT here");
	fs_grpc_resolve();
	cr_assert_eq(fs_grpc.channel_create, dlsym(lib, "grpc_channel_create"));
	cr_assert_eq(dlopen_while_iterating, 0, "dlopen was called inside a dl_iterate_phdr callback");
}
