"""XPO (Xie et al. 2024, "Exploratory preference optimization: harnessing implicit
Q*-approximation for sample-efficient RLHF"): deliberate exploration vs online DPO.

A two-response bandit with rewards (1, 0) — response 0 wins a comparison with probability
σ(1) — and a poor reference policy: π_ref(0) = e^(−1/(2β)), so that the KL-regularised optimum
π* ∝ π_ref exp(r/β) puts almost all its mass on response 0 and J_β(π*) − J_β(π_ref) ≈ ½ (J_β(π)
= E_π r − β KL(π‖π_ref)). Both methods choose their policy as the exact argmin over the class
Π = {π : |log π/π_ref| ≤ 2/β} (:func:`algos.dpo.xpo_policy`):

- online DPO samples both responses from π_t; until it has seen response 0 its data cannot move
  it, so it needs about e^(1/(2β)) rounds (simulated exactly, event by event, by
  :func:`algos.dpo.two_arm_online`);
- XPO adds α Σ log π(ỹ) over exploration samples ỹ ~ π_ref (α_t = β/√t) and samples its second
  response from π_ref: the bonus pushes mass off the reference's usual response at once.

Rounds needed = the first round with J_β(π*) − J_β(π_t) ≤ 1/8 (median over runs), for 1/β from
2 to 16: online DPO's grow exponentially in 1/β (fitted ln-slope reported, ≥ ¼ required), XPO's
polynomially (log–log slope ≤ 2), and at 1/β = 16 XPO needs at least 10× fewer rounds.

Negative control (``variant="no_bonus"``): XPO with α = 0 explores no better than π_ref and
the check must FAIL.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from prl.algos.dpo import two_arm_online
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.plot import fit_loglog_slope, new_figure
from prl.theory._po import generator, linear_slope, one_thread, result

P_WIN = 1.0 / (1.0 + math.exp(-1.0))  # σ(r0 − r1), rewards (1, 0)
GAP = 1.0 / 8.0  # success: KL-regularised suboptimality ≤ 1/8
RATIO = 10.0


VARIANTS = ("no_bonus",)  # deliberately broken ingredients (negative controls)


def _regularised_gap(q: torch.Tensor, beta: torch.Tensor, mu0: torch.Tensor) -> torch.Tensor:
    """J_β(π*) − J_β(π) for π = (q, 1 − q): β log Z* − (q − β KL(π‖π_ref))."""
    logz = beta * torch.logaddexp(torch.log(mu0) + 1.0 / beta, torch.log1p(-mu0))
    kl = (
        torch.xlogy(q, q)
        - q * torch.log(mu0)
        + torch.xlogy(1 - q, 1 - q)
        - (1 - q) * torch.log1p(-mu0)
    )
    return logz - (q - beta * kl)


@one_thread
def experiment(quick: bool, device: Any, seed: int, variant: str | None = None) -> dict[str, Any]:
    """Rounds needed by online DPO and XPO for each 1/β (batched over β × runs)."""
    if variant not in (None, *VARIANTS):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS})")
    inv = [2.0, 4.0, 8.0, 12.0, 16.0] if quick else [2.0, 4.0, 6.0, 8.0, 12.0, 16.0, 20.0, 24.0]
    S = 64 if quick else 1024
    R = 64 if quick else 256
    dev = torch.device(device)
    beta = torch.tensor(np.repeat(1.0 / np.array(inv), S), dtype=torch.float64, device=dev)
    G = len(beta)
    mu0 = torch.exp(-0.5 / beta)
    mu = torch.stack([mu0, 1 - mu0], -1)
    bound = 2.0 / beta
    gen = generator(seed, device, salt=97)
    dpo = two_arm_online("online_dpo", P_WIN, beta, mu, bound, gen, G, events=32)
    ok = _regularised_gap(dpo["pi0"], beta[:, None], mu0[:, None]) <= GAP
    first = ok.double().argmax(1)
    r_dpo = torch.where(ok.any(1), dpo["round"][torch.arange(G, device=dev), first], torch.inf)
    a0 = 0.0 if variant == "no_bonus" else 1.0
    xpo = two_arm_online("xpo", P_WIN, beta, mu, bound, gen, G, rounds=R, alpha0=a0)
    gap_x = _regularised_gap(xpo["pi0"], beta[:, None], mu0[:, None])
    okx = gap_x <= GAP
    r_xpo = torch.where(okx.any(1), okx.double().argmax(1).double() + 1.0, torch.inf)
    rows = []
    med = {"online_dpo": [], "xpo": []}
    for k, ib in enumerate(inv):
        sl = slice(k * S, (k + 1) * S)
        for method, r in (("online_dpo", r_dpo), ("xpo", r_xpo)):
            m = float(r[sl].median())
            med[method].append(m)
            rows.append(
                {
                    "inv_beta": ib,
                    "method": method,
                    "median_rounds": m,
                    "q25_rounds": float(torch.quantile(r[sl], 0.25, interpolation="lower")),
                    "q75_rounds": float(torch.quantile(r[sl], 0.75, interpolation="higher")),
                    "reached": float(torch.isfinite(r[sl]).double().mean()),
                    "final_gap_xpo": float(gap_x[sl, -1].median()) if method == "xpo" else None,
                    "ref_gap": float(_regularised_gap(mu0[sl][:1], beta[sl][:1], mu0[sl][:1])[0]),
                }
            )
    d, x = np.array(med["online_dpo"]), np.array(med["xpo"])
    finite = np.isfinite(x).all() and np.isfinite(d).all()
    return {
        "rows": rows,
        "ratio_16": float(d[inv.index(16.0)] / x[inv.index(16.0)]),
        "dpo_exp_slope": linear_slope(inv, np.log(d)) if np.isfinite(d).all() else math.nan,
        "xpo_loglog_slope": fit_loglog_slope(inv, x) if finite else math.inf,
    }


def draw(df: Any) -> Any:
    """Median rounds to reach J_β(π*) − J_β(π) ≤ 1/8 vs 1/β (log scale)."""
    fig, axes = new_figure(ncols=1)
    ax = axes[0, 0]
    for j, (method, label) in enumerate(
        (("online_dpo", "online DPO"), ("xpo", "XPO (α_t = β/√t)"))
    ):
        sub = df[df["method"] == method].sort_values("inv_beta")
        y = sub["median_rounds"].to_numpy(dtype=float)
        ax.semilogy(sub["inv_beta"], y, "o-", color=f"C{j}", label=label)
        ax.fill_between(
            sub["inv_beta"], sub["q25_rounds"], sub["q75_rounds"], color=f"C{j}", alpha=0.2
        )
    ib = np.sort(df["inv_beta"].unique())
    ax.semilogy(ib, np.exp(ib / 2) / 2, "k--", lw=1, label="e^(1/(2β))/2")
    ax.set_xlabel("1/β")
    ax.set_ylabel("rounds to J_β gap ≤ 1/8 (median, IQR)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def verdict(out: dict[str, Any]) -> CheckResult:
    """PASS iff XPO needs ≥ 10× fewer rounds at 1/β = 16, online DPO's rounds grow
    exponentially and XPO's polynomially."""
    parts = {
        "≥ 10× fewer rounds at 1/β = 16": out["ratio_16"] >= RATIO,
        "online DPO exponential in 1/β": out["dpo_exp_slope"] >= 0.25,
        "XPO polynomial in 1/β": out["xpo_loglog_slope"] <= 2.0,
    }
    failed = [k for k, ok in parts.items() if not ok]
    return result(
        measured=out["ratio_16"],
        claimed=RATIO,
        tolerance=0.0,
        passed=not failed,
        rows=out["rows"],
        draw=draw,
        comparison=">=",
        detail=(
            f"online DPO / XPO median rounds at 1/β = 16: {out['ratio_16']:.3g}; online DPO "
            f"ln(rounds) slope in 1/β {out['dpo_exp_slope']:.3f} (exponential, ≥ 0.25); XPO "
            f"log–log slope {out['xpo_loglog_slope']:.3f} (polynomial, ≤ 2)"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


@register_check(
    "xpo_exploration",
    paper="Xie et al. 2024, Exploratory preference optimization: harnessing implicit "
    "Q*-approximation for sample-efficient RLHF (XPO)",
    claim="On a bandit whose reference policy rarely plays the best response, the rounds online "
    "DPO needs grow exponentially in 1/β while XPO's grow polynomially, with at least 10× fewer "
    "rounds at 1/β = 16.",
    tags=("preference-optimization",),
)
def check_xpo(quick: bool, device: Any, seed: int) -> CheckResult:
    """Exact two-response bandit: event-driven online DPO vs round-by-round XPO."""
    return verdict(experiment(quick, device, seed))
