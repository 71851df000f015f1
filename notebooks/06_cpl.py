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
# # CPL: optimal policies from regret preferences without RL
#
# RLHF usually learns a reward from comparisons and then runs RL on it. Contrastive Preference
# Learning (Hejna et al., ICLR 2024) skips both steps. Two facts make this possible:
#
# 1. **People compare by regret** (Knox et al.): segment $\sigma^+$ is preferred to $\sigma^-$
#    with probability $\sigma\big(\sum_t \gamma^t A^*(s^+_t,a^+_t) - \sum_t \gamma^t
#    A^*(s^-_t,a^-_t)\big)$ — the sum of optimal advantages, not of rewards.
# 2. **Under maximum entropy, advantages are log-probabilities**: $A^*(s,a) = \alpha \log
#    \pi^*(a|s)$.
#
# Substituting 2 into 1 gives a likelihood of the *policy* itself. CPL maximizes it with a
# conservative bias $\lambda \in (0, 1]$:
#
# $$\mathcal L(\pi) = -\log \frac{\exp S(\sigma^+)}{\exp S(\sigma^+) + \exp \lambda S(\sigma^-)},
# \qquad S(\sigma) = \sum_t \gamma^t \alpha \log \pi(a_t|s_t).$$
#
# This notebook runs the whole pipeline on tabular MDPs, where every answer can be checked
# exactly: generate segments, label them with the exact-$A^*$ regret oracle, store them in a
# dataset file, fit CPL, and compare with the optimal policy.

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from prl.algos.cpl import cpl_tabular
from prl.algos.offline_baselines import tabular_metrics
from prl.data import PreferenceDataset, generate_dataset, tabular_chunks
from prl.mdp import random_mdp
from prl.oracles import Regret, tabular_advantage_fn
from prl.run import train

torch.set_num_threads(1)
t_start = time.perf_counter()
mdp = random_mdp(20, 4, 0.9, np.random.default_rng(0), reward_scale=10.0)
A_star = mdp.advantage_star()
print(mdp)
print("optimal actions:", A_star.argmax(1))

# %% [markdown]
# ## The data pipeline
#
# `prl.data` builds a preference dataset from small pieces: a behaviour policy rolls out
# segments (here the vectorized tabular sampler, uniform actions from uniform start states),
# random pairs are drawn, and an oracle labels them. The `Regret` oracle with the exact $A^*$
# of the MDP is Knox et al.'s preference model with temperature 1. `generate_dataset` works
# chunk by chunk (a killed run resumes from the finished chunks) and writes a versioned `.npz`
# file with a checksum; `PreferenceDataset.load` verifies it.

# %%
oracle = Regret.from_mdp(mdp)  # P(a ≻ b) = σ(Σγ^t A*(a) − Σγ^t A*(b)), γ = 0.9
workdir = Path(tempfile.mkdtemp())
ds = generate_dataset(
    workdir / "random_mdp.npz",
    chunk_fn=tabular_chunks(mdp, np.full((20, 4), 0.25), 5000, 16, start="uniform"),
    n_chunks=2,
    oracle=oracle,
    mode="sparse",
    n_pairs=100_000,
    seed=0,
    meta={"env": "random_mdp"},
    progress=False,
)
ds = PreferenceDataset.load(workdir / "random_mdp.npz", expect={"env": "random_mdp"})
print(f"{len(ds)} segments of {ds.segments.length} steps, {ds.n_pairs} labelled pairs")
print("fraction labelled a ≻ b:", ds.label.mean().round(3))

# %% [markdown]
# ## 1. With max-ent regret labels CPL is exact
#
# If the labels come from the *soft* optimal advantage $A^*_{soft} = \alpha \log
# \pi^*_{soft}$ and we use their exact probabilities as soft labels, the CPL loss with
# $\lambda = 1$ is minimized by the soft-optimal policy itself — no reward, no value function,
# no RL. `cpl_tabular` minimizes the loss over a table of logits in float64.

# %%
alpha = 0.5
pi_soft, _, _ = mdp.soft_optimal(alpha)
soft_oracle = Regret(tabular_advantage_fn(alpha * np.log(pi_soft)), beta=1.0, discount=0.9)
a_seg, b_seg = ds.segments[ds.pairs[:20_000, 0]], ds.segments[ds.pairs[:20_000, 1]]
soft = PreferenceDataset(
    ds.segments, ds.pairs[:20_000], soft_oracle.prob(a_seg, b_seg), ds.mask[:20_000]
)
log_pi = cpl_tabular(soft, mdp.S, mdp.A, alpha=alpha, lam=1.0, discount=0.9, steps=200)
print("max |π_CPL − π*_soft| =", np.abs(np.exp(log_pi) - pi_soft).max())

# %% [markdown]
# ## 2. Regret preferences with the ordinary $A^*$: the optimal action
#
# Real labels are noisy 0/1 draws, and the labeller's $A^*$ is the ordinary (not soft) one.
# CPL's implied advantage $\alpha \log \pi$ then only approximates $A^*$, but its argmax — the
# greedy policy — converges to an optimal action in every state as the data grow.

# %%
sizes = [100, 300, 1_000, 3_000, 10_000, 100_000]
frac, norm_ret = [], []
for n in sizes:
    sub = PreferenceDataset(ds.segments, ds.pairs[:n], ds.label[:n], ds.mask[:n])
    lp = cpl_tabular(sub, mdp.S, mdp.A, alpha=0.1, lam=1.0, discount=0.9, steps=100)
    m = tabular_metrics(mdp, np.exp(lp))
    frac.append(m["optimal_action_frac"])
    norm_ret.append(m["normalized_return"])
    print(
        f"{n:>7} pairs: optimal action in {m['optimal_action_frac']:.0%} of states, "
        f"normalized return {m['normalized_return']:.3f}"
    )

fig, ax = plt.subplots(figsize=(5, 3))
ax.semilogx(sizes, frac, "o-", label="states with an optimal argmax")
ax.semilogx(sizes, norm_ret, "s--", label="normalized return of the greedy policy")
ax.set_xlabel("labelled pairs")
ax.set_ylim(0, 1.05)
ax.legend(fontsize=8)
ax.set_title("CPL (λ = 1) on hard regret labels")
plt.show()

# %% [markdown]
# ## 3. The conservative bias λ
#
# The plain loss ($\lambda = 1$) is convex but not strictly: actions that never occur in the
# data only enter through the normalization of $\pi$, and nothing stops gradient steps from
# moving probability onto them. With $\lambda < 1$ the loss also rewards raising
# $\log\pi$ of every action in the data, which pushes absent actions towards 0. Here the
# behaviour policy never takes action 3.

# %%
pi_b = np.full((20, 4), 1 / 3)
pi_b[:, 3] = 0.0
ds_missing = generate_dataset(
    None,
    chunk_fn=tabular_chunks(mdp, pi_b, 2000, 8, start="uniform"),
    n_chunks=1,
    oracle=oracle,
    n_pairs=10_000,
    seed=1,
    progress=False,
)
absent = {}
for lam in (1.0, 0.75, 0.5):
    lp = cpl_tabular(
        ds_missing,
        mdp.S,
        mdp.A,
        alpha=0.1,
        lam=lam,
        discount=0.9,
        steps=200,
        optimizer="adam",
        lr=0.05,
    )
    absent[lam] = np.exp(lp[:, 3])
    print(
        f"λ = {lam}: mean π(absent action) = {absent[lam].mean():.4f}, "
        f"max = {absent[lam].max():.4f}"
    )

fig, ax = plt.subplots(figsize=(5, 3))
ax.bar([str(k) for k in absent], [v.mean() for v in absent.values()])
ax.set_xlabel("λ")
ax.set_ylabel("mean π(a never in the data)")
plt.show()

# %% [markdown]
# ## 4. The neural learner and a baseline
#
# The same loss drives the registered learner `prl run cpl` (variants `cpl`, `cpl_bc`,
# `cpl_kl`; sparse or dense data; BC pretraining; discrete or continuous actions). It shares
# `segment_score` and `cpl_loss` with `cpl_tabular`. Here it runs on a small random MDP with a
# suboptimal behaviour policy (half optimal, half a fixed random policy, plus 50% uniform
# noise), next to P-IQL (a Bradley–Terry reward model, then IQL) and behaviour cloning.

# %%
common = {
    "hidden": [64],
    "dropout": 0.0,
    "lr": 3e-3,
    "batch_size": 32,
    "n_segments": 1000,
    "n_pairs": 3000,
    "expert_mix": 0.5,
    "behaviour_noise": 0.5,
    "eval_every": 50,
}
runs = {
    "CPL": ("cpl", {"bc_steps": 0, "warmup_steps": 0}),
    "P-IQL": ("piql", {"reward_steps": 100}),
    "BC": ("bc", {}),
}
fig, ax = plt.subplots(figsize=(5, 3))
for name, (algo, extra) in runs.items():
    _, rows = train(
        algo,
        "random_mdp",
        seed=0,
        steps=300,
        config={**common, **extra},
        env_kwargs={"S": 20, "A": 4},
    )
    xs = [r["step"] for r in rows if "normalized_return" in r]
    ys = [r["normalized_return"] for r in rows if "normalized_return" in r]
    ax.plot(xs, ys, marker="o", ms=3, label=name)
ax.set_xlabel("gradient steps")
ax.set_ylabel("normalized return (exact)")
ax.legend(fontsize=8)
plt.show()
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")

# %% [markdown]
# CPL needs no critic and no reward model: each step is one supervised update of the policy,
# which is why it is several times cheaper per gradient step than P-IQL
# (`benchmarks/bench_cpl.py`). The paper's comparison on MetaWorld is `prl figure cpl_table`;
# dense vs sparse data is `prl figure cpl_dense_sparse`.
