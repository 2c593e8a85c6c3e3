/* Where libgrpc_forksafe.so is, and how it is put into LD_PRELOAD. */
#ifndef GRPC_FORKSAFE_PRELOAD_H
#define GRPC_FORKSAFE_PRELOAD_H

/* The absolute path of the library (malloc'd), or NULL after one message. */
char *preload_find_library(void);

/* Sets LD_PRELOAD to `lib` followed by the entries already there, minus any
 * other copy of `lib`. Returns 0, or -1 after one message. */
int preload_install(const char *lib);

#endif
