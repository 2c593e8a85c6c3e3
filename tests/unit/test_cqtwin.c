/* Completion queue twins against a fake gRPC instance: which queues are made
 * in which generation, twins made alike (completion type, polling type,
 * callback functor), and what shutdown and destroy reach. */
#include <criterion/criterion.h>
#include <pthread.h>

#include "cqtwin.h"

#define MAX_MADE 32

/* Fake queues. The "inherited" ones say what they are through the fake
 * accessors, as core's read a queue's fields. */
struct fake_cq {
	grpc_cq_completion_type type;
	grpc_cq_polling_type polling;
	grpc_completion_queue_functor *functor;
	int shutdowns, destroys;
	int version; /* of the attributes a twin was made with */
	bool factory_ok;
};
static struct fake_cq app[8], fresh[MAX_MADE];
#define APP(i) ((grpc_completion_queue *)&app[i])
static int made, type_asked;
static const grpc_completion_queue_factory *fake_factory = (const grpc_completion_queue_factory *)&made;

static const grpc_completion_queue_factory *f_lookup(const grpc_completion_queue_attributes *a)
{
	return fake_factory;
}
static grpc_completion_queue *f_create(const grpc_completion_queue_factory *f,
				       const grpc_completion_queue_attributes *a, void *reserved)
{
	struct fake_cq *q = &fresh[__atomic_fetch_add(&made, 1, __ATOMIC_SEQ_CST)];

	/* Checked by the tests, not here: this may run on another thread. */
	q->version = a->version;
	q->factory_ok = f == fake_factory;
	q->type = a->cq_completion_type;
	q->polling = a->cq_polling_type;
	q->functor = a->cq_shutdown_cb;
	return (grpc_completion_queue *)q;
}
static grpc_cq_completion_type f_type(grpc_completion_queue *cq)
{
	__atomic_fetch_add(&type_asked, 1, __ATOMIC_SEQ_CST);
	return ((struct fake_cq *)cq)->type;
}
static bool f_can_listen(grpc_completion_queue *cq)
{
	return ((struct fake_cq *)cq)->polling == GRPC_CQ_DEFAULT_POLLING;
}
static void *f_pollset(grpc_completion_queue *cq)
{
	return ((struct fake_cq *)cq)->polling == GRPC_CQ_NON_POLLING ? NULL : cq;
}
static void f_shutdown(grpc_completion_queue *cq)
{
	((struct fake_cq *)cq)->shutdowns++;
}
static void f_destroy(grpc_completion_queue *cq)
{
	((struct fake_cq *)cq)->destroys++;
}

static const struct fs_cq_ops fake_ops = {
	.factory_lookup = f_lookup,
	.create = f_create,
	.completion_type = f_type,
	.can_listen = f_can_listen,
	.pollset = f_pollset,
	.shutdown = f_shutdown,
	.destroy = f_destroy,
};

static void functor_run(grpc_completion_queue_functor *f, int ok)
{
}
static grpc_completion_queue_functor functor = { .functor_run = functor_run };

static void setup(void)
{
	made = type_asked = 0;
	memset(app, 0, sizeof(app));
	memset(fresh, 0, sizeof(fresh));
	fs_cqtwin_reset(0);
}

TestSuite(cqtwin, .init = setup);

static struct fake_cq *as_fake(grpc_completion_queue *cq)
{
	return (struct fake_cq *)cq;
}

Test(cqtwin, nothing_is_inherited_in_generation_zero)
{
	app[0].type = GRPC_CQ_NEXT;
	fs_cqtwin_note_created(APP(0), GRPC_CQ_NEXT, NULL);
	cr_assert_eq(fs_cqtwin_count(), 0, "generation 0 keeps only callback queues");
	cr_assert_eq(fs_cqtwin_route(APP(0), &fake_ops), APP(0));
	cr_assert_eq(fs_cqtwin_route(APP(1), &fake_ops), APP(1), "an unrecorded queue too");
	cr_assert_eq(made, 0);
	cr_assert_eq(type_asked, 0);
}

Test(cqtwin, a_queue_made_in_this_generation_routes_to_itself)
{
	fs_cqtwin_reset(1);
	fs_cqtwin_note_created(APP(0), GRPC_CQ_PLUCK, NULL);
	fs_cqtwin_note_created(APP(1), GRPC_CQ_CALLBACK, &functor);
	cr_assert_eq(fs_cqtwin_count(), 2);
	cr_assert_eq(fs_cqtwin_route(APP(0), &fake_ops), APP(0));
	cr_assert_eq(fs_cqtwin_route(APP(1), &fake_ops), APP(1));
	cr_assert_eq(made, 0);
}

Test(cqtwin, an_inherited_queue_gets_one_twin_of_the_same_types)
{
	grpc_completion_queue *t;

	app[0] = (struct fake_cq){ .type = GRPC_CQ_PLUCK, .polling = GRPC_CQ_NON_LISTENING };
	app[1] = (struct fake_cq){ .type = GRPC_CQ_NEXT, .polling = GRPC_CQ_NON_POLLING };
	app[2] = (struct fake_cq){ .type = GRPC_CQ_NEXT, .polling = GRPC_CQ_DEFAULT_POLLING };
	/* Made in generation 0: not recorded at all. */
	fs_cqtwin_note_created(APP(0), GRPC_CQ_PLUCK, NULL);
	fs_cqtwin_reset(1);

	for (int i = 0; i < 3; i++) {
		t = fs_cqtwin_route(APP(i), &fake_ops);
		cr_assert_not_null(t);
		cr_assert_neq(t, APP(i));
		cr_assert_eq(as_fake(t)->type, app[i].type, "queue %d: completion type", i);
		cr_assert_eq(as_fake(t)->polling, app[i].polling, "queue %d: polling type", i);
		cr_assert_null(as_fake(t)->functor);
		cr_assert(as_fake(t)->factory_ok, "made through the factory the instance looked up");
		cr_assert_eq(fs_cqtwin_route(APP(i), &fake_ops), t, "queue %d: one twin per generation", i);
	}
	cr_assert_eq(made, 3);
	cr_assert_eq(fs_cqtwin_twins(), 3);
}

Test(cqtwin, a_callback_queue_keeps_its_functor_across_generations)
{
	grpc_completion_queue *t1, *t2;

	app[0] = (struct fake_cq){ .type = GRPC_CQ_CALLBACK, .polling = GRPC_CQ_DEFAULT_POLLING };
	fs_cqtwin_note_created(APP(0), GRPC_CQ_CALLBACK, &functor);
	cr_assert_eq(fs_cqtwin_count(), 1, "generation 0 keeps callback queues");
	fs_cqtwin_reset(1);
	t1 = fs_cqtwin_route(APP(0), &fake_ops);
	cr_assert_not_null(t1);
	cr_assert_eq(as_fake(t1)->type, GRPC_CQ_CALLBACK);
	cr_assert_eq(as_fake(t1)->functor, &functor);
	cr_assert_geq(as_fake(t1)->version, 2, "a functor needs attributes of version 2");

	/* A grandchild: the child's twin is its parent's, dropped; a new one. */
	fs_cqtwin_reset(2);
	cr_assert_eq(fs_cqtwin_twins(), 0);
	t2 = fs_cqtwin_route(APP(0), &fake_ops);
	cr_assert_neq(t2, t1);
	cr_assert_eq(as_fake(t2)->functor, &functor);
	cr_assert_eq(as_fake(t1)->destroys + as_fake(t1)->shutdowns, 0, "a dropped twin is never touched");
}

Test(cqtwin, a_callback_queue_without_its_functor_gets_no_twin)
{
	app[0] = (struct fake_cq){ .type = GRPC_CQ_CALLBACK };
	fs_cqtwin_reset(1);
	cr_assert_null(fs_cqtwin_route(APP(0), &fake_ops));
	cr_assert_eq(made, 0);
}

Test(cqtwin, queues_made_in_a_generation_are_inherited_by_the_next)
{
	grpc_completion_queue *t;

	fs_cqtwin_reset(1);
	app[0] = (struct fake_cq){ .type = GRPC_CQ_NEXT, .polling = GRPC_CQ_NON_LISTENING };
	app[1] = (struct fake_cq){ .type = GRPC_CQ_CALLBACK, .polling = GRPC_CQ_NON_POLLING };
	fs_cqtwin_note_created(APP(0), GRPC_CQ_NEXT, NULL);
	fs_cqtwin_note_created(APP(1), GRPC_CQ_CALLBACK, &functor);
	fs_cqtwin_reset(2);
	cr_assert_eq(fs_cqtwin_count(), 1, "only the callback queue's record is still needed");
	t = fs_cqtwin_route(APP(0), &fake_ops);
	cr_assert_neq(t, APP(0));
	cr_assert_eq(as_fake(t)->polling, GRPC_CQ_NON_LISTENING);
	t = fs_cqtwin_route(APP(1), &fake_ops);
	cr_assert_neq(t, APP(1));
	cr_assert_eq(as_fake(t)->functor, &functor);
	cr_assert_eq(as_fake(t)->polling, GRPC_CQ_NON_POLLING);
}

Test(cqtwin, shutdown_and_destroy_of_an_inherited_queue_reach_only_its_twin)
{
	grpc_completion_queue *t;

	app[0] = (struct fake_cq){ .type = GRPC_CQ_NEXT };
	app[1] = (struct fake_cq){ .type = GRPC_CQ_PLUCK };
	fs_cqtwin_reset(1);

	/* Shut down before any use: a twin is made, so the next wait sees it. */
	fs_cqtwin_shutdown(APP(0), &fake_ops);
	t = fs_cqtwin_route(APP(0), &fake_ops);
	cr_assert_eq(as_fake(t)->shutdowns, 1);
	cr_assert(fs_cqtwin_destroy(APP(0), &fake_ops), "an inherited queue is reported so, to be kept");
	cr_assert_eq(as_fake(t)->destroys, 1);
	cr_assert_eq(app[0].shutdowns + app[0].destroys, 0, "inherited code must not run");
	cr_assert_eq(fs_cqtwin_count(), 0);
	cr_assert_eq(fs_cqtwin_twins(), 0);

	/* Destroyed with no twin ever made: dropped, nothing runs. */
	cr_assert(fs_cqtwin_destroy(APP(1), &fake_ops));
	cr_assert_eq(app[1].shutdowns + app[1].destroys, 0);
	cr_assert_eq(made, 1);
}

Test(cqtwin, shutdown_and_destroy_of_a_queue_made_here_reach_it)
{
	fs_cqtwin_reset(1);
	fs_cqtwin_note_created(APP(0), GRPC_CQ_NEXT, NULL);
	fs_cqtwin_shutdown(APP(0), &fake_ops);
	cr_assert_not(fs_cqtwin_destroy(APP(0), &fake_ops), "a queue made here is not inherited");
	cr_assert_eq(app[0].shutdowns, 1);
	cr_assert_eq(app[0].destroys, 1);
	cr_assert_eq(fs_cqtwin_count(), 0);
	cr_assert_eq(made, 0);
}

Test(cqtwin, a_destroyed_queue_is_forgotten)
{
	fs_cqtwin_note_created(APP(0), GRPC_CQ_CALLBACK, &functor);
	fs_cqtwin_note_destroyed(APP(0));
	cr_assert_eq(fs_cqtwin_count(), 0);
	fs_cqtwin_reset(1);
	fs_cqtwin_note_created(APP(1), GRPC_CQ_PLUCK, NULL);
	fs_cqtwin_note_destroyed(APP(1));
	cr_assert_eq(fs_cqtwin_count(), 0);
	/* A queue later made at the same address in this generation is its own. */
	fs_cqtwin_note_created(APP(1), GRPC_CQ_NEXT, NULL);
	cr_assert_eq(fs_cqtwin_route(APP(1), &fake_ops), APP(1));
}

static void *route_thread(void *arg)
{
	return fs_cqtwin_route(APP(0), &fake_ops);
}

Test(cqtwin, racing_threads_get_one_twin)
{
	pthread_t th[8];
	void *got[8];

	app[0] = (struct fake_cq){ .type = GRPC_CQ_CALLBACK };
	fs_cqtwin_note_created(APP(0), GRPC_CQ_CALLBACK, &functor);
	fs_cqtwin_reset(1);
	for (int i = 0; i < 8; i++)
		pthread_create(&th[i], NULL, route_thread, NULL);
	for (int i = 0; i < 8; i++)
		pthread_join(th[i], &got[i]);
	for (int i = 1; i < 8; i++)
		cr_assert_eq(got[i], got[0]);
	cr_assert_eq(made, 1);
}
