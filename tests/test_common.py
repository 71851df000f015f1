"""The shared pieces of prl.common against hand computations: GAE recursion, PPO clipping, the
Bradley–Terry/DPO/IPO/CPL loss family, query budget and labelling, episode padding, the global
RNG capture of the SB3 base, and config-field aliases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from prl.common.episodes import Episode, episodes_to_segments
from prl.common.losses import bt_loss, bt_nll, dpo_loss, ipo_loss, masked_mean, rdpo_loss
from prl.common.ppo import clipped_ratio_term, clipped_surrogate, gae_recursion
from prl.common.queries import QueryBudget, label_pairs, query_pairs
from prl.common.sb3 import global_rng_state, set_global_rng_state
from prl.config import alias, build_config, option, resolve_aliases
from prl.errors import ConfigError
from prl.oracles import BradleyTerry
from prl.types import Segments


# ---- GAE and the clipped surrogate -----------------------------------------------------------
def test_gae_recursion_by_hand_numpy_and_torch() -> None:
    # Â_2 = 3, Â_1 = 2 + 0.5·3 = 3.5, Â_0 = 1 + 0.5·3.5 = 2.75; the decay at t = 2 is unused
    deltas = np.array([1.0, 2.0, 3.0])
    decays = np.array([0.5, 0.5, 0.25])
    np.testing.assert_array_equal(gae_recursion(deltas, decays), [2.75, 3.5, 3.0])
    # an episode end at t = 0 (decay 0) cuts the sum there: Â_0 = δ_0
    np.testing.assert_array_equal(gae_recursion(deltas, np.array([0.0, 0.5, 0.5])), [1, 3.5, 3])
    # vector critic [T, n, K] in torch, decays broadcast over K
    d = torch.tensor([[[1.0, 10.0]], [[2.0, 20.0]]], dtype=torch.float64)
    c = torch.tensor([[[0.5]], [[0.5]]], dtype=torch.float64)
    out = gae_recursion(d, c)
    assert out.shape == (2, 1, 2)
    torch.testing.assert_close(out[:, 0], torch.tensor([[2.0, 20.0], [2.0, 20.0]], dtype=out.dtype))


def test_gae_recursion_matches_the_closed_form_sum() -> None:
    # Â_t = Σ_l (γλ)^l δ_{t+l} without episode ends (Schulman et al. 2016, Eq. 16)
    rng = np.random.default_rng(0)
    deltas = rng.normal(size=6)
    gl = 0.9 * 0.8
    want = [sum(gl**l * deltas[t + l] for l in range(6 - t)) for t in range(6)]
    np.testing.assert_allclose(gae_recursion(deltas, np.full(6, gl)), want, rtol=1e-13)


def test_clipped_surrogate_by_hand() -> None:
    ratio = torch.tensor([0.5, 1.5, 0.5, 1.5])
    adv = torch.tensor([1.0, 1.0, -1.0, -1.0])
    # min(ρA, clip(ρ, 0.8, 1.2)A): 0.5, 1.2, −0.8, −1.5
    torch.testing.assert_close(
        clipped_ratio_term(ratio, adv, 0.2), torch.tensor([0.5, 1.2, -0.8, -1.5])
    )
    torch.testing.assert_close(clipped_surrogate(ratio, adv, 0.2), torch.tensor(0.15))


# ---- the loss family ---------------------------------------------------------------------------
def test_bt_nll_by_hand() -> None:
    z = torch.tensor([0.0, math.log(3.0), math.log(3.0)], dtype=torch.float64)
    y = torch.tensor([1.0, 1.0, 0.25], dtype=torch.float64)
    # σ(0) = ½; σ(log 3) = ¾, σ(−log 3) = ¼
    want = [math.log(2), math.log(4 / 3), 0.25 * math.log(4 / 3) + 0.75 * math.log(4)]
    torch.testing.assert_close(bt_nll(z, y), torch.tensor(want, dtype=torch.float64))
    # CPL's conservative form: the other logit is given, not −z (Hejna et al., Eq. 5)
    zb = torch.tensor([math.log(3.0)], dtype=torch.float64)
    got = bt_nll(torch.zeros(1, dtype=torch.float64), torch.zeros(1, dtype=torch.float64), zb)
    torch.testing.assert_close(got, torch.tensor([math.log(4 / 3)], dtype=torch.float64))


def test_dpo_ipo_rdpo_by_hand() -> None:
    h = torch.tensor([2.0], dtype=torch.float64)
    one = torch.ones(1, dtype=torch.float64)
    # DPO: −log σ(β h) with β h = 0.5·2 = 1
    torch.testing.assert_close(
        dpo_loss(h, one, 0.5), torch.tensor([math.log1p(math.exp(-1.0))], dtype=torch.float64)
    )
    torch.testing.assert_close(
        bt_loss(h, one), torch.tensor([math.log1p(math.exp(-2.0))], dtype=torch.float64)
    )
    # IPO: ℓ(h − c)² + (1 − ℓ)(h + c)², c = 1/(2β) = 1 for β = ½, ℓ = ¾: ¾·1 + ¼·9 = 3
    lab = torch.tensor([0.75], dtype=torch.float64)
    torch.testing.assert_close(ipo_loss(h, lab, 0.5), torch.tensor([3.0], dtype=torch.float64))
    # its minimiser (ℓ − ½)/β = 0.5: the derivative 2ℓ(h − c) + 2(1 − ℓ)(h + c) vanishes there
    hm = torch.tensor([0.5], dtype=torch.float64, requires_grad=True)
    ipo_loss(hm, lab, 0.5).sum().backward()
    assert abs(float(hm.grad)) < 1e-12
    # rDPO with ε = 0 is DPO; with ε: [(1−ε)ℓ(z) − εℓ(−z)]/(1−2ε), ℓ(z) = −log σ(z)
    torch.testing.assert_close(rdpo_loss(h, one, 0.5, eps=0.0), dpo_loss(h, one, 0.5))
    e, lz, lmz = 0.1, math.log1p(math.exp(-1.0)), math.log1p(math.exp(1.0))
    want = ((1 - e) * lz - e * lmz) / (1 - 2 * e)
    torch.testing.assert_close(
        rdpo_loss(h, one, 0.5, eps=e), torch.tensor([want], dtype=torch.float64)
    )


def test_masked_mean() -> None:
    per = torch.tensor([1.0, 2.0, 6.0])
    assert float(masked_mean(per, None)) == 3.0
    assert float(masked_mean(per, torch.tensor([True, False, True]))) == 3.5
    assert float(masked_mean(per, torch.tensor([False, False, False]))) == 0.0


def test_reward_model_and_cpl_use_the_same_likelihood() -> None:
    from prl.algos.cpl import cpl_loss
    from prl.reward_model import bt_loss as rm_bt_loss

    ra = torch.tensor([1.0, 0.0, 2.0], dtype=torch.float64)
    rb = torch.tensor([0.0, 0.0, -1.0], dtype=torch.float64)
    y = torch.tensor([1.0, 0.5, 0.0], dtype=torch.float64)
    want = float(bt_nll(ra - rb, y).mean())
    assert float(rm_bt_loss(ra, rb, y)) == want
    assert float(cpl_loss(ra, rb, y, lam=1.0)) == want  # CPL with λ = 1 is plain BT


# ---- queries -----------------------------------------------------------------------------------
def test_query_budget_and_pairs() -> None:
    b = QueryBudget(5)
    assert b.take(3) == 3 and b.take(3) == 2 and b.exhausted and b.take(1) == 0
    with pytest.raises(ConfigError):
        QueryBudget(0)
    a, c = query_pairs(3, 2, 100, np.random.default_rng(0))
    # the 3 unordered pairs of new items, then every (new, old) pair: 3 + 3·2 = 9
    assert list(zip(a.tolist(), c.tolist())) == [
        (0, 1), (0, 2), (1, 2), (0, 3), (0, 4), (1, 3), (1, 4), (2, 3), (2, 4),
    ]  # fmt: skip
    a, c = query_pairs(3, 2, 4, np.random.default_rng(0))
    assert len(a) == 4 and (a < 3).all()


def test_label_pairs_with_and_without_a_budget() -> None:
    rew = np.array([[1.0, 0.0], [0.0, 0.0], [3.0, 0.0]])
    pool = Segments(np.zeros((3, 2, 1)), np.zeros((3, 2, 1)), rew)
    pairs = np.array([[0, 1], [1, 2], [2, 0]])
    full = label_pairs(pool, pairs, BradleyTerry(np.inf), np.random.default_rng(0))
    np.testing.assert_array_equal(full.label, [1.0, 0.0, 1.0])  # returns 1 > 0, 0 < 3, 3 > 1
    budget = QueryBudget(2)
    part = label_pairs(pool, pairs, BradleyTerry(np.inf), np.random.default_rng(0), budget=budget)
    np.testing.assert_array_equal(part.label, [1.0, 0.0])
    assert budget.exhausted
    assert (
        label_pairs(pool, pairs, BradleyTerry(1.0), np.random.default_rng(0), budget=budget) is None
    )


# ---- episodes ----------------------------------------------------------------------------------
def test_episodes_are_padded_by_hand() -> None:
    ep = Episode(
        env=0,
        start=0,
        obs=np.array([[1.0], [2.0]]),
        actions=np.array([[0.5], [-0.5]], dtype=np.float32),
        rewards=np.array([1.0, 2.0]),
        env_rewards=np.array([0.0, 0.0]),
        factors=None,
        height=np.array([0.1, 0.2]),
        terminated=True,
        complete=True,
    )
    seg = episodes_to_segments([ep], horizon=3)
    np.testing.assert_array_equal(seg.rewards, [[1.0, 2.0, 0.0]])
    np.testing.assert_array_equal(seg.obs[0, :, 0], [1.0, 2.0, 2.0])  # the last obs repeated
    np.testing.assert_array_equal(seg.actions[0, :, 0], [0.5, -0.5, 0.0])
    np.testing.assert_array_equal(seg.infos["valid"], [[True, True, False]])
    np.testing.assert_array_equal(seg.infos["height"], [[0.1, 0.2, 0.2]])


# ---- global RNG capture ------------------------------------------------------------------------
def test_global_rng_state_round_trip() -> None:
    np.random.seed(3)  # noqa: NPY002 (the legacy global generator SB3 uses)
    torch.manual_seed(3)
    state = global_rng_state("cpu")
    a = (np.random.random(4), torch.rand(4))  # noqa: NPY002
    np.random.random(7)  # noqa: NPY002
    torch.rand(7)
    set_global_rng_state(state, "cpu")
    b = (np.random.random(4), torch.rand(4))  # noqa: NPY002
    np.testing.assert_array_equal(a[0], b[0])
    assert torch.equal(a[1], b[1])
    assert isinstance(state["np_global_rng"], str)  # JSON: loads with weights_only=True


# ---- config aliases ----------------------------------------------------------------------------
@dataclasses.dataclass
class _Cfg:
    constraint_frac: float = option(0.9, "β")
    beta: float | None = alias("constraint_frac")

    def __post_init__(self) -> None:
        resolve_aliases(self)


def test_config_alias_moves_to_the_canonical_field() -> None:
    assert build_config(_Cfg, {"beta": "0.5"}).constraint_frac == 0.5
    assert build_config(_Cfg, {"beta": 0.5}).beta is None
    assert _Cfg(beta=0.7).constraint_frac == 0.7
    assert build_config(_Cfg, {"constraint_frac": 0.6}).constraint_frac == 0.6
    # a stored config.json holds both names, the alias as null: resuming reads it back
    assert build_config(_Cfg, {"beta": None, "constraint_frac": 0.8}).constraint_frac == 0.8
    assert build_config(_Cfg, {"beta": 0.6, "constraint_frac": 0.6}).constraint_frac == 0.6
    with pytest.raises(ConfigError, match="not both"):
        build_config(_Cfg, {"beta": 0.5, "constraint_frac": 0.6})


def test_common_does_not_import_algos_or_theory() -> None:
    import subprocess
    import sys

    code = (
        "import sys, prl.common.episodes, prl.common.queries, prl.common.losses, "
        "prl.common.ppo, prl.common.sb3, prl.common.reward, prl.data, prl.reward_model, prl.smoke\n"
        "bad = [m for m in sys.modules if m.startswith(('prl.algos', 'prl.theory'))]\n"
        "assert not bad, bad"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
