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
# # OPPO: how a context replaces a reward
#
# The usual route from preferences to a policy learns a reward model and then runs (offline)
# RL on it. OPPO (Kang et al., ICML 2023) takes neither step. It learns three things:
#
# 1. an **encoder** $I(\tau) \to z$ that summarizes a trajectory segment in a small vector;
# 2. a **context-conditioned policy** $\pi(a \mid s, z)$, trained by *hindsight information
#    matching*: given $z = I(\tau)$, reproduce the actions of $\tau$. Every segment in the data,
#    good or bad, is a valid training example — the policy learns *all* the behaviours, and $z$
#    says which one to play;
# 3. the **optimal context** $z^*$: a point in $z$-space that preferred segments are closer to
#    than rejected ones (a triplet loss with margin $m = 1$):
#
# $$\ell(z^*, z^+, z^-) = \max\big(\lVert z^* - I(\tau^+)\rVert_2 - \lVert z^* - I(\tau^-)
# \rVert_2 + m,\ 0\big).$$
#
# At test time the agent runs $\pi(\cdot \mid s, z^*)$. The context takes the place a reward
# (or a return-to-go in a Decision Transformer) would have: instead of asking "which actions
# maximize a learned reward?", OPPO asks "which of the behaviours I can reproduce did the
# labeller prefer?". This notebook runs it on the delivery gridworld (Knox et al.), where the
# exact value of every policy is available.

# %%
import tempfile
import time
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from prl import envs
from prl.algos.oppo import norm_loss, preference_triplet_loss, triplet_loss
from prl.offline_datasets import mixed_quality_dataset
from prl.run import train

torch.set_num_threads(1)
t_start = time.perf_counter()

# %% [markdown]
# ## The losses, by hand
#
# The triplet loss is zero once the positive is closer than the negative by the margin. OPPO's
# preference loss orients each labelled pair by its label (ties carry no direction and are left
# out); the norm regularizer $(\lVert z \rVert - 1)^2$ keeps encodings on the unit sphere's
# scale.

# %%
z_star = torch.tensor([1.0, 0.0])
pos = torch.tensor([[0.9, 0.1], [0.0, 1.0]])
neg = torch.tensor([[-1.0, 0.0], [0.8, 0.0]])
print("triplet losses:", triplet_loss(z_star, pos, neg).numpy().round(3))
print("by hand:", [max(np.hypot(0.1, 0.1) - 2.0 + 1, 0), max(np.hypot(1, 1) - 0.2 + 1, 0)])
label = torch.tensor([0.0, 1.0])  # pair 0: the "negative" was preferred, so it is reversed
print("preference loss:", preference_triplet_loss(z_star, pos, neg, label).item())
print("by hand:", (max(2.0 - np.hypot(0.1, 0.1) + 1, 0) + max(np.hypot(1, 1) - 0.2 + 1, 0)) / 2)
print("norm loss:", norm_loss(pos).item(), "by hand:", (np.hypot(0.9, 0.1) - 1) ** 2 / 2)

# %% [markdown]
# ## Mixed-quality data
#
# `prl.offline_datasets.mixed_quality_dataset` rolls out three behaviours from uniformly random
# start cells — uniform actions ("random"), a deterministic greedy policy of a noisy $Q^*$ with
# half the optimal normalized value ("medium") and an optimal policy ("expert") — cuts 20-step
# segments, and labels random pairs with the scripted teacher (hard labels by true segment
# return). The file uses the same versioned, checksummed format as the CPL pipeline.

# %%
workdir = Path(tempfile.mkdtemp())
ds = mixed_quality_dataset(
    workdir / "delivery.npz",
    make_env=lambda: envs.make("delivery"),
    env_name="delivery",
    n_segments=1500,
    n_pairs=3000,
    segment_length=20,
)
level = ds.segments.infos["behaviour"][:, 0]
names = ds.meta["levels"]
print("exact value of each level:", {k: round(v, 1) for k, v in ds.meta["level_values"].items()})
fig, ax = plt.subplots(figsize=(5, 3))
for k, name in enumerate(names):
    ax.hist(ds.scores[level == k], bins=30, alpha=0.6, label=name)
ax.set_xlabel("segment return")
ax.legend(fontsize=8)
ax.set_title("the labeller only sees returns of pairs of these")
plt.show()

# %% [markdown]
# ## Training
#
# One gradient step alternates (1) encoder + policy on
# $1\cdot\mathcal L_{HIM} + 0.1\cdot\ell(\mathrm{sg}\,z^*, \cdot) + 0.1\cdot(\lVert z\rVert -
# 1)^2$ and (2) $z^*$ on the triplet loss with the encodings detached. The MLP variant keeps
# $\pi(a \mid s, z)$ Markov, so its exact value can be computed; the registered learner's
# default is a transformer over 20-step windows.

# %%
cfg = {
    "dataset": str(workdir / "delivery.npz"),
    "arch": "mlp",
    "hidden": [64],
    "embed_dim": 64,
    "dropout": 0.0,
    "lr": 3e-3,
    "zstar_lr": 1e-2,
    "warmup_steps": 0,
    "batch_size": 32,
    "eval_every": 100,
}
oppo, rows = train("oppo", "delivery", seed=0, steps=800, config=cfg, every=10)
fig, axes = plt.subplots(1, 3, figsize=(11, 3))
steps = [r["step"] for r in rows]
axes[0].plot(steps, [r["loss_recon"] for r in rows], label="HIM (action reconstruction)")
axes[0].plot(steps, [r["loss_pref"] for r in rows], label="triplet")
axes[0].legend(fontsize=8)
axes[1].plot(steps, [r["pref_accuracy"] for r in rows])
axes[1].set_title("pairs ranked right by distance to z*", fontsize=9)
ev = [r for r in rows if "normalized_return" in r]
axes[2].plot([r["step"] for r in ev], [r["normalized_return"] for r in ev], "o-")
axes[2].set_title("normalized return of π(·|s, z*) (exact)", fontsize=9)
for ax in axes:
    ax.set_xlabel("gradient steps")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## The context space
#
# Each segment's encoding, projected on its two principal directions and coloured by the
# behaviour that produced it; the star is $z^*$. The encoder is never told which behaviour made
# a segment: HIM (the policy needs that information to reproduce the actions) and the triplet
# term arrange the encodings by behaviour anyway, and the preferences put $z^*$ at the expert's
# end of the cloud.

# %%
Z = oppo.encodings().numpy()
zs = oppo.zstar.z.detach().numpy()
mean = Z.mean(0)
_, _, vt = np.linalg.svd(Z - mean, full_matrices=False)
P = (Z - mean) @ vt[:2].T
p_star = (zs - mean) @ vt[:2].T
fig, ax = plt.subplots(figsize=(5, 4))
for k, name in enumerate(names):
    ax.scatter(*P[level == k].T, s=4, alpha=0.5, label=name)
ax.scatter(*p_star, marker="*", s=300, c="k", label="z*")
ax.legend(fontsize=8)
ax.set_title("encodings I(τ) (PCA)")
plt.show()
nearest = np.argsort(np.linalg.norm(Z - zs, axis=1))[:100]
print(
    "behaviours of the 100 segments closest to z*:",
    dict(zip(names, np.bincount(level[nearest], minlength=len(names)))),
)

# %% [markdown]
# ## Turning the knob
#
# The same network plays every behaviour in the data; the context chooses which. Evaluating
# $\pi(\cdot \mid s, z)$ exactly for the mean encoding of each level and along the line from
# the random level's mean context to $z^*$ shows the context doing the job a reward would do in
# RL: move it towards $z^*$ and the return climbs to the expert's.

# %%
for k, name in enumerate(names):
    m = oppo.evaluate(Z[level == k].mean(0))
    print(f"context = mean I(τ) of {name:>6}: normalized return {m['normalized_return']:.3f}")
print(
    f"context = z*:                      normalized return "
    f"{oppo.evaluate()['normalized_return']:.3f}"
)
z_rand = Z[level == 0].mean(0)
ts = np.linspace(0, 1, 11)
line = [oppo.evaluate((1 - t) * z_rand + t * zs)["normalized_return"] for t in ts]
fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(ts, line, "o-")
ax.set_xlabel("t: context (1 − t)·mean I(random) + t·z*")
ax.set_ylabel("normalized return (exact)")
plt.show()

# %% [markdown]
# ## Against behaviour cloning
#
# Behaviour cloning on the same data imitates the average behaviour; %BC (an oracle baseline
# that reads the true returns) imitates the best third of the segments. OPPO gets the
# selection from the labels alone.

# %%
base = {k: cfg[k] for k in ("dataset", "hidden", "dropout", "lr", "batch_size")}
for algo, extra in (("bc", {}), ("pct_bc", {"percent": 33.0})):
    _, r = train(algo, "delivery", seed=0, steps=400, config={**base, **extra, "eval_every": 400})
    print(f"{algo:>7}: normalized return {r[-1]['normalized_return']:.3f}")
print(f"   oppo: normalized return {rows[-1]['normalized_return']:.3f}")
print(f"notebook ran in {time.perf_counter() - t_start:.1f} s")
