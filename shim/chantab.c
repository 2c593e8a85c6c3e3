#include "chantab.h"

#include <bsd/sys/queue.h>
#include "rbtree.h"
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chanargs.h"
#include "locks.h"
#include "log.h"
#include "stats.h"

/* Credentials the table keeps alive. gRPC's C API has no way to take a
 * reference, so the application's own releases are deferred instead: the
 * table performs them once no tracked channel needs the credentials. */
struct cred {
	RB_ENTRY(cred) by_ptr;
	grpc_channel_credentials *creds;
	unsigned uses;     /* tracked channels made with them */
	unsigned deferred; /* releases the application made that are still owed */
};

struct regcall {
	RB_ENTRY(regcall) by_handle;
	LIST_ENTRY(regcall) of_chan;
	void *handle;
	char *method;
	char *host;
	void *repl_handle; /* the same method on the replacement of repl_gen */
	unsigned repl_gen;
};

/* A stand-in an ancestor made, inherited with the entry: not used here, but
 * kept reachable and destroyed with the entry, like the inherited handle. */
struct old_stand_in {
	SLIST_ENTRY(old_stand_in) link;
	unsigned generation; /* in which it was made */
	grpc_channel *channel;
};

struct chan {
	RB_ENTRY(chan) by_handle;
	grpc_channel *handle;
	char *target;
	grpc_channel_args *args;
	struct cred *cred;
	unsigned generation; /* in which the handle was created */
	grpc_channel *repl;  /* valid only when repl_gen is the current generation; */
	unsigned repl_gen;   /* one from an ancestor is inherited and left alone */
	unsigned audit_gen;  /* the generation that last reported using it (audit) */
	SLIST_HEAD(, old_stand_in) old_stand_ins;
	LIST_HEAD(, regcall) regcalls;
};

static int ptr_cmp(const void *a, const void *b)
{
	return ((uintptr_t)a > (uintptr_t)b) - ((uintptr_t)a < (uintptr_t)b);
}
static int chan_cmp(const struct chan *a, const struct chan *b) { return ptr_cmp(a->handle, b->handle); }
static int regcall_cmp(const struct regcall *a, const struct regcall *b) { return ptr_cmp(a->handle, b->handle); }
static int cred_cmp(const struct cred *a, const struct cred *b) { return ptr_cmp(a->creds, b->creds); }

RB_HEAD(chan_tree, chan);
FS_RB_GENERATE_STATIC(chan_tree, chan, by_handle, chan_cmp)
RB_HEAD(regcall_tree, regcall);
FS_RB_GENERATE_STATIC(regcall_tree, regcall, by_handle, regcall_cmp)
RB_HEAD(cred_tree, cred);
FS_RB_GENERATE_STATIC(cred_tree, cred, by_ptr, cred_cmp)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct chan_tree chans = RB_INITIALIZER(&chans);
static struct regcall_tree regcalls = RB_INITIALIZER(&regcalls);
static struct cred_tree creds_held = RB_INITIALIZER(&creds_held);
static size_t nchans, ncreds;
static struct fs_chan_ops ops;

void fs_chantab_set_ops(const struct fs_chan_ops *o)
{
	ops = *o;
}

void fs_chantab_get_ops(struct fs_chan_ops *o)
{
	*o = ops;
}

void fs_chantab_child_grpc_unusable(void)
{
	if (ops.unusable_stand_in == NULL)
		return;
	ops.stand_in = ops.unusable_stand_in;
	ops.stand_in_words = ops.unusable_words;
}

/* In a child with a fresh gRPC (fresh.c), everything made before this
 * generation belongs to an instance whose code must never run again: such
 * channels and stand-ins are dropped, never destroyed. 0 elsewhere. */
static unsigned dead_before;

void fs_chantab_child_fresh(unsigned generation)
{
	dead_before = generation;
}

static struct chan *find_chan(grpc_channel *h)
{
	struct chan key = { .handle = h };

	return RB_FIND(chan_tree, &chans, &key);
}

static struct regcall *find_regcall(void *h)
{
	struct regcall key = { .handle = h };

	return RB_FIND(regcall_tree, &regcalls, &key);
}

static void free_regcall(struct regcall *r)
{
	free(r->method);
	free(r->host);
	free(r);
}

/* Frees what an untracked entry owned; calls gRPC, so never with the lock held. */
static void free_chan(struct chan *c, struct cred *drop_cred)
{
	struct regcall *r;
	struct old_stand_in *o;

	while ((o = SLIST_FIRST(&c->old_stand_ins)) != NULL) {
		SLIST_REMOVE_HEAD(&c->old_stand_ins, link);
		if (o->generation >= dead_before)
			ops.destroy(o->channel);
		free(o);
	}
	while ((r = LIST_FIRST(&c->regcalls)) != NULL) {
		LIST_REMOVE(r, of_chan);
		free_regcall(r);
	}
	fs_chanargs_free(c->args);
	free(c->target);
	free(c);
	if (drop_cred != NULL) {
		for (unsigned i = 0; i < drop_cred->deferred; i++)
			ops.creds_release(drop_cred->creds);
		free(drop_cred);
	}
}

/* Removes `c` from the tables; returns its credentials if this was their last use. */
static struct cred *unlink_chan_locked(struct chan *c)
{
	struct regcall *r;
	struct cred *drop = NULL;

	RB_REMOVE(chan_tree, &chans, c);
	nchans--;
	LIST_FOREACH(r, &c->regcalls, of_chan)
		RB_REMOVE(regcall_tree, &regcalls, r);
	if (c->cred != NULL && --c->cred->uses == 0) {
		RB_REMOVE(cred_tree, &creds_held, c->cred);
		ncreds--;
		drop = c->cred;
	}
	return drop;
}

void fs_chantab_track(grpc_channel *channel, const char *target, grpc_channel_credentials *creds,
		      const grpc_channel_args *args, unsigned generation)
{
	struct chan *c = calloc(1, sizeof(*c)), *old;
	struct cred *spare = calloc(1, sizeof(*spare)), key, *held;
	struct cred *old_drop = NULL;
	int ok;

	if (c == NULL || spare == NULL || (c->target = strdup(target != NULL ? target : "")) == NULL)
		goto oom;
	c->args = fs_chanargs_copy(args, &ok);
	if (!ok)
		goto oom;
	c->handle = channel;
	c->generation = generation;
	SLIST_INIT(&c->old_stand_ins);
	LIST_INIT(&c->regcalls);

	fs_lock(&lock, FS_LOCK_CHANTAB);
	if (creds != NULL) {
		key.creds = creds;
		held = RB_FIND(cred_tree, &creds_held, &key);
		if (held == NULL) {
			held = spare;
			spare = NULL;
			held->creds = creds;
			RB_INSERT(cred_tree, &creds_held, held);
			ncreds++;
		}
		held->uses++;
		c->cred = held;
	}
	/* A handle still in the table was destroyed without passing through the
	 * shim; its address has been reused by this channel. */
	old = find_chan(channel);
	if (old != NULL)
		old_drop = unlink_chan_locked(old);
	RB_INSERT(chan_tree, &chans, c);
	nchans++;
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	fs_stat_add(channels, 1);

	if (old != NULL)
		free_chan(old, old_drop);
	free(spare);
	fs_log(FS_DEBUG, "channel %p to %s tracked in generation %u", (void *)channel, c->target, generation);
	return;
oom:
	if (c != NULL) {
		free(c->target);
		free(c);
	}
	free(spare);
	fs_log(FS_WARN, "out of memory: channel to %s is not tracked; a child cannot use it",
	       target != NULL ? target : "?");
}

void fs_chantab_note_registered(grpc_channel *channel, void *registered, const char *method, const char *host)
{
	struct regcall *r = calloc(1, sizeof(*r));
	struct chan *c;

	if (r == NULL || (r->method = strdup(method != NULL ? method : "")) == NULL ||
	    (host != NULL && (r->host = strdup(host)) == NULL)) {
		if (r != NULL)
			free_regcall(r);
		fs_log(FS_WARN, "out of memory: registration of %s is not tracked", method != NULL ? method : "?");
		return;
	}
	r->handle = registered;
	fs_lock(&lock, FS_LOCK_CHANTAB);
	c = find_chan(channel);
	/* gRPC hands back the same handle for the same method and host. */
	if (c != NULL && registered != NULL && find_regcall(registered) == NULL) {
		RB_INSERT(regcall_tree, &regcalls, r);
		LIST_INSERT_HEAD(&c->regcalls, r, of_chan);
		r = NULL;
	}
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	if (r != NULL)
		free_regcall(r);
}

/* Makes a replacement for `c` in `generation`, outside the lock. The entry's
 * target, arguments and credentials never change while it is in the table. */
static grpc_channel *make_replacement(const struct chan *c, unsigned generation)
{
	grpc_channel_args *view = fs_chanargs_with_generation(c->args, generation);
	grpc_channel *r;

	if (view == NULL)
		return NULL;
	r = ops.stand_in(c->target, c->cred != NULL ? c->cred->creds : NULL, view);
	fs_chanargs_free_view(view);
	return r;
}

grpc_channel *fs_chantab_route(grpc_channel *channel, unsigned generation)
{
	struct chan *c;
	struct old_stand_in *old;
	grpc_channel *r, *won;
	unsigned from;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	c = find_chan(channel);
	if (c == NULL || c->generation == generation) {
		fs_unlock(&lock, FS_LOCK_CHANTAB);
		return channel;
	}
	if (c->repl != NULL && c->repl_gen == generation) {
		r = c->repl;
		fs_unlock(&lock, FS_LOCK_CHANTAB);
		return r;
	}
	from = c->generation;
	fs_unlock(&lock, FS_LOCK_CHANTAB);

	r = make_replacement(c, generation);
	old = calloc(1, sizeof(*old));
	if (r == NULL || old == NULL) {
		free(old);
		if (r != NULL)
			ops.destroy(r);
		fs_log(FS_ERROR, "out of memory: cannot replace an inherited channel; the call will fail");
		return channel;
	}

	fs_lock(&lock, FS_LOCK_CHANTAB);
	c = find_chan(channel);
	won = NULL;
	if (c == NULL) {
		won = channel; /* destroyed meanwhile: the application's race */
	} else if (c->repl != NULL && c->repl_gen == generation) {
		won = c->repl; /* another thread made one first */
	} else {
		if (c->repl != NULL) {
			/* An ancestor's stand-in, inherited: kept with the entry. */
			old->channel = c->repl;
			old->generation = c->repl_gen;
			SLIST_INSERT_HEAD(&c->old_stand_ins, old, link);
			old = NULL;
		}
		c->repl = r;
		c->repl_gen = generation;
		/* Logged under the lock: the entry may be untracked as soon as it drops. */
		fs_log(FS_INFO, "channel to %s: inherited from generation %u; %s", c->target, from,
		       ops.stand_in_words != NULL ? ops.stand_in_words : "using a stand-in");
		fs_stat_add(replaced, 1);
	}
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	free(old);

	if (won != NULL) {
		ops.destroy(r);
		return won;
	}
	return r;
}

grpc_channel *fs_chantab_route_registered(grpc_channel *channel, void **registered, unsigned generation)
{
	grpc_channel *target = fs_chantab_route(channel, generation);
	struct regcall *rc;
	void *mapped;
	char *method, *host;

	if (target == channel || *registered == NULL)
		return target;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	rc = find_regcall(*registered);
	if (rc == NULL) {
		fs_unlock(&lock, FS_LOCK_CHANTAB);
		/* Registered before the shim saw it: a plain call cannot be built from a
		 * handle, so it goes to the inherited channel and fails cleanly there. */
		fs_log(FS_WARN, "a call registered without the shim on an inherited channel cannot be redirected");
		return channel;
	}
	if (rc->repl_gen == generation && rc->repl_handle != NULL) {
		*registered = rc->repl_handle;
		fs_unlock(&lock, FS_LOCK_CHANTAB);
		return target;
	}
	method = rc->method;
	host = rc->host;
	fs_unlock(&lock, FS_LOCK_CHANTAB);

	/* gRPC returns the same handle for the same method and host on a channel, so
	 * two threads racing here store the same value. */
	mapped = ops.register_call(target, method, host, NULL);

	fs_lock(&lock, FS_LOCK_CHANTAB);
	rc = find_regcall(*registered);
	if (rc != NULL) {
		rc->repl_handle = mapped;
		rc->repl_gen = generation;
	}
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	*registered = mapped;
	return target;
}

bool fs_chantab_untrack(grpc_channel *channel, unsigned generation)
{
	struct chan *c;
	struct cred *drop = NULL;
	grpc_channel *repl = NULL;
	bool dead;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	c = find_chan(channel);
	if (c != NULL) {
		drop = unlink_chan_locked(c);
		/* This generation's stand-in, or one inherited from an ancestor: the
		 * entry is going, so is whatever it kept (the application is
		 * destroying the inherited handle itself, too). */
		repl = c->repl_gen >= dead_before ? c->repl : NULL;
	}
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	if (c == NULL)
		return false;
	if (repl != NULL)
		ops.destroy(repl);
	dead = c->generation < dead_before;
	fs_log(FS_DEBUG, "channel %p to %s forgotten", (void *)channel, c->target);
	free_chan(c, drop);
	return dead;
}

bool fs_chantab_note_inherited_use(grpc_channel *channel, unsigned generation, char *target, size_t size)
{
	struct chan *c;
	bool first = false;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	c = find_chan(channel);
	if (c != NULL && c->generation < generation && c->audit_gen != generation) {
		c->audit_gen = generation;
		snprintf(target, size, "%s", c->target);
		first = true;
	}
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	return first;
}

bool fs_chantab_inherited_twin(const char *target, const grpc_channel_args *args, unsigned generation)
{
	struct chan *c;
	bool found = false;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	RB_FOREACH(c, chan_tree, &chans) {
		if (c->generation < generation && strcmp(c->target, target) == 0 &&
		    fs_chanargs_equal(c->args, args)) {
			found = true;
			break;
		}
	}
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	return found;
}

bool fs_chantab_defer_release(grpc_channel_credentials *creds)
{
	struct cred key = { .creds = creds }, *held;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	held = RB_FIND(cred_tree, &creds_held, &key);
	if (held != NULL)
		held->deferred++;
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	return held != NULL;
}

void fs_chantab_lock(void)
{
	fs_lock(&lock, FS_LOCK_CHANTAB);
}

void fs_chantab_unlock(void)
{
	fs_unlock(&lock, FS_LOCK_CHANTAB);
}

/* In the child: the forking thread's lock is re-made rather than unlocked. */
void fs_chantab_child_reset_lock(void)
{
	pthread_mutex_init(&lock, NULL);
	fs_lock(&lock, FS_LOCK_CHANTAB);
}

size_t fs_chantab_count_locked(void)
{
	return nchans;
}

size_t fs_chantab_count(void)
{
	size_t n;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	n = nchans;
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	return n;
}

size_t fs_chantab_held_creds(void)
{
	size_t n;

	fs_lock(&lock, FS_LOCK_CHANTAB);
	n = ncreds;
	fs_unlock(&lock, FS_LOCK_CHANTAB);
	return n;
}
