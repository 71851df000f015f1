"""algos.spo: win-rate oracles, the MWU self-play core (regret identity and bound), spo_bandit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from prl.algos.spo import (
    SampledWinRates,
    SPOBandit,
    WinRates,
    as_games,
    mwu_step,
    selfplay_mwu,
    win_rate_policy_gradient,
)
from prl.errors import InvalidInputError
from prl.games import (
    cyclic_dice_matrix,
    exploitability,
    minimax_winner,
    random_preference_matrix,
    rps_matrix,
)
from prl.oracles import PreferenceMatrix
from prl.run import train
from prl.utils import torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batched tensors: one torch thread avoids oversubscribing the test workers' cores."""
    with torch_threads(1):
        yield


def _games(n: int, G: int, seed: int = 0) -> torch.Tensor:
    return random_preference_matrix(n, torch.Generator().manual_seed(seed), (G,))


# ---- inputs ------------------------------------------------------------------------------------
def test_as_games_accepts_matrices_tensors_and_oracles() -> None:
    P = rps_matrix()
    for x in (P, torch.as_tensor(P), PreferenceMatrix(P), P[None]):
        G = as_games(x)
        assert G.shape == (1, 3, 3) and G.dtype == torch.float64
        assert torch.equal(G[0], torch.as_tensor(P))


@pytest.mark.parametrize(
    "bad, msg",
    [
        (np.array([[0.5, 0.9], [0.9, 0.5]]), r"P \+ Pᵀ = 1"),
        (np.ones((2, 3)) * 0.5, "shape"),
        (np.full((1, 2, 2, 2), 0.5), "shape"),
        (np.array([[0.5, np.nan], [0.5, 0.5]]), "NaN"),
    ],
)
def test_as_games_rejects_bad_matrices(bad: np.ndarray, msg: str) -> None:
    with pytest.raises(InvalidInputError, match=msg):
        as_games(bad)


# ---- win-rate oracles --------------------------------------------------------------------------
def test_exact_win_rates_and_axpy() -> None:
    P = _games(4, 3)
    q = torch.softmax(
        torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64), -1
    )
    W = WinRates(P)
    ref = torch.einsum("gij,gj->gi", P, q)
    assert torch.allclose(W(q), ref, atol=1e-15)
    base = torch.randn(3, 4, dtype=torch.float64)
    out = torch.empty_like(base)
    assert torch.allclose(W.axpy(base, q, 0.7, out=out), base + 0.7 * ref, atol=1e-15)
    b2 = base.clone()
    W.axpy(b2, q, 0.7, out=b2)  # in place
    assert torch.allclose(b2, base + 0.7 * ref, atol=1e-15)
    assert W.evaluations == 3 and W.queries == 0


def test_sampled_win_rates_unbiased_and_counted() -> None:
    P = _games(5, 2)
    q = torch.tensor([[0.1, 0.2, 0.3, 0.2, 0.2], [0.5, 0.0, 0.0, 0.25, 0.25]], dtype=torch.float64)
    W = SampledWinRates(P, opponents=2000, generator=torch.Generator().manual_seed(0))
    est = W(q)
    exact = torch.einsum("gij,gj->gi", P, q)
    # each entry is a mean of 2000 Bernoullis: 5 standard errors ≤ 5·0.5/√2000 ≈ 0.056
    assert float((est - exact).abs().max()) < 5 * 0.5 / math.sqrt(2000)
    assert W.queries == 2 * 5 * 2000 and W.evaluations == 1
    W2 = SampledWinRates(P, opponents=2000, generator=torch.Generator().manual_seed(0))
    assert torch.equal(W2(q), est)  # same seed, same duels


def test_sampled_win_rates_rejects_bad_arguments() -> None:
    P = _games(3, 1)
    with pytest.raises(InvalidInputError, match="opponents"):
        SampledWinRates(P, 0, torch.Generator())
    with pytest.raises(InvalidInputError, match="generator"):
        SampledWinRates(P, 1, np.random.default_rng(0))  # type: ignore[arg-type]


# ---- multiplicative weights --------------------------------------------------------------------
def test_mwu_step_closed_form() -> None:
    P = rps_matrix()
    pi = np.array([0.5, 0.3, 0.2])
    eta = 0.7
    w = pi * np.exp(eta * (P @ pi))
    assert np.allclose(mwu_step(pi, P, eta).numpy(), w / w.sum(), atol=1e-15)
    # the uniform policy is the minimax winner of RPS and a fixed point
    assert np.allclose(mwu_step(np.full(3, 1 / 3), P, eta).numpy(), 1 / 3, atol=1e-15)
    with pytest.raises(InvalidInputError, match="eta"):
        mwu_step(pi, P, -1.0)
    with pytest.raises(InvalidInputError, match="sum to 1"):
        mwu_step([0.5, 0.6, 0.2], P, 0.1)


def test_selfplay_regret_identity_and_bound() -> None:
    """Exploitability(π̄_T) = R_T / T exactly; R_T ≤ ln n/η + ηT/8 (gains in [−½, ½])."""
    P = _games(6, 32, seed=3)
    T, eta = 400, 0.2
    res = selfplay_mwu(P, T, eta, record_at=[1, 10, 100, 400])
    expl = exploitability(P, res.avg)
    t = torch.as_tensor(res.t, dtype=torch.float64)[:, None]
    assert float((expl - res.regret / t).abs().max()) < 1e-13
    bound = math.log(6) / eta + eta * t / 8
    assert bool((res.regret <= bound + 1e-12).all())
    assert res.evaluations == T and res.queries == 0
    assert torch.allclose(res.avg.sum(-1), torch.ones(4, 32, dtype=torch.float64))


def test_selfplay_average_reaches_minimax_winner() -> None:
    P = torch.as_tensor(cyclic_dice_matrix())
    start = torch.tensor([0.7, 0.2, 0.1], dtype=torch.float64)
    T = 2000
    res = selfplay_mwu(P, T, math.sqrt(8 * math.log(3) / T), pi0=start)
    _, value = minimax_winner(cyclic_dice_matrix())
    assert abs(value) < 1e-12
    # exploitability(π̄_T) = R_T/T ≤ √(ln n / (2T)) with the tuned step (regret bound)
    assert float(exploitability(P, res.avg[-1])[0]) <= math.sqrt(math.log(3) / (2 * T))
    assert float(exploitability(P, res.last[-1])[0]) > float(exploitability(P, res.avg[-1])[0])


def test_selfplay_sampled_is_deterministic_and_counts_queries() -> None:
    P = _games(4, 8)

    def run(seed: int) -> torch.Tensor:
        W = SampledWinRates(P, 3, torch.Generator().manual_seed(seed))
        res = selfplay_mwu(P, 50, 0.3, win_rates=W)
        assert res.queries == 50 * 8 * 4 * 3
        return res.avg

    assert torch.equal(run(1), run(1))
    assert not torch.equal(run(1), run(2))


def test_selfplay_rejects_bad_arguments() -> None:
    P = _games(3, 2)
    with pytest.raises(InvalidInputError, match="steps"):
        selfplay_mwu(P, 0, 0.1)
    with pytest.raises(InvalidInputError, match="schedule"):
        selfplay_mwu(P, 5, 0.1, schedule="bogus")
    with pytest.raises(InvalidInputError, match="record_at"):
        selfplay_mwu(P, 5, 0.1, record_at=[9])
    with pytest.raises(InvalidInputError, match="same games"):
        selfplay_mwu(P, 5, 0.1, win_rates=WinRates(_games(3, 3)))


# ---- the sampled self-play gradient ------------------------------------------------------------
def test_win_rate_policy_gradient_expectation() -> None:
    """Enumerating every ordered pair once (π uniform) with expected outcomes P[i, j] gives the
    exact self-play gradient π ⊙ (P − ½)π of P(π ≻ sg π) w.r.t. the logits."""
    n = 4
    P = _games(n, 1, seed=5)[0]
    pi = torch.full((n,), 1.0 / n, dtype=torch.float64)
    i, j = torch.meshgrid(torch.arange(n), torch.arange(n), indexing="ij")
    first, second = i.reshape(-1), j.reshape(-1)
    g = win_rate_policy_gradient(pi, first, second, P[first, second])
    exact = pi * ((P - 0.5) @ pi)
    assert torch.allclose(g, exact, atol=1e-15)


# ---- the bandit learner ------------------------------------------------------------------------
def test_spo_bandit_smoke_determinism_and_progress() -> None:
    cfg = {"batch": 32, "lr": 2.0, "init_logit_scale": 1.0}
    _, a = train(
        "spo_bandit",
        "dueling",
        seed=4,
        steps=3200,
        config=cfg,
        env_kwargs={"game": "dice"},
        every=10,
    )
    _, b = train(
        "spo_bandit",
        "dueling",
        seed=4,
        steps=3200,
        config=cfg,
        env_kwargs={"game": "dice"},
        every=10,
    )
    _, c = train(
        "spo_bandit",
        "dueling",
        seed=5,
        steps=3200,
        config=cfg,
        env_kwargs={"game": "dice"},
        every=10,
    )
    assert a == b and a != c
    assert a[-1]["step"] == 3200 and a[-1]["iteration"] == 100
    assert a[-1]["exploitability_avg"] < 0.6 * a[0]["exploitability_avg"]


def test_spo_bandit_config_fields_unchanged() -> None:
    import dataclasses

    assert {f.name for f in dataclasses.fields(SPOBandit.Config)} == {
        "batch",
        "lr",
        "init_logit_scale",
    }
