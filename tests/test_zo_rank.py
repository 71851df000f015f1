"""algos.zo_rank: the rank-based estimator's weights, exact invariance to monotone transforms,
determinism, descent, and bad input."""

from __future__ import annotations

import math

import pytest
import torch

from prl.algos.zo_rank import rank_gradient, rank_weights, ranking_oracle, zo_rank_sgd
from prl.errors import InvalidInputError


def _sphere(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x * x).sum(-1)


def test_rank_weights_equal_the_pairwise_sum() -> None:
    """Σ_k w_k ξ_k equals the average over ranked pairs of (ξ_worse − ξ_better), by brute force."""
    g = torch.Generator().manual_seed(0)
    m, d = 5, 3
    vals = torch.rand(1, m, generator=g, dtype=torch.float64)
    xi = torch.randn(1, m, d, generator=g, dtype=torch.float64)
    ranks = vals.argsort(-1).argsort(-1)
    w = rank_weights(ranks)
    est = (w[..., None] * xi).sum(1)[0]
    pairs = [(i, j) for i in range(m) for j in range(m) if vals[0, i] < vals[0, j]]
    brute = sum(xi[0, j] - xi[0, i] for i, j in pairs) / len(pairs)
    assert torch.allclose(est, brute, atol=1e-14)
    assert abs(float(w.sum())) < 1e-14
    with pytest.raises(InvalidInputError, match="m ≥ 2"):
        rank_weights(torch.zeros(1, 1, dtype=torch.long))


def test_estimator_points_along_the_gradient() -> None:
    """E[g] ∝ ∇f/‖∇f‖ (small μ): the mean estimate's cosine with ∇f is close to 1."""
    g = torch.Generator().manual_seed(1)
    x = torch.tensor([[1.0, -2.0, 0.5, 0.0]], dtype=torch.float64).expand(20000, 4)
    est = rank_gradient(x, ranking_oracle(_sphere), 4, 1e-6, g).mean(0)
    cos = float(est @ x[0] / (est.norm() * x[0].norm()))
    assert cos > 0.99


def test_iterates_invariant_under_monotone_transforms_and_deterministic() -> None:
    x0 = torch.full((3, 6), 1.5, dtype=torch.float64)
    runs = []
    for f in (_sphere, lambda x: torch.exp(_sphere(x)) + _sphere(x) ** 3, lambda x: _sphere(x)):
        runs.append(
            zo_rank_sgd(ranking_oracle(f), x0, 50, 0.05, 4, 1e-4, torch.Generator().manual_seed(2))
        )
    assert torch.equal(runs[0], runs[1]) and torch.equal(runs[0], runs[2])
    value = [
        zo_rank_sgd(
            ranking_oracle(f),
            x0,
            50,
            0.05,
            4,
            1e-4,
            torch.Generator().manual_seed(2),
            estimator="value",
        )
        for f in (_sphere, lambda x: torch.exp(_sphere(x)))
    ]
    assert not torch.equal(value[0], value[1])


def test_descent_per_instance_steps_and_masks() -> None:
    g = torch.Generator().manual_seed(3)
    x0 = torch.ones(2, 4, dtype=torch.float64) * 2
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 0.0, 0.0]], dtype=torch.float64)
    seen = []
    x = zo_rank_sgd(
        ranking_oracle(_sphere),
        x0,
        torch.tensor([200, 0]),
        0.05,
        6,
        1e-5,
        g,
        dim_mask=mask,
        callback=lambda t, x, a: seen.append(a.clone()),
    )
    assert float(_sphere(x[:1])) < 0.05 * float(_sphere(x0[:1]))
    assert torch.equal(x[1], x0[1])  # zero steps: untouched
    assert len(seen) == 200 and not bool(seen[0][1])
    x = zo_rank_sgd(ranking_oracle(_sphere), x0, 100, 0.05, 6, 1e-5, g, dim_mask=mask)
    assert torch.equal(x[1, 2:], x0[1, 2:])  # masked coordinates never move


def test_bad_input() -> None:
    g = torch.Generator()
    o = ranking_oracle(_sphere)
    x0 = torch.zeros(1, 2, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="eta"):
        zo_rank_sgd(o, x0, 5, 0.0, 4, 1e-3, g)
    with pytest.raises(InvalidInputError, match="m must"):
        zo_rank_sgd(o, x0, 5, 0.1, 1, 1e-3, g)
    with pytest.raises(InvalidInputError, match="mu"):
        zo_rank_sgd(o, x0, 5, 0.1, 4, math.nan, g)
    with pytest.raises(InvalidInputError, match="x0"):
        zo_rank_sgd(o, torch.zeros(2), 5, 0.1, 4, 1e-3, g)
    with pytest.raises(InvalidInputError, match="estimator"):
        rank_gradient(x0, o, 4, 1e-3, g, estimator="nope")
