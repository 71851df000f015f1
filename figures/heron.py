"""HERON vs the hand-weighted reward and vs RLHF on the summed reward; robustness to the ranking
and margins; reward-model agreement with the tree over training (Bukharin et al.).

Budgets: full = Pendulum 100k, MountainCar 300k, HalfCheetah/Hopper/Ant 1M env steps (the
paper: pybullet Hopper/Ant 2M, HalfCheetah 1M), 5 seeds. Mid (≤ 3 CPU-h here; measured CPU per
env step with 1 torch thread: HERON 1.35 ms, RLHF 1.4 ms, PPO on the true reward 0.58 ms on
Pendulum, ≈ 1.5/1.5/0.68 on Hopper) keeps Pendulum at its full 100k steps and Hopper at 150k
(0.075× the paper), drops MountainCar, HalfCheetah and Ant, and runs the robustness panel on
Pendulum only, 5 seeds throughout: ≈ 2.0 CPU-h.
Measured at the mid budget (50 runs at commit 9c7bb61, 0.56 CPU-h; figures/data/mid/heron):
NOT REPRODUCED. HERON trails PPO on Pendulum's true reward (−610 [−691, −255], P 0.00); every
other comparison is undecided and points against HERON. PPO's sanity check passes (Hopper 14 →
295).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from prl.algos.heron import DEFAULT_MARGIN, DEFAULT_RANKINGS
from prl.algos.rlhf import torch_threads
from prl.figure import FigureContext, register_figure
from prl.plot import learning_curves, new_figure, seed_bars, seed_stat
from prl.run import train

# (label, algo, extra config): HERON and its two baselines at equal env steps, equal queries
ALGOS = (
    ("HERON", "heron", {}),
    ("RLHF (BT on Σ reward)", "rlhf", {"preference": "transitive"}),
    ("PPO (true reward)", "ppo_true_reward", {}),
)
_KEEP = ("return", "queries", "tree_agreement", "heldout_agreement", "reward_accuracy",
         "tie_fraction")  # fmt: skip
_PPO_KEYS = ("n_envs", "batch_size", "n_epochs", "lr", "gamma", "hidden", "eval_episodes")
_PREF_KEYS = ("query_budget", "queries_per_iter", "pool_size", "rm_hidden", "rm_steps", "rm_batch")


def variants(env: str) -> dict[str, dict[str, Any]]:
    """Perturbed trees for the robustness panel: the task's ranking with two levels swapped,
    and every margin scaled (×0: no margin; ×5)."""
    rank = list(DEFAULT_RANKINGS[env])
    out: dict[str, dict[str, Any]] = {}
    if len(rank) >= 3:
        low = [*rank[:-2], rank[-1], rank[-2]]
        out[f"swap {rank[-2]}↔{rank[-1]}"] = {"order": low}
    top = [rank[1], rank[0], *rank[2:]]
    out[f"swap {rank[0]}↔{rank[1]}"] = {"order": top}
    out["margins ×0"] = {"margins": [0.0]}
    out["margins ×5"] = {"margins": [5 * DEFAULT_MARGIN]}
    return out


def _config(algo: str, b: dict[str, Any], task: dict[str, Any]) -> dict[str, Any]:
    c = {k: b[k] for k in _PPO_KEYS}
    c.update({k: v for k, v in task.get("config", {}).items() if k in _PPO_KEYS})
    if algo != "ppo_true_reward":
        c.update({k: b[k] for k in _PREF_KEYS})
        c.update({k: v for k, v in task.get("config", {}).items() if k in _PREF_KEYS})
    if algo == "heron":
        c["heldout_episodes"] = b["heldout_episodes"]
    return c


def _run(
    env: str, label: str, algo: str, extra: dict[str, Any], seed: int, b: dict[str, Any], **tag: Any
) -> pd.DataFrame:
    task = b["tasks"][env]
    cfg = {**_config(algo, b, task), **extra}
    base = {"env": env, "algo": label, "seed": seed, **tag}
    t0 = time.perf_counter()
    with torch_threads(1):
        _, hist = train(algo, env, seed=seed, steps=task["steps"], config=cfg,
                        env_kwargs={"max_episode_steps": task["horizon"]})  # fmt: skip
    wall = time.perf_counter() - t0
    rows = [{**base, "row": "curve", "step": r["step"], **{k: r.get(k, np.nan) for k in _KEEP}}
            for r in hist]  # fmt: skip
    last = hist[-1]
    rows.append({**base, "row": "final", "step": last["step"], "queries": last["queries"],
                 "eval_return": last.get("eval_return", np.nan), "wall_s": wall})  # fmt: skip
    return pd.DataFrame(rows)


_TASK_CONFIG_PENDULUM = {"gamma": 0.9, "lr": 1e-3}  # Pendulum's usual PPO settings


# the paper's PPO and reward-model settings: the full budget's, shared by the mid budget
_FULL_SETTINGS = {
    "n_envs": 4,
    "batch_size": 200,
    "n_epochs": 10,
    "lr": 3e-4,
    "gamma": 0.99,
    "hidden": [64, 64],
    "eval_episodes": 10,
    "query_budget": 10_000,
    "queries_per_iter": 40,
    "pool_size": 16,
    "rm_hidden": [64, 64],
    "rm_steps": 50,
    "rm_batch": 32,
    "heldout_episodes": 32,
}


@register_figure(
    "heron",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "tasks": {
            "PendulumFactored-v1": {
                "horizon": 200,
                "steps": 100_000,
                "config": {**_TASK_CONFIG_PENDULUM, "batch_size": 100},
            },
            "MountainCarContinuousFactored-v0": {
                "horizon": 999,
                "steps": 300_000,
                "config": {"batch_size": 222},
            },
            "HalfCheetahFactored-v5": {"horizon": 1000, "steps": 1_000_000},
            "HopperFactored-v5": {"horizon": 1000, "steps": 1_000_000},
            "AntFactored-v5": {"horizon": 1000, "steps": 1_000_000},
        },
        "robust_envs": ["PendulumFactored-v1", "HopperFactored-v5"],
        **_FULL_SETTINGS,
    },
    quick_budget={
        "tasks": {
            "PendulumFactored-v1": {
                "horizon": 50,
                "steps": 1200,
                "config": {**_TASK_CONFIG_PENDULUM, "batch_size": 50},
            },
            "HopperFactored-v5": {"horizon": 50, "steps": 600},
        },
        "robust_envs": ["PendulumFactored-v1"],
        "n_envs": 4,
        "batch_size": 50,
        "n_epochs": 4,
        "lr": 3e-4,
        "gamma": 0.99,
        "hidden": [32, 32],
        "eval_episodes": 3,
        "query_budget": 400,
        "queries_per_iter": 40,
        "pool_size": 8,
        "rm_hidden": [32, 32],
        "rm_steps": 20,
        "rm_batch": 32,
        "heldout_episodes": 8,
    },
    mid_seeds=range(5),
    mid_budget={
        "tasks": {
            "PendulumFactored-v1": {
                "horizon": 200,
                "steps": 100_000,
                "config": {**_TASK_CONFIG_PENDULUM, "batch_size": 100},
            },
            "HopperFactored-v5": {"horizon": 1000, "steps": 150_000},
        },
        "robust_envs": ["PendulumFactored-v1"],
        **_FULL_SETTINGS,
        "query_budget": 5000,
    },
    hparams="the full budget's PPO and reward-model settings, shared by HERON, RLHF and PPO",
    description="HERON (ranked factor tree → BT reward model → PPO) vs PPO on the hand-weighted "
    "reward and RLHF on the summed reward (true return, IQM with 95% bootstrap CIs); robustness "
    "to a perturbed ranking or margins; reward-model agreement with the tree over training",
    paper="Bukharin et al. 2023 (HERON)",
)
class HeronFigure:
    """True-return curves per task, final returns under perturbed trees, r̂/tree agreement."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = []
        for env in b["tasks"]:
            for label, algo, extra in ALGOS:
                for seed in ctx.seeds:
                    frames.append(ctx.cached(
                        f"{env}_{algo}_{seed}",
                        lambda env=env, label=label, algo=algo, extra=extra, seed=seed: _run(
                            env, label, algo, extra, seed, b, variant="default"),
                    ))  # fmt: skip
        for env in b["robust_envs"]:
            for vname, extra in variants(env).items():
                for seed in ctx.seeds:
                    key = f"{env}_robust_{vname.replace(' ', '_').replace('↔', '-')}_{seed}"
                    frames.append(ctx.cached(
                        key,
                        lambda env=env, extra=extra, seed=seed, vname=vname: _run(
                            env, "HERON", "heron", extra, seed, b, variant=vname),
                    ))  # fmt: skip
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        envs_ = list(dict.fromkeys(df["env"]))
        robust = [e for e in envs_ if (df[df["env"] == e]["variant"] != "default").any()]
        ncols = max(len(envs_), len(robust) + 2)
        fig, axes = new_figure(ncols=ncols, nrows=2, size=(3.6, 3.0))
        main = df[df["variant"] == "default"]
        # row 1: true return over training, every learner
        for c, env in enumerate(envs_):
            ax = axes[0, c]
            d = main[(main["env"] == env) & (main["row"] == "curve")].dropna(subset=["return"])
            learning_curves(
                ax,
                d,
                x="step",
                y="return",
                group="algo",
                xlabel="environment steps",
                ylabel="true return",
            )
            fin = main[(main["env"] == env) & (main["row"] == "final")]
            q = fin.groupby("algo")["queries"].mean()
            ax.set_title(f"{env} (HERON queries: "
                         f"{q.get('HERON', np.nan):.0f})", fontsize=9)  # fmt: skip
            ax.tick_params(labelsize=7)
            if c == 0:
                ax.legend(fontsize=7)
        for c in range(len(envs_), ncols):
            axes[0, c].set_visible(False)
        # row 2: final evaluation return under perturbed trees (baselines for reference)
        for c, env in enumerate(robust):
            ax = axes[1, c]
            fin = df[(df["env"] == env) & (df["row"] == "final")]
            bars: list[tuple[str, str, np.ndarray]] = []
            for label, _, _ in ALGOS:
                v = fin[(fin["algo"] == label) & (fin["variant"] == "default")]["eval_return"]
                name = "HERON (default tree)" if label == "HERON" else label
                bars.append((name, "C0" if label == "HERON" else "0.6", v.to_numpy(float)))
            for vname in [v for v in dict.fromkeys(fin["variant"]) if v != "default"]:
                v = fin[(fin["algo"] == "HERON") & (fin["variant"] == vname)]["eval_return"]
                bars.append((f"HERON, {vname}", "C1", v.to_numpy(float)))
            for k, (_, color, v) in enumerate(bars):
                seed_bars(ax, k, v, horizontal=True, color=color)
            ax.set_yticks(range(len(bars)), [n for n, _, _ in bars], fontsize=6.5)
            ax.invert_yaxis()
            ax.set_ylabel("learner (reward-factor tree)", fontsize=8)
            ax.set_xlabel(f"final true return ({seed_stat(len(ctx.seeds))})", fontsize=8)
            ax.set_title(f"{env}: perturbed tree", fontsize=9)
            ax.tick_params(axis="x", labelsize=7)
        # agreement of r̂ with the tree over training (HERON runs)
        heron = main[(main["algo"] == "HERON") & (main["row"] == "curve")]
        for j, (col, title) in enumerate((
            ("tree_agreement", "r̂ vs tree on new trajectories\n(before each refit)"),
            ("heldout_agreement", "r̂ vs tree on held-out\nrandom-policy trajectories"),
        )):  # fmt: skip
            ax = axes[1, len(robust) + j]
            d = heron.dropna(subset=[col])
            if not d.empty:
                learning_curves(
                    ax,
                    d,
                    x="step",
                    y=col,
                    group="env",
                    xlabel="environment steps",
                    ylabel="agreement on decided pairs",
                )
                ax.legend(fontsize=6.5)
            ax.axhline(0.9, color="0.5", lw=1, ls="--")
            ax.set_ylim(0, 1.02)
            ax.set_title(title, fontsize=9)
            ax.tick_params(labelsize=7)
        for c in range(len(robust) + 2, ncols):
            axes[1, c].set_visible(False)
        fig.tight_layout()
        return fig
