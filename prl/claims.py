"""Empirical claims of the control figures, registered before their runs.

A :class:`Claim` fixes, in code and before any run, what a control figure must show:

* the **metric** — ``scores(df)`` turns the figure's stored CSV into a long table with one
  score per run (``task``, ``method``, ``seed``, ``score``; higher is better), and ``metric``
  says in words which column and which rows;
* the **comparisons** — method vs baseline (a label, or a constant such as 0.5 for a
  head-to-head win rate), ``">"`` (better) or ``">="`` (not worse than the baseline by more
  than ``margin`` × |IQM of the baseline|), over the tasks matching ``tasks``;
* the **statistic** — rliable's definitions (Agarwal et al. 2021): the IQM difference
  IQM(method) − IQM(baseline) over all runs and tasks of the comparison, and the probability
  of improvement P(X > Y) + ½ P(X = Y) averaged over tasks, each with a 95% percentile CI from
  the stratified bootstrap (runs resampled with replacement within each task, independently
  for the two sides), 2000 resamples from a fixed generator.

Decision rule of one comparison (threshold θ = 0 for ``">"``, θ = −margin·|IQM(baseline)| for
``">="``):

* fewer seeds than ``min_seeds`` (default 5) on either side → INCONCLUSIVE (with the reason);
* CI of the IQM difference entirely above θ → REPRODUCED, except that a ``">"`` claim also
  needs the probability of improvement above ½ (if the two statistics disagree →
  INCONCLUSIVE);
* CI entirely below θ → NOT REPRODUCED;
* otherwise (the CI contains θ) → INCONCLUSIVE.

A claim's verdict: NOT REPRODUCED if any of its comparisons is, REPRODUCED if all are,
INCONCLUSIVE otherwise. Comparisons whose tasks are not in the budget that ran are listed as
*not run* and do not count; if none ran the claim is INCONCLUSIVE. A claim may also state
*sanity* conditions (the strongest baseline clearly leaves its starting performance): if one
fails, a REPRODUCED or NOT REPRODUCED verdict becomes INCONCLUSIVE ("budget too small").
Verdicts at the quick budget are labelled *smoke* (not a result).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from prl.errors import InvalidInputError
from prl.metrics import iqm
from prl.registry import Registry

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "REPRODUCED", "NOT REPRODUCED", "INCONCLUSIVE"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
BOOTSTRAP_REPS = 2000
BOOTSTRAP_SEED = 0

CLAIMS: Registry[Claim] = Registry("claim")


# ---- the statistic (rliable's definitions) --------------------------------------------------


def _table(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise InvalidInputError(f"{name} must be a [runs] or [runs, tasks] table, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} holds NaN or inf scores")
    return arr


def _poi(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) + ½ P(X = Y) averaged over tasks; x [..., n, T], y [..., m, T] → [...]."""
    gt = (x[..., :, None, :] > y[..., None, :, :]).mean(axis=(-3, -2))
    eq = (x[..., :, None, :] == y[..., None, :, :]).mean(axis=(-3, -2))
    return (gt + 0.5 * eq).mean(axis=-1)


def _resample(x: np.ndarray, reps: int, rng: np.random.Generator) -> np.ndarray:
    """[reps, runs, tasks]: runs drawn with replacement within each task (stratified)."""
    n, t = x.shape
    idx = rng.integers(0, n, size=(reps, n, t))
    return x[idx, np.arange(t)]


def compare_scores(
    x: Any,
    y: Any,
    *,
    reps: int = BOOTSTRAP_REPS,
    confidence: float = 0.95,
    rng: np.random.Generator,
) -> dict[str, float]:
    """IQM difference and probability of improvement of ``x`` over ``y`` with stratified-bootstrap
    percentile CIs (Agarwal et al. 2021). ``x``/``y`` are [runs, tasks] tables of the same tasks;
    ``y`` may be a number (a fixed reference such as a win rate of ½)."""
    X = _table(x, "x")
    const = np.ndim(y) == 0
    Y = np.full((1, X.shape[1]), float(y)) if const else _table(y, "y")
    if Y.shape[1] != X.shape[1]:
        raise InvalidInputError(f"x and y must cover the same tasks, got {X.shape} and {Y.shape}")
    if reps < 1:
        raise InvalidInputError(f"reps must be positive, got {reps}")
    alpha = 1.0 - confidence
    q = [alpha / 2, 1 - alpha / 2]
    Xb = _resample(X, reps, rng)
    Yb = np.broadcast_to(Y, (reps, *Y.shape)) if const else _resample(Y, reps, rng)
    d_boot = iqm(Xb.reshape(reps, -1), axis=1) - iqm(Yb.reshape(reps, -1), axis=1)
    p_boot = _poi(Xb, Yb)
    d_lo, d_hi = np.quantile(d_boot, q)
    p_lo, p_hi = np.quantile(p_boot, q)
    return {
        "iqm_method": float(iqm(X)),
        "iqm_baseline": float(iqm(Y)),
        "diff": float(iqm(X) - iqm(Y)),
        "diff_lo": float(d_lo),
        "diff_hi": float(d_hi),
        "poi": float(_poi(X, Y)),
        "poi_lo": float(p_lo),
        "poi_hi": float(p_hi),
    }


def decide(
    stats: dict[str, float],
    *,
    op: str,
    margin: float,
    n_method: int,
    n_baseline: int,
    min_seeds: int,
) -> tuple[str, str]:
    """(verdict, reason) of one comparison by the module's decision rule."""
    if min(n_method, n_baseline) < min_seeds:
        return INCONCLUSIVE, (
            f"{min(n_method, n_baseline)} seeds < the {min_seeds} the claim requires"
        )
    theta = 0.0 if op == ">" else -margin * abs(stats["iqm_baseline"])
    lo, hi = stats["diff_lo"], stats["diff_hi"]
    ci = f"IQM difference {stats['diff']:.4g} [{lo:.4g}, {hi:.4g}]"
    if lo > theta:
        if op == ">" and stats["poi"] <= 0.5:
            return INCONCLUSIVE, f"{ci} > 0 but P(improvement) {stats['poi']:.3f} ≤ 0.5"
        return REPRODUCED, f"{ci} entirely above {theta:.4g}"
    if hi < theta:
        return NOT_REPRODUCED, f"{ci} entirely below {theta:.4g}"
    return INCONCLUSIVE, f"{ci} contains {theta:.4g}"


# ---- claims ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """Method vs baseline over the tasks matching ``tasks`` (fnmatch patterns; None = all)."""

    method: str
    baseline: str | float
    op: str = ">"
    tasks: tuple[str, ...] | None = None
    margin: float = 0.0
    label: str = ""

    def describe(self) -> str:
        rel = f" (margin {self.margin:.0%})" if self.op == ">=" and self.margin else ""
        sym = "≥" if self.op == ">=" else ">"
        where = f" on {', '.join(self.tasks)}" if self.tasks else ""
        return self.label or f"{self.method} {sym} {self.baseline}{rel}{where}"


@dataclass(frozen=True)
class Sanity:
    """The baseline clearly learns: final IQM − initial IQM ≥ (factor − 1)·|initial IQM| and
    > 0 on every matching task (``initial``/``final`` come from ``progress(df)``)."""

    method: str
    factor: float = 3.0
    tasks: tuple[str, ...] | None = None
    at_least: float | None = None  # alternatively: final IQM ≥ this absolute level


@dataclass(frozen=True)
class Claim:
    """A control figure's pre-registered claim (see the module docstring for the rule)."""

    name: str
    figure: str
    paper: str
    text: str
    metric: str
    scores: Callable[[pd.DataFrame], pd.DataFrame]
    comparisons: tuple[Comparison, ...]
    min_seeds: int = 5
    progress: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    sanity: tuple[Sanity, ...] = ()
    analysis: str = ""

    def evaluate(
        self, df: pd.DataFrame, *, tier: str, seeds: Sequence[int], budget: dict[str, Any]
    ) -> ClaimResult:
        """The verdict of this claim on a figure's CSV (rule in the module docstring)."""
        return evaluate_claim(self, df, tier=tier, seeds=seeds, budget=budget)


def register_claim(claim: Claim) -> Claim:
    """Register ``claim`` (one per figure) under its name."""
    CLAIMS.register(claim.name, claim, description=claim.text)
    return claim


def claim_for_figure(figure: str) -> Claim | None:
    """The claim registered for ``figure`` (None for a figure without one)."""
    for e in CLAIMS.entries():
        if e.obj.figure == figure:
            return e.obj
    return None


@dataclass
class ClaimResult:
    """A claim's verdict with its numbers, at one budget tier."""

    claim: Claim
    verdict: str
    reason: str
    tier: str
    seeds: list[int]
    budget: dict[str, Any]
    comparisons: list[dict[str, Any]] = field(default_factory=list)
    sanity: list[dict[str, Any]] = field(default_factory=list)
    analysis: str = ""

    @property
    def smoke(self) -> bool:
        return self.tier == "quick"

    @property
    def label(self) -> str:
        """The verdict as shown in the index (smoke verdicts say so)."""
        return f"smoke (not a result): {self.verdict}" if self.smoke else self.verdict

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.claim.name,
            "figure": self.claim.figure,
            "paper": self.claim.paper,
            "text": self.claim.text,
            "metric": self.claim.metric,
            "verdict": self.verdict,
            "smoke": self.smoke,
            "reason": self.reason,
            "seeds": self.seeds,
            "budget": self.tier,
            "budget_settings": self.budget,
            "comparisons": self.comparisons,
            "sanity": self.sanity,
            "analysis": self.analysis,
        }


def _matches(task: str, patterns: tuple[str, ...] | None) -> bool:
    return patterns is None or any(fnmatch.fnmatchcase(task, p) for p in patterns)


def _side(sc: pd.DataFrame, method: str, tasks: list[str]) -> pd.DataFrame:
    """[seeds × tasks] table of one method's scores (seeds missing a task are dropped)."""
    sub = sc[(sc["method"] == method) & sc["task"].isin(tasks)]
    tab = sub.pivot_table(index="seed", columns="task", values="score", aggfunc="mean")
    return tab.reindex(columns=tasks).dropna()


def evaluate_claim(
    claim: Claim, df: pd.DataFrame, *, tier: str, seeds: Sequence[int], budget: dict[str, Any]
) -> ClaimResult:
    """Apply the claim's metric, comparisons, statistic and decision rule to a figure's CSV."""
    sc = claim.scores(df)
    missing = {"task", "method", "seed", "score"} - set(sc.columns)
    if missing:
        raise InvalidInputError(f"claim {claim.name}: scores lack columns {sorted(missing)}")
    sc = sc.dropna(subset=["score"])
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    rows: list[dict[str, Any]] = []
    for comp in claim.comparisons:
        tasks = sorted(
            t for t in sc["task"].unique()
            if _matches(str(t), comp.tasks) and (sc[sc["task"] == t]["method"] == comp.method).any()
        )  # fmt: skip
        row: dict[str, Any] = {
            "comparison": comp.describe(),
            "method": comp.method,
            "baseline": comp.baseline,
            "op": comp.op,
            "margin": comp.margin,
            "tasks": tasks,
        }
        if not tasks:
            rows.append({**row, "status": "not run", "verdict": "not run",
                         "reason": "its tasks are not in this budget"})  # fmt: skip
            continue
        X = _side(sc, comp.method, tasks)
        if isinstance(comp.baseline, str):
            Y = _side(sc, comp.baseline, tasks)
            y: Any = Y.to_numpy()
            n_y = len(Y)
        else:
            y, n_y = float(comp.baseline), 10**9
        if len(X) == 0 or n_y == 0:
            rows.append({**row, "status": "ran", "verdict": INCONCLUSIVE, "n_method": len(X),
                         "n_baseline": 0 if n_y == 0 else n_y,
                         "reason": "no run covers every task of the comparison"})  # fmt: skip
            continue
        stats = compare_scores(X.to_numpy(), y, rng=rng)
        n_b = len(X) if n_y == 10**9 else n_y
        verdict, reason = decide(
            stats, op=comp.op, margin=comp.margin, n_method=len(X), n_baseline=n_b,
            min_seeds=claim.min_seeds,
        )  # fmt: skip
        rows.append({**row, **stats, "status": "ran", "n_method": len(X), "n_baseline": n_b,
                     "verdict": verdict, "reason": reason})  # fmt: skip
    ran = [r for r in rows if r["status"] == "ran"]
    if not ran:
        verdict, reason = INCONCLUSIVE, "none of the claim's comparisons ran at this budget"
    elif any(r["verdict"] == NOT_REPRODUCED for r in ran):
        verdict = NOT_REPRODUCED
        reason = "; ".join(r["comparison"] for r in ran if r["verdict"] == NOT_REPRODUCED)
        reason = f"not reproduced: {reason}"
    elif all(r["verdict"] == REPRODUCED for r in ran):
        verdict, reason = REPRODUCED, "every comparison that ran is reproduced"
    else:
        open_ = [f"{r['comparison']} ({r['reason']})" for r in ran if r["verdict"] != REPRODUCED]
        verdict, reason = INCONCLUSIVE, "; ".join(open_)
    checks = _sanity(claim, df)
    failed = [c for c in checks if not c["ok"]]
    if failed and verdict != INCONCLUSIVE:
        reason = f"{verdict} by the statistic, but the budget is too small: " + "; ".join(
            c["detail"] for c in failed
        )
        verdict = INCONCLUSIVE
    return ClaimResult(
        claim, verdict, reason, tier, [int(s) for s in seeds], dict(budget), rows, checks,
        claim.analysis,
    )  # fmt: skip


def _sanity(claim: Claim, df: pd.DataFrame) -> list[dict[str, Any]]:
    if not claim.sanity or claim.progress is None:
        return []
    prog = claim.progress(df)
    out = []
    for s in claim.sanity:
        on = prog["task"].map(lambda t, pats=s.tasks: _matches(t, pats))
        sub = prog[(prog["method"] == s.method) & on]
        for task, g in sub.groupby("task", sort=True):
            init, fin = float(iqm(g["initial"].to_numpy())), float(iqm(g["final"].to_numpy()))
            if s.at_least is not None:
                ok = fin >= s.at_least
                need = f"final ≥ {s.at_least:g}"
            else:
                ok = fin - init > 0 and fin - init >= (s.factor - 1) * abs(init)
                need = f"final − initial ≥ {s.factor - 1:g}·|initial|"
            detail = f"{s.method} on {task}: initial IQM {init:.4g}, final IQM {fin:.4g} ({need})"
            out.append({"method": s.method, "task": task, "initial": init, "final": fin,
                        "ok": bool(ok), "detail": detail})  # fmt: skip
    return out


# ---- metric helpers -------------------------------------------------------------------------


def final_window(
    df: pd.DataFrame, keys: list[str], x: str, y: str, frac: float = 0.0
) -> pd.DataFrame:
    """Per run (``keys``): mean of ``y`` over rows with ``x`` ≥ (1 − frac)·max ``x`` (frac = 0:
    the last row), and ``initial`` = the first row's ``y``."""
    d = df.dropna(subset=[y]).sort_values(x, kind="stable")
    out = []
    for k, g in d.groupby(keys, sort=False):
        xmax = g[x].max()
        last = g[g[x] >= (1 - frac) * xmax] if frac > 0 else g.tail(1)
        out.append({**dict(zip(keys, k)), "final": float(last[y].mean()),
                    "initial": float(g[y].iloc[0])})  # fmt: skip
    return pd.DataFrame(out)


def _long(d: pd.DataFrame, task: str, method: str, score: str = "final") -> pd.DataFrame:
    return pd.DataFrame(
        {"task": d[task].astype(str), "method": d[method].astype(str),
         "seed": d["seed"].astype(int), "score": d[score].astype(float)}
    )  # fmt: skip


# ---- the registered claims (one per control figure) -----------------------------------------

MUJOCO = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")


def _mdpo_progress(df: pd.DataFrame) -> pd.DataFrame:
    fw = final_window(df, ["env", "algo", "seed"], "steps", "return")
    return fw.rename(columns={"env": "task", "algo": "method"})


register_claim(
    Claim(
        name="mdpo_vs_ppo_sac",
        figure="mdpo_mujoco",
        paper="Tomar et al. 2022 (MDPO)",
        text="On-policy MDPO ≥ PPO on Hopper, Walker2d and HalfCheetah, and off-policy MDPO ≥ "
        "SAC (Tomar et al. 2022, 'Mirror Descent Policy Optimization', abstract and Figs. 1–2).",
        metric="final training return of each run (the 'return' column of its last row: mean of "
        "the last 10 episodes), per environment",
        scores=lambda df: _long(_mdpo_progress(df), "task", "method"),
        comparisons=tuple(
            Comparison(m, b, ">=", (env,), 0.1)
            for m, b in (("MDPO (on-policy)", "PPO"), ("MDPO (off-policy)", "SAC"))
            for env in MUJOCO
        ),
        progress=_mdpo_progress,
        sanity=(Sanity("PPO", 3.0), Sanity("SAC", 3.0)),
    )
)


def _pdppo_progress(df: pd.DataFrame) -> pd.DataFrame:
    fw = final_window(df, ["task", "method", "seed"], "env_steps", "ep_return", frac=0.1)
    return fw


register_claim(
    Claim(
        name="pdppo_vs_ppo",
        figure="pdppo_vs_ppo",
        paper="Felizardo et al. (PDPPO)",
        text="PDPPO (max of the two critics' advantages) > PPO at equal environment steps on "
        "stochastic lot-sizing (15×5, 25×10) and the slippery lake (Felizardo et al., PDPPO, "
        "abstract: 'better on average in stochastic settings').",
        metric="mean training-episode return over the last 10% of each run's environment steps "
        "(column ep_return), per task",
        scores=lambda df: _long(_pdppo_progress(df), "task", "method"),
        comparisons=tuple(
            Comparison("PDPPO (max of two critics)", "SB3 PPO", ">", (t,))
            for t in (
                "lot-sizing 15x5",
                "lot-sizing 25x10",
                "slippery lake 4x4",
                "slippery lake 8x8",
            )
        ),
        progress=_pdppo_progress,
        sanity=(
            Sanity("SB3 PPO", 1.2, ("lot-sizing*",)),
            Sanity("SB3 PPO", at_least=0.3, tasks=("slippery*",)),
        ),
    )
)


def _spo_scores(df: pd.DataFrame) -> pd.DataFrame:
    fin = df[df["row"] == "final"].copy()
    metric = np.where(fin["preference"] == "nonmarkov", fin["max_height"], fin["return"])
    fin["score"] = metric
    fin["task"] = fin["env"].astype(str) + "/" + fin["preference"].astype(str)
    duel = df[df["row"] == "duel"].copy()
    duel["score"] = duel["p_spo_wins"]
    duel["task"] = duel["env"].astype(str) + "/" + duel["preference"].astype(str) + "/duel"
    both = pd.concat([fin, duel], ignore_index=True)
    return _long(both, "task", "algo", "score")


def _spo_progress(df: pd.DataFrame) -> pd.DataFrame:
    cur = df[(df["row"] == "curve") & (df["preference"] == "transitive")]
    fw = final_window(cur, ["env", "algo", "seed"], "step", "return")
    return fw.rename(columns={"env": "task", "algo": "method"})


register_claim(
    Claim(
        name="spo_vs_rlhf",
        figure="spo_control",
        paper="Swamy et al. 2024 (SPO)",
        text="SPO matches reward-model RLHF under transitive preferences and handles "
        "stochastic, intransitive and non-Markovian preferences at equal query and env-step "
        "budgets (Swamy et al. 2024, 'A Minimaximalist Approach to RLHF', abstract).",
        metric="final evaluation return (transitive, stochastic), final evaluation max height "
        "(non-Markovian), and the head-to-head P(SPO trajectory ≻ RLHF trajectory) under the "
        "intransitive majority vote (rows 'final' / 'duel')",
        scores=_spo_scores,
        comparisons=(
            Comparison("SPO", "RLHF", ">=", ("*/transitive",), 0.1),
            Comparison("SPO", "RLHF", ">=", ("*/stochastic",), 0.1),
            Comparison(
                "SPO vs RLHF",
                0.5,
                ">",
                ("*/intransitive/duel",),
                label="P(SPO ≻ RLHF) > ½ under the intransitive vote",
            ),
            Comparison("SPO", "RLHF", ">", ("*/nonmarkov",)),
        ),
        progress=_spo_progress,
        sanity=(Sanity("RLHF", 3.0),),
    )
)


def _heron_progress(df: pd.DataFrame) -> pd.DataFrame:
    cur = df[(df["row"] == "curve") & (df["variant"] == "default")]
    fw = final_window(cur, ["env", "algo", "seed"], "step", "return")
    return fw.rename(columns={"env": "task", "algo": "method"})


def _heron_scores(df: pd.DataFrame) -> pd.DataFrame:
    fin = df[(df["row"] == "final") & (df["variant"] == "default")]
    return _long(fin, "env", "algo", "eval_return")


register_claim(
    Claim(
        name="heron_vs_rlhf",
        figure="heron",
        paper="Bukharin et al. 2023 (HERON)",
        text="HERON's ranked-factor reward ≥ the RLHF baseline that compares summed factors, and "
        "≥ PPO on the hand-weighted true reward, measured on the true return (Bukharin et al. "
        "2023, HERON, abstract).",
        metric="final evaluation return on the true reward (rows 'final', variant 'default', "
        "column eval_return), per task",
        scores=_heron_scores,
        comparisons=tuple(
            Comparison("HERON", b, ">=", (f"*{e}*",), 0.1)
            for b in ("RLHF (BT on Σ reward)", "PPO (true reward)")
            for e in ("Pendulum", "MountainCar", "HalfCheetah", "Hopper", "Ant")
        ),
        progress=_heron_progress,
        sanity=(Sanity("PPO (true reward)", 3.0, ("*Hopper*", "*HalfCheetah*", "*Ant*")),),
    )
)


def _cmorl_progress(df: pd.DataFrame) -> pd.DataFrame:
    cur = df[(df["source"] == "ppo") & (df["kind"] == "curve")]
    fw = final_window(cur, ["task", "algo", "seed"], "step", "hv")
    return fw.rename(columns={"algo": "method"})


register_claim(
    Claim(
        name="cmorl_vs_stage1",
        figure="cmorl_pareto",
        paper="Liu et al. 2025 (C-MORL)",
        text="C-MORL's constrained Stage 2 raises the hypervolume of the front over Stage 1 "
        "(linear-scalarization PPO) alone at equal environment steps on a MuJoCo multi-objective "
        "task (Liu et al. 2025, C-MORL, abstract and ablation).",
        metric="final hypervolume of the sampled learners' front (source 'ppo', last curve row, "
        "column hv), per MuJoCo task (mo_*)",
        scores=lambda df: _long(_cmorl_progress(df), "task", "method"),
        comparisons=tuple(
            Comparison("cmorl", "cmorl_stage1", ">", (t,))
            for t in ("mo_hopper_2obj", "mo_halfcheetah", "mo_hopper_3obj")
        ),
        progress=_cmorl_progress,
        sanity=(Sanity("cmorl_stage1", 1.5, ("mo_*",)),),
    )
)


def _cpl_scores(df: pd.DataFrame) -> pd.DataFrame:
    d = df.copy()
    d["task"] = d["task"].astype(str) + "/" + d["regime"].astype(str)
    return _long(d, "task", "method", "value")


def _cpl_progress(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["method"] == "pct_bc"]
    return pd.DataFrame({"task": d["task"], "method": d["method"], "seed": d["seed"],
                         "initial": 0.0, "final": d["value"]})  # fmt: skip


register_claim(
    Claim(
        name="cpl_vs_piql_sft",
        figure="cpl_table",
        paper="Hejna et al. 2024 (CPL), Table 1",
        text="CPL ≥ SFT on the MetaWorld tasks and ≥ P-IQL on most of them, from regret-labelled "
        "preferences, dense and sparse (Hejna et al. 2024, 'Contrastive Preference Learning', "
        "abstract and Table 1).",
        metric="final success rate on MetaWorld (column value, metric 'success'), IQM over all "
        "runs of the MetaWorld tasks of a data regime (one common scale)",
        scores=_cpl_scores,
        comparisons=tuple(
            Comparison("cpl", b, ">=", (f"mw-*/{r}",), 0.1)
            for b in ("sft", "piql")
            for r in ("dense", "sparse")
        ),
        progress=_cpl_progress,
        sanity=(Sanity("pct_bc", tasks=("mw-*",), at_least=0.5),),
    )
)


def _oppo_progress(df: pd.DataFrame) -> pd.DataFrame:
    d = df[df["method"] == "bc"]
    return pd.DataFrame({"task": d["task"], "method": d["method"], "seed": d["seed"],
                         "initial": 0.0, "final": d["value"]})  # fmt: skip


register_claim(
    Claim(
        name="oppo_vs_piql_bc",
        figure="oppo_baselines",
        paper="Kang et al. 2023 (OPPO)",
        text="OPPO ≥ offline RL on a learned reward (P-IQL) and ≥ BC on mixed-quality data "
        "(Kang et al. 2023, 'Beyond Reward: Offline Preference-guided Policy Optimization', "
        "abstract).",
        metric="final normalized score (column value: 0 = random level, 1 = expert level), IQM "
        "over all runs of all tasks (one common scale)",
        scores=lambda df: _long(df, "task", "method", "value"),
        comparisons=(
            Comparison("oppo", "piql", ">=", None, 0.1),
            Comparison("oppo", "bc", ">=", None, 0.1),
        ),
        progress=_oppo_progress,
        sanity=(Sanity("bc", at_least=0.2),),
    )
)
