"""Slippery FrozenLake with an explicit post-decision state (PDPPO) — ``"slippery_lake"``.

The agent walks on the standard FrozenLake maps (``"4x4"``, ``"8x8"``; S start, F frozen,
H hole, G goal). One step splits in two:

1. *Decision (deterministic, s^x = f(s, a))*: the intended move — left, down, right, up
   (actions 0–3, as in gymnasium's FrozenLake) — is taken; walking into the border leaves the
   agent where it is. The cell reached is the **post-decision state**, returned in
   ``info["post_decision_obs"]``.
2. *Slip (stochastic, s' = g(s^x, ξ))*: with probability ``slip_prob`` (0.5) the agent slips
   one more cell from ``s^x`` in a direction drawn from that tile's own distribution over
   {left, down, right, up} (again clipped at the border); otherwise it stays on ``s^x``. The
   per-tile distributions are Dirichlet(``slip_concentration`` · 1) draws from ``slip_seed``
   (our choice where the reference says only "a per-tile distribution"); holes and the goal
   do not slip (the walk has ended there).

Reward 1 on entering G; the episode terminates on entering H or G and is truncated after
``horizon`` steps (100 on 4x4, 200 on 8x8, gymnasium's limits). The exact model is exposed:
``post_decision_table`` F[s, a] (the cell s^x), ``slip_kernel`` G[x, s'] and ``mdp``, the
:class:`prl.mdp.TabularMDP` with P[s, a, :] = G[F[s, a], :] — so V*(s) = max_a V^x(F[s, a])
with V^x(x) = Σ_{s'} G[x, s'] (1[s' = G] + γ V*(s')) can be checked exactly.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from prl.envs._registry import accepted_render_mode, register_env
from prl.errors import InvalidInputError
from prl.mdp import TabularMDP

MAPS: dict[str, list[str]] = {
    "4x4": ["SFFF", "FHFH", "FFFH", "HFFG"],
    "8x8": [
        "SFFFFFFF",
        "FFFFFFFF",
        "FFFHFFFF",
        "FFFFFHFF",
        "FFFHFFFF",
        "FHHFFFHF",
        "FHFFHFHF",
        "FFFHFFFG",
    ],
}
HORIZONS = {"4x4": 100, "8x8": 200}
MOVES = ((0, -1), (1, 0), (0, 1), (-1, 0))  # left, down, right, up (row, col deltas)


class SlipperyLakeEnv(gym.Env):
    """FrozenLake whose intended move is the post-decision state, followed by a per-tile slip."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012  (gymnasium convention)

    def __init__(
        self,
        map_name: str = "4x4",
        desc: list[str] | None = None,
        slip_prob: float = 0.5,
        slip_seed: int = 0,
        slip_concentration: float = 1.0,
        horizon: int | None = None,
        gamma: float = 0.99,
        render_mode: str | None = None,
    ):
        if desc is None:
            if map_name not in MAPS:
                raise InvalidInputError(
                    f"map_name must be one of {sorted(MAPS)} (or pass desc), got {map_name!r}"
                )
            desc = MAPS[map_name]
            default_h = HORIZONS[map_name]
        else:
            default_h = 100
        grid = np.array([list(row) for row in desc])
        if grid.ndim != 2 or not set(grid.ravel()) <= set("SFHG"):
            raise InvalidInputError(f"desc must be equal-length rows of S/F/H/G, got {desc!r}")
        if (grid == "S").sum() != 1 or (grid == "G").sum() < 1:
            raise InvalidInputError("desc needs exactly one S and at least one G")
        if not (0.0 <= float(slip_prob) <= 1.0):
            raise InvalidInputError(f"slip_prob must lie in [0, 1], got {slip_prob!r}")
        if not float(slip_concentration) > 0:
            raise InvalidInputError(f"slip_concentration must be > 0, got {slip_concentration!r}")
        horizon = default_h if horizon is None else horizon
        if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
            raise InvalidInputError(f"horizon must be a positive integer, got {horizon!r}")
        render_mode = accepted_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.desc = grid
        self.nrow, self.ncol = grid.shape
        S = self.nrow * self.ncol
        self.horizon = int(horizon)
        self.slip_prob = float(slip_prob)
        self.render_mode = render_mode
        flat = grid.ravel()
        self.terminal = (flat == "H") | (flat == "G")
        self.goal = flat == "G"
        self.start = int(np.flatnonzero(flat == "S")[0])

        def move(s: int, k: int) -> int:
            r, c = divmod(s, self.ncol)
            dr, dc = MOVES[k]
            r, c = min(max(r + dr, 0), self.nrow - 1), min(max(c + dc, 0), self.ncol - 1)
            return r * self.ncol + c

        rng = np.random.default_rng(int(slip_seed))
        self.slip_dist = rng.dirichlet(np.full(4, float(slip_concentration)), size=S)
        F = np.array([[move(s, a) for a in range(4)] for s in range(S)], dtype=np.int64)
        F[self.terminal] = np.flatnonzero(self.terminal)[:, None]  # ended: stays put
        G = np.zeros((S, S))
        for x in range(S):
            if self.terminal[x]:
                G[x, x] = 1.0
                continue
            G[x, x] += 1.0 - self.slip_prob
            for k in range(4):
                G[x, move(x, k)] += self.slip_prob * self.slip_dist[x, k]
        self.post_decision_table = F
        self.slip_kernel = G
        P = G[F]  # [S, A, S']
        R = P @ self.goal.astype(np.float64)
        mu0 = np.zeros(S)
        mu0[self.start] = 1.0
        self.mdp = TabularMDP(P, R, gamma, mu0=mu0, terminal=self.terminal)
        self._slip_cdf = np.cumsum(self.slip_dist, axis=1)
        self._F = F.tolist()
        self._move = [[move(s, k) for k in range(4)] for s in range(S)]
        self._terminal = self.terminal.tolist()
        self._goal = self.goal.tolist()
        self.observation_space = spaces.Discrete(S)
        self.action_space = spaces.Discrete(4)
        self.state = self.start
        self.t = 0

    def post_decision_values(self, V: np.ndarray | None = None) -> np.ndarray:
        """V^x(x) = Σ_{s'} G[x, s'] (1[s' = goal] + γ V(s')), with V = V* by default."""
        V = self.mdp.v_star() if V is None else np.asarray(V, dtype=np.float64)
        cont = np.where(self.terminal, 0.0, V)
        return self.slip_kernel @ (self.goal + self.mdp.gamma * cont)

    def get_state(self) -> dict[str, Any]:
        """A JSON-able snapshot (cell, step count, generator) for exact resumption."""
        import json

        return {
            "state": self.state,
            "t": self.t,
            "rng": json.loads(json.dumps(self.np_random.bit_generator.state, default=int)),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a snapshot taken by :meth:`get_state`."""
        self.state, self.t = int(state["state"]), int(state["t"])
        self.np_random.bit_generator.state = state["rng"]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Start on S (or on ``options["state"]``, a non-terminal cell)."""
        super().reset(seed=seed)
        s = self.start
        if options and "state" in options:
            s = int(options["state"])
            if not (0 <= s < self.observation_space.n) or self.terminal[s]:
                raise InvalidInputError(f"options['state'] must be a non-terminal cell, got {s}")
        self.state, self.t = s, 0
        return s, {}

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """Intended move (post-decision cell), then a slip with probability ``slip_prob``."""
        try:
            a = int(action)
        except (TypeError, ValueError):
            raise InvalidInputError(f"action must be an integer in 0..3, got {action!r}") from None
        if not (0 <= a < 4) or a != action:
            raise InvalidInputError(f"action must be an integer in 0..3, got {action!r}")
        x = self._F[self.state][a]
        u = self.np_random.random()
        slipped = -1
        s_next = x
        if not self._terminal[x] and u < self.slip_prob:
            k = int(np.searchsorted(self._slip_cdf[x], u / self.slip_prob, side="right"))
            slipped = min(k, 3)
            s_next = self._move[x][slipped]
        self.state = s_next
        self.t += 1
        terminated = self._terminal[s_next]
        reward = 1.0 if self._goal[s_next] else 0.0
        truncated = (not terminated) and self.t >= self.horizon
        info = {"post_decision_obs": x, "slip": slipped}
        return s_next, reward, terminated, truncated, info

    def render(self) -> str | None:
        """The map with the agent's cell in brackets (``"ansi"`` mode)."""
        if self.render_mode != "ansi":
            return None
        r0, c0 = divmod(self.state, self.ncol)
        rows = []
        for r in range(self.nrow):
            rows.append(
                "".join(
                    f"[{self.desc[r, c]}]" if (r, c) == (r0, c0) else f" {self.desc[r, c]} "
                    for c in range(self.ncol)
                )
            )
        return f"t={self.t}\n" + "\n".join(rows) + "\n"


register_env(
    "slippery_lake",
    SlipperyLakeEnv,
    "SlipperyLake-v0",
    "FrozenLake 4x4/8x8: intended move = post-decision state, then a per-tile slip (p=0.5)",
)
