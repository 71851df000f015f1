"""The result store: a figure's per-run CSVs and their manifest, computed as ``prl sweep`` jobs.

Layout (committed to the repository for the ``mid`` tier)::

    figures/data/TIER/NAME/manifest.json     # figure, tier, budget, seeds, claim, versions, runs
    figures/data/TIER/NAME/runs/KEY.csv       # one per piece (a ``ctx.cached`` key of the figure)

A figure's *pieces* are the keys its ``data()`` passes to ``ctx.cached`` (one seed of one method
on one task, or a seed-free piece such as an exact solution). The *plan* (the ordered keys and
their seeds) comes from running ``data()`` in plan mode, where ``ctx.cached`` records keys
without computing them. Each piece is then a sweep job (:func:`prl.sweep.run_sweep`, local pool
or Ray) that runs ``data()`` in piece mode: only its own ``ctx.cached`` call computes, and the
figure stops right after it. The job's CSV is copied into the store and recorded in the
manifest with its seed, SHA-256, rows, CPU and wall time, commit and the exact command that
recomputes it bit for bit on CPU::

    python -m prl.store piece NAME KEY --budget TIER --seeds 0,1,2,3,4 --out DIR

(writes ``DIR/.cache/NAME/TIER/KEY.csv``; ``python -m prl.store verify NAME --budget TIER``
recomputes stored runs and compares bytes). A complete, valid store is drawn without any
training; missing pieces (new seeds, an interrupted sweep) are computed and added — finished
jobs are kept in the sweep directory, so a killed run resumes. A corrupt or mismatched store
(unreadable manifest, another figure/tier/budget, seeds the registration lacks, a missing or
altered CSV, a CSV whose seed column disagrees) raises :class:`StoreError`.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as _dt
import hashlib
import json
import os
import platform
import shlex
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prl.errors import PrlError
from prl.sweep import Job, SweepSpec, run_sweep
from prl.utils import atomic_path, atomic_write_json, git_info

SCHEMA = 1
PLAN_KEY = "__plan__"
STORE_ENV = "PRL_STORE"
VERSIONED = ("numpy", "scipy", "pandas", "torch", "gymnasium", "mujoco", "stable-baselines3",
             "mo-gymnasium", "metaworld", "prl-lab")  # fmt: skip


class StoreError(PrlError):
    """A corrupt or mismatched store, or pieces that failed to compute."""


def store_root(store: str | os.PathLike[str] | None = None) -> Path:
    """The store's root: ``store``, else ``$PRL_STORE``, else the repository's figures/data."""
    if store is not None:
        return Path(store)
    if os.environ.get(STORE_ENV):
        return Path(os.environ[STORE_ENV])
    import prl.figures

    return Path(prl.figures.__file__).resolve().parent / "data"


@dataclasses.dataclass(frozen=True)
class FigureJob(Job):
    """A sweep job computing one piece (or the plan) of a figure at a budget tier."""

    figure: str = ""
    tier: str = ""
    key: str = ""
    seeds: tuple[int, ...] = ()
    budget: dict[str, Any] = dataclasses.field(default_factory=dict)
    out: str = ""


def _normal(obj: Any) -> Any:
    """``obj`` as plain JSON values (tuples → lists), for comparing budgets."""
    return json.loads(json.dumps(obj, sort_keys=True, default=str))


def _job(ctx: Any, key: str, seed: int | None) -> FigureJob:
    ident = json.dumps([ctx.name, ctx.tier, key, _normal(ctx.budget), list(ctx.seeds)],
                       sort_keys=True)  # fmt: skip
    digest = hashlib.sha1(ident.encode()).hexdigest()[:8]
    return FigureJob(
        job_id=f"{key}__{digest}",
        algo=f"figure:{ctx.name}",
        env=key,
        env_kwargs={},
        seed=-1 if seed is None else int(seed),
        steps=None,
        config={},
        params={},
        checkpoint_every=None,
        device=str(ctx.device),
        figure=ctx.name,
        tier=ctx.tier,
        key=key,
        seeds=tuple(ctx.seeds),
        budget=_normal(ctx.budget),
        out=str(Path(ctx.out).resolve()),
    )


# ---- executing a piece or the plan (in a sweep worker, a Ray task, or inline) -----------------


def _context(
    name: str, tier: str, seeds: Any, budget: dict[str, Any], device: str, out: str
) -> Any:
    from prl.figure import FigureContext
    from prl.utils import resolve_device

    return FigureContext(
        name=name, quick=tier == "quick", seeds=tuple(int(s) for s in seeds), budget=dict(budget),
        device=resolve_device(device), out=Path(out), tier=tier,
    )  # fmt: skip


def compute_plan(
    name: str, tier: str, seeds: Any, budget: dict[str, Any], device: str, out: str
) -> list[dict[str, Any]]:
    """The figure's pieces in ``data()`` order, each with its seed (None: seed-free)."""
    from prl.registry import FIGURES, load_plugins

    load_plugins()
    cls = FIGURES.get(name).cls

    def keys(seed_list: Any, tolerant: bool) -> list[str]:
        ctx = _context(name, tier, seed_list, budget, device, out)
        ctx.plan = []
        try:
            cls().data(ctx)
        except Exception:
            if not tolerant:  # data() of no seed may fail to concatenate nothing: keys are in
                raise  # (any other failure surfaces from the runs with seeds)
        return ctx.plan

    order = keys(seeds, tolerant=False)
    if len(set(order)) != len(order):
        raise StoreError(f"figure {name} uses a ctx.cached key twice")
    free = set(keys((), tolerant=True))
    owner: dict[str, int] = {}
    for s in seeds:
        for k in keys((s,), tolerant=False):
            if k not in free:
                owner[k] = int(s)
    return [{"key": k, "seed": owner.get(k)} for k in order]


def compute_piece(
    name: str, tier: str, key: str, seeds: Any, budget: dict[str, Any], device: str, out: str
) -> dict[str, Any]:
    """Run one piece of a figure (plan-free: ``data()`` in piece mode); its CSV and timings."""
    from prl.figure import PieceDone
    from prl.registry import FIGURES, load_plugins

    load_plugins()
    ctx = _context(name, tier, seeds, budget, device, out)
    ctx.only = key
    try:
        FIGURES.get(name).cls().data(ctx)
    except PieceDone:
        pass
    else:
        raise StoreError(f"figure {name} has no piece {key!r} at this budget")
    path = ctx.cache_dir / f"{key}.csv"
    stats = ctx.piece_stats.get(key, {})
    return {
        "key": key,
        "csv": str(path),
        "sha256": sha256(path),
        "cpu_s": round(float(stats.get("cpu_s", float("nan"))), 3),
        "wall_s": round(float(stats.get("wall_s", float("nan"))), 3),
        **{f"git_{k}": v for k, v in git_info().items()},
        "cpu": machine()["cpu"],  # where it ran (a Ray node, too): bytes depend on the CPU kind
        "finished": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
    }


def execute_piece_job(job: dict[str, Any], sweep_dir: str) -> dict[str, Any]:
    """A sweep worker's entry for a :class:`FigureJob` (finished jobs are read back)."""
    run_dir = Path(sweep_dir) / "runs" / job["job_id"]
    final_path = run_dir / "final.json"
    if final_path.exists():
        return json.loads(final_path.read_text())
    args = (job["figure"], job["tier"])
    rest = (job["seeds"], job["budget"], job["device"], job["out"])
    if job["key"] == PLAN_KEY:
        plan = compute_plan(*args, *rest)
        atomic_write_json(run_dir / "plan.json", plan)
        final: dict[str, Any] = {"pieces": len(plan), "plan": str(run_dir / "plan.json")}
    else:
        final = compute_piece(*args, job["key"], *rest)
    atomic_write_json(final_path, final)
    return final


# ---- the store ------------------------------------------------------------------------------


def sha256(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def machine() -> dict[str, Any]:
    """The machine a store was computed on (the CPU's model and vendor decide float32 bytes)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return {"node": platform.node(), "system": platform.system(), "machine": platform.machine(),
            "cpu": info.get("model name", ""), "cpu_vendor": info.get("vendor_id", ""),
            "cpu_count": os.cpu_count(), "python": platform.python_version(),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}  # fmt: skip


def versions() -> dict[str, str | None]:
    """Installed versions of the libraries a run's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out: dict[str, str | None] = {}
    for pkg in VERSIONED:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = None
    return out


def piece_command(name: str, key: str, tier: str, seeds: Any, budget: dict[str, Any],
                  registered: dict[str, Any]) -> str:  # fmt: skip
    """The command that recomputes one stored piece (into ``recompute/``)."""
    cmd = ["python", "-m", "prl.store", "piece", name, key, "--budget", tier,
           "--seeds", ",".join(str(int(s)) for s in seeds), "--out", "recompute"]  # fmt: skip
    if _normal(budget) != _normal(registered):
        cmd += ["--budget-json", json.dumps(_normal(budget), sort_keys=True)]
    return shlex.join(cmd)


def read_manifest(
    store_dir: Path, *, name: str, tier: str, budget: dict[str, Any], seeds: Any
) -> dict[str, Any] | None:
    """The store's validated manifest (None when there is no store); raises StoreError when the
    store is corrupt or belongs to another figure, tier, budget or seed list."""
    import pandas as pd

    path = store_dir / "manifest.json"
    if not path.exists():
        if store_dir.exists() and any(store_dir.glob("runs/*.csv")):
            raise StoreError(f"store {store_dir} has runs but no manifest.json; use --rerun")
        return None
    try:
        man = json.loads(path.read_text())
        pieces = man["pieces"]
        stored_seeds = [int(s) for s in man["seeds"]]
        assert isinstance(pieces, list)
    except (OSError, ValueError, KeyError, TypeError, AssertionError) as exc:
        raise StoreError(f"corrupt store manifest {path}: {exc}; use --rerun") from None
    where = f"store {store_dir}"
    if man.get("schema") != SCHEMA:
        raise StoreError(f"{where}: manifest schema {man.get('schema')!r}, expected {SCHEMA}")
    if man.get("figure") != name or man.get("tier") != tier:
        raise StoreError(
            f"{where} holds figure {man.get('figure')!r} at budget {man.get('tier')!r}, "
            f"not {name!r} at {tier!r}"
        )
    if _normal(man.get("budget")) != _normal(budget):
        raise StoreError(
            f"{where} was computed with another {tier} budget than {name}'s registered one; "
            "use --rerun to recompute it"
        )
    extra = sorted(set(stored_seeds) - {int(s) for s in seeds})
    if extra:
        raise StoreError(
            f"{where} holds seeds {extra} that {name}'s {tier} seeds lack; use --rerun"
        )
    for p in pieces:
        try:
            key, file, digest, pseed = p["key"], p["file"], p["sha256"], p["seed"]
        except (KeyError, TypeError):
            raise StoreError(f"corrupt store manifest {path}: bad run entry {p!r}") from None
        csv = store_dir / file
        if not csv.exists():
            raise StoreError(f"{where}: run {key} is missing its CSV {file}; use --rerun")
        if sha256(csv) != digest:
            raise StoreError(f"{where}: {file} differs from its manifest checksum (altered?)")
        try:
            df = pd.read_csv(csv)
        except Exception as exc:
            raise StoreError(f"{where}: bad CSV {file}: {exc}".splitlines()[0]) from None
        if df.empty:
            raise StoreError(f"{where}: bad CSV {file}: no rows")
        if pseed is not None and "seed" in df.columns:
            got = set(pd.to_numeric(df["seed"], errors="coerce").dropna().astype(int))
            if got != {int(pseed)}:
                raise StoreError(
                    f"{where}: {file} holds seeds {sorted(got)}, its manifest says {pseed}"
                )
    return man


def load_store_df(store_dir: Path, man: dict[str, Any]) -> Any:
    """The figure's data: the stored pieces' CSVs concatenated in plan order."""
    import pandas as pd

    frames = [pd.read_csv(store_dir / p["file"]) for p in man["pieces"]]
    return pd.concat(frames, ignore_index=True)


def _run_jobs(
    jobs: list[FigureJob], sweep_dir: Path, backend: str, workers: int | None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Run figure jobs (``inline``: in this process; else :func:`prl.sweep.run_sweep`)."""
    if not jobs:
        return {}, []
    if backend == "inline":
        res = {}
        for j in jobs:
            res[j.job_id] = execute_piece_job(j.to_json(), str(sweep_dir))
        return res, []
    rows = run_sweep(
        SweepSpec(name=sweep_dir.name, out=sweep_dir, jobs=list(jobs), retries=1),
        backend=backend, workers=workers, echo=None,
    )  # fmt: skip
    done, failed = {}, []
    for r in rows:
        if r["status"] == "ok":
            done[r["job_id"]] = json.loads(
                (sweep_dir / "runs" / r["job_id"] / "final.json").read_text()
            )
        else:
            failed.append(f"{r['env']}: {r['error']}")
    return done, failed


def ensure_store(
    ctx: Any,
    store_dir: Path,
    *,
    rerun: bool = False,
    backend: str = "local",
    workers: int | None = None,
    spec: Any = None,
    echo: Callable[[str], None] | None = None,
    collect_only: bool = False,
) -> Any:
    """The figure's data from its store, computing and adding missing pieces first.

    ``collect_only``: compute nothing; store the pieces whose sweep jobs already finished (an
    interrupted sweep under ``ctx.out``), so partial results can be committed and resumed.
    """
    name, tier = ctx.name, ctx.tier
    seeds = [int(s) for s in ctx.seeds]
    budget = _normal(ctx.budget)
    work = ctx.cache_dir
    if rerun:
        shutil.rmtree(work, ignore_errors=True)
        man = None
    else:
        man = read_manifest(store_dir, name=name, tier=tier, budget=budget, seeds=seeds)
        if man is not None and man.get("complete") and man["seeds"] == seeds:
            return load_store_df(store_dir, man)
    sweep_dir = work / "sweep"
    plan_job = _job(ctx, PLAN_KEY, None)
    if collect_only and not _finished(sweep_dir, plan_job):
        raise StoreError(f"nothing to collect for {name}: its plan job has not run in {sweep_dir}")
    run_jobs = _collect_finished if collect_only else _run_jobs
    done, failed = run_jobs([plan_job], sweep_dir, backend, workers)
    if failed:
        raise StoreError(f"planning figure {name} failed: {failed[0]}")
    plan = json.loads(Path(next(iter(done.values()))["plan"]).read_text())
    have = {} if man is None else {p["key"]: p for p in man["pieces"]}
    todo = [p for p in plan if p["key"] not in have]
    jobs = {p["key"]: _job(ctx, p["key"], p["seed"]) for p in todo}
    if collect_only:
        jobs = {k: j for k, j in jobs.items() if _finished(sweep_dir, j)}
    elif echo is not None and todo:
        echo(f"{name}: computing {len(todo)} of {len(plan)} runs ({tier} budget, {backend})")
    done, failed = run_jobs(list(jobs.values()), sweep_dir, backend, workers)
    registered = spec.tier(tier)[1] if spec is not None else budget
    pieces = []
    runs = store_dir / "runs"
    for p in plan:
        key = p["key"]
        if key in have:
            pieces.append(have[key])
            continue
        rec = done.get(jobs[key].job_id) if key in jobs else None
        if rec is None:
            continue
        file = f"runs/{key}.csv"
        with atomic_path(store_dir / file) as tmp:
            shutil.copyfile(rec["csv"], tmp)
        pieces.append({
            "key": key, "seed": p["seed"], "file": file, "sha256": sha256(store_dir / file),
            "cpu_s": rec["cpu_s"], "wall_s": rec["wall_s"], "commit": rec.get("git_commit"),
            "dirty": rec.get("git_dirty"), "cpu": rec.get("cpu"), "finished": rec.get("finished"),
            "command": piece_command(name, key, tier, seeds, budget, registered),
        })  # fmt: skip
    keep = {p["file"] for p in pieces}
    for stale in runs.glob("*.csv") if runs.exists() else ():
        if f"runs/{stale.name}" not in keep:
            stale.unlink()
    write_manifest(store_dir, ctx, pieces, plan, spec=spec, previous=man)
    if collect_only:
        return None
    if failed:
        raise StoreError(
            f"{len(failed)} of {len(plan)} runs of {name} failed (the others are stored; rerun "
            f"to resume): {failed[0]}"
        )
    return load_store_df(store_dir, json.loads((store_dir / "manifest.json").read_text()))


def _collect_finished(
    jobs: list[FigureJob], sweep_dir: Path, backend: str, workers: int | None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The results of the jobs that already finished in ``sweep_dir`` (nothing is run)."""
    done = {
        j.job_id: json.loads((sweep_dir / "runs" / j.job_id / "final.json").read_text())
        for j in jobs
        if _finished(sweep_dir, j)
    }
    return done, []


def _finished(sweep_dir: Path, job: FigureJob) -> bool:
    """Whether ``job`` finished in ``sweep_dir`` (its run directory holds final.json)."""
    return (sweep_dir / "runs" / job.job_id / "final.json").exists()


def write_manifest(
    store_dir: Path,
    ctx: Any,
    pieces: list[dict[str, Any]],
    plan: list[dict[str, Any]],
    *,
    spec: Any = None,
    previous: dict[str, Any] | None = None,
) -> None:
    """Write ``manifest.json``: what was run, how, where, and how to recompute each run."""
    from prl.claims import claim_for_figure

    claim = claim_for_figure(ctx.name)
    prev = previous or {}
    seeds = [int(s) for s in ctx.seeds]
    cpu = sum(float(p["cpu_s"]) for p in pieces if p.get("cpu_s") == p.get("cpu_s"))
    wall = sum(float(p["wall_s"]) for p in pieces if p.get("wall_s") == p.get("wall_s"))
    flags = [] if ctx.tier == "full" else ["--budget", ctx.tier]
    man = {
        "schema": SCHEMA,
        "figure": ctx.name,
        "tier": ctx.tier,
        "budget": _normal(ctx.budget),
        "seeds": seeds,
        "command": shlex.join(["prl", "figure", ctx.name, *flags]),
        "claim": None if claim is None else claim.name,
        "hyperparameters": "" if spec is None else spec.hparams,
        "complete": len(pieces) == len(plan),
        "runs": len(pieces),
        "planned_runs": len(plan),
        "cpu_s": round(cpu, 1),
        "wall_s": round(wall, 1),
        "git": git_info(),
        "machine": machine(),
        "versions": versions(),
        "updated": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "analysis": prev.get("analysis", ""),
        "pieces": pieces,
    }
    atomic_write_json(store_dir / "manifest.json", man)


# ---- python -m prl.store: recompute or verify stored runs ------------------------------------


def _target(out: str, name: str, tier: str, key: str) -> Path:
    return Path(out) / ".cache" / name / tier / f"{key}.csv"


def _seeds(text: str) -> list[int]:
    return [int(s) for s in text.split(",") if s.strip()]


def main(argv: list[str] | None = None) -> int:
    """``piece``: recompute one run into ``--out``; ``verify``: recompute stored runs, compare."""
    from prl.registry import FIGURES, load_plugins

    p = argparse.ArgumentParser(prog="python -m prl.store")
    sub = p.add_subparsers(dest="cmd", required=True)
    pc = sub.add_parser("piece", help="recompute one piece of a figure")
    pc.add_argument("name")
    pc.add_argument("key")
    pc.add_argument("--budget", default="mid")
    pc.add_argument("--seeds", type=_seeds, default=None)
    pc.add_argument("--budget-json", default=None)
    pc.add_argument("--out", default="recompute")
    pc.add_argument("--device", default="cpu")
    co = sub.add_parser(
        "collect", help="store the finished runs of an interrupted mid/full figure (no compute)"
    )
    co.add_argument("name")
    co.add_argument("--budget", default="mid")
    co.add_argument("--out", required=True, help="the --out of the interrupted prl figure run")
    co.add_argument("--store", default=None)
    vf = sub.add_parser("verify", help="recompute stored runs and compare their bytes")
    vf.add_argument("name")
    vf.add_argument("--budget", default="mid")
    vf.add_argument("--key", action="append", default=None)
    vf.add_argument("--store", default=None)
    vf.add_argument("--out", default="recompute")
    args = p.parse_args(argv)
    try:
        load_plugins()
        spec = FIGURES.get(args.name)
        seeds, budget = spec.tier(args.budget)
        if args.cmd == "piece":
            if args.budget_json:
                budget = json.loads(args.budget_json)
            seeds = args.seeds if args.seeds is not None else seeds
            _target(args.out, args.name, args.budget, args.key).unlink(missing_ok=True)
            rec = compute_piece(args.name, args.budget, args.key, seeds, budget, args.device,
                                args.out)  # fmt: skip
            print(rec["csv"])
            return 0
        if args.cmd == "collect":
            ctx = _context(args.name, args.budget, seeds, budget, "cpu", args.out)
            sdir = store_root(args.store) / args.budget / args.name
            ensure_store(ctx, sdir, spec=spec, collect_only=True)
            man = json.loads((sdir / "manifest.json").read_text())
            print(f"{args.name}: {man['runs']} of {man['planned_runs']} runs stored in {sdir}")
            return 0
        sdir = store_root(args.store) / args.budget / args.name
        man = read_manifest(sdir, name=args.name, tier=args.budget, budget=budget, seeds=seeds)
        if man is None:
            raise StoreError(f"no store at {sdir}")
        bad = 0
        for piece in man["pieces"]:
            if args.key and piece["key"] not in args.key:
                continue
            _target(args.out, args.name, args.budget, piece["key"]).unlink(missing_ok=True)
            rec = compute_piece(args.name, args.budget, piece["key"], man["seeds"], budget,
                                "cpu", args.out)  # fmt: skip
            same = rec["sha256"] == piece["sha256"]
            bad += not same
            stored_cpu = piece.get("cpu") or man.get("machine", {}).get("cpu")
            note = ""
            if not same and stored_cpu and stored_cpu != rec["cpu"]:
                note = (f" (stored on {stored_cpu!r}, recomputed on {rec['cpu']!r}: float32 "
                        "kernels differ between CPU kinds; compare on the stored one)")  # fmt: skip
            print(f"{'OK' if same else 'MISMATCH'} {piece['key']}{note}")
        return 1 if bad else 0
    except PrlError as exc:
        print(f"prl: error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
