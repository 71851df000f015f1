"""OPPO (Kang et al., ICML 2023): OPPO vs P-IQL vs BC vs %BC on mixed-quality data, and OPPO
under noisy teachers.

``oppo_baselines``: one panel per task, the final score of each method, IQM over seeds with 95%
stratified-bootstrap CIs (also written as ``oppo_baselines.md``). The score puts every task on one
scale: 0 = the random behaviour level, 1 = the expert level — the exact normalized return on the
gridworld (0 = uniform policy, 1 = optimal), and (R − R_random) / (R_expert − R_random) on MuJoCo,
with R_level the mean episode return of that level's episodes in the dataset (D4RL's normalized
score, with the dataset's own random and expert levels as references).

``oppo_teachers``: OPPO (and P-IQL in the full budget) with the same segments and pairs labelled
by the scripted true-return teacher and by B-Pref's noisy teachers (stochastic, mistake, myopic,
skip, equal; :mod:`prl.offline_datasets`).

Each dataset (:func:`prl.offline_datasets.mixed_quality_dataset`: random / medium / expert
behaviour, scripted labels) is generated once under the figure's cache and shared by every method
and seed. The full budgets (SAC levels of 10^5 / 10^6 steps, 100 episodes per level, 10^5
gradient steps of transformer OPPO, 5 seeds) are meant for a bigger machine; the quick budgets use
the delivery gridworld and a tiny Hopper (SAC of a few hundred steps: its "expert" is barely
trained, so the quick MuJoCo panel checks the pipeline, not the method).

Mid budget (this 2-core CPU, ≤ 3 CPU-h; benchmarks/RESULTS.md rates on one core: OPPO-MLP 14,
P-IQL 6.5, BC 49 updates/s; SAC ~15 ms per env step): the delivery gridworld at 2000 gradient
steps and Hopper with SAC levels of 20k (medium) / 60k (expert) steps, 20 episodes per level,
2000 gradient steps of the MLP OPPO (the transformer runs at ~2 updates/s here), 5 seeds:
≈ 1.3 CPU-h (0.02× the paper's 10^5 steps; cheaper behaviour levels than D4RL's).
oppo_teachers' mid tier is the delivery gridworld only.
Measured at the mid budget (40 runs at commit faecb45, 0.80 CPU-h; figures/data/mid/
oppo_baselines): INCONCLUSIVE. OPPO beats both baselines clearly (vs P-IQL +0.59 [0.56, 0.61],
vs BC +0.79 [0.74, 0.82], P 1.00), but the registered sanity rule (BC ≥ 0.2) fails on Hopper
(BC −0.07): BC imitates the whole mixed dataset, so it is weak by construction, not under-trained
(%BC reaches 0.93–1.76 there); the rule was left as registered.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from prl.data import PreferenceDataset
from prl.figure import FigureContext, register_figure
from prl.metrics import iqm, stratified_bootstrap_ci
from prl.plot import new_figure, seed_bars, seed_stat
from prl.run import train
from prl.utils import atomic_write_text, torch_threads

METHODS = {"oppo": "OPPO", "piql": "P-IQL", "bc": "BC", "pct_bc": "%BC (oracle)"}
TEACHER_LABELS = {
    "scripted": "scripted",
    "stochastic": "stochastic",
    "mistake": "mistake",
    "myopic": "myopic",
    "skip": "skip",
    "equal": "equal",
}
TABULAR_TASKS = ("delivery", "chain", "random_mdp")
LABELS = {
    "delivery": "Delivery gridworld",
    "Hopper-v5": "Hopper",
    "HalfCheetah-v5": "HalfCheetah",
    "Walker2d-v5": "Walker2d",
}


def _kind(task: str) -> str:
    return "tabular" if task in TABULAR_TASKS else "mujoco"


def _task_budget(b: dict[str, Any], task: str) -> dict[str, Any]:
    """The budget's common entries overridden by its per-kind section (tabular/mujoco)."""
    return {**{k: v for k, v in b.items() if not isinstance(v, dict)}, **b.get(_kind(task), {})}


def _env_kwargs(task: str, tb: dict[str, Any]) -> dict[str, Any]:
    steps = tb.get("max_episode_steps")
    return {"max_episode_steps": int(steps)} if steps and _kind(task) == "mujoco" else {}


def dataset_path(
    ctx: FigureContext, task: str, tb: dict[str, Any], teacher: str = "scripted"
) -> Path:
    """Generate (or reuse, or resume) the shared mixed-quality dataset of one task and teacher."""
    from prl import envs
    from prl.offline_datasets import mixed_quality_dataset

    data = ctx.cache_dir / "data"
    path = data / f"{task}_{teacher}.npz"
    kw = _env_kwargs(task, tb)
    mixed_quality_dataset(
        path,
        make_env=lambda: envs.make(task, **kw),
        env_name=task,
        env_kwargs=kw,
        n_segments=tb["segments"],
        n_pairs=tb["pairs"],
        segment_length=tb["segment_length"],
        teacher=teacher,
        episodes=tb.get("episodes", 30),
        medium_steps=tb.get("medium_steps", 500),
        expert_steps=tb.get("expert_steps", 2000),
        sac_dir=data / f"{task}_sac",
        chunks_per_level=tb.get("chunks_per_level", 1),
        progress=ctx.progress,
    )
    return path


def learner_config(tb: dict[str, Any], method: str, data: Path) -> dict[str, Any]:
    """Training settings of one method from a task budget."""
    cfg: dict[str, Any] = {
        "dataset": str(data),
        "hidden": tb["hidden"],
        "dropout": tb.get("dropout", 0.0),
        "batch_size": tb["batch_size"],
        "lr": tb["lr"],
        "eval_every": 10**9,  # train() evaluates the final policy once
        "eval_episodes": tb.get("eval_episodes", 10),
    }
    if method == "oppo":
        o = tb.get("oppo", {})
        cfg.update(
            arch=o.get("arch", "mlp"),
            embed_dim=o.get("embed_dim", 128),
            n_layers=o.get("n_layers", 3),
            window=tb["segment_length"],
            warmup_steps=o.get("warmup_steps", 0),
            zstar_lr=o.get("zstar_lr", -1.0),
            dropout=o.get("dropout", cfg["dropout"]),
        )
        if "lr" in o:
            cfg["lr"] = o["lr"]
    elif method == "piql":
        cfg.update(reward_steps=max(1, round(tb.get("reward_fraction", 0.3) * tb["steps"])))
    elif method == "pct_bc":
        cfg.update(percent=tb.get("percent", 10.0))
    return cfg


def score(task: str, row: dict[str, Any], meta: dict[str, Any]) -> float:
    """0 = random behaviour, 1 = expert behaviour (see the module docstring)."""
    if _kind(task) == "tabular":
        return float(row["normalized_return"])
    lv = meta["level_returns"]
    gap = lv["expert"] - lv["random"]
    return float((row["return"] - lv["random"]) / gap) if gap != 0 else float("nan")


def _run(
    ctx: FigureContext, task: str, tb: dict[str, Any], method: str, seed: int, data: Path
) -> dict[str, Any]:
    _, rows = train(
        method,
        task,
        seed=seed,
        steps=tb["steps"],
        config=learner_config(tb, method, data),
        env_kwargs=_env_kwargs(task, tb),
        device=ctx.device,
        every=tb["steps"],
    )
    meta = PreferenceDataset.load(data).meta
    return {"value": score(task, rows[-1], meta), "return": float(rows[-1]["return"])}


def _run_row(
    ctx: FigureContext,
    task: str,
    tb: dict[str, Any],
    method: str,
    seed: int,
    data: Path,
    teacher: str | None = None,
) -> pd.DataFrame:
    """One (task, [teacher,] method, seed) cell of a figure as a one-row frame."""
    out = _run(ctx, task, tb, method, seed, data)
    tag = {"task": task} if teacher is None else {"task": task, "teacher": teacher}
    return pd.DataFrame([{**tag, "method": method, "seed": seed, **out}])


def summarize(df: pd.DataFrame, keys: list[str], seed: int = 0) -> pd.DataFrame:
    """IQM over seeds with a 95% stratified-bootstrap CI per group of ``keys``."""
    rng = np.random.default_rng(seed)
    rows = []
    for k, sub in df.groupby(keys, sort=False):
        v = sub["value"].to_numpy(dtype=np.float64)
        if len(v) >= 2:
            point, lo, hi = stratified_bootstrap_ci(v, iqm, reps=2000, rng=rng)
        else:
            point = lo = hi = float(v[0])
        key = dict(zip(keys, k if isinstance(k, tuple) else (k,)))
        rows.append({**key, "iqm": point, "lo": lo, "hi": hi, "n": len(v)})
    return pd.DataFrame(rows)


TABULAR_FULL = {
    "steps": 5000,
    "hidden": [256, 256],
    "batch_size": 64,
    "lr": 1e-3,
    "segment_length": 20,
    "segments": 6000,
    "pairs": 12_000,
    "percent": 33.0,
    "oppo": {"arch": "mlp", "zstar_lr": 1e-2},
}
TABULAR_QUICK = {
    **TABULAR_FULL,
    "steps": 300,
    "hidden": [64],
    "batch_size": 32,
    "lr": 3e-3,
    "segments": 900,
    "pairs": 1800,
    "oppo": {"arch": "mlp", "embed_dim": 64, "zstar_lr": 1e-2},
}
MUJOCO_FULL = {
    "steps": 100_000,
    "hidden": [256, 256],
    "dropout": 0.1,
    "batch_size": 64,
    "lr": 1e-4,
    "segment_length": 20,
    "segments": 20_000,
    "pairs": 10_000,
    "episodes": 100,
    "chunks_per_level": 10,
    "medium_steps": 100_000,
    "expert_steps": 1_000_000,
    "eval_episodes": 10,
    "percent": 33.0,
    "oppo": {"arch": "transformer", "warmup_steps": 10_000, "n_layers": 3, "embed_dim": 128},
}
MUJOCO_MID = {
    **MUJOCO_FULL,
    "steps": 2000,
    "segments": 4000,
    "pairs": 4000,
    "episodes": 20,
    "chunks_per_level": 2,
    "medium_steps": 20_000,
    "expert_steps": 60_000,
    "eval_episodes": 10,
    "oppo": {"arch": "mlp", "embed_dim": 128, "zstar_lr": 1e-2},
}
MUJOCO_QUICK = {
    **MUJOCO_FULL,
    "steps": 120,
    "hidden": [64],
    "dropout": 0.0,
    "batch_size": 16,
    "lr": 1e-3,
    "segment_length": 10,
    "segments": 120,
    "pairs": 240,
    "episodes": 3,
    "chunks_per_level": 1,
    "medium_steps": 150,
    "expert_steps": 400,
    "max_episode_steps": 60,
    "eval_episodes": 2,
    "oppo": {"arch": "mlp", "embed_dim": 64, "zstar_lr": 1e-2},
}


@register_figure(
    "oppo_baselines",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "tasks": ["delivery", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5"],
        "methods": list(METHODS),
        "tabular": TABULAR_FULL,
        "mujoco": MUJOCO_FULL,
    },
    quick_budget={
        "tasks": ["delivery", "Hopper-v5"],
        "methods": list(METHODS),
        "tabular": TABULAR_QUICK,
        "mujoco": MUJOCO_QUICK,
    },
    mid_seeds=range(5),
    mid_budget={
        "tasks": ["delivery", "Hopper-v5"],
        "methods": list(METHODS),
        "tabular": {**TABULAR_FULL, "steps": 2000},
        "mujoco": MUJOCO_MID,
    },
    hparams="one network/optimizer setting per task kind shared by OPPO, P-IQL, BC and %BC",
    description="OPPO vs P-IQL vs BC vs %BC on mixed-quality data (random/medium/expert)",
    paper="Kang et al. 2023 (OPPO), Table 1 layout",
)
class OPPOBaselines:
    """Final normalized score of each method on each task (IQM over seeds, 95% CI)."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        with torch_threads(1):
            frames = []
            for task in ctx.budget["tasks"]:
                tb = _task_budget(ctx.budget, task)
                data = dataset_path(ctx, task, tb)
                for method in ctx.budget["methods"]:
                    for seed in ctx.seeds:
                        one = partial(_run_row, ctx, task, tb, method, seed, data)
                        frames.append(ctx.cached(f"{task}_{method}_{seed}", one))
            return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        summ = summarize(df, ["task", "method"])
        tasks = list(dict.fromkeys(df["task"]))
        fig, axes = new_figure(ncols=len(tasks), size=(3.4, 3.0))
        for ax, task in zip(axes.reshape(-1), tasks):
            sub = summ[summ["task"] == task].reset_index(drop=True)
            x = np.arange(len(sub))
            colors = [
                "C3" if m == "oppo" else "0.55" if m == "pct_bc" else "C0" for m in sub["method"]
            ]
            raw = df[df["task"] == task]
            for i, m in enumerate(sub["method"]):
                seed_bars(ax, i, raw[raw["method"] == m]["value"], color=colors[i])
            ax.axhline(0.0, color="0.3", lw=0.6)
            ax.axhline(1.0, color="0.3", lw=0.6, ls="--")
            ax.set_xticks(x, [METHODS.get(m, m) for m in sub["method"]], fontsize=7)
            ax.set_xlabel("method", fontsize=8)
            ax.set_title(f"{LABELS.get(task, task)}\n{_expert_note(task, ctx)}", fontsize=7.5)
            ax.set_ylabel(
                f"normalized score ({seed_stat(len(ctx.seeds))})\n"
                "0 = random, 1 = expert (dashed; see note)",
                fontsize=7,
            )

        fig.tight_layout()
        atomic_write_text(ctx.out / "oppo_baselines.md", table_markdown(summ, tasks, ctx))
        return fig


def _expert_note(task: str, ctx: FigureContext) -> str:
    """What the score's "expert" (1) is on ``task`` at this budget."""
    if _kind(task) == "tabular":
        return "0 = uniform policy, 1 = optimal policy (exact)"
    steps = ctx.budget.get("mujoco", {}).get("expert_steps")
    expert = f"SAC after {steps:,} steps" if steps else "the data's SAC expert"
    return f"0 = random behaviour, 1 = {expert}"


def table_markdown(summ: pd.DataFrame, tasks: list[str], ctx: FigureContext) -> str:
    """Rows = methods, columns = tasks: IQM [95% CI] of the normalized score."""
    lines = [
        f"OPPO vs baselines ({ctx.tier} budget, seeds {list(ctx.seeds)}): "
        "IQM [95% CI] of the score (0 = random level, 1 = expert level).",
        "",
        "| method | " + " | ".join(LABELS.get(t, t) for t in tasks) + " |",
        "|---|" + "---|" * len(tasks),
    ]
    for method in METHODS:
        sub = summ[summ["method"] == method]
        if sub.empty:
            continue
        cells = []
        for t in tasks:
            r = sub[sub["task"] == t]
            cells.append(
                "—"
                if r.empty
                else f"{r['iqm'].iloc[0]:.2f} [{r['lo'].iloc[0]:.2f}, {r['hi'].iloc[0]:.2f}]"
            )
        lines.append(f"| {METHODS[method]} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@register_figure(
    "oppo_teachers",
    seeds=range(5),
    quick_seeds=range(2),
    budget={
        "tasks": ["delivery", "Hopper-v5"],
        "methods": ["oppo", "piql"],
        "teachers": list(TEACHER_LABELS),
        "tabular": TABULAR_FULL,
        "mujoco": MUJOCO_FULL,
    },
    quick_budget={
        "tasks": ["delivery"],
        "methods": ["oppo"],
        "teachers": ["scripted", "stochastic", "mistake", "equal"],
        "tabular": TABULAR_QUICK,
        "mujoco": MUJOCO_QUICK,
    },
    mid_seeds=range(5),
    mid_budget={
        "tasks": ["delivery"],
        "methods": ["oppo", "piql"],
        "teachers": list(TEACHER_LABELS),
        "tabular": {**TABULAR_FULL, "steps": 2000},
        "mujoco": MUJOCO_QUICK,
    },
    description="OPPO (and P-IQL) with scripted vs noisy B-Pref teachers on the same pairs",
    paper="Kang et al. 2023 (OPPO); teachers: Lee et al. 2021 (B-Pref)",
)
class OPPOTeachers:
    """Final normalized score per teacher (IQM over seeds, 95% CI), one panel per task."""

    def data(self, ctx: FigureContext) -> pd.DataFrame:
        with torch_threads(1):
            frames = []
            for task in ctx.budget["tasks"]:
                tb = _task_budget(ctx.budget, task)
                for teacher in ctx.budget["teachers"]:
                    data = dataset_path(ctx, task, tb, teacher)
                    for method in ctx.budget["methods"]:
                        for seed in ctx.seeds:
                            one = partial(
                                _run_row, ctx, task, tb, method, seed, data, teacher=teacher
                            )
                            key = f"{task}_{teacher}_{method}_{seed}"
                            frames.append(ctx.cached(key, one))
            return pd.concat(frames, ignore_index=True)

    def draw(self, df: pd.DataFrame, ctx: FigureContext) -> Any:
        summ = summarize(df, ["task", "teacher", "method"])
        tasks = list(dict.fromkeys(df["task"]))
        methods = list(dict.fromkeys(df["method"]))
        fig, axes = new_figure(ncols=len(tasks), size=(4.2, 3.0))
        width = 0.8 / len(methods)
        for ax, task in zip(axes.reshape(-1), tasks):
            teachers = list(dict.fromkeys(df[df["task"] == task]["teacher"]))
            x = np.arange(len(teachers))
            for j, method in enumerate(methods):
                sub = summ[(summ["task"] == task) & (summ["method"] == method)]
                sub = sub.set_index("teacher").reindex(teachers)
                raw = df[(df["task"] == task) & (df["method"] == method)]
                for i, t in enumerate(teachers):
                    seed_bars(
                        ax,
                        x[i] + (j - (len(methods) - 1) / 2) * width,
                        raw[raw["teacher"] == t]["value"],
                        width=width,
                        color="C3" if method == "oppo" else f"C{j}",
                        label=METHODS.get(method, method) if i == 0 else None,
                    )
            ax.axhline(1.0, color="0.3", lw=0.6, ls="--")
            ax.set_xticks(x, [TEACHER_LABELS.get(t, t) for t in teachers], fontsize=7)
            ax.set_xlabel("teacher labelling the pairs", fontsize=8)
            ax.set_title(f"{LABELS.get(task, task)}: noisy teachers", fontsize=9)
            ax.set_ylabel(
                f"normalized score ({seed_stat(len(ctx.seeds))})\n"
                "0 = random, 1 = expert (dashed; see note)",
                fontsize=7,
            )
            ax.legend(fontsize=7)
        fig.tight_layout()
        return fig
