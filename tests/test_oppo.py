"""OPPO: the triplet and norm losses against hand computations, z* reproducing the preferred
behaviour of a deterministic chain, determinism and exact resume, mixed-quality datasets and
teachers, a tiny MuJoCo smoke run and the baselines on the same data files."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from prl import envs
from prl.algos.oppo import horizon_value, norm_loss, preference_triplet_loss, triplet_loss
from prl.data import PreferenceDataset
from prl.errors import ConfigError, InvalidInputError
from prl.offline_datasets import (
    medium_epsilon,
    mixed_quality_dataset,
    noisy_greedy_policy,
    relabel,
    tabular_levels,
    teacher_oracle,
)
from prl.run import run_experiment, train

torch.set_num_threads(1)


# ---- the losses ----------------------------------------------------------------------------------
def _dist(x: list[float], y: list[float], p: float) -> float:
    return sum(abs(a - b) ** p for a, b in zip(x, y)) ** (1.0 / p)


ANCHOR = [0.3, -0.2, 0.9]
ZA = [[1.5, 0.5, -0.5], [0.2, -0.1, 0.8], [0.3, -0.2, 0.9], [-0.5, 0.4, 0.2]]
ZB = [[0.1, 0.0, 1.0], [2.0, 1.0, -1.0], [0.0, 0.0, 0.0], [-0.4, 0.5, 0.1]]


@pytest.mark.parametrize("p", [2.0, 1.0])
def test_triplet_loss_matches_hand_computation(p: float) -> None:
    a = torch.tensor(ANCHOR, dtype=torch.float64)
    za, zb = torch.tensor(ZA, dtype=torch.float64), torch.tensor(ZB, dtype=torch.float64)
    got = triplet_loss(a, za, zb, margin=1.0, p=p, eps=0.0)
    hand = [max(_dist(ANCHOR, x, p) - _dist(ANCHOR, y, p) + 1.0, 0.0) for x, y in zip(ZA, ZB)]
    assert got.tolist() == pytest.approx(hand, abs=1e-14)
    assert hand[1] == 0.0 and hand[0] > 0  # one inactive triplet (distance gap beyond the margin)
    # with the default ε = 1e-6 it is torch's TripletMarginLoss (anchor broadcast, mean reduction)
    ref = torch.nn.TripletMarginLoss(margin=1.0, p=p)(a.expand(4, 3), za, zb)
    assert float(triplet_loss(a, za, zb, p=p).mean()) == pytest.approx(float(ref), abs=1e-14)


def test_preference_loss_orients_pairs_by_label_and_drops_ties() -> None:
    a = torch.tensor(ANCHOR, dtype=torch.float64)
    za, zb = torch.tensor(ZA, dtype=torch.float64), torch.tensor(ZB, dtype=torch.float64)

    def ell(pos: list[float], neg: list[float]) -> float:
        return max(_dist(ANCHOR, pos, 2) - _dist(ANCHOR, neg, 2) + 1.0, 0.0)

    label = torch.tensor([1.0, 0.0, 0.5, 0.25], dtype=torch.float64)  # a≻b, b≻a, tie, soft
    got = preference_triplet_loss(a, za, zb, label, eps=0.0)
    soft = 0.25 * ell(ZA[3], ZB[3]) + 0.75 * ell(ZB[3], ZA[3])
    hand = (ell(ZA[0], ZB[0]) + ell(ZB[1], ZA[1]) + soft) / 3  # the tie carries no direction
    assert float(got) == pytest.approx(hand, abs=1e-14)
    mask = torch.tensor([True, False, True, True])
    got = preference_triplet_loss(a, za, zb, label, mask=mask, eps=0.0)
    assert float(got) == pytest.approx((ell(ZA[0], ZB[0]) + soft) / 2, abs=1e-14)
    ties = torch.full((4,), 0.5, dtype=torch.float64)
    assert float(preference_triplet_loss(a, za, zb, ties)) == 0.0


def test_norm_loss_matches_hand_computation() -> None:
    z = torch.tensor([[3.0, 4.0], [0.0, 0.0], [0.6, 0.8], [1.0, 1.0]], dtype=torch.float64)
    hand = ((5 - 1) ** 2 + (0 - 1) ** 2 + 0.0 + (math.sqrt(2) - 1) ** 2) / 4
    assert float(norm_loss(z)) == pytest.approx(hand, abs=1e-14)


@pytest.fixture(scope="module")
def box_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Random Hopper-shaped segments (11-d observations, 3-d actions), some with padding."""
    from prl.types import Segments

    rng = np.random.default_rng(0)
    N, T = 12, 6
    valid = np.ones((N, T), bool)
    valid[::3, 4:] = False  # unequal numbers of valid steps per segment
    seg = Segments(
        obs=rng.normal(size=(N, T, 11)),
        actions=rng.uniform(-1, 1, size=(N, T, 3)),
        rewards=rng.normal(size=(N, T)),
        infos={"valid": valid},
    )
    pairs = np.stack([np.arange(0, N, 2), np.arange(1, N, 2)], 1)
    ds = PreferenceDataset(seg, pairs, rng.integers(0, 2, len(pairs)).astype(float), np.ones(6))
    ds.meta["env"] = "Hopper-v5"
    path = tmp_path_factory.mktemp("oppo_box") / "box.npz"
    ds.save(path)
    return path


@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_encoder_loss_has_the_authors_scaling(box_data: Path, arch: str) -> None:
    """The authors' loss: recon(τ_a) + recon(τ_b), each a mean over valid steps × action dims of
    the squared error, + 0.1·triplet + 0.1·[mean(‖z_a‖−1)² + mean(‖z_b‖−1)²]; the pooled form
    is d/2 times it (relative weights 0.05·d and 0.1·d)."""
    cfg = {**TINY, "dataset": str(box_data), "arch": arch, "dropout": 0.0, "window": 3}
    learner, _ = train("oppo", "Hopper-v5", seed=0, steps=1, config=cfg, env_kwargs={})
    m = learner.model
    m.eval()
    ia, ib = torch.tensor([0, 2, 4]), torch.tensor([1, 3, 5])
    lab = torch.tensor([1.0, 0.0, 1.0])
    with torch.no_grad():
        got = learner.losses(ia, ib, lab)
        idx = torch.cat([ia, ib])
        obs_f, act_f, valid = learner.obs_f[idx], learner.act_f[idx], learner.valid[idx]
        z = m.encode_features(obs_f, act_f, valid)
        err = (torch.tanh(m._seq_out(obs_f, act_f, z)) - act_f) ** 2  # [6, T, 3]
        recon = [err[rows][valid[rows]].mean() for rows in (slice(0, 3), slice(3, 6))]
        norms = torch.linalg.vector_norm(z, dim=-1)
        nrm = [((norms[rows] - 1) ** 2).mean() for rows in (slice(0, 3), slice(3, 6))]
        trip = preference_triplet_loss(learner.zstar().detach(), z[:3], z[3:], lab)
    want = recon[0] + recon[1] + 0.1 * trip + 0.1 * (nrm[0] + nrm[1])
    assert float(got["total"]) == pytest.approx(float(want), rel=1e-5)
    assert float(got["recon"]) == pytest.approx(float(recon[0] + recon[1]), rel=1e-5)
    learner.config.loss_scaling = "pooled"  # the same networks, the lab's earlier scaling
    with torch.no_grad():
        old = learner.losses(ia, ib, lab)
    v = valid.to(err.dtype)
    want_pooled = (err.sum(-1) * v).sum() / v.sum()
    assert float(old["recon"]) == pytest.approx(float(want_pooled), rel=1e-5)
    assert float(old["norm"]) == pytest.approx(float((nrm[0] + nrm[1]) / 2), rel=1e-5)


# ---- a deterministic chain with known best trajectories ------------------------------------------
CHAIN = {"n": 5, "slip": 0.0, "horizon": 20}
BASE = {"hidden": [32], "dropout": 0.0, "lr": 3e-3, "batch_size": 32, "eval_every": 10**6}
TINY = {
    **BASE,
    "embed_dim": 32,
    "n_layers": 1,
    "zstar_lr": 1e-2,
    "warmup_steps": 0,
    "eval_episodes": 1,
}


@pytest.fixture(scope="module")
def chain_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Whole 20-step episodes from state 0 of three behaviours: uniform, always "back" (2 per
    step) and always "forward" (0 for 4 steps, then 10 per step at the far end)."""
    S = CHAIN["n"]
    pols = {
        "random": np.full((S, 2), 0.5),
        "medium": np.tile([0.0, 1.0], (S, 1)),
        "expert": np.tile([1.0, 0.0], (S, 1)),
    }
    path = tmp_path_factory.mktemp("oppo") / "chain.npz"
    mixed_quality_dataset(
        path,
        make_env=lambda: envs.make("chain", **CHAIN),
        env_name="chain",
        env_kwargs=CHAIN,
        policies=pols,
        n_segments=300,
        n_pairs=600,
        segment_length=20,
    )
    return path


def _greedy_return(learner, z=None) -> float:
    return learner.rollouts(1, z)["return_undiscounted"]


@pytest.mark.parametrize(("arch", "steps"), [("mlp", 150), ("transformer", 100)])
def test_optimal_context_reproduces_the_preferred_behaviour(
    chain_data: Path, arch: str, steps: int
) -> None:
    """The best 20-step return from state 0 is (20 − 4)·10 = 160 (walk to the end, stay); the
    dataset holds such trajectories among worse ones, and π(·|s, z*) reproduces them."""
    best = (CHAIN["horizon"] - (CHAIN["n"] - 1)) * 10.0
    ds = PreferenceDataset.load(chain_data, expect={"env": "chain"})
    assert ds.segments.returns().max() == best
    cfg = {**TINY, "dataset": str(chain_data), "arch": arch}
    learner, _ = train("oppo", "chain", seed=0, steps=steps, config=cfg, env_kwargs=CHAIN)
    assert _greedy_return(learner) >= 0.9 * best
    # behaviour cloning of the whole dataset does not: at state 0 "back" is the majority action
    cfg = {**BASE, "dataset": str(chain_data)}
    _, rows = train("bc", "chain", seed=0, steps=150, config=cfg, env_kwargs=CHAIN)
    mdp = envs.make("chain", **CHAIN).unwrapped.mdp
    fwd = np.tile([1.0, 0.0], (CHAIN["n"], 1))
    assert rows[-1]["return"] < 0.9 * mdp.expected_return(fwd)
    if arch == "mlp":  # exact evaluation: the greedy policy of π(·|s, z*) is optimal everywhere
        m = learner.evaluate()
        assert m["optimal_action_frac"] == 1.0 and m["normalized_return"] == pytest.approx(1.0)


def test_horizon_value_matches_a_closed_form() -> None:
    mdp = envs.make("chain", **CHAIN).unwrapped.mdp
    fwd = np.tile([1.0, 0.0], (CHAIN["n"], 1))
    back = np.tile([0.0, 1.0], (CHAIN["n"], 1))
    g = mdp.gamma
    assert horizon_value(mdp, fwd, 20) == pytest.approx(sum(10 * g**t for t in range(4, 20)))
    assert horizon_value(mdp, back, 20) == pytest.approx(2 * (1 - g**20) / (1 - g))


# ---- learner mechanics ---------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["mlp", "transformer"])
def test_oppo_is_deterministic_and_resumes_exactly(arch: str, tmp_path: Path) -> None:
    cfg = {
        **TINY,
        "arch": arch,
        "n_segments": 90,
        "n_pairs": 150,
        "segment_length": 6,
        "window": 4,
        "dropout": 0.1,
        "eval_every": 8,
        "warmup_steps": 5,
    }
    kw = {"S": 6, "A": 3}
    _, rows_a = train("oppo", "random_mdp", seed=2, steps=12, config=cfg, env_kwargs=kw)
    _, rows_b = train("oppo", "random_mdp", seed=2, steps=12, config=cfg, env_kwargs=kw)
    assert rows_a == rows_b
    assert all(np.isfinite(v) for v in rows_a[-1].values())
    first = run_experiment(
        "oppo",
        "random_mdp",
        seed=2,
        steps=8,
        config=cfg,
        env_kwargs=kw,
        out=tmp_path,
        checkpoint_every=8,
        progress=False,
        device="cpu",
    )
    res = run_experiment(
        "oppo",
        "random_mdp",
        seed=2,
        steps=12,
        out=tmp_path,
        resume=first.run_dir,
        progress=False,
        device="cpu",
    )
    assert res.resumed and res.steps_done == 12
    want = {k: v for k, v in rows_a[-1].items() if k != "step"}
    got = {k: v for k, v in res.final.items() if k != "step"}
    assert got == pytest.approx(want, abs=0, rel=0)
    ckpt = torch.load(first.run_dir / "checkpoint.pt", weights_only=True)
    assert "zstar" in ckpt["learner"] and "model" in ckpt["learner"]


def test_anchor_and_encoder_steps_are_separated(chain_data: Path) -> None:
    """Step (1) sends no gradient to z* (anchor detached); step (2) none to the encoder."""
    cfg = {**TINY, "dataset": str(chain_data), "arch": "mlp"}
    learner, _ = train("oppo", "chain", seed=0, steps=1, config=cfg, env_kwargs=CHAIN)
    ia, ib, lab = learner.sample_pairs(16)
    learner.optimizer.zero_grad(set_to_none=True)
    learner.opt_zstar.zero_grad(set_to_none=True)
    learner.losses(ia, ib, lab)["total"].backward()
    assert learner.zstar.z.grad is None
    assert any(p.grad is not None for p in learner.model.parameters())
    learner.optimizer.zero_grad(set_to_none=True)
    before = {k: v.clone() for k, v in learner.model.state_dict().items()}
    z0 = learner.zstar.z.detach().clone()
    learner.update()
    assert not torch.equal(learner.zstar.z.detach(), z0)
    assert any(not torch.equal(before[k], v) for k, v in learner.model.state_dict().items())


def test_bad_configs_are_rejected() -> None:
    with pytest.raises(ConfigError, match="arch"):
        train("oppo", "chain", steps=1, config={"arch": "rnn"})
    with pytest.raises(ConfigError, match="teacher"):
        train("oppo", "chain", steps=1, config={"teacher": "oracle"})
    with pytest.raises(ConfigError, match="n_heads must divide"):
        train("oppo", "chain", steps=1, config={"embed_dim": 10, "n_heads": 3})
    with pytest.raises(ConfigError, match="runs on"):
        train("oppo", "dueling", steps=1)
    with pytest.raises(ConfigError, match="does not fit"):
        train(
            "oppo",
            "chain",
            steps=1,
            config={**TINY, "policy": "mse", "n_segments": 30, "n_pairs": 30},
        )


# ---- mixed-quality datasets and teachers ---------------------------------------------------------
def test_medium_level_has_the_requested_exact_value() -> None:
    mdp = envs.make("delivery").unwrapped.mdp
    eps = medium_epsilon(mdp, 0.5)
    pi = (1 - eps) * mdp.optimal_policy() + eps / mdp.A
    J_star = float(mdp.v_star() @ mdp.mu0)
    J_unif = mdp.expected_return(np.full((mdp.S, mdp.A), 1 / mdp.A))
    assert (mdp.expected_return(pi) - J_unif) / (J_star - J_unif) == pytest.approx(0.5, abs=1e-6)
    pols = tabular_levels(mdp, medium="epsilon_greedy")
    np.testing.assert_allclose(pols["medium"], pi)
    assert medium_epsilon(mdp, 1.0) == pytest.approx(0.0, abs=1e-8)
    # the default medium: a deterministic greedy policy of a noisy Q*, value close to the target
    greedy, value = noisy_greedy_policy(mdp, 0.5)
    assert np.all(greedy.max(1) == 1.0) and np.all(greedy.sum(1) == 1.0)
    J = mdp.expected_return(greedy)
    assert (J - J_unif) / (J_star - J_unif) == pytest.approx(value, abs=1e-12)
    assert abs(value - 0.5) < 0.1 and np.any(greedy != mdp.optimal_policy())
    np.testing.assert_array_equal(tabular_levels(mdp)["medium"], greedy)


def test_gridworld_dataset_levels_teachers_and_files(tmp_path: Path) -> None:
    make = lambda: envs.make("delivery")
    path = tmp_path / "delivery.npz"
    ds = mixed_quality_dataset(
        path, make_env=make, env_name="delivery", n_segments=300, n_pairs=2000, segment_length=20
    )
    assert ds.meta["levels"] == ["random", "medium", "expert"] and ds.meta["teacher"] == "scripted"
    lv = ds.meta["level_values"]
    assert lv["random"] < lv["medium"] < lv["expert"]
    lr = ds.meta["level_returns"]
    assert lr["random"] < lr["medium"] < lr["expert"]
    ret = ds.segments.returns()
    np.testing.assert_allclose(ds.scores, ret)  # scripted teacher = true segment return
    a, b = ds.pairs[:, 0], ds.pairs[:, 1]
    hard = np.where(ret[a] > ret[b], 1.0, np.where(ret[a] < ret[b], 0.0, 0.5))
    np.testing.assert_array_equal(ds.label, hard)
    # the file is reused (no regeneration: the env factory is not called again)
    again = mixed_quality_dataset(path, make_env=None, env_name="delivery")
    np.testing.assert_array_equal(again.label, ds.label)
    with pytest.raises(InvalidInputError, match="expected env='chain'"):
        mixed_quality_dataset(path, make_env=None, env_name="chain")
    # noisy teachers relabel the same pairs
    mistake = relabel(ds, teacher_oracle("mistake", eps=0.2), seed=1)
    np.testing.assert_array_equal(mistake.pairs, ds.pairs)
    decided = ds.label != 0.5
    flips = np.mean(mistake.label[decided] != ds.label[decided])
    assert 0.15 < flips < 0.25
    equal = relabel(ds, teacher_oracle("equal", ret, equal_fraction=0.05))
    thr = 0.05 * (ret.max() - ret.min())
    np.testing.assert_array_equal(equal.label == 0.5, np.abs(ret[a] - ret[b]) < thr)
    skip = relabel(ds, teacher_oracle("skip", ret, skip_quantile=0.25))
    np.testing.assert_array_equal(~skip.mask, np.maximum(ret[a], ret[b]) <= np.quantile(ret, 0.25))
    noisy = mixed_quality_dataset(
        tmp_path / "noisy.npz",
        make_env=make,
        env_name="delivery",
        n_segments=300,
        n_pairs=2000,
        teacher="stochastic",
    )
    assert noisy.meta["teacher"] == "stochastic" and (tmp_path / "noisy_scripted.npz").exists()
    np.testing.assert_array_equal(noisy.pairs, ds.pairs)
    with pytest.raises(InvalidInputError, match="teacher must be one of"):
        teacher_oracle("oracle")
    # regret labels (Knox et al.) with the exact A*: Σ_t γ^t A*(s_t, a_t), ties (e.g. two
    # optimal segments, both 0) labelled ½
    mdp = make().unwrapped.mdp
    regret = relabel(ds, teacher_oracle("regret", mdp=mdp))
    adv = mdp.advantage_star()[ds.segments.obs, ds.segments.actions]
    s = adv @ (mdp.gamma ** np.arange(ds.segments.length))
    tie = np.isclose(s[a], s[b], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(regret.label, np.where(tie, 0.5, (s[a] > s[b]).astype(float)))
    assert np.any(tie & (s[a] == 0))


def test_baselines_and_oppo_train_on_the_same_file(chain_data: Path) -> None:
    for algo, extra in (("piql", {"reward_steps": 3}), ("pct_bc", {"percent": 30.0})):
        cfg = {**BASE, "dataset": str(chain_data), **extra}
        learner, rows = train(algo, "chain", seed=0, steps=4, config=cfg, env_kwargs=CHAIN)
        # the reported return is the final policy's, by an independent exact evaluation
        mdp, pi = learner.mdp, learner.policy_table()
        P = mdp.P * (~np.asarray(mdp.terminal, bool))[None, None, :]
        V = np.linalg.solve(
            np.eye(mdp.S) - mdp.gamma * np.einsum("sa,sat->st", pi, P), (pi * mdp.R).sum(1)
        )
        assert rows[-1]["return_stochastic"] == pytest.approx(float(mdp.mu0 @ V), abs=1e-9)


def test_hopper_smoke_with_tiny_sac_levels() -> None:
    """The whole MuJoCo path on a tiny budget: SAC snapshots, three levels, transformer OPPO."""
    cfg = {
        **TINY,
        "arch": "transformer",
        "expert_steps": 120,
        "medium_steps": 60,
        "episodes": 2,
        "segment_length": 8,
        "window": 4,
        "n_segments": 30,
        "n_pairs": 40,
        "batch_size": 8,
        "eval_episodes": 2,
    }
    kw = {"max_episode_steps": 40}
    learner, rows = train("oppo", "Hopper-v5", seed=0, steps=4, config=cfg, env_kwargs=kw)
    seg = learner.data.segments
    assert seg.obs.shape == (30, 8, 11) and set(np.unique(seg.infos["behaviour"])) == {0, 1, 2}
    assert np.isfinite(rows[-1]["return"]) and 1 <= rows[-1]["episode_length"] <= 40
    assert set(learner.data.meta["level_returns"]) == {"random", "medium", "expert"}
