"""CPL consistency (Hejna et al. 2024, "Contrastive preference learning: learning from human
feedback without RL").

Under maximum-entropy RL the optimal advantage is A*(s,a) = α log π*(a|s). Preferences drawn
from the regret model with this A* (:class:`prl.oracles.Regret` with the exact soft advantage
of :meth:`prl.mdp.TabularMDP.soft_optimal`) are then a logistic model of π* itself, so:

- the CPL loss (λ = 1) over every labelled pair of length-2 segments of a random 4-state,
  3-action MDP is minimised by π*: its gradient there vanishes (autograd through
  :func:`algos.cpl.segment_score` / :func:`algos.cpl.cpl_loss`), and
- descending it from the uniform policy with :func:`algos.cpl.cpl_tabular` (L-BFGS on the
  logits) reaches π* (max |π − π*| ≤ 1e-5);
- when an action never appears in the data, the conservative λ < 1 pushes its probability down
  (λ = ½ leaves at most a tenth of the mass λ = 1 leaves there).

Negative control (``variant="alpha_mismatch"``): fitting with twice the temperature of the
labels converges to π*^(1/2) (renormalised), not π*: the check must FAIL.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import torch

from prl.algos.cpl import cpl_loss, cpl_tabular, segment_score
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.mdp import random_mdp
from prl.oracles import Regret, tabular_advantage_fn
from prl.plot import new_figure
from prl.theory._po import one_thread, result
from prl.types import Preferences, Segments

S, A, GAMMA, ALPHA, T_SEG = 4, 3, 0.9, 0.5, 2
POLICY_TOL = 1e-5
GRAD_TOL = 1e-9
ABSENT = ((0, 0), (2, 1))  # (state, action) pairs removed from the data in the λ experiment
MASS_RATIO = 0.1


VARIANTS = ("alpha_mismatch",)  # deliberately broken ingredients (negative controls)


def _segments(mdp: Any) -> tuple[np.ndarray, np.ndarray]:
    """Every feasible (s0, a0, s1, a1) segment: states and actions [B, 2]."""
    obs, act = [], []
    for s0, a0, s1, a1 in itertools.product(range(S), range(A), range(S), range(A)):
        if mdp.P[s0, a0, s1] > 0:
            obs.append((s0, s1))
            act.append((a0, a1))
    return np.array(obs), np.array(act)


def _prefs(obs: np.ndarray, act: np.ndarray, i: np.ndarray, j: np.ndarray, oracle: Any) -> Any:
    def seg(k: np.ndarray) -> Segments:
        return Segments(obs[k], act[k], np.zeros(obs[k].shape))

    a, b = seg(i), seg(j)
    return Preferences(a, b, oracle.prob(a, b))


def _loss_grad(prefs: Any, logp: np.ndarray, alpha: float) -> float:
    """‖∇_θ CPL loss‖∞ at the logits θ = log π (λ = 1), through segment_score/cpl_loss."""
    th = torch.tensor(logp, dtype=torch.float64, requires_grad=True)
    lp = torch.log_softmax(th, -1)

    def score(seg: Segments) -> torch.Tensor:
        o, a = torch.as_tensor(seg.obs), torch.as_tensor(seg.actions)
        return segment_score(lp[o, a], alpha, GAMMA)

    loss = cpl_loss(score(prefs.a), score(prefs.b), torch.as_tensor(prefs.label), 1.0)
    (g,) = torch.autograd.grad(loss, th)
    return float(g.abs().max())


@one_thread
def experiment(quick: bool, device: Any, seed: int, variant: str | None = None) -> dict[str, Any]:
    """Population CPL on a random MDP: π* is the minimiser, descent reaches it, λ < 1 and
    actions absent from the data."""
    if variant not in (None, *VARIANTS):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS})")
    rng = np.random.default_rng([seed, 2024])
    mdp = random_mdp(S, A, GAMMA, rng)
    pi_star, Q, V = mdp.soft_optimal(ALPHA)
    adv = Q - V[:, None]  # = α log π* (max-ent)
    oracle = Regret(tabular_advantage_fn(adv), beta=1.0, discount=GAMMA)
    obs, act = _segments(mdp)
    n_pairs = 1500 if quick else 20000
    i, j = rng.integers(0, len(obs), n_pairs), rng.integers(0, len(obs), n_pairs)
    keep = i != j
    prefs = _prefs(obs, act, i[keep], j[keep], oracle)
    fit_alpha = 2 * ALPHA if variant == "alpha_mismatch" else ALPHA
    dev = torch.device(device)
    steps = 150 if quick else 1000
    logp = cpl_tabular(
        prefs, S, A, alpha=fit_alpha, lam=1.0, discount=GAMMA, steps=steps, device=dev
    )
    pi_fit = np.exp(logp)
    err = float(np.abs(pi_fit - pi_star).max())
    grad_star = _loss_grad(prefs, np.log(pi_star), fit_alpha)
    adv_err = float(np.abs(adv - ALPHA * np.log(pi_star)).max())

    # actions absent from the data: λ = 1 vs λ = ½ from the uniform policy
    absent = np.zeros(len(obs), dtype=bool)
    for s, a in ABSENT:
        absent |= ((obs == s) & (act == a)).any(1)
    ok = ~absent[i] & ~absent[j] & keep
    sub = _prefs(obs, act, i[ok], j[ok], oracle)
    mass = {}
    for lam in (1.0, 0.5):
        lp = cpl_tabular(
            sub, S, A, alpha=fit_alpha, lam=lam, discount=GAMMA, steps=steps, device=dev
        )
        mass[lam] = float(np.mean([np.exp(lp[s, a]) for s, a in ABSENT]))
    rows = []
    for s in range(S):
        for a in range(A):
            rows.append(
                {
                    "panel": "policy",
                    "state": s,
                    "action": a,
                    "pi_star": float(pi_star[s, a]),
                    "pi_cpl": float(pi_fit[s, a]),
                    "absent": int((s, a) in ABSENT),
                }
            )
    for lam, m in mass.items():
        star_mass = float(np.mean([pi_star[s, a] for s, a in ABSENT]))
        rows.append({"panel": "absent", "lam": lam, "absent_mass": m, "pi_star_mass": star_mass})
    return {
        "rows": rows,
        "policy_error": err,
        "grad_at_star": grad_star,
        "soft_advantage_error": adv_err,
        "mass": mass,
        "pairs": int(keep.sum()),
    }


def draw(df: Any) -> Any:
    """CPL's policy vs π* (every state-action), and the mass on absent actions per λ."""
    fig, axes = new_figure(ncols=2)
    ax = axes[0, 0]
    pol = df[df["panel"] == "policy"]
    ax.scatter(pol["pi_star"], pol["pi_cpl"], c="C0")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("π*(a|s)  (max-ent optimal, α log π* = A*)")
    ax.set_ylabel("CPL (λ = 1) from the uniform policy")
    ax = axes[0, 1]
    ab = df[df["panel"] == "absent"].sort_values("lam", ascending=False)
    ax.bar([f"λ = {v:g}" for v in ab["lam"]], ab["absent_mass"], color=["C1", "C2"])
    ax.axhline(ab["pi_star_mass"].iloc[0], color="k", ls="--", lw=1, label="π* on those actions")
    ax.set_yscale("log")
    ax.set_ylabel("mean π(a|s) on actions absent from the data")
    ax.set_xlabel("conservative bias λ of the CPL loss")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def verdict(out: dict[str, Any]) -> CheckResult:
    """PASS iff ∇L(π*) = 0, descent reaches π* and λ = ½ keeps mass off absent actions."""
    m = out["mass"]
    parts = {
        "A* = α log π*": out["soft_advantage_error"] <= 1e-8,
        "π* minimises the CPL loss": out["grad_at_star"] <= GRAD_TOL,
        "descent from uniform reaches π*": out["policy_error"] <= POLICY_TOL,
        "λ < 1 keeps mass off absent actions": m[0.5] <= MASS_RATIO * m[1.0],
    }
    failed = [k for k, ok in parts.items() if not ok]
    return result(
        measured=out["policy_error"],
        claimed=0.0,
        tolerance=POLICY_TOL,
        passed=not failed,
        rows=out["rows"],
        draw=draw,
        comparison="≈",
        detail=(
            f"max |π_CPL − π*| {out['policy_error']:.1e} from uniform ({out['pairs']} pairs); "
            f"‖∇L(π*)‖∞ {out['grad_at_star']:.1e}; mass on absent actions λ=1: {m[1.0]:.3g}, "
            f"λ=½: {m[0.5]:.3g} (≤ {MASS_RATIO:g}×)"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


@register_check(
    "cpl_consistency",
    paper="Hejna et al. 2024, Contrastive preference learning: learning from human feedback "
    "without RL",
    claim="With regret preferences from the exact A* of a max-ent optimal policy (α log π* = A*), "
    "the CPL loss is minimised by π* and gradient descent from the uniform policy reaches it; "
    "λ < 1 keeps probability off actions absent from the data.",
    tags=("preference-optimization",),
)
def check_cpl_consistency(quick: bool, device: Any, seed: int) -> CheckResult:
    """Random 4-state MDP, all length-2 segments, exact soft regret labels, tabular CPL."""
    return verdict(experiment(quick, device, seed))
