/* The credentials record against fake constructors: recipes own copies of
 * everything, composites keep their parts' recipes, one twin per original and
 * generation, and no twin (with a reason) for what was not recorded. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>

#include "credrec.h"

#define MAX_MADE 64

/* The "application's" credentials: distinct addresses. */
static char app[16];
#define CH(i) ((grpc_channel_credentials *)&app[i])
#define CALL(i) ((grpc_call_credentials *)&app[i])

/* The fresh instance's: distinct addresses too, and what each was made from. */
static char fresh[MAX_MADE];
static int made, channel_released, call_released;
static struct {
	const char *fn;
	char roots[64], key[64], chain[64], token[64];
	bool had_pair, had_verify;
	verify_peer_options verify;
	grpc_ssl_verify_peer_options verify_ex;
	grpc_metadata_credentials_plugin plugin;
	grpc_security_level level;
	grpc_local_connect_type local;
	void *a, *b;
} calls[MAX_MADE];

static void *fake_made(const char *fn)
{
	int i = __atomic_fetch_add(&made, 1, __ATOMIC_SEQ_CST);

	calls[i].fn = fn;
	return &fresh[i];
}
static int index_of(const void *twin)
{
	return (int)((const char *)twin - fresh);
}

static grpc_channel_credentials *f_insecure(void)
{
	return fake_made("insecure");
}
static grpc_channel_credentials *f_local(grpc_local_connect_type t)
{
	grpc_channel_credentials *c = fake_made("local");

	calls[index_of(c)].local = t;
	return c;
}
static void note_ssl(int i, const char *roots, const grpc_ssl_pem_key_cert_pair *pair)
{
	snprintf(calls[i].roots, sizeof(calls[i].roots), "%s", roots != NULL ? roots : "(null)");
	calls[i].had_pair = pair != NULL;
	if (pair != NULL) {
		snprintf(calls[i].key, sizeof(calls[i].key), "%s", pair->private_key);
		snprintf(calls[i].chain, sizeof(calls[i].chain), "%s", pair->cert_chain);
	}
}
static grpc_channel_credentials *f_ssl(const char *roots, grpc_ssl_pem_key_cert_pair *pair,
				       const verify_peer_options *verify, void *reserved)
{
	grpc_channel_credentials *c = fake_made("ssl");
	int i = index_of(c);

	note_ssl(i, roots, pair);
	calls[i].had_verify = verify != NULL;
	if (verify != NULL)
		calls[i].verify = *verify;
	return c;
}
static grpc_channel_credentials *f_ssl_ex(const char *roots, grpc_ssl_pem_key_cert_pair *pair,
					  const grpc_ssl_verify_peer_options *verify, void *reserved)
{
	grpc_channel_credentials *c = fake_made("ssl_ex");
	int i = index_of(c);

	note_ssl(i, roots, pair);
	calls[i].had_verify = verify != NULL;
	if (verify != NULL)
		calls[i].verify_ex = *verify;
	return c;
}
static grpc_channel_credentials *f_composite_channel(grpc_channel_credentials *a, grpc_call_credentials *b,
						     void *reserved)
{
	grpc_channel_credentials *c = fake_made("composite_channel");

	calls[index_of(c)].a = a;
	calls[index_of(c)].b = b;
	return c;
}
static grpc_channel_credentials *f_google_default(grpc_call_credentials *a)
{
	grpc_channel_credentials *c = fake_made("google_default");

	calls[index_of(c)].a = a;
	return c;
}
static grpc_call_credentials *f_token(const char *token, void *reserved)
{
	grpc_call_credentials *c = fake_made("token");

	snprintf(calls[index_of(c)].token, sizeof(calls[0].token), "%s", token);
	return c;
}
static grpc_call_credentials *f_plugin(grpc_metadata_credentials_plugin plugin, grpc_security_level level,
				       void *reserved)
{
	grpc_call_credentials *c = fake_made("plugin");

	calls[index_of(c)].plugin = plugin;
	calls[index_of(c)].level = level;
	return c;
}
static grpc_call_credentials *f_composite_call(grpc_call_credentials *a, grpc_call_credentials *b, void *reserved)
{
	grpc_call_credentials *c = fake_made("composite_call");

	calls[index_of(c)].a = a;
	calls[index_of(c)].b = b;
	return c;
}
static void f_channel_release(grpc_channel_credentials *c)
{
	channel_released++;
}
static void f_call_release(grpc_call_credentials *c)
{
	call_released++;
}

static const struct fs_cred_ops fake_ops = {
	.insecure_create = f_insecure,
	.local_create = f_local,
	.ssl_create = f_ssl,
	.ssl_create_ex = f_ssl_ex,
	.composite_channel_create = f_composite_channel,
	.google_default_create = f_google_default,
	.access_token_create = f_token,
	.plugin_create = f_plugin,
	.composite_call_create = f_composite_call,
	.channel_release = f_channel_release,
	.call_release = f_call_release,
};

static void setup(void)
{
	made = channel_released = call_released = 0;
	fs_credrec_reset(0, NULL);
}

TestSuite(credrec, .init = setup);

/* Notes `made` as made by the constructor `kind` with no arguments worth copying. */
static void note_plain_channel(grpc_channel_credentials *c, enum fs_cred_kind kind)
{
	struct fs_cred_recipe how = { .kind = kind };

	fs_credrec_note_channel(c, &how);
}

static void note_token(grpc_call_credentials *c, const char *token)
{
	struct fs_cred_recipe how = { .kind = FS_CRED_ACCESS_TOKEN, .u.access_token = token };

	fs_credrec_note_call(c, &how);
}

Test(credrec, credentials_made_in_this_generation_are_their_own_twin)
{
	const char *why = "unset";

	note_plain_channel(CH(0), FS_CRED_INSECURE);
	cr_assert_eq(fs_credrec_twin_channel(CH(0), &fake_ops, &why), CH(0));
	cr_assert_null(why);
	cr_assert_eq(made, 0, "nothing is made for credentials of this generation");
}

Test(credrec, ssl_recipe_owns_copies_of_the_application_strings)
{
	char *roots = strdup("ROOTS-PEM"), *key = strdup("KEY-PEM"), *chain = strdup("CHAIN-PEM");
	grpc_ssl_pem_key_cert_pair pair = { key, chain };
	struct fs_cred_recipe how = { .kind = FS_CRED_SSL, .u.ssl = { .pem_root_certs = roots, .pair = &pair } };
	grpc_channel_credentials *t;
	const char *why;

	fs_credrec_note_channel(CH(0), &how);
	/* The application overwrites and frees its strings once the object is made. */
	memset(roots, 'x', strlen(roots));
	memset(key, 'x', strlen(key));
	memset(chain, 'x', strlen(chain));
	free(roots);
	free(key);
	free(chain);
	pair.private_key = pair.cert_chain = NULL;

	fs_credrec_reset(1, NULL);
	t = fs_credrec_twin_channel(CH(0), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_neq(t, CH(0));
	cr_assert_str_eq(calls[index_of(t)].fn, "ssl");
	cr_assert_str_eq(calls[index_of(t)].roots, "ROOTS-PEM");
	cr_assert(calls[index_of(t)].had_pair);
	cr_assert_str_eq(calls[index_of(t)].key, "KEY-PEM");
	cr_assert_str_eq(calls[index_of(t)].chain, "CHAIN-PEM");
	cr_assert_not(calls[index_of(t)].had_verify);
}

static int verify_cb(const char *target, const char *peer, void *userdata)
{
	return 0;
}
static void verify_destruct(void *userdata)
{
}

Test(credrec, ssl_without_roots_or_pair_keeps_them_absent_and_copies_verify_options)
{
	verify_peer_options *verify = malloc(sizeof(*verify));
	grpc_ssl_verify_peer_options verify_ex = { verify_cb, (void *)0x1234, verify_destruct };
	struct fs_cred_recipe how = { .kind = FS_CRED_SSL, .u.ssl = { .verify = verify } };
	struct fs_cred_recipe how_ex = { .kind = FS_CRED_SSL_EX, .u.ssl = { .verify_ex = &verify_ex } };
	grpc_channel_credentials *t;
	const char *why;

	*verify = (verify_peer_options){ verify_cb, (void *)0x5678, verify_destruct };
	fs_credrec_note_channel(CH(0), &how);
	fs_credrec_note_channel(CH(1), &how_ex);
	memset(verify, 0, sizeof(*verify));
	free(verify);
	memset(&verify_ex, 0, sizeof(verify_ex));

	fs_credrec_reset(1, NULL);
	t = fs_credrec_twin_channel(CH(0), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_str_eq(calls[index_of(t)].roots, "(null)", "NULL roots (gRPC's defaults) must stay NULL");
	cr_assert_not(calls[index_of(t)].had_pair);
	cr_assert(calls[index_of(t)].had_verify);
	cr_assert_eq(calls[index_of(t)].verify.verify_peer_callback, verify_cb);
	cr_assert_eq(calls[index_of(t)].verify.verify_peer_callback_userdata, (void *)0x5678);
	cr_assert_eq(calls[index_of(t)].verify.verify_peer_destruct, verify_destruct);

	t = fs_credrec_twin_channel(CH(1), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_str_eq(calls[index_of(t)].fn, "ssl_ex");
	cr_assert(calls[index_of(t)].had_verify);
	cr_assert_eq(calls[index_of(t)].verify_ex.verify_peer_callback, verify_cb);
	cr_assert_eq(calls[index_of(t)].verify_ex.verify_peer_callback_userdata, (void *)0x1234);
}

Test(credrec, token_and_local_and_plugin_twins_get_what_was_recorded)
{
	char *token = strdup("secret-token");
	int state;
	grpc_metadata_credentials_plugin plugin = { .destroy = verify_destruct, .state = &state, .type = "test" };
	struct fs_cred_recipe how_plugin = { .kind = FS_CRED_PLUGIN,
					     .u.plugin = { plugin, GRPC_PRIVACY_AND_INTEGRITY } };
	struct fs_cred_recipe how_local = { .kind = FS_CRED_LOCAL, .u.local = UDS };
	grpc_call_credentials *t;
	grpc_channel_credentials *l;
	const char *why;

	note_token(CALL(0), token);
	memset(token, 'x', strlen(token));
	free(token);
	fs_credrec_note_call(CALL(1), &how_plugin);
	fs_credrec_note_channel(CH(2), &how_local);

	fs_credrec_reset(1, NULL);
	t = fs_credrec_twin_call(CALL(0), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_str_eq(calls[index_of(t)].token, "secret-token");
	t = fs_credrec_twin_call(CALL(1), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_eq(calls[index_of(t)].plugin.state, &state);
	cr_assert_eq(calls[index_of(t)].plugin.destroy, verify_destruct);
	cr_assert_eq(calls[index_of(t)].level, GRPC_PRIVACY_AND_INTEGRITY);
	l = fs_credrec_twin_channel(CH(2), &fake_ops, &why);
	cr_assert_not_null(l, "no twin: %s", why);
	cr_assert_eq(calls[index_of(l)].local, UDS);
}

Test(credrec, composite_of_released_parts_still_twins)
{
	grpc_ssl_pem_key_cert_pair pair = { "KEY", "CHAIN" };
	struct fs_cred_recipe ssl = { .kind = FS_CRED_SSL, .u.ssl = { .pem_root_certs = "ROOTS", .pair = &pair } };
	struct fs_cred_recipe calls_composite = { .kind = FS_CRED_COMPOSITE_CALL,
						  .u.composite = { .call = CALL(1), .call2 = CALL(2) } };
	struct fs_cred_recipe composite = { .kind = FS_CRED_COMPOSITE_CHANNEL,
					    .u.composite = { .channel = CH(0), .call = CALL(3) } };
	grpc_channel_credentials *t;
	const char *why;
	int i;

	fs_credrec_note_channel(CH(0), &ssl);
	note_token(CALL(1), "one");
	note_token(CALL(2), "two");
	fs_credrec_note_call(CALL(3), &calls_composite);
	fs_credrec_note_channel(CH(4), &composite);
	/* The application releases every part right after composing. */
	fs_credrec_forget(CH(0));
	fs_credrec_forget(CALL(1));
	fs_credrec_forget(CALL(2));
	fs_credrec_forget(CALL(3));
	cr_assert_eq(fs_credrec_count(), 1);

	fs_credrec_reset(1, NULL);
	cr_assert_null(fs_credrec_twin_call(CALL(1), &fake_ops, &why), "a released part has no twin of its own");
	t = fs_credrec_twin_channel(CH(4), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	i = index_of(t);
	cr_assert_str_eq(calls[i].fn, "composite_channel");
	cr_assert_str_eq(calls[index_of(calls[i].a)].fn, "ssl");
	cr_assert_str_eq(calls[index_of(calls[i].a)].roots, "ROOTS");
	cr_assert_str_eq(calls[index_of(calls[i].a)].key, "KEY");
	cr_assert_str_eq(calls[index_of(calls[i].b)].fn, "composite_call");
	i = index_of(calls[i].b);
	cr_assert_str_eq(calls[index_of(calls[i].a)].token, "one");
	cr_assert_str_eq(calls[index_of(calls[i].b)].token, "two");
	cr_assert_eq(made, 5);
	cr_assert_eq(fs_credrec_twins(), 5, "every twin, parts included, is cached to be released");
}

Test(credrec, google_default_keeps_its_call_part)
{
	struct fs_cred_recipe gd = { .kind = FS_CRED_GOOGLE_DEFAULT, .u.google_default_call = CALL(1) };
	struct fs_cred_recipe bare = { .kind = FS_CRED_GOOGLE_DEFAULT };
	grpc_channel_credentials *t;
	const char *why;

	note_token(CALL(1), "tok");
	fs_credrec_note_channel(CH(0), &gd);
	fs_credrec_note_channel(CH(2), &bare);
	fs_credrec_forget(CALL(1));
	fs_credrec_reset(1, NULL);
	t = fs_credrec_twin_channel(CH(0), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_str_eq(calls[index_of(calls[index_of(t)].a)].token, "tok");
	t = fs_credrec_twin_channel(CH(2), &fake_ops, &why);
	cr_assert_not_null(t, "no twin: %s", why);
	cr_assert_null(calls[index_of(t)].a);
}

Test(credrec, unrecorded_credentials_give_no_twin_and_say_why)
{
	struct fs_cred_recipe composite = { .kind = FS_CRED_COMPOSITE_CHANNEL,
					    .u.composite = { .channel = CH(0), .call = CALL(1) } };
	struct fs_cred_recipe bogus = { .kind = (enum fs_cred_kind)99 };
	const char *why;

	fs_credrec_reset(1, NULL);
	/* CH(0), say from grpc_tls_credentials_create, passes no hook. */
	cr_assert_null(fs_credrec_twin_channel(CH(0), &fake_ops, &why));
	cr_assert_not_null(why);
	cr_assert(strstr(why, "does not record") != NULL, "reason: %s", why);

	note_token(CALL(1), "tok");
	fs_credrec_note_channel(CH(2), &composite);
	fs_credrec_reset(2, NULL);
	cr_assert_null(fs_credrec_twin_channel(CH(2), &fake_ops, &why));
	cr_assert(strstr(why, "part") != NULL, "reason: %s", why);
	cr_assert_eq(made, 0, "no half of a composite is made when the other is missing");

	fs_credrec_note_channel(CH(3), &bogus);
	cr_assert_eq(fs_credrec_count(), 2, "an unknown kind is not recorded");
	fs_credrec_reset(3, NULL);
	cr_assert_null(fs_credrec_twin_channel(CH(3), &fake_ops, &why));
	cr_assert(strstr(why, "does not record") != NULL, "reason: %s", why);
	/* Call credentials asked for as channel credentials. */
	cr_assert_null(fs_credrec_twin_channel((grpc_channel_credentials *)CALL(1), &fake_ops, &why));
	cr_assert_not_null(why);
}

Test(credrec, a_fresh_instance_lacking_a_constructor_names_it)
{
	struct fs_cred_ops partial = fake_ops;
	const char *why;

	partial.ssl_create = NULL;
	fs_credrec_note_channel(CH(0), &(struct fs_cred_recipe){ .kind = FS_CRED_SSL });
	fs_credrec_reset(1, NULL);
	cr_assert_null(fs_credrec_twin_channel(CH(0), &partial, &why));
	cr_assert(strstr(why, "grpc_ssl_credentials_create") != NULL, "reason: %s", why);
	/* Not cached as a failure: another instance may have it. */
	cr_assert_not_null(fs_credrec_twin_channel(CH(0), &fake_ops, &why));
}

Test(credrec, twins_are_cached_per_original_and_released_at_reset)
{
	struct fs_cred_recipe composite = { .kind = FS_CRED_COMPOSITE_CHANNEL,
					    .u.composite = { .channel = CH(0), .call = CALL(1) } };
	grpc_channel_credentials *t1, *t2, *c;
	grpc_call_credentials *part;
	const char *why;

	note_plain_channel(CH(0), FS_CRED_INSECURE);
	note_token(CALL(1), "tok");
	fs_credrec_note_channel(CH(2), &composite);
	fs_credrec_reset(1, NULL);

	t1 = fs_credrec_twin_channel(CH(0), &fake_ops, &why);
	t2 = fs_credrec_twin_channel(CH(0), &fake_ops, &why);
	cr_assert_eq(t1, t2);
	cr_assert_eq(made, 1);
	/* The composite uses the twins its parts already have: one per original. */
	c = fs_credrec_twin_channel(CH(2), &fake_ops, &why);
	part = fs_credrec_twin_call(CALL(1), &fake_ops, &why);
	cr_assert_eq(calls[index_of(c)].a, t1);
	cr_assert_eq(calls[index_of(c)].b, part);
	cr_assert_eq(made, 3);
	cr_assert_eq(fs_credrec_twins(), 3);

	fs_credrec_reset(2, &fake_ops);
	cr_assert_eq(channel_released, 2);
	cr_assert_eq(call_released, 1);
	cr_assert_eq(fs_credrec_twins(), 0);

	/* A new generation makes new twins; dropping them releases nothing. */
	cr_assert_not_null(fs_credrec_twin_channel(CH(2), &fake_ops, &why));
	cr_assert_eq(made, 6);
	fs_credrec_reset(3, NULL);
	cr_assert_eq(channel_released, 2);
	cr_assert_eq(call_released, 1);
	cr_assert_eq(fs_credrec_twins(), 0);
}

Test(credrec, credentials_made_in_a_child_are_inherited_by_its_children)
{
	const char *why;

	fs_credrec_reset(1, NULL);
	note_token(CALL(0), "child's");
	cr_assert_eq(fs_credrec_twin_call(CALL(0), &fake_ops, &why), CALL(0));
	fs_credrec_reset(2, NULL);
	cr_assert_neq(fs_credrec_twin_call(CALL(0), &fake_ops, &why), CALL(0));
	cr_assert_eq(made, 1);
}

Test(credrec, a_reused_address_gets_the_new_recipe)
{
	const char *why;
	grpc_call_credentials *t;

	note_token(CALL(0), "old");
	note_token(CALL(0), "new");
	cr_assert_eq(fs_credrec_count(), 1);
	fs_credrec_reset(1, NULL);
	t = fs_credrec_twin_call(CALL(0), &fake_ops, &why);
	cr_assert_str_eq(calls[index_of(t)].token, "new");
}

static void *twin_thread(void *arg)
{
	const char *why;

	return fs_credrec_twin_call(CALL(0), &fake_ops, &why);
}

Test(credrec, racing_threads_get_one_twin)
{
	pthread_t th[8];
	void *got[8];

	note_token(CALL(0), "tok");
	fs_credrec_reset(1, NULL);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, twin_thread, NULL);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], &got[i]);
	for (int i = 1; i < 8; i++)
		cr_assert_eq(got[i], got[0]);
	cr_assert_eq(made, 1);
}
