"""Ranking accuracy (Chen et al. 2024, "Preference learning algorithms do not learn preference
rankings").

For a pair (y_w, y_l) with a fraction α of raters preferring y_w, the DPO optimum satisfies
π*(y_w)/π*(y_l) = [π_ref(y_w)/π_ref(y_l)]·(α/(1−α))^(1/β), so the idealised ranking accuracy
(the fraction of pairs π* orders like the raters) is set by the reference and β, not by the
data alone. Checked:

1. the ratio formula against the exact DPO fit (:func:`algos.dpo.newton_fit`) on a batch of
   independent pairs with random α, β and π_ref (|log-ratio error| ≤ 1e-8), and the idealised
   ranking accuracy predicted by the formula equals the fitted policy's, pair by pair;
2. a policy ranks a pair correctly iff its DPO loss is ≤ −log σ(βc), c = log π_ref(y_l)/
   π_ref(y_w): on a grid of policies and references there is no mismatch away from ties;
3. gradient descent on the DPO loss from π_ref needs T(c) ≈ e^(βc)/(2β²η) steps to fix a pair
   the reference misranks by c: the slope of ln T against c is β (± 10%), for β ∈ {½, 1, 2}.

Negative control (``variant="wrong_exponent"``): the formula with (α/(1−α))^β instead of
^(1/β) disagrees with the fit and the check must FAIL.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from prl.algos.dpo import PairData, dpo_loss, newton_fit
from prl.checks import CheckResult, register_check
from prl.errors import InvalidInputError
from prl.plot import new_figure
from prl.theory._po import generator, linear_slope, one_thread, result

RATIO_TOL = 1e-8
SLOPE_REL_TOL = 0.10
TIE = 1e-9
BETAS = (0.5, 1.0, 2.0)


VARIANTS = ("wrong_exponent", "flipped_c")  # deliberately broken ingredients (negative controls)


def _ratio_formula(quick: bool, device: Any, seed: int, exponent: str) -> list[dict[str, Any]]:
    """Independent pairs (2 responses each), random α, β, π_ref: exact DPO fit vs formula."""
    gen = generator(seed, device, salt=53)
    dev = torch.device(device)
    G, N = (8, 64) if quick else (64, 1024)
    beta = torch.exp(
        torch.empty(G, dtype=torch.float64, device=dev).uniform_(-2.0, 1.0, generator=gen)
    )
    alpha = torch.empty(G, N, dtype=torch.float64, device=dev).uniform_(0.02, 0.98, generator=gen)
    ref_logit = 2.0 * torch.randn(G, N, 2, generator=gen, dtype=torch.float64, device=dev)
    lref = torch.log_softmax(ref_logit, -1)  # π_ref(·|x) over (y_w, y_l) for each prompt x
    zero = torch.zeros(N, 1, dtype=torch.long, device=dev)
    rows = []
    for g in range(G):  # each prompt is its own game: its two responses, one labelled pair
        b = float(beta[g])
        sub = PairData(zero, zero + 1, alpha[g][:, None], torch.ones_like(alpha[g][:, None]))
        w = newton_fit(sub, "dpo", b, n=2)  # log π/π_ref per response, [N, 2]
        fit = (lref[g, :, 0] + w[:, 0]) - (lref[g, :, 1] + w[:, 1])  # log π(y_w)/π(y_l)
        power = b if exponent == "wrong" else 1.0 / b
        odds = torch.log(alpha[g]) - torch.log1p(-alpha[g])
        formula = lref[g, :, 0] - lref[g, :, 1] + power * odds
        away = formula.abs() > 1e-6
        rows.append(
            {
                "panel": "ratio",
                "beta": b,
                "pairs": N,
                "max_log_ratio_error": float((fit - formula).abs().max()),
                "ranking_accuracy_fit": float((fit > 0).double().mean()),
                "ranking_accuracy_formula": float((formula > 0).double().mean()),
                "ranking_mismatches": int(((fit > 0) != (formula > 0))[away].sum()),
            }
        )
    return rows


def _iff_grid(quick: bool, device: Any, flip: bool) -> list[dict[str, Any]]:
    """Ranking correct ⟺ L_DPO ≤ −log σ(βc), on a grid of policy margins and references."""
    dev = torch.device(device)
    k = 41 if quick else 201
    c = torch.linspace(-4.0, 4.0, k, dtype=torch.float64, device=dev)[:, None]
    h = torch.linspace(-5.0, 5.0, k + 6, dtype=torch.float64, device=dev)[None, :]
    rows = []
    for b in BETAS:
        # π_ref over (y_w, y_l) with log π_ref(y_l)/π_ref(y_w) = c; π_θ = π_ref·exp(±h/2)/Z
        lref = torch.stack(
            [torch.nn.functional.logsigmoid(-c), torch.nn.functional.logsigmoid(c)], -1
        )
        lpi = torch.log_softmax(lref + torch.stack([h / 2, -h / 2], -1), -1)
        margin = (lpi[..., 0] - lref[..., 0]) - (lpi[..., 1] - lref[..., 1])
        loss = dpo_loss(margin, torch.ones_like(margin), b)
        cc = -c if flip else c
        threshold = -torch.nn.functional.logsigmoid(b * cc)
        correct = lpi[..., 0] > lpi[..., 1]
        predicted = loss <= threshold
        away = (margin - c).abs() > TIE
        rows.append(
            {
                "panel": "iff",
                "beta": b,
                "grid_points": int(away.sum()),
                "mismatches": int((correct != predicted)[away].sum()),
            }
        )
    return rows


def _steps_to_fix(quick: bool, device: Any) -> list[dict[str, Any]]:
    """Steps of gradient descent on the DPO loss (step η = 1/β²) from π_ref until π ranks y_w
    above y_l, for a pair the reference misranks by c (βc from 3 to 8)."""
    dev = torch.device(device)
    k = 11 if quick else 41
    bc = torch.linspace(3.0, 8.0, k, dtype=torch.float64, device=dev)
    beta = torch.tensor(BETAS, dtype=torch.float64, device=dev)[:, None]
    c = bc[None, :] / beta  # [β, c]
    lr = 1.0 / beta**2
    theta = torch.zeros(len(BETAS), k, 2, dtype=torch.float64, device=dev)  # logits vs π_ref
    steps = torch.zeros(len(BETAS), k, dtype=torch.float64, device=dev)
    done = torch.zeros(len(BETAS), k, dtype=torch.bool, device=dev)
    one = torch.ones(len(BETAS), k, dtype=torch.float64, device=dev)
    t = 0
    while not bool(done.all()):
        t += 1
        h = (theta[..., 0] - theta[..., 1]).requires_grad_(True)
        (gh,) = torch.autograd.grad(dpo_loss(h, one, beta).sum(), h)
        step = torch.stack([gh, -gh], -1) * lr[..., None]
        theta = torch.where(done[..., None], theta, theta - step)
        fixed = (theta[..., 0] - theta[..., 1]) > c  # log π(y_w) > log π(y_l)
        steps = torch.where(done | ~fixed, steps, torch.full_like(steps, float(t)))
        done = done | fixed
    rows = []
    for i, b in enumerate(BETAS):
        for j in range(k):
            rows.append(
                {"panel": "steps", "beta": b, "c": float(c[i, j]), "steps": float(steps[i, j])}
            )
    return rows


@one_thread
def experiment(quick: bool, device: Any, seed: int, variant: str | None = None) -> dict[str, Any]:
    """The three parts of the claim; ``variant="wrong_exponent"`` breaks the ratio formula."""
    if variant not in (None, *VARIANTS):
        raise InvalidInputError(f"unknown variant {variant!r} (known: {VARIANTS})")
    expo = "wrong" if variant == "wrong_exponent" else "right"
    rows = _ratio_formula(quick, device, seed, expo)
    rows += _iff_grid(quick, device, flip=variant == "flipped_c")
    rows += _steps_to_fix(quick, device)
    slopes = {}
    for b in BETAS:
        pts = [r for r in rows if r["panel"] == "steps" and r["beta"] == b]
        slopes[b] = linear_slope([r["c"] for r in pts], np.log([r["steps"] for r in pts]))
    ratio_rows = [r for r in rows if r["panel"] == "ratio"]
    return {
        "rows": rows,
        "ratio_error": max(r["max_log_ratio_error"] for r in ratio_rows),
        "ranking_mismatches": sum(r["ranking_mismatches"] for r in ratio_rows),
        "iff_mismatches": sum(r["mismatches"] for r in rows if r["panel"] == "iff"),
        "slopes": slopes,
        "slope_rel_error": max(abs(s / b - 1.0) for b, s in slopes.items()),
    }


def draw(df: Any) -> Any:
    """Steps to fix a misranked pair vs the reference's margin c (log scale), per β."""
    fig, axes = new_figure(ncols=2)
    ax = axes[0, 0]
    st = df[df["panel"] == "steps"]
    for j, b in enumerate(sorted(st["beta"].unique())):
        sub = st[st["beta"] == b].sort_values("c")
        s = linear_slope(sub["c"], np.log(sub["steps"]))
        ax.semilogy(sub["c"], sub["steps"], "o-", color=f"C{j}", label=f"β = {b:g} (slope {s:.3f})")
        ax.semilogy(sub["c"], np.exp(b * sub["c"]) / 2.0, "--", color=f"C{j}", lw=1)
    ax.set_xlabel("c = log π_ref(y_l)/π_ref(y_w)")
    ax.set_ylabel("gradient steps to rank y_w first (dashed: e^(βc)/2)")
    ax.legend(fontsize=7)
    ax = axes[0, 1]
    ra = df[df["panel"] == "ratio"]
    ax.scatter(ra["ranking_accuracy_formula"], ra["ranking_accuracy_fit"], c="C0")
    ax.plot([0, 1], [0, 1], "k--", lw=1)
    ax.set_xlabel("idealised ranking accuracy (formula)")
    ax.set_ylabel("ranking accuracy of the exact DPO optimum")
    fig.tight_layout()
    return fig


def verdict(out: dict[str, Any]) -> CheckResult:
    """PASS iff the formula holds to 1e-8, no ranking/iff mismatch, and slope = β ± 10%."""
    parts = {
        "ratio formula": out["ratio_error"] <= RATIO_TOL,
        "idealised ranking accuracy": out["ranking_mismatches"] == 0,
        "iff condition": out["iff_mismatches"] == 0,
        "e^(βc) steps": out["slope_rel_error"] <= SLOPE_REL_TOL,
    }
    failed = [k for k, ok in parts.items() if not ok]
    return result(
        measured=out["ratio_error"],
        claimed=0.0,
        tolerance=RATIO_TOL,
        passed=not failed,
        rows=out["rows"],
        draw=draw,
        comparison="≈",
        detail=(
            f"max |log-ratio fit − formula| {out['ratio_error']:.1e}; ranking mismatches "
            f"{out['ranking_mismatches']}; iff mismatches {out['iff_mismatches']}; slope of ln T "
            "vs c: "
            + ", ".join(f"β={b:g}: {s:.3f}" for b, s in out["slopes"].items())
            + f" (β ± {100 * SLOPE_REL_TOL:.0f}%)"
            + (f"; FAILED: {', '.join(failed)}" if failed else "")
        ),
    )


@register_check(
    "dpo_ranking_accuracy",
    paper="Chen et al. 2024, Preference learning algorithms do not learn preference rankings",
    claim="The DPO optimum satisfies π*(y_w)/π*(y_l) = [π_ref(y_w)/π_ref(y_l)]·(α/(1−α))^(1/β) and "
    "its idealised ranking accuracy follows; a pair is ranked correctly iff L_DPO ≤ −log σ(βc); "
    "gradient steps to fix a misranked pair grow like e^(βc) (slope β ± 10%).",
    tags=("preference-optimization",),
)
def check_ranking(quick: bool, device: Any, seed: int) -> CheckResult:
    """Exact DPO fits on independent pairs, an iff grid, and gradient-descent step counts."""
    return verdict(experiment(quick, device, seed))
