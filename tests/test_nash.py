"""algos.nash: exact updates against closed forms and prl.games' exact solvers, sampled and
neural versions, the `prl run` learners (determinism, resume), and bad input."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from scipy.special import softmax

from prl.algos.nash import (
    METHODS,
    NashSolver,
    NeuralNash,
    apo_step,
    egpo_step,
    inpo_step,
    ipo_md_step,
    log_mixture,
    nash_md_step,
    nash_mp_step,
    online_ipo_step,
    selfplay_direction,
    sppo_step,
)
from prl.algos.spo import SampledWinRates, mwu_step
from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.games import (
    duality_gap,
    exploitability,
    kl,
    minimax_winner,
    random_preference_matrix,
    regularized_nash,
    rps_matrix,
)
from prl.registry import ALGOS
from prl.run import train
from prl.utils import torch_threads

TAU = 0.2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny batched tensors: one torch thread avoids oversubscribing the test workers' cores."""
    with torch_threads(1):
        yield


@pytest.fixture(scope="module")
def games() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """8 random 5-outcome games, reference policies with N(0,1) logits, and π*_τ."""
    g = torch.Generator().manual_seed(11)
    P = random_preference_matrix(5, g, (8,))
    mu = torch.softmax(torch.randn(8, 5, generator=g, dtype=torch.float64), -1)
    return P, mu, regularized_nash(P, TAU, mu)


def _one(seed: int = 0, n: int = 4) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    P = random_preference_matrix(n, rng)
    return P, softmax(rng.normal(size=n)), softmax(rng.normal(size=n))


# ---- one step against closed forms (numpy, written out independently) ---------------------------
def test_nash_md_step_closed_form() -> None:
    P, pi, mu = _one()
    tau, eta = 0.3, 0.9
    a = eta * tau
    mix = pi ** (1 - a) * mu**a
    mix /= mix.sum()
    want = pi ** (1 - a) * mu**a * np.exp(eta * P @ mix)
    assert np.allclose(nash_md_step(pi, P, tau, eta, mu).numpy(), want / want.sum(), atol=1e-14)
    # an explicit mixture coefficient β decouples the opponent from ητ
    mix = pi ** (1 - 0.5) * mu**0.5
    mix /= mix.sum()
    want = pi ** (1 - a) * mu**a * np.exp(eta * P @ mix)
    got = nash_md_step(pi, P, tau, eta, mu, mixture_coef=0.5).numpy()
    assert np.allclose(got, want / want.sum(), atol=1e-14)


def test_mirror_prox_and_extragradient_closed_forms() -> None:
    P, pi, mu = _one(1)
    tau, eta = 0.4, 1.5
    a = eta * tau
    half = (pi * mu**a * np.exp(eta * P @ pi)) ** (1 / (1 + a))
    half /= half.sum()
    want = (pi * mu**a * np.exp(eta * P @ half)) ** (1 / (1 + a))
    assert np.allclose(nash_mp_step(pi, P, tau, eta, mu).numpy(), want / want.sum(), atol=1e-14)
    eta = 1.0
    a = eta * tau
    half = pi ** (1 - a) * mu**a * np.exp(eta * P @ pi)
    half /= half.sum()
    want = pi ** (1 - a) * mu**a * np.exp(eta * P @ half)
    assert np.allclose(egpo_step(pi, P, tau, eta, mu).numpy(), want / want.sum(), atol=1e-14)
    want = pi ** (1 - a) * mu**a * np.exp(eta * P @ pi)
    assert np.allclose(inpo_step(pi, P, tau, eta, mu).numpy(), want / want.sum(), atol=1e-14)


def test_online_ipo_ipo_md_sppo_apo_closed_forms() -> None:
    P, pi, mu = _one(2)
    tau, eta = 0.3, 0.8
    v = P @ pi - tau * np.log(pi / mu)
    z = np.log(pi) + eta * pi * (v - pi @ v)
    assert np.allclose(online_ipo_step(pi, P, tau, eta, mu).numpy(), softmax(z), atol=1e-14)
    beta = 0.25
    rho = pi ** (1 - beta) * mu**beta
    rho /= rho.sum()
    v = P @ rho - tau * np.log(pi / mu)
    z = np.log(pi) + eta * rho * (v - rho @ v)
    got = ipo_md_step(pi, P, tau, eta, mu, mixture_coef=beta).numpy()
    assert np.allclose(got, softmax(z), atol=1e-14)
    assert np.allclose(
        ipo_md_step(pi, P, tau, eta, mu, 0.0).numpy(),
        online_ipo_step(pi, P, tau, eta, mu).numpy(),
        atol=1e-15,
    )
    w = pi * np.exp(eta * P @ pi)
    assert np.allclose(sppo_step(pi, P, eta).numpy(), w / w.sum(), atol=1e-14)
    assert np.allclose(sppo_step(pi, P, eta).numpy(), mwu_step(pi, P, eta).numpy(), atol=0)
    # APO: the INPO step, then z ← z'' + α(z'' − z_prev)
    prev = softmax(np.random.default_rng(9).normal(size=4))
    a, alpha = eta * tau, 0.4
    inner = pi ** (1 - a) * mu**a * np.exp(eta * P @ pi)
    inner /= inner.sum()
    want = softmax(np.log(inner) + alpha * (np.log(inner) - np.log(prev)))
    nxt, keep = apo_step(pi, prev, P, tau, eta, alpha, mu)
    assert np.allclose(nxt.numpy(), want, atol=1e-14) and np.allclose(keep.numpy(), inner)
    nxt0, _ = apo_step(pi, pi, P, tau, eta, 0.0, mu)
    assert np.allclose(nxt0.numpy(), inpo_step(pi, P, tau, eta, mu).numpy(), atol=1e-15)


def test_pieces() -> None:
    logpi = torch.log(torch.tensor([[0.2, 0.3, 0.5]], dtype=torch.float64))
    logmu = torch.log(torch.tensor([[0.6, 0.3, 0.1]], dtype=torch.float64))
    m = (0.2**0.7 * 0.6**0.3, 0.3**0.7 * 0.3**0.3, 0.5**0.7 * 0.1**0.3)
    assert np.allclose(log_mixture(logpi, logmu, 0.3).exp().numpy()[0], np.array(m) / sum(m))
    u = torch.full((1, 3), -math.log(3), dtype=torch.float64)  # None = uniform μ
    assert torch.allclose(log_mixture(logpi, None, 0.3), log_mixture(logpi, u, 0.3), atol=1e-15)
    # the self-play direction is the gradient of P(π ≻ sg π) − τKL(π‖μ) w.r.t. the logits
    P = torch.as_tensor(rps_matrix())[None]
    z = logpi.clone().requires_grad_(True)
    lp = torch.log_softmax(z, -1)
    sg = lp.detach().exp()
    J = (lp.exp() * (P @ sg[..., None])[..., 0]).sum() - 0.3 * (lp.exp() * (lp - logmu)).sum()
    (grad,) = torch.autograd.grad(J, z)
    d = selfplay_direction(sg, (P @ sg[..., None])[..., 0], lp.detach(), logmu, 0.3)
    assert torch.allclose(d, grad, atol=1e-15)


def test_steps_are_batched_and_keep_the_leading_games_axis(games) -> None:
    P, mu, _ = games
    pi = mu.flip(-1)
    out = nash_mp_step(pi, P, TAU, 2.0, mu)
    one = torch.stack([nash_mp_step(pi[g], P[g], TAU, 2.0, mu[g]) for g in range(8)])
    assert out.shape == (8, 5) and torch.allclose(out, one, atol=1e-15)


# ---- convergence to the exact equilibria ------------------------------------------------------
@pytest.mark.parametrize(
    "method, kw, T, tol",
    [
        ("nash_mp", {}, 120, 1e-12),
        ("egpo", {}, 250, 1e-12),
        ("inpo", {"eta": 1.0}, 400, 1e-12),
        ("apo", {"eta": 1.0, "alpha": 0.3}, 400, 1e-12),
        ("online_ipo", {"eta": 3.0}, 3000, 1e-5),
    ],
)
def test_exact_updates_reach_regularized_nash(games, method, kw, T, tol) -> None:
    P, mu, star = games
    s = NashSolver(method, P, tau=TAU, mu=mu, **kw)
    s.run(T)
    assert float((s.policy - star).abs().max()) < tol
    assert float(duality_gap(P, s.policy, TAU, mu).abs().max()) < max(10 * tol, 1e-13)
    assert s.oracle_calls == T * METHODS[method].evaluations


def test_nash_md_harmonic_schedule_bound_and_convergence(games) -> None:
    """KL(π*_τ‖π_T) ≤ 8/(τ²(T+1)) at every T (Munos et al., Thm 1), and it goes to 0."""
    P, mu, star = games
    s = NashSolver("nash_md", P, tau=TAU, mu=mu)
    assert s.schedule == "harmonic"
    res = s.run(1000, record_at=range(1, 1001), callback=lambda sol: kl(star, sol.policy))
    bound = 8.0 / (TAU**2 * (torch.as_tensor(res["t"], dtype=torch.float64) + 1))
    assert bool((res["value"] <= bound[:, None]).all())
    assert float(res["value"][-1].max()) < 1e-6


def _nash_md_constant_map(z: np.ndarray, P: np.ndarray, mu: np.ndarray, tau: float, eta: float):
    """Constant-step Nash-MD on centred logits, written out: z ← (1−a)log π + a log μ + η P π^μ,
    π^μ ∝ π^(1−a) μ^a, a = ητ."""
    a = eta * tau
    lp = z - np.log(np.exp(z - z.max()).sum()) - z.max()
    m = (1 - a) * lp + a * np.log(mu)
    q = np.exp(m - m.max())
    w = m + eta * P @ (q / q.sum())
    return w - w.mean()


def test_nash_md_constant_step_limit_and_rate(games) -> None:
    """Constant η: Munos et al.'s bound (1−ητ)^T KL(π*‖π_0) + 2η/τ (= 5 here) is far from tight.
    The iterates converge linearly to the biased rest point π_η of the map (computed here by
    iterating the written-out map), at the rate ρ = spectral radius of its Jacobian there, so
    KL(π*‖π_T) → KL(π*‖π_η) exactly."""
    P, mu, star = games
    eta = 0.5
    s = NashSolver("nash_md", P, tau=TAU, eta=eta, mu=mu)
    kl0 = kl(star, s.policy)
    pols = {}
    for t in range(1, 301):
        s.step()
        if t in (20, 60, 300):
            pols[t] = s.policy.clone()
    for g in range(8):
        Pg, mg = P[g].numpy(), mu[g].numpy()
        z = np.zeros(5)
        for _ in range(3000):
            z = _nash_md_constant_map(z, Pg, mg, TAU, eta)
        pe = np.exp(z - z.max())
        pe /= pe.sum()
        J = np.zeros((5, 5))
        for k in range(5):
            e = np.zeros(5)
            e[k] = 1e-6
            J[:, k] = (
                _nash_md_constant_map(z + e, Pg, mg, TAU, eta)
                - _nash_md_constant_map(z - e, Pg, mg, TAU, eta)
            ) / 2e-6
        C = np.eye(5) - 1 / 5
        rho = float(np.abs(np.linalg.eigvals(C @ J @ C)).max())

        def d(t: int, g: int = g, z: np.ndarray = z) -> float:
            lz = np.log(pols[t][g].numpy())
            return float(np.abs(lz - lz.mean() - z).max())

        assert abs((d(60) / d(20)) ** (1 / 40) - rho) < 0.015  # the measured linear rate
        assert d(300) < 1e-11
        st = star[g].numpy()
        kl_limit = float((st * np.log(st / pe)).sum())
        got = float(kl(star[g : g + 1], pols[300][g : g + 1])[0])
        assert got == pytest.approx(kl_limit, rel=1e-8, abs=1e-14)
        assert 0 < kl_limit < (1 - eta * TAU) ** 300 * float(kl0[g]) + 2 * eta / TAU


def test_ipo_md_fixed_point_is_the_mixture_equation(games) -> None:
    """IPO-MD's rest point solves π = softmax(log μ + P π^μ/τ) with π^μ ∝ π^(1−β)μ^β."""
    P, mu, star = games
    beta = 0.2
    s = NashSolver("ipo_md", P, tau=TAU, eta=3.0, mu=mu, mixture_coef=beta)
    s.run(4000)
    pi = s.policy.numpy()
    for g in range(8):
        mix = pi[g] ** (1 - beta) * mu[g].numpy() ** beta
        mix /= mix.sum()
        rhs = softmax(np.log(mu[g].numpy()) + P[g].numpy() @ mix / TAU)
        assert np.abs(pi[g] - rhs).max() < 1e-8
    assert float((s.policy - star).abs().max()) > 1e-4  # a biased rest point for β > 0


def test_sppo_average_reaches_minimax_winner() -> None:
    P = random_preference_matrix(5, np.random.default_rng(4))
    T = 2000
    s = NashSolver("sppo", P, eta=math.sqrt(8 * math.log(5) / T), average=True)
    s.run(T)
    _, value = minimax_winner(P)
    assert abs(value) < 1e-10
    assert float(exploitability(P, s.average_policy)[0]) <= math.sqrt(math.log(5) / (2 * T))


def test_egpo_unregularized_gap_decreases() -> None:
    P = random_preference_matrix(6, torch.Generator().manual_seed(2), (16,))
    s = NashSolver("egpo", P, tau=0.0, eta=0.5)
    res = s.run(2000, record_at=[0, 2000], callback=lambda sol: duality_gap(P, sol.policy, 0.0))
    first, last = res["value"].mean(1)
    assert float(last) < 0.25 * float(first)


def test_fixed_points(games) -> None:
    P, mu, star = games
    for step in (
        lambda p: nash_mp_step(p, P, TAU, 2.0, mu),
        lambda p: egpo_step(p, P, TAU, 0.8, mu),
        lambda p: inpo_step(p, P, TAU, 0.8, mu),
        lambda p: online_ipo_step(p, P, TAU, 1.0, mu),
    ):
        assert float((step(star) - star).abs().max()) < 1e-12
    u = torch.full((3,), 1 / 3, dtype=torch.float64)
    assert torch.allclose(sppo_step(u, rps_matrix(), 1.0), u, atol=1e-15)


# ---- sampled versions --------------------------------------------------------------------------
def test_sampled_solver_is_deterministic_and_counts_queries(games) -> None:
    P, mu, _ = games

    def run(seed: int) -> torch.Tensor:
        W = SampledWinRates(P, 4, torch.Generator().manual_seed(seed))
        s = NashSolver("nash_mp", P, tau=TAU, mu=mu, win_rates=W)
        s.run(100)
        assert s.queries == 100 * 2 * 8 * 5 * 4 and s.oracle_calls == 200
        return s.policy

    a = run(0)
    assert torch.equal(a, run(0)) and not torch.equal(a, run(1))


def test_sampled_nash_md_with_decreasing_steps_converges(games) -> None:
    P, mu, star = games
    W = SampledWinRates(P, 8, torch.Generator().manual_seed(0))
    s = NashSolver("nash_md", P, tau=TAU, mu=mu, win_rates=W)
    s.run(2000)
    assert float(kl(star, s.policy).max()) < 1e-3


def test_solver_resume_is_exact(games) -> None:
    P, mu, _ = games

    def make() -> NashSolver:
        W = SampledWinRates(P, 2, torch.Generator().manual_seed(3))
        return NashSolver("apo", P, tau=TAU, eta=0.8, alpha=0.3, mu=mu, win_rates=W, average=True)

    full = make()
    full.run(70)
    part = make()
    part.run(30)
    buf = io.BytesIO()
    torch.save(part.state_dict(), buf)
    buf.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    resumed.run(40)
    assert torch.equal(resumed.z, full.z) and torch.equal(
        resumed.average_policy, full.average_policy
    )


# ---- bad input -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, err, msg",
    [
        (
            lambda P, p: nash_md_step(p, np.array([[0.5, 0.9], [0.9, 0.5]]), 0.1, 1.0),
            InvalidInputError,
            "P \\+ Pᵀ",
        ),
        (lambda P, p: nash_md_step(p, P, 0.0, 1.0), InvalidInputError, "tau"),
        (lambda P, p: nash_md_step(p, P, -0.1, 1.0), InvalidInputError, "tau"),
        (lambda P, p: online_ipo_step(p, P, 0.0, 1.0), InvalidInputError, "tau"),
        (lambda P, p: nash_mp_step(p, P, -1.0), InvalidInputError, "tau"),
        (lambda P, p: nash_md_step(p, P, 0.5, 3.0), InvalidInputError, "eta"),
        (lambda P, p: egpo_step(p, P, 0.5, 0.0), InvalidInputError, "eta"),
        (lambda P, p: inpo_step(p, P, 0.5, float("nan")), InvalidInputError, "eta"),
        (lambda P, p: nash_md_step(p, P, 0.5, 1.0, mixture_coef=1.5), InvalidInputError, "mixture"),
        (lambda P, p: apo_step(p, p, P, 0.5, 1.0, alpha=1.0), InvalidInputError, "alpha"),
        (lambda P, p: nash_mp_step([0.5, 0.5], P, 0.5), InvalidInputError, "shape"),
        (lambda P, p: nash_mp_step(p, P, 0.5, mu=[0.2, 0.2, 0.2]), InvalidInputError, "sum to 1"),
        (lambda P, p: NashSolver("nash_xx", P, tau=0.1), UnknownNameError, "nash_mp"),
        (
            lambda P, p: NashSolver("nash_md", P, tau=0.1, eta=1.0, schedule="harmonic"),
            InvalidInputError,
            "harmonic",
        ),
        (
            lambda P, p: NashSolver("nash_md", P, tau=0.1, schedule="bogus"),
            InvalidInputError,
            "schedule",
        ),
        (lambda P, p: NeuralNash("nash_md_pg", P, beta=0.0), InvalidInputError, "beta"),
        (lambda P, p: NeuralNash("nash_md_pg", P, estimator="x"), InvalidInputError, "estimator"),
    ],
)
def test_bad_input_is_rejected(call, err, msg) -> None:
    P = rps_matrix()
    with pytest.raises(err, match=msg):
        call(P, np.array([0.2, 0.3, 0.5]))


@pytest.mark.parametrize(
    "algo, config, env, msg",
    [
        ("nash_md", {"beta": 0.0}, "dueling", "beta"),
        ("nash_md", {"schedule": "bogus"}, "dueling", "schedule"),
        ("nash_md", {"schedule": "constant"}, "dueling", "needs --eta"),
        ("nash_md", {"eta": 20.0}, "dueling", "eta·beta"),
        ("nash_mp", {"opponents": -1}, "dueling", "opponents"),
        ("apo", {"alpha": 1.0}, "dueling", "alpha"),
        ("nash_md_pg", {"mixture_coef": 2.0}, "dueling", "mixture_coef"),
        ("sppo", {}, "chain", "dueling"),
        ("nash_md_pg", {}, "karmed", "dueling"),
    ],
)
def test_learner_config_errors(algo, config, env, msg) -> None:
    with pytest.raises(ConfigError, match=msg):
        train(algo, env, steps=2, config=config)


# ---- `prl run` learners ----------------------------------------------------------------------
TABULAR = ("nash_md", "nash_mp", "egpo", "inpo", "online_ipo", "ipo_md", "sppo", "apo")
NEURAL = ("nash_md_pg", "nash_ema", "online_ipo_nn", "egpo_nn", "sppo_nn")
ENV_KW = {"game": "random", "K": 4, "seed": 2}


def test_every_learner_is_registered_for_dueling() -> None:
    for name in TABULAR + NEURAL:
        assert name in ALGOS.names()


@pytest.mark.parametrize("algo", TABULAR)
def test_tabular_learners_smoke_and_determinism(algo) -> None:
    cfg = {"opponents": 2} if algo == "sppo" else {"opponents": 2, "ref_logit_scale": 1.0}
    _, a = train(algo, "dueling", seed=1, steps=40, config=cfg, env_kwargs=ENV_KW, every=10)
    _, b = train(algo, "dueling", seed=1, steps=40, config=cfg, env_kwargs=ENV_KW, every=10)
    _, c = train(algo, "dueling", seed=2, steps=40, config=cfg, env_kwargs=ENV_KW, every=10)
    assert a == b and a != c
    assert a[-1]["iteration"] == 40 and a[-1]["queries"] > 0


@pytest.mark.parametrize("algo", TABULAR)
def test_tabular_learners_exact_answer(algo) -> None:
    cfg: dict = {} if algo in ("sppo",) else {"ref_logit_scale": 1.0, "beta": 0.5}
    if algo == "online_ipo":
        cfg["eta"] = 3.0
    if algo == "ipo_md":
        cfg.update(eta=3.0, mixture_coef=0.0)
    if algo == "sppo":
        cfg["eta"] = math.sqrt(8 * math.log(4) / 800)  # tuned MWU step for T = 800
    _, rows = train(algo, "dueling", seed=0, steps=800, config=cfg, env_kwargs=ENV_KW, every=800)
    if algo == "sppo":  # exploitability(π̄_T) = R_T/T ≤ √(ln n / 2T)
        assert rows[-1]["exploitability_avg"] <= math.sqrt(math.log(4) / 1600)
    else:
        assert rows[-1]["kl_to_equilibrium"] < 1e-7 and rows[-1]["queries"] == 0


def test_learner_resume_matches_uninterrupted() -> None:
    cls = ALGOS.get("nash_md")
    from prl.config import build_config

    cfg = build_config(cls.Config, {"opponents": 3, "ref_logit_scale": 1.0})

    def make():
        return cls(cfg, "dueling", dict(ENV_KW), 5, torch.device("cpu"))

    full = make()
    rows_full = [full.step() for _ in range(30)]
    part = make()
    for _ in range(12):
        part.step()
    buf = io.BytesIO()
    torch.save(part.state_dict(), buf)
    buf.seek(0)
    resumed = make()
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    rows = [resumed.step() for _ in range(18)]
    assert rows == rows_full[12:]


# ---- neural versions ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def game5() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    P = random_preference_matrix(5, g, (1,))
    mu = torch.softmax(torch.randn(5, generator=g, dtype=torch.float64), -1)
    return P, mu, regularized_nash(P, 0.1, mu)


def _tv(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(0.5 * (a - b).abs().sum(-1).max())


@pytest.mark.parametrize(
    "method, kw",
    [("nash_md_pg", {}), ("nash_ema", {}), ("online_ipo", {}), ("egpo", {})],
)
def test_neural_exact_estimator_reaches_equilibrium(game5, method, kw) -> None:
    P, mu, star = game5
    nn_ = NeuralNash(method, P, beta=0.1, mu=mu, lr=0.1, estimator="exact", anneal=300, **kw)
    nn_.train(300)
    assert _tv(nn_.policy, star) < 0.02


@pytest.mark.parametrize("method", ["nash_md_pg", "online_ipo"])
def test_neural_sampled_estimator_reaches_equilibrium(game5, method) -> None:
    P, mu, star = game5
    nn_ = NeuralNash(
        method,
        P,
        beta=0.1,
        mu=mu,
        lr=0.02,
        estimator="sampled",
        batch=256,
        anneal=1000,
        generator=torch.Generator().manual_seed(0),
    )
    nn_.train(1000)
    assert _tv(nn_.policy, star) < 0.02
    assert nn_.queries == 1000 * 256


def test_neural_contextual_mlp_reaches_each_contexts_equilibrium() -> None:
    g = torch.Generator().manual_seed(5)
    P = random_preference_matrix(5, g, (3,))
    mu = torch.softmax(torch.randn(3, 5, generator=g, dtype=torch.float64), -1)
    star = regularized_nash(P, 0.2, mu)
    torch.manual_seed(0)
    nn_ = NeuralNash(
        "nash_md_pg", P, beta=0.2, mu=mu, lr=0.03, estimator="exact", hidden=(32,), anneal=600
    )
    nn_.train(600)
    assert nn_.policy.shape == (3, 5) and _tv(nn_.policy, star) < 0.02


def test_neural_sppo_tracks_exact_sppo(game5) -> None:
    P, _, _ = game5
    eta, inner, K = 0.5, 60, 5
    nn_ = NeuralNash("sppo", P, eta=eta, lr=0.1, estimator="exact", inner_steps=inner)
    pi = torch.full((1, 5), 0.2, dtype=torch.float64)
    for _ in range(K):
        nn_.train(inner)
        pi = sppo_step(pi, P, eta)
        assert _tv(nn_.policy, pi) < 0.02


def test_neural_sampled_is_deterministic_and_resumable(game5) -> None:
    P, mu, _ = game5

    def make() -> NeuralNash:
        return NeuralNash(
            "nash_ema",
            P,
            beta=0.1,
            mu=mu,
            estimator="sampled",
            batch=16,
            generator=torch.Generator().manual_seed(1),
        )

    a, b = make().train(20), make().train(8)
    buf = io.BytesIO()
    torch.save(b.state_dict(), buf)
    buf.seek(0)
    c = make()
    c.load_state_dict(torch.load(buf, weights_only=True))
    c.train(12)
    assert torch.equal(a.policy, c.policy) and a.queries == c.queries == 20 * 16


@pytest.mark.parametrize("algo", NEURAL)
def test_neural_learners_smoke_and_determinism(algo) -> None:
    cfg = {"batch": 8}
    _, a = train(algo, "dueling", seed=1, steps=6, config=cfg, env_kwargs=ENV_KW)
    _, b = train(algo, "dueling", seed=1, steps=6, config=cfg, env_kwargs=ENV_KW)
    assert a == b and a[-1]["iteration"] == 6 and a[-1]["queries"] > 0


# ---- device ------------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_matches_cpu(games) -> None:
    P, mu, _ = games
    cpu = NashSolver("egpo", P, tau=TAU, mu=mu)
    gpu = NashSolver("egpo", P.cuda(), tau=TAU, mu=mu.cuda())
    cpu.run(50)
    gpu.run(50)
    assert torch.allclose(cpu.policy, gpu.policy.cpu(), atol=1e-12)


# ---- neural EGPO reduces to the exact mirror extragradient --------------------------------------
def test_neural_egpo_one_step_on_a_logit_table_is_the_exact_step(games) -> None:
    """softmax-linear policy on one-hot contexts (a logit table), SGD with lr 1, exact
    estimator: each neural EGPO step is :func:`egpo_step` (float64, to 1e-10), iterated too."""
    P, mu, _ = games
    g = torch.Generator().manual_seed(7)
    pi0 = torch.softmax(torch.randn(8, 5, generator=g, dtype=torch.float64), -1)
    for eta in (0.8, 2.0):
        nn_ = NeuralNash(
            "egpo",
            P,
            beta=TAU,
            eta=eta,
            mu=mu,
            lr=1.0,
            optimizer="sgd",
            estimator="exact",
            init_logits=torch.log(pi0),
        )
        pi = pi0
        for _ in range(5):
            nn_.step()
            pi = egpo_step(pi, P, TAU, eta, mu)
            assert float((nn_.policy - pi).abs().max()) < 1e-10


def test_neural_egpo_sampled_gradient_is_unbiased(games) -> None:
    """Mean over many sampled EGPO losses' logit gradients = the exact one, within 4 standard
    errors per coordinate."""
    P, mu, _ = games
    P, mu = P[:2], mu[:2]
    g = torch.Generator().manual_seed(1)
    z0 = torch.randn(2, 5, generator=g, dtype=torch.float64)
    kw = {"beta": TAU, "eta": 1.5, "mu": mu, "init_logits": z0, "batch": 32}
    exact = NeuralNash("egpo", P, estimator="exact", **kw)
    exact.loss().backward()
    want = exact.net.table.grad.clone()
    samp = NeuralNash("egpo", P, estimator="sampled", generator=g, **kw)
    draws = []
    for _ in range(4000):
        samp.net.table.grad = None
        samp.loss().backward()
        draws.append(samp.net.table.grad.clone())
    _mean_within(torch.stack(draws), want)


# ---- sampled estimators are unbiased ------------------------------------------------------------
def _mean_within(draws: torch.Tensor, want: torch.Tensor, k: float = 4.0) -> None:
    """mean of ``draws`` [N, ...] = ``want`` within k standard errors per coordinate, and the
    standard error small enough to tell a biased estimator."""
    se = draws.std(0) / math.sqrt(draws.shape[0])
    assert bool(((draws.mean(0) - want).abs() <= k * se + 1e-12).all())
    assert float(se.max()) < 0.1 * float(want.abs().max())


def test_sampled_win_rates_are_unbiased(games) -> None:
    """SampledWinRates(q) estimates P(· ≻ q) = P q from duels against draws from q."""
    P, mu, _ = games
    W = SampledWinRates(P, 3, torch.Generator().manual_seed(0))
    draws = torch.stack([W(mu) for _ in range(3000)])
    want = (P @ mu.unsqueeze(-1)).squeeze(-1)
    _mean_within(draws - 0.5, want - 0.5)
    assert W.queries == 3000 * 8 * 5 * 3


def test_nash_md_pg_sampled_gradient_is_unbiased(game5) -> None:
    """The sampled Nash-MD-PG loss (REINFORCE with a leave-one-out baseline against duels with
    π^μ) has the exact estimator's logit gradient −π ⊙ (v − ⟨π, v⟩) in expectation."""
    P, mu, _ = game5
    z0 = torch.log(torch.tensor([[0.1, 0.3, 0.2, 0.25, 0.15]], dtype=torch.float64))
    kw = {"beta": 0.1, "mu": mu, "mixture_coef": 0.3, "init_logits": z0, "batch": 16}
    exact = NeuralNash("nash_md_pg", P, estimator="exact", **kw)
    exact.loss().backward()
    want = exact.net.table.grad.clone()
    # the exact gradient written out: ρ = π^μ, v = P ρ − τ log(π/μ)
    pi = z0.exp()
    rho = pi**0.7 * mu**0.3
    rho = rho / rho.sum()
    v = (P[0] @ rho[0]) - 0.1 * torch.log(pi[0] / mu)
    assert torch.allclose(want[0], -pi[0] * (v - (pi[0] * v).sum()), atol=1e-14)
    samp = NeuralNash(
        "nash_md_pg", P, estimator="sampled", generator=torch.Generator().manual_seed(2), **kw
    )
    draws = []
    for _ in range(4000):
        samp.net.table.grad = None
        samp.loss().backward()
        draws.append(samp.net.table.grad.clone())
    _mean_within(torch.stack(draws), want)
