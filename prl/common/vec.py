"""Vectorized environments for the on-policy learners: ``n_envs`` copies stepped together, in
this process (``vec_env="dummy"``, SB3's ``DummyVecEnv``) or one worker process per copy
(``vec_env="subproc"``, SB3's ``SubprocVecEnv``) for machines with spare cores.

In-process copies run in :class:`LeanDummyVecEnv`: SB3's ``DummyVecEnv`` returning a shallow copy
of each step's info dicts instead of ``deepcopy`` of the whole list (10% of a PPO step on the
factored MuJoCo tasks, whose infos carry reward factors); same observations, rewards and infos.

Both kinds give the same numbers: each copy is the same seeded gymnasium env wherever it runs.
Learners that checkpoint mid-episode env states (MDPO, PDPPO) reach the copies through
:func:`env_apply`, which runs a module-level function on each copy *where it lives* — in this
process or in its worker — so checkpoints and exact resume work for either kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from prl.config import require

__all__ = [
    "START_METHOD",
    "VEC_ENV_HELP",
    "VEC_ENV_KINDS",
    "EnvAccess",
    "Float32SubprocVecEnv",
    "LeanDummyVecEnv",
    "check_vec_env",
    "env_apply",
    "find_wrapper",
    "make_vec",
    "vec_env_class",
]

VEC_ENV_KINDS = ("dummy", "subproc")
#: worker start method: a fresh interpreter per worker server (torch's threads are not forked)
START_METHOD = "forkserver"
VEC_ENV_HELP = (
    "dummy: the n_envs copies step in this process; subproc: one worker process per copy "
    "(multi-core machines; same numbers)"
)


class EnvAccess(gymnasium.Wrapper):
    """The outermost wrapper of every copy: ``prl_apply(fn, *args)`` returns ``fn(env, *args)``
    for the env it wraps (reached through ``VecEnv.env_method``, also inside a worker)."""

    def prl_apply(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(wrapped env, *args)``; ``fn`` must be picklable (a module-level function)."""
        return fn(self.env, *args)


def check_vec_env(kind: str) -> None:
    """ConfigError unless ``kind`` is one of :data:`VEC_ENV_KINDS`."""
    require(
        kind in VEC_ENV_KINDS, f"vec_env must be one of {', '.join(VEC_ENV_KINDS)}, got {kind!r}"
    )


class Float32SubprocVecEnv(SubprocVecEnv):
    """SB3's ``SubprocVecEnv`` returning float32 rewards, as ``DummyVecEnv``'s reward buffer
    does, so that both kinds give bit-identical rollouts (and recorded episode returns)."""

    def step_wait(self) -> Any:
        obs, rews, dones, infos = super().step_wait()
        return obs, np.asarray(rews, dtype=np.float32), dones, infos


class LeanDummyVecEnv(DummyVecEnv):
    """SB3's ``DummyVecEnv`` without the per-step ``deepcopy`` of the info list.

    Gymnasium envs build a new info dict each step; each is still copied (one level), so an env
    that reuses its dict cannot change what a consumer kept, and a terminal observation is
    copied. Values inside the dicts are shared, as the env returned them.
    """

    def step_wait(self) -> Any:
        """Step every copy (auto-reset at episode end, SB3's VecEnv convention)."""
        infos = []
        for i, env in enumerate(self.envs):
            obs, rew, terminated, truncated, info = env.step(self.actions[i])
            info = dict(info)
            info["TimeLimit.truncated"] = truncated and not terminated
            self.buf_rews[i] = rew
            self.buf_dones[i] = terminated or truncated
            if self.buf_dones[i]:
                info["terminal_observation"] = _copy_obs(obs)
                obs, self.reset_infos[i] = env.reset()
            self._save_obs(i, obs)
            self.buf_infos[i] = info
            infos.append(info)
        return self._obs_from_buf(), np.copy(self.buf_rews), np.copy(self.buf_dones), infos


def _copy_obs(obs: Any) -> Any:
    if isinstance(obs, dict):
        return {k: _copy_obs(v) for k, v in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_copy_obs(v) for v in obs)
    return np.array(obs, copy=True)


def vec_env_class(kind: str) -> type[VecEnv]:
    """:class:`LeanDummyVecEnv` for ``"dummy"``, :class:`Float32SubprocVecEnv` for
    ``"subproc"``."""
    check_vec_env(kind)
    return Float32SubprocVecEnv if kind == "subproc" else LeanDummyVecEnv


class _Accessed:
    """``EnvAccess(fn())`` as a picklable env factory (SubprocVecEnv cloudpickles factories)."""

    def __init__(self, fn: Callable[[], gymnasium.Env]):
        self.fn = fn

    def __call__(self) -> gymnasium.Env:
        return EnvAccess(self.fn())


def make_vec(fns: Sequence[Callable[[], gymnasium.Env]], kind: str = "dummy") -> VecEnv:
    """A VecEnv of ``EnvAccess(fn())`` for each factory, in-process or in worker processes."""
    cls = vec_env_class(kind)
    wrapped = [_Accessed(fn) for fn in fns]
    if cls is Float32SubprocVecEnv:
        return Float32SubprocVecEnv(wrapped, start_method=START_METHOD)
    return LeanDummyVecEnv(wrapped)


def env_apply(
    venv: VecEnv, fn: Callable[..., Any], *args: Any, indices: Sequence[int] | int | None = None
) -> list[Any]:
    """``[fn(env_i, *args) for each copy i]`` where each copy lives (see :class:`EnvAccess`)."""
    return venv.env_method("prl_apply", fn, *args, indices=indices)


def find_wrapper(env: Any, cls: type) -> Any:
    """The outermost wrapper of type ``cls`` in ``env``'s wrapper chain (None if absent)."""
    e = env
    while e is not None:
        if isinstance(e, cls):
            return e
        e = getattr(e, "env", None)
    return None
