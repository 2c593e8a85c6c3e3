#include "credrec.h"

#include "rbtree.h"
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "locks.h"
#include "log.h"

/* What it takes to make an object again, owning every byte it needs. */
struct recipe {
	enum fs_cred_kind kind;
	/* The original object's identity, copied with the recipe into
	 * composites: twins are cached by it, so that an object and a composite
	 * made from it share one twin. */
	uint64_t serial;
	/* A composite (or Google default) part that was not recorded: no twin. */
	bool part_missing;
	struct recipe *part[2];
	union {
		grpc_local_connect_type local;
		struct {
			char *roots; /* NULL: gRPC's default roots */
			bool has_pair;
			grpc_ssl_pem_key_cert_pair pair; /* strings owned */
			bool has_verify;
			verify_peer_options verify;
			grpc_ssl_verify_peer_options verify_ex;
		} ssl;
		char *token;
		struct {
			grpc_metadata_credentials_plugin plugin;
			grpc_security_level min_level;
		} plugin;
	} u;
};

/* An object noted as made, by address. */
struct made {
	RB_ENTRY(made) by_ptr;
	const void *creds;
	bool is_call;
	unsigned generation;
	struct recipe *recipe;
};

/* A twin made in this generation, by the original's serial. The cache holds
 * the reference the constructor returned. */
struct twin {
	RB_ENTRY(twin) by_serial;
	uint64_t serial;
	bool is_call;
	void *creds;
	struct twin *next_dropped; /* only while fs_credrec_reset lets go of it */
};

static int made_cmp(const struct made *a, const struct made *b)
{
	return ((uintptr_t)a->creds > (uintptr_t)b->creds) - ((uintptr_t)a->creds < (uintptr_t)b->creds);
}
static int twin_cmp(const struct twin *a, const struct twin *b)
{
	return (a->serial > b->serial) - (a->serial < b->serial);
}

RB_HEAD(made_tree, made);
FS_RB_GENERATE_STATIC(made_tree, made, by_ptr, made_cmp)
RB_HEAD(twin_tree, twin);
FS_RB_GENERATE_STATIC(twin_tree, twin, by_serial, twin_cmp)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
/* One thread makes twins at a time, with the lock released while it calls
 * gRPC; the others wait here. A second twin of the same object cannot simply
 * be thrown away: its release would run a plugin's or verify callback's
 * destroy function on state the first twin still uses. */
static pthread_cond_t made_twin = PTHREAD_COND_INITIALIZER;
static bool making;
static struct made_tree made = RB_INITIALIZER(&made);
static struct twin_tree twins = RB_INITIALIZER(&twins);
static size_t nmade, ntwins;
static uint64_t next_serial = 1;
static unsigned current; /* the generation objects noted now are made in */

#define UNRECORDED                                                                                          \
	"credentials made by a constructor grpc-forksafe does not record (TLS, ALTS, xDS, STS, Google "     \
	"compute engine, ...) or before it was loaded"
#define PART_UNRECORDED "composite credentials with a part grpc-forksafe did not record"

/* Per kind: the constructor's name, and whether it makes call credentials. */
static const struct {
	const char *fn;
	bool is_call;
	const char *lacks;  /* words when the fresh instance lacks the constructor */
	const char *failed; /* words when it returned nothing */
} kinds[] = {
#define KIND(k, name, call) [k] = { name, call, "the fresh gRPC has no " name, name " made nothing in the fresh gRPC" }
	KIND(FS_CRED_INSECURE, "grpc_insecure_credentials_create", false),
	KIND(FS_CRED_LOCAL, "grpc_local_credentials_create", false),
	KIND(FS_CRED_SSL, "grpc_ssl_credentials_create", false),
	KIND(FS_CRED_SSL_EX, "grpc_ssl_credentials_create_ex", false),
	KIND(FS_CRED_COMPOSITE_CHANNEL, "grpc_composite_channel_credentials_create", false),
	KIND(FS_CRED_GOOGLE_DEFAULT, "grpc_google_default_credentials_create", false),
	KIND(FS_CRED_ACCESS_TOKEN, "grpc_access_token_credentials_create", true),
	KIND(FS_CRED_PLUGIN, "grpc_metadata_credentials_create_from_plugin", true),
	KIND(FS_CRED_COMPOSITE_CALL, "grpc_composite_call_credentials_create", true),
#undef KIND
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static bool kind_known(enum fs_cred_kind k)
{
	return (unsigned)k < NKINDS && kinds[k].fn != NULL;
}

static void free_recipe(struct recipe *r)
{
	if (r == NULL)
		return;
	free_recipe(r->part[0]);
	free_recipe(r->part[1]);
	switch (r->kind) {
	case FS_CRED_SSL:
	case FS_CRED_SSL_EX:
		free(r->u.ssl.roots);
		free((char *)r->u.ssl.pair.private_key);
		free((char *)r->u.ssl.pair.cert_chain);
		break;
	case FS_CRED_ACCESS_TOKEN:
		free(r->u.token);
		break;
	default:
		break;
	}
	free(r);
}

/* strdup that keeps NULL; *ok goes false on allocation failure. */
static char *dup_or_null(const char *s, bool *ok)
{
	char *d;

	if (s == NULL)
		return NULL;
	d = strdup(s);
	if (d == NULL)
		*ok = false;
	return d;
}

static struct recipe *copy_recipe(const struct recipe *src)
{
	struct recipe *r;
	bool ok = true;

	if (src == NULL)
		return NULL;
	r = malloc(sizeof(*r));
	if (r == NULL)
		return NULL;
	*r = *src;
	r->part[0] = r->part[1] = NULL;
	switch (src->kind) {
	case FS_CRED_SSL:
	case FS_CRED_SSL_EX:
		r->u.ssl.roots = dup_or_null(src->u.ssl.roots, &ok);
		r->u.ssl.pair.private_key = dup_or_null(src->u.ssl.pair.private_key, &ok);
		r->u.ssl.pair.cert_chain = dup_or_null(src->u.ssl.pair.cert_chain, &ok);
		break;
	case FS_CRED_ACCESS_TOKEN:
		r->u.token = dup_or_null(src->u.token, &ok);
		break;
	default:
		break;
	}
	for (int i = 0; i < 2; i++)
		if (src->part[i] != NULL && (r->part[i] = copy_recipe(src->part[i])) == NULL)
			ok = false;
	if (!ok) {
		free_recipe(r);
		return NULL;
	}
	return r;
}

static struct made *find_made(const void *creds)
{
	struct made key = { .creds = creds };

	return RB_FIND(made_tree, &made, &key);
}

static struct twin *find_twin(uint64_t serial)
{
	struct twin key = { .serial = serial };

	return RB_FIND(twin_tree, &twins, &key);
}

/* A copy of the recipe of part `p`, taken under the lock; `*missing` is set
 * when `p` was given but never recorded. */
static struct recipe *part_recipe_locked(const void *p, bool is_call, bool *missing, bool *ok)
{
	struct made *m;
	struct recipe *r;

	if (p == NULL)
		return NULL;
	m = find_made(p);
	if (m == NULL || m->is_call != is_call) {
		*missing = true;
		return NULL;
	}
	r = copy_recipe(m->recipe);
	if (r == NULL)
		*ok = false;
	return r;
}

/* The recipe of `how`, its own fields copied; parts are filled in later, under the lock. */
static struct recipe *recipe_from(const struct fs_cred_recipe *how)
{
	struct recipe *r = calloc(1, sizeof(*r));
	bool ok = true;

	if (r == NULL)
		return NULL;
	r->kind = how->kind;
	switch (how->kind) {
	case FS_CRED_LOCAL:
		r->u.local = how->u.local;
		break;
	case FS_CRED_SSL:
	case FS_CRED_SSL_EX:
		r->u.ssl.roots = dup_or_null(how->u.ssl.pem_root_certs, &ok);
		if (how->u.ssl.pair != NULL) {
			r->u.ssl.has_pair = true;
			r->u.ssl.pair.private_key = dup_or_null(how->u.ssl.pair->private_key, &ok);
			r->u.ssl.pair.cert_chain = dup_or_null(how->u.ssl.pair->cert_chain, &ok);
		}
		/* The callbacks and userdata are the application's: copied as they are. */
		if (how->kind == FS_CRED_SSL && how->u.ssl.verify != NULL) {
			r->u.ssl.has_verify = true;
			r->u.ssl.verify = *how->u.ssl.verify;
		} else if (how->kind == FS_CRED_SSL_EX && how->u.ssl.verify_ex != NULL) {
			r->u.ssl.has_verify = true;
			r->u.ssl.verify_ex = *how->u.ssl.verify_ex;
		}
		break;
	case FS_CRED_ACCESS_TOKEN:
		r->u.token = dup_or_null(how->u.access_token != NULL ? how->u.access_token : "", &ok);
		break;
	case FS_CRED_PLUGIN:
		r->u.plugin.plugin = how->u.plugin.plugin;
		r->u.plugin.min_level = how->u.plugin.min_level;
		break;
	default:
		break;
	}
	if (!ok) {
		free_recipe(r);
		return NULL;
	}
	return r;
}

static void note(const void *creds, bool is_call, const struct fs_cred_recipe *how)
{
	struct recipe *r;
	struct made *m, *old;
	bool ok = true;

	if (creds == NULL)
		return;
	if (!kind_known(how->kind) || kinds[how->kind].is_call != is_call) {
		fs_log(FS_WARN, "credentials %p noted with kind %d, which is not one of %s credentials: no twin can be made",
		       creds, (int)how->kind, is_call ? "call" : "channel");
		return;
	}
	r = recipe_from(how);
	m = calloc(1, sizeof(*m));
	if (r == NULL || m == NULL)
		goto oom;
	m->creds = creds;
	m->is_call = is_call;
	m->recipe = r;

	fs_lock(&lock, FS_LOCK_CREDREC);
	switch (how->kind) {
	case FS_CRED_COMPOSITE_CHANNEL:
		r->part[0] = part_recipe_locked(how->u.composite.channel, false, &r->part_missing, &ok);
		r->part[1] = part_recipe_locked(how->u.composite.call, true, &r->part_missing, &ok);
		break;
	case FS_CRED_COMPOSITE_CALL:
		r->part[0] = part_recipe_locked(how->u.composite.call, true, &r->part_missing, &ok);
		r->part[1] = part_recipe_locked(how->u.composite.call2, true, &r->part_missing, &ok);
		break;
	case FS_CRED_GOOGLE_DEFAULT:
		r->part[0] = part_recipe_locked(how->u.google_default_call, true, &r->part_missing, &ok);
		break;
	default:
		break;
	}
	if (!ok) {
		fs_unlock(&lock, FS_LOCK_CREDREC);
		goto oom;
	}
	r->serial = next_serial++;
	m->generation = current;
	/* Still here: released without passing through the shim, its address
	 * now reused. */
	old = find_made(creds);
	if (old != NULL) {
		RB_REMOVE(made_tree, &made, old);
		nmade--;
	}
	RB_INSERT(made_tree, &made, m);
	nmade++;
	fs_unlock(&lock, FS_LOCK_CREDREC);

	if (old != NULL) {
		free_recipe(old->recipe);
		free(old);
	}
	if (r->part_missing)
		fs_log(FS_DEBUG, "credentials %p (%s) have a part not recorded: a child cannot make their twin",
		       creds, kinds[how->kind].fn);
	return;
oom:
	free_recipe(r);
	free(m);
	fs_log(FS_WARN, "out of memory: how credentials were made (%s) is not recorded; a child cannot make their twin",
	       kinds[how->kind].fn);
}

void fs_credrec_note_channel(grpc_channel_credentials *made_creds, const struct fs_cred_recipe *how)
{
	note(made_creds, false, how);
}

void fs_credrec_note_call(grpc_call_credentials *made_creds, const struct fs_cred_recipe *how)
{
	note(made_creds, true, how);
}

void fs_credrec_forget(const void *creds)
{
	struct made *m;

	if (creds == NULL)
		return;
	fs_lock(&lock, FS_LOCK_CREDREC);
	m = find_made(creds);
	if (m != NULL) {
		RB_REMOVE(made_tree, &made, m);
		nmade--;
	}
	fs_unlock(&lock, FS_LOCK_CREDREC);
	if (m != NULL) {
		free_recipe(m->recipe);
		free(m);
	}
}

static void *cached_twin(uint64_t serial)
{
	struct twin *t;
	void *c;

	fs_lock(&lock, FS_LOCK_CREDREC);
	t = find_twin(serial);
	c = t != NULL ? t->creds : NULL;
	fs_unlock(&lock, FS_LOCK_CREDREC);
	return c;
}

static void release_in(const struct fs_cred_ops *ops, bool is_call, void *creds)
{
	if (is_call && ops->call_release != NULL)
		ops->call_release(creds);
	else if (!is_call && ops->channel_release != NULL)
		ops->channel_release(creds);
}

/* The twin of `r` (and of its parts) in `ops`'s instance, cached by serial.
 * Called by the one thread making twins (`making`), without the lock. */
static void *build(const struct recipe *r, const struct fs_cred_ops *ops, const char **why)
{
	void *c = cached_twin(r->serial), *a = NULL, *b = NULL;
	struct twin *t;
	grpc_ssl_pem_key_cert_pair pair;
	bool missing = false;

	if (c != NULL)
		return c;
	if (r->part_missing) {
		*why = PART_UNRECORDED;
		return NULL;
	}
	for (int i = 0; i < 2; i++) {
		if (r->part[i] == NULL)
			continue;
		if ((i == 0 ? (a = build(r->part[i], ops, why)) : (b = build(r->part[i], ops, why))) == NULL)
			return NULL;
	}
	switch (r->kind) {
	case FS_CRED_INSECURE:
		missing = ops->insecure_create == NULL;
		if (!missing)
			c = ops->insecure_create();
		break;
	case FS_CRED_LOCAL:
		missing = ops->local_create == NULL;
		if (!missing)
			c = ops->local_create(r->u.local);
		break;
	case FS_CRED_SSL:
		pair = r->u.ssl.pair; /* gRPC's parameter is not const */
		missing = ops->ssl_create == NULL;
		if (!missing)
			c = ops->ssl_create(r->u.ssl.roots, r->u.ssl.has_pair ? &pair : NULL,
					    r->u.ssl.has_verify ? &r->u.ssl.verify : NULL, NULL);
		break;
	case FS_CRED_SSL_EX:
		pair = r->u.ssl.pair;
		missing = ops->ssl_create_ex == NULL;
		if (!missing)
			c = ops->ssl_create_ex(r->u.ssl.roots, r->u.ssl.has_pair ? &pair : NULL,
					       r->u.ssl.has_verify ? &r->u.ssl.verify_ex : NULL, NULL);
		break;
	case FS_CRED_COMPOSITE_CHANNEL:
		missing = ops->composite_channel_create == NULL;
		if (!missing)
			c = ops->composite_channel_create(a, b, NULL);
		break;
	case FS_CRED_GOOGLE_DEFAULT:
		missing = ops->google_default_create == NULL;
		if (!missing)
			c = ops->google_default_create(a);
		break;
	case FS_CRED_ACCESS_TOKEN:
		missing = ops->access_token_create == NULL;
		if (!missing)
			c = ops->access_token_create(r->u.token, NULL);
		break;
	case FS_CRED_PLUGIN:
		missing = ops->plugin_create == NULL;
		if (!missing)
			c = ops->plugin_create(r->u.plugin.plugin, r->u.plugin.min_level, NULL);
		break;
	case FS_CRED_COMPOSITE_CALL:
		missing = ops->composite_call_create == NULL;
		if (!missing)
			c = ops->composite_call_create(a, b, NULL);
		break;
	}
	if (c == NULL) {
		*why = missing ? kinds[r->kind].lacks : kinds[r->kind].failed;
		return NULL;
	}
	t = calloc(1, sizeof(*t));
	if (t == NULL) {
		release_in(ops, kinds[r->kind].is_call, c);
		*why = "out of memory";
		return NULL;
	}
	t->serial = r->serial;
	t->is_call = kinds[r->kind].is_call;
	t->creds = c;
	fs_lock(&lock, FS_LOCK_CREDREC);
	RB_INSERT(twin_tree, &twins, t);
	ntwins++;
	fs_unlock(&lock, FS_LOCK_CREDREC);
	return c;
}

static void *twin(const void *inherited, bool is_call, const struct fs_cred_ops *ops, const char **why_not)
{
	struct made *m;
	struct recipe *r;
	struct twin *t;
	const char *why = NULL;
	void *c;

	*why_not = NULL;
	if (inherited == NULL)
		return NULL;
	fs_lock(&lock, FS_LOCK_CREDREC);
	while (making)
		pthread_cond_wait(&made_twin, &lock);
	m = find_made(inherited);
	if (m == NULL || m->is_call != is_call) {
		fs_unlock(&lock, FS_LOCK_CREDREC);
		*why_not = UNRECORDED;
		fs_log(FS_DEBUG, "no twin of inherited credentials %p: %s", inherited, UNRECORDED);
		return NULL;
	}
	if (m->generation == current) {
		fs_unlock(&lock, FS_LOCK_CREDREC);
		return (void *)inherited;
	}
	t = find_twin(m->recipe->serial);
	if (t != NULL) {
		c = t->creds;
		fs_unlock(&lock, FS_LOCK_CREDREC);
		return c;
	}
	/* Copied: the application may release the original while the twin is made. */
	r = copy_recipe(m->recipe);
	making = r != NULL;
	fs_unlock(&lock, FS_LOCK_CREDREC);
	if (r == NULL) {
		*why_not = "out of memory";
		return NULL;
	}

	c = build(r, ops, &why);

	fs_lock(&lock, FS_LOCK_CREDREC);
	making = false;
	pthread_cond_broadcast(&made_twin);
	fs_unlock(&lock, FS_LOCK_CREDREC);
	if (c == NULL) {
		*why_not = why;
		fs_log(FS_DEBUG, "no twin of inherited credentials made by %s: %s", kinds[r->kind].fn, why);
	} else {
		fs_log(FS_DEBUG, "twin of inherited credentials made by %s: %p", kinds[r->kind].fn, c);
	}
	free_recipe(r);
	return c;
}

bool fs_credrec_made_here(const void *creds)
{
	struct made *m;
	bool here;

	fs_lock(&lock, FS_LOCK_CREDREC);
	m = find_made(creds);
	here = m != NULL && m->generation == current;
	fs_unlock(&lock, FS_LOCK_CREDREC);
	return here;
}

grpc_channel_credentials *fs_credrec_twin_channel(grpc_channel_credentials *inherited,
						  const struct fs_cred_ops *in_fresh, const char **why_not)
{
	return twin(inherited, false, in_fresh, why_not);
}

grpc_call_credentials *fs_credrec_twin_call(grpc_call_credentials *inherited, const struct fs_cred_ops *in_fresh,
					    const char **why_not)
{
	return twin(inherited, true, in_fresh, why_not);
}

void fs_credrec_reset(unsigned generation, const struct fs_cred_ops *release_with)
{
	struct twin *t, *dropped = NULL;

	fs_lock(&lock, FS_LOCK_CREDREC);
	while (making)
		pthread_cond_wait(&made_twin, &lock);
	while ((t = RB_MIN(twin_tree, &twins)) != NULL) {
		RB_REMOVE(twin_tree, &twins, t);
		t->next_dropped = dropped;
		dropped = t;
	}
	ntwins = 0;
	current = generation;
	fs_unlock(&lock, FS_LOCK_CREDREC);

	/* The releases may run in any order: gRPC counts the references a
	 * composite holds on its parts. */
	while ((t = dropped) != NULL) {
		dropped = t->next_dropped;
		if (release_with != NULL)
			release_in(release_with, t->is_call, t->creds);
		free(t);
	}
}

void fs_credrec_lock(void)
{
	fs_lock(&lock, FS_LOCK_CREDREC);
}

void fs_credrec_unlock(void)
{
	fs_unlock(&lock, FS_LOCK_CREDREC);
}

/* In the child, while it has one thread: the lock is re-made rather than
 * unlocked. A twin another thread was making at the fork is never finished;
 * the child's reset drops what that thread cached anyway. */
void fs_credrec_child_reset_lock(void)
{
	pthread_mutex_init(&lock, NULL);
	pthread_cond_init(&made_twin, NULL);
	making = false;
	fs_lock(&lock, FS_LOCK_CREDREC);
}

size_t fs_credrec_count(void)
{
	size_t n;

	fs_lock(&lock, FS_LOCK_CREDREC);
	n = nmade;
	fs_unlock(&lock, FS_LOCK_CREDREC);
	return n;
}

size_t fs_credrec_twins(void)
{
	size_t n;

	fs_lock(&lock, FS_LOCK_CREDREC);
	n = ntwins;
	fs_unlock(&lock, FS_LOCK_CREDREC);
	return n;
}
