// A plan on a real grpc++ program: the old set is libgrpc's whole dependency
// closure but libc, libm, libstdc++, libgcc_s and the loader (libgrpc++ is a
// client, like the program); each member has an identical twin under a
// renamed soname (make_twins.py), loaded by absolute path, dependencies
// first, with RTLD_DEEPBIND. The plan is made and timed in the parent, both
// walking every object and only the old set's direct clients; a
// pthread_atfork child handler writes it, each address moved to its twin;
// the child checks where libgrpc++'s thread-local pairs and some functions
// now lead. Nothing runs gRPC in the twins.
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <string>
#include <vector>

#include <grpc/grpc.h>
#include <grpcpp/grpcpp.h>

extern "C" {
#include "rebind.h"
void *__tls_get_addr(void *);
}

static int failures;

#define CHECK(cond, ...)                                                                \
	do {                                                                            \
		if (!(cond)) {                                                          \
			fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
			fprintf(stderr, __VA_ARGS__);                                   \
			fputc('\n', stderr);                                            \
			failures++;                                                     \
		}                                                                       \
	} while (0)

static struct link_map *map_of(void *h)
{
	struct link_map *m = nullptr;

	if (h == nullptr || dlinfo(h, RTLD_DI_LINKMAP, &m) != 0)
		return nullptr;
	return m;
}

static const char *object_of(const void *addr)
{
	Dl_info info;

	return dladdr(addr, &info) != 0 && info.dli_fname != nullptr ? info.dli_fname : "?";
}

static bool in_twin(const void *addr)
{
	const char *f = object_of(addr), *slash = strrchr(f, '/');

	return strncmp(slash != nullptr ? slash + 1 : f, "liZ", 3) == 0;
}

__attribute__((noipa)) static const void *addr_of_version_string()
{
	return (const void *)&grpc_version_string;
}

static double ms_since(const struct timespec &t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
}

static bool skip_rebind_lib(const struct link_map *m)
{
	size_t n = m->l_name != nullptr ? strlen(m->l_name) : 0;

	return n >= 13 && strcmp(m->l_name + n - 13, "/librebind.so") == 0;
}

// What the child handler needs, set up before the fork.
static std::vector<const struct link_map *> olds, twins;
static std::vector<size_t> twin_modids;
static std::vector<struct fs_import> plan;
static int write_rc = -2;
static char write_err[256];
static double write_ms;

static size_t twin_index(const struct link_map *old)
{
	for (size_t i = 0; i < olds.size(); i++)
		if (olds[i] == old)
			return i;
	return SIZE_MAX;
}

// The value for a slot: its twin's address or module id. Async-signal-safe.
static uintptr_t twin_value(const struct fs_import *imp, void *)
{
	size_t i = twin_index(imp->old_obj);

	if (i == SIZE_MAX)
		return (uintptr_t)*imp->slot;
	if (imp->type == R_X86_64_DTPMOD64)
		return twin_modids[i];
	return fs_rebind_translate(imp->old_obj, twins[i], imp->value);
}

static void write_in_child()
{
	struct timespec t0;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	write_rc = fs_rebind_write(plan.data(), plan.size(), twin_value, nullptr, write_err, sizeof(write_err));
	write_ms = ms_since(t0);
}

static int make_plan(unsigned flags, std::vector<struct fs_import> &out, struct fs_rebind_stats &st, double &ms)
{
	struct fs_rebind_maps old = { olds.data(), olds.size() }, fresh = { twins.data(), twins.size() };
	struct fs_rebind_target t = {};
	char err[256] = "";
	size_t n = 0;
	struct timespec t0;

	t.is_old = fs_rebind_in_maps;
	t.old_arg = &old;
	t.is_new = fs_rebind_in_maps;
	t.new_arg = &fresh;
	t.plan_flags = flags;
	out.resize(4096);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int rc = fs_rebind_plan(&t, skip_rebind_lib, out.data(), out.size(), &n, &st, err, sizeof(err));
	ms = ms_since(t0);
	CHECK(rc == 0, "%s", err);
	out.resize(rc == 0 ? n : 0);
	return rc;
}

// The maps lines of the program and libgrpc++.
static std::string our_maps()
{
	std::ifstream f("/proc/self/maps");
	std::string line, out;
	char exe[4096];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	exe[n > 0 ? n : 0] = '\0';
	while (std::getline(f, line))
		if (line.find(exe) != std::string::npos || line.find("/libgrpc++.so") != std::string::npos)
			out += line + "\n";
	return out;
}

static const char *short_name(const struct link_map *m)
{
	const char *slash = strrchr(m->l_name, '/');

	return m->l_name[0] == '\0' ? "(program)" : slash != nullptr ? slash + 1 : m->l_name;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: %s TWINS-DIR\n", argv[0]);
		return 2;
	}
	std::string dir = argv[1], line;
	std::ifstream manifest(dir + "/twins.txt");
	const std::string before_version = grpc::Version();
	struct timespec t0;

	// The old set, and its twins loaded dependencies first.
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (std::getline(manifest, line)) {
		std::string so = line.substr(0, line.find(' ')), file = line.substr(line.find(' ') + 1);
		struct link_map *o = map_of(dlopen(so.c_str(), RTLD_LAZY | RTLD_NOLOAD));
		void *h = dlopen((dir + "/" + file).c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);

		CHECK(o != nullptr, "%s is not loaded", so.c_str());
		CHECK(h != nullptr, "%s", dlerror());
		if (o == nullptr || h == nullptr)
			return 1;
		olds.push_back(o);
		twins.push_back(map_of(h));
		twin_modids.push_back(fs_rebind_tls_modid(map_of(h)));
		CHECK((twin_modids.back() == 0) == (fs_rebind_tls_modid(o) == 0), "%s: TLS in one of the two", so.c_str());
	}
	printf("old set %zu objects; twins loaded in %.1f ms\n", olds.size(), ms_since(t0));
	CHECK(olds.size() >= 40, "%zu", olds.size());

	// The plan, timed: every object, then direct clients only.
	struct fs_rebind_stats st, dst;
	std::vector<struct fs_import> direct;
	std::vector<double> all_ms, direct_ms;
	for (int i = 0; i < 7; i++) {
		double ms;

		make_plan(0, plan, st, ms);
		all_ms.push_back(ms);
		make_plan(FS_REBIND_PLAN_DIRECT, direct, dst, ms);
		direct_ms.push_back(ms);
	}
	std::sort(all_ms.begin(), all_ms.end());
	std::sort(direct_ms.begin(), direct_ms.end());
	printf("plan, every object:      median %.2f ms (min %.2f) over %zu objects, %zu relocations: %zu entries "
	       "(%zu read-only, %zu module ids), dtpoff %zu tpoff %zu tls %zu (%s) odd %zu copies %zu\n",
	       all_ms[3], all_ms[0], st.objects, st.relocs, st.planned, st.readonly, st.modids, st.dtpoffs, st.tpoffs,
	       st.tls, st.first_missing, st.odd, st.ncopies);
	printf("plan, direct clients:    median %.2f ms (min %.2f) over %zu objects, %zu relocations: %zu entries\n",
	       direct_ms[3], direct_ms[0], dst.objects, dst.relocs, dst.planned);
	CHECK(direct.size() == plan.size() &&
		      memcmp(direct.data(), plan.data(), plan.size() * sizeof(plan[0])) == 0,
	      "the direct clients' plan differs: %zu entries, %zu", direct.size(), plan.size());
	CHECK(st.odd == 0 && st.tpoffs == 0, "odd %zu tpoff %zu (%s)", st.odd, st.tpoffs, st.first_missing);

	// Which objects the entries are in.
	std::vector<std::pair<const struct link_map *, size_t>> per;
	for (const auto &e : plan) {
		auto it = std::find_if(per.begin(), per.end(), [&](const auto &p) { return p.first == e.object; });
		if (it == per.end())
			per.push_back({ e.object, 1 });
		else
			it->second++;
	}
	for (const auto &p : per)
		printf("  %zu entries in %s\n", p.second, short_name(p.first));

	// libgrpc++'s three general-dynamic thread-locals of libgrpc.
	struct link_map *grpcxx = map_of(dlopen("libgrpc++.so.1.51", RTLD_LAZY | RTLD_NOLOAD));
	struct link_map *grpc = map_of(dlopen("libgrpc.so.29", RTLD_LAZY | RTLD_NOLOAD));
	const char *const tls_names[] = { "_ZN9grpc_core7ExecCtx9exec_ctx_E",
					  "_ZN9grpc_core26ApplicationCallbackExecCtx18callback_exec_ctx_E",
					  "_ZN9grpc_core9Timestamp25thread_local_time_source_E" };
	std::vector<const struct fs_import *> tls;
	for (const char *name : tls_names) {
		const struct fs_import *found = nullptr;

		for (const auto &e : plan)
			if (e.object == grpcxx && e.type == R_X86_64_DTPMOD64 && strcmp(e.name, name) == 0)
				found = &e;
		CHECK(found != nullptr && found->old_obj == grpc && found->value == fs_rebind_tls_modid(grpc), "%s",
		      name);
		if (found != nullptr)
			tls.push_back(found);
	}
	CHECK(st.modids == 3, "%zu", st.modids);
	if (failures)
		return 1;

	// Fork; the handler writes the plan in the child.
	std::vector<uintptr_t> before;
	for (const auto &e : plan)
		before.push_back((uintptr_t)*e.slot);
	const std::string maps_before = our_maps();
	void *twin_grpc = dlopen((dir + "/liZgrpc.so.29").c_str(), RTLD_LAZY | RTLD_NOLOAD);
	pthread_atfork(nullptr, nullptr, write_in_child);
	fflush(stdout);
	pid_t pid = fork();
	if (pid == 0) {
		size_t funcs = 0, funcs_twin = 0;

		printf("child: fs_rebind_write took %.3f ms for %zu entries\n", write_ms, plan.size());
		CHECK(write_rc == 0, "%s", write_err);
		for (size_t i = 0; i < plan.size(); i++) {
			uintptr_t want = twin_value(&plan[i], nullptr);

			CHECK((uintptr_t)*plan[i].slot == want, "%s in %s: %p, not %#lx", plan[i].name,
			      short_name(plan[i].object), *plan[i].slot, (unsigned long)want);
			if (plan[i].func && plan[i].type != R_X86_64_DTPMOD64) {
				funcs++;
				funcs_twin += in_twin(*plan[i].slot);
			}
		}
		CHECK(funcs > 0 && funcs_twin == funcs, "%zu of %zu functions in the twins", funcs_twin, funcs);
		// Each thread-local pair (module id, offset) now finds the
		// twin's instance for this thread.
		for (const struct fs_import *e : tls) {
			void *twin_addr = dlsym(twin_grpc, e->name);
			void *via_slot = __tls_get_addr(e->slot);

			CHECK(*e->slot == (void *)twin_modids[twin_index(grpc)], "%s", e->name);
			CHECK(via_slot == twin_addr, "%s: %p, the twin's %p", e->name, via_slot, twin_addr);
		}
		// Some functions, called or looked at through the program's and
		// libgrpc++'s slots.
		CHECK(in_twin(addr_of_version_string()), "%s", object_of(addr_of_version_string()));
		CHECK(strcmp(grpc_version_string(), "29.0.0") == 0, "%s", grpc_version_string());
		CHECK(in_twin(grpc_version_string()), "%s", object_of(grpc_version_string()));
		CHECK(grpc::Version() == before_version, "%s", grpc::Version().c_str());
		const char *const funcs_of_grpcxx[] = { "grpc_init", "grpc_completion_queue_create_for_next",
							"gpr_log", "grpc_call_start_batch" };
		for (const char *name : funcs_of_grpcxx) {
			bool seen = false;

			for (const auto &e : plan)
				if (e.object == grpcxx && strcmp(e.name, name) == 0) {
					seen = true;
					CHECK(e.func && in_twin(*e.slot), "%s: %s", name, object_of(*e.slot));
				}
			CHECK(seen, "libgrpc++'s %s not planned", name);
		}
		std::string maps_after = our_maps();
		CHECK(maps_after == maps_before, "maps before:\n%s\nafter:\n%s", maps_before.c_str(),
		      maps_after.c_str());
		fflush(stdout);
		_exit(failures ? 1 : 0);
	}
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid, "fork");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	for (size_t i = 0; i < plan.size(); i++)
		CHECK((uintptr_t)*plan[i].slot == before[i], "%s changed in the parent", plan[i].name);
	CHECK(!in_twin(addr_of_version_string()), "%s", object_of(addr_of_version_string()));
	printf("%s\n", failures ? "FAILED" : "ok");
	return failures ? 1 : 0;
}
