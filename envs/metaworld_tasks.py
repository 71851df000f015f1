"""MetaWorld v3 manipulation tasks of the CPL paper, state observations (``metaworld`` 3.1.1 on
``mujoco`` 3.3.0 — the version MetaWorld pins; gymnasium's MuJoCo v5 tasks run on it too).

Registered as ``mw-<task>-v3`` for bin-picking, button-press, door-open, drawer-open, plate-slide
and sweep-into. Following the CPL authors' MetaWorld wrapper: random object/goal positions on
every reset (drawn from the env's own seeded generator), the goal position observable (the 39-d
state: hand, gripper, objects, the previous frame's copy, goal), an optional random initial hand
position, rewards divided by 10 (MetaWorld's are in [0, 10]) and a 250-step horizon.
``info["success"]`` is MetaWorld's success flag as a bool; episodes never terminate early.
"""

from __future__ import annotations

import warnings
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prl.envs._registry import register_env
from prl.errors import ConfigError, InvalidInputError

PAPER_TASKS = (
    "bin-picking-v3",
    "button-press-v3",
    "door-open-v3",
    "drawer-open-v3",
    "plate-slide-v3",
    "sweep-into-v3",
)
NEED_EXTRA = "MetaWorld tasks need the optional extra: pip install 'prl-lab[metaworld]'"
HAND_NOISE = np.array([0.25, 0.15, 0.2])  # half-widths of the random initial hand offset


class MetaWorldTaskEnv(gym.Env):
    """One MetaWorld v3 task as a plain gymnasium env with 39-d float64 observations."""

    metadata = {"render_modes": [], "render_fps": 80}  # noqa: RUF012  (gymnasium convention)

    def __init__(
        self,
        task: str = "drawer-open-v3",
        horizon: int = 250,
        goal_observable: bool = True,
        randomize_hand: bool = True,
        reward_scale: float = 0.1,
        sparse: bool = False,
    ):
        try:
            from metaworld.env_dict import ALL_V3_ENVIRONMENTS
        except ImportError as exc:
            raise ConfigError(NEED_EXTRA) from exc
        if task not in ALL_V3_ENVIRONMENTS:
            raise ConfigError(f"unknown MetaWorld v3 task {task!r} (e.g. {', '.join(PAPER_TASKS)})")
        if (
            isinstance(horizon, bool)
            or not isinstance(horizon, (int, np.integer))
            or not (1 <= horizon <= 500)
        ):
            raise InvalidInputError(f"horizon must be an integer in [1, 500], got {horizon!r}")
        if not np.isfinite(reward_scale) or reward_scale <= 0:
            raise InvalidInputError(f"reward_scale must be positive, got {reward_scale!r}")
        self.task = task
        self.horizon = int(horizon)
        self.randomize_hand = bool(randomize_hand)
        self.reward_scale = float(reward_scale)
        self.sparse = bool(sparse)
        inner = ALL_V3_ENVIRONMENTS[task]()
        inner._partially_observable = not goal_observable
        if "sawyer_observation_space" in inner.__dict__:  # recompute the cached property
            del inner.__dict__["sawyer_observation_space"]
        inner._freeze_rand_vec = False  # new object/goal positions on every reset
        inner.seeded_rand_vec = True  # ... drawn from inner.np_random
        inner._set_task_called = True
        inner.max_path_length = 500
        self._inner = inner
        self._hand0 = np.array(inner.hand_init_pos, dtype=np.float64)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float64)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._t = 0

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """New random object/goal (and hand) positions from the env's seeded generator."""
        super().reset(seed=seed)
        inner = self._inner
        inner.seed(int(self.np_random.integers(2**31 - 1)))
        if self.randomize_hand:
            hand = self._hand0 + self.np_random.uniform(-HAND_NOISE, HAND_NOISE)
            inner.hand_init_pos = np.clip(hand, inner.mocap_low, inner.mocap_high)
        obs, _ = inner.reset()
        self._t = 0
        return np.asarray(obs, dtype=np.float64), {"success": False}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One MetaWorld step; truncated after ``horizon`` steps."""
        a = np.asarray(action, dtype=np.float32).reshape(-1)
        if a.shape != (4,) or not np.all(np.isfinite(a)):
            raise InvalidInputError(f"action must be 4 finite numbers, got {action!r}")
        obs, reward, _, _, info = self._inner.step(np.clip(a, -1.0, 1.0))
        self._t += 1
        success = bool(info.get("success", 0.0))
        r = float(success) if self.sparse else float(reward) * self.reward_scale
        info = {**info, "success": success}
        return np.asarray(obs, dtype=np.float64), r, False, self._t >= self.horizon, info

    def close(self) -> None:
        self._inner.close()


def scripted_policy(env_name: str) -> Any:
    """MetaWorld's hand-written expert for ``mw-<task>`` (``metaworld.policies``) as a behaviour
    policy ``(obs, rng) -> action`` (deterministic; the rng is unused)."""
    if not env_name.startswith("mw-"):
        raise ConfigError(f"scripted policies need a MetaWorld task (mw-...), got {env_name!r}")
    task = env_name[3:]
    try:
        from metaworld import policies
    except ImportError as exc:
        raise ConfigError(NEED_EXTRA) from exc
    base = task[: -len("-v3")] if task.endswith("-v3") else ""
    name = "Sawyer" + "".join(w.capitalize() for w in base.split("-")) + "V3Policy"
    if not base or not hasattr(policies, name):
        raise ConfigError(f"no scripted MetaWorld policy for {env_name!r} (e.g. mw-drawer-open-v3)")
    expert = getattr(policies, name)()

    def act(obs: Any, rng: Any = None) -> np.ndarray:
        with warnings.catch_warnings():  # "Constant(s) may be too high": clipped below
            warnings.simplefilter("ignore", UserWarning)
            a = expert.get_action(np.asarray(obs, dtype=np.float64))
        return np.clip(a, -1.0, 1.0)

    act.__name__ = act.__qualname__ = f"scripted_{base.replace('-', '_')}"
    return act


def _factory(task: str) -> Any:
    def make(**kwargs: Any) -> MetaWorldTaskEnv:
        return MetaWorldTaskEnv(task=task, **kwargs)

    name = "make_" + task.replace("-", "_")
    make.__name__ = make.__qualname__ = name
    make.__doc__ = f"MetaWorld {task} (state observations; kwargs go to MetaWorldTaskEnv)."
    return make


for _task in PAPER_TASKS:
    _fn = _factory(_task)
    globals()[_fn.__name__] = _fn
    _title = _task[: -len("-v3")].replace("-", " ")
    register_env(
        f"mw-{_task}",
        _fn,
        f"MetaWorld-{_task}",
        f"MetaWorld v3 {_title} (39-d state obs, info['success'], 250 steps; CPL paper task)",
    )
