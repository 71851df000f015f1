"""APO (He et al. 2024, "Accelerated preference optimization for large language model
alignment"): Nesterov extrapolation of iterative DPO.

Exact Bradley–Terry bandits (5 responses, score gaps ≥ 0.3, β = 3, uniform pairs): iterative
DPO refits DPO with the previous policy as reference, so π_{t+1} ∝ π_t exp(r/β) and the
suboptimality max r − E_π r decays like e^(−Δt/β) (Δ the gap to the second-best response).
APO extrapolates, π_{t+1} ∝ π̂_{t+1}(π̂_{t+1}/π̂_t)^α, which multiplies the per-round logit
increment by 1/(1−α) in the long run. Both run through :func:`algos.dpo.iterative_dpo`; the
slope of ln(suboptimality) against t is fitted per game where the suboptimality lies in [1e-14,
1e-6] (the asymptotic regime — APO's transient α^t has died out — far above float noise), and
APO's slope divided by iterative DPO's must be 1/(1−α) within 5% for α ∈ {0.3, 0.5, 0.7}.

Negative control (``variant="no_extrapolation"``): APO's extrapolation switched off gives a
ratio of 1 and the check must FAIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prl.algos.dpo import iterative_dpo
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.games import bradley_terry_matrix
from prl.plot import new_figure
from prl.theory._po import generator, linear_slope, one_thread, result

ALPHAS = (0.3, 0.5, 0.7)
BETA = 3.0
WINDOW = (1e-14, 1e-6)
REL_TOL = 0.05


VARIANTS = ("no_extrapolation",)  # deliberately broken ingredients (negative controls)


def _scores(G: int, n: int, gen: torch.Generator) -> torch.Tensor:
    """Scores with consecutive gaps in [0.3, 1] in a random order per game."""
    gaps = 0.3 + 0.7 * torch.rand(G, n, generator=gen, dtype=torch.float64, device=gen.device)
    s = torch.cumsum(gaps, -1)
    perm = torch.argsort(torch.rand(G, n, generator=gen, device=gen.device), -1)
    return torch.gather(s, -1, perm) - s.mean(-1, keepdim=True)


def _suboptimality(logpi: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """max r − E_π r for log-policies ``[T, G, n]``."""
    return (logpi.exp() * (s.amax(-1, keepdim=True) - s)).sum(-1)


def _slopes(sub: np.ndarray) -> np.ndarray:
    """Per game, slope of ln(suboptimality) vs t over the window."""
    t = np.arange(sub.shape[0], dtype=np.float64)
    out = np.full(sub.shape[1], np.nan)
    for g in range(sub.shape[1]):
        keep = (sub[:, g] >= WINDOW[0]) & (sub[:, g] <= WINDOW[1])
        if keep.sum() >= 3:
            out[g] = linear_slope(t[keep], np.log(sub[keep, g]))
    return out


@one_thread
def experiment(quick: bool, device: Any, seed: int, variant: str | None = None) -> dict[str, Any]:
    """Iterative DPO vs APO on exact BT bandits: ratios of the fitted log-suboptimality slopes."""
    if variant not in (None, *VARIANTS):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS})")
    G, n = (16, 5) if quick else (512, 8)
    iters = 500 if quick else 800
    gen = generator(seed, device, salt=131)
    s = _scores(G, n, gen)
    P = bradley_terry_matrix(s)
    base = _suboptimality(iterative_dpo(P, BETA, iters), s).cpu().numpy()
    base_slope = _slopes(base)
    rows, errors, ratios = [], {}, {}
    for g, t in ((0, t) for t in range(iters + 1)):
        rows.append({"panel": "curve", "alpha": 0.0, "t": t, "suboptimality": float(base[t, g])})
    for a in ALPHAS:
        used = 0.0 if variant == "no_extrapolation" else a
        sub = _suboptimality(iterative_dpo(P, BETA, iters, alpha=used), s).cpu().numpy()
        ratio = _slopes(sub) / base_slope
        ok = np.isfinite(ratio)
        ratios[a] = ratio
        errors[a] = float(np.max(np.abs(ratio[ok] * (1 - a) - 1.0))) if ok.any() else np.inf
        for t in range(iters + 1):
            rows.append({"panel": "curve", "alpha": a, "t": t, "suboptimality": float(sub[t, 0])})
        rows.append(
            {
                "panel": "ratio",
                "alpha": a,
                "claimed": 1 / (1 - a),
                "mean_ratio": float(np.nanmean(ratio)),
                "min_ratio": float(np.nanmin(ratio)),
                "max_ratio": float(np.nanmax(ratio)),
                "games_fitted": int(ok.sum()),
                "max_rel_error": errors[a],
            }
        )
    return {
        "rows": rows,
        "errors": errors,
        "games": G,
        "fitted": min(int(np.isfinite(r).sum()) for r in ratios.values()),
    }


def draw(df: Any) -> Any:
    """Suboptimality vs iteration for one game (per α), and the fitted slope ratios."""
    fig, axes = new_figure(ncols=2)
    ax = axes[0, 0]
    cur = df[df["panel"] == "curve"]
    for j, a in enumerate(sorted(cur["alpha"].unique())):
        sub = cur[(cur["alpha"] == a) & (cur["suboptimality"] > 1e-300)].sort_values("t")
        label = "iterative DPO" if a == 0 else f"APO α = {a:g}"
        ax.semilogy(sub["t"], sub["suboptimality"], color=f"C{j}", label=label)
    ax.axhspan(*WINDOW, color="0.9", zorder=0)
    ax.set_ylim(1e-16, 2)
    ax.set_xlabel("iteration t")
    ax.set_ylabel("max r − E_π r  (grey: fitted window)")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ra = df[df["panel"] == "ratio"].sort_values("alpha")
    err = [ra["mean_ratio"] - ra["min_ratio"], ra["max_ratio"] - ra["mean_ratio"]]
    ax.errorbar(ra["alpha"], ra["mean_ratio"], yerr=err, fmt="o", label="APO / DPO slope (range)")
    aa = np.linspace(0, 0.75, 50)
    ax.plot(aa, 1 / (1 - aa), "k--", lw=1, label="1/(1−α)")
    ax.set_xlabel("extrapolation α")
    ax.set_ylabel("ratio of log-suboptimality slopes")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def verdict(out: dict[str, Any]) -> CheckResult:
    """PASS iff every game's slope ratio is 1/(1−α) within 5% for every α."""
    worst = max(out["errors"].values())
    enough = out["fitted"] >= out["games"] // 2
    ok = worst <= REL_TOL and enough
    return result(
        measured=worst,
        claimed=0.0,
        tolerance=REL_TOL,
        passed=ok,
        rows=out["rows"],
        draw=draw,
        comparison="≈",
        detail=(
            "max over games of |ratio·(1−α) − 1|: "
            + ", ".join(f"α={a:g}: {e:.4f}" for a, e in out["errors"].items())
            + f" (≤ {REL_TOL}); games fitted {out['fitted']}/{out['games']}"
            + ("" if ok else "; FAILED: slope ratio 1/(1−α)")
        ),
    )


@register_check(
    "apo_acceleration",
    paper="He et al. 2024, Accelerated preference optimization for large language model "
    "alignment (APO)",
    claim="On an exact Bradley–Terry bandit, the extrapolated iteration's log-suboptimality slope "
    "is 1/(1−α) times iterative DPO's (± 5%).",
    tags=("preference-optimization",),
)
def check_apo(quick: bool, device: Any, seed: int) -> CheckResult:
    """Exact iterative DPO and APO on random BT bandits; fitted slope ratios per game."""
    return verdict(experiment(quick, device, seed))
