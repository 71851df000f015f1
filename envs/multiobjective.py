"""Multi-objective environments (vector rewards) for C-MORL and other multi-policy methods.

Every environment here returns a reward *vector* of length ``reward_dim`` from ``step`` (the
mo-gymnasium convention) and exposes the evaluation settings of the C-MORL paper (Liu et al.):

- ``ref_point``: the hypervolume reference point; ``eval_gamma``: the discount of the evaluated
  returns (0.99); ``deterministic_eval``: whether policies are evaluated by their greedy/mean
  action (True) or as the stochastic policies they are (False, the synthetic MDP whose exact
  front is over stochastic policies);
- ``true_front(gamma)`` where the front is known, and ``tabular_model()`` → ``(MOTabularMDP,
  obs_table)`` where the task is a small finite MDP, so that policies can be evaluated exactly.

Registered names: ``deep_sea_treasure``, ``fruit_tree``, ``minecart`` (mo-gymnasium's discrete
tasks), ``mo_hopper_2obj``, ``mo_hopper_3obj``, ``mo_halfcheetah`` (MuJoCo v5, 500-step
episodes as in the paper), and ``mo_tabular``: a random multi-objective tabular MDP whose exact
Pareto front the lab computes itself by linear programs over occupancy measures.
"""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces

from prl.envs._registry import accepted_render_mode, register_env
from prl.errors import InvalidInputError
from prl.mdp import TabularMDP
from prl.metrics import pareto_front

__all__ = [
    "DeepSeaTreasureEnv",
    "FruitTreeEnv",
    "MOGymnasiumTask",
    "MOHalfCheetahEnv",
    "MOHopper2ObjEnv",
    "MOHopper3ObjEnv",
    "MOTabularEnv",
    "MOTabularMDP",
    "MinecartEnv",
    "convex_front_hypervolume",
    "random_mo_mdp",
]

_LP_CACHE: dict[tuple[Any, ...], np.ndarray] = {}
PAPER_GAMMA = 0.99  # C-MORL evaluates discounted returns with γ = 0.99
MUJOCO_EPISODE = 500  # C-MORL's MuJoCo episodes are 500 steps long


# ---------------------------------------------------------------------------------------------
# exact multi-objective tabular MDPs


class MOTabularMDP:
    """A finite MDP with vector rewards ``R [S, A, K]``; exact returns, occupancy LPs and fronts.

    Transitions, discount, initial distribution and terminal states follow
    :class:`prl.mdp.TabularMDP` (``self.base``, built with objective 0's rewards).
    """

    def __init__(
        self,
        P: Any,
        R: Any,
        gamma: float,
        mu0: Any | None = None,
        terminal: Any | None = None,
    ) -> None:
        R = np.asarray(R, dtype=np.float64)
        if R.ndim != 3 or R.shape[2] < 1:
            raise InvalidInputError(f"R must have shape [S, A, K] with K ≥ 1, got {R.shape}")
        if not np.all(np.isfinite(R)):
            raise InvalidInputError("R contains NaN or inf")
        self.base = TabularMDP(P, R[:, :, 0], gamma, mu0=mu0, terminal=terminal)
        if R.shape[:2] != (self.base.S, self.base.A):
            raise InvalidInputError(
                f"R must have shape [{self.base.S}, {self.base.A}, K] to match P, got {R.shape}"
            )
        R = R.copy()
        R[self.base.terminal] = 0.0
        R.setflags(write=False)
        self.R = R
        self.S, self.A, self.K = self.base.S, self.base.A, int(R.shape[2])
        self.gamma = self.base.gamma
        self._lp: dict[str, Any] = {}

    @property
    def P(self) -> np.ndarray:
        """Transition kernel [S, A, S] (terminal states absorbing)."""
        return self.base.P

    @property
    def mu0(self) -> np.ndarray:
        """Initial state distribution [S]."""
        return self.base.mu0

    @property
    def terminal(self) -> np.ndarray:
        """Terminal-state mask [S]."""
        return self.base.terminal

    def objective(self, k: int) -> TabularMDP:
        """The scalar MDP of objective ``k``."""
        return TabularMDP(
            self.base.P_continue, self.R[:, :, k], self.gamma, self.mu0, self.terminal
        )

    def scalarized(self, w: Any) -> TabularMDP:
        """The scalar MDP with reward w·R (linear scalarization)."""
        w = self._weights(w)
        return TabularMDP(self.base.P_continue, self.R @ w, self.gamma, self.mu0, self.terminal)

    def _weights(self, w: Any) -> np.ndarray:
        w = np.asarray(w, dtype=np.float64)
        if w.shape != (self.K,) or not np.all(np.isfinite(w)):
            raise InvalidInputError(f"w must be a finite vector of length {self.K}, got {w.shape}")
        return w

    def returns(self, pi: Any) -> np.ndarray:
        """Exact discounted return vectors J(π) [..., K] = Σ_{s,a} d^π(s,a) R(s,a,·) from μ0."""
        d = self.base.occupancy(pi, normalized=False)
        return np.einsum("...sa,sak->...k", d, self.R)

    # ---- linear programs over occupancy measures -------------------------------------------
    def _problems(self) -> dict[str, Any]:
        """LP data over unnormalized occupancies d ≥ 0 with the Bellman flow constraints."""
        if self._lp:
            return self._lp
        S, A, K = self.S, self.A, self.K
        live = ~self.terminal
        Pc = self.base.P_continue.reshape(S * A, S)
        E = np.kron(np.eye(S), np.ones((1, A)))  # Σ_a d(s, a)
        flow = (E - self.gamma * Pc.T)[live]
        A_eq, b_eq = [flow], [self.mu0[live]]
        if np.any(~live):
            A_eq.append(E[~live])
            b_eq.append(np.zeros(int(np.sum(~live))))
        R = self.R.reshape(S * A, K)  # J = Rᵀ d
        self._lp = {"A_eq": np.concatenate(A_eq), "b_eq": np.concatenate(b_eq), "R": R}
        return self._lp

    def _solve(self, c: np.ndarray, A_ub: Any = None, b_ub: Any = None) -> np.ndarray:
        """argmin_d c·d over the occupancy polytope (and A_ub d ≤ b_ub) by HiGHS (silent)."""
        from scipy.optimize import linprog

        lp = self._problems()
        res = linprog(
            c,
            A_ub=A_ub,
            b_ub=b_ub,
            A_eq=lp["A_eq"],
            b_eq=lp["b_eq"],
            bounds=(0, None),
            method="highs",
        )
        if res.status != 0:
            raise InvalidInputError(f"occupancy LP ended with status {res.status}: {res.message}")
        return np.asarray(res.x, dtype=np.float64)

    def max_weighted(self, w: Any, tol: float = 1e-9) -> tuple[float, np.ndarray]:
        """(max_π w·J(π), a Pareto-optimal maximizer's J) by two LPs over occupancy measures."""
        w = self._weights(w)
        R = self._problems()["R"]
        d = self._solve(-(R @ w))
        opt = float(w @ (R.T @ d))
        if np.all(w > 0):  # every maximizer of a positive weighting is Pareto-optimal
            return opt, R.T @ d
        # among the maximizers of w·J (up to a tolerance), the one with the largest Σ_k J_k:
        # a Pareto-optimal point even when some w_k = 0
        b = opt - tol * max(1.0, abs(opt))
        d = self._solve(-R.sum(axis=1), A_ub=-(R @ w)[None, :], b_ub=[-b])
        return opt, R.T @ d

    def ideal(self) -> np.ndarray:
        """Per-objective maxima of J over all policies [K]."""
        return np.array([self.max_weighted(np.eye(self.K)[k])[0] for k in range(self.K)])

    def nadir(self) -> np.ndarray:
        """Per-objective minima of J over all policies [K] (the default reference point)."""
        return np.array([-self.max_weighted(-np.eye(self.K)[k])[0] for k in range(self.K)])

    def exact_front(self, tol: float = 1e-7, max_iter: int = 10_000) -> np.ndarray:
        """Vertices of the Pareto front of {J(π)} [n, K], found exactly by occupancy LPs.

        The achievable returns of stationary (stochastic) policies form a polytope, the linear
        image of the occupancy polytope. Outer approximation (Benson / NISE): start from the
        lexicographic maximizers of each objective, take the convex hull of the points found
        (extended downwards by free disposal), and for every hull facet with a positive normal w
        solve max w·J; a point beyond the facet is a new vertex. When no facet moves, the points
        are exactly the front's vertices. Rows are sorted lexicographically.
        """
        from scipy.spatial import ConvexHull, QhullError

        K = self.K
        pts = [self.max_weighted(np.eye(K)[k])[1] for k in range(K)]
        if K == 1:
            return np.array(pts[:1])
        scale = max(1.0, float(np.abs(np.array(pts)).max()))
        atol = tol * scale
        low = self.nadir() - 1.0 - scale
        tried: set[tuple[float, ...]] = set()
        for _ in range(max_iter):
            V = pareto_front(_unique_rows(np.array(pts), atol))
            corners = _free_disposal(V, low)
            try:
                hull = ConvexHull(corners)
            except QhullError:
                hull = ConvexHull(corners, qhull_options="QJ")
            added = False
            for eq in hull.equations:
                n, c = eq[:-1], eq[-1]
                n = np.where(np.abs(n) <= 1e-12, 0.0, n)
                if np.any(n < 0) or np.count_nonzero(n) < 2:
                    continue  # walls of the free-disposal extension, not parts of the front
                w = n / n.sum()
                key = tuple(np.round(w, 9))
                if key in tried:
                    continue
                tried.add(key)
                b = -c / n.sum()  # the facet is {x : w·x = b}
                opt, J = self.max_weighted(w)
                if opt > b + atol:
                    pts.append(J)
                    added = True
            if not added:
                V = pareto_front(_unique_rows(np.array(pts), atol))
                return V[np.lexsort(V.T[::-1])]
        raise RuntimeError("exact_front did not converge")  # pragma: no cover

    def front_hypervolume(self, ref: Any | None = None) -> float:
        """Hypervolume of the whole achievable set (the continuous front), 2 objectives.

        The region dominated by the front's convex polyline: exact by the trapezoid rule.
        """
        if self.K != 2:
            raise InvalidInputError(
                f"front_hypervolume is exact for 2 objectives only, this MDP has {self.K}"
            )
        ref = self.nadir() if ref is None else np.asarray(ref, dtype=np.float64)
        return convex_front_hypervolume(self.exact_front(), ref)


def convex_front_hypervolume(vertices: Any, ref: Any) -> float:
    """Area dominated by the polyline through 2-D front vertices (the convex set's front) above
    ``ref``; vertices below the reference are clipped."""
    V = np.asarray(vertices, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] != 2 or ref.shape != (2,):
        raise InvalidInputError(
            f"need [n,2] vertices and a 2-vector ref, got {V.shape}, {ref.shape}"
        )
    V = pareto_front(V)
    V = V[np.argsort(V[:, 0])]  # x ascending, y descending
    # integrate height(x) = max{y : (x, y) on the front's polyline or dominated} − ref_y
    xs = np.concatenate(([ref[0]], V[:, 0]))
    ys = np.concatenate(([V[0, 1]], V[:, 1]))
    area = 0.0
    for i in range(len(xs) - 1):
        x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
        a, b = max(x0, ref[0]), x1
        if b <= a:
            continue
        f0 = y0 + (y1 - y0) * (a - x0) / (x1 - x0) if x1 > x0 else y1
        # piecewise-linear height clipped at ref_y
        area += _clipped_trapezoid(a, b, f0 - ref[1], y1 - ref[1])
    return float(area)


def _clipped_trapezoid(a: float, b: float, h0: float, h1: float) -> float:
    """∫_a^b max(0, linear from h0 to h1) dx."""
    if h0 >= 0 and h1 >= 0:
        return (b - a) * (h0 + h1) / 2
    if h0 <= 0 and h1 <= 0:
        return 0.0
    z = a + (b - a) * h0 / (h0 - h1)  # the zero crossing
    return (z - a) * h0 / 2 if h0 > 0 else (b - z) * h1 / 2


def _unique_rows(X: np.ndarray, atol: float) -> np.ndarray:
    keep: list[np.ndarray] = []
    for x in X:
        if not any(np.all(np.abs(x - y) <= atol) for y in keep):
            keep.append(x)
    return np.array(keep)


def _free_disposal(V: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Every point of V with any subset of its coordinates lowered to ``low``."""
    K = V.shape[1]
    masks = ((np.arange(2**K)[:, None] >> np.arange(K)) & 1).astype(bool)  # [2^K, K]
    out = np.where(masks[None], low[None, None], V[:, None, :]).reshape(-1, K)
    return np.unique(out, axis=0)


def random_mo_mdp(
    S: int,
    A: int,
    K: int,
    gamma: float,
    rng: np.random.Generator,
    branching: int | None = 2,
    conflict: float = 0.5,
) -> MOTabularMDP:
    """A random MO MDP: P(·|s,a) ~ Dirichlet(1) on ``branching`` random states, μ0 uniform and
    R(s,a,·) = c·Dirichlet(½·1_K) + (1 − c)·U[0,1]^K with c = ``conflict`` ∈ [0, 1] (the
    Dirichlet part splits a unit of reward among the objectives, so they trade off; c = 1 makes
    Σ_k J_k the same for every policy, c = 0 gives independent objectives)."""
    for name, v in (("S", S), ("A", A), ("K", K)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {v!r}")
    S, A, K = int(S), int(A), int(K)
    if not 0.0 <= float(conflict) <= 1.0:
        raise InvalidInputError(f"conflict must lie in [0, 1], got {conflict}")
    b = S if branching is None else int(branching)
    if not 1 <= b <= S:
        raise InvalidInputError(f"branching must be in [1, {S}], got {branching}")
    P = np.zeros((S, A, S))
    for s in range(S):
        for a in range(A):
            idx = rng.choice(S, size=b, replace=False)
            P[s, a, idx] = rng.dirichlet(np.ones(b))
    split = rng.dirichlet(np.full(K, 0.5), size=(S, A))
    R = conflict * split + (1.0 - conflict) * rng.random((S, A, K))
    return MOTabularMDP(P, R, gamma)


# ---------------------------------------------------------------------------------------------
# environments


def _check_steps(n: Any, name: str = "max_episode_steps") -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


class MOTabularEnv(gymnasium.Env):
    """A random multi-objective tabular MDP (see :func:`random_mo_mdp`) with vector rewards.

    obs = state index; reward R[s, a, :] (float32 vector); truncated after ``horizon`` steps
    (γ^horizon is negligible). ``exact_front()`` and ``front_hypervolume()`` are exact (LPs).
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}  # noqa: RUF012
    deterministic_eval = False  # the exact front is over stochastic policies
    eval_gamma = 0.9

    def __init__(
        self,
        S: int = 8,
        A: int = 3,
        K: int = 2,
        gamma: float = 0.9,
        seed: int = 0,
        branching: int | None = 2,
        conflict: float = 0.5,
        horizon: int = 200,
        render_mode: str | None = None,
    ):
        render_mode = accepted_render_mode(
            render_mode, self.metadata["render_modes"], type(self).__name__
        )
        self.mo_mdp = random_mo_mdp(
            S, A, K, gamma, np.random.default_rng(seed), branching=branching, conflict=conflict
        )
        # the LPs' answers depend only on the arguments: share them between instances
        self._key = (S, A, K, float(gamma), seed, branching, float(conflict))
        self.horizon = _check_steps(horizon, "horizon")
        self.render_mode = render_mode
        self.eval_gamma = float(gamma)
        self.reward_dim = self.mo_mdp.K
        R = self.mo_mdp.R
        self.reward_space = spaces.Box(
            low=R.min(axis=(0, 1)).astype(np.float32),
            high=R.max(axis=(0, 1)).astype(np.float32),
            dtype=np.float32,
        )
        self.observation_space = spaces.Discrete(self.mo_mdp.S)
        self.action_space = spaces.Discrete(self.mo_mdp.A)
        self._state = 0
        self._t = 0

    def _cached(self, what: str, fn: Any) -> np.ndarray:
        key = (*self._key, what)
        if key not in _LP_CACHE:
            _LP_CACHE[key] = fn()
        return _LP_CACHE[key].copy()

    @property
    def ref_point(self) -> np.ndarray:
        """The nadir of the achievable returns (per-objective minimum over all policies)."""
        return self._cached("nadir", self.mo_mdp.nadir)

    def exact_front(self) -> np.ndarray:
        """The exact Pareto front's vertices [n, K] (occupancy LPs)."""
        return self._cached("front", self.mo_mdp.exact_front)

    def front_hypervolume(self, ref: Any | None = None) -> float:
        """Exact hypervolume of the achievable set w.r.t. ``ref`` (default: ``ref_point``), for
        two objectives: the area under the front's polyline."""
        if self.mo_mdp.K != 2:
            raise InvalidInputError(
                f"front_hypervolume is exact for 2 objectives only, this MDP has {self.mo_mdp.K}"
            )
        ref = self.ref_point if ref is None else np.asarray(ref, dtype=np.float64)
        return convex_front_hypervolume(self.exact_front(), ref)

    def tabular_model(self) -> tuple[MOTabularMDP, np.ndarray]:
        """(the exact model, obs_table) where obs_table[s] is the observation in state s."""
        return self.mo_mdp, np.arange(self.mo_mdp.S)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """Draw s0 ~ μ0."""
        super().reset(seed=seed)
        self._state = self.mo_mdp.base.sample_initial(self.np_random)
        self._t = 0
        return self._state, {}

    def step(self, action: Any) -> tuple[int, np.ndarray, bool, bool, dict[str, Any]]:
        """Reward vector R[s, a, :], next state s' ~ P(·|s, a)."""
        a = int(action)
        if not 0 <= a < self.mo_mdp.A:
            raise InvalidInputError(f"action must be in [0, {self.mo_mdp.A}), got {action!r}")
        s = self._state
        r = self.mo_mdp.R[s, a].astype(np.float32)
        self._state = self.mo_mdp.base.sample_next(s, a, self.np_random)
        self._t += 1
        terminated = bool(self.mo_mdp.terminal[self._state])
        truncated = (not terminated) and self._t >= self.horizon
        return self._state, r, terminated, truncated, {}

    def render(self) -> str | None:
        """One line of text (``"ansi"`` mode)."""
        if self.render_mode != "ansi":
            return None
        return f"t={self._t} state={self._state}\n"


class MOGymnasiumTask(gymnasium.Wrapper):
    """A mo-gymnasium task under a lab name, with the paper's evaluation settings attached."""

    gym_id: ClassVar[str] = ""
    default_ref: ClassVar[tuple[float, ...]] = ()
    eval_gamma: ClassVar[float] = PAPER_GAMMA
    deterministic_eval: ClassVar[bool] = True

    def __init__(
        self, max_episode_steps: int | None = None, render_mode: str | None = None, **kwargs: Any
    ):
        import warnings

        import mo_gymnasium  # noqa: F401  (registers the mo-gymnasium ids)
        from gymnasium.envs.registration import load_env_creator
        from gymnasium.wrappers import TimeLimit

        spec = gymnasium.spec(self.gym_id)
        with warnings.catch_warnings():  # mo-gymnasium's float64 → float32 Box bounds notices
            warnings.filterwarnings("ignore", message=".*precision lowered.*")
            # built from the entry point (not gymnasium.make) so env.unwrapped has no spec: a
            # spec makes gymnasium's env checker open a "human" window, which needs a display
            env = load_env_creator(spec.entry_point)(
                **{**spec.kwargs, **kwargs}, render_mode=render_mode
            )
        steps = spec.max_episode_steps if max_episode_steps is None else max_episode_steps
        if steps is not None:
            env = TimeLimit(env, _check_steps(steps))
        super().__init__(env)
        self.reward_dim = int(env.unwrapped.reward_dim)
        self.reward_space = env.unwrapped.reward_space
        self.max_episode_steps = steps

    @property
    def ref_point(self) -> np.ndarray:
        """Hypervolume reference point."""
        return np.array(self.default_ref, dtype=np.float64)


class DeepSeaTreasureEnv(MOGymnasiumTask):
    """Deep-sea treasure (Yang et al. map): objectives (treasure, −time); its front is known."""

    gym_id = "deep-sea-treasure-v0"
    default_ref = (0.0, -25.0)

    def __init__(self, max_episode_steps: int = 100, render_mode: str | None = None):
        super().__init__(max_episode_steps=max_episode_steps, render_mode=render_mode)

    def true_front(self, gamma: float = PAPER_GAMMA) -> np.ndarray:
        """The discounted Pareto front: mo-gymnasium's per-treasure points (treasure and time
        along a shortest path) with the dominated ones removed (all 10 remain at γ ≥ 0.99;
        for smaller γ far treasures are worth less than near ones)."""
        return pareto_front(np.array(self.env.unwrapped.pareto_front(gamma=gamma), np.float64))

    def tabular_model(self, gamma: float = PAPER_GAMMA) -> tuple[MOTabularMDP, np.ndarray]:
        """The map as an exact MDP: states = reachable cells, treasures terminal; obs_table[s]
        is the (row, col) observation of state s. Built by querying the simulator's step."""
        base = self.env.unwrapped
        sea = np.asarray(base.sea_map)
        start = (0, 0)
        cells = [start]
        index = {start: 0}
        trans: dict[tuple[int, int], tuple[int, np.ndarray]] = {}
        queue = deque([start])
        while queue:  # breadth-first over the cells the simulator can reach
            cell = queue.popleft()
            if sea[cell] not in (0.0, -10.0):
                continue  # a treasure: terminal
            for a in range(4):
                base.current_state = np.array(cell, dtype=np.int32)
                obs, r, *_ = base.step(a)
                nxt = (int(obs[0]), int(obs[1]))
                if nxt not in index:
                    index[nxt] = len(cells)
                    cells.append(nxt)
                    queue.append(nxt)
                trans[(index[cell], a)] = (index[nxt], np.asarray(r, dtype=np.float64))
        S = len(cells)
        P = np.zeros((S, 4, S))
        R = np.zeros((S, 4, 2))
        terminal = np.array([sea[c] not in (0.0, -10.0) for c in cells])
        for (s, a), (s2, r) in trans.items():
            P[s, a, s2] = 1.0
            R[s, a] = r
        mu0 = np.zeros(S)
        mu0[0] = 1.0
        base.reset()
        obs_table = np.array(cells, dtype=np.int32)
        return MOTabularMDP(P, R, gamma, mu0=mu0, terminal=terminal), obs_table


class FruitTreeEnv(MOGymnasiumTask):
    """Fruit tree (depth 6): six nutrient objectives, one fruit per leaf; its front is known."""

    gym_id = "fruit-tree-v0"
    default_ref = (0.0,) * 6

    def __init__(self, depth: int = 6, render_mode: str | None = None):
        if depth not in (5, 6, 7):
            raise InvalidInputError(f"depth must be 5, 6 or 7, got {depth!r}")
        super().__init__(max_episode_steps=None, render_mode=render_mode, depth=depth)

    def true_front(self, gamma: float = PAPER_GAMMA) -> np.ndarray:
        """mo-gymnasium's discounted front (every leaf's fruit is Pareto-optimal)."""
        return pareto_front(np.array(self.env.unwrapped.pareto_front(gamma=gamma)))


class MinecartEnv(MOGymnasiumTask):
    """Minecart: mine two ores, objectives (ore 1, ore 2, −fuel); 1000-step episodes."""

    gym_id = "minecart-v0"
    default_ref = (-1.0, -1.0, -200.0)

    def __init__(self, max_episode_steps: int = 1000, render_mode: str | None = None):
        super().__init__(max_episode_steps=max_episode_steps, render_mode=render_mode)

    def true_front(self, gamma: float = PAPER_GAMMA) -> np.ndarray:
        """mo-gymnasium's approximate discounted front."""
        return pareto_front(np.array(self.env.unwrapped.pareto_front(gamma=gamma)))


class MOHopper2ObjEnv(MOGymnasiumTask):
    """MuJoCo hopper v5, objectives (forward speed, jump height); 500-step episodes."""

    gym_id = "mo-hopper-2obj-v5"
    default_ref = (-100.0, -100.0)

    def __init__(self, max_episode_steps: int = MUJOCO_EPISODE, render_mode: str | None = None):
        super().__init__(max_episode_steps=max_episode_steps, render_mode=render_mode)


class MOHopper3ObjEnv(MOGymnasiumTask):
    """MuJoCo hopper v5, objectives (forward speed, jump height, −control cost); 500 steps."""

    gym_id = "mo-hopper-v5"
    default_ref = (-100.0, -100.0, -100.0)

    def __init__(self, max_episode_steps: int = MUJOCO_EPISODE, render_mode: str | None = None):
        super().__init__(max_episode_steps=max_episode_steps, render_mode=render_mode)


class MOHalfCheetahEnv(MOGymnasiumTask):
    """MuJoCo half-cheetah v5, objectives (forward speed, −control cost); 500-step episodes."""

    gym_id = "mo-halfcheetah-v5"
    default_ref = (-100.0, -100.0)

    def __init__(self, max_episode_steps: int = MUJOCO_EPISODE, render_mode: str | None = None):
        super().__init__(max_episode_steps=max_episode_steps, render_mode=render_mode)


register_env(
    "mo_tabular",
    MOTabularEnv,
    "MOTabular-v0",
    "random multi-objective tabular MDP with an exact Pareto front (occupancy LPs)",
)
register_env(
    "deep_sea_treasure",
    DeepSeaTreasureEnv,
    "DeepSeaTreasure-v0",
    "mo-gymnasium deep-sea-treasure: (treasure, -time), known Pareto front",
)
register_env(
    "fruit_tree",
    FruitTreeEnv,
    "FruitTree-v0",
    "mo-gymnasium fruit tree (depth 6): six nutrient objectives, known Pareto front",
)
register_env(
    "minecart",
    MinecartEnv,
    "Minecart-v0",
    "mo-gymnasium minecart: (ore 1, ore 2, -fuel)",
)
register_env(
    "mo_hopper_2obj",
    MOHopper2ObjEnv,
    "MOHopper2Obj-v5",
    "mo-gymnasium hopper v5 (speed, height), 500-step episodes",
)
register_env(
    "mo_hopper_3obj",
    MOHopper3ObjEnv,
    "MOHopper3Obj-v5",
    "mo-gymnasium hopper v5 (speed, height, -control), 500-step episodes",
)
register_env(
    "mo_halfcheetah",
    MOHalfCheetahEnv,
    "MOHalfCheetah-v5",
    "mo-gymnasium half-cheetah v5 (speed, -control), 500-step episodes",
)
