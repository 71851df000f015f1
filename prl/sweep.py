"""Sweeps: algorithms × environments × seeds × parameter grid, on a local pool or on Ray.

A spec (YAML, read with the safe loader)::

    name: demo                 # sweep directory name (default: the spec file's stem)
    out: runs/sweeps           # parent directory (default: runs/sweeps)
    algos: [nash_md, nash_mp]  # required (prl list algos)
    envs: [dueling, {name: dueling, kwargs: {game: dice}}]   # required (prl list envs)
    seeds: [0, 1, 2]           # or an integer n meaning 0..n-1 (default [0])
    steps: 500                 # budget per run (default: the algorithm's full, paper budget)
    config: {opponents: 0}     # fixed config overrides (fields: prl run ALGO --help)
    grid: {beta: [0.1, 0.5]}   # cartesian product of config overrides
    checkpoint_every: 100
    retries: 1                 # a failed run is retried this many times

Runnable specs live in ``examples/`` (``prl sweep examples/sweep_nash_dueling.yaml``).

Each run gets a fixed directory ``{out}/{name}/runs/{job_id}``; re-running the sweep skips
finished runs and resumes interrupted ones. The local backend runs each job in its own
process, so a crashed or killed worker fails only its job. Results — one row per job with its
status, error, attempts and final metrics — are gathered into ``results.csv``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Any

import yaml

from prl.errors import ConfigError
from prl.registry import ALGOS, ENVS, load_plugins
from prl.utils import atomic_path, atomic_write_json

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
}


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

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass
class SweepSpec:
    """A validated sweep specification."""

    name: str
    out: Path
    jobs: list[Job]
    retries: int


def load_spec(path: str | os.PathLike[str], out: str | os.PathLike[str] | None = None) -> SweepSpec:
    """Read and validate a sweep spec; malformed input raises ConfigError (nothing is written)."""
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"sweep spec {path} does not exist")
    try:
        raw = yaml.safe_load(path.read_text())
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
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ConfigError(f"'seeds' must be non-negative integers, got {seeds_raw!r}")
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
    device = str(raw.get("device", "cpu"))
    name = str(raw.get("name", default_name))
    if not name or "/" in name:
        raise ConfigError(f"sweep name must be a plain directory name, got {name!r}")
    out_dir = Path(out) if out is not None else Path(str(raw.get("out", "runs/sweeps")))
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
    return SweepSpec(name=name, out=out_dir / name, jobs=jobs, retries=int(retries))


# ---------------------------------------------------------------------------------------------
# executing one job (in a worker process, or a Ray task)


def execute_job(job: dict[str, Any], sweep_dir: str) -> dict[str, Any]:
    """Run (or resume, or just read back) one job; return its final metrics."""
    from prl.run import run_experiment

    run_dir = Path(sweep_dir) / "runs" / job["job_id"]
    final_path = run_dir / "final.json"
    if final_path.exists():
        return json.loads(final_path.read_text())
    resume: Any = run_dir if (run_dir / "config.json").exists() else False
    res = run_experiment(
        job["algo"],
        job["env"],
        seed=job["seed"],
        steps=job["steps"],
        device=job["device"],
        config=job["config"],
        env_kwargs=job["env_kwargs"],
        checkpoint_every=job["checkpoint_every"],
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


def _child_env() -> dict[str, str]:
    env = dict(os.environ)
    root = str(Path(__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH", "")) if p)
    env.setdefault("OMP_NUM_THREADS", "1")
    return env


def _run_local_job(job: Job, sweep_dir: Path) -> tuple[bool, dict[str, Any] | str]:
    work = sweep_dir / "jobs"
    work.mkdir(parents=True, exist_ok=True)
    jf, rf = work / f"{job.job_id}.json", work / f"{job.job_id}.result.json"
    rf.unlink(missing_ok=True)
    atomic_write_json(jf, job.to_json())
    proc = subprocess.run(
        [sys.executable, "-m", "prl.sweep", str(jf), str(rf), str(sweep_dir)],
        capture_output=True,
        text=True,
        env=_child_env(),
    )
    if proc.returncode == 0 and rf.exists():
        return True, json.loads(rf.read_text())
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    if proc.returncode < 0:
        why = f"worker killed by signal {-proc.returncode}"
    else:
        why = lines[-1] if lines else f"worker exited with status {proc.returncode}"
    return False, why


def _ray_runner(workers: int) -> Callable[[Job, Path], tuple[bool, dict[str, Any] | str]]:
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

    def run(job: Job, sweep_dir: Path) -> tuple[bool, dict[str, Any] | str]:
        try:
            return True, ray.get(remote.remote(job.to_json(), str(sweep_dir)))
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
) -> list[dict[str, Any]]:
    """Run every job (retrying failures), then write ``results.csv``/``results.json``."""
    if backend not in ("local", "ray"):
        raise ConfigError(f"unknown backend {backend!r} (expected local or ray)")
    workers = int(workers or max(1, min(len(spec.jobs), os.cpu_count() or 1)))
    if workers <= 0:
        raise ConfigError(f"--workers must be positive, got {workers}")
    runner = _ray_runner(workers) if backend == "ray" else _run_local_job
    spec.out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}

    def attempt(job: Job) -> dict[str, Any]:
        t0 = time.perf_counter()
        errors: list[str] = []
        for k in range(spec.retries + 1):
            ok, payload = runner(job, spec.out)
            if ok:
                assert isinstance(payload, dict)
                return _row(job, "ok", k + 1, "", time.perf_counter() - t0, payload, spec.out)
            errors.append(str(payload))
        return _row(job, "failed", len(errors), errors[-1], time.perf_counter() - t0, {}, spec.out)

    from tqdm.auto import tqdm

    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = {pool.submit(attempt, j): j for j in spec.jobs}
        for fut in tqdm(as_completed(futures), total=len(futures), desc=spec.name, leave=False):
            row = fut.result()
            results[row["job_id"]] = row
            if echo is not None and row["status"] != "ok":
                echo(f"FAILED {row['job_id']} after {row['attempts']} attempts: {row['error']}")
    rows = [results[j.job_id] for j in spec.jobs]
    _write_results(rows, spec.out)
    if echo is not None:
        n_ok = sum(r["status"] == "ok" for r in rows)
        echo(f"{n_ok}/{len(rows)} runs finished; results in {spec.out / 'results.csv'}")
    return rows


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
