"""The preference-data pipeline: rollouts, segments, pairs, labels, the dataset file format
(corrupted and mismatched files are rejected), resumable generation and expert-critic labels."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium import spaces

from prl import envs
from prl.data import (
    CriticScore,
    ExpertCritic,
    PreferenceDataset,
    Rollouts,
    collect_rollouts,
    fragment,
    generate_dataset,
    label_pairs,
    pairs_dense,
    pairs_sparse,
    sample_tabular_segments,
    tabular_chunks,
    tabular_policy,
    uniform_policy,
)
from prl.errors import InvalidInputError
from prl.mdp import TabularMDP, random_mdp
from prl.oracles import BradleyTerry, Regret, bpref_teacher

torch.set_num_threads(1)


# ---- rollouts and segments -----------------------------------------------------------------------
def test_tabular_segments_follow_the_mdp_and_stop_at_terminals() -> None:
    rng = np.random.default_rng(0)
    mdp = random_mdp(3, 2, 0.9, rng)
    pi = np.array([[0.2, 0.8], [0.5, 0.5], [1.0, 0.0]])
    seg = sample_tabular_segments(mdp, pi, 40_000, 2, rng, start=np.array([1.0, 0.0, 0.0]))
    assert np.all(seg.obs[:, 0] == 0)
    # first action ~ π(·|0) and next state ~ P(·|0, a): frequencies within 4 standard errors
    freq_a = np.bincount(seg.actions[:, 0], minlength=2) / 40_000
    np.testing.assert_allclose(freq_a, pi[0], atol=4 * np.sqrt(0.25 / 40_000))
    for a in range(2):
        nxt = seg.next_obs[seg.actions[:, 0] == a, 0]
        np.testing.assert_allclose(np.bincount(nxt, minlength=3) / len(nxt), mdp.P[0, a], atol=0.02)
    np.testing.assert_array_equal(seg.obs[:, 1], seg.next_obs[:, 0])
    np.testing.assert_array_equal(seg.rewards, mdp.R[seg.obs, seg.actions])

    # a chain 0 → 1 → 2 (terminal): after the terminal state the steps are padding
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = P[1, 0, 2] = 1.0
    chain = TabularMDP(P, np.ones((3, 1)), 1.0, mu0=np.array([1.0, 0, 0]), terminal=[0, 0, 1])
    s = sample_tabular_segments(chain, np.ones((3, 1)), 2, 4, rng)
    assert s.obs[0].tolist() == [0, 1, 2, 2]
    assert s.infos["valid"][0].tolist() == [True, True, False, False]
    assert s.rewards[0].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert s.dones[0].tolist() == [False, True, False, False]


class _PointEnv(gym.Env):
    """x' = x + a on a line, reward −x², 10-step episodes (a tiny Box-action env)."""

    observation_space = spaces.Box(-np.inf, np.inf, (1,), np.float64)
    action_space = spaces.Box(-0.5, 0.5, (1,), np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.x, self.t = self.np_random.uniform(-1, 1, size=1), 0
        return self.x.copy(), {}

    def step(self, a):
        self.x = self.x + np.asarray(a, dtype=np.float64)
        self.t += 1
        return self.x.copy(), -float(self.x[0] ** 2), False, self.t >= 10, {"success": 1.0}


def test_collect_rollouts_noise_clipping_and_determinism() -> None:
    env = _PointEnv()
    pol = lambda obs, rng: np.array([0.45], dtype=np.float32)
    a = collect_rollouts(env, pol, np.random.default_rng(1), n_episodes=3, action_noise=0.3)
    b = collect_rollouts(env, pol, np.random.default_rng(1), n_episodes=3, action_noise=0.3)
    np.testing.assert_array_equal(a.obs, b.obs)
    assert len(a) == 30 and a.n_episodes == 3
    assert np.all(np.abs(a.actions) <= 0.5) and np.any(a.actions == 0.5)  # clipped noise
    assert np.std(a.actions) > 0.05
    np.testing.assert_allclose(
        a.episode_returns(), [a.rewards[i * 10 : i * 10 + 10].sum() for i in range(3)]
    )
    assert a.infos["success"].tolist() == [1.0] * 30
    assert a.truncated.sum() == 3 and not a.terminated.any()
    c = collect_rollouts(env, pol, np.random.default_rng(1), n_steps=7)
    assert len(c) == 7
    # tabular env with ε-uniform actions
    tab = envs.make("chain", n=4, horizon=5)
    r = collect_rollouts(
        tab,
        tabular_policy(np.eye(2)[[0, 0, 0, 0]]),
        np.random.default_rng(0),
        n_episodes=20,
        epsilon=1.0,
    )
    assert set(np.unique(r.actions)) == {0, 1}
    with pytest.raises(InvalidInputError, match="exactly one"):
        collect_rollouts(tab, uniform_policy(tab.action_space), np.random.default_rng(0))


def _toy_rollouts() -> Rollouts:
    ep = np.repeat([0, 1, 2], [5, 2, 4])
    n = len(ep)
    return Rollouts(
        obs=np.arange(n)[:, None].astype(float),
        actions=np.zeros((n, 1)),
        rewards=np.arange(n, dtype=float),
        next_obs=np.arange(1, n + 1)[:, None].astype(float),
        terminated=np.isin(np.arange(n), [4]),
        truncated=np.isin(np.arange(n), [6, 10]),
        episode=ep,
    )


def test_fragment_stays_inside_episodes() -> None:
    ro = _toy_rollouts()
    seg = fragment(ro, 3, stride=1)
    # windows: episode 0 has 3 (starts 0,1,2), episode 1 none, episode 2 has 2 (starts 7, 8)
    assert seg.obs[:, 0, 0].tolist() == [0, 1, 2, 7, 8]
    assert np.all(seg.infos["episode"] == seg.infos["episode"][:, :1])
    assert seg.infos["episode_return"][:, 0].tolist() == [10, 10, 10, 34, 34]
    assert seg.infos["t"][3].tolist() == [0, 1, 2]
    assert seg.dones[2].tolist() == [False, False, True]
    assert fragment(ro, 2).obs[:, 0, 0].tolist() == [0, 2, 5, 7, 9]
    rng = np.random.default_rng(0)
    pick = fragment(ro, 3, n_segments=5, rng=rng)
    assert sorted(pick.obs[:, 0, 0].tolist()) == [0, 1, 2, 7, 8]  # without replacement
    assert len(fragment(ro, 3, n_segments=12, rng=rng)) == 12  # with replacement when needed
    with pytest.raises(InvalidInputError, match="at least 6 steps"):
        fragment(ro, 6)


def test_pairs() -> None:
    p = pairs_sparse(5, 1000, np.random.default_rng(0))
    assert p.shape == (1000, 2) and np.all(p[:, 0] != p[:, 1]) and p.max() == 4
    assert pairs_dense(4).tolist() == [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    with pytest.raises(InvalidInputError):
        pairs_sparse(1, 3, np.random.default_rng(0))


def test_label_pairs_equals_the_oracle() -> None:
    rng = np.random.default_rng(0)
    mdp = random_mdp(6, 3, 0.9, rng)
    seg = sample_tabular_segments(mdp, np.full((6, 3), 1 / 3), 300, 4, rng)
    pairs = pairs_sparse(300, 2000, rng)
    for oracle in (
        Regret.from_mdp(mdp),
        BradleyTerry(2.0),
        BradleyTerry(np.inf),
        bpref_teacher("mistake"),
    ):
        fast = label_pairs(seg, pairs, oracle, np.random.default_rng(5), chunk=333)
        ref = oracle.label(seg[pairs[:, 0]], seg[pairs[:, 1]], np.random.default_rng(5))
        np.testing.assert_array_equal(fast.label, ref.label)
        np.testing.assert_array_equal(fast.mask, ref.mask)


# ---- the dataset file ----------------------------------------------------------------------------
def _dataset(seed: int = 0) -> PreferenceDataset:
    rng = np.random.default_rng(seed)
    mdp = random_mdp(5, 2, 0.9, rng)
    return generate_dataset(
        None,
        chunk_fn=tabular_chunks(mdp, np.full((5, 2), 0.5), 50, 4),
        n_chunks=2,
        oracle=Regret.from_mdp(mdp),
        n_pairs=80,
        seed=seed,
        meta={"env": "toy"},
        progress=False,
    )


def test_dataset_roundtrip(tmp_path: Path) -> None:
    ds = _dataset()
    path = ds.save(tmp_path / "d.npz")
    assert [p.name for p in tmp_path.iterdir()] == ["d.npz"]  # no temporary file left
    back = PreferenceDataset.load(path, expect={"env": "toy"})
    for k, v in ds._arrays().items():
        np.testing.assert_array_equal(back._arrays()[k], v)
        assert back._arrays()[k].dtype == v.dtype
    assert back.meta == ds.meta and back.mode == "sparse" and back.n_pairs == 80
    prefs = back.preferences()
    np.testing.assert_array_equal(prefs.a.obs, ds.segments.obs[ds.pairs[:, 0]])


def _rewrite(src: Path, dst: Path, edit) -> None:
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for item in zin.infolist():
            zout.writestr(item, edit(item.filename, zin.read(item.filename)))


def test_corrupted_and_mismatched_files_are_rejected(tmp_path: Path) -> None:
    good = _dataset().save(tmp_path / "good.npz")
    raw = good.read_bytes()

    def expect_error(path: Path, match: str, **kw) -> None:
        with pytest.raises(InvalidInputError, match=match) as info:
            PreferenceDataset.load(path, **kw)
        assert "\n" not in str(info.value)

    expect_error(tmp_path / "missing.npz", "does not exist")
    (tmp_path / "trunc.npz").write_bytes(raw[: len(raw) // 2])
    expect_error(tmp_path / "trunc.npz", "corrupted")
    (tmp_path / "text.npz").write_text("hello")
    expect_error(tmp_path / "text.npz", "corrupted")

    def flip_label(name: str, data: bytes) -> bytes:  # one label byte changed: checksum
        return data[:-1] + bytes([data[-1] ^ 1]) if name == "label.npy" else data

    _rewrite(good, tmp_path / "tampered.npz", flip_label)
    expect_error(tmp_path / "tampered.npz", "checksum mismatch")

    def header(change):
        def edit(name: str, data: bytes) -> bytes:
            if name != "__header__.npy":
                return data
            import io

            h = json.loads(str(np.load(io.BytesIO(data))))
            change(h)
            buf = io.BytesIO()
            np.save(buf, np.array(json.dumps(h)))
            return buf.getvalue()

        return edit

    _rewrite(good, tmp_path / "newer.npz", header(lambda h: h.update(version=99)))
    expect_error(tmp_path / "newer.npz", "version 99")
    _rewrite(good, tmp_path / "other.npz", header(lambda h: h.update(format="something")))
    expect_error(tmp_path / "other.npz", "not a prl-preference-dataset")
    _rewrite(
        good, tmp_path / "shape.npz", header(lambda h: h["arrays"]["obs"].update(shape=[1, 2]))
    )
    expect_error(tmp_path / "shape.npz", "header says")
    np.savez(tmp_path / "plain.npz", obs=np.zeros(3))
    expect_error(tmp_path / "plain.npz", "no __header__")
    expect_error(good, "made with env='toy', expected env='Hopper-v5'", expect={"env": "Hopper-v5"})
    with pytest.raises(InvalidInputError, match=r"\.npz"):
        _dataset().save(tmp_path / "x.h5")


def test_generation_resumes_from_finished_chunks(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    mdp = random_mdp(5, 2, 0.9, rng)
    inner = tabular_chunks(mdp, np.full((5, 2), 0.5), 40, 4)
    calls: list[int] = []

    def flaky(i: int, r: np.random.Generator):
        calls.append(i)
        if i == 2 and len(calls) == 3:
            raise KeyboardInterrupt  # a killed run
        return inner(i, r)

    kw = dict(n_chunks=4, oracle=Regret.from_mdp(mdp), n_pairs=100, seed=9, progress=False)
    path = tmp_path / "d.npz"
    with pytest.raises(KeyboardInterrupt):
        generate_dataset(path, chunk_fn=flaky, **kw)
    parts = tmp_path / "d.npz.parts"
    assert sorted(p.name for p in parts.glob("chunk_*")) == ["chunk_00000.npz", "chunk_00001.npz"]
    resumed = generate_dataset(path, chunk_fn=flaky, **kw)
    assert calls == [0, 1, 2, 2, 3]  # finished chunks are not redone
    assert not parts.exists() and path.exists()
    direct = generate_dataset(None, chunk_fn=inner, **kw)
    np.testing.assert_array_equal(resumed.segments.obs, direct.segments.obs)
    np.testing.assert_array_equal(resumed.label, direct.label)
    # chunks left by other settings are refused
    with pytest.raises(KeyboardInterrupt):
        calls.clear()
        generate_dataset(tmp_path / "e.npz", chunk_fn=flaky, **kw)
    with pytest.raises(InvalidInputError, match="other settings"):
        generate_dataset(tmp_path / "e.npz", chunk_fn=inner, **{**kw, "seed": 10})
    dense = generate_dataset(None, chunk_fn=inner, **{**kw, "n_pairs": None}, mode="dense")
    assert dense.mode == "dense" and dense.n_pairs == 0 and dense.scores.shape == (160,)
    with pytest.raises(InvalidInputError, match="score oracle"):
        generate_dataset(
            None, chunk_fn=inner, **{**kw, "oracle": bpref_teacher("mistake")}, mode="dense"
        )


# ---- expert critics ------------------------------------------------------------------------------
GAMMA = 0.9


def _lqr() -> tuple[float, float]:
    """Scalar LQR x' = x + a, r = −x² − a²: V*(x) = −p x², a*(x) = −k x (Riccati fixed point)."""
    p = 1.0
    for _ in range(200):
        p = 1.0 + GAMMA * p / (1.0 + GAMMA * p)
    return p, GAMMA * p / (1.0 + GAMMA * p)


def _lqr_critic(sigma: float, n_samples: int) -> ExpertCritic:
    p, k = _lqr()

    def q_fn(o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        x, u = o[:, 0].double(), a[:, 0].double()
        return -(x**2) - u**2 - GAMMA * p * (x + u) ** 2

    def sample_fn(o: torch.Tensor, m: int, g: torch.Generator) -> torch.Tensor:
        mean = -k * o[:, :1]
        return mean + sigma * torch.randn((m, *mean.shape), generator=g, dtype=mean.dtype)

    return ExpertCritic(q_fn, sample_fn, n_samples=n_samples, seed=0)


def test_expert_critic_values_match_the_closed_form() -> None:
    p, k = _lqr()
    sigma = 0.3
    critic = _lqr_critic(sigma, 4096)
    x = np.linspace(-1, 1, 5)[:, None]
    # E_{a~N(−kx, σ²)} Q(x, a) = V*(x) − (1 + γp) σ²  (Q is quadratic in a)
    np.testing.assert_allclose(
        critic.value(x), -p * x[:, 0] ** 2 - (1 + GAMMA * p) * sigma**2, atol=0.02
    )
    np.testing.assert_allclose(critic.q(x, -k * x), -p * x[:, 0] ** 2, atol=1e-5)
    # with a deterministic expert, Σγ^t A = Σγ^t r + γ^T V(s_T) − V(s_0) (deterministic dynamics)
    exact = _lqr_critic(0.0, 1)
    rng = np.random.default_rng(0)
    seg = _lqr_segments(rng, 20, 6, noise=0.5)
    np.testing.assert_allclose(
        exact.regret_oracle(discount=GAMMA).score(seg),
        CriticScore(exact, discount=GAMMA).score(seg),
        atol=1e-4,
    )


def _lqr_segments(rng: np.random.Generator, n: int, T: int, noise: float):
    from prl.types import Segments

    _, k = _lqr()
    x = rng.uniform(-0.5, 0.5, size=n)
    obs, act, rew, nxt = (np.zeros((n, T, 1)) for _ in range(4))
    for t in range(T):
        a = -k * x + noise * rng.normal(size=n)
        obs[:, t, 0], act[:, t, 0] = x, a
        rew[:, t, 0] = -(x**2) - a**2
        x = x + a
        nxt[:, t, 0] = x
    return Segments(obs, act, rew[..., 0], next_obs=nxt)


def test_expert_critic_labels_agree_with_true_returns_on_separated_pairs() -> None:
    rng = np.random.default_rng(1)
    from prl.types import Segments

    good = _lqr_segments(rng, 300, 8, noise=0.05)
    bad = _lqr_segments(rng, 300, 8, noise=1.0)
    seg = Segments.concat([good, bad])
    pairs = pairs_sparse(600, 3000, rng)
    critic = _lqr_critic(0.3, 64)
    prefs = label_pairs(seg, pairs, critic.regret_oracle(beta=np.inf, discount=GAMMA), rng)
    ret = seg.returns(GAMMA)
    gap = ret[pairs[:, 0]] - ret[pairs[:, 1]]
    clear = np.abs(gap) > 1.0
    assert clear.sum() > 500
    agree = (prefs.label[clear] > 0.5) == (gap[clear] > 0)
    assert agree.mean() >= 0.99


def test_expert_critic_from_sb3() -> None:
    from stable_baselines3 import SAC

    env = gym.make("Pendulum-v1")
    model = SAC("MlpPolicy", env, policy_kwargs={"net_arch": [8]}, seed=0, device="cpu")
    critic = ExpertCritic.from_sb3(model, n_samples=8, seed=1)
    obs = np.random.default_rng(0).normal(size=(3, 4, 3))
    act = np.random.default_rng(1).uniform(-2, 2, size=(3, 4, 1))
    adv = critic.advantage(obs, act)
    assert adv.shape == (3, 4) and np.all(np.isfinite(adv))
    with torch.no_grad():  # Q is the mean of SB3's twin critics on the [-1, 1]-scaled action
        o = torch.as_tensor(obs.reshape(-1, 3), dtype=torch.float32)
        a = torch.as_tensor(act.reshape(-1, 1) / 2.0, dtype=torch.float32)
        q = torch.stack([x[:, 0] for x in model.critic(o, a)]).mean(0).numpy()
    np.testing.assert_allclose(critic.q(obs, act).reshape(-1), q, rtol=1e-5, atol=1e-6)
    again = ExpertCritic.from_sb3(model, n_samples=8, seed=1).advantage(obs, act)
    np.testing.assert_array_equal(adv, again)  # the sampled V uses our own generator


@pytest.mark.slow
def test_trained_sac_critic_orders_clearly_separated_pairs() -> None:
    """A short SB3 SAC run on Pendulum: its critic's regret labels agree with the true return
    order of expert vs random segments from the same start states."""
    from prl.data import fragment, sb3_policy, train_sac_expert
    from prl.types import Segments

    expert = train_sac_expert(lambda: gym.make("Pendulum-v1"), 6000, seed=0, net_arch=(64, 64))
    env = gym.make("Pendulum-v1")
    rng = np.random.default_rng(0)
    good = collect_rollouts(env, sb3_policy(expert), rng, n_episodes=6, action_noise=0.1)
    bad = collect_rollouts(env, uniform_policy(env.action_space), rng, n_episodes=6)
    seg = Segments.concat([fragment(good, 50, stride=50), fragment(bad, 50, stride=50)])
    critic = ExpertCritic.from_sb3(expert, n_samples=32)
    pairs = pairs_sparse(len(seg), 2000, rng)
    prefs = label_pairs(seg, pairs, critic.regret_oracle(beta=np.inf), rng)
    ret = seg.returns()
    gap = ret[pairs[:, 0]] - ret[pairs[:, 1]]
    clear = np.abs(gap) > 0.5 * np.abs(ret).mean()
    agree = (prefs.label[clear] > 0.5) == (gap[clear] > 0)
    assert clear.sum() > 200 and agree.mean() >= 0.9
