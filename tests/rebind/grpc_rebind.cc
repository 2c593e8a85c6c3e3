// Re-pointing a real grpc++ program's imports from the libgrpc and
// libgrpc++ it was linked with to a second instance of each: copies whose
// sonames were renamed in place (rebind.mk), loaded by absolute path with
// RTLD_DEEPBIND as the child will load them. Nothing runs gRPC in the copy
// beyond a version string: the point is where the program's slots lead,
// and the two data pointers it copied into itself.
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/impl/codegen/core_codegen_interface.h>
#include <grpcpp/impl/codegen/grpc_library.h>

extern "C" {
#include "rebind.h"
}

static int failures;

#define CHECK(cond, ...)                                                          \
	do {                                                                      \
		if (!(cond)) {                                                    \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                             \
			fputc('\n', stderr);                                      \
			failures++;                                               \
		}                                                                 \
	} while (0)

static const char *object_of(const void *addr)
{
	Dl_info info;

	return dladdr(addr, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "?";
}

// Read the program's GOT afresh each call: the compiler takes GOT entries for
// constants and would reuse the first load.
__attribute__((noipa)) static const void *addr_of_version_string()
{
	return (const void *)&grpc_version_string;
}

__attribute__((noipa)) static const void *addr_of_cxx_version()
{
	return (const void *)&grpc::Version;
}

// How many slots each object had rewritten.
struct per_object {
	const struct link_map *map[64];
	size_t n[64], count;
	const char *first[64];
};

static void count_rewritten(const struct fs_rebind_slot *s, void *arg)
{
	struct per_object *p = (struct per_object *)arg;
	size_t i;

	if (s->outcome != FS_REBIND_REWRITTEN)
		return;
	for (i = 0; i < p->count && p->map[i] != s->object; i++)
		;
	if (i == p->count && p->count < 64) {
		p->map[p->count++] = s->object;
		p->first[i] = s->name;
	}
	if (i < 64)
		p->n[i]++;
}

static struct link_map *map_of(void *h)
{
	struct link_map *m = nullptr;

	if (h == nullptr || dlinfo(h, RTLD_DI_LINKMAP, &m) != 0)
		return nullptr;
	return m;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s DIR-OF-RENAMED-COPIES\n", argv[0]);
		return 2;
	}
	// The program's own imports, as the linker left them (PIE: GOT loads).
	const void *version_fn = addr_of_version_string();
	const void *cxx_version_fn = addr_of_cxx_version();
	std::string before = grpc::Version();

	CHECK(strstr(object_of(version_fn), "libgrpc.so.29") != nullptr, "%s", object_of(version_fn));

	struct link_map *olds[2] = { map_of(dlopen("libgrpc.so.29", RTLD_LAZY | RTLD_NOLOAD)),
				     map_of(dlopen("libgrpc++.so.1.51", RTLD_LAZY | RTLD_NOLOAD)) };
	std::string dir = argv[1];
	// Dependencies first, by absolute path.
	void *new_grpc = dlopen((dir + "/libgrpz.so.29").c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	CHECK(new_grpc != nullptr, "%s", dlerror());
	void *new_grpcxx = dlopen((dir + "/libgrpc+z.so.1.51").c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	CHECK(new_grpcxx != nullptr, "%s", dlerror());
	CHECK(olds[0] != nullptr && olds[1] != nullptr, "old maps");
	if (failures)
		return 1;

	const struct link_map *const old_list[2] = { olds[0], olds[1] };
	struct fs_rebind_maps old = { old_list, 2 };
	void *handles[2] = { new_grpcxx, new_grpc };
	struct fs_rebind_target t = {};
	struct fs_rebind_stats st;
	char err[256] = "";

	t.is_old = fs_rebind_in_maps;
	t.old_arg = &old;
	t.handles = handles;
	t.nhandles = 2;
	struct per_object per = {};
	t.report = count_rewritten;
	t.report_arg = &per;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = fs_rebind_imports(&t, nullptr, &st, err, sizeof(err));
	clock_gettime(CLOCK_MONOTONIC, &t1);
	CHECK(rc == 0, "%s", err);
	printf("fs_rebind_imports took %.2f ms\n", (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	for (size_t i = 0; i < per.count; i++)
		printf("  %zu slots rewritten in %s, the first %s\n", per.n[i],
		       per.map[i]->l_name[0] ? per.map[i]->l_name : "(program)", per.first[i]);
	printf("objects %zu relocations %zu rewritten %zu left %zu missing %zu (%s) tls %zu odd %zu copies %zu\n",
	       st.objects, st.relocs, st.rewritten, st.left, st.missing, st.first_missing, st.tls, st.odd,
	       st.ncopies);

	// The program's GOT now leads into the copies.
	const void *version_after = addr_of_version_string();
	const void *cxx_version_after = addr_of_cxx_version();
	CHECK(version_after != version_fn, "grpc_version_string not re-pointed");
	CHECK(version_after == dlsym(new_grpc, "grpc_version_string"), "%s", object_of(version_after));
	CHECK(cxx_version_after != cxx_version_fn, "grpc::Version not re-pointed");
	CHECK(strstr(object_of(cxx_version_after), "libgrpc+z.so.1.51") != nullptr, "%s",
	      object_of(cxx_version_after));
	CHECK(strcmp(grpc_version_string(), "29.0.0") == 0, "%s", grpc_version_string());
	CHECK(grpc::Version() == before, "%s", grpc::Version().c_str());
	CHECK(st.rewritten >= 3, "%zu", st.rewritten);
	CHECK(st.missing == 0, "%s", st.first_missing);

	// grpc++'s two data pointers the program copied into itself.
	size_t refreshed = 0;
	for (size_t i = 0; i < st.ncopies && i < FS_REBIND_MAX_COPIES; i++) {
		const struct fs_rebind_copy *c = &st.copies[i];

		printf("copy %s (%zu bytes) new %p in %s, holding %p; the program's holds %p\n", c->name, c->size,
		       c->new_def, c->new_def != nullptr ? object_of(c->new_def) : "-",
		       c->new_def != nullptr && c->size == sizeof(void *) ? *(void *const *)c->new_def : nullptr,
		       c->size == sizeof(void *) ? *(void *const *)c->addr : nullptr);
		CHECK(c->new_def != nullptr, "%s", c->name);
		if (c->size == sizeof(void *))
			printf("  the program's held %p before\n", *(void *const *)c->addr);
		if (fs_rebind_copy_refresh(c, err, sizeof(err)) != 0)
			CHECK(false, "%s", err);
		else
			refreshed++;
		CHECK(memcmp(c->addr, c->new_def, c->size) == 0, "%s", c->name);
	}
	CHECK(refreshed >= 1, "no copy relocation of grpc++'s data: %zu", st.ncopies);
	CHECK((void *)grpc::g_core_codegen_interface ==
		      *(void **)dlsym(new_grpcxx, "_ZN4grpc24g_core_codegen_interfaceE"),
	      "g_core_codegen_interface");
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
