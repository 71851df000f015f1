"""PDPPO: advantage and buffer arithmetic by hand, optimizers, determinism, resume, SB3
save/load, tiny-budget smoke runs of PDPPO and its SB3 PPO baseline."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from gymnasium import spaces
from stable_baselines3.common.buffers import RolloutBuffer

from prl.algos.pdppo import (
    PDPPO,
    PDPPOLearner,
    PostDecisionRolloutBuffer,
    clip_grad_norms,
    combine_advantages,
    pdppo_advantages,
)
from prl.errors import ConfigError, InvalidInputError
from prl.run import load_checkpoint, run_experiment, train
from prl.utils import torch_threads

TINY = {"n_steps": 32, "batch_size": 16, "n_epochs": 2}
LOT = {"instance": "tiny"}


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny networks: one torch thread is fastest and keeps the shared machine free."""
    with torch_threads(1):
        yield


# ---- the advantage rule, by hand ------------------------------------------------------------

# A fixed 4-step rollout, one environment: an episode boundary before t = 3 (s_3 starts a new
# episode), γ = 0.9, λ = 0.5, V(s_4) = 0.7 and the rollout ends mid-episode.
R = np.array([[1.0], [0.0], [2.0], [-1.0]])
V = np.array([[0.5], [0.2], [0.1], [0.4]])
VX = np.array([[0.3], [0.6], [0.0], [0.2]])
STARTS = np.array([[1.0], [0.0], [0.0], [1.0]])
LAST_V, DONES, GAMMA, LAM = np.array([0.7]), np.array([False]), 0.9, 0.5

# δ_3 = −1 + 0.9·0.7 − 0.4 = −0.77;  A_3 = −0.77
# δ_2 = 2 + 0 − 0.1 = 1.9 (s_3 starts a new episode: no bootstrap);  A_2 = 1.9
# δ_1 = 0 + 0.9·0.1 − 0.2 = −0.11;  A_1 = −0.11 + 0.45·1.9 = 0.745
# δ_0 = 1 + 0.9·0.2 − 0.5 = 0.68;  A_0 = 0.68 + 0.45·0.745 = 1.01525
A_S = [1.01525, 0.745, 1.9, -0.77]
RET = [1.51525, 0.945, 2.0, -0.37]  # R = A^s + V
A_X = [1.21525, 0.345, 2.0, -0.57]  # A^x = R − V^x
EXPECTED = {
    "max": [1.21525, 0.745, 2.0, -0.57],
    "mean": [1.11525, 0.545, 1.95, -0.67],
    "v": A_S,
    "vx": A_X,
}


@pytest.mark.parametrize("mode", list(EXPECTED))
def test_advantages_by_hand(mode: str) -> None:
    out = pdppo_advantages(R, V, VX, STARTS, LAST_V, DONES, GAMMA, LAM, mode)
    assert np.allclose(out["state_advantages"][:, 0], A_S, atol=1e-12)
    assert np.allclose(out["returns"][:, 0], RET, atol=1e-12)
    assert np.allclose(out["post_advantages"][:, 0], A_X, atol=1e-12)
    assert np.allclose(out["advantages"][:, 0], EXPECTED[mode], atol=1e-12)


def test_terminal_last_step_and_lambda_one_give_monte_carlo_returns() -> None:
    # λ = 1, γ = 1, the rollout ends with a terminal step: R_t = Σ_{k≥t} r_k within the episode
    out = pdppo_advantages(R, V, VX, STARTS, np.array([9.0]), np.array([True]), 1.0, 1.0, "max")
    assert np.allclose(out["returns"][:, 0], [3.0, 2.0, 2.0, -1.0], atol=1e-12)


def test_combine_rejects_unknown_mode() -> None:
    with pytest.raises(InvalidInputError, match="advantage mode"):
        combine_advantages(np.zeros(2), np.zeros(2), "min")


def _filled_buffer(mode: str, n_envs: int = 1) -> PostDecisionRolloutBuffer:
    obs_space = spaces.Box(0.0, 100.0, shape=(2,), dtype=np.float32)
    buf = PostDecisionRolloutBuffer(
        4,
        obs_space,
        spaces.Discrete(3),
        device="cpu",
        gamma=GAMMA,
        gae_lambda=LAM,
        n_envs=n_envs,
        advantage_mode=mode,
    )
    for t in range(4):
        obs = np.full((n_envs, 2), float(t), dtype=np.float32)
        buf.add(
            obs,
            np.full((n_envs, 1), t % 3),
            np.repeat(R[t], n_envs),
            np.repeat(STARTS[t], n_envs),
            torch.full((n_envs,), float(V[t, 0])),
            torch.full((n_envs,), -0.1 * t),
            post_obs=obs + 10.0,  # s^x = s + 10, to check the pairing after shuffling
        )
    buf.set_post_values(np.repeat(VX, n_envs, axis=1))
    buf.compute_returns_and_advantage(
        torch.full((n_envs,), float(LAST_V[0])), np.zeros(n_envs, dtype=bool)
    )
    return buf


@pytest.mark.parametrize("mode", ["max", "vx"])
def test_post_decision_buffer_by_hand(mode: str) -> None:
    buf = _filled_buffer(mode, n_envs=2)
    for e in range(2):
        assert np.allclose(buf.advantages[:, e], EXPECTED[mode], atol=1e-6)
        assert np.allclose(buf.returns[:, e], RET, atol=1e-6)
        assert np.allclose(buf.post_advantages[:, e], A_X, atol=1e-6)
    batches = list(buf.get(batch_size=3))
    assert [len(b.observations) for b in batches] == [3, 3, 2]
    seen = []
    for b in batches:
        t = b.observations[:, 0].numpy().astype(int)
        assert torch.equal(b.post_observations, b.observations + 10.0)
        assert np.allclose(b.advantages.numpy(), np.array(EXPECTED[mode])[t], atol=1e-6)
        assert np.allclose(b.returns.numpy(), np.array(RET)[t], atol=1e-6)
        assert np.allclose(b.old_post_values.numpy(), VX[t, 0], atol=1e-6)
        assert np.allclose(b.old_values.numpy(), V[t, 0], atol=1e-6)
        seen += t.tolist()
    assert sorted(seen) == [0, 0, 1, 1, 2, 2, 3, 3]


def test_mode_v_equals_sb3_ppo_advantages() -> None:
    rng = np.random.default_rng(0)
    T, n = 16, 3
    obs_space, act_space = spaces.Box(-1, 1, (1,), np.float32), spaces.Discrete(2)
    ours = PostDecisionRolloutBuffer(
        T, obs_space, act_space, "cpu", gamma=0.97, gae_lambda=0.9, n_envs=n, advantage_mode="v"
    )
    ref = RolloutBuffer(T, obs_space, act_space, "cpu", gamma=0.97, gae_lambda=0.9, n_envs=n)
    for _ in range(T):
        args = (
            rng.normal(size=(n, 1)).astype(np.float32),
            rng.integers(0, 2, size=(n, 1)),
            rng.normal(size=n).astype(np.float32),
            (rng.random(n) < 0.2).astype(np.float32),
            torch.as_tensor(rng.normal(size=n), dtype=torch.float32),
            torch.zeros(n),
        )
        ref.add(*args)
        ours.add(*args, post_obs=args[0])
    ours.set_post_values(rng.normal(size=(T, n)))
    last, dones = torch.as_tensor(rng.normal(size=n), dtype=torch.float32), rng.random(n) < 0.5
    ref.compute_returns_and_advantage(last, dones)
    ours.compute_returns_and_advantage(last, dones)
    assert np.allclose(ours.advantages, ref.advantages, atol=1e-5)
    assert np.allclose(ours.returns, ref.returns, atol=1e-5)


# ---- the algorithm -----------------------------------------------------------------------------


def _learner(seed: int = 0, env: str = "lotsizing", **config) -> PDPPOLearner:
    from prl.config import build_config

    env_kwargs = LOT if env == "lotsizing" else {}
    return PDPPOLearner(
        build_config(PDPPOLearner.Config, {**TINY, **config}),
        env,
        env_kwargs,
        seed,
        torch.device("cpu"),
    )


def test_three_optimizers_partition_the_parameters() -> None:
    lrn = _learner()
    pol = lrn.model.policy
    groups = [pol.optimizer, pol.value_optimizer, pol.post_value_optimizer]
    ids = [{id(p) for g in o.param_groups for p in g["params"]} for o in groups]
    assert all(ids) and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    assert set().union(*ids) == {id(p) for p in pol.parameters()}
    # a training step moves every network
    before = [p.detach().clone() for p in pol.parameters()]
    lrn.step()
    assert all(not torch.equal(b, p) for b, p in zip(before, pol.parameters()))
    lrn.close()


def test_group_clipping_equals_torch_per_group() -> None:
    gen = torch.Generator().manual_seed(0)
    groups = [[torch.nn.Parameter(torch.zeros(3, 2)) for _ in range(2)] for _ in range(3)]
    for i, params in enumerate(groups):
        for p in params:
            p.grad = torch.randn(p.shape, generator=gen) * (0.1 if i == 1 else 5.0)
    ref = [[p.grad.clone() for p in params] for params in groups]
    ref_norms = []
    for grads in ref:
        ps = [torch.nn.Parameter(torch.zeros_like(g)) for g in grads]
        for p, g in zip(ps, grads):
            p.grad = g
        ref_norms.append(torch.nn.utils.clip_grad_norm_(ps, 0.5))
    norms = clip_grad_norms(groups, 0.5)
    assert torch.allclose(torch.stack(norms), torch.stack(ref_norms))
    for params, grads in zip(groups, ref):
        assert all(torch.allclose(p.grad, g) for p, g in zip(params, grads))
    assert ref_norms[1] < 0.5 < ref_norms[0]  # one group untouched, the others scaled


def _params(lrn) -> list[torch.Tensor]:
    return [p.detach().clone() for p in lrn.model.policy.parameters()]


def test_same_seed_same_numbers() -> None:
    rows = []
    for _ in range(2):
        lrn, r = train("pdppo", "lotsizing", seed=3, steps=64, config=TINY, env_kwargs=LOT)
        rows.append((r, _params(lrn)))
    assert rows[0][0] == rows[1][0]
    assert all(torch.equal(a, b) for a, b in zip(rows[0][1], rows[1][1]))
    _, other = train("pdppo", "lotsizing", seed=4, steps=64, config=TINY, env_kwargs=LOT)
    assert other != rows[0][0]


def test_resume_from_state_dict_continues_exactly() -> None:
    straight = _learner(seed=1)
    rows_a = [straight.step() for _ in range(3)]
    first = _learner(seed=1)
    rows_b = [first.step()]
    buf = io.BytesIO()
    torch.save(first.state_dict(), buf)
    first.close()
    buf.seek(0)
    resumed = _learner(seed=1)
    resumed.load_state_dict(torch.load(buf, weights_only=True))
    rows_b += [resumed.step() for _ in range(2)]
    assert rows_a == rows_b
    assert all(torch.equal(a, b) for a, b in zip(_params(straight), _params(resumed)))
    straight.close()
    resumed.close()


def test_sb3_save_and_load(tmp_path: Path) -> None:
    lrn = _learner(env="slippery_lake", advantage="mean", critic_learning_rate=1e-3)
    lrn.step()
    model = lrn.model
    model.save(tmp_path / "pdppo.zip")
    loaded = PDPPO.load(tmp_path / "pdppo.zip", device="cpu")
    assert loaded.advantage == "mean" and loaded.critic_learning_rate == 1e-3
    obs = torch.arange(16)
    with torch.no_grad():
        for net in ("predict_values", "predict_post_values"):
            assert torch.equal(getattr(model.policy, net)(obs), getattr(loaded.policy, net)(obs))
    a1, _ = model.predict(np.arange(16), deterministic=True)
    a2, _ = loaded.predict(np.arange(16), deterministic=True)
    assert np.array_equal(a1, a2)
    for name in ("optimizer", "value_optimizer", "post_value_optimizer"):
        s1 = getattr(model.policy, name).state_dict()["state"]
        s2 = getattr(loaded.policy, name).state_dict()["state"]
        assert all(torch.equal(s1[k]["exp_avg"], s2[k]["exp_avg"]) for k in s1)
    lrn.close()


@pytest.mark.parametrize(
    ("algo", "env", "kwargs"),
    [
        ("pdppo", "lotsizing", LOT),
        ("pdppo", "slippery_lake", {"map_name": "8x8"}),
        ("pdppo_ppo_baseline", "lotsizing", LOT),
        ("pdppo_ppo_baseline", "slippery_lake", {}),
    ],
)
def test_tiny_budget_smoke(algo: str, env: str, kwargs: dict) -> None:
    learner, rows = train(algo, env, seed=0, steps=96, config=TINY, env_kwargs=kwargs)
    assert [r["step"] for r in rows] == [32, 64, 96]
    last = rows[-1]
    for key in ("loss_value", "loss_policy", "episodes"):
        assert np.isfinite(last[key])
    if algo == "pdppo":
        # the logged fraction is the max-advantage rule's choice on the last rollout's buffer
        buf = learner.model.rollout_buffer
        chosen = np.mean(buf.post_advantages > buf.state_advantages)
        assert np.isfinite(last["loss_post_value"])
        assert last["post_advantage_chosen"] == pytest.approx(chosen, abs=1e-12)
    if env == "lotsizing":  # tiny instance, 10-period episodes: returns are negative costs
        assert last["episodes"] == 9 and last["ep_return"] < 0


def test_run_directory_and_checkpoint(tmp_path: Path) -> None:
    res = run_experiment(
        "pdppo",
        "lotsizing",
        seed=0,
        steps=64,
        out=tmp_path,
        config={**TINY, "advantage": "vx"},
        env_kwargs=LOT,
        progress=False,
    )
    assert res.steps_done == 64 and (res.run_dir / "metrics.csv").exists()
    state = load_checkpoint(res.run_dir / "checkpoint.pt")  # weights_only=True
    assert state["learner"]["num_timesteps"] == 64


def test_bad_config_and_env_raise() -> None:
    with pytest.raises(ConfigError, match="post_decision_obs"):
        train("pdppo", "chain", steps=32, config=TINY)
    with pytest.raises(ConfigError, match="advantage"):
        train("pdppo", "lotsizing", steps=32, config={"advantage": "min"}, env_kwargs=LOT)
    with pytest.raises(ConfigError, match="batch_size"):
        train("pdppo", "lotsizing", steps=32, config={"batch_size": 1}, env_kwargs=LOT)
