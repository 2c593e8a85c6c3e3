/* The channel table against fake gRPC functions: which channel a call uses in
 * each generation, registered-call mapping, and credentials lifetime. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>

#include "chanargs.h"
#include "chantab.h"

#define MAX_MADE 64

/* Fake channels are just distinct addresses; what was asked of "gRPC" is recorded. */
static char channels[MAX_MADE];
static int made, destroyed, registered, released;
static char last_target[64];
static int last_generation_arg;
static grpc_channel_credentials *last_creds;
static const grpc_channel *destroyed_list[MAX_MADE];

static grpc_channel *fake_create(const char *target, grpc_channel_credentials *creds, const grpc_channel_args *args)
{
	int slot = __atomic_fetch_add(&made, 1, __ATOMIC_SEQ_CST);

	snprintf(last_target, sizeof(last_target), "%s", target);
	last_creds = creds;
	last_generation_arg = -1;
	for (size_t i = 0; args != NULL && i < args->num_args; i++)
		if (strcmp(args->args[i].key, FS_GENERATION_ARG) == 0)
			last_generation_arg = args->args[i].value.integer;
	return (grpc_channel *)&channels[slot];
}
static void fake_destroy(grpc_channel *c)
{
	destroyed_list[__atomic_fetch_add(&destroyed, 1, __ATOMIC_SEQ_CST)] = c;
}
/* A registration handle encodes channel and method, as gRPC's would differ per channel. */
static char handles[MAX_MADE][4];
static void *fake_register(grpc_channel *c, const char *method, const char *host, void *reserved)
{
	__atomic_fetch_add(&registered, 1, __ATOMIC_SEQ_CST);
	return &handles[(char *)c - channels][method[1] == 'B'];
}
static void fake_release(grpc_channel_credentials *c)
{
	released++;
}

static const struct fs_chan_ops fake_ops = { .stand_in = fake_create, .destroy = fake_destroy, .register_call = fake_register, .creds_release = fake_release };

/* Handles the "application" created (fake as well). */
static char app_channels[4], app_creds[2], app_regs[4];
#define APP(i) ((grpc_channel *)&app_channels[i])
#define CREDS(i) ((grpc_channel_credentials *)&app_creds[i])

static void setup(void)
{
	made = destroyed = registered = released = 0;
	fs_chantab_set_ops(&fake_ops);
}

TestSuite(chantab, .init = setup);

Test(chantab, a_channel_is_its_own_route_in_its_generation_and_unknown_ones_pass)
{
	fs_chantab_track(APP(0), "dns:///svc:1", CREDS(0), NULL, 0);
	cr_assert_eq(fs_chantab_route(APP(0), 0), APP(0));
	cr_assert_eq(fs_chantab_route(APP(1), 1), APP(1), "untracked handle must pass through");
	cr_assert_eq(made, 0);
	fs_chantab_untrack(APP(0), 0);
	cr_assert_eq(fs_chantab_count(), 0);
}

Test(chantab, an_inherited_channel_gets_one_replacement_per_generation)
{
	grpc_arg ua = { .type = GRPC_ARG_STRING, .key = "grpc.primary_user_agent", .value.string = "ua" };
	grpc_channel_args args = { 1, &ua };
	grpc_channel *r1, *r2;

	fs_chantab_track(APP(0), "dns:///svc:1", CREDS(0), &args, 0);
	r1 = fs_chantab_route(APP(0), 1);
	cr_assert_neq(r1, APP(0));
	cr_assert_eq(made, 1);
	cr_assert_str_eq(last_target, "dns:///svc:1");
	cr_assert_eq(last_creds, CREDS(0));
	cr_assert_eq(last_generation_arg, 1);
	cr_assert_eq(fs_chantab_route(APP(0), 1), r1, "second call must reuse the replacement");
	cr_assert_eq(made, 1);

	/* A grandchild inherits r1 too, but must not use (or destroy) it. */
	r2 = fs_chantab_route(APP(0), 2);
	cr_assert_neq(r2, r1);
	cr_assert_eq(last_generation_arg, 2);
	cr_assert_eq(destroyed, 0);

	/* Destroying the inherited handle takes every stand-in the entry kept:
	 * this generation's and the one inherited from the child (else nothing
	 * would reference it any more: a leak). */
	fs_chantab_untrack(APP(0), 2);
	cr_assert_eq(destroyed, 2);
	cr_assert((destroyed_list[0] == r2 && destroyed_list[1] == r1) ||
		  (destroyed_list[0] == r1 && destroyed_list[1] == r2));
}

Test(chantab, a_channel_made_in_a_child_is_inherited_by_its_children)
{
	fs_chantab_track(APP(1), "unix:/tmp/s", NULL, NULL, 1);
	cr_assert_eq(fs_chantab_route(APP(1), 1), APP(1));
	cr_assert_neq(fs_chantab_route(APP(1), 2), APP(1));
	cr_assert_null(last_creds);
	fs_chantab_untrack(APP(1), 2);
}

Test(chantab, registered_calls_map_to_the_replacements_registration)
{
	void *h = &app_regs[0], *mapped;
	grpc_channel *r;

	fs_chantab_track(APP(0), "svc:1", NULL, NULL, 0);
	fs_chantab_note_registered(APP(0), h, "/A/Say", NULL);
	fs_chantab_note_registered(APP(0), &app_regs[1], "/B/Say", "host");
	fs_chantab_note_registered(APP(0), h, "/A/Say", NULL); /* same handle again: no duplicate */

	mapped = h;
	cr_assert_eq(fs_chantab_route_registered(APP(0), &mapped, 0), APP(0));
	cr_assert_eq(mapped, h, "own generation: handle untouched");

	r = fs_chantab_route_registered(APP(0), &mapped, 1);
	cr_assert_neq(r, APP(0));
	cr_assert_eq(mapped, &handles[(char *)r - channels][0]);
	cr_assert_eq(registered, 1);
	mapped = h;
	fs_chantab_route_registered(APP(0), &mapped, 1);
	cr_assert_eq(registered, 1, "registration on the replacement is cached");

	mapped = &app_regs[1];
	fs_chantab_route_registered(APP(0), &mapped, 1);
	cr_assert_eq(mapped, &handles[(char *)r - channels][1]);
	cr_assert_eq(registered, 2);

	fs_chantab_untrack(APP(0), 1);
}

Test(chantab, credentials_outlive_the_applications_release)
{
	fs_chantab_track(APP(0), "a", CREDS(0), NULL, 0);
	fs_chantab_track(APP(1), "b", CREDS(0), NULL, 0);
	cr_assert_eq(fs_chantab_held_creds(), 1);
	/* The application releases its reference right after creating the channels. */
	cr_assert(fs_chantab_defer_release(CREDS(0)));
	cr_assert_eq(released, 0);
	/* A child can still make a replacement with them. */
	fs_chantab_route(APP(0), 1);
	cr_assert_eq(last_creds, CREDS(0));
	fs_chantab_untrack(APP(0), 1);
	cr_assert_eq(released, 0, "still used by the other channel");
	fs_chantab_untrack(APP(1), 1);
	cr_assert_eq(released, 1, "the deferred release happens once, at the last use");
	cr_assert_eq(fs_chantab_held_creds(), 0);
	cr_assert_not(fs_chantab_defer_release(CREDS(1)), "unknown credentials are released at once");
}

static void *route_many(void *arg)
{
	return fs_chantab_route(APP(2), 1);
}

Test(chantab, racing_first_calls_agree_on_one_replacement)
{
	pthread_t t[8];
	void *got[8];

	fs_chantab_track(APP(2), "svc", NULL, NULL, 0);
	for (int i = 0; i < 8; i++)
		pthread_create(&t[i], NULL, route_many, NULL);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], &got[i]);
	for (int i = 1; i < 8; i++)
		cr_assert_eq(got[i], got[0]);
	cr_assert_eq(made - destroyed, 1, "every losing replacement is destroyed");
	fs_chantab_untrack(APP(2), 1);
}

Test(chantab, audit_reports_each_inherited_channel_once_per_generation)
{
	char target[64];

	fs_chantab_track(APP(0), "dns:///svc:7", NULL, NULL, 0);
	cr_assert_not(fs_chantab_note_inherited_use(APP(0), 0, target, sizeof(target)), "not inherited in its own");
	cr_assert(fs_chantab_note_inherited_use(APP(0), 1, target, sizeof(target)));
	cr_assert_str_eq(target, "dns:///svc:7");
	cr_assert_not(fs_chantab_note_inherited_use(APP(0), 1, target, sizeof(target)), "reported twice");
	cr_assert(fs_chantab_note_inherited_use(APP(0), 2, target, sizeof(target)), "a grandchild reports again");
	cr_assert(fs_chantab_inherited_twin("dns:///svc:7", NULL, 1));
	cr_assert_not(fs_chantab_inherited_twin("dns:///svc:7", NULL, 0));
	cr_assert_not(fs_chantab_inherited_twin("dns:///other:7", NULL, 1));
	{
		grpc_arg other = { .type = GRPC_ARG_INTEGER, .key = "x", .value.integer = 1 };
		grpc_channel_args differ = { 1, &other };

		cr_assert_not(fs_chantab_inherited_twin("dns:///svc:7", &differ, 1),
			      "different arguments mean a different connection");
	}
	cr_assert_eq(made, 0, "audit must not create anything");
	fs_chantab_untrack(APP(0), 2);
}
