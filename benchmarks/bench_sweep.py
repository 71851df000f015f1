"""Sweep overhead per trial: the Ray backend (plain Ray tasks, files shipped back to the driver)
against the local backend (one process per job), on tiny jobs where overhead dominates.

Jobs: ``spo_bandit`` on ``dueling`` (dice game), ``--steps`` steps each, ``--jobs`` seeds. For
each backend: the wall time of a fresh sweep and of a re-run that only reads finished jobs
back, with ``--workers`` jobs at once (local: processes; ray: a local Ray instance of that many
CPUs, started once, its start-up timed apart). The job's own compute is timed in-process
(``execute_job`` with no sweep around it); overhead per trial = wall × workers / jobs − compute.

    OMP_NUM_THREADS=1 python benchmarks/bench_sweep.py [--jobs 8] [--steps 50] [--workers 2]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _spec(out: Path, jobs: int, steps: int):
    from prl.sweep import parse_spec

    raw = {"name": "bench", "algos": ["spo_bandit"], "seeds": jobs, "steps": steps,
           "envs": [{"name": "dueling", "kwargs": {"game": "dice"}}]}  # fmt: skip
    return parse_spec(raw, out=out, backend="ray")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    from prl.sweep import execute_job, run_sweep

    root = Path(tempfile.mkdtemp(prefix="bench-sweep-"))
    try:
        # the jobs' own compute, in this process (imports warmed up by one unmeasured job)
        spec = _spec(root / "inline", args.jobs, args.steps)
        execute_job(spec.jobs[0].to_json() | {"threads": 1}, str(root / "warm"))
        t = time.perf_counter()
        for j in spec.jobs:
            execute_job(j.to_json() | {"threads": 1}, str(spec.out))
        compute = (time.perf_counter() - t) / args.jobs

        import ray

        t = time.perf_counter()
        ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t
        res = {}
        for backend in ("local", "ray"):
            spec = _spec(root / backend, args.jobs, args.steps)
            for phase in ("fresh", "read back"):
                t = time.perf_counter()
                rows = run_sweep(spec, backend=backend, workers=args.workers, echo=None)
                wall = time.perf_counter() - t
                assert all(r["status"] == "ok" for r in rows), rows
                res[backend, phase] = wall
        ray.shutdown()
    finally:
        shutil.rmtree(root, ignore_errors=True)
    n, w = args.jobs, args.workers
    head = f"{n} jobs of spo_bandit × {args.steps} steps, {w} at once"
    print(f"{head}; job compute in-process {compute * 1e3:.0f} ms; Ray start {ray_start:.1f} s")
    print("| backend | phase | sweep wall (s) | wall per trial (s) | overhead per trial (s) |")
    print("|---|---|---:|---:|---:|")
    for (backend, phase), wall in res.items():
        per = wall * w / n
        over = per - (compute if phase == "fresh" else 0.0)
        print(f"| {backend} | {phase} | {wall:.2f} | {per:.2f} | {over:.2f} |")


if __name__ == "__main__":
    main()
