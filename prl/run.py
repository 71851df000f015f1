"""One run: config → run directory with config.json, metrics.csv, atomic checkpoints and resume.

An algorithm plugs in by subclassing :class:`Learner` and registering it with
:func:`register_algo`. The run loop owns everything else: seeding, device, the run directory
``runs/{algo}__{env}__{seed}__{time}/``, metrics, checkpoints (write-then-rename at a
configurable interval, loaded with ``torch.load(weights_only=True)``), ``--resume`` and the
progress bar.
"""

from __future__ import annotations

import abc
import contextlib
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
from prl.registry import ALGOS, ENVS
from prl.utils import (
    _json_default,
    atomic_path,
    atomic_write_json,
    check_out_dir,
    check_seed,
    check_threads,
    clean_stale_tmp,
    default_threads,
    dir_lock,
    git_info,
    resolve_device,
    rng_state,
    run_threads,
    seed_everything,
    set_rng_state,
)

__all__ = [
    "Learner",
    "RunResult",
    "find_resumable",
    "load_checkpoint",
    "read_run_config",
    "register_algo",
    "resolve_device",
    "run_experiment",
    "save_checkpoint",
    "seed_everything",
]

CHECKPOINT = "checkpoint.pt"
KILL_ENV = "PRL_KILL_AT_STEP"  # fault injection for tests: SIGKILL self once step >= N
KILL_PHASE_ENV = "PRL_KILL_IN"  # fault injection: "evaluate" = SIGKILL during final evaluation
DELAY_ENV = "PRL_STEP_DELAY"  # tests of interruption: sleep this many seconds after each step
DEFAULT_CHECKPOINT_MINUTES = 5.0  # a checkpoint at least this often, besides every steps/10


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

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[Any, Any]:
        """SB3's ``predict``: ``(actions, state)`` for a batch of observations."""
        from prl.common.acting import predict_from_policy

        return predict_from_policy(self, observation, deterministic), state

    def export(self, run_dir: Path) -> None:  # noqa: B027
        """Write the trained model in its library's own format into ``run_dir`` (default: none)."""

    def log_to(self, log_dir: Path) -> bool:
        """Send the inner library's own training logs to ``log_dir`` (``prl run --tensorboard``);
        returns whether there is such a logger (default: none, only the lab's metrics rows)."""
        return False

    def dump_log(self, step: int) -> None:  # noqa: B027
        """Flush what :meth:`log_to`'s logger has recorded since the last dump, at ``step``."""

    def close_log(self) -> None:  # noqa: B027
        """Close :meth:`log_to`'s logger."""


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
    already_finished: bool = False


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
            try:
                with path.open(newline="") as f:
                    self.rows = list(csv.DictReader(f))
            except (UnicodeDecodeError, csv.Error) as exc:
                raise InvalidInputError(f"corrupt {path}: {exc}".splitlines()[0]) from None
            if keep_rows is not None:
                if len(self.rows) < keep_rows:
                    raise InvalidInputError(
                        f"{path} has {len(self.rows)} rows but the checkpoint was taken after "
                        f"{keep_rows}: the run cannot be continued exactly"
                    )
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
    return ALGOS.get(algo)  # imports only the module that registers ``algo``


def _validate_env(env: str, cls: Any = None) -> None:
    if getattr(cls, "gymnasium_ids", False) and env not in ENVS and _is_gymnasium_id(env):
        return  # SB3-based learners run on any gymnasium id (prl.envs.make falls back to it)
    ENVS.entry(env)


def _is_gymnasium_id(env: str) -> bool:
    import gymnasium

    return env in gymnasium.registry


def _probe_env(env: str, env_kwargs: dict[str, Any]) -> None:
    """Build ``env`` with the user's keyword arguments, reset it and take one random step, so a
    wrongly typed ``--env-kw`` fails here — before any file — and not at the first training step.
    """
    if not env_kwargs:
        return
    from prl.envs import make

    what = ", ".join(f"{k}={v!r}" for k, v in env_kwargs.items())
    e = make(env, **env_kwargs)  # bad names/types of constructor arguments: ConfigError
    try:
        e.reset(seed=0)
        e.action_space.seed(0)
        e.step(e.action_space.sample())
    except PrlError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"environment {env!r} fails with --env-kw {what}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            e.close()


def _run_dir_name(algo: str, env: str, seed: int) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"{algo}__{env}__{seed}__{stamp}"


def find_resumable(out: Path, algo: str, env: str, seed: int) -> Path | None:
    """The newest run directory of (algo, env, seed) under ``out`` that holds a checkpoint."""
    prefix = f"{algo}__{env}__{seed}__"
    if not out.is_dir():
        return None
    cands = sorted(
        (p for p in out.iterdir() if p.is_dir() and p.name.startswith(prefix)),
        key=lambda p: p.name,
    )
    for p in reversed(cands):
        if (p / CHECKPOINT).exists() or (p / "config.json").exists():
            return p
    return None


_META_TYPES: dict[str, type | tuple[type, ...]] = {
    "algo": str,
    "env": str,
    "env_kwargs": dict,
    "seed": int,
    "steps": int,
    "config": dict,
}


def read_run_config(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """A run directory's config.json, checked for the fields a resume needs."""
    path = Path(run_dir) / "config.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidInputError(f"corrupt {path}: {exc}".splitlines()[0]) from None
    if not isinstance(meta, dict):
        raise InvalidInputError(f"corrupt {path}: expected a JSON object")
    for key, tp in _META_TYPES.items():
        if key not in meta:
            raise InvalidInputError(f"corrupt {path}: no {key!r} field")
        if not isinstance(meta[key], tp) or isinstance(meta[key], bool):
            raise InvalidInputError(f"corrupt {path}: {key!r} is {meta[key]!r}")
    if meta.get("threads") is not None:
        try:
            check_threads(meta["threads"])
        except ConfigError:
            raise InvalidInputError(f"corrupt {path}: 'threads' is {meta['threads']!r}") from None
    return meta


def _norm_json(x: Any) -> Any:
    return json.loads(json.dumps(x, sort_keys=True, default=_json_default))


def _refuse_changes(rdir: Path, meta: dict[str, Any], cls: type[Learner], **given: Any) -> None:
    """``--resume DIR`` continues DIR as it was started: a different algorithm, environment, seed,
    device, thread count, environment argument or config value is refused, not ignored."""
    diffs: list[str] = []
    for key in ("algo", "env", "seed", "threads"):
        v = given.get(key)
        if v not in (None, "") and v != meta.get(key):
            diffs.append(f"{key} {v!r} (the run has {meta.get(key)!r})")
    dev = given.get("device")
    if dev is not None and meta.get("resolved_device") is not None:
        if str(resolve_device(dev)) != str(meta["resolved_device"]):
            diffs.append(f"device {dev!r} (the run used {meta['resolved_device']!r})")
    kw = given.get("env_kwargs")
    if kw:
        kw, rec = _norm_json(kw), _norm_json(meta.get("env_kwargs", {}))
        for k in sorted(kw):
            if k not in rec or kw[k] != rec[k]:
                diffs.append(f"--env-kw {k}={kw[k]!r} (the run has {rec.get(k, '(unset)')!r})")
    cfg = given.get("config")
    if cfg:
        asked = _norm_json(config_to_dict(build_config(cls.Config, cfg)))
        rec = _norm_json(config_to_dict(build_config(cls.Config, meta.get("config", {}))))
        for k in sorted(cfg):
            if asked.get(k) != rec.get(k):
                flag = "--" + k.replace("_", "-")
                diffs.append(f"{flag} {asked.get(k)!r} (the run has {rec.get(k)!r})")
    if diffs:
        raise ConfigError(
            f"cannot resume {rdir} with a different setting: {'; '.join(diffs)}; "
            "resume it as it was started or begin a new run"
        )


def _claim_new_dir(run_dir: Path) -> bool:
    """Create ``run_dir`` for a new run; an existing directory is taken over only when a killed
    start left it empty (no config.json). Returns whether the directory was created here."""
    try:
        run_dir.mkdir(parents=True, exist_ok=False)
        return True
    except FileExistsError:
        if run_dir.is_dir() and not (run_dir / "config.json").exists():
            leftovers = [p for p in run_dir.iterdir() if not p.name.startswith(".")]
            if not leftovers:
                return False
        raise ConfigError(f"run directory {run_dir} already exists") from None


def run_experiment(
    algo: str,
    env: str,
    *,
    seed: int | None = None,
    steps: int | None = None,
    device: str | None = None,
    out: str | os.PathLike[str] = "runs",
    resume: bool | str | os.PathLike[str] = False,
    config: dict[str, Any] | None = None,
    env_kwargs: dict[str, Any] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_minutes: float | None = None,
    threads: int | None = None,
    progress: bool | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    announce: Any = None,
    tensorboard: str | os.PathLike[str] | None = None,
) -> RunResult:
    """Train ``algo`` on ``env`` into a run directory; resume from its checkpoint when asked.

    Everything is validated before the directory is created, so bad input leaves no files. A
    resumed run keeps every setting it was started with (seed, device, threads, environment and
    config; a different one is refused) and may only change its budget ``steps`` upwards; a
    finished run resumed with the same budget is a no-op (``RunResult.already_finished``).
    ``threads`` (default :func:`prl.utils.default_threads`) is part of the run's config.
    ``announce()`` (optional) is called once everything is validated, just before training.
    ``tensorboard``: a directory; the run's TensorBoard events (the lab's metrics rows as
    ``prl/*`` scalars, and for SB3-based learners SB3's own logger with CSV and TensorBoard
    outputs) go to ``tensorboard/{run directory name}/``. Logging never changes the numbers.
    """
    out = Path(out)
    tb_root = _check_tensorboard(tensorboard)
    if seed is not None:
        seed = check_seed(seed)
    if threads is not None:
        threads = check_threads(threads, "--threads")
    if checkpoint_every is not None and (
        isinstance(checkpoint_every, bool) or int(checkpoint_every) <= 0
    ):
        raise ConfigError(f"--checkpoint-every must be positive, got {checkpoint_every!r}")
    if checkpoint_minutes is not None and not (
        isinstance(checkpoint_minutes, (int, float))
        and not isinstance(checkpoint_minutes, bool)
        and math.isfinite(checkpoint_minutes)
        and checkpoint_minutes > 0
    ):
        raise ConfigError(
            f"--checkpoint-minutes must be a positive number, got {checkpoint_minutes!r}"
        )
    if steps is not None and (
        isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps <= 0
    ):
        raise ConfigError(f"--steps must be a positive integer, got {steps!r}")
    meta: dict[str, Any] | None = None
    if resume:
        rdir = (
            Path(resume)
            if isinstance(resume, (str, os.PathLike)) and not isinstance(resume, bool)
            else find_resumable(out, algo, env, 0 if seed is None else seed)
        )
        if rdir is None or not (rdir / "config.json").is_file():
            s0 = 0 if seed is None else seed
            what = (
                f"{rdir} is not a run directory (no config.json)"
                if rdir is not None
                else f"no run of {algo} on {env} with seed {s0} under {out}"
            )
            raise ConfigError(f"nothing to resume: {what}")
        meta = read_run_config(rdir)
        if algo not in (None, "") and algo != meta["algo"]:
            raise ConfigError(
                f"cannot resume {rdir} as {algo}: it is a run of {meta['algo']} on {meta['env']}"
            )
        cls = _learner_class(meta["algo"])
        _refuse_changes(
            rdir,
            meta,
            cls,
            env=env,
            seed=seed,
            threads=threads,
            device=device,
            env_kwargs=env_kwargs,
            config=config,
        )
        algo, env, seed = meta["algo"], meta["env"], check_seed(meta["seed"])
        env_kwargs = meta.get("env_kwargs", {})
        config = meta.get("config", {})
        steps = int(meta["steps"]) if steps is None else int(steps)
        checkpoint_every = checkpoint_every or meta.get("checkpoint_every")
        checkpoint_minutes = checkpoint_minutes or meta.get("checkpoint_minutes")
        threads = meta.get("threads") or threads
        device = meta.get("resolved_device") or meta.get("device") or "auto"
        run_dir = rdir
    seed = 0 if seed is None else seed
    device = "auto" if device is None else device

    cls = _learner_class(algo)
    _validate_env(env, cls)
    env_kwargs = dict(env_kwargs or {})
    cfg = build_config(cls.Config, config)
    if steps is None:
        steps = int(getattr(cfg, "steps", cls.default_steps) or cls.default_steps)
    cls.check_env(env, env_kwargs)
    dev = resolve_device(device)
    threads = int(threads or default_threads())
    if checkpoint_minutes is None:
        checkpoint_minutes = DEFAULT_CHECKPOINT_MINUTES
    if meta is None:
        if run_dir is None:
            check_out_dir(out)
        else:
            check_out_dir(Path(run_dir).parent, "run directory parent")
        with run_threads(threads):
            _probe_env(env, env_kwargs)

    if meta is not None:
        return _resume(
            cls, cfg, meta, Path(run_dir), int(steps), dev, threads, checkpoint_every,
            float(checkpoint_minutes), progress, tb_root,
        )  # fmt: skip

    if run_dir is None:
        run_dir = out / _run_dir_name(algo, env, int(seed))
        while run_dir.exists():  # two runs in the same second
            run_dir = run_dir.with_name(run_dir.name + "_")
    run_dir = Path(run_dir)
    with run_threads(threads):
        seed_everything(int(seed))
        learner = cls(cfg, env, env_kwargs, int(seed), dev)  # may raise PrlError: no files yet
        learner.total_steps = int(steps)
        try:
            created = _claim_new_dir(run_dir)
            with dir_lock(run_dir, "run directory"):
                try:
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
                            "threads": threads,
                            "checkpoint_every": checkpoint_every,
                            "checkpoint_minutes": checkpoint_minutes,
                            "config": config_to_dict(cfg),
                            "git": git_info(),
                            "step_unit": cls.step_unit,
                            "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                        },
                    )
                    if announce is not None:
                        announce()  # e.g. the CLI's "budget: ..." line, after validation
                    return _loop(
                        learner, run_dir, int(steps), checkpoint_every, float(checkpoint_minutes),
                        progress, None, False, algo, None, tb_root,
                    )  # fmt: skip
                except BaseException:
                    if (
                        not (run_dir / "metrics.csv").exists()
                        and not (run_dir / CHECKPOINT).exists()
                    ):
                        _remove_new_dir(run_dir, created)  # nothing worth keeping
                    raise
        finally:
            learner.close()


def _remove_new_dir(run_dir: Path, created: bool) -> None:
    """Remove what a failed start wrote into ``run_dir`` (the whole directory if it made it)."""
    if created:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for p in run_dir.iterdir():
        with contextlib.suppress(OSError):
            p.unlink()
    with contextlib.suppress(OSError):
        run_dir.rmdir()


def _resume(
    cls: type[Learner],
    cfg: Any,
    meta: dict[str, Any],
    run_dir: Path,
    steps: int,
    dev: Any,
    threads: int,
    checkpoint_every: int | None,
    checkpoint_minutes: float,
    progress: bool | None,
    tb_root: Path | None = None,
) -> RunResult:
    """Continue ``run_dir`` from its checkpoint (or from scratch when it has none yet)."""
    ckpt_path = run_dir / CHECKPOINT
    with dir_lock(run_dir, "run directory"), run_threads(threads):
        clean_stale_tmp(run_dir)
        final_path = run_dir / "final.json"
        if final_path.exists() and steps == int(meta["steps"]):
            try:
                final = json.loads(final_path.read_text())
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                final = None  # a corrupt final.json: redo the evaluation below
            if isinstance(final, dict):
                return RunResult(
                    run_dir=run_dir,
                    final=final,
                    steps_done=int(final.get("step", steps)),
                    resumed=True,
                    already_finished=True,
                )
        seed = int(meta["seed"])
        seed_everything(seed)
        learner = cls(cfg, meta["env"], meta.get("env_kwargs", {}), seed, dev)
        try:
            keep_rows = 0
            last: dict[str, Any] | None = None
            if ckpt_path.exists():
                state = load_checkpoint(ckpt_path)
                _restore(learner, state, ckpt_path)
                keep_rows = int(state["metrics_rows"])
                if "last_row" in state:
                    last = json.loads(state["last_row"])
            if steps < learner.steps_done:
                raise ConfigError(
                    f"{run_dir} has already trained {learner.steps_done} {cls.step_unit}; "
                    f"--steps {steps} is below that (begin a new run for a smaller budget)"
                )
            learner.total_steps = int(steps)
            # checks metrics.csv against the checkpoint before anything is rewritten
            writer = MetricsWriter(run_dir / "metrics.csv", keep_rows=keep_rows)
            if last is None and writer.rows:  # a checkpoint of an older prl: the last kept row
                last = {k: _parse_cell(v) for k, v in writer.rows[-1].items() if v}
            if steps != int(meta["steps"]):  # the budget grows: config.json says so first
                final_path.unlink(missing_ok=True)
                atomic_write_json(run_dir / "config.json", {**meta, "steps": int(steps)})
            algo = meta["algo"]
            return _loop(
                learner, run_dir, steps, checkpoint_every, checkpoint_minutes, progress,
                writer, True, algo, last, tb_root,
            )  # fmt: skip
        finally:
            learner.close()


def _restore(learner: Learner, state: Any, path: Path) -> None:
    """Load a checkpoint payload into ``learner``; a payload of the wrong structure is an
    InvalidInputError naming the file, never a traceback."""
    if (
        not isinstance(state, dict)
        or "learner" not in state
        or not isinstance(state.get("metrics_rows"), int)
    ):
        raise InvalidInputError(f"checkpoint {path} has the wrong structure (not a prl checkpoint)")
    try:
        learner.load_state_dict(state["learner"])
    except PrlError:
        raise
    except Exception as exc:
        raise InvalidInputError(
            f"checkpoint {path} does not fit {type(learner).__name__}: "
            f"{type(exc).__name__}: {exc}".splitlines()[0]
        ) from None


def _parse_cell(text: str) -> Any:
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return {"True": True, "False": False}.get(text, text)


def _now() -> float:
    """Monotonic clock of the wall-clock checkpoints (patched by tests)."""
    return time.monotonic()


def _loop(
    learner: Learner,
    run_dir: Path,
    steps: int,
    checkpoint_every: int | None,
    checkpoint_minutes: float,
    progress: bool | None,
    writer: MetricsWriter | None,
    resumed: bool,
    algo: str,
    last: dict[str, Any] | None,
    tb_root: Path | None = None,
) -> RunResult:
    from prl.progress import Progress

    if writer is None:
        writer = MetricsWriter(run_dir / "metrics.csv")
    tb = sb3_log = None
    if tb_root is not None:
        from torch.utils.tensorboard import SummaryWriter

        tb_dir = tb_root / run_dir.name
        tb = SummaryWriter(log_dir=str(tb_dir))
        sb3_log = learner.log_to(tb_dir)
    kill_at = int(os.environ.get(KILL_ENV, "0") or 0)
    delay = float(os.environ.get(DELAY_ENV, "0") or 0)
    every = checkpoint_every or max(1, steps // 10)
    interval = 60.0 * checkpoint_minutes
    next_ckpt = (learner.steps_done // every + 1) * every
    last_ckpt_time = _now()
    last = dict(last or {})
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
                    if k != "step" and isinstance(v, (int, float)) and not isinstance(v, bool):
                        tb.add_scalar(f"prl/{k}", v, row["step"])
                if sb3_log:
                    learner.dump_log(int(row["step"]))
            last = row
            bar.update(learner.steps_done, row)
            if (
                learner.steps_done >= next_ckpt
                or learner.steps_done >= steps
                or _now() - last_ckpt_time >= interval
            ):
                save_checkpoint(
                    run_dir / CHECKPOINT,
                    {
                        "learner": learner.state_dict(),
                        "metrics_rows": len(writer.rows),
                        "last_row": json.dumps(row, default=_json_default),
                    },
                )
                last_ckpt_time = _now()
                next_ckpt = (learner.steps_done // every + 1) * every
            if kill_at and learner.steps_done >= kill_at:
                os.kill(os.getpid(), signal.SIGKILL)
            if delay:
                time.sleep(delay)
    finally:
        bar.close()
        if tb is not None:
            tb.close()
        if sb3_log:
            learner.close_log()
    final = {**last, **learner.evaluate()}
    if os.environ.get(KILL_PHASE_ENV) == "evaluate":
        os.kill(os.getpid(), signal.SIGKILL)  # fault injection: killed during final evaluation
    atomic_write_json(run_dir / "final.json", final)
    learner.export(run_dir)  # e.g. SB3's model.zip beside checkpoint.pt (SB3Learner.export)
    return RunResult(run_dir=run_dir, final=final, steps_done=learner.steps_done, resumed=resumed)


def _check_tensorboard(tensorboard: str | os.PathLike[str] | None) -> Path | None:
    """``--tensorboard DIR`` checked before anything is written: the optional extra is installed
    and DIR can be a directory."""
    if tensorboard is None:
        return None
    if not isinstance(tensorboard, (str, os.PathLike)) or not str(tensorboard):
        raise ConfigError(f"--tensorboard must be a directory path, got {tensorboard!r}")
    try:
        import tensorboard as _tb  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--tensorboard needs TensorBoard: pip install 'prl-lab[tensorboard]'"
        ) from None
    root = Path(tensorboard)
    check_out_dir(root, "--tensorboard directory")
    return root


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
    _validate_env(env, cls)
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
