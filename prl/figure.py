"""Registered paper figures: experiments write a CSV, the figure is drawn from that CSV.

A figure is a class registered with :func:`register_figure` that has two methods::

    def data(self, ctx: FigureContext) -> pandas.DataFrame   # run the experiments
    def draw(self, df: pandas.DataFrame, ctx: FigureContext) -> matplotlib.figure.Figure

``prl figure NAME [--quick]`` calls ``data`` (per-piece results can be cached with
``ctx.cached`` so a killed figure resumes), writes ``NAME.csv`` atomically, reads it back,
draws ``NAME.png`` with the seeds stated on it, and writes ``NAME.json`` (seeds, budget, time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prl.errors import PrlError
from prl.plot import axes_summary, mark_smoke_test
from prl.registry import FIGURES, load_plugins
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

    @property
    def cache_dir(self) -> Path:
        return self.out / ".cache" / self.name / ("quick" if self.quick else "full")

    def cached(self, key: str, fn: Callable[[], Any]) -> Any:
        """Return ``fn()``'s DataFrame, stored as CSV under ``key`` so reruns skip finished work."""
        import pandas as pd

        path = self.cache_dir / f"{key}.csv"
        if path.exists():
            return pd.read_csv(path)
        df = fn()
        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(df)
        with atomic_path(path) as tmp:
            df.to_csv(tmp, index=False)
        return pd.read_csv(path)


@dataclass(frozen=True)
class FigureSpec:
    """A registered figure and its quick/full budgets and seed lists."""

    name: str
    cls: type
    description: str
    seeds: tuple[int, ...]
    quick_seeds: tuple[int, ...]
    budget: dict[str, Any] = field(default_factory=dict)
    quick_budget: dict[str, Any] = field(default_factory=dict)
    paper: str = ""


def register_figure(
    name: str,
    *,
    seeds: Sequence[int],
    quick_seeds: Sequence[int] | None = None,
    budget: dict[str, Any] | None = None,
    quick_budget: dict[str, Any] | None = None,
    description: str = "",
    paper: str = "",
) -> Callable[[type], type]:
    """Class decorator registering a figure with its seed lists and budgets."""

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
) -> FigureOutcome:
    """Run figure ``name``'s experiments into CSV, then draw the PNG from that CSV."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    import pandas as pd

    load_plugins()
    spec: FigureSpec = FIGURES.get(name)
    out = Path(out)
    dev = resolve_device(device)
    seeds = spec.quick_seeds if quick else spec.seeds
    ctx = FigureContext(
        name=name,
        quick=quick,
        seeds=seeds,
        budget=dict(spec.quick_budget if quick else spec.budget),
        device=dev,
        out=out,
        progress=progress,
    )
    t0 = time.perf_counter()
    files: dict[str, str] = {}
    try:
        fig_obj = spec.cls()
        df = fig_obj.data(ctx)
        if not isinstance(df, pd.DataFrame) or df.empty:
            raise PrlError(f"figure {name} produced no data")
        csv_path = out / f"{name}.csv"
        with atomic_path(csv_path) as tmp:
            df.to_csv(tmp, index=False)
        files["csv"] = csv_path.name
        stored = pd.read_csv(csv_path)  # draw from the stored CSV, never from live objects
        fig = fig_obj.draw(stored, ctx)
        mode = "quick" if quick else "full"
        if quick:
            mark_smoke_test(fig)
        fig.text(
            0.99,
            0.005,
            f"seeds: {', '.join(map(str, seeds))} · {mode} budget",
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
            name, time.perf_counter() - t0, files, seeds, f"{type(exc).__name__}: {exc}"
        )
    secs = time.perf_counter() - t0
    atomic_write_json(
        out / f"{name}.json",
        {
            "name": name,
            "description": spec.description,
            "paper": spec.paper,
            "quick": quick,
            "seeds": list(seeds),
            "budget": ctx.budget,
            "seconds": round(secs, 3),
            "files": files,
            "git": git_info(),
            "axes": axes,
        },
    )
    files["json"] = f"{name}.json"
    return FigureOutcome(name, secs, files, seeds)
