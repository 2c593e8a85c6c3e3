/* libFuzzer target: the ELF symbol-table scan a program linked with
 * libgrpc.a gets (symranges.c), on any file. The input becomes a memory file
 * read by its /proc path, as the shim reads /proc/self/exe. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "symranges.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int fd = -1;
	char path[64];

	if (fd < 0 && (fd = memfd_create("fuzz-elf", 0)) < 0)
		return 0;
	if (ftruncate(fd, 0) != 0 || pwrite(fd, data, size, 0) != (ssize_t)size)
		return 0;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	fs_symranges_load(path);
	for (uintptr_t rel = 0; rel < 4096; rel += 64)
		(void)fs_symranges_contains(rel);
	fs_symranges_free();
	return 0;
}
