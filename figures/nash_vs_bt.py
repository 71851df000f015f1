"""Bradley–Terry methods (RLHF, DPO, IPO) vs Nash methods on intransitive games."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from prl.algos.dpo import dpo_policy, population_pairs, sample_pairs
from prl.figure import FigureContext, register_figure
from prl.games import duality_gap, exploitability, minimax_winner
from prl.metrics import iqm
from prl.plot import new_figure
from prl.theory.nash import bt_vs_nash, intransitive_suite
from prl.utils import torch_threads

FAMILIES = ("dice", "rater_mixture", "random")


def _family(kind: str, seeds: tuple[int, ...], b: dict[str, Any], device: Any) -> pd.DataFrame:
    tau, iters = float(b["tau"]), int(b["iters"])
    P, mu = intransitive_suite(kind, len(seeds), 1000 + FAMILIES.index(kind), device)
    pols = bt_vs_nash(P, mu, tau, iters)
    g = torch.Generator(device=P.device)
    g.manual_seed(7)
    pols["DPO (sampled pairs)"] = dpo_policy(
        sample_pairs(P, mu, int(b["pairs"]), g), tau, mu, n=P.shape[-1], l2=1e-4
    )
    rows = []
    for name, pi in pols.items():
        ex, gap = exploitability(P, pi), duality_gap(P, pi, tau, mu)
        for j, seed in enumerate(seeds):
            row = {
                "game": kind,
                "method": name,
                "seed": int(seed),
                "exploitability": float(ex[j]),
                "duality_gap": float(gap[j]),
            }
            if kind == "dice":
                row.update({f"pi_{k}": float(pi[j, k]) for k in range(3)})
                row.update({f"mu_{k}": float(mu[j, k]) for k in range(3)})
            rows.append(row)
    _ = population_pairs  # the population data used by bt_vs_nash
    return pd.DataFrame(rows)


@register_figure(
    "nash_vs_bt",
    seeds=range(32),
    quick_seeds=range(8),
    budget={"tau": 0.01, "iters": 3000, "pairs": 4000},
    quick_budget={"tau": 0.01, "iters": 2000, "pairs": 2000},
    description="RLHF / DPO / IPO vs Nash methods on intransitive games: exploitability",
    paper="Swamy et al. 2024; Munos et al. 2023; Azar et al. 2023",
)
class NashVsBT:
    """Exploitability of Bradley–Terry baselines and Nash methods on three intransitive families."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        with torch_threads(1):
            frames = [
                ctx.cached(k, lambda k=k: _family(k, ctx.seeds, ctx.budget, ctx.device))
                for k in FAMILIES
            ]
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        fig, axes = new_figure(ncols=2, size=(5.4, 3.8))
        ax = axes[0, 0]
        methods = list(dict.fromkeys(df["method"]))
        width = 0.8 / len(methods)
        rng = np.random.default_rng(0)
        for j, m in enumerate(methods):
            mids, los, his = [], [], []
            for kind in FAMILIES:
                v = df[(df["game"] == kind) & (df["method"] == m)]["exploitability"].to_numpy()
                v = np.maximum(v, 1e-6)
                boots = [iqm(rng.choice(v, len(v))) for _ in range(500)]
                mids.append(iqm(v))
                los.append(np.percentile(boots, 2.5))
                his.append(np.percentile(boots, 97.5))
            x = np.arange(len(FAMILIES)) + (j - (len(methods) - 1) / 2) * width
            mids_a = np.asarray(mids)
            ax.bar(
                x,
                mids_a,
                width,
                color=f"C{j}",
                label=m,
                yerr=[mids_a - np.asarray(los), np.asarray(his) - mids_a],
                capsize=1.5,
            )
        ax.set_yscale("log")
        ax.set_ylim(1e-6, 30)
        ax.set_xticks(range(len(FAMILIES)), ["cyclic dice", "rater mixture", "random (n=10)"])
        ax.set_xlabel("game family")
        ax.set_ylabel(f"exploitability (IQM, 95% CI; τ = {ctx.budget['tau']}; floor 1e-6)")
        ax.legend(fontsize=6, ncol=3, loc="upper left")
        ax.set_title("BT methods stay exploitable on intransitive games", fontsize=9)
        ax = axes[0, 1]
        dice = df[df["game"] == "dice"]
        seed = int(dice["seed"].min())
        one = dice[dice["seed"] == seed].set_index("method")
        from prl.games import cyclic_dice_matrix

        winner, _ = minimax_winner(cyclic_dice_matrix())
        show = [
            ("reference μ", one.iloc[0][[f"mu_{k}" for k in range(3)]].to_numpy(float)),
            ("RLHF / DPO", one.loc["RLHF"][[f"pi_{k}" for k in range(3)]].to_numpy(float)),
            ("IPO", one.loc["IPO"][[f"pi_{k}" for k in range(3)]].to_numpy(float)),
            ("Nash-MP (π*_τ)", one.loc["Nash-MP"][[f"pi_{k}" for k in range(3)]].to_numpy(float)),
            ("minimax winner", winner),
        ]
        for j, (name, p) in enumerate(show):
            ax.bar(np.arange(3) + (j - 2) * 0.16, p, 0.16, label=name)
        ax.set_xticks(range(3), ["die {2,4,9}", "die {1,6,8}", "die {3,5,7}"])
        ax.set_ylabel("probability")
        ax.set_xlabel("outcome (die and its faces)")
        ax.set_title(f"cyclic dice, seed {seed}", fontsize=9)
        ax.legend(fontsize=6)
        fig.tight_layout()
        return fig
