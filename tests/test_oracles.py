"""Tests of prl.oracles against closed forms, an independent value iteration and B-Pref's recipe."""

from __future__ import annotations

import math

import numpy as np
import pytest

from prl.errors import InvalidInputError
from prl.mdp import TabularMDP
from prl.oracles import (
    BradleyTerry,
    Equal,
    Hierarchical,
    MajorityVote,
    Mistake,
    Myopic,
    PreferenceMatrix,
    Regret,
    Skip,
    Stochastic,
    bpref_compose,
    bpref_teacher,
    tabular_advantage_fn,
)
from prl.registry import ORACLES
from prl.types import Segments


# ---- helpers (independent of the code under test) -----------------------------------------------
def seg(rewards, obs=None, actions=None) -> Segments:
    rewards = np.asarray(rewards, dtype=np.float64)
    B, T = rewards.shape[:2]
    obs = np.zeros((B, T), dtype=np.int64) if obs is None else obs
    actions = np.zeros((B, T), dtype=np.int64) if actions is None else actions
    return Segments(obs=obs, actions=actions, rewards=rewards)


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def value_iteration(P, R, gamma, terminal, tol=1e-13, max_iter=200_000):
    """V*, A* of a finite MDP by plain value iteration (terminal states: value 0)."""
    V = np.zeros(R.shape[0])
    for _ in range(max_iter):
        Q = R + gamma * P @ V
        Q[terminal] = 0.0
        V_new = Q.max(axis=1)
        if np.max(np.abs(V_new - V)) < tol:
            V = V_new
            break
        V = V_new
    Q = R + gamma * P @ V
    Q[terminal] = 0.0
    return V, Q - V[:, None]


def rollout(nxt, R, terminal, s0, actions):
    """Deterministic rollouts: obs [B,T], rewards [B,T], final states [B] (terminal absorbs)."""
    B, T = actions.shape
    obs = np.zeros((B, T), dtype=np.int64)
    rew = np.zeros((B, T))
    s = np.array(s0, dtype=np.int64)
    for t in range(T):
        obs[:, t] = s
        a = actions[:, t]
        live = ~terminal[s]
        rew[:, t] = np.where(live, R[s, a], 0.0)
        s = np.where(live, nxt[s, a], s)
    return obs, rew, s


def random_deterministic_mdp(rng, S, A, dag: bool):
    """Random deterministic MDP; with ``dag`` every move goes to a higher state (γ = 1 is fine)."""
    nxt = np.zeros((S, A), dtype=np.int64)
    for s in range(S):
        if dag:  # short forward jumps, so that some segments end and some do not
            nxt[s] = np.minimum(s + rng.integers(1, 3, size=A), S - 1)
        else:
            nxt[s] = rng.integers(0, S, size=A)
    terminal = np.zeros(S, dtype=bool)
    terminal[S - 1] = True
    nxt[S - 1] = S - 1
    R = rng.normal(size=(S, A))
    R[terminal] = 0.0
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    return P, nxt, R, terminal


def corridor(n=5, step=-1.0, goal=5.0, shift=0.0, gamma=0.9):
    """States 0..n-1, state n-1 a terminal goal; actions 0 left, 1 right (walls: stay)."""
    S, A = n, 2
    nxt = np.zeros((S, A), dtype=np.int64)
    R = np.zeros((S, A))
    for s in range(S):
        nxt[s, 0], nxt[s, 1] = max(s - 1, 0), min(s + 1, S - 1)
        for a in range(A):
            R[s, a] = step + shift + (goal if nxt[s, a] == S - 1 else 0.0)
    terminal = np.zeros(S, dtype=bool)
    terminal[S - 1] = True
    R[terminal] = 0.0
    P = np.zeros((S, A, S))
    P[np.arange(S)[:, None], np.arange(A)[None, :], nxt] = 1.0
    return P, nxt, R, terminal


# ---- Bradley–Terry ------------------------------------------------------------------------------
def test_bradley_terry_matches_hand_formula():
    rng = np.random.default_rng(0)
    ra, rb = rng.normal(size=(20, 7)), rng.normal(size=(20, 7))
    for beta, gamma in [(1.0, 1.0), (0.3, 0.9), (2.5, 0.5)]:
        bt = BradleyTerry(beta=beta, discount=gamma)
        p = bt.prob(seg(ra), seg(rb))
        for i in range(20):
            Ra = sum(gamma**t * ra[i, t] for t in range(7))
            Rb = sum(gamma**t * rb[i, t] for t in range(7))
            assert p[i] == pytest.approx(sigmoid(beta * (Ra - Rb)), rel=1e-12)
            assert bt.logit(seg(ra), seg(rb))[i] == pytest.approx(beta * (Ra - Rb), rel=1e-12)


def test_bradley_terry_imitation_821_value():
    p = BradleyTerry(beta=1.0).prob(seg([[1.0]]), seg([[2.0]]))
    assert p[0] == pytest.approx(1.0 / (1.0 + math.e), abs=1e-15)
    assert p[0] == pytest.approx(0.2689, abs=1e-4)


def test_bradley_terry_huge_gaps_are_exact_and_finite_in_log_space():
    a = seg([[1e4], [0.0], [-3e5]])
    b = seg([[0.0], [1e4], [3e5]])
    bt = BradleyTerry(beta=1.0)
    with np.errstate(all="raise"):
        p = bt.prob(a, b)
        lp = bt.log_prob(a, b)
        lq = bt.log_prob(b, a)
    np.testing.assert_array_equal(p, [1.0, 0.0, 0.0])
    assert np.all(np.isfinite(lp)) and np.all(np.isfinite(lq))
    np.testing.assert_allclose(lp, [0.0, -1e4, -6e5])
    np.testing.assert_allclose(lq, [-1e4, 0.0, 0.0])


def test_bradley_terry_infinite_beta_is_deterministic_with_half_on_ties():
    a, b = seg([[1.0, 2.0], [0.0, 0.0], [-1.0, 0.0]]), seg([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0]])
    bt = BradleyTerry(beta=np.inf)
    with np.errstate(all="raise"):
        np.testing.assert_array_equal(bt.prob(a, b), [1.0, 0.5, 0.0])
        np.testing.assert_array_equal(bt.logit(a, b), [np.inf, 0.0, -np.inf])
        np.testing.assert_allclose(bt.log_prob(a, b), [0.0, math.log(0.5), -np.inf])
    lab = bt.label(a, b, np.random.default_rng(0)).label
    assert lab[0] == 1.0 and lab[2] == 0.0


def test_bradley_terry_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        BradleyTerry(beta=-1.0)
    with pytest.raises(InvalidInputError):
        BradleyTerry(beta=float("nan"))
    with pytest.raises(InvalidInputError):
        BradleyTerry(discount=0.0)
    with pytest.raises(InvalidInputError):
        BradleyTerry(discount=1.5)
    bt = BradleyTerry()
    with pytest.raises(InvalidInputError):  # factored rewards to a scalar oracle
        bt.prob(seg(np.zeros((2, 3, 2))), seg(np.zeros((2, 3, 2))))
    with pytest.raises(InvalidInputError):  # mismatched shapes
        bt.prob(seg(np.zeros((2, 3))), seg(np.zeros((2, 4))))
    with pytest.raises(InvalidInputError):
        bt.prob(seg(np.zeros((2, 3))), seg(np.zeros((3, 3))))
    with pytest.raises(InvalidInputError):  # NaN rewards are rejected when segments are built
        bt.prob(seg([[np.nan]]), seg([[0.0]]))
    with pytest.raises(InvalidInputError):
        bt.prob(np.zeros((2, 3)), seg(np.zeros((2, 3))))
    with pytest.raises(InvalidInputError):
        bt.label(seg([[0.0]]), seg([[1.0]]), rng=0)


# ---- Regret -------------------------------------------------------------------------------------
@pytest.mark.parametrize("gamma,dag", [(1.0, True), (0.9, False)])
def test_regret_equals_knox_deterministic_form(gamma, dag):
    rng = np.random.default_rng(1)
    S, A, B, T = 16, 3, 200, 6
    P, nxt, R, terminal = random_deterministic_mdp(rng, S, A, dag)
    V, Adv = value_iteration(P, R, gamma, terminal)
    s0 = rng.integers(0, S - 1, size=B)
    acts = rng.integers(0, A, size=(B, T))
    obs, rew, sT = rollout(nxt, R, terminal, s0, acts)
    segs = seg(rew, obs, acts)
    expected = V[s0] - ((rew * gamma ** np.arange(T)).sum(axis=1) + gamma**T * V[sT])
    assert np.any(terminal[sT]) and np.any(~terminal[sT])  # some segments end at the terminal
    # exact A* of prl.mdp.TabularMDP and an independent value iteration agree
    mdp = TabularMDP(P, R, gamma, terminal=terminal)
    from_mdp = Regret.from_mdp(mdp)
    assert from_mdp.discount == gamma
    np.testing.assert_allclose(from_mdp.regret(segs), expected, atol=1e-9)
    own = Regret(tabular_advantage_fn(Adv), discount=gamma)
    np.testing.assert_allclose(own.regret(segs), expected, atol=1e-9)
    assert np.all(own.regret(segs) >= -1e-9)  # regret is non-negative
    # P(a ≻ b) = σ(β(regret(b) − regret(a)))
    half = B // 2
    a, b = segs[np.arange(half)], segs[np.arange(half, B)]
    beta = 0.7
    p = Regret.from_mdp(mdp, beta=beta).prob(a, b)
    want = [sigmoid(beta * (expected[half + i] - expected[i])) for i in range(half)]
    np.testing.assert_allclose(p, want, rtol=1e-9)


def test_regret_on_the_delivery_gridworld():
    from prl import envs  # never the top-level folder `envs` (it is installed as prl.envs)

    env = envs.make("delivery")
    mdp = env.mdp
    V, _ = value_iteration(mdp.P, mdp.R, mdp.gamma, mdp.terminal, tol=1e-12)
    nxt = mdp.P.argmax(axis=2)
    rng = np.random.default_rng(2)
    B, T = 300, 15
    live = np.flatnonzero(~mdp.terminal)
    s0 = rng.choice(live, size=B)
    acts = rng.integers(0, mdp.A, size=(B, T))
    obs, rew, sT = rollout(nxt, mdp.R, mdp.terminal, s0, acts)
    g = mdp.gamma
    expected = V[s0] - ((rew * g ** np.arange(T)).sum(axis=1) + g**T * V[sT])
    got = Regret.from_mdp(mdp).regret(seg(rew, obs, acts))
    np.testing.assert_allclose(got, expected, atol=1e-7)


def test_reward_shift_keeps_bt_but_changes_regret_when_episodes_can_end():
    c, gamma = 2.0, 0.9
    P, nxt, R, terminal = corridor(gamma=gamma)
    P2, _, R2, _ = corridor(shift=c, gamma=gamma)
    # a: from state 2 go right twice, entering the terminal goal on the last step;
    # b: bump into the left wall twice at state 0.
    acts = np.array([[1, 1], [0, 0]])
    obs, rew, _ = rollout(nxt, R, terminal, np.array([2, 0]), acts)
    _, rew2, _ = rollout(nxt, R2, terminal, np.array([2, 0]), acts)
    np.testing.assert_allclose(rew2, rew + c)  # every step of both segments shifted by c
    a, b = seg(rew[:1], obs[:1], acts[:1]), seg(rew[1:], obs[1:], acts[1:])
    a2, b2 = seg(rew2[:1], obs[:1], acts[:1]), seg(rew2[1:], obs[1:], acts[1:])
    bt = BradleyTerry(beta=1.0, discount=gamma)
    np.testing.assert_allclose(bt.prob(a, b), bt.prob(a2, b2), rtol=1e-12)

    reg = Regret.from_mdp(TabularMDP(P, R, gamma, terminal=terminal))
    reg2 = Regret.from_mdp(TabularMDP(P2, R2, gamma, terminal=terminal))
    p, p2 = reg.prob(a, b)[0], reg2.prob(a2, b2)[0]
    # closed forms from an independent value iteration
    for PP, RR, got in ((P, R, p), (P2, R2, p2)):
        _, Adv = value_iteration(PP, RR, gamma, terminal)
        reg_a = -(Adv[obs[0], acts[0]] * gamma ** np.arange(2)).sum()
        reg_b = -(Adv[obs[1], acts[1]] * gamma ** np.arange(2)).sum()
        assert got == pytest.approx(sigmoid(reg_b - reg_a), rel=1e-9)
    # original: reaching the goal is optimal (a ≻ b); shifted by +2 per step, staying alive
    # forever (1/(1−γ) = 10) beats the goal (7), so the preference flips.
    assert p > 0.5 > p2


def test_regret_is_exact_across_row_blocks():
    rng = np.random.default_rng(12)
    table = rng.normal(size=(7, 3))
    B, T = 70_000, 3  # more rows than one evaluation block holds
    obs, acts = rng.integers(0, 7, size=(B, T)), rng.integers(0, 3, size=(B, T))
    segs = seg(np.zeros((B, T)), obs, acts)
    want = -(table[obs, acts] * np.array([1.0, 0.5, 0.25])).sum(axis=1)
    got = Regret(tabular_advantage_fn(table), discount=0.5).regret(segs)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_regret_rejects_bad_input():
    adv = tabular_advantage_fn(np.zeros((3, 2)))
    reg = Regret(adv)
    good = seg(np.zeros((1, 2)), np.array([[0, 1]]), np.array([[0, 1]]))
    with pytest.raises(InvalidInputError):
        reg.prob(seg(np.zeros((1, 2)), np.array([[0, 3]]), np.array([[0, 1]])), good)
    with pytest.raises(InvalidInputError):
        reg.prob(seg(np.zeros((1, 2)), np.array([[0.5, 1.0]]), np.array([[0, 1]])), good)
    with pytest.raises(InvalidInputError):
        Regret(lambda o, a: np.full(o.shape, np.nan)).prob(good, good)
    with pytest.raises(InvalidInputError):
        Regret(lambda o, a: np.zeros(3)).prob(good, good)
    with pytest.raises(InvalidInputError):
        Regret("not callable")
    with pytest.raises(InvalidInputError):
        Regret(adv, beta=-0.1)
    with pytest.raises(InvalidInputError):
        Myopic(reg, 0.9)  # regret does not read rewards


# ---- B-Pref teachers ----------------------------------------------------------------------------
N = 100_000


@pytest.fixture(scope="module")
def many_pairs():
    rng = np.random.default_rng(3)
    T = 5
    return seg(rng.normal(size=(N, T))), seg(rng.normal(size=(N, T)))


def test_mistake_flips_a_fraction_eps(many_pairs):
    a, b = many_pairs
    eps = 0.1
    base = BradleyTerry(np.inf).label(a, b, np.random.default_rng(4)).label
    noisy = Mistake(BradleyTerry(np.inf), eps).label(a, b, np.random.default_rng(5)).label
    frac = np.mean(noisy != base)
    assert abs(frac - eps) < 3 * math.sqrt(eps * (1 - eps) / N)
    p = BradleyTerry(1.0).prob(a[:50], b[:50])
    np.testing.assert_allclose(
        Mistake(BradleyTerry(1.0), 0.2).prob(a[:50], b[:50]), 0.8 * p + 0.2 * (1 - p)
    )


def test_skip_drops_exactly_low_return_pairs(many_pairs):
    a, b = many_pairs
    thr = 0.5
    ra, rb = a.rewards.sum(axis=1), b.rewards.sum(axis=1)
    prefs = Skip(BradleyTerry(np.inf), thr).label(a, b, np.random.default_rng(0))
    np.testing.assert_array_equal(prefs.mask, np.maximum(ra, rb) > thr)
    assert 0 < prefs.n_valid < N


def test_equal_labels_half_exactly_within_threshold(many_pairs):
    a, b = many_pairs
    thr = 0.3
    ra, rb = a.rewards.sum(axis=1), b.rewards.sum(axis=1)
    eq = np.abs(ra - rb) < thr
    oracle = Equal(BradleyTerry(np.inf), thr)
    lab = oracle.label(a, b, np.random.default_rng(0)).label
    np.testing.assert_array_equal(lab == 0.5, eq)
    np.testing.assert_array_equal(lab[~eq], (ra > rb)[~eq].astype(float))
    np.testing.assert_array_equal(oracle.prob(a, b)[eq], 0.5)


def test_myopic_weights_recent_steps_more():
    rng = np.random.default_rng(6)
    H, gamma, beta = 6, 0.8, 0.7
    ra, rb = rng.normal(size=(40, H)), rng.normal(size=(40, H))
    got = Myopic(BradleyTerry(beta), gamma).prob(seg(ra), seg(rb))
    w = np.array([gamma ** (H - 1 - k) for k in range(H)])
    for i in range(40):
        Ra = sum(w[k] * ra[i, k] for k in range(H))
        Rb = sum(w[k] * rb[i, k] for k in range(H))
        assert got[i] == pytest.approx(sigmoid(beta * (Ra - Rb)), rel=1e-12)
    # the last step has weight 1, the first γ^(H−1)
    assert w[-1] == 1.0 and w[0] == pytest.approx(gamma ** (H - 1))


def test_stochastic_of_exact_teacher_equals_bradley_terry(many_pairs):
    a, b = many_pairs
    for beta in (0.5, 1.0, 3.0):
        st = Stochastic(BradleyTerry(np.inf), beta)
        np.testing.assert_array_equal(st.prob(a, b), BradleyTerry(beta).prob(a, b))
        np.testing.assert_array_equal(
            st.label(a, b, np.random.default_rng(7)).label,
            BradleyTerry(beta).label(a, b, np.random.default_rng(7)).label,
        )
        np.testing.assert_allclose(st.log_prob(a, b), BradleyTerry(beta).log_prob(a, b))
    with pytest.raises(InvalidInputError):
        Stochastic(Mistake(BradleyTerry(), 0.1), 1.0)  # no score margin


def test_stochastic_retemperatures_regret_and_myopic_teachers():
    rng = np.random.default_rng(13)
    table = rng.normal(size=(4, 2))
    obs, acts = rng.integers(0, 4, size=(2, 30, 5)), rng.integers(0, 2, size=(2, 30, 5))
    ra, rb = rng.normal(size=(30, 5)), rng.normal(size=(30, 5))
    a, b = seg(ra, obs[0], acts[0]), seg(rb, obs[1], acts[1])
    adv = tabular_advantage_fn(table)
    reg_a = -table[obs[0], acts[0]].sum(axis=1)
    reg_b = -table[obs[1], acts[1]].sum(axis=1)
    want = [sigmoid(2.0 * (reg_b[i] - reg_a[i])) for i in range(30)]
    np.testing.assert_allclose(Stochastic(Regret(adv, beta=np.inf), 2.0).prob(a, b), want)
    w = 0.8 ** np.arange(4, -1, -1)
    want = [sigmoid(0.5 * (ra[i] @ w - rb[i] @ w)) for i in range(30)]
    st = Stochastic(Myopic(BradleyTerry(np.inf), 0.8), 0.5)
    np.testing.assert_allclose(st.prob(a, b), want, rtol=1e-12)


def bpref_reference(ra, rb, beta_inf_draws, flip_draws, gamma, eps, skip, equal):
    """B-Pref's get_label recipe written out (labels = P(a ≻ b), raw sums for skip/equal)."""
    sa, sb = ra.sum(axis=1), rb.sum(axis=1)
    keep = np.maximum(sa, sb) > skip
    eq = np.abs(sa - sb) < equal
    H = ra.shape[1]
    w = gamma ** np.arange(H - 1, -1, -1)
    wa, wb = ra @ w, rb @ w
    lab = np.where(wa > wb, 1.0, np.where(wa < wb, 0.0, (beta_inf_draws < 0.5) * 1.0))
    lab = np.where(flip_draws < eps, 1.0 - lab, lab)
    lab[eq] = 0.5
    return lab, keep


def test_composition_follows_bpref_reference_order(many_pairs):
    a, b = many_pairs
    gamma, eps, skip, equal = 0.9, 0.1, 0.2, 0.4
    teacher = bpref_compose(gamma=gamma, eps=eps, skip=skip, equal=equal)
    prefs = teacher.label(a, b, np.random.default_rng(8))
    rng = np.random.default_rng(8)
    d1, d2 = rng.random(N), rng.random(N)  # the label draw, then the mistake draw
    lab, keep = bpref_reference(a.rewards, b.rewards, d1, d2, gamma, eps, skip, equal)
    np.testing.assert_array_equal(prefs.label, lab)
    np.testing.assert_array_equal(prefs.mask, keep)
    # the myopic weighting really changes some labels relative to raw sums (so order matters)
    w = gamma ** np.arange(a.length - 1, -1, -1)
    raw_order = a.rewards.sum(1) > b.rewards.sum(1)
    assert np.mean((a.rewards @ w > b.rewards @ w) != raw_order) > 0.02
    assert 0 < np.mean(lab == 0.5) < 1 and 0 < np.mean(keep) < 1


def test_skip_and_equal_read_raw_returns_not_myopic_ones():
    # raw sums: a = 1.0, b = 0.0; myopic (γ = 0.5) sums: a = 0.5·1 + 0 = 0.5, b = 0
    a, b = seg([[1.0, 0.0]]), seg([[0.0, 0.0]])
    assert bpref_compose(gamma=0.5, skip=0.6).mask(a, b)[0]  # raw max 1.0 > 0.6
    # raw |ΔR| = 1.0 ≥ 0.6 (myopic |ΔR| = 0.5 would be < 0.6): labelled, not ½
    assert bpref_compose(gamma=0.5, equal=0.6).label(a, b, np.random.default_rng(0)).label[0] == 1
    # raw |ΔR| = 0.0 < θ, but myopic sums differ: still ½
    a, b = seg([[1.0, -1.0]]), seg([[-1.0, 1.0]])
    assert bpref_compose(gamma=0.5, equal=0.1).label(a, b, np.random.default_rng(0)).label[0] == 0.5


def test_equal_overrides_mistake_flips_in_either_order(many_pairs):
    a, b = many_pairs
    thr = 0.3
    eq = np.abs(a.rewards.sum(1) - b.rewards.sum(1)) < thr
    outer = Equal(Mistake(BradleyTerry(np.inf), 0.5), thr)
    inner = Mistake(Equal(BradleyTerry(np.inf), thr), 0.5)
    for o in (outer, inner):
        lab = o.label(a, b, np.random.default_rng(9)).label
        np.testing.assert_array_equal(lab == 0.5, eq)
        np.testing.assert_array_equal(o.prob(a, b)[eq], 0.5)


def test_bpref_teacher_kinds():
    a, b = seg([[1.0, 0.0], [0.0, 0.1]]), seg([[0.0, 0.0], [0.0, 0.0]])
    assert bpref_teacher("oracle").prob(a, b).tolist() == [1.0, 1.0]
    assert bpref_teacher("stochastic", beta=1.0).prob(a, b)[0] == pytest.approx(sigmoid(1.0))
    assert bpref_teacher("mistake", eps=0.1).prob(a, b).tolist() == pytest.approx([0.9, 0.9])
    assert bpref_teacher("myopic", gamma=0.9).prob(a, b).tolist() == [1.0, 1.0]
    assert bpref_teacher("skip", skip=0.5).mask(a, b).tolist() == [True, False]
    assert bpref_teacher("equal", equal=0.5).prob(a, b).tolist() == [1.0, 0.5]
    for kind in ("skip", "equal"):
        with pytest.raises(InvalidInputError):
            bpref_teacher(kind)
    with pytest.raises(InvalidInputError):
        bpref_teacher("sleepy")


@pytest.mark.parametrize(
    "make",
    [
        lambda: Mistake(BradleyTerry(), -0.1),
        lambda: Mistake(BradleyTerry(), 0.6),
        lambda: Mistake(BradleyTerry(), float("nan")),
        lambda: Myopic(BradleyTerry(), 0.0),
        lambda: Myopic(BradleyTerry(), 1.1),
        lambda: Stochastic(BradleyTerry(np.inf), -1.0),
        lambda: Skip(BradleyTerry(), float("nan")),
        lambda: Equal("not an oracle", 0.1),
    ],
)
def test_invalid_teacher_parameters(make):
    with pytest.raises(InvalidInputError):
        make()


def test_skip_and_equal_reject_factored_rewards():
    a = seg(np.zeros((2, 3, 2)))
    with pytest.raises(InvalidInputError):
        Skip(Hierarchical([0], [0.0]), 0.0).mask(a, a)
    with pytest.raises(InvalidInputError):
        Equal(Hierarchical([0], [0.0]), 0.0).prob(a, a)


# ---- HERON's hierarchical comparator ------------------------------------------------------------
def factored(rows):
    """[B, T=2, K] rewards whose per-trajectory factor sums are ``rows`` (split over two steps)."""
    rows = np.asarray(rows, dtype=np.float64)
    r = np.stack([rows * 0.25, rows * 0.75], axis=1)
    return seg(r)


def test_hierarchical_levels_margins_costs_and_ties():
    scale = [1.0, 1.0, 1.0]
    h = Hierarchical(order=[0, 1, 2], margins=[0.5, 0.5, 0.5], scale=scale)
    a = factored([[2, 0, 0], [0.2, 3, 0], [0.2, 0.2, -4], [0.1, 0.1, 0.1], [0, 9, 9]])
    b = factored([[1, 9, 9], [0.0, 1, 9], [0.0, 0.0, 0], [0.0, 0.0, 0.0], [1, 0, 0]])
    # pair 0: level 0 decides for a (2 > 1 + 0.5) despite worse later levels
    # pair 1: level 0 within margin (|0.2| < 0.5) → level 1 decides for a
    # pair 2: levels 0, 1 within margin → level 2 decides for b (0 > −4 + 0.5)
    # pair 3: every level within margin → dropped
    # pair 4: level 0 decides for b (1 > 0 + 0.5)
    np.testing.assert_array_equal(h.prob(a, b), [1.0, 1.0, 0.0, 0.5, 0.0])
    prefs = h.label(a, b, np.random.default_rng(0))
    np.testing.assert_array_equal(prefs.mask, [True, True, True, False, True])
    np.testing.assert_array_equal(prefs.label[prefs.mask], [1.0, 1.0, 0.0, 0.0])
    # order matters: most important factor first
    h2 = Hierarchical(order=[2, 1, 0], margins=[0.5, 0.5, 0.5], scale=scale)
    np.testing.assert_array_equal(h2.prob(a, b), [0.0, 0.0, 0.0, 0.5, 1.0])


def test_hierarchical_cost_factor_sign():
    # factor 1 is a cost: lower is better once the sign −1 is applied
    a = factored([[0.0, 1.0]])
    b = factored([[0.0, 3.0]])
    h = Hierarchical(order=[0, 1], margins=[0.0, 0.0], signs=[1, -1], scale=[1.0, 1.0])
    assert h.prob(a, b)[0] == 1.0
    h_plain = Hierarchical(order=[0, 1], margins=[0.0, 0.0], scale=[1.0, 1.0])
    assert h_plain.prob(a, b)[0] == 0.0


def test_hierarchical_pooled_std_margin():
    # factor-0 sums: a = [0, 1], b = [2, 1.2]; pooled std over the four trajectories
    a = factored([[0.0, 5.0], [1.0, 0.0]])
    b = factored([[2.0, 0.0], [1.2, 5.0]])
    std0 = np.std([0.0, 1.0, 2.0, 1.2])  # population std of the pooled batch
    m = 0.3  # threshold 0.3·std0 ≈ 0.22: pair 0 (gap 2) decided, pair 1 (gap 0.2) not
    assert 0.2 < m * std0 < 2.0
    h = Hierarchical(order=[0, 1], margins=[m, 0.0])
    np.testing.assert_array_equal(h.prob(a, b), [0.0, 0.0])  # pair 1 decided at level 1 (b)
    h = Hierarchical(order=[0, 1], margins=[m, 0.0], scale=[0.01, 1.0])  # explicit scale
    np.testing.assert_array_equal(h.prob(a, b), [0.0, 0.0])
    h = Hierarchical(order=[0], margins=[m])
    np.testing.assert_array_equal(h.mask(a, b), [True, False])
    h = Hierarchical(order=[0], margins=[m], scale=[0.1, 1.0])  # threshold 0.03 < 0.2
    np.testing.assert_array_equal(h.mask(a, b), [True, True])


def test_hierarchical_rejects_bad_input():
    with pytest.raises(InvalidInputError):
        Hierarchical(order=[], margins=[])
    with pytest.raises(InvalidInputError):
        Hierarchical(order=[0, 0], margins=[0.1, 0.1])
    with pytest.raises(InvalidInputError):
        Hierarchical(order=[0], margins=[-1.0])
    with pytest.raises(InvalidInputError):
        Hierarchical(order=[0], margins=[0.1], signs=[2.0])
    h = Hierarchical(order=[3], margins=[0.1])
    with pytest.raises(InvalidInputError):
        h.prob(factored([[1.0, 2.0]]), factored([[1.0, 2.0]]))
    with pytest.raises(InvalidInputError):  # scalar rewards
        Hierarchical(order=[0], margins=[0.1]).prob(seg([[1.0]]), seg([[1.0]]))


# ---- intransitive oracles -----------------------------------------------------------------------
def test_majority_vote_three_cycle():
    # Condorcet profile: rater k looks at factor k
    x, y, z = [3.0, 1.0, 2.0], [2.0, 3.0, 1.0], [1.0, 2.0, 3.0]
    items = {n: seg(np.array([[v]])) for n, v in (("x", x), ("y", y), ("z", z))}
    mv = MajorityVote.from_weights(np.eye(3))
    assert mv.prob(items["x"], items["y"])[0] == 1.0
    assert mv.prob(items["y"], items["z"])[0] == 1.0
    assert mv.prob(items["z"], items["x"])[0] == 1.0  # a cycle: x ≻ y ≻ z ≻ x
    assert mv.prob(items["y"], items["x"])[0] == 0.0
    # the same with callables
    fns = [lambda s, k=k: s.rewards[:, :, k].sum(axis=1) for k in range(3)]
    mv2 = MajorityVote(fns)
    assert mv2.prob(items["z"], items["x"])[0] == 1.0
    # two raters disagreeing: no strict majority → ½
    mv_even = MajorityVote.from_weights(np.eye(3)[:2])
    assert mv_even.prob(items["x"], items["y"])[0] == 0.5
    with pytest.raises(InvalidInputError):
        mv.prob(seg([[1.0]]), seg([[2.0]]))  # needs factored rewards [B,T,3]
    with pytest.raises(InvalidInputError):
        MajorityVote([])


def test_preference_matrix():
    P = np.array([[0.5, 0.7, 0.2], [0.3, 0.5, 0.9], [0.8, 0.1, 0.5]])
    pm = PreferenceMatrix(P)
    a, b = np.array([0, 1, 2, 0]), np.array([1, 2, 0, 0])
    np.testing.assert_array_equal(pm.prob(a, b), [0.7, 0.9, 0.8, 0.5])
    for bad in (np.ones((2, 3)) * 0.5, [[0.5, 1.2], [-0.2, 0.5]], [[0.5, 0.6], [0.6, 0.5]]):
        with pytest.raises(InvalidInputError):
            PreferenceMatrix(bad)
    with pytest.raises(InvalidInputError):
        pm.prob(np.array([0, 3]), np.array([1, 1]))
    with pytest.raises(InvalidInputError):
        pm.prob(np.array([0.0, 1.0]), np.array([1, 1]))
    with pytest.raises(InvalidInputError):
        pm.prob(np.array([0, 1]), np.array([1]))


# ---- determinism and calibration of every oracle -----------------------------------------------
def _cases():
    rng = np.random.default_rng(10)
    B, T, K = 400, 4, 3
    obs, acts = rng.integers(0, 5, size=(B, T)), rng.integers(0, 2, size=(B, T))
    a = Segments(obs, acts, rng.normal(size=(B, T)))
    b = Segments(obs[::-1].copy(), acts[::-1].copy(), rng.normal(size=(B, T)))
    fa, fb = seg(rng.normal(size=(B, T, K))), seg(rng.normal(size=(B, T, K)))
    adv = tabular_advantage_fn(-rng.random((5, 2)))
    P = rng.random((4, 4))
    P = np.triu(P, 1) + np.tril(1 - P.T, -1) + 0.5 * np.eye(4)
    ia, ib = rng.integers(0, 4, B), rng.integers(0, 4, B)
    bt = BradleyTerry(1.0)
    return {
        "bradley_terry": (bt, a, b),
        "regret": (Regret(adv, beta=2.0), a, b),
        "majority_vote": (MajorityVote.from_weights(rng.normal(size=(4, K))), fa, fb),
        "preference_matrix": (PreferenceMatrix(P), ia, ib),
        "hierarchical": (Hierarchical([0, 2], [0.5, 0.5]), fa, fb),
        "stochastic": (Stochastic(Regret(adv, beta=np.inf), 0.5), a, b),
        "mistake": (Mistake(bt, 0.2), a, b),
        "myopic": (Myopic(bt, 0.7), a, b),
        "skip": (Skip(bt, 0.0), a, b),
        "equal": (Equal(bt, 0.5), a, b),
        "composed": (bpref_compose(2.0, 0.9, 0.1, 0.0, 0.3), a, b),
    }


CASES = _cases()


@pytest.mark.parametrize("name", sorted(CASES))
def test_same_seed_gives_identical_labels(name):
    oracle, a, b = CASES[name]
    p1 = oracle.label(a, b, np.random.default_rng(123))
    p2 = oracle.label(a, b, np.random.default_rng(123))
    np.testing.assert_array_equal(p1.label, p2.label)
    np.testing.assert_array_equal(p1.mask, p2.mask)
    assert set(np.unique(p1.label)) <= {0.0, 0.5, 1.0}
    prob = oracle.prob(a, b)
    assert prob.shape == (len(p1),) and np.all((prob >= 0) & (prob <= 1))


def test_registry_lists_every_oracle():
    for name in CASES:
        if name != "composed":
            assert name in ORACLES and ORACLES.entry(name).description


@pytest.mark.parametrize(
    "name", ["bradley_terry", "regret", "preference_matrix", "stochastic", "mistake", "myopic"]
)
def test_empirical_label_frequency_matches_prob(name):
    oracle, a, b = CASES[name]
    idx = np.repeat(np.arange(8), 5_000)  # 8 pairs, 5000 draws each
    from prl.types import take

    aa, bb = take(a, idx), take(b, idx)
    lab = oracle.label(aa, bb, np.random.default_rng(11)).label
    p = oracle.prob(a, b)[:8]
    freq = lab.reshape(8, 5_000).mean(axis=1)
    se = np.sqrt(p * (1 - p) / 5_000)
    assert np.all(np.abs(freq - p) <= 4 * se + 1e-12)
