"""SPO vs reward-model RLHF on MuJoCo under transitive, stochastic, intransitive and
non-Markovian preferences, at equal query and env-step budgets (Swamy et al. 2024).

Budgets: full = 1M env steps, 20k queries, Hopper and HalfCheetah, 5 seeds (the paper's exact
setup is unverified). Mid (≤ 3 CPU-h here; measured CPU per env step, 8 envs, [64, 64], 1 torch
thread: SPO 0.42 ms, RLHF 0.75 ms) keeps Hopper only, the four preference kinds and 5 seeds at
300k env steps (0.3×) and 6k queries (0.3×, the same queries per iteration): ≈ 2.1 CPU-h.
Measured at the mid budget (21 runs at commit faecb45, 0.82 CPU-h; figures/data/mid/spo_control):
INCONCLUSIVE, 2 of 4 reproduced: transitive +602 [525, 639] and stochastic +555 [168, 633]
(SPO's ~1035 Hopper return is staying upright for 1000 steps, not hopping); intransitive
P(SPO ≻ RLHF) 0.27 and non-Markovian +0.11 [−0.05, 0.38] are undecided.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd

from prl.algos.rlhf import preference_source, random_policy_trajectories
from prl.algos.spo_deep import torch_threads
from prl.envs.factored import find_cycles
from prl.figure import FigureContext, register_figure
from prl.plot import learning_curves, new_figure, seed_bars, seed_stat
from prl.run import train

KINDS = ("transitive", "stochastic", "intransitive", "nonmarkov")
ALGOS = (("SPO", "spo"), ("RLHF", "rlhf"))
# what each panel's curve shows (the intransitive relation has no score: its panel shows the
# true return, and the head-to-head panel is the comparison that counts)
CURVE_METRIC = {
    "transitive": "return",
    "stochastic": "return",
    "intransitive": "return",
    "nonmarkov": "max_height",
}
METRIC_WORDS = {"return": "true episode return", "max_height": "maximum torso height"}
_KEEP = ("return", "max_height", "pref_score", "queries", "win_rate_mean", "reward_accuracy")


def _config(kind: str, b: dict[str, Any]) -> dict[str, Any]:
    return {
        "preference": kind,
        "query_budget": b["query_budget"],
        "queries_per_iter": b["queries_per_iter"],
        "n_envs": b["n_envs"],
        "batch_size": b["batch_size"],
        "n_epochs": b["n_epochs"],
        "pool_size": b["pool_size"],
        "hidden": b["hidden"],
        "eval_episodes": b["eval_episodes"],
    }


def _one(env: str, kind: str, seed: int, b: dict[str, Any]) -> pd.DataFrame:
    """Both learners on one (env, preference, seed): curves, finals and the head-to-head."""
    ek = {"max_episode_steps": b["horizon"]}
    rows: list[dict[str, Any]] = []
    trajs = {}
    base = {"env": env, "preference": kind, "seed": seed}
    with torch_threads(1):
        for label, algo in ALGOS:
            t0 = time.perf_counter()
            learner, hist = train(
                algo, env, seed=seed, steps=b["steps"], config=_config(kind, b), env_kwargs=ek
            )
            wall = time.perf_counter() - t0
            for r in hist:
                rows.append(
                    {**base, "algo": label, "row": "curve", "step": r["step"],
                     **{k: r.get(k, np.nan) for k in _KEEP}}
                )  # fmt: skip
            last = hist[-1]
            rows.append(
                {**base, "algo": label, "row": "final", "step": last["step"],
                 "queries": last["queries"], "wall_s": wall,
                 **{k: last.get(f"eval_{k}", np.nan) for k in ("return", "max_height",
                                                               "pref_score")}}
            )  # fmt: skip
            trajs[label] = learner.sample_trajectories(b["duel_episodes"], seed=50_000 + seed)
    # head-to-head under the preference itself: P(SPO trajectory ≻ RLHF trajectory)
    oracle = preference_source(kind, env).oracle
    n = b["duel_episodes"]
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    p = oracle.prob(trajs["SPO"][i.ravel()], trajs["RLHF"][j.ravel()])
    rows.append({**base, "algo": "SPO vs RLHF", "row": "duel", "p_spo_wins": float(p.mean())})
    return pd.DataFrame(rows)


def _cycles(env: str, b: dict[str, Any]) -> pd.DataFrame:
    """Majority-vote 3-cycles among trajectories of diverse random policies."""
    n = b["cycle_trajectories"]
    seg = random_policy_trajectories(
        env, n, np.random.default_rng(0), max_episode_steps=b["horizon"]
    )
    mv = preference_source("intransitive", env).oracle
    i, j = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    P = mv.prob(seg[i.ravel()], seg[j.ravel()]).reshape(n, n)
    cyc = find_cycles(P)
    return pd.DataFrame(
        [{"env": env, "row": "cycles", "n_trajectories": n, "n_cycles": len(cyc),
          "n_triples": n * (n - 1) * (n - 2) // 6,
          "example": " > ".join(map(str, cyc[0] + (cyc[0][0],))) if cyc else ""}]
    )  # fmt: skip


@register_figure(
    "spo_control",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "envs": ["HopperFactored-v5", "HalfCheetahFactored-v5"],
        "horizon": 1000,
        "steps": 1_000_000,
        "n_envs": 8,
        "query_budget": 20_000,
        "queries_per_iter": 160,
        "batch_size": 256,
        "n_epochs": 10,
        "pool_size": 16,
        "hidden": [64, 64],
        "eval_episodes": 10,
        "duel_episodes": 10,
        "cycle_trajectories": 40,
    },
    quick_budget={
        "envs": ["HopperFactored-v5"],
        "horizon": 100,
        "steps": 2000,
        "n_envs": 4,
        "query_budget": 200,
        "queries_per_iter": 40,
        "batch_size": 100,
        "n_epochs": 4,
        "pool_size": 8,
        "hidden": [32, 32],
        "eval_episodes": 3,
        "duel_episodes": 4,
        "cycle_trajectories": 16,
    },
    mid_seeds=range(5),
    mid_budget={
        "envs": ["HopperFactored-v5"],
        "horizon": 1000,
        "steps": 300_000,
        "n_envs": 8,
        "query_budget": 6000,
        "queries_per_iter": 160,
        "batch_size": 256,
        "n_epochs": 10,
        "pool_size": 16,
        "hidden": [64, 64],
        "eval_episodes": 10,
        "duel_episodes": 10,
        "cycle_trajectories": 40,
    },
    hparams="one PPO setting (8 envs, batch 256, 10 epochs, [64, 64]) shared by SPO and RLHF",
    description="SPO vs reward-model RLHF on MuJoCo under transitive, stochastic, intransitive "
    "and non-Markovian preferences at equal query budgets (IQM, 95% bootstrap CIs)",
    paper="Swamy et al. 2024 (SPO)",
)
class SPOControl:
    """Learning curves per preference kind, head-to-head win rates, queries and wall-clock."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = []
        for env in b["envs"]:
            frames.append(ctx.cached(f"{env}_cycles", lambda env=env: _cycles(env, b)))
            for kind in KINDS:
                for seed in ctx.seeds:
                    frames.append(
                        ctx.cached(
                            f"{env}_{kind}_{seed}",
                            lambda env=env, kind=kind, seed=seed: _one(env, kind, seed, b),
                        )
                    )
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        env_list = list(dict.fromkeys(df["env"]))
        fig, axes = new_figure(ncols=len(KINDS) + 1, nrows=len(env_list), size=(3.6, 3.0))
        for r, env in enumerate(env_list):
            sub = df[df["env"] == env]
            curves = sub[sub["row"] == "curve"]
            for c, kind in enumerate(KINDS):
                ax = axes[r, c]
                d = curves[curves["preference"] == kind].dropna(subset=[CURVE_METRIC[kind]])
                what = METRIC_WORDS[CURVE_METRIC[kind]] + (
                    "\n(not what the vote ranks)" if kind == "intransitive" else ""
                )
                if not d.empty:
                    learning_curves(
                        ax,
                        d,
                        x="step",
                        y=CURVE_METRIC[kind],
                        group="algo",
                        xlabel="environment steps",
                        ylabel=what,
                    )
                ax.set_title(f"{env}: {kind} preferences", fontsize=9)
                ax.xaxis.label.set_fontsize(8)
                ax.yaxis.label.set_fontsize(7)
                ax.tick_params(labelsize=7)
                if c == 0:
                    ax.legend(fontsize=7)
            # head-to-head P(SPO ≻ RLHF) per preference, with queries and wall-clock
            ax = axes[r, len(KINDS)]
            duel = sub[sub["row"] == "duel"]
            final = sub[sub["row"] == "final"]
            for k, kind in enumerate(KINDS):
                v = duel[duel["preference"] == kind]["p_spo_wins"].to_numpy(dtype=float)
                seed_bars(ax, k, v, color="C0")
            ax.axhline(0.5, color="0.5", lw=1, ls="--")
            ax.set_ylim(0, 1.45)  # room for the note above the bars
            ax.set_yticks([0, 0.25, 0.5, 0.75, 1.0])
            names = [k.replace("nonmarkov", "non-Markov") for k in KINDS]
            ax.set_xticks(range(len(KINDS)), names, fontsize=7, rotation=30)
            ax.set_xlabel("preference the teacher uses", fontsize=8)
            ax.set_ylabel(
                f"P(SPO trajectory ≻ RLHF trajectory)\n({seed_stat(len(ctx.seeds))})", fontsize=7
            )
            q = final.groupby("algo")["queries"].mean()
            w = final.groupby("algo")["wall_s"].mean()
            cyc = sub[sub["row"] == "cycles"]
            lines = [f"{a}: {q.get(a, np.nan):.0f} queries, {w.get(a, np.nan):.1f} s/run"
                     for a, _ in ALGOS]  # fmt: skip
            if not cyc.empty:
                c0 = cyc.iloc[0]
                lines.append(f"vote cycles: {int(c0['n_cycles'])}/{int(c0['n_triples'])} triples")
            ax.set_title("head-to-head under each preference", fontsize=9)
            ax.text(0.02, 0.98, "\n".join(lines), transform=ax.transAxes, va="top", fontsize=6.5)
        fig.tight_layout()
        return fig
