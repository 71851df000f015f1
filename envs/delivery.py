"""The delivery gridworld of Knox et al. (Models of human preference for learning reward functions).

A ``size``×``size`` grid (10×10 in the paper). Cell features are [gas, goal, sheep, coin, roadblock,
mud] with reward weights [−1, +50, −50, +1, −1, −2]. Every step costs gas; moving into a cell adds
the weight of that cell's feature (bumping into the outer wall keeps the agent in place and costs
gas only); goal and sheep cells are terminal. The map is generated from ``map_seed``; every
non-terminal cell can reach a goal through non-terminal cells. Episodes start in a uniformly random
non-terminal cell.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import numpy as np

from prl.envs.tabular import TabularEnv
from prl.errors import InvalidInputError
from prl.mdp import TabularMDP

FEATURES = ("gas", "goal", "sheep", "coin", "roadblock", "mud")
DEFAULT_WEIGHTS = np.array([-1.0, 50.0, -50.0, 1.0, -1.0, -2.0])
GAS, GOAL, SHEEP, COIN, ROADBLOCK, MUD = range(6)
# actions: up, right, down, left as (row, col) displacements
MOVES = np.array([[-1, 0], [0, 1], [1, 0], [0, -1]])
_SYMBOLS = {GOAL: "G", SHEEP: "S", COIN: "c", ROADBLOCK: "#", MUD: "~"}


def _count(x: Any, name: str) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < 0:
        raise InvalidInputError(f"{name} must be a non-negative integer, got {x!r}")
    return int(x)


def _goal_reachable_from_all(cells: np.ndarray, size: int) -> bool:
    """True when every non-terminal cell reaches a goal through non-terminal cells."""
    terminal = (cells == GOAL) | (cells == SHEEP)
    seen = np.zeros_like(terminal)
    queue = deque()
    for r, c in np.argwhere(cells == GOAL):
        seen[r, c] = True
        queue.append((r, c))
    while queue:  # backwards BFS from the goals; only non-terminal cells can be passed through
        r, c = queue.popleft()
        for dr, dc in MOVES:
            nr, nc = r + dr, c + dc
            if 0 <= nr < size and 0 <= nc < size and not seen[nr, nc] and not terminal[nr, nc]:
                seen[nr, nc] = True
                queue.append((nr, nc))
    return bool(np.all(seen | terminal))


def generate_map(
    size: int,
    rng: np.random.Generator,
    n_goals: int = 1,
    n_sheep: int = 4,
    n_coins: int = 8,
    n_roadblocks: int = 10,
    n_mud: int = 16,
    max_tries: int = 10_000,
) -> np.ndarray:
    """A [size, size] map of feature codes (−1 = road) in which every road cell reaches a goal."""
    counts = {GOAL: n_goals, SHEEP: n_sheep, COIN: n_coins, ROADBLOCK: n_roadblocks, MUD: n_mud}
    total = sum(counts.values())
    if n_goals < 1:
        raise InvalidInputError(f"the map needs at least one goal, got n_goals={n_goals}")
    if total >= size * size:
        raise InvalidInputError(
            f"{total} feature cells do not fit in a {size}×{size} grid with a free start cell"
        )
    codes = np.concatenate([np.full(n, f) for f, n in counts.items()])
    for _ in range(max_tries):
        cells = np.full(size * size, -1)
        cells[rng.choice(size * size, size=total, replace=False)] = codes
        cells = cells.reshape(size, size)
        if _goal_reachable_from_all(cells, size):
            return cells
    raise InvalidInputError(
        f"could not place {n_sheep} sheep without cutting cells off the goal in {max_tries} tries"
    )


class DeliveryEnv(TabularEnv):
    """Knox et al.'s delivery gridworld: goal +50, sheep −50 (both terminal), coins, mud, ..."""

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012

    def __init__(
        self,
        size: int = 10,
        map_seed: int = 0,
        n_goals: int = 1,
        n_sheep: int = 4,
        n_coins: int = 8,
        n_roadblocks: int = 10,
        n_mud: int = 16,
        reward_weights: Any | None = None,
        gamma: float = 0.99,
        horizon: int = 100,
        render_mode: str | None = None,
    ):
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 2:
            raise InvalidInputError(f"size must be an integer ≥ 2, got {size!r}")
        size = int(size)
        counts = {
            "n_goals": n_goals,
            "n_sheep": n_sheep,
            "n_coins": n_coins,
            "n_roadblocks": n_roadblocks,
            "n_mud": n_mud,
        }
        counts = {k: _count(v, k) for k, v in counts.items()}
        if reward_weights is None:
            w = DEFAULT_WEIGHTS.copy()
        else:
            w = np.asarray(reward_weights, dtype=np.float64)
            if w.shape != (6,) or not np.all(np.isfinite(w)):
                raise InvalidInputError(
                    f"reward_weights must be 6 finite numbers {list(FEATURES)}, got {w.tolist()}"
                )
        self.size = size
        self.map_seed = int(map_seed)
        self.reward_weights = w
        self.cells = generate_map(size, np.random.default_rng(self.map_seed), **counts)
        S = size * size
        flat = self.cells.reshape(-1)
        feats = np.zeros((S, 6))
        feats[:, GAS] = 1.0
        has = flat >= 0
        feats[np.flatnonzero(has), flat[has]] = 1.0
        self.features = feats
        terminal = (flat == GOAL) | (flat == SHEEP)

        # deterministic moves; transition features φ(s,a) = e_gas + (cell features of s' if moved)
        P = np.zeros((S, 4, S))
        phi = np.zeros((S, 4, 6))
        for s in range(S):
            r, c = divmod(s, size)
            for a, (dr, dc) in enumerate(MOVES):
                nr, nc = r + dr, c + dc
                if 0 <= nr < size and 0 <= nc < size:
                    s2 = nr * size + nc
                    phi[s, a] = feats[s2]
                else:
                    s2 = s
                    phi[s, a, GAS] = 1.0
                P[s, a, s2] = 1.0
        phi[terminal] = 0.0
        self.transition_features = phi
        mu0 = (~terminal).astype(np.float64)
        mdp = TabularMDP(P, phi @ w, gamma, mu0 / mu0.sum(), terminal=terminal)
        super().__init__(mdp, horizon=horizon, render_mode=render_mode)

    def position(self, state: int | None = None) -> tuple[int, int]:
        """(row, col) of ``state`` (default: the current state)."""
        s = self._state if state is None else int(state)
        return divmod(s, self.size)

    def render(self) -> str | None:
        """The map as text: A agent, G goal, S sheep, c coin, # roadblock, ~ mud, . road."""
        if self.render_mode != "ansi":
            return None
        ar, ac = self.position()
        lines = []
        for r in range(self.size):
            row = []
            for c in range(self.size):
                row.append("A" if (r, c) == (ar, ac) else _SYMBOLS.get(int(self.cells[r, c]), "."))
            lines.append(" ".join(row))
        return "\n".join(lines) + "\n"
