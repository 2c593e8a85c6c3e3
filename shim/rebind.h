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
	/* fs_rebind_plan only: FS_REBIND_PLAN_* bits. */
	unsigned plan_flags;
};

/* Walk only the direct clients of the old set: objects with a DT_NEEDED
 * naming an old object's soname. An object that binds to the old set
 * without naming it (underlinked, or a symbol the old set interposes on a
 * library loaded before it) is then missed. */
#define FS_REBIND_PLAN_DIRECT 1u

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
	char first_missing[128]; /* name of the first missing or TLS symbol; for a
				  * plan, of the first import into the old set
				  * it could not take */
	/* fs_rebind_plan only: */
	size_t planned;  /* entries the plan has (or needs: see fs_rebind_plan) */
	size_t modids;   /* of which R_X86_64_DTPMOD64 */
	size_t readonly; /* of which in read-only pages */
	size_t dtpoffs;  /* R_X86_64_DTPOFF64 into the old set: no entry needed */
	size_t tpoffs;   /* R_X86_64_TPOFF64 into the old set: cannot be re-pointed */
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

/*
 * Planning in the parent, writing in the child.
 *
 * fs_rebind_plan() lists, ahead of time, every slot that binds into the old
 * set; fs_rebind_write() later writes a value of the caller's choosing into
 * each, with no lookups, allocation or locks, so that it can run in a
 * pthread_atfork child handler. The usual value is the same address in an
 * identical twin of the old object loaded elsewhere (fs_rebind_translate),
 * or for a module id the twin's (fs_rebind_tls_modid).
 */
struct fs_import {
	void **slot;     /* the word to write */
	uintptr_t value; /* what it holds once bound: S, S + A for R_X86_64_64
			  * (for an IFUNC the implementation its resolver chose),
			  * the old object's TLS module id for R_X86_64_DTPMOD64.
			  * A lazy slot not yet called holds its PLT stub instead. */
	uint32_t type;   /* R_X86_64_JUMP_SLOT, GLOB_DAT, 64 or DTPMOD64 */
	bool func;       /* the definition is STT_FUNC or STT_GNU_IFUNC */
	bool readonly;   /* in a page the loader made read-only (RELRO) */
	const struct link_map *old_obj; /* the old object defining it */
	const struct link_map *object;  /* the object importing it */
	const char *name; /* in the importing object's string table; for logs */
};

/*
 * Lists in out[0..max) every import slot of every loaded object outside the
 * old set, t->is_new's set (when given) and what `skip` accepts (may be
 * NULL), that binds to the old set: R_X86_64_JUMP_SLOT, GLOB_DAT, 64 and
 * DTPMOD64, decided as for fs_rebind_imports(). Of t only is_old, old_arg,
 * is_new, new_arg and plan_flags are used. Entries come sorted by slot
 * address, which lets fs_rebind_write() protect pages in runs.
 *
 * R_X86_64_DTPOFF64 needs no entry: an offset in the module's block, the
 * same in an identical twin. R_X86_64_TPOFF64 (and TLSDESC) into the old set
 * cannot be re-pointed: counted in stats->tpoffs and stats->tls, the first
 * name in stats->first_missing. Copy relocations are listed as by
 * fs_rebind_imports() (with no new definition). A slot the plan cannot
 * describe (outside its object, across a page boundary, in a page neither
 * writable nor plain read-only, a value outside the defining object) is
 * counted in stats->odd and left out.
 *
 * Returns 0 and *n entries; or -1 with a message: *n is then the count
 * needed when max was too small, and 0 when the objects could not be
 * walked. Allocates; takes the loader's lock (dl_iterate_phdr, dlsym).
 */
int fs_rebind_plan(const struct fs_rebind_target *t, bool (*skip)(const struct link_map *), struct fs_import *out,
		   size_t max, size_t *n, struct fs_rebind_stats *stats, char *err, size_t errlen);

/*
 * Writes value_of(imp, arg) into each imp->slot; a value equal to what the
 * slot holds now leaves it alone. Read-only slots are written between two
 * mprotect calls, one pair per run of consecutive entries on the same or
 * adjacent pages, made only when some slot of the run changes; the pages
 * are read-only again afterwards.
 *
 * Meant for a pthread_atfork child handler: it allocates nothing, uses no
 * stdio and takes no lock; it calls only value_of, mprotect and getauxval.
 * value_of must be as careful. Returns 0, or -1 with a message in err when
 * mprotect failed (slots written before stay written).
 */
int fs_rebind_write(const struct fs_import *imps, size_t n, uintptr_t (*value_of)(const struct fs_import *, void *),
		    void *arg, char *err, size_t errlen);

/* v, an address inside `from`, moved to the same offset in `to`: for an
 * identical twin of the same file. Safe in a child handler. */
uintptr_t fs_rebind_translate(const struct link_map *from, const struct link_map *to, uintptr_t v);

/* The object's TLS module id, or 0 when it has no TLS segment (or is not
 * loaded). Takes the loader's lock: call it before the fork. */
size_t fs_rebind_tls_modid(const struct link_map *map);

#endif
