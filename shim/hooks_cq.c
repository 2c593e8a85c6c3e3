/*
 * The completion-queue calls in which threads wait inside gRPC. While no fork
 * is pending they cost a few atomic stores; see quiesce.c for what a fork
 * does with them.
 */
#include "config.h"
#include "grpclib.h"
#include "init.h"
#include "log.h"
#include "quiesce.h"

#define EXPORT __attribute__((visibility("default")))

EXPORT grpc_event grpc_completion_queue_next(grpc_completion_queue *cq, gpr_timespec deadline, void *reserved)
{
	struct waiter *w;
	grpc_event ev;

	if (!fs_grpc_ensure() || !fs_mode_acts(fs_cfg.mode) || (w = fs_quiesce_self()) == NULL ||
	    fs_quiesce_wake_channel() == NULL) {
		if (fs_grpc.cq_next == NULL) {
			fs_log(FS_ERROR, "grpc_completion_queue_next: the installed libgrpc has no such function");
			return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
		}
		return fs_grpc.cq_next(cq, deadline, reserved);
	}
	for (;;) {
		if (!fs_quiesce_enter(w, cq)) {
			fs_quiesce_wait_at_door();
			continue;
		}
		ev = fs_grpc.cq_next(cq, deadline, reserved);
		fs_quiesce_leave(w);
		if (fs_quiesce_is_wake(&ev))
			continue; /* ours: the fork path wanted this thread out */
		return ev;
	}
}

EXPORT grpc_event grpc_completion_queue_pluck(grpc_completion_queue *cq, void *tag, gpr_timespec deadline,
					      void *reserved)
{
	struct waiter *w;
	grpc_event ev;

	if (!fs_grpc_ensure() || !fs_mode_acts(fs_cfg.mode) || (w = fs_quiesce_self()) == NULL) {
		if (fs_grpc.cq_pluck == NULL) {
			fs_log(FS_ERROR, "grpc_completion_queue_pluck: the installed libgrpc has no such function");
			return (grpc_event){ .type = GRPC_QUEUE_SHUTDOWN };
		}
		return fs_grpc.cq_pluck(cq, tag, deadline, reserved);
	}
	for (;;) {
		gpr_timespec now = fs_grpc.now(GPR_CLOCK_MONOTONIC);
		gpr_timespec slice = fs_grpc.time_add(now, fs_grpc.time_from_millis(FS_PLUCK_SLICE_MS, GPR_TIMESPAN));
		bool sliced = fs_grpc.time_cmp(slice, fs_grpc.convert_clock_type(deadline, GPR_CLOCK_MONOTONIC)) < 0;

		if (!fs_quiesce_enter(w, NULL)) {
			fs_quiesce_wait_at_door();
			continue;
		}
		ev = fs_grpc.cq_pluck(cq, tag, sliced ? slice : deadline, reserved);
		fs_quiesce_leave(w);
		if (ev.type == GRPC_QUEUE_TIMEOUT && sliced)
			continue; /* our slice, not the caller's deadline */
		return ev;
	}
}

EXPORT void grpc_completion_queue_shutdown(grpc_completion_queue *cq)
{
	if (fs_grpc_ensure())
		fs_quiesce_note_shutdown(cq);
	if (fs_grpc.cq_shutdown != NULL)
		fs_grpc.cq_shutdown(cq);
}

EXPORT void grpc_completion_queue_destroy(grpc_completion_queue *cq)
{
	if (fs_grpc_ensure())
		fs_quiesce_note_destroy(cq);
	if (fs_grpc.cq_destroy != NULL)
		fs_grpc.cq_destroy(cq);
}
