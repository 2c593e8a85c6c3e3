/* A negative control for valgrind.sh: a preloadable library that makes one
 * invalid read and leaks one block when loaded. Run under the same memcheck
 * options as the scenarios, it must make the check fail; if it does not, the
 * valgrind run is not set up to catch what it is meant to catch. */

#include <stdio.h>
#include <stdlib.h>

/* Not inlined, so the block's only pointer dies with this frame. */
__attribute__((noinline)) static void leak_one_block(void) {
  void *volatile p = malloc(48);
  p = NULL;
  (void)p;
}

__attribute__((noinline)) static void read_past_block(void) {
  /* Through a volatile pointer, so the compiler neither sees nor drops it. */
  char *volatile p = calloc(8, 1);
  volatile char c = p[8];
  (void)c;
  free(p);
}

__attribute__((constructor)) static void memcheck_control(void) {
  leak_one_block();
  read_past_block();
  fprintf(stderr, "memcheck-control: leaked one block, read past another\n");
}
