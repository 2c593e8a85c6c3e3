"""grpc-forksafe's Python layer: grpcio channels that survive os.fork().

The shim puts this file's directory first on PYTHONPATH in a Python
interpreter under its default policy (shim/embedded.c), where it has also
turned on grpcio's fork support. grpcio's own fork handlers would close every
channel a child inherited (a call on one raises ValueError) and end every
child of a process that serves with status 64; here they are replaced by the
same work run from Python's fork hooks (grpc_forksafe_fork.py), and each
channel still in use in the child gets a core channel of the child's own
(same target, options and credentials), and so do the stubs' callables made
from it (grpc_forksafe_channels.py): the first call in the child goes over a
new connection.

What runs at start-up, before the program: PYTHONPATH gets back the value the
user gave it (so programs this interpreter starts see the user's), the user's
own sitecustomize, if there is one further on sys.path, is imported, and a
finder waits for the program to import grpc. grpc itself is never imported
here; its extension module, its channel module and its server module are
patched once the program imports them, and only if it is the grpcio this
layer knows (1.51); otherwise one warning and nothing.

Settings: GRPC_FORKSAFE_LOG (error, warn, info, debug or 0-3; default warn)
and GRPC_FORKSAFE_LOG_FILE, as for the shim.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
_LEVELS = ("error", "warn", "info", "debug")
_WARN, _DEBUG = 1, 3


def _log_level():
    text = os.environ.get("GRPC_FORKSAFE_LOG", "")
    if text in _LEVELS:
        return _LEVELS.index(text)
    if text in ("0", "1", "2", "3"):
        return int(text)
    return _WARN  # the shim has already reported a bad value


def _log(level, message):
    if level > _log_level():
        return
    # Named as the shim names the process: the interpreter's argv[0].
    argv = getattr(sys, "orig_argv", None) or [sys.executable or "python"]
    line = "%s[%d]: grpc-forksafe: %s: %s\n" % (os.path.basename(argv[0]), os.getpid(), _LEVELS[level], message)
    try:
        path = os.environ.get("GRPC_FORKSAFE_LOG_FILE")
        if path:
            with open(path, "a") as out:
                out.write(line)
        else:
            sys.stderr.write(line)
            sys.stderr.flush()
    except (OSError, ValueError, AttributeError):
        pass  # no log is no reason to disturb the program


def _restore_pythonpath():
    """Takes the shim's entry off PYTHONPATH: unset if the user had not set it."""
    value = os.environ.get("PYTHONPATH")
    if value == _HERE:
        del os.environ["PYTHONPATH"]
    elif value is not None and value.startswith(_HERE + os.pathsep):
        os.environ["PYTHONPATH"] = value[len(_HERE) + 1:]


def _run_users_sitecustomize():
    """Imports the sitecustomize this one hides, as site.py would have. Its
    errors go to site.py, which reports them as it would without the shim."""
    import importlib.machinery
    import importlib.util

    sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", sys.path)
    if spec is None or spec.loader is None:
        return
    module = importlib.util.module_from_spec(spec)
    sys.modules["sitecustomize"] = module
    spec.loader.exec_module(module)


class _PatchOnImport:
    """A meta-path finder that patches grpcio's modules as they are loaded:
    first its extension module (before it can install its fork handlers),
    then its channel and server modules."""

    def __init__(self):
        self._pending = ["grpc._cython.cygrpc", "grpc._channel", "grpc._server"]
        self._fork_handling = None

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self._pending:
            return None
        self._pending.remove(fullname)
        import importlib.util
        # The module's own spec, found without this finder. sys.meta_path is
        # replaced, never changed in place: another thread may be walking it.
        _leave_meta_path(self)
        try:
            spec = importlib.util.find_spec(fullname)
        finally:
            if self._pending:
                sys.meta_path = [self] + sys.meta_path
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        patch = {"grpc._cython.cygrpc": self._patch_cygrpc, "grpc._channel": self._patch_channel,
                 "grpc._server": self._patch_server}[fullname]
        spec.loader = _PatchingLoader(spec.loader, patch)
        return spec

    def _patch_cygrpc(self, cygrpc):
        fork = _load("grpc_forksafe_fork")
        problem = fork.unsupported(cygrpc)
        if problem:
            self._give_up()
            _log(_WARN, "inherited grpcio channels stay closed after fork: %s" % problem)
        elif not cygrpc.is_fork_support_enabled():
            self._give_up()
            _log(_DEBUG, "grpcio's fork support is off: forks and channels left as they are")
        else:
            handling = fork.ForkHandling(cygrpc, _log)
            if handling.take_over():
                self._fork_handling = handling
            else:
                self._give_up()
                _log(_WARN, "grpcio installed its fork handlers before the layer could take over: left as they are")

    def _patch_server(self, module):
        if self._fork_handling is not None:
            self._fork_handling.patch_server(module)

    def _give_up(self):
        self._pending[:] = []
        _leave_meta_path(self)

    def _patch_channel(self, module):
        if self._fork_handling is not None:
            # The shim loads the layer in modes reconnect and close only, and
            # has reported a bad value (then reconnect).
            close = os.environ.get("GRPC_FORKSAFE_MODE", "").lower() == "close"
            _load("grpc_forksafe_channels").install(module, self._fork_handling, close, _log)


def _leave_meta_path(finder):
    sys.meta_path = [f for f in sys.meta_path if f is not finder]


class _PatchingLoader:

    def __init__(self, loader, patch):
        self._loader = loader
        self._patch = patch

    def create_module(self, spec):
        return self._loader.create_module(spec)

    def exec_module(self, module):
        self._loader.exec_module(module)
        try:
            self._patch(module)
        except Exception as exc:  # the program never fails because of the layer
            _log(_WARN, "inherited grpcio channels stay closed: %s: %s" % (type(exc).__name__, exc))

    def __getattr__(self, name):
        return getattr(self._loader, name)


def _load(name):
    """A module of the layer (NAME.py here), loaded by its path: this
    directory is no longer on sys.path."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, os.path.join(_HERE, name + ".py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _main():
    _restore_pythonpath()
    if "grpc._cython.cygrpc" in sys.modules:
        return  # loaded before site (python -c with a custom site?): leave it
    sys.meta_path.insert(0, _PatchOnImport())


_main()
_run_users_sitecustomize()
