"""Multi-objective environments: API, vector rewards, known fronts checked by brute force, and the
synthetic MDP's LP front checked against every deterministic policy."""

from __future__ import annotations

import itertools
import warnings
from collections import deque

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from prl import envs
from prl.envs.multiobjective import (
    MOTabularEnv,
    MOTabularMDP,
    convex_front_hypervolume,
    random_mo_mdp,
)
from prl.errors import ConfigError, InvalidInputError
from prl.metrics import hypervolume, pareto_front

MO_ENVS = [
    "mo_tabular",
    "deep_sea_treasure",
    "fruit_tree",
    "minecart",
    "mo_hopper_2obj",
    "mo_hopper_3obj",
    "mo_halfcheetah",
]
REWARD_DIM = {
    "mo_tabular": 2,
    "deep_sea_treasure": 2,
    "fruit_tree": 6,
    "minecart": 3,
    "mo_hopper_2obj": 2,
    "mo_hopper_3obj": 3,
    "mo_halfcheetah": 2,
}
# the env checker expects scalar rewards; a vector reward is what these environments are for
_BENIGN = (
    "Not able to test alternative render modes",
    "render_fps",
    "The reward returned by",
    "Box observation space m",  # MuJoCo's unbounded observations
)


@pytest.mark.parametrize("name", MO_ENVS)
def test_check_env_and_vector_rewards(name: str) -> None:
    env = envs.make(name)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env.unwrapped)
    bad = [str(w.message) for w in caught if not any(b in str(w.message) for b in _BENIGN)]
    assert not bad, bad
    assert env.reward_dim == REWARD_DIM[name]
    assert env.ref_point.shape == (env.reward_dim,)
    env.reset(seed=0)
    env.action_space.seed(0)
    _, r, *_ = env.step(env.action_space.sample())
    assert np.asarray(r).shape == (env.reward_dim,)
    env.close()


def test_names_and_bad_arguments() -> None:
    assert set(MO_ENVS) <= set(envs.names())
    with pytest.raises(ConfigError):
        envs.make("mo_tabular", nope=1)
    with pytest.raises(InvalidInputError):
        envs.make("mo_tabular", conflict=2.0)
    with pytest.raises(InvalidInputError):
        envs.make("deep_sea_treasure", max_episode_steps=0)
    with pytest.raises(InvalidInputError):
        MOTabularMDP(np.ones((2, 1, 2)) / 2, np.ones((2, 1)), 0.9)  # R must be [S, A, K]


def test_mujoco_episodes_are_500_steps() -> None:
    env = envs.make("mo_halfcheetah")  # half-cheetah never terminates early
    env.reset(seed=0)
    n, done = 0, False
    while not done:
        _, _, term, trunc, _ = env.step(np.zeros(env.action_space.shape))
        n += 1
        done = term or trunc
    assert n == 500 and trunc and not term


# ---- deep-sea treasure --------------------------------------------------------------------
def _dst_front_by_bfs(sea: np.ndarray, gamma: float) -> np.ndarray:
    """Shortest path to every treasure by breadth-first search on the map; discounted returns."""
    start = (0, 0)
    dist = {start: 0}
    queue = deque([start])
    while queue:
        r, c = queue.popleft()
        if sea[r, c] > 0:
            continue  # treasure cells end the episode
        for dr, dc in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            nr, nc = r + dr, c + dc
            if 0 <= nr < sea.shape[0] and 0 <= nc < sea.shape[1] and sea[nr, nc] != -10:
                if (nr, nc) not in dist:
                    dist[(nr, nc)] = dist[(r, c)] + 1
                    queue.append((nr, nc))
    pts = []
    for (r, c), n in dist.items():
        if sea[r, c] > 0:
            pts.append([sea[r, c] * gamma ** (n - 1), -sum(gamma**i for i in range(n))])
    return pareto_front(np.array(pts))


def test_deep_sea_treasure_true_front_matches_brute_force() -> None:
    env = envs.make("deep_sea_treasure")
    sea = np.asarray(env.unwrapped.sea_map)
    sizes = {}
    for gamma in (0.5, 0.9, 0.95, 0.99, 1.0):
        front = env.true_front(gamma)
        brute = _dst_front_by_bfs(sea, gamma)
        assert front.shape == brute.shape
        key = np.lexsort(front.T[::-1])
        np.testing.assert_allclose(front[key], brute[np.lexsort(brute.T[::-1])], atol=1e-9)
        for p in front:  # no returned point is dominated by another (plain pairwise check)
            for q in front:
                assert not (np.all(q >= p) and np.any(q > p))
        sizes[gamma] = len(front)
    assert sizes[0.5] < sizes[0.9] < sizes[0.99] == 10  # small γ: far treasures are dominated
    assert len(env.true_front()) == 10
    # hypervolume with the usual reference point (0, -25), γ = 0.99
    assert hypervolume(env.true_front(), env.ref_point) == pytest.approx(360.40094637, rel=1e-8)


def test_deep_sea_treasure_tabular_model_matches_the_simulator() -> None:
    env = envs.make("deep_sea_treasure")
    mdp, obs_table = env.tabular_model()
    index = {tuple(o): s for s, o in enumerate(obs_table)}
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    for _ in range(300):
        s = index[tuple(obs)]
        a = int(rng.integers(4))
        obs, r, term, trunc, _ = env.step(a)
        s2 = int(np.argmax(mdp.P[s, a]))
        assert mdp.P[s, a, s2] == 1.0 and tuple(obs_table[s2]) == tuple(obs)
        np.testing.assert_allclose(mdp.R[s, a], r)
        assert bool(mdp.terminal[s2]) == term
        if term or trunc:
            obs, _ = env.reset()
    # the exact model's LP front equals the known front (every DST treasure is supported at 0.99)
    np.testing.assert_allclose(
        np.sort(mdp.exact_front(), axis=0), np.sort(env.true_front(), axis=0), atol=1e-6
    )


def test_fruit_tree_front_is_every_leaf() -> None:
    env = envs.make("fruit_tree")
    front = env.true_front(0.99)
    assert front.shape == (64, 6)  # depth 6: 2^6 leaves, every fruit Pareto-optimal


# ---- the synthetic MDP ----------------------------------------------------------------------
def _deterministic_returns(mdp: MOTabularMDP) -> np.ndarray:
    """Returns of every deterministic stationary policy (A^S of them), by prl's occupancy."""
    acts = np.array(list(itertools.product(range(mdp.A), repeat=mdp.S)))
    pis = np.eye(mdp.A)[acts]  # [N, S, A]
    return mdp.returns(pis)


@pytest.mark.parametrize("K,S,A,seed", [(2, 8, 3, 0), (2, 5, 3, 3), (3, 5, 2, 1)])
def test_lp_front_equals_brute_force(K: int, S: int, A: int, seed: int) -> None:
    mdp = random_mo_mdp(S, A, K, 0.9, np.random.default_rng(seed), conflict=0.5)
    V = mdp.exact_front()
    J = _deterministic_returns(mdp)
    # each LP vertex is the return of a deterministic policy
    gaps = np.abs(J[None, :, :] - V[:, None, :]).max(-1).min(-1)
    assert gaps.max() < 1e-5
    # support functions agree for random positive weights: conv(V) = conv(J) in every direction
    W = np.random.default_rng(1).dirichlet(np.ones(K), size=300)
    np.testing.assert_allclose((W @ V.T).max(1), (W @ J.T).max(1), atol=1e-6)
    np.testing.assert_allclose(mdp.nadir(), J.min(0), atol=1e-6)
    np.testing.assert_allclose(mdp.ideal(), J.max(0), atol=1e-6)


def test_front_hypervolume_closed_forms() -> None:
    # a segment from (0, 1) to (1, 0) over ref (0, 0): a triangle of area 1/2
    assert convex_front_hypervolume([[0, 1], [1, 0]], [0, 0]) == pytest.approx(0.5)
    # a single point: a box; a reference inside the front clips the polyline
    assert convex_front_hypervolume([[2, 3]], [0, 1]) == pytest.approx(4.0)
    assert convex_front_hypervolume([[0, 2], [2, 0]], [1, 0]) == pytest.approx(0.5)
    assert convex_front_hypervolume([[0, 2], [2, 0]], [0, 1]) == pytest.approx(0.5)
    # the area under the polyline ≥ any finite set on it, and equal to a fine sampling's limit
    env = envs.make("mo_tabular")
    V, ref = env.exact_front(), env.ref_point
    exact = env.front_hypervolume()
    t = np.linspace(0, 1, 400)[:, None]
    fine = np.concatenate([(1 - t) * V[i] + t * V[i + 1] for i in range(len(V) - 1)])
    assert hypervolume(V, ref) < hypervolume(fine, ref) <= exact
    assert hypervolume(fine, ref) == pytest.approx(exact, rel=2e-3)


def test_synthetic_env_rollouts_match_exact_returns() -> None:
    env = MOTabularEnv(horizon=60)  # γ^60 ≈ 2e-3: the truncated tail is negligible
    mdp = env.mo_mdp
    pi = np.full((mdp.S, mdp.A), 1.0 / mdp.A)
    exact = mdp.returns(pi)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    G = []
    for _ in range(400):
        env.reset()
        g, disc, done = np.zeros(mdp.K), 1.0, False
        while not done:
            _, r, term, trunc, _ = env.step(int(rng.integers(mdp.A)))
            g += disc * r
            disc *= mdp.gamma
            done = term or trunc
        G.append(g)
    G = np.array(G)
    se = G.std(0) / np.sqrt(len(G))
    assert np.all(np.abs(G.mean(0) - exact) < 4 * se + 0.01)


def test_synthetic_env_is_deterministic_given_the_seed() -> None:
    a, b = MOTabularEnv(seed=2), MOTabularEnv(seed=2)
    np.testing.assert_array_equal(a.mo_mdp.R, b.mo_mdp.R)
    assert not np.array_equal(a.mo_mdp.R, MOTabularEnv(seed=3).mo_mdp.R)
    out = []
    for env in (a, b):
        env.reset(seed=4)
        out.append([env.step(k % 3)[0] for k in range(30)])
    assert out[0] == out[1]
