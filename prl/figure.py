"""Registered paper figures: experiments write a CSV, the figure is drawn from that CSV.

A figure is a class registered with :func:`register_figure` that has two methods::

    def data(self, ctx: FigureContext) -> pandas.DataFrame   # run the experiments
    def draw(self, df: pandas.DataFrame, ctx: FigureContext) -> matplotlib.figure.Figure

``prl figure NAME [--budget quick|mid|full]`` gets the data, writes ``NAME.csv`` atomically,
reads it back, draws ``NAME.png`` with the seeds and budget stated on it, and writes
``NAME.json`` (seeds, budget, time, and the figure's claim with its verdict, see
:mod:`prl.claims`). Every figure has three budget tiers: ``quick`` (CI: ``data`` runs in this
process, per-piece results cached with ``ctx.cached`` so a killed figure resumes), ``mid`` (this
2-core machine) and ``full`` (the paper's budget). At ``mid`` and ``full`` each ``ctx.cached``
piece is a ``prl sweep`` job (local pool or Ray) and the results live in the store
``figures/data/TIER/NAME/`` (:mod:`prl.store`): drawn from it when complete, missing pieces
computed and added.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prl.errors import ConfigError, PrlError
from prl.plot import axes_summary, mark_smoke_test
from prl.registry import FIGURES
from prl.utils import atomic_path, atomic_write_json, git_info, resolve_device


@dataclass
class FigureContext:
    """What a figure's ``data``/``draw`` get: budget, seeds, device and a cache directory."""

    name: str
    quick: bool
    seeds: tuple[int, ...]
    budget: dict[str, Any]
    device: Any
    out: Path
    progress: bool = False
    tier: str = ""
    # store machinery (prl.store): plan mode lists the piece keys without running them; piece
    # mode runs only piece ``only`` and stops the figure's data() right after it
    plan: list[str] | None = None
    only: str | None = None
    piece_stats: dict[str, dict[str, float]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tier:
            self.tier = "quick" if self.quick else "full"

    @property
    def cache_dir(self) -> Path:
        return self.out / ".cache" / self.name / self.tier

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        """Return ``fn()``'s DataFrame, stored as CSV under ``key`` so reruns skip finished work."""
        import pandas as pd

        if self.plan is not None:
            self.plan.append(key)
            return pd.DataFrame()
        if self.only is not None and key != self.only:
            return pd.DataFrame()
        path = self.cache_dir / f"{key}.csv"
        if not path.exists():
            t0, c0 = time.perf_counter(), time.process_time()
            df = fn()
            if not isinstance(df, pd.DataFrame):
                df = pd.DataFrame(df)
            with atomic_path(path) as tmp:
                df.to_csv(tmp, index=False)
            self.piece_stats[key] = {
                "wall_s": time.perf_counter() - t0,
                "cpu_s": time.process_time() - c0,
            }
        if self.only is not None:
            raise PieceDone(key)
        return pd.read_csv(path)


class PieceDone(Exception):
    """Raised by ``ctx.cached`` in piece mode once the wanted piece is on disk."""


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure and its quick/mid/full budgets and seed lists."""

    name: str
    cls: type
    description: str
    seeds: tuple[int, ...]
    quick_seeds: tuple[int, ...]
    budget: dict[str, Any] = field(default_factory=dict)
    quick_budget: dict[str, Any] = field(default_factory=dict)
    paper: str = ""
    mid_seeds: tuple[int, ...] = ()
    mid_budget: dict[str, Any] = field(default_factory=dict)
    hparams: str = ""

    def tier(self, tier: str) -> tuple[tuple[int, ...], dict[str, Any]]:
        """(seeds, budget) of a budget tier: quick, mid or full."""
        if tier == "quick":
            return self.quick_seeds, dict(self.quick_budget)
        if tier == "mid":
            return self.mid_seeds, dict(self.mid_budget)
        if tier == "full":
            return self.seeds, dict(self.budget)
        raise ConfigError(f"unknown budget {tier!r} (expected one of {', '.join(TIERS)})")


TIERS = ("quick", "mid", "full")


def register_figure(
    name: str,
    *,
    seeds: Sequence[int],
    quick_seeds: Sequence[int] | None = None,
    budget: dict[str, Any] | None = None,
    quick_budget: dict[str, Any] | None = None,
    description: str = "",
    paper: str = "",
    mid_seeds: Sequence[int] | None = None,
    mid_budget: dict[str, Any] | None = None,
    hparams: str = "",
) -> Callable[[type], type]:
    """Class decorator registering a figure with its seed lists and budgets (``mid`` defaults
    to the full budget and seeds; ``hparams`` says where the hyperparameters come from)."""

    def deco(cls: type) -> type:
        for m in ("data", "draw"):
            if not callable(getattr(cls, m, None)):
                raise TypeError(f"figure class {cls.__name__} needs a {m}() method")
        desc = description or ((cls.__doc__ or "").strip().splitlines() or [""])[0]
        spec = FigureSpec(
            name=name,
            cls=cls,
            description=desc,
            seeds=tuple(int(s) for s in seeds),
            quick_seeds=tuple(int(s) for s in (quick_seeds if quick_seeds is not None else seeds)),
            budget=dict(budget or {}),
            quick_budget=dict(quick_budget or budget or {}),
            paper=paper,
            mid_seeds=tuple(int(s) for s in (mid_seeds if mid_seeds is not None else seeds)),
            mid_budget=dict(mid_budget or budget or {}),
            hparams=hparams,
        )
        FIGURES.register(name, spec, description=spec.description)
        return cls

    return deco


@dataclass
class FigureOutcome:
    """Files written for one figure and how long it took (or the error that stopped it)."""

    name: str
    seconds: float
    files: dict[str, str]
    seeds: tuple[int, ...]
    error: str | None = None
    tier: str = ""
    claim: dict[str, Any] | None = None
    store: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_figure(
    name: str,
    *,
    out: str | Path = "results/figures",
    quick: bool = False,
    device: Any = "cpu",
    progress: bool = False,
    catch: bool = False,
    budget: str | None = None,
    rerun: bool = False,
    backend: str = "local",
    workers: int | None = None,
    store: str | Path | None = None,
    override: dict[str, Any] | None = None,
) -> FigureOutcome:
    """Get figure ``name``'s data at a budget tier (``budget``: quick, mid or full; ``quick=True``
    means quick), write it as CSV, draw the PNG from that CSV and judge the figure's claim.

    At quick (unless ``store`` is given) ``data`` runs in this process; otherwise the data comes
    from the store ``STORE/TIER/NAME`` (default ``figures/data``), computing missing pieces as
    ``prl sweep`` jobs on ``backend`` (``rerun``: recompute every piece). ``override`` (tests)
    replaces the tier's ``seeds`` and updates its budget.
    """
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    spec: FigureSpec = FIGURES.get(name)
    tier = budget or ("quick" if quick else "full")
    seeds, bud = spec.tier(tier)
    if override:
        seeds = tuple(int(x) for x in override.get("seeds", seeds))
        bud.update({k: v for k, v in override.items() if k != "seeds"})
    out = Path(out)
    dev = resolve_device(device)
    ctx = FigureContext(
        name=name,
        quick=tier == "quick",
        seeds=seeds,
        budget=bud,
        device=dev,
        out=out,
        progress=progress,
        tier=tier,
    )
    t0 = time.perf_counter()
    files: dict[str, str] = {}
    claim: dict[str, Any] | None = None
    store_dir: Path | None = None
    provenance: dict[str, Any] | None = None
    try:
        fig_obj = spec.cls()
        if tier == "quick" and store is None:
            df = fig_obj.data(ctx)
        else:
            from prl.store import ensure_store, store_root

            store_dir = store_root(store) / tier / name
            df = ensure_store(
                ctx, store_dir, rerun=rerun, backend=backend, workers=workers, spec=spec
            )
        if not isinstance(df, pd.DataFrame) or df.empty:
            raise PrlError(f"figure {name} produced no data")
        csv_path = out / f"{name}.csv"
        with atomic_path(csv_path) as tmp:
            df.to_csv(tmp, index=False)
        files["csv"] = csv_path.name
        stored = pd.read_csv(csv_path)  # draw from the stored CSV, never from live objects
        claim = judge_claim(name, stored, tier=tier, seeds=seeds, budget=bud)
        fig = fig_obj.draw(stored, ctx)
        if tier == "quick":
            mark_smoke_test(fig)
        provenance = store_provenance(store_dir)
        analysis = provenance.pop("analysis", "") if provenance else ""
        if claim is not None and analysis:
            claim["analysis"] = analysis  # the store's analysis of its verdict
        stamp = f"seeds: {', '.join(map(str, seeds))} · {tier} budget"
        if provenance:
            stamp += (
                f" · runs at {', '.join(c[:7] for c in provenance['commits'])}"
                f" by `{provenance['command']}`"
            )
        fig.text(
            0.99,
            0.005,
            stamp,
            ha="right",
            va="bottom",
            fontsize=7,
            color="0.4",
        )
        png = out / f"{name}.png"
        with atomic_path(png) as tmp:
            fig.savefig(tmp, dpi=120, bbox_inches="tight", format="png")
        axes = axes_summary(fig)  # labels and ticks as drawn, for the figure lint
        plt.close(fig)
        files["png"] = png.name
    except Exception as exc:
        if not catch:
            raise
        return FigureOutcome(
            name, time.perf_counter() - t0, files, seeds, f"{type(exc).__name__}: {exc}", tier
        )
    secs = time.perf_counter() - t0
    atomic_write_json(
        out / f"{name}.json",
        {
            "name": name,
            "description": spec.description,
            "paper": spec.paper,
            "quick": tier == "quick",
            "budget_tier": tier,
            "seeds": list(seeds),
            "budget": ctx.budget,
            "seconds": round(secs, 3),
            "files": files,
            "git": git_info(),
            "claim": claim,
            "store": None if store_dir is None else str(store_dir),
            "runs_from": provenance,
            "axes": axes,
        },
    )
    files["json"] = f"{name}.json"
    return FigureOutcome(
        name, secs, files, seeds, None, tier, claim, None if store_dir is None else str(store_dir)
    )


def store_provenance(store_dir: Path | None) -> dict[str, Any] | None:
    """Where a stored figure's runs came from: the commits, the command and the analysis of its
    manifest."""
    if store_dir is None or not (store_dir / "manifest.json").is_file():
        return None
    man = json.loads((store_dir / "manifest.json").read_text())
    commits = sorted({str(p.get("commit")) for p in man.get("pieces", []) if p.get("commit")})
    return {"commits": commits, "command": man.get("command", ""), "complete": man.get("complete"),
            "analysis": man.get("analysis", "")}  # fmt: skip


def judge_claim(
    name: str, df: Any, *, tier: str, seeds: Sequence[int], budget: dict[str, Any]
) -> dict[str, Any] | None:
    """The verdict of figure ``name``'s registered claim on its CSV (None without a claim)."""
    from prl.claims import claim_for_figure

    claim = claim_for_figure(name)
    if claim is None:
        return None
    try:
        return claim.evaluate(df, tier=tier, seeds=seeds, budget=budget).as_dict()
    except (KeyError, ValueError) as exc:  # this budget's CSV lacks what the metric reads
        return {"name": claim.name, "figure": name, "paper": claim.paper, "text": claim.text,
                "metric": claim.metric, "verdict": "INCONCLUSIVE", "smoke": tier == "quick",
                "reason": f"the metric cannot be read from this CSV: {type(exc).__name__}: {exc}",
                "seeds": [int(s) for s in seeds], "budget": tier, "budget_settings": budget,
                "comparisons": [], "sanity": [], "analysis": claim.analysis}  # fmt: skip
