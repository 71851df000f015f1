"""All Nash-learning methods on one convergence plot: exact (KL to π*_τ vs oracle calls, with
the theory lines) and sampled (duality gap vs preference queries)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from prl.algos.nash import METHODS, NashSolver
from prl.algos.spo import SampledWinRates
from prl.figure import FigureContext, register_figure
from prl.games import duality_gap, kl, random_preference_matrix, regularized_nash
from prl.plot import learning_curves, new_figure
from prl.utils import torch_threads

LABELS = {
    "nash_md": "Nash-MD (η_t = 2/(τ(t+2)))",
    "nash_mp": "Nash-MP (η = 2)",
    "egpo": "EGPO",
    "inpo": "INPO",
    "online_ipo": "online IPO",
    "ipo_md": "IPO-MD (β = 0.1)",
    "apo": "APO (α = 0.3)",
    "sppo": "SPPO / MWU (average, τ = 0)",
}


def _instances(seeds: tuple[int, ...], n: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """One random game and reference policy per seed, stacked ``[S, n, n]`` / ``[S, n]``."""
    Ps, mus = [], []
    for s in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(s))
        Ps.append(random_preference_matrix(n, g))
        mus.append(
            torch.softmax(torch.randn(n, generator=g, device=device, dtype=torch.float64), -1)
        )
    return torch.stack(Ps), torch.stack(mus)


def _solver(
    method: str, P: torch.Tensor, mu: torch.Tensor, tau: float, W: Any = None
) -> NashSolver:
    kw: dict[str, Any] = {"win_rates": W}
    if method == "sppo":
        return NashSolver("sppo", P, eta=0.1, win_rates=W, average=True)
    if method == "apo":
        kw["alpha"] = 0.3
    if method == "inpo":
        kw["eta"] = 1.0
    return NashSolver(method, P, tau=tau, mu=mu, **kw)


def _curve(
    method: str, seeds: tuple[int, ...], b: dict[str, Any], device: Any, sampled: bool
) -> pd.DataFrame:
    n, tau = int(b["n"]), float(b["tau"])
    P, mu = _instances(seeds, n, device)
    star = regularized_nash(P, tau, mu)
    W = None
    if sampled:
        g = torch.Generator(device=device)
        g.manual_seed(12345 + sum(seeds))
        W = SampledWinRates(P, int(b["opponents"]), g)
    s = _solver(method, P, mu, tau, W)
    iters = int(b["sampled_iters" if sampled else "iters"])
    rec = np.unique(np.round(np.logspace(0, math.log10(iters), 40)).astype(int))

    def measure(sol: NashSolver) -> dict[str, torch.Tensor]:
        if method == "sppo":
            pi = sol.average_policy
            return {
                "kl": torch.full((len(seeds),), math.nan, dtype=torch.float64),
                "gap": duality_gap(P, pi, 0.0),
            }
        pi = sol.policy
        return {"kl": kl(star, pi), "gap": duality_gap(P, pi, tau, mu)}

    res = s.run(iters, record_at=rec, callback=measure)
    evals = METHODS[method].evaluations
    rows = []
    for k, t in enumerate(res["t"]):
        for j, seed in enumerate(seeds):
            rows.append(
                {
                    "panel": "sampled" if sampled else "exact",
                    "method": LABELS[method],
                    "seed": int(seed),
                    "iteration": int(t),
                    "oracle_calls": int(t) * evals,
                    "queries": int(t) * evals * n * int(b["opponents"]) if sampled else 0,
                    "kl": float(res["kl"][k, j]),
                    "gap": float(res["gap"][k, j]),
                }
            )
    return pd.DataFrame(rows)


@register_figure(
    "nash_convergence",
    seeds=range(16),
    quick_seeds=range(6),
    budget={"n": 10, "tau": 0.1, "iters": 5000, "sampled_iters": 5000, "opponents": 4},
    quick_budget={"n": 10, "tau": 0.1, "iters": 1000, "sampled_iters": 1000, "opponents": 4},
    description="Nash methods on random 10-action games: KL to π*_τ (exact) and gap (sampled)",
    paper="Munos et al. 2023; Tiapkin et al. 2025; Zhou et al. 2025; Swamy et al. 2024",
)
class NashConvergence:
    """Exact updates (KL vs oracle calls, theory lines) and sampled ones (gap vs duels)."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        frames = []
        for sampled in (False, True):
            for method in LABELS:
                if not sampled and method == "sppo":
                    continue
                key = f"{'sampled' if sampled else 'exact'}_{method}"
                with torch_threads(1):
                    frames.append(
                        ctx.cached(
                            key,
                            lambda m=method, s=sampled: _curve(
                                m, ctx.seeds, ctx.budget, ctx.device, s
                            ),
                        )
                    )
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        b = ctx.budget
        tau = float(b["tau"])
        fig, axes = new_figure(ncols=2, size=(6.2, 4.4))
        ax = axes[0, 0]
        ex = df[df["panel"] == "exact"]
        learning_curves(ax, ex, x="oracle_calls", y="kl", group="method")
        N = np.unique(ex["oracle_calls"].to_numpy(dtype=float))
        ax.plot(N, 8.0 / (tau**2 * (N + 1)), "k--", lw=1, label="8/(τ²(N+1)) (Nash-MD bound)")
        kl0 = float(ex[ex["iteration"] == ex["iteration"].min()]["kl"].median())
        ax.plot(N, kl0 * (1 + 2 * tau) ** (-N / 2), "k:", lw=1, label="(1+2τ)^(−N/2) (Nash-MP)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_ylim(1e-15, 10)
        ax.set_xlabel("preference-oracle calls N (evaluations of P(·≻π))")
        ax.set_ylabel("KL(π*_τ ‖ π)  (IQM over games, 95% CI)")
        ax.set_title(f"exact updates, τ = {tau}", fontsize=9)
        ax.legend(fontsize=6)
        ax = axes[0, 1]
        sa = df[df["panel"] == "sampled"].copy()
        sa["queries_per_game"] = sa["queries"].astype(float)
        learning_curves(ax, sa, x="queries_per_game", y="gap", group="method")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel(f"preference queries per game ({b['opponents']} duels per outcome per call)")
        ax.set_ylabel("duality gap (at τ; SPPO at τ = 0)")
        ax.set_title("sampled updates (last iterate; SPPO averaged)", fontsize=9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        return fig
