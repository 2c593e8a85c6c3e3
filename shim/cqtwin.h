/* Completion queues in a child that runs a fresh copy of gRPC: a queue made
 * before the fork belongs to the parent's gRPC, whose code must not run in the
 * child, so it maps to a twin made in the fresh copy on first use.
 *
 * Records: in a forked generation, every queue made in it (a set); in every
 * generation, the shutdown functor of each callback queue, which a twin needs
 * and which cannot be read back from the queue. The module has its own mutex
 * (FS_LOCK_CQTWIN in locks.h, a leaf) and never calls gRPC with it held.
 *
 * The child's fork path is to call fs_cqtwin_reset(fs_generation) while it has
 * one thread, and take and re-make the lock as it does the channel table's. */
#ifndef FORKSAFE_CQTWIN_H
#define FORKSAFE_CQTWIN_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>

/* The functions of the gRPC instance twins are made in (the fresh copy in a
 * child; fakes in unit tests). */
struct fs_cq_ops {
	const grpc_completion_queue_factory *(*factory_lookup)(const grpc_completion_queue_attributes *attrs);
	grpc_completion_queue *(*create)(const grpc_completion_queue_factory *factory,
					 const grpc_completion_queue_attributes *attrs, void *reserved);
	/* Core's accessors (C++ names in libgrpc). The fresh copy is the same code
	 * with the same struct layout as the inherited one, so asking it about an
	 * inherited queue is a plain read of that queue's fields (and of the
	 * poller table they point at, still mapped): no inherited code runs. */
	grpc_cq_completion_type (*completion_type)(grpc_completion_queue *cq);
	bool (*can_listen)(grpc_completion_queue *cq); /* NULL: every twin polls by default */
	void *(*pollset)(grpc_completion_queue *cq);
	void (*shutdown)(grpc_completion_queue *cq);
	void (*destroy)(grpc_completion_queue *cq);
};

/* A queue just made in the current generation, of `type`, with `functor` for
 * a callback queue. In generation 0 only callback queues are kept: nothing
 * there is inherited, and the hooks do not even call this for others. */
void fs_cqtwin_note_created(grpc_completion_queue *cq, grpc_cq_completion_type type,
			    grpc_completion_queue_functor *functor);

/* The application is destroying `cq` (called before gRPC frees it, so that a
 * queue made at the same address meanwhile is not forgotten instead). */
void fs_cqtwin_note_destroyed(grpc_completion_queue *cq);

/* The queue to use in `fresh` for `cq`: `cq` itself in generation 0 or when
 * it was made in the current generation, else its twin, made on first use with
 * the same completion type and polling type and, for a callback queue, the
 * recorded functor. NULL, after a log line saying why, when no twin can be
 * made. */
grpc_completion_queue *fs_cqtwin_route(grpc_completion_queue *cq, const struct fs_cq_ops *fresh);

/* grpc_completion_queue_shutdown in a child: shuts down the queue route
 * gives, a twin made for the purpose included, so that a thread that next
 * waits on the inherited queue sees the shutdown. */
void fs_cqtwin_shutdown(grpc_completion_queue *cq, const struct fs_cq_ops *fresh);

/* grpc_completion_queue_destroy in a child: destroys a queue made in this
 * generation, or an inherited queue's twin if one was made. The inherited
 * queue itself is dropped: destroying it would run inherited code. True when
 * `cq` was inherited (the caller keeps it reachable). */
bool fs_cqtwin_destroy(grpc_completion_queue *cq, const struct fs_cq_ops *fresh);

/* A new generation. Queues made so far are inherited from now on; the twins
 * made so far belong to an instance whose code must not run here, and are
 * dropped unreleased. Callback queues' functors are kept. */
void fs_cqtwin_reset(unsigned generation);

/* Fork path: taken in the parent's prepare step, re-made in the child. */
void fs_cqtwin_lock(void);
void fs_cqtwin_unlock(void);
void fs_cqtwin_child_reset_lock(void);

/* For tests and statistics: queues recorded, and twins made. */
size_t fs_cqtwin_count(void);
size_t fs_cqtwin_twins(void);

#endif
