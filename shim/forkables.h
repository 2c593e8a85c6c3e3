/* gRPC's EventEngine parts that must stop their threads before a fork and
 * start them again after (thread pools, timer managers). */
#ifndef FORKSAFE_FORKABLES_H
#define FORKSAFE_FORKABLES_H


/* Fork path. prepare stops every registered part's threads (it waits for
 * them: no lock of the shim is held meanwhile); parent and child restart them.
 * The set acted on is the one prepare saw, so parent and child never restart
 * a part that was not stopped. */
void fs_forkables_prepare(void);
void fs_forkables_parent(void);
void fs_forkables_child(void);

/* The registry's own lock, held across the fork like the shim's other locks. */
void fs_forkables_lock(void);
void fs_forkables_unlock(void);
void fs_forkables_child_reset_lock(void);

#endif
