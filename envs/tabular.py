"""Gymnasium environments backed by an exact :class:`prl.mdp.TabularMDP` (exposed as ``.mdp``)."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prl.envs._registry import accepted_render_mode
from prl.errors import InvalidInputError
from prl.mdp import TabularMDP, chain_mdp, random_mdp


def _check_horizon(horizon: Any) -> int:
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise InvalidInputError(f"horizon must be a positive integer, got {horizon!r}")
    return int(horizon)


class TabularEnv(gym.Env):
    """A TabularMDP as a gymnasium env: obs = state index, reward R[s,a], ends at terminal states.

    ``terminated`` is True when a terminal state is entered, ``truncated`` after ``horizon``
    steps. ``info["state"]`` repeats the state index.
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012  (gymnasium convention)

    def __init__(self, mdp: TabularMDP, horizon: int = 100, render_mode: str | None = None):
        if not isinstance(mdp, TabularMDP):
            raise InvalidInputError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
        if np.any(mdp.mu0[mdp.terminal] > 0):
            raise InvalidInputError("the initial distribution mu0 puts mass on terminal states")
        render_mode = accepted_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.mdp = mdp
        self.horizon = _check_horizon(horizon)
        self.render_mode = render_mode
        self.observation_space = spaces.Discrete(mdp.S)
        self.action_space = spaces.Discrete(mdp.A)
        self._state = 0
        self._t = 0

    @property
    def state(self) -> int:
        """The current state index."""
        return self._state

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Draw s0 ~ μ0 (or use ``options["state"]``)."""
        super().reset(seed=seed)
        if options and "state" in options:
            s = int(options["state"])
            if not (0 <= s < self.mdp.S) or self.mdp.terminal[s]:
                raise InvalidInputError(
                    f"options['state'] must be a non-terminal state in [0, {self.mdp.S}), got {s}"
                )
            self._state = s
        else:
            self._state = self.mdp.sample_initial(self.np_random)
        self._t = 0
        return self._state, {"state": self._state}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Take ``action``: reward R[s,a], next state s' ~ P(·|s,a)."""
        a = int(action)
        if not (0 <= a < self.mdp.A):
            raise InvalidInputError(f"action must be in [0, {self.mdp.A}), got {action!r}")
        s = self._state
        reward = float(self.mdp.R[s, a])
        s_next = self.mdp.sample_next(s, a, self.np_random)
        self._state = s_next
        self._t += 1
        terminated = bool(self.mdp.terminal[s_next])
        truncated = (not terminated) and self._t >= self.horizon
        return s_next, reward, terminated, truncated, {"state": s_next}

    def render(self) -> str | None:
        """A one-line text description of the current state (``"ansi"`` mode)."""
        if self.render_mode != "ansi":
            return None
        return f"t={self._t} state={self._state}\n"


class RandomMDPEnv(TabularEnv):
    """A random tabular MDP (Dirichlet transitions, uniform rewards) drawn from ``seed``."""

    def __init__(
        self,
        S: int = 10,
        A: int = 3,
        gamma: float = 0.9,
        seed: int = 0,
        horizon: int = 100,
        branching: int | None = None,
        render_mode: str | None = None,
    ):
        mdp = random_mdp(S, A, gamma, np.random.default_rng(seed), branching=branching)
        super().__init__(mdp, horizon=horizon, render_mode=render_mode)


class ChainEnv(TabularEnv):
    """Strens' n-chain: small reward for returning to the start, large one at the far end."""

    def __init__(
        self,
        n: int = 5,
        slip: float = 0.2,
        horizon: int = 100,
        gamma: float = 0.9,
        small_reward: float = 2.0,
        large_reward: float = 10.0,
        render_mode: str | None = None,
    ):
        mdp = chain_mdp(
            n, gamma=gamma, slip=slip, small_reward=small_reward, large_reward=large_reward
        )
        super().__init__(mdp, horizon=horizon, render_mode=render_mode)
