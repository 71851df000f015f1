"""Many raters, one policy? From the exact two-group bandit to the two-goal gridworld.

Left: on exact 3-arm bandits (majority wants arm 0, minority arm 1, both accept the compromise
arm 2 at 0.6), the minority's sub-optimality gap under one BT reward fitted to the mixture
(KL-regularised policy) against the exact max-min LP, as the minority's share grows. Right: on
the ``two_goals`` gridworld (80:20 users), each group's exact return under the policy of one BT
reward (RLHF), of MaxMin-RLHF (EM over two BT rewards, then the exact max-min policy) and of
VPL (each user's own z-conditioned policy), with each group's optimum.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from prl.figure import FigureContext, register_figure
from prl.plot import new_figure
from prl.run import train
from prl.theory.pluralistic import experiment_gap
from prl.utils import torch_threads

METHODS = ("single BT reward (RLHF)", "MaxMin-RLHF", "VPL (per-user z)", "group optimum")


def _bandit() -> pd.DataFrame:
    df = pd.DataFrame(experiment_gap(False, "cpu", 0)["rows"])
    df = df[np.isclose(df["delta"], 1.0)] if np.isclose(df["delta"], 1.0).any() else df
    return df.assign(panel="bandit")


def _control(seed: int, b: dict[str, Any]) -> pd.DataFrame:
    data = {"proportions": [0.8, 0.2], "users": int(b["users"])}
    with torch_threads(1):
        _, mm = train(
            "maxmin_rlhf",
            "two_goals",
            seed=seed,
            steps=int(b["em_iters"]),
            config=data,
            device="cpu",
        )
        steps = int(b["vpl_steps"])
        _, vp = train(
            "vpl",
            "two_goals",
            seed=seed,
            steps=steps,
            config={**data, "eval_every": steps, "lr": 1e-2},
            device="cpu",
        )
    last_mm, last_vp = mm[-1], vp[-1]
    rows = []
    for g, name in ((0, "majority (80%)"), (1, "minority (20%)")):
        for method, value in zip(
            METHODS,
            (
                last_mm[f"bt_return_g{g}"],
                last_mm[f"maxmin_return_g{g}"],
                last_vp[f"vpl_return_g{g}"],
                last_mm[f"optimal_return_g{g}"],
            ),
            strict=True,
        ):
            rows.append(
                {
                    "panel": "control",
                    "seed": seed,
                    "group": name,
                    "method": method,
                    "return": float(value),
                }
            )
    return pd.DataFrame(rows)


@register_figure(
    "pluralistic",
    seeds=range(5),
    quick_seeds=range(2),
    budget={"users": 200, "em_iters": 15, "vpl_steps": 1000},
    quick_budget={"users": 200, "em_iters": 8, "vpl_steps": 300},
    description="Many raters, one policy? BT vs MaxMin-RLHF vs VPL, exact bandit to gridworld",
    paper="Chakraborty et al. 2024 (MaxMin-RLHF); Poddar et al. 2024 (VPL)",
)
class ManyRaters:
    """Minority gap on exact bandits, and each group's return on the two-goal gridworld."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        frames = [ctx.cached("bandit", _bandit)]
        frames += [
            ctx.cached(f"control_{s}", lambda s=s: _control(s, ctx.budget)) for s in ctx.seeds
        ]
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        fig, axes = new_figure(ncols=2, size=(5.0, 3.6))
        ax = axes[0, 0]
        bandit = df[df["panel"] == "bandit"].sort_values("share")
        ax.plot(bandit["share"], bandit["bt_gap_minority"], "o-", label="single BT reward")
        ax.plot(bandit["share"], bandit["maxmin_worst_gap"], "s--", label="max-min (exact LP)")
        ax.set_xlabel("minority share w")
        ax.set_ylabel("minority's sub-optimality gap")
        ax.set_title("exact 3-arm bandit (δ = 1)", fontsize=9)
        ax.legend(fontsize=7)
        ax = axes[0, 1]
        ctrl = df[df["panel"] == "control"]
        groups = list(dict.fromkeys(ctrl["group"]))
        width = 0.8 / len(METHODS)
        for j, m in enumerate(METHODS):
            for gi, g in enumerate(groups):
                v = ctrl[(ctrl["method"] == m) & (ctrl["group"] == g)]["return"].to_numpy(float)
                x = gi + (j - (len(METHODS) - 1) / 2) * width
                ax.bar(x, v.mean(), width, color=f"C{j}", label=m if gi == 0 else None)
                ax.plot(np.full(len(v), x), v, "k.", ms=3)
        ax.set_xticks(range(len(groups)), groups)
        ax.set_xlabel("user group")
        ax.set_ylabel("exact return (bars: mean, dots: seeds)")
        ax.set_title("two-goal gridworld, 80:20 users", fontsize=9)
        ax.legend(fontsize=6, loc="upper right")
        fig.suptitle("Many raters, one policy?", fontsize=10)
        fig.tight_layout()
        return fig
