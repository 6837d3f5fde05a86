"""expbook's framework hooks (autolog): exact metrics from the frameworks themselves.

This module runs inside the *program's* interpreter, which is often not expbook's (another
virtual environment, a conda env, another Python version, ``torchrun``'s workers), so it uses the
standard library only, never imports expbook, and imports each framework only once the program
has imported it. ``sitecustomize.py`` next to it loads it under ``expbook run``; the in-code API
(``expbook.autolog()``, ``expbook.integrations``) loads the same code with another sink.

Three parts:

- a post-import finder (:class:`PostImportFinder`): a ``sys.meta_path`` entry that runs a hook
  right after a watched module (``transformers.trainer``, ``xgboost.training`` ...) has been
  executed, or at once if it already was;
- the hooks (``_expbook_hooks.py``, loaded when the first watched module is imported): each
  adds a callback to the framework (a ``TrainerCallback``, a Lightning ``Callback``, a Keras
  callback, an XGBoost ``TrainingCallback``, a LightGBM callback) or wraps a ``fit``
  (scikit-learn) or ``set_postfix`` (tqdm), and hands what it sees to a sink: points
  (values at a step and epoch), params, summary values, the keys it covers ("claims"), the
  framework it hooked, warnings;
- the spool sink (:class:`SpoolSink`): under ``expbook run``, one ``autolog-<pid>.jsonl`` file
  per process in the run's spool, one JSON object per line, each written with one ``os.write``
  on an ``O_APPEND`` descriptor, so processes never interleave. Only rank 0 of a distributed
  launch writes (``RANK``, else ``LOCAL_RANK``, ``OMPI_COMM_WORLD_RANK``, ``PMI_RANK``).

A hook writes its record *before* the framework prints the same values (its callback goes first
in the framework's list), so the recorder, which reads the records before it parses the output
that follows them, drops the printed copies of keys autolog covers.

A hook that fails turns itself off with one warning (to the recorder and, once, to stderr) and
never changes what the program does: the framework's own calls, return values and exceptions
pass through untouched.
"""

import os
import sys
import time

ENV_DIR = "EXPBOOK_AUTOLOG_DIR"
ENV_SWITCH = "EXPBOOK_AUTOLOG"
ENV_HOOKS = "EXPBOOK_AUTOLOG_HOOKS"
"""Your own hooks: ``watched.module=your.hooks:function,...``; ``function(log, module)`` runs
once ``watched.module`` is imported and records through ``log`` (see docs/autolog.md)."""
RANK_VARIABLES = ("RANK", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK", "PMI_RANK")
"""The first of these that is set gives the process's rank; only rank 0 records."""
FRAMEWORK_PACKAGES = frozenset(
    {"transformers", "lightning", "pytorch_lightning", "keras", "accelerate"}
)
"""tqdm bars driven by these frameworks are left to the framework's own hook."""
_TEXT_LIMIT = 500
_installed = []  # the active (finder, sink) of this process, for expbook.autolog()


# --- the post-import finder ----------------------------------------------------------------------


class PostImportFinder:
    """Runs hooks after watched modules are imported (ddtrace's and wrapt's technique: find the
    module's spec with the other finders, then wrap its loader's ``exec_module``)."""

    def __init__(self):
        self.hooks = {}  # module name -> [callable(module)]
        self._busy = set()

    def watch(self, name, hook):
        module = sys.modules.get(name)
        spec = getattr(module, "__spec__", None)
        if module is not None and not getattr(spec, "_initializing", False):
            hook(module)
        else:
            self.hooks.setdefault(name, []).append(hook)

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in self.hooks or fullname in self._busy:
            return None
        self._busy.add(fullname)
        try:
            spec = None
            for finder in sys.meta_path:
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(fullname, path, target)
                if spec is not None:
                    break
        finally:
            self._busy.discard(fullname)
        if spec is None or spec.loader is None or not hasattr(spec.loader, "exec_module"):
            return spec
        spec.loader = _HookedLoader(spec.loader, self, fullname)
        return spec

    def fire(self, name, module):
        for hook in self.hooks.pop(name, ()):
            hook(module)

    def invalidate_caches(self):
        pass


class _HookedLoader:
    """The module's own loader, running the hooks once the module has been executed."""

    def __init__(self, loader, finder, name):
        self.__dict__.update(_loader=loader, _finder=finder, _name=name)

    def __getattr__(self, attribute):
        return getattr(self._loader, attribute)

    def create_module(self, spec):
        create = getattr(self._loader, "create_module", None)
        return create(spec) if create is not None else None

    def exec_module(self, module):
        loader = self._loader
        try:  # the module sees its real loader, as without expbook
            module.__loader__ = loader
            module.__spec__.loader = loader
        except AttributeError:
            pass
        loader.exec_module(module)
        self._finder.fire(self._name, module)


# --- sinks ---------------------------------------------------------------------------------------


def process_rank():
    """The rank of this process in a distributed launch (0 when it is not in one)."""
    for name in RANK_VARIABLES:
        value = os.environ.get(name)
        if value is not None:
            try:
                return int(value)
            except ValueError:
                return 0
    return 0


class SpoolSink:
    """Records for the recorder: ``<directory>/autolog-<pid>.jsonl``, one line per record."""

    def __init__(self, directory):
        self.directory = directory
        self.enabled = process_rank() == 0
        self._fd = None
        self._pid = None
        self._json = None

    def write(self, record):
        if not self.enabled:
            return
        pid = os.getpid()
        if self._fd is None or pid != self._pid:  # a forked child writes its own file
            import json

            self._json = json
            path = os.path.join(self.directory, f"autolog-{pid}.jsonl")
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            except OSError as exc:
                self._failed(exc)
                return
            self._pid = pid
        line = self._json.dumps(record, separators=(",", ":"), default=_text) + "\n"
        try:
            os.write(self._fd, line.encode("utf-8", "replace"))
        except OSError as exc:
            self._failed(exc)

    def _failed(self, error):
        self.enabled = False
        say(f"expbook autolog: off for this process: cannot write to the run's spool ({error})")

    def point(self, framework, values, step=None, epoch=None):
        self.write({"kind": "point", "framework": framework, "time": time.time(),
                    "values": values, "step": step, "epoch": epoch})  # fmt: skip

    def summary(self, framework, values):
        self.write({"kind": "summary", "framework": framework, "time": time.time(),
                    "values": values})  # fmt: skip

    def params(self, framework, params):
        self.write({"kind": "params", "framework": framework, "params": params})

    def claim(self, framework, keys):
        self.write({"kind": "claim", "framework": framework, "time": time.time(),
                    "keys": sorted(keys)})  # fmt: skip

    def hooked(self, framework, version):
        self.write({"kind": "framework", "framework": framework, "version": version,
                    "time": time.time()})  # fmt: skip

    def warning(self, framework, text):
        self.write({"kind": "warning", "framework": framework, "time": time.time(),
                    "text": text})  # fmt: skip

    def attach(self, framework, path):
        """Checkpoints: not copied from the spool (they can be gigabytes); the in-code
        integrations attach them."""


class Autolog:
    """The hooks of one process and where they write: keeps the keys each framework has
    claimed, and turns a failing hook off with one warning."""

    def __init__(self, sink):
        self.sink = sink
        self.off = set()  # frameworks whose hook failed
        self.claimed = {}  # framework -> keys already claimed
        self.hooks = {}  # framework -> its package, until its first record says it is used

    def point(self, framework, values, step=None, epoch=None):
        values = numbers(values)
        if not values or framework in self.off:
            return
        self.claim(framework, values)
        self.sink.point(framework, values, step, epoch)

    def summary(self, framework, values, claim=()):
        values = numbers(values)
        if not values or framework in self.off:
            return
        self.claim(framework, [*values, *claim])
        self.sink.summary(framework, values)

    def params(self, framework, params):
        if params and framework not in self.off:
            self.claim(framework, ())
            self.sink.params(framework, params)

    def claim(self, framework, keys):
        known = self.claimed.get(framework)
        if known is None:
            known = self.claimed[framework] = set()
            self._used(framework)
        new = [key for key in keys if key not in known]
        if new:
            known.update(new)
            self.sink.claim(framework, new)

    def hooked(self, framework, package):
        """``framework`` is hooked; the marker (with the version) is written with its first
        record, so that a framework imported but not used (tqdm, by many) leaves none."""
        self.hooks[framework] = package

    def _used(self, framework):
        package = self.hooks.pop(framework, None)
        self.sink.hooked(framework, version_of(package) if package else None)

    def attach(self, framework, path):
        if framework not in self.off:
            self.sink.attach(framework, path)

    def failed(self, framework, error):
        """Turn ``framework``'s hook off, with one warning (here and on stderr)."""
        if framework in self.off:
            return
        self.off.add(framework)
        text = (
            f"expbook autolog: the {framework} hook failed ({type(error).__name__}: "
            f"{str(error)[:200]}) and is off for the rest of this program; its metrics are read "
            "from the output instead"
        )
        try:
            self.sink.warning(framework, text)
        finally:
            say(text)

    def guard(self, framework, function, *args, **kwargs):
        """``function(*args, **kwargs)``, or None once it has failed (then the hook is off)."""
        if framework in self.off:
            return None
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            self.failed(framework, exc)
            return None


def say(text):
    try:  # noqa: SIM105 - contextlib would be one more import at every start
        os.write(2, (text + "\n").encode("utf-8", "replace"))
    except OSError:
        pass


def _text(value):
    text = str(value)
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 3] + "..."


def number(value):
    """``value`` as a float, or None when it is not a single number (text, a list, None)."""
    if value is None or isinstance(value, (str, bytes)):
        return None
    if type(value) is float:
        return value
    try:
        return float(value)  # ints, bools, numpy and torch scalars (0-d tensors)
    except (TypeError, ValueError, RuntimeError, OverflowError):
        return None


def numbers(values):
    out = {}
    for key, value in dict(values).items():
        converted = number(value)
        if converted is not None:
            out[str(key)] = converted
    return out


def plain(value, depth=0):
    """``value`` as JSON data: numbers, text, booleans and lists of them; others as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value if not isinstance(value, str) else _text(value)
    if isinstance(value, (list, tuple)) and depth < 2 and len(value) <= 64:
        return [plain(item, depth + 1) for item in value]
    enum_value = getattr(value, "value", None)
    if type(value).__module__ != "builtins" and isinstance(enum_value, (str, int, float)):
        return enum_value  # an Enum
    return _text(value)


def flat(params, prefix=""):
    """Nested mappings as ``a.b`` keys with JSON values."""
    out = {}
    for key, value in dict(params).items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flat(value, name + "."))
        else:
            out[name] = plain(value)
    return out


def parameter_count(model):
    """The number of parameters of a torch module (or anything with ``parameters()`` of
    tensors / ``count_params()``), or None."""
    count_params = getattr(model, "count_params", None)
    if callable(count_params):
        return int(count_params())
    parameters = getattr(model, "parameters", None)
    if callable(parameters):
        return int(sum(p.numel() for p in parameters()))
    return None


def version_of(module_name):
    module = sys.modules.get(module_name)
    return str(getattr(module, "__version__", "") or "") or None


def call_with(original, args, kwargs, name, change):
    """Call ``original`` with its argument ``name`` replaced by ``change(value)`` (binding the
    arguments by the signature); with the arguments unchanged if that cannot be done."""
    import inspect

    try:
        bound = inspect.signature(original).bind(*args, **kwargs)
        bound.arguments[name] = change(bound.arguments.get(name))
    except Exception:
        return original(*args, **kwargs)
    return original(*bound.args, **bound.kwargs)


def _prepend(callback):
    def change(callbacks):
        if callbacks is None:
            return [callback]
        if isinstance(callbacks, (list, tuple)):
            return [callback, *callbacks]
        raise TypeError(f"callbacks is a {type(callbacks).__name__}")

    return change


# --- installing ----------------------------------------------------------------------------------


HOOKS = (
    ("transformers.trainer", "hook_transformers"),
    ("lightning.pytorch.trainer.trainer", "hook_lightning"),
    ("pytorch_lightning.trainer.trainer", "hook_lightning"),
    ("keras.src.models.model", "hook_keras"),
    ("xgboost.training", "hook_xgboost"),
    ("lightgbm.engine", "hook_lightgbm"),
    ("sklearn.neural_network._multilayer_perceptron", "hook_sklearn_mlp"),
    ("sklearn.ensemble._gb", "hook_sklearn_gb"),
    ("sklearn.model_selection._search", "hook_sklearn_search"),
    ("tqdm.std", "hook_tqdm"),
)
"""(module, hook in ``_expbook_hooks``): each hook runs once, when its module has been
imported."""

_FRAMEWORK_OF = {"pytorch_lightning": "lightning"}
"""The framework a hooked package belongs to, where it is not the package's own name."""


def install(sink, hooks=HOOKS):
    """Install the hooks, writing to ``sink``; returns the ``Autolog``. Once per process: a
    second call returns the first one's."""
    if _installed:
        return _installed[0]
    log = Autolog(sink)
    finder = PostImportFinder()
    for name, hook in hooks:
        package = name.partition(".")[0]
        framework = _FRAMEWORK_OF.get(package, package)
        finder.watch(name, _safe_hook(log, framework, name, hook))
    sys.meta_path.insert(0, finder)
    log.finder = finder
    _installed.append(log)
    return log


def _safe_hook(log, framework, name, hook):
    def run(module):
        log.guard(framework, _run_hook, log, name, hook, module)

    return run


def _run_hook(log, name, hook, module):
    if ":" in hook:  # a hook of the user's own (EXPBOOK_AUTOLOG_HOOKS)
        owner, _, attribute = hook.partition(":")
        getattr(__import__(owner, fromlist=[attribute]), attribute)(log, module)
        return
    function = getattr(hooks_module(), hook)
    if hook == "hook_lightning":
        function(log, module, name.rpartition(".trainer.trainer")[0])
    else:
        function(log, module)


def hooks_module():
    """The framework hooks (``_expbook_hooks.py``, next to this file), loaded on first use by
    its path: this file's directory is not on ``sys.path`` once the program runs."""
    name = __name__.rpartition(".")[0] + "._expbook_hooks" if "." in __name__ else "_expbook_hooks"
    module = sys.modules.get(name)
    if module is None:
        import importlib.util

        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_expbook_hooks.py")
        spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(spec)
        module.core = sys.modules[__name__]
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return module


def install_from_env():
    """Under ``expbook run``: install the hooks writing to the run's spool, unless autolog is
    off (``EXPBOOK_AUTOLOG=0``) or there is no spool."""
    directory = os.environ.get(ENV_DIR)
    if not directory or os.environ.get(ENV_SWITCH, "1").strip().lower() in ("0", "false", "no",
                                                                            "off"):  # fmt: skip
        return None
    return install(SpoolSink(directory), HOOKS + user_hooks(os.environ.get(ENV_HOOKS, "")))


def user_hooks(text):
    """``EXPBOOK_AUTOLOG_HOOKS`` as (watched module, ``owner:function``) pairs."""
    pairs = []
    for item in text.split(","):
        watched, _, hook = item.strip().partition("=")
        if watched and ":" in hook:
            pairs.append((watched.strip(), hook.strip()))
    return tuple(pairs)
