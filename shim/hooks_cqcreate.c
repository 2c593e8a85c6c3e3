/*
 * Completion queue creation, recorded for cqtwin.c: in a forked generation
 * every queue made there, and in every generation the functor of a callback
 * queue (a twin needs it and it cannot be read back from the queue).
 *
 * grpc++ makes a pluck queue for every synchronous call (through
 * grpc_completion_queue_create), so in generation 0 a queue that is not a
 * callback queue costs the hook a few instructions: load the real function
 * and the generation (and the attributes' type), then jump.
 */
#include "cqtwin.h"
#include "execctx.h"
#include "forkpath.h"
#include "grpclib.h"
#include "init.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))
#define COLD __attribute__((noinline, cold))

static void missing(const char *name)
{
	fs_log(FS_ERROR, "%s: the installed libgrpc has no such function", name);
}

#define REAL(fn, name)                                                                                      \
	do {                                                                                                \
		if (__builtin_expect(fs_grpc.fn == NULL, 0) && (fs_grpc_ensure(), fs_grpc.fn == NULL)) {    \
			missing(name);                                                                      \
			return NULL;                                                                        \
		}                                                                                           \
	} while (0)

/* What the hooks record: nothing but callback queues in generation 0. */
static void note(grpc_completion_queue *cq, grpc_cq_completion_type type, grpc_completion_queue_functor *functor)
{
	if (cq != NULL && (fs_generation > 0 || type == GRPC_CQ_CALLBACK) && fs_grpc_protects())
		fs_cqtwin_note_created(cq, type, functor);
}

static COLD grpc_completion_queue *create(const grpc_completion_queue_factory *factory,
					  const grpc_completion_queue_attributes *attributes, void *reserved)
{
	grpc_completion_queue *cq;

	REAL(cq_create, "grpc_completion_queue_create");
	cq = FS_IN_GRPC(fs_grpc.cq_create(factory, attributes, reserved));
	/* The functor is in the attributes from version 2 on. */
	if (attributes != NULL)
		note(cq, attributes->cq_completion_type, attributes->version >= 2 ? attributes->cq_shutdown_cb : NULL);
	return cq;
}

EXPORT grpc_completion_queue *grpc_completion_queue_create(const grpc_completion_queue_factory *factory,
							   const grpc_completion_queue_attributes *attributes,
							   void *reserved)
{
	grpc_completion_queue *(*real)(const grpc_completion_queue_factory *, const grpc_completion_queue_attributes *,
				       void *) = fs_grpc.cq_create;

	if (__builtin_expect(real != NULL && fs_generation == 0 && attributes != NULL &&
				     attributes->cq_completion_type != GRPC_CQ_CALLBACK,
			     1))
		return real(factory, attributes, reserved);
	return create(factory, attributes, reserved);
}

static COLD grpc_completion_queue *create_for_next(void *reserved)
{
	grpc_completion_queue *cq;

	REAL(cq_create_for_next, "grpc_completion_queue_create_for_next");
	cq = FS_IN_GRPC(fs_grpc.cq_create_for_next(reserved));
	note(cq, GRPC_CQ_NEXT, NULL);
	return cq;
}

EXPORT grpc_completion_queue *grpc_completion_queue_create_for_next(void *reserved)
{
	grpc_completion_queue *(*real)(void *) = fs_grpc.cq_create_for_next;

	if (__builtin_expect(real != NULL && fs_generation == 0, 1))
		return real(reserved);
	return create_for_next(reserved);
}

static COLD grpc_completion_queue *create_for_pluck(void *reserved)
{
	grpc_completion_queue *cq;

	REAL(cq_create_for_pluck, "grpc_completion_queue_create_for_pluck");
	cq = FS_IN_GRPC(fs_grpc.cq_create_for_pluck(reserved));
	note(cq, GRPC_CQ_PLUCK, NULL);
	return cq;
}

EXPORT grpc_completion_queue *grpc_completion_queue_create_for_pluck(void *reserved)
{
	grpc_completion_queue *(*real)(void *) = fs_grpc.cq_create_for_pluck;

	if (__builtin_expect(real != NULL && fs_generation == 0, 1))
		return real(reserved);
	return create_for_pluck(reserved);
}

/* Callback queues are few (grpc++ keeps one or two): always recorded. */
EXPORT grpc_completion_queue *grpc_completion_queue_create_for_callback(grpc_completion_queue_functor *shutdown_callback,
									void *reserved)
{
	grpc_completion_queue *cq;

	REAL(cq_create_for_callback, "grpc_completion_queue_create_for_callback");
	cq = FS_IN_GRPC(fs_grpc.cq_create_for_callback(shutdown_callback, reserved));
	note(cq, GRPC_CQ_CALLBACK, shutdown_callback);
	return cq;
}
