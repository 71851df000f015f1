"""Exact policy mirror descent on random MDPs: constant, entropy-regularized and geometric steps."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import torch

from prl.algos.mdpo import cen_step_to_pmd, npg_step_to_pmd, policy_mirror_descent, stack_mdps
from prl.figure import FigureContext, register_figure
from prl.mdp import random_mdp
from prl.plot import learning_curves, new_figure

FLOOR = 1e-12  # gaps are clipped here so that log axes and IQMs stay finite
PANELS = {
    "constant": "constant step (NPG η): max_s V* − V^T, bound dashed",
    "entropy": "entropy-regularized (τ=0.1): ‖Q*_τ − Q_τ^t‖∞, (1−ητ)^t dotted",
    "geometric": "geometric steps η_k = η₀/γ^k vs constant η₀: max_s V* − V^k",
}


def one_mdp(seed: int, S: int, A: int, gamma: float, T: int, device: Any) -> pd.DataFrame:
    """All three experiments on the random MDP drawn with ``seed`` (long-form rows)."""
    mdp = random_mdp(S, A, gamma, np.random.default_rng(seed))
    b = stack_mdps([mdp], device=device)
    P, R = b["P"][0], b["R"][0]
    v_star = torch.as_tensor(mdp.v_star(), device=device)
    frames = []
    t = np.arange(T + 1)

    def add(panel: str, label: str, y: np.ndarray, ref: np.ndarray) -> None:
        frames.append(
            pd.DataFrame(
                {
                    "panel": panel,
                    "label": label,
                    "seed": seed,
                    "t": t,
                    "y": np.maximum(y, FLOOR),
                    "ref": ref,
                }
            )
        )

    for eta in (0.1, 1.0, 10.0):  # Agarwal et al.: bound log|A|/(ηT) + 1/((1−γ)²T)
        out = policy_mirror_descent(P, R, gamma, iters=T, eta=npg_step_to_pmd(eta, gamma))
        gap = (v_star - out["V"]).amax(-1).cpu().numpy()
        with np.errstate(divide="ignore"):
            bound = math.log(A) / (eta * t) + 1.0 / ((1 - gamma) ** 2 * t)
        add("constant", f"η={eta:g}", gap, bound)
    tau = 0.1
    _, q_soft, _ = mdp.soft_optimal(tau)
    q_soft_t = torch.as_tensor(q_soft, device=device)
    for frac in (0.25, 0.5, 1.0):  # Cen et al.: η = frac·(1−γ)/τ, rate 1 − ητ
        eta = frac * (1 - gamma) / tau
        out = policy_mirror_descent(
            P, R, gamma, iters=T, eta=cen_step_to_pmd(eta, tau, gamma), tau=tau
        )
        err = (q_soft_t - out["Q"]).abs().amax((-2, -1)).cpu().numpy()
        add(
            "entropy", f"η={eta:.3g} (rate {1 - eta * tau:.3f})", err, err[0] * (1 - eta * tau) ** t
        )
    for eta0, growth, name in (
        (0.1, 1.0, "constant η=0.1"),
        (0.1, 1 / gamma, "geometric η₀=0.1"),
        (1.0, 1 / gamma, "geometric η₀=1"),
    ):
        out = policy_mirror_descent(P, R, gamma, iters=T, eta=eta0, growth=growth)
        gap_all = (v_star - out["V"]).cpu().numpy()
        gap = gap_all.max(-1)
        env = gamma**t * (gap_all[0].max() + math.log(A) / ((1 - gamma) * eta0))  # Xiao's envelope
        add("geometric", name, gap, env)
    return pd.concat(frames, ignore_index=True)


@register_figure(
    "mdpo_tabular",
    seeds=range(20),
    quick_seeds=range(5),
    budget={"S": 50, "A": 5, "gamma": 0.9, "iters": 300},
    quick_budget={"S": 20, "A": 5, "gamma": 0.9, "iters": 120},
    description="exact policy mirror descent (tabular MDPO): sublinear constant-step, linear "
    "entropy-regularized and geometric-step rates against their bounds",
    paper="Tomar et al. (MDPO); Agarwal et al. 2021; Cen et al. 2021; Xiao 2022",
)
class MDPOTabular:
    """Suboptimality of exact PMD on random MDPs (IQM over MDP seeds, 95% CIs) with the bounds."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = [
            ctx.cached(
                f"seed{seed}",
                lambda seed=seed: one_mdp(
                    seed, int(b["S"]), int(b["A"]), float(b["gamma"]), int(b["iters"]), ctx.device
                ),
            )
            for seed in ctx.seeds
        ]
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        fig, axes = new_figure(ncols=3, size=(4.6, 3.4))
        for ax, (panel, title) in zip(axes[0], PANELS.items()):
            sub = df[(df["panel"] == panel) & (df["t"] >= (1 if panel == "constant" else 0))]
            learning_curves(ax, sub, x="t", y="y", group="label")
            colors = {ln.get_label(): ln.get_color() for ln in ax.get_lines()}
            style = {"constant": "--", "entropy": ":", "geometric": "--"}[panel]
            for label, g in sub.groupby("label"):
                if panel == "geometric" and label.startswith("constant"):
                    continue
                ref = g.groupby("t")["ref"].median()
                ref = ref[ref > FLOOR]
                ax.plot(ref.index, ref.values, style, lw=0.9, color=colors.get(str(label), "k"))
            ax.set_yscale("log")
            if panel == "constant":
                ax.set_xscale("log")
            ax.set_ylim(bottom=FLOOR * 10)
            ax.set_title(title, fontsize=7.5)
            ax.set_xlabel("iteration")
            ax.set_ylabel("error (IQM over MDPs)")
            ax.legend(fontsize=6.5)
        fig.tight_layout()
        return fig
