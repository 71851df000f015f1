"""One run: config → run directory with config.json, metrics.csv, atomic checkpoints and resume.

An algorithm plugs in by subclassing :class:`Learner` and registering it with
:func:`register_algo`. The run loop owns everything else: seeding, device, the run directory
``runs/{algo}__{env}__{seed}__{time}/``, metrics, checkpoints (write-then-rename at a
configurable interval, loaded with ``torch.load(weights_only=True)``), ``--resume`` and the
progress bar.
"""

from __future__ import annotations

import abc
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from prl.config import build_config, config_to_dict
from prl.errors import ConfigError, InvalidInputError, PrlError
from prl.registry import ALGOS, ENVS, load_plugins
from prl.utils import (
    atomic_path,
    atomic_write_json,
    git_info,
    resolve_device,
    rng_state,
    seed_everything,
    set_rng_state,
)

__all__ = [
    "Learner",
    "RunResult",
    "find_resumable",
    "load_checkpoint",
    "register_algo",
    "resolve_device",
    "run_experiment",
    "save_checkpoint",
    "seed_everything",
]

CHECKPOINT = "checkpoint.pt"
KILL_ENV = "PRL_KILL_AT_STEP"  # fault injection for tests: SIGKILL self once step >= N


class Learner(abc.ABC):
    """Training state of one algorithm on one environment, advanced one unit at a time.

    Subclasses set ``Config`` (a dataclass with documented fields, see :func:`prl.config.option`)
    and ``default_steps``; ``step()`` advances training and returns one metrics row whose
    ``"step"`` is the cumulative budget used (environment steps, iterations or queries, as the
    algorithm documents). ``state_dict()`` must capture everything — including random
    generators — so that a resumed run continues exactly as an uninterrupted one would.
    """

    Config: ClassVar[type]
    default_steps: ClassVar[int] = 1000  # the paper's budget (`prl run --budget full`)
    # `prl run`'s default budget: a "try it" run that finishes in about a minute on 2 CPU cores
    # (None: default_steps is already that short)
    cli_default_steps: ClassVar[int | None] = None
    step_unit: ClassVar[str] = "steps"

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        self.config = config
        self.env_name = env
        self.env_kwargs = dict(env_kwargs)
        self.seed = int(seed)
        self.device = device
        self.rng = np.random.default_rng(self.seed)
        self.steps_done = 0
        # the run's whole budget, set by the run loop before the first step() (schedules that
        # anneal over the run, e.g. MDPO's t_k = 1 − k/K, read it)
        self.total_steps: int | None = None

    def phase_steps(self, value: int | None, fraction: float) -> int:
        """A training phase's length: ``value`` when set, else ``fraction`` of this run's budget."""
        if value is not None:
            return int(value)
        return round(fraction * (self.total_steps or self.default_steps))

    @classmethod  # noqa: B027
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        """Raise ConfigError when the environment does not suit the algorithm (before any file)."""

    @abc.abstractmethod
    def step(self) -> dict[str, float]:
        """Advance training by one unit of work; return a metrics row including ``step``."""

    def evaluate(self) -> dict[str, float]:
        """Final evaluation metrics (default: none beyond the last row)."""
        return {}

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: subclasses extend this dict (tensors, numbers, lists)."""
        return {"steps_done": self.steps_done, "rng": json.dumps(rng_state(self.rng))}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` saved."""
        self.steps_done = int(state["steps_done"])
        set_rng_state(self.rng, json.loads(state["rng"]))

    def close(self) -> None:  # noqa: B027
        """Release environments and other resources."""


def register_algo(name: str, *, description: str = "", **meta: Any) -> Any:
    """Class decorator registering a :class:`Learner` subclass under ``name``."""

    def deco(cls: type[Learner]) -> type[Learner]:
        if not (isinstance(cls, type) and issubclass(cls, Learner)):
            raise TypeError(f"{cls!r} is not a Learner subclass")
        if not dataclasses.is_dataclass(getattr(cls, "Config", None)):
            raise TypeError(f"{cls.__name__}.Config must be a dataclass")
        ALGOS.register(name, cls, description=description, **meta)
        return cls

    return deco


@dataclass
class RunResult:
    """Where a run lives and how it ended."""

    run_dir: Path
    final: dict[str, float]
    steps_done: int
    resumed: bool


# ---------------------------------------------------------------------------------------------
# checkpoints


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write a checkpoint atomically: torch.save to a temporary file, then rename."""
    import torch

    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load a checkpoint with the safe loader (``weights_only=True``: no stored code runs)."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise InvalidInputError(f"cannot load checkpoint {path}: {exc}".splitlines()[0]) from None


# ---------------------------------------------------------------------------------------------
# metrics file


class MetricsWriter:
    """Append-only metrics.csv whose header grows when new keys appear (the file is rewritten)."""

    def __init__(self, path: Path, keep_rows: int | None = None):
        self.path = path
        self.rows: list[dict[str, Any]] = []
        if path.exists():
            with path.open(newline="") as f:
                self.rows = list(csv.DictReader(f))
            if keep_rows is not None:
                self.rows = self.rows[:keep_rows]
            self._rewrite()
        self.fields: list[str] = list(self.rows[0].keys()) if self.rows else []

    def append(self, row: dict[str, Any]) -> None:
        clean = {k: _scalar(v) for k, v in row.items()}
        new = [k for k in clean if k not in self.fields]
        self.rows.append(clean)
        if new or not self.path.exists():
            self.fields.extend(new)
            self._rewrite()
        else:
            with self.path.open("a", newline="") as f:
                csv.DictWriter(f, fieldnames=self.fields).writerow(clean)

    def _rewrite(self) -> None:
        fields: list[str] = []
        for r in self.rows:
            fields.extend(k for k in r if k not in fields)
        self.fields = fields
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=fields)
        w.writeheader()
        for r in self.rows:
            w.writerow(r)
        with atomic_path(self.path) as tmp:
            tmp.write_text(buf.getvalue())


def _scalar(v: Any) -> Any:
    if hasattr(v, "item"):
        v = v.item()
    if isinstance(v, float):
        return repr(v)  # round-trip exact
    return v


# ---------------------------------------------------------------------------------------------
# the run loop


def _learner_class(algo: str) -> type[Learner]:
    load_plugins()
    return ALGOS.get(algo)


def _validate_env(env: str) -> None:
    load_plugins()
    ENVS.entry(env)


def _run_dir_name(algo: str, env: str, seed: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{algo}__{env}__{seed}__{stamp}"


def find_resumable(out: Path, algo: str, env: str, seed: int) -> Path | None:
    """The newest run directory of (algo, env, seed) under ``out`` that holds a checkpoint."""
    prefix = f"{algo}__{env}__{seed}__"
    if not out.exists():
        return None
    cands = sorted(
        (p for p in out.iterdir() if p.is_dir() and p.name.startswith(prefix)),
        key=lambda p: p.name,
    )
    for p in reversed(cands):
        if (p / CHECKPOINT).exists() or (p / "config.json").exists():
            return p
    return None


def run_experiment(
    algo: str,
    env: str,
    *,
    seed: int = 0,
    steps: int | None = None,
    device: str = "auto",
    out: str | os.PathLike[str] = "runs",
    resume: bool | str | os.PathLike[str] = False,
    config: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
    progress: bool | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    announce: Any = None,
) -> RunResult:
    """Train ``algo`` on ``env`` into a run directory; resume from its checkpoint when asked.

    Everything is validated before the directory is created, so bad input leaves no files.
    ``announce()`` (optional) is called once everything is validated, just before training.
    """
    out = Path(out)
    resumed = False
    if resume:
        rdir = (
            Path(resume)
            if isinstance(resume, (str, os.PathLike)) and not isinstance(resume, bool)
            else find_resumable(out, algo, env, seed)
        )
        if rdir is None or not (rdir / "config.json").exists():
            raise ConfigError(
                f"nothing to resume: no run of {algo} on {env} with seed {seed} under {out}"
            )
        meta = json.loads((rdir / "config.json").read_text())
        if (meta["algo"], meta["env"]) != (algo, env) and not isinstance(resume, (str, Path)):
            raise ConfigError(f"{rdir} is a run of {meta['algo']} on {meta['env']}")
        algo, env, seed = meta["algo"], meta["env"], int(meta["seed"])
        env_kwargs = meta.get("env_kwargs", {})
        config = meta.get("config", {})
        steps = int(meta["steps"]) if steps is None else int(steps)
        checkpoint_every = checkpoint_every or meta.get("checkpoint_every")
        run_dir = rdir
        resumed = True

    cls = _learner_class(algo)
    _validate_env(env)
    env_kwargs = dict(env_kwargs or {})
    cfg = build_config(cls.Config, config)
    if steps is None:
        steps = int(getattr(cfg, "steps", cls.default_steps) or cls.default_steps)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0:
        raise ConfigError(f"--steps must be a positive integer, got {steps!r}")
    if checkpoint_every is not None and checkpoint_every <= 0:
        raise ConfigError(f"--checkpoint-every must be positive, got {checkpoint_every!r}")
    cls.check_env(env, env_kwargs)
    dev = resolve_device(device)
    seed_everything(int(seed))
    learner = cls(cfg, env, env_kwargs, int(seed), dev)  # may raise PrlError: no files yet
    learner.total_steps = int(steps)

    created = False
    if run_dir is None:
        run_dir = out / _run_dir_name(algo, env, int(seed))
        while run_dir.exists():  # two runs in the same second
            run_dir = run_dir.with_name(run_dir.name + "_")
    run_dir = Path(run_dir)
    ckpt_path = run_dir / CHECKPOINT
    keep_rows: int | None = None
    try:
        if resumed and ckpt_path.exists():
            state = load_checkpoint(ckpt_path)
            learner.load_state_dict(state["learner"])
            keep_rows = int(state["metrics_rows"])
        elif resumed:
            keep_rows = 0
        else:
            run_dir.mkdir(parents=True, exist_ok=False)
            created = True
            atomic_write_json(
                run_dir / "config.json",
                {
                    "algo": algo,
                    "env": env,
                    "env_kwargs": env_kwargs,
                    "seed": int(seed),
                    "steps": int(steps),
                    "device": str(device),
                    "resolved_device": str(dev),
                    "checkpoint_every": checkpoint_every,
                    "config": config_to_dict(cfg),
                    "git": git_info(),
                    "step_unit": cls.step_unit,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                },
            )
        if announce is not None:
            announce()  # e.g. the CLI's "budget: ..." line, after validation
        return _loop(
            learner, run_dir, int(steps), checkpoint_every, progress, keep_rows, resumed, algo
        )
    except BaseException:
        if created and not (run_dir / "metrics.csv").exists() and not ckpt_path.exists():
            shutil.rmtree(run_dir, ignore_errors=True)  # nothing worth keeping
        raise
    finally:
        learner.close()


def _loop(
    learner: Learner,
    run_dir: Path,
    steps: int,
    checkpoint_every: int | None,
    progress: bool | None,
    keep_rows: int | None,
    resumed: bool,
    algo: str,
) -> RunResult:
    from prl.progress import Progress

    writer = MetricsWriter(run_dir / "metrics.csv", keep_rows=keep_rows)
    tb = _tensorboard(run_dir)
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    every = checkpoint_every or max(1, steps // 10)
    next_ckpt = (learner.steps_done // every + 1) * every
    last: dict[str, float] = {}
    bar = Progress(  # a bar on a terminal, a line every $PRL_PROGRESS_INTERVAL s in a log
        steps,
        f"{algo} {learner.env_name} seed {learner.seed}",
        unit=type(learner).step_unit,
        initial=min(learner.steps_done, steps),
        enabled=progress,
    )
    try:
        while learner.steps_done < steps:
            before = learner.steps_done
            row = learner.step()
            if learner.steps_done <= before:
                raise RuntimeError(f"{type(learner).__name__}.step() made no progress")
            row = {"step": learner.steps_done, **{k: v for k, v in row.items() if k != "step"}}
            for k, v in row.items():
                if isinstance(v, float) and math.isnan(v) and k.startswith("loss"):
                    raise InvalidInputError(f"training diverged: {k} is NaN at step {row['step']}")
            writer.append(row)
            if tb is not None:
                for k, v in row.items():
                    if k != "step" and isinstance(v, (int, float)):
                        tb.add_scalar(k, v, row["step"])
            last = row
            bar.update(learner.steps_done, row)
            if learner.steps_done >= next_ckpt or learner.steps_done >= steps:
                save_checkpoint(
                    run_dir / CHECKPOINT,
                    {"learner": learner.state_dict(), "metrics_rows": len(writer.rows)},
                )
                next_ckpt = (learner.steps_done // every + 1) * every
            if kill_at and learner.steps_done >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
    finally:
        bar.close()
        if tb is not None:
            tb.close()
    final = {**{k: v for k, v in last.items()}, **learner.evaluate()}
    atomic_write_json(run_dir / "final.json", final)
    return RunResult(run_dir=run_dir, final=final, steps_done=learner.steps_done, resumed=resumed)


def _tensorboard(run_dir: Path) -> Any:
    if os.environ.get("PRL_TENSORBOARD", "1") == "0":
        return None
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter
    except Exception:
        return None
    return SummaryWriter(log_dir=str(run_dir / "tb"))


def read_metrics(run_dir: str | os.PathLike[str]) -> list[dict[str, str]]:
    """The rows of a run's metrics.csv (as strings)."""
    path = Path(run_dir) / "metrics.csv"
    if not path.exists():
        raise PrlError(f"{path} does not exist")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def train(
    algo: str,
    env: str,
    *,
    seed: int = 0,
    steps: int | None = None,
    device: Any = "cpu",
    config: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    every: int = 1,
) -> tuple[Learner, list[dict[str, Any]]]:
    """Train in memory (no run directory): returns the learner and every ``every``-th row.

    Used by figures and checks that run many short trainings; same seeding as ``prl run``.
    """
    cls = _learner_class(algo)
    _validate_env(env)
    cfg = build_config(cls.Config, config)
    total = int(steps if steps is not None else getattr(cfg, "steps", cls.default_steps))
    if total <= 0:
        raise ConfigError(f"steps must be positive, got {total}")
    env_kwargs = dict(env_kwargs or {})
    cls.check_env(env, env_kwargs)
    dev = resolve_device(device)
    seed_everything(int(seed))
    learner = cls(cfg, env, env_kwargs, int(seed), dev)
    learner.total_steps = total
    rows: list[dict[str, Any]] = []
    k = 0
    try:
        while learner.steps_done < total:
            row = learner.step()
            k += 1
            if k % every == 0 or learner.steps_done >= total:
                rows.append(
                    {"step": learner.steps_done, **{a: b for a, b in row.items() if a != "step"}}
                )
        if rows:
            rows[-1].update(learner.evaluate())
    finally:
        learner.close()
    return learner, rows
