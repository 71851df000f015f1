"""Preference-optimisation theory checks: CPU cost of each quick check (one torch thread), and
the aggregated-count data path against per-comparison data for the same DPO fits.

    PYTHONPATH=. python benchmarks/bench_po_theory.py

Prints a Markdown table; ratios are measured in the same run on the same machine.
"""

from __future__ import annotations

import time
import warnings

import torch

NAMES = (
    "coverage_dpo_vs_rlhf",
    "ipo_vs_dpo",
    "robust_dpo_noise",
    "dpo_ranking_accuracy",
    "regret_identifiability",
    "cpl_consistency",
    "zo_rank_sgd_rate",
    "xpo_exploration",
    "apo_acceleration",
)


def cpu(fn, reps: int = 1) -> float:
    t = time.process_time()
    for _ in range(reps):
        fn()
    return (time.process_time() - t) / reps


def main() -> None:
    import matplotlib.pyplot as plt

    from prl.algos.dpo import bandit_pair_counts, dpo_policy, sample_pairs
    from prl.checks import get_check
    from prl.games import bradley_terry_matrix

    torch.set_num_threads(1)
    for n in NAMES:  # warm up imports and matplotlib once
        get_check(n)
    print("| check (quick, 1 thread) | CPU s |\n|---|---|")
    total = 0.0
    for n in NAMES:
        c = get_check(n)
        s = cpu(lambda c=c: c.run(quick=True, device="cpu", seed=0))
        plt.close("all")
        total += s
        print(f"| {n} | {s:.2f} |")
    print(f"| **total** | **{total:.1f}** |\n")

    P = torch.as_tensor(bradley_terry_matrix([0.3, 0.9, 0.1, 0.6])).expand(64, 4, 4)
    print("| DPO fit of 64 data sets, n comparisons | per-comparison s | counts s | ratio |")
    print("|---|---|---|---|")
    for n in (1000, 16000):
        g = torch.Generator().manual_seed(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            per = cpu(lambda g=g, n=n: dpo_policy(sample_pairs(P, None, n, g), 0.5, n=4), 3)
            agg = cpu(lambda g=g, n=n: dpo_policy(bandit_pair_counts(P, None, n, g), 0.5, n=4), 3)
        print(f"| n = {n} | {per:.3f} | {agg:.3f} | {per / agg:.0f}× |")


if __name__ == "__main__":
    main()
