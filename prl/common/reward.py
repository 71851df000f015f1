"""A learned reward inside the environment: r(s, a) = scale · r̂(s, a) from a reward model."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from prl.errors import InvalidInputError
from prl.reward_model import RewardModel

__all__ = ["LearnedRewardWrapper", "ScaledReward"]


class ScaledReward:
    """r(s, a) = scale · r̂(s, a) from a RewardModel (numpy in, numpy out, no gradient)."""

    def __init__(self, model: RewardModel, scale: float = 1.0):
        self.model = model
        self.scale = float(scale)

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.scale * self.model.reward_numpy(obs, actions)


class LearnedRewardWrapper(gymnasium.Wrapper):
    """Replaces the env's reward by a learned r̂(s_t, a_t) (evaluated on the pre-step observation
    and the executed action); the env's own reward goes to ``info["true_reward"]``.

    ``reward_model`` is a :class:`prl.reward_model.RewardModel` or any callable
    ``(obs [N, ...], actions [N, ...]) -> [N]`` (e.g. :class:`ScaledReward`). Updating the model
    in place changes the reward from the next step on.

    ``deferred=True`` skips the per-step evaluation and returns reward 0: for learners such as
    :class:`RLHFPPO` that label the whole rollout buffer with r̂ in one batched call after
    collection.
    """

    def __init__(self, env: gymnasium.Env, reward_model: Any, *, deferred: bool = False):
        super().__init__(env)
        self.deferred = bool(deferred)
        if isinstance(reward_model, RewardModel):
            reward_model = ScaledReward(reward_model)
        if not callable(reward_model):
            raise InvalidInputError(
                f"reward_model must be a RewardModel or a callable, got {type(reward_model)}"
            )
        self.reward_fn = reward_model
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("LearnedRewardWrapper: step before reset")
        if self.deferred:
            r = 0.0
        else:
            act = action
            space = self.env.action_space
            if isinstance(space, gymnasium.spaces.Box):
                act = np.clip(np.asarray(action, dtype=np.float32), space.low, space.high)
            r = float(self.reward_fn(np.asarray(self._obs)[None], np.asarray(act)[None])[0])
        obs, true_r, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["true_reward"] = float(true_r)
        self._obs = obs
        return obs, r, terminated, truncated, info
