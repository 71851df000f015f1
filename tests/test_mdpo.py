"""MDPO: exact tabular mirror descent, the deep on-/off-policy losses, SB3 integration, checks.

Expected values come from hand computations, closed forms, exact solvers (policy iteration,
soft value iteration) or numerical minimization with scipy — never from the code under test.
"""

from __future__ import annotations

import io
import math

import gymnasium
import numpy as np
import pytest
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax
from stable_baselines3 import SAC
from stable_baselines3.common.logger import Logger

from prl.algos.mdpo import (
    MDPOOffPolicy,
    MDPOOnPolicy,
    cen_step_to_pmd,
    linear_t_k,
    mdpo_off_policy_loss,
    mdpo_off_policy_target,
    mdpo_on_policy_loss,
    mdpo_on_policy_target,
    npg_step_to_pmd,
    pmd_step,
    policy_mirror_descent,
    regularized_values,
    stack_mdps,
    tsallis_log_ratio,
)
from prl.errors import ConfigError, InvalidInputError
from prl.mdp import TabularMDP, chain_mdp, random_mdp
from prl.run import build_config, train

torch.set_num_threads(1)


# ---- exact tabular update -------------------------------------------------------------------
def test_pmd_step_matches_hand_computation() -> None:
    pi, Q, eta = [0.5, 0.3, 0.2], [1.0, 0.0, 2.0], 0.5
    w = [pi[i] * math.exp(eta * Q[i]) for i in range(3)]
    expected = [x / sum(w) for x in w]
    got = pmd_step(torch.tensor(np.log(pi)), torch.tensor(Q), eta).exp()
    assert np.allclose(got.numpy(), expected, atol=1e-15)
    # entropy-regularized: π' ∝ π^{1/(1+ητ)} exp(ηQ/(1+ητ))
    tau = 0.2
    d = 1 + eta * tau
    w = [pi[i] ** (1 / d) * math.exp(eta * Q[i] / d) for i in range(3)]
    got = pmd_step(torch.tensor(np.log(pi)), torch.tensor(Q), eta, tau).exp()
    assert np.allclose(got.numpy(), [x / sum(w) for x in w], atol=1e-15)
    # η = ∞ with τ > 0: soft-greedy exp(Q/τ)
    got = pmd_step(torch.tensor(np.log(pi)), torch.tensor(Q), math.inf, 0.5).exp()
    assert np.allclose(got.numpy(), softmax(np.array(Q) / 0.5), atol=1e-15)


def _two_state_mdp(gamma: float = 0.5) -> TabularMDP:
    """Action 0 goes to state 0, action 1 to state 1, from either state; R = [[1,0],[0,2]]."""
    P = np.zeros((2, 2, 2))
    P[:, 0, 0] = 1.0
    P[:, 1, 1] = 1.0
    return TabularMDP(P, np.array([[1.0, 0.0], [0.0, 2.0]]), gamma)


def test_one_mirror_descent_iteration_on_a_two_state_mdp_by_hand() -> None:
    # uniform π: r_π = [0.5, 1.0]; both rows of P_π are [½, ½], so with m = (V0 + V1)/2:
    # m = 0.75 + γ m → m = 1.5; V = r_π + γ m = [1.25, 1.75]; Q(s,a) = R(s,a) + γ V(a).
    mdp = _two_state_mdp()
    V0 = np.array([1.25, 1.75])
    Q0 = np.array([[1 + 0.5 * 1.25, 0.5 * 1.75], [0.5 * 1.25, 2 + 0.5 * 1.75]])
    b = stack_mdps([mdp])
    out = policy_mirror_descent(b["P"], b["R"], b["gamma"], iters=1, eta=1.0)
    assert np.allclose(out["V"][0, 0].numpy(), V0, atol=1e-14)
    assert np.allclose(out["Q"][0, 0].numpy(), Q0, atol=1e-14)
    pi1 = np.exp(Q0) / np.exp(Q0).sum(1, keepdims=True)  # uniform · exp(1·Q0), normalized
    assert np.allclose(out["log_pi"][0].exp().numpy(), pi1, atol=1e-14)
    assert np.allclose(out["V"][1, 0].numpy(), mdp.evaluate(pi1), atol=1e-12)
    # entropy bonus τ·log 2 per step under the uniform policy: V_τ = V + τ log2 / (1 − γ)
    V_tau, Q_tau = regularized_values(b["P"][0], b["R"][0], 0.5, np.full((2, 2), 0.5), 0.3)
    assert np.allclose(V_tau.numpy(), V0 + 0.3 * math.log(2) / 0.5, atol=1e-14)
    assert np.allclose(Q_tau.numpy(), Q0 + 0.5 * 0.3 * math.log(2) / 0.5, atol=1e-14)


def test_geometric_steps_reach_the_exact_optimum() -> None:
    mdps = [random_mdp(8, 3, 0.9, np.random.default_rng(s)) for s in range(3)]
    b = stack_mdps(mdps)
    out = policy_mirror_descent(b["P"], b["R"], b["gamma"], iters=200, eta=0.1, growth=1 / 0.9)
    v_star = np.stack([m.v_star() for m in mdps])  # policy iteration
    assert np.abs(out["V"][-1].numpy() - v_star).max() < 1e-9
    assert np.all(np.diff(out["V"].numpy(), axis=0) > -1e-12)  # monotone improvement


def test_soft_policy_iteration_reaches_the_soft_optimum() -> None:
    mdp = random_mdp(6, 3, 0.9, np.random.default_rng(1))
    tau, g = 0.3, 0.9
    eta = cen_step_to_pmd((1 - g) / tau, tau, g)  # Cen et al.'s largest step: soft PI
    assert math.isinf(eta)
    b = stack_mdps([mdp])
    out = policy_mirror_descent(b["P"][0], b["R"][0], g, iters=60, eta=eta, tau=tau)
    pi_s, Q_s, _ = mdp.soft_optimal(tau)
    assert np.abs(out["Q"][-1].numpy() - Q_s).max() < 1e-8
    assert np.abs(out["log_pi"].exp().numpy() - pi_s).max() < 1e-8


def test_batched_run_equals_one_mdp_at_a_time() -> None:
    rng = np.random.default_rng(2)
    mdps = [random_mdp(5, 2, g, rng) for g in (0.5, 0.8, 0.95)]
    etas, taus = [0.3, 1.0, 4.0], [0.0, 0.1, 0.05]
    b = stack_mdps(mdps)
    out = policy_mirror_descent(
        b["P"], b["R"], b["gamma"], iters=7, eta=torch.tensor(etas), tau=torch.tensor(taus)
    )
    for i, m in enumerate(mdps):
        one = policy_mirror_descent(m.P_continue, m.R, m.gamma, iters=7, eta=etas[i], tau=taus[i])
        assert torch.allclose(out["V"][:, i], one["V"], atol=1e-12)
        assert torch.allclose(out["log_pi"][i], one["log_pi"], atol=1e-12)


def test_npg_step_conversion() -> None:
    assert npg_step_to_pmd(0.5, 0.9) == pytest.approx(5.0)
    # Cen: exponent 1 − ητ/(1−γ) must equal 1/(1 + η'τ)
    eta, tau, g = 0.2, 0.1, 0.9
    e2 = cen_step_to_pmd(eta, tau, g)
    assert 1 / (1 + e2 * tau) == pytest.approx(1 - eta * tau / (1 - g))
    assert e2 / (1 + e2 * tau) == pytest.approx(eta / (1 - g))


def test_bad_tabular_input_raises() -> None:
    with pytest.raises(InvalidInputError):
        pmd_step(torch.zeros(2, 3), torch.zeros(2, 4), 1.0)
    with pytest.raises(InvalidInputError):
        pmd_step(torch.zeros(3), torch.zeros(3), 0.0)
    with pytest.raises(InvalidInputError):
        pmd_step(torch.zeros(3), torch.tensor([0.0, math.nan, 1.0]), 1.0)
    with pytest.raises(InvalidInputError):
        pmd_step(torch.zeros(3), torch.zeros(3), math.inf)  # η = ∞ needs τ > 0
    with pytest.raises(InvalidInputError):
        policy_mirror_descent(np.zeros((3, 2, 4)), np.zeros((3, 2)), 0.9, iters=1, eta=1.0)
    with pytest.raises(InvalidInputError):
        mdpo_off_policy_target(torch.zeros(3), torch.zeros(3), 0.1, 0.2)  # c < λ


# ---- the deep losses' exact per-state minimizers ---------------------------------------------
def _minimize_over_simplex(loss, A: int) -> np.ndarray:
    res = minimize(lambda z: loss(log_softmax(z)), np.zeros(A), method="BFGS", tol=1e-13)
    return softmax(res.x)


def test_on_policy_loss_per_state_minimizer_is_the_pmd_step() -> None:
    rng = np.random.default_rng(3)
    log_pk = log_softmax(rng.normal(size=5))
    adv = rng.normal(size=5)
    t_k = 0.7

    def exact_loss(logp):  # E_{a~π_k}[−ratio·Â] + KL(π‖π_k)/t_k
        p = np.exp(logp)
        return -(p * adv).sum() + (p * (logp - log_pk)).sum() / t_k

    best = _minimize_over_simplex(exact_loss, 5)
    got = mdpo_on_policy_target(torch.tensor(log_pk), torch.tensor(adv), t_k).exp().numpy()
    assert np.allclose(got, best, atol=1e-6)


@pytest.mark.parametrize("c", [0.2, 0.5, 3.0])
def test_off_policy_loss_per_state_minimizer_is_the_pmd_step(c: float) -> None:
    rng = np.random.default_rng(4)
    log_pk = log_softmax(rng.normal(size=4))
    Q = rng.normal(size=4)
    lam = 0.2

    def exact_loss(logp):  # E_{a~π}[c log π + (λ − c) log π_k − Q]
        p = np.exp(logp)
        return (p * (c * logp + (lam - c) * log_pk - Q)).sum()

    best = _minimize_over_simplex(exact_loss, 4)
    got = mdpo_off_policy_target(torch.tensor(log_pk), torch.tensor(Q), c, lam).exp().numpy()
    assert np.allclose(got, best, atol=1e-6)
    if c == lam:  # SAC's soft-greedy policy
        assert np.allclose(got, softmax(Q / lam), atol=1e-14)


def test_sampled_losses_by_hand() -> None:
    lp = torch.tensor([-1.0, -0.5, -2.0])
    old = torch.tensor([-1.2, -0.4, -1.0])
    adv = torch.tensor([1.0, -2.0, 0.5])
    kl = torch.tensor([0.1, 0.2, 0.3])
    r = np.exp(lp.numpy() - old.numpy())
    hand = -np.mean(r * adv.numpy()) + 0.2 / 0.5
    assert float(mdpo_on_policy_loss(lp, old, adv, kl, 0.5)) == pytest.approx(hand, abs=1e-6)
    q = torch.tensor([0.3, 1.0, -1.0])
    hand = np.mean(2.0 * lp.numpy() + (0.2 - 2.0) * old.numpy() - q.numpy())
    assert float(mdpo_off_policy_loss(lp, old, q, 2.0, 0.2)) == pytest.approx(hand, abs=1e-6)
    # Tsallis: c·((π/π_k)^{q−1} − 1)/(q − 1) + λ log π_k − Q, and q → 1 gives back the KL form
    qq = 2.0
    hand = np.mean(2.0 * (r - 1.0) + 0.2 * old.numpy() - q.numpy())
    assert float(mdpo_off_policy_loss(lp, old, q, 2.0, 0.2, qq)) == pytest.approx(hand, abs=1e-6)
    x = torch.tensor([0.3, -0.7])
    assert torch.allclose(tsallis_log_ratio(x, 1.0 + 1e-7), x, atol=1e-6)


def test_linear_t_k() -> None:
    assert [linear_t_k(k, 4) for k in range(6)] == [1.0, 0.75, 0.5, 0.25, 0.25, 0.25]


# ---- SB3 learners on a fixed batch ------------------------------------------------------------
def _pendulum() -> gymnasium.Env:
    return gymnasium.make("Pendulum-v1")


def _normal_logpdf(x, m, s):
    return -0.5 * ((x - m) / s) ** 2 - np.log(s) - 0.5 * np.log(2 * np.pi)


def test_on_policy_loss_of_a_linear_gaussian_policy_by_hand() -> None:
    model = MDPOOnPolicy(
        "MlpPolicy",
        _pendulum(),
        n_steps=64,
        batch_size=32,
        seed=0,
        policy_kwargs={"net_arch": {"pi": [], "vf": []}},
    )
    W, b, log_std = np.array([[0.3, -0.2, 0.5]]), np.array([0.1]), np.array([-0.4])
    with torch.no_grad():
        model.policy.action_net.weight.copy_(torch.tensor(W))
        model.policy.action_net.bias.copy_(torch.tensor(b))
        model.policy.log_std.copy_(torch.tensor(log_std))
    rng = np.random.default_rng(0)
    obs = rng.normal(size=(6, 3)).astype(np.float32)
    act = rng.normal(size=(6, 1)).astype(np.float32)
    m0, s0 = rng.normal(size=(6, 1)), np.exp(rng.normal(size=(6, 1)) * 0.3)
    old_lp = _normal_logpdf(act, m0, s0).sum(1)
    adv = rng.normal(size=6)
    t_k = 0.6
    old_dist = torch.distributions.Normal(
        torch.tensor(m0, dtype=torch.float32), torch.tensor(s0, dtype=torch.float32)
    )
    loss, info = model.policy_loss(
        torch.tensor(obs),
        torch.tensor(act),
        torch.tensor(old_lp, dtype=torch.float32),
        torch.tensor(adv, dtype=torch.float32),
        old_dist,
        t_k,
    )
    mean = obs.astype(np.float64) @ W.T + b
    std = np.exp(log_std)
    lp = _normal_logpdf(act, mean, std).sum(1)
    kl = (np.log(s0 / std) + (std**2 + (mean - m0) ** 2) / (2 * s0**2) - 0.5).sum(1)
    hand = -np.mean(np.exp(lp - old_lp) * adv) + kl.mean() / t_k
    assert loss.item() == pytest.approx(hand, rel=1e-5, abs=1e-6)
    assert float(info["kl"]) == pytest.approx(kl.mean(), rel=1e-5)


def _fill(model, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for _ in range(n):
        o = rng.normal(size=(1, 3)).astype(np.float32)
        model.replay_buffer.add(
            o,
            o * 0.5,
            rng.uniform(-1, 1, size=(1, 1)).astype(np.float32),
            rng.normal(size=1).astype(np.float32),
            np.array([False]),
            [{}],
        )


def _off_models(kl_coef):
    kw = dict(
        learning_starts=0,
        buffer_size=500,
        batch_size=16,
        ent_coef=0.2,
        seed=7,
        policy_kwargs={"net_arch": [16, 16]},
    )
    sac = SAC("MlpPolicy", _pendulum(), **kw)
    ours = MDPOOffPolicy("MlpPolicy", _pendulum(), kl_coef=kl_coef, copy_every=1, **kw)
    ours.policy.load_state_dict(sac.policy.state_dict())
    ours.old_actor.load_state_dict(sac.actor.state_dict())
    for m in (sac, ours):
        _fill(m, 100, seed=1)
        m.set_logger(Logger(folder=None, output_formats=[]))
    return sac, ours


def _train_same_randomness(model, steps: int) -> None:
    torch.manual_seed(11)
    np.random.seed(11)  # noqa: NPY002  (SB3's replay buffer samples from numpy's global RNG)
    model.train(gradient_steps=steps, batch_size=16)


def test_off_policy_with_c_equal_lambda_is_sac_step_for_step() -> None:
    sac, ours = _off_models(kl_coef=0.2)
    _train_same_randomness(sac, 5)
    _train_same_randomness(ours, 5)
    for (n, p), (_, q) in zip(sac.policy.state_dict().items(), ours.policy.state_dict().items()):
        assert torch.equal(p, q), n
    assert (
        sac.logger.name_to_value["train/actor_loss"]
        == ours.logger.name_to_value["train/actor_loss"]
    )
    # with c ≠ λ the KL to the old actor changes the update
    sac, other = _off_models(kl_coef=1.0)
    _train_same_randomness(sac, 5)
    _train_same_randomness(other, 5)
    assert not torch.equal(sac.actor.mu.weight, other.actor.mu.weight)


def test_off_policy_actor_loss_by_hand() -> None:
    model = MDPOOffPolicy(
        "MlpPolicy",
        _pendulum(),
        kl_coef=1.5,
        ent_coef=0.2,
        seed=0,
        buffer_size=100,
        policy_kwargs={"net_arch": []},
    )
    with torch.no_grad():  # make the old actor different from the current one
        for p in model.old_actor.parameters():
            p.add_(0.3)
    obs = torch.tensor(np.random.default_rng(0).normal(size=(5, 3)), dtype=torch.float32)
    a, lp = model.actor.action_log_prob(obs)
    u = model.actor.action_dist.gaussian_actions.detach().numpy().astype(np.float64)
    c = torch.tensor(1.5)
    loss = model.actor_loss(obs, a, lp.reshape(-1, 1), model.actor.action_dist.gaussian_actions, c)

    def tanh_gauss_logp(actor):
        W, b = actor.mu.weight.detach().numpy(), actor.mu.bias.detach().numpy()
        Ws, bs = actor.log_std.weight.detach().numpy(), actor.log_std.bias.detach().numpy()
        x = obs.numpy().astype(np.float64)
        mean, ls = x @ W.T + b, np.clip(x @ Ws.T + bs, -20, 2)
        return (_normal_logpdf(u, mean, np.exp(ls)) - np.log(1 - np.tanh(u) ** 2 + 1e-6)).sum(1)

    lp_new, lp_old = tanh_gauss_logp(model.actor), tanh_gauss_logp(model.old_actor)
    assert np.allclose(lp.detach().numpy(), lp_new, atol=1e-4)
    with torch.no_grad():
        q = torch.min(*model.critic(obs, a)).numpy()[:, 0].astype(np.float64)
    hand = np.mean(1.5 * lp_new + (0.2 - 1.5) * lp_old - q)
    assert loss.item() == pytest.approx(hand, abs=1e-4)


def test_sb3_save_load_predict(tmp_path) -> None:
    obs = np.zeros(3, dtype=np.float32)
    on = MDPOOnPolicy("MlpPolicy", _pendulum(), n_steps=64, batch_size=32, seed=0, sgd_steps=3)
    on.learn(64)
    on.save(tmp_path / "on")
    on2 = MDPOOnPolicy.load(tmp_path / "on")
    assert on2.sgd_steps == 3
    assert np.array_equal(
        on.predict(obs, deterministic=True)[0], on2.predict(obs, deterministic=True)[0]
    )
    off = MDPOOffPolicy(
        "MlpPolicy",
        _pendulum(),
        seed=0,
        learning_starts=20,
        batch_size=8,
        buffer_size=200,
        policy_kwargs={"net_arch": [8]},
        kl_coef=0.5,
    )
    off.learn(40)
    off.save(tmp_path / "off")
    off2 = MDPOOffPolicy.load(tmp_path / "off")
    assert off2.kl_coef == 0.5
    assert torch.equal(off.old_actor.mu.weight, off2.old_actor.mu.weight)
    assert np.array_equal(
        off.predict(obs, deterministic=True)[0], off2.predict(obs, deterministic=True)[0]
    )


# ---- prl learners: determinism, smoke, checkpoints, config errors -------------------------------
ON_TINY = {
    "n_steps": 128,
    "batch_size": 64,
    "n_epochs": 2,
    "sgd_steps": 3,
    "chunk": 128,
    "net_arch": [16, 16],
}
OFF_TINY = {
    "learning_starts": 64,
    "batch_size": 32,
    "buffer_size": 1000,
    "chunk": 64,
    "net_arch": [16, 16],
    "copy_every": 50,
}


@pytest.mark.parametrize(("algo", "cfg"), [("mdpo_on", ON_TINY), ("mdpo_off", OFF_TINY)])
def test_same_seed_same_numbers(algo: str, cfg: dict) -> None:
    runs = [train(algo, "Hopper-v5", seed=s, steps=256, config=cfg)[1] for s in (3, 3, 4)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    assert runs[0][-1]["step"] == 256
    key = "kl" if algo == "mdpo_on" else "c"
    assert math.isfinite(runs[0][-1][key])


@pytest.mark.parametrize(
    ("algo", "cfg"),
    [
        ("mdpo_on", ON_TINY),
        ("mdpo_on", {**ON_TINY, "variant": "ppo"}),
        ("mdpo_off", OFF_TINY),
        ("mdpo_off", {**OFF_TINY, "variant": "sac"}),
    ],
)
def test_checkpoint_loads_safely_and_training_continues(algo: str, cfg: dict) -> None:
    learner, _ = train(algo, "Hopper-v5", seed=0, steps=128, config=cfg)
    buf = io.BytesIO()
    torch.save(learner.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    from prl.registry import ALGOS

    cls = ALGOS.get(algo)
    fresh = cls(build_config(cls.Config, cfg), "Hopper-v5", {}, 1, torch.device("cpu"))
    fresh.load_state_dict(state)
    for p, q in zip(learner.model.policy.parameters(), fresh.model.policy.parameters()):
        assert torch.equal(p, q)
    assert fresh.steps_done == 128
    row = fresh.step()
    assert fresh.steps_done > 128 and "return" in row
    fresh.close()


def test_replay_buffer_round_trips_through_the_safe_checkpoint() -> None:
    """The filled part of SAC's buffer is stored (exact resume); a mismatched buffer is refused."""
    from prl.registry import ALGOS

    learner, _ = train("mdpo_off", "Hopper-v5", seed=0, steps=128, config=OFF_TINY)
    buf = io.BytesIO()
    torch.save(learner.state_dict(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    rb = learner.model.replay_buffer
    assert rb.pos == 128 and not rb.full
    assert state["replay_buffer"]["observations"].shape[0] == 128
    cls = ALGOS.get("mdpo_off")
    fresh = cls(build_config(cls.Config, OFF_TINY), "Hopper-v5", {}, 1, torch.device("cpu"))
    fresh.load_state_dict(state)
    for f in ("observations", "next_observations", "actions", "rewards", "dones", "timeouts"):
        assert np.array_equal(getattr(fresh.model.replay_buffer, f), getattr(rb, f)), f
    assert fresh.model.replay_buffer.pos == 128
    assert fresh.model.learning_starts == OFF_TINY["learning_starts"]  # no refill needed
    fresh.close()
    small = cls(
        build_config(cls.Config, {**OFF_TINY, "buffer_size": 100}), "Hopper-v5", {}, 1, "cpu"
    )
    with pytest.raises(ConfigError, match="replay buffer"):
        small.load_state_dict(state)
    small.close()
    without = {**OFF_TINY, "checkpoint_buffer": False}
    learner2, _ = train("mdpo_off", "Hopper-v5", seed=0, steps=128, config=without)
    state2 = learner2.state_dict()
    assert "replay_buffer" not in state2
    fresh2 = cls(build_config(cls.Config, without), "Hopper-v5", {}, 1, torch.device("cpu"))
    fresh2.load_state_dict(state2)
    assert fresh2.model.learning_starts == 128 + OFF_TINY["batch_size"]  # refills a batch
    fresh2.close()


def test_config_and_env_errors() -> None:
    with pytest.raises(ConfigError):
        train("mdpo_off", "Hopper-v5", steps=10, config={"kl_coef": 0.1, "lam": 0.2})
    with pytest.raises(ConfigError):
        train("mdpo_on", "Hopper-v5", steps=10, config={"sgd_steps": 0})
    with pytest.raises(ConfigError):
        train("mdpo_off", "karmed", steps=10)  # discrete actions: not for SAC-style MDPO


def test_t_k_anneals_over_iterations() -> None:
    _, rows = train(
        "mdpo_on",
        "chain",
        seed=0,
        steps=4 * 32,
        config={
            "n_steps": 32,
            "batch_size": 16,
            "n_epochs": 1,
            "sgd_steps": 2,
            "chunk": 32,
            "anneal_steps": 4 * 32,
            "net_arch": [8],
        },
    )
    assert [r["t_k"] for r in rows] == [1.0, 0.75, 0.5, 0.25]


# ---- the theory checks (quick mode) -------------------------------------------------------------
@pytest.mark.parametrize(
    "name",
    [
        "pmd_sublinear_bound",
        "pmd_sublinear_slope",
        "pmd_entropy_linear_rate",
        "pmd_geometric_linear_rate",
    ],
)
def test_quick_checks_pass(name: str) -> None:
    from prl.checks import get_check

    res = get_check(name).run(quick=True, device="cpu", seed=0)
    assert res.passed, res.summary()


def test_chain_rewards_used_by_checks_are_in_unit_interval() -> None:
    m = chain_mdp(10, 0.9, slip=0.1, small_reward=0.2, large_reward=1.0)
    assert m.R.min() >= 0 and m.R.max() <= 1  # the Agarwal bound assumes r ∈ [0, 1]
