"""ZO-RankSGD (Tang, Rybin, Chang 2024, "Zeroth-order optimization meets human feedback:
provable learning via ranking oracles"): descent from rankings alone.

The objective is the smooth non-convex f(x) = log(1 + ‖x‖²/2) (non-convex for ‖x‖ > √2),
started at distance 2 from its minimiser in a random direction, and queried only through a
ranking oracle of m = 4 probes per step (:mod:`algos.zo_rank`). With the step η = η₀/√(dT)
and a small smoothing radius, the theory gives an average gradient norm O(√(d/T)):

- the average of ‖∇f(x_t)‖ over t < T falls like T^(−1/2) (fitted log–log slope −½ ± 0.1, d =
  8, T = 128 … 2048) and grows like d^(1/2) (slope ½ ± 0.15, T = 512, d = 2 … 32), averaged
  over independent runs (batched in one tensor, dimensions masked);
- the iterates are identical (bit for bit) when f is replaced by a strictly increasing
  transform of it, f³ + exp(f), since only the ranking is used.

Negative control (``variant="value"``): the two-point value-based estimator sees the values,
so its iterates change under the transform and the check must FAIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prl.algos.zo_rank import ranking_oracle, zo_rank_sgd
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.plot import ensure_log_ticks, fit_loglog_slope, new_figure
from prl.theory._po import generator, one_thread, result

ETA0, D0, M, MU = 0.5, 2.0, 4, 1e-5
T_SLOPE_TOL, D_SLOPE_TOL = 0.1, 0.15


VARIANTS = ("value",)  # deliberately broken ingredients (negative controls)


def objective(x: torch.Tensor) -> torch.Tensor:
    """f(x) = log(1 + ‖x‖²/2) over the last axis."""
    return torch.log1p(0.5 * (x * x).sum(-1))


def objective_grad(x: torch.Tensor) -> torch.Tensor:
    """∇f(x) = x / (1 + ‖x‖²/2) (for measuring stationarity only; the method never sees it)."""
    return x / (1.0 + 0.5 * (x * x).sum(-1, keepdim=True))


def transformed(x: torch.Tensor) -> torch.Tensor:
    """A strictly increasing transform of f: f³ + exp(f)."""
    v = objective(x)
    return v**3 + torch.exp(v)


def _average_grad_norm(
    cfg: list[tuple[int, int]], seeds: int, gen: torch.Generator, estimator: str
) -> np.ndarray:
    """Mean over runs of (1/T) Σ_{t<T} ‖∇f(x_t)‖ for each (T, d) in cfg (one batch)."""
    dev = gen.device
    dmax = max(d for _, d in cfg)
    T = torch.tensor([t for t, _ in cfg for _ in range(seeds)], device=dev)
    dims = torch.tensor([d for _, d in cfg for _ in range(seeds)], device=dev)
    mask = (torch.arange(dmax, device=dev)[None, :] < dims[:, None]).double()
    u = torch.randn(len(T), dmax, generator=gen, dtype=torch.float64, device=dev) * mask
    x0 = D0 * u / u.norm(dim=-1, keepdim=True)
    eta = ETA0 / torch.sqrt(dims.double() * T.double())
    acc = torch.zeros(len(T), dtype=torch.float64, device=dev)

    def record(t: int, x: torch.Tensor, active: torch.Tensor) -> None:
        acc.add_(torch.where(active, objective_grad(x).norm(dim=-1), torch.zeros_like(acc)))

    oracle = ranking_oracle(objective)
    zo_rank_sgd(oracle, x0, T, eta, M, MU, gen, mask, estimator, callback=record)
    return (acc / T.double()).reshape(len(cfg), seeds).mean(1).cpu().numpy()


@one_thread
def experiment(quick: bool, device: Any, seed: int, variant: str | None = None) -> dict[str, Any]:
    """Rates in T and d, and invariance under a monotone transform of f."""
    if variant not in (None, *VARIANTS):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS})")
    est = "value" if variant == "value" else "rank"
    S = 16 if quick else 256
    Ts = [128, 256, 512, 1024, 2048] if quick else [128, 256, 512, 1024, 2048, 4096, 8192, 16384]
    ds = [2, 4, 8, 16, 32] if quick else [2, 4, 8, 16, 32, 64, 128]
    gen = generator(seed, device, salt=71)
    by_T = _average_grad_norm([(t, 8) for t in Ts], S, gen, est)
    by_d = _average_grad_norm([(512, d) for d in ds], S, gen, est)
    # invariance: the same probes (same generator state) on f and on f³ + exp(f)
    x0 = D0 * torch.ones(4, 8, dtype=torch.float64, device=gen.device) / np.sqrt(8)
    runs = []
    for fn in (objective, transformed):
        g = generator(seed, device, salt=72)
        runs.append(zo_rank_sgd(ranking_oracle(fn), x0, 200, 0.05, M, MU, g, None, est))
    identical = bool(torch.equal(runs[0], runs[1]))
    diff = float((runs[0] - runs[1]).abs().max())
    rows = [{"scan": "T", "T": t, "d": 8, "avg_grad_norm": float(v)} for t, v in zip(Ts, by_T)]
    rows += [{"scan": "d", "T": 512, "d": d, "avg_grad_norm": float(v)} for d, v in zip(ds, by_d)]
    rows.append({"scan": "invariance", "identical": int(identical), "max_abs_difference": diff})
    return {
        "rows": rows,
        "slope_T": fit_loglog_slope(Ts, by_T),
        "slope_d": fit_loglog_slope(ds, by_d),
        "identical": identical,
        "difference": diff,
    }


def draw(df: Any) -> Any:
    """Average gradient norm vs T (d = 8) and vs d (T = 512), with the √(d/T) reference."""
    fig, axes = new_figure(ncols=2)
    for ax, scan, ref in ((axes[0, 0], "T", -0.5), (axes[0, 1], "d", 0.5)):
        sub = df[df["scan"] == scan].sort_values(scan)
        x = sub[scan].to_numpy(dtype=float)
        y = sub["avg_grad_norm"].to_numpy(dtype=float)
        s = fit_loglog_slope(x, y)
        ax.loglog(x, y, "o-", label=f"ZO-RankSGD (slope {s:.2f})")
        ax.loglog(x, y[0] * (x / x[0]) ** ref, "k--", lw=1, label=f"slope {ref:+g}")
        ax.minorticks_off()
        ax.set_xticks(x, [str(int(v)) for v in x])
        ax.set_xlabel("iterations T (d = 8)" if scan == "T" else "dimension d (T = 512)")
        ax.set_ylabel("average gradient norm (1/T) Σ_t ‖∇f(x_t)‖\n(mean over runs)")
        ensure_log_ticks(ax, "y")  # the values span less than a decade
        ax.legend(fontsize=7)
    inv = df[df["scan"] == "invariance"]
    if len(inv):
        same = int(inv["identical"].iloc[0]) == 1
        axes[0, 0].set_title(
            f"iterates under f ↦ f³ + eᶠ: {'identical' if same else 'different'}", fontsize=8
        )
    fig.tight_layout()
    return fig


def verdict(out: dict[str, Any]) -> CheckResult:
    """PASS iff both slopes are within tolerance and the iterates are transform-invariant."""
    parts = {
        "T^(−½)": abs(out["slope_T"] + 0.5) <= T_SLOPE_TOL,
        "d^(½)": abs(out["slope_d"] - 0.5) <= D_SLOPE_TOL,
        "monotone invariance": out["identical"],
    }
    failed = [k for k, ok in parts.items() if not ok]
    return result(
        measured=out["slope_T"],
        claimed=-0.5,
        tolerance=T_SLOPE_TOL,
        passed=not failed,
        rows=out["rows"],
        draw=draw,
        comparison="≈",
        detail=(
            f"slope in T {out['slope_T']:.3f} (−½ ± {T_SLOPE_TOL}); slope in d "
            f"{out['slope_d']:.3f} (½ ± {D_SLOPE_TOL}); iterates under f³ + exp(f) identical: "
            f"{out['identical']} (max difference {out['difference']:.1e})"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


@register_check(
    "zo_rank_sgd_rate",
    paper="Tang, Rybin, Chang 2024, Zeroth-order optimization meets human feedback: provable "
    "learning via ranking oracles (ZO-RankSGD)",
    claim="On a smooth non-convex function queried only through a ranking oracle, ZO-RankSGD's "
    "average gradient norm falls like T^(−1/2) (± 0.1) and grows like d^(1/2) (± 0.15), and its "
    "iterates are identical under a monotone transform of the objective.",
    tags=("preference-optimization",),
)
def check_zo_rank(quick: bool, device: Any, seed: int) -> CheckResult:
    """Batched runs over T and d with the ranking oracle; a transform-invariance run."""
    return verdict(experiment(quick, device, seed))
