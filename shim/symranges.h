/* Where gRPC's code lies inside the program itself, when the program was
 * linked with libgrpc.a: read once from the executable's ELF symbol table. */
#ifndef FORKSAFE_SYMRANGES_H
#define FORKSAFE_SYMRANGES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Reads the symbol table of the ELF file at `path` (normally /proc/self/exe)
 * and keeps the address ranges (relative to the file's load address) of
 * gRPC's functions. Allocates; call once, at start-up. Returns how many
 * gRPC functions were found (0: no symbol table, or no gRPC in it). */
size_t fs_symranges_load(const char *path);

/* True when the file offset-free address `rel` (an address minus the
 * program's load bias) lies in gRPC code found by fs_symranges_load.
 * Lock-free, no allocation. */
bool fs_symranges_contains(uintptr_t rel);

/* Whether a function of this name is gRPC's (exposed for the unit tests). */
bool fs_symranges_name_is_grpc(const char *name);

void fs_symranges_free(void);

#endif
