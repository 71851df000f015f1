"""The lab's environments in other toolchains: SB3's make_vec_env builds every registered id."""

from __future__ import annotations

import warnings

import gymnasium
import numpy as np
import pytest

from prl.registry import ENVS, load_plugins

load_plugins()
GYM_IDS = sorted(e.meta["gym_id"] for e in ENVS.entries())


@pytest.mark.parametrize("gym_id", GYM_IDS)
def test_make_vec_env_builds_every_registered_id(gym_id: str) -> None:
    from stable_baselines3.common.env_util import make_vec_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unsupported render modes are warned about and ignored
        probe = gymnasium.make(gym_id)
        reward_space = getattr(probe.unwrapped, "reward_space", None)
        probe.close()
        target: object = gym_id
        if reward_space is not None and np.prod(reward_space.shape) > 1:
            # multi-objective ids give vector rewards, which SB3's Monitor cannot log: they are
            # scalarized the mo-gymnasium way before SB3 sees them (docs/toolchains.md)
            from mo_gymnasium.wrappers import LinearReward

            k = int(np.prod(reward_space.shape))

            def target() -> gymnasium.Env:
                return LinearReward(gymnasium.make(gym_id), weight=np.ones(k) / k)

        venv = make_vec_env(target, n_envs=2, seed=0)
    try:
        obs = venv.reset()
        assert len(obs) == 2 if not isinstance(obs, dict) else True
        actions = np.stack([venv.action_space.sample() for _ in range(2)])
        venv.step(actions)
    finally:
        venv.close()


def test_an_unsupported_render_mode_is_warned_about_and_ignored() -> None:
    with pytest.warns(UserWarning, match="does not render in mode 'rgb_array'"):
        env = gymnasium.make(
            "prl/" + ENVS.entry("dueling").meta["gym_id"].split("/", 1)[1], render_mode="rgb_array"
        )
    assert env.unwrapped.render_mode is None
