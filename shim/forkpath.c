/*
 * The fork path, step by step:
 *   prepare  1. take the fork lock: one fork at a time through the shim
 *            2. stop the EventEngine's threads (forkables.c)
 *            3. core's grpc_prefork (may run gRPC code that calls the hooks)
 *            4. take the forkable registry, channel table and live-call locks;
 *               wait for descriptor creations in flight (fdreg.c: no lock)
 *   parent   release 4, core's postfork_parent, restart 2, release 1
 *   child    re-make every lock, count the generation, neutralise inherited
 *            gRPC fds, then core's postfork_child, restart 2
 * That is also the one lock order (locks.h): fork lock, quiesce lock (not
 * held while gRPC's own handlers run), forkables, channel table, live calls.
 * The shim never holds its table locks while it calls into gRPC, so core's
 * prefork cannot end up waiting on one of them.
 *
 * fork() is async-signal-safe, so a signal handler may fork whatever its
 * thread was in the middle of:
 *   - one of those locked sections, or this fork path itself (locks.h): the
 *     fork takes no lock at all, since each may be this very thread's, and
 *     runs nothing of gRPC's;
 *   - gRPC itself (execctx.h): the fork takes the shim's locks but runs none
 *     of gRPC's code, which may wait for a lock of gRPC's that the thread
 *     holds (and core's prefork would refuse anyway).
 * Either way the parent stays exactly as it was; the child's inherited gRPC
 * fds are neutralised as in any child, and gRPC cannot be used there, as
 * past the quiesce bound.
 *
 * Nothing here allocates: the parent's step only unlocks, and the child's works
 * on memory that already exists (entries are re-marked, never created).
 */
#include "forkpath.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "audit.h"
#include "calls.h"
#include "chantab.h"
#include "execctx.h"
#include "config.h"
#include "embedded_fork.h"
#include "fdreg.h"
#include "cqtwin.h"
#include "credrec.h"
#include "forkables.h"
#include "fresh.h"
#include "grpclib.h"
#include "locks.h"
#include "log.h"
#include "quiesce.h"
#include "stats.h"
#include "threads.h"

unsigned fs_generation;
const char *fs_grpc_unusable;
__thread unsigned fs_locks_held __attribute__((tls_model("initial-exec")));

static pthread_mutex_t fork_lock = PTHREAD_MUTEX_INITIALIZER;

enum core_outcome {
	CORE_NOT_IN_USE, /* gRPC not loaded, not initialised, or passed through */
	CORE_RAN,
	CORE_SKIPPED_BUSY,
	CORE_THREADS_BUSY, /* core ran, but not all of gRPC's own threads were parked */
	CORE_DISABLED,
	CORE_NO_POLLER_SUPPORT,
	CORE_FORKER_INSIDE, /* not run: the forking thread itself was inside gRPC */
	CORE_FRESH,         /* not needed: the child gets a fresh gRPC (fresh.c) */
	CORE_FRESH_FAILED,  /* not run: no fresh gRPC could be had, and core's fork support is off */
};

/* One fork in flight per thread; what the parent's log line needs. */
struct fork_record {
	bool active;
	bool acts; /* not just auditing */
	bool in_fork_hook;
	bool log_pending;
	enum core_outcome core;
	size_t channels;
	size_t grpc_fds;
	size_t embedded_fds; /* of those, opened by gRPC compiled into an object */
	size_t calls;
	unsigned generation;
	int core_block; /* -1 not called, 0 refused, 1 blocked */
	/* gRPC compiled into grpcio: what its core's prepare handler did
	 * (embedded_fork.c); it runs before the shim's own. */
	struct fs_embedded_core_outcome embedded_core;
	struct fs_audit_fork audit; /* mode audit: what else the child inherits */
};

static __thread struct fork_record rec __attribute__((tls_model("initial-exec")));

/* Forks (and fork()'s hooks) started on this thread while it was inside the
 * shim's locked sections or its fork path: a signal handler's. They finish
 * before the code they interrupted goes on, and leave `rec` to it. */
static __thread unsigned nested_forks __attribute__((tls_model("initial-exec")));
static __thread unsigned nested_hooks __attribute__((tls_model("initial-exec")));

bool fs_forkpath_active(void)
{
	return fs_cfg.mode != FS_MODE_OFF && fs_grpc_state() != FS_GRPC_PASSTHROUGH;
}

bool fs_forkpath_grpc_in_use(void)
{
	return fs_grpc_state() == FS_GRPC_ACTIVE && FS_IN_GRPC(fs_grpc.is_initialized());
}

void fs_fork_note_core_block(bool blocked)
{
	rec.core_block = blocked;
	/* Only once core has blocked entries (counting this thread's own, which it
	 * requires) may the threads it is about to wait for be let through. */
	if (blocked)
		fs_execctx_prefork_running(true);
}

static enum core_outcome core_prefork(void);

static long ms_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) * 1000 + (now.tv_nsec - start->tv_nsec) / 1000000;
}

/* Brings the other threads out of gRPC (quiesce.c), then runs core's prefork,
 * again while a thread is only briefly inside gRPC (starting a call, say),
 * until the bound. Returns core's outcome. */
static enum core_outcome quiesce_and_prefork(void)
{
	struct timespec start, deadline;
	const struct timespec pause = { 0, 1000000 };
	enum core_outcome core;
	unsigned inside;
	long waited;

	clock_gettime(CLOCK_MONOTONIC, &start);
	deadline = start;
	deadline.tv_sec += fs_cfg.quiesce_ms / 1000;
	deadline.tv_nsec += (fs_cfg.quiesce_ms % 1000) * 1000000;
	if (deadline.tv_nsec >= 1000000000) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000;
	}
	inside = fs_quiesce_begin(&deadline);
	fs_forkables_prepare();
	while ((core = core_prefork()) == CORE_SKIPPED_BUSY && ms_since(&start) < fs_cfg.quiesce_ms) {
		/* A call made just before the fork asked may now be waiting in
		 * pluck() for a thread the fork parked: let those go back in. */
		if ((inside = fs_quiesce_again()) > 0)
			break;
		nanosleep(&pause, NULL);
	}
	waited = ms_since(&start);
	if (waited > 0)
		fs_quiesce_note_wait((unsigned long)waited);
	if (inside > 0)
		fs_log(FS_WARN,
		       "quiesce: gave up after %ld ms (GRPC_FORKSAFE_QUIESCE_MS=%ld) with %u threads still waiting "
		       "in gRPC: the child's gRPC calls will fail at once; the parent is unaffected",
		       waited, fs_cfg.quiesce_ms, inside);
	else if (core == CORE_THREADS_BUSY)
		fs_log(FS_WARN,
		       "quiesce: gave up after %ld ms (GRPC_FORKSAFE_QUIESCE_MS=%ld) with gRPC's own threads (a "
		       "server's or the callback API's) still busy: the child's gRPC calls will fail at once; the "
		       "parent is unaffected",
		       waited, fs_cfg.quiesce_ms);
	else if (core == CORE_SKIPPED_BUSY)
		fs_log(FS_WARN,
		       "quiesce: gave up after %ld ms (GRPC_FORKSAFE_QUIESCE_MS=%ld): a thread stayed busy inside "
		       "gRPC: the child's gRPC calls will fail at once; the parent is unaffected",
		       waited, fs_cfg.quiesce_ms);
	return core;
}

static enum core_outcome core_prefork(void)
{
	if (fs_grpc_state() != FS_GRPC_ACTIVE || !fs_grpc.is_initialized())
		return CORE_NOT_IN_USE;
	rec.core_block = -1;
	fs_grpc.prefork();
	fs_execctx_prefork_running(false); /* set by fs_fork_note_core_block */
	if (rec.core_block == 1)
		return fs_threads_take_gave_up() ? CORE_THREADS_BUSY : CORE_RAN;
	if (rec.core_block == 0)
		return CORE_SKIPPED_BUSY;
	if (fs_grpc.fork_support_enabled != NULL && !atomic_load((const _Atomic bool *)fs_grpc.fork_support_enabled))
		return CORE_DISABLED;
	return CORE_NO_POLLER_SUPPORT;
}

static const char *core_words(enum core_outcome c)
{
	switch (c) {
	case CORE_RAN:
		return "core fork handlers ran";
	case CORE_SKIPPED_BUSY:
		return "core fork handlers SKIPPED: another thread was inside gRPC; the child's gRPC calls fail at once";
	case CORE_THREADS_BUSY:
		return "core fork handlers ran without waiting for gRPC's own busy threads; the child's gRPC calls "
		       "fail at once";
	case CORE_DISABLED:
		return "core fork handlers SKIPPED: fork support is off (GRPC_ENABLE_FORK_SUPPORT); the child "
		       "cannot use gRPC";
	case CORE_NO_POLLER_SUPPORT:
		return "core fork handlers SKIPPED: the polling engine does not support fork (use epoll1 or "
		       "poll); the child cannot use gRPC";
	case CORE_FORKER_INSIDE:
		return "core fork handlers SKIPPED: the forking thread was inside gRPC (a signal handler's fork, or "
		       "one from a callback); the child's gRPC calls fail at once";
	case CORE_FRESH:
		return "gRPC not touched: the child gets a fresh gRPC of its own on its first gRPC call";
	case CORE_FRESH_FAILED:
		return "no fresh gRPC could be prepared for the child (see the warning above); the child's gRPC "
		       "calls fail at once";
	case CORE_NOT_IN_USE:
		break;
	}
	if (rec.embedded_fds > 0) {
		switch (rec.embedded_core.what) {
		case FS_EMBEDDED_CORE_RAN:
			return "gRPC compiled into the program: inherited descriptors guarded, its core's fork handlers ran";
		case FS_EMBEDDED_CORE_SKIPPED:
			return "gRPC compiled into the program: inherited descriptors guarded; its core's fork handlers "
			       "SKIPPED: a thread stayed inside gRPC; the child cannot use gRPC";
		default:
			return "gRPC compiled into the program: inherited descriptors guarded, its own fork handling left "
			       "to it";
		}
	}
	return "gRPC not initialised";
}

/* How many tries core's prepare handler inside grpcio took, when more than one. */
static void log_embedded_retries(void)
{
	const struct fs_embedded_core_outcome *o = &rec.embedded_core;

	if (o->what != FS_EMBEDDED_CORE_UNKNOWN && o->attempts > 1)
		fs_log(o->what == FS_EMBEDDED_CORE_SKIPPED ? FS_WARN : FS_INFO,
		       "fork: core's fork handlers inside grpcio: %u tries in %ld ms (another thread was inside "
		       "gRPC)%s",
		       o->attempts, o->waited_ms,
		       o->what == FS_EMBEDDED_CORE_SKIPPED ? "; gave up (GRPC_FORKSAFE_QUIESCE_MS)" : "");
}

/* warn when core could not prepare; info for a fork of a gRPC process; debug
 * for a process that does not use gRPC (a shell, say, under the wrapper). */
static enum fs_level fork_level(void)
{
	if ((rec.core != CORE_RAN && rec.core != CORE_NOT_IN_USE && rec.core != CORE_FRESH) ||
	    rec.embedded_core.what == FS_EMBEDDED_CORE_SKIPPED)
		return FS_WARN;
	return rec.core == CORE_NOT_IN_USE && rec.channels == 0 && rec.grpc_fds == 0 ? FS_DEBUG : FS_INFO;
}

static void log_parent(pid_t child)
{
	enum fs_level level = fork_level();
	char who[48];

	if (rec.acts)
		log_embedded_retries();
	if (!rec.acts)
		level = FS_WARN; /* audit: only forks that carry gRPC state across get a line */
	if ((int)level > fs_log_level)
		return; /* nothing formatted for a line nobody sees */
	if (child > 0)
		snprintf(who, sizeof(who), "%d", (int)child);
	else
		snprintf(who, sizeof(who), "? (forked inside libc)");
	if (!rec.acts)
		fs_audit_log_fork(who, rec.channels, rec.calls, &rec.audit);
	else
		fs_log(level, "fork: child %s is generation %u; %zu channels, %zu gRPC fds; %s", who,
		       rec.generation + 1, rec.channels, rec.grpc_fds, core_words(rec.core));
}

static void log_nested(const char *who)
{
	fs_log(FS_INFO, "fork: child %s forked by a signal handler that interrupted grpc-forksafe's locked code on "
			"this thread: no lock taken, gRPC left as it was; gRPC cannot be used in that child",
	       who);
}

void fs_fork_prepare(void)
{
	bool fresh;

	/* Inside the shim's locked code or fork path: a signal handler's fork. */
	if (fs_locks_held != 0 || nested_hooks > 0) {
		nested_forks++;
		if (fs_forkpath_active())
			fs_fdreg_lock(); /* no lock: a bounded wait for other threads' creations */
		return;
	}
	rec.active = fs_forkpath_active();
	rec.log_pending = false;
	rec.embedded_core = fs_embedded_core_take();
	if (!rec.active)
		return;
	fs_lock_mark(FS_LOCK_FORK); /* until this fork's parent or child step ends */
	rec.acts = fs_mode_acts(fs_cfg.mode);
	rec.core = CORE_NOT_IN_USE;
	/* Before any lock: the first fork of a generation loads the children's
	 * fresh gRPC here (fresh.c), the one step of a fork that may take
	 * milliseconds and allocate. Later forks find it done. */
	fresh = rec.acts && fs_cfg.child_grpc == FS_CHILD_FRESH;
	if (fresh && fs_grpc_state() == FS_GRPC_ACTIVE && fs_fresh_wanted())
		rec.core = fs_fresh_prepare() ? CORE_FRESH : CORE_FRESH_FAILED;
	pthread_mutex_lock(&fork_lock);
	/* gRPC code the thread is in the middle of may hold any of gRPC's locks,
	 * and core's prefork would refuse anyway: gRPC is not touched. With a
	 * fresh gRPC for the child, nothing of gRPC runs at all: whatever its
	 * threads are doing cannot matter to the child. */
	if (fresh)
		; /* CORE_FRESH, CORE_FRESH_FAILED, or gRPC not in use: nothing to prepare */
	else if (rec.acts && fs_grpc_inside())
		rec.core = CORE_FORKER_INSIDE;
	else if (rec.acts)
		rec.core = quiesce_and_prefork();
	else
		fs_audit_fork_prepare(&rec.audit);
	fs_forkables_lock();
	fs_chantab_lock();
	fs_calls_lock();
	fs_credrec_lock();
	fs_cqtwin_lock();
	fs_fdreg_lock();
	rec.channels = fs_chantab_count_locked();
	rec.calls = fs_calls_count_locked();
	rec.grpc_fds = fs_fdreg_live_locked(&rec.embedded_fds);
	if (!rec.acts) {
		rec.audit.embedded_fds = rec.embedded_fds;
		fs_audit_fork_locked(&rec.audit);
	}
	rec.generation = fs_generation;
}

void fs_fork_parent(void)
{
	if (nested_forks > 0) {
		nested_forks--;
		if (fs_forkpath_active()) {
			fs_stat_add(forks, 1);
			if (nested_hooks == 0)
				log_nested("? (forked inside libc)"); /* else fork()'s hook logs it */
		}
		return;
	}
	if (!rec.active)
		return;
	fs_fdreg_unlock();
	fs_cqtwin_unlock();
	fs_credrec_unlock();
	fs_calls_unlock();
	fs_chantab_unlock();
	fs_forkables_unlock();
	if (rec.core == CORE_RAN || rec.core == CORE_SKIPPED_BUSY || rec.core == CORE_THREADS_BUSY ||
	    rec.core == CORE_DISABLED || rec.core == CORE_NO_POLLER_SUPPORT)
		fs_grpc.postfork_parent();
	if (rec.acts && rec.core != CORE_FORKER_INSIDE && rec.core != CORE_FRESH && rec.core != CORE_FRESH_FAILED) {
		fs_forkables_parent();
		fs_quiesce_end_parent();
	}
	pthread_mutex_unlock(&fork_lock);
	fs_fresh_parent();
	fs_stat_add(forks, 1);
	if (rec.in_fork_hook)
		rec.log_pending = true; /* fork()'s hook logs it, with the pid */
	else
		log_parent(0);
	fs_lock_unmark(FS_LOCK_FORK);
}

/* Made anew in a child: the thread that held it does not exist there. */
static void remake_lock(void (*reset)(void), void (*unlock)(void))
{
	reset();
	unlock();
}

/* The child of a nested fork. Its one thread is in a signal handler, which
 * should _exit or exec; if it returns, the thread resumes what the signal
 * interrupted and releases the locks it holds itself. Those it does not hold
 * belonged to threads that are gone: made anew (what such a thread was
 * changing may be left half-changed). gRPC was not prepared for this fork, so
 * it cannot be used here; the descriptor guard works as in every child. */
static void nested_child(void)
{
	unsigned held = fs_locks_held, neutralised = 0;
	bool acts = fs_mode_acts(fs_cfg.mode), grpc_running;
	size_t embedded;

	if (!fs_forkpath_active())
		return;
	if (!(held & FS_LOCK_BIT(FS_LOCK_FORK)))
		pthread_mutex_init(&fork_lock, NULL);
	if (!(held & FS_LOCK_BIT(FS_LOCK_FORKABLES)))
		remake_lock(fs_forkables_child_reset_lock, fs_forkables_unlock);
	if (!(held & FS_LOCK_BIT(FS_LOCK_CHANTAB)))
		remake_lock(fs_chantab_child_reset_lock, fs_chantab_unlock);
	if (!(held & FS_LOCK_BIT(FS_LOCK_CALLS)))
		remake_lock(fs_calls_child_reset_lock, fs_calls_unlock);
	if (!(held & FS_LOCK_BIT(FS_LOCK_CREDREC)))
		remake_lock(fs_credrec_child_reset_lock, fs_credrec_unlock);
	if (!(held & FS_LOCK_BIT(FS_LOCK_CQTWIN)))
		remake_lock(fs_cqtwin_child_reset_lock, fs_cqtwin_unlock);
	/* With no fork of this thread's under way, what the other threads were
	 * waiting for ended with them. */
	if (!(held & (FS_LOCK_BIT(FS_LOCK_FORK) | FS_LOCK_BIT(FS_LOCK_QUIESCE)))) {
		if (acts)
			fs_quiesce_end_child();
		fs_execctx_child();
		fs_threads_child();
	}
	fs_stats_child();
	fs_generation++;
	fs_fdreg_child_reset_lock();
	/* gRPC is running when its shared libraries hold descriptors (its
	 * poller's, from grpc_init to grpc_shutdown): asking core would take
	 * core's lock, which this thread may hold. */
	grpc_running = fs_fdreg_live_locked(&embedded) > embedded;
	if (acts)
		neutralised = fs_fdreg_neutralise_locked(fs_grpc_state() == FS_GRPC_ACTIVE);
	fs_fdreg_unlock();
	fs_stat_add(neutralised, neutralised);
	if (acts && fs_grpc_state() == FS_GRPC_ACTIVE && grpc_running) {
		fs_grpc_unusable = "a signal handler forked it while its thread was inside grpc-forksafe's locked "
				   "code, so the fork went ahead without gRPC's fork handlers";
		fs_chantab_child_grpc_unusable();
	}
	fs_log(FS_INFO, "child: forked by a signal handler that interrupted grpc-forksafe's locked code: generation "
			"%u, %u inherited gRPC fds neutralised; gRPC %s",
	       fs_generation, neutralised, fs_grpc_unusable != NULL ? "cannot be used here" : "was not running");
}

static void fork_child_steps(bool restart_grpc)
{
	unsigned neutralised = 0;

	rec.in_fork_hook = false;
	if (!rec.active)
		return;
	/* The forking thread holds them all; re-made, never unlocked on behalf of
	 * a thread that does not exist here. */
	pthread_mutex_init(&fork_lock, NULL);
	fs_forkables_child_reset_lock();
	fs_chantab_child_reset_lock();
	fs_calls_child_reset_lock();
	fs_credrec_child_reset_lock();
	fs_cqtwin_child_reset_lock();
	fs_fdreg_child_reset_lock();
	if (rec.acts)
		fs_quiesce_end_child();
	fs_execctx_child();
	fs_threads_child();
	fs_stats_child();
	fs_generation++;
	/* Before core's own child handler: it closes the descriptors it tracked,
	 * and those closes must find dead placeholders, never the parent's
	 * sockets. The registry keeps the numbers taken (see fs_fdreg_close). */
	if (rec.acts)
		neutralised = fs_fdreg_neutralise_locked(fs_grpc_state() == FS_GRPC_ACTIVE);
	fs_stat_add(neutralised, neutralised);
	fs_fdreg_unlock();
	fs_cqtwin_unlock();
	fs_credrec_unlock();
	fs_calls_unlock();
	fs_chantab_unlock();
	fs_forkables_unlock();
	if (!rec.acts) {
		fs_audit_child(&rec.audit);
		return;
	}
	/* Only where the shim itself gave up (the bound) or cannot restart gRPC:
	 * with fork support off or an unsupported poller, the policy's routing is
	 * kept, as the user chose. */
	if (rec.core != CORE_FRESH || !restart_grpc)
		fs_fresh_parent(); /* what its prepare took, held by this very thread */
	if (rec.core == CORE_FRESH && restart_grpc) {
		fs_fresh_child();
		fs_log(FS_INFO, "child: generation %u, %u inherited gRPC fds neutralised; %s", fs_generation,
		       neutralised, core_words(rec.core));
		return;
	}
	if (rec.core != CORE_NOT_IN_USE && (!restart_grpc || rec.core == CORE_SKIPPED_BUSY ||
					    rec.core == CORE_THREADS_BUSY || rec.core == CORE_FORKER_INSIDE ||
					    rec.core == CORE_FRESH_FAILED || rec.core == CORE_FRESH)) {
		if (!restart_grpc)
			fs_grpc_unusable = "it was made by clone(), which does not prepare a child for threads";
		else if (rec.core == CORE_FRESH_FAILED)
			fs_grpc_unusable = "no private copy of gRPC could be loaded for it (see the parent's warning), "
					   "and the inherited gRPC was not prepared for the fork";
		else if (rec.core == CORE_FORKER_INSIDE)
			fs_grpc_unusable = "the thread that forked it was inside gRPC (a signal handler's fork, or "
					   "one from a callback), so the fork went ahead without gRPC's fork handlers";
		else
			fs_grpc_unusable = "the fork went ahead without gRPC's fork handlers: a thread stayed "
					   "inside gRPC past GRPC_FORKSAFE_QUIESCE_MS";
		fs_chantab_child_grpc_unusable();
	}
	if (!restart_grpc) {
		/* A raw clone() child: libc did not prepare it for threads (its
		 * thread descriptor still names the parent's thread), so gRPC, which
		 * would start threads here, is left stopped. Its descriptors are
		 * neutralised all the same, so the parent is safe. Core's block on
		 * new entries, set by its prefork, would stay for good: every call
		 * would wait there, so entries are let through from now on. */
		if (rec.core == CORE_RAN || rec.core == CORE_THREADS_BUSY)
			fs_execctx_child_unblocked();
		fs_log(FS_INFO, "child (clone): generation %u, %u inherited gRPC fds neutralised; gRPC is not "
				"usable in a clone() child",
		       fs_generation, neutralised);
		return;
	}
	if (rec.core == CORE_RAN || rec.core == CORE_SKIPPED_BUSY || rec.core == CORE_THREADS_BUSY ||
	    rec.core == CORE_DISABLED || rec.core == CORE_NO_POLLER_SUPPORT)
		fs_grpc.postfork_child();
	if (rec.core != CORE_FRESH_FAILED)
		fs_forkables_child(); /* restarts only what prepare stopped */
	fs_log(fork_level(), "child: generation %u, %u inherited gRPC fds neutralised; %s", fs_generation,
	       neutralised, core_words(rec.core));
	if (fs_grpc_unusable != NULL)
		fs_log(FS_WARN, "child: gRPC cannot be used here: calls on every channel, inherited or new, fail at "
				"once with UNAVAILABLE");
}

static void fork_child(bool restart_grpc)
{
	if (nested_forks > 0) {
		nested_forks--;
		nested_child();
		return;
	}
	fork_child_steps(restart_grpc);
	fs_lock_unmark(FS_LOCK_FORK);
}

void fs_fork_child(void)
{
	fork_child(true);
}

void fs_fork_child_of_clone(void)
{
	fork_child(false);
}

void fs_fork_hook_enter(void)
{
	if (fs_locks_held != 0 || rec.in_fork_hook) {
		nested_hooks++; /* a signal handler's fork: see fs_fork_prepare */
		return;
	}
	rec.in_fork_hook = true;
	rec.log_pending = false;
	/* The first fork of a generation loads the children's fresh gRPC here,
	 * before libc's fork, rather than in the prepare handler: glibc holds
	 * its atfork lock while the handlers run, and a library loaded there
	 * could want it (forks libc makes itself still load in the prepare). */
	if (fs_forkpath_active() && fs_mode_acts(fs_cfg.mode) && fs_cfg.child_grpc == FS_CHILD_FRESH &&
	    fs_grpc_state() == FS_GRPC_ACTIVE && fs_fresh_wanted())
		fs_fresh_load();
}

void fs_fork_hook_leave(pid_t pid, int err)
{
	char who[24];

	if (nested_hooks > 0) {
		nested_hooks--;
		if (pid > 0 && fs_forkpath_active()) {
			snprintf(who, sizeof(who), "%d", (int)pid);
			log_nested(who);
		}
		return;
	}
	/* `rec` is this fork's until in_fork_hook is cleared, last. */
	if (pid != 0 && rec.log_pending) {
		if (pid < 0)
			fs_log(FS_WARN, "fork failed: %s", strerror(err));
		else
			log_parent(pid);
	}
	rec.log_pending = false;
	rec.in_fork_hook = false;
}
