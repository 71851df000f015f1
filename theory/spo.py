"""SPO's sequential claim, checked exactly: self-play with natural policy gradient on a small
finite-horizon MDP converges to the minimax winner over trajectories (an LP)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from prl.algos.spo_deep import tree_selfplay_npg
from prl.checks import CheckResult, register_check
from prl.games import exploitability, majority_vote_matrix, minimax_winner, random_preference_matrix

H, A = 3, 2  # horizon and actions of the tree MDP: 2^3 = 8 trajectories


def _games(n_games: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Half random stochastic preferences, half majority votes of 3 random per-step raters."""
    n = A**H
    games = [random_preference_matrix(n, rng) for _ in range(n_games // 2)]
    # rater k: per-step rewards on the tree's (node, action) pairs → utility of each trajectory
    for _ in range(n_games - len(games)):
        u = np.zeros((3, n))
        for d in range(H):
            r = rng.normal(size=(3, A**d, A))  # rater × node at depth d × action
            for tau in range(n):
                prefix, a = tau // A ** (H - d), (tau // A ** (H - 1 - d)) % A
                u[:, tau] += r[:, prefix, a]
        games.append(np.asarray(majority_vote_matrix(u), dtype=np.float64))
    return games


@register_check(
    "spo_tree_minimax",
    paper="Swamy et al. 2024 (SPO), minimax winners of sequential preference games",
    claim="On an H = 3, 2-action tree MDP with intransitive preferences over whole trajectories, "
    "SPO with natural policy gradient has exploitability(average) = Regret(T)/T ≤ "
    "H(log A/(ηT) + η/8) → 0, converging to the LP minimax winner.",
    tags=("spo", "games"),
)
def check_spo_tree(quick: bool, device: Any, seed: int) -> CheckResult:
    """Batched NPG self-play on many tree games vs the per-node MWU regret bound and the LP."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    G, T, n_lp = (32, 1500, 6) if quick else (1024, 50_000, 64)
    games = _games(G, rng)
    P = torch.as_tensor(np.stack(games), device=device)
    eta = math.sqrt(8 * math.log(A) / T)
    record = np.unique(np.geomspace(1, T, 25).astype(np.int64))
    res = tree_selfplay_npg(P, H, A, eta, T, record)
    bound = H * (math.log(A) / (eta * res.t) + eta / 8)
    expl = res.expl_avg.cpu().numpy()  # [K, G]
    worst_ratio = float((expl / bound[:, None]).max())
    final_bound = H * math.sqrt(math.log(A) / (2 * T))
    final = float(expl[-1].max())
    avg = res.avg.cpu().numpy()
    rows: list[dict[str, Any]] = []
    dist, lp_expl = [], []
    for g in range(min(n_lp, G)):
        p, _ = minimax_winner(games[g])
        lp_expl.append(float(exploitability(games[g], p)))
        dist.append(float(np.abs(avg[g] - p).sum()))
        rows.append(
            {
                "game": g,
                "kind": "random" if g < G // 2 else "majority vote",
                "exploitability_spo_avg": float(expl[-1, g]),
                "exploitability_lp": lp_expl[-1],
                "l1_to_lp_winner": dist[-1],
                "bound": final_bound,
            }
        )
    for k, t in enumerate(res.t):
        rows.append(
            {
                "t": int(t),
                "max_exploitability_avg": float(expl[k].max()),
                "mean_exploitability_avg": float(expl[k].mean()),
                "mean_exploitability_last": float(res.expl_last[k].mean()),
                "bound": float(bound[k]),
            }
        )

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4))
    ax = axes[0]
    ax.loglog(res.t, expl.max(1), label="max over games (average iterate)")
    ax.loglog(res.t, expl.mean(1), label="mean over games (average iterate)")
    ax.loglog(res.t, res.expl_last.cpu().numpy().mean(1), alpha=0.6, label="mean (last iterate)")
    ax.loglog(res.t, bound, "k--", lw=1, label="H(log A/(ηt) + η/8)")
    ax.set_xlabel("NPG iterations t")
    ax.set_ylabel("exploitability")
    ax.legend(fontsize=7)
    g0 = int(np.argmin(dist[: max(1, min(n_lp, G // 2))]))
    p0, _ = minimax_winner(games[g0])
    xs = np.arange(A**H)
    axes[1].bar(xs - 0.2, p0, 0.4, color="0.6", label="LP minimax winner")
    axes[1].bar(xs + 0.2, avg[g0], 0.4, color="C0", label=f"SPO-NPG average (T={T})")
    axes[1].set_xticks(xs, [format(int(x), f"0{H}b") for x in xs])
    axes[1].set_xlabel("trajectory (action sequence)")
    axes[1].set_ylabel("probability")
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    passed = worst_ratio <= 1.0 + 1e-9 and final <= final_bound and max(lp_expl) <= 1e-8
    return CheckResult(
        measured=final,
        claimed=final_bound,
        tolerance=0.0,
        passed=bool(passed),
        table=rows,
        figure=fig,
        comparison="<=",
        detail=(
            f"{G} games (8 trajectories), T={T}, η={eta:.3g}: max exploitability/bound over all "
            f"t = {worst_ratio:.3f}; mean L1 to the LP winner {np.mean(dist):.3f} "
            f"(first {len(dist)} games)"
        ),
    )
