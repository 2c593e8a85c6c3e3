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
 * id_name). */
#include <criterion/criterion.h>
#include <dlfcn.h>
#include <link.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
	cr_expect_str_eq(stp->first_missing, "id_only_old");
	cr_expect_eq(stp->tls + stp->odd, 0);

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
