"""Reward-model RLHF on control tasks (the baseline of Swamy et al.'s SPO comparison).

Every PPO iteration the learner queries a preference oracle on pairs of whole trajectories of the
current policy (and a pool of recent ones), fits a Bradley–Terry reward model r̂(s, a)
(:mod:`prl.reward_model`) to every label so far, and optimizes r̂ with SB3 PPO; a query budget
caps the labels, after which PPO goes on with the last reward model.

The plumbing lives in :mod:`prl.common` (episodes, queries, learned reward, PPO core, SB3 base)
and :mod:`prl.algos.preference_ppo` (preference sources, the learner base); the names are
re-exported here for older imports.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer

from prl.algos.preference_ppo import (
    PREFERENCE_KINDS,
    SMOKE_PENDULUM,
    SMOKE_PENDULUM_KW,
    SMOKE_PPO_TINY,
    OnFactors,
    PPOLearnerConfig,
    PPOPreferenceLearner,
    PreferenceSource,
    TrajectoryScore,
    jerk,
    max_height,
    preference_source,
)
from prl.common.episodes import (
    Episode,
    TrajectoryRecorder,
    concat_segments,
    episodes_to_segments,
    random_policy_trajectories,
    rollout_episode,
    segments_from_state,
    segments_to_state,
)
from prl.common.ppo import EpisodicPPO
from prl.common.queries import QueryBudget, TrajectoryStore, label_pairs, query_pairs
from prl.common.reward import LearnedRewardWrapper, ScaledReward
from prl.config import option, require
from prl.errors import ConfigError
from prl.reward_model import RewardModel, RewardModelTrainer
from prl.run import register_algo
from prl.smoke import Smoke
from prl.utils import torch_generator, torch_threads

__all__ = [
    "PREFERENCE_KINDS",
    "RLHF",
    "RLHFPPO",
    "Episode",
    "EpisodicPPO",
    "LearnedRewardWrapper",
    "OnFactors",
    "PPOLearnerConfig",
    "PPOPreferenceLearner",
    "PreferenceSource",
    "QueryBudget",
    "RLHFConfig",
    "ScaledReward",
    "TrajectoryRecorder",
    "TrajectoryScore",
    "TrajectoryStore",
    "episodes_to_segments",
    "jerk",
    "label_pairs",
    "max_height",
    "preference_source",
    "query_pairs",
    "random_policy_trajectories",
    "rollout_episode",
    "segments_from_state",
    "segments_to_state",
    "torch_threads",
]


#: valid steps (the newest) on which r̂ is rescaled to unit per-step spread after each refit
SCALE_STEPS = 1 << 16

# tiny reward-model settings (tests/test_rlhf.py, tests/test_heron.py)
SMOKE_RM_TINY: dict[str, Any] = {"rm_hidden": [16], "rm_steps": 5, "rm_batch": 8}


class RLHFPPO(EpisodicPPO):
    """EpisodicPPO for RLHF: after each rollout ``reward_updater(episodes)`` may refit r̂
    (labels, reward model); the buffer's rewards are then relabelled with the new r̂, keeping
    SB3's time-limit bootstrap terms, so the update always uses the freshest reward model."""

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        reward_fn: Any = None,
        deferred_reward: bool = False,
        **kwargs: Any,
    ):
        self.reward_fn = reward_fn
        self.deferred_reward = bool(deferred_reward)
        self.reward_updater: Callable[[list[Episode]], None] | None = None
        super().__init__(policy, env, **kwargs)

    def _learned(self, buffer: RolloutBuffer) -> np.ndarray:
        obs = buffer.observations
        act = self.executed_actions(buffer)
        r = self.reward_fn(obs.reshape(-1, *obs.shape[2:]), act.reshape(-1, *act.shape[2:]))
        return np.asarray(r, dtype=np.float32).reshape(buffer.rewards.shape)

    def process_rollout(self, buffer: RolloutBuffer, episodes: list[Episode]) -> None:
        if self.reward_fn is None:
            return
        # what the envs returned: 0 when deferred, else r̂ of the reward model before the refit
        seen = 0.0 if self.deferred_reward else self._learned(buffer)
        if self.reward_updater is not None:
            self.reward_updater(episodes)
        buffer.rewards += self._learned(buffer) - seen  # keeps SB3's time-limit bootstrap terms
        self.recompute_advantages(buffer)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "reward_fn", "reward_updater"]


@dataclass
class RLHFConfig(PPOLearnerConfig):
    """RLHF: a Bradley–Terry reward model on trajectory preferences, optimized with PPO."""

    rm_hidden: list[int] = option([64, 64], "reward model MLP widths")  # noqa: RUF009
    rm_ensemble: int = option(1, "reward model ensemble size")
    rm_lr: float = option(3e-4, "reward model Adam learning rate")
    rm_batch: int = option(32, "labelled pairs per reward-model step")
    rm_steps: int = option(50, "reward-model Adam steps after each round of queries")
    rm_clip: int = option(
        50,
        "reward-model training windows: each labelled trajectory enters a step as a random "
        "window of this many valid steps with the pair's label (T-REX snippets; PEBBLE's "
        "50-step segments); 0 = whole trajectories (cost ∝ episode length)",
    )

    def validate(self) -> None:
        super().validate()
        require(self.rm_ensemble >= 1, f"rm_ensemble must be >= 1, got {self.rm_ensemble}")
        require(self.rm_lr > 0, f"rm_lr must be > 0, got {self.rm_lr}")
        require(self.rm_batch >= 1, f"rm_batch must be >= 1, got {self.rm_batch}")
        require(self.rm_steps >= 0, f"rm_steps must be >= 0, got {self.rm_steps}")
        require(self.rm_clip >= 0, f"rm_clip must be >= 0 (0 = whole), got {self.rm_clip}")
        require(
            all(h >= 1 for h in self.rm_hidden), f"rm_hidden widths must be >= 1: {self.rm_hidden}"
        )


@register_algo(
    "rlhf",
    description="reward-model RLHF: BT reward model on trajectory preferences + SB3 PPO",
    envs=("HopperFactored-v5", "HalfCheetahFactored-v5", "PendulumFactored-v1"),
)
class RLHF(PPOPreferenceLearner):
    """Online RLHF: each PPO iteration queries ``queries_per_iter`` trajectory pairs (new
    trajectories against each other and the pool) until ``query_budget`` is spent, refits the
    BT reward model on every label so far, and PPO optimizes the (rescaled) learned reward."""

    Config = RLHFConfig
    cli_default_steps = 16_000
    ppo_class = RLHFPPO
    smoke = Smoke(
        env=SMOKE_PENDULUM,
        steps=60,
        config={**SMOKE_PPO_TINY, **SMOKE_RM_TINY, "preference": "stochastic"},
        env_kwargs=SMOKE_PENDULUM_KW,
        source="tests/test_rlhf.py",
        family="rlhf",
    )
    #: r̂ for the whole rollout in one batched call after collection (the envs return 0), instead
    #: of one call per env step; the same rewards up to float32 rounding (benchmarks/bench_heron.py)
    deferred_reward = True

    def __init__(
        self, config: RLHFConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        # the reward model exists before the envs that use it are built
        self._gen = torch_generator(seed, "cpu")  # initial weights; moved to the device after
        self._rm_init(config, env, env_kwargs)
        super().__init__(config, env, env_kwargs, seed, device)
        self.model.reward_fn = self.reward
        self.model.reward_updater = self._update_reward
        self.last_fit: dict[str, float] = {}

    def _rm_init(self, config: RLHFConfig, env: str, env_kwargs: dict[str, Any]) -> None:
        from prl import envs

        probe = envs.make(env, **env_kwargs)
        obs_space, act_space = probe.observation_space, probe.action_space
        probe.close()
        self.reward_model = RewardModel(
            obs_space,
            act_space,
            hidden=tuple(config.rm_hidden),
            ensemble_size=config.rm_ensemble,
            generator=self._gen,
        )
        self.trainer = RewardModelTrainer(
            self.reward_model, lr=config.rm_lr, batch_size=config.rm_batch
        )
        self.reward = ScaledReward(self.reward_model, 1.0)
        self.store = TrajectoryStore()

    def _make_model(self) -> EpisodicPPO:
        self.reward_model.to(self.device)
        return self.ppo_class(
            "MlpPolicy",
            self.venv,
            reward_fn=self.reward,
            deferred_reward=self.deferred_reward,
            **self._ppo_kwargs(),
        )

    def _env_wrapper(self) -> Callable[[gymnasium.Env], gymnasium.Env]:
        # deferred: the copies return 0 and the buffer is relabelled in one batched call, so a
        # worker's copy of the reward model (vec_env="subproc") is never read
        if not self.deferred_reward and self.config.vec_env == "subproc":
            raise ConfigError("per-step learned rewards need vec_env=dummy (the model is here)")
        return partial(
            LearnedRewardWrapper, reward_model=self.reward, deferred=self.deferred_reward
        )

    def _update_reward(self, episodes: list[Episode]) -> None:
        """Queries on the new complete trajectories, reward-model fit, reward rescaling."""
        new = self._complete(episodes)
        self._new = new
        self.last_fit = {}
        if new is None or self.budget.exhausted:
            self._add_to_pool(new)
            return
        pool = concat_segments([new, self.pool])
        n_old = 0 if self.pool is None else self.pool.batch_size
        a, b = query_pairs(new.batch_size, n_old, self.config.queries_per_iter, self.rng)
        pairs = np.stack([a, b], axis=1)
        prefs = label_pairs(pool, pairs, self.source.oracle, self.rng, budget=self.budget)
        self._add_to_pool(new)
        if prefs is None:
            return
        k = len(prefs)
        self.store.add(prefs, pool, a[:k], b[:k])
        self._fit()

    def _fit(self) -> None:
        c = self.config
        n = len(self.store)
        if n == 0 or c.rm_steps == 0:
            return
        rows = []
        E = self.reward_model.ensemble_size
        for _ in range(c.rm_steps):
            shape = (E, c.rm_batch) if E > 1 else (c.rm_batch,)
            idx = self.rng.integers(0, n, size=shape)
            batch = self.store.batch(idx, self.device, clip=c.rm_clip, rng=self.rng)
            rows.append(self.trainer.train_step(batch))
        # rescale r̂ to unit per-step spread on the valid steps of the newest stored
        # trajectories (BT fixes no scale); bounded, so its cost does not grow with the run
        obs, act = self.store.valid_steps(SCALE_STEPS)
        r = self.reward_model.reward_numpy(obs, act)
        sd = float(np.std(r))
        self.reward.scale = 1.0 / sd if sd > 1e-8 else 1.0
        self.last_fit = {
            "reward_loss": float(np.mean([r_["reward_loss"] for r_ in rows[-10:]])),
            "reward_accuracy": float(np.nanmean([r_["reward_accuracy"] for r_ in rows[-10:]])),
        }

    def step(self) -> dict[str, float]:
        self._new = None
        self._iterate()
        row = self._row(self._new)
        row.update(self.last_fit)
        row["labels"] = len(self.store)
        return row

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "reward_trainer": self.trainer.state_dict(),
            "reward_scale": self.reward.scale,
            "store": self.store.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state["reward_trainer"])
        self.reward.scale = float(state["reward_scale"])
        self.store.load_state_dict(state["store"])
