/* gRPC's tracked threads, and core's wait for them in its prefork
 * (threads.c says why; hooks_threads.c holds the hooks). */
#ifndef FORKSAFE_THREADS_H
#define FORKSAFE_THREADS_H

#include <stdbool.h>

/* Fork::IncThreadCount ran in this thread: core counts the thread it is about
 * to create. Fork::DecThreadCount: a counted thread ends (or failed to start). */
void fs_threads_note_counted(void);
void fs_threads_note_uncounted(void);

/* For pthread_create: whether the thread being created is a counted one
 * (clears the mark). fs_threads_mark_self runs first in such a thread. */
bool fs_threads_take_creating(void);
void fs_threads_mark_self(void);

/* Fork::AwaitThreads, inside the shim's fork: waits within the fork's bound
 * until every counted thread other than this one is parked. Allocates nothing. */
void fs_threads_await(void);

/* Whether core's prefork, run by this thread just now, went ahead without
 * every one of gRPC's counted threads parked (the fork's bound ran out);
 * clears the answer. */
bool fs_threads_take_gave_up(void);

/* How many counted threads other than this one are alive. */
int fs_threads_busy(void);

/* Fork path (child): the other threads are gone. Allocates nothing. */
void fs_threads_child(void);

#endif
