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
# # Mirror descent in policy space
#
# Mirror descent policy optimization (MDPO, Tomar et al.) treats policy improvement as mirror
# descent on the simplex of each state, with the KL divergence as the Bregman divergence:
#
# $$\pi_{k+1}(\cdot|s) = \arg\max_{p \in \Delta_A}\ \eta\,\langle Q^{\pi_k}(s,\cdot), p\rangle
#   - \mathrm{KL}(p \,\|\, \pi_k(\cdot|s))
#   \quad\Longrightarrow\quad \pi_{k+1} \propto \pi_k\, e^{\eta Q^{\pi_k}}.$$
#
# This notebook goes from that exact update (a plain function, `algos.mdpo.pmd_step`) to its
# rates on tabular MDPs, and then to the deep on- and off-policy losses whose per-state
# minimizers are the very same step.

# %%
import math

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.optimize import minimize
from scipy.special import log_softmax, softmax

from prl.algos.mdpo import (
    cen_step_to_pmd,
    mdpo_off_policy_target,
    mdpo_on_policy_target,
    npg_step_to_pmd,
    pmd_step,
    policy_mirror_descent,
    stack_mdps,
)
from prl.mdp import random_mdp

torch.set_num_threads(1)
rng = np.random.default_rng(0)

# %% [markdown]
# ## 1. One state: the closed form is the argmax
#
# With one state the update is the exponential-weights step. We check it against a numerical
# maximization of $\eta\langle Q, p\rangle - \mathrm{KL}(p\|\pi)$ over the simplex.

# %%
pi = np.array([0.5, 0.3, 0.2])
Q = np.array([1.0, 0.0, 2.0])
eta = 0.7
closed = pmd_step(torch.tensor(np.log(pi)), torch.tensor(Q), eta).exp().numpy()


def neg_objective(z):
    logp = log_softmax(z)
    p = np.exp(logp)
    return -(eta * p @ Q - p @ (logp - np.log(pi)))


numeric = softmax(minimize(neg_objective, np.zeros(3), method="BFGS", tol=1e-12).x)
print("closed form:", closed.round(6), " numerical argmax:", numeric.round(6))

# %% [markdown]
# Larger η trusts $Q$ more: η → ∞ is greedy policy iteration, η → 0 stays at $\pi_k$.
# An entropy bonus τ·H(p) adds a pull towards uniform:
# $\log\pi_{k+1} = (\log\pi_k + \eta Q)/(1 + \eta\tau) + \text{const}$.

# %%
for eta_ in (0.1, 1.0, 10.0):
    p = pmd_step(torch.tensor(np.log(pi)), torch.tensor(Q), eta_).exp().numpy()
    p_tau = pmd_step(torch.tensor(np.log(pi)), torch.tensor(Q), eta_, 0.5).exp().numpy()
    print(f"η={eta_:5.1f}:  τ=0 → {p.round(3)}   τ=0.5 → {p_tau.round(3)}")

# %% [markdown]
# ## 2. Policy mirror descent on MDPs, batched
#
# On an MDP the step uses the exact $Q^{\pi_k}$ of every state. `policy_mirror_descent` runs it
# on a batch of MDPs at once in torch (float64, any device): here 32 random MDPs with
# $S = 30$, $A = 4$, γ = 0.9. Three step-size rules:
#
# * **constant** NPG step η (π ∝ π·exp(η A/(1−γ))): Agarwal et al. (2021, Thm. 16) prove, for the
#   last iterate from the uniform policy and rewards in [0, 1],
#   $V^*(s) - V^{(T)}(s) \le \frac{\log|A|}{\eta T} + \frac{1}{(1-\gamma)^2 T}$;
# * **geometric** steps $\eta_k = \eta_0/\gamma^k$: linear convergence at rate γ (Xiao 2022):
#   $V^*(s) - V^{(k)}(s) \le
#   \gamma^k\big(V^*(s) - V^{(0)}(s) + \frac{\log|A|}{(1-\gamma)\eta_0}\big)$;
# * **entropy-regularized** (Cen et al. 2021): $\|Q^*_\tau - Q^{(t)}_\tau\|_\infty$ shrinks at
#   least by $(1-\eta\tau)$ per step.

# %%
gamma, S, A, T = 0.9, 30, 4, 150
mdps = [random_mdp(S, A, gamma, rng) for _ in range(32)]
b = stack_mdps(mdps)
v_star = torch.tensor(np.stack([m.v_star() for m in mdps]))  # exact policy iteration

eta_npg = 1.0
const = policy_mirror_descent(
    b["P"], b["R"], b["gamma"], iters=T, eta=npg_step_to_pmd(eta_npg, gamma)
)
geom = policy_mirror_descent(b["P"], b["R"], b["gamma"], iters=T, eta=0.1, growth=1 / gamma)
gap_c = (v_star - const["V"]).amax(-1).numpy()  # [T+1, 32]
gap_g = (v_star - geom["V"]).amax(-1).numpy()
t = np.arange(1, T + 1)
bound = math.log(A) / (eta_npg * t) + 1 / ((1 - gamma) ** 2 * t)
print("worst gap/bound over 32 MDPs and all T:", float((gap_c[1:] / bound[:, None]).max()))

tau, frac = 0.1, 0.5
eta_cen = frac * (1 - gamma) / tau
ent = policy_mirror_descent(
    b["P"], b["R"], b["gamma"], iters=T, eta=cen_step_to_pmd(eta_cen, tau, gamma), tau=tau
)
q_soft = torch.tensor(np.stack([m.soft_optimal(tau)[1] for m in mdps]))
err_e = (q_soft - ent["Q"]).abs().amax((-2, -1)).numpy()

fig, axes = plt.subplots(1, 3, figsize=(13, 3.4))
floor = 1e-12
axes[0].loglog(t, np.maximum(np.median(gap_c[1:], 1), floor), label="median over MDPs")
axes[0].loglog(t, bound, "k--", label="Agarwal et al. bound")
axes[0].set_title(f"constant NPG step η={eta_npg}")
axes[1].semilogy(np.maximum(np.median(gap_g, 1), floor), label="geometric η₀=0.1")
axes[1].semilogy(np.maximum(np.median(gap_c, 1), floor), label=f"constant η={eta_npg}")
axes[1].set_title("geometric vs constant steps")
k = np.arange(T + 1)
axes[2].semilogy(np.maximum(np.median(err_e, 1), floor), label="‖Q*_τ − Q_τ^t‖∞")
axes[2].semilogy(err_e[0].max() * (1 - eta_cen * tau) ** k, "k:", label="(1−ητ)^t")
axes[2].set_title(f"entropy-regularized τ={tau}, η={eta_cen:.2f}")
for ax in axes:
    ax.set_xlabel("iteration")
    ax.legend(fontsize=8)
axes[0].set_ylabel("max_s V* − V")
fig.tight_layout()

# %% [markdown]
# The bound is loose (the worst ratio above is a few percent): exact mirror descent with a
# constant step is eventually linear. The registered checkers `pmd_sublinear_bound`,
# `pmd_sublinear_slope`, `pmd_entropy_linear_rate` and `pmd_geometric_linear_rate`
# (`prl check NAME`) test these claims on random and chain MDPs with γ ∈ {0.9, 0.99}.
#
# ## 3. From the exact step to the deep losses
#
# **On-policy MDPO** replaces the argmax by a few gradient steps on a sampled surrogate,
#
# $$L(\theta) = -\mathbb{E}_{s,a\sim\pi_k}\Big[\tfrac{\pi_\theta(a|s)}{\pi_k(a|s)}\hat A(s,a)\Big]
#   + \tfrac{1}{t_k}\,\mathbb{E}_s\,\mathrm{KL}(\pi_\theta(\cdot|s)\,\|\,\pi_k(\cdot|s)),$$
#
# whose exact per-state minimizer is `pmd_step(log π_k, Â, η = t_k)`. The paper takes m = 10
# full-batch Adam steps per iteration and anneals $t_k = 1 - k/K$. How close do m steps get?
# We run Adam on free logits of a random MDP's states and measure the KL to the exact step.

# %%
mdp = mdps[0]
pi_k = softmax(rng.normal(size=(S, A)), axis=1)
q_k = mdp.q_values(pi_k)
adv = torch.tensor(q_k - (pi_k * q_k).sum(1, keepdims=True))
log_pk = torch.tensor(np.log(pi_k))
t_k = 0.5
target = mdpo_on_policy_target(log_pk, adv, t_k)

logits = log_pk.clone().requires_grad_(True)
opt = torch.optim.Adam([logits], lr=0.02)


def kl_to_target() -> float:
    with torch.no_grad():
        lp = torch.log_softmax(logits, -1)
        return float((target.exp() * (target - lp)).sum(-1).mean())


kls = [kl_to_target()]
for _ in range(40):
    logp = torch.log_softmax(logits, -1)
    p = logp.exp()
    loss = -(p * adv).sum(-1).mean() + (p * (logp - log_pk)).sum(-1).mean() / t_k
    opt.zero_grad()
    loss.backward()
    opt.step()
    kls.append(kl_to_target())
plt.figure(figsize=(4.5, 3))
plt.semilogy(np.arange(41), kls)
plt.axvline(10, color="k", ls=":", lw=0.8)
plt.xlabel("gradient steps m")
plt.ylabel("mean KL(exact step ‖ π_m)")
plt.title("m Adam steps on the MDPO surrogate")
plt.tight_layout()

# %% [markdown]
# **Off-policy MDPO** (SAC-like) minimizes, per state, with $a$ drawn from $\pi_\theta$,
# $\mathbb{E}[c\log\pi_\theta(a|s) + (\lambda - c)\log\pi_k(a|s) - Q(s,a)]$ with $c = 1/t_k$ and
# λ the entropy weight. Its exact minimizer is again the mirror-descent step, now
# `pmd_step(log π_k, Q, η = 1/(c − λ), τ = λ)`; for c = λ the KL term vanishes and it becomes
# SAC's soft-greedy $\pi \propto e^{Q/\lambda}$ (η = ∞). Larger c keeps the new policy closer to
# the old one.

# %%
q_s = q_k[0]
lam = 0.2
for c in (0.2, 0.5, 2.0, 20.0):
    p = mdpo_off_policy_target(log_pk[0], torch.tensor(q_s), c, lam).exp().numpy()
    kl_old = float((p * (np.log(p) - np.log(pi_k[0]))).sum())
    print(f"c={c:5.1f}: π = {p.round(3)}   KL(π‖π_k) = {kl_old:.3f}")
print("SAC soft-greedy exp(Q/λ):", softmax(q_s / lam).round(3))

# %% [markdown]
# ## 4. The deep learners
#
# `mdpo_on` is a stable-baselines3 `PPO` subclass (`algos.mdpo.MDPOOnPolicy`): same rollouts
# and GAE, no clipping, m full-batch steps on the loss above, value function fitted separately.
# `mdpo_off` is a `SAC` subclass (`MDPOOffPolicy`) whose actor loss adds the KL to an old actor
# copied every 1000 steps. Both keep SB3's `learn`, callbacks, `save`/`load` and `predict`;
# `prl run mdpo_on --env Hopper-v5` trains one with checkpoints. A tiny run:

# %%
from prl.run import train

learner, rows = train(
    "mdpo_on",
    "Hopper-v5",
    seed=0,
    steps=1024,
    config={"n_steps": 512, "n_epochs": 2, "chunk": 512, "anneal_steps": 1024},
)
for r in rows:
    print({k: round(v, 4) for k, v in r.items() if k in ("step", "return", "t_k", "kl")})
obs, _ = learner.model.env.envs[0].reset(seed=0)
print("SB3 predict:", learner.model.predict(obs, deterministic=True)[0])
learner.close()

# %% [markdown]
# `prl figure mdpo_mujoco` compares on-policy MDPO with PPO and off-policy MDPO with SAC on
# Hopper, Walker2d and HalfCheetah (IQM over seeds with bootstrap CIs); `prl figure
# mdpo_tabular` draws the tabular rates of section 2.
