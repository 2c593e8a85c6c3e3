#include "fdreg.h"

#include <bsd/sys/queue.h>
#include "rbtree.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "libc.h"
#include "log.h"
#include "owner.h"

struct fd_entry {
	RB_ENTRY(fd_entry) by_fd;
	SLIST_ENTRY(fd_entry) spare_link;
	int fd;
	enum fs_fd_kind kind;
	dev_t dev; /* what the number referred to when registered: a later */
	ino_t ino; /* fstat tells whether it still does */
	bool reserved; /* neutralised in this process (or an ancestor) */
	bool embedded; /* opened by gRPC compiled into another object */
};

static int entry_cmp(const struct fd_entry *a, const struct fd_entry *b)
{
	return (a->fd > b->fd) - (a->fd < b->fd);
}

RB_HEAD(fd_tree, fd_entry);
FS_RB_GENERATE_STATIC(fd_tree, fd_entry, by_fd, entry_cmp)

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct fd_tree tree = RB_INITIALIZER(&tree);
/* Entries taken out on the fork path wait here instead of being freed there. */
static SLIST_HEAD(, fd_entry) spares = SLIST_HEAD_INITIALIZER(spares);
/* Lets close() skip the lock entirely in a process where gRPC holds no fd. */
static atomic_size_t count;

static struct fd_entry *find(int fd)
{
	struct fd_entry key = { .fd = fd };

	return RB_FIND(fd_tree, &tree, &key);
}

static void forget(struct fd_entry *e)
{
	RB_REMOVE(fd_tree, &tree, e);
	atomic_fetch_sub(&count, 1);
	SLIST_INSERT_HEAD(&spares, e, spare_link);
}

static void put(struct fd_entry *e, int fd, enum fs_fd_kind kind, bool embedded)
{
	struct stat st;
	struct fd_entry *old = find(fd);

	/* The number was closed behind the shim's back (close_range, dup2) and reused. */
	if (old != NULL)
		forget(old);
	e->fd = fd;
	e->kind = kind;
	e->reserved = false;
	e->embedded = embedded;
	e->dev = 0;
	e->ino = 0;
	if (fstat(fd, &st) == 0) {
		e->dev = st.st_dev;
		e->ino = st.st_ino;
	}
	RB_INSERT(fd_tree, &tree, e);
	atomic_fetch_add(&count, 1);
}

void *fs_fdreg_begin_add(void)
{
	struct fd_entry *e;

	pthread_mutex_lock(&lock);
	e = SLIST_FIRST(&spares);
	if (e != NULL) {
		SLIST_REMOVE_HEAD(&spares, spare_link);
		return e;
	}
	/* Allocating under the lock is fine here: this is not the fork path, and
	 * malloc never calls back into the shim. */
	return calloc(1, sizeof(*e));
}

void fs_fdreg_end_add(void *spare, int fd, enum fs_fd_kind kind, bool embedded)
{
	struct fd_entry *e = spare;

	if (e != NULL && fd >= 0) {
		put(e, fd, kind, embedded);
		e = NULL;
	} else if (fd >= 0) {
		fs_log(FS_WARN, "out of memory: fd %d opened by gRPC is not tracked", fd);
	}
	if (e != NULL)
		SLIST_INSERT_HEAD(&spares, e, spare_link);
	pthread_mutex_unlock(&lock);
}

void fs_fdreg_adopt(int fd, enum fs_fd_kind kind, bool embedded)
{
	fs_fdreg_end_add(fs_fdreg_begin_add(), fd, kind, embedded);
}

int fs_fdreg_close(int fd, const void *caller, int (*real_close)(int))
{
	struct fd_entry *e;
	int rc;

	if (atomic_load_explicit(&count, memory_order_relaxed) == 0)
		return real_close(fd);
	pthread_mutex_lock(&lock);
	e = find(fd);
	if (e == NULL) {
		pthread_mutex_unlock(&lock);
		return real_close(fd);
	}
	if (e->reserved && fs_owner_is_grpc(caller)) {
		/* gRPC closing a number it inherited: keep the dead placeholder there. */
		pthread_mutex_unlock(&lock);
		return 0;
	}
	/* Forgotten and closed under the lock: a fork cannot see one without the other. */
	forget(e);
	rc = real_close(fd);
	pthread_mutex_unlock(&lock);
	return rc;
}

void fs_fdreg_lock(void)
{
	pthread_mutex_lock(&lock);
}

void fs_fdreg_unlock(void)
{
	pthread_mutex_unlock(&lock);
}

/* The forking thread held the lock; in the child it is re-made, never unlocked
 * on behalf of a thread that is not there. */
void fs_fdreg_child_reset_lock(void)
{
	pthread_mutex_init(&lock, NULL);
	pthread_mutex_lock(&lock);
}

/* Makes the dead object that replaces an inherited descriptor of this kind. A
 * never-connected AF_UNIX stream socket: reads and writes fail, poll reports
 * hang-up, and it has no peer that could receive a byte. An empty epoll set for
 * epoll descriptors, so a stale epoll_wait sees no events instead of the
 * parent's. */
static int make_dead(enum fs_fd_kind kind)
{
	if (kind == FS_FD_EPOLL)
		return fs_libc.epoll_create1(EPOLL_CLOEXEC);
	return fs_libc.socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
}

/* Fork path (child): no allocation; system calls only. */
unsigned fs_fdreg_neutralise_locked(bool shared)
{
	int dead[2] = { -1, -1 }; /* [0] sockets and others, [1] epoll */
	struct fd_entry *e, *next;
	unsigned done = 0;
	struct stat st;

	RB_FOREACH_SAFE(e, fd_tree, &tree, next) {
		int *d = &dead[e->kind == FS_FD_EPOLL];

		if (e->reserved)
			continue; /* already a dead placeholder, from an ancestor */
		if (!e->embedded && !shared)
			continue;
		if (fstat(e->fd, &st) != 0 || st.st_dev != e->dev || st.st_ino != e->ino) {
			/* Closed or replaced without the shim seeing it: not gRPC's any more. */
			forget(e);
			continue;
		}
		if (*d < 0 && (*d = make_dead(e->kind)) < 0) {
			fs_log(FS_ERROR, "cannot make a placeholder for inherited gRPC fd %d: errno %d", e->fd,
			       errno);
			continue;
		}
		if (dup3(*d, e->fd, O_CLOEXEC) < 0) {
			fs_log(FS_ERROR, "cannot neutralise inherited gRPC fd %d: errno %d", e->fd, errno);
			continue;
		}
		if (fstat(e->fd, &st) == 0) {
			e->dev = st.st_dev;
			e->ino = st.st_ino;
		}
		e->reserved = true;
		done++;
	}
	for (int i = 0; i < 2; i++)
		if (dead[i] >= 0)
			fs_libc.close(dead[i]);
	return done;
}

size_t fs_fdreg_live_locked(size_t *embedded)
{
	struct fd_entry *e;
	size_t n = 0;

	*embedded = 0;
	RB_FOREACH(e, fd_tree, &tree) {
		n += !e->reserved;
		*embedded += !e->reserved && e->embedded;
	}
	return n;
}

size_t fs_fdreg_live_sockets_locked(bool embedded)
{
	struct fd_entry *e;
	size_t n = 0;

	RB_FOREACH(e, fd_tree, &tree)
		n += !e->reserved && e->embedded == embedded && e->kind == FS_FD_SOCKET;
	return n;
}

size_t fs_fdreg_count(void)
{
	return atomic_load(&count);
}

bool fs_fdreg_is_reserved(int fd)
{
	struct fd_entry *e;
	bool r;

	pthread_mutex_lock(&lock);
	e = find(fd);
	r = e != NULL && e->reserved;
	pthread_mutex_unlock(&lock);
	return r;
}

bool fs_fdreg_contains(int fd)
{
	bool r;

	pthread_mutex_lock(&lock);
	r = find(fd) != NULL;
	pthread_mutex_unlock(&lock);
	return r;
}
