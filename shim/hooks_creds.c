/*
 * The credentials constructors, recorded for credrec.c so that a child running
 * a fresh gRPC can make twins of inherited credentials; and the release of
 * call credentials, which forgets them. Credentials are made rarely (grpc++
 * makes them once per channel at most), so recording costs nothing on the RPC
 * path. Recorded in modes reconnect and close, in every generation: what a
 * child makes is inherited by its own children.
 */
#include "credrec.h"
#include "execctx.h"
#include "forkpath.h"
#include "fresh.h"
#include "grpclib.h"
#include "hooks.h"
#include "init.h"
#include "log.h"

#define EXPORT __attribute__((visibility("default")))


static void note_channel(grpc_channel_credentials *made, const struct fs_cred_recipe *how)
{
	if (made != NULL && fs_grpc_protects())
		fs_credrec_note_channel(made, how);
}

static void note_call(grpc_call_credentials *made, const struct fs_cred_recipe *how)
{
	if (made != NULL && fs_grpc_protects())
		fs_credrec_note_call(made, how);
}

/* gRPC's header declares it without a prototype ("()"): this one gives it. */
EXPORT grpc_channel_credentials *grpc_insecure_credentials_create(void);
EXPORT grpc_channel_credentials *grpc_insecure_credentials_create(void)
{
	grpc_channel_credentials *c;

	REAL(insecure_credentials_create, "grpc_insecure_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.insecure_credentials_create());
	note_channel(c, &(struct fs_cred_recipe){ .kind = FS_CRED_INSECURE });
	return c;
}

EXPORT grpc_channel_credentials *grpc_local_credentials_create(grpc_local_connect_type type)
{
	grpc_channel_credentials *c;

	REAL(local_credentials_create, "grpc_local_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.local_credentials_create(type));
	note_channel(c, &(struct fs_cred_recipe){ .kind = FS_CRED_LOCAL, .u.local = type });
	return c;
}

EXPORT grpc_channel_credentials *grpc_ssl_credentials_create(const char *pem_root_certs,
							     grpc_ssl_pem_key_cert_pair *pem_key_cert_pair,
							     const verify_peer_options *verify_options,
							     void *reserved)
{
	grpc_channel_credentials *c;

	REAL(ssl_credentials_create, "grpc_ssl_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.ssl_credentials_create(pem_root_certs, pem_key_cert_pair, verify_options, reserved));
	note_channel(c, &(struct fs_cred_recipe){ .kind = FS_CRED_SSL,
						  .u.ssl = { .pem_root_certs = pem_root_certs,
							     .pair = pem_key_cert_pair,
							     .verify = verify_options } });
	return c;
}

EXPORT grpc_channel_credentials *grpc_ssl_credentials_create_ex(const char *pem_root_certs,
								grpc_ssl_pem_key_cert_pair *pem_key_cert_pair,
								const grpc_ssl_verify_peer_options *verify_options,
								void *reserved)
{
	grpc_channel_credentials *c;

	REAL(ssl_credentials_create_ex, "grpc_ssl_credentials_create_ex", NULL);
	c = FS_IN_GRPC(
		fs_grpc.ssl_credentials_create_ex(pem_root_certs, pem_key_cert_pair, verify_options, reserved));
	note_channel(c, &(struct fs_cred_recipe){ .kind = FS_CRED_SSL_EX,
						  .u.ssl = { .pem_root_certs = pem_root_certs,
							     .pair = pem_key_cert_pair,
							     .verify_ex = verify_options } });
	return c;
}

EXPORT grpc_channel_credentials *grpc_composite_channel_credentials_create(grpc_channel_credentials *channel_creds,
									   grpc_call_credentials *call_creds,
									   void *reserved)
{
	grpc_channel_credentials *c;

	REAL(composite_channel_credentials_create, "grpc_composite_channel_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.composite_channel_credentials_create(channel_creds, call_creds, reserved));
	/* The parts are still the caller's here: their recipes are copied now. */
	note_channel(c, &(struct fs_cred_recipe){ .kind = FS_CRED_COMPOSITE_CHANNEL,
						  .u.composite = { .channel = channel_creds, .call = call_creds } });
	return c;
}

EXPORT grpc_channel_credentials *grpc_google_default_credentials_create(grpc_call_credentials *call_credentials)
{
	grpc_channel_credentials *c;

	REAL(google_default_credentials_create, "grpc_google_default_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.google_default_credentials_create(call_credentials));
	note_channel(c, &(struct fs_cred_recipe){ .kind = FS_CRED_GOOGLE_DEFAULT,
						  .u.google_default_call = call_credentials });
	return c;
}

EXPORT grpc_call_credentials *grpc_composite_call_credentials_create(grpc_call_credentials *creds1,
								     grpc_call_credentials *creds2, void *reserved)
{
	grpc_call_credentials *c;

	REAL(composite_call_credentials_create, "grpc_composite_call_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.composite_call_credentials_create(creds1, creds2, reserved));
	note_call(c, &(struct fs_cred_recipe){ .kind = FS_CRED_COMPOSITE_CALL,
					       .u.composite = { .call = creds1, .call2 = creds2 } });
	return c;
}

EXPORT grpc_call_credentials *grpc_access_token_credentials_create(const char *access_token, void *reserved)
{
	grpc_call_credentials *c;

	REAL(access_token_credentials_create, "grpc_access_token_credentials_create", NULL);
	c = FS_IN_GRPC(fs_grpc.access_token_credentials_create(access_token, reserved));
	note_call(c, &(struct fs_cred_recipe){ .kind = FS_CRED_ACCESS_TOKEN, .u.access_token = access_token });
	return c;
}

EXPORT grpc_call_credentials *grpc_metadata_credentials_create_from_plugin(grpc_metadata_credentials_plugin plugin,
									   grpc_security_level min_security_level,
									   void *reserved)
{
	grpc_call_credentials *c;

	REAL(metadata_credentials_create_from_plugin, "grpc_metadata_credentials_create_from_plugin", NULL);
	c = FS_IN_GRPC(fs_grpc.metadata_credentials_create_from_plugin(plugin, min_security_level, reserved));
	note_call(c, &(struct fs_cred_recipe){ .kind = FS_CRED_PLUGIN,
					       .u.plugin = { .plugin = plugin, .min_level = min_security_level } });
	return c;
}

/* Forgotten before gRPC frees them, so that credentials made at the same
 * address meanwhile are not forgotten instead. Composites made from them keep
 * copies of their recipe. */
EXPORT void grpc_call_credentials_release(grpc_call_credentials *creds)
{
	/* Made before the fork, in a fresh child: releasing it would run the
	 * inherited gRPC's code; it is kept instead. */
	if (__builtin_expect(fs_generation != 0, 0) && fs_fresh_inherited_creds(creds)) {
		fs_fresh_keep(creds);
		return;
	}
	if (creds != NULL && fs_grpc_protects())
		fs_credrec_forget(creds);
	REAL(call_credentials_release, "grpc_call_credentials_release");
	FS_IN_GRPC_VOID(fs_grpc.call_credentials_release(creds));
}
