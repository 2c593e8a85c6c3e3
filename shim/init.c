#include "init.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "audit.h"
#include "chantab.h"
#include "config.h"
#include "credrec.h"
#include "experiments.h"
#include "forkpath.h"
#include "grpclib.h"
#include "libc.h"
#include "embedded.h"
#include "log.h"
#include "owner.h"
#include "quiesce.h"

atomic_bool fs_ready;

static pthread_once_t once = PTHREAD_ONCE_INIT;

/* Nothing here calls a hook that initialises (no fork, no gRPC), so the
 * pthread_once cannot be re-entered from its own thread. */
static void init_once(void)
{
	fs_libc_resolve();
	/* secure_getenv: a setuid program takes no setting from its caller. */
	fs_config_load(&fs_cfg, secure_getenv);
	/* Audit counts embedded gRPC's descriptors, so it must know where that is. */
	if (fs_mode_acts(fs_cfg.mode) || fs_cfg.mode == FS_MODE_AUDIT)
		fs_owner_init(fs_cfg.objects);
	if (fs_mode_acts(fs_cfg.mode))
		fs_embedded_init();
	if (fs_cfg.mode != FS_MODE_OFF &&
	    pthread_atfork(fs_fork_prepare, fs_fork_parent, fs_fork_child) != 0) {
		fs_log(FS_WARN, "pthread_atfork failed: forks are passed through untouched");
		fs_cfg.mode = FS_MODE_OFF;
	}
	atomic_store_explicit(&fs_ready, true, memory_order_release);
	fs_audit_started();
}

void fs_init_slow(void)
{
	pthread_once(&once, init_once);
}

__attribute__((constructor)) static void fs_constructor(void)
{
	fs_ensure_init();
}

/* The releases the channel table deferred: for good, as the application's
 * own are in grpc_channel_credentials_release. */
static void table_creds_release(grpc_channel_credentials *creds)
{
	fs_credrec_forget(creds);
	fs_grpc.channel_credentials_release(creds);
}

/* Policy close: an inherited channel's calls go to a channel that fails them
 * at once, saying why. */
static grpc_channel *closed_stand_in(const char *target, grpc_channel_credentials *creds,
				     const grpc_channel_args *args)
{
	return fs_grpc.lame_client_channel_create(target, GRPC_STATUS_UNAVAILABLE,
						  "grpc-forksafe: this channel was inherited across fork(); "
						  "the child must create a channel of its own");
}

/* A child whose fork went ahead without core's fork handlers: calls on any
 * channel fail at once, saying why (see fs_grpc_unusable). */
grpc_channel *fs_unusable_channel(const char *target)
{
	char why[320];

	snprintf(why, sizeof(why), "grpc-forksafe: gRPC cannot be used in this child: %s",
		 fs_grpc_unusable != NULL ? fs_grpc_unusable : "the fork went ahead without gRPC's fork handlers");
	return fs_grpc.lame_client_channel_create(target, GRPC_STATUS_UNAVAILABLE, why);
}

static grpc_channel *unusable_stand_in(const char *target, grpc_channel_credentials *creds,
				       const grpc_channel_args *args)
{
	return fs_unusable_channel(target);
}

static pthread_once_t grpc_once = PTHREAD_ONCE_INIT;

static void grpc_once_init(void)
{
	struct fs_chan_ops ops;
	const char *user;

	fs_grpc_resolve();
	if (fs_grpc_state() != FS_GRPC_ACTIVE)
		return;
	ops.stand_in = fs_cfg.mode == FS_MODE_CLOSE ? closed_stand_in : fs_grpc.channel_create;
	ops.stand_in_words = fs_cfg.mode == FS_MODE_CLOSE ? "its calls fail (policy close)"
							    : "its calls go to a replacement channel";
	ops.unusable_stand_in = unusable_stand_in;
	ops.unusable_words = "its calls fail: gRPC cannot be used in this child";
	ops.destroy = fs_grpc.channel_destroy;
	ops.register_call = fs_grpc.channel_register_call;
	ops.creds_release = table_creds_release;
	fs_chantab_set_ops(&ops);
	/* Turns nothing off in audit mode, which must behave exactly as without
	 * the shim. */
	if (fs_cfg.mode != FS_MODE_OFF)
		fs_experiments_init();
	if (!fs_mode_acts(fs_cfg.mode))
		return;
	/* Before any thread can wait in gRPC: every hook that lets one wait
	 * has come through here first. */
	fs_quiesce_on = fs_cfg.child_grpc == FS_CHILD_INHERITED;
	if (fs_quiesce_on)
		fs_quiesce_init();
	/* Core reads GRPC_ENABLE_FORK_SUPPORT once, in its first grpc_init; setting
	 * the override through Fork::Enable leaves the environment (and so child
	 * programs and grpcio's own fork handling) untouched. A user's explicit
	 * setting wins. */
	/* A child that gets a fresh gRPC needs nothing of core's fork support,
	 * which costs every RPC some 350 instructions (docs/performance.md). */
	if (fs_cfg.child_grpc == FS_CHILD_FRESH)
		return;
	user = getenv("GRPC_ENABLE_FORK_SUPPORT");
	if (user != NULL) {
		fs_log(FS_DEBUG, "core fork support left to GRPC_ENABLE_FORK_SUPPORT=%s", user);
		return;
	}
	if (fs_grpc.is_initialized())
		fs_log(FS_WARN, "gRPC was initialised before the shim saw it: core fork support stays as it is");
	else
		fs_grpc.fork_enable(true);
}

_Atomic unsigned char fs_grpc_outcome;

/* The first call of each thread until everything is settled; afterwards the
 * hooks read fs_grpc_outcome alone (init.h). */
enum fs_grpc_outcome fs_grpc_ensure_slow(void)
{
	enum fs_grpc_outcome o = FS_GRPC_IGNORED;

	fs_ensure_init();
	pthread_once(&grpc_once, grpc_once_init);
	if (fs_cfg.mode != FS_MODE_OFF && fs_grpc_state() == FS_GRPC_ACTIVE)
		o = fs_mode_acts(fs_cfg.mode) ? FS_GRPC_PROTECTED : FS_GRPC_WATCHED;
	atomic_store_explicit(&fs_grpc_outcome, o, memory_order_release);
	return o;
}
