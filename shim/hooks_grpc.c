/*
 * The interposed gRPC core API. Channel creation and destruction feed the
 * channel table; every function that takes a channel sends a call on a
 * channel inherited from an earlier fork generation to its stand-in (policy
 * reconnect or close), or reports it (policy audit). In the process that never
 * forked (generation 0) nothing can be inherited, so on the RPC path these
 * hooks cost a few loads and a jump to gRPC.
 */
#include <stdio.h>

#include "calls.h"
#include "chanargs.h"
#include "chantab.h"
#include "config.h"
#include "credrec.h"
#include "execctx.h"
#include "fdreg.h"
#include "forkpath.h"
#include "fresh.h"
#include "grpclib.h"
#include "hooks.h"
#include "init.h"
#include "log.h"
#include "owner.h"
#include "quiesce.h"

/* The one definition the hooks share (hooks.h). */
void fs_hook_missing(const char *name)
{
	fs_log(FS_ERROR, "%s: the installed libgrpc has no such function", name);
}

#define EXPORT __attribute__((visibility("default")))
/* The unusual paths of the RPC hooks, kept out of their fast paths. */
#define COLD __attribute__((noinline, cold))


/* While a fork is pending, an application thread about to make or destroy a
 * channel, or register a method, waits outside gRPC as new calls do: threads
 * doing that in a loop would otherwise keep core's prefork from ever finding
 * gRPC empty, until the fork gave up. gRPC core's own calls (its xDS and ALTS
 * code makes channels) go through: the fork may be waiting for them. One
 * atomic load when no fork is pending. */
static inline void channel_gate(const void *caller)
{
	if (__builtin_expect(fs_quiesce_pending(), 0) && !fs_owner_is_grpc_core(caller))
		fs_quiesce_wait_at_door();
}
#define CHANNEL_GATE() channel_gate(__builtin_return_address(0))

static void audit_use(grpc_channel *channel)
{
	char target[256];

	if (fs_chantab_note_inherited_use(channel, fs_generation, target, sizeof(target)))
		fs_log(FS_WARN, "audit: inherited channel to %s used in this child", target);
}

/* The channel a call on `channel` must use in this process. */
static grpc_channel *here(grpc_channel *channel)
{
	if (__builtin_expect(fs_generation == 0, 1) || !fs_grpc_ensure())
		return channel;
	if (fs_cfg.mode == FS_MODE_AUDIT) {
		audit_use(channel);
		return channel;
	}
	return fs_chantab_route(channel, fs_generation);
}

EXPORT void grpc_init(void)
{
	fs_grpc_ensure();
	REAL(init, "grpc_init");
	FS_IN_GRPC_VOID(fs_grpc.init());
	fs_fresh_note_init(1);
}

/* Only counted: it holds core's initialisation lock, partly outside any
 * ExecCtx, and the fork path asks core whether it is initialised. */
EXPORT void grpc_shutdown(void)
{
	REAL(shutdown, "grpc_shutdown");
	fs_fresh_note_init(-1);
	FS_IN_GRPC_VOID(fs_grpc.shutdown());
}

/* grpc_channel_create past its gate. */
static grpc_channel *create_channel(const char *target, grpc_channel_credentials *creds,
				    const grpc_channel_args *args, bool active)
{
	unsigned gen = fs_generation;
	grpc_channel_args *view = NULL;
	grpc_channel *channel;

	if (!active)
		return fs_grpc.channel_create(target, creds, args);
	if (__builtin_expect(fs_grpc_unusable != NULL, 0))
		return fs_unusable_channel(target);
	if (gen > 0 && fs_cfg.mode == FS_MODE_AUDIT && target != NULL && fs_chantab_inherited_twin(target, args, gen))
		fs_log(FS_WARN, "audit: new channel to %s in this child would share the connection of an inherited "
				"channel", target);
	/* In a forked generation, keep the new channel off connections an ancestor
	 * made (see FS_GENERATION_ARG). Audit mode changes nothing. */
	if (gen > 0 && fs_mode_acts(fs_cfg.mode))
		view = fs_chanargs_with_generation(args, gen);
	/* A fresh child's own channel with credentials made before the fork:
	 * the copies get their twin (the object itself is the inherited gRPC's). */
	if (gen > 0 && creds != NULL && fs_fresh_in_child()) {
		const char *why = NULL;
		grpc_channel_credentials *twin = fs_fresh_creds(creds, &why);

		if (twin == NULL) {
			fs_chanargs_free_view(view);
			fs_log(FS_WARN, "channel to %s: its credentials were made before the fork and cannot be made "
					"again here (%s): its calls fail",
			       target != NULL ? target : "?", why != NULL ? why : "unknown kind");
			return fs_grpc.lame_client_channel_create(target, GRPC_STATUS_UNAVAILABLE,
								  "grpc-forksafe: this channel's credentials were made "
								  "before fork() and cannot be made again in the child");
		}
		channel = fs_grpc.channel_create(target, twin, view != NULL ? view : args);
		fs_chanargs_free_view(view);
		if (channel != NULL)
			fs_chantab_track(channel, target, creds, args, gen);
		return channel;
	}
	channel = fs_grpc.channel_create(target, creds, view != NULL ? view : args);
	fs_chanargs_free_view(view);
	if (channel != NULL)
		fs_chantab_track(channel, target, creds, args, gen);
	return channel;
}

EXPORT grpc_channel *grpc_channel_create(const char *target, grpc_channel_credentials *creds,
					 const grpc_channel_args *args)
{
	bool active = fs_grpc_ensure();

	REAL(channel_create, "grpc_channel_create", NULL);
	CHANNEL_GATE();
	return FS_IN_GRPC(create_channel(target, creds, args, active));
}

EXPORT grpc_channel *grpc_channel_create_from_fd(const char *target, int fd, grpc_channel_credentials *creds,
						 const grpc_channel_args *args)
{
	bool active = fs_grpc_ensure();

	REAL(channel_create_from_fd, "grpc_channel_create_from_fd", NULL);
	/* The descriptor is gRPC's from now on: a child must not write to it. Such
	 * a channel cannot be recreated, so it is not in the channel table; in a
	 * child its calls fail cleanly on the neutralised descriptor. */
	if (active && fs_mode_acts(fs_cfg.mode))
		fs_fdreg_adopt(fd, FS_FD_SOCKET, false);
	return FS_IN_GRPC(fs_grpc.channel_create_from_fd(target, fd, creds, args));
}

EXPORT void grpc_server_add_channel_from_fd(grpc_server *server, int fd, grpc_server_credentials *creds)
{
	bool active = fs_grpc_ensure();

	REAL(server_add_channel_from_fd, "grpc_server_add_channel_from_fd");
	if (active && fs_mode_acts(fs_cfg.mode))
		fs_fdreg_adopt(fd, FS_FD_SOCKET, false);
	FS_IN_GRPC_VOID(fs_grpc.server_add_channel_from_fd(server, fd, creds));
}

EXPORT void grpc_channel_destroy(grpc_channel *channel)
{
	CHANNEL_GATE();
	REAL(channel_destroy, "grpc_channel_destroy");
	fs_grpc_enter();
	/* An inherited channel in a child with a fresh gRPC is dropped: its
	 * destruction would run the inherited gRPC's code. */
	if (!(fs_grpc_ensure() && fs_chantab_untrack(channel, fs_generation)))
		fs_grpc.channel_destroy(channel);
	else
		fs_fresh_keep(channel);
	fs_grpc_leave();
}

EXPORT void grpc_channel_credentials_release(grpc_channel_credentials *creds)
{
	if (fs_grpc_ensure() && creds != NULL && fs_chantab_defer_release(creds))
		return;
	/* Made before the fork, in a fresh child: releasing it would run the
	 * inherited gRPC's code; it is kept instead. */
	if (__builtin_expect(fs_generation != 0, 0) && fs_fresh_inherited_creds(creds)) {
		fs_fresh_keep(creds);
		return;
	}
	/* Released for good: how they were made is forgotten first, so that
	 * credentials made at the same address meanwhile are not forgotten
	 * instead. (A deferred release forgets them when the table makes it.) */
	if (creds != NULL && fs_grpc_protects())
		fs_credrec_forget(creds);
	REAL(channel_credentials_release, "grpc_channel_credentials_release");
	FS_IN_GRPC_VOID(fs_grpc.channel_credentials_release(creds));
}

EXPORT void *grpc_channel_register_call(grpc_channel *channel, const char *method, const char *host,
					void *reserved)
{
	bool active = fs_grpc_ensure();
	void *registered;

	REAL(channel_register_call, "grpc_channel_register_call", NULL);
	CHANNEL_GATE();
	registered = FS_IN_GRPC(fs_grpc.channel_register_call(channel, method, host, reserved));
	if (active && registered != NULL)
		fs_chantab_note_registered(channel, registered, method, host);
	return registered;
}

/* The RPC path. While nothing is special (no fork pending, generation 0,
 * not auditing), a call goes straight to gRPC: a few loads and a jump. */
static inline bool calls_as_usual(void)
{
	return !fs_quiesce_pending() && fs_generation == 0 && fs_cfg.mode != FS_MODE_AUDIT;
}

static COLD grpc_call *create_call(grpc_channel *channel, grpc_call *parent_call,
				   uint32_t propagation_mask, grpc_completion_queue *cq, grpc_slice method,
				   const grpc_slice *host, gpr_timespec deadline, void *reserved)
{
	grpc_call *call;

	REAL(channel_create_call, "grpc_channel_create_call", NULL);
	fs_quiesce_gate();
	if (fs_generation != 0)
		cq = fs_fresh_cq(cq);
	call = FS_IN_GRPC(fs_grpc.channel_create_call(here(channel), parent_call, propagation_mask, cq, method,
						      host, deadline, reserved));
	if (__builtin_expect(fs_cfg.mode == FS_MODE_AUDIT, 0))
		fs_calls_created(call);
	return call;
}

EXPORT grpc_call *grpc_channel_create_call(grpc_channel *channel, grpc_call *parent_call,
					   uint32_t propagation_mask, grpc_completion_queue *cq,
					   grpc_slice method, const grpc_slice *host, gpr_timespec deadline,
					   void *reserved)
{
	grpc_call *(*real)(grpc_channel *, grpc_call *, uint32_t, grpc_completion_queue *, grpc_slice,
			   const grpc_slice *, gpr_timespec, void *) = fs_grpc.channel_create_call;

	if (__builtin_expect(real == NULL || !calls_as_usual(), 0))
		return create_call(channel, parent_call, propagation_mask, cq, method, host, deadline, reserved);
	return real(channel, parent_call, propagation_mask, cq, method, host, deadline, reserved);
}

static COLD grpc_call *create_registered_call(grpc_channel *channel, grpc_call *parent_call,
					      uint32_t propagation_mask, grpc_completion_queue *completion_queue,
					      void *registered_call_handle, gpr_timespec deadline, void *reserved)
{
	grpc_call *call;

	REAL(channel_create_registered_call, "grpc_channel_create_registered_call", NULL);
	fs_quiesce_gate();
	fs_grpc_enter();
	if (__builtin_expect(fs_generation != 0, 0) && fs_grpc_ensure()) {
		if (fs_cfg.mode == FS_MODE_AUDIT)
			audit_use(channel);
		else
			channel = fs_chantab_route_registered(channel, &registered_call_handle, fs_generation);
		completion_queue = fs_fresh_cq(completion_queue);
	}
	call = fs_grpc.channel_create_registered_call(channel, parent_call, propagation_mask, completion_queue,
						      registered_call_handle, deadline, reserved);
	fs_grpc_leave();
	if (__builtin_expect(fs_cfg.mode == FS_MODE_AUDIT, 0))
		fs_calls_created(call);
	return call;
}

EXPORT grpc_call *grpc_channel_create_registered_call(grpc_channel *channel, grpc_call *parent_call,
						      uint32_t propagation_mask,
						      grpc_completion_queue *completion_queue,
						      void *registered_call_handle, gpr_timespec deadline,
						      void *reserved)
{
	grpc_call *(*real)(grpc_channel *, grpc_call *, uint32_t, grpc_completion_queue *, void *, gpr_timespec,
			   void *) = fs_grpc.channel_create_registered_call;

	if (__builtin_expect(real == NULL || !calls_as_usual(), 0))
		return create_registered_call(channel, parent_call, propagation_mask, completion_queue,
					      registered_call_handle, deadline, reserved);
	return real(channel, parent_call, propagation_mask, completion_queue, registered_call_handle, deadline,
		    reserved);
}

/* Call references: counted in audit mode only, to report calls in flight. */
static COLD void call_ref(grpc_call *call)
{
	REAL(call_ref, "grpc_call_ref");
	if (__builtin_expect(fs_cfg.mode == FS_MODE_AUDIT, 0))
		fs_calls_ref(call);
	FS_IN_GRPC_VOID(fs_grpc.call_ref(call));
}

EXPORT void grpc_call_ref(grpc_call *call)
{
	void (*real)(grpc_call *) = fs_grpc.call_ref;

	if (__builtin_expect(real == NULL || fs_cfg.mode == FS_MODE_AUDIT, 0))
		call_ref(call);
	else
		real(call);
}

static COLD void call_unref(grpc_call *call)
{
	REAL(call_unref, "grpc_call_unref");
	if (__builtin_expect(fs_cfg.mode == FS_MODE_AUDIT, 0))
		fs_calls_unref(call);
	FS_IN_GRPC_VOID(fs_grpc.call_unref(call));
}

EXPORT void grpc_call_unref(grpc_call *call)
{
	void (*real)(grpc_call *) = fs_grpc.call_unref;

	if (__builtin_expect(real == NULL || fs_cfg.mode == FS_MODE_AUDIT, 0))
		call_unref(call);
	else
		real(call);
}

/* The rest of the channel API: the same routing as calls. */
EXPORT grpc_connectivity_state grpc_channel_check_connectivity_state(grpc_channel *channel, int try_to_connect)
{
	REAL(channel_check_connectivity_state, "grpc_channel_check_connectivity_state", GRPC_CHANNEL_SHUTDOWN);
	return FS_IN_GRPC(fs_grpc.channel_check_connectivity_state(here(channel), try_to_connect));
}

EXPORT void grpc_channel_watch_connectivity_state(grpc_channel *channel, grpc_connectivity_state last_observed,
						  gpr_timespec deadline, grpc_completion_queue *cq, void *tag)
{
	REAL(channel_watch_connectivity_state, "grpc_channel_watch_connectivity_state");
	if (fs_generation != 0)
		cq = fs_fresh_cq(cq);
	FS_IN_GRPC_VOID(fs_grpc.channel_watch_connectivity_state(here(channel), last_observed, deadline, cq, tag));
}

EXPORT int grpc_channel_num_external_connectivity_watchers(grpc_channel *channel)
{
	REAL(channel_num_external_connectivity_watchers, "grpc_channel_num_external_connectivity_watchers", 0);
	return FS_IN_GRPC(fs_grpc.channel_num_external_connectivity_watchers(here(channel)));
}

EXPORT int grpc_channel_support_connectivity_watcher(grpc_channel *channel)
{
	REAL(channel_support_connectivity_watcher, "grpc_channel_support_connectivity_watcher", 0);
	return FS_IN_GRPC(fs_grpc.channel_support_connectivity_watcher(here(channel)));
}

EXPORT char *grpc_channel_get_target(grpc_channel *channel)
{
	REAL(channel_get_target, "grpc_channel_get_target", NULL);
	return FS_IN_GRPC(fs_grpc.channel_get_target(here(channel)));
}

EXPORT void grpc_channel_get_info(grpc_channel *channel, const grpc_channel_info *info)
{
	REAL(channel_get_info, "grpc_channel_get_info");
	FS_IN_GRPC_VOID(fs_grpc.channel_get_info(here(channel), info));
}

EXPORT void grpc_channel_reset_connect_backoff(grpc_channel *channel)
{
	REAL(channel_reset_connect_backoff, "grpc_channel_reset_connect_backoff");
	FS_IN_GRPC_VOID(fs_grpc.channel_reset_connect_backoff(here(channel)));
}

/* grpc_core::Fork::BlockExecCtx (libgpr), called by core's grpc_prefork. Its
 * answer says whether prefork went ahead or skipped itself because another
 * thread was inside gRPC. */
EXPORT bool _ZN9grpc_core4Fork12BlockExecCtxEv(void);
EXPORT bool _ZN9grpc_core4Fork12BlockExecCtxEv(void)
{
	bool blocked;

	REAL(fork_block_exec_ctx, "grpc_core::Fork::BlockExecCtx", false);
	blocked = fs_grpc.fork_block_exec_ctx();
	fs_fork_note_core_block(blocked);
	return blocked;
}
