"""Reward-model RLHF and its reusable pieces: learned-reward wrapper, query budget, store."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch

from prl import envs
from prl.algos.rlhf import (
    RLHF,
    LearnedRewardWrapper,
    OnFactors,
    QueryBudget,
    ScaledReward,
    TrajectoryScore,
    TrajectoryStore,
    episodes_to_segments,
    jerk,
    label_pairs,
    max_height,
    preference_source,
    query_pairs,
    random_policy_trajectories,
)
from prl.algos.spo_deep import torch_threads
from prl.config import build_config
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import BradleyTerry, Hierarchical, MajorityVote
from prl.reward_model import RewardModel
from prl.run import train
from prl.types import Segments
from prl.utils import resolve_device, seed_everything

ENV = "PendulumFactored-v1"
EK = {"max_episode_steps": 10}
TINY = {
    "n_envs": 2,
    "query_budget": 100,
    "queries_per_iter": 6,
    "eval_episodes": 1,
    "batch_size": 20,
    "n_epochs": 2,
    "pool_size": 4,
    "hidden": [16, 16],
    "rm_hidden": [16],
    "rm_steps": 5,
    "rm_batch": 8,
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with torch_threads(1):
        yield


def _same(r1: list[dict], r2: list[dict]) -> bool:
    def norm(r: dict) -> dict:
        return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}

    return [norm(r) for r in r1] == [norm(r) for r in r2]


# ---- learned reward wrapper ------------------------------------------------------------------
def test_learned_reward_wrapper() -> None:
    base = envs.make(ENV, **EK)
    model = RewardModel(base.observation_space, base.action_space, hidden=(8,),
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    wrapped = LearnedRewardWrapper(envs.make(ENV, **EK), ScaledReward(model, 2.0))
    o1, _ = wrapped.reset(seed=3)
    base.reset(seed=3)
    for a in (np.array([5.0], dtype=np.float32), np.array([-0.5], dtype=np.float32)):
        r_hat = 2.0 * model.reward_numpy(o1[None], np.clip(a, -2, 2)[None])[0]  # executed action
        o1, r, _, _, info = wrapped.step(a)
        _, r_true, *_ = base.step(a)
        assert r == pytest.approx(r_hat, rel=1e-6)
        assert info["true_reward"] == r_true
        assert "reward_factors" in info
    with pytest.raises(InvalidInputError):
        LearnedRewardWrapper(base, "not a model")


# ---- queries ---------------------------------------------------------------------------------
def test_query_budget() -> None:
    b = QueryBudget(10)
    assert b.take(4) == 4 and b.take(9) == 6 and b.take(3) == 0
    assert b.exhausted and b.used == 10 and b.remaining == 0
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ConfigError):
            QueryBudget(bad)


def test_query_pairs_all_or_subsampled() -> None:
    rng = np.random.default_rng(0)
    a, b = query_pairs(4, 3, 1000, rng)
    assert len(a) == 4 * 3 // 2 + 4 * 3  # within-batch pairs + batch × queue
    assert set(zip(a.tolist(), b.tolist())) >= {(0, 1), (2, 3), (0, 4), (3, 6)}
    assert np.all(a < 4) and np.all(a != b)
    a2, b2 = query_pairs(4, 3, 5, rng)
    assert len(a2) == 5 and len(set(zip(a2.tolist(), b2.tolist()))) == 5


def test_label_pairs_respects_the_budget() -> None:
    rew = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    pool = Segments(np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), rew)
    budget = QueryBudget(2)
    pairs = np.array([[0, 1], [1, 2], [2, 0]])
    prefs = label_pairs(pool, pairs, BradleyTerry(np.inf), np.random.default_rng(0), budget=budget)
    assert len(prefs) == 2 and budget.exhausted
    np.testing.assert_array_equal(prefs.label, [1.0, 0.0])  # 1 > 0, 0 < 3
    rng = np.random.default_rng(0)
    assert label_pairs(pool, np.array([[0, 1]]), BradleyTerry(1.0), rng, budget=budget) is None


def test_factor_oracles_through_on_factors() -> None:
    # Hopper factors [forward, healthy, ctrl_cost]: a moves forward more, b spends less
    F = np.zeros((2, 3, 3))
    F[0, :, 0], F[1, :, 0] = 2.0, 1.0
    F[0, :, 2], F[1, :, 2] = 0.5, 0.1
    seg = Segments(np.zeros((2, 3, 1)), np.zeros((2, 3, 1)), F @ [1.0, 1.0, -1.0],
                   infos={"factors": F})  # fmt: skip
    by_speed = OnFactors(Hierarchical(order=[0, 2], margins=0.0, signs=[1, 1, -1]))
    by_cost = OnFactors(Hierarchical(order=[2, 0], margins=0.0, signs=[1, 1, -1]))
    assert by_speed.prob(seg[[0]], seg[[1]])[0] == 1.0
    assert by_cost.prob(seg[[0]], seg[[1]])[0] == 0.0
    prefs = by_speed.label(seg[[0]], seg[[1]], np.random.default_rng(0))
    assert prefs.a.rewards.ndim == 2 and prefs.label[0] == 1.0  # labels on the originals
    mv = OnFactors(MajorityVote.from_weights(np.eye(3) * [1, 1, -1]))
    assert mv.prob(seg[[0]], seg[[1]])[0] == 0.5  # speed a, healthy tie, cost b: no majority
    with pytest.raises(InvalidInputError, match="factors"):
        by_speed.prob(Segments(np.zeros((1, 1, 1)), np.zeros((1, 1, 1)), np.zeros((1, 1))),
                      seg[[0]])  # fmt: skip


def test_trajectory_store_roundtrip() -> None:
    seg = random_policy_trajectories(ENV, 4, np.random.default_rng(1), **EK)
    prefs = BradleyTerry(np.inf).label(seg[[0, 3]], seg[[2, 2]], np.random.default_rng(0))
    store = TrajectoryStore()
    store.add(prefs, seg, np.array([0, 3]), np.array([2, 2]))
    assert store.n_trajectories == 3 and len(store) == 2  # trajectory 1 never asked: not kept
    batch = store.batch(np.array([1]))
    np.testing.assert_allclose(batch.obs_a[0].numpy(), seg.obs[3], rtol=1e-6)
    np.testing.assert_allclose(batch.obs_b[0].numpy(), seg.obs[2], rtol=1e-6)
    assert float(batch.label[0]) == prefs.label[1]
    buf = io.BytesIO()
    torch.save(store.state_dict(), buf)
    buf.seek(0)
    other = TrajectoryStore()
    other.load_state_dict(torch.load(buf, weights_only=True))
    np.testing.assert_array_equal(other.batch(np.array([0, 1])).act_a, store.batch(
        np.array([0, 1])).act_a)  # fmt: skip


def _store_with_lengths(lengths: list[int], T: int = 12) -> TrajectoryStore:
    """A store of len(lengths) trajectories whose obs encode (trajectory, step) = 100·i + t."""
    B = len(lengths)
    obs = (100 * np.arange(B)[:, None] + np.arange(T)[None, :]).astype(np.float32)[..., None]
    valid = np.arange(T)[None, :] < np.asarray(lengths)[:, None]
    seg = Segments(obs=obs, actions=obs.copy(), rewards=np.zeros((B, T)), infos={"valid": valid})
    a, b = np.arange(B - 1), np.arange(1, B)
    prefs = BradleyTerry(np.inf).label(seg[a], seg[b], np.random.default_rng(0))
    store = TrajectoryStore()
    store.add(prefs, seg, a, b)
    return store


def test_trajectory_store_clips_are_windows_of_valid_steps() -> None:
    lengths = [12, 3, 7, 12, 5]
    store = _store_with_lengths(lengths)
    np.testing.assert_array_equal(store.lengths(), lengths)
    idx = np.repeat(np.arange(len(store)), 400)
    b = store.batch(idx, clip=5, rng=np.random.default_rng(3))
    assert b.obs_a.shape == (idx.size, 5, 1) and b.valid_a.shape == (idx.size, 5)
    starts = {i: set() for i in range(len(lengths))}
    sides = ((b.obs_a, b.valid_a, store.a[idx]), (b.obs_b, b.valid_b, store.b[idx]))
    for obs, valid, traj in sides:
        o, v = obs[..., 0].numpy().astype(int), valid.numpy()
        for row, i in enumerate(traj):
            t0 = o[row, 0] - 100 * i
            assert o[row, 0] // 100 == i  # the pair's own trajectory
            np.testing.assert_array_equal(o[row] - o[row, 0], np.arange(5))  # consecutive
            # the window lies inside the valid prefix; shorter trajectories enter whole
            assert 0 <= t0 <= max(lengths[i] - 5, 0)
            np.testing.assert_array_equal(v[row], t0 + np.arange(5) < lengths[i])
            starts[i].add(int(t0))
    # every start 0 .. L − clip is drawn (400 draws per pair)
    assert all(starts[i] == set(range(max(L - 5, 0) + 1)) for i, L in enumerate(lengths))
    np.testing.assert_array_equal(b.label.numpy(), store.label[idx])
    # same generator, same windows; clip >= T: the whole trajectories
    b2 = store.batch(idx, clip=5, rng=np.random.default_rng(3))
    assert torch.equal(b.obs_a, b2.obs_a) and torch.equal(b.obs_b, b2.obs_b)
    whole = store.batch(idx[:3], clip=12)
    assert torch.equal(whole.obs_a, store.batch(idx[:3]).obs_a)
    with pytest.raises(InvalidInputError, match="rng"):
        store.batch(idx, clip=5)


def test_trajectory_store_valid_steps_keeps_the_newest() -> None:
    store = _store_with_lengths([4, 2, 3])
    obs, act = store.valid_steps()
    assert act.shape == obs.shape
    np.testing.assert_array_equal(obs[:, 0], [0, 1, 2, 3, 100, 101, 200, 201, 202])
    obs, _ = store.valid_steps(4)
    np.testing.assert_array_equal(obs[:, 0], [101, 200, 201, 202])


def test_trajectory_scores() -> None:
    seg = random_policy_trajectories("HopperFactored-v5", 3, np.random.default_rng(0),
                                     max_episode_steps=20)  # fmt: skip
    v = seg.infos["valid"]
    for i in range(3):
        assert max_height(seg)[i] == seg.infos["height"][i][v[i]].max()
        a = seg.actions[i][v[i]].astype(np.float64)
        assert jerk(seg)[i] == pytest.approx(((a[1:] - a[:-1]) ** 2).sum())
    nm = preference_source("nonmarkov", "HopperFactored-v5").oracle
    assert isinstance(nm, TrajectoryScore)
    p = nm.prob(seg[[0]], seg[[1]])[0]
    assert p == (1.0 if max_height(seg)[0] > max_height(seg)[1] else 0.0)
    with pytest.raises(ConfigError, match="factored env"):
        preference_source("intransitive", "Hopper-v5")
    with pytest.raises(ConfigError, match="preference must be"):
        preference_source("transitiv", ENV)


def test_episodes_to_segments_pads() -> None:
    seg = random_policy_trajectories("HopperFactored-v5", 2, np.random.default_rng(3),
                                     max_episode_steps=200)  # fmt: skip
    v = seg.infos["valid"]
    assert seg.length == 200 and not v.all()  # random hoppers fall before 200 steps
    assert np.all(seg.rewards[~v] == 0) and np.all(seg.infos["factors"][~v] == 0)
    w = np.array([1.0, 1.0, -1.0])
    np.testing.assert_allclose(seg.infos["factors"] @ w, seg.rewards, atol=1e-9)
    with pytest.raises(InvalidInputError):
        episodes_to_segments([], 10)


# ---- the learner -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, match",
    [
        ({"query_budget": 0}, "query_budget"),
        ({"query_budget": "many"}, "query_budget"),
        ({"queries_per_iter": -1}, "queries_per_iter"),
        ({"query_budget": 5, "queries_per_iter": 6}, "exceeds query_budget"),
        ({"rm_batch": 0}, "rm_batch"),
        ({"rm_clip": -1}, "rm_clip"),
    ],
)
def test_invalid_configs_are_rejected(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train("rlhf", ENV, steps=10, config={**TINY, **bad}, env_kwargs=EK)


@pytest.mark.parametrize("pref", ["transitive", "intransitive", "nonmarkov"])
def test_tiny_smoke(pref: str) -> None:
    cfg = {**TINY, "preference": pref, "query_budget": 10}
    learner, rows = train("rlhf", ENV, seed=0, steps=60, config=cfg, env_kwargs=EK)
    # 2 new trajectories per iteration: 1 pair; then 1 + 2×2 (pool of 2) = 5; then
    # min(queries_per_iter 6, 1 + 2×4, budget left 4) = 4
    assert [r["queries"] for r in rows] == [1, 6, 10]
    assert rows[-1]["labels"] == 10 == len(learner.store)
    assert np.isfinite(rows[1]["reward_loss"]) and np.isfinite(rows[-1]["eval_return"])


def test_buffer_is_relabelled_with_the_newest_reward_model() -> None:
    learner = RLHF(build_config(RLHF.Config, {**TINY, "eval_episodes": 0}), ENV, EK, 0,
                   resolve_device("cpu"))  # fmt: skip
    learner.model.train = lambda: None  # keep the buffer unflattened
    learner.step()
    buf = learner.model.rollout_buffer
    act = np.clip(buf.actions, -2.0, 2.0)
    r_now = learner.reward(buf.observations.reshape(-1, 3), act.reshape(-1, 1)).reshape(10, 2)
    # Pendulum never terminates: only the time-limit steps (t = 9) carry SB3's γ·V bootstrap
    np.testing.assert_allclose(buf.rewards[:9], r_now[:9], rtol=1e-4, atol=1e-5)
    assert learner.reward.scale != 1.0  # rescaled after the fit
    learner.close()


def test_deferred_and_per_step_learned_rewards_fill_the_same_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One batched r̂ call after collection = one call per env step (bootstrap terms included)."""
    bufs = []
    for deferred in (True, False):
        monkeypatch.setattr(RLHF, "deferred_reward", deferred)
        learner = RLHF(build_config(RLHF.Config, {**TINY, "eval_episodes": 0}), ENV, EK, 0,
                       resolve_device("cpu"))  # fmt: skip
        assert learner.model.deferred_reward is deferred
        learner.model.train = lambda: None  # keep the buffer unflattened
        learner.step()
        bufs.append(learner.model.rollout_buffer.rewards.copy())
        wrapper = learner.venv.venv.venv.envs[0].env  # under EnvAccess
        assert isinstance(wrapper, LearnedRewardWrapper) and wrapper.deferred is deferred
        learner.close()
    assert np.abs(bufs[0]).max() > 0
    np.testing.assert_allclose(bufs[0], bufs[1], rtol=1e-5, atol=1e-6)


def test_deferred_wrapper_returns_zero() -> None:
    base = envs.make(ENV, **EK)
    model = RewardModel(base.observation_space, base.action_space, hidden=(8,),
                        generator=torch.Generator().manual_seed(0))  # fmt: skip
    wrapped = LearnedRewardWrapper(base, model, deferred=True)
    wrapped.reset(seed=0)
    _, r, _, _, info = wrapped.step(np.array([0.3], dtype=np.float32))
    assert r == 0.0 and np.isfinite(info["true_reward"])


@pytest.mark.parametrize("clip", [0, 4])  # whole 10-step trajectories / 4-step windows
def test_determinism_and_exact_resume(clip: int) -> None:
    cfg = {**TINY, "preference": "stochastic", "eval_episodes": 0, "rm_clip": clip}
    _, r1 = train("rlhf", ENV, seed=4, steps=60, config=cfg, env_kwargs=EK)
    _, r2 = train("rlhf", ENV, seed=4, steps=60, config=cfg, env_kwargs=EK)
    assert _same(r1, r2)
    c = build_config(RLHF.Config, cfg)
    seed_everything(4)
    a = RLHF(c, ENV, EK, 4, resolve_device("cpu"))
    rows = [a.step(), a.step()]
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    a.close()
    buf.seek(0)
    seed_everything(11)
    b = RLHF(c, ENV, EK, 4, resolve_device("cpu"))
    b.load_state_dict(torch.load(buf, weights_only=True))
    rows.append(b.step())
    b.close()
    assert _same([{k: v for k, v in r.items() if k != "step"} for r in r1], rows)


@pytest.mark.long
def test_whole_trajectory_refit_reproduces_the_golden_run_before_clips(tmp_path, golden) -> None:
    """rm_clip=0 is the refit before 50-step windows became the default: the golden run stored
    then (tests/data/golden/rlhf_whole.metrics.csv) reproduces bit for bit."""
    import subprocess
    import sys

    cmd = [sys.executable, "-m", "prl.cli", "run", "rlhf", "--env", ENV, "--steps", "1000",
           "--threads", "1", "--rm-clip", "0", "--out", str(tmp_path)]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    (metrics,) = tmp_path.glob("*/metrics.csv")
    golden(metrics, "rlhf_whole")
