/* The installed libgrpc: the real functions behind the shim's hooks, core's
 * fork support, and whether this gRPC is one the shim can act on. */
#ifndef FORKSAFE_GRPCLIB_H
#define FORKSAFE_GRPCLIB_H

#include <stdbool.h>
#include <stdint.h>

#include <grpc/grpc.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>

struct fs_grpc {
	void (*init)(void);
	void (*shutdown)(void);
	int (*is_initialized)(void);
	const char *(*version_string)(void);
	grpc_channel *(*channel_create)(const char *, grpc_channel_credentials *, const grpc_channel_args *);
	grpc_channel *(*channel_create_from_fd)(const char *, int, grpc_channel_credentials *,
						const grpc_channel_args *);
	void (*channel_destroy)(grpc_channel *);
	grpc_call *(*channel_create_call)(grpc_channel *, grpc_call *, uint32_t, grpc_completion_queue *,
					  grpc_slice, const grpc_slice *, gpr_timespec, void *);
	grpc_call *(*channel_create_registered_call)(grpc_channel *, grpc_call *, uint32_t,
						     grpc_completion_queue *, void *, gpr_timespec, void *);
	void *(*channel_register_call)(grpc_channel *, const char *, const char *, void *);
	void (*channel_credentials_release)(grpc_channel_credentials *);
	void (*server_add_channel_from_fd)(grpc_server *, int, grpc_server_credentials *);
	grpc_channel *(*lame_client_channel_create)(const char *, grpc_status_code, const char *);
	grpc_connectivity_state (*channel_check_connectivity_state)(grpc_channel *, int);
	void (*channel_watch_connectivity_state)(grpc_channel *, grpc_connectivity_state, gpr_timespec,
						 grpc_completion_queue *, void *);
	int (*channel_num_external_connectivity_watchers)(grpc_channel *);
	int (*channel_support_connectivity_watcher)(grpc_channel *);
	char *(*channel_get_target)(grpc_channel *);
	void (*channel_get_info)(grpc_channel *, const grpc_channel_info *);
	void (*channel_reset_connect_backoff)(grpc_channel *);
	void (*call_ref)(grpc_call *);
	void (*call_unref)(grpc_call *);
	grpc_event (*cq_next)(grpc_completion_queue *, gpr_timespec, void *);
	grpc_event (*cq_pluck)(grpc_completion_queue *, void *, gpr_timespec, void *);
	void (*cq_shutdown)(grpc_completion_queue *);
	void (*cq_destroy)(grpc_completion_queue *);
	grpc_cq_completion_type (*cq_completion_type)(grpc_completion_queue *);
	/* Completion queue creation (cqtwin.c), and what tells a queue's polling type. */
	grpc_completion_queue *(*cq_create)(const grpc_completion_queue_factory *,
					    const grpc_completion_queue_attributes *, void *);
	grpc_completion_queue *(*cq_create_for_next)(void *);
	grpc_completion_queue *(*cq_create_for_pluck)(void *);
	grpc_completion_queue *(*cq_create_for_callback)(grpc_completion_queue_functor *, void *);
	const grpc_completion_queue_factory *(*cq_factory_lookup)(const grpc_completion_queue_attributes *);
	bool (*cq_can_listen)(grpc_completion_queue *);
	void *(*cq_pollset)(grpc_completion_queue *);
	/* Credentials constructors recorded for twins (credrec.c). */
	grpc_channel_credentials *(*insecure_credentials_create)(void);
	grpc_channel_credentials *(*local_credentials_create)(grpc_local_connect_type);
	grpc_channel_credentials *(*ssl_credentials_create)(const char *, grpc_ssl_pem_key_cert_pair *,
							    const verify_peer_options *, void *);
	grpc_channel_credentials *(*ssl_credentials_create_ex)(const char *, grpc_ssl_pem_key_cert_pair *,
							       const grpc_ssl_verify_peer_options *, void *);
	grpc_channel_credentials *(*composite_channel_credentials_create)(grpc_channel_credentials *,
									  grpc_call_credentials *, void *);
	grpc_call_credentials *(*composite_call_credentials_create)(grpc_call_credentials *, grpc_call_credentials *,
								    void *);
	grpc_call_credentials *(*access_token_credentials_create)(const char *, void *);
	grpc_call_credentials *(*metadata_credentials_create_from_plugin)(grpc_metadata_credentials_plugin,
									  grpc_security_level, void *);
	grpc_channel_credentials *(*google_default_credentials_create)(grpc_call_credentials *);
	void (*call_credentials_release)(grpc_call_credentials *);
	gpr_timespec (*now)(gpr_clock_type);
	/* Core's fork support (C++ functions in libgrpc and libgpr). */
	void (*prefork)(void);
	void (*postfork_parent)(void);
	void (*postfork_child)(void);
	void (*fork_enable)(bool);
	bool (*fork_block_exec_ctx)(void);
	const char *(*poll_strategy_name)(void);
	const bool *fork_support_enabled;
};

enum fs_grpc_state {
	FS_GRPC_UNRESOLVED,  /* no gRPC function called yet */
	FS_GRPC_ACTIVE,      /* resolved, known version: the shim acts */
	FS_GRPC_PASSTHROUGH, /* missing symbols or an untested version: hooks only forward */
};

extern struct fs_grpc fs_grpc __attribute__((visibility("hidden")));

/* Resolves everything once (idempotent, thread-safe); not for the fork path. */
void fs_grpc_resolve(void);
enum fs_grpc_state fs_grpc_state(void);

/* A symbol of gRPC's libraries (libgrpc, libgpr and their dependencies),
 * found also where they were loaded RTLD_LOCAL, once fs_grpc_resolve has run;
 * NULL if there is none. Does not resolve by itself. */
void *fs_grpc_symbol(const char *name);

/* For a hook on one of core's functions: core's `name`, kept in *slot once
 * found. Until gRPC is resolved, and for good once it is and has no such
 * function, `fallback`. */
void *fs_grpc_core_function(void *_Atomic *slot, const char *name, void *fallback);

/* For a child's fresh gRPC (fresh.c): every pointer the shim keeps into
 * gRPC core, the fs_grpc table and the core functions behind its hooks
 * resolved so far, with its symbol name and whether it points at a variable. */
void fs_grpc_own_slots(void (*cb)(void **slot, const char *name, bool data));

/* From now on fs_grpc_symbol looks in this instance of libgrpc (a child's
 * fresh copy) before anywhere else. */
void fs_grpc_use_instance(void *handle);

#endif
