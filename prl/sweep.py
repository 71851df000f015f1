"""Sweeps: algorithms × environments × seeds × parameter grid, on a local pool or on Ray.

A spec (YAML, read with the safe loader)::

    name: demo                 # sweep directory name under out (default: the spec's stem)
    out: runs/sweeps           # parent directory (default: runs/sweeps)
    algos: [nash_md, nash_mp]  # required (prl list algos)
    envs: [dueling, {name: dueling, kwargs: {game: dice}}]   # required (prl list envs)
    seeds: [0, 1, 2]           # or an integer n meaning 0..n-1 (default [0])
    steps: 500                 # budget per run (default: the algorithm's full, paper budget)
    config: {opponents: 0}     # fixed config overrides (fields: prl run ALGO --help)
    grid: {beta: [0.1, 0.5]}   # cartesian product of config overrides
    checkpoint_every: 100
    retries: 1                 # a failed run is retried this many times
    device: cpu                # auto, cpu or cuda (checked when the spec is loaded)
    threads: 1                 # per run (default: 1 when workers run in parallel, else all cores)

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


def load_spec(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> SweepSpec:
    """Read and validate a sweep spec; malformed input raises ConfigError (nothing is written)."""
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
    return parse_spec(raw, default_name=path.stem, out=out)


def _as_list(v: Any, key: str) -> list[Any]:
    if v is None:
        raise ConfigError(f"sweep spec needs '{key}'")
    lst = v if isinstance(v, list) else [v]
    if not lst:
        raise ConfigError(f"sweep spec '{key}' is empty")
    return lst


def parse_spec(
    raw: dict[str, Any], default_name: str = "sweep", out: str | os.PathLike[str] | None = None
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
        ENVS.entry(name)
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
    resolve_device(device)  # cuda without a GPU: refused now, not after failed launches
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
        jobs.append(Job(job_id, algo, env, env_kw, int(seed), steps, config, params, ck, device))
    return SweepSpec(
        name=name, out=out_dir / name, jobs=jobs, retries=int(retries), threads=threads
    )


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


def _ray_runner(workers: int) -> Runner:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "the ray backend needs Ray: pip install 'prl-lab[ray]' (or use --backend local)"
        ) from None
    if not ray.is_initialized():
        address = os.environ.get("RAY_ADDRESS")
        if address:
            ray.init(address=address, ignore_reinit_error=True, log_to_driver=False)
        else:
            ray.init(
                num_cpus=workers,
                ignore_reinit_error=True,
                log_to_driver=False,
                include_dashboard=False,
                runtime_env={"env_vars": {"PYTHONPATH": _child_env()["PYTHONPATH"]}},
            )

    remote = ray.remote(num_cpus=1, max_retries=0)(execute_job)

    def run(job: Job, sweep_dir: Path, stopper: _Stopper) -> tuple[bool, dict[str, Any] | str]:
        if stopper.stopped:
            return False, INTERRUPTED
        ref = remote.remote(job.to_json(), str(sweep_dir))
        while not ray.wait([ref], timeout=0.2)[0]:
            if stopper.stopped:
                ray.cancel(ref, force=True)
                return False, INTERRUPTED
        try:
            return True, ray.get(ref)
        except Exception as exc:  # RayTaskError wraps the job's exception
            cause = getattr(exc, "cause", None) or exc
            return False, f"{type(cause).__name__}: {cause}".splitlines()[0]

    return run


def run_sweep(
    spec: SweepSpec,
    *,
    backend: str = "local",
    workers: int | None = None,
    echo: Callable[[str], None] | None = print,
    stopper: _Stopper | None = None,
) -> list[dict[str, Any]]:
    """Run every job (retrying failures), then write ``results.csv``/``results.json``.

    SIGTERM/SIGINT (or ``stopper.stop()``) stops the sweep cleanly: no new job, workers stopped
    and waited for, results written for what finished, then :class:`prl.errors.Interrupted`.
    ``FAILED`` lines go to stderr (when ``echo`` is set).
    """
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r} (expected local or ray)")
    workers = int(workers or max(1, min(len(spec.jobs), os.cpu_count() or 1)))
    if workers <= 0:
        raise ConfigError(f"--workers must be positive, got {workers}")
    check_out_dir(spec.out, "sweep directory")
    threads = spec.threads or (1 if workers > 1 else default_threads())
    jobs = [dataclasses.replace(j, threads=threads) for j in spec.jobs]
    runner: Runner = _ray_runner(workers) if backend == "ray" else _run_local_job
    spec.out.mkdir(parents=True, exist_ok=True)
    stopper = stopper or _Stopper()
    with dir_lock(spec.out, "sweep directory"), _stop_on_signals(stopper):
        rows = _run_jobs(spec, jobs, runner, workers, stopper, echo)
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
