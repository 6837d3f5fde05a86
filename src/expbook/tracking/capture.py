"""Capture the context of a training run: git state, host, GPUs and installed packages.

Each provider is called once at the start of a run, on a background thread, without any user
code. The contract every provider keeps:

* It never raises. Each one catches its own errors and returns ``None``, an empty value or
  partial data instead.
* It never hangs. Every ``git`` process runs under a deadline of at most 5 seconds and is killed
  when it runs past it.
* It imports only the standard library at module level. ``psutil`` and ``pynvml`` (from the
  ``nvidia-ml-py`` distribution) are imported inside the functions that use them, so a missing
  module or a missing NVIDIA driver only means less data.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import re
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "GitState",
    "capture_git",
    "capture_gpus",
    "capture_host",
    "capture_packages",
    "sanitize_url",
]

_T = TypeVar("_T")

_GIT_TIMEOUT_S = 5.0
_DIFF_CAP_BYTES = 5 * 1024 * 1024
_STATUS_CAP_BYTES = 8 * 1024 * 1024
_CONFIG_CAP_BYTES = 1024 * 1024
_MAX_UNTRACKED = 1000
_READ_CHUNK = 64 * 1024
_GIT_ENV = {"GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C", "GIT_OPTIONAL_LOCKS": "0"}
_STATUS_ARGS = (
    "status",
    "--porcelain=v2",
    "--branch",
    "-z",
    "--untracked-files=normal",
    "--no-renames",
)
_DIFF_ARGS = ("diff", "--no-color", "--no-ext-diff", "--no-textconv")
_URL_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<userinfo>[^/?#]*)@")
_PEP503_SEPARATORS = re.compile(r"[-_.]+")


@dataclass(frozen=True, slots=True)
class GitState:
    """The state of the git work tree a run was started in.

    Attributes:
        commit: Full hex sha of ``HEAD``; ``None`` in a repository with no commits yet.
        branch: Name of the current branch; ``None`` when ``HEAD`` is detached.
        remote: URL of the ``origin`` remote (else of the first remote) with credentials
            removed by :func:`sanitize_url`; ``None`` when the repository has no remote.
        dirty: Whether tracked files are modified or staged. Untracked files don't count.
        diff: ``git diff HEAD`` (staged and unstaged changes to tracked files) as text, ``""``
            when clean. Longer diffs are cut at 5 MiB and end with a marker line.
        untracked: Untracked, not ignored paths relative to the repository root (at most 1000).
            A directory holding only untracked files is listed once, with a trailing ``/``.
    """

    commit: str | None
    branch: str | None
    remote: str | None
    dirty: bool
    diff: str
    untracked: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class _Output:
    """What a finished (or killed) git process wrote to stdout."""

    returncode: int | None
    data: bytes
    total: int
    timed_out: bool


@dataclass(frozen=True, slots=True)
class _Status:
    """The parts of ``git status --porcelain=v2 --branch -z`` that a :class:`GitState` needs."""

    commit: str | None
    branch: str | None
    dirty: bool
    untracked: tuple[str, ...]


def sanitize_url(url: str) -> str:
    """Remove credentials from a ``scheme://user:password@host/...`` URL.

    ``https://user:token@host/a.git`` and ``https://token@host/a.git`` both become
    ``https://host/a.git``. For ``ssh`` schemes the user name is not a secret and is needed to
    clone, so only a password is removed (``ssh://git:pw@host/a.git`` becomes
    ``ssh://git@host/a.git``). Anything else, such as the scp-like ``git@host:a/b.git`` or a
    local path, is returned unchanged.

    Args:
        url: A remote URL as written in the git configuration.

    Returns:
        The URL without credentials.
    """
    match = _URL_USERINFO.match(url)
    if match is None:
        return url
    scheme = match["scheme"]
    rest = url[match.end() :]
    if "ssh" in scheme.lower():
        user = match["userinfo"].split(":", 1)[0]
        return f"{scheme}{user}@{rest}" if user else f"{scheme}{rest}"
    return f"{scheme}{rest}"


def capture_git(
    cwd: str | os.PathLike[str] | None = None, *, exclude: Sequence[str] = ()
) -> GitState | None:
    """Capture the state of the git work tree that contains ``cwd``.

    Runs two or three short ``git`` processes (status, remotes and, when dirty, diff) with
    optional locks disabled, so a capture never takes the index lock of a repository the user is
    working in.

    Args:
        cwd: A directory inside the work tree; the current directory when ``None``.
        exclude: Absolute glob patterns of paths to leave out of the untracked list, the dirty
            flag and the diff: the store's own files (`expbook.locations.store_files`).
            Patterns outside the work tree are ignored.

    Returns:
        The state, or ``None`` when git is not installed, ``cwd`` is not inside a work tree or
        ``git status`` fails or runs past its deadline.
    """
    try:
        directory = None if cwd is None else os.fspath(cwd)
        return _capture_git(directory, _pathspec(directory, exclude))
    except Exception:
        return None


def _pathspec(cwd: str | None, exclude: Sequence[str]) -> tuple[str, ...]:
    """``git`` pathspecs for the whole work tree but ``exclude`` (those inside it)."""
    root = _work_tree(os.path.realpath(cwd if cwd is not None else os.getcwd()))
    if root is None or not exclude:
        return ()
    inside = [
        pattern
        for pattern in (os.path.join(os.path.realpath(os.path.dirname(p)), os.path.basename(p))
                        for p in exclude)
        if pattern.startswith(root + os.sep)
    ]  # fmt: skip
    return (":(top)", *(f":(exclude,glob){pattern}" for pattern in inside)) if inside else ()


def _work_tree(directory: str) -> str | None:
    """The nearest directory at or above ``directory`` with a ``.git`` entry."""
    while not os.path.exists(os.path.join(directory, ".git")):
        parent = os.path.dirname(directory)
        if parent == directory:
            return None
        directory = parent
    return directory


def capture_host() -> dict[str, Any]:
    """Describe the machine and the Python interpreter running this process.

    Returns:
        A JSON-serialisable dict with the keys ``hostname``, ``os``, ``system``, ``machine``,
        ``python``, ``python_implementation``, ``python_executable``, ``cpu``, ``cpus``,
        ``cpus_physical``, ``ram_bytes``, ``gpus`` and ``cuda_visible_devices``. A value that
        cannot be found is ``None`` (``[]`` for ``gpus``).
    """
    return {
        "hostname": _attempt(socket.gethostname) or _attempt(platform.node) or None,
        "os": _attempt(platform.platform),
        "system": _attempt(platform.system),
        "machine": _attempt(platform.machine),
        "python": _attempt(platform.python_version),
        "python_implementation": _attempt(platform.python_implementation),
        "python_executable": sys.executable or None,
        "cpu": _attempt(_cpu_model),
        "cpus": _attempt(os.cpu_count),
        "cpus_physical": _attempt(_physical_cpu_count),
        "ram_bytes": _attempt(_psutil_ram_bytes) or _attempt(_sysconf_ram_bytes),
        "gpus": capture_gpus(),
        "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
    }


def capture_gpus() -> list[dict[str, Any]]:
    """Describe the NVIDIA GPUs visible to the driver, through NVML.

    Devices are listed in NVML order, which ignores ``CUDA_VISIBLE_DEVICES``.

    Returns:
        One dict per device with the keys ``index``, ``name``, ``memory_bytes``, ``uuid`` and
        ``driver`` (a field NVML cannot report is ``None``); ``[]`` when ``pynvml`` is not
        installed, no NVIDIA driver is loaded or NVML fails.
    """
    try:
        import pynvml
    except Exception:
        return []
    try:
        pynvml.nvmlInit()
    except Exception:
        return []
    try:
        return _list_gpus(pynvml)
    except Exception:
        return []
    finally:
        with contextlib.suppress(Exception):
            pynvml.nvmlShutdown()


def capture_packages() -> list[str]:
    """List the distributions installed for the running interpreter.

    Names are normalised as in PEP 503 (lower case, each run of ``-``, ``_`` and ``.`` becomes
    one ``-``). When a name is installed more than once on ``sys.path`` only the first one, the
    one that imports, is listed. Distributions without a name or version are skipped.

    Returns:
        Sorted, unique ``"name==version"`` strings; ``[]`` if the metadata cannot be read.
    """
    versions: dict[str, str] = {}
    with contextlib.suppress(Exception):
        for dist in importlib.metadata.distributions():
            entry = _attempt(_name_and_version, dist)
            if entry is not None:
                versions.setdefault(*entry)
    return sorted(f"{name}=={version}" for name, version in versions.items())


def _attempt(func: Callable[..., _T], *args: Any) -> _T | None:
    """Call ``func(*args)`` and return its result, or ``None`` when it raises."""
    try:
        return func(*args)
    except Exception:
        return None


# --- git ------------------------------------------------------------------------------------


def _capture_git(cwd: str | None, pathspec: tuple[str, ...] = ()) -> GitState | None:
    """Build a :class:`GitState` for ``cwd``; may raise on unexpected git output."""
    output = _run_git(cwd, (*_STATUS_ARGS, "--", *pathspec), _STATUS_CAP_BYTES)
    if output is not None and output.returncode != 0 and pathspec:  # a pathspec git refused
        pathspec = ()
        output = _run_git(cwd, _STATUS_ARGS, _STATUS_CAP_BYTES)
    if output is None or output.returncode != 0:
        return None
    status = _parse_status(output.data, truncated=output.total > len(output.data))
    return GitState(
        commit=status.commit,
        branch=status.branch,
        remote=_attempt(_remote_url, cwd),
        dirty=status.dirty,
        diff=(_attempt(_diff, cwd, status.commit, pathspec) or "") if status.dirty else "",
        untracked=status.untracked,
    )


def _run_git(cwd: str | None, args: tuple[str, ...], cap: int) -> _Output | None:
    """Run ``git [-C cwd] args`` and keep the first ``cap`` bytes of its stdout.

    Returns:
        The output, or ``None`` when git cannot be started.
    """
    argv = ["git", "--no-pager", *(("-C", cwd) if cwd is not None else ()), *args]
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env={**os.environ, **_GIT_ENV},
        )
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    timed_out = True  # so that an error while reading kills git too
    try:
        data, total, timed_out = _read_capped(proc, cap)
    finally:
        if timed_out:
            proc.kill()
        returncode = _reap(proc)
    return _Output(returncode, data, total, timed_out)


def _reap(proc: subprocess.Popen[bytes]) -> int | None:
    """Wait a moment for ``proc`` to exit, kill it if it does not, and close its stdout.

    Returns:
        The exit status, or ``None`` when ``proc`` could not be reaped.
    """
    try:
        return proc.wait(timeout=1.0)
    except subprocess.TimeoutExpired:
        proc.kill()
        return _attempt(proc.wait, 1.0)
    finally:
        if proc.stdout is not None:
            proc.stdout.close()


def _read_capped(proc: subprocess.Popen[bytes], cap: int) -> tuple[bytes, int, bool]:
    """Read ``proc``'s stdout until EOF or the git deadline, keeping at most ``cap`` bytes.

    Returns:
        The bytes kept, the number of bytes read in all, and whether the deadline passed.
    """
    if proc.stdout is None:
        return b"", 0, False
    if os.name != "posix":
        return _communicate_capped(proc, cap)
    deadline = time.monotonic() + _GIT_TIMEOUT_S
    kept, total = bytearray(), 0
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not selector.select(remaining):
                return bytes(kept), total, True
            chunk = os.read(proc.stdout.fileno(), _READ_CHUNK)
            if not chunk:
                return bytes(kept), total, False
            total += len(chunk)
            kept += chunk[: max(cap - len(kept), 0)]


def _communicate_capped(proc: subprocess.Popen[bytes], cap: int) -> tuple[bytes, int, bool]:
    """Fallback of :func:`_read_capped` where pipes cannot be selected (Windows)."""
    try:
        data, _ = proc.communicate(timeout=_GIT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return b"", 0, True
    return data[:cap], len(data), False


def _parse_status(data: bytes, *, truncated: bool) -> _Status:
    """Parse ``git status --porcelain=v2 --branch -z`` output.

    Args:
        data: The raw output.
        truncated: Whether ``data`` was cut short, in which case its last record is dropped.
    """
    records = data.split(b"\0")
    if truncated and records:
        records.pop()
    commit = branch = None
    dirty = False
    untracked: list[str] = []
    for record in records:
        text = record.decode("utf-8", errors="surrogateescape")
        if text.startswith("# branch.oid "):
            commit = _none_if(text.removeprefix("# branch.oid "), "(initial)")
        elif text.startswith("# branch.head "):
            branch = _none_if(text.removeprefix("# branch.head "), "(detached)")
        elif text[:2] in ("1 ", "2 ", "u "):
            dirty = True
        elif text.startswith("? ") and len(untracked) < _MAX_UNTRACKED:
            untracked.append(_printable_path(text[2:]))
    return _Status(commit, branch, dirty, tuple(untracked))


def _none_if(value: str, sentinel: str) -> str | None:
    """Return ``value``, or ``None`` when it is ``sentinel`` or empty."""
    return None if value in (sentinel, "") else value


def _printable_path(path: str) -> str:
    """Turn undecodable bytes of a path (kept as surrogates) into replacement characters."""
    return path.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def _remote_url(cwd: str | None) -> str | None:
    """Return the sanitised URL of ``origin``, else of the first remote, else ``None``."""
    args = ("config", "-z", "--get-regexp", r"^remote\..*\.url$")
    output = _run_git(cwd, args, _CONFIG_CAP_BYTES)
    if output is None or output.returncode != 0:
        return None
    urls: dict[str, str] = {}
    for record in output.data.decode("utf-8", errors="replace").split("\0"):
        key, _, url = record.partition("\n")
        name = key.removeprefix("remote.").removesuffix(".url")
        if url:
            urls.setdefault(name, url)
    url = urls.get("origin") or next(iter(urls.values()), None)
    return None if url is None else sanitize_url(url)


def _diff(cwd: str | None, commit: str | None, pathspec: tuple[str, ...] = ()) -> str:
    """Return the diff of the work tree (staged and unstaged) against ``commit``.

    Without a commit the diff is taken against the empty tree, so it shows every tracked file.
    """
    base = commit or _empty_tree(cwd)
    if base is None:
        return ""
    output = _run_git(cwd, (*_DIFF_ARGS, base, "--", *pathspec), _DIFF_CAP_BYTES)
    if output is None:
        return ""
    text = output.data.decode("utf-8", errors="replace")
    if output.total > len(output.data):
        text += f"\n[expbook: diff truncated at 5 MiB of {output.total} bytes]\n"
    if output.timed_out:
        text += "\n[expbook: diff incomplete, git diff timed out]\n"
    return text


def _empty_tree(cwd: str | None) -> str | None:
    """Return the id of the empty tree in the repository's hash format."""
    output = _run_git(cwd, ("hash-object", "-t", "tree", "--stdin"), 1024)
    if output is None or output.returncode != 0:
        return None
    return output.data.decode("ascii", errors="replace").strip() or None


# --- host and GPUs --------------------------------------------------------------------------


def _cpu_model() -> str | None:
    """Return the CPU model name, or ``None`` when the platform does not tell."""
    model = _attempt(_proc_cpuinfo_model)
    if not model and sys.platform == "darwin":
        model = _attempt(_sysctl_cpu_model)
    if not model:
        model = platform.processor().strip()
    return None if model in ("", "unknown") else model


def _proc_cpuinfo_model() -> str | None:
    """Return the first ``model name`` of ``/proc/cpuinfo`` (Linux on x86 and some ARM)."""
    with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as cpuinfo:
        for line in cpuinfo:
            key, _, value = line.partition(":")
            if key.strip().lower() == "model name":
                return value.strip() or None
    return None


def _sysctl_cpu_model() -> str | None:
    """Return the CPU brand string on macOS."""
    result = subprocess.run(
        ["sysctl", "-n", "machdep.cpu.brand_string"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=2,
        check=False,
    )
    return result.stdout.decode("utf-8", errors="replace").strip() or None


def _physical_cpu_count() -> int | None:
    """Return the number of physical cores, via ``psutil``."""
    import psutil

    return psutil.cpu_count(logical=False)


def _psutil_ram_bytes() -> int:
    """Return the total physical memory, via ``psutil``."""
    import psutil

    return int(psutil.virtual_memory().total)


def _sysconf_ram_bytes() -> int:
    """Return the total physical memory from ``sysconf`` (POSIX without ``psutil``)."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def _list_gpus(nvml: Any) -> list[dict[str, Any]]:
    """Describe every device NVML sees; ``nvml`` is the initialised ``pynvml`` module."""
    driver = _attempt(lambda: _text(nvml.nvmlSystemGetDriverVersion()))
    return [_gpu_info(nvml, index, driver) for index in range(nvml.nvmlDeviceGetCount())]


def _gpu_info(nvml: Any, index: int, driver: str | None) -> dict[str, Any]:
    """Describe device ``index``; a field NVML cannot report is ``None``."""
    handle = _attempt(nvml.nvmlDeviceGetHandleByIndex, index)
    return {
        "index": index,
        "name": _attempt(lambda: _text(nvml.nvmlDeviceGetName(handle))),
        "memory_bytes": _attempt(lambda: int(nvml.nvmlDeviceGetMemoryInfo(handle).total)),
        "uuid": _attempt(lambda: _text(nvml.nvmlDeviceGetUUID(handle))),
        "driver": driver,
    }


def _text(value: str | bytes) -> str:
    """Return ``value`` as text; old ``pynvml`` versions return bytes."""
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value


# --- packages -------------------------------------------------------------------------------


def _name_and_version(dist: importlib.metadata.Distribution) -> tuple[str, str] | None:
    """Return the normalised name and the version of ``dist``, or ``None`` if one is missing."""
    metadata = dist.metadata
    name, version = metadata["Name"], metadata["Version"]
    if not name or not version:
        return None
    return _PEP503_SEPARATORS.sub("-", name).lower(), version
