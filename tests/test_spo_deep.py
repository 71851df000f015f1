"""Deep SPO: win-rate arithmetic, intransitive preferences, budgets, determinism, resume, SB3."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from stable_baselines3.common.callbacks import BaseCallback

from prl.algos.rlhf import preference_source, random_policy_trajectories
from prl.algos.spo_deep import (
    SPO,
    SPOPPO,
    spread_over_steps,
    torch_threads,
    tree_selfplay_npg,
    tree_trajectory_distribution,
    win_rates,
)
from prl.config import build_config
from prl.envs.factored import find_cycles
from prl.errors import ConfigError, InvalidInputError
from prl.games import exploitability
from prl.oracles import MajorityVote
from prl.run import load_checkpoint, run_experiment, train
from prl.types import Segments
from prl.utils import resolve_device, seed_everything

ENV = "PendulumFactored-v1"
EK = {"max_episode_steps": 10}
TINY = {
    "n_envs": 2,
    "query_budget": 100,
    "queries_per_iter": 6,
    "eval_episodes": 1,
    "batch_size": 20,
    "n_epochs": 2,
    "pool_size": 4,
    "hidden": [16, 16],
}


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny networks: one intra-op thread is fastest (and fair on a shared CPU)."""
    with torch_threads(1):
        yield


def _same(r1: list[dict], r2: list[dict]) -> bool:
    def norm(r: dict) -> dict:
        return {k: ("nan" if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()}

    return [norm(r) for r in r1] == [norm(r) for r in r2]


# ---- win-rate arithmetic ---------------------------------------------------------------------
def test_win_rates_by_hand() -> None:
    # batch items 0..3, queue item 4; duels (a, b, P̂(a ≻ b)); the last duel is masked
    a = np.array([0, 0, 1, 2, 0])
    b = np.array([1, 2, 2, 4, 4])
    lab = np.array([1.0, 0.0, 0.5, 1.0, 1.0])
    mask = np.array([True, True, True, True, False])
    w = win_rates(4, a, b, lab, mask)
    # 0: wins vs 1, loses vs 2 → 1/2; 1: loses vs 0, ties 2 → 1/4;
    # 2: beats 0, ties 1, beats queue 4 → 2.5/3; 3: no duel → 1/2
    np.testing.assert_allclose(w, [0.5, 0.25, 2.5 / 3, 0.5])
    with pytest.raises(InvalidInputError):
        win_rates(2, a, b[:2], lab)
    with pytest.raises(InvalidInputError):
        win_rates(2, [0], [1], [1.5])


def test_spread_over_steps_by_hand() -> None:
    s, L = np.array([0.6, 0.2]), np.array([3, 2])
    np.testing.assert_allclose(
        spread_over_steps(s, L, 4), [[0.2, 0.2, 0.2, 0.0], [0.1, 0.1, 0.0, 0.0]]
    )
    np.testing.assert_allclose(spread_over_steps(s, L, 4, "last"), [[0, 0, 0.6, 0], [0, 0.2, 0, 0]])
    with pytest.raises(InvalidInputError):
        spread_over_steps(s, np.array([5, 1]), 4)
    with pytest.raises(InvalidInputError):
        spread_over_steps(s, L, 4, "middle")


def test_buffer_rewards_are_spread_win_rates() -> None:
    """SPOPPO writes (score − ½)/T on each step of each complete episode of the rollout."""
    learner = SPO(build_config(SPO.Config, TINY), ENV, EK, 0, resolve_device("cpu"))
    seen: list[np.ndarray] = []

    def stub(seg: Segments) -> np.ndarray:
        s = np.linspace(0.0, 1.0, seg.batch_size)
        seen.append(s)
        return s

    learner.model.scorer = stub
    learner.model.learn(learner.rollout_size, reset_num_timesteps=False)
    eps = learner.model.last_episodes
    buf = learner.model.rollout_buffer.rewards
    assert len(eps) == 2 * 1  # n_envs × (n_steps / horizon)
    for e, s in zip(eps, seen[0]):
        np.testing.assert_allclose(buf[e.start : e.start + 10, e.env], (s - 0.5) / 10, rtol=1e-6)
    learner.close()


# ---- intransitive preferences ----------------------------------------------------------------
def test_majority_vote_is_intransitive_on_a_constructed_triple() -> None:
    # Hopper raters: speed Σ forward, endurance Σ healthy, frugal −Σ ctrl_cost
    # a = (3, 1, 2), b = (2, 3, 3), c = (1, 2, 1): speed a>b>c, endurance b>c>a, frugal c>a>b
    F = np.array([[3.0, 1.0, 2.0], [2.0, 3.0, 3.0], [1.0, 2.0, 1.0]])[:, None, :]
    seg = Segments(np.zeros((3, 1, 1)), np.zeros((3, 1, 1)), np.zeros((3, 1)), infos={"factors": F})
    mv = preference_source("intransitive", "HopperFactored-v5").oracle
    assert isinstance(mv, MajorityVote) and mv.n_raters == 3
    p = mv.prob(seg[[0, 1, 2]], seg[[1, 2, 0]])
    np.testing.assert_array_equal(p, [1.0, 1.0, 1.0])  # a ≻ b ≻ c ≻ a
    np.testing.assert_array_equal(mv.prob(seg[[1, 2, 0]], seg[[0, 1, 2]]), [0.0, 0.0, 0.0])


def test_majority_vote_cycles_on_sampled_trajectories() -> None:
    seg = random_policy_trajectories("HopperFactored-v5", 12, np.random.default_rng(0),
                                     max_episode_steps=40)  # fmt: skip
    mv = preference_source("intransitive", "HopperFactored-v5").oracle
    i, j = np.meshgrid(np.arange(12), np.arange(12), indexing="ij")
    P = mv.prob(seg[i.ravel()], seg[j.ravel()]).reshape(12, 12)
    cycles = find_cycles(P)
    assert cycles
    x, y, z = cycles[0]
    assert P[x, y] == P[y, z] == P[z, x] == 1.0


# ---- budgets ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, match",
    [
        ({"query_budget": 0}, "query_budget"),
        ({"query_budget": -5}, "query_budget"),
        ({"query_budget": "lots"}, "query_budget"),
        ({"query_budget": 1.5}, "query_budget"),
        ({"queries_per_iter": 0}, "queries_per_iter"),
        ({"query_budget": 10, "queries_per_iter": 11}, "exceeds query_budget"),
        ({"n_steps": 5}, "whole episodes"),
    ],
)
def test_invalid_query_budgets_are_rejected(bad: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train("spo", ENV, steps=10, config={**TINY, **bad}, env_kwargs=EK)


def test_budget_is_a_hard_cap_and_freezes_the_policy() -> None:
    cfg = {**TINY, "query_budget": 8, "queries_per_iter": 5, "eval_episodes": 0}
    learner, rows = train("spo", ENV, seed=1, steps=80, config=cfg, env_kwargs=EK)
    used = [r["queries"] for r in rows]
    assert used[0] == 1  # first batch: 2 trajectories, empty queue → one pair
    assert max(used) == 8 and all(q <= 8 for q in used)
    assert rows[-1]["frozen"] == 1
    # once frozen, further iterations leave the policy unchanged
    before = [p.detach().clone() for p in learner.model.policy.parameters()]
    learner.venv = learner._make_venv()
    learner.model.set_env(learner.venv)
    learner.step()
    after = list(learner.model.policy.parameters())
    assert all(torch.equal(x, y) for x, y in zip(before, after))
    learner.close()


# ---- runs ------------------------------------------------------------------------------------
@pytest.mark.parametrize("pref", ["transitive", "intransitive", "stochastic", "nonmarkov", "jerk"])
def test_tiny_smoke_every_preference(pref: str) -> None:
    cfg = {**TINY, "preference": pref, "n_epochs": 1}
    _, rows = train("spo", ENV, seed=0, steps=40, config=cfg, env_kwargs=EK)
    last = rows[-1]
    assert last["step"] == 40 and last["queries"] <= 100
    assert 0.0 <= last["win_rate_mean"] <= 1.0
    assert np.isfinite(last["eval_return"]) and np.isfinite(last["return"])


def test_smoke_hopper_with_early_termination() -> None:
    """Episodes cut by the rollout end get zero advantage; complete ones are scored."""
    cfg = {**TINY, "n_steps": 60, "eval_episodes": 0}
    learner, rows = train("spo", "HopperFactored-v5", seed=0, steps=120, config=cfg,
                          env_kwargs={"max_episode_steps": 30})  # fmt: skip
    assert rows[-1]["episodes"] >= 2
    learner.venv = learner._make_venv()
    learner.model.set_env(learner.venv)
    learner.model.frozen = True  # keep the rollout buffer unflattened for inspection
    learner.model.learn(learner.rollout_size, reset_num_timesteps=False)
    buf = learner.model.rollout_buffer
    eps = learner.model.last_episodes
    done = [e for e in eps if e.complete]
    assert done
    covered = np.zeros(buf.advantages.shape, dtype=bool)
    for e in done:
        covered[e.start : e.start + e.length, e.env] = True
    assert not covered.all()  # some steps belong to episodes cut by the rollout's end
    assert np.all(buf.advantages[~covered] == 0.0)
    assert np.all(buf.rewards[~covered] == 0.0)
    assert np.abs(buf.advantages[covered]).sum() > 0
    learner.close()


def test_determinism() -> None:
    cfg = {**TINY, "preference": "intransitive"}
    _, r1 = train("spo", ENV, seed=4, steps=40, config=cfg, env_kwargs=EK)
    _, r2 = train("spo", ENV, seed=4, steps=40, config=cfg, env_kwargs=EK)
    _, r3 = train("spo", ENV, seed=5, steps=40, config=cfg, env_kwargs=EK)
    assert _same(r1, r2)
    assert not _same(r1, r3)


def test_checkpoint_resume_is_exact() -> None:
    cfg = build_config(SPO.Config, {**TINY, "eval_episodes": 0})
    seed_everything(2)
    a = SPO(cfg, ENV, EK, 2, resolve_device("cpu"))
    rows = [a.step(), a.step()]
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)
    a.close()
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    seed_everything(77)  # a fresh process would start elsewhere
    b = SPO(cfg, ENV, EK, 2, resolve_device("cpu"))
    b.load_state_dict(state)
    rows.append(b.step())
    b.close()
    _, straight = train("spo", ENV, seed=2, steps=60, config={**TINY, "eval_episodes": 0},
                        env_kwargs=EK)  # fmt: skip
    assert _same([{k: v for k, v in r.items() if k != "step"} for r in straight], rows)


def test_run_directory_checkpoint_and_continue(tmp_path) -> None:
    cfg = {**TINY, "eval_episodes": 0}
    res = run_experiment("spo", ENV, seed=0, steps=40, out=tmp_path, config=cfg,
                         env_kwargs=EK, progress=False)  # fmt: skip
    state = load_checkpoint(res.run_dir / "checkpoint.pt")  # weights_only=True inside
    assert state["learner"]["queries_used"] > 0
    more = run_experiment("spo", ENV, seed=0, steps=60, out=tmp_path, resume=res.run_dir,
                          progress=False)  # fmt: skip
    assert more.resumed and more.steps_done == 60


def test_sb3_callbacks_and_save_load(tmp_path) -> None:
    learner = SPO(build_config(SPO.Config, TINY), ENV, EK, 0, resolve_device("cpu"))

    class Count(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def _on_step(self) -> bool:
            self.calls += 1
            return True

    cb = Count()
    learner.callback = cb
    learner.step()
    assert cb.calls == learner.n_steps  # one call per vectorized env step
    path = tmp_path / "spo_model.zip"
    learner.model.save(path)
    loaded = SPOPPO.load(path, env=learner.venv, scorer=learner.score)
    obs = np.zeros((1, 3), dtype=np.float32)
    a1, _ = learner.model.predict(obs, deterministic=True)
    a2, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(a1, a2)
    loaded.learn(learner.rollout_size, reset_num_timesteps=False)  # training continues
    learner.close()


# ---- exact tabular form ----------------------------------------------------------------------
def test_tree_distribution_is_a_product_of_per_node_policies() -> None:
    logits = [torch.tensor([[[0.0, math.log(3.0)]]], dtype=torch.float64),
              torch.zeros(1, 2, 2, dtype=torch.float64)]  # fmt: skip
    q = tree_trajectory_distribution(logits)[0]
    np.testing.assert_allclose(q.numpy(), [0.125, 0.125, 0.375, 0.375])


def test_tree_npg_finds_the_known_minimax_winners() -> None:
    # rock–paper–scissors among trajectories 000, 001, 010, which beat all others: winner
    # uniform on them; a Condorcet winner (trajectory 101) is the minimax winner of the second
    P = np.full((8, 8), 0.5)
    P[:3, :3] = [[0.5, 1, 0], [0, 0.5, 1], [1, 0, 0.5]]
    P[:3, 3:], P[3:, :3] = 1.0, 0.0
    C = np.full((8, 8), 0.5)
    C[5, :], C[:, 5], C[5, 5] = 1.0, 0.0, 0.5
    T = 3000
    eta = math.sqrt(8 * math.log(2) / T)
    res = tree_selfplay_npg(torch.as_tensor(np.stack([P, C])), 3, 2, eta, T, np.array([10, T]))
    winners = np.array([[1 / 3] * 3 + [0] * 5, np.eye(8)[5]])
    assert np.abs(res.avg.numpy() - winners).sum(1).max() < 0.1
    # exploitability of the average = Regret/T ≤ H(log A/(ηT) + η/8) (per-node MWU bound)
    bound = 3 * (math.log(2) / (eta * res.t) + eta / 8)
    assert np.all(res.expl_avg.numpy() <= bound[:, None])
    for g, M in enumerate((P, C)):
        assert float(exploitability(M, res.avg[g].numpy())) == pytest.approx(
            float(res.expl_avg[-1, g]), abs=1e-12
        )
    with pytest.raises(InvalidInputError):
        tree_selfplay_npg(torch.as_tensor(P)[None], 2, 2, 0.1, 10)
