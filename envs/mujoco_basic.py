"""Plain gymnasium MuJoCo v5 locomotion tasks under their gymnasium names (Hopper-v5, …).

Registered only when no other module of the package has registered the same name first, so a
richer MuJoCo module (reward factors, multi-objective versions) takes precedence.
"""

from __future__ import annotations

from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator
from gymnasium.wrappers import TimeLimit

from prl.envs._registry import register_env
from prl.errors import ConfigError
from prl.registry import ENVS


def _maker(gym_id: str) -> Any:
    def make(max_episode_steps: int | None = None, **kwargs: Any) -> gymnasium.Env:
        spec = gymnasium.spec(gym_id)
        creator = load_env_creator(spec.entry_point)
        try:
            env = creator(**{**spec.kwargs, **kwargs})
        except TypeError as exc:
            msg = str(exc).splitlines()[0]
            raise ConfigError(f"bad arguments for {gym_id}: {msg}") from None
        # built directly (not by gymnasium.make) so that env.unwrapped has no spec: a spec makes
        # gymnasium's env checker open a "human" render window, which aborts without a display
        return TimeLimit(env, int(max_episode_steps or spec.max_episode_steps))

    make.__name__ = make.__qualname__ = "make_" + gym_id.replace("-", "_")
    make.__doc__ = f"gymnasium's {gym_id} with its time limit (kwargs go to the env class)."
    return make


make_Hopper_v5 = _maker("Hopper-v5")
make_Walker2d_v5 = _maker("Walker2d-v5")
make_HalfCheetah_v5 = _maker("HalfCheetah-v5")

_TASKS = {
    "Hopper-v5": (make_Hopper_v5, "MuJoCo Hopper (gymnasium v5): 11-d obs, 3-d torque"),
    "Walker2d-v5": (make_Walker2d_v5, "MuJoCo Walker2d (gymnasium v5): 17-d obs, 6-d torque"),
    "HalfCheetah-v5": (
        make_HalfCheetah_v5,
        "MuJoCo HalfCheetah (gymnasium v5): 17-d obs, 6-d torque",
    ),
}

for _name, (_fn, _desc) in _TASKS.items():
    if not ENVS.registered(_name):
        register_env(_name, _fn, _name, _desc)
