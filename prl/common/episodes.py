"""Episodes and segments recording: whole episodes of a VecEnv or a policy, padded to Segments.

- :class:`TrajectoryRecorder` (VecEnv wrapper recording whole episodes with their reward factors)
  and :func:`episodes_to_segments` (padded :class:`prl.types.Segments` with ``infos["valid"]``);
- :func:`rollout_episode` / :func:`random_policy_trajectories` record episodes of a policy;
- :func:`segments_to_state` / :func:`segments_from_state` store Segments in a checkpoint
  (tensors only).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper

from prl.errors import ConfigError, InvalidInputError
from prl.types import Segments

__all__ = [
    "Episode",
    "TrajectoryRecorder",
    "concat_segments",
    "episode_horizon",
    "episodes_to_segments",
    "find_recorder",
    "random_policy_trajectories",
    "rollout_episode",
    "segments_from_state",
    "segments_to_state",
    "tail_segments",
]


@dataclass
class Episode:
    """One recorded episode of one env of a VecEnv (steps ``start .. start+T-1`` of a rollout).

    ``rewards`` is the env's own (true) reward, ``env_rewards`` what the learner saw (a learned
    reward under :class:`LearnedRewardWrapper`), ``factors [T,K]`` the reward factors when the
    env reports them, ``height [T]`` the body height after each step (NaN when not reported).
    """

    env: int
    start: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    env_rewards: np.ndarray
    factors: np.ndarray | None
    height: np.ndarray
    terminated: bool
    complete: bool

    @property
    def length(self) -> int:
        """Number of steps T."""
        return int(self.rewards.shape[0])


def episodes_to_segments(episodes: Sequence[Episode], horizon: int) -> Segments:
    """Episodes padded to ``horizon`` steps as Segments (true rewards ``[B,T]``).

    ``infos``: ``valid [B,T]`` (real steps), ``height [B,T]`` (padded with the last height),
    ``factors [B,T,K]`` (zeros after the end) when every episode has factors. Padded observations
    repeat the last one; padded actions and rewards are 0.
    """
    if not episodes:
        raise InvalidInputError("no complete episode to turn into segments")
    H = int(horizon)
    B = len(episodes)
    e0 = episodes[0]
    obs = np.zeros((B, H, *e0.obs.shape[1:]), dtype=np.float32)
    act = np.zeros((B, H, *e0.actions.shape[1:]), dtype=np.float32)
    rew = np.zeros((B, H))
    height = np.zeros((B, H))
    valid = np.zeros((B, H), dtype=bool)
    has_f = all(e.factors is not None for e in episodes)
    fac = np.zeros((B, H, e0.factors.shape[1])) if has_f and e0.factors is not None else None
    for i, e in enumerate(episodes):
        T = e.length
        if T > H or T == 0:
            raise InvalidInputError(f"episode of {T} steps does not fit the horizon {H}")
        obs[i, :T] = e.obs
        obs[i, T:] = e.obs[-1]
        act[i, :T] = e.actions
        rew[i, :T] = e.rewards
        h = np.nan_to_num(e.height, nan=0.0)
        height[i, :T] = h
        height[i, T:] = h[-1]
        valid[i, :T] = True
        if fac is not None:
            fac[i, :T] = e.factors
    infos: dict[str, np.ndarray] = {"valid": valid, "height": height}
    if fac is not None:
        infos["factors"] = fac
    return Segments(obs=obs, actions=act, rewards=rew, infos=infos)


def segments_to_state(seg: Segments | None) -> dict[str, Any]:
    """Segments as a dict of tensors (for ``weights_only`` checkpoints)."""
    if seg is None:
        return {}
    return {
        "obs": torch.as_tensor(seg.obs),
        "actions": torch.as_tensor(seg.actions),
        "rewards": torch.as_tensor(seg.rewards),
        "infos": {k: torch.as_tensor(v) for k, v in seg.infos.items()},
    }


def segments_from_state(state: dict[str, Any]) -> Segments | None:
    """Inverse of :func:`segments_to_state`."""
    if not state:
        return None
    return Segments(
        obs=state["obs"].numpy(),
        actions=state["actions"].numpy(),
        rewards=state["rewards"].numpy(),
        infos={k: v.numpy() for k, v in state["infos"].items()},
    )


def concat_segments(parts: Sequence[Segments | None]) -> Segments | None:
    keep = [p for p in parts if p is not None and p.batch_size > 0]
    return Segments.concat(keep) if keep else None


def tail_segments(seg: Segments | None, n: int) -> Segments | None:
    if seg is None or n <= 0:
        return None
    return seg if seg.batch_size <= n else seg[seg.batch_size - n :]


class TrajectoryRecorder(VecEnvWrapper):
    """Records whole episodes of every env of a VecEnv (obs, executed actions, rewards, factors).

    The rollout position ``t`` counts ``step_wait`` calls since the last ``reset``; an episode's
    ``start`` is the position of its first step, so its steps sit at rollout-buffer rows
    ``start .. start+T-1`` of column ``env``. Completed episodes accumulate in ``episodes``;
    ``partial()`` returns the unfinished ones.
    """

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self.episodes: list[Episode] = []
        self.t = 0
        self._actions: np.ndarray | None = None
        self._obs: Any = None
        self._open: list[dict[str, list[Any]]] = []
        self._starts: list[int] = []

    def _new(self, i: int) -> None:
        self._open[i] = {k: [] for k in ("obs", "act", "rew", "env_rew", "fac", "h")}
        self._starts[i] = self.t

    def reset(self) -> Any:
        """Reset every env and forget the episodes recorded so far."""
        obs = self.venv.reset()
        self.episodes = []
        self.t = 0
        self._obs = obs
        self._open = [{} for _ in range(self.num_envs)]
        self._starts = [0] * self.num_envs
        for i in range(self.num_envs):
            self._new(i)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def _close(self, i: int, terminated: bool, complete: bool) -> Episode:
        d = self._open[i]
        fac = d["fac"]
        return Episode(
            env=i,
            start=self._starts[i],
            obs=np.asarray(d["obs"]),
            actions=np.asarray(d["act"], dtype=np.float32),
            rewards=np.asarray(d["rew"], dtype=np.float64),
            env_rewards=np.asarray(d["env_rew"], dtype=np.float64),
            factors=None if any(f is None for f in fac) else np.asarray(fac, dtype=np.float64),
            height=np.asarray(d["h"], dtype=np.float64),
            terminated=terminated,
            complete=complete,
        )

    def step_wait(self) -> Any:
        obs, rews, dones, infos = self.venv.step_wait()
        if self._obs is None or self._actions is None:
            raise RuntimeError("TrajectoryRecorder: step before reset")
        for i in range(self.num_envs):
            d = self._open[i]
            info = infos[i]
            d["obs"].append(np.array(self._obs[i], copy=True))
            d["act"].append(np.array(self._actions[i], copy=True))
            d["env_rew"].append(float(rews[i]))
            d["rew"].append(float(info.get("true_reward", rews[i])))
            f = info.get("reward_factors")
            d["fac"].append(None if f is None else np.asarray(f, dtype=np.float64))
            d["h"].append(float(info.get("height", np.nan)))
        self.t += 1
        for i in range(self.num_envs):
            if dones[i]:
                trunc = bool(infos[i].get("TimeLimit.truncated", False))
                self.episodes.append(self._close(i, terminated=not trunc, complete=True))
                self._new(i)
        self._obs = obs
        return obs, rews, dones, infos

    def partial(self) -> list[Episode]:
        """The episodes still running (not complete), one per env that has taken a step."""
        return [
            self._close(i, terminated=False, complete=False)
            for i in range(self.num_envs)
            if self._open[i].get("obs")
        ]


def rollout_episode(
    env: gymnasium.Env, act: Callable[[Any], Any], seed: int, max_steps: int | None = None
) -> Episode:
    """One episode of ``act(obs) -> action`` in ``env`` (reset with ``seed``), recorded whole."""
    obs, _ = env.reset(seed=int(seed))
    rec: dict[str, list[Any]] = {k: [] for k in ("o", "a", "r", "f", "h")}
    space = env.action_space
    term = done = False
    while not done:
        a = np.asarray(act(obs))
        if isinstance(space, gymnasium.spaces.Box):
            a = np.clip(a, space.low, space.high).astype(space.dtype)
        nxt, r, term, trunc, info = env.step(a)
        rec["o"].append(np.asarray(obs))
        rec["a"].append(np.asarray(a, dtype=np.float32))
        rec["r"].append(float(r))
        f = info.get("reward_factors")
        rec["f"].append(None if f is None else np.asarray(f, dtype=np.float64))
        rec["h"].append(float(info.get("height", np.nan)))
        obs = nxt
        done = bool(term or trunc) or (max_steps is not None and len(rec["r"]) >= max_steps)
    fac = None if any(f is None for f in rec["f"]) else np.asarray(rec["f"])
    r = np.asarray(rec["r"])
    return Episode(
        0, 0, np.asarray(rec["o"]), np.asarray(rec["a"]), r, r, fac, np.asarray(rec["h"]),
        bool(term), True,
    )  # fmt: skip


def random_policy_trajectories(
    env_name: str, n: int, rng: np.random.Generator, **env_kwargs: Any
) -> Segments:
    """``n`` episodes of diverse random policies: trajectory i plays a_t = μ_i + σ_i·ε_t (clipped),
    μ_i ~ U(−½, ½)·scale, σ_i ~ U(0.1, 1)·scale per action dimension, ε_t ~ N(0, 1)."""
    from prl import envs

    env = envs.make(env_name, **env_kwargs)
    try:
        space = env.action_space
        if not isinstance(space, gymnasium.spaces.Box):
            raise InvalidInputError("random_policy_trajectories needs a Box action space")
        scale = np.where(np.isfinite(space.high), (space.high - space.low) / 2, 1.0)
        eps = []
        for _ in range(int(n)):
            mu = rng.uniform(-0.5, 0.5, size=space.shape) * scale
            sd = rng.uniform(0.1, 1.0, size=space.shape) * scale
            noise = np.random.default_rng(int(rng.integers(2**31)))
            eps.append(
                rollout_episode(
                    env,
                    lambda _o: mu + sd * noise.standard_normal(space.shape),  # noqa: B023
                    int(rng.integers(2**31)),
                )
            )
        return episodes_to_segments(eps, episode_horizon(env))
    finally:
        env.close()


def find_recorder(env: VecEnv) -> TrajectoryRecorder:
    """The :class:`TrajectoryRecorder` in a chain of VecEnv wrappers."""
    e: Any = env
    while e is not None:
        if isinstance(e, TrajectoryRecorder):
            return e
        e = getattr(e, "venv", None)
    raise InvalidInputError("EpisodicPPO needs its VecEnv wrapped in a TrajectoryRecorder")


def episode_horizon(env: gymnasium.Env) -> int:
    """The time limit of ``env`` (its TimeLimit); ConfigError when it has none."""
    try:
        H = env.get_wrapper_attr("_max_episode_steps")
    except AttributeError:
        H = None
    if not isinstance(H, (int, np.integer)) or H < 1:
        raise ConfigError("trajectory preferences need an env with a time limit (TimeLimit)")
    return int(H)
