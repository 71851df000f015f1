"""MDPO on MuJoCo: on-policy MDPO vs SB3 PPO and off-policy MDPO vs SB3 SAC (Tomar et al.).

Budgets: full = the paper's (1M env steps per run, both families, Hopper/Walker2d/HalfCheetah,
5 seeds). Mid (this 2-core CPU, ≤ 3 CPU-h; sized from measured CPU rates, 1 torch thread: SB3
PPO 1.38 ms/env-step, on-policy MDPO 0.63, SB3 SAC [256, 256] 13.5, off-policy MDPO ≈ 1.13× SAC)
keeps the three environments and 5 seeds for the on-policy pair at 150k steps (0.15× the paper;
≈ 1.3 CPU-h) and runs the off-policy pair on Hopper only at 30k steps (0.03×; SAC costs ~20×
PPO per step here; ≈ 1.2 CPU-h) — fewer tasks, not fewer seeds. As in the authors' runs, t_k
is annealed over 10× the run's length (their script anneals over 10M steps for 1M-step runs,
REFERENCES.md), so t_k stays ≥ 0.9 and the KL weight ≤ 1.1.
Measured at the mid budget (40 runs at commit 9c7bb61, 1.47 CPU-h; figures/data/mid/mdpo_mujoco):
INCONCLUSIVE. Every point estimate favours the baseline, none beyond the 10% margin with 95%
confidence: on-policy Hopper 616 vs PPO 790 (−173 [−285, −61], margin −79, P 0.04), Walker2d
349 vs 386 (−37 [−86, +20]), HalfCheetah 0.6 vs 257 (−256 [−445, +30]; PPO's sanity check fails
there, −362 → 257); off-policy Hopper 255 vs SAC 368 (−113 [−311, −9]).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from prl.figure import FigureContext, register_figure
from prl.plot import learning_curves, new_figure
from prl.run import train

# (family, label, algo, variant)
RUNS = (
    ("on-policy", "MDPO (on-policy)", "mdpo_on", "mdpo"),
    ("on-policy", "PPO", "mdpo_on", "ppo"),
    ("off-policy", "MDPO (off-policy)", "mdpo_off", "mdpo"),
    ("off-policy", "SAC", "mdpo_off", "sac"),
)


def _config(family: str, variant: str, b: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """(steps, learner config) of one run; the peers share every setting but the variant."""
    if family == "on-policy":
        cfg = {
            "variant": variant,
            "n_steps": b["n_steps"],
            "n_epochs": b["n_epochs"],
            "chunk": b["n_steps"],
            "anneal_steps": b.get("on_anneal", b["on_steps"]),
        }
        return int(b["on_steps"]), cfg
    cfg = {
        "variant": variant,
        "learning_starts": b["learning_starts"],
        "batch_size": b["batch_size"],
        "net_arch": b["off_net"],
        "chunk": b["off_chunk"],
        "anneal_steps": b["off_steps"],
    }
    return int(b["off_steps"]), cfg


@register_figure(
    "mdpo_mujoco",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "envs": ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"],
        "on_steps": 1_000_000,
        "n_steps": 2048,
        "n_epochs": 10,
        "off_steps": 1_000_000,
        "learning_starts": 10_000,
        "batch_size": 256,
        "off_net": [256, 256],
        "off_chunk": 10_000,
    },
    quick_budget={
        "envs": ["Hopper-v5"],
        "on_steps": 2048,
        "n_steps": 512,
        "n_epochs": 5,
        "off_steps": 1000,
        "learning_starts": 500,
        "batch_size": 64,
        "off_net": [64, 64],
        "off_chunk": 250,
    },
    mid_seeds=range(5),
    mid_budget={
        "envs": ["Hopper-v5", "Walker2d-v5", "HalfCheetah-v5"],
        "on_steps": 150_000,
        "on_anneal": 1_500_000,
        "n_steps": 2048,
        "n_epochs": 10,
        "off_envs": ["Hopper-v5"],
        "off_steps": 30_000,
        "learning_starts": 5000,
        "batch_size": 256,
        "off_net": [256, 256],
        "off_chunk": 5000,
    },
    hparams="the paper's (REFERENCES.md, MDPO): on-policy batch 2048, 10 epochs, Adam 3e-4; "
    "off-policy λ = 0.2, [256, 256], batch 256; PPO and SAC with the same settings (SB3 defaults)",
    description="on-policy MDPO vs PPO and off-policy MDPO vs SAC on MuJoCo: training return "
    "(IQM over seeds, 95% bootstrap CIs)",
    paper="Tomar et al. 2022 (MDPO)",
)
class MDPOMujoco:
    """Training return (mean of the last 10 episodes) against env steps, per env and family."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = []
        for env in b["envs"]:
            for family, label, algo, variant in RUNS:
                if family == "off-policy" and env not in b.get("off_envs", b["envs"]):
                    continue
                steps, cfg = _config(family, variant, b)
                for seed in ctx.seeds:

                    def one(
                        env: str = env,
                        family: str = family,
                        label: str = label,
                        algo: str = algo,
                        cfg: dict[str, Any] = cfg,
                        steps: int = steps,
                        seed: int = seed,
                    ) -> pd.DataFrame:
                        _, rows = train(
                            algo, env, seed=seed, steps=steps, config=cfg, device=ctx.device
                        )
                        return pd.DataFrame(
                            {
                                "env": env,
                                "family": family,
                                "algo": label,
                                "seed": seed,
                                "steps": [r["step"] for r in rows],
                                "return": [r["return"] for r in rows],
                            }
                        )

                    key = f"{env}_{algo}_{variant}_{seed}"
                    frames.append(ctx.cached(key, one))
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        envs = list(dict.fromkeys(df["env"]))
        families = ["on-policy", "off-policy"]
        fig, axes = new_figure(ncols=len(envs), nrows=2, size=(4.4, 3.2))
        for i, family in enumerate(families):
            for j, env in enumerate(envs):
                ax = axes[i, j]
                sub = df[(df["env"] == env) & (df["family"] == family)]
                learning_curves(ax, sub, x="steps", y="return", group="algo")
                ax.set_title(f"{env} · {family}", fontsize=9)
                ax.set_xlabel("env steps")
                ax.set_ylabel("return (IQM, 95% CI)")
                ax.legend(fontsize=7)
        fig.tight_layout()
        return fig
