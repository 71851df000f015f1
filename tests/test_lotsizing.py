"""Post-decision environments: lot-sizing (hand-computed transitions and costs, post-decision
observations, demand law, instances and files, determinism) and the slippery lake."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from prl import envs
from prl.envs.lotsizing import (
    INSTANCE_DIR,
    PRESETS,
    LotSizingEnv,
    generate_instance,
    load_instance,
    tiny_instance,
)
from prl.envs.slippery_lake import MAPS
from prl.errors import ConfigError, InvalidInputError

# a deterministic-demand version of the tiny instance: Binomial(n, 1) = n
DEMAND = [7, 4]


def _tiny(**overrides) -> LotSizingEnv:
    over = {"demand": {"n": DEMAND, "p": 1.0}, **overrides}
    return envs.make("lotsizing", instance="tiny", overrides=over)


def _check_quietly(env) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        check_env(env)
    bad = [str(w.message) for w in caught if "alternative render modes" not in str(w.message)]
    assert not bad, bad


# ---- lot-sizing: hand computations ------------------------------------------------------------


def test_tiny_instance_transitions_and_costs_by_hand() -> None:
    # tiny: rates [[10, 6]], setup costs [[1.5, 1.0]], setup loss 1, holding 0.01, lost sales
    # 0.2, max inventory 30, start inventory [5, 0], machine not set up; demand fixed at [7, 4].
    env = _tiny()
    obs, _ = env.reset(seed=0)
    assert obs.tolist() == [5, 0, 0]
    expected = [
        # action, post-decision [inv1, inv2, setup], next state, reward
        # make item 1: set up (1.5, lose 1 unit) -> 5+9=14; sell 7, item 2 loses all 4 sales
        ([1], [14, 0, 1], [7, 0, 1], -(1.5 + 0.2 * 4 + 0.01 * 7)),
        # keep making item 1: no setup, +10 -> 17; sell 7 -> 10; lost 4
        ([1], [17, 0, 1], [10, 0, 1], -(0.2 * 4 + 0.01 * 10)),
        # switch to item 2: setup 1.0, 6-1=5 units; sell 7 and 4 -> [3, 1]
        ([2], [10, 5, 2], [3, 1, 2], -(1.0 + 0.01 * (3 + 1))),
        # idle: the machine loses its setup; demand 7, 4 against [3, 1]: lost 4 + 3 units
        ([0], [3, 1, 0], [0, 0, 0], -(0.2 * 7)),
        # item 2 again: a new setup is paid since the idle machine lost it
        ([2], [0, 5, 2], [0, 1, 2], -(1.0 + 0.2 * 7 + 0.01 * 1)),
    ]
    for action, post, nxt, reward in expected:
        obs, r, term, trunc, info = env.step(np.array(action))
        assert info["post_decision_obs"].tolist() == post
        assert obs.tolist() == nxt
        assert r == pytest.approx(reward, abs=1e-12)
        assert info["demand"].tolist() == DEMAND
        assert not term and not trunc
    assert info["setup_cost"] == 1.0 and info["setups"] == 1


def test_inventory_cap_overflow_and_infeasible_assignment() -> None:
    env = _tiny(production_rate=[[10, 0]])  # the machine cannot make item 2
    env.reset(seed=0, options={"inventory": [25, 3], "setup": [1]})
    obs, r, _, _, info = env.step(np.array([1]))  # no setup; 25 + 10 = 35 capped at 30
    assert info["post_decision_obs"].tolist() == [30, 3, 1]
    assert info["overflow"].tolist() == [5, 0]
    assert obs.tolist() == [23, 0, 1]
    assert r == pytest.approx(-(0.2 * 1 + 0.01 * 23), abs=1e-12)
    # asking for item 2 (rate 0) acts as idle: no production, no setup cost, setup lost
    obs, r, _, _, info = env.step(np.array([2]))
    assert info["post_decision_obs"].tolist() == [23, 0, 0]
    assert info["setup_cost"] == 0.0
    assert r == pytest.approx(-(0.2 * 4 + 0.01 * 16), abs=1e-12)


def test_two_machines_making_the_same_item_add_up() -> None:
    env = envs.make(
        "lotsizing",
        instance={
            "production_rate": [[3, 0], [4, 2]],
            "setup_cost": [[1.0, 0.0], [2.0, 1.0]],
            "setup_loss": [[1, 0], [2, 1]],
            "demand": {"n": [0, 5], "p": 1.0},
            "initial_inventory": [0, 0],
            "initial_setup": [0, 1],
        },
    )
    env.reset(seed=0)
    # machine 0 sets up for item 1 (cost 1, 3-1=2 units); machine 1 already on item 1 (4 units)
    _, r, _, _, info = env.step(np.array([1, 1]))
    assert info["post_decision_obs"].tolist() == [6, 0, 1, 1]
    assert r == pytest.approx(-(1.0 + 0.2 * 5 + 0.01 * 6), abs=1e-12)


def _reference_post_decision(inst, inventory, setup, action):
    """The documented decision step, written out machine by machine."""
    inv = [int(v) for v in inventory]
    new_setup = []
    for k, j in enumerate(int(a) for a in action):
        rate = int(inst.production_rate[k, j - 1]) if j > 0 else 0
        if rate == 0:
            new_setup.append(0)
            continue
        if j != int(setup[k]):
            rate = max(rate - int(inst.setup_loss[k, j - 1]), 0)
        inv[j - 1] += rate
        new_setup.append(j)
    inv = [min(v, int(c)) for v, c in zip(inv, inst.max_inventory)]
    return inv + new_setup


@pytest.mark.parametrize("preset", ["15x5", "25x10"])
def test_post_decision_obs_is_the_state_after_the_action_before_the_demand(preset: str) -> None:
    env = envs.make("lotsizing", instance=preset)
    n = env.n_items
    obs, _ = env.reset(seed=3)
    env.action_space.seed(3)
    for _ in range(250):
        a = env.action_space.sample()
        nxt, _, _, trunc, info = env.step(a)
        post = info["post_decision_obs"]
        assert post.dtype == np.float32 and env.observation_space.contains(post)
        assert post.tolist() == _reference_post_decision(env.instance, obs[:n], obs[n:], a)
        # the demand acts on the post-decision inventory only; setups pass through unchanged
        sold = np.minimum(post[:n], info["demand"])
        assert nxt[:n].tolist() == (post[:n] - sold).tolist()
        assert nxt[n:].tolist() == post[n:].tolist()
        obs = nxt
        if trunc:
            obs, _ = env.reset()


def test_post_decision_does_not_depend_on_the_demand_generator() -> None:
    outs = []
    for seed in (0, 1):
        env = envs.make("lotsizing", instance="15x5")
        env.reset(seed=seed, options={"inventory": [50] * 15, "setup": [0] * 5})
        _, _, _, _, info = env.step(np.array([1, 2, 5, 4, 11]))
        outs.append((info["post_decision_obs"].tolist(), info["demand"].tolist()))
    assert outs[0][0] == outs[1][0]
    assert outs[0][1] != outs[1][1]


def test_demand_is_binomial_20_04() -> None:
    env = envs.make("lotsizing", instance="15x5")
    env.reset(seed=0)
    env.action_space.seed(0)
    d = []
    for _ in range(2000):
        _, _, _, trunc, info = env.step(env.action_space.sample())
        d.append(info["demand"])
        if trunc:
            env.reset()
    d = np.concatenate(d).astype(np.float64)  # 30 000 draws
    assert d.min() >= 0 and d.max() <= 20
    assert abs(d.mean() - 8.0) < 5 * np.sqrt(4.8 / d.size)
    assert abs(d.var() / 4.8 - 1) < 0.05


def test_episode_length_and_reward_decomposition() -> None:
    env = envs.make("lotsizing", instance="20x10")
    env.reset(seed=5)
    env.action_space.seed(5)
    for t in range(1, 101):
        _, r, term, trunc, info = env.step(env.action_space.sample())
        assert not term and trunc == (t == 100)
        total = info["setup_cost"] + info["lost_sales_cost"] + info["holding_cost"]
        assert r == pytest.approx(-total, abs=1e-9)
        assert info["lost_sales_cost"] == pytest.approx(0.2 * info["lost_sales"].sum())


# ---- instances and files -----------------------------------------------------------------------


@pytest.mark.parametrize("name", list(PRESETS))
def test_presets_follow_the_paper(name: str) -> None:
    n, m = PRESETS[name]
    env = envs.make("lotsizing", instance=name)
    inst = env.instance
    assert (inst.n_items, inst.n_machines, inst.horizon) == (n, m, 100)
    assert env.action_space.nvec.tolist() == [n + 1] * m
    assert env.observation_space.shape == (n + m,)
    rate = inst.production_rate
    assert rate.min() >= 0 and rate.max() <= 40
    assert (rate > 0).any(axis=0).all() and (rate > 0).any(axis=1).all()
    capable = rate > 0
    assert np.all((inst.setup_cost[capable] >= 1) & (inst.setup_cost[capable] <= 2))
    assert np.all(inst.setup_loss[capable] == 1)
    assert np.all(inst.holding_cost == 0.01) and np.all(inst.lost_sales_cost == 0.2)
    assert np.all(inst.max_inventory == 100)
    assert np.all(inst.demand_n == 20) and np.all(inst.demand_p == 0.4)


def test_instances_are_deterministic_given_the_seed() -> None:
    a, b, c = (generate_instance(15, 5, s) for s in (0, 0, 1))
    assert a.to_dict() == {**b.to_dict()}
    assert a.production_rate.tolist() != c.production_rate.tolist()
    e1 = envs.make("lotsizing", instance="15x5", instance_seed=7)
    e2 = envs.make("lotsizing", instance="15x5", instance_seed=7)
    assert e1.instance.to_dict() == e2.instance.to_dict()


def test_same_seed_same_trajectory() -> None:
    def roll(seed: int) -> list:
        env = envs.make("lotsizing", instance="15x5")
        obs, _ = env.reset(seed=seed)
        env.action_space.seed(seed)
        out = [obs.tolist()]
        for _ in range(150):
            obs, r, _, trunc, info = env.step(env.action_space.sample())
            out.append((obs.tolist(), r, info["post_decision_obs"].tolist()))
            if trunc:
                out.append(env.reset()[0].tolist())
        return out

    assert roll(11) == roll(11)
    assert roll(11) != roll(12)


def test_get_state_set_state_resumes_exactly() -> None:
    env = envs.make("lotsizing", instance="15x5")
    env.reset(seed=2)
    a = np.array([1, 2, 3, 4, 5])
    for _ in range(3):
        env.step(a)
    snap = env.get_state()
    first = [env.step(a)[0].tolist() for _ in range(5)]
    other = envs.make("lotsizing", instance="15x5")
    other.set_state(snap)
    assert [other.step(a)[0].tolist() for _ in range(5)] == first


def test_instance_file_round_trip(tmp_path: Path) -> None:
    example = INSTANCE_DIR / "tiny_2x1.yaml"
    assert load_instance(example).to_dict() == tiny_instance().to_dict()
    env = envs.make("lotsizing", instance_file=str(example))
    assert env.instance.to_dict() == tiny_instance().to_dict()
    inst = generate_instance(20, 10, seed=4)
    for suffix in (".json", ".yaml"):
        path = tmp_path / f"inst{suffix}"
        inst.save(path)
        assert load_instance(path).to_dict() == inst.to_dict()


def test_bad_instances_and_actions_raise() -> None:
    with pytest.raises(InvalidInputError, match="instance must be one of"):
        envs.make("lotsizing", instance="16x5")
    with pytest.raises(InvalidInputError, match="production_rate"):
        envs.make("lotsizing", instance={"setup_cost": 1.0})
    with pytest.raises(InvalidInputError, match="unknown lot-sizing instance field"):
        envs.make("lotsizing", instance="tiny", overrides={"rates": [[1, 2]]})
    with pytest.raises(InvalidInputError, match=r"demand\.p"):
        envs.make("lotsizing", instance="tiny", overrides={"demand": {"p": 1.5}})
    with pytest.raises(InvalidInputError, match="does not exist"):
        envs.make("lotsizing", instance_file="/nonexistent/instance.yaml")
    with pytest.raises(ConfigError, match="unexpected keyword"):
        envs.make("lotsizing", items=3)
    env = _tiny()
    env.reset(seed=0)
    with pytest.raises(InvalidInputError, match=r"0\.\.2"):
        env.step(np.array([3]))
    with pytest.raises(InvalidInputError, match="integers"):
        env.step(np.array([0.5]))


def test_lotsizing_passes_the_gymnasium_checker() -> None:
    _check_quietly(_tiny())
    _check_quietly(envs.make("lotsizing", instance="25x10"))
    env = envs.make("lotsizing", instance="tiny", render_mode="ansi")
    env.reset(seed=0)
    env.step(np.array([1]))
    assert "inventory=" in env.render()


# ---- slippery lake ------------------------------------------------------------------------------


@pytest.mark.parametrize("map_name", list(MAPS))
def test_slippery_lake_checker_and_model(map_name: str) -> None:
    env = envs.make("slippery_lake", map_name=map_name)
    _check_quietly(env)
    S = len(MAPS[map_name]) ** 2
    assert env.mdp.P.shape == (S, 4, S)
    # V*(s) = max_a V^x(f(s, a)) on every non-terminal cell (the post-decision Bellman split)
    live = ~env.terminal
    vx = env.post_decision_values()
    assert np.allclose(vx[env.post_decision_table].max(axis=1)[live], env.mdp.v_star()[live])


def test_slippery_lake_kernel_by_hand() -> None:
    env = envs.make("slippery_lake", map_name="4x4", slip_seed=3)
    F, G, q = env.post_decision_table, env.slip_kernel, env.slip_dist
    # from the start cell 0: left and up hit the border, down -> 4, right -> 1
    assert F[0].tolist() == [0, 4, 1, 0]
    # from cell 1 the slip goes left -> 0, down -> 5 (a hole), right -> 2, up -> border (1)
    expect = np.zeros(16)
    expect[1] = 0.5 + 0.5 * q[1, 3]
    expect[0] = 0.5 * q[1, 0]
    expect[5] = 0.5 * q[1, 1]
    expect[2] = 0.5 * q[1, 2]
    assert np.allclose(G[1], expect, atol=1e-15)
    assert G[5, 5] == 1.0 and G[15, 15] == 1.0  # hole and goal: no slip


def test_slippery_lake_samples_match_the_kernel() -> None:
    env = envs.make("slippery_lake", map_name="4x4")
    env.reset(seed=0)
    counts = np.zeros(16)
    n = 6000
    for _ in range(n):
        env.reset(options={"state": 2})
        s, r, term, _, info = env.step(1)  # down from cell 2 -> post-decision cell 6
        assert info["post_decision_obs"] == 6
        counts[s] += 1
        assert r == (1.0 if s == 15 else 0.0) and term == bool(env.terminal[s])
    expected = env.slip_kernel[6] * n
    seen = expected > 0
    assert counts[~seen].sum() == 0
    chi2 = (((counts - expected) ** 2)[seen] / expected[seen]).sum()
    assert chi2 < 20.0  # ≤ 4 degrees of freedom: far beyond the 0.999 quantile (18.5)


def test_slippery_lake_determinism_and_errors() -> None:
    def roll(seed: int) -> list:
        env = envs.make("slippery_lake", map_name="8x8")
        env.reset(seed=seed)
        env.action_space.seed(seed)
        out = []
        for _ in range(300):
            s, r, term, trunc, info = env.step(env.action_space.sample())
            out.append((s, r, info["post_decision_obs"]))
            if term or trunc:
                env.reset()
        return out

    assert roll(4) == roll(4) and roll(4) != roll(5)
    with pytest.raises(InvalidInputError, match="map_name"):
        envs.make("slippery_lake", map_name="5x5")
    with pytest.raises(InvalidInputError, match="slip_prob"):
        envs.make("slippery_lake", slip_prob=1.5)
    env = envs.make("slippery_lake")
    env.reset(seed=0)
    with pytest.raises(InvalidInputError, match=r"0\.\.3"):
        env.step(4)
