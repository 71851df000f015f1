"""PDPPO vs SB3 PPO vs the one-critic ablation on lot-sizing and the slippery lake.

Budgets: full = 300k env steps on lot-sizing (the paper: 500k) and 100k on the lakes, 5 seeds.
Mid (≤ 3 CPU-h on this 2-core CPU; measured CPU per env step with 1 torch thread: lot-sizing
15x5 2.6 ms, 25x10 3.2 ms, 8x8 slippery lake 0.74 ms) keeps lot-sizing 15x5 and 25x10 at 80k steps
(0.16× the paper) and the 4x4 slippery lake (1.2 ms/step) at 100k steps, 3 learners × 5 seeds:
≈ 2.4 CPU-h.
PPO's settings are SB3's defaults for both PDPPO and PPO (n_steps 2048, batch 64, 10 epochs).
Measured at the mid budget (45 runs at commit d1e957e, 1.27 CPU-h; figures/data/mid/pdppo_vs_ppo):
INCONCLUSIVE. On 15x5 PDPPO trails PPO (final return IQM −1379 vs −1270, difference −110
[−119, −94], P(improvement) 0.00) and the 4x4 lake ties (−0.04 [−0.15, 0.09]); on 25x10 PPO barely
leaves its start (−2816 → −2591, under the registered 20% sanity threshold) and PDPPO vs PPO is
within noise (+8.0 [−5.1, 15.7], P 0.72). 80k steps is 0.16× the paper's 500k; at 3.2 ms per step
the whole 3 CPU-h of this tier buys ≈ 220k steps of 25x10 for 3 learners × 5 seeds, and whether
that meets the sanity check was not measured.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from prl.figure import FigureContext, register_figure
from prl.plot import learning_curves, new_figure
from prl.run import train
from prl.utils import torch_threads

# label -> (learner, config overrides)
METHODS: dict[str, tuple[str, dict[str, Any]]] = {
    "PDPPO (max of two critics)": ("pdppo", {"advantage": "max"}),
    "PDPPO one critic ($V^x$ only)": ("pdppo", {"advantage": "vx"}),
    "SB3 PPO": ("pdppo_ppo_baseline", {}),
}

# panel -> (environment, keyword arguments, budget key for its step count)
TASKS: dict[str, tuple[str, dict[str, Any], str]] = {
    "lot-sizing 15x5": ("lotsizing", {"instance": "15x5"}, "lot_steps"),
    "lot-sizing 25x10": ("lotsizing", {"instance": "25x10"}, "lot_steps"),
    "slippery lake 4x4": ("slippery_lake", {"map_name": "4x4"}, "lake_steps"),
    "slippery lake 8x8": ("slippery_lake", {"map_name": "8x8"}, "lake_steps"),
}


@register_figure(
    "pdppo_vs_ppo",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "tasks": list(TASKS),
        "lot_steps": 300_000,
        "lake_steps": 100_000,
        "ppo": {"n_steps": 2048, "batch_size": 64, "n_epochs": 10},
    },
    quick_budget={
        "tasks": ["lot-sizing 15x5", "lot-sizing 25x10", "slippery lake 4x4"],
        "lot_steps": 1024,
        "lake_steps": 1024,
        "ppo": {"n_steps": 256, "batch_size": 64, "n_epochs": 3},
    },
    mid_seeds=range(5),
    mid_budget={
        "tasks": ["lot-sizing 15x5", "lot-sizing 25x10", "slippery lake 4x4"],
        "lot_steps": 80_000,
        "lake_steps": 100_000,
        "ppo": {"n_steps": 2048, "batch_size": 64, "n_epochs": 10},
    },
    hparams="SB3 PPO defaults, shared by PDPPO, its one-critic ablation and PPO",
    description="PDPPO vs SB3 PPO vs one-critic PDPPO: episode return vs environment steps",
    paper="Felizardo et al. (PDPPO)",
)
class PDPPOvsPPO:
    """Training-episode return (IQM over seeds, 95% CI) at equal environment steps."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = []
        with torch_threads(1):
            for task in b["tasks"]:
                env, env_kwargs, steps_key = TASKS[task]
                for method, (algo, overrides) in METHODS.items():
                    for seed in ctx.seeds:

                        def one(
                            task: str = task,
                            env: str = env,
                            env_kwargs: dict = env_kwargs,
                            steps: int = int(b[steps_key]),
                            method: str = method,
                            algo: str = algo,
                            overrides: dict = overrides,
                            seed: int = seed,
                        ) -> pd.DataFrame:
                            _, rows = train(
                                algo,
                                env,
                                seed=seed,
                                steps=steps,
                                device=ctx.device,
                                config={**b["ppo"], **overrides},
                                env_kwargs=env_kwargs,
                            )
                            return pd.DataFrame(
                                {
                                    "task": task,
                                    "method": method,
                                    "seed": seed,
                                    "env_steps": [r["step"] for r in rows],
                                    "ep_return": [r["ep_return"] for r in rows],
                                }
                            )

                        key = f"{task.replace(' ', '_')}__{algo}_{overrides.get('advantage', '')}"
                        frames.append(ctx.cached(f"{key}__{seed}", one))
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        tasks = [t for t in TASKS if t in set(df["task"])]
        fig, axes = new_figure(ncols=len(tasks))
        for ax, task in zip(axes[0], tasks):
            sub = df[df["task"] == task].dropna(subset=["ep_return"])
            learning_curves(ax, sub, x="env_steps", y="ep_return", group="method")
            ax.set_title(task)
            ax.set_ylabel("episode return (IQM, 95% CI)")
        axes[0, 0].legend(fontsize=7)
        fig.tight_layout()
        return fig
