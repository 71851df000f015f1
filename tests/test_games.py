"""Tests of prl.games against closed forms, hand-solved games and independent brute force."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy import optimize, special

from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.games import (
    DICE,
    GAME_NAMES,
    biased_rps_matrix,
    bradley_terry_matrix,
    cyclic_dice_matrix,
    duality_gap,
    exploitability,
    fixed_point_residual,
    kl,
    majority_vote_matrix,
    make_game,
    minimax_winner,
    random_preference_matrix,
    rater_mixture_matrix,
    regularized_nash,
    rps_matrix,
    validate_preference_matrix,
    zero_sum_nash,
)

TAUS = (1.0, 0.1, 0.01, 1e-3)


# ---- independent reference computations (never the code under test) ---------------------------
def _fp_residual(P: np.ndarray, pi: np.ndarray, tau: float, mu: np.ndarray) -> np.ndarray:
    """max |π − softmax(log μ + Pπ/τ)| written out directly."""
    logits = np.log(mu) + np.einsum("...ij,...j->...i", P, pi) / tau
    return np.abs(pi - special.softmax(logits, axis=-1)).max(axis=-1)


def _lp_maximin(A: np.ndarray) -> tuple[np.ndarray, float]:
    """max_x min_j (xᵀA)_j with scipy's linprog (variables x, v; minimize −v)."""
    m, k = A.shape
    c = np.zeros(m + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-A.T, np.ones((k, 1))])  # v − (Aᵀx)_j ≤ 0
    A_eq = np.zeros((1, m + 1))
    A_eq[0, :m] = 1.0
    res = optimize.linprog(
        c,
        A_ub=A_ub,
        b_ub=np.zeros(k),
        A_eq=A_eq,
        b_eq=[1.0],
        bounds=[(0, None)] * m + [(None, None)],
        method="highs",
    )
    assert res.status == 0
    return res.x[:m], float(res.x[-1])


def _dice_by_enumeration() -> np.ndarray:
    dice = [(2, 4, 9), (1, 6, 8), (3, 5, 7)]
    P = np.zeros((3, 3))
    for i, j in itertools.product(range(3), range(3)):
        outcomes = list(itertools.product(dice[i], dice[j]))
        P[i, j] = sum(1.0 if a > b else 0.5 if a == b else 0.0 for a, b in outcomes) / 9
    return P


def _simplex_grid(steps: int) -> np.ndarray:
    pts = [(i, j, steps - i - j) for i in range(steps + 1) for j in range(steps + 1 - i)]
    return np.array(pts, dtype=np.float64) / steps


def _kl_direct(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * np.log(p / q), 0.0)
    return terms.sum(axis=-1)


def _brute_gap(P: np.ndarray, pi: np.ndarray, tau: float, mu: np.ndarray) -> float:
    """max_{π1} f(π1, π) − min_{π2} f(π, π2) by a dense simplex grid refined with BFGS (n = 3)."""

    def f(p1: np.ndarray, p2: np.ndarray) -> np.ndarray:
        val = np.einsum("...i,ij,...j->...", p1, P, p2)
        return val - tau * _kl_direct(p1, mu) + tau * _kl_direct(p2, mu)

    grid = _simplex_grid(300)

    def extreme(h, sign: float) -> float:  # max of sign·h over the simplex
        vals = sign * h(grid)
        best = float(vals.max())
        if tau == 0:  # linear: a vertex (on the grid) is optimal
            return sign * best
        x0 = np.log(0.99 * grid[int(vals.argmax())] + 0.01 / 3)  # interior start for BFGS
        res = optimize.minimize(
            lambda th: -sign * h(special.softmax(th)),
            x0,
            method="BFGS",
            options={"gtol": 1e-13, "maxiter": 10_000},
        )
        return sign * max(best, float(-res.fun))

    hi = extreme(lambda p1: f(p1, pi), +1.0)
    lo = extreme(lambda p2: f(pi, p2), -1.0)
    return hi - lo


# ---- validation ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad",
    [
        np.full((2, 3), 0.5),  # not square
        np.full(3, 0.5),  # 1-D
        np.zeros((0, 0)),  # empty
        np.array([[0.5, np.nan], [np.nan, 0.5]]),
        np.array([[0.5, np.inf], [-np.inf, 0.5]]),
        np.array([[0.5, 1.5], [-0.5, 0.5]]),  # P + Pᵀ = 1 but out of range
        np.array([[0.5, 0.7], [0.7, 0.5]]),  # P + Pᵀ ≠ 1
        np.array([[0.4, 0.5], [0.5, 0.6]]),  # diagonal not ½
        [[0.5, "a"], ["b", 0.5]],
    ],
)
def test_invalid_matrices_raise_one_line_errors(bad) -> None:
    with pytest.raises(InvalidInputError) as info:
        validate_preference_matrix(bad)
    assert "\n" not in str(info.value) and str(info.value)


def test_invalid_matrix_inside_a_batch_and_as_tensor() -> None:
    batch = np.stack([rps_matrix(), rps_matrix()])
    batch[1, 0, 1] = 0.9
    with pytest.raises(InvalidInputError, match=r"P \+ Pᵀ"):
        validate_preference_matrix(batch)
    with pytest.raises(InvalidInputError):
        validate_preference_matrix(torch.tensor([[0.5, float("nan")], [0.5, 0.5]]))
    with pytest.raises(InvalidInputError):
        minimax_winner(np.array([[0.5, 0.2], [0.2, 0.5]]))
    with pytest.raises(InvalidInputError):
        exploitability(rps_matrix(), np.ones(4) / 4)  # wrong length of π


def test_validate_returns_float64_and_keeps_backend() -> None:
    P = validate_preference_matrix([[0.5, 1], [0, 0.5]])
    assert isinstance(P, np.ndarray) and P.dtype == np.float64
    Pt = validate_preference_matrix(torch.tensor(rps_matrix(), dtype=torch.float32))
    assert isinstance(Pt, torch.Tensor) and Pt.dtype == torch.float64


# ---- generators ----------------------------------------------------------------------------
def test_dice_matrix_matches_enumeration_and_literature() -> None:
    expected = _dice_by_enumeration()
    P = cyclic_dice_matrix()
    np.testing.assert_allclose(P, expected, atol=1e-15)
    assert DICE == ((2, 4, 9), (1, 6, 8), (3, 5, 7))
    # die 0 beats die 1, die 1 beats die 2, die 2 beats die 0, each with probability 5/9
    for i, j in ((0, 1), (1, 2), (2, 0)):
        assert P[i, j] == pytest.approx(5 / 9, abs=1e-15)
        assert P[j, i] == pytest.approx(4 / 9, abs=1e-15)


def test_fixed_games_closed_forms() -> None:
    rock, paper, scissors = 0, 1, 2
    P = rps_matrix()
    assert P[paper, rock] == 1 and P[scissors, paper] == 1 and P[rock, scissors] == 1
    assert P[rock, paper] == 0 and np.all(np.diag(P) == 0.5)
    A = np.array([[0, -25, 50], [25, 0, -5], [-50, 5, 0]]) / 100
    np.testing.assert_allclose(biased_rps_matrix(), 0.5 + A, atol=0)


def test_bradley_terry_closed_form_and_extremes() -> None:
    s = np.array([0.0, 1.0, -2.0, 40.0])
    P = bradley_terry_matrix(s, beta=0.7)
    expected = 1.0 / (1.0 + np.exp(-0.7 * (s[:, None] - s[None, :])))
    np.testing.assert_allclose(P, expected, rtol=1e-12, atol=1e-15)
    assert P[2, 3] > 0  # tiny probability stays positive (log-space / expit, not 1 − 1)
    Pt = bradley_terry_matrix(torch.tensor(s), beta=0.7)
    np.testing.assert_allclose(Pt.numpy(), P, atol=1e-15)


def test_rater_mixture_and_majority_vote_hand_examples() -> None:
    # Condorcet paradox: rankings a>b>c, b>c>a, c>a>b → majority is cyclic a≻b≻c≻a.
    u = np.array([[3.0, 2.0, 1.0], [1.0, 3.0, 2.0], [2.0, 1.0, 3.0]])
    M = majority_vote_matrix(u)
    np.testing.assert_array_equal(M, [[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]])
    # hard mixture: P[a, b] = fraction of raters preferring a to b (= 2/3 here)
    H = rater_mixture_matrix(u)
    np.testing.assert_allclose(H, [[0.5, 2 / 3, 1 / 3], [1 / 3, 0.5, 2 / 3], [2 / 3, 1 / 3, 0.5]])
    # ties count ½; weights; soft comparisons are a weighted sum of sigmoids
    u2 = np.array([[1.0, 1.0], [0.0, 2.0]])
    np.testing.assert_allclose(rater_mixture_matrix(u2, [0.25, 0.75]), [[0.5, 0.125], [0.875, 0.5]])
    soft = rater_mixture_matrix(u2, [0.25, 0.75], beta=2.0)
    assert soft[0, 1] == pytest.approx(0.25 * 0.5 + 0.75 / (1 + math.exp(4.0)), abs=1e-15)
    # an even split with a tie is ½ in the majority vote
    np.testing.assert_array_equal(majority_vote_matrix(np.array([[0.0, 1.0], [1.0, 0.0]])), 0.5)
    with pytest.raises(InvalidInputError):
        rater_mixture_matrix(u, [0.5, 0.6, 0.1])


@pytest.mark.parametrize("name", GAME_NAMES)
def test_every_generator_is_valid(name: str) -> None:
    rng = np.random.default_rng(3)
    P = make_game(name, n=None if name in ("rps", "biased_rps", "dice") else 7, rng=rng)
    validate_preference_matrix(P, atol=1e-12)
    Pt = make_game(name, n=3, rng=torch.Generator().manual_seed(0))
    validate_preference_matrix(Pt, atol=1e-12)
    assert np.asarray(P).shape[-1] == (3 if name in ("rps", "biased_rps", "dice") else 7)


def test_random_matrix_structure_and_seeding() -> None:
    a = random_preference_matrix(6, np.random.default_rng(11), batch_shape=(4,))
    b = random_preference_matrix(6, np.random.default_rng(11), batch_shape=(4,))
    c = random_preference_matrix(6, np.random.default_rng(12), batch_shape=(4,))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (4, 6, 6)
    assert np.all(np.diagonal(a, axis1=-2, axis2=-1) == 0.5)
    np.testing.assert_allclose(a + np.swapaxes(a, -1, -2), 1.0, atol=1e-15)
    # torch: same seed → identical tensors, dtype and device follow the arguments
    t1 = random_preference_matrix(5, torch.Generator().manual_seed(4), (2,))
    t2 = random_preference_matrix(5, torch.Generator().manual_seed(4), (2,))
    assert torch.equal(t1, t2) and t1.dtype == torch.float64 and t1.shape == (2, 5, 5)
    t3 = random_preference_matrix(5, torch.Generator().manual_seed(4), dtype=torch.float32)
    assert t3.dtype == torch.float32
    validate_preference_matrix(t1)


def test_make_game_errors() -> None:
    with pytest.raises(UnknownNameError, match="rps") as info:
        make_game("rock_paper")
    assert all(n in str(info.value) for n in GAME_NAMES)
    with pytest.raises(ConfigError):
        make_game("rps", colour="red")
    with pytest.raises(InvalidInputError):
        make_game("random", n=4)  # no generator
    with pytest.raises(InvalidInputError):
        make_game("dice", n=5)


# ---- basic quantities ----------------------------------------------------------------------
def test_kl_identities() -> None:
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(5), size=8), rng.dirichlet(np.ones(5), size=8)
    np.testing.assert_allclose(kl(p, p), 0.0, atol=1e-15)
    np.testing.assert_allclose(kl(p, q), _kl_direct(p, q), rtol=1e-12)
    assert np.all(kl(p, q) > 0) and kl(p, q).shape == (8,)
    assert kl([1.0, 0.0], [0.5, 0.5]) == pytest.approx(math.log(2), abs=1e-15)
    assert kl([0.5, 0.5], [1.0, 0.0]) == math.inf
    kt = kl(torch.tensor(p), torch.tensor(q))
    np.testing.assert_allclose(kt.numpy(), _kl_direct(p, q), rtol=1e-12)


def test_exploitability_closed_forms() -> None:
    P = rps_matrix()
    np.testing.assert_allclose(exploitability(P, np.eye(3)), [0.5, 0.5, 0.5], atol=0)
    assert exploitability(P, np.ones(3) / 3) == pytest.approx(0.0, abs=1e-15)
    # any π: best response to π gets max_y (Pπ)_y
    pi = np.array([0.2, 0.5, 0.3])
    assert exploitability(P, pi) == pytest.approx(max(P @ pi) - 0.5, abs=1e-15)
    et = exploitability(torch.tensor(P), torch.eye(3, dtype=torch.float64))
    assert isinstance(et, torch.Tensor) and torch.allclose(
        et, torch.full((3,), 0.5, dtype=torch.float64)
    )


# ---- minimax winner and zero-sum Nash --------------------------------------------------------
def test_minimax_winner_closed_forms() -> None:
    p, v = minimax_winner(rps_matrix())
    np.testing.assert_allclose(p, np.ones(3) / 3, atol=1e-10)
    assert v == pytest.approx(0.0, abs=1e-12)
    p, v = minimax_winner(biased_rps_matrix())
    expected = np.array([1.0, 10.0, 5.0]) / 16
    A = np.array([[0, -25, 50], [25, 0, -5], [-50, 5, 0]])
    assert np.allclose(A @ expected, 0)  # the closed form really is the equalizer
    np.testing.assert_allclose(p, expected, atol=1e-8)
    p, _ = minimax_winner(cyclic_dice_matrix())
    np.testing.assert_allclose(p, np.ones(3) / 3, atol=1e-10)


def test_minimax_winner_random_games_exact() -> None:
    rng = np.random.default_rng(2024)
    for _ in range(50):
        P = random_preference_matrix(10, rng)
        p, v = minimax_winner(P)
        assert p.min() >= 0 and p.sum() == pytest.approx(1.0, abs=1e-12)
        assert max(P @ p) - 0.5 < 1e-9  # exploitability, computed directly
        assert exploitability(P, p) < 1e-9
        assert abs(v) < 1e-9
        q, _ = _lp_maximin(P - 0.5)  # independent LP (random games have a unique winner)
        np.testing.assert_allclose(p, q, atol=1e-6)


def test_minimax_winner_is_condorcet_winner_under_bradley_terry() -> None:
    rng = np.random.default_rng(5)
    for _ in range(5):
        s = rng.standard_normal(8)
        p, _ = minimax_winner(bradley_terry_matrix(s, beta=2.0))
        np.testing.assert_allclose(p, np.eye(8)[np.argmax(s)], atol=1e-9)


def test_zero_sum_nash_hand_solved() -> None:
    # [[3, −1], [−2, 1]]: row (3/7, 4/7), column (2/7, 5/7), value 1/7 (no saddle point)
    x, y, v = zero_sum_nash(np.array([[3.0, -1.0], [-2.0, 1.0]]))
    np.testing.assert_allclose(x, [3 / 7, 4 / 7], atol=1e-10)
    np.testing.assert_allclose(y, [2 / 7, 5 / 7], atol=1e-10)
    assert v == pytest.approx(1 / 7, abs=1e-10)
    # matching pennies: uniform, value 0
    x, y, v = zero_sum_nash(np.array([[1.0, -1.0], [-1.0, 1.0]]))
    np.testing.assert_allclose([*x, *y], 0.5, atol=1e-10)
    assert v == pytest.approx(0.0, abs=1e-10)
    # saddle point at (row 0, column 0), value 2
    x, y, v = zero_sum_nash(np.array([[2.0, 3.0], [1.0, 4.0]]))
    np.testing.assert_allclose(x, [1, 0], atol=1e-10)
    np.testing.assert_allclose(y, [1, 0], atol=1e-10)
    assert v == pytest.approx(2.0, abs=1e-10)


def test_zero_sum_nash_rectangular() -> None:
    # a third column dominated by the first (5 ≥ 3, 4 ≥ −2) reduces to the 2×2 game above
    x, y, v = zero_sum_nash(np.array([[3.0, -1.0, 5.0], [-2.0, 1.0, 4.0]]))
    np.testing.assert_allclose(x, [3 / 7, 4 / 7], atol=1e-10)
    np.testing.assert_allclose(y, [2 / 7, 5 / 7, 0], atol=1e-10)
    assert v == pytest.approx(1 / 7, abs=1e-10)
    rng = np.random.default_rng(9)
    for shape in ((4, 6), (7, 3)):
        A = rng.standard_normal(shape)
        x, y, v = zero_sum_nash(A)
        assert min(x @ A) >= v - 1e-9 and max(A @ y) <= v + 1e-9  # saddle-point certificate
        assert v == pytest.approx(_lp_maximin(A)[1], abs=1e-9)
        assert x.shape == (shape[0],) and y.shape == (shape[1],)
    with pytest.raises(InvalidInputError):
        zero_sum_nash(np.array([[1.0, np.nan]]))


# ---- regularized Nash and the duality gap ----------------------------------------------------
@pytest.mark.parametrize("tau", TAUS)
def test_regularized_nash_residual_batched_single_numpy_torch(tau: float) -> None:
    rng = np.random.default_rng(int(1 / tau))
    P = random_preference_matrix(10, rng, batch_shape=(8,))
    mu = rng.dirichlet(np.ones(10), size=8)
    pi = regularized_nash(P, tau, mu)
    assert pi.shape == (8, 10)
    assert np.all(_fp_residual(P, pi, tau, mu) <= 1e-10)
    assert np.all(fixed_point_residual(P, pi, tau, mu) <= 1e-10)
    single = regularized_nash(P[3], tau, mu[3])
    np.testing.assert_allclose(single, pi[3], atol=1e-10)
    pt = regularized_nash(torch.tensor(P), tau, torch.tensor(mu))
    assert isinstance(pt, torch.Tensor) and pt.dtype == torch.float64
    np.testing.assert_allclose(pt.numpy(), pi, atol=1e-10)
    uniform = regularized_nash(P, tau)
    assert np.all(_fp_residual(P, uniform, tau, np.full(10, 0.1)) <= 1e-10)
    # the gap vanishes at the equilibrium and is positive elsewhere
    assert np.all(np.abs(duality_gap(P, pi, tau, mu)) <= 1e-9)
    other = rng.dirichlet(np.ones(10), size=8)
    assert np.all(duality_gap(P, other, tau, mu) > 0)
    gt = duality_gap(torch.tensor(P), pt, tau, torch.tensor(mu))
    assert torch.all(gt.abs() <= 1e-9)


def test_regularized_nash_limits() -> None:
    # large τ: π ≈ μ; RPS with uniform μ: uniform by symmetry for every τ
    mu = np.array([0.2, 0.3, 0.5])
    np.testing.assert_allclose(regularized_nash(rps_matrix(), 1e4, mu), mu, atol=1e-4)
    np.testing.assert_allclose(regularized_nash(rps_matrix(), 1e-3), np.ones(3) / 3, atol=1e-12)
    # τ → 0: approaches the unique interior minimax winner (1, 10, 5)/16 at rate O(τ)
    target = np.array([1.0, 10.0, 5.0]) / 16
    dists = [
        np.abs(regularized_nash(biased_rps_matrix(), t) - target).max() for t in (1e-2, 1e-3, 1e-4)
    ]
    assert dists[0] > dists[1] > dists[2]
    assert all(d <= 10 * t for d, t in zip(dists, (1e-2, 1e-3, 1e-4)))
    with pytest.raises(InvalidInputError):
        regularized_nash(rps_matrix(), 0.0)


@pytest.mark.parametrize("tau", [0.0, 0.05, 0.5])
def test_duality_gap_matches_brute_force(tau: float) -> None:
    rng = np.random.default_rng(17)
    for _ in range(2):
        P = random_preference_matrix(3, rng)
        mu = rng.dirichlet(np.ones(3) * 2)
        pi = rng.dirichlet(np.ones(3))
        expected = _brute_gap(P, pi, tau, mu)
        assert duality_gap(P, pi, tau, mu) == pytest.approx(expected, abs=1e-8)
    # μ = None is uniform; τ = 0 is twice the exploitability
    assert duality_gap(P, pi, tau) == pytest.approx(
        _brute_gap(P, pi, tau, np.ones(3) / 3), abs=1e-8
    )
    if tau == 0:
        assert duality_gap(P, pi, 0.0) == pytest.approx(2 * (max(P @ pi) - 0.5), abs=1e-15)


def test_duality_gap_is_stable_for_small_tau_and_batched() -> None:
    rng = np.random.default_rng(8)
    P = random_preference_matrix(6, rng, batch_shape=(3, 2))
    pi = rng.dirichlet(np.ones(6), size=(3, 2))
    g = duality_gap(P, pi, 1e-6)  # exp((Pπ)/τ) would overflow without the max shift
    assert g.shape == (3, 2) and np.all(np.isfinite(g))
    twice_expl = 2 * (np.einsum("...ij,...j->...i", P, pi).max(-1) - 0.5)
    np.testing.assert_allclose(g, twice_expl, atol=1e-4)  # τ → 0 limit


def test_lp_solvers_print_nothing(capfd: pytest.CaptureFixture[str]) -> None:
    """The LPs (HiGHS through scipy) write nothing to stdout/stderr, even at fd level."""
    from prl import envs
    from prl.games import minimax_winner, random_preference_matrix, zero_sum_nash

    minimax_winner(random_preference_matrix(8, np.random.default_rng(0)))
    zero_sum_nash(np.random.default_rng(1).normal(size=(4, 6)))
    env = envs.make("mo_tabular")
    mdp = env.mo_mdp
    mdp.max_weighted(np.eye(mdp.K)[0])
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_minimax_winner_matches_a_brute_force_grid_on_three_actions() -> None:
    """Independent answer: the best worst-case value over a fine simplex grid."""
    from prl.games import minimax_winner

    P = np.array([[0.5, 0.9, 0.2], [0.1, 0.5, 0.7], [0.8, 0.3, 0.5]])
    p, value = minimax_winner(P)
    g = np.linspace(0.0, 1.0, 401)
    a, b = np.meshgrid(g, g, indexing="ij")
    keep = a + b <= 1.0
    grid = np.stack([a[keep], b[keep], 1.0 - a[keep] - b[keep]], axis=1)
    worst = (grid @ (P - 0.5)).min(axis=1)
    assert value == pytest.approx(0.0, abs=1e-12)
    assert worst.max() <= value + 1e-12
    np.testing.assert_allclose(p, grid[np.argmax(worst)], atol=5e-3)
