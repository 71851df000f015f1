"""Pluralistic preferences: the rater-population oracle, GPM, VPL, MaxMin-RLHF and their checks.

Expected values come from hand computations, closed forms, a brute-force grid or an exact LP.
"""

from __future__ import annotations

import importlib
import io
import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from scipy.special import expit, logit

from prl import envs
from prl.algos.nash import NashSolver
from prl.algos.pluralistic import (
    GPM,
    VPL,
    BTScores,
    block_operator,
    em_bt_mixture,
    fit_pairs,
    gpm_loss,
    gpm_matrix,
    gpm_scores,
    group_returns,
    maxmin_hedge,
    maxmin_lp,
    maxmin_occupancy_lp,
    mixture_loglik,
    pair_loglik,
    skew_embedding,
    skew_reconstruction,
    suboptimality_utilities,
    vpl_loss,
)
from prl.algos.spo import selfplay_mwu
from prl.checks import get_check
from prl.errors import InvalidInputError, PrlError
from prl.games import cyclic_dice_matrix, exploitability, minimax_winner, rater_mixture_matrix
from prl.oracles import (
    BradleyTerry,
    Mistake,
    RatedPreferences,
    RaterPopulation,
    Scalarized,
    bpref_teacher,
)
from prl.run import train
from prl.smoke import SMOKE
from prl.types import Segments
from prl.utils import torch_threads


@pytest.fixture(autouse=True)
def _one_thread():
    with torch_threads(1):
        yield
    plt.close("all")


def _segments(rng: np.random.Generator, B: int = 8, T: int = 3, F: int = 2) -> Segments:
    return Segments(
        obs=rng.integers(0, 4, (B, T)),
        actions=rng.integers(0, 2, (B, T)),
        rewards=rng.integers(0, 3, (B, T, F)).astype(float),
    )


# ---- the rater-population oracle -----------------------------------------------------------------
def test_rater_population_records_raters_and_mixes_probabilities() -> None:
    rng = np.random.default_rng(0)
    a, b = _segments(rng), _segments(rng)
    W = np.array([[1.0, 0.0], [0.0, 1.0]])
    pop = RaterPopulation.from_weights(W, [0.75, 0.25], teacher="stochastic", beta=1.0)
    # hand: group k's P = σ(Σ_t w_k·r^a_t − Σ_t w_k·r^b_t), population P = ¾ P_0 + ¼ P_1
    ra, rb = a.rewards.sum(1), b.rewards.sum(1)
    want = 0.75 * expit(ra[:, 0] - rb[:, 0]) + 0.25 * expit(ra[:, 1] - rb[:, 1])
    np.testing.assert_allclose(pop.prob(a, b), want, rtol=0, atol=1e-15)
    np.testing.assert_allclose(pop.group_probs(a, b)[1], expit(ra[:, 1] - rb[:, 1]))

    exact = RaterPopulation.from_weights(W, [0.5, 0.5], teacher="oracle")
    prefs = exact.label(a, b, np.random.default_rng(3))
    assert isinstance(prefs, RatedPreferences) and prefs.n_raters == 2
    for i, k in enumerate(prefs.rater):  # each label is its own rater's deterministic preference
        d = ra[i, k] - rb[i, k]
        assert prefs.label[i] == (1.0 if d > 0 else 0.0) if d != 0 else prefs.label[i] in (0, 1)
    again = exact.label(a, b, np.random.default_rng(3))
    np.testing.assert_array_equal(again.rater, prefs.rater)
    np.testing.assert_array_equal(again.label, prefs.label)
    sub = prefs.subset(np.array([1, 3]))
    np.testing.assert_array_equal(sub.rater, prefs.rater[[1, 3]])
    np.testing.assert_array_equal(prefs.flipped().label, 1.0 - prefs.label)
    assert set(prefs.of_rater(1).rater.tolist()) <= {1}


def test_rater_population_composes_with_bpref_teachers() -> None:
    rng = np.random.default_rng(1)
    a, b = _segments(rng, B=400), _segments(rng, B=400)
    mistaken = Scalarized(Mistake(BradleyTerry(np.inf), eps=1.0 / 3.0), [1.0, 0.0])
    pop = RaterPopulation([mistaken, Scalarized(bpref_teacher("oracle"), [0.0, 1.0])], [0.5, 0.5])
    ra, rb = a.rewards.sum(1), b.rewards.sum(1)
    d0 = ra[:, 0] - rb[:, 0]
    p0 = np.where(d0 > 0, 2 / 3, np.where(d0 < 0, 1 / 3, 0.5))  # (1 − ε)p + ε(1 − p)
    np.testing.assert_allclose(pop.group_probs(a, b)[0], p0, atol=1e-15)
    prefs = pop.label(a, b, np.random.default_rng(2), raters=np.zeros(400, dtype=int))
    decided = d0 != 0
    flips = np.mean(prefs.label[decided] != (d0[decided] > 0))
    assert 0.25 < flips < 0.42  # about ε = 1/3 of the decided pairs flipped


def test_bad_population_input_is_a_clear_error() -> None:
    with pytest.raises(InvalidInputError, match="sum to 1"):
        RaterPopulation.from_weights([[1.0, 0.0], [0.0, 1.0]], [0.6, 0.3])
    with pytest.raises(InvalidInputError, match="K = 0"):
        RaterPopulation([])
    with pytest.raises(InvalidInputError, match="K >= 1"):
        RaterPopulation.from_weights(np.zeros((0, 2)))
    with pytest.raises(InvalidInputError, match="one entry per group"):
        RaterPopulation([BradleyTerry(), BradleyTerry()], [1.0])
    rng = np.random.default_rng(0)
    a, b = _segments(rng, B=4), _segments(rng, B=4)
    with pytest.raises(InvalidInputError, match="rater ids must have shape"):
        RatedPreferences(a, b, np.ones(4), None, np.array([0, 1]))
    with pytest.raises(InvalidInputError, match="rater ids must lie"):
        RatedPreferences(a, b, np.ones(4), None, np.array([0, 1, 2, 0]), n_raters=2)
    pop = RaterPopulation.from_weights([[1.0, 0.0], [0.0, 1.0]])
    with pytest.raises(InvalidInputError, match="rater ids must have shape"):
        pop.label(a, b, rng, raters=[0, 1, 1])
    with pytest.raises(InvalidInputError, match="K must be a positive"):
        em_bt_mixture(np.zeros((2, 1)), np.zeros((2, 1)), [1.0, 0.0], [0, 1], 0, rng)
    with pytest.raises(InvalidInputError, match="user ids"):
        em_bt_mixture(np.zeros((2, 1)), np.zeros((2, 1)), [1.0, 0.0], [0], 2, rng)
    with pytest.raises(InvalidInputError, match="K >= 1"):
        maxmin_lp(np.zeros((0, 3)))


@pytest.mark.parametrize(
    ("flag", "message"),
    [("--proportions=[0.5,0.2]", "sum to 1"), ("--groups=0", "groups must be >= 1")],
)
def test_cli_bad_input_exits_2(flag: str, message: str, tmp_path, capsys) -> None:
    from prl.cli import main

    out = tmp_path / "runs"
    rc = main(["run", "maxmin_rlhf", "--env", "two_goals", flag, "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


# ---- GPM -----------------------------------------------------------------------------------------
def test_gpm_loss_by_hand() -> None:
    R = block_operator(2)
    assert torch.equal(R[:2, :2], torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=torch.float64))
    va = torch.tensor([[1.0, 0.0, 0.0, 2.0], [0.5, 0.5, 1.0, 0.0]], dtype=torch.float64)
    vb = torch.tensor([[0.0, 1.0, 1.0, 1.0], [1.0, 0.0, 0.0, 1.0]], dtype=torch.float64)
    # ⟨R v_a, v_b⟩ per block = a1 b2 − a2 b1:
    # (1·1 − 0·0) + (0·1 − 2·1) = −1 and (0.5·0 − 0.5·1) + (1·1 − 0·0) = ½
    s = gpm_scores(va, vb)
    torch.testing.assert_close(s, torch.tensor([-1.0, 0.5], dtype=torch.float64))
    torch.testing.assert_close(s, torch.einsum("bi,ij,bj->b", vb, R, va))  # = v_bᵀ R v_a
    y = torch.tensor([1.0, 0.25], dtype=torch.float64)
    tau = 0.5
    hand = (
        -math.log(expit(-2.0)) - (0.25 * math.log(expit(1.0)) + 0.75 * math.log(expit(-1.0)))
    ) / 2
    assert abs(float(gpm_loss(s, y, tau)) - hand) < 1e-14


def test_gpm_represents_a_known_rank2_game_exactly() -> None:
    # three items on a circle of radius ρ at 0°, 120°, 240°: S_ij = ρ² sin(θ_j − θ_i), a 3-cycle
    rho = 1.3
    theta = np.deg2rad([0.0, 120.0, 240.0])
    S = rho**2 * np.sin(theta[None, :] - theta[:, None])
    V, mags = skew_embedding(S, 1)
    assert mags.shape == (1,) and abs(mags[0] - rho**2 * 1.5) < 1e-12  # |t| = ρ²·3/2
    np.testing.assert_allclose(skew_reconstruction(V), S, atol=1e-14)
    P = gpm_matrix(V)
    want = expit(rho**2 * math.sin(2 * math.pi / 3))
    assert (
        abs(P[0, 1] - want) < 1e-14 and abs(P[1, 2] - want) < 1e-14 and abs(P[2, 0] - want) < 1e-14
    )
    # one block holds any 3×3 game, e.g. the dice, exactly
    D = cyclic_dice_matrix()
    V, _ = skew_embedding(logit(D), 1)
    np.testing.assert_allclose(gpm_matrix(V), D, atol=1e-14)
    with pytest.raises(InvalidInputError, match="skew-symmetric"):
        skew_embedding(np.ones((3, 3)), 1)


def _population(P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    n = P.shape[0]
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    return i, j, P[i, j]


def test_learned_gpm_recovers_cyclic_games_bt_cannot_and_plugs_into_nash() -> None:
    dice = cyclic_dice_matrix()
    gen = torch.Generator().manual_seed(0)
    gpm = GPM(3, k=1, generator=gen)
    fit_pairs(gpm, *_population(dice), steps=400, lr=0.1)
    bt = BTScores(3)
    fit_pairs(bt, *_population(dice), steps=200, lr=0.1)
    assert np.abs(gpm.matrix() - dice).max() < 1e-3
    assert np.abs(bt.matrix() - dice).max() > 0.05  # BT: all ½ on the symmetric cycle (5/9 − ½)
    # held-out log-likelihood on sampled duels: GPM above BT
    rng = np.random.default_rng(1)
    i = rng.integers(0, 3, 4000)
    j = (i + rng.integers(1, 3, 4000)) % 3
    y = (rng.random(4000) < dice[i, j]).astype(float)
    assert pair_loglik(gpm, i, j, y) > pair_loglik(bt, i, j, y) + 0.003
    # the learned game drives the Nash and self-play learners to the true minimax winner
    P_hat = gpm.matrix()
    solver = NashSolver("nash_mp", P_hat, tau=1e-3, eta=0.5)
    solver.run(400)
    assert float(exploitability(dice, solver.policy[0].numpy())) < 2e-3
    sp = selfplay_mwu(P_hat, 2000, 0.5)
    assert float(exploitability(dice, sp.avg[-1, 0].numpy())) < 0.01
    # a 5-outcome rater mixture (rank 4): two blocks recover it
    mix = np.asarray(rater_mixture_matrix(np.random.default_rng(2).standard_normal((3, 5)), beta=2))
    gpm2 = GPM(5, k=2, generator=torch.Generator().manual_seed(1))
    fit_pairs(gpm2, *_population(mix), steps=1000, lr=0.1)
    assert np.abs(gpm2.matrix() - mix).max() < 5e-3
    winner, _ = minimax_winner(mix)
    assert float(exploitability(mix, maxmin_lp((gpm2.matrix() - 0.5).T)[0])) < 0.01
    assert float(exploitability(mix, winner)) < 1e-9


# ---- VPL -----------------------------------------------------------------------------------------
def test_vpl_loss_by_hand() -> None:
    ra = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    rb = torch.tensor([[0.0, 2.0]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    mu = torch.tensor([[0.5, -1.0]], dtype=torch.float64)
    logvar = torch.tensor([[0.0, math.log(0.25)]], dtype=torch.float64)
    loss, bce, kl = vpl_loss(ra, rb, y, mu, logvar, beta=0.1)
    hand_bce = (-math.log(expit(1.0)) - math.log(expit(2.0))) / 2
    hand_kl = 0.5 * ((0.25 + 1 - 1 - 0) + (1 + 0.25 - 1 - math.log(0.25)))
    assert abs(float(bce) - hand_bce) < 1e-14 and abs(float(kl) - hand_kl) < 1e-14
    assert abs(float(loss) - (hand_bce + 0.1 * hand_kl)) < 1e-14


def test_vpl_one_hot_returns_equal_the_summed_rewards() -> None:
    torch.manual_seed(0)
    model = VPL(5, latent_dim=2, hidden=8, one_hot=True)
    x = torch.eye(5)[torch.randint(0, 5, (3, 4, 6))]  # [U, m, T, D] one-hot steps
    z = torch.randn(3, 2)
    direct = model.reward(x, z[:, None, None, :]).sum(-1)
    torch.testing.assert_close(model.returns(x, z), direct, rtol=1e-5, atol=1e-5)


# ---- MaxMin-RLHF ---------------------------------------------------------------------------------
def test_maxmin_lp_matches_brute_force_grid_on_two_arms() -> None:
    rng = np.random.default_rng(0)
    grid = np.linspace(0.0, 1.0, 200_001)
    for t in range(20):
        U = rng.standard_normal((int(rng.integers(2, 5)), 2))
        vals = (np.outer(grid, U[:, 0]) + np.outer(1 - grid, U[:, 1])).min(1)
        p, v = maxmin_lp(U)
        assert abs(v - vals.max()) < 1e-9 + 2e-5 * np.abs(U).max()
        assert abs(float((U @ p).min()) - v) < 1e-12 and abs(p.sum() - 1) < 1e-12
        if t < 3:  # the no-regret solver reaches the LP value too
            _, v_h = maxmin_hedge(U, steps=20_000)
            assert v - v_h < 0.01 * (U.max() - U.min())


def test_maxmin_on_the_three_arm_sanity_bandit() -> None:
    U = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.6]])  # the compromise arm serves both at 0.6
    p, v = maxmin_lp(suboptimality_utilities(U))
    np.testing.assert_allclose(p, [0, 0, 1], atol=1e-12)
    assert abs(v + 0.4) < 1e-12


def test_maxmin_occupancy_lp_on_two_goals_is_exact() -> None:
    env = envs.make("two_goals").unwrapped
    R = np.stack([env.rewards_for(w) for w in env.group_weights])
    pi, vals = maxmin_occupancy_lp(env.mdp.P, R, env.mdp.gamma, env.mdp.mu0)
    g = 0.9
    best, comp = g**6 / (1 - g), 0.6 * g**4 / (1 - g)  # closed forms: a side goal, the compromise
    np.testing.assert_allclose(group_returns(env, pi), [comp, comp], atol=1e-9)
    np.testing.assert_allclose(vals, [comp - best, comp - best], atol=1e-9)
    for w in env.group_weights:
        assert abs(env.mdp_for(w).expected_return(env.mdp_for(w).optimal_policy()) - best) < 1e-9


def test_mixture_loglik_by_hand_and_em_recovers_groups() -> None:
    xa = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    xb = np.zeros((3, 2))
    y = np.array([1.0, 0.0, 1.0])
    user = np.array([0, 0, 1])
    W = np.array([[1.0, -1.0], [-1.0, 1.0]])
    ll, post = mixture_loglik(xa, xb, y, user, W, [0.25, 0.75])
    # user 0: p_0 = σ(1)σ(1), p_1 = σ(−1)σ(−1); user 1: h = 0 under both → ½
    u0 = 0.25 * expit(1) ** 2 + 0.75 * expit(-1) ** 2
    assert abs(ll - (math.log(u0) + math.log(0.5))) < 1e-13
    assert abs(post[0, 0] - 0.25 * expit(1) ** 2 / u0) < 1e-13
    # EM on users of two opposite groups: the responsibilities recover the groups
    rng = np.random.default_rng(5)
    n_users, m, d = 60, 10, 4
    w_true = np.array([[2.0, 1.0, -1.0, -2.0], [-2.0, -1.0, 1.0, 2.0]])
    groups = rng.integers(0, 2, n_users)
    xa, xb = rng.standard_normal((n_users * m, d)), rng.standard_normal((n_users * m, d))
    user = np.repeat(np.arange(n_users), m)
    y = (rng.random(n_users * m) < expit(((xa - xb) * w_true[groups[user]]).sum(1))).astype(float)
    fit = em_bt_mixture(xa, xb, y, user, 2, rng, iters=15)
    assign = fit.resp.argmax(1)
    assert max(np.mean(assign == groups), np.mean(assign != groups)) >= 0.95


# ---- learners: smoke, determinism, control comparison --------------------------------------------
@pytest.mark.parametrize("algo", ["gpm", "maxmin_rlhf", "vpl"])
def test_learners_smoke_and_determinism(algo: str) -> None:
    s = SMOKE[algo]

    def rows(seed: int) -> list[dict]:
        _, r = train(
            algo,
            s.env,
            seed=seed,
            steps=s.steps,
            config=s.config,
            env_kwargs=s.env_kwargs,
            device="cpu",
        )
        return r

    a, b = rows(3), rows(3)
    assert a == b and a[-1]["step"] >= s.steps
    assert all(math.isfinite(float(v)) for v in a[-1].values())
    assert rows(4) != a


def test_maxmin_rlhf_serves_the_minority_on_two_goals() -> None:
    _, rows = train("maxmin_rlhf", "two_goals", seed=0, steps=10, device="cpu")
    last = rows[-1]
    assert last["bt_return_g1"] < 0.1 * last["optimal_return_g1"]  # single BT: majority goal
    assert last["bt_return_g0"] == pytest.approx(last["optimal_return_g0"])
    assert last["maxmin_return_g1"] > 0.6 * last["optimal_return_g1"]  # minority served
    assert last["purity"] >= 0.9


def test_unsuitable_env_is_rejected() -> None:
    with pytest.raises(PrlError, match="two_goals"):
        train("vpl", "dueling", seed=0, steps=1, device="cpu")


# ---- theory checks and their negative controls ---------------------------------------------------
CHECK_NAMES = ["maxmin_single_reward_gap", "gpm_rank_representation", "vpl_identifies_users"]


@pytest.mark.parametrize("name", CHECK_NAMES)
def test_check_passes_redraws_from_csv_and_control_fails(name: str) -> None:
    mod = importlib.import_module("prl.theory.pluralistic")
    experiment, verdict, draw, variants = mod.CHECKS[name]
    res = get_check(name).run(quick=True, device="cpu", seed=0)
    assert res.passed, f"{name}: {res.summary()} — {res.detail}"
    buf = io.StringIO()
    pd.DataFrame(res.table).to_csv(buf, index=False)
    buf.seek(0)
    assert draw(pd.read_csv(buf)) is not None
    for v in variants:
        bad = verdict(experiment(True, "cpu", 0, variant=v))
        assert not bad.passed, f"{name} with {v!r} should fail: {bad.detail}"
    with pytest.raises(InvalidInputError, match="variant"):
        experiment(True, "cpu", 0, variant="nope")
