"""Factored control tasks: reward factors that sum to the env's reward, raters, cycles."""

from __future__ import annotations

import itertools
import warnings

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from prl import envs
from prl.envs.factored import FACTORED_TASKS, factor_spec, find_cycles, task_raters
from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.games import rps_matrix
from prl.registry import ENVS
from prl.types import Segments

# names, weights and the env's own info keys (gymnasium v5 docs: reward = forward + healthy
# − ctrl − contact; Pendulum: −(θ² + 0.1 θ̇² + 0.001 u²); MountainCar: 100·goal − 0.1 a²)
EXPECTED = {
    "HalfCheetahFactored-v5": (("forward", "ctrl_cost"), (1, -1)),
    "HopperFactored-v5": (("forward", "healthy", "ctrl_cost"), (1, 1, -1)),
    "AntFactored-v5": (("forward", "healthy", "ctrl_cost", "contact_cost"), (1, 1, -1, -1)),
    "PendulumFactored-v1": (("angle_sq", "speed_sq", "torque_sq"), (-1, -0.1, -0.001)),
    "MountainCarContinuousFactored-v0": (("goal", "ctrl_sq"), (100, -0.1)),
}
MUJOCO_KEYS = {
    "HalfCheetahFactored-v5": (("reward_forward", 1), ("reward_ctrl", -1)),
    "HopperFactored-v5": (("reward_forward", 1), ("reward_survive", 1), ("reward_ctrl", -1)),
    "AntFactored-v5": (
        ("reward_forward", 1),
        ("reward_survive", 1),
        ("reward_ctrl", -1),
        ("reward_contact", -1),
    ),
}


def test_registered_under_clean_names() -> None:
    for name in EXPECTED:
        assert name in ENVS
        assert ENVS.entry(name).meta["gym_id"] == f"prl/{name}"
        assert ENVS.entry(name).description
    assert set(FACTORED_TASKS) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_factors_sum_to_the_env_reward(name: str) -> None:
    names, weights = EXPECTED[name]
    spec = factor_spec(name)
    assert spec.names == names
    np.testing.assert_array_equal(spec.weights, weights)
    np.testing.assert_array_equal(spec.signs, np.sign(weights))
    env = envs.make(name, max_episode_steps=40)
    assert env.get_wrapper_attr("factor_names") == names
    _, info = env.reset(seed=0)
    assert np.isfinite(info["height"])
    env.action_space.seed(0)
    for _ in range(60):
        _, r, term, trunc, info = env.step(env.action_space.sample())
        f = info["reward_factors"]
        assert f.dtype == np.float64 and f.shape == (len(names),)
        # Pendulum's env computes its torque term in float32, hence the tolerance
        assert float(np.dot(weights, f)) == pytest.approx(float(r), abs=1e-6, rel=1e-9)
        for k, (key, sign) in enumerate(MUJOCO_KEYS.get(name, ())):
            assert f[k] == sign * float(info[key])
        assert np.all(f[np.asarray(weights) < 0] >= 0)  # costs are non-negative magnitudes
        assert isinstance(info["height"], float) and np.isfinite(info["height"])
        if term or trunc:
            _, info = env.reset()
    env.close()


def test_pendulum_factors_by_hand() -> None:
    env = envs.make("PendulumFactored-v1")
    env.reset(seed=1)
    env.unwrapped.state = np.array([np.pi + 0.5, -2.0])  # angle normalizes to −π + 0.5
    _, r, *_, info = env.step(np.array([3.0], dtype=np.float32))  # clipped to max torque 2
    f = info["reward_factors"]
    np.testing.assert_allclose(f, [(0.5 - np.pi) ** 2, 4.0, 4.0], rtol=1e-12)
    assert r == pytest.approx(-((0.5 - np.pi) ** 2 + 0.4 + 0.004), rel=1e-9)


def test_mountaincar_goal_factor() -> None:
    env = envs.make("MountainCarContinuousFactored-v0")
    env.reset(seed=0)
    env.unwrapped.state = np.array([0.44, 0.07], dtype=np.float32)  # reaches 0.45 this step
    _, r, term, _, info = env.step(np.array([0.5], dtype=np.float32))
    assert term
    np.testing.assert_allclose(info["reward_factors"], [1.0, 0.25])
    assert r == pytest.approx(100 - 0.025)
    assert info["height"] == pytest.approx(np.sin(3 * env.unwrapped.state[0]), rel=1e-6)


@pytest.mark.parametrize("name", ["HopperFactored-v5", "PendulumFactored-v1"])
def test_gymnasium_api(name: str) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(envs.make(name))
        env = gymnasium.make(f"prl/{name}", max_episode_steps=5)
    env.reset(seed=0)
    *_, info = env.step(env.action_space.sample())
    assert "reward_factors" in info
    env.close()


def test_bad_arguments() -> None:
    with pytest.raises(ConfigError, match="max_episode_steps"):
        envs.make("HopperFactored-v5", max_episode_steps=0)
    with pytest.raises(ConfigError, match="bad arguments"):
        envs.make("HopperFactored-v5", no_such_option=1)
    with pytest.raises(UnknownNameError, match="HopperFactored-v5"):
        factor_spec("HopperFactored")


def _segments(factors: np.ndarray, valid: np.ndarray | None = None) -> Segments:
    B, T, _ = factors.shape
    infos = {"factors": factors}
    if valid is not None:
        infos["valid"] = valid
    return Segments(np.zeros((B, T, 1)), np.zeros((B, T, 1)), np.zeros((B, T)), infos=infos)


def test_raters_by_hand() -> None:
    # HalfCheetah: speed Σ forward, frugal −Σ ctrl_cost, steady −Σ|Δ forward| (valid steps)
    f = np.array([[[1.0, 0.5], [3.0, 0.5], [2.0, 1.0], [9.0, 9.0]]])
    valid = np.array([[True, True, True, False]])
    r = task_raters("HalfCheetahFactored-v5")
    seg = _segments(f, valid)
    assert r["speed"](seg)[0] == 6.0
    assert r["frugal"](seg)[0] == -2.0
    assert r["steady"](seg)[0] == -(2.0 + 1.0)
    assert len(task_raters("HopperFactored-v5")) >= 3
    # also reads rewards [B,T,K] directly
    seg2 = Segments(np.zeros((1, 4, 1)), np.zeros((1, 4, 1)), f)
    assert r["speed"](seg2)[0] == 15.0
    with pytest.raises(InvalidInputError, match="factors"):
        r["speed"](Segments(np.zeros((1, 2, 1)), np.zeros((1, 2, 1)), np.zeros((1, 2))))


def test_find_cycles_by_hand() -> None:
    # RPS: paper (1) beats rock (0), scissors (2) beats paper, rock beats scissors
    assert find_cycles(rps_matrix()) == [(0, 2, 1)]
    P = np.full((4, 4), 0.5)
    P[0, 1:] = 1.0
    P[1:, 0] = 0.0  # 0 beats everyone: no cycle
    assert find_cycles(P) == []
    with pytest.raises(InvalidInputError):
        find_cycles(np.zeros((2, 3)))


def test_find_cycles_matches_brute_force() -> None:
    rng = np.random.default_rng(0)
    U = rng.random((7, 7))
    P = np.where(U > U.T, 1.0, 0.0) + np.eye(7) * 0.5
    brute = set()
    for i, j, k in itertools.permutations(range(7), 3):
        if P[i, j] > 0.5 and P[j, k] > 0.5 and P[k, i] > 0.5 and i < j and i < k:
            brute.add((i, j, k))
    assert set(find_cycles(P)) == brute and len(brute) > 0
