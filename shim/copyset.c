/*
 * Private copies of gRPC's libraries, for a child that must not run the gRPC
 * it inherited (see copyset.h and docs/design.md).
 *
 * The closure is taken from what the process has loaded, not from what the
 * loader would find on disk today: the copies must be of the very files
 * running in the parent, and in a process already running generation g-1
 * copies, of those. Each loaded object's file is read for its soname and
 * DT_NEEDED; its build id is compared with the one in memory, so a library
 * upgraded on disk since it was loaded is never copied in its place.
 *
 * The cache key hashes every member's path, device, inode, size and
 * modification time: an upgraded library gives another key, so stale copies
 * are never reused (they stay behind, for the user to remove). A set is
 * written into a temporary directory and renamed into place; rename() fails
 * on a non-empty target, so when sibling children race, one set wins and the
 * others remove theirs and load the winner's. Everything is done relative to
 * one descriptor of the cache directory, checked once, so the directory
 * cannot be swapped for another between the check and the use.
 *
 * The copies are loaded by absolute path, dependencies first: each then
 * finds the copies it needs by soname among the loaded objects, with no run
 * path and no search. RTLD_DEEPBIND makes a copy bind to itself and its own
 * dependencies before the process's global scope, where the inherited gRPC
 * is; RTLD_LOCAL keeps the copies out of that scope.
 */
#include "copyset.h"

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <link.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bsd/stdlib.h>

#include "elfcopy.h"
#include "log.h"

/* Part of every cache key: a change to what a copy holds changes it. */
#define FORMAT "grpc-forksafe copy set 1: elfcopy rename+weaken"

/* glibc's own libraries and the C++ runtime: one instance per process. */
static const char *const runtime[] = { "libc.so.",	"libm.so.",	  "libmvec.so.",   "libstdc++.so.",
				       "libgcc_s.so.",	"ld-linux",	  "linux-vdso.so.", "libpthread.so.",
				       "libdl.so.",	"librt.so.",	  "libresolv.so.",  "libutil.so.",
				       "libanl.so." };

static bool is_runtime(const char *soname)
{
	for (size_t i = 0; i < sizeof(runtime) / sizeof(runtime[0]); i++)
		if (strncmp(soname, runtime[i], strlen(runtime[i])) == 0)
			return true;
	return false;
}

static void *fail_at(char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void *fail_at(char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	if (errsize > 0) {
		va_start(ap, fmt);
		vsnprintf(err, errsize, fmt, ap);
		va_end(ap);
	}
	return NULL;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- the cache directory ---------------------------------------------------- */

bool fs_copyset_default_dir(char *buf, size_t size)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (xdg != NULL && xdg[0] == '/')
		n = snprintf(buf, size, "%s/grpc-forksafe", xdg);
	else
		n = snprintf(buf, size, "/tmp/grpc-forksafe-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= size) {
		if (size > 0)
			buf[0] = '\0';
		return false;
	}
	return true;
}

static int refuse(int fd, char *err, size_t errsize, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static int refuse(int fd, char *err, size_t errsize, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errsize, fmt, ap);
	va_end(ap);
	fs_log(FS_WARN, "copyset: %s", err);
	if (fd >= 0)
		close(fd);
	return -1;
}

int fs_copyset_cache_open(const char *path, char *err, size_t errsize)
{
	struct stat st;
	int fd;

	if (mkdir(path, 0700) != 0 && errno != EEXIST) {
		fail_at(err, errsize, "cannot create the cache directory %s: %s", path, strerror(errno));
		return -1;
	}
	fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;

		if ((e == ELOOP || e == ENOTDIR) && lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
			return refuse(-1, err, errsize, "refusing the cache directory %s: it is a symbolic link",
				      path);
		if (e == ENOTDIR)
			return refuse(-1, err, errsize, "refusing the cache directory %s: not a directory", path);
		fail_at(err, errsize, "cannot open the cache directory %s: %s", path, strerror(e));
		return -1;
	}
	if (fstat(fd, &st) != 0) {
		fail_at(err, errsize, "cannot stat the cache directory %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	if (st.st_uid != geteuid())
		return refuse(fd, err, errsize, "refusing the cache directory %s: owned by uid %u, not by uid %u",
			      path, (unsigned)st.st_uid, (unsigned)geteuid());
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0)
		return refuse(fd, err, errsize,
			      "refusing the cache directory %s: writable by group or others (mode %03o)", path,
			      (unsigned)(st.st_mode & 07777));
	return fd;
}

/* --- the loaded objects ------------------------------------------------------ */

struct obj {
	char *path;    /* as the loader named it */
	uintptr_t addr; /* load bias */
	size_t tls_modid;
	const ElfW(Phdr) *phdr;
	ElfW(Half) phnum;
	/* From the file, when it could be read. */
	unsigned char *map;
	size_t size;
	struct stat st;
	struct fs_elfcopy_names names;
	/* In the set: its index there, or -1. */
	int member;
};

struct objs {
	struct obj *v;
	size_t n, cap;
};

static int collect(struct dl_phdr_info *info, size_t size, void *data)
{
	struct objs *o = data;

	if (o->n == o->cap) {
		size_t cap = o->cap ? o->cap * 2 : 64;
		struct obj *v = reallocarray(o->v, cap, sizeof(*v));

		if (v == NULL)
			return 1;
		o->v = v;
		o->cap = cap;
	}
	memset(&o->v[o->n], 0, sizeof(o->v[o->n]));
	o->v[o->n].path = strdup(info->dlpi_name != NULL ? info->dlpi_name : "");
	if (o->v[o->n].path == NULL)
		return 1;
	o->v[o->n].addr = info->dlpi_addr;
	o->v[o->n].tls_modid = info->dlpi_tls_modid;
	o->v[o->n].phdr = info->dlpi_phdr;
	o->v[o->n].phnum = info->dlpi_phnum;
	o->v[o->n].member = -1;
	o->n++;
	return 0;
}

static void objs_free(struct objs *o)
{
	for (size_t i = 0; i < o->n; i++) {
		free(o->v[i].path);
		if (o->v[i].map != NULL)
			munmap(o->v[i].map, o->v[i].size);
	}
	free(o->v);
	memset(o, 0, sizeof(*o));
}

/* Maps a loaded object's file (privately writable: the edit is made in the
 * mapping and only the pages it changes are copied) and reads its names.
 * Objects without a file (the program, the vDSO) are left unread. */
static void read_file(struct obj *ob)
{
	int fd;

	if (strchr(ob->path, '/') == NULL)
		return;
	fd = open(ob->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	if (fstat(fd, &ob->st) == 0 && S_ISREG(ob->st.st_mode) && ob->st.st_size > 0) {
		void *m = mmap(NULL, (size_t)ob->st.st_size, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);

		if (m != MAP_FAILED) {
			ob->map = m;
			ob->size = (size_t)ob->st.st_size;
			if (fs_elfcopy_names(ob->map, ob->size, &ob->names) != NULL)
				memset(&ob->names, 0, sizeof(ob->names));
		}
	}
	close(fd);
}

/* The build id of the object as loaded, from its PT_NOTE segments. */
static bool loaded_build_id(const struct obj *ob, const uint8_t **id, size_t *len)
{
	for (ElfW(Half) i = 0; i < ob->phnum; i++)
		if (ob->phdr[i].p_type == PT_NOTE &&
		    fs_elfcopy_find_build_id((const unsigned char *)(ob->addr + ob->phdr[i].p_vaddr),
					     ob->phdr[i].p_memsz, id, len))
			return true;
	return false;
}

/* The loaded object a DT_NEEDED name designates: by soname, as the loader
 * matched it, or by file name for a library without one. */
static struct obj *find_needed(struct objs *o, const char *name)
{
	for (size_t i = 0; i < o->n; i++)
		if (o->v[i].names.soname != NULL && strcmp(o->v[i].names.soname, name) == 0)
			return &o->v[i];
	for (size_t i = 0; i < o->n; i++) {
		const char *base = strrchr(o->v[i].path, '/');

		if (base != NULL && strcmp(base + 1, name) == 0)
			return &o->v[i];
	}
	return NULL;
}

/* "grpc.so.29" for "libgrpc.so.29" and "g01grpc.so.29". */
static bool named(const struct obj *ob, const char *stem)
{
	const char *s = ob->names.soname;

	return s != NULL && fs_elfcopy_generation(s) >= 0 &&
	       strncmp(s + FS_ELFCOPY_TAG_LEN, stem, strlen(stem)) == 0;
}

/* --- the set ----------------------------------------------------------------- */

struct member {
	struct obj *ob;
	char newname[256];
	int *deps; /* indices of members it needs */
	size_t ndeps;
	int state; /* for the load order: 0 new, 1 in progress, 2 placed */
	struct fs_elfcopy_counts counts; /* what the edit changed, when this call made the copy */
};

struct set {
	struct member *m;
	size_t n;
	int *order; /* member indices, dependencies first */
	size_t norder;
};

static void set_free(struct set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->m[i].deps);
	free(s->m);
	free(s->order);
	memset(s, 0, sizeof(*s));
}

static int add_member(struct set *s, struct obj *ob, unsigned gen, char *err, size_t errsize)
{
	const char *why;
	struct member *m;
	const uint8_t *file_id, *mem_id;
	size_t file_len, mem_len;

	if (ob->map == NULL || ob->names.soname == NULL) {
		fail_at(err, errsize, "cannot read the soname of %s", ob->path);
		return -1;
	}
	if (ob->names.build_id != NULL && loaded_build_id(ob, &mem_id, &mem_len)) {
		file_id = ob->names.build_id;
		file_len = ob->names.build_id_len;
		if (file_len != mem_len || memcmp(file_id, mem_id, file_len) != 0) {
			fail_at(err, errsize, "%s on disk is not the file loaded (another build id): upgraded since "
					      "the program started?", ob->path);
			return -1;
		}
	}
	m = &s->m[s->n];
	memset(m, 0, sizeof(*m));
	m->ob = ob;
	if ((why = fs_elfcopy_rename(ob->names.soname, gen, m->newname, sizeof(m->newname))) != NULL) {
		fail_at(err, errsize, "cannot rename %s (%s): %s", ob->names.soname, ob->path, why);
		return -1;
	}
	ob->member = (int)s->n;
	return (int)s->n++;
}

/* The closure of the roots through DT_NEEDED, runtime left out. */
static void *closure(struct set *s, struct objs *o, struct obj **roots, size_t nroots, unsigned gen, char *err,
		     size_t errsize)
{
	s->m = calloc(o->n, sizeof(*s->m));
	if (s->m == NULL)
		return fail_at(err, errsize, "out of memory");
	for (size_t r = 0; r < nroots; r++)
		if (roots[r]->member < 0 && add_member(s, roots[r], gen, err, errsize) < 0)
			return NULL;
	/* s->n grows while walking: breadth first. */
	for (size_t i = 0; i < s->n; i++) {
		struct member *m = &s->m[i];
		const struct fs_elfcopy_names *nm = &m->ob->names;

		m->deps = calloc(nm->nneeded ? nm->nneeded : 1, sizeof(*m->deps));
		if (m->deps == NULL)
			return fail_at(err, errsize, "out of memory");
		for (size_t k = 0; k < nm->nneeded; k++) {
			struct obj *dep;
			int idx;

			if (is_runtime(nm->needed[k]))
				continue;
			dep = find_needed(o, nm->needed[k]);
			if (dep == NULL)
				return fail_at(err, errsize, "%s needs %s, which is not loaded", m->ob->path,
					       nm->needed[k]);
			if (dep->names.soname != NULL && is_runtime(dep->names.soname))
				continue;
			idx = dep->member >= 0 ? dep->member : add_member(s, dep, gen, err, errsize);
			if (idx < 0)
				return NULL;
			m = &s->m[i]; /* unchanged: s->m was sized for every object */
			m->deps[m->ndeps++] = idx;
		}
	}
	return s;
}

/* Depth first: each member after everything it needs. */
static bool place(struct set *s, int i)
{
	struct member *m = &s->m[i];

	if (m->state == 2)
		return true;
	if (m->state == 1)
		return false; /* a cycle */
	m->state = 1;
	for (size_t k = 0; k < m->ndeps; k++)
		if (!place(s, m->deps[k]))
			return false;
	m->state = 2;
	s->order[s->norder++] = i;
	return true;
}

static void *load_order(struct set *s, char *err, size_t errsize)
{
	s->order = calloc(s->n ? s->n : 1, sizeof(*s->order));
	if (s->order == NULL)
		return fail_at(err, errsize, "out of memory");
	for (size_t i = 0; i < s->n; i++)
		if (!place(s, (int)i))
			return fail_at(err, errsize, "a dependency cycle through %s", s->m[i].ob->names.soname);
	return s;
}

/* FNV-1a, 64 bits: not for secrecy (the directory is the user's own), only
 * so that different files give different names. */
static uint64_t hash(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint64_t key_of(const struct set *s)
{
	uint64_t h = hash(0xcbf29ce484222325ull, FORMAT, sizeof(FORMAT));

	for (size_t k = 0; k < s->norder; k++) {
		const struct obj *ob = s->m[s->order[k]].ob;
		uint64_t id[6] = { (uint64_t)ob->st.st_dev,	  (uint64_t)ob->st.st_ino,
				   (uint64_t)ob->st.st_size,	  (uint64_t)ob->st.st_mtim.tv_sec,
				   (uint64_t)ob->st.st_mtim.tv_nsec, 0 };

		h = hash(h, ob->path, strlen(ob->path) + 1);
		h = hash(h, id, sizeof(id));
	}
	return h;
}

/* --- writing the set ------------------------------------------------------------ */

/* Removes the directory name in cfd and the files in it (the set's, no
 * subdirectories). Best effort. */
static void remove_dir(int cfd, const char *name, const struct set *s)
{
	int dfd = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

	if (dfd >= 0) {
		for (size_t i = 0; i < s->n; i++)
			unlinkat(dfd, s->m[i].newname, 0);
		close(dfd);
	}
	unlinkat(cfd, name, AT_REMOVEDIR);
}

static bool write_all(int fd, const unsigned char *p, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return false;
		p += w;
		n -= (size_t)w;
	}
	return true;
}

/* Writes every member's edited copy into the new directory tmp. */
static void *write_set(int cfd, const char *tmp, struct set *s, unsigned gen, char *err, size_t errsize)
{
	/* The sonames as they are now, copied: each member's own points into
	 * the mapping its edit renames, and the next members' edits must still
	 * find the old name in their DT_NEEDED. */
	char(*names)[256] = calloc(s->n, sizeof(*names));
	const char **set = calloc(s->n, sizeof(*set));
	int dfd = -1;
	void *ok = NULL;

	if (names == NULL || set == NULL) {
		fail_at(err, errsize, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < s->n; i++) {
		snprintf(names[i], sizeof(names[i]), "%s", s->m[i].ob->names.soname);
		set[i] = names[i];
	}
	dfd = openat(cfd, tmp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0) {
		fail_at(err, errsize, "cannot open %s: %s", tmp, strerror(errno));
		goto out;
	}
	for (size_t i = 0; i < s->n; i++) {
		struct member *m = &s->m[i];
		const char *why = fs_elfcopy_transform(m->ob->map, m->ob->size, gen, set, s->n, &m->counts);
		int fd;

		if (why != NULL) {
			fail_at(err, errsize, "cannot edit a copy of %s: %s", m->ob->path, why);
			goto out;
		}
		fd = openat(dfd, m->newname, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0500);
		if (fd < 0) {
			fail_at(err, errsize, "cannot create %s/%s: %s", tmp, m->newname, strerror(errno));
			goto out;
		}
		if (!write_all(fd, m->ob->map, m->ob->size)) {
			fail_at(err, errsize, "cannot write %s/%s: %s", tmp, m->newname, strerror(errno));
			close(fd);
			goto out;
		}
		if (close(fd) != 0) {
			fail_at(err, errsize, "cannot write %s/%s: %s", tmp, m->newname, strerror(errno));
			goto out;
		}
	}
	ok = s;
out:
	if (dfd >= 0)
		close(dfd);
	free(names);
	free(set);
	return ok;
}

enum state { SET_ABSENT, SET_COMPLETE, SET_DAMAGED };

/* Whether the directory name in cfd is there and holds every member's copy,
 * whole. Only complete sets are renamed into place, so a damaged one comes
 * from a machine that crashed before the data reached the disk, or from
 * someone's hand. */
static enum state set_state(int cfd, const char *name, const struct set *s)
{
	int dfd = openat(cfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	bool ok = true;

	if (dfd < 0)
		return errno == ENOENT ? SET_ABSENT : SET_DAMAGED;
	for (size_t i = 0; ok && i < s->n; i++)
		ok = fstatat(dfd, s->m[i].newname, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
		     st.st_uid == geteuid() && (size_t)st.st_size == s->m[i].ob->size;
	close(dfd);
	return ok ? SET_COMPLETE : SET_DAMAGED;
}

/* Moves a damaged set out of the way, under a name of this process's own
 * (so that two processes never remove the same one), and removes it. What
 * was moved is checked again: a sibling may have put a complete set in its
 * place meanwhile, which then goes back. */
static void discard_damaged(int cfd, const char *final, const struct set *s)
{
	char aside[128];

	snprintf(aside, sizeof(aside), ".damaged-%s-%d-%08" PRIx32, final, (int)getpid(), arc4random());
	if (renameat(cfd, final, cfd, aside) != 0)
		return;
	if (set_state(cfd, aside, s) == SET_COMPLETE && renameat(cfd, aside, cfd, final) == 0)
		return;
	fs_log(FS_WARN, "copyset: removing the damaged copy set %s from the cache", final);
	remove_dir(cfd, aside, s);
}

/* Makes sure the set's directory `final` exists in cfd: reused, or written
 * now (then *built; *lost_race when another process's set came first). */
static void *ensure_set(int cfd, const char *final, struct set *s, unsigned gen, bool *built, bool *lost_race,
			char *err, size_t errsize)
{
	char tmp[128];
	enum state st;

	*built = *lost_race = false;
	if ((st = set_state(cfd, final, s)) == SET_COMPLETE)
		return s;
	if (st == SET_DAMAGED)
		discard_damaged(cfd, final, s);

	snprintf(tmp, sizeof(tmp), ".tmp-%s-%d-%08" PRIx32, final, (int)getpid(), arc4random());
	if (mkdirat(cfd, tmp, 0700) != 0)
		return fail_at(err, errsize, "cannot create %s in the cache: %s", tmp, strerror(errno));
	if (write_set(cfd, tmp, s, gen, err, errsize) == NULL) {
		remove_dir(cfd, tmp, s);
		return NULL;
	}
	if (renameat(cfd, tmp, cfd, final) == 0) {
		*built = true;
		return s;
	}
	int e = errno;

	remove_dir(cfd, tmp, s);
	if ((e == ENOTEMPTY || e == EEXIST) && set_state(cfd, final, s) == SET_COMPLETE) {
		*lost_race = true; /* a sibling's set won: use it */
		return s;
	}
	return fail_at(err, errsize, "cannot rename %s to %s in the cache: %s", tmp, final, strerror(e));
}

/* --- loading ---------------------------------------------------------------------- */

struct ranges {
	struct fs_copyset_range *v;
	size_t n, cap;
};

static bool add_range(struct ranges *r, uintptr_t start, uintptr_t end)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 64;
		struct fs_copyset_range *v = reallocarray(r->v, cap, sizeof(*v));

		if (v == NULL)
			return false;
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n].start = start;
	r->v[r->n].end = end;
	r->n++;
	return true;
}

static bool add_object_ranges(struct ranges *r, uintptr_t addr, const ElfW(Phdr) *ph, size_t phnum)
{
	for (size_t i = 0; i < phnum; i++)
		if (ph[i].p_type == PT_LOAD && ph[i].p_memsz > 0 &&
		    !add_range(r, addr + ph[i].p_vaddr, addr + ph[i].p_vaddr + ph[i].p_memsz))
			return false;
	return true;
}

static int by_start(const void *a, const void *b)
{
	const struct fs_copyset_range *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

static bool in_ranges(const struct fs_copyset_range *v, size_t n, uintptr_t a)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (a < v[mid].start)
			hi = mid;
		else if (a >= v[mid].end)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

struct find_map {
	const struct link_map *lm;
	struct ranges *r;
	bool found, ok;
};

static int find_loaded(struct dl_phdr_info *info, size_t size, void *data)
{
	struct find_map *f = data;

	if (info->dlpi_addr != f->lm->l_addr || info->dlpi_name == NULL || f->lm->l_name == NULL ||
	    strcmp(info->dlpi_name, f->lm->l_name) != 0)
		return 0;
	f->found = true;
	f->ok = add_object_ranges(f->r, info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum);
	return 1;
}

static void unload(void **handles, size_t n)
{
	while (n > 0)
		dlclose(handles[--n]);
}

static void *load_set(struct fs_copyset *cs, const struct set *s, struct ranges *fresh, char *err,
		      size_t errsize)
{
	char path[sizeof(cs->dir) + 300];
	size_t loaded = 0;

	for (size_t k = 0; k < s->norder; k++) {
		const struct member *m = &s->m[s->order[k]];
		struct link_map *lm = NULL;
		struct find_map f = { .r = fresh };
		void *h;

		snprintf(path, sizeof(path), "%s/%s", cs->dir, m->newname);
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
		if (h == NULL) {
			const char *why = dlerror();

			fail_at(err, errsize, "cannot load %s: %s", path, why != NULL ? why : "?");
			goto undo;
		}
		cs->handles[loaded++] = h;
		if (dlinfo(h, RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL) {
			fail_at(err, errsize, "no link map for %s", path);
			goto undo;
		}
		f.lm = lm;
		dl_iterate_phdr(find_loaded, &f);
		if (!f.found || !f.ok) {
			fail_at(err, errsize, "cannot find where %s was loaded", path);
			goto undo;
		}
		if (named(m->ob, "grpc.so."))
			cs->grpc = h;
		else if (named(m->ob, "grpc++.so."))
			cs->grpcxx = h;
	}
	return cs;
undo:
	unload(cs->handles, loaded);
	cs->grpc = cs->grpcxx = NULL;
	return NULL;
}

/* --- the members, old and new ------------------------------------------------------ */

static const struct link_map *loaded_map(uintptr_t addr, const char *path)
{
	struct link_map *l = NULL;
	void *self = dlopen(NULL, RTLD_LAZY | RTLD_NOLOAD);

	if (self == NULL || dlinfo(self, RTLD_DI_LINKMAP, &l) != 0)
		l = NULL;
	if (self != NULL)
		dlclose(self);
	for (; l != NULL; l = l->l_next)
		if (l->l_addr == addr && l->l_name != NULL && strcmp(l->l_name, path) == 0)
			return l;
	return NULL;
}

static int by_stem(const void *a, const void *b)
{
	return strcmp(((const struct fs_copyset_member *)a)->stem, ((const struct fs_copyset_member *)b)->stem);
}

/* The members in stem order, so that member k is the same library in every
 * generation (the wiring keeps offsets per member, made once). */
static bool describe_members(struct fs_copyset *cs, const struct set *s)
{
	cs->members = calloc(s->n, sizeof(*cs->members));
	if (cs->members == NULL)
		return false;
	for (size_t k = 0; k < s->norder; k++) {
		const struct member *m = &s->m[s->order[k]];
		struct fs_copyset_member *d = &cs->members[k];
		struct link_map *lm = NULL;
		size_t modid = 0;

		if (strlen(m->newname) < 4 || strlen(m->newname) >= sizeof(d->stem))
			return false;
		strcpy(d->stem, m->newname + 3);
		d->old_map = loaded_map(m->ob->addr, m->ob->path);
		d->old_base = m->ob->addr;
		d->old_tls_modid = m->ob->tls_modid;
		if (d->old_map == NULL || dlinfo(cs->handles[k], RTLD_DI_LINKMAP, &lm) != 0 || lm == NULL)
			return false;
		d->new_map = lm;
		d->new_base = lm->l_addr;
		if (dlinfo(cs->handles[k], RTLD_DI_TLS_MODID, &modid) == 0)
			d->new_tls_modid = modid;
	}
	qsort(cs->members, s->n, sizeof(*cs->members), by_stem);
	return true;
}

const struct fs_copyset_member *fs_copyset_member(const struct fs_copyset *cs, size_t k)
{
	return &cs->members[k];
}

int fs_copyset_member_of(const struct fs_copyset *cs, const struct link_map *map)
{
	for (size_t k = 0; k < cs->nmembers; k++)
		if (cs->members[k].old_map == map)
			return (int)k;
	return -1;
}

bool fs_copyset_owns(const struct fs_copyset *cs, const struct link_map *map)
{
	for (size_t k = 0; k < cs->nmembers; k++)
		if (cs->members[k].old_map == map || cs->members[k].new_map == map)
			return true;
	return false;
}

/* --- the whole ---------------------------------------------------------------------- */

struct fs_copyset *fs_copyset_load(unsigned gen, const struct fs_copyset_opts *opts, char *err, size_t errsize)
{
	struct objs o = { 0 };
	struct set s = { 0 };
	struct ranges old = { 0 }, fresh = { 0 };
	struct fs_copyset *cs = NULL;
	struct obj *roots[2] = { NULL, NULL };
	char cache[sizeof(cs->dir) - 80], final[64];
	double t0 = now_ms(), t1, t2;
	int cfd = -1, from = -1;
	bool built = false, lost_race = false;

	if (gen < 1 || gen > FS_ELFCOPY_MAX_GEN)
		return fail_at(err, errsize, "generation %u out of range 1..%u", gen, FS_ELFCOPY_MAX_GEN);
	if (opts != NULL && opts->cache_dir != NULL) {
		if (snprintf(cache, sizeof(cache), "%s", opts->cache_dir) >= (int)sizeof(cache))
			return fail_at(err, errsize, "cache directory name too long");
	} else if (!fs_copyset_default_dir(cache, sizeof(cache))) {
		return fail_at(err, errsize, "cache directory name too long");
	}

	if (dl_iterate_phdr(collect, &o) != 0) {
		fail_at(err, errsize, "out of memory listing the loaded objects");
		goto out;
	}
	for (size_t i = 0; i < o.n; i++)
		read_file(&o.v[i]);

	/* The newest generation below gen whose libgrpc is loaded. */
	for (size_t i = 0; i < o.n; i++) {
		int g;

		if (!named(&o.v[i], "grpc.so."))
			continue;
		g = fs_elfcopy_generation(o.v[i].names.soname);
		if ((unsigned)g >= gen) {
			fail_at(err, errsize, "generation %d of libgrpc is loaded already (%s)", g, o.v[i].path);
			goto out;
		}
		if (g > from) {
			from = g;
			roots[0] = &o.v[i];
		}
	}
	if (roots[0] == NULL) {
		fail_at(err, errsize, "no libgrpc is loaded in this process");
		goto out;
	}
	for (size_t i = 0; i < o.n && !(opts != NULL && opts->core_only); i++)
		if (named(&o.v[i], "grpc++.so.") && fs_elfcopy_generation(o.v[i].names.soname) == from)
			roots[1] = &o.v[i];

	if (closure(&s, &o, roots, roots[1] != NULL ? 2 : 1, gen, err, errsize) == NULL ||
	    load_order(&s, err, errsize) == NULL)
		goto out;
	for (size_t i = 0; i < s.n; i++)
		if (!add_object_ranges(&old, s.m[i].ob->addr, s.m[i].ob->phdr, s.m[i].ob->phnum)) {
			fail_at(err, errsize, "out of memory");
			goto out;
		}
	snprintf(final, sizeof(final), "%016" PRIx64 "-g%02x", key_of(&s), gen);
	t1 = now_ms();

	if ((cfd = fs_copyset_cache_open(cache, err, errsize)) < 0)
		goto out;
	if (ensure_set(cfd, final, &s, gen, &built, &lost_race, err, errsize) == NULL)
		goto out;
	t2 = now_ms();

	cs = calloc(1, sizeof(*cs));
	if (cs == NULL || (cs->handles = calloc(s.n, sizeof(*cs->handles))) == NULL) {
		fail_at(err, errsize, "out of memory");
		goto out;
	}
	cs->gen = gen;
	cs->from_gen = (unsigned)from;
	cs->nmembers = s.n;
	cs->built = built;
	cs->lost_race = lost_race;
	snprintf(cs->dir, sizeof(cs->dir), "%s/%s", cache, final);
	if (load_set(cs, &s, &fresh, err, errsize) == NULL)
		goto out;
	if (!describe_members(cs, &s)) {
		fail_at(err, errsize, "cannot find the loaded libraries of the set");
		goto out;
	}
	cs->closure_ms = t1 - t0;
	cs->build_ms = built ? t2 - t1 : 0;
	cs->load_ms = now_ms() - t2;
	unsigned renamed = 0, weakened = 0;
	for (size_t i = 0; i < s.n; i++) {
		renamed += s.m[i].counts.renamed;
		weakened += s.m[i].counts.weakened;
	}
	if (built)
		fs_log(FS_INFO, "copyset: generation %u: %zu libraries copied from generation %u into %s "
				"(%u names renamed, %u unique symbols made weak) in %.1f ms, loaded in %.1f ms",
		       gen, s.n, cs->from_gen, cs->dir, renamed, weakened, cs->closure_ms + cs->build_ms,
		       cs->load_ms);
	else
		fs_log(FS_INFO, "copyset: generation %u: %zu libraries reused from %s%s, loaded in %.1f ms", gen,
		       s.n, cs->dir, lost_race ? " (another process wrote it first)" : "",
		       cs->closure_ms + cs->load_ms);

	qsort(old.v, old.n, sizeof(*old.v), by_start);
	qsort(fresh.v, fresh.n, sizeof(*fresh.v), by_start);
	cs->old_ranges = old.v;
	cs->nold = old.n;
	cs->new_ranges = fresh.v;
	cs->nnew = fresh.n;
	old.v = fresh.v = NULL;
	set_free(&s);
	objs_free(&o);
	close(cfd);
	return cs;
out:
	if (cs != NULL) {
		free(cs->handles);
		free(cs->members);
		free(cs);
	}
	free(old.v);
	free(fresh.v);
	set_free(&s);
	objs_free(&o);
	if (cfd >= 0)
		close(cfd);
	return NULL;
}

bool fs_copyset_in_old(const struct fs_copyset *cs, const void *addr)
{
	return in_ranges(cs->old_ranges, cs->nold, (uintptr_t)addr);
}

bool fs_copyset_in_new(const struct fs_copyset *cs, const void *addr)
{
	return in_ranges(cs->new_ranges, cs->nnew, (uintptr_t)addr);
}

void *fs_copyset_sym(const struct fs_copyset *cs, const char *name)
{
	void *p = NULL;

	if (cs->grpcxx != NULL)
		p = dlsym(cs->grpcxx, name);
	if (p == NULL && cs->grpc != NULL)
		p = dlsym(cs->grpc, name);
	return p;
}

void fs_copyset_free(struct fs_copyset *cs)
{
	if (cs == NULL)
		return;
	free(cs->handles);
	free(cs->members);
	free(cs->old_ranges);
	free(cs->new_ranges);
	free(cs);
}
