/* Re-pointing imports from libid_old.so to libid_new.so (shim/rebind.c).
 *
 * This program and libthird.so import libid_old.so's symbols every way a
 * relocation can; each test (a process of its own under criterion) loads
 * libid_new.so as the child will load gRPC's copies (RTLD_LOCAL and
 * RTLD_DEEPBIND), re-points, and checks that every call and address now
 * reaches the new library, that nothing else in the writable memory of the
 * program and libthird changed, and that the pages' protections are as the
 * loader left them. Built three ways (rebind.mk): PIE bound lazily, PIE
 * bound at load (full RELRO), and not PIE (lazy, its PLT entry standing for
 * id_name).
 *
 * The suite `plan` does the same in two steps, as the fork will: a plan made
 * in the parent (fs_rebind_plan), written by a pthread_atfork child handler
 * (fs_rebind_write) with each address moved to an identical twin of
 * libid_old.so, thread-local module id included. */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "rebind.h"
#include "third.h"

#define MAX_SEEN 256
#define MAX_REGIONS 8
#define MAX_DIFFS 256

struct seen {
	const struct link_map *object;
	char name[64];
	unsigned type;
	uintptr_t slot, before, after;
	enum fs_rebind_outcome outcome;
};

/* On the heap, so that recording and comparing change nothing in the
 * program's own data, which the tests compare. */
struct state {
	void *new_handle;
	struct link_map *old_map, *new_map, *third_map;
	size_t nseen;
	struct seen seen[MAX_SEEN];
	size_t nobjects, nregions;
	struct {
		uintptr_t lo, hi;
		unsigned char *copy;
	} regions[MAX_REGIONS];
	size_t ndiffs;
	uintptr_t diffs[MAX_DIFFS];
	char *maps_before;
};

static struct state *S;

static struct link_map *map_of(void *h)
{
	struct link_map *m = NULL;

	cr_assert_not_null(h, "%s", dlerror());
	cr_assert_eq(dlinfo(h, RTLD_DI_LINKMAP, &m), 0);
	return m;
}

static bool ends_with(const char *s, const char *tail)
{
	size_t n = strlen(s), t = strlen(tail);

	return n >= t && strcmp(s + n - t, tail) == 0;
}

static bool skip_rebind_lib(const struct link_map *m)
{
	return m->l_name != NULL && ends_with(m->l_name, "/librebind.so");
}

static void record(const struct fs_rebind_slot *s, void *arg)
{
	struct state *st = arg;
	struct seen *e;
	size_t i;

	if (st->nseen >= MAX_SEEN)
		return;
	e = &st->seen[st->nseen++];
	e->object = s->object;
	for (i = 0; i + 1 < sizeof(e->name) && s->name[i] != '\0'; i++)
		e->name[i] = s->name[i];
	e->name[i] = '\0';
	e->type = s->type;
	e->slot = (uintptr_t)s->slot;
	e->before = s->before;
	e->after = s->after;
	e->outcome = s->outcome;
}

/* The program's and libthird's writable segments. The program is the
 * first object dl_iterate_phdr reports. */
static int add_regions(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct state *st = arg;
	bool program = st->nobjects++ == 0;

	if (!program && !ends_with(info->dlpi_name, "/libthird.so"))
		return 0;
	for (size_t i = 0; i < info->dlpi_phnum && st->nregions < MAX_REGIONS; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_W)) {
			st->regions[st->nregions].lo = info->dlpi_addr + ph->p_vaddr;
			st->regions[st->nregions].hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
			st->nregions++;
		}
	}
	return 0;
}

static void snapshot(void)
{
	dl_iterate_phdr(add_regions, S);
	cr_assert_geq(S->nregions, 2, "the program's and libthird's data segments");
	for (size_t i = 0; i < S->nregions; i++) {
		size_t n = S->regions[i].hi - S->regions[i].lo;

		S->regions[i].copy = malloc(n);
		cr_assert_not_null(S->regions[i].copy);
		memcpy(S->regions[i].copy, (void *)S->regions[i].lo, n);
	}
}

/* Which words changed since snapshot(): no library calls in here, which
 * could bind a lazy slot of the program's on the way. */
static void diff(void)
{
	for (size_t i = 0; i < S->nregions; i++) {
		const unsigned char *now = (const unsigned char *)S->regions[i].lo;
		size_t n = S->regions[i].hi - S->regions[i].lo;

		for (size_t k = 0; k < n; k++) {
			uintptr_t word = (S->regions[i].lo + k) & ~(uintptr_t)7;

			if (now[k] == S->regions[i].copy[k])
				continue;
			if (S->ndiffs > 0 && S->diffs[S->ndiffs - 1] == word)
				continue;
			if (S->ndiffs < MAX_DIFFS)
				S->diffs[S->ndiffs++] = word;
		}
	}
}

static char *read_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	size_t cap = 1 << 16, n = 0, r;
	char *buf = malloc(cap);

	cr_assert_not_null(f);
	while ((r = fread(buf + n, 1, cap - n - 1, f)) > 0) {
		n += r;
		if (cap - n - 1 == 0) {
			cap *= 2;
			buf = realloc(buf, cap);
		}
	}
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* The lines of /proc/self/maps that map the program or libthird. */
static char *our_lines(const char *maps)
{
	char exe[4096], *out = calloc(1, strlen(maps) + 1);
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	const char *line = maps;

	cr_assert_gt(n, 0);
	exe[n] = '\0';
	while (*line != '\0') {
		const char *end = strchr(line, '\n');
		size_t len = end != NULL ? (size_t)(end - line + 1) : strlen(line);
		char buf[8192];

		snprintf(buf, sizeof(buf), "%.*s", (int)len, line);
		if (strstr(buf, exe) != NULL || strstr(buf, "/libthird.so") != NULL)
			strcat(out, buf);
		line += len;
	}
	return out;
}

/* The permissions of the mapping holding addr, e.g. "r--p". */
static void perms_of(const char *maps, uintptr_t addr, char perms[5])
{
	const char *line = maps;

	strcpy(perms, "????");
	while (*line != '\0') {
		unsigned long lo, hi;
		char p[5];

		if (sscanf(line, "%lx-%lx %4s", &lo, &hi, p) == 3 && addr >= lo && addr < hi) {
			memcpy(perms, p, 5);
			return;
		}
		line = strchr(line, '\n');
		if (line == NULL)
			return;
		line++;
	}
}

static const struct seen *find_seen(const struct link_map *object, const char *name, unsigned type)
{
	for (size_t i = 0; i < S->nseen; i++)
		if (S->seen[i].object == object && strcmp(S->seen[i].name, name) == 0 &&
		    (type == 0 || S->seen[i].type == type))
			return &S->seen[i];
	return NULL;
}

/* REBIND_VERBOSE=1: what became of each import of libid_old's symbols. */
static void dump(const struct fs_rebind_stats *st)
{
	static const char *const outcomes[] = { "rewritten", "elsewhere", "missing", "unresolved", "tls", "copy" };

	for (size_t k = 0; k < S->nseen; k++)
		fprintf(stderr, "%s:%s type %u %s slot %#lx %#lx -> %#lx\n",
			S->seen[k].object->l_name[0] != '\0' ? S->seen[k].object->l_name : "(program)", S->seen[k].name,
			S->seen[k].type, outcomes[S->seen[k].outcome], (unsigned long)S->seen[k].slot,
			(unsigned long)S->seen[k].before, (unsigned long)S->seen[k].after);
	fprintf(stderr, "objects %zu relocations %zu rewritten %zu left %zu missing %zu words changed %zu\n",
		st->objects, st->relocs, st->rewritten, st->left, st->missing, S->ndiffs);
}

static void setup(void)
{
	char path[4096];
	const char *slash;

	S = calloc(1, sizeof(*S));
	cr_assert_not_null(S);
	S->old_map = map_of(dlopen("libid_old.so", RTLD_LAZY | RTLD_NOLOAD));
	S->third_map = map_of(dlopen("libthird.so", RTLD_LAZY | RTLD_NOLOAD));
	/* By absolute path, next to libthird, as the child loads the copies. */
	slash = strrchr(S->third_map->l_name, '/');
	cr_assert_not_null(slash);
	snprintf(path, sizeof(path), "%.*s/libid_new.so", (int)(slash - S->third_map->l_name),
		 S->third_map->l_name);
	S->new_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	S->new_map = map_of(S->new_handle);
}

TestSuite(rebind, .init = setup, .timeout = 20);

static int run(bool with_old, bool with_new, struct fs_rebind_stats *st, char *err, size_t errlen)
{
	const struct link_map *olds[] = { S->old_map };
	struct fs_rebind_maps old = { olds, with_old ? 1 : 0 };
	void *handles[] = { S->new_handle };
	struct fs_rebind_target t = {
		.is_old = fs_rebind_in_maps,
		.old_arg = &old,
		.handles = handles,
		.nhandles = with_new ? 1 : 0,
		.report = record,
		.report_arg = S,
	};

	return fs_rebind_imports(&t, skip_rebind_lib, st, err, errlen);
}

static void *new_sym(const char *name)
{
	void *a = dlsym(S->new_handle, name);

	cr_assert_not_null(a, "%s", name);
	return a;
}

static const struct link_map *program_map(void)
{
	struct link_map *m = NULL;
	void *self = dlopen(NULL, RTLD_LAZY);

	cr_assert_eq(dlinfo(self, RTLD_DI_LINKMAP, &m), 0);
	return m;
}

/* Everything rebound, with or without the calls having bound their lazy
 * slots first. */
static void rebind_and_check(bool called_before)
{
	struct fs_rebind_stats *stp = malloc(sizeof(*stp));
	char err[256] = "";
	char *maps_after;
	const struct seen *e;
	size_t readonly = 0;
	int rc;

	cr_assert_not_null(stp);
	if (called_before) {
		cr_assert_str_eq(id_name(), "old");
		cr_assert_str_eq(third_call(), "old");
		cr_assert_str_eq(third_ver0(), "old ID_0");
		cr_assert_str_eq(id_ver(), "old ID_1");
		cr_assert_str_eq(id_fast(), "old ifunc");
		cr_assert_eq(third_bump(), 101);
		cr_assert_eq(id_counter, 101);
	}
	/* Binds the program's slot of fs_rebind_imports itself, and must
	 * change nothing: no old set. */
	cr_assert_eq(run(false, true, stp, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(stp->rewritten + stp->relocs + stp->objects, 0);

	S->maps_before = our_lines(read_maps());
	snapshot();
	rc = run(true, true, stp, err, sizeof(err));
	diff();
	cr_assert_eq(rc, 0, "%s", err);

	/* Every changed word of the program and libthird is a slot reported
	 * rewritten, and every such slot changed. */
	for (size_t i = 0; i < S->ndiffs; i++) {
		bool found = false;

		for (size_t k = 0; k < S->nseen; k++)
			found |= S->seen[k].outcome == FS_REBIND_REWRITTEN && S->seen[k].slot == S->diffs[i];
		cr_expect(found, "word %#lx changed, not a rewritten slot", (unsigned long)S->diffs[i]);
	}
	for (size_t k = 0; k < S->nseen; k++) {
		const struct seen *s = &S->seen[k];

		if (s->outcome != FS_REBIND_REWRITTEN)
			continue;
		cr_expect_neq(s->before, s->after, "%s", s->name);
		cr_expect(s->object == S->third_map || s->object->l_name[0] == '\0', "%s in %s", s->name,
			  s->object->l_name);
		cr_expect(strcmp(s->name, "id_name") == 0 || strcmp(s->name, "id_fast") == 0 ||
				  strcmp(s->name, "id_ver") == 0 || strcmp(s->name, "id_bump") == 0 ||
				  strcmp(s->name, "id_array") == 0,
			  "%s rewritten", s->name);
	}

	/* Protections as the loader left them. */
	maps_after = read_maps();
	cr_expect_str_eq(our_lines(maps_after), S->maps_before);
	for (size_t k = 0; k < S->nseen; k++) {
		char perms[5];

		if (S->seen[k].outcome != FS_REBIND_REWRITTEN)
			continue;
		perms_of(maps_after, S->seen[k].slot, perms);
		readonly += perms[1] != 'w';
	}
	cr_expect_geq(readonly, 1, "a rewritten slot in a RELRO page");

	if (getenv("REBIND_VERBOSE") != NULL)
		dump(stp);

	/* The calls now reach the new library. */
	cr_expect_str_eq(id_name(), "new");
	cr_expect_str_eq(third_call(), "new");
	cr_expect_str_eq(third_fp()(), "new");
	cr_expect_str_eq(third_table()[0](), "new");
	cr_expect_str_eq(third_table()[1](), "new ifunc");
	cr_expect_str_eq(id_fast(), "new ifunc");
	cr_expect_str_eq(id_ver(), "new ID_1");
	cr_expect_str_eq(third_ver0(), "new ID_0");
	cr_expect_eq(*third_array_ptr(), (int *)new_sym("id_array") + 2);
	cr_expect_eq(**third_array_ptr(), 202);
	/* The new copy keeps its own counter (RTLD_DEEPBIND). */
	cr_expect_eq(third_bump(), 201);
	cr_expect_eq(id_bump(), 202);
#ifdef __PIE__
	cr_expect_eq((void *)&id_name, new_sym("id_name"));
	cr_expect_eq((void *)third_fp(), new_sym("id_name"));
	cr_expect_eq((void *)third_table()[0], new_sym("id_name"));
#else
	/* The program's PLT entry is id_name's address for everybody. */
	cr_expect_eq((void *)third_fp(), (void *)&id_name);
	e = find_seen(S->third_map, "id_name", R_X86_64_GLOB_DAT);
	cr_expect(e != NULL && e->outcome == FS_REBIND_ELSEWHERE);
#endif

	/* What stays: the interposer, the program's copy of id_counter, libc,
	 * and what the new library lacks. */
	cr_expect_str_eq(third_hooked(), "hook");
	e = find_seen(S->third_map, "id_hooked", 0);
	cr_expect(e != NULL && e->outcome == FS_REBIND_ELSEWHERE);
	cr_expect_eq(third_counter_addr(), &id_counter);
	e = find_seen(S->third_map, "id_counter", 0);
	cr_expect(e != NULL && e->outcome == FS_REBIND_ELSEWHERE);
	cr_expect_eq((void *)third_strlen(), dlsym(RTLD_DEFAULT, "strlen"));
	cr_expect_str_eq(id_only_old(), "old only");
	cr_expect_eq(stp->missing, 1);
	e = find_seen(program_map(), "id_only_old", 0);
	cr_expect(e != NULL && e->outcome == FS_REBIND_MISSING);
	/* id_tls: the program's TPOFF64, libthird's DTPMOD64 and DTPOFF64. */
	cr_expect_eq(stp->tls, 3);
	cr_expect(strcmp(stp->first_missing, "id_only_old") == 0 || strcmp(stp->first_missing, "id_tls") == 0, "%s",
		  stp->first_missing);
	e = find_seen(S->third_map, "id_tls", R_X86_64_DTPMOD64);
	cr_expect(e != NULL && e->outcome == FS_REBIND_TLS);
	cr_expect_eq(stp->odd, 0);

	size_t rewritten = 0;

	for (size_t k = 0; k < S->nseen; k++)
		rewritten += S->seen[k].outcome == FS_REBIND_REWRITTEN;
	cr_expect_eq(stp->rewritten, rewritten);
	cr_expect_geq(stp->rewritten, 8);

	/* The program's copy of id_counter: reported, then refreshed. */
	cr_assert_eq(stp->ncopies, 1);
	cr_expect_str_eq(stp->copies[0].name, "id_counter");
	cr_expect_eq(stp->copies[0].addr, (void *)&id_counter);
	cr_expect_eq(stp->copies[0].size, sizeof(int));
	cr_expect_eq(stp->copies[0].new_def, new_sym("id_counter"));
	cr_expect_eq(stp->copies[0].new_size, sizeof(int));
	cr_assert_eq(fs_rebind_copy_refresh(&stp->copies[0], err, sizeof(err)), 0, "%s", err);
	cr_expect_eq(id_counter, *(int *)new_sym("id_counter"));
	free(stp);
}

Test(rebind, slots_bound_before)
{
	rebind_and_check(true);
}

/* Nothing called before: the lazy slots still point at their PLT stubs,
 * and would bind to the old library when first called. */
Test(rebind, slots_never_called)
{
	rebind_and_check(false);
}

Test(rebind, no_new_object_is_an_error)
{
	struct fs_rebind_stats st;
	char err[256] = "";

	cr_expect_eq(run(true, false, &st, err, sizeof(err)), -1);
	cr_expect(strstr(err, "new") != NULL, "%s", err);
	cr_expect_str_eq(id_name(), "old");
}

Test(rebind, copy_without_new_definition)
{
	struct fs_rebind_copy c = { .name = "x", .addr = &id_counter, .size = sizeof(int) };
	char err[256] = "";

	cr_expect_eq(fs_rebind_copy_refresh(&c, err, sizeof(err)), -1);
	cr_expect(strstr(err, "x:") == err, "%s", err);
}

/* ---- Planning in the parent, writing in a forked child ----
 *
 * The twin, libid_twn.so, is libid_old.so under another soname: the same
 * layout at another address, loaded RTLD_LOCAL | RTLD_DEEPBIND before the
 * fork. The plan is made in the parent; a pthread_atfork child handler
 * writes it, each slot translated to the twin except one left alone and one
 * sent to a stub; the child then checks where calls, data and the
 * thread-local lead, and reports through a pipe. */

struct twin {
	void *handle;
	struct link_map *old_map, *twin_map, *third_map;
	size_t old_modid, twin_modid;
	struct fs_import imps[64];
	size_t n;
	struct fs_rebind_stats stats;
	uintptr_t before[64]; /* the slots' values before the fork */
	char *maps_before;
	/* Set by the child handler. */
	int write_rc;
	char write_err[256];
};

static struct twin *T;
static bool armed;

static const char *stub_ver(void)
{
	return "stub";
}

/* Async-signal-safe: compares and arithmetic only. */
static uintptr_t twin_value(const struct fs_import *imp, void *arg)
{
	const struct twin *t = arg;
	uintptr_t cur = (uintptr_t)*imp->slot;

	if (imp->old_obj != t->old_map)
		return cur;
	if (strcmp(imp->name, "id_only_old") == 0)
		return cur; /* left alone */
	if (imp->func && imp->object == t->third_map && strcmp(imp->name, "id_ver") == 0)
		return (uintptr_t)stub_ver; /* as a lazy stub would be */
	if (imp->type == R_X86_64_DTPMOD64)
		return t->twin_modid;
	return fs_rebind_translate(t->old_map, t->twin_map, imp->value);
}

static void write_in_child(void)
{
	if (armed)
		T->write_rc = fs_rebind_write(T->imps, T->n, twin_value, T, T->write_err, sizeof(T->write_err));
}

static bool is_twin(const struct link_map *m, const void *arg)
{
	return m == T->twin_map;
}

static void twin_setup(void)
{
	char path[4096];
	const char *slash;

	T = calloc(1, sizeof(*T));
	cr_assert_not_null(T);
	T->old_map = map_of(dlopen("libid_old.so", RTLD_LAZY | RTLD_NOLOAD));
	T->third_map = map_of(dlopen("libthird.so", RTLD_LAZY | RTLD_NOLOAD));
	slash = strrchr(T->third_map->l_name, '/');
	cr_assert_not_null(slash);
	snprintf(path, sizeof(path), "%.*s/libid_twn.so", (int)(slash - T->third_map->l_name), T->third_map->l_name);
	T->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
	T->twin_map = map_of(T->handle);
	T->old_modid = fs_rebind_tls_modid(T->old_map);
	T->twin_modid = fs_rebind_tls_modid(T->twin_map);
	cr_assert_neq(T->old_modid, 0);
	cr_assert_neq(T->twin_modid, 0);
	cr_assert_neq(T->old_modid, T->twin_modid);
	cr_assert_eq(pthread_atfork(NULL, NULL, write_in_child), 0);
}

TestSuite(plan, .init = twin_setup, .timeout = 20);

static int make_plan(unsigned flags, struct fs_import *out, size_t max, size_t *n, struct fs_rebind_stats *st,
		     char *err, size_t errlen)
{
	const struct link_map *olds[] = { T->old_map };
	struct fs_rebind_maps old = { olds, 1 };
	struct fs_rebind_target t = {
		.is_old = fs_rebind_in_maps,
		.old_arg = &old,
		.is_new = is_twin,
		.plan_flags = flags,
	};

	return fs_rebind_plan(&t, skip_rebind_lib, out, max, n, st, err, errlen);
}

static const struct fs_import *planned(const struct link_map *object, const char *name, unsigned type)
{
	for (size_t i = 0; i < T->n; i++)
		if (T->imps[i].object == object && strcmp(T->imps[i].name, name) == 0 &&
		    (type == 0 || T->imps[i].type == type))
			return &T->imps[i];
	return NULL;
}

/* The plan for the program and libthird, checked in the parent. */
static void plan_and_check(void)
{
	char err[256] = "";
	const struct fs_import *e;
	const struct link_map *prog = program_map();
	size_t lazy = 0, prog_lazy = 0;

	cr_assert_eq(make_plan(0, T->imps, 64, &T->n, &T->stats, err, sizeof(err)), 0, "%s", err);
	if (getenv("REBIND_VERBOSE") != NULL)
		for (size_t i = 0; i < T->n; i++)
			fprintf(stderr, "%s:%s type %u%s%s slot %p value %#lx holds %p\n",
				T->imps[i].object->l_name[0] ? T->imps[i].object->l_name : "(program)",
				T->imps[i].name, T->imps[i].type, T->imps[i].func ? " func" : "",
				T->imps[i].readonly ? " ro" : "", (void *)T->imps[i].slot,
				(unsigned long)T->imps[i].value, *T->imps[i].slot);
	cr_expect_eq(T->stats.planned, T->n);
	cr_expect_geq(T->n, 8);
	for (size_t i = 0; i < T->n; i++) {
		const struct fs_import *imp = &T->imps[i];

		cr_expect(i == 0 || (uintptr_t)T->imps[i - 1].slot < (uintptr_t)imp->slot, "sorted by slot");
		cr_expect_eq(imp->old_obj, T->old_map, "%s", imp->name);
		cr_expect(imp->object == prog || imp->object == T->third_map, "%s in %s", imp->name,
			  imp->object->l_name);
		/* Bound now, or a lazy PLT slot not called yet. */
		if ((uintptr_t)*imp->slot != imp->value) {
			cr_expect_eq(imp->type, R_X86_64_JUMP_SLOT, "%s holds %p, planned %#lx", imp->name, *imp->slot,
				     (unsigned long)imp->value);
			lazy++;
			prog_lazy += imp->object == prog;
		}
		if (imp->type != R_X86_64_DTPMOD64)
			cr_expect_eq(fs_rebind_translate(T->old_map, T->twin_map, imp->value) - T->twin_map->l_addr,
				     imp->value - T->old_map->l_addr);
	}
	/* libthird is linked -z lazy, and its id_bump not called yet. */
	cr_expect_gt(lazy, 0);
#ifdef REBIND_BOUND_AT_LOAD
	/* The program is linked -z now: its slots all hold their values. */
	cr_expect_eq(prog_lazy, 0);
#endif

	/* What is in it. */
	e = planned(T->third_map, "id_tls", R_X86_64_DTPMOD64);
	cr_assert_not_null(e, "libthird's module id of id_tls");
	cr_expect_eq(e->value, T->old_modid);
	cr_expect(!e->func);
	e = planned(T->third_map, "id_bump", R_X86_64_JUMP_SLOT);
	cr_expect(e != NULL && e->func && !e->readonly);
	e = planned(T->third_map, "id_name", R_X86_64_GLOB_DAT);
#ifdef __PIE__
	cr_expect(e != NULL && e->func && e->readonly);
#else
	/* Bound to the program's PLT entry standing for id_name. */
	cr_expect_null(e);
#endif
	e = planned(T->third_map, "id_fast", R_X86_64_64);
	cr_assert_not_null(e, "the IFUNC in libthird's table");
	cr_expect(e->func && e->readonly);
	cr_expect_eq(e->value, (uintptr_t)dlsym(dlopen("libid_old.so", RTLD_LAZY | RTLD_NOLOAD), "id_fast"),
		     "the implementation the resolver chose");
	e = planned(T->third_map, "id_array", R_X86_64_64);
	cr_assert_not_null(e);
	cr_expect(!e->func && e->readonly);
	cr_expect_eq(e->value, (uintptr_t)dlsym(dlopen("libid_old.so", RTLD_LAZY | RTLD_NOLOAD), "id_array") +
				       2 * sizeof(int),
		     "S + A");
	/* PIE: a GOT load; not PIE: its PLT slot, behind the PLT entry
	 * standing for id_name. */
	e = planned(prog, "id_name", 0);
	cr_assert_not_null(e);
	cr_expect_eq(e->value, (uintptr_t)dlsym(dlopen("libid_old.so", RTLD_LAZY | RTLD_NOLOAD), "id_name"));
	/* Not in it: the interposer's, the program's copy of id_counter. */
	cr_expect_null(planned(T->third_map, "id_hooked", 0));
	cr_expect_null(planned(T->third_map, "id_counter", 0));
	cr_expect_null(planned(prog, "id_tls", 0));
	cr_expect_geq(T->stats.readonly, 3);
	cr_expect_eq(T->stats.modids, 1);
	cr_expect_eq(T->stats.dtpoffs, 1);
	cr_expect_eq(T->stats.tpoffs, 1, "the program's initial-exec id_tls");
	cr_expect_eq(T->stats.tls, 1);
	cr_expect_str_eq(T->stats.first_missing, "id_tls");
	cr_expect_eq(T->stats.odd, 0);
	cr_expect_eq(T->stats.ncopies, 1);
	cr_expect_eq(T->stats.copies[0].addr, (void *)&id_counter);
}

/* Where an address lies: "old", "twin", "hook", ... */
static const char *lib_of(const void *a)
{
	Dl_info info;

	if (dladdr(a, &info) == 0 || info.dli_fname == NULL)
		return "?";
	if (ends_with(info.dli_fname, "/libid_old.so"))
		return "old";
	if (ends_with(info.dli_fname, "/libid_twn.so"))
		return "twin";
	if (ends_with(info.dli_fname, "/libhook.so"))
		return "hook";
	return info.dli_fname;
}

/* In the child: what fails goes to the pipe. */
static char child_msg[4096];

#define CHILD_CHECK(cond, ...)                                                                  \
	do {                                                                                    \
		if (!(cond)) {                                                                  \
			size_t at_ = strlen(child_msg);                                         \
			snprintf(child_msg + at_, sizeof(child_msg) - at_, "%s:%d: %s: ", __FILE__, \
				 __LINE__, #cond);                                              \
			at_ = strlen(child_msg);                                                \
			snprintf(child_msg + at_, sizeof(child_msg) - at_, __VA_ARGS__);        \
			at_ = strlen(child_msg);                                                \
			snprintf(child_msg + at_, sizeof(child_msg) - at_, "\n");               \
		}                                                                               \
	} while (0)

#define CHILD_STR(expr, want) \
	do { const char *s_ = (expr); CHILD_CHECK(strcmp(s_, want) == 0, "%s", s_); } while (0)

static void child_checks(void)
{
	void *h = T->handle;
	char *maps;

	CHILD_CHECK(T->write_rc == 0, "%s", T->write_err);
	/* Every planned slot holds what twin_value chose. */
	for (size_t i = 0; i < T->n; i++) {
		const struct fs_import *imp = &T->imps[i];
		uintptr_t want;

		if (strcmp(imp->name, "id_only_old") == 0)
			want = T->before[i];
		else if (imp->object == T->third_map && strcmp(imp->name, "id_ver") == 0)
			want = (uintptr_t)stub_ver;
		else if (imp->type == R_X86_64_DTPMOD64)
			want = T->twin_modid;
		else
			want = imp->value - T->old_map->l_addr + T->twin_map->l_addr;
		CHILD_CHECK((uintptr_t)*imp->slot == want, "%s: %p, not %#lx", imp->name, *imp->slot,
			    (unsigned long)want);
	}
	/* Calls: the strings they return are the twin's. */
	CHILD_STR(lib_of(id_name()), "twin");
	CHILD_STR(lib_of(third_call()), "twin");
	CHILD_STR(lib_of(third_fp()()), "twin");
	CHILD_STR(lib_of(third_table()[0]()), "twin");
	CHILD_STR(lib_of(third_table()[1]()), "twin");
	CHILD_STR(lib_of(id_fast()), "twin");
	CHILD_STR(lib_of(id_ver()), "twin");
	CHILD_STR(third_ver0(), "stub");
	CHILD_STR(third_hooked(), "hook");
	CHILD_STR(lib_of(id_only_old()), "old");
#ifdef __PIE__
	CHILD_CHECK((void *)&id_name == dlsym(h, "id_name"), "%p", (void *)&id_name);
	CHILD_STR(lib_of((void *)third_fp()), "twin");
#endif
	/* Data. */
	CHILD_CHECK(*third_array_ptr() == (int *)dlsym(h, "id_array") + 2, "%p", (void *)*third_array_ptr());
	/* The twin's own counter, untouched so far; the program's copy stays. */
	CHILD_CHECK(third_bump() == 101, "twin's counter");
	CHILD_CHECK(id_counter == 103, "%d", id_counter);
	/* The thread-local: libthird's reaches the twin's instance, fresh;
	 * the program's initial-exec access cannot move. */
	CHILD_CHECK(third_tls_addr() == dlsym(h, "id_tls"), "%p %p", (void *)third_tls_addr(), dlsym(h, "id_tls"));
	CHILD_CHECK(third_tls_get() == 100, "%d", third_tls_get());
	CHILD_CHECK(id_tls == 555, "%d", id_tls);
	/* Protections as the loader left them. */
	maps = our_lines(read_maps());
	CHILD_CHECK(strcmp(maps, T->maps_before) == 0, "maps before:\n%s\nafter:\n%s", T->maps_before, maps);
}

static void plan_fork_write(bool called_before)
{
	int fds[2], status;
	pid_t pid;
	char msg[4096];
	ssize_t r;
	size_t got = 0;

	if (called_before) {
		cr_assert_str_eq(id_name(), "old");
		cr_assert_str_eq(third_call(), "old");
		cr_assert_str_eq(third_ver0(), "old ID_0");
		cr_assert_str_eq(id_ver(), "old ID_1");
		cr_assert_str_eq(id_fast(), "old ifunc");
	}
	/* The old set's state, told apart from the twin's. */
	id_tls = 555;
	while (id_counter < 103)
		id_bump();
	plan_and_check();
	for (size_t i = 0; i < T->n; i++)
		T->before[i] = (uintptr_t)*T->imps[i].slot;
	T->maps_before = our_lines(read_maps());
	cr_assert_eq(pipe(fds), 0);
	armed = true;
	pid = fork();
	armed = false;
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		close(fds[0]);
		child_checks();
		if (write(fds[1], child_msg, strlen(child_msg)) < 0)
			_exit(3);
		_exit(0);
	}
	close(fds[1]);
	while (got + 1 < sizeof(msg) && (r = read(fds[0], msg + got, sizeof(msg) - 1 - got)) > 0)
		got += (size_t)r;
	msg[got] = '\0';
	close(fds[0]);
	cr_assert_eq(waitpid(pid, &status, 0), pid);
	cr_expect(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %#x", status);
	cr_expect_str_eq(msg, "", "in the child:\n%s", msg);

	/* The parent is untouched. */
	for (size_t i = 0; i < T->n; i++)
		cr_expect_eq((uintptr_t)*T->imps[i].slot, T->before[i], "%s", T->imps[i].name);
	cr_expect_str_eq(id_name(), "old");
	cr_expect_str_eq(third_call(), "old");
	cr_expect_str_eq(third_ver0(), "old ID_0");
	cr_expect_eq(third_tls_addr(), &id_tls);
	cr_expect_eq(third_tls_get(), 555);
	cr_expect_eq(third_bump(), 104);
}

Test(plan, written_in_child_after_calls)
{
	plan_fork_write(true);
}

Test(plan, written_in_child_never_called)
{
	plan_fork_write(false);
}

Test(plan, direct_clients_only)
{
	struct fs_import *all = calloc(64, sizeof(*all)), *direct = calloc(64, sizeof(*direct));
	struct fs_rebind_stats *st = malloc(sizeof(*st)), *dst = malloc(sizeof(*dst));
	size_t n = 0, dn = 0;
	char err[256] = "";

	cr_assert_eq(make_plan(0, all, 64, &n, st, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(make_plan(FS_REBIND_PLAN_DIRECT, direct, 64, &dn, dst, err, sizeof(err)), 0, "%s", err);
	/* The program and libthird name libid_old; libhook, libc and the
	 * rest do not, and import nothing from it. */
	cr_expect_eq(dst->objects, 2);
	cr_expect_gt(st->objects, dst->objects);
	cr_assert_eq(dn, n);
	cr_expect_eq(memcmp(all, direct, n * sizeof(*all)), 0);
}

Test(plan, too_small)
{
	struct fs_import one[1];
	struct fs_rebind_stats *st = malloc(sizeof(*st));
	size_t n = 0, n2 = 0;
	char err[256] = "";

	cr_assert_eq(make_plan(0, one, 1, &n, st, err, sizeof(err)), -1);
	cr_expect_gt(n, 1);
	cr_expect(strstr(err, "needs") != NULL, "%s", err);
	cr_assert_eq(make_plan(0, NULL, 0, &n2, st, err, sizeof(err)), -1);
	cr_expect_eq(n2, n);
}

Test(plan, translate_and_modid)
{
	void *old = dlopen("libid_old.so", RTLD_LAZY | RTLD_NOLOAD);
	size_t modid = 0;

	cr_expect_eq(fs_rebind_translate(T->old_map, T->twin_map, (uintptr_t)dlsym(old, "id_array")),
		     (uintptr_t)dlsym(T->handle, "id_array"));
	cr_expect_eq(dlinfo(T->handle, RTLD_DI_TLS_MODID, &modid), 0);
	cr_expect_eq(T->twin_modid, modid);
	cr_expect_eq(fs_rebind_tls_modid(T->third_map), 0, "no TLS of its own");
}

/* A read-only slot whose value does not change costs no mprotect, and one
 * that changes leaves its page read-only; a NULL value_of is refused. */
static uintptr_t same(const struct fs_import *imp, void *arg)
{
	return (uintptr_t)*imp->slot;
}

Test(plan, write_leaves_and_refuses)
{
	char err[256] = "";
	struct fs_import imp;
	const struct fs_import *e;
	char *before, *after;

	plan_and_check();
	e = planned(T->third_map, "id_array", R_X86_64_64);
	cr_assert_not_null(e);
	imp = *e;
	before = our_lines(read_maps());
	cr_expect_eq(fs_rebind_write(T->imps, T->n, same, NULL, err, sizeof(err)), 0, "%s", err);
	cr_expect_eq((uintptr_t)*imp.slot, imp.value);
	after = our_lines(read_maps());
	cr_expect_str_eq(after, before);
	cr_expect_eq(fs_rebind_write(&imp, 1, NULL, NULL, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "no value_of given");
}
