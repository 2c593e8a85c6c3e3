/* Turning a gRPC library file into a private copy of itself: the in-memory
 * ELF edit behind copyset.c. Pure: it works on a buffer holding the whole
 * file, makes no system call, and never reads outside the buffer, whatever
 * the buffer holds (it is fuzzed). */
#ifndef FORKSAFE_ELFCOPY_H
#define FORKSAFE_ELFCOPY_H

#include <stddef.h>
#include <stdint.h>

/* Generations 1..255: the tag is "g" and two hex digits, as long as "lib". */
#define FS_ELFCOPY_MAX_GEN 255u
#define FS_ELFCOPY_TAG_LEN 3u

/* Writes into out (outsize bytes) the name soname takes in generation gen:
 * its first three characters, "lib" or an earlier generation's tag, replaced
 * by gen's tag (libgrpc.so.29 -> g01grpc.so.29, g01grpc.so.29 -> g02grpc.so.29).
 * Returns NULL, or why it cannot (no "lib" or tag in front, gen out of range,
 * out too small). */
const char *fs_elfcopy_rename(const char *soname, unsigned gen, char *out, size_t outsize);

/* The generation a name belongs to: 0 for "lib...", g for g's tag, -1 for
 * anything else. */
int fs_elfcopy_generation(const char *name);

struct fs_elfcopy_counts {
	unsigned renamed;  /* distinct .dynstr strings renamed */
	unsigned weakened; /* STB_GNU_UNIQUE symbols made STB_WEAK */
};

/* Edits the shared object image (size bytes) in place for generation gen:
 * each .dynstr string that DT_SONAME, DT_NEEDED or a verneed entry's vn_file
 * names and that is one of the nset names in set gets its name for gen
 * (fs_elfcopy_rename), and every STB_GNU_UNIQUE symbol of .dynsym becomes
 * STB_WEAK. Returns NULL, or why the image cannot be edited (malformed, not
 * ELF64 x86-64 ET_DYN, a set name not renameable); on error the image may be
 * partly edited. counts may be NULL. */
const char *fs_elfcopy_transform(unsigned char *image, size_t size, unsigned gen, const char *const *set,
				 size_t nset, struct fs_elfcopy_counts *counts);

#define FS_ELFCOPY_MAX_NEEDED 128

/* What a shared object says of its dependencies: pointers into the image. */
struct fs_elfcopy_names {
	const char *soname; /* NULL if it has none */
	const char *needed[FS_ELFCOPY_MAX_NEEDED];
	size_t nneeded;
	const uint8_t *build_id; /* the NT_GNU_BUILD_ID note's bytes, NULL if none */
	size_t build_id_len;
};

/* Reads DT_SONAME, the DT_NEEDED entries and the build id of image. Returns
 * NULL or why not (as fs_elfcopy_transform; more than FS_ELFCOPY_MAX_NEEDED
 * dependencies is an error). */
const char *fs_elfcopy_names(const unsigned char *image, size_t size, struct fs_elfcopy_names *out);

/* The build id in a note segment of len bytes at notes (a loaded object's
 * PT_NOTE, or a file's): *id and *id_len, or false if none. */
int fs_elfcopy_find_build_id(const unsigned char *notes, size_t len, const uint8_t **id, size_t *id_len);

#endif
