"""Control tasks whose per-step reward is exposed as named factors in ``info["reward_factors"]``.

Each task is its gymnasium original under a :class:`FactoredReward` wrapper. The wrapper leaves
observations, actions, rewards and episode ends untouched and adds to every step's ``info``:

- ``reward_factors``: float64 array [K] with ``weights · reward_factors == reward`` (the env's own
  reward, up to float rounding); costs are reported as non-negative magnitudes with a negative
  weight;
- ``height``: a scalar height of the body (torso z for MuJoCo, tip height cos θ for Pendulum,
  track height sin 3x for MountainCar), for whole-trajectory (non-Markovian) preferences such
  as "maximum height reached".

====================================  ===========================================  ================
name (gymnasium id ``prl/NAME``)      factors                                      weights
====================================  ===========================================  ================
``HalfCheetahFactored-v5``            forward, ctrl_cost                           +1, −1
``HopperFactored-v5``                 forward, healthy, ctrl_cost                  +1, +1, −1
``AntFactored-v5``                    forward, healthy, ctrl_cost, contact_cost    +1, +1, −1, −1
``PendulumFactored-v1``               angle_sq θ², speed_sq θ̇², torque_sq u²       −1, −0.1, −0.001
``MountainCarContinuousFactored-v0``  goal 1[reached], ctrl_sq a²                  +100, −0.1
====================================  ===========================================  ================

MuJoCo factors are the env's own ``info`` terms (``reward_forward``, ``reward_survive``,
``-reward_ctrl``, ``-reward_contact``), already scaled by the env's weights. Each task also names
≥ 3 *raters* (:func:`task_raters`): reward functions of a whole trajectory built from its
factors, whose majority vote is intransitive (SPO's intransitive preference source).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
from gymnasium.envs.registration import load_env_creator
from gymnasium.wrappers import TimeLimit

from prl.envs._registry import register_env
from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.registry import ENVS
from prl.types import Segments

__all__ = [
    "FACTORED_TASKS",
    "FactorSpec",
    "FactoredReward",
    "factor_spec",
    "find_cycles",
    "task_raters",
    "trajectory_factors",
    "valid_mask",
]


@dataclass(frozen=True)
class FactorSpec:
    """Names and weights of a task's reward factors (reward = weights · factors)."""

    names: tuple[str, ...]
    weights: tuple[float, ...]

    @property
    def signs(self) -> np.ndarray:
        """+1 for a benefit, −1 for a cost (the sign of each weight)."""
        return np.sign(np.asarray(self.weights, dtype=np.float64))

    @property
    def n_factors(self) -> int:
        """K."""
        return len(self.names)


def _angle_normalize(x: float) -> float:
    return float(((x + np.pi) % (2 * np.pi)) - np.pi)


# ---- per-task factor extraction -----------------------------------------------------------------
# Each extractor gets (env before the step: pre-step state, action, info after the step,
# terminated) and returns the factor vector [K] (float64).


def _mujoco_factors(keys: tuple[tuple[str, float], ...]) -> Callable[..., np.ndarray]:
    def extract(pre: Any, action: Any, info: dict[str, Any], terminated: bool) -> np.ndarray:
        try:
            return np.array([sign * float(info[k]) for k, sign in keys], dtype=np.float64)
        except KeyError as exc:
            raise InvalidInputError(
                f"the wrapped env's info lacks {exc.args[0]!r}: is it a gymnasium v5 task?"
            ) from None

    return extract


def _pendulum_pre(env: gymnasium.Env) -> Any:
    th, thdot = env.unwrapped.state
    return float(th), float(thdot), float(env.unwrapped.max_torque)


def _pendulum_factors(pre: Any, action: Any, info: dict[str, Any], terminated: bool) -> np.ndarray:
    th, thdot, max_torque = pre
    u = np.clip(action, -max_torque, max_torque)[0]  # as the env does (keeps float32 actions)
    return np.array([_angle_normalize(th) ** 2, thdot**2, float(u**2)], dtype=np.float64)


def _mountaincar_factors(
    pre: Any, action: Any, info: dict[str, Any], terminated: bool
) -> np.ndarray:
    a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
    return np.array([1.0 if terminated else 0.0, a * a], dtype=np.float64)


def _height_qpos(i: int) -> Callable[[gymnasium.Env], float]:
    return lambda env: float(env.unwrapped.data.qpos[i])


def _height_pendulum(env: gymnasium.Env) -> float:
    return float(np.cos(env.unwrapped.state[0]))


def _height_mountaincar(env: gymnasium.Env) -> float:
    return float(np.sin(3.0 * env.unwrapped.state[0]))


# rater: (name, kind, factor index); kind "sum" = Σ_t sign_k f_k, "steady" = −Σ_t |Δ f_k|
Rater = tuple[str, str, int]


@dataclass(frozen=True)
class _Task:
    gym_id: str
    spec: FactorSpec
    extract: Callable[..., np.ndarray]
    height: Callable[[gymnasium.Env], float]
    raters: tuple[Rater, ...]
    description: str
    pre: Callable[[gymnasium.Env], Any] | None = None


FACTORED_TASKS: dict[str, _Task] = {
    "HalfCheetahFactored-v5": _Task(
        "HalfCheetah-v5",
        FactorSpec(("forward", "ctrl_cost"), (1.0, -1.0)),
        _mujoco_factors((("reward_forward", 1.0), ("reward_ctrl", -1.0))),
        _height_qpos(1),
        (("speed", "sum", 0), ("frugal", "sum", 1), ("steady", "steady", 0)),
        "HalfCheetah-v5 with reward factors [forward, ctrl_cost] and torso height in info",
    ),
    "HopperFactored-v5": _Task(
        "Hopper-v5",
        FactorSpec(("forward", "healthy", "ctrl_cost"), (1.0, 1.0, -1.0)),
        _mujoco_factors((("reward_forward", 1.0), ("reward_survive", 1.0), ("reward_ctrl", -1.0))),
        _height_qpos(1),
        (("speed", "sum", 0), ("endurance", "sum", 1), ("frugal", "sum", 2)),
        "Hopper-v5 with reward factors [forward, healthy, ctrl_cost] and torso height in info",
    ),
    "AntFactored-v5": _Task(
        "Ant-v5",
        FactorSpec(("forward", "healthy", "ctrl_cost", "contact_cost"), (1.0, 1.0, -1.0, -1.0)),
        _mujoco_factors(
            (
                ("reward_forward", 1.0),
                ("reward_survive", 1.0),
                ("reward_ctrl", -1.0),
                ("reward_contact", -1.0),
            )
        ),
        _height_qpos(2),
        (("speed", "sum", 0), ("frugal", "sum", 2), ("steady", "steady", 0)),
        "Ant-v5 with reward factors [forward, healthy, ctrl_cost, contact_cost], torso height",
    ),
    "PendulumFactored-v1": _Task(
        "Pendulum-v1",
        FactorSpec(("angle_sq", "speed_sq", "torque_sq"), (-1.0, -0.1, -0.001)),
        _pendulum_factors,
        _height_pendulum,
        (("upright", "sum", 0), ("calm", "sum", 1), ("frugal", "sum", 2)),
        "Pendulum-v1 with cost factors [theta^2, thetadot^2, u^2] and tip height cos(theta)",
        pre=_pendulum_pre,
    ),
    "MountainCarContinuousFactored-v0": _Task(
        "MountainCarContinuous-v0",
        FactorSpec(("goal", "ctrl_sq"), (100.0, -0.1)),
        _mountaincar_factors,
        _height_mountaincar,
        (("goal", "sum", 0), ("frugal", "sum", 1), ("steady", "steady", 1)),
        "MountainCarContinuous-v0 with reward factors [goal, a^2] and track height sin(3x)",
    ),
}


def _task(name: str) -> _Task:
    if name not in FACTORED_TASKS:
        raise UnknownNameError(
            f"unknown factored task {name!r} (known: {', '.join(sorted(FACTORED_TASKS))})"
        )
    return FACTORED_TASKS[name]


def factor_spec(name: str) -> FactorSpec:
    """The factor names and weights of the factored task ``name``."""
    return _task(name).spec


class FactoredReward(gymnasium.Wrapper):
    """Adds ``info["reward_factors"]`` (float64 [K], weights · factors = reward) and
    ``info["height"]`` to every step of a task from :data:`FACTORED_TASKS`; nothing else changes.
    """

    def __init__(self, env: gymnasium.Env, task: str):
        super().__init__(env)
        self.task = task
        self._spec = _task(task)
        self.factor_names: tuple[str, ...] = self._spec.spec.names
        self.factor_weights: np.ndarray = np.asarray(self._spec.spec.weights, dtype=np.float64)

    @property
    def factor_signs(self) -> np.ndarray:
        """+1 for benefits, −1 for costs."""
        return np.sign(self.factor_weights)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset the wrapped env; ``info["height"]`` gives the initial height."""
        obs, info = self.env.reset(seed=seed, options=options)
        info = dict(info)
        info["height"] = self._spec.height(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, Any, bool, bool, dict[str, Any]]:
        """Step the wrapped env and attach the reward factors and the height."""
        pre = self._spec.pre(self.env) if self._spec.pre is not None else None
        obs, reward, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["reward_factors"] = self._spec.extract(pre, action, info, bool(terminated))
        info["height"] = self._spec.height(self.env)
        return obs, reward, terminated, truncated, info


def _maker(name: str) -> Callable[..., gymnasium.Env]:
    task = FACTORED_TASKS[name]

    def make(max_episode_steps: int | None = None, **kwargs: Any) -> gymnasium.Env:
        spec = gymnasium.spec(task.gym_id)
        creator = load_env_creator(spec.entry_point)
        if max_episode_steps is not None and (
            isinstance(max_episode_steps, bool)
            or not isinstance(max_episode_steps, (int, np.integer))
            or max_episode_steps < 1
        ):
            raise ConfigError(
                f"max_episode_steps must be a positive integer, got {max_episode_steps!r}"
            )
        try:
            env = creator(**{**spec.kwargs, **kwargs})
        except TypeError as exc:
            raise ConfigError(f"bad arguments for {name}: {str(exc).splitlines()[0]}") from None
        # built without gymnasium.make so that env.unwrapped has no spec (see envs.mujoco_basic)
        env = TimeLimit(env, int(max_episode_steps or spec.max_episode_steps))
        return FactoredReward(env, name)

    fname = "make_" + name.replace("-", "_")
    make.__name__ = make.__qualname__ = fname
    make.__doc__ = f"{task.description} (kwargs go to the env class)."
    return make


make_HalfCheetahFactored_v5 = _maker("HalfCheetahFactored-v5")
make_HopperFactored_v5 = _maker("HopperFactored-v5")
make_AntFactored_v5 = _maker("AntFactored-v5")
make_PendulumFactored_v1 = _maker("PendulumFactored-v1")
make_MountainCarContinuousFactored_v0 = _maker("MountainCarContinuousFactored-v0")

for _name, _fn in (
    ("HalfCheetahFactored-v5", make_HalfCheetahFactored_v5),
    ("HopperFactored-v5", make_HopperFactored_v5),
    ("AntFactored-v5", make_AntFactored_v5),
    ("PendulumFactored-v1", make_PendulumFactored_v1),
    ("MountainCarContinuousFactored-v0", make_MountainCarContinuousFactored_v0),
):
    if not ENVS.registered(_name):
        register_env(_name, _fn, _name, FACTORED_TASKS[_name].description)


# ---- trajectory-level helpers (raters, masks) ---------------------------------------------------
def valid_mask(segments: Segments) -> np.ndarray:
    """``infos["valid"]`` (steps before the episode ended) or all True, shape [B,T]."""
    v = segments.infos.get("valid")
    if v is None:
        return np.ones(segments.rewards.shape[:2], dtype=bool)
    return np.asarray(v, dtype=bool)


def trajectory_factors(segments: Segments) -> np.ndarray:
    """Per-step factors [B,T,K]: ``rewards`` when factored, else ``infos["factors"]``."""
    if segments.rewards.ndim == 3:
        return segments.rewards
    f = segments.infos.get("factors")
    if f is None:
        raise InvalidInputError(
            "segments carry no reward factors: need rewards [B,T,K] or infos['factors']"
        )
    return np.asarray(f, dtype=np.float64)


def _rater_fn(kind: str, k: int, sign: float) -> Callable[[Segments], np.ndarray]:
    def fn(segments: Segments) -> np.ndarray:
        f = trajectory_factors(segments)
        if k >= f.shape[2]:
            raise InvalidInputError(f"rater needs factor {k}, segments have K = {f.shape[2]}")
        x = np.where(valid_mask(segments), f[:, :, k], 0.0)
        if kind == "sum":
            return sign * x.sum(axis=1)
        # "steady": −Σ_t |x_{t+1} − x_t| over consecutive valid steps
        v = valid_mask(segments)
        both = v[:, 1:] & v[:, :-1]
        return -np.where(both, np.abs(np.diff(x, axis=1)), 0.0).sum(axis=1)

    return fn


def task_raters(name: str) -> dict[str, Callable[[Segments], np.ndarray]]:
    """The task's ≥ 3 raters: name → (Segments → [B] score), each built from the factors.

    ``sum`` raters score Σ_t sign_k·f_k (a benefit or a cost of one factor), ``steady`` raters
    −Σ_t |f_k(t+1) − f_k(t)| (smoothness of one factor over the trajectory).
    """
    task = _task(name)
    signs = task.spec.signs
    return {rname: _rater_fn(kind, k, float(signs[k])) for rname, kind, k in task.raters}


def find_cycles(P: np.ndarray, limit: int | None = None) -> list[tuple[int, int, int]]:
    """Strict 3-cycles i ≻ j ≻ k ≻ i (each with P > ½) of a preference matrix, i the smallest."""
    P = np.asarray(P, dtype=np.float64)
    if P.ndim != 2 or P.shape[0] != P.shape[1]:
        raise InvalidInputError(f"P must be a square matrix, got shape {P.shape}")
    win = P > 0.5
    out: list[tuple[int, int, int]] = []
    n = P.shape[0]
    for i in range(n):
        js = np.flatnonzero(win[i, i + 1 :]) + i + 1
        for j in js:
            ks = np.flatnonzero(win[j, i + 1 :] & win[i + 1 :, i]) + i + 1
            for k in ks:
                out.append((int(i), int(j), int(k)))
                if limit is not None and len(out) >= limit:
                    return out
    return out
