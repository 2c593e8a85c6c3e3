/* A fresh gRPC for a forked child: private copies of the loaded libgrpc's
 * whole dependency closure (and libgrpc++'s, when the process has it),
 * renamed for one generation, kept in a per-user cache directory and loaded
 * into the process beside the inherited ones (docs/design.md, "Where the
 * design goes next"). Not thread-safe: meant for a child's first gRPC call. */
#ifndef FORKSAFE_COPYSET_H
#define FORKSAFE_COPYSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct fs_copyset_range {
	uintptr_t start, end; /* [start, end): one PT_LOAD segment in memory */
};

struct fs_copyset {
	unsigned gen;      /* the copies' generation, 1..255 */
	unsigned from_gen; /* the generation copied: 0 for the installed libraries */
	void *grpc;        /* dlopen handle of the copy of libgrpc */
	void *grpcxx;      /* of libgrpc++, or NULL when the process had none of generation from_gen */
	size_t nmembers;   /* libraries in the set */
	char dir[4096];    /* the set's directory in the cache */
	bool built;        /* true: this call wrote the set; false: it reused one already there */
	bool lost_race;    /* it wrote one, but another process's was renamed into place first */
	/* Milliseconds: finding the closure and its cache key; writing the set
	 * (0 when reused); loading it. */
	double closure_ms, build_ms, load_ms;

	/* The rest is the module's. */
	void **handles; /* nmembers, in load order (dependencies first) */
	struct fs_copyset_member *members; /* nmembers, in stem order */
	struct fs_copyset_range *old_ranges, *new_ranges;
	size_t nold, nnew;
};

struct fs_copyset_opts {
	/* The cache directory; NULL: $XDG_RUNTIME_DIR/grpc-forksafe if set,
	 * else /tmp/grpc-forksafe-<uid>. */
	const char *cache_dir;
	/* Copy gRPC core's closure only, leaving libgrpc++ (and whatever else
	 * uses gRPC) to run as a client of the copies (fresh.c). */
	bool core_only;
};

/* One library of the set: the one copied (old) and its copy (new). Members
 * are listed in the order of their names without the generation tag (the
 * stem: "grpc.so.29" for libgrpc.so.29 and g01grpc.so.29), so that member k
 * is the same library in every generation. */
struct fs_copyset_member {
	char stem[256];
	const struct link_map *old_map, *new_map;
	uintptr_t old_base, new_base; /* load biases (l_addr) */
	size_t old_tls_modid, new_tls_modid; /* 0: no thread-local storage */
};

/* Loads generation gen (1..255) of the copy set. The set is copied from the
 * newest generation below gen whose libgrpc the process has loaded (the
 * installed libraries are generation 0), and made in the cache unless a set
 * made from the same files is already there. Every copy is loaded by absolute
 * path, dependencies first, with RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND.
 * opts may be NULL. Returns the set, or NULL with the reason in err
 * (errsize bytes); on failure nothing of the set stays loaded. A cache
 * directory refused as unsafe is also logged (one warn line). */
struct fs_copyset *fs_copyset_load(unsigned gen, const struct fs_copyset_opts *opts, char *err, size_t errsize);

/* Whether addr lies in a library of the set copied from (old) or in one of
 * the copies (new). */
bool fs_copyset_in_old(const struct fs_copyset *cs, const void *addr);
bool fs_copyset_in_new(const struct fs_copyset *cs, const void *addr);

/* A symbol of the copies: libgrpc++'s copy first when there is one, then
 * libgrpc's (with their dependencies, as dlsym searches a handle). */
void *fs_copyset_sym(const struct fs_copyset *cs, const char *name);

/* Member k (k < cs->nmembers). */
const struct fs_copyset_member *fs_copyset_member(const struct fs_copyset *cs, size_t k);

/* The member whose old library `map` is: its index, or -1. */
int fs_copyset_member_of(const struct fs_copyset *cs, const struct link_map *map);

/* Whether `map` is one of the set's libraries, old or new. */
bool fs_copyset_owns(const struct fs_copyset *cs, const struct link_map *map);

/* Frees the bookkeeping. The copies stay loaded: code of theirs may be
 * running, and unloading gRPC is not something it supports. */
void fs_copyset_free(struct fs_copyset *cs);

/* Opens (creating it, mode 0700, if missing) the cache directory path:
 * a directory descriptor, or -1 with the reason in err when it cannot, or
 * when it is not safe to load code from: a symbolic link, not a directory,
 * owned by another user, or writable by group or others (then also logged). */
int fs_copyset_cache_open(const char *path, char *err, size_t errsize);

/* The default cache directory into buf: "" and false if it does not fit. */
bool fs_copyset_default_dir(char *buf, size_t size);

#endif
