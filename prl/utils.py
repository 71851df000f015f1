"""Small shared machinery: seeding, device selection, threads, atomic file writes, locks,
output-directory checks, a file-descriptor-level stdout guard and git provenance."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import random
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np

from prl.errors import ConfigError

DEVICE_CHOICES = ("auto", "cpu", "cuda")
#: seeds are 32-bit: numpy's legacy seeding (used by SB3 and gymnasium helpers) accepts no more
MAX_SEED = 2**32 - 1


def check_seed(seed: Any, what: str = "seed") -> int:
    """``seed`` as an int in [0, 2³²−1]; anything else is a ConfigError."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"{what} must be an integer in [0, {MAX_SEED}], got {seed!r}")
    if not 0 <= int(seed) <= MAX_SEED:
        raise ConfigError(f"{what} must be an integer in [0, {MAX_SEED}], got {seed}")
    return int(seed)


def seed_everything(seed: int) -> np.random.Generator:
    """The one seeding call of an entry point: seeds python, numpy, torch; returns a Generator."""
    seed = check_seed(seed)
    import torch

    random.seed(int(seed))
    np.random.seed(int(seed) % (2**32))  # noqa: NPY002  (legacy global state of third-party code)
    torch.manual_seed(int(seed))
    return np.random.default_rng(int(seed))


def resolve_device(device: str | Any = "auto") -> Any:
    """``auto`` → cuda when available else cpu; ``cuda`` without a GPU is a ConfigError."""
    import torch

    if isinstance(device, torch.device):
        return device
    name = str(device)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("--device cuda was requested but no CUDA GPU is available")
        return torch.device(name)
    if name == "cpu":
        return torch.device("cpu")
    raise ConfigError(f"unknown device {name!r} (expected one of {', '.join(DEVICE_CHOICES)})")


def torch_generator(seed: int, device: Any = "cpu") -> Any:
    """A torch.Generator on ``device`` seeded with ``seed``."""
    import torch

    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def current_umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux /proc)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    old = os.umask(0o022)  # elsewhere: the classic set-and-restore
    os.umask(old)
    return old


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it over ``path`` only on success.

    The file ends with the mode a plain ``open(path, "w")`` would give (0666 minus the umask),
    not mkstemp's private 0600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TMP_SUFFIX, dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~current_umask())
        _kill_point("write", path)
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


TMP_SUFFIX = ".tmp"
#: fault injection for tests: SIGKILL self after writing the temporary file of an atomic write
#: to a file of this name (e.g. ``checkpoint.pt``), before the rename; once
#: ``PRL_KILL_WRITE_AFTER`` (default 0) earlier writes of that name have completed
KILL_WRITE_ENV = "PRL_KILL_WRITE"
_writes_seen: dict[str, int] = {}


def _kill_point(phase: str, path: Path) -> None:
    name = os.environ.get(KILL_WRITE_ENV)
    if not name or phase != "write" or path.name != name:
        return
    seen = _writes_seen.get(name, 0)
    if seen >= int(os.environ.get("PRL_KILL_WRITE_AFTER", "0") or 0):
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    _writes_seen[name] = seen + 1


def clean_stale_tmp(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove temporaries left in ``directory`` by atomic writes that were killed mid-way.

    Only call this while holding the directory's lock (:func:`dir_lock`): a live writer's
    temporary would otherwise be removed under it. Returns the removed paths.
    """
    removed = []
    d = Path(directory)
    if not d.is_dir():
        return removed
    for p in d.iterdir():
        if p.name.startswith(".") and p.name.endswith(TMP_SUFFIX) and p.is_file():
            with contextlib.suppress(OSError):
                p.unlink()
                removed.append(p)
    return removed


LOCK_NAME = ".lock"


@contextlib.contextmanager
def dir_lock(directory: str | os.PathLike[str], what: str = "directory") -> Iterator[Path]:
    """Hold an exclusive advisory lock on ``directory/.lock`` (ConfigError if another process
    holds it). The kernel drops the lock when the holder exits, even on SIGKILL."""
    import fcntl

    path = Path(directory) / LOCK_NAME
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                holder = os.pread(fd, 64, 0).decode(errors="replace").strip()
                by = f" (pid {holder})" if holder else ""
                raise ConfigError(
                    f"{what} {directory} is in use by another prl process{by}; "
                    "wait for it to finish or stop it"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield path
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def check_out_dir(path: str | os.PathLike[str], flag: str = "--out") -> Path:
    """Validate an output directory before any work, creating nothing: it must be a directory
    (or creatable: its nearest existing ancestor a writable directory) that we may write to."""
    p = Path(path)
    if str(path) == "" or "\x00" in str(path):
        raise ConfigError(f"{flag} must be a directory path, got {str(path)!r}")
    if p.exists():
        if not p.is_dir():
            raise ConfigError(f"{flag} {p} exists and is not a directory")
        if not os.access(p, os.W_OK | os.X_OK):
            raise ConfigError(f"{flag} {p} is not writable (permission denied or read-only)")
        if _read_only_fs(p):
            raise ConfigError(f"{flag} {p} is on a read-only file system")
        return p
    anc = p.absolute().parent
    while not anc.exists():
        anc = anc.parent
    if not anc.is_dir():
        raise ConfigError(f"{flag} {p} cannot be created: {anc} is not a directory")
    # an existing file on the way (a/file/b) shows up as the nearest existing "ancestor"
    if not os.access(anc, os.W_OK | os.X_OK):
        raise ConfigError(f"{flag} {p} cannot be created: {anc} is not writable")
    if _read_only_fs(anc):
        raise ConfigError(f"{flag} {p} cannot be created: {anc} is on a read-only file system")
    return p


def _read_only_fs(p: Path) -> bool:
    try:
        return bool(os.statvfs(p).f_flag & os.ST_RDONLY)
    except (OSError, AttributeError):
        return False


def read_text_file(path: str | os.PathLike[str], what: str) -> str:
    """The UTF-8 text of a user-given file; a missing, directory, unreadable or binary file is a
    ConfigError naming ``what`` (e.g. "config file", "sweep spec")."""
    p = Path(path)
    if not p.exists():
        raise ConfigError(f"{what} {p} does not exist")
    if p.is_dir():
        raise ConfigError(f"{what} {p} is a directory, not a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    if b"\x00" in data:
        raise ConfigError(f"{what} {p} is a binary file, not YAML text")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {p} is not UTF-8 text") from None


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically (write to a temporary file, then rename)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write JSON atomically, with sorted keys and indentation."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def _json_default(o: Any) -> Any:
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serializable: {type(o).__name__}")


def git_info(root: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The git commit and dirty flag of the source tree (``None`` outside a repository)."""
    root = Path(root) if root is not None else Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        if commit.returncode != 0:
            return {"commit": None, "dirty": None}
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return {"commit": commit.stdout.strip(), "dirty": bool(status.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def rng_state(rng: np.random.Generator) -> dict[str, Any]:
    """A JSON-able snapshot of a numpy Generator (restore with :func:`set_rng_state`)."""
    state = rng.bit_generator.state
    return json.loads(json.dumps(state, default=_json_default))


def set_rng_state(rng: np.random.Generator, state: dict[str, Any]) -> None:
    """Restore a numpy Generator snapshot taken by :func:`rng_state`."""
    rng.bit_generator.state = state


THREADS_ENV = "PRL_THREADS"
_THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask; os.cpu_count where unknown)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads(parallel: int = 1) -> int:
    """The thread count a run gets when none is asked for.

    One per process when ``parallel`` > 1 processes share the machine (sweep workers, pools);
    otherwise ``PRL_THREADS`` or ``OMP_NUM_THREADS`` when the user set one, else every available
    core. The count is recorded in the run's config.json and restored on resume, so the numbers
    of a run never depend on the environment it was resumed in.
    """
    if parallel > 1:
        return 1
    for var in (THREADS_ENV, "OMP_NUM_THREADS"):
        text = os.environ.get(var, "").strip()
        if text.isdigit() and int(text) > 0:
            return int(text)
    return available_cores()


def check_threads(n: Any, what: str = "threads") -> int:
    """``n`` as a positive int (ConfigError otherwise)."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or int(n) <= 0:
        raise ConfigError(f"{what} must be a positive integer, got {n!r}")
    return int(n)


def thread_env(n: int) -> dict[str, str]:
    """Environment variables that start a child process with ``n`` threads everywhere."""
    return {**{v: str(int(n)) for v in _THREAD_VARS}, THREADS_ENV: str(int(n))}


@contextlib.contextmanager
def run_threads(n: int) -> Iterator[None]:
    """Run a block with ``n`` threads in torch and in the BLAS/OpenMP pools numpy and torch load
    (threadpoolctl), restoring every setting afterwards."""
    import torch
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        with threadpool_limits(limits=int(n)):
            yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run a block with ``n`` intra-op torch threads, restoring the setting afterwards (tiny
    tensor ops are fastest single-threaded; on a shared CPU, threads spin and burn time)."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(old)


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[IO[str]]:
    """Send everything written to stdout — by Python code or, at file-descriptor level, by C
    libraries such as HiGHS — to stderr for the duration of the block.

    Yields the real stdout; write machine-readable output there *after* the block (or through the
    yielded stream, flushed), so that no library banner can ever mix into it.
    """
    real = sys.stdout
    with contextlib.suppress(Exception):
        real.flush()
    _libc_fflush()
    try:
        saved = os.dup(1)
    except OSError:  # no fd 1 at all: nothing to guard
        yield real
        return
    try:
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        try:
            yield real
        finally:
            sys.stdout = real
            with contextlib.suppress(Exception):
                sys.stderr.flush()
            _libc_fflush()  # C stdio buffers filled inside the block go to stderr too
            os.dup2(saved, 1)
    finally:
        os.close(saved)


def _libc_fflush() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)
