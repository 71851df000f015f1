# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Preference oracles
#
# Preference-based RL learns from comparisons "segment $\sigma^a$ is better than segment
# $\sigma^b$" instead of rewards. In simulation the comparisons come from an **oracle**: a model
# of the person giving them. This notebook labels the *same* pairs of segments from Knox et
# al.'s delivery gridworld with several oracles from `prl.oracles` and shows where — and why —
# they disagree.
#
# Every oracle is vectorized over a batch of pairs and answers `prob(a, b)` $= P(a \succ b)$,
# `mask(a, b)` (pairs it refuses to label) and `label(a, b, rng)` (hard 0/1 labels drawn as
# `rng.random(B) < prob`, ½ where it declares the pair equal).

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from prl import envs
from prl.envs.delivery import FEATURES
from prl.mdp import TabularMDP
from prl.oracles import BradleyTerry, Hierarchical, MajorityVote, Regret, bpref_teacher
from prl.types import Segments

rng = np.random.default_rng(0)
env = envs.make("delivery", render_mode="ansi")
env.reset(seed=0)
mdp = env.mdp
print(env.render())
print(mdp, "| features:", FEATURES, "| weights:", env.reward_weights)

# %% [markdown]
# ## Segments
#
# We roll out 4000 segments of $T = 8$ steps from random start cells, with an ε-greedy policy
# around the optimal one (half the actions from the optimal policy, half uniformly random), so
# that some segments run into the goal (+50) or a sheep (−50). Both end the episode: after
# that the segment stays in the absorbing terminal state with reward 0. Besides the reward we
# keep the per-step feature vector $\phi(s, a)$ = [gas, goal, sheep, coin, roadblock, mud].


# %%
def rollout_segments(env, n, T, rng, p_opt=0.5):
    """n segments of T steps; after termination the segment stays put with reward 0."""
    mdp = env.mdp
    greedy = mdp.optimal_policy().argmax(axis=1)
    obs = np.zeros((n, T), dtype=np.int64)
    act = np.zeros((n, T), dtype=np.int64)
    nxt = np.zeros((n, T), dtype=np.int64)
    rew = np.zeros((n, T))
    done = np.zeros((n, T), dtype=bool)
    feat = np.zeros((n, T, len(FEATURES)))
    for i in range(n):
        s, _ = env.reset()
        ended = False
        for t in range(T):
            a = int(greedy[s]) if rng.random() < p_opt else int(rng.integers(mdp.A))
            obs[i, t], act[i, t] = s, a
            if not ended:
                feat[i, t] = env.transition_features[s, a]
                s, r, ended, _, _ = env.step(a)
                rew[i, t], done[i, t] = r, ended
            nxt[i, t] = s
    return Segments(obs, act, rew, next_obs=nxt, dones=done, infos={"features": feat})


N_PAIRS, T = 2000, 8
segs = rollout_segments(env, 2 * N_PAIRS, T, rng)
a, b = segs[np.arange(N_PAIRS)], segs[np.arange(N_PAIRS, 2 * N_PAIRS)]
cells = env.cells.reshape(-1)  # feature code of each cell (−1: plain road)
GOAL_CODE, SHEEP_CODE = FEATURES.index("goal"), FEATURES.index("sheep")


def end_cell(s: Segments) -> np.ndarray:
    """Where each segment ends: "goal", "sheep" or "—"."""
    last = cells[s.next_obs[:, -1]]
    return np.where(last == GOAL_CODE, "goal", np.where(last == SHEEP_CODE, "sheep", "—"))


print(
    "segments ending at the goal:",
    np.mean(end_cell(segs) == "goal"),
    "| at a sheep:",
    np.mean(end_cell(segs) == "sheep"),
)

# %% [markdown]
# ## Bradley–Terry on partial return
#
# $$P(\sigma^a \succ \sigma^b) = \sigma\big(\beta\,(R(\sigma^a) - R(\sigma^b))\big),\qquad
# R(\sigma) = \sum_{t=0}^{T-1} \gamma^t r_t .$$
#
# Computed in log space (`expit`, `log_expit`), so a return gap of $10^4$ gives exactly 0 or 1
# with a finite log-probability. $\beta = \infty$ is B-Pref's deterministic "oracle" teacher.
#
# ## Regret (Knox et al.)
#
# People judge segments by how much they deviate from optimal play, not by the reward they
# collect along the way:
#
# $$\mathrm{regret}(\sigma) = -\sum_t \gamma^t A^*(s_t, a_t)
#   \;\overset{\text{deterministic}}{=}\;
#   V^*(s_0) - \Big(\sum_t \gamma^t r_t + \gamma^T V^*(s_T)\Big),
# \qquad P(\sigma^a \succ \sigma^b) = \sigma\big(\beta\,(\mathrm{regret}(\sigma^b) -
#   \mathrm{regret}(\sigma^a))\big).$$
#
# On a tabular environment $A^*$ is exact: `Regret.from_mdp(env.mdp)`.

# %%
bt = BradleyTerry(beta=1.0, discount=mdp.gamma)
reg = Regret.from_mdp(mdp, beta=1.0)  # discount = mdp.gamma
d_return = bt.margin(a, b)  # R(a) − R(b)
d_regret = reg.margin(a, b)  # regret(b) − regret(a)
p_bt, p_reg = bt.prob(a, b), reg.prob(a, b)

# the Knox identity, checked on the first segments with V* from the exact solver
V = mdp.v_star()
s0, sT = segs.obs[:, 0], segs.next_obs[:, -1]
knox = V[s0] - (segs.returns(mdp.gamma) + mdp.gamma**T * V[sT])
print("max |regret − Knox form| =", np.abs(reg.regret(segs) - knox).max())

# %% [markdown]
# The two models agree on most pairs, but not on all. Partial return counts what happened inside
# the window; regret subtracts what was *expected* from the start cell, $V^*(s_0)$, and adds the
# value of where the segment ends, $V^*(s_T)$. So:
#
# * a segment that enters the goal after wasting steps gets +50 of partial return, but regret
#   knows the goal was within reach from $s_0$ and charges the wasted steps;
# * between segments that stay on the road, partial-return gaps are a few units of gas and mud,
#   while regret also counts the progress $V^*(s_T) - V^*(s_0)$ towards the goal — the
#   direction of travel decides;
# * running into a sheep is heavily penalized by both, so they rarely disagree there.
#
# We count a pair as a disagreement when the two gaps have strictly opposite signs.

# %%
pair_end = np.where(
    (end_cell(a) == "sheep") | (end_cell(b) == "sheep"),
    "a sheep",
    np.where((end_cell(a) == "goal") | (end_cell(b) == "goal"), "the goal", "no terminal"),
)
table = pd.DataFrame(
    {
        "a segment of the pair ends at": pair_end,
        "disagree": d_return * d_regret < 0,
        "|R(a) − R(b)|": np.abs(d_return),
        "|regret(b) − regret(a)|": np.abs(d_regret),
        "|P_BT − P_regret|": np.abs(p_bt - p_reg),
    }
)
table.groupby("a segment of the pair ends at").agg(
    pairs=("disagree", "size"),
    disagreement_rate=("disagree", "mean"),
    mean_return_gap=("|R(a) − R(b)|", "mean"),
    mean_regret_gap=("|regret(b) − regret(a)|", "mean"),
    mean_prob_gap=("|P_BT − P_regret|", "mean"),
).round(3)

# %% [markdown]
# One pair of each kind where the models disagree:

# %%
rows = []
for kind in ("the goal", "no terminal"):
    k = np.flatnonzero((pair_end == kind) & (d_return * d_regret < 0))[0]
    for name, s in (("a", a[k]), ("b", b[k])):
        rows.append(
            {
                "pair kind": kind,
                "segment": name,
                "start (row, col)": env.position(int(s.obs[0, 0])),
                "end (row, col)": env.position(int(s.next_obs[0, -1])),
                "ends at": end_cell(s)[0],
                "partial return": s.returns(mdp.gamma)[0],
                "V*(s0)": V[s.obs[0, 0]],
                "V*(sT)": V[s.next_obs[0, -1]],
                "regret": reg.regret(s)[0],
            }
        )
pd.DataFrame(rows).round(2)

# %%
fig, ax = plt.subplots(figsize=(6, 4.2))
for name, marker in (("no terminal", "."), ("the goal", "^"), ("a sheep", "v")):
    m = pair_end == name
    ax.scatter(
        d_return[m], d_regret[m], s=10, marker=marker, alpha=0.6, label=f"a segment ends at {name}"
    )
ax.axhline(0, color="k", lw=0.5)
ax.axvline(0, color="k", lw=0.5)
ax.set_xlabel("partial-return gap  R(a) − R(b)")
ax.set_ylabel("regret gap  regret(b) − regret(a)")
ax.set_title("Bradley–Terry vs regret: off-diagonal quadrants disagree")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## A constant reward shift
#
# Add $c = 2$ to the reward of every live step. Partial-return preferences between two segments
# that stay alive for all $T$ steps cannot change — both returns move by the same amount (for a
# segment that ends early only its live steps move, so there even partial return changes). But
# the *task* changed: with $+1$ per step forever ($1/(1-\gamma) = 100$) staying alive now beats
# the goal ($+52$), so the optimal policy, $A^*$ and the regret preferences change. This is
# Knox et al.'s argument that regret preferences identify the reward and partial return does
# not.

# %%
c = 2.0
mdp_c = TabularMDP(mdp.P, mdp.R + c, mdp.gamma, mdp.mu0, terminal=mdp.terminal)
live = lambda s: ~mdp.terminal[s.obs]  # steps taken before the episode ended
a_c, b_c = a.with_rewards(a.rewards + c * live(a)), b.with_rewards(b.rewards + c * live(b))
reg_c = Regret.from_mdp(mdp_c, beta=1.0)
both_alive = live(a).all(axis=1) & live(b).all(axis=1) & (pair_end == "no terminal")
groups = {"both segments alive all T steps": both_alive, "a segment ends early": ~both_alive}
bt_flip = np.sign(bt.margin(a_c, b_c)) != np.sign(d_return)
reg_flip = np.sign(reg_c.margin(a_c, b_c)) != np.sign(d_regret)
dp_bt = np.abs(bt.prob(a_c, b_c) - p_bt)
flips = pd.DataFrame(
    {
        name: {
            "pairs": m.sum(),
            "BT preference flipped": bt_flip[m].mean(),
            "max |ΔP_BT|": dp_bt[m].max(),
            "regret preference flipped": reg_flip[m].mean(),
        }
        for name, m in groups.items()
    }
).T
flips.round(3)

# %% [markdown]
# ## An intransitive oracle: majority vote of several raters
#
# Three raters score a segment with their own weights on the delivery features; the pair goes
# to whichever segment a strict majority prefers:
# $P(a \succ b) = 1$ if more than half the raters prefer $a$, $0$ if more than half prefer $b$,
# ½ otherwise. Each rater is transitive, the majority need not be (Condorcet): we count
# preference cycles $x \succ y \succ z \succ x$ among 150 segments.

# %%
W = np.array(
    [
        [-1.0, 50.0, -50.0, 1.0, -1.0, -2.0],  # by the book (the true weights)
        [-1.0, 5.0, -50.0, 20.0, -1.0, -2.0],  # coin collector
        [-8.0, 50.0, -5.0, 0.0, -8.0, -8.0],  # in a hurry
    ]
)
seg_feat = segs.with_rewards(segs.infos["features"])  # factored rewards [B, T, 6]
mv = MajorityVote.from_weights(W, discount=mdp.gamma)
n = 150
ii, jj = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
M = mv.prob(seg_feat[ii.ravel()], seg_feat[jj.ravel()]).reshape(n, n)
wins = (M == 1.0).astype(float)
n_cycles = round(float(np.trace(wins @ wins @ wins)) / 3)
print("strict 3-cycles among", n, "segments:", n_cycles)
x, y, z = next(
    (i, j, k)
    for i in range(n)
    for j in range(n)
    if wins[i, j]
    for k in np.flatnonzero(wins[j] * wins[:, i])
)
returns = seg_feat[[x, y, z]].returns(mdp.gamma) @ W.T
pd.DataFrame(
    returns,
    index=[f"x = segment {x}", f"y = segment {y}", f"z = segment {z}"],
    columns=["by the book", "coin collector", "in a hurry"],
).round(2)

# %% [markdown]
# Each column ranks the three segments differently; by majority $x \succ y$, $y \succ z$ and
# $z \succ x$. No reward function explains these preferences — the setting of SPO and the Nash
# learning methods, which look for a minimax winner instead of a reward.
#
# ## HERON's hierarchical comparator
#
# When reward factors have a known order of importance, HERON compares them one at a time:
# avoid sheep first, then reach the goal, then avoid mud, then save gas; a factor decides only if
# the gap exceeds a margin times its spread, and pairs tied on every factor are dropped.

# %%
SHEEP, GOAL, MUD, GAS = (FEATURES.index(f) for f in ("sheep", "goal", "mud", "gas"))
signs = np.array([-1.0, 1.0, -1.0, 1.0, -1.0, -1.0])  # gas, sheep, roadblock, mud are costs
heron = Hierarchical(order=[SHEEP, GOAL, MUD, GAS], margins=[0.0, 0.0, 0.5, 0.5], signs=signs)
fa, fb = seg_feat[np.arange(N_PAIRS)], seg_feat[np.arange(N_PAIRS, 2 * N_PAIRS)]
p_heron, keep_heron = heron.prob(fa, fb), heron.mask(fa, fb)
print(
    f"HERON labels {keep_heron.mean():.1%} of the pairs; agreement with Bradley–Terry on them:",
    f"{np.mean((p_heron > 0.5) == (d_return > 0), where=keep_heron):.1%}",
)

# %% [markdown]
# ## B-Pref's simulated teachers
#
# Lee et al.'s B-Pref models irrational teachers as wrappers around the exact teacher
# (`BradleyTerry(inf)`), applied in this order: **skip** the pair if
# $\max(R_a, R_b) \le \theta_{skip}$ → **equal** mask $|R_a - R_b| < \theta_{eq}$ →
# **myopic** weights $\gamma^{H-1-k}$ on step $k$ → label ($\beta$: **stochastic**
# $\sigma(\beta\,\Delta R)$) → **mistake** (flip with probability ε) → equal pairs get ½.

# %%
R_a, R_b = a.rewards.sum(axis=1), b.rewards.sum(axis=1)
teachers = {
    "oracle": bpref_teacher("oracle"),
    "stochastic (β=1)": bpref_teacher("stochastic", beta=1.0),
    "mistake (ε=0.1)": bpref_teacher("mistake", eps=0.1),
    "myopic (γ=0.9)": bpref_teacher("myopic", gamma=0.9),
    "skip": bpref_teacher("skip", skip=float(np.quantile(np.maximum(R_a, R_b), 0.2))),
    "equal": bpref_teacher("equal", equal=1.0),
    "regret (β=1)": reg,
}
exact = teachers["oracle"].label(a, b, np.random.default_rng(1)).label
rows = {}
for name, teacher in teachers.items():
    prefs = teacher.label(a, b, np.random.default_rng(1))
    decided = prefs.mask & (prefs.label != 0.5) & (R_a != R_b)
    rows[name] = {
        "dropped": 1 - prefs.mask.mean(),
        "labelled ½": np.mean(prefs.label[prefs.mask] == 0.5),
        "agrees with oracle": np.mean(prefs.label[decided] == exact[decided]),
    }
pd.DataFrame(rows).T.round(3)

# %%
fig, ax = plt.subplots(figsize=(6, 4.2))
order = np.argsort(d_return)
for name in ("oracle", "stochastic (β=1)", "mistake (ε=0.1)", "equal"):
    ax.plot(d_return[order], teachers[name].prob(a, b)[order], lw=1.5, label=name)
ax.scatter(
    d_return,
    teachers["myopic (γ=0.9)"].prob(a, b),
    s=6,
    alpha=0.3,
    color="gray",
    label="myopic (γ=0.9)",
)
ax.set_xlabel("partial-return gap  R(a) − R(b)")
ax.set_ylabel("P(a ≻ b)")
ax.set_xlim(-15, 15)
ax.set_title("B-Pref teachers on the same pairs")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# **Reading the plots.** First plot: points in the top-left and bottom-right quadrants are
# pairs that Bradley–Terry and regret rank in opposite orders: goal pairs far from the
# diagonal (a +50 jump in return that regret does not reward), road pairs near the origin
# (small return gaps, larger progress gaps). Second plot: the oracle is a step, the stochastic
# teacher a sigmoid, the mistake teacher a step squeezed into $[\varepsilon, 1-\varepsilon]$,
# the equal teacher a step with a ½ plateau around zero; the myopic teacher is not a function
# of the undiscounted gap at all — it ranks by what happened last.
