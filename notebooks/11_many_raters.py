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
# # Many raters, one policy?
#
# Real preference data come from many people who want different things. A Bradley–Terry reward
# model assumes one scalar reward behind every label, so it averages the raters away. This
# notebook follows the alternatives, each checked against an exact answer:
#
# 1. **A population of raters** — `prl.oracles.RaterPopulation`: K groups with their own reward
#    weights and proportions; each pair is labelled by a sampled rater whose id is recorded.
# 2. **GPM** — preference embeddings with a block skew-symmetric operator represent cyclic
#    preferences exactly, where BT cannot; the learned game feeds the Nash learners.
# 3. **MaxMin-RLHF** — EM over a mixture of BT rewards, then the policy that maximises the
#    worst-off group's utility (exact LPs on a bandit and on a gridworld).
# 4. **VPL** — a latent-user reward r(s, z) trained by the ELBO; each user gets a policy
#    conditioned on their own z.
#
# The full claims are the checks `maxmin_single_reward_gap`, `gpm_rank_representation` and
# `vpl_identifies_users` (`prl check NAME`) and the figure `prl figure pluralistic`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.special import logit

from prl import envs
from prl.algos.nash import NashSolver
from prl.algos.pluralistic import (
    GPM,
    BTScores,
    fit_pairs,
    gpm_matrix,
    maxmin_lp,
    rollout_segments,
    skew_embedding,
    suboptimality_utilities,
)
from prl.games import cyclic_dice_matrix, exploitability
from prl.oracles import RaterPopulation
from prl.run import train

torch.set_num_threads(1)

# %% [markdown]
# ## 1. A population of raters
# The two-goal gridworld has three reward factors (at goal A, at goal B, at the compromise C).
# Group 0 wants A, group 1 wants B, both accept C at 60%. 80% of the raters are in group 0;
# every label carries the id of its rater.

# %%
env = envs.make("two_goals").unwrapped
print("group weights over [A, B, C]:\n", env.group_weights)
pop = RaterPopulation.from_weights(env.group_weights, [0.8, 0.2], teacher="stochastic", beta=2.0)
rng = np.random.default_rng(0)
segs = rollout_segments(env, 200, rng)
prefs = pop.label(segs[:100], segs[100:], rng)
print("raters of the first 20 pairs:", prefs.rater[:20])
print("share labelled by group 1:", prefs.rater.mean())

# %% [markdown]
# ## 2. GPM: cyclic preferences, exactly
# The intransitive dice beat each other in a cycle. Any 3×3 skew-symmetric logit matrix has
# rank 2, so one 2×2 block of R_≻ represents it exactly (its real Schur embedding); a BT model
# fitted to the same comparisons can only say ½ everywhere.

# %%
dice = cyclic_dice_matrix()
V, _ = skew_embedding(logit(dice), 1)
print("exact 1-block embedding, max |P̂ − P|:", np.abs(gpm_matrix(V) - dice).max())
n = 3
i, j = np.nonzero(~np.eye(n, dtype=bool))
gpm, bt = GPM(n, k=1, generator=torch.Generator().manual_seed(0)), BTScores(n)
fit_pairs(gpm, i, j, dice[i, j], steps=600)
fit_pairs(bt, i, j, dice[i, j], steps=600)
print("learned GPM, max |P̂ − P|:", np.abs(gpm.matrix() - dice).max())
print("learned BT,  max |P̂ − P|:", np.abs(bt.matrix() - dice).max())
solver = NashSolver("nash_mp", gpm.matrix(), tau=1e-3, eta=0.5)
solver.run(300)
print(
    "Nash-MP on the learned game → exploitability on the true dice:",
    float(exploitability(dice, solver.policy[0].numpy())),
)
fig, ax = plt.subplots(figsize=(3.2, 3.2))
ax.scatter(V[:, 0], V[:, 1])
for k in range(3):
    ax.annotate(f"die {k}", V[k])
ax.set_title("dice embeddings (one block)")
ax.set_aspect("equal")

# %% [markdown]
# ## 3. MaxMin-RLHF
# On the 10:1 three-arm bandit the BT reward follows the majority; the max-min policy of the
# groups' sub-optimality gaps (an LP) takes the compromise arm. On the gridworld, EM separates
# the users into two BT rewards and the max-min policy (an LP over occupancy measures) sends
# the agent to the compromise cell C, so the minority is no longer left with nothing.

# %%
U = np.array([[1.0, 0.0, 0.6], [0.0, 1.0, 0.6]])
p, v = maxmin_lp(suboptimality_utilities(U))
print("max-min arm distribution:", p.round(3), "worst-group gap:", -v)
_, rows = train("maxmin_rlhf", "two_goals", seed=0, steps=8, device="cpu")
last = rows[-1]
for g in (0, 1):
    print(
        f"group {g}: single BT {last[f'bt_return_g{g}']:.2f}, MaxMin-RLHF "
        f"{last[f'maxmin_return_g{g}']:.2f}, optimum {last[f'optimal_return_g{g}']:.2f}"
    )

# %% [markdown]
# ## 4. VPL: one reward per user, through z
# The encoder reads a user's 8 labelled pairs and returns q(z); planning on r(s, z) at the
# posterior mean gives each user a policy for their own goal.

# %%
_, rows = train(
    "vpl", "two_goals", seed=0, steps=300, config={"eval_every": 100, "lr": 1e-2}, device="cpu"
)
evals = [r for r in rows if "vpl_return_g0" in r]
for r in evals:
    print(
        r["step"],
        "VPL return per group:",
        round(r["vpl_return_g0"], 2),
        round(r["vpl_return_g1"], 2),
        "| single BT:",
        round(r["bt_return_g0"], 2),
        round(r["bt_return_g1"], 2),
    )
