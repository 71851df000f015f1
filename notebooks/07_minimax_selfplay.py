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
# # Minimax winners and self-play
#
# Reward-model RLHF assumes preferences come from a hidden scalar reward (Bradley–Terry). Real
# preferences can be **intransitive** (A ≻ B ≻ C ≻ A), **stochastic**, or about whole
# trajectories (**non-Markovian**). No reward explains a cycle — but a *game* does: two policies
# play, and the payoff of π against π' is P(π ≻ π') − ½. Its equilibrium, the **minimax (von
# Neumann) winner**, is a policy no other policy beats more than half the time.
#
# SPO (Swamy et al. 2024, "A Minimaximalist Approach to RLHF") finds it by **self-play**: sample
# from the current policy, reward each sample by its *win rate* against other samples, take a
# no-regret step. This notebook goes from a three-dice game to a hopping robot.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch

from prl.algos.rlhf import preference_source, random_policy_trajectories
from prl.algos.spo_deep import torch_threads, tree_selfplay_npg
from prl.envs.factored import factor_spec, find_cycles
from prl.games import DICE, cyclic_dice_matrix, exploitability, minimax_winner
from prl.run import train

torch.set_num_threads(1)

# %% [markdown]
# ## 1. The intransitive dice
# Die 0 = {2, 4, 9}, die 1 = {1, 6, 8}, die 2 = {3, 5, 7}; P[i, j] = P(die i rolls higher).

# %%
P = cyclic_dice_matrix()
print("dice:", DICE)
print(np.round(P, 3))
pi_star, value = minimax_winner(P)  # LP: maximize v s.t. (P − ½)ᵀp ≥ v, p ∈ Δ
print("minimax winner:", np.round(pi_star, 4), " value:", round(value, 12))
for k in range(3):
    e = np.eye(3)[k]
    print(f"always die {k}: exploitability {float(exploitability(P, e)):.3f}")

# %% [markdown]
# Every pure choice is beaten (exploitability 5/9 − ½ ≈ 0.056 against its counter-die); the
# uniform mixture is beaten by nothing. Self-play finds it from duels alone: `spo_bandit` draws
# two dice from π, asks who won (one preference query), and moves the logits along the win-rate
# gradient. The *average* policy's exploitability equals Regret(T)/T, so it goes to 0.

# %%
_, rows = train("spo_bandit", "dueling", seed=0, steps=6000,
                config={"batch": 16, "lr": 0.5, "init_logit_scale": 1.0},
                env_kwargs={"game": "dice"}, every=5)  # fmt: skip
q = [r["step"] for r in rows]
fig, ax = plt.subplots(figsize=(5, 3))
ax.loglog(q, [r["exploitability_avg"] for r in rows], label="average policy")
ax.loglog(q, [max(r["exploitability_last"], 1e-6) for r in rows], alpha=0.5, label="last iterate")
ax.set_xlabel("preference queries (duels)")
ax.set_ylabel("exploitability")
ax.legend()
plt.show()

# %% [markdown]
# ## 2. Sequential: a minimax winner over trajectories
# A depth-3 decision tree with 2 actions has 8 trajectories (action sequences). Let three
# raters score trajectories with their own per-step rewards and take their **majority vote**:
# a preference game over trajectories, intransitive in general. The minimax winner over
# trajectories is the LP of section 1 on this 8 × 8 matrix, and it is realizable: any
# distribution over a tree's leaves is some policy's.
#
# SPO with **natural policy gradient**: reward each trajectory by P(τ ≻ π) (its exact win rate
# against the current policy), back it up as Q-values, and update every node's softmax policy
# θ(h, ·) += η Q(h, ·) — multiplicative weights at every node. Summing the per-node regrets
# along any fixed trajectory gives exploitability(average) ≤ H(log A/(ηT) + η/8)
# (checked for many games by `prl check spo_tree_minimax`).

# %%
rng = np.random.default_rng(1)
H, A, n = 3, 2, 8
u = np.zeros((3, n))  # three raters' utilities of each trajectory
for d in range(H):
    r = rng.normal(size=(3, A**d, A))
    for tau in range(n):
        u[:, tau] += r[:, tau // A ** (H - d), (tau // A ** (H - 1 - d)) % A]
wins = ((u[:, :, None] > u[:, None, :]).sum(0) >= 2).astype(float)
Pt = np.where(wins > 0, 1.0, np.where(wins.T > 0, 0.0, 0.5))
print("3-cycles among trajectories:", find_cycles(Pt)[:4])
p_lp, _ = minimax_winner(Pt)
T = 3000
eta = math.sqrt(8 * math.log(A) / T)
res = tree_selfplay_npg(torch.as_tensor(Pt)[None], H, A, eta, T,
                        np.unique(np.geomspace(1, T, 30).astype(int)))  # fmt: skip
fig, axes = plt.subplots(1, 2, figsize=(10, 3))
axes[0].loglog(res.t, res.expl_avg[:, 0], label="SPO-NPG average")
axes[0].loglog(res.t, H * (math.log(A) / (eta * res.t) + eta / 8), "k--", label="regret bound")
axes[0].set_xlabel("iterations")
axes[0].set_ylabel("exploitability")
axes[0].legend()
xs = np.arange(n)
axes[1].bar(xs - 0.2, p_lp, 0.4, color="0.6", label="LP minimax winner")
axes[1].bar(xs + 0.2, res.avg[0].numpy(), 0.4, label="SPO-NPG average")
axes[1].set_xticks(xs, [format(int(x), "03b") for x in xs])
axes[1].legend()
plt.show()

# %% [markdown]
# ## 3. A control task with intransitive raters
# `HopperFactored-v5` is gymnasium's Hopper with its reward split into factors in
# `info["reward_factors"]` (weights · factors = reward). Three raters each care about one
# factor: *speed* (Σ forward), *endurance* (Σ healthy), *frugal* (−Σ control cost). Their
# majority vote over trajectories of diverse random policies has cycles.

# %%
spec = factor_spec("HopperFactored-v5")
print("factors:", spec.names, "weights:", spec.weights)
seg = random_policy_trajectories("HopperFactored-v5", 16, np.random.default_rng(0),
                                 max_episode_steps=100)  # fmt: skip
src = preference_source("intransitive", "HopperFactored-v5")
i, j = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
Pv = src.oracle.prob(seg[i.ravel()], seg[j.ravel()]).reshape(16, 16)
cycles = find_cycles(Pv)
a, b, c = cycles[0]
print(f"{len(cycles)} cycles; e.g. {a} ≻ {b} ≻ {c} ≻ {a}")
for name, fn in src.raters.items():
    print(f"  {name:9s}", np.round(fn(seg[[a, b, c]]), 2))
plt.figure(figsize=(3.5, 3))
plt.imshow(Pv, cmap="RdBu", vmin=0, vmax=1)
plt.title("majority vote P(row ≻ col)")
plt.colorbar()
plt.show()

# %% [markdown]
# ## 4. SPO vs reward-model RLHF on the vote
# Both learners get the same env steps and the same number of preference queries. SPO scores
# each trajectory by its win rate against the batch and a queue of recent trajectories and runs
# PPO on it; RLHF fits a Bradley–Terry reward model r̂(s, a) to the same kind of labels and runs
# PPO on r̂. A tiny budget here (`prl figure spo_control` runs the real comparison); we compare
# the two final policies head-to-head *under the vote itself*.

# %%
cfg = {"preference": "intransitive", "n_envs": 4, "query_budget": 200, "queries_per_iter": 40,
       "batch_size": 100, "n_epochs": 4, "pool_size": 8, "hidden": [32, 32],
       "eval_episodes": 2}  # fmt: skip
runs = {}
with torch_threads(1):
    for algo in ("spo", "rlhf"):
        learner, rows = train(algo, "HopperFactored-v5", seed=0, steps=1600, config=cfg,
                              env_kwargs={"max_episode_steps": 100})  # fmt: skip
        runs[algo] = learner.sample_trajectories(4, seed=123)
        print(f"{algo}: queries {rows[-1]['queries']}, eval return {rows[-1]['eval_return']:.1f}")
i, j = np.meshgrid(np.arange(4), np.arange(4), indexing="ij")
p = src.oracle.prob(runs["spo"][i.ravel()], runs["rlhf"][j.ravel()]).mean()
print(f"P(SPO trajectory ≻ RLHF trajectory) under the majority vote: {p:.2f}")

# %% [markdown]
# With so few queries the numbers are noise; the point is the pipeline: a preference that no
# reward function represents still defines a game, and self-play optimizes it directly.
