"""Two-goal gridworld: rater groups that want different goals (pluralistic preferences, control).

A ``size``×``size`` grid; the agent starts in the middle of the bottom row. Three absorbing cells
on the top row: goal A (top-left), goal B (top-right) and a compromise C (top-middle). Reward
factors per step are ``[at A, at B, at C]`` (1 for each step taken while in that cell); group k
scores them with its weights ``GROUP_WEIGHTS[k]``: group 0 wants A, group 1 wants B, and both
accept C at ``compromise`` (< 1) of their own goal. Moves are deterministic (up, right, down,
left; bumping a wall stays put); episodes have a fixed ``horizon`` and do not terminate, so every
segment from the start has the same length. ``reward_weights`` selects the scalar reward
``w · factors`` of ``step`` and of ``.mdp`` (default: group 0); :meth:`TwoGoalsEnv.mdp_for` builds
the exact :class:`~prl.mdp.TabularMDP` of any weights, and ``info["reward_factors"]`` carries
the factors.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from prl.envs._registry import register_env
from prl.envs.tabular import TabularEnv
from prl.errors import InvalidInputError
from prl.mdp import TabularMDP

MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])  # up, right, down, left
FACTORS = ("goal_a", "goal_b", "compromise")


def group_weights(compromise: float = 0.6) -> np.ndarray:
    """Weights [2, 3] of the two groups over the factors [at A, at B, at C]."""
    return np.array([[1.0, 0.0, compromise], [0.0, 1.0, compromise]])


GROUP_WEIGHTS = group_weights()


class TwoGoalsEnv(TabularEnv):
    """Gridworld whose rater groups disagree on the goal (A vs B), with a compromise cell C."""

    def __init__(
        self,
        size: int = 5,
        horizon: int = 12,
        gamma: float = 0.9,
        compromise: float = 0.6,
        reward_weights: Any = None,
        render_mode: str | None = None,
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 3:
            raise InvalidInputError(f"size must be an integer >= 3, got {size!r}")
        c = float(compromise)
        if not (np.isfinite(c) and 0.0 <= c <= 1.0):
            raise InvalidInputError(f"compromise must be in [0, 1], got {compromise!r}")
        self.size = int(size)
        self.compromise = c
        self.group_weights = group_weights(c)
        w = self.group_weights[0] if reward_weights is None else reward_weights
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (len(FACTORS),) or not np.all(np.isfinite(w)):
            raise InvalidInputError(
                f"reward_weights must be {len(FACTORS)} finite numbers, got shape {w.shape}"
            )
        self.reward_weights = w
        n = self.size
        S, A = n * n, len(MOVES)
        self.start = (n - 1) * n + n // 2
        self.goal_cells = np.array([0, n - 1, n // 2])  # A, B, C on the top row
        P = np.zeros((S, A, S))
        table = np.zeros((S, A, len(FACTORS)))
        for s in range(S):
            r, col = divmod(s, n)
            hit = np.flatnonzero(self.goal_cells == s)
            for a, (dr, dc) in enumerate(MOVES):
                if hit.size:  # absorbing goal cell: every action stays and earns its factor
                    P[s, a, s] = 1.0
                    table[s, a, hit[0]] = 1.0
                    continue
                nr, nc = r + dr, col + dc
                if not (0 <= nr < n and 0 <= nc < n):
                    nr, nc = r, col
                P[s, a, nr * n + nc] = 1.0
        self.factor_table = table
        self._P = P
        self._gamma = float(gamma)
        mu0 = np.zeros(S)
        mu0[self.start] = 1.0
        self._mu0 = mu0
        super().__init__(self.mdp_for(w), horizon=horizon, render_mode=render_mode)

    def rewards_for(self, weights: Any) -> np.ndarray:
        """The reward table R[s, a] = w · factors(s, a) of a rater with weights w."""
        return self.factor_table @ np.asarray(weights, dtype=np.float64)

    def mdp_for(self, weights: Any) -> TabularMDP:
        """The exact MDP of a rater with reward weights ``weights`` [3]."""
        return self.mdp_with_rewards(self.rewards_for(weights))

    def mdp_with_rewards(self, R: Any) -> TabularMDP:
        """The exact MDP of this grid with reward table ``R [S, A]`` (e.g. a learned reward)."""
        return TabularMDP(self._P, R, self._gamma, self._mu0)

    def step(self, action: Any) -> tuple[int, float, bool, bool, dict[str, Any]]:
        """One move; ``info["reward_factors"]`` holds [at A, at B, at C] for the step."""
        s = self.state
        out = super().step(action)
        info = dict(out[4])
        info["reward_factors"] = self.factor_table[s, int(action)].copy()
        return out[0], out[1], out[2], out[3], info

    def render(self) -> str | None:
        """The grid as text: ``@`` the agent, ``A``/``B``/``C`` the goal cells."""
        if self.render_mode != "ansi":
            return None
        n = self.size
        rows = []
        for r in range(n):
            line = ""
            for c in range(n):
                s = r * n + c
                ch = "." if s not in self.goal_cells else "ABC"[list(self.goal_cells).index(s)]
                line += "@" if s == self.state else ch
            rows.append(line)
        return "\n".join(rows) + "\n"


register_env(
    "two_goals",
    TwoGoalsEnv,
    "TwoGoals-v0",
    "gridworld where rater groups want different goals (A vs B) and accept a compromise C",
)
