"""Inherited grpcio channels that work in a forked child (see sitecustomize.py).

With fork support on, grpcio's own child handler (a pthread_atfork handler
inside fork(), so before any os.register_at_fork callback) closes every
channel it knows and shuts gRPC core down. After it, in the child, each
channel the program has not closed itself gets a fresh core channel, made
from what the program gave grpc.Channel (target, options, credentials,
compression), with one more channel argument naming the fork generation: no
connection, subchannel or resolver of the parent's can be shared. The fresh
core channel goes in place of the old one in the channel and in every callable
made from it (stubs hold these), so nothing the program holds needs to know.

Only for the grpcio this was written against, 1.51.x, where the names used
below are what they are: any other version, or any name missing, and nothing
is patched (one warning). If grpcio's handler did not run in a fork (fork
support off, or its threads did not stop in time), nothing is renewed.
"""
import functools
import os
import weakref

# The channel argument that sets a child's channels apart from its ancestors'.
GENERATION_ARG = "grpc.forksafe.generation"

_FACTORIES = ("unary_unary", "unary_stream", "stream_unary", "stream_stream")
_WARN, _INFO, _DEBUG = 1, 2, 3


def install(module, log):
    """Patches grpc._channel (module); log(level, message) reports."""
    problem = _unsupported(module)
    if problem:
        log(_WARN, "inherited grpcio channels stay closed after fork: %s" % problem)
        return
    cygrpc = module.cygrpc
    if not cygrpc.is_fork_support_enabled():
        log(_DEBUG, "grpcio's fork support is off: channels left as they are")
        return
    _Renewer(module, log).install()


def _unsupported(module):
    """What keeps this grpcio from being patched, or None."""
    try:
        from grpc import _grpcio_metadata
        version = _grpcio_metadata.__version__
    except ImportError:
        return "grpcio's version is unknown"
    if not version.startswith("1.51."):
        return "grpcio %s, not 1.51" % version
    names = ("Channel", "cygrpc", "_common", "_separate_channel_options", "_augment_options",
             "_ChannelCallState", "_ChannelConnectivityState", "_channel_managed_call_management")
    missing = [n for n in names if not hasattr(module, n)]
    missing += ["Channel." + n for n in _FACTORIES + ("_close",) if not hasattr(getattr(module, "Channel", None), n)]
    missing += ["cygrpc." + n for n in ("Channel", "get_fork_epoch", "is_fork_support_enabled")
                if not hasattr(getattr(module, "cygrpc", None), n)]
    if missing:
        return "grpcio %s lacks %s" % (version, ", ".join(missing))
    return None


class _Renewer:

    def __init__(self, module, log):
        self._m = module
        self._log = log
        self._channels = weakref.WeakSet()
        self._generation = 0
        self._epoch_before = None

    def install(self):
        channel_class = self._m.Channel
        channel_class.__init__ = self._wrap_init(channel_class.__init__)
        channel_class._close = self._wrap_close(channel_class._close)
        for name in _FACTORIES:
            setattr(channel_class, name, self._wrap_factory(getattr(channel_class, name)))
        # after_in_child callbacks run in the order registered, none before
        # grpcio's handler, which runs inside fork() itself.
        os.register_at_fork(before=self._before_fork, after_in_child=self._after_fork_in_child)
        self._log(_DEBUG, "grpcio channels will be renewed in forked children")

    def _wrap_init(self, init):
        channels = self._channels

        @functools.wraps(init)
        def __init__(channel, target, options, credentials, compression):
            # Options may be any iterable: kept as a tuple, they can be used again.
            options = tuple(options) if options is not None else ()
            init(channel, target, options, credentials, compression)
            channel._forksafe_args = (target, options, credentials, compression)
            channel._forksafe_callables = weakref.WeakSet()
            channels.add(channel)

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

    def _before_fork(self):
        self._epoch_before = self._m.cygrpc.get_fork_epoch()

    def _after_fork_in_child(self):
        try:
            # grpcio counts the forks its handler has dealt with.
            if self._epoch_before is None or self._m.cygrpc.get_fork_epoch() == self._epoch_before:
                self._log(_INFO, "grpcio's fork handler did not run: inherited channels left as they are")
                return
            self._generation += 1
            renewed = 0
            for channel in list(self._channels):
                if getattr(channel, "_forksafe_closed", False):
                    continue
                self._renew(channel)
                renewed += 1
            self._log(_DEBUG, "%d inherited grpcio channel(s) renewed, generation %d" % (renewed, self._generation))
        except Exception as exc:  # the child must never die because of this
            self._log(_WARN, "inherited grpcio channels stay closed: %s: %s" % (type(exc).__name__, exc))

    def _renew(self, channel):
        m = self._m
        target, options, credentials, compression = channel._forksafe_args
        core_options = tuple(m._separate_channel_options(options)[1]) + ((GENERATION_ARG, self._generation),)
        fresh = m.cygrpc.Channel(m._common.encode(target), m._augment_options(core_options, compression), credentials)
        channel._channel = fresh
        channel._call_state = m._ChannelCallState(fresh)
        channel._connectivity_state = m._ChannelConnectivityState(fresh)
        managed_call = m._channel_managed_call_management(channel._call_state)
        for callable_ in list(channel._forksafe_callables):
            callable_._channel = fresh
            if hasattr(callable_, "_managed_call"):
                callable_._managed_call = managed_call
