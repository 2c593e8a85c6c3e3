/* The table of live channels: what it takes to recreate each one in a child
 * (target, arguments, credentials), the methods registered on it, and the
 * replacement that stands in for it in the current fork generation.
 *
 * The table never calls gRPC with its lock held: gRPC may block on its own
 * locks (or on a fork in progress), and the fork path takes this lock. */
#ifndef FORKSAFE_CHANTAB_H
#define FORKSAFE_CHANTAB_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

/* The gRPC functions the table calls (the real ones; fakes in unit tests).
 * `stand_in` makes what calls on an inherited channel go to: a replacement
 * (policy reconnect) or a channel whose calls fail at once (policy close). */
struct fs_chan_ops {
	grpc_channel *(*stand_in)(const char *target, grpc_channel_credentials *creds, const grpc_channel_args *args);
	void (*destroy)(grpc_channel *channel);
	void *(*register_call)(grpc_channel *channel, const char *method, const char *host, void *reserved);
	void (*creds_release)(grpc_channel_credentials *creds);
	const char *stand_in_words; /* for the log: what the stand-in does */
	/* What calls on an inherited channel go to in a child whose gRPC cannot
	 * be used (see fs_chantab_child_grpc_unusable), and the words for it. */
	grpc_channel *(*unusable_stand_in)(const char *target, grpc_channel_credentials *creds,
					   const grpc_channel_args *args);
	const char *unusable_words;
};

void fs_chantab_set_ops(const struct fs_chan_ops *ops);
/* The ops in use: a fresh child changes some (fresh.c). */
void fs_chantab_get_ops(struct fs_chan_ops *ops);

/* Child only, while it has one thread: core's fork handlers did not run, so
 * calls on inherited channels go to channels that fail at once (whatever the
 * policy) instead of replacements that could hang. */
void fs_chantab_child_grpc_unusable(void);

/* Records a channel just created in `generation`. Copies target and arguments
 * and holds the credentials until the channel is untracked. */
void fs_chantab_track(grpc_channel *channel, const char *target, grpc_channel_credentials *creds,
		      const grpc_channel_args *args, unsigned generation);

/* Records a method registration (grpc_channel_register_call's result). */
void fs_chantab_note_registered(grpc_channel *channel, void *registered, const char *method, const char *host);

/* The channel a call on `channel` must use in `generation`: the channel itself
 * if it was created in this generation or is unknown, else its stand-in,
 * created on first use with the same target, arguments and credentials. */
grpc_channel *fs_chantab_route(grpc_channel *channel, unsigned generation);

/* As fs_chantab_route, and maps *registered to the same method's registration
 * on the replacement. */
grpc_channel *fs_chantab_route_registered(grpc_channel *channel, void **registered, unsigned generation);

/* Forgets a channel the application is destroying; destroys its replacement
 * if this generation made one and releases the credentials it held. True when
 * the channel itself belongs to a gRPC instance that must not run here (see
 * fs_chantab_child_fresh): the caller must not destroy it. */
bool fs_chantab_untrack(grpc_channel *channel, unsigned generation);

/* Child with a fresh gRPC: channels and stand-ins made before `generation`
 * are the inherited instance's, dropped rather than destroyed. */
void fs_chantab_child_fresh(unsigned generation);

/* grpc_channel_credentials_release by the application: true when the table
 * still uses these credentials and takes over the release for later. */
bool fs_chantab_defer_release(grpc_channel_credentials *creds);

/* Fork path: lock order is the table, then the fd registry. */
void fs_chantab_lock(void);
void fs_chantab_unlock(void);
void fs_chantab_child_reset_lock(void);
size_t fs_chantab_count_locked(void);

/* Audit mode. The first call in `generation` on an inherited channel: true
 * once per channel and generation, with its target copied to `target`. */
bool fs_chantab_note_inherited_use(grpc_channel *channel, unsigned generation, char *target, size_t size);
/* True when a channel to `target` with the same arguments was inherited (made
 * in an earlier generation): gRPC would give a new one its connection. */
bool fs_chantab_inherited_twin(const char *target, const grpc_channel_args *args, unsigned generation);

/* For tests and statistics. */
size_t fs_chantab_count(void);
size_t fs_chantab_held_creds(void);

#endif
