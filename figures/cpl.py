"""CPL (Hejna et al., ICLR 2024): CPL vs P-IQL vs SFT vs %BC from regret preferences.

``cpl_table``: the paper's Table 1 layout — rows SFT / P-IQL / CPL per data regime ("dense":
per-segment scores, random pairs of segments ranked by score in each batch; "sparse": fixed
labelled pairs) plus the %BC oracle row, one column per task; success rate on MetaWorld, return
on Hopper, normalized exact return on the tabular MDPs (0 = uniform policy, 1 = optimal). IQM
over seeds with 95% stratified-bootstrap CIs; also written as ``cpl_table.md`` next to the PNG.

``cpl_dense_sparse``: CPL's learning curves on dense vs sparse data.

Each (task, regime) dataset is generated once (``prl.data`` files under the figure's cache, with
resume) and shared by every method and seed, as in the paper. The full budgets follow the paper
(SAC experts of 10^6 steps, 500k gradient steps of [512, 512] networks, 2.5k dense / 20k-segment
sparse datasets, 25 evaluation episodes) and are meant for a bigger machine; the quick budgets use
a random MDP and a tiny Hopper expert.

Mid budget (this 2-core CPU, ≤ 3 CPU-h): the paper's 500k gradient steps of [512, 512] networks
run at ~0.6 updates/s on one core here, i.e. ~9 days per run, and a 10^6-step SAC expert per task
costs ≈ 3.9 CPU-h, so the mid tier shrinks the task: one MetaWorld task (drawer-open), 32-step
segments, [256, 256] networks, 32 pairs per batch, 10k gradient steps (0.02× the paper), dense and
sparse data, 5 seeds. The expert is MetaWorld's scripted policy (``expert = "scripted"``), not a
trained SAC: the first mid attempt (commit 9c7bb61) showed that a 100k-step SAC expert never opens
the drawer with the CPL wrapper's random hand/object/goal (0 of 200 noisy episodes, 0 of 10
deterministic at 50k and 100k steps), so %BC could not reach its 50% sanity level. The scripted
policy succeeds in 10 of 10 episodes even with N(0, 0.6²) noise, so the data are its rollouts with
N(0, 1.0²) action noise (mixed quality: 8 of 10 episodes succeed, returns 52–166 of 250 steps) and
the label critic is V^expert fitted by Monte-Carlo regression (γ = 0.99, bootstrapped truncated
ends) to 400 rollouts of the expert at the paper's noise 0.3: held-out correlation 0.81 with the
discounted returns (recorded in the dataset's meta). Labels keep the authors' form
Σr + V(s_T) − V(s_0). Sizing (one seed, 2026-12-02): %BC success 0.4 after 5k steps, 1.0 after
10k and 20k; CPU per 10k-step run ≈ 100 s (SFT, %BC), 180 s (CPL), 730 s (P-IQL), so the figure
costs ≈ 2.9 CPU-h (35 runs). The paper's six tasks at this budget would cost ≈ 17 CPU-h.
Measured (35 runs at 09b0de4, Intel Xeon, 2.36 CPU-h; ``figures/data/mid/cpl_table``): **NOT
REPRODUCED**. Success IQM, dense: SFT 0.87, P-IQL 1.00, CPL 0.70 — CPL − P-IQL −0.30 [−0.47, −0.20],
wholly below the −10% margin; sparse: SFT 0.90, P-IQL 0.97, CPL 0.97 (inconclusive); %BC 0.90, so
the sanity level is met. At this budget CPL's contrastive phase is 6k steps (0.02× the paper's
300k) and ends below SFT on dense data; the data (one task, 1,000 dense 32-step segments, a fitted
V for the labels) and the metric (final, not the paper's best-seen success) also differ from the
paper — the manifest's analysis says which numbers came from where.
cpl_dense_sparse's mid tier is the tabular random MDP only.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prl.config import build_config
from prl.figure import FigureContext, register_figure
from prl.metrics import iqm, stratified_bootstrap_ci
from prl.plot import MIN_SEEDS_FOR_CI, learning_curves, new_figure
from prl.run import train
from prl.utils import atomic_write_text, torch_threads

PAPER_COLUMNS = {  # the paper's MetaWorld columns, in its order
    "mw-bin-picking-v3": "Bin Picking",
    "mw-button-press-v3": "Button Press",
    "mw-door-open-v3": "Door Open",
    "mw-drawer-open-v3": "Drawer Open",
    "mw-plate-slide-v3": "Plate Slide",
    "mw-sweep-into-v3": "Sweep Into",
}
EXTRA_COLUMNS = {"random_mdp": "Random MDP", "delivery": "Delivery", "Hopper-v5": "Hopper"}
METHODS = {"sft": "SFT", "piql": "P-IQL", "cpl": "CPL", "pct_bc": "%BC (oracle)"}
TABULAR_KW = {"random_mdp": {"S": 20, "A": 4, "seed": 0}, "delivery": {}}


def _metric(task: str) -> str:
    if task.startswith("mw-"):
        return "success"
    return "normalized_return" if task in TABULAR_KW else "return"


METRIC_WORDS = {
    "success": "success rate",
    "normalized_return": "normalized return\n(0 = uniform policy, 1 = optimal)",
    "return": "episode return",
}


def _metric_words(task: str) -> str:
    return METRIC_WORDS[_metric(task)]


def _label(task: str) -> str:
    return PAPER_COLUMNS.get(task) or EXTRA_COLUMNS.get(task, task)


def _task_budget(b: dict[str, Any], task: str) -> dict[str, Any]:
    """The budget's common entries overridden by its per-kind section (tabular/mujoco)."""
    kind = "tabular" if task in TABULAR_KW else "mujoco"
    return {**{k: v for k, v in b.items() if not isinstance(v, dict)}, **b.get(kind, {})}


def _data_config(tb: dict[str, Any], regime: str) -> dict[str, Any]:
    """Dataset-generation fields of the offline learners' config for one regime."""
    d = tb[regime]
    cfg = {
        "data_mode": regime,
        "n_segments": d["segments"],
        "n_pairs": d.get("pairs", 1),
        "segment_length": tb["segment_length"],
        "episodes": d.get("episodes", tb.get("episodes", 40)),
        "expert_steps": tb.get("expert_steps", 2000),
        "expert_mix": tb.get("expert_mix", 1.0),
        "behaviour_noise": tb.get("behaviour_noise", -1.0),
        "data_seed": 0,
    }
    if "expert" in tb:
        cfg["expert"] = tb["expert"]
    return cfg


def dataset_path(ctx: FigureContext, task: str, regime: str, tb: dict[str, Any]) -> Path:
    """Generate (or reuse, or resume) the shared dataset file of one task and regime."""
    from prl.algos.offline_baselines import OfflineConfig, default_dataset

    data_cfg = _data_config(tb, regime)
    tag = hashlib.sha256(json.dumps(data_cfg, sort_keys=True).encode()).hexdigest()[:8]
    path = ctx.cache_dir / "data" / f"{task}_{regime}_{tag}.npz"  # new settings, new file
    if path.exists():
        return path
    if task not in TABULAR_KW and data_cfg.get("expert", "sac") == "sac":
        steps = data_cfg["expert_steps"]
        data_cfg["expert_path"] = str(ctx.cache_dir / "data" / f"{task}_sac_{steps}.pt")
    cfg = build_config(OfflineConfig, data_cfg)
    default_dataset(task, TABULAR_KW.get(task, {}), cfg, path=str(path), progress=ctx.progress)
    return path


def _learner_config(tb: dict[str, Any], method: str, data: Path) -> dict[str, Any]:
    steps = tb["steps"]
    cfg = {
        "dataset": str(data),
        "hidden": tb["hidden"],
        "dropout": tb.get("dropout", 0.25),
        "batch_size": tb["batch_size"],
        "eval_every": 10**9,  # train() evaluates the final policy once
        "eval_episodes": tb.get("eval_episodes", 10),
    }
    if "lr" in tb:
        cfg["lr"] = tb["lr"]
    bc = round(tb.get("bc_fraction", 0.4) * steps)
    if method == "cpl":
        cfg.update(bc_steps=bc, warmup_steps=min(tb.get("warmup_steps", 10_000), steps // 10))
    elif method == "sft":
        cfg.update(bc_steps=bc)
    elif method == "piql":
        cfg.update(reward_steps=max(1, round(tb.get("reward_fraction", 0.1) * steps)))
        if "piql_lr" in tb:
            cfg["lr"] = tb["piql_lr"]
    elif method == "pct_bc":
        cfg.update(percent=tb.get("percent", 10.0))
    return cfg


def _summary(df: pd.DataFrame, keys: list[str], seed: int = 0) -> pd.DataFrame:
    """IQM over seeds with a 95% bootstrap CI per group of ``keys``."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, sub in df.groupby(keys, sort=False):
        v = sub["value"].to_numpy(dtype=np.float64)
        if len(v) >= 2:
            point, lo, hi = stratified_bootstrap_ci(v, iqm, reps=2000, rng=rng)
        else:
            point = lo = hi = float(v[0])
        rows.append(
            {
                **dict(zip(keys, k if isinstance(k, tuple) else (k,))),
                "iqm": point,
                "lo": lo,
                "hi": hi,
                "n": len(v),
            }
        )
    return pd.DataFrame(rows)


# Budgets shared by both CPL figures (the paper's settings for full; a 2-core CPU for quick).
TABULAR_FULL = {
    "steps": 20_000,
    "hidden": [256, 256],
    "dropout": 0.0,
    "batch_size": 96,
    "lr": 1e-3,
    "segment_length": 8,
    "expert_mix": 0.5,
    "behaviour_noise": 0.5,
    "dense": {"segments": 2500},
    "sparse": {"segments": 20_000, "pairs": 10_000},
}
MUJOCO_FULL = {
    "steps": 500_000,
    "hidden": [512, 512],
    "dropout": 0.25,
    "batch_size": 96,
    "segment_length": 64,
    "expert_steps": 1_000_000,
    "eval_episodes": 25,
    "dense": {"segments": 2500, "episodes": 2500},
    "sparse": {"segments": 20_000, "pairs": 10_000, "episodes": 2500},
}
MUJOCO_MID = {
    "steps": 10_000,
    "hidden": [256, 256],
    "dropout": 0.25,
    "batch_size": 32,
    "segment_length": 32,
    "expert": "scripted",
    "behaviour_noise": 1.0,
    "eval_episodes": 10,
    "dense": {"segments": 1000, "episodes": 200},
    "sparse": {"segments": 4000, "pairs": 2000, "episodes": 200},
}
TABULAR_QUICK = {
    "steps": 300,
    "hidden": [64],
    "dropout": 0.0,
    "batch_size": 32,
    "lr": 3e-3,
    "segment_length": 8,
    "expert_mix": 0.5,
    "behaviour_noise": 0.5,
    "sparse": {"segments": 1000, "pairs": 3000},
    "dense": {"segments": 500},
}


@register_figure(
    "cpl_table",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "tasks": ["random_mdp", "delivery", "Hopper-v5", *PAPER_COLUMNS],
        "regimes": ["dense", "sparse"],
        "methods": list(METHODS),
        "tabular": TABULAR_FULL,
        "mujoco": MUJOCO_FULL,
    },
    quick_budget={
        "tasks": ["random_mdp", "Hopper-v5"],
        "regimes": ["sparse"],
        "methods": list(METHODS),
        "tabular": TABULAR_QUICK,
        "mujoco": {
            "steps": 150,
            "hidden": [64],
            "dropout": 0.0,
            "batch_size": 16,
            "lr": 1e-3,
            "segment_length": 16,
            "expert_steps": 1500,
            "eval_episodes": 3,
            "sparse": {"segments": 300, "pairs": 600, "episodes": 12},
            "dense": {"segments": 300, "episodes": 12},
        },
    },
    mid_seeds=range(5),
    mid_budget={
        "tasks": ["mw-drawer-open-v3"],
        "regimes": ["dense", "sparse"],
        "methods": list(METHODS),
        "tabular": TABULAR_QUICK,
        "mujoco": MUJOCO_MID,
    },
    hparams="the paper's CPL/P-IQL settings (REFERENCES.md) at reduced size; the same network, "
    "batch, dataset and step count for every method",
    description="CPL vs P-IQL vs SFT vs %BC per task and data regime (the paper's Table 1)",
    paper="Hejna et al. 2024 (CPL), Table 1",
)
class CPLTable:
    """Final success / return of each method on each task, dense and sparse data."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        with torch_threads(1):
            return self._data(ctx)

    def _data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = []
        for task in b["tasks"]:
            tb = _task_budget(b, task)
            for regime in b["regimes"]:
                data = dataset_path(ctx, task, regime, tb)
                for method in b["methods"]:
                    if method == "pct_bc" and regime != b["regimes"][-1]:
                        continue  # %BC reads true returns, not labels: one row per task
                    for seed in ctx.seeds:

                        def one(
                            task: str = task,
                            regime: str = regime,
                            method: str = method,
                            seed: int = seed,
                            data: Any = data,
                            tb: Any = tb,
                        ) -> pd.DataFrame:
                            _, rows = train(
                                method,
                                task,
                                seed=seed,
                                steps=tb["steps"],
                                config=_learner_config(tb, method, data),
                                env_kwargs=TABULAR_KW.get(task, {}),
                                device=ctx.device,
                                every=tb["steps"],
                            )
                            metric = _metric(task)
                            return pd.DataFrame(
                                [
                                    {
                                        "task": task,
                                        "regime": "oracle" if method == "pct_bc" else regime,
                                        "method": method,
                                        "seed": seed,
                                        "metric": metric,
                                        "value": float(rows[-1][metric]),
                                    }
                                ]
                            )

                        frames.append(ctx.cached(f"{task}_{regime}_{method}_{seed}", one))
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        summ = _summary(df, ["task", "regime", "method"])
        tasks = list(dict.fromkeys(df["task"]))
        fig, axes = new_figure(
            ncols=min(3, len(tasks)), nrows=int(np.ceil(len(tasks) / 3)), size=(4.2, 3.0)
        )
        flat = axes.reshape(-1)
        for ax, task in zip(flat, tasks):
            sub = summ[summ["task"] == task].reset_index(drop=True)
            names = [
                f"{METHODS.get(m, m)}\n{r}" if r != "oracle" else METHODS.get(m, m)
                for m, r in zip(sub["method"], sub["regime"])
            ]
            x = np.arange(len(sub))
            colors = [
                "C0" if r == "dense" else "C1" if r == "sparse" else "0.5" for r in sub["regime"]
            ]
            banded = len(ctx.seeds) >= MIN_SEEDS_FOR_CI
            if banded:
                yerr = [sub["iqm"] - sub["lo"], sub["hi"] - sub["iqm"]]
                ax.bar(x, sub["iqm"], color=colors, yerr=yerr, capsize=2)
            else:  # too few seeds for a CI: the mean, and every seed as a dot
                raw = df[df["task"] == task]
                for i, (m, r) in enumerate(zip(sub["method"], sub["regime"])):
                    v = raw[(raw["method"] == m) & (raw["regime"] == r)]["value"]
                    ax.bar(i, v.mean(), color=colors[i])
                    ax.plot(np.full(len(v), i), v, "k.", ms=4)
            ax.set_xticks(x, names, fontsize=6)
            ax.set_xlabel("method and data regime", fontsize=7)
            ax.set_title(_label(task), fontsize=9)
            stat = "IQM over seeds, 95% CI" if banded else "mean; dots: seeds"
            ax.set_ylabel(f"{_metric_words(task)}\n({stat})", fontsize=7)
        for ax in flat[len(tasks) :]:
            ax.axis("off")
        fig.tight_layout()
        atomic_write_text(ctx.out / "cpl_table.md", table_markdown(summ, tasks, ctx))
        return fig


def table_markdown(summ: pd.DataFrame, tasks: list[str], ctx: FigureContext) -> str:
    """The paper's layout: a block of rows per data regime, one column per task."""
    lines = [
        f"CPL table ({ctx.tier} budget, seeds {list(ctx.seeds)}): "
        "IQM [95% CI] of success rate (MetaWorld), return (Hopper), normalized return (tabular).",
        "",
        "| data | method | " + " | ".join(_label(t) for t in tasks) + " |",
        "|---|---|" + "---|" * len(tasks),
    ]
    order = [r for r in ("dense", "sparse", "oracle") if r in set(summ["regime"])]
    for regime in order:
        for method in METHODS:
            sub = summ[(summ["regime"] == regime) & (summ["method"] == method)]
            if sub.empty:
                continue
            cells = []
            for t in tasks:
                row = sub[sub["task"] == t]
                cells.append(
                    "—"
                    if row.empty
                    else f"{row['iqm'].iloc[0]:.2f} [{row['lo'].iloc[0]:.2f}, "
                    f"{row['hi'].iloc[0]:.2f}]"
                )
            lines.append(f"| {regime} | {METHODS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@register_figure(
    "cpl_dense_sparse",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "tasks": ["random_mdp", "mw-drawer-open-v3"],
        "points": 20,
        "tabular": TABULAR_FULL,
        "mujoco": MUJOCO_FULL,
    },
    quick_budget={
        "tasks": ["random_mdp"],
        "points": 6,
        "tabular": TABULAR_QUICK,
    },
    mid_seeds=range(5),
    mid_budget={
        "tasks": ["random_mdp"],
        "points": 10,
        "tabular": {**TABULAR_FULL, "steps": 2000, "hidden": [64, 64]},
    },
    description="CPL on dense (random pairs ranked by score) vs sparse (fixed pairs) data",
    paper="Hejna et al. 2024 (CPL), Table 1 dense vs sparse",
)
class CPLDenseSparse:
    """CPL learning curves (IQM over seeds, 95% CI) with dense vs sparse preference data."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        with torch_threads(1):
            return self._data(ctx)

    def _data(self, ctx: FigureContext) -> pd.DataFrame:
        b = ctx.budget
        frames = []
        for task in b["tasks"]:
            tb = _task_budget(b, task)
            every = max(1, tb["steps"] // b["points"])
            for regime in ("dense", "sparse"):
                data = dataset_path(ctx, task, regime, tb)
                for seed in ctx.seeds:

                    def one(
                        task: str = task,
                        regime: str = regime,
                        seed: int = seed,
                        data: Any = data,
                        tb: Any = tb,
                        every: int = every,
                    ) -> pd.DataFrame:
                        cfg = {**_learner_config(tb, "cpl", data), "eval_every": every}
                        _, rows = train(
                            "cpl",
                            task,
                            seed=seed,
                            steps=tb["steps"],
                            config=cfg,
                            env_kwargs=TABULAR_KW.get(task, {}),
                            device=ctx.device,
                        )
                        metric = _metric(task)
                        return pd.DataFrame(
                            [
                                {
                                    "task": task,
                                    "data": regime,
                                    "seed": seed,
                                    "step": r["step"],
                                    "metric": metric,
                                    "value": float(r[metric]),
                                }
                                for r in rows
                                if metric in r
                            ]
                        )

                    frames.append(ctx.cached(f"{task}_{regime}_{seed}", one))
        return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        tasks = list(dict.fromkeys(df["task"]))
        fig, axes = new_figure(ncols=len(tasks))
        for ax, task in zip(axes[0], tasks):
            sub = df[df["task"] == task]
            learning_curves(
                ax,
                sub,
                x="step",
                y="value",
                group="data",
                xlabel="gradient steps",
                ylabel=_metric_words(task),
            )
            ax.set_title(f"CPL on {_label(task)}", fontsize=9)
            ax.legend(fontsize=8)
        fig.tight_layout()
        return fig
