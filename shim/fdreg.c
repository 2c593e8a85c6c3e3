/*
 * The descriptor registry, without a lock.
 *
 * One atomic word per descriptor number, in chunks of FD_CHUNK numbers that
 * are mapped on first use and never unmapped, so a reader needs no lock to
 * follow a chunk pointer. A word holds the entry's state (free, live, or a
 * dead placeholder), kind, whether embedded gRPC made it, and a sequence
 * number that changes with every registration, so that a compare-and-swap
 * acting on what it read never undoes a newer registration of the number.
 *
 * Why no lock: close() is async-signal-safe, so a signal handler may close a
 * descriptor (or fork) while its thread is inside close() or a creation hook;
 * with a mutex that thread would wait for itself. And a blocking accept()
 * must not hold anything that every fork and close() of the process waits for.
 *
 * A fork must see either no descriptor or a registered one. A descriptor
 * exists from the moment its system call returns, and is registered a few
 * instructions later; a fork in between (from another thread) would leave the
 * child an unregistered reference to the parent's socket. So each creation
 * first publishes a record ("creating", fs_fdreg_begin_add), makes the call,
 * stores the result in the record at once ("created"), registers, and retires
 * the record. The fork path:
 *   - in the parent, waits (a few milliseconds at most, and never for its own
 *     thread, which may be a signal handler that interrupted a creation) for
 *     records of non-blocking creations to leave "creating": those calls never
 *     block, so this is the time of one system call;
 *   - in the child, registers whatever "created" records hold: the creating
 *     thread is gone, but its descriptor is the parent's gRPC's and is
 *     neutralised with the others.
 * accept() may block indefinitely and is not waited for: a fork that falls in
 * the instructions between its return and the store of its result leaves the
 * accepted socket unregistered in the child. No code in the child knows that
 * number (only the vanished thread did), so nothing is written to it and gRPC
 * never closes it; it is close-on-exec. The child merely holds a reference.
 * A fork while another thread is between the registry's forget and the close
 * itself leaves the child the same kind of unknown reference, for the same
 * reason harmless: the registry forgets before closing, never after, so a
 * child never finds an entry for a number that may already hold somebody
 * else's descriptor.
 */
#include "fdreg.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/close_range.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fdident.h"
#include "libc.h"
#include "log.h"
#include "owner.h"

#define FD_CHUNK_BITS 10
#define FD_CHUNK (1u << FD_CHUNK_BITS)
/* Numbers below 2^20, Linux's default ceiling (fs.nr_open): 8 KiB of pointers. */
#define FD_CHUNKS 1024u
#define FD_LIMIT (FD_CHUNK * FD_CHUNKS)

enum { ST_FREE, ST_LIVE, ST_RESERVED };

#define W_STATE(w) ((unsigned)((w)&3u))
#define W_KIND(w) ((enum fs_fd_kind)(((w) >> 2) & 3u))
#define W_EMBEDDED(w) ((bool)(((w) >> 4) & 1u))
#define W_SEQ_ONE ((uint64_t)1 << 8)
#define W_SEQ(w) ((w) & ~(W_SEQ_ONE - 1))

struct slot {
	_Atomic uint64_t word;
	/* What the number referred to when registered: a later fstat tells
	 * whether it still does. Written before the word is published. */
	_Atomic uint64_t dev, ino;
	/* For epoll sets and eventfds, which share one anonymous inode: what
	 * fs_fdident_anon said (0 for everything else). */
	_Atomic uint64_t anon;
};

static struct slot *_Atomic chunks[FD_CHUNKS];
static atomic_size_t count; /* entries not free */

/* Async-signal-safe: mmap, never malloc. */
static struct slot *slot_of(int fd, bool create)
{
	struct slot *c, *fresh;
	unsigned i;

	if (fd < 0 || (unsigned)fd >= FD_LIMIT)
		return NULL;
	i = (unsigned)fd >> FD_CHUNK_BITS;
	c = atomic_load_explicit(&chunks[i], memory_order_acquire);
	if (c != NULL || !create)
		return c != NULL ? &c[fd & (FD_CHUNK - 1)] : NULL;
	fresh = mmap(NULL, FD_CHUNK * sizeof(*fresh), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (fresh == MAP_FAILED)
		return NULL;
	if (atomic_compare_exchange_strong_explicit(&chunks[i], &c, fresh, memory_order_acq_rel,
						    memory_order_acquire))
		c = fresh;
	else
		munmap(fresh, FD_CHUNK * sizeof(*fresh)); /* another thread's chunk won */
	return &c[fd & (FD_CHUNK - 1)];
}

/* vfork: the pid of the process whose thread called vfork, on that thread,
 * until the thread next changes the registry as the parent. */
static __thread pid_t vfork_parent __attribute__((tls_model("initial-exec")));

/* True in a vfork child: it runs on its parent's memory, and every change it
 * made here would be the parent's. getpid() is a real system call (glibc
 * caches no pid), made only after this thread has called vfork. */
static bool in_vfork_child(void)
{
	pid_t self;

	if (vfork_parent == 0)
		return false;
	self = getpid();
	if (self == vfork_parent) {
		vfork_parent = 0; /* the parent again: its child has exec'd or exited */
		return false;
	}
	return true;
}

void fs_fdreg_vfork_enter(void)
{
	/* A vfork from a vfork child: the memory is still the first parent's. */
	if (!in_vfork_child())
		vfork_parent = getpid();
}

void fs_fdreg_forked_child(void)
{
	vfork_parent = 0;
}

static void put(int fd, enum fs_fd_kind kind, bool embedded)
{
	struct slot *s;
	struct stat st;
	uint64_t old;

	if (fd < 0 || in_vfork_child())
		return;
	s = slot_of(fd, true);
	if (s == NULL) {
		fs_log(FS_WARN, "fd %d opened by gRPC is not tracked (%s)", fd,
		       (unsigned)fd >= FD_LIMIT ? "number too high" : "out of memory");
		return;
	}
	if (fstat(fd, &st) != 0)
		st.st_dev = st.st_ino = 0;
	atomic_store_explicit(&s->dev, st.st_dev, memory_order_relaxed);
	atomic_store_explicit(&s->ino, st.st_ino, memory_order_relaxed);
	/* Sockets have inodes of their own: two more system calls only for the
	 * few epoll sets, eventfds and pipes gRPC makes. */
	atomic_store_explicit(&s->anon, kind == FS_FD_SOCKET ? 0 : fs_fdident_anon(fd), memory_order_relaxed);
	old = atomic_load_explicit(&s->word, memory_order_relaxed);
	/* A live entry still here was closed behind the shim's back and reused. */
	while (!atomic_compare_exchange_weak_explicit(
		&s->word, &old, (W_SEQ(old) + W_SEQ_ONE) | (uint64_t)embedded << 4 | (uint64_t)kind << 2 | ST_LIVE,
		memory_order_release, memory_order_relaxed))
		;
	if (W_STATE(old) == ST_FREE)
		atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
}

/* Frees the entry if it still is what was read as `w`. */
static bool forget(struct slot *s, uint64_t w)
{
	if (W_STATE(w) == ST_FREE || in_vfork_child())
		return false;
	if (!atomic_compare_exchange_strong_explicit(&s->word, &w, W_SEQ(w) | ST_FREE, memory_order_acq_rel,
						     memory_order_relaxed))
		return false;
	atomic_fetch_sub_explicit(&count, 1, memory_order_relaxed);
	return true;
}

/* Puts back an entry forgotten for a call that then failed, unless the
 * number was registered again meanwhile. */
static void restore(struct slot *s, uint64_t w)
{
	uint64_t now = W_SEQ(w) | ST_FREE;

	if (atomic_compare_exchange_strong_explicit(&s->word, &now, w, memory_order_acq_rel, memory_order_relaxed))
		atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
}

static uint64_t word_of(int fd, struct slot **s)
{
	*s = slot_of(fd, false);
	return *s != NULL ? atomic_load_explicit(&(*s)->word, memory_order_acquire) : 0;
}

/* Records of creations in flight; the fork path reads them. */
enum { CR_FREE, CR_CLAIMED, CR_CREATING, CR_CREATED };
#define NCREATING 64

struct fs_fd_creating {
	_Atomic int state;
	pthread_t owner;
	bool blocking;
	bool embedded;
	enum fs_fd_kind kind;
	int n;
	int fds[2];
};

static struct fs_fd_creating creating[NCREATING];

struct fs_fd_creating *fs_fdreg_begin_add(enum fs_fd_kind kind, bool embedded, bool blocking)
{
	if (in_vfork_child())
		return NULL;
	for (int i = 0; i < NCREATING; i++) {
		struct fs_fd_creating *c = &creating[i];
		int expect = CR_FREE;

		if (atomic_load_explicit(&c->state, memory_order_relaxed) != CR_FREE ||
		    !atomic_compare_exchange_strong_explicit(&c->state, &expect, CR_CLAIMED, memory_order_acquire,
							     memory_order_relaxed))
			continue;
		c->owner = pthread_self();
		c->blocking = blocking;
		c->embedded = embedded;
		c->kind = kind;
		c->n = 0;
		atomic_store_explicit(&c->state, CR_CREATING, memory_order_release);
		return c;
	}
	return NULL; /* 64 creations at once: registered after the call, as a plain adopt */
}

void fs_fdreg_end_add(struct fs_fd_creating *c, const int *fds, int n, enum fs_fd_kind kind, bool embedded)
{
	if (c != NULL && fds != NULL) {
		c->fds[0] = fds[0];
		c->fds[1] = n > 1 ? fds[1] : -1;
		c->n = n;
		atomic_store_explicit(&c->state, CR_CREATED, memory_order_release);
	}
	for (int i = 0; fds != NULL && i < n; i++)
		put(fds[i], kind, embedded);
	if (c != NULL)
		atomic_store_explicit(&c->state, CR_FREE, memory_order_release);
}

void fs_fdreg_adopt(int fd, enum fs_fd_kind kind, bool embedded)
{
	put(fd, kind, embedded);
}

/* `caller` is looked up only for a placeholder, when `grpc` is not known. */
static int close_entry(int fd, const void *caller, int grpc, int (*real_close)(int))
{
	struct slot *s;
	uint64_t w = word_of(fd, &s);

	if (W_STATE(w) == ST_FREE)
		return real_close(fd);
	if (W_STATE(w) == ST_RESERVED && (grpc >= 0 ? grpc : fs_owner_is_grpc(caller)))
		return 0; /* gRPC closing a number it inherited: keep the dead placeholder there */
	forget(s, w);
	return real_close(fd);
}

int fs_fdreg_close(int fd, const void *caller, int (*real_close)(int))
{
	return close_entry(fd, caller, -1, real_close);
}

int fs_fdreg_close_as(int fd, bool grpc, int (*real_close)(int))
{
	return close_entry(fd, NULL, grpc, real_close);
}

/* Closes [first, last] but the placeholders in it, forgetting what it closes. */
int fs_fdreg_close_range(unsigned first, unsigned last, int flags,
			 int (*real_close_range)(unsigned, unsigned, int))
{
	unsigned from = first, fd = first;

	if ((flags & CLOSE_RANGE_CLOEXEC) || first > last)
		return real_close_range(first, last, flags);
	while (fd <= last && fd < FD_LIMIT) {
		struct slot *s;
		uint64_t w;

		if (slot_of((int)fd, false) == NULL) {
			fd = (fd | (FD_CHUNK - 1)) + 1; /* a chunk never used holds nothing */
			continue;
		}
		w = word_of((int)fd, &s);
		if (W_STATE(w) == ST_LIVE) {
			forget(s, w);
		} else if (W_STATE(w) == ST_RESERVED) {
			if (fd > from && real_close_range(from, fd - 1, flags) != 0)
				return -1;
			from = fd + 1;
		}
		fd++;
	}
	if (from > last)
		return 0; /* the range ended on a placeholder */
	return real_close_range(from, last, flags);
}

int fs_fdreg_dup_onto(int oldfd, int newfd, bool grpc, int (*dup)(int, int, int), int flags)
{
	struct slot *s_new, *s_old;
	uint64_t w_new, w_old;
	int rc;

	if (oldfd == newfd)
		return dup(oldfd, newfd, flags); /* dup2 checks oldfd, dup3 refuses: nothing changes */
	w_old = word_of(oldfd, &s_old);
	/* Forgotten before the number changes hands, as close() does. */
	w_new = word_of(newfd, &s_new);
	if (W_STATE(w_new) != ST_FREE && !forget(s_new, w_new))
		w_new = 0;
	rc = dup(oldfd, newfd, flags);
	if (rc < 0) {
		int err = errno;

		if (W_STATE(w_new) != ST_FREE)
			restore(s_new, w_new);
		errno = err;
		return rc;
	}
	if (grpc && W_STATE(w_old) == ST_LIVE)
		put(newfd, W_KIND(w_old), W_EMBEDDED(w_old));
	return rc;
}

void fs_fdreg_dup_made(int oldfd, int newfd)
{
	struct slot *s;
	uint64_t w = word_of(oldfd, &s);

	if (W_STATE(w) == ST_LIVE)
		put(newfd, W_KIND(w), W_EMBEDDED(w));
}

/* How long a fork waits for other threads' creations to record their result:
 * each is one non-blocking system call, so this is only ever reached by a
 * thread stopped in between (a signal handler that does not return soon). */
#define CREATING_WAIT_NS 5000000L

static long elapsed_ns(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000000000L + (t.tv_nsec - t0->tv_nsec);
}

/* Fork path (parent): no allocation, no lock. */
void fs_fdreg_lock(void)
{
	pthread_t self = pthread_self();
	struct timespec t0;
	bool started = false;

	for (int i = 0; i < NCREATING; i++) {
		struct fs_fd_creating *c = &creating[i];
		int st;

		while ((st = atomic_load_explicit(&c->state, memory_order_acquire)) == CR_CLAIMED ||
		       (st == CR_CREATING && !c->blocking && !pthread_equal(c->owner, self))) {
			if (!started) {
				clock_gettime(CLOCK_MONOTONIC, &t0);
				started = true;
			}
			if (elapsed_ns(&t0) > CREATING_WAIT_NS)
				return; /* the child may keep an unregistered reference (see above) */
			sched_yield();
		}
	}
}

void fs_fdreg_unlock(void)
{
}

/* Fork path (child, one thread): no heap allocation. */
void fs_fdreg_child_reset_lock(void)
{
	vfork_parent = 0;
	for (int i = 0; i < NCREATING; i++) {
		struct fs_fd_creating *c = &creating[i];

		if (atomic_load_explicit(&c->state, memory_order_acquire) == CR_CREATED)
			for (int k = 0; k < c->n; k++)
				put(c->fds[k], c->kind, c->embedded);
		atomic_store_explicit(&c->state, CR_FREE, memory_order_relaxed);
	}
}

/* Makes the dead object that replaces an inherited descriptor of this kind. A
 * never-connected AF_UNIX stream socket: reads and writes fail, poll reports
 * hang-up, and it has no peer that could receive a byte. An empty epoll set for
 * epoll descriptors, so a stale epoll_wait sees no events instead of the
 * parent's. One of each per fork: every placeholder of a kind is a dup3 of it,
 * so all share one open file description. */
static int make_dead(enum fs_fd_kind kind)
{
	if (kind == FS_FD_EPOLL)
		return fs_libc.epoll_create1(EPOLL_CLOEXEC);
	return fs_libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Calls `fn` for every entry not free; stops early when it returns false. */
static void each_entry(bool (*fn)(int fd, struct slot *s, uint64_t w, void *arg), void *arg)
{
	for (unsigned i = 0; i < FD_CHUNKS; i++) {
		struct slot *c = atomic_load_explicit(&chunks[i], memory_order_acquire);

		for (unsigned k = 0; c != NULL && k < FD_CHUNK; k++) {
			uint64_t w = atomic_load_explicit(&c[k].word, memory_order_acquire);

			if (W_STATE(w) != ST_FREE && !fn((int)(i * FD_CHUNK + k), &c[k], w, arg))
				return;
		}
	}
}

struct neutralising {
	bool shared;
	int dead[2]; /* [0] sockets and others, [1] epoll */
	unsigned done;
};

static bool neutralise_one(int fd, struct slot *s, uint64_t w, void *arg)
{
	struct neutralising *n = arg;
	int *d = &n->dead[W_KIND(w) == FS_FD_EPOLL];
	struct stat st;

	if (W_STATE(w) == ST_RESERVED)
		return true; /* already a dead placeholder, from an ancestor */
	if (!W_EMBEDDED(w) && !n->shared)
		return true;
	/* Closed or replaced without the shim seeing it (a raw system call): not
	 * gRPC's any more. The inode tells sockets and pipes apart; epoll sets
	 * and eventfds share one anonymous inode, so for them the type must match
	 * too. An epoll set replaced by another epoll set, or an eventfd by
	 * another eventfd, cannot be told: the hooks on every libc call that
	 * closes or replaces a number keep those entries true. */
	if (fstat(fd, &st) != 0 || st.st_dev != atomic_load_explicit(&s->dev, memory_order_relaxed) ||
	    st.st_ino != atomic_load_explicit(&s->ino, memory_order_relaxed) ||
	    (atomic_load_explicit(&s->anon, memory_order_relaxed) != 0 &&
	     fs_fdident_anon(fd) != atomic_load_explicit(&s->anon, memory_order_relaxed))) {
		forget(s, w);
		return true;
	}
	if (*d < 0 && (*d = make_dead(W_KIND(w))) < 0) {
		fs_log(FS_ERROR, "cannot make a placeholder for inherited gRPC fd %d: errno %d", fd, errno);
		return true;
	}
	if (fs_libc.dup3(*d, fd, O_CLOEXEC) < 0) {
		fs_log(FS_ERROR, "cannot neutralise inherited gRPC fd %d: errno %d", fd, errno);
		return true;
	}
	if (fstat(fd, &st) == 0) {
		atomic_store_explicit(&s->dev, st.st_dev, memory_order_relaxed);
		atomic_store_explicit(&s->ino, st.st_ino, memory_order_relaxed);
	}
	atomic_store_explicit(&s->anon, 0, memory_order_relaxed); /* a placeholder is never checked again */
	atomic_store_explicit(&s->word, (w & ~(uint64_t)3) | ST_RESERVED, memory_order_release);
	n->done++;
	return true;
}

/* Fork path (child): no allocation; system calls only. */
unsigned fs_fdreg_neutralise_locked(bool shared)
{
	struct neutralising n = { shared, { -1, -1 }, 0 };

	each_entry(neutralise_one, &n);
	for (int i = 0; i < 2; i++)
		if (n.dead[i] >= 0)
			fs_libc.close(n.dead[i]);
	return n.done;
}

struct live_count {
	size_t all, embedded;
};

static bool count_live(int fd, struct slot *s, uint64_t w, void *arg)
{
	struct live_count *c = arg;

	if (W_STATE(w) == ST_LIVE) {
		c->all++;
		c->embedded += W_EMBEDDED(w);
	}
	return true;
}

size_t fs_fdreg_live_locked(size_t *embedded)
{
	struct live_count c = { 0, 0 };

	each_entry(count_live, &c);
	*embedded = c.embedded;
	return c.all;
}

struct socket_count {
	bool embedded;
	size_t n;
};

static bool count_socket(int fd, struct slot *s, uint64_t w, void *arg)
{
	struct socket_count *c = arg;

	c->n += W_STATE(w) == ST_LIVE && W_KIND(w) == FS_FD_SOCKET && W_EMBEDDED(w) == c->embedded;
	return true;
}

size_t fs_fdreg_live_sockets_locked(bool embedded)
{
	struct socket_count c = { embedded, 0 };

	each_entry(count_socket, &c);
	return c.n;
}

struct listing {
	enum fs_fd_kind kind;
	bool embedded;
	int *fds;
	uint64_t *tokens;
	size_t max, n;
};

static bool list_one(int fd, struct slot *s, uint64_t w, void *arg)
{
	struct listing *l = arg;

	if (W_STATE(w) == ST_LIVE && W_KIND(w) == l->kind && W_EMBEDDED(w) == l->embedded) {
		l->fds[l->n] = fd;
		l->tokens[l->n++] = w;
	}
	return l->n < l->max;
}

size_t fs_fdreg_list_locked(enum fs_fd_kind kind, bool embedded, int *fds, uint64_t *tokens, size_t max)
{
	struct listing l = { kind, embedded, fds, tokens, max, 0 };

	if (max > 0)
		each_entry(list_one, &l);
	return l.n;
}

uint64_t fs_fdreg_token(int fd)
{
	struct slot *s;
	uint64_t w = word_of(fd, &s);

	return W_STATE(w) == ST_FREE ? 0 : w;
}

size_t fs_fdreg_count(void)
{
	return atomic_load(&count);
}

bool fs_fdreg_is_reserved(int fd)
{
	struct slot *s;

	return W_STATE(word_of(fd, &s)) == ST_RESERVED;
}

bool fs_fdreg_contains(int fd)
{
	struct slot *s;

	return W_STATE(word_of(fd, &s)) != ST_FREE;
}
