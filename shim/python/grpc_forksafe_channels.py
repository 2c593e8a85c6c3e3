"""Inherited grpcio channels that work in a forked child (see sitecustomize.py).

In the child, after grpcio's fork state has been reset (grpc_forksafe_fork.py),
each channel the program has not closed itself gets a fresh core channel,
made from what the program gave grpc.Channel (target, options, credentials,
compression), with one more channel argument naming the fork generation: no
connection, subchannel or resolver of the parent's can be shared. The fresh
core channel goes in place of the old one in the channel and in every callable
made from it (stubs hold these), so nothing the program holds needs to know.
The child never touches the inherited core channel again: it is kept, never
closed or freed, since closing it would run gRPC code on state that the
parent's vanished threads may have left half-changed.

A call in progress at the fork (a stream being read, a .future() not yet
done) cannot go on in the child: its messages travel on the parent's
connection, and the thread that drove it is gone. Left alone, whatever waits
on it in the child (next(), .result(), .code()) waits forever. Each such call
the child inherited is ended as grpcio's own fork handling ends it, CANCELLED
with "Channel closed due to fork", and its done-callbacks run; only grpcio's
Python state of the call is changed, not its core call.

Only for the grpcio this was written against, 1.51.x, where the names used
below are what they are: any other version, or any name missing, and nothing
is patched (one warning).
"""
import functools
import threading
import weakref

# The channel argument that sets a child's channels apart from its ancestors'.
GENERATION_ARG = "grpc.forksafe.generation"
# How a call in progress at the fork ends in the child: grpcio's own words.
FORK_DETAILS = "Channel closed due to fork"

_FACTORIES = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_WARN, _INFO, _DEBUG = 1, 2, 3


def install(module, fork_handling, close, log):
    """Patches grpc._channel (module): channels made in a child get a
    connection of their own, and unless close, fork_handling renews inherited
    channels in children instead of closing them and ends the calls in
    progress at the fork as closing would; log(level, message)
    reports."""
    problem = _unsupported(module)
    if problem:
        log(_WARN, "inherited grpcio channels stay closed after fork: %s" % problem)
        return
    renewer = _Renewer(module, fork_handling, log)
    renewer.install(track_calls=not close)
    if not close:
        fork_handling.in_child = renewer.renew_all


def _unsupported(module):
    """What keeps this grpcio from being patched, or None."""
    from grpc import _grpcio_metadata
    version = _grpcio_metadata.__version__
    names = ("Channel", "cygrpc", "_common", "_separate_channel_options", "_augment_options",
             "_ChannelCallState", "_ChannelConnectivityState", "_channel_managed_call_management",
             "_Rendezvous", "_abort", "grpc")
    missing = [n for n in names if not hasattr(module, n)]
    missing += ["Channel." + n for n in _FACTORIES + ("_close",) if not hasattr(getattr(module, "Channel", None), n)]
    missing += ["cygrpc." + n for n in ("Channel",) if not hasattr(getattr(module, "cygrpc", None), n)]
    if missing:
        return "grpcio %s lacks %s" % (version, ", ".join(missing))
    return None


class _Renewer:

    def __init__(self, module, fork_handling, log):
        self._m = module
        self._fork = fork_handling
        self._log = log
        self._channels = weakref.WeakSet()
        # Every call object (grpc._channel._Rendezvous: streams, futures) that
        # may be in progress at a fork.
        self._calls = weakref.WeakSet()
        # What the child inherited and must never free (see above).
        self._inherited = []

    def install(self, track_calls):
        channel_class = self._m.Channel
        channel_class.__init__ = self._wrap_init(channel_class.__init__)
        channel_class._close = self._wrap_close(channel_class._close)
        for name in _FACTORIES:
            setattr(channel_class, name, self._wrap_factory(getattr(channel_class, name)))
        if track_calls:  # in mode close grpcio's own _close_on_fork ends them
            rendezvous = self._m._Rendezvous
            rendezvous.__init__ = self._wrap_call_init(rendezvous.__init__)
        self._log(_DEBUG, "grpcio channels will be renewed in forked children")

    def _wrap_init(self, init):
        channels = self._channels
        renewer = self

        @functools.wraps(init)
        def __init__(channel, target, options, credentials, compression):
            # Options may be any iterable: kept as a tuple, they can be used again.
            options = tuple(options) if options is not None else ()
            # gRPC core is not restarted in a child: its connection cache still
            # holds the parent's connections, which a new channel to the same
            # target would share without an argument of the child's own.
            generation = ((GENERATION_ARG, renewer._fork.generation),) if renewer._fork.generation else ()
            init(channel, target, options + generation, credentials, compression)
            channel._forksafe_args = (target, options, credentials, compression)
            channel._forksafe_callables = weakref.WeakSet()
            channels.add(channel)

        return __init__

    def _wrap_call_init(self, init):
        calls = self._calls

        @functools.wraps(init)
        def __init__(call, *args, **kwargs):
            init(call, *args, **kwargs)
            calls.add(call)

        return __init__

    @staticmethod
    def _wrap_close(close):

        @functools.wraps(close)
        def _close(channel):
            # Closed by the program: it stays closed in children too.
            channel._forksafe_closed = True
            close(channel)

        return _close

    @staticmethod
    def _wrap_factory(factory):

        @functools.wraps(factory)
        def make(channel, *args, **kwargs):
            callable_ = factory(channel, *args, **kwargs)
            callables = getattr(channel, "_forksafe_callables", None)
            if callables is not None:
                callables.add(callable_)
            return callable_

        return make

    def renew_all(self):
        """In a child: every channel still open gets a core channel of its
        own, then every call in progress at the fork ends (its done-callbacks
        may make calls: they find the channels renewed)."""
        renewed = 0
        for channel in list(self._channels):
            if getattr(channel, "_forksafe_closed", False):
                continue
            try:
                self._renew(channel)
                renewed += 1
            except Exception as exc:  # the child must never die because of this
                self._log(_WARN, "an inherited grpcio channel not renewed: %s: %s" % (type(exc).__name__, exc))
        self._log(_DEBUG, "%d inherited grpcio channel(s) renewed, generation %d" % (renewed, self._fork.generation))
        self._end_inherited_calls()

    def _renew(self, channel):
        m = self._m
        target, options, credentials, compression = channel._forksafe_args
        core_options = tuple(m._separate_channel_options(options)[1]) + ((GENERATION_ARG, self._fork.generation),)
        self._inherited.append((channel._channel, channel._call_state, channel._connectivity_state))
        fresh = m.cygrpc.Channel(m._common.encode(target), m._augment_options(core_options, compression), credentials)
        channel._channel = fresh
        channel._call_state = m._ChannelCallState(fresh)
        channel._connectivity_state = m._ChannelConnectivityState(fresh)
        managed_call = m._channel_managed_call_management(channel._call_state)
        for callable_ in list(channel._forksafe_callables):
            callable_._channel = fresh
            if hasattr(callable_, "_managed_call"):
                callable_._managed_call = managed_call

    def _end_inherited_calls(self):
        """In a child: each call in progress at the fork ends CANCELLED, as
        grpcio's own fork handling ends it, and its callbacks run. Only
        grpcio's Python state of the call (_RPCState) changes: nothing is
        left due, so nothing waits for the core call, which is never touched
        (a call that has ended is not cancelled again when it is freed)."""
        m = self._m
        ended = 0
        try:
            for call in list(self._calls):
                state = call._state
                # The parent's threads are gone; one may have held the lock.
                if not state.condition.acquire(blocking=False):
                    state.condition = threading.Condition()
                    state.condition.acquire()
                try:
                    if state.code is not None:
                        continue
                    m._abort(state, m.grpc.StatusCode.CANCELLED, FORK_DETAILS)
                    state.due.clear()
                    callbacks, state.callbacks = state.callbacks or [], None
                    state.condition.notify_all()
                finally:
                    state.condition.release()
                ended += 1
                for callback in callbacks:
                    try:
                        callback()
                    except Exception as exc:  # as grpcio does: said, not raised
                        self._log(_WARN, "a callback of a call ended by the fork raised %s: %s"
                                  % (type(exc).__name__, exc))
        except Exception as exc:  # the child must never die because of this
            self._log(_WARN, "calls in progress at the fork not ended: %s: %s" % (type(exc).__name__, exc))
        if ended:
            self._log(_DEBUG, "%d call(s) in progress at the fork ended in the child (CANCELLED)" % ended)
