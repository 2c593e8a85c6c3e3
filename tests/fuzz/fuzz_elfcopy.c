/* libFuzzer target: the ELF edit that makes private copies of gRPC's
 * libraries (elfcopy.c), on any bytes: reading the names, then renaming a
 * set that has both original and generation-1 names, into generation 2. The
 * input is copied into a buffer of exactly its size, so that ASan catches a
 * read or write one byte past it. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "elfcopy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const set[] = { "libgpr.so.29", "g01gpr.so.29", "libabsl_time.so.20220623",
					   "libgcc_s.so.1", "libc.so.6", "g01absl_base.so.20220623" };
	struct fs_elfcopy_names names;
	struct fs_elfcopy_counts counts;
	unsigned char *img = malloc(size ? size : 1);

	if (img == NULL)
		return 0;
	memcpy(img, data, size);
	if (fs_elfcopy_names(img, size, &names) == NULL) {
		/* The names must be readable strings inside the buffer. */
		if (names.soname != NULL)
			(void)strlen(names.soname);
		for (size_t i = 0; i < names.nneeded; i++)
			(void)strlen(names.needed[i]);
	}
	if (fs_elfcopy_transform(img, size, 2, set, sizeof(set) / sizeof(set[0]), &counts) == NULL &&
	    counts.renamed > 256)
		abort();
	free(img);
	return 0;
}
