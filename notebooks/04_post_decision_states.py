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
# # Post-decision states: separating what you decide from what happens to you
#
# In many control problems a step has two halves. First **you decide**: a factory schedules
# which item each machine makes, a walker picks a direction. The result of the decision is
# known at once — the stock after production, the cell you step onto. Then **something
# happens to you**: customers buy a random amount, the ice makes you slip. PDPPO (Felizardo
# et al.) names the state between the halves the *post-decision state*:
#
# $$s^x_t = f(s_t, a_t) \quad\text{(deterministic)}, \qquad s_{t+1} = g(s^x_t, \xi_t)\quad
# \text{(random } \xi_t\text{)}.$$
#
# Its value $V^x(s^x) = \mathbb{E}_\xi[r + \gamma V(s')\mid s^x]$ averages over the noise only;
# the decision itself needs no expectation: $V(s) = \max_a V^x(f(s, a))$ (when the reward
# arrives with $s'$). PDPPO learns a critic for each, $V(s)$ and $V^x(s^x)$, and lets PPO's
# actor use whichever advantage is larger.
#
# Both environments of this notebook report $s^x_t$ in `info["post_decision_obs"]`.

# %%
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch

from prl import envs
from prl.algos.pdppo import pdppo_advantages
from prl.run import train

torch.set_num_threads(1)

# %% [markdown]
# ## Lot-sizing: decide production, then meet demand
#
# The tiny instance has 2 items and 1 machine making 10 units/period of item 1 or 6 of
# item 2; switching the machine costs 1.5 (item 1) or 1.0 (item 2) plus one unit of that
# period's output; holding costs 0.01 per unit and period, a lost sale 0.2. Demand is
# Binomial(20, 0.4) per item. We make item 1, then item 1 again, then item 2.

# %%
env = envs.make("lotsizing", instance="tiny")
obs, _ = env.reset(seed=0)
rows = []
for a in ([1], [1], [2]):
    nxt, r, _, _, info = env.step(np.array(a))
    rows.append(
        {
            "state [inv1, inv2, setup]": obs.astype(int).tolist(),
            "action": a[0],
            "post-decision s^x": info["post_decision_obs"].astype(int).tolist(),
            "demand ξ": info["demand"].tolist(),
            "next state": nxt.astype(int).tolist(),
            "setup cost": info["setup_cost"],
            "reward": round(r, 3),
        }
    )
    obs = nxt
pd.DataFrame(rows)

# %% [markdown]
# The post-decision state is the stock right after production (first step: 5 + 10 − 1 lost
# to the setup = 14) with the new setup, before any customer arrives; the next state
# subtracts what was sold. The same decision from the same state gives the same $s^x$ under
# *any* demand — only the second half depends on the random seed:

# %%
big = envs.make("lotsizing", instance="15x5")
for seed in (0, 1, 2):
    big.reset(seed=seed, options={"inventory": [40] * 15, "setup": [0] * 5})
    nxt, _, _, _, info = big.step(np.array([1, 2, 3, 4, 5]))
    print(
        f"seed {seed}: s^x inventory[:5] = {info['post_decision_obs'][:5].astype(int)}"
        f"   s' inventory[:5] = {nxt[:5].astype(int)}"
    )

# %% [markdown]
# ## The slippery lake: the intended move, then the slip
#
# On FrozenLake the intended move is the post-decision state; with probability ½ the agent
# then slips one more cell, in a direction drawn from that tile's own distribution. The
# environment exposes the exact pieces: the decision table $F[s, a] = s^x$, the slip kernel
# $G[s^x, s']$, and the MDP with $P[s, a, \cdot] = G[F[s, a], \cdot]$. So we can compute
# $V^*$ and $V^x$ exactly and check $V^*(s) = \max_a V^x(F[s, a])$.

# %%
lake = envs.make("slippery_lake", map_name="4x4")
mdp = lake.mdp
v_star = mdp.v_star()
v_post = lake.post_decision_values(v_star)
live = ~lake.terminal
gap = np.abs(v_post[lake.post_decision_table].max(axis=1) - v_star)[live].max()
print(f"max over live cells |V*(s) − max_a V^x(f(s,a))| = {gap:.2e}")

fig, axes = plt.subplots(1, 2, figsize=(8, 3.6))
for ax, vals, title in ((axes[0], v_star, "$V^*(s)$"), (axes[1], v_post, "$V^x(s^x)$")):
    im = ax.imshow(vals.reshape(4, 4), cmap="viridis", vmin=0, vmax=1)
    for k, ch in enumerate(lake.desc.ravel()):
        ax.text(k % 4, k // 4, f"{ch}\n{vals[k]:.2f}", ha="center", va="center", color="w")
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
fig.colorbar(im, ax=axes, shrink=0.8)
plt.show()

# %% [markdown]
# $V^x$ of a hole is 0 and of the goal is 1 (you are there, the walk ends); on a frozen
# cell it is what standing there is worth *before* the slip. Choosing an action is a
# lookup of $V^x$ at the four cells you can step onto — no averaging over the slip at
# decision time. That is the information PDPPO's second critic tries to learn.
#
# ## PDPPO's advantage, by hand
#
# PDPPO computes one return $R_t$ (the TD(λ) return of the state critic, as in PPO) and two
# advantages, $A^s_t = R_t - V(s_t)$ (GAE) and $A^x_t = R_t - V^x(s^x_t)$, and trains the actor
# on $\max(A^s_t, A^x_t)$ (or, for ablations, their mean, or one of them). A 4-step rollout with
# an episode boundary before the last step:

# %%
R = np.array([[1.0], [0.0], [2.0], [-1.0]])
V = np.array([[0.5], [0.2], [0.1], [0.4]])
VX = np.array([[0.3], [0.6], [0.0], [0.2]])
starts = np.array([[1.0], [0.0], [0.0], [1.0]])
table = {}
for mode in ("v", "vx", "max", "mean"):
    out = pdppo_advantages(R, V, VX, starts, np.array([0.7]), np.array([False]), 0.9, 0.5, mode)
    table[f"A ({mode})"] = out["advantages"][:, 0]
table["R"] = out["returns"][:, 0]
pd.DataFrame(table).round(5)

# %% [markdown]
# For instance $A^s_1 = \delta_1 + \gamma\lambda\,\delta_2 = (0 + 0.9 \cdot 0.1 - 0.2) +
# 0.45 \cdot 1.9 = 0.745$ and $R_1 = 0.745 + 0.2 = 0.945$, so $A^x_1 = 0.945 - 0.6 = 0.345$.
# The tests (`tests/test_pdppo.py`) check exactly these numbers.
#
# ## A short run: what the two critics learn
#
# We train PDPPO on the 4×4 lake for a few thousand steps, then compare its critics with the
# exact values of its own current policy $\pi$: $V^\pi$ from the MDP and
# $V^{x,\pi}(x) = \sum_{s'} G[x, s'](1[s' = \text{goal}] + \gamma V^\pi(s'))$.

# %%
cfg = {"n_steps": 512, "batch_size": 64, "n_epochs": 4, "gamma": 0.99}
learner, hist = train("pdppo", "slippery_lake", seed=0, steps=6144, config=cfg)
policy = learner.model.policy
cells = torch.arange(16)
with torch.no_grad():
    pi = policy.get_distribution(cells).distribution.probs.numpy().astype(np.float64)
    v_learned = policy.predict_values(cells).numpy()[:, 0]
    vx_learned = policy.predict_post_values(cells).numpy()[:, 0]
pi = pi / pi.sum(axis=1, keepdims=True)
v_pi = mdp.evaluate(pi)
vx_pi = lake.post_decision_values(v_pi)
print("training episodes' success rate:", [round(r["ep_return"], 2) for r in hist])
pd.DataFrame(
    {
        "cell": lake.desc.ravel()[live],
        "V learned": v_learned[live],
        "V^π exact": v_pi[live],
        "V^x learned": vx_learned[live],
        "V^{x,π} exact": vx_pi[live],
    }
).round(3)

# %% [markdown]
# Both critics chase the values of a policy that is still changing, so they match only
# roughly after so few steps. The figure `prl figure pdppo_vs_ppo` compares PDPPO, its
# one-critic ablation and SB3 PPO on lot-sizing and the lake at equal environment steps,
# and `benchmarks/bench_pdppo.py` measures what the second critic costs in speed.
