"""Sweeps: algorithms × environments × seeds × parameter grid, on a local pool or on Ray.

A spec (YAML, read with the safe loader)::

    name: demo                 # sweep directory name under out (default: the spec's stem)
    out: runs/sweeps           # parent directory (default: runs/sweeps)
    algos: [nash_md, nash_mp]  # required (prl list algos)
    envs: [dueling, {name: dueling, kwargs: {game: dice}}]   # required (prl list envs); gymnasium
                               # ids (CartPole-v1) too when every algorithm is SB3-based
    seeds: [0, 1, 2]           # or an integer n meaning 0..n-1 (default [0])
    steps: 500                 # budget per run (default: the algorithm's full, paper budget)
    config: {opponents: 0}     # fixed config overrides (fields: prl run ALGO --help)
    grid: {beta: [0.1, 0.5]}   # cartesian product of config overrides
    checkpoint_every: 100
    retries: 1                 # a failed run is retried this many times
    device: cpu                # auto, cpu or cuda (checked when the spec is loaded; on Ray,
                               # against the cluster: each cuda job asks Ray for one GPU)
    threads: 1                 # per run (default: 1 when workers run in parallel, else all
                               # cores; on Ray: 1) — also the CPUs a Ray task asks for
    tensorboard: false         # true: TensorBoard events (and SB3's logger) per job in tb/JOB

Runnable specs live in ``examples/`` (``prl sweep examples/sweep_nash_dueling.yaml``).

Everything — names, config fields and values of every grid point, environment arguments,
device — is validated when the spec is loaded, before any worker starts. Each run gets a fixed
directory ``{out}/{name}/runs/{job_id}``; re-running the sweep skips finished runs and resumes
interrupted ones. The local backend runs each job in its own process, so a crashed or killed
worker fails only its job. Results — one row per job with its status (ok, failed or
interrupted), error, attempts and final metrics — are gathered into ``results.csv``.

SIGTERM or Ctrl-C stops the sweep cleanly: no new job starts, running workers are stopped
(SIGTERM, then SIGKILL after a grace period) and waited for, ``results.csv`` is written for
what finished, and the command exits with 128 + the signal number. A lock file keeps two
sweeps out of one sweep directory (and each run directory has its own lock).

The Ray backend (``--backend ray``; ``RAY_ADDRESS`` names the cluster) submits every job at
once as a plain Ray task asking for its threads as CPUs and a GPU for ``device: cuda``, so the
cluster's resources set the concurrency; the driver resubmits failed attempts (``retries``).
Each job runs in a node-local directory seeded with its run directory so far and sends back
the files it wrote, which the driver writes into the sweep directory — the same layout, resume
and bytes as the local backend — unless the sweep directory is on shared storage
(``shared_storage`` / ``--shared-storage`` / ``PRL_SHARED_STORAGE=1``), where jobs write
directly. See docs/toolchains.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import itertools
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml

from prl.config import build_config
from prl.errors import ConfigError, Interrupted
from prl.registry import ALGOS, ENVS, load_plugins
from prl.utils import (
    DEVICE_CHOICES,
    atomic_path,
    atomic_write_json,
    check_out_dir,
    check_seed,
    check_threads,
    default_threads,
    dir_lock,
    read_text_file,
    resolve_device,
    thread_env,
)

KILL_JOB_ENV = "PRL_KILL_JOB"  # fault injection for tests: SIGKILL workers of matching jobs

SPEC_KEYS = {
    "name",
    "out",
    "algos",
    "envs",
    "seeds",
    "steps",
    "config",
    "grid",
    "checkpoint_every",
    "retries",
    "device",
    "env_kwargs",
    "threads",
    "tensorboard",
}
STOP_GRACE_S = 5.0  # a stopped worker gets this long after SIGTERM before SIGKILL


@dataclasses.dataclass(frozen=True)
class Job:
    """One run of a sweep."""

    job_id: str
    algo: str
    env: str
    env_kwargs: dict[str, Any]
    seed: int
    steps: int | None
    config: dict[str, Any]
    params: dict[str, Any]
    checkpoint_every: int | None
    device: str
    threads: int | None = None  # set by run_sweep (not part of the job's identity)
    tensorboard: bool = False  # TensorBoard events under {sweep}/tb/{job_id} (not identity)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SweepSpec:
    """A validated sweep specification."""

    name: str
    out: Path
    jobs: list[Job]
    retries: int
    threads: int | None = None


def load_spec(
    path: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    backend: str = "local",
) -> SweepSpec:
    """Read and validate a sweep spec; malformed input raises ConfigError (nothing is written).

    ``backend="ray"``: ``device: cuda`` is checked against the Ray cluster's GPUs when the
    sweep starts, not against this machine (a cluster's head node often has none).
    """
    path = Path(path)
    text = read_text_file(path, "sweep spec")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        loc = f" at line {where.line + 1}" if where is not None else ""
        raise ConfigError(
            f"malformed YAML in {path}{loc}: {getattr(exc, 'problem', exc)}"
        ) from None
    if not isinstance(raw, dict):
        raise ConfigError(f"sweep spec {path} must be a mapping with at least 'algos' and 'envs'")
    return parse_spec(raw, default_name=path.stem, out=out, backend=backend)


def _as_list(v: Any, key: str) -> list[Any]:
    if v is None:
        raise ConfigError(f"sweep spec needs '{key}'")
    lst = v if isinstance(v, list) else [v]
    if not lst:
        raise ConfigError(f"sweep spec '{key}' is empty")
    return lst


def parse_spec(
    raw: dict[str, Any],
    default_name: str = "sweep",
    out: str | os.PathLike[str] | None = None,
    backend: str = "local",
) -> SweepSpec:
    """Expand a spec mapping into jobs, validating names and structure up front."""
    unknown = sorted(set(raw) - SPEC_KEYS)
    if unknown:
        raise ConfigError(
            f"unknown sweep spec key(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(SPEC_KEYS))})"
        )
    load_plugins()
    algos = [str(a) for a in _as_list(raw.get("algos"), "algos")]
    for a in algos:
        ALGOS.entry(a)
    envs: list[tuple[str, dict[str, Any]]] = []
    base_env_kwargs = raw.get("env_kwargs") or {}
    if not isinstance(base_env_kwargs, dict):
        raise ConfigError("sweep spec 'env_kwargs' must be a mapping")
    for e in _as_list(raw.get("envs"), "envs"):
        if isinstance(e, str):
            envs.append((e, dict(base_env_kwargs)))
        elif isinstance(e, dict) and "name" in e and set(e) <= {"name", "kwargs"}:
            kw = e.get("kwargs") or {}
            if not isinstance(kw, dict):
                raise ConfigError(f"env {e['name']!r}: 'kwargs' must be a mapping")
            envs.append((str(e["name"]), {**base_env_kwargs, **kw}))
        else:
            raise ConfigError(f"each env must be a name or {{name:, kwargs:}}, got {e!r}")
    for name, _ in envs:
        _check_env_name(name, algos)
    seeds_raw = raw.get("seeds", [0])
    if isinstance(seeds_raw, int) and not isinstance(seeds_raw, bool):
        if seeds_raw <= 0:
            raise ConfigError(f"'seeds' as a count must be positive, got {seeds_raw}")
        seeds = list(range(seeds_raw))
    else:
        seeds = _as_list(seeds_raw, "seeds")
        for sd in seeds:
            check_seed(sd, "each of 'seeds'")
    steps = raw.get("steps")
    if steps is not None and (isinstance(steps, bool) or not isinstance(steps, int) or steps <= 0):
        raise ConfigError(f"'steps' must be a positive integer, got {steps!r}")
    ck = raw.get("checkpoint_every")
    if ck is not None and (isinstance(ck, bool) or not isinstance(ck, int) or ck <= 0):
        raise ConfigError(f"'checkpoint_every' must be a positive integer, got {ck!r}")
    retries = raw.get("retries", 1)
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ConfigError(f"'retries' must be a non-negative integer, got {retries!r}")
    fixed = raw.get("config") or {}
    grid = raw.get("grid") or {}
    if not isinstance(fixed, dict) or not isinstance(grid, dict):
        raise ConfigError("'config' and 'grid' must be mappings")
    grid_items = [(k, v if isinstance(v, list) else [v]) for k, v in grid.items()]
    if any(len(v) == 0 for _, v in grid_items):
        raise ConfigError("every 'grid' entry needs at least one value")
    device = raw.get("device", "cpu")
    if device not in DEVICE_CHOICES:
        raise ConfigError(
            f"sweep spec 'device' must be one of {', '.join(DEVICE_CHOICES)}, got {device!r}"
        )
    if not (backend == "ray" and device == "cuda"):
        resolve_device(device)  # cuda without a GPU: refused now, not after failed launches
    tensorboard = raw.get("tensorboard", False)
    if not isinstance(tensorboard, bool):
        raise ConfigError(f"sweep spec 'tensorboard' must be true or false, got {tensorboard!r}")
    if tensorboard:
        from prl.run import _check_tensorboard

        _check_tensorboard(".")  # the optional extra is installed
    threads = raw.get("threads")
    if threads is not None:
        threads = check_threads(threads, "sweep spec 'threads'")
    name = _check_name(raw.get("name", default_name))
    out_raw = out if out is not None else raw.get("out", "runs/sweeps")
    if not isinstance(out_raw, (str, os.PathLike)) or not str(out_raw):
        raise ConfigError(f"sweep 'out' must be a directory path, got {out_raw!r}")
    out_dir = Path(out_raw)
    _validate_jobs(algos, envs, fixed, grid_items)
    jobs = []
    for algo, (env, env_kw), combo, seed in itertools.product(
        algos, envs, itertools.product(*[v for _, v in grid_items]), seeds
    ):
        params = {k: v for (k, _), v in zip(grid_items, combo)}
        config = {**fixed, **params}
        key = json.dumps([algo, env, env_kw, config, seed], sort_keys=True, default=str)
        digest = hashlib.sha1(key.encode()).hexdigest()[:8]
        job_id = f"{algo}__{env}__{seed}__{digest}"
        jobs.append(
            Job(
                job_id,
                algo,
                env,
                env_kw,
                int(seed),
                steps,
                config,
                params,
                ck,
                device,
                tensorboard=tensorboard,
            )
        )
    return SweepSpec(
        name=name, out=out_dir / name, jobs=jobs, retries=int(retries), threads=threads
    )


def _check_env_name(env: str, algos: list[str]) -> None:
    """A registry name, or a gymnasium id when every algorithm of the spec takes those
    (the SB3-based learners: ``prl.run._validate_env``)."""
    from prl.run import _is_gymnasium_id, _validate_env

    if env in ENVS:
        return
    if not _is_gymnasium_id(env):
        ENVS.entry(env)  # unknown environment: the registry's error, with suggestions
    for algo in algos:
        cls = ALGOS.get(algo)
        if not getattr(cls, "gymnasium_ids", False):
            raise ConfigError(
                f"sweep spec: {algo} runs only on the lab's environments (prl list envs); "
                f"{env!r} is a gymnasium id, which only the SB3-based learners take"
            )
        _validate_env(env, cls)


def _check_name(name: Any) -> str:
    """A sweep name is one plain directory name: it can never point outside ``out``."""
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise ConfigError(f"sweep name must be a plain directory name, got {name!r}")
    name = str(name)
    bad = (
        not name
        or name in (".", "..")
        or any(c in name for c in ("/", "\\", "\x00"))
        or (os.altsep is not None and os.altsep in name)
        or Path(name).is_absolute()
        or name.startswith(".")
    )
    if bad:
        raise ConfigError(
            f"sweep name must be a plain directory name (no '/', '..' or leading '.'), got {name!r}"
        )
    return name


def _validate_jobs(
    algos: list[str],
    envs: list[tuple[str, dict[str, Any]]],
    fixed: dict[str, Any],
    grid_items: list[tuple[str, list[Any]]],
) -> None:
    """Every grid point's config and every environment's arguments, checked at load time."""
    from prl.run import _probe_env

    for algo in algos:
        cls = ALGOS.get(algo)
        for combo in itertools.product(*[v for _, v in grid_items]):
            config = {**fixed, **{k: v for (k, _), v in zip(grid_items, combo)}}
            try:
                build_config(cls.Config, config)
            except ConfigError as exc:
                shown = ", ".join(f"{k}={v!r}" for k, v in config.items()) or "defaults"
                raise ConfigError(f"sweep spec: {algo} with {shown}: {exc}") from None
        for env, kw in envs:
            cls.check_env(env, kw)
    probed: list[Any] = []
    for env, kw in envs:
        key = [env, kw]
        if key not in probed:
            probed.append(key)
            _probe_env(env, kw)


# ---------------------------------------------------------------------------------------------
# executing one job (in a worker process, or a Ray task)


def execute_job(job: dict[str, Any], sweep_dir: str) -> dict[str, Any]:
    """Run (or resume, or just read back) one job; return its final metrics."""
    if job.get("figure"):  # a piece of a figure (prl.store.FigureJob)
        from prl.store import execute_piece_job

        return execute_piece_job(job, sweep_dir)
    from prl.run import run_experiment

    run_dir = Path(sweep_dir) / "runs" / job["job_id"]
    resume: Any = run_dir if (run_dir / "config.json").exists() else False
    # a finished run is read back (a no-op), an interrupted one resumed with its recorded
    # settings (threads included: how many workers run now does not change its numbers)
    res = run_experiment(
        job["algo"],
        job["env"],
        seed=job["seed"],
        steps=job["steps"],
        device=None if resume else job["device"],
        config=job["config"],
        env_kwargs=job["env_kwargs"],
        checkpoint_every=job["checkpoint_every"],
        threads=None if resume else job.get("threads"),
        resume=resume,
        run_dir=None if resume else run_dir,
        progress=False,
        tensorboard=Path(sweep_dir) / "tb" if job.get("tensorboard") else None,
    )
    return res.final


def _worker_main(argv: list[str]) -> int:
    """``python -m prl.sweep JOB.json RESULT.json SWEEP_DIR``: the local backend's worker."""
    job_file, result_file, sweep_dir = argv
    job = json.loads(Path(job_file).read_text())
    doomed = os.environ.get(KILL_JOB_ENV)
    if doomed and doomed in job["job_id"]:  # fault injection for tests: a worker that dies
        import signal

        os.kill(os.getpid(), signal.SIGKILL)
    try:
        final = execute_job(job, sweep_dir)
    except Exception as exc:
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        print(msg, file=sys.stderr)
        return 3
    atomic_write_json(result_file, final)
    return 0


def _child_env(threads: int | None = None) -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    if threads is not None:
        env.update(thread_env(threads))
    else:
        env.setdefault("OMP_NUM_THREADS", "1")
    return env


class _Stopper:
    """The sweep's stop flag, set by SIGTERM/SIGINT (or by a caller) and polled by job threads."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum = 0

    def stop(self, signum: int = signal.SIGTERM) -> None:
        self.signum = self.signum or int(signum)
        self.event.set()

    @property
    def stopped(self) -> bool:
        return self.event.is_set()


Runner = Callable[[Job, Path, _Stopper], tuple[bool, dict[str, Any] | str]]
INTERRUPTED = "interrupted"


def _signal_group(proc: subprocess.Popen[str], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, sig)  # the worker leads its own session: its children go too


def _run_local_job(
    job: Job, sweep_dir: Path, stopper: _Stopper | None = None
) -> tuple[bool, dict[str, Any] | str]:
    stopper = stopper or _Stopper()
    work = sweep_dir / "jobs"
    work.mkdir(parents=True, exist_ok=True)
    jf, rf = work / f"{job.job_id}.json", work / f"{job.job_id}.result.json"
    rf.unlink(missing_ok=True)
    atomic_write_json(jf, job.to_json())
    if stopper.stopped:
        return False, INTERRUPTED
    proc = subprocess.Popen(
        [sys.executable, "-m", "prl.sweep", str(jf), str(rf), str(sweep_dir)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_child_env(job.threads),
        start_new_session=True,  # Ctrl-C reaches the sweep only; it stops the workers itself
    )
    stopped_at: float | None = None
    while True:
        try:
            _, err = proc.communicate(timeout=0.2)
            break
        except subprocess.TimeoutExpired:
            if stopper.stopped:
                if stopped_at is None:
                    stopped_at = time.monotonic()
                    _signal_group(proc, signal.SIGTERM)
                elif time.monotonic() - stopped_at > STOP_GRACE_S:
                    _signal_group(proc, signal.SIGKILL)
    if stopped_at is not None:
        return False, INTERRUPTED
    if proc.returncode == 0 and rf.exists():
        return True, json.loads(rf.read_text())
    lines = [ln for ln in (err or "").strip().splitlines() if ln.strip()]
    if proc.returncode < 0:
        why = f"worker killed by signal {-proc.returncode}"
    else:
        why = lines[-1] if lines else f"worker exited with status {proc.returncode}"
    return False, why


# ---------------------------------------------------------------------------------------------
# the Ray backend: one Ray task per job, all submitted at once, scheduled by cluster resources

SHARED_STORAGE_ENV = "PRL_SHARED_STORAGE"  # "1": the sweep directory is on storage every node sees
RayFiles = list[tuple[str, str, bytes]]  # (root, path relative to the root, bytes)


def _ray_init(workers: int | None) -> Any:
    """Ray, connected: to the caller's session, else the cluster at ``RAY_ADDRESS``, else a
    local instance of ``workers`` CPUs (default: all of this machine's)."""
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the ray backend needs Ray: pip install 'prl-lab[ray]' (or use --backend local)"
        ) from None
    if ray.is_initialized():
        return ray
    address = os.environ.get("RAY_ADDRESS")
    try:
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers,
                include_dashboard=False,
                log_to_driver=False,
                runtime_env={"env_vars": {"PYTHONPATH": _child_env()["PYTHONPATH"]}},
            )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at RAY_ADDRESS={address}" if address else "a local Ray instance"
        raise ConfigError(f"cannot start or reach {where}: {exc}".splitlines()[0]) from None
    return ray


def ray_task_options(job: Job) -> dict[str, Any]:
    """The Ray resources of one job: its thread count in CPUs and, for ``device: cuda``, one GPU
    (Ray then runs it on a node with a free GPU and sets ``CUDA_VISIBLE_DEVICES``). Ray itself
    does not retry: the driver resubmits a failed job (``retries``), counting attempts."""
    return {
        "num_cpus": int(job.threads or 1),
        "num_gpus": 1 if job.device == "cuda" else 0,
        "max_retries": 0,
        "retry_exceptions": False,
        "name": f"prl-sweep:{job.job_id}",
    }


def _check_cluster(ray: Any, jobs: list[Job]) -> None:
    """Refuse, before any job, what no node of the cluster can run (it would wait forever)."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    cpus = max((float(r.get("CPU", 0)) for r in nodes), default=0.0)
    need = max((int(j.threads or 1) for j in jobs), default=1)
    if need > cpus:
        raise ConfigError(
            f"each job asks for {need} CPUs (its threads) but the largest node of the Ray "
            f"cluster has {cpus:g}; lower the spec's 'threads'"
        )
    if any(j.device == "cuda" for j in jobs) and not any(float(r.get("GPU", 0)) for r in nodes):
        raise ConfigError("sweep spec has device: cuda, but the Ray cluster has no GPU")


def _job_parts(job: dict[str, Any]) -> list[tuple[str, str]]:
    """What a job reads and writes, as (root, relative path): its run directory and TensorBoard
    directory under the sweep directory, and for a figure piece its CSV under the figure's out."""
    jid = job["job_id"]
    parts = [("sweep", f"runs/{jid}"), ("sweep", f"tb/{jid}")]
    if job.get("figure") and job.get("key") and job["key"] != _plan_key():
        parts.append(("out", f".cache/{job['figure']}/{job['tier']}/{job['key']}.csv"))
    return parts


def _plan_key() -> str:
    from prl.store import PLAN_KEY

    return PLAN_KEY


def _read_parts(job: dict[str, Any], roots: dict[str, Path]) -> RayFiles:
    """The bytes of every file of :func:`_job_parts` under ``roots`` (no locks, no temporaries)."""
    found: RayFiles = []
    for root, rel in _job_parts(job):
        if root not in roots:
            continue
        base = roots[root]
        path = base / rel
        files = [path] if path.is_file() else sorted(path.rglob("*")) if path.is_dir() else []
        for f in files:
            if f.is_file() and not f.name.startswith("."):
                found.append((root, f.relative_to(base).as_posix(), f.read_bytes()))
    return found


def _swap_prefix(obj: Any, old: str, new: str) -> Any:
    """``obj`` with every string path under ``old`` moved under ``new`` (dicts, lists)."""
    if isinstance(obj, str) and (obj == old or obj.startswith(old + os.sep)):
        return new + obj[len(old) :]
    if isinstance(obj, dict):
        return {k: _swap_prefix(v, old, new) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_swap_prefix(v, old, new) for v in obj]
    return obj


def _ray_job(
    job: dict[str, Any], sweep_dir: str, inputs: RayFiles | None, doomed: str | None
) -> dict[str, Any]:
    """One job in a Ray worker. ``inputs`` None: the sweep directory is shared storage, the job
    runs there. Otherwise it runs in a node-local temporary directory seeded with ``inputs``
    (the run directory so far: a resume continues from its checkpoint) and returns the files it
    changed or added, and those it deleted, for the driver to write into the sweep directory."""
    if doomed and doomed in job["job_id"]:  # fault injection for tests: a worker that dies
        os.kill(os.getpid(), signal.SIGKILL)
    import platform
    import shutil
    import tempfile

    where = {"node": platform.node(), "pid": os.getpid()}
    if inputs is None:
        return {"final": execute_job(job, sweep_dir), "files": None, "deleted": [], **where}
    tmp = Path(tempfile.mkdtemp(prefix="prl-ray-"))
    try:
        roots = {"sweep": tmp / "sweep"}
        swaps = [(str(roots["sweep"]), sweep_dir)]
        local = dict(job)
        if job.get("figure"):
            roots["out"] = tmp / "out"
            local["out"] = str(roots["out"])
            swaps.append((str(roots["out"]), job["out"]))
        for root, rel, data in inputs:
            path = roots[root] / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        final = execute_job(local, str(roots["sweep"]))
        given = {(root, rel): hashlib.sha256(data).digest() for root, rel, data in inputs}
        now = _read_parts(local, roots)
        files = [f for f in now if given.get(f[:2]) != hashlib.sha256(f[2]).digest()]
        kept = {f[:2] for f in now}
        deleted = [k for k in given if k not in kept]
        for old, new in swaps:
            final = _swap_prefix(final, old, new)
        return {"final": final, "files": files, "deleted": deleted, **where}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _job_roots(job: Job, sweep_dir: Path) -> dict[str, Path]:
    roots = {"sweep": sweep_dir}
    if isinstance(job, Job) and getattr(job, "figure", ""):
        roots["out"] = Path(job.out)  # type: ignore[attr-defined]
    return roots


def _write_back(job: Job, sweep_dir: Path, res: dict[str, Any]) -> None:
    """Write a job's returned files into the sweep directory (final.json last: it marks the job
    finished), and delete what the job deleted."""
    roots = _job_roots(job, sweep_dir)
    for root, rel in res["deleted"]:
        (roots[root] / rel).unlink(missing_ok=True)
    for root, rel, data in sorted(res["files"], key=lambda f: f[1].endswith("final.json")):
        if root not in roots or ".." in Path(rel).parts or Path(rel).is_absolute():
            raise RuntimeError(f"a Ray worker returned a path outside the job: {root}/{rel}")
        path = roots[root] / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)


def _ray_error(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None) or exc  # RayTaskError wraps the job's exception
    return f"{type(cause).__name__}: {cause}".strip().splitlines()[0]


def _run_ray(
    spec: SweepSpec,
    jobs: list[Job],
    ray: Any,
    stopper: _Stopper,
    echo: Callable[[str], None] | None,
    shared: bool,
) -> list[dict[str, Any]]:
    """Submit every job at once as a Ray task; Ray runs as many as the cluster's CPUs and GPUs
    allow. A failed attempt is resubmitted up to ``spec.retries`` times; results are written
    back into the sweep directory as they arrive."""
    from tqdm.auto import tqdm

    task = ray.remote(_ray_job)
    doomed = os.environ.get(KILL_JOB_ENV) or None
    sweep_dir = spec.out.resolve()
    pending: dict[Any, Job] = {}
    errors: dict[str, list[str]] = {j.job_id: [] for j in jobs}
    t0 = {j.job_id: time.perf_counter() for j in jobs}
    rows: dict[str, dict[str, Any]] = {}

    def submit(job: Job) -> None:
        inputs = None if shared else _read_parts(job.to_json(), _job_roots(job, sweep_dir))
        opts = ray_task_options(job)
        ref = task.options(**opts).remote(job.to_json(), str(sweep_dir), inputs, doomed)
        pending[ref] = job

    def secs(job: Job) -> float:
        return time.perf_counter() - t0[job.job_id]

    for j in jobs:
        submit(j)
    bar = tqdm(total=len(jobs), desc=spec.name, leave=False, disable=None)
    try:
        while pending and not stopper.stopped:
            ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=0.2)
            for ref in ready:
                job = pending.pop(ref)
                try:
                    res = ray.get(ref)
                    if res["files"] is not None:
                        _write_back(job, sweep_dir, res)
                    elif not (sweep_dir / "runs" / job.job_id / "final.json").exists():
                        raise RuntimeError(
                            f"job finished on node {res['node']} but its run directory is not "
                            f"in {sweep_dir} here: is the sweep directory on storage every "
                            "node sees? (else run without --shared-storage)"
                        )
                except Exception as exc:
                    errors[job.job_id].append(_ray_error(exc))
                    if len(errors[job.job_id]) <= spec.retries and not stopper.stopped:
                        submit(job)
                        continue
                    err = errors[job.job_id]
                    row = _row(job, "failed", len(err), err[-1], secs(job), {}, spec.out)
                    if echo is not None:
                        print(
                            f"FAILED {job.job_id} after {len(err)} attempts: {err[-1]}",
                            file=sys.stderr,
                        )
                else:
                    n = len(errors[job.job_id]) + 1
                    row = _row(job, "ok", n, "", secs(job), res["final"], spec.out)
                    row["node"] = res["node"]
                rows[job.job_id] = row
                bar.update(1)
    finally:
        bar.close()
        for ref in pending:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=True)
        for job in pending.values():
            n = len(errors[job.job_id]) + 1
            rows[job.job_id] = _row(job, INTERRUPTED, n, "stopped", secs(job), {}, spec.out)
    return [rows[j.job_id] for j in jobs]


def run_sweep(
    spec: SweepSpec,
    *,
    backend: str = "local",
    workers: int | None = None,
    echo: Callable[[str], None] | None = print,
    stopper: _Stopper | None = None,
    shared_storage: bool | None = None,
) -> list[dict[str, Any]]:
    """Run every job (retrying failures), then write ``results.csv``/``results.json``.

    ``backend="ray"``: every job is a Ray task submitted at once (:func:`_run_ray`), with its
    threads as CPUs and one GPU for ``device: cuda``; ``workers`` only sizes a local Ray
    instance started when there is no cluster (``RAY_ADDRESS``). Its files come back to this
    process, which writes them into the sweep directory, unless ``shared_storage`` (default:
    ``PRL_SHARED_STORAGE=1``) says every node sees that directory, where jobs then write.

    SIGTERM/SIGINT (or ``stopper.stop()``) stops the sweep cleanly: no new job, workers stopped
    and waited for, results written for what finished, then :class:`prl.errors.Interrupted`.
    ``FAILED`` lines go to stderr (when ``echo`` is set).
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r} (expected local or ray)")
    if workers is not None and (isinstance(workers, bool) or int(workers) <= 0):
        raise ConfigError(f"--workers must be positive, got {workers}")
    check_out_dir(spec.out, "sweep directory")
    stopper = stopper or _Stopper()
    if backend == "ray":
        if shared_storage is None:
            shared_storage = os.environ.get(SHARED_STORAGE_ENV, "") == "1"
        ray = _ray_init(workers)  # before any file: a cluster that cannot be reached is exit 2
        jobs = [dataclasses.replace(j, threads=spec.threads or 1) for j in spec.jobs]
        _check_cluster(ray, jobs)
    else:
        workers = int(workers or max(1, min(len(spec.jobs), os.cpu_count() or 1)))
        threads = spec.threads or (1 if workers > 1 else default_threads())
        jobs = [dataclasses.replace(j, threads=threads) for j in spec.jobs]
    spec.out.mkdir(parents=True, exist_ok=True)
    with dir_lock(spec.out, "sweep directory"), _stop_on_signals(stopper):
        if backend == "ray":
            rows = _run_ray(spec, jobs, ray, stopper, echo, bool(shared_storage))
        else:
            rows = _run_jobs(spec, jobs, _run_local_job, int(workers), stopper, echo)
        _write_results(rows, spec.out)
    n_ok = sum(r["status"] == "ok" for r in rows)
    where = spec.out / "results.csv"
    if stopper.stopped:
        name = signal.Signals(stopper.signum).name if stopper.signum else "a stop request"
        raise Interrupted(
            f"sweep {spec.name} stopped by {name}: {n_ok}/{len(rows)} runs finished, results "
            f"in {where}; run the sweep again to resume",
            stopper.signum or signal.SIGTERM,
        )
    if echo is not None:
        echo(f"{n_ok}/{len(rows)} runs finished; results in {where}")
    return rows


@contextlib.contextmanager
def _stop_on_signals(stopper: _Stopper) -> Any:
    """While the sweep runs, SIGTERM and SIGINT set the stop flag instead of killing it (only
    possible in the main thread; elsewhere the caller's handlers stay)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    sigs = (signal.SIGTERM, signal.SIGINT)
    old = {s: signal.getsignal(s) for s in sigs}
    for s in sigs:
        signal.signal(s, lambda signum, frame: stopper.stop(signum))
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _run_jobs(
    spec: SweepSpec,
    jobs: list[Job],
    runner: Runner,
    workers: int,
    stopper: _Stopper,
    echo: Callable[[str], None] | None,
) -> list[dict[str, Any]]:
    results: dict[str, dict[str, Any]] = {}

    def attempt(job: Job) -> dict[str, Any]:
        t0 = time.perf_counter()
        errors: list[str] = []
        for k in range(spec.retries + 1):
            if stopper.stopped:
                return _row(job, INTERRUPTED, k, "stopped", time.perf_counter() - t0, {}, spec.out)
            ok, payload = runner(job, spec.out, stopper)
            if ok:
                assert isinstance(payload, dict)
                return _row(job, "ok", k + 1, "", time.perf_counter() - t0, payload, spec.out)
            if stopper.stopped or payload == INTERRUPTED:
                return _row(
                    job, INTERRUPTED, k + 1, "stopped", time.perf_counter() - t0, {}, spec.out
                )
            errors.append(str(payload))
        return _row(job, "failed", len(errors), errors[-1], time.perf_counter() - t0, {}, spec.out)

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(attempt, j): j for j in jobs}
        bar = tqdm(
            as_completed(futures), total=len(futures), desc=spec.name, leave=False, disable=None
        )
        for fut in bar:
            row = fut.result()
            results[row["job_id"]] = row
            if echo is not None and row["status"] == "failed":
                print(
                    f"FAILED {row['job_id']} after {row['attempts']} attempts: {row['error']}",
                    file=sys.stderr,
                )
    return [results[j.job_id] for j in jobs]


def _row(
    job: Job,
    status: str,
    attempts: int,
    error: str,
    secs: float,
    final: dict[str, Any],
    sweep_dir: Path,
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "job_id": job.job_id,
        "algo": job.algo,
        "env": job.env,
        "seed": job.seed,
        **{f"param.{k}": v for k, v in job.params.items()},
        "status": status,
        "attempts": attempts,
        "error": error,
        "seconds": round(secs, 3),
        "run_dir": str(sweep_dir / "runs" / job.job_id),
    }
    row.update({f"final.{k}": v for k, v in final.items()})
    return row


def _write_results(rows: list[dict[str, Any]], out: Path) -> None:
    import pandas as pd

    df = pd.DataFrame(rows)
    with atomic_path(out / "results.csv") as tmp:
        df.to_csv(tmp, index=False)
    atomic_write_json(out / "results.json", rows)


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv[1:]))
