/* How every channel and call credentials object was made, so that a child
 * running a fresh copy of gRPC can make a twin of an inherited one there: the
 * inherited object belongs to the parent's gRPC, whose code must not run in
 * the child.
 *
 * Recording happens only when credentials are made (rare); nothing here is on
 * the RPC path. The module has its own mutex (FS_LOCK_CREDREC in locks.h, a
 * leaf: nothing else is taken while it is held) and never calls gRPC with it
 * held. */
#ifndef FORKSAFE_CREDREC_H
#define FORKSAFE_CREDREC_H

#include <stdbool.h>
#include <stddef.h>

#include <grpc/grpc.h>
#include <grpc/grpc_security.h>

enum fs_cred_kind {
	FS_CRED_INSECURE = 1,      /* grpc_insecure_credentials_create */
	FS_CRED_LOCAL,             /* grpc_local_credentials_create */
	FS_CRED_SSL,               /* grpc_ssl_credentials_create */
	FS_CRED_SSL_EX,            /* grpc_ssl_credentials_create_ex */
	FS_CRED_COMPOSITE_CHANNEL, /* grpc_composite_channel_credentials_create */
	FS_CRED_GOOGLE_DEFAULT,    /* grpc_google_default_credentials_create */
	FS_CRED_ACCESS_TOKEN,      /* grpc_access_token_credentials_create (call) */
	FS_CRED_PLUGIN,            /* grpc_metadata_credentials_create_from_plugin (call) */
	FS_CRED_COMPOSITE_CALL,    /* grpc_composite_call_credentials_create (call) */
};

/* A constructor's arguments as its caller passed them: borrowed for the
 * length of fs_credrec_note_*, which copies what it keeps. Parts of a
 * composite are named by the objects the caller passed; their recipes are
 * copied, as the caller commonly releases the parts right after composing. */
struct fs_cred_recipe {
	enum fs_cred_kind kind;
	union {
		grpc_local_connect_type local;
		struct {
			const char *pem_root_certs;                       /* may be NULL */
			const grpc_ssl_pem_key_cert_pair *pair;           /* may be NULL */
			const verify_peer_options *verify;                /* FS_CRED_SSL; may be NULL */
			const grpc_ssl_verify_peer_options *verify_ex;    /* FS_CRED_SSL_EX; may be NULL */
		} ssl;
		struct {
			grpc_channel_credentials *channel; /* FS_CRED_COMPOSITE_CHANNEL */
			grpc_call_credentials *call;       /* the call part; the first for FS_CRED_COMPOSITE_CALL */
			grpc_call_credentials *call2;      /* FS_CRED_COMPOSITE_CALL: the second */
		} composite;
		grpc_call_credentials *google_default_call; /* may be NULL */
		const char *access_token;
		struct {
			/* Copied by value: its functions and state belong to the
			 * application (or grpc++), whose code stays valid in a child. */
			grpc_metadata_credentials_plugin plugin;
			grpc_security_level min_level;
		} plugin;
	} u;
};

/* The constructors of the gRPC instance twins are made in (the fresh copy in
 * a child; fakes in unit tests). A missing one makes no twin of that kind. */
struct fs_cred_ops {
	grpc_channel_credentials *(*insecure_create)(void);
	grpc_channel_credentials *(*local_create)(grpc_local_connect_type type);
	grpc_channel_credentials *(*ssl_create)(const char *pem_root_certs, grpc_ssl_pem_key_cert_pair *pair,
						const verify_peer_options *verify, void *reserved);
	grpc_channel_credentials *(*ssl_create_ex)(const char *pem_root_certs, grpc_ssl_pem_key_cert_pair *pair,
						   const grpc_ssl_verify_peer_options *verify, void *reserved);
	grpc_channel_credentials *(*composite_channel_create)(grpc_channel_credentials *channel,
							      grpc_call_credentials *call, void *reserved);
	grpc_channel_credentials *(*google_default_create)(grpc_call_credentials *call);
	grpc_call_credentials *(*access_token_create)(const char *token, void *reserved);
	grpc_call_credentials *(*plugin_create)(grpc_metadata_credentials_plugin plugin,
						grpc_security_level min_level, void *reserved);
	grpc_call_credentials *(*composite_call_create)(grpc_call_credentials *a, grpc_call_credentials *b,
							void *reserved);
	void (*channel_release)(grpc_channel_credentials *creds);
	void (*call_release)(grpc_call_credentials *creds);
};

/* Records how `made` (just returned by a constructor, in the current
 * generation) was made. A second note for the same address replaces the
 * first: the old object was released without passing through the shim. */
void fs_credrec_note_channel(grpc_channel_credentials *made, const struct fs_cred_recipe *how);
void fs_credrec_note_call(grpc_call_credentials *made, const struct fs_cred_recipe *how);

/* The application released `creds` (channel or call credentials) for good:
 * its recipe goes. Copies held by composites, and a twin already made, stay. */
void fs_credrec_forget(const void *creds);

/* The credentials to use in the instance `in_fresh` for `inherited`: the
 * object itself if it was made in the current generation, else its twin, made
 * on first use and cached for the generation (the cache keeps the reference;
 * the caller borrows it until fs_credrec_reset). NULL, with *why_not set to
 * words naming the cause, when no twin can be made: credentials made by a kind
 * of constructor the shim does not record, or a composite with such a part.
 *
 * One twin per original object per generation, composites' parts included:
 * a plugin's state and an SSL verify callback's userdata are shared by the
 * inherited object and its twin, and the twin's release runs their destroy
 * function, which must run once. */
grpc_channel_credentials *fs_credrec_twin_channel(grpc_channel_credentials *inherited,
						  const struct fs_cred_ops *in_fresh, const char **why_not);
grpc_call_credentials *fs_credrec_twin_call(grpc_call_credentials *inherited, const struct fs_cred_ops *in_fresh,
					    const char **why_not);

/* True when `creds` was noted in the current generation: made by this
 * process's own gRPC, which may release it. Unknown credentials count as
 * inherited. */
bool fs_credrec_made_here(const void *creds);

/* A new generation: what is noted from now on is made in `generation`, and
 * every object noted before is inherited. The twins cached so far are
 * released through `release_with` (the instance that made them); with NULL
 * they are dropped unreleased, as a child must do with the twins its parent
 * made: that instance's code never runs in the child. */
void fs_credrec_reset(unsigned generation, const struct fs_cred_ops *release_with);

/* Fork path: taken in the parent's prepare step, re-made in the child. */
void fs_credrec_lock(void);
void fs_credrec_unlock(void);
void fs_credrec_child_reset_lock(void);

/* For tests and statistics. */
size_t fs_credrec_count(void);
size_t fs_credrec_twins(void);

#endif
