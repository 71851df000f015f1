"""The PPO core the on-policy learners share: the GAE(λ) recursion, the clipped surrogate and
SB3 PPO with whole-episode rollouts.

Who uses what (each keeps its own float order, so numbers stay bit-identical):

- PDPPO (:mod:`prl.algos.pdppo`, an SB3 PPO subclass with its own buffer, float64 GAE) and
  C-MORL (:mod:`prl.algos.cmorl`, its own torch loop with a vector critic V(s) ∈ R^K) compute
  their TD errors δ_t and decays γλ(1 − d_t) and call :func:`gae_recursion`; both clip with
  :func:`clipped_ratio_term` / :func:`clipped_surrogate`.
- The preference learners (RLHF, deep SPO, HERON) run :class:`EpisodicPPO`, an SB3 PPO whose
  rollouts start from seeded resets and record whole episodes; its GAE and loss are SB3's own
  (float32 buffers), which this module does not replace.
"""

from __future__ import annotations

from typing import Any, TypeVar

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv

from prl.common.episodes import Episode, find_recorder
from prl.common.sb3 import RunDirLoad, foreach_adam

__all__ = ["EpisodicPPO", "clipped_ratio_term", "clipped_surrogate", "gae_recursion"]

ArrayT = TypeVar("ArrayT", np.ndarray, torch.Tensor)


def gae_recursion(deltas: ArrayT, decays: ArrayT | np.ndarray) -> ArrayT:
    """Â_t = δ_t + c_t·Â_{t+1} backwards over the leading (time) axis with Â_T = 0.

    GAE(λ) (Schulman et al. 2016, Eq. 16) with δ_t = r_t + γ(1 − d_t)V(s_{t+1}) − V(s_t) and
    c_t = γλ(1 − d_t). ``deltas`` is ``[T, ...]`` (numpy or torch, any trailing shape, e.g. a
    vector critic's ``[T, n_envs, K]``); ``decays`` broadcasts against one time slice. Each step
    computes ``deltas[t] + decays[t] * Â_{t+1}`` in that order.
    """
    if isinstance(deltas, torch.Tensor):
        out = torch.zeros_like(deltas)
        last = torch.zeros_like(deltas[0])
    else:
        out = np.zeros_like(deltas)
        last = np.zeros_like(deltas[0])
    for t in reversed(range(deltas.shape[0])):
        last = deltas[t] + decays[t] * last
        out[t] = last
    return out


def clipped_ratio_term(ratio: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A) elementwise (PPO, Schulman et al. 2017, Eq. 7)."""
    return torch.min(ratio * adv, torch.clamp(ratio, 1 - clip, 1 + clip) * adv)


def clipped_surrogate(ratio: torch.Tensor, adv: torch.Tensor, clip: float) -> torch.Tensor:
    """PPO's clipped policy loss −E[min(ρ·A, clip(ρ, 1 − ε, 1 + ε)·A)] (Eq. 7, negated)."""
    return -clipped_ratio_term(ratio, adv, clip).mean()


class EpisodicPPO(RunDirLoad, PPO):
    """SB3 PPO whose every rollout starts from fresh resets seeded by ``reset_seed`` (then by its
    own generator) and records whole episodes; :meth:`process_rollout` sees them before the
    update. The VecEnv must be wrapped in a :class:`TrajectoryRecorder`.

    Everything else — callbacks, logging, ``save``/``load``, ``predict`` — is SB3's.
    """

    def __init__(self, policy: Any, env: Any, *, reset_seed: int = 0, **kwargs: Any):
        self.reset_rng = np.random.default_rng(int(reset_seed))
        self.last_episodes: list[Episode] = []
        super().__init__(policy, env, **kwargs)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: Any,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Seeded reset, SB3's collection, then :meth:`process_rollout` on the episodes."""
        rec = find_recorder(env)
        env.seed(int(self.reset_rng.integers(0, 2**31 - 1 - env.num_envs)))
        self._last_obs = env.reset()
        self._last_episode_starts = np.ones((env.num_envs,), dtype=bool)
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        self.last_episodes = list(rec.episodes)
        self.process_rollout(rollout_buffer, self.last_episodes)
        return True

    def train(self) -> None:
        """SB3's PPO update (clipped surrogate, Schulman et al. 2017, Eq. 9) with multi-tensor Adam.

        The same numbers bit for bit as ``PPO.train`` (tests/test_golden.py); ~1% less CPU per env
        step at the spo_control settings (``bench_throughput.py adam``, benchmarks/RESULTS.md).
        """
        foreach_adam(self.policy.optimizer)
        super().train()

    def process_rollout(self, buffer: RolloutBuffer, episodes: list[Episode]) -> None:
        """Hook between collection and update (default: nothing)."""

    def recompute_advantages(self, buffer: RolloutBuffer) -> None:
        """GAE again after the buffer's rewards changed (bootstrapping from the last obs)."""
        with torch.no_grad():
            last = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))
        buffer.compute_returns_and_advantage(last_values=last, dones=self._last_episode_starts)

    def executed_actions(self, buffer: RolloutBuffer) -> np.ndarray:
        """The buffer's actions as executed (clipped to a Box action space)."""
        a = buffer.actions
        if isinstance(self.action_space, gymnasium.spaces.Box):
            a = np.clip(a, self.action_space.low, self.action_space.high)
        return a

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "last_episodes"]
