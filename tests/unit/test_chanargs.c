/* Channel arguments: the deep copy owns everything; the view only borrows. */
#include <criterion/criterion.h>

#include "chanargs.h"

static int copies, destroys;
static int token = 42;

static void *fake_copy(void *p)
{
	copies++;
	return p;
}
static void fake_destroy(void *p)
{
	destroys++;
}
static int fake_cmp(void *a, void *b)
{
	return a != b;
}
static const grpc_arg_pointer_vtable vtable = { fake_copy, fake_destroy, fake_cmp };

static grpc_arg sample[3];
static grpc_channel_args sample_args = { 3, sample };

static void setup(void)
{
	copies = destroys = 0;
	sample[0] = (grpc_arg){ .type = GRPC_ARG_STRING, .key = "grpc.primary_user_agent",
				.value.string = "forksafe-test" };
	sample[1] = (grpc_arg){ .type = GRPC_ARG_INTEGER, .key = "grpc.max_receive_message_length",
				.value.integer = 1234 };
	sample[2] = (grpc_arg){ .type = GRPC_ARG_POINTER, .key = "test.pointer",
				.value.pointer = { &token, &vtable } };
}

TestSuite(chanargs, .init = setup);

Test(chanargs, copy_is_deep_and_takes_pointer_references)
{
	int ok;
	grpc_channel_args *c = fs_chanargs_copy(&sample_args, &ok);

	cr_assert(ok);
	cr_assert_eq(c->num_args, 3);
	cr_assert_neq(c->args, sample);
	cr_assert_str_eq(c->args[0].key, "grpc.primary_user_agent");
	cr_assert_neq(c->args[0].key, sample[0].key, "key not duplicated");
	cr_assert_str_eq(c->args[0].value.string, "forksafe-test");
	cr_assert_neq(c->args[0].value.string, sample[0].value.string, "string not duplicated");
	cr_assert_eq(c->args[1].value.integer, 1234);
	cr_assert_eq(c->args[2].value.pointer.p, &token);
	cr_assert_eq(c->args[2].value.pointer.vtable, &vtable);
	cr_assert_eq(copies, 1);
	fs_chanargs_free(c);
	cr_assert_eq(destroys, 1);
}

Test(chanargs, null_and_empty)
{
	int ok;
	grpc_channel_args empty = { 0, NULL }, *c;

	cr_assert_null(fs_chanargs_copy(NULL, &ok));
	cr_assert(ok);
	c = fs_chanargs_copy(&empty, &ok);
	cr_assert(ok);
	cr_assert_eq(c->num_args, 0);
	fs_chanargs_free(c);
	fs_chanargs_free(NULL);
}

Test(chanargs, generation_view_appends_one_integer_and_borrows_the_rest)
{
	grpc_channel_args *v = fs_chanargs_with_generation(&sample_args, 3);

	cr_assert_eq(v->num_args, 4);
	cr_assert_eq(v->args[0].value.string, sample[0].value.string, "view must not copy");
	cr_assert_str_eq(v->args[3].key, FS_GENERATION_ARG);
	cr_assert_eq(v->args[3].type, GRPC_ARG_INTEGER);
	cr_assert_eq(v->args[3].value.integer, 3);
	fs_chanargs_free_view(v);
	cr_assert_eq(copies + destroys, 0);

	v = fs_chanargs_with_generation(NULL, 1);
	cr_assert_eq(v->num_args, 1);
	cr_assert_eq(v->args[0].value.integer, 1);
	fs_chanargs_free_view(v);
}

Test(chanargs, equality_follows_keys_types_and_values)
{
	int ok;
	grpc_channel_args *c = fs_chanargs_copy(&sample_args, &ok), empty = { 0, NULL };

	cr_assert(fs_chanargs_equal(&sample_args, c));
	c->args[1].value.integer = 99;
	cr_assert_not(fs_chanargs_equal(&sample_args, c));
	c->args[1].value.integer = 1234;
	cr_assert_not(fs_chanargs_equal(&sample_args, &empty));
	cr_assert(fs_chanargs_equal(NULL, &empty));
	fs_chanargs_free(c);
}
