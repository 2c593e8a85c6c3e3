/*
 * A fresh gRPC in every child (GRPC_FORKSAFE_CHILD_GRPC=fresh).
 *
 * The inherited gRPC is never run in a child: whatever its threads were doing
 * at the fork (a server's workers, a stream being read, a lock held) cannot
 * matter there. Instead:
 *
 * Parent, once per generation, at its first fork and before the fork path
 * takes any lock (fs_fresh_prepare; the one step that loads libraries and
 * allocates):
 *   - loads the next generation's private copies of gRPC core's libraries
 *     (copyset.c): the same code under other names, loaded beside the
 *     inherited ones with RTLD_DEEPBIND, never initialised here;
 *   - lists every import the program and gRPC's client libraries (libgrpc++)
 *     make of gRPC core (rebind.c), and works out what each must hold in a
 *     child: the same symbol in the copies, at the same offset from its
 *     library's base, since a copy is the same file.
 * Every later fork of the generation finds that done and runs no gRPC code:
 * it takes the shim's table locks and forks.
 *
 * Child, in its fork step (fs_fresh_child: one thread, stores and mprotect
 * only): data and thread-local imports get the copies' addresses; function
 * imports of libgrpc and libgpr get lazy stubs (stubs_x86_64.S), so that a
 * child that never calls gRPC never starts the copies' threads; the shim's
 * own calls into gRPC get stubs too. Nothing can reach the inherited gRPC any
 * more. The first call through a stub initialises the copies as often as
 * gRPC was initialised at the fork and writes every function import's final
 * address (fs_fresh_switch). Handles made before the fork reach the copies
 * through the shim's hooks, which make their twins (chantab.c, credrec.c,
 * cqtwin.c).
 *
 * A child that forks before using gRPC hands its still untouched copies on:
 * the grandchild finds them as fresh as the child did.
 */
#include "fresh.h"

#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chantab.h"
#include "config.h"
#include "copyset.h"
#include "cqtwin.h"
#include "credrec.h"
#include "forkpath.h"
#include "grpclib.h"
#include "log.h"
#include "owner.h"
#include "rebind.h"
#include "stubs.h"

/* One import and what a child writes into it. */
struct entry {
	unsigned member;  /* the copy-set member it is defined in */
	uintptr_t offset; /* from that member's base (for a TLS module id: unused) */
	bool tls_module;  /* R_X86_64_DTPMOD64: the member's TLS module id */
	bool stubbed;     /* a function of libgrpc or libgpr: through a stub until the switch */
	unsigned stub;
};

/* One of the shim's own pointers into gRPC (the fs_grpc table, core's C++
 * functions behind the hooks): a stub at the fork, the copy's function after
 * the switch; a variable gets the copy's address at once. */
struct own {
	void **slot;
	const char *name;
	unsigned stub;
	bool data;
	uintptr_t next; /* in the copies prepared for children */
};

#define MAX_OWN 96

static pthread_mutex_t prep_lock = PTHREAD_MUTEX_INITIALIZER;

static struct {
	bool failed;             /* for good: one warning said why */
	struct fs_copyset *next; /* loaded for the next generation's children */
	unsigned next_gen;
	/* The plan: made once, in the first process that forks with gRPC in
	 * use, and kept by its descendants (the slots are the same there). */
	struct fs_import *imps;
	struct entry *ent;
	size_t n;
	size_t nmembers;
	unsigned nstubs;
	uintptr_t next_target[FS_STUBS]; /* what each stub leads to in `next` */
	struct own own[MAX_OWN];
	size_t nown;
} prep;

/* In a child: the copies its gRPC is, what its stubs lead to, and whether
 * they still wait for their first use. The sets of earlier generations stay
 * loaded (code of theirs may never run again, but unloading them is not
 * something they support); their records are kept with them. */
static struct fs_copyset *cur;
static struct fs_copyset *volatile ancestors[256]; /* volatile: only ever written */
static unsigned nancestors;
static uintptr_t cur_target[FS_STUBS];
static atomic_bool pending;
static pthread_mutex_t switch_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t switcher;
static bool held_for_fork; /* the forking thread holds switch_lock (fs_fresh_prepare) */
static _Atomic int inits; /* grpc_init minus grpc_shutdown through the hooks */
static int inits_at_fork;

void fs_fresh_note_init(int delta)
{
	atomic_fetch_add_explicit(&inits, delta, memory_order_relaxed);
}

bool fs_fresh_in_child(void)
{
	return cur != NULL;
}

bool fs_fresh_wanted(void)
{
	return cur != NULL || atomic_load_explicit(&inits, memory_order_relaxed) > 0;
}

/* libgrpc and libgpr, by a member's stem (its name without the generation
 * tag): the libraries whose functions need the copies initialised. */
static bool core_member(const char *stem)
{
	return strncmp(stem, "grpc.so.", 8) == 0 || strncmp(stem, "gpr.so.", 7) == 0;
}

static void fail(const char *fmt, const char *why)
{
	prep.failed = true;
	fs_log(FS_WARN, fmt, why);
}

/* --- the parent's preparation ------------------------------------------------ */

static bool in_set(const struct link_map *map, const void *arg)
{
	return fs_copyset_member_of(arg, map) >= 0;
}

/* Objects that are not clients: every generation's gRPC libraries, the shim. */
static const struct fs_copyset *skip_set;
static bool skip_object(const struct link_map *map)
{
	return fs_copyset_owns(skip_set, map) || fs_owner_is_self((const void *)map->l_ld);
}

/* Which imports a child re-points: every import of gRPC core's own
 * libraries and of abseil, by anybody (grpc++'s headers compile abseil's
 * mutexes into the program: a child that destroyed one through the
 * inherited abseil hung on a global lock a thread of the parent had held at
 * the fork), and every import gRPC's client libraries (libgrpc++...) make of
 * the set. The program's own use of the other libraries gRPC uses (OpenSSL,
 * c-ares, re2, zlib) stays with them, as without the shim. */
static bool wanted(const struct fs_import *imp, const char *stem)
{
	const char *importer = fs_basename(imp->object->l_name);

	return core_member(stem) || strncmp(stem, "upb.so.", 7) == 0 || strncmp(stem, "absl_", 5) == 0 ||
	       strncmp(importer, "libgrpc", 7) == 0;
}

static bool make_plan(const struct fs_copyset *cs, char *err, size_t errlen)
{
	struct fs_rebind_target t = { .is_old = in_set, .old_arg = cs };
	struct fs_rebind_stats stats;
	size_t max = 4096, n = 0, kept = 0;
	struct fs_import *imps = NULL;

	skip_set = cs;
	for (;;) {
		imps = reallocarray(NULL, max, sizeof(*imps));
		if (imps == NULL)
			return snprintf(err, errlen, "out of memory"), false;
		if (fs_rebind_plan(&t, skip_object, imps, max, &n, &stats, err, errlen) == 0)
			break;
		free(imps);
		if (n <= max)
			return false;
		max = n;
	}
	prep.ent = calloc(n ? n : 1, sizeof(*prep.ent));
	if (prep.ent == NULL) {
		free(imps);
		return snprintf(err, errlen, "out of memory"), false;
	}
	for (size_t i = 0; i < n; i++) {
		int m = fs_copyset_member_of(cs, imps[i].old_obj);
		struct entry *e = &prep.ent[kept];
		const char *stem;

		if (m < 0)
			continue;
		stem = fs_copyset_member(cs, (size_t)m)->stem;
		if (!wanted(&imps[i], stem))
			continue;
		e->member = (unsigned)m;
		e->tls_module = imps[i].type == R_X86_64_DTPMOD64;
		e->offset = e->tls_module ? 0 : imps[i].value - imps[i].old_obj->l_addr;
		e->stubbed = imps[i].func && core_member(stem);
		if (e->stubbed) {
			if (prep.nstubs == FS_STUBS) {
				free(imps);
				free(prep.ent);
				prep.ent = NULL;
				return snprintf(err, errlen, "more than %d functions of gRPC core imported", FS_STUBS),
				       false;
			}
			e->stub = prep.nstubs++;
		}
		imps[kept++] = imps[i];
	}
	if (stats.tpoffs > 0) {
		free(imps);
		free(prep.ent);
		prep.ent = NULL;
		return snprintf(err, errlen, "%s, a thread-local variable of gRPC's, is imported in a way that cannot be "
					     "re-pointed (initial-exec)",
				stats.first_missing),
		       false;
	}
	prep.imps = imps;
	prep.n = kept;
	prep.nmembers = cs->nmembers;
	fs_log(FS_DEBUG, "fresh: %zu imports of gRPC to re-point in a child (%zu objects, %zu relocations; %zu "
			 "thread-local imports that cannot be)",
	       kept, stats.objects, stats.relocs, stats.tls);
	return true;
}

/* The shim's own pointers into gRPC: where a child finds each in the copies. */
static void own_slot(void **slot, const char *name, bool data)
{
	if (prep.nown < MAX_OWN)
		prep.own[prep.nown++] = (struct own){ slot, name, 0, data, 0 };
}

static bool bind_own(const struct fs_copyset *cs, char *err, size_t errlen)
{
	for (size_t i = 0; i < prep.nown; i++) {
		struct own *o = &prep.own[i];

		if (o->data)
			continue;
		if (prep.nstubs == FS_STUBS)
			return snprintf(err, errlen, "more than %d functions of gRPC core imported", FS_STUBS), false;
		o->stub = prep.nstubs++;
	}
	return true;
}

/* The address `e` holds in a process whose gRPC is `cs`. */
static uintptr_t final_value(const struct entry *e, const struct fs_copyset *cs)
{
	const struct fs_copyset_member *m = fs_copyset_member(cs, e->member);

	return e->tls_module ? m->new_tls_modid : m->new_base + e->offset;
}

/* Where the stubs and the shim's own pointers lead in `cs`. A name the
 * copies lack leaves the pointer NULL there: the hooks then say that libgrpc
 * has no such function, as they would in the parent. */
static void fill_targets(const struct fs_copyset *cs)
{
	for (size_t i = 0; i < prep.n; i++)
		if (prep.ent[i].stubbed)
			prep.next_target[prep.ent[i].stub] = final_value(&prep.ent[i], cs);
	for (size_t i = 0; i < prep.nown; i++) {
		prep.own[i].next = (uintptr_t)fs_copyset_sym(cs, prep.own[i].name);
		if (!prep.own[i].data)
			prep.next_target[prep.own[i].stub] = prep.own[i].next;
	}
}

static bool prepare_locked(void)
{
	char err[512];
	unsigned gen = fs_generation + 1;
	struct fs_copyset *cs;
	struct timespec t0, t1;

	if (prep.next != NULL && prep.next_gen == gen)
		return true;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	cs = fs_copyset_load(gen, &(struct fs_copyset_opts){ .cache_dir = fs_cfg.cache_dir, .core_only = true }, err,
			     sizeof(err));
	if (cs == NULL) {
		fail("fresh: no private copy of gRPC for this process's children (%s): they get the inherited gRPC "
		     "and cannot use it",
		     err);
		return false;
	}
	if (prep.imps == NULL) {
		fs_grpc_own_slots(own_slot);
		if (!make_plan(cs, err, sizeof(err)) || !bind_own(cs, err, sizeof(err))) {
			fail("fresh: cannot list gRPC's imports (%s): children get the inherited gRPC and cannot use "
			     "it",
			     err);
			fs_copyset_free(cs);
			return false;
		}
	}
	if (cs->nmembers != prep.nmembers) {
		fail("fresh: %s: children get the inherited gRPC and cannot use it",
		     "the private copies' libraries differ from the first generation's");
		fs_copyset_free(cs);
		return false;
	}
	fill_targets(cs);
	prep.next = cs;
	prep.next_gen = gen;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	fs_log(FS_INFO, "fresh: generation %u's private gRPC ready for children (%s, %.1f ms)", gen,
	       cs->built ? "copies made" : "copies reused",
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	return true;
}

bool fs_fresh_load(void)
{
	bool ok;

	if (fs_cfg.child_grpc != FS_CHILD_FRESH || prep.failed)
		return false;
	/* A child that has not used its copies yet hands them on untouched. */
	if (atomic_load(&pending))
		return true;
	pthread_mutex_lock(&prep_lock);
	ok = !prep.failed && prepare_locked();
	pthread_mutex_unlock(&prep_lock);
	return ok;
}

bool fs_fresh_prepare(void)
{
	/* Lock order: the switch lock, then the fork path's. Held until the
	 * parent step: a fork must not copy a child's copies half-way through
	 * their first initialisation (a switch on another thread), nor miss one
	 * that ends between here and the fork. The switching thread itself
	 * (a fork from inside the copies' initialisation) takes nothing. */
	if (!pthread_equal(switcher, pthread_self())) {
		pthread_mutex_lock(&switch_lock);
		held_for_fork = true;
	}
	return fs_fresh_load();
}

void fs_fresh_parent(void)
{
	if (held_for_fork) {
		held_for_fork = false;
		pthread_mutex_unlock(&switch_lock);
	}
}

/* --- handles made before the fork ----------------------------------------------- */

/* The copies' constructors and queue functions, looked up at the switch. */
static struct fs_cred_ops cred_ops;
static struct fs_cq_ops cq_ops;

#define COPY_FN(field, name) (*(void **)&(field) = fs_copyset_sym(cur, name))

static void lookup_ops(void)
{
	COPY_FN(cred_ops.insecure_create, "grpc_insecure_credentials_create");
	COPY_FN(cred_ops.local_create, "grpc_local_credentials_create");
	COPY_FN(cred_ops.ssl_create, "grpc_ssl_credentials_create");
	COPY_FN(cred_ops.ssl_create_ex, "grpc_ssl_credentials_create_ex");
	COPY_FN(cred_ops.composite_channel_create, "grpc_composite_channel_credentials_create");
	COPY_FN(cred_ops.google_default_create, "grpc_google_default_credentials_create");
	COPY_FN(cred_ops.access_token_create, "grpc_access_token_credentials_create");
	COPY_FN(cred_ops.plugin_create, "grpc_metadata_credentials_create_from_plugin");
	COPY_FN(cred_ops.composite_call_create, "grpc_composite_call_credentials_create");
	COPY_FN(cred_ops.channel_release, "grpc_channel_credentials_release");
	COPY_FN(cred_ops.call_release, "grpc_call_credentials_release");
	COPY_FN(cq_ops.factory_lookup, "grpc_completion_queue_factory_lookup");
	COPY_FN(cq_ops.create, "grpc_completion_queue_create");
	COPY_FN(cq_ops.completion_type, "_Z27grpc_get_cq_completion_typeP21grpc_completion_queue");
	COPY_FN(cq_ops.can_listen, "_Z18grpc_cq_can_listenP21grpc_completion_queue");
	COPY_FN(cq_ops.pollset, "_Z15grpc_cq_pollsetP21grpc_completion_queue");
	COPY_FN(cq_ops.shutdown, "grpc_completion_queue_shutdown");
	COPY_FN(cq_ops.destroy, "grpc_completion_queue_destroy");
}

/* A pointer argument made by the inherited gRPC (a resource quota, say) is
 * that instance's object, run by its code: the twin goes without it, with
 * the copies' default. The application's own pointer arguments stay. */
static grpc_channel_args *without_inherited_pointers(const grpc_channel_args *args)
{
	grpc_channel_args *view;
	size_t kept = 0;

	if (args == NULL)
		return NULL;
	view = malloc(sizeof(*view) + args->num_args * sizeof(grpc_arg));
	if (view == NULL)
		return NULL;
	view->args = (grpc_arg *)(view + 1);
	for (size_t i = 0; i < args->num_args; i++) {
		const grpc_arg *a = &args->args[i];

		if (a->type == GRPC_ARG_POINTER && (fs_copyset_in_old(cur, a->value.pointer.vtable) ||
						    fs_copyset_in_old(cur, a->value.pointer.p))) {
			fs_log(FS_DEBUG, "fresh: channel argument %s of the inherited gRPC left out of its twin", a->key);
			continue;
		}
		view->args[kept++] = *a;
	}
	view->num_args = kept;
	return view;
}

/* What calls on an inherited channel go to (policy reconnect): a channel to
 * the same target, with twins of its credentials, made in the copies. */
static grpc_channel *fresh_stand_in(const char *target, grpc_channel_credentials *creds,
				    const grpc_channel_args *args)
{
	grpc_channel_credentials *twin = NULL;
	grpc_channel_args *view;
	grpc_channel *channel;
	const char *why = NULL;
	char words[320];

	fs_fresh_switch();
	if (creds != NULL && (twin = fs_credrec_twin_channel(creds, &cred_ops, &why)) == NULL) {
		snprintf(words, sizeof(words),
			 "grpc-forksafe: this channel was inherited across fork() and cannot be made again in this "
			 "child: %s",
			 why != NULL ? why : "its credentials are unknown");
		fs_log(FS_WARN, "channel to %s: %s", target, words + 14);
		return fs_grpc.lame_client_channel_create(target, GRPC_STATUS_UNAVAILABLE, words);
	}
	view = without_inherited_pointers(args);
	channel = fs_grpc.channel_create(target, twin, view != NULL ? view : args);
	free(view);
	return channel;
}

/* The channel table's stand-in for policy reconnect, and its calls into
 * gRPC, which must reach the copies (through the stubs, until the switch).
 * Credentials it holds from before the fork are the inherited gRPC's: their
 * release would run that gRPC's code, so they are never released here. */
static void (*release_in_copies)(grpc_channel_credentials *);

static void fresh_creds_release(grpc_channel_credentials *creds)
{
	if (fs_credrec_made_here(creds))
		release_in_copies(creds);
}

static void set_table_ops(void)
{
	struct fs_chan_ops o;

	fs_chantab_get_ops(&o);
	if (fs_cfg.mode == FS_MODE_RECONNECT) {
		o.stand_in = fresh_stand_in;
		o.stand_in_words = "its calls go to a channel of the child's own, in the child's fresh gRPC";
	}
	o.destroy = fs_grpc.channel_destroy;
	o.register_call = fs_grpc.channel_register_call;
	release_in_copies = fs_grpc.channel_credentials_release;
	o.creds_release = fresh_creds_release;
	fs_chantab_set_ops(&o);
}

/* Objects of the inherited gRPC that the child let go of (a channel or a
 * queue it destroyed): never freed, since freeing them would run that gRPC's
 * code, but kept here, so that they stay reachable rather than lost. */
struct kept {
	struct kept *next;
	void *object;
};
static struct kept *_Atomic kept;

void fs_fresh_keep(void *object)
{
	struct kept *k = malloc(sizeof(*k));

	if (k == NULL)
		return; /* then it is lost, as it would be anyway */
	k->object = object;
	k->next = atomic_load(&kept);
	while (!atomic_compare_exchange_weak(&kept, &k->next, k))
		;
}

grpc_channel_credentials *fs_fresh_creds(grpc_channel_credentials *creds, const char **why_not)
{
	if (cur == NULL || creds == NULL)
		return creds;
	fs_fresh_switch();
	return fs_credrec_twin_channel(creds, &cred_ops, why_not);
}

bool fs_fresh_inherited_creds(const void *creds)
{
	return cur != NULL && creds != NULL && !fs_credrec_made_here(creds);
}

grpc_completion_queue *fs_fresh_cq(grpc_completion_queue *cq)
{
	if (cur == NULL || cq == NULL)
		return cq;
	fs_fresh_switch();
	return fs_cqtwin_route(cq, &cq_ops);
}

void fs_fresh_cq_shutdown(grpc_completion_queue *cq)
{
	fs_fresh_switch();
	fs_cqtwin_shutdown(cq, &cq_ops);
}

void fs_fresh_cq_destroy(grpc_completion_queue *cq)
{
	fs_fresh_switch();
	if (fs_cqtwin_destroy(cq, &cq_ops))
		fs_fresh_keep(cq);
}

/* --- the child ----------------------------------------------------------------- */

static uintptr_t at_fork_value(const struct fs_import *imp, void *arg)
{
	const struct entry *e = &prep.ent[imp - prep.imps];

	return e->stubbed ? fs_stub_address(e->stub) : final_value(e, arg);
}

static uintptr_t switched_value(const struct fs_import *imp, void *arg)
{
	return final_value(&prep.ent[imp - prep.imps], arg);
}

void fs_fresh_child(void)
{
	char err[160];

	pthread_mutex_init(&switch_lock, NULL);
	pthread_mutex_init(&prep_lock, NULL);
	switcher = (pthread_t)0;
	held_for_fork = false;
	/* A parent that never used its copies hands them on as they are. */
	if (atomic_load(&pending))
		return;
	if (cur != NULL && nancestors < sizeof(ancestors) / sizeof(ancestors[0]))
		ancestors[nancestors++] = cur;
	cur = prep.next;
	prep.next = NULL;
	memcpy(cur_target, prep.next_target, sizeof(cur_target));
	inits_at_fork = atomic_load(&inits);
	if (fs_rebind_write(prep.imps, prep.n, at_fork_value, cur, err, sizeof(err)) != 0)
		fs_log(FS_ERROR, "fresh: %s", err); /* only if the kernel refused mprotect */
	for (size_t i = 0; i < prep.nown; i++)
		*prep.own[i].slot = prep.own[i].data ? (void *)prep.own[i].next
						     : (void *)fs_stub_address(prep.own[i].stub);
	fs_grpc_use_instance(cur->grpc);
	fs_chantab_child_fresh(fs_generation);
	set_table_ops();
	atomic_store(&pending, true);
}

void fs_fresh_switch(void)
{
	char err[160];

	if (!atomic_load_explicit(&pending, memory_order_acquire))
		return;
	/* The switch's own calls into the copies do not come back here, but a
	 * hook reached from inside it must not wait for itself. */
	if (pthread_equal(switcher, pthread_self()))
		return;
	pthread_mutex_lock(&switch_lock);
	if (atomic_load(&pending)) {
		switcher = pthread_self();
		lookup_ops();
		/* Queues and credentials made before the fork are inherited from
		 * now on; twins an ancestor made belong to its gRPC and are dropped
		 * unreleased. Here rather than at the fork: it frees memory. */
		fs_cqtwin_reset(fs_generation);
		fs_credrec_reset(fs_generation, NULL);
		/* Through the stub, which leads this thread straight to the copy:
		 * other threads keep waiting in their stubs until the copies are
		 * initialised and every pointer is final. */
		for (int i = 0; i < inits_at_fork; i++)
			fs_grpc.init();
		for (size_t i = 0; i < prep.nown; i++)
			if (!prep.own[i].data)
				*prep.own[i].slot = (void *)cur_target[prep.own[i].stub];
		if (fs_rebind_write(prep.imps, prep.n, switched_value, cur, err, sizeof(err)) != 0)
			fs_log(FS_ERROR, "fresh: %s", err);
		fs_log(FS_INFO, "child: generation %u's private gRPC initialised on first use", fs_generation);
		switcher = (pthread_t)0;
		atomic_store_explicit(&pending, false, memory_order_release);
	}
	pthread_mutex_unlock(&switch_lock);
}

uintptr_t fs_stub_resolve(unsigned i)
{
	fs_fresh_switch();
	return cur_target[i];
}
