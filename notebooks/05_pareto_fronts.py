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
# # Pareto fronts: from weights to constraints
#
# With $K$ reward signals a policy $\pi$ has a *vector* of returns
# $G(\pi) = (G_1(\pi), \dots, G_K(\pi))$, and there is no single best policy: $\pi$ dominates
# $\pi'$ when it is at least as good on every objective and better on one, and the **Pareto
# front** is the set of undominated return vectors. A multi-policy method returns a *set* of
# policies whose returns should cover that front. This notebook compares two ways of finding
# them, following C-MORL (Liu et al.):
#
# 1. **weights** — fix a preference $w$ on the simplex and maximize $w \cdot G(\pi)$ (linear
#    scalarization). C-MORL's Stage 1 does this for an even grid of weights;
# 2. **constraints** — start from a good policy $\pi_r$ and, for one objective $l$, solve
#    $\max_\pi G_l(\pi)$ s.t. $G_j(\pi) \ge \beta\, G_j(\pi_r)$ for $j \ne l$ (C-MORL's Stage 2),
#    with the log barrier $G_l + \frac1t \sum_{j\ne l} \log\big(G_j - \beta G_j(\pi_r)\big)$.
#
# We work on small MDPs where everything is exact: the front comes from linear programs over
# occupancy measures, the returns and their gradients from linear solves.

# %%
import matplotlib.pyplot as plt
import numpy as np
import torch

from prl import envs
from prl.algos.cmorl import (
    barrier_objective,
    cmorl_exact,
    constraint_lower_bounds,
    exact_returns,
    weight_grid,
)
from prl.metrics import expected_utility, hypervolume, sparsity, uniform_weight_grid
from prl.plot import pareto_front_plot

torch.set_num_threads(1)
env = envs.make("mo_tabular")  # S=8 states, A=3 actions, K=2 objectives, γ=0.9
mdp = env.mo_mdp
ref = env.ref_point  # the nadir: the worst return of any policy on each objective
print(mdp.S, "states,", mdp.A, "actions,", mdp.K, "objectives; reference point", ref.round(3))

# %% [markdown]
# ## The achievable set and its exact front
#
# The discounted occupancy $d(s,a) = \sum_t \gamma^t \Pr(s_t=s, a_t=a)$ of a stationary policy
# satisfies the Bellman flow constraints
# $\sum_a d(s',a) = \mu_0(s') + \gamma \sum_{s,a} P(s'|s,a)\, d(s,a)$, $d \ge 0$ — a polytope —
# and $G_k = \sum_{s,a} d(s,a) R_k(s,a)$ is linear in $d$. So the achievable returns form a
# polytope whose vertices are deterministic policies, and `exact_front()` finds the vertices of
# its Pareto front by LPs (outer approximation: for each facet of the current hull, maximize along
# its normal). We check it against all $3^8 = 6561$ deterministic policies.

# %%
import itertools

acts = np.array(list(itertools.product(range(mdp.A), repeat=mdp.S)))
J_det = mdp.returns(np.eye(mdp.A)[acts])  # returns of every deterministic policy
front = env.exact_front()
true_hv = env.front_hypervolume()  # area under the front's polyline, above the reference
print(f"{len(front)} front vertices; HV of the continuous front = {true_hv:.4f}")
print(f"HV of the vertices alone (deterministic policies) = {hypervolume(front, ref):.4f}")

fig, ax = plt.subplots(figsize=(5, 4))
ax.scatter(J_det[:, 0], J_det[:, 1], s=2, color="0.75", label="deterministic policies")
ax.plot(front[:, 0], front[:, 1], "k-o", ms=3, lw=1, label="exact front (LP)")
ax.set_xlabel("$G_1$")
ax.set_ylabel("$G_2$")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Weights: what linear scalarization can reach
#
# For a weight $w$ the optimum of $w\cdot G$ is a vertex of the polytope, so a grid of weights
# finds at most one vertex per weight — and only *supported* points (on the convex hull). C-MORL's
# Stage 1 uses 6 weights for two objectives. Each weight's optimum solves a scalar MDP exactly:

# %%
W = weight_grid(2)
vertices = np.array([mdp.max_weighted(w)[1] for w in W])
print("Stage-1 weights:", W[:, 0].round(1))
print(f"distinct vertices found: {len(np.unique(vertices.round(8), axis=0))} of {len(front)}")
print(f"HV of the 6 weight optima: {hypervolume(vertices, ref) / true_hv:.1%} of the front's")

# %% [markdown]
# ## Constraints: a Stage-2 branch
#
# Take one Stage-1 policy and push objective $l = 1$ (the first) up while the barrier keeps
# $G_2 \ge \beta G_2(\pi_r)$ with $\beta = 0.9$. The barrier's gradient is $\frac{1}{t(G_j -
# \text{lower}_j)}\nabla G_j$ on the *other* objectives only (C-MORL's code indexed the batch axis
# instead — `tests/test_cmorl.py` pins the objective axis). We follow softmax policies with exact
# returns and gradients:

# %%
P = torch.as_tensor(np.array(mdp.base.P_continue))
R = torch.as_tensor(np.array(mdp.R))
mu0 = torch.as_tensor(np.array(mdp.mu0))


def policy_for(w, iters=150):
    """Gradient ascent on w·G(θ) for softmax policies (one Stage-1 policy)."""
    theta = torch.zeros(1, mdp.S, mdp.A, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=0.1)
    for _ in range(iters):
        loss = -(exact_returns(theta, P, R, mu0, mdp.gamma)[0] @ torch.as_tensor(w))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return theta.detach()


def branch(theta0, l, t, beta=0.9, iters=80):
    """Stage 2 from θ0: ascend G_l + (1/t) Σ_{j≠l} log(G_j − lower_j); returns the path."""
    G0 = exact_returns(theta0, P, R, mu0, mdp.gamma)[0]
    lower = constraint_lower_bounds(G0, beta)
    theta = theta0.clone().requires_grad_(True)
    opt = torch.optim.Adam([theta], lr=0.1)
    path = [G0.numpy()]
    for _ in range(iters):
        G = exact_returns(theta, P, R, mu0, mdp.gamma)[0]
        loss = -barrier_objective(G, lower, l, t)
        opt.zero_grad()
        loss.backward()
        opt.step()
        path.append(exact_returns(theta.detach(), P, R, mu0, mdp.gamma)[0].numpy())
    return np.array(path), lower.numpy()


theta_r = policy_for(np.array([0.4, 0.6]))
fig, ax = plt.subplots(figsize=(5, 4))
ax.plot(front[:, 0], front[:, 1], "k-", lw=0.8, label="exact front")
for t, color in ((20.0, "C0"), (2.0, "C1")):
    path, lower = branch(theta_r, l=0, t=t)
    ax.plot(path[:, 0], path[:, 1], ".-", color=color, ms=3, label=f"branch l=1, t={t:g}")
ax.axhline(lower[1], color="0.5", ls=":", label=r"constraint $\beta G_2(\pi_r)$")
ax.plot(*path[0], "ks", label=r"$\pi_r$")
ax.set_xlabel("$G_1$")
ax.set_ylabel("$G_2$")
ax.legend(fontsize=7)
plt.show()

# %% [markdown]
# The branch slides *along* the front towards larger $G_1$ and stops near the constraint; with
# $t = 20$ (C-MORL's value) it goes closer to the boundary than with $t = 2$. Every intermediate
# policy is a new candidate: C-MORL offers all of them to its Pareto archive, and their stochastic
# policies fill in the edges between vertices that no weight can reach.
#
# ## The whole algorithm, exact form
#
# `cmorl_exact` runs Stage 1 on the 6-weight grid, then two rounds of Stage 2 from up to 5
# archive policies picked by crowding distance, one branch per objective. `stage2=False` gives the
# linear-scalarization baseline the same number of policy-gradient steps.

# %%
eu_w = uniform_weight_grid(2, 0.01)
runs = {
    name: cmorl_exact(mdp, ref=ref, stage2=(name == "C-MORL"), stage1_iters=100, stage2_iters=30)
    for name in ("C-MORL", "Stage 1 only")
}
fig, ax = plt.subplots(figsize=(5, 4))
for (name, res), color in zip(runs.items(), ("C0", "C1")):
    hv = hypervolume(res.front, ref) / true_hv
    eu = expected_utility(res.front, eu_w)
    print(f"{name:13s} HV {hv:.1%} of the front  EU {eu:.4f}  sparsity {sparsity(res.front):.2e}")
    pareto_front_plot(ax, res.front, label=name, color=color)
ax.plot(front[:, 0], front[:, 1], "k--", lw=0.8, label="exact front")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Deep-sea treasure: a known front of deterministic policies
#
# mo-gymnasium's deep-sea treasure has a known front (ten treasures, each at the end of its
# shortest path). With greedy evaluation every archive point is a deterministic policy; the
# lab builds the grid's exact model by querying the simulator.

# %%
dst = envs.make("deep_sea_treasure")
dst_mdp, _ = dst.tabular_model()
res = cmorl_exact(dst_mdp, ref=dst.ref_point, deterministic_eval=True, stage1_iters=80)
true = dst.true_front()
print(
    f"found {len(res.front)} of {len(true)} treasures; HV "
    f"{hypervolume(res.front, dst.ref_point) / hypervolume(true, dst.ref_point):.1%}"
)

# %% [markdown]
# ## The sampled learner
#
# `prl run cmorl --env ENV` is the same algorithm with PPO: one policy per weight with a
# vector-valued critic $V(s) \in \mathbb{R}^K$ and advantage $w\cdot(R - V)$ (vector GAE), then
# constrained PPO branches whose barrier uses first-order estimates of $G(\theta)$. The budget
# counts every `env.step` of every parallel copy. A short run on the synthetic MDP:

# %%
from prl.run import train

cfg = {"n_envs": 8, "n_steps": 32, "minibatches": 2, "lr": 0.01, "stage1_steps": 6144}
learner, rows = train("cmorl", "mo_tabular", seed=0, steps=12288, config=cfg)
last = rows[-1]
print(
    f"{last['step']} env steps: HV {last['hv_ratio']:.1%} of the exact front, "
    f"{last['front_size']} policies on the archive front"
)
