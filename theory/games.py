"""Checks on preference games: the LP minimax (von Neumann) winner against closed forms."""

from __future__ import annotations

from typing import Any

import numpy as np

from prl.checks import CheckResult, register_check
from prl.games import (
    biased_rps_matrix,
    cyclic_dice_matrix,
    exploitability,
    minimax_winner,
    random_preference_matrix,
    rps_matrix,
)

CLOSED_FORMS = {
    "rock-paper-scissors": (rps_matrix, np.full(3, 1 / 3)),
    "biased RPS": (biased_rps_matrix, np.array([1, 10, 5]) / 16),
    "cyclic dice": (cyclic_dice_matrix, np.full(3, 1 / 3)),
}


@register_check(
    "minimax_winner_lp",
    paper="von Neumann (1928); Swamy et al. 2024 (minimax winner)",
    claim="The LP minimax winner equals the closed-form winners of RPS, biased RPS and the "
    "cyclic dice, and no outcome beats it on random games (exploitability 0).",
    tags=("games", "foundation"),
)
def check_minimax_winner(quick: bool, device: Any, seed: int) -> CheckResult:
    """Compare ``minimax_winner`` to closed forms and measure its exploitability."""
    import matplotlib.pyplot as plt

    rows = []
    worst = 0.0
    for name, (make, exact) in CLOSED_FORMS.items():
        pi, value = minimax_winner(make())
        err = float(np.abs(pi - exact).max())
        worst = max(worst, err, abs(value))
        rows.append(
            {
                "game": name,
                "n": len(exact),
                "max_abs_error": err,
                "value": value,
                "exploitability": float(exploitability(make(), pi)),
            }
        )
    rng = np.random.default_rng(seed)
    n_games = 20 if quick else 200
    expl = []
    for k in range(n_games):
        P = random_preference_matrix(10, rng)
        pi, value = minimax_winner(P)
        e = float(exploitability(P, pi))
        expl.append(e)
        rows.append(
            {
                "game": f"random #{k}",
                "n": 10,
                "max_abs_error": np.nan,
                "value": value,
                "exploitability": e,
            }
        )
    worst = max(worst, max(expl))
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for i, (make, exact) in enumerate(CLOSED_FORMS.values()):
        pi, _ = minimax_winner(make())
        xs = np.arange(len(exact)) + 4 * i
        axes[0].bar(xs - 0.2, exact, 0.4, color="0.7", label="closed form" if i == 0 else None)
        axes[0].bar(xs + 0.2, pi, 0.4, color="C0", label="LP" if i == 0 else None)
    axes[0].set_xticks([1, 5, 9], [str(k).replace("_", " ") for k in CLOSED_FORMS])
    axes[0].set_xlabel("game (closed-form minimax winner vs LP)")
    axes[0].set_ylabel("probability")
    axes[0].legend(fontsize=8)
    axes[1].hist(np.log10(np.maximum(expl, 1e-17)), bins=20)
    axes[1].set_xlabel("log10 exploitability (random 10×10 games)")
    axes[1].set_ylabel("number of games")
    fig.tight_layout()
    tol = 1e-8
    return CheckResult(
        measured=worst,
        claimed=0.0,
        tolerance=tol,
        passed=bool(worst <= tol),
        table=rows,
        figure=fig,
        comparison="≈",
        detail=f"worst closed-form error / exploitability over 3 + {n_games} games",
    )
