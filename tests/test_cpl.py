"""CPL: the loss against hand computations, exact tabular answers (optimal actions, the soft-
optimal policy, the conservative bias), the learners (determinism, checkpoint/resume, datasets),
a tiny MuJoCo smoke run and the MetaWorld tasks."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from prl import envs
from prl.algos.cpl import cpl_dense_loss, cpl_loss, cpl_tabular, segment_score
from prl.algos.offline_baselines import tabular_metrics, top_episode_segments
from prl.data import PreferenceDataset, generate_dataset, label_pairs, tabular_chunks
from prl.errors import ConfigError, InvalidInputError
from prl.mdp import random_mdp
from prl.oracles import Regret, tabular_advantage_fn
from prl.run import run_experiment, train

torch.set_num_threads(1)


# ---- the loss ------------------------------------------------------------------------------------
def _paper_loss(s_pos: float, s_neg: float, lam: float) -> float:
    """−log [exp S⁺ / (exp S⁺ + exp λS⁻)] (Hejna et al., Eq. 5), evaluated directly."""
    return -math.log(math.exp(s_pos) / (math.exp(s_pos) + math.exp(lam * s_neg)))


LP_A = [[-0.1, -0.7], [-1.2, -0.3], [-0.4, -0.4]]
LP_B = [[-0.5, -0.2], [-0.05, -2.0], [-1.0, -0.1]]
REF_A = [[-0.3, -0.3], [-0.9, -0.6], [-0.2, -0.5]]
REF_B = [[-0.6, -0.1], [-0.2, -1.5], [-0.7, -0.3]]
LABEL = [1.0, 0.0, 0.25]  # pair 2 carries a soft label


@pytest.mark.parametrize("lam", [1.0, 0.5])
@pytest.mark.parametrize("kl", [False, True])
def test_cpl_loss_matches_hand_computation(lam: float, kl: bool) -> None:
    alpha, gamma = 0.5, 0.9
    lp_a, lp_b = torch.tensor(LP_A, dtype=torch.float64), torch.tensor(LP_B, dtype=torch.float64)
    if kl:  # CPL-KL scores α Σ γ^t (log π − log π_ref)
        lp_a = lp_a - torch.tensor(REF_A, dtype=torch.float64)
        lp_b = lp_b - torch.tensor(REF_B, dtype=torch.float64)
    sa = segment_score(lp_a, alpha, gamma)
    sb = segment_score(lp_b, alpha, gamma)
    expect, hand_sa = [], []
    for i in range(3):
        ra = [LP_A[i][t] - (REF_A[i][t] if kl else 0.0) for t in range(2)]
        rb = [LP_B[i][t] - (REF_B[i][t] if kl else 0.0) for t in range(2)]
        s_a = alpha * (ra[0] + gamma * ra[1])
        s_b = alpha * (rb[0] + gamma * rb[1])
        hand_sa.append(s_a)
        y = LABEL[i]
        expect.append(y * _paper_loss(s_a, s_b, lam) + (1 - y) * _paper_loss(s_b, s_a, lam))
    assert sa.tolist() == pytest.approx(hand_sa, abs=1e-15)
    loss = cpl_loss(sa, sb, torch.tensor(LABEL, dtype=torch.float64), lam)
    assert float(loss) == pytest.approx(sum(expect) / 3, abs=1e-14)
    masked = cpl_loss(
        sa, sb, torch.tensor(LABEL, dtype=torch.float64), lam, torch.tensor([True, False, True])
    )
    assert float(masked) == pytest.approx((expect[0] + expect[2]) / 2, abs=1e-14)


def test_dense_loss_ranks_every_pair_of_the_batch() -> None:
    S = torch.tensor([-1.0, -0.2, -3.0], dtype=torch.float64)
    oracle = torch.tensor([0.5, 2.0, 0.5])  # 1 ≻ 0, 1 ≻ 2; 0 and 2 tie (left out)
    loss, acc = cpl_dense_loss(S, oracle, lam=0.5)
    hand = (_paper_loss(-0.2, -1.0, 0.5) + _paper_loss(-0.2, -3.0, 0.5)) / 2
    assert float(loss) == pytest.approx(hand, abs=1e-14)
    assert float(acc) == 1.0


def test_loss_is_stable_for_extreme_scores() -> None:
    s = torch.tensor([-1e5, 1e5], dtype=torch.float64, requires_grad=True)
    loss = cpl_loss(s[:1], s[1:], torch.tensor([1.0], dtype=torch.float64), 0.5)
    loss.backward()
    assert math.isfinite(float(loss.detach())) and torch.all(torch.isfinite(s.grad))


# ---- exact tabular answers -----------------------------------------------------------------------
def _regret_dataset(mdp, pi, n_segments, T, n_pairs, seed, oracle=None):
    return generate_dataset(
        None,
        chunk_fn=tabular_chunks(mdp, pi, n_segments, T, start="uniform"),
        n_chunks=1,
        oracle=oracle or Regret.from_mdp(mdp),
        n_pairs=n_pairs,
        seed=seed,
        progress=False,
    )


def test_tabular_cpl_recovers_the_optimal_action_from_regret_preferences() -> None:
    """Hard labels sampled from the regret model σ(Σγ^t A*(σ⁺) − Σγ^t A*(σ⁻)) with the exact A*:
    the unbiased loss (λ = 1) picks an optimal action in ≥ 99% of states (here: all 60)."""
    correct = total = 0
    for seed in range(3):
        mdp = random_mdp(20, 4, 0.9, np.random.default_rng(seed), reward_scale=10.0)
        ds = _regret_dataset(mdp, np.full((20, 4), 0.25), 10_000, 16, 100_000, seed)
        log_pi = cpl_tabular(ds, 20, 4, alpha=0.1, lam=1.0, discount=0.9, steps=100)
        m = tabular_metrics(mdp, np.exp(log_pi))
        correct += round(m["optimal_action_frac"] * 20)
        total += 20
    assert correct / total >= 0.99


def test_tabular_cpl_is_exact_for_soft_regret_preferences() -> None:
    """With max-ent regret labels A*_soft = α log π*_soft and their exact probabilities as soft
    labels, the CPL optimum (λ = 1) is the soft-optimal policy of the MDP."""
    alpha = 0.5
    mdp = random_mdp(6, 3, 0.8, np.random.default_rng(4))
    pi_soft, _, _ = mdp.soft_optimal(alpha)
    oracle = Regret(tabular_advantage_fn(alpha * np.log(pi_soft)), beta=1.0, discount=0.8)
    ds = _regret_dataset(mdp, np.full((6, 3), 1 / 3), 600, 4, 3000, 0, oracle)
    soft = PreferenceDataset(
        ds.segments,
        ds.pairs,
        oracle.prob(ds.segments[ds.pairs[:, 0]], ds.segments[ds.pairs[:, 1]]),
        ds.mask,
    )
    log_pi = cpl_tabular(soft, 6, 3, alpha=alpha, lam=1.0, discount=0.8, steps=200)
    np.testing.assert_allclose(np.exp(log_pi), pi_soft, atol=1e-4)


def test_conservative_bias_keeps_absent_actions_unlikely() -> None:
    """Action 3 never appears in the data: λ < 1 drives it to ~0, λ = 1 leaves it unconstrained."""
    mdp = random_mdp(8, 4, 0.9, np.random.default_rng(0), reward_scale=10.0)
    pi = np.full((8, 4), 1 / 3)
    pi[:, 3] = 0.0
    ds = _regret_dataset(mdp, pi, 1500, 8, 10_000, 0)
    assert not np.any(ds.segments.actions == 3)
    absent = {}
    for lam in (1.0, 0.5):
        log_pi = cpl_tabular(
            ds, 8, 4, alpha=0.1, lam=lam, discount=0.9, steps=200, optimizer="adam", lr=0.05
        )
        absent[lam] = np.exp(log_pi[:, 3])
    assert absent[0.5].max() < 0.01
    assert absent[1.0].mean() > 0.1  # no pressure at all: gradient steps wander off-data


def test_policy_heads_log_probs() -> None:
    from gymnasium import spaces

    from prl.algos.offline_baselines import OfflinePolicy

    box = spaces.Box(-2.0, 2.0, (2,), np.float32)
    obs = torch.randn(5, 3)
    act = torch.rand(5, 2) * 3.8 - 1.9
    a = act / 2.0  # actions are handled in [-1, 1]
    for kind in ("mse", "gaussian", "tanh_gaussian"):
        pol = OfflinePolicy(spaces.Box(-1, 1, (3,)), box, (), 0.0, kind)
        out = pol.net(obs)
        if kind == "mse":  # the authors' fixed-variance surrogate −‖tanh μ − a‖²
            want = -((torch.tanh(out) - a) ** 2).sum(-1)
        elif kind == "gaussian":
            want = torch.distributions.Normal(out, pol.log_std.exp()).log_prob(a).sum(-1)
        else:
            mu, log_std = out.chunk(2, -1)
            base = torch.distributions.Normal(mu, log_std.clamp(-5, 2).exp())
            u = torch.atanh(a)
            want = (base.log_prob(u) - torch.log(1 - a**2)).sum(-1)
        torch.testing.assert_close(pol.log_prob(obs, act), want, rtol=1e-4, atol=1e-4)
        acts = pol.act(obs.numpy(), deterministic=False)
        assert acts.shape == (5, 2) and np.all(np.abs(acts) <= 2.0)
    with pytest.raises(ConfigError, match="does not fit"):
        OfflinePolicy(spaces.Discrete(3), box, (), 0.0, "categorical")


# ---- learners ------------------------------------------------------------------------------------
TINY = {
    "hidden": [16],
    "dropout": 0.1,
    "lr": 3e-3,
    "batch_size": 16,
    "eval_every": 20,
    "n_segments": 400,
    "n_pairs": 800,
}
ALGOS = {
    "cpl": {"bc_steps": 0, "warmup_steps": 5},
    "cpl_kl": {"variant": "cpl_kl", "bc_steps": 15, "warmup_steps": 0},
    "cpl_dense": {"data_mode": "dense", "bc_steps": 10, "bc_coeff": 0.5, "warmup_steps": 0},
    "piql": {"reward_steps": 15},
    "sft": {"bc_steps": 15},
    "pct_bc": {"percent": 20.0},
    "bc": {},
}
ENV_KW = {"S": 8, "A": 3}


def _algo(key: str) -> str:
    return "cpl" if key.startswith("cpl") else key


def _exact_value(mdp, pi: np.ndarray) -> float:
    """J(π) = μ0ᵀ(I − γ P_π)⁻¹ r_π with episodes ending on entering a terminal state."""
    P = mdp.P * (~np.asarray(mdp.terminal, bool))[None, None, :]
    P_pi = np.einsum("sa,sat->st", pi, P)
    r_pi = (pi * mdp.R).sum(1)
    return float(mdp.mu0 @ np.linalg.solve(np.eye(mdp.S) - mdp.gamma * P_pi, r_pi))


def _optimal_fraction(mdp, pi: np.ndarray) -> float:
    """Share of non-terminal states whose argmax action is optimal, by value iteration."""
    P = mdp.P * (~np.asarray(mdp.terminal, bool))[None, None, :]
    V = np.zeros(mdp.S)
    for _ in range(5000):
        V = (mdp.R + mdp.gamma * P @ V).max(1)
    Q = mdp.R + mdp.gamma * P @ V
    ok = Q[np.arange(mdp.S), pi.argmax(1)] >= Q.max(1) - 1e-6
    live = ~np.asarray(mdp.terminal, bool)
    return float(ok[live].mean())


@pytest.mark.parametrize("key", list(ALGOS))
def test_learners_are_deterministic_and_resume_exactly(key: str, tmp_path: Path) -> None:
    cfg = {**TINY, **ALGOS[key]}
    algo = _algo(key)
    learner, rows_a = train(algo, "random_mdp", seed=3, steps=30, config=cfg, env_kwargs=ENV_KW)
    _, rows_b = train(algo, "random_mdp", seed=3, steps=30, config=cfg, env_kwargs=ENV_KW)
    assert rows_a == rows_b
    # the reported metrics are those of the final policy, by an independent exact evaluation
    pi = learner.policy_table()
    assert rows_a[-1]["return_stochastic"] == pytest.approx(_exact_value(learner.mdp, pi), abs=1e-9)
    assert rows_a[-1]["optimal_action_frac"] == _optimal_fraction(learner.mdp, pi)
    # stop at 20 steps (checkpoint), resume to 30: identical to the uninterrupted run
    first = run_experiment(
        algo,
        "random_mdp",
        seed=3,
        steps=20,
        config=cfg,
        env_kwargs=ENV_KW,
        out=tmp_path,
        checkpoint_every=20,
        progress=False,
        device="cpu",
    )
    res = run_experiment(
        algo,
        "random_mdp",
        seed=3,
        steps=30,
        out=tmp_path,
        resume=first.run_dir,
        progress=False,
        device="cpu",
    )
    assert res.resumed and res.steps_done == 30
    want = {k: v for k, v in rows_a[-1].items() if k != "step"}
    got = {k: v for k, v in res.final.items() if k != "step"}
    assert got == pytest.approx(want, abs=0, rel=0)


def test_cpl_learner_finds_the_optimum_of_a_small_mdp() -> None:
    cfg = {
        **TINY,
        "hidden": [],
        "dropout": 0.0,
        "lr": 0.05,
        "bc_steps": 0,
        "warmup_steps": 0,
        "batch_size": 64,
        "n_segments": 1000,
        "n_pairs": 4000,
        "behaviour_noise": 1.0,
        "eval_every": 150,
    }
    _, rows = train(
        "cpl", "random_mdp", seed=0, steps=150, config=cfg, env_kwargs={"S": 6, "A": 3, "seed": 1}
    )
    assert rows[-1]["optimal_action_frac"] == 1.0
    assert rows[-1]["normalized_return"] == pytest.approx(1.0)


def test_learners_read_dataset_files_and_reject_bad_ones(tmp_path: Path) -> None:
    env = envs.make("random_mdp", **ENV_KW)
    mdp = env.unwrapped.mdp
    ds = generate_dataset(
        tmp_path / "d.npz",
        chunk_fn=tabular_chunks(mdp, np.full((8, 3), 1 / 3), 200, 6),
        n_chunks=1,
        oracle=Regret.from_mdp(mdp),
        n_pairs=300,
        seed=0,
        meta={"env": "random_mdp", "label_discount": 0.9},
        progress=False,
    )
    cfg = {**TINY, "dataset": str(tmp_path / "d.npz"), "bc_steps": 0}
    learner, _ = train("cpl", "random_mdp", seed=0, steps=5, config=cfg, env_kwargs=ENV_KW)
    assert learner.discount == 0.9 and learner.n_segments == len(ds)
    with pytest.raises(InvalidInputError, match="made with env='random_mdp', expected env='chain'"):
        train("cpl", "chain", seed=0, steps=5, config=cfg)
    fresh = tmp_path / "made_here.npz"  # a missing dataset path is generated once, then reused
    learner, _ = train(
        "bc", "random_mdp", steps=2, config={**TINY, "dataset": str(fresh)}, env_kwargs=ENV_KW
    )
    assert fresh.exists() and PreferenceDataset.load(fresh).meta["env"] == "random_mdp"
    (tmp_path / "bad.npz").write_bytes((tmp_path / "d.npz").read_bytes()[:500])
    with pytest.raises(InvalidInputError, match="corrupted"):
        train(
            "cpl",
            "random_mdp",
            seed=0,
            steps=5,
            config={**cfg, "dataset": str(tmp_path / "bad.npz")},
            env_kwargs=ENV_KW,
        )


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="lam"):
        train("cpl", "random_mdp", steps=1, config={"lam": 1.5})
    with pytest.raises(ConfigError, match="cpl_kl needs bc_steps"):
        train("cpl", "random_mdp", steps=1, config={"variant": "cpl_kl", "bc_steps": 0})
    with pytest.raises(ConfigError, match="runs on"):
        train("cpl", "dueling", steps=1)


def test_top_episode_selection() -> None:
    env = envs.make("random_mdp", **ENV_KW)
    mdp = env.unwrapped.mdp
    ds = generate_dataset(
        None,
        chunk_fn=tabular_chunks(mdp, np.full((8, 3), 1 / 3), 50, 4),
        n_chunks=1,
        oracle=Regret.from_mdp(mdp),
        n_pairs=10,
        progress=False,
    )
    ret = ds.segments.returns()
    top = top_episode_segments(ds, 10.0)
    assert sorted(top.tolist()) == sorted(np.argsort(-ret, kind="stable")[:5].tolist())


def test_hopper_smoke_with_a_tiny_sac_expert() -> None:
    """The whole MuJoCo path on a tiny budget: SAC expert, noisy rollouts, critic labels, CPL."""
    cfg = {
        "hidden": [16],
        "dropout": 0.0,
        "batch_size": 8,
        "bc_steps": 3,
        "warmup_steps": 0,
        "expert_steps": 150,
        "episodes": 3,
        "segment_length": 5,
        "n_segments": 30,
        "n_pairs": 40,
        "eval_every": 10,
        "eval_episodes": 1,
    }
    learner, rows = train("cpl", "Hopper-v5", seed=0, steps=10, config=cfg)
    assert learner.data.segments.obs.shape == (30, 5, 11)
    assert learner.data.meta["label_discount"] == 1.0
    assert np.isfinite(rows[-1]["return"]) and rows[-1]["episode_length"] >= 1
    assert np.all(np.isfinite(learner.data.scores))


def test_metaworld_tasks_report_success() -> None:
    from metaworld.policies import SawyerDrawerOpenV3Policy

    env = envs.make("mw-drawer-open-v3", horizon=150)
    expert = SawyerDrawerOpenV3Policy()
    obs, info = env.reset(seed=0)
    assert obs.shape == (39,) and obs.dtype == np.float64 and info["success"] is False
    assert np.any(obs[-3:] != 0)  # the goal is observable
    done, success, steps = False, False, 0
    while not done:
        obs, r, term, trunc, info = env.step(np.clip(expert.get_action(obs), -1, 1))
        success |= info["success"]
        done, steps = term or trunc, steps + 1
        assert 0.0 <= r <= 1.0  # MetaWorld's [0, 10] reward divided by 10
    assert success and steps == 150
    a, _ = env.reset(seed=5)
    b, _ = env.reset(seed=5)
    np.testing.assert_array_equal(a, b)
    from prl.envs.metaworld_tasks import MetaWorldTaskEnv

    with pytest.raises(ConfigError, match="unknown MetaWorld"):
        MetaWorldTaskEnv(task="nope")


def test_discounted_returns_closed_form() -> None:
    """G_t = Σ γ^k r_{t+k}; a terminated end adds nothing, a truncated one γ·V(s')."""
    from prl.data import Rollouts, discounted_returns

    ro = Rollouts(
        obs=np.zeros((5, 1)),
        actions=np.zeros((5, 1)),
        rewards=np.ones(5),
        next_obs=np.zeros((5, 1)),
        terminated=np.array([0, 0, 1, 0, 0], bool),
        truncated=np.array([0, 0, 0, 0, 1], bool),
        episode=np.array([0, 0, 0, 1, 1]),
    )
    g = discounted_returns(ro, 0.5, tail=np.full(5, 4.0))
    np.testing.assert_allclose(g, [1.75, 1.5, 1.0, 1 + 0.5 * (1 + 0.5 * 4), 1 + 0.5 * 4])
    with pytest.raises(InvalidInputError, match="tail"):
        discounted_returns(ro, 0.5, tail=np.zeros(3))


def test_fit_rollout_value_bootstraps_truncated_ends() -> None:
    """Reward 1 forever, episodes cut at 30 steps: V = 1/(1 − γ) = 10 at every state (γ = 0.9);
    one Monte-Carlo round alone is ≈ 30% short of it, three bootstrapped rounds are not."""
    from prl.data import Rollouts, fit_rollout_value

    n, T = 600, 30
    obs = np.random.default_rng(0).normal(size=(n, 3))
    ro = Rollouts(
        obs=obs,
        actions=np.zeros((n, 1)),
        rewards=np.ones(n),
        next_obs=np.roll(obs, -1, axis=0),
        terminated=np.zeros(n, bool),
        truncated=(np.arange(n) % T) == T - 1,
        episode=np.arange(n) // T,
    )
    one = fit_rollout_value(ro, 0.9, hidden=(16,), rounds=1, steps=400, lr=1e-2)
    three = fit_rollout_value(ro, 0.9, hidden=(16,), rounds=3, steps=400, lr=1e-2)
    assert abs(one.value(obs).mean() - 10.0) > 2.0
    np.testing.assert_allclose(three.value(obs).mean(), 10.0, atol=0.3)
    again = fit_rollout_value(ro, 0.9, hidden=(16,), rounds=3, steps=400, lr=1e-2)
    np.testing.assert_array_equal(three.value(obs), again.value(obs))  # seeded


def test_scripted_metaworld_expert_and_its_dataset() -> None:
    """MetaWorld's scripted policy opens the drawer; a scripted dataset records its behaviour,
    the fitted value's held-out correlation, and refuses non-MetaWorld tasks."""
    from prl.algos.offline_baselines import OfflineConfig, default_dataset
    from prl.config import build_config
    from prl.data import collect_rollouts
    from prl.envs.metaworld_tasks import scripted_policy

    env = envs.make("mw-drawer-open-v3", horizon=150)
    pol = scripted_policy("mw-drawer-open-v3")
    ro = collect_rollouts(env, pol, np.random.default_rng(0), n_episodes=3)
    assert ro.infos["success"].reshape(3, -1).max(1).all()
    with pytest.raises(ConfigError, match="no scripted MetaWorld policy"):
        scripted_policy("mw-nope-v3")
    cfg = build_config(
        OfflineConfig,
        {"expert": "scripted", "episodes": 2, "n_segments": 20, "segment_length": 8,
         "behaviour_noise": 1.0, "data_mode": "dense"},
    )  # fmt: skip
    ds = default_dataset("mw-drawer-open-v3", {"horizon": 40}, cfg)
    assert ds.meta["behaviour"] == "scripted+N(0,1.0^2)" and ds.meta["expert"] == "scripted"
    assert -1.0 <= ds.meta["value_heldout_corr"] <= 1.0
    assert ds.segments.obs.shape == (20, 8, 39) and np.all(np.isfinite(ds.scores))
    with pytest.raises(ConfigError, match="need a MetaWorld task"):
        default_dataset("Hopper-v5", {}, cfg)


def test_label_pairs_on_cpl_datasets_match_scores() -> None:
    """The dense dataset's scores are the oracle's: ranking labels agree with label_pairs."""
    mdp = random_mdp(5, 2, 0.9, np.random.default_rng(0))
    oracle = Regret.from_mdp(mdp, beta=np.inf)
    dense = generate_dataset(
        None,
        chunk_fn=tabular_chunks(mdp, np.full((5, 2), 0.5), 100, 4),
        n_chunks=1,
        oracle=oracle,
        mode="dense",
        progress=False,
    )
    pairs = np.array([[0, 1], [2, 3], [4, 5]])
    prefs = label_pairs(dense.segments, pairs, oracle, np.random.default_rng(0))
    s = dense.scores
    expect = np.where(
        s[pairs[:, 0]] > s[pairs[:, 1]],
        1.0,
        np.where(s[pairs[:, 0]] < s[pairs[:, 1]], 0.0, prefs.label),
    )
    np.testing.assert_array_equal(prefs.label, expect)


# ---- fidelity to the authors' configs ------------------------------------------------------------
def test_cpl_kl_runs_at_the_authors_learning_rate() -> None:
    """CPL-KL: BC at lr 1e-4, then Adam re-created at 1e-4 × 0.1 × min(1, k/warm-up): 1e-5 after
    the warm-up (the authors' CPL-KL configs); plain CPL keeps 1e-4."""
    base = {**TINY, "lr": 1e-4, "bc_steps": 3, "warmup_steps": 0}
    kl, _ = train(
        "cpl", "random_mdp", steps=3, config={**base, "variant": "cpl_kl"}, env_kwargs=ENV_KW
    )
    assert kl.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)  # BC phase
    kl.step()
    assert kl.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5, rel=1e-12)
    plain, _ = train("cpl", "random_mdp", steps=4, config=base, env_kwargs=ENV_KW)
    assert plain.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4, rel=1e-12)
    warm, _ = train(
        "cpl",
        "random_mdp",
        steps=5,
        config={**base, "variant": "cpl_kl", "warmup_steps": 4},
        env_kwargs=ENV_KW,
    )
    assert warm.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5 * 2 / 4, rel=1e-12)


def test_dense_data_ranks_random_pairs_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """The authors' dense configs draw random pairs and label them by score ('rank' mode), not
    every pair of a batch: each CPL step consumes batch_size random pairs."""
    from prl.algos import cpl as cpl_mod
    from prl.algos.offline_baselines import OfflineLearner

    calls: list[int] = []
    real = OfflineLearner.sample_pairs

    def spy(self, n: int):
        calls.append(n)
        return real(self, n)

    def no_all_pairs(*a, **k):
        raise AssertionError("the dense default must not rank all pairs of a batch")

    monkeypatch.setattr(OfflineLearner, "sample_pairs", spy)
    monkeypatch.setattr(cpl_mod, "cpl_dense_loss", no_all_pairs)
    cfg = {**TINY, "data_mode": "dense", "bc_steps": 0, "warmup_steps": 0}
    train("cpl", "random_mdp", steps=3, config=cfg, env_kwargs=ENV_KW)
    assert calls == [TINY["batch_size"]] * 3
    monkeypatch.setattr(cpl_mod, "cpl_dense_loss", cpl_dense_loss)
    calls.clear()
    train("cpl", "random_mdp", steps=3, config={**cfg, "dense_pairs": "all"}, env_kwargs=ENV_KW)
    assert calls == []


def test_neural_cpl_with_a_one_hot_linear_policy_reaches_the_tabular_optimum() -> None:
    """A linear policy on one-hot states can represent every tabular policy, so minibatch Adam
    on the CPL loss ends near the exact full-batch minimizer of :func:`cpl_tabular` on the same
    data (α = 1, λ = 0.5: a strictly convex problem with an interior optimum)."""
    cfg = {
        **TINY,
        "hidden": [],
        "dropout": 0.0,
        "lr": 0.01,
        "bc_steps": 0,
        "warmup_steps": 0,
        "batch_size": 1000,
        "n_segments": 200,
        "n_pairs": 1000,
        "behaviour_noise": 1.0,
        "eval_every": 10**6,
        "alpha": 1.0,
        "lam": 0.5,
    }
    kw = {"S": 6, "A": 3, "seed": 1}
    learner, _ = train("cpl", "random_mdp", seed=0, steps=500, config=cfg, env_kwargs=kw)
    log_pi = cpl_tabular(
        learner.data, 6, 3, alpha=1.0, lam=0.5, discount=learner.discount, steps=200
    )
    exact = np.exp(log_pi)
    assert 0.5 * np.abs(exact - 1 / 3).sum(1).max() > 0.05  # the optimum is far from uniform
    tv = 0.5 * np.abs(learner.policy_table() - exact).sum(1).max()
    assert tv < 0.03
