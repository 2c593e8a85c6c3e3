/*
 * The completion-queue calls in which threads wait inside gRPC. While no fork
 * is pending they cost a few plain loads and stores (quiesce.h); see
 * quiesce.c for what a fork does with them and why that is enough. (New calls
 * wait for a pending fork in hooks_grpc.c.)
 */
#include "audit.h"
#include "config.h"
#include "cqtwin.h"
#include "execctx.h"
#include "forkpath.h"
#include "fresh.h"
#include "grpclib.h"
#include "init.h"
#include "log.h"
#include "quiesce.h"

#define EXPORT __attribute__((visibility("default")))

static grpc_event missing(const char *name)
{
	fs_log(FS_ERROR, "%s: the installed libgrpc has no such function", name);
	return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
}

EXPORT grpc_event grpc_completion_queue_next(grpc_completion_queue *cq, gpr_timespec deadline, void *reserved)
{
	struct waiter *w;
	grpc_event ev;

	/* A child's fresh gRPC waits on the twin of a queue made before the fork;
	 * one that cannot have a twin (said in the log) reads as shut down. */
	if (__builtin_expect(fs_generation != 0, 0) && cq != NULL && (cq = fs_fresh_cq(cq)) == NULL)
		return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
	if (!fs_grpc_protects() || !fs_quiesce_on || (w = fs_quiesce_self()) == NULL ||
	    fs_quiesce_wake_channel() == NULL) {
		if (fs_grpc.cq_next == NULL)
			return missing("grpc_completion_queue_next");
		if (__builtin_expect(fs_cfg.mode == FS_MODE_AUDIT, 0))
			return fs_audit_cq_next(cq, deadline, reserved);
		return FS_IN_GRPC(fs_grpc.cq_next(cq, deadline, reserved));
	}
	for (;;) {
		if (!fs_quiesce_enter(w, cq)) {
			fs_quiesce_wait_next_door();
			continue;
		}
		ev = FS_IN_GRPC(fs_grpc.cq_next(cq, deadline, reserved));
		fs_quiesce_leave(w, true);
		if (fs_quiesce_is_wake(&ev))
			continue; /* ours: the fork path wanted this thread out */
		return ev;
	}
}

/* A thread in pluck() is waiting for a call of its own, whose buffers live on
 * its stack: it is never parked here (parked mid-call, a child would inherit a
 * call that completes into a stack no thread owns). The fork waits for it to
 * come out with its call done; its next call then waits in the call hooks. */
EXPORT grpc_event grpc_completion_queue_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline,
					      void *reserved)
{
	struct waiter *w;
	grpc_event ev;

	if (__builtin_expect(fs_generation != 0, 0) && cq != NULL && (cq = fs_fresh_cq(cq)) == NULL)
		return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
	if (!fs_grpc_protects() || !fs_quiesce_on || (w = fs_quiesce_self()) == NULL) {
		if (fs_grpc.cq_pluck == NULL)
			return missing("grpc_completion_queue_pluck");
		if (__builtin_expect(fs_cfg.mode == FS_MODE_AUDIT, 0))
			return fs_audit_cq_pluck(cq, tag, deadline, reserved);
		return FS_IN_GRPC(fs_grpc.cq_pluck(cq, tag, deadline, reserved));
	}
	fs_quiesce_enter_in_call(w);
	ev = FS_IN_GRPC(fs_grpc.cq_pluck(cq, tag, deadline, reserved));
	fs_quiesce_leave(w, false);
	return ev;
}

EXPORT void grpc_completion_queue_shutdown(grpc_completion_queue *cq)
{
	if (__builtin_expect(fs_generation != 0, 0) && fs_fresh_in_child()) {
		fs_fresh_cq_shutdown(cq);
		return;
	}
	if (fs_grpc_ensure() && fs_quiesce_on)
		fs_quiesce_note_shutdown(cq);
	if (fs_grpc.cq_shutdown != NULL)
		FS_IN_GRPC_VOID(fs_grpc.cq_shutdown(cq));
}

/* A queue cqtwin.c recorded is forgotten before gRPC frees it, so that a
 * queue made at the same address meanwhile is not forgotten instead. In
 * generation 0 only callback queues are recorded; asking a queue's type is a
 * call into core that reads one field, cheaper than a look-up, and grpc++
 * destroys a pluck queue after every synchronous call. */
static void forget_queue(grpc_completion_queue *cq)
{
	if (fs_generation > 0 ||
	    (fs_grpc.cq_completion_type != NULL && fs_grpc.cq_completion_type(cq) == GRPC_CQ_CALLBACK))
		fs_cqtwin_note_destroyed(cq);
}

EXPORT void grpc_completion_queue_destroy(grpc_completion_queue *cq)
{
	if (__builtin_expect(fs_generation != 0, 0) && fs_fresh_in_child()) {
		fs_fresh_cq_destroy(cq);
		return;
	}
	if (fs_grpc_ensure() && fs_quiesce_on)
		fs_quiesce_note_destroy(cq);
	if (cq != NULL && fs_grpc_protects())
		forget_queue(cq);
	if (fs_grpc.cq_destroy != NULL)
		FS_IN_GRPC_VOID(fs_grpc.cq_destroy(cq));
}
