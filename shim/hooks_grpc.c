/*
 * The interposed gRPC core API: channel creation and destruction feed the
 * channel table; calls on a channel inherited from an earlier fork generation
 * are sent to its replacement. In the process that never forked (generation
 * 0) no channel can be inherited, so the call hooks cost one comparison.
 */
#include <stdatomic.h>

#include "chanargs.h"
#include "chantab.h"
#include "fdreg.h"
#include "forkpath.h"
#include "grpclib.h"
#include "init.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))

/* A hook whose real function is missing can only have been reached because
 * the shim's definition satisfied a symbol libgrpc lacks. */
static void missing(const char *name)
{
	fs_log(FS_ERROR, "%s: the installed libgrpc has no such function", name);
}

EXPORT void grpc_init(void)
{
	fs_grpc_ensure();
	if (fs_grpc.init == NULL)
		return missing("grpc_init");
	fs_grpc.init();
}

EXPORT grpc_channel *grpc_channel_create(const char *target, grpc_channel_credentials *creds,
					 const grpc_channel_args *args)
{
	unsigned gen;
	grpc_channel_args *view = NULL;
	grpc_channel *channel;

	if (!fs_grpc_ensure()) {
		if (fs_grpc.channel_create == NULL)
			return missing("grpc_channel_create"), NULL;
		return fs_grpc.channel_create(target, creds, args);
	}
	gen = fs_generation;
	/* In a forked generation, keep the new channel off connections an ancestor
	 * made (see FS_GENERATION_ARG). */
	if (gen > 0)
		view = fs_chanargs_with_generation(args, gen);
	channel = fs_grpc.channel_create(target, creds, view != NULL ? view : args);
	fs_chanargs_free_view(view);
	if (channel != NULL)
		fs_chantab_track(channel, target, creds, args, gen);
	return channel;
}

EXPORT grpc_channel *grpc_channel_create_from_fd(const char *target, int fd, grpc_channel_credentials *creds,
						 const grpc_channel_args *args)
{
	bool active = fs_grpc_ensure();

	if (fs_grpc.channel_create_from_fd == NULL)
		return missing("grpc_channel_create_from_fd"), NULL;
	/* The descriptor is gRPC's from now on: a child must not write to it. Such
	 * a channel cannot be recreated, so it is not in the channel table; in a
	 * child its calls fail cleanly on the neutralised descriptor. */
	if (active)
		fs_fdreg_adopt(fd, FS_FD_SOCKET);
	return fs_grpc.channel_create_from_fd(target, fd, creds, args);
}

EXPORT void grpc_server_add_channel_from_fd(grpc_server *server, int fd, grpc_server_credentials *creds)
{
	bool active = fs_grpc_ensure();

	if (fs_grpc.server_add_channel_from_fd == NULL)
		return missing("grpc_server_add_channel_from_fd");
	if (active)
		fs_fdreg_adopt(fd, FS_FD_SOCKET);
	fs_grpc.server_add_channel_from_fd(server, fd, creds);
}

EXPORT void grpc_channel_destroy(grpc_channel *channel)
{
	if (fs_grpc_ensure())
		fs_chantab_untrack(channel, fs_generation);
	if (fs_grpc.channel_destroy == NULL)
		return missing("grpc_channel_destroy");
	fs_grpc.channel_destroy(channel);
}

EXPORT void grpc_channel_credentials_release(grpc_channel_credentials *creds)
{
	if (fs_grpc_ensure() && creds != NULL && fs_chantab_defer_release(creds))
		return;
	if (fs_grpc.channel_credentials_release == NULL)
		return missing("grpc_channel_credentials_release");
	fs_grpc.channel_credentials_release(creds);
}

EXPORT void *grpc_channel_register_call(grpc_channel *channel, const char *method, const char *host,
					void *reserved)
{
	bool active = fs_grpc_ensure();
	void *registered;

	if (fs_grpc.channel_register_call == NULL)
		return missing("grpc_channel_register_call"), NULL;
	registered = fs_grpc.channel_register_call(channel, method, host, reserved);
	if (active && registered != NULL)
		fs_chantab_note_registered(channel, registered, method, host);
	return registered;
}

/* The RPC path. fs_generation is 0 in a process that never forked: no lock,
 * no lookup. */
EXPORT grpc_call *grpc_channel_create_call(grpc_channel *channel, grpc_call *parent_call,
					   uint32_t propagation_mask, grpc_completion_queue *cq,
					   grpc_slice method, const grpc_slice *host, gpr_timespec deadline,
					   void *reserved)
{
	if (__builtin_expect(fs_generation != 0, 0) && fs_grpc_ensure())
		channel = fs_chantab_route(channel, fs_generation);
	if (__builtin_expect(fs_grpc.channel_create_call == NULL, 0) &&
	    (fs_grpc_ensure(), fs_grpc.channel_create_call == NULL))
		return missing("grpc_channel_create_call"), NULL;
	return fs_grpc.channel_create_call(channel, parent_call, propagation_mask, cq, method, host, deadline,
					   reserved);
}

EXPORT grpc_call *grpc_channel_create_registered_call(grpc_channel *channel, grpc_call *parent_call,
						      uint32_t propagation_mask,
						      grpc_completion_queue *completion_queue,
						      void *registered_call_handle, gpr_timespec deadline,
						      void *reserved)
{
	if (__builtin_expect(fs_generation != 0, 0) && fs_grpc_ensure())
		channel = fs_chantab_route_registered(channel, &registered_call_handle, fs_generation);
	if (__builtin_expect(fs_grpc.channel_create_registered_call == NULL, 0) &&
	    (fs_grpc_ensure(), fs_grpc.channel_create_registered_call == NULL))
		return missing("grpc_channel_create_registered_call"), NULL;
	return fs_grpc.channel_create_registered_call(channel, parent_call, propagation_mask, completion_queue,
						      registered_call_handle, deadline, reserved);
}

/* grpc_core::Fork::BlockExecCtx (libgpr), called by core's grpc_prefork. Its
 * answer says whether prefork went ahead or skipped itself because another
 * thread was inside gRPC. */
EXPORT bool _ZN9grpc_core4Fork12BlockExecCtxEv(void);
EXPORT bool _ZN9grpc_core4Fork12BlockExecCtxEv(void)
{
	bool blocked;

	if (fs_grpc.fork_block_exec_ctx == NULL && (fs_grpc_ensure(), fs_grpc.fork_block_exec_ctx == NULL))
		return false; /* cannot happen: only a libgrpc that has it calls it */
	blocked = fs_grpc.fork_block_exec_ctx();
	fs_fork_note_core_block(blocked);
	return blocked;
}
