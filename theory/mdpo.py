"""Rates of exact policy mirror descent (the tabular form of MDPO) on random and chain MDPs.

Every experiment runs :func:`algos.mdpo.policy_mirror_descent` on a batch of MDPs (S = 10–50,
γ ∈ {0.9, 0.99}, several step sizes) in torch float64 on the requested device and compares the
exact suboptimality against an independent exact solver (``TabularMDP.v_star`` by policy
iteration, ``TabularMDP.soft_optimal`` for the regularized optimum). Claims checked:

- Agarwal et al. (2021, JMLR), Theorem 16 (NPG, softmax, π_0 uniform, constant η > 0): for
  every T ≥ 1 and every state s, the **last iterate** satisfies
  V*(s) − V^{(T)}(s) ≤ log|A|/(ηT) + 1/((1−γ)² T), rewards in [0, 1], where the NPG update is
  π^{(t+1)} ∝ π^{(t)} exp(η A^{(t)}/(1−γ)), i.e. :func:`pmd_step` with η_Q = η/(1−γ).
  Checked: no violation (``pmd_sublinear_bound``) and a log–log slope ≤ −1
  (``pmd_sublinear_slope``). The bound is loose (measured gap/bound ≈ 0.04) and exact NPG with
  a constant step is eventually linear, but where a suboptimal action has a tiny advantage gap
  (1e-4 on some S = 50 MDPs, 6e-3 on the n = 10 chain) the gap sits on a slowly decaying
  plateau for hundreds or thousands of iterations, and a slope fitted over a fixed window can
  be > −1 there. So each run is followed until its gap reaches float noise (or 2 000 / 20 000
  iterations in quick / full mode) and the slope is fitted over its whole convergence, on a
  log-spaced grid of T (every decade weighs the same).
- Cen et al. (2021), Theorem 1 (entropy-regularized NPG, 0 < η ≤ (1−γ)/τ):
  ‖Q*_τ − Q_τ^{(t+1)}‖∞ ≤ C₁ γ (1−ητ)^t with C₁ = ‖Q*_τ − Q_τ^{(0)}‖∞ +
  2τ(1 − ητ/(1−γ))‖log π*_τ − log π^{(0)}‖∞: the fitted per-step rate is ≤ 1 − ητ and the
  bound holds (``pmd_entropy_linear_rate``).
- Xiao (2022, JMLR), PMD with increasing steps η_{k+1} ≥ η_k/γ converges linearly:
  V*(s) − V^{(k)}(s) ≤ γ^k (V*(s) − V^{(0)}(s) + D₀/((1−γ)η₀)), D₀ = E_{d*}KL(π*‖π_0) ≤ log|A|
  for a uniform π_0 (``pmd_geometric_linear_rate``: the envelope holds, fitted rates < 1).
"""

from __future__ import annotations

import math
from functools import lru_cache
from typing import Any

import numpy as np
import torch

from prl.algos.mdpo import (
    cen_step_to_pmd,
    npg_step_to_pmd,
    policy_mirror_descent,
    stack_mdps,
)
from prl.checks import CheckResult, register_check
from prl.mdp import TabularMDP, chain_mdp, random_mdp
from prl.plot import new_figure

FLOOR = 1e-9  # suboptimality gaps below this are float noise (values are ≤ 1/(1−γ) = 100)
Q_FLOOR = 1e-6  # soft_optimal stops at a 1e-10 Bellman residual: Q*_τ is exact to ~1e-8
GAMMAS = (0.9, 0.99)
N_ACTIONS = 4


def mdp_families(quick: bool, seed: int) -> list[tuple[str, list[TabularMDP]]]:
    """(family name, MDPs sharing S and A) for S = 10 and 50 random MDPs and n = 10, 50 chains.

    Chains use rewards scaled into [0, 1] (small 0.2, large 1.0) and slip 0.1; every family is
    built for γ = 0.9 and γ = 0.99.
    """
    rng = np.random.default_rng(seed)
    n_random = 3 if quick else 12
    out = []
    for gamma in GAMMAS:
        for S in (10, 50):
            mdps = [random_mdp(S, N_ACTIONS, gamma, rng) for _ in range(n_random)]
            out.append((f"random S={S} γ={gamma}", mdps))
        for n in (10, 50):
            chain = chain_mdp(n, gamma, slip=0.1, small_reward=0.2, large_reward=1.0)
            out.append((f"chain n={n} γ={gamma}", [chain]))
    return out


def _repeat(mdps: list[TabularMDP], reps: int, device: Any) -> dict[str, torch.Tensor]:
    b = stack_mdps(mdps, device=device)
    return {k: v.repeat_interleave(reps, 0) for k, v in b.items()}


def loglog_slope(y: np.ndarray, floor: float, points: int = 40) -> float:
    """Least-squares slope of log max(y_T, floor) against log T on a log-spaced grid of T (so each
    decade weighs the same), T = 1 … the first T at which y reaches ``floor`` (float noise: a
    curve that drops to exactly 0 counts as reaching it there); −inf when that is T ≤ 3."""
    hit = np.flatnonzero(y <= floor)
    end = int(hit[0]) + 1 if hit.size else len(y)
    if end <= 3:
        return -math.inf
    T = np.unique(np.round(np.geomspace(1, end, points)).astype(int))
    return float(np.polyfit(np.log(T), np.log(np.maximum(y[T - 1], floor)), 1)[0])


def tail_rate(y: np.ndarray, floor: float) -> float:
    """Per-step geometric rate exp(slope of log y_k against k) fitted over the upper half of the
    iterations with y_k above ``floor``; 0 when fewer than three points are above it."""
    keep = np.flatnonzero(y > floor)
    if keep.size < 3:
        return 0.0
    tail = keep[keep >= 0.5 * (keep[0] + keep[-1])]
    if tail.size < 2:
        tail = keep[-2:]
    return math.exp(float(np.polyfit(tail, np.log(y[tail]), 1)[0]))


# ---- experiments (cached: two checks share the constant-step run) -------------------------
@lru_cache(maxsize=4)
def constant_step_experiment(quick: bool, device: str, seed: int) -> list[dict[str, Any]]:
    """Exact NPG/PMD with constant steps η ∈ {0.1, 1, 10}: gap curves and the Agarwal bound.

    Every run goes ``chunk`` iterations at a time (batched over the runs still going) until its
    gap reaches float noise or ``t_max`` iterations, so that slow, plateau-shaped runs are
    followed through their whole convergence.
    """
    chunk, t_max = (200, 2000) if quick else (1000, 20_000)
    etas = (0.1, 1.0, 10.0)
    rows = []
    for fam, mdps in mdp_families(quick, seed):
        b = _repeat(mdps, len(etas), device)
        n = b["P"].shape[0]
        eta = torch.tensor(etas * len(mdps), dtype=torch.float64, device=device)
        eta_q = npg_step_to_pmd(eta, b["gamma"])
        v_star = torch.as_tensor(
            np.stack([m.v_star() for m in mdps]), device=device
        ).repeat_interleave(len(etas), 0)
        curves: list[list[np.ndarray]] = [[] for _ in range(n)]
        active = torch.arange(n, device=device)
        log_pi = None
        done = 0
        while active.numel() and done < t_max:
            out = policy_mirror_descent(
                b["P"][active],
                b["R"][active],
                b["gamma"][active],
                iters=chunk,
                eta=eta_q[active],
                log_pi0=log_pi,
            )
            sup_gap = (v_star[active][None] - out["V"][1:]).amax(-1).cpu().numpy()  # [chunk, n']
            for j, run in enumerate(active.tolist()):
                curves[run].append(sup_gap[:, j])
            done += chunk
            going = torch.as_tensor(sup_gap.min(0) > FLOOR, device=device)
            active, log_pi = active[going], out["log_pi"][going]
        A = b["R"].shape[-1]
        for j in range(n):
            sg = np.concatenate(curves[j])
            t = np.arange(1, len(sg) + 1)
            g = float(b["gamma"][j])
            bound = math.log(A) / (float(eta[j]) * t) + 1.0 / ((1.0 - g) ** 2 * t)
            rows.append(
                {
                    "family": fam,
                    "mdp": j // len(etas),
                    "gamma": g,
                    "eta": float(eta[j]),
                    "iterations": len(sg),
                    "max_gap_over_bound": float((sg / bound).max()),
                    "gap_T1": float(sg[0]),
                    "gap_last": float(sg[-1]),
                    "loglog_slope": loglog_slope(sg, FLOOR),
                    "curve": sg,
                    "bound": bound,
                }
            )
    return rows


def _public(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in r.items() if not isinstance(v, np.ndarray)} for r in rows]


def _slope_figure(rows: list[dict[str, Any]]) -> Any:
    """The fitted log–log slope of each run (the checked quantity) next to a slope −1 line."""
    fig, axes = new_figure(ncols=2)
    for ax, gamma in zip(axes[0], GAMMAS):
        for r in rows:
            if r["gamma"] != gamma or r["mdp"] != 0 or "S=50" not in r["family"]:
                continue
            T = np.arange(1, len(r["curve"]) + 1)
            keep = r["curve"] > FLOOR
            ax.loglog(
                T[keep],
                r["curve"][keep],
                label=f"η={r['eta']:g}: fitted slope {r['loglog_slope']:.2f}",
            )
            ref = r["curve"][0] / T  # slope −1 through the first point
            ax.loglog(T, ref, "k:", lw=0.8)
        ax.set_title(f"random S=50, γ={gamma}: slope ≤ −1 (dotted: slope −1)", fontsize=9)
        ax.set_xlabel("iteration T")
        ax.set_ylabel("suboptimality max_s V*(s) − V^T(s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _loglog_figure(rows: list[dict[str, Any]], title: str) -> Any:
    fig, axes = new_figure(ncols=2)
    for ax, gamma in zip(axes[0], GAMMAS):
        for r in rows:
            if r["gamma"] != gamma or r["mdp"] != 0 or "S=50" not in r["family"]:
                continue
            T = np.arange(1, len(r["curve"]) + 1)
            keep = r["curve"] > FLOOR
            (line,) = ax.loglog(T[keep], r["curve"][keep], label=f"η={r['eta']:g}")
            ax.loglog(T, r["bound"], "--", color=line.get_color(), lw=0.8)
        ax.set_title(f"{title}, random S=50, γ={gamma}", fontsize=9)
        ax.set_xlabel("iteration T")
        ax.set_ylabel("suboptimality max_s V*(s) − V^T(s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


@register_check(
    "pmd_sublinear_bound",
    paper="Agarwal, Kakade, Lee, Mahajan 2021 (Theorem 16); Tomar et al. (MDPO)",
    claim="Exact NPG / policy mirror descent from the uniform policy with constant step η "
    "satisfies V*(s) − V^T(s) ≤ log|A|/(ηT) + 1/((1−γ)²T) for every state and every T ≥ 1.",
    tags=("mdpo", "pmd"),
)
def check_sublinear_bound(quick: bool, device: Any, seed: int) -> CheckResult:
    """Largest ratio gap/bound over random and chain MDPs, γ ∈ {0.9, 0.99}, η ∈ {0.1, 1, 10}."""
    rows = constant_step_experiment(quick, str(device), seed)
    worst = max(r["max_gap_over_bound"] for r in rows)
    return CheckResult(
        measured=worst,
        claimed=1.0,
        tolerance=0.0,
        passed=bool(worst <= 1.0),
        table=_public(rows),
        figure=_loglog_figure(rows, "gap (solid) vs bound (dashed)"),
        comparison="<=",
        detail=f"max over {len(rows)} (MDP, γ, η) runs and all T, s of gap / bound",
    )


@register_check(
    "pmd_sublinear_slope",
    paper="Agarwal, Kakade, Lee, Mahajan 2021 (Theorem 16); Tomar et al. (MDPO)",
    claim="The suboptimality of exact policy mirror descent with a constant step decays at "
    "least like 1/T: the log–log slope of max_s V*(s) − V^T(s) against T is ≤ −1.",
    tags=("mdpo", "pmd"),
)
def check_sublinear_slope(quick: bool, device: Any, seed: int) -> CheckResult:
    """Largest log–log slope of max_s gap against T, fitted over every T above float noise."""
    rows = constant_step_experiment(quick, str(device), seed)
    slopes = [r["loglog_slope"] for r in rows]
    worst = max(slopes)
    return CheckResult(
        measured=worst,
        claimed=-1.0,
        tolerance=0.0,
        passed=bool(worst <= -1.0),
        table=_public(rows),
        figure=_slope_figure(rows),
        comparison="<=",
        detail=f"max slope over {len(rows)} runs, fitted on log-spaced T until the gap reaches "
        f"float noise ({sum(np.isinf(slopes))} runs reach it within 3 iterations: slope −inf); "
        f"median slope {float(np.median(slopes)):.3g}",
    )


# ---- entropy-regularized ------------------------------------------------------------------
def entropy_experiment(quick: bool, device: Any, seed: int) -> list[dict[str, Any]]:
    """Cen et al.'s NPG with τ ∈ {0.1, 0.01}, η = f(1−γ)/τ, f ∈ {0.25, 0.5, 1}."""
    T = 120 if quick else 400
    combos = [(tau, f) for tau in (0.1, 0.01) for f in (0.25, 0.5, 1.0)]
    rows = []
    for fam, mdps in mdp_families(quick, seed):
        if quick and "S=50" in fam and "0.99" in fam:
            mdps = mdps[:1]
        b = _repeat(mdps, len(combos), device)
        tau = torch.tensor([c[0] for c in combos] * len(mdps), dtype=torch.float64, device=device)
        frac = torch.tensor([c[1] for c in combos] * len(mdps), dtype=torch.float64, device=device)
        g = b["gamma"]
        eta = frac * (1.0 - g) / tau
        out = policy_mirror_descent(
            b["P"], b["R"], g, iters=T, eta=cen_step_to_pmd(eta, tau, g), tau=tau
        )
        q_star, log_pi_star = [], []
        for m in mdps:
            for t_, _ in combos:
                pi, Q, _ = m.soft_optimal(t_)
                q_star.append(Q)
                log_pi_star.append(np.log(pi))
        q_star_t = torch.as_tensor(np.stack(q_star), device=device)
        lps = torch.as_tensor(np.stack(log_pi_star), device=device)
        A = b["R"].shape[-1]
        err = (q_star_t[None] - out["Q"]).abs().amax((-2, -1))  # [T+1, B]
        c1 = err[0] + 2 * tau * (1 - eta * tau / (1 - g)) * (lps + math.log(A)).abs().amax((-2, -1))
        t = torch.arange(T, dtype=torch.float64, device=device)[:, None]
        rate = 1.0 - eta * tau
        bound = c1[None] * g[None] * rate[None] ** t  # for err[1:]
        live = bound > Q_FLOOR
        ratio = torch.where(live, (err[1:] - Q_FLOOR).clamp_min(0) / bound, torch.zeros_like(bound))
        e = err.cpu().numpy()
        for j in range(e.shape[1]):
            measured = tail_rate(e[:, j], Q_FLOOR)
            rows.append(
                {
                    "family": fam,
                    "mdp": j // len(combos),
                    "gamma": float(g[j]),
                    "tau": float(tau[j]),
                    "eta": float(eta[j]),
                    "claimed_rate": float(rate[j]),
                    "measured_rate": measured,
                    "rate_ratio": measured / float(rate[j]),
                    "max_err_over_bound": float(ratio[:, j].max()),
                    "curve": e[:, j],
                }
            )
    return rows


@register_check(
    "pmd_entropy_linear_rate",
    paper="Cen, Cheng, Chen, Wei, Chi 2021 (Theorem 1); Tomar et al. (MDPO)",
    claim="Entropy-regularized NPG / mirror descent with 0 < η ≤ (1−γ)/τ contracts "
    "‖Q*_τ − Q_τ^t‖∞ at least by (1 − ητ) per step, within C₁γ(1−ητ)^t.",
    tags=("mdpo", "pmd"),
)
def check_entropy_rate(quick: bool, device: Any, seed: int) -> CheckResult:
    """Largest fitted per-step rate / (1 − ητ); also requires the C₁γ(1−ητ)^t bound to hold."""
    rows = entropy_experiment(quick, device, seed)
    worst = max(r["rate_ratio"] for r in rows)
    worst_bound = max(r["max_err_over_bound"] for r in rows)
    fig, axes = new_figure(ncols=2)
    for ax, gamma in zip(axes[0], GAMMAS):
        for r in rows:
            if r["gamma"] != gamma or r["mdp"] != 0 or "random S=10" not in r["family"]:
                continue
            k = np.arange(len(r["curve"]))
            keep = r["curve"] > Q_FLOOR
            (line,) = ax.semilogy(
                k[keep], r["curve"][keep], label=f"τ={r['tau']:g}, η={r['eta']:.3g}"
            )
            ax.semilogy(k, r["curve"][0] * r["claimed_rate"] ** k, ":", color=line.get_color())
        ax.set_title(f"random S=10, γ={gamma}: error (solid), (1−ητ)^t (dotted)", fontsize=8)
        ax.set_xlabel("iteration t")
        ax.set_ylabel("‖Q*_τ − Q_τ^t‖∞")
        ax.legend(fontsize=6)
    fig.tight_layout()
    return CheckResult(
        measured=worst,
        claimed=1.0,
        tolerance=0.0,
        passed=bool(worst <= 1.0 and worst_bound <= 1.0),
        table=_public(rows),
        figure=fig,
        comparison="<=",
        detail=f"max measured/claimed rate over {len(rows)} runs; max error/bound "
        f"{worst_bound:.3g} (must be ≤ 1)",
    )


# ---- geometrically growing steps ----------------------------------------------------------
def geometric_experiment(quick: bool, device: Any, seed: int) -> list[dict[str, Any]]:
    """PMD with η_k = η₀ γ^{−k}, η₀ ∈ {0.01, 0.1, 1}: gaps against Xiao's γ^k envelope."""
    T = 150 if quick else 600
    etas = (0.01, 0.1, 1.0)
    rows = []
    for fam, mdps in mdp_families(quick, seed):
        b = _repeat(mdps, len(etas), device)
        g = b["gamma"]
        eta0 = torch.tensor(etas * len(mdps), dtype=torch.float64, device=device)
        out = policy_mirror_descent(b["P"], b["R"], g, iters=T, eta=eta0, growth=1.0 / g)
        v_star = torch.as_tensor(np.stack([m.v_star() for m in mdps]), device=device)
        gap = v_star.repeat_interleave(len(etas), 0)[None] - out["V"]  # [T+1, B, S]
        A = b["R"].shape[-1]
        k = torch.arange(T + 1, dtype=torch.float64, device=device)[:, None, None]
        g3 = g[None, :, None]
        bound = g3**k * (gap[0][None] + math.log(A) / ((1 - g3) * eta0[None, :, None]))
        ratio = torch.where(
            bound > FLOOR, (gap - FLOOR).clamp_min(0) / bound, torch.zeros_like(bound)
        )
        sg = gap.amax(-1).cpu().numpy()
        for j in range(sg.shape[1]):
            rows.append(
                {
                    "family": fam,
                    "mdp": j // len(etas),
                    "gamma": float(g[j]),
                    "eta0": float(eta0[j]),
                    "max_gap_over_bound": float(ratio[:, j].max()),
                    "measured_rate": tail_rate(sg[:, j], FLOOR),
                    # the bound's constant log|A|/((1−γ)η₀): the figure draws the checked bound
                    "bound_const": math.log(A) / ((1 - float(g[j])) * float(eta0[j])),
                    "curve": sg[:, j],
                }
            )
    return rows


@register_check(
    "pmd_geometric_linear_rate",
    paper="Xiao 2022 (PMD with geometrically increasing steps); Tomar et al. (MDPO)",
    claim="Policy mirror descent with geometrically growing steps η_k = η₀/γ^k converges "
    "linearly: V*(s) − V^k(s) ≤ γ^k (V*(s) − V^0(s) + log|A|/((1−γ)η₀)).",
    tags=("mdpo", "pmd"),
)
def check_geometric_rate(quick: bool, device: Any, seed: int) -> CheckResult:
    """Largest gap / (γ^k envelope) over all runs, iterations and states; fitted rates < 1."""
    rows = geometric_experiment(quick, device, seed)
    worst = max(r["max_gap_over_bound"] for r in rows)
    max_rate = max(r["measured_rate"] for r in rows)
    fig, axes = new_figure(ncols=2)
    for ax, gamma in zip(axes[0], GAMMAS):
        for r in rows:
            if r["gamma"] != gamma or r["mdp"] != 0 or "random S=50" not in r["family"]:
                continue
            k = np.arange(len(r["curve"]))
            keep = r["curve"] > FLOOR
            (line,) = ax.semilogy(k[keep], r["curve"][keep], label=f"η₀={r['eta0']:g}")
            # the checked bound γ^k (max_s(V* − V^0) + log|A|/((1−γ)η₀)), per η₀
            ax.semilogy(
                k,
                gamma**k * (r["curve"][0] + r["bound_const"]),
                "--",
                lw=0.8,
                color=line.get_color(),
            )
        ax.set_title(
            f"random S=50, γ={gamma}\ngap (solid) vs bound γ^k(gap₀ + log|A|/((1−γ)η₀)) (dashed)",
            fontsize=8,
        )
        ax.set_xlabel("iteration k")
        ax.set_ylabel("suboptimality max_s V*(s) − V^k(s)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return CheckResult(
        measured=worst,
        claimed=1.0,
        tolerance=0.0,
        passed=bool(worst <= 1.0 and max_rate < 1.0),
        table=_public(rows),
        figure=fig,
        comparison="<=",
        detail=f"max gap / envelope over {len(rows)} runs; max fitted per-step rate "
        f"{max_rate:.4f} (must be < 1)",
    )
