"""Environments: gymnasium API, registry, determinism, and agreement with their exact models."""

from __future__ import annotations

import warnings
from collections import deque

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from prl import envs
from prl.envs.delivery import DEFAULT_WEIGHTS, MOVES
from prl.envs.tabular import TabularEnv
from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.mdp import TabularMDP
from prl.registry import ENVS

# warnings check_env may raise that say nothing about the environment itself
_BENIGN = (
    "Not able to test alternative render modes",
    "render_fps",
    # MuJoCo observation spaces are unbounded by design
    "observation space minimum value is -infinity",
    "observation space maximum value is infinity",
    # gymnasium's own Pendulum-v1 / MountainCarContinuous action ranges are not [-1, 1]
    "recommend using a symmetric and normalized space",
)

SMALL_KWARGS = {"delivery": {"size": 5, "n_sheep": 2, "n_coins": 2, "n_roadblocks": 2, "n_mud": 3}}


def _check_quietly(env: gymnasium.Env, skip_render_check: bool = False) -> None:
    benign = _BENIGN
    if hasattr(env, "reward_space"):  # multi-objective (mo-gymnasium API): vector rewards
        benign = (*benign, "The reward returned by `step()` must be a float")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env, skip_render_check=skip_render_check)
    bad = [str(w.message) for w in caught if not any(b in str(w.message) for b in benign)]
    assert not bad, bad


def _ours() -> list[str]:
    """Environments defined by this package's tabular and bandit modules."""
    return ["random_mdp", "chain", "delivery", "karmed", "contextual_loglinear", "dueling"]


def test_every_env_is_registered_with_a_description() -> None:
    assert set(_ours()) <= set(envs.names())
    for name in envs.names():
        assert ENVS.entry(name).description


@pytest.mark.parametrize("name", envs.names())
def test_check_env(name: str) -> None:
    # simulator-backed envs (MuJoCo, MetaWorld) would open an OpenGL context to test rendering,
    # which a headless CI machine cannot do; their API is checked all the same
    env = envs.make(name)
    _check_quietly(env.unwrapped, skip_render_check=name not in _ours())
    env.close()


@pytest.mark.parametrize("name", _ours())
def test_gymnasium_make_under_prl_namespace(name: str) -> None:
    gym_id = ENVS.entry(name).meta["gym_id"]
    assert gym_id.startswith("prl/")
    env = gymnasium.make(gym_id)
    _check_quietly(env.unwrapped)  # with a spec: also checks the "ansi" render mode
    env.close()


def test_unknown_name_and_bad_kwargs() -> None:
    with pytest.raises(UnknownNameError, match="chain"):
        envs.make("chian")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        envs.make("chain", nn=3)
    with pytest.raises(InvalidInputError):
        envs.make("chain", horizon=0)
    with pytest.raises(InvalidInputError):
        envs.make("karmed", reward="poisson")


def _rollout(env: gymnasium.Env, seed: int, steps: int = 40) -> list:
    env.action_space.seed(seed)
    obs, _ = env.reset(seed=seed)
    out = [np.asarray(obs).tolist()]
    for _ in range(steps):
        obs, r, term, trunc, _ = env.step(env.action_space.sample())
        out.append((np.asarray(obs).tolist(), r, term, trunc))
        if term or trunc:
            obs, _ = env.reset()
            out.append(np.asarray(obs).tolist())
    return out


@pytest.mark.parametrize("name", _ours())
def test_same_seed_same_trajectory(name: str) -> None:
    kw = SMALL_KWARGS.get(name, {})
    a = _rollout(envs.make(name, **kw), seed=5)
    b = _rollout(envs.make(name, **kw), seed=5)
    c = _rollout(envs.make(name, **kw), seed=6)
    assert a == b
    assert a != c


# ---- tabular --------------------------------------------------------------------------------
def test_tabular_returns_match_exact_values() -> None:
    P = np.array(
        [
            [[0.7, 0.3, 0.0], [0.0, 0.2, 0.8]],
            [[0.5, 0.0, 0.5], [0.0, 1.0, 0.0]],
            [[0.1, 0.1, 0.8], [1.0, 0.0, 0.0]],
        ]
    )
    R = np.array([[1.0, -1.0], [0.0, 2.0], [0.5, 3.0]])
    gamma, mu0 = 0.5, np.array([0.6, 0.4, 0.0])
    env = TabularEnv(TabularMDP(P, R, gamma, mu0=mu0), horizon=25)  # γ^25 ≈ 3e-8
    pi = np.array([[0.3, 0.7], [0.5, 0.5], [0.9, 0.1]])
    P_pi = np.einsum("sa,sat->st", pi, P)
    J = mu0 @ np.linalg.solve(np.eye(3) - gamma * P_pi, (pi * R).sum(1))
    rng = np.random.default_rng(0)
    n = 2000
    returns = np.empty(n)
    env.reset(seed=1)
    for k in range(n):
        s, _ = env.reset()
        g, disc, done = 0.0, 1.0, False
        while not done:
            s, r, term, trunc, _ = env.step(int(rng.random() > pi[s, 0]))
            g += disc * r
            disc *= gamma
            done = term or trunc
        returns[k] = g
    se = returns.std() / np.sqrt(n)
    assert abs(returns.mean() - J) <= 4 * se


def test_tabular_terminates_at_terminal_states_and_truncates_at_horizon() -> None:
    P = np.zeros((3, 1, 3))
    P[0, 0, 1] = P[1, 0, 2] = 1.0
    mdp = TabularMDP(P, np.ones((3, 1)), 1.0, mu0=[1.0, 0.0, 0.0], terminal=[False, False, True])
    env = TabularEnv(mdp, horizon=10)
    env.reset(seed=0)
    assert env.step(0)[1:4] == (1.0, False, False)
    assert env.step(0)[1:4] == (1.0, True, False)
    loop = np.zeros((2, 1, 2))
    loop[:, 0, 0] = 1.0
    env = TabularEnv(TabularMDP(loop, np.ones((2, 1)), 0.9, mu0=[1.0, 0.0]), horizon=3)
    env.reset(seed=0)
    flags = [env.step(0)[2:4] for _ in range(3)]
    assert flags == [(False, False), (False, False), (False, True)]
    with pytest.raises(InvalidInputError):
        TabularEnv(TabularMDP(P, np.ones((3, 1)), 1.0, terminal=[False, False, True]))  # μ0 on 2


# ---- delivery -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def delivery() -> envs.DeliveryEnv:
    return envs.make("delivery")


def test_delivery_layout_and_weights(delivery) -> None:
    assert delivery.size == 10 and delivery.mdp.S == 100 and delivery.mdp.A == 4
    np.testing.assert_array_equal(delivery.reward_weights, [-1, 50, -50, 1, -1, -2])
    cells = delivery.cells.reshape(-1)
    counts = {code: int((cells == code).sum()) for code in range(1, 6)}
    assert counts == {1: 1, 2: 4, 3: 8, 4: 10, 5: 16}  # the default feature counts
    np.testing.assert_array_equal(delivery.mdp.terminal, (cells == 1) | (cells == 2))
    assert np.all(delivery.features[:, 0] == 1)
    for code in range(1, 6):
        np.testing.assert_array_equal(delivery.features[:, code], cells == code)
    mu0 = delivery.mdp.mu0
    assert np.all(mu0[delivery.mdp.terminal] == 0)
    np.testing.assert_allclose(mu0[~delivery.mdp.terminal], 1 / (~delivery.mdp.terminal).sum())
    same = envs.make("delivery", map_seed=0)
    other = envs.make("delivery", map_seed=1)
    assert np.array_equal(same.cells, delivery.cells)
    assert not np.array_equal(other.cells, delivery.cells)


def test_delivery_step_matches_mdp_and_map(delivery) -> None:
    size, mdp, cells = delivery.size, delivery.mdp, delivery.cells
    for s in np.flatnonzero(~mdp.terminal):
        r0, c0 = divmod(int(s), size)
        for a in range(4):
            delivery.reset(seed=0, options={"state": int(s)})
            s2, rew, term, trunc, _ = delivery.step(a)
            # expected from the map: gas every step, plus the entered cell's weight
            nr, nc = r0 + MOVES[a][0], c0 + MOVES[a][1]
            inside = 0 <= nr < size and 0 <= nc < size
            exp_s2 = nr * size + nc if inside else s
            exp_r = DEFAULT_WEIGHTS[0]
            if inside and cells[nr, nc] >= 0:
                exp_r += DEFAULT_WEIGHTS[cells[nr, nc]]
            assert s2 == exp_s2 and rew == exp_r
            assert term == (cells[nr, nc] in (1, 2) if inside else False) and not trunc
            assert mdp.P[s, a, s2] == 1.0 and mdp.R[s, a] == rew
            assert term == bool(mdp.terminal[s2])


def test_delivery_goal_reachable_and_optimal_values(delivery) -> None:
    size, cells, mdp = delivery.size, delivery.cells, delivery.mdp
    goal = tuple(np.argwhere(cells == 1)[0])
    seen, queue = {goal}, deque([goal])
    while queue:  # BFS from the goal through non-terminal cells
        r, c = queue.popleft()
        for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            n = (r + dr, c + dc)
            if 0 <= n[0] < size and 0 <= n[1] < size and n not in seen and cells[n] not in (1, 2):
                seen.add(n)
                queue.append(n)
    assert all((r, c) in seen for r, c in np.argwhere(~np.isin(cells, (1, 2))))
    # next to the goal, stepping in is optimal: −1 gas + 50 = 49 (coins net 0, nothing beats it)
    V = mdp.v_star()
    for dr, dc in ((1, 0), (-1, 0), (0, 1), (0, -1)):
        r, c = goal[0] + dr, goal[1] + dc
        if 0 <= r < size and 0 <= c < size and cells[r, c] != 2:
            assert V[r * size + c] == pytest.approx(49.0, abs=1e-9)


def test_delivery_reward_override_and_render() -> None:
    w = np.array([-2.0, 10.0, -10.0, 0.0, 0.0, 0.0])
    env = envs.make("delivery", reward_weights=w, render_mode="ansi")
    np.testing.assert_allclose(
        env.mdp.R[~env.mdp.terminal], env.transition_features[~env.mdp.terminal] @ w
    )
    assert set(np.unique(env.mdp.R[~env.mdp.terminal])) <= {-2.0, 8.0, -12.0}
    env.reset(seed=3)
    text = env.render()
    assert text.count("\n") == 10 and text.count("A") == 1 and text.count("G") == 1
    with pytest.raises(InvalidInputError):
        envs.make("delivery", reward_weights=[1.0, 2.0])
    with pytest.raises(InvalidInputError):
        envs.make("delivery", size=3, n_mud=20)


# ---- bandits --------------------------------------------------------------------------------
def test_dueling_win_rates_match_P() -> None:
    P = np.array([[0.5, 0.8, 0.3], [0.2, 0.5, 0.65], [0.7, 0.35, 0.5]])
    env = envs.make("dueling", P=P)
    assert env.action_space.nvec.tolist() == [3, 3]
    env.reset(seed=0)
    n = 1500
    for i in range(3):
        for j in range(3):
            wins = 0.0
            for _ in range(n):
                env.reset()
                _, r, term, _, info = env.step(np.array([i, j]))
                assert term and info["winner"] == (i if r == 1.0 else j)
                wins += r
            p = P[i, j]
            assert abs(wins / n - p) <= 4 * np.sqrt(p * (1 - p) / n) + 1e-12


def test_dueling_validates_P_and_resolves_games() -> None:
    for bad in ([[0.5, 0.7], [0.4, 0.5]], [[0.5, 1.2], [-0.2, 0.5]], np.ones((2, 3)) / 2):
        with pytest.raises(InvalidInputError):
            envs.make("dueling", P=bad)
    rps = envs.make("dueling").P
    np.testing.assert_array_equal(rps, [[0.5, 0, 1], [1, 0.5, 0], [0, 1, 0.5]])
    dice = envs.make("dueling", game="dice").P  # intransitive dice: each wins 5/9 against the next
    assert dice[0, 1] == pytest.approx(5 / 9) and dice[1, 2] == pytest.approx(5 / 9)
    assert dice[2, 0] == pytest.approx(5 / 9)
    rnd = envs.make("dueling", game="random", K=5, seed=3).P
    assert rnd.shape == (5, 5)
    np.testing.assert_allclose(rnd + rnd.T, 1.0, atol=1e-12)


def test_karmed_means_and_rewards() -> None:
    env = envs.make("karmed", means=[0.2, 0.9, 0.5], reward="bernoulli")
    assert env.best_arm == 1
    env.reset(seed=0)
    n = 3000
    means = []
    for a in range(3):
        tot = 0.0
        for _ in range(n):
            env.reset()
            _, r, term, _, _ = env.step(a)
            assert term and r in (0.0, 1.0)
            tot += r
        means.append(tot / n)
    p = np.array([0.2, 0.9, 0.5])
    assert np.all(np.abs(np.array(means) - p) <= 4 * np.sqrt(p * (1 - p) / n))
    g = envs.make("karmed", K=7, seed=2)
    assert g.means.shape == (7,) and g.best_arm == int(np.argmax(g.means))
    with pytest.raises(InvalidInputError):
        envs.make("karmed", means=[0.5, 1.5], reward="bernoulli")


def test_contextual_loglinear_features_and_rewards() -> None:
    env = envs.make("contextual_loglinear", K=4, d=3, noise_std=0.0, seed=1)
    obs, info = env.reset(seed=0)
    x = info["context"]
    phi = env.features(x)
    assert phi.shape == (4, 3)
    np.testing.assert_array_equal(obs, phi.reshape(-1))
    W, b = env.W, env.b
    for a in range(4):
        np.testing.assert_allclose(phi[a], np.tanh(W[a] @ x + b[a]))
        env.reset(seed=0)
        _, r, term, _, _ = env.step(a)
        assert term and r == pytest.approx(float(env.theta @ phi[a]), abs=1e-12)
    xs = env.sample_contexts(5, np.random.default_rng(0))
    assert env.features(xs).shape == (5, 4, 3)
    np.testing.assert_allclose(env.expected_rewards(xs), env.features(xs) @ env.theta)
    box = envs.make("contextual_loglinear", K=4, d=3, flatten=False)
    assert box.reset(seed=0)[0].shape == (4, 3)
    with pytest.raises(InvalidInputError):
        envs.make("contextual_loglinear", d=3, theta=[1.0, 2.0])
