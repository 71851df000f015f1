"""Plots drawn from stored tables: IQM learning curves with bootstrap bands, Pareto fronts,
and log–log convergence plots with the fitted slope next to the theoretical line."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from prl.errors import InvalidInputError
from prl.metrics import curve_iqm_ci, pareto_mask


def _mpl() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def new_figure(ncols: int = 1, nrows: int = 1, size: tuple[float, float] = (4.8, 3.4)) -> Any:
    """A figure with ``nrows × ncols`` axes of the lab's default size."""
    plt = _mpl()
    fig, axes = plt.subplots(
        nrows, ncols, figsize=(size[0] * ncols, size[1] * nrows), squeeze=False
    )
    return fig, axes


SMOKE_TEXT = "SMOKE TEST: NOT A RESULT"


def mark_smoke_test(
    fig: Any, note: str = "quick budget: checks the code runs, not the claim"
) -> None:
    """Stamp a quick-budget figure: a red diagonal "smoke test: not a result" over every panel."""
    fig.text(
        0.5,
        0.5,
        SMOKE_TEXT,
        ha="center",
        va="center",
        rotation=25,
        fontsize=34,
        fontweight="bold",
        color="red",
        alpha=0.22,
        zorder=1000,
    )
    fig.text(
        0.01,
        0.005,
        f"{SMOKE_TEXT} ({note})",
        ha="left",
        va="bottom",
        fontsize=8,
        fontweight="bold",
        color="#b00000",
    )


def fit_loglog_slope(x: Sequence[float], y: Sequence[float], floor: float = 0.0) -> float:
    """Least-squares slope of log y against log x over the points with y > floor."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    keep = (x > 0) & (y > floor) & np.isfinite(y)
    if keep.sum() < 2:
        raise InvalidInputError("need at least two points above the floor to fit a slope")
    slope, _ = np.polyfit(np.log(x[keep]), np.log(y[keep]), 1)
    return float(slope)


MIN_SEEDS_FOR_CI = 5  # fewer seeds: draw each seed, not a bootstrap band
MARKERS = "osD^v<>"
DASHES = ["-", "--", "-.", (0, (5, 1, 1, 1))]


def seed_stat(n_seeds: int, confidence: float = 0.95) -> str:
    """How a per-seed statistic is shown: ``IQM over seeds, 95% CI`` or, with fewer than
    MIN_SEEDS_FOR_CI seeds, ``mean; dots: seeds``."""
    if n_seeds >= MIN_SEEDS_FOR_CI:
        return f"IQM over seeds, {int(confidence * 100)}% CI"
    return "mean; dots: seeds"


def seed_bars(ax: Any, pos: float, values: Any, *, horizontal: bool = False, **kw: Any) -> None:
    """One bar of a per-seed statistic: IQM with a 95% bootstrap CI from MIN_SEEDS_FOR_CI
    seeds on, else the mean with every seed drawn as a dot."""
    from prl.metrics import iqm, stratified_bootstrap_ci

    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return
    bar = ax.barh if horizontal else ax.bar
    if v.size >= MIN_SEEDS_FOR_CI:
        mid, lo, hi = stratified_bootstrap_ci(v, iqm, reps=2000, rng=np.random.default_rng(0))
        err = [[mid - lo], [hi - mid]]
        bar(pos, mid, **kw)
        if horizontal:
            ax.errorbar(mid, pos, xerr=err, color="k", capsize=3)
        else:
            ax.errorbar(pos, mid, yerr=err, color="k", capsize=3)
    else:
        bar(pos, v.mean(), **kw)
        p = np.full(v.size, pos, dtype=np.float64)
        ax.plot(*((v, p) if horizontal else (p, v)), "k.", ms=4)


def words(name: str) -> str:
    """A column name as words for an axis label: ``ep_return`` → ``ep return``."""
    return str(name).replace("_", " ")


def learning_curves(
    ax: Any,
    df: Any,
    *,
    x: str,
    y: str,
    group: str,
    seed: str = "seed",
    reps: int = 1000,
    rng_seed: int = 0,
    confidence: float = 0.95,
    xlabel: str | None = None,
    ylabel: str | None = None,
    min_seeds_for_ci: int = MIN_SEEDS_FOR_CI,
) -> dict[str, list[int]]:
    """Per group: IQM over seeds with a 95% stratified-bootstrap band; returns the seeds used.

    ``df`` is long-form (one row per group × seed × x). Curves are aligned on the x values
    common to all seeds of a group. With fewer than ``min_seeds_for_ci`` seeds a bootstrap band
    means little (2 seeds give 2 resamples' worth of spread), so each seed is drawn as a thin
    line under the mean instead. ``xlabel``/``ylabel`` name the axes in words (default: the
    column names with spaces).
    """
    rng = np.random.default_rng(rng_seed)
    used: dict[str, list[int]] = {}
    banded = False
    for k, (g, sub) in enumerate(df.groupby(group, sort=True)):
        piv = sub.pivot_table(index=seed, columns=x, values=y, aggfunc="mean").dropna(axis=1)
        if piv.shape[1] == 0:
            continue
        curves = piv.to_numpy(dtype=np.float64)
        xs = piv.columns.to_numpy(dtype=np.float64)
        n = curves.shape[0]
        # a marker and dash per group, so curves that coincide stay told apart
        style = {
            "marker": MARKERS[k % len(MARKERS)],
            "ls": DASHES[k % len(DASHES)],
            "ms": 4,
            "markevery": max(1, xs.size // 8),
            "markerfacecolor": "none",
        }
        if n >= max(2, min_seeds_for_ci):
            mid, lo, hi = curve_iqm_ci(curves, reps=reps, confidence=confidence, rng=rng)
            (line,) = ax.plot(xs, mid, label=str(g), **style)
            ax.fill_between(xs, lo, hi, color=line.get_color(), alpha=0.2, linewidth=0)
            banded = True
        else:
            mid = curves.mean(axis=0)
            (line,) = ax.plot(xs, mid, label=f"{g} (n={n})", **style)
            if n > 1:
                for c in curves:
                    ax.plot(xs, c, color=line.get_color(), lw=0.8, alpha=0.45, ls=":")
        used[str(g)] = [int(s) for s in piv.index]
    ax.set_xlabel(xlabel or words(x))
    what = ylabel or words(y)
    if banded:
        ax.set_ylabel(f"{what}\n(IQM over seeds, {int(confidence * 100)}% CI)")
    else:
        ax.set_ylabel(f"{what}\n(mean; dotted: each seed)")
    return used


def convergence(
    ax: Any,
    x: Sequence[float],
    y: Sequence[float],
    *,
    label: str,
    theory: Sequence[float] | None = None,
    theory_label: str = "theory",
    floor: float = 0.0,
) -> float:
    """Log–log plot of an error curve, its fitted slope in the legend, and the theoretical line."""
    slope = fit_loglog_slope(x, y, floor=floor)
    ax.loglog(x, y, marker="o", ms=3, label=f"{label} (slope {slope:.2f})")
    if theory is not None:
        ax.loglog(x, theory, "k--", lw=1, label=theory_label)
    ax.legend(fontsize=8)
    return slope


def pareto_front_plot(
    ax: Any, points: np.ndarray, *, label: str, ref: Sequence[float] | None = None, **kw: Any
) -> None:
    """Scatter 2-D points, joining the non-dominated ones as a staircase."""
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise InvalidInputError(f"pareto_front_plot needs [n,2] points, got {pts.shape}")
    mask = pareto_mask(pts)
    front = pts[mask]
    front = front[np.argsort(front[:, 0])]
    sc = ax.scatter(pts[~mask, 0], pts[~mask, 1], s=8, alpha=0.3, **kw)
    color = kw.get("color", sc.get_facecolor()[0] if len(pts[~mask]) else None)
    # the attainment surface: between x_i and x_{i+1} the best reachable y is y_{i+1}
    (line,) = ax.step(front[:, 0], front[:, 1], where="pre", color=color, label=label)
    ax.scatter(front[:, 0], front[:, 1], s=14, color=line.get_color())
    if ref is not None:
        ax.scatter([ref[0]], [ref[1]], marker="x", color="k", s=20)


# ---------------------------------------------------------------------------------------------
# figure lint: every axis labelled in words, tick labels present

# a column-like identifier: words joined by underscores (ep_return, tv_to_equilibrium); one-letter
# subscripts in plain text (x_t, y_w, π_k) are notation, not column names
_SNAKE = re.compile(r"(?<![\\\w])[A-Za-z][A-Za-z0-9]+(?:_[A-Za-z0-9]{2,})+(?![\w(])")


def _plain(text: str) -> str:
    """``text`` without its mathtext ($...$) parts, where underscores are subscripts."""
    return re.sub(r"\$[^$]*\$", " ", text)


def _visible_tick_labels(axis: Any) -> int:
    lo, hi = sorted(axis.get_view_interval())
    n = 0
    for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()]:
        lab = tick.label1
        if not (tick.get_visible() and lab.get_visible() and lab.get_text().strip()):
            continue
        loc = tick.get_loc()
        if loc is not None and lo - 1e-9 * max(1.0, abs(lo)) <= loc <= hi + 1e-9 * max(1, abs(hi)):
            n += 1
    return n


def axes_summary(fig: Any) -> list[dict[str, Any]]:
    """Each data-bearing axis of a drawn figure: title, axis labels, scales, tick-label counts.

    Call after the figure is drawn (``savefig`` draws it); stored next to every PNG so the
    figure lint (:func:`lint_axes`) runs on stored output without redrawing.
    """
    fig.canvas.draw()
    out = []
    for i, ax in enumerate(fig.get_axes()):
        has_data = bool(ax.lines or ax.collections or ax.patches or ax.images)
        if not ax.axison or not has_data:
            continue
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            continue
        out.append(
            {
                "index": i,
                "title": ax.get_title() or ax.get_title(loc="left") or "",
                "xlabel": ax.get_xlabel(),
                "ylabel": ax.get_ylabel(),
                "xscale": ax.get_xscale(),
                "yscale": ax.get_yscale(),
                "xticklabels": _visible_tick_labels(ax.xaxis),
                "yticklabels": _visible_tick_labels(ax.yaxis),
                "image": bool(ax.images),
            }
        )
    return out


def lint_axes(summary: list[dict[str, Any]], name: str = "figure") -> list[str]:
    """Problems of an :func:`axes_summary`: a missing axis label, a raw ``snake_case`` label,
    or an axis with fewer than two tick labels (one for a categorical image axis)."""
    problems = []
    for a in summary:
        where = f"{name} panel {a['index']}" + (f" ({a['title']!r})" if a["title"] else "")
        for ax in ("x", "y"):
            label = str(a[f"{ax}label"] or "").strip()
            if not label:
                problems.append(f"{where}: no {ax} axis label")
            elif _SNAKE.search(_plain(label)):
                word = _SNAKE.search(_plain(label)).group(0)  # type: ignore[union-attr]
                problems.append(f"{where}: {ax} label {label!r} has a raw column name {word!r}")
            need = 1 if a.get("image") else 2
            if a[f"{ax}ticklabels"] < need:
                problems.append(
                    f"{where}: {a[f'{ax}ticklabels']} tick labels on the {ax} axis "
                    f"({a[f'{ax}scale']} scale)"
                )
    return problems


def ensure_log_ticks(ax: Any, axis: str = "y") -> None:
    """Label a log axis even when its range spans less than a decade (plain log ticks would
    leave it blank): four evenly spaced (in log) labelled ticks, or 1-2-5 ticks per decade."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, LogLocator, NullLocator

    a = ax.yaxis if axis == "y" else ax.xaxis
    lo, hi = sorted(ax.get_ylim() if axis == "y" else ax.get_xlim())
    fmt = FuncFormatter(lambda v, _: f"{v:.3g}")
    if lo > 0 and hi / lo < 10:
        a.set_major_locator(FixedLocator(np.geomspace(lo * 1.03, hi / 1.03, 4)))
    else:
        a.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    a.set_major_formatter(fmt)
    a.set_minor_locator(NullLocator())


def auto_log_scale(ax: Any, values: Any, axis: str = "y", decades: float = 1.5) -> str:
    """A log scale when ``values`` span more than ``decades`` decades (symlog when some are 0),
    else linear; ticks stay labelled. Returns the scale chosen."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    pos = v[v > 0]
    set_scale = ax.set_yscale if axis == "y" else ax.set_xscale
    if pos.size < 2 or np.log10(pos.max() / pos.min()) < decades or (v < 0).any():
        set_scale("linear")
        return "linear"
    if (v == 0).any():
        from matplotlib.ticker import SymmetricalLogLocator

        lin = float(pos.min())
        set_scale("symlog", linthresh=lin)
        a = ax.yaxis if axis == "y" else ax.xaxis
        a.set_major_locator(SymmetricalLogLocator(linthresh=lin, base=10))
        return "symlog"
    set_scale("log")
    ensure_log_ticks(ax, axis)
    return "log"
