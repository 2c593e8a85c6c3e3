"""grpcio's fork handling, run from Python's own fork hooks (see sitecustomize.py).

With fork support on (the shim sets GRPC_ENABLE_FORK_SUPPORT=1), grpcio 1.51
installs pthread_atfork handlers that run Python from inside fork() itself.
In the child that handler runs before CPython has made the child's only thread
the owner of its interpreter state (a rare hang in the child, seen with stock
grpcio too), closes every channel the child inherited, and then waits about
1.5 s for gRPC core to shut down, ending the child with status 64 when it
does not: always, in a process that runs a grpcio server, whose server object
keeps core initialised. Every child of a serving process died that way,
including children that never use gRPC and subprocess's preexec_fn children.

So grpcio's handlers are never installed: once grpcio's extension module is
loaded, and before it can install them, it is told they are. The same work
runs from os.register_at_fork instead:
  before          grpcio's threads pause at their next fork check, as with its
                  own handler, and servers' polling threads leave gRPC core
                  (each bounded: the fork goes ahead after PAUSE_S)
  after, parent   they resume
  after, child    grpcio's fork state starts afresh (locks, counters, its fork
                  epoch), and each inherited channel still open gets a
                  connection of the child's own, or in mode close is closed
                  as grpcio would (grpc_forksafe_channels.py).
Nothing waits for core to shut down: a server object or a stuck call cannot
end the child. gRPC core's own fork handlers (in C, compiled into grpcio)
still run, and the child goes on with the core they reset. Core's prepare
handler skips itself (and leaves a child whose gRPC cannot work) when another
thread is inside gRPC at that instant, as a thread reading a stream often is;
the shim calls it again until it runs (shim/embedded_fork.c), once told here
which of grpcio's fork handlers are core's; before each fork it is told
whether grpc.aio's poller thread, which never leaves core, makes that
pointless.

Only for the grpcio this was written against, 1.51.x, with every name used
here present; otherwise nothing is changed and grpcio's handlers work as
without the layer (one warning).
"""
import os
import threading

# How long a fork waits for grpcio's threads to pause, as grpcio's own handler.
PAUSE_S = 5
# How long a server's polling thread stays inside gRPC core at most once its
# process has forked, and so how long later forks wait for it. Until the
# first fork grpcio's own period (1 s) is kept: a process that never forks
# pays nothing.
SERVER_POLL_S = 0.1

# grpcio 1.51's first grpc_init registers the EventEngine's fork handlers,
# then core's (do_basic_init, src/core/lib/surface/init.cc): core's are the
# second registration of grpcio's extension module.
CORE_HANDLERS_INDEX = 1

_WARN, _INFO, _DEBUG = 1, 2, 3
_FORK_STATE_NAMES = ("fork_in_progress_condition", "fork_in_progress", "postfork_states_to_reset",
                     "fork_handler_registered_lock", "fork_handler_registered", "active_thread_count",
                     "fork_epoch", "channels")


def grpcio_version():
    """grpcio's version, or None."""
    try:
        from grpc import _grpcio_metadata
        return _grpcio_metadata.__version__
    except ImportError:
        return None


def unsupported(cygrpc):
    """What keeps this grpcio's fork handling from being taken over, or None."""
    version = grpcio_version()
    if version is None:
        return "grpcio's version is unknown"
    if not version.startswith("1.51."):
        return "grpcio %s, not 1.51" % version
    state = getattr(cygrpc, "_fork_state", None)
    missing = [n for n in ("_fork_state", "_ActiveThreadCount", "is_fork_support_enabled")
               if not hasattr(cygrpc, n)]
    missing += ["_fork_state." + n for n in _FORK_STATE_NAMES if state is not None and not hasattr(state, n)]
    if missing:
        return "grpcio %s lacks %s" % (version, ", ".join(missing))
    return None


class ForkHandling:
    """grpcio's fork handling, moved into Python's fork hooks. in_child deals
    with the inherited channels: close_inherited unless
    grpc_forksafe_channels.py renews them instead."""

    def __init__(self, cygrpc, log):
        self._cygrpc = cygrpc
        self._log = log
        self.in_child = self.close_inherited
        # How many forks separate this process from the one that loaded grpcio.
        self.generation = 0
        self._servers = _ServerThreads()
        self._forks = 0  # in progress, from any thread
        self._paused = True  # whether the last fork's threads all paused
        # The shim's switch for calling core's prepare handler again, once it
        # knows which handler that is.
        self._core_retry = None

    def take_over(self):
        """True if grpcio's own handlers will not be installed."""
        state = self._cygrpc._fork_state
        with state.fork_handler_registered_lock:
            if state.fork_handler_registered:
                return False
            state.fork_handler_registered = True
        os.register_at_fork(before=self._before, after_in_parent=self._after_in_parent,
                            after_in_child=self._after_in_child)
        self._name_core_handlers()
        return True

    def _name_core_handlers(self):
        """Tells the shim which of grpcio's fork handlers are core's (see the
        module's doc). Before grpcio's first grpc_init, which registers them."""
        try:
            import ctypes
            shim = ctypes.CDLL(None)
            name = shim.grpc_forksafe_embedded_core_handlers
            name.argtypes = (ctypes.c_void_p, ctypes.c_uint)
            name.restype = ctypes.c_int
            retry = shim.grpc_forksafe_embedded_core_retry
            retry.argtypes = (ctypes.c_int,)
            retry.restype = None
            # Any address inside grpcio's extension module names it.
            module = ctypes.cast(ctypes.CDLL(self._cygrpc.__file__).PyInit_cygrpc, ctypes.c_void_p).value
            named = name(module, CORE_HANDLERS_INDEX) == 1
        except (ImportError, OSError, AttributeError, TypeError) as exc:
            self._log(_INFO, "core's fork handlers in grpcio are run once only: %s: %s" % (type(exc).__name__, exc))
            return
        if not named:
            self._log(_INFO, "core's fork handlers in grpcio are run once only: the shim declined")
            return
        self._core_retry = retry

    def _aio_polling(self):
        """True while grpc.aio's poller thread runs: it waits inside gRPC core
        with no deadline, so core's prepare handler skips itself however
        often it is called."""
        poller = getattr(self._cygrpc, "PollerCompletionQueue", None)
        if poller is None:
            return False
        for thread in threading.enumerate():
            owner = getattr(getattr(thread, "_target", None), "__self__", None)
            if isinstance(owner, poller):
                return True
        return False

    def patch_server(self, module):
        """grpc._server (module): each server's polling thread waits at a
        point outside gRPC core while a fork is in progress, and from the
        first fork on leaves core at least every SERVER_POLL_S. A thread
        inside core at the fork makes core skip its fork handlers, and then
        the child cannot use gRPC at all."""
        missing = [n for n in ("_serve", "_process_event_and_continue", "_DEALLOCATED_SERVER_CHECK_PERIOD_S", "time")
                   if not hasattr(module, n)]
        if missing:
            self._log(_WARN, "grpcio's server threads are not paused at forks: grpc._server lacks %s"
                      % ", ".join(missing))
            return
        servers = self._servers
        serve = module._serve
        process = module._process_event_and_continue

        def _serve(state):
            servers.started()
            try:
                return serve(state)
            finally:
                servers.left_core()

        def _process_event_and_continue(state, event):
            servers.left_core()
            return process(state, event)

        module._serve = _serve
        module._process_event_and_continue = _process_event_and_continue
        servers.module = module
        # grpc._server reads the clock once per poll, outside core: the point
        # where a polling thread waits.
        module.time = _ClockWithPausePoint(module.time, servers)

    def _before(self):
        self._paused = self._servers.pause(PAUSE_S)
        if not self._paused:
            self._log(_INFO, "grpcio's server threads did not pause within %d s; forking all the same" % PAUSE_S)
        state = self._cygrpc._fork_state
        with state.fork_in_progress_condition:
            # Two threads may fork at once: the flag falls when both are done.
            self._forks += 1
            state.fork_in_progress = True
        if not state.active_thread_count.await_zero_threads(PAUSE_S):
            self._paused = False
            self._log(_INFO, "grpcio's threads did not pause within %d s; forking all the same" % PAUSE_S)
        if self._core_retry is not None:
            self._core_retry(0 if self._aio_polling() else 1)

    def _after_in_parent(self):
        state = self._cygrpc._fork_state
        with state.fork_in_progress_condition:
            self._forks -= 1
            if self._forks == 0:
                state.fork_in_progress = False
                state.fork_in_progress_condition.notify_all()
        self._servers.resume()

    def _after_in_child(self):
        try:
            state = self._cygrpc._fork_state
            # Threads that were waiting on these are gone with the parent's
            # other threads; they may have held them.
            state.fork_in_progress_condition = threading.Condition()
            state.active_thread_count = self._cygrpc._ActiveThreadCount()
            for waiting in state.postfork_states_to_reset:
                waiting.reset_postfork_child()
            state.postfork_states_to_reset = []
            state.fork_epoch += 1
            state.fork_in_progress = False
            self._forks = 0
            self.generation += 1
            self._servers.reset_in_child()
        except Exception as exc:  # the child must never die because of this
            self._log(_WARN, "grpcio's fork state not reset in the child: %s: %s" % (type(exc).__name__, exc))
            return
        self.in_child()

    def close_inherited(self):
        """What grpcio's own handler does: a call on an inherited channel
        raises ValueError (closed channel). Closing drains the channel's calls
        through core, which may not work when a thread stayed inside core at
        the fork; grpcio then leaves the channels alone, and so does this."""
        if not self._paused:
            self._log(_INFO, "grpcio's threads did not pause before the fork: inherited channels left as they are")
            return
        for channel in list(self._cygrpc._fork_state.channels):
            try:
                channel._close_on_fork()
            except Exception as exc:  # the child must never die because of this
                self._log(_WARN, "an inherited grpcio channel not closed: %s: %s" % (type(exc).__name__, exc))


class _ServerThreads:
    """The polling threads of grpcio's servers: which of them are inside gRPC
    core (from the clock read just before a poll until the poll's event is
    handed on), and a gate that keeps them out while a fork is in progress.
    A polling thread busy with an event (a call's handler being submitted, an
    interceptor, a fork made from there) is outside core and is not waited
    for."""

    def __init__(self):
        self._mine = threading.local()
        self.module = None  # grpc._server, once loaded
        self.reset_in_child()

    def reset_in_child(self):
        """Also the initial state: the parent's polling threads are gone."""
        self._cond = threading.Condition()
        self._in_core = 0
        self._forks = 0  # in progress, from any thread

    def started(self):
        self._mine.polling = True
        self._mine.in_core = False

    def left_core(self):
        if getattr(self._mine, "in_core", False):
            self._mine.in_core = False
            with self._cond:
                self._in_core -= 1
                self._cond.notify_all()

    def pause_point(self):
        """Called just before a poll (and so also after one that timed out)."""
        if not getattr(self._mine, "polling", False):
            return  # a handler's thread reading the clock: not a poller
        self.left_core()
        with self._cond:
            while self._forks:
                self._cond.wait()
            self._in_core += 1
        self._mine.in_core = True

    def pause(self, timeout):
        """True once no polling thread is inside core."""
        if self.module is not None and self.module._DEALLOCATED_SERVER_CHECK_PERIOD_S > SERVER_POLL_S:
            # A poll that began before this holds on to its own deadline.
            self.module._DEALLOCATED_SERVER_CHECK_PERIOD_S = SERVER_POLL_S
        with self._cond:
            self._forks += 1
            return self._cond.wait_for(lambda: self._in_core == 0, timeout)

    def resume(self):
        with self._cond:
            self._forks -= 1
            self._cond.notify_all()


class _ClockWithPausePoint:
    """The time module, as grpc._server sees it: reading the clock is a pause
    point."""

    def __init__(self, clock, servers):
        self._clock = clock
        self._servers = servers

    def time(self):
        self._servers.pause_point()
        return self._clock.time()

    def __getattr__(self, name):
        return getattr(self._clock, name)
