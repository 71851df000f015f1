"""algos.dpo: margin losses, the batched Newton solver, RLHF / DPO / IPO against closed forms,
their failure on intransitive games, the `prl run` baselines, and rDPO / counts / HyPO / XPO /
online DPO / iterative DPO + APO against closed forms and brute force."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from prl.algos.dpo import (
    LOSSES,
    BTRunConfig,
    PairData,
    bandit_pair_counts,
    bt_loss,
    dpo_loss,
    dpo_policy,
    fit_bt_reward,
    hypo_policy,
    ipo_loss,
    ipo_policy,
    iterative_dpo,
    log_linear_policy,
    newton_fit,
    newton_minimize,
    population_pairs,
    rdpo_loss,
    rdpo_policy,
    register_loss,
    rlhf_policy,
    sample_pair_counts,
    sample_pairs,
    two_arm_online,
    xpo_policy,
)
from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.games import (
    bradley_terry_matrix,
    cyclic_dice_matrix,
    duality_gap,
    exploitability,
    random_preference_matrix,
    regularized_nash,
)
from prl.registry import ALGOS
from prl.run import train
from prl.utils import torch_threads


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batched tensors: one torch thread avoids oversubscribing the test workers' cores."""
    with torch_threads(1):
        yield


def _t(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


# ---- losses ------------------------------------------------------------------------------------
def test_losses_closed_forms() -> None:
    h = _t([-2.0, 0.0, 1.5])
    lab = _t([1.0, 0.5, 0.0])
    sig = 1 / (1 + np.exp(-0.7 * h.numpy()))
    want = -(lab.numpy() * np.log(sig) + (1 - lab.numpy()) * np.log(1 - sig))
    assert np.allclose(bt_loss(h, lab, 0.7).numpy(), want, atol=1e-15)
    assert torch.equal(dpo_loss(h, lab, 0.7), bt_loss(h, lab, 0.7))
    assert math.isclose(float(bt_loss(_t(0.0), _t(1.0))), math.log(2), rel_tol=1e-15)
    c = 0.5 / 0.25
    assert np.allclose(
        ipo_loss(h, lab, 0.25).numpy(),
        lab.numpy() * (h.numpy() - c) ** 2 + (1 - lab.numpy()) * (h.numpy() + c) ** 2,
    )
    # IPO's minimiser in h is (ℓ − ½)/β (Azar et al.)
    hs = torch.linspace(-5, 5, 100001, dtype=torch.float64)
    best = hs[ipo_loss(hs, _t(0.8), 0.25).argmin()]
    assert abs(float(best) - (0.8 - 0.5) / 0.25) < 1e-3
    # BT labels of large margins stay finite (log space)
    assert torch.isfinite(bt_loss(_t([800.0, -800.0]), _t([0.0, 1.0]))).all()


def test_register_loss() -> None:
    name = "test_hinge_sq"
    if name not in LOSSES:
        register_loss(name, lambda h, lab, beta: (torch.relu(1 - (2 * lab - 1) * beta * h)) ** 2)
    with pytest.raises(InvalidInputError, match="already"):
        register_loss(name, bt_loss)
    with pytest.raises(UnknownNameError, match="known"):
        newton_fit(population_pairs(cyclic_dice_matrix()), "nope")


# ---- data --------------------------------------------------------------------------------------
def test_population_pairs_weights_and_labels() -> None:
    P = cyclic_dice_matrix()
    rho = np.array([0.5, 0.3, 0.2])
    d = population_pairs(P, rho)
    assert d.first.shape == (1, 6)
    assert math.isclose(float(d.weight.sum()), 1 - float((rho**2).sum()), rel_tol=1e-14)
    for i, j, lab, w in zip(d.first[0], d.second[0], d.label[0], d.weight[0], strict=True):
        assert float(lab) == P[i, j] and math.isclose(float(w), rho[i] * rho[j])


def test_sample_pairs_is_deterministic_and_unbiased() -> None:
    P = random_preference_matrix(4, np.random.default_rng(0))
    d1 = sample_pairs(P, None, 20000, torch.Generator().manual_seed(1))
    d2 = sample_pairs(P, None, 20000, torch.Generator().manual_seed(1))
    assert torch.equal(d1.label, d2.label) and torch.equal(d1.first, d2.first)
    p = torch.as_tensor(P)[d1.first[0], d1.second[0]]
    # mean label vs mean preference: 5 standard errors
    assert abs(float(d1.label.mean() - p.mean())) < 5 * 0.5 / math.sqrt(20000)
    assert set(np.unique(d1.label.numpy())) <= {0.0, 1.0}


def test_pair_data_validation() -> None:
    z = torch.zeros(1, 3, dtype=torch.long)
    ok = torch.zeros(1, 3, dtype=torch.float64)
    with pytest.raises(InvalidInputError, match="labels"):
        PairData(z, z, ok + 2.0, ok)
    with pytest.raises(InvalidInputError, match="weights"):
        PairData(z, z, ok, ok - 1.0)
    with pytest.raises(InvalidInputError, match="shape"):
        PairData(z, z[:, :2], ok, ok)


# ---- solvers against closed forms ----------------------------------------------------------------
def test_bt_fit_recovers_scores_and_rlhf_closed_form() -> None:
    """On a BT game the fitted reward is the score up to a constant, and RLHF returns
    π ∝ μ exp(s/β); DPO coincides with RLHF on population data."""
    rng = np.random.default_rng(3)
    s = rng.normal(size=(4, 6))
    P = bradley_terry_matrix(s)
    mu = softmax(rng.normal(size=(4, 6)), axis=-1)
    rho = softmax(rng.normal(size=(4, 6)), axis=-1)
    d = population_pairs(P, rho)
    w = fit_bt_reward(d).numpy()
    assert np.abs((w - w.mean(-1, keepdims=True)) - (s - s.mean(-1, keepdims=True))).max() < 1e-8
    beta = 0.3
    want = softmax(np.log(mu) + s / beta, axis=-1)
    assert np.abs(rlhf_policy(d, beta, mu).numpy() - want).max() < 1e-8
    assert np.abs(dpo_policy(d, beta, mu).numpy() - want).max() < 1e-8


def test_ipo_population_is_best_response_to_the_data() -> None:
    """IPO's optimum π ∝ μ exp(P(y ≻ ρ)/β) for any preference matrix (Azar et al.)."""
    rng = np.random.default_rng(4)
    P = random_preference_matrix(5, rng, (3,))
    mu = softmax(rng.normal(size=(3, 5)), axis=-1)
    rho = softmax(rng.normal(size=(3, 5)), axis=-1)
    beta = 0.2
    want = softmax(np.log(mu) + np.einsum("gij,gj->gi", P, rho) / beta, axis=-1)
    assert np.abs(ipo_policy(population_pairs(P, rho), beta, mu).numpy() - want).max() < 1e-10


def test_log_linear_features() -> None:
    """BT scores s = φθ: the feature-space fit recovers θ (φ of full column rank)."""
    rng = np.random.default_rng(5)
    phi = rng.normal(size=(7, 3))
    theta = np.array([1.0, -0.5, 0.25])
    P = bradley_terry_matrix(phi @ theta)
    w = fit_bt_reward(population_pairs(P), features=phi).numpy()[0]
    assert np.abs(w - theta).max() < 1e-8
    pi = log_linear_policy(torch.as_tensor(w)[None], phi, None, scale=2.0).numpy()[0]
    assert np.allclose(pi, softmax(2.0 * phi @ theta), atol=1e-8)


def test_sampled_dpo_approaches_the_population_solution() -> None:
    P = random_preference_matrix(4, np.random.default_rng(6))
    pop = dpo_policy(population_pairs(P), 1.0)
    d = sample_pairs(P, None, 40000, torch.Generator().manual_seed(0))
    est = dpo_policy(d, 1.0, n=4)
    assert float((est - pop).abs().max()) < 0.03


def test_bt_methods_stay_exploitable_on_the_cyclic_dice() -> None:
    """Cyclic dice with a non-uniform reference: RLHF/DPO/IPO are exploitable; π*_τ is not."""
    P = cyclic_dice_matrix()
    mu = np.array([0.6, 0.3, 0.1])
    tau = 0.01
    d = population_pairs(P, mu)
    star = regularized_nash(P, tau, mu)
    for pol in (rlhf_policy(d, tau, mu), dpo_policy(d, tau, mu), ipo_policy(d, tau, mu)):
        assert float(exploitability(P, pol)[0]) > 0.02
        assert float(duality_gap(P, pol, tau, mu)[0]) > 0.03
        assert float(exploitability(P, pol)[0]) > 2 * float(exploitability(P, star))
    assert abs(float(duality_gap(P, star, tau, mu))) < 1e-12


def test_newton_stops_on_separable_data_with_a_warning() -> None:
    P = np.array([[0.5, 1.0], [0.0, 0.5]])  # a deterministic preference: separable
    with pytest.warns(RuntimeWarning, match="l2"):
        w = newton_fit(population_pairs(P), "dpo", 0.5, max_iter=20)
    assert torch.isfinite(w).all() and float(w[0, 0] - w[0, 1]) > 10
    w2 = newton_fit(population_pairs(P), "dpo", 0.5, l2=1e-2)  # ridge: finite optimum
    assert torch.isfinite(w2).all()


def test_bad_beta() -> None:
    d = population_pairs(cyclic_dice_matrix())
    for bad in (0.0, -1.0, float("inf"), "x"):
        with pytest.raises(InvalidInputError, match="beta"):
            rlhf_policy(d, bad)


# ---- learners ------------------------------------------------------------------------------------
ENV_KW = {"game": "dice"}


@pytest.mark.parametrize("algo", ["rlhf_bt", "dpo", "ipo"])
def test_bt_learners_smoke_determinism_and_failure(algo) -> None:
    cfg = {"batch": 200, "ref_logit_scale": 1.0, "beta": 0.05}
    _, a = train(algo, "dueling", seed=1, steps=1000, config=cfg, env_kwargs=ENV_KW)
    _, b = train(algo, "dueling", seed=1, steps=1000, config=cfg, env_kwargs=ENV_KW)
    _, c = train(algo, "dueling", seed=2, steps=1000, config=cfg, env_kwargs=ENV_KW)
    assert a == b and a != c and [r["step"] for r in a] == list(range(200, 1001, 200))
    assert a[-1]["exploitability"] > 0.01 and a[-1]["tv_to_equilibrium"] > 0.1


def test_bt_learner_resume() -> None:
    from prl.config import build_config

    cls = ALGOS.get("dpo")
    cfg = build_config(cls.Config, {"batch": 50, "ref_logit_scale": 1.0})

    def make():
        return cls(cfg, "dueling", dict(ENV_KW), 3, torch.device("cpu"))

    full = make()
    rows = [full.step() for _ in range(6)]
    part = make()
    part.step(), part.step()
    buf = io.BytesIO()
    torch.save(part.state_dict(), buf)
    buf.seek(0)
    res = make()
    res.load_state_dict(torch.load(buf, weights_only=True))
    assert [res.step() for _ in range(4)] == rows[2:]


def test_bt_learner_config_errors() -> None:
    with pytest.raises(ConfigError, match="beta"):
        train("dpo", "dueling", steps=2, config={"beta": 0.0})
    with pytest.raises(ConfigError, match="dueling"):
        train("ipo", "chain", steps=2)


# ---- rDPO, counts, HyPO, XPO / online DPO, iterative DPO / APO ----------------------------------


def test_rdpo_loss_is_unbiased_under_flips() -> None:
    """E over a flip (prob ε) of the rDPO loss of the observed label = the clean DPO loss."""
    h = _t([-2.0, -0.3, 0.0, 1.7])
    for y in (0.0, 1.0):
        lab = torch.full_like(h, y)
        for eps in (0.0, 0.1, 0.3, 0.45):
            mix = (1 - eps) * rdpo_loss(h, lab, 0.8, eps) + eps * rdpo_loss(h, 1 - lab, 0.8, eps)
            assert torch.allclose(mix, dpo_loss(h, lab, 0.8), atol=1e-12)
    assert torch.equal(rdpo_loss(h, _t([1.0] * 4), 0.8, 0.0), dpo_loss(h, _t([1.0] * 4), 0.8))
    for bad in (-0.1, 0.5, float("nan")):
        with pytest.raises(InvalidInputError, match="flip rate"):
            rdpo_loss(h, h, 1.0, bad)


def test_rdpo_population_fit_recovers_the_clean_parameter() -> None:
    """On noisy population labels ε + (1−2ε)σ(Δ), rDPO returns the clean θ*; DPO does not."""
    rng = np.random.default_rng(7)
    phi = rng.normal(size=(6, 3))
    theta = np.array([0.4, -0.3, 0.2])
    P = bradley_terry_matrix(phi @ theta)
    eps = 0.2
    noisy = eps + (1 - 2 * eps) * P
    d = population_pairs(noisy)
    pi = rdpo_policy(d, 1.0, eps, features=phi).numpy()[0]
    assert np.allclose(pi, softmax(phi @ theta), atol=1e-8)
    w_dpo = newton_fit(d, "dpo", 1.0, features=phi).numpy()[0]
    assert np.abs(w_dpo - theta).max() > 0.05


def test_sample_pair_counts_is_exact_in_distribution() -> None:
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    pp = _t([0.5, 0.3, 0.2]).expand(2000, 3)
    lp = _t([0.9, 0.5, 0.1])
    a = sample_pair_counts([0, 0, 1], [1, 2, 2], pp, lp, 400, g1)
    b = sample_pair_counts([0, 0, 1], [1, 2, 2], pp, lp, 400, g2)
    assert torch.equal(a.label, b.label) and torch.equal(a.weight, b.weight)
    assert torch.allclose(a.weight.sum(-1), torch.ones(2000, dtype=torch.float64))
    counts = a.weight * 400
    assert torch.allclose(counts, counts.round(), atol=1e-9)
    # multinomial means and binomial win rates within 5 standard errors
    assert (counts.mean(0) - 400 * pp[0]).abs().max() < 5 * math.sqrt(400 * 0.25 / 2000)
    wins = (a.label * counts).sum(0) / counts.sum(0)
    assert (wins - lp).abs().max() < 5 * math.sqrt(0.25 / (2000 * 400 * 0.2))
    with pytest.raises(InvalidInputError, match="sum to 1"):
        sample_pair_counts([0], [1], _t([0.5]), _t([0.5]), 10, g1)
    with pytest.raises(InvalidInputError, match="n_pairs"):
        sample_pair_counts([0], [1], _t([1.0]), _t([0.5]), 0, g1)


def test_bandit_pair_counts_flip_rate() -> None:
    P = bradley_terry_matrix(np.array([2.0, 0.0]))
    d = bandit_pair_counts(P, None, 200000, torch.Generator().manual_seed(0), flip_rate=0.25)
    want = 0.25 + 0.5 * P[0, 1]
    assert abs(float(d.label[0, 0]) - want) < 5 * math.sqrt(0.25 / 200000)


def test_newton_minimize_quadratic_and_indefinite_start() -> None:
    A = _t([[3.0, 1.0], [1.0, 2.0]])
    b = _t([1.0, -1.0])

    def f(w):
        return 0.5 * torch.einsum("gi,ij,gj->g", w, A, w) - w @ b

    w = newton_minimize(f, torch.zeros(1, 2, dtype=torch.float64))
    assert torch.allclose(w[0], torch.linalg.solve(A, b), atol=1e-12)

    def g(w):  # double well (w² − 1)²: from 0.1 (negative curvature) it must reach ±1
        return ((w**2 - 1) ** 2).sum(-1)

    w = newton_minimize(g, _t([[0.1]]))
    assert abs(abs(float(w)) - 1.0) < 1e-8


def test_hypo_stationary_and_shrinks_towards_the_reference() -> None:
    """HyPO's minimiser zeroes the gradient of DPO + λ KL; λ = 0 is DPO; KL falls with λ."""
    P = bradley_terry_matrix(np.array([1.0, 0.0, 0.5]))
    d = population_pairs(P)
    mu = _t([0.2, 0.5, 0.3])
    kls = []
    for lam in (0.0, 0.3, 3.0):
        pi = hypo_policy(d, 0.5, lam, mu)
        kls.append(float((pi * torch.log(pi / mu)).sum()))
        w = (torch.log(pi) - torch.log(mu))[0].clone().requires_grad_(True)
        lp = torch.log_softmax(torch.log(mu) + w, -1)
        h = w[d.first[0]] - w[d.second[0]]
        obj = (d.weight[0] * dpo_loss(h, d.label[0], 0.5)).sum()
        obj = obj + lam * (lp.exp() * (lp - torch.log(mu))).sum()
        (grad,) = torch.autograd.grad(obj, w)
        assert float(grad.abs().max()) < 1e-9
    assert torch.allclose(hypo_policy(d, 0.5, 0.0, mu), dpo_policy(d, 0.5, mu), atol=1e-10)
    assert kls[0] > kls[1] > kls[2]
    with pytest.raises(InvalidInputError, match="lam"):
        hypo_policy(d, 0.5, -1.0, mu)


def _two_arm(first: int, label: float, weight: float) -> PairData:
    return PairData(
        torch.tensor([[first]]), torch.tensor([[1 - first]]), _t([[label]]), _t([[weight]])
    )


def test_xpo_policy_against_brute_force() -> None:
    """The exact argmin over the bounded class, checked on a 200 001-point grid of margins."""
    mu = _t([0.05, 0.95])
    beta, bound = 0.5, 3.0
    cases = [(0.0, (0.0, 0.0), 0.7, 5.0), (0.4, (1.0, 6.0), 0.6, 3.0), (2.0, (0.0, 9.0), 0.2, 2.0)]
    for alpha, refc, lab, wt in cases:
        pi = xpo_policy(_two_arm(0, lab, wt), _t([refc]), alpha, beta, mu, bound)[0]
        hs = torch.linspace(-30, 30, 200001, dtype=torch.float64)
        a = math.log(0.05 / 0.95)
        p0 = torch.sigmoid(hs + a)
        inside = ((torch.log(p0 / 0.05)).abs() <= bound) & (
            (torch.log((1 - p0) / 0.95)).abs() <= bound
        )
        obj = alpha * (refc[0] * torch.log(p0) + refc[1] * torch.log1p(-p0))
        obj = obj + wt * dpo_loss(hs, _t(lab), beta)
        obj = torch.where(inside, obj, torch.full_like(obj, math.inf))
        best = p0[obj.argmin()]
        assert abs(float(pi[0]) - float(best)) < 1e-4, (alpha, float(pi[0]), float(best))
        assert 0.05 * math.exp(-bound) - 1e-12 <= float(pi[0]) <= 0.05 * math.exp(bound) + 1e-12
    # no data and no bonus: the reference; α = 0 with data: logit(label)/β (unclipped here)
    assert torch.allclose(xpo_policy(_two_arm(0, 1.0, 0.0), _t([[0, 0]]), 0.0, beta, mu, bound), mu)
    pi = xpo_policy(_two_arm(1, 0.4, 3.0), _t([[0, 0]]), 0.0, beta, mu, bound)[0]
    h = math.log(0.6 / 0.4) / beta  # the pair is (1, 0): response 0 wins 60%
    assert abs(math.log(float(pi[0]) / 0.05) - math.log(float(pi[1]) / 0.95) - h) < 1e-9
    with pytest.raises(InvalidInputError, match="two responses"):
        xpo_policy(
            PairData(torch.tensor([[0]]), torch.tensor([[2]]), _t([[1.0]]), _t([[1.0]])),
            _t([[0, 0]]),
            0.0,
            beta,
            mu,
            bound,
        )


def test_two_arm_online_determinism_and_shapes() -> None:
    beta = torch.tensor([0.25, 0.5], dtype=torch.float64)
    mu0 = torch.exp(-0.5 / beta)
    mu = torch.stack([mu0, 1 - mu0], -1)
    kw = {"beta": beta, "mu": mu, "bound": 2 / beta, "games": 2}
    a = two_arm_online("xpo", 0.7, generator=torch.Generator().manual_seed(1), rounds=20, **kw)
    b = two_arm_online("xpo", 0.7, generator=torch.Generator().manual_seed(1), rounds=20, **kw)
    assert torch.equal(a["pi0"], b["pi0"]) and a["pi0"].shape == (2, 20)
    d = two_arm_online(
        "online_dpo", 0.7, generator=torch.Generator().manual_seed(1), events=5, **kw
    )
    assert d["round"].shape == (2, 5) and bool((d["round"].diff(dim=1) >= 1).all())
    with pytest.raises(InvalidInputError, match="method"):
        two_arm_online("nope", 0.7, generator=torch.Generator(), **kw)


def test_iterative_dpo_and_apo_closed_forms() -> None:
    """π_t ∝ μ exp(t s/β); APO's logits follow u_{t+1} = w + α u_t for the increments."""
    s = np.array([0.3, -0.2, 1.1, 0.0])
    P = bradley_terry_matrix(s)
    mu = softmax(np.array([0.1, 0.4, -0.3, 0.0]))
    beta = 2.0
    z = iterative_dpo(P, beta, 6, mu=mu).numpy()[:, 0]
    for t in range(7):
        assert np.allclose(np.exp(z[t]), softmax(np.log(mu) + t * s / beta), atol=1e-10)
    alpha = 0.5
    za = iterative_dpo(P, beta, 6, mu=mu, alpha=alpha).numpy()[:, 0]
    logits, inc = np.log(mu), s / beta  # π̂_0 = π_0: the first increment is (1 + α) s/β
    for t in range(1, 7):
        inc = s / beta + alpha * inc
        logits = logits + inc
        assert np.allclose(np.exp(za[t]), softmax(logits), atol=1e-10)
    with pytest.raises(InvalidInputError, match="alpha"):
        iterative_dpo(P, beta, 3, alpha=1.0)


# ---- DPO = RLHF with the ridge, at the learners' defaults ----------------------------------------
@pytest.mark.parametrize("beta", [0.05, 0.1, 1.0])
def test_dpo_equals_rlhf_with_a_ridge(beta: float) -> None:
    """DPO's weights are log π/μ = r/β: with the ridge on the implied reward βw (the units of the
    BT reward fit) both solve the same problem, also on separable data where the ridge decides
    the answer; HyPO without its KL term is DPO."""
    l2 = BTRunConfig().l2
    assert l2 > 0
    P = random_preference_matrix(5, np.random.default_rng(8), (3,))
    mu = softmax(np.random.default_rng(9).normal(size=(3, 5)), axis=-1)
    d = sample_pairs(P, mu, 200, torch.Generator().manual_seed(1))
    sep = population_pairs(np.array([[0.5, 1.0, 1.0], [0.0, 0.5, 1.0], [0.0, 0.0, 0.5]]))
    for data, m, n in ((d, mu, 5), (sep, None, 3)):
        rlhf = rlhf_policy(data, beta, m, n=n, l2=l2)
        dpo = dpo_policy(data, beta, m, n=n, l2=l2)
        assert float((dpo - rlhf).abs().max()) < 1e-10
        hypo = hypo_policy(data, beta, 0.0, m, n=n, l2=l2)
        assert float((hypo - dpo).abs().max()) < 1e-9
    # separable data: the ridge decides the (finite) reward; without it there is none
    w = fit_bt_reward(sep, n=3, l2=l2)
    assert bool(torch.isfinite(w).all()) and float(w.abs().max()) < 100


def test_dpo_and_rlhf_learners_agree_at_defaults() -> None:
    kw = {"game": "random", "K": 5, "seed": 4}
    cfg = {"ref_logit_scale": 1.0}
    dpo, _ = train("dpo", "dueling", seed=3, steps=256, config=cfg, env_kwargs=kw)
    rlhf, _ = train("rlhf_bt", "dueling", seed=3, steps=256, config=cfg, env_kwargs=kw)
    assert np.abs(dpo.policy() - rlhf.policy()).max() < 1e-10
