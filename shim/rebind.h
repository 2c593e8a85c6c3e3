/* Re-pointing imports from one set of loaded libraries (the old gRPC) to the
 * same symbols in another (fresh copies loaded in a child), in every other
 * loaded object. x86-64 only. */
#ifndef FORKSAFE_REBIND_H
#define FORKSAFE_REBIND_H

#include <link.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs_rebind_slot;

struct fs_rebind_target {
	/* The old set: an import whose definition lies in an object this
	 * accepts is re-pointed. Required. */
	bool (*is_old)(const struct link_map *map, const void *arg);
	const void *old_arg;
	/* The new set, searched in this order with dlsym/dlvsym. */
	void *const *handles;
	size_t nhandles;
	/* Which objects count as the new set: a definition a handle's lookup
	 * finds elsewhere (in libc, say, through the handle's dependencies) is
	 * refused. NULL: the handles' own objects. */
	bool (*is_new)(const struct link_map *map, const void *arg);
	const void *new_arg;
	/* Told of every import of a symbol some old object defines, whatever
	 * became of it. Optional; it must not call into the old set. */
	void (*report)(const struct fs_rebind_slot *slot, void *arg);
	void *report_arg;
};

/* For is_old/is_new: the arg is a struct fs_rebind_maps. */
struct fs_rebind_maps {
	const struct link_map *const *maps;
	size_t n;
};
bool fs_rebind_in_maps(const struct link_map *map, const void *maps);

enum fs_rebind_outcome {
	FS_REBIND_REWRITTEN,  /* bound to the old set; now to the new */
	FS_REBIND_ELSEWHERE,  /* bound outside the old set (an interposer, the program's copy): left */
	FS_REBIND_MISSING,    /* bound to the old set, which the new set lacks: left */
	FS_REBIND_UNRESOLVED, /* bound nowhere the lookups see (an undefined weak): left */
	FS_REBIND_TLS,        /* a thread-local variable of the old set: left, cannot be re-pointed */
	FS_REBIND_COPY,       /* a copy relocation of the old set's data: see fs_rebind_stats.copies */
};

struct fs_rebind_slot {
	const struct link_map *object; /* whose import */
	const char *name;
	const char *version; /* NULL: unversioned */
	unsigned type;       /* R_X86_64_* */
	void *slot;          /* the word the relocation wrote */
	uintptr_t before, after;
	enum fs_rebind_outcome outcome;
};

/* Data the program copied from the old set at load time (R_X86_64_COPY):
 * the program and everybody bound to it use `addr`, which nothing here
 * changes. fs_rebind_copy_refresh() copies the new set's bytes over it. */
struct fs_rebind_copy {
	const struct link_map *object; /* holds the copy: the program */
	const char *name;              /* in the object's string table */
	const char *version;
	void *addr;
	size_t size;
	const void *old_def;
	const void *new_def; /* NULL: the new set does not define it */
	size_t new_size;
};

#define FS_REBIND_MAX_COPIES 16

struct fs_rebind_stats {
	size_t objects;   /* objects walked (not skipped) */
	size_t relocs;    /* symbol relocations of the handled types seen */
	size_t rewritten;
	size_t left;      /* not bound to the old set */
	size_t missing;   /* FS_REBIND_MISSING */
	size_t tls;       /* FS_REBIND_TLS */
	size_t odd;       /* relocations or objects skipped as malformed */
	char first_missing[128]; /* name of the first missing or TLS symbol */
	size_t ncopies;   /* all seen; the first FS_REBIND_MAX_COPIES are kept */
	struct fs_rebind_copy copies[FS_REBIND_MAX_COPIES];
};

/*
 * Walks every object of the main link-map list except the old set, the new
 * set and those `skip` accepts (may be NULL), and re-points each import
 * (R_X86_64_JUMP_SLOT, GLOB_DAT, 64) that binds to the old set to the same
 * symbol and version in the new set. Where an import binds is decided from
 * the symbol, not from the slot, so lazy slots still on their PLT stub are
 * re-pointed too. Read-only pages (RELRO) are made writable for the write
 * and protected again. Copy relocations of old data are listed in `out`.
 *
 * Returns 0, or -1 with a message in err when it could not walk the objects,
 * the old set is loaded but no object of the new set is, or a page's
 * protection could not be changed (slots already written stay written).
 * With no old object loaded it does nothing and returns 0. Symbols the new
 * set lacks are not an error: see out->missing.
 *
 * Not thread-safe: meant for a child's only thread, before anything calls
 * the old or new set, with nothing loading or unloading objects meanwhile.
 * Allocates with malloc.
 */
int fs_rebind_imports(const struct fs_rebind_target *t, bool (*skip)(const struct link_map *),
		      struct fs_rebind_stats *out, char *err, size_t errlen);

/* Copies the new definition's current bytes over the program's copy.
 * Returns 0, or -1 with a message (no new definition, sizes differ). */
int fs_rebind_copy_refresh(const struct fs_rebind_copy *c, char *err, size_t errlen);

#endif
