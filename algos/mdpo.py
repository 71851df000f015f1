"""MDPO — mirror descent policy optimization (Tomar et al.): exact tabular form to deep RL.

One update rule, one place. The exact tabular form is :func:`pmd_step`,

    log π_{k+1}(·|s) = (log π_k(·|s) + η Q(s,·)) / (1 + ητ) − log Z(s),

the closed-form maximizer of ⟨Q(s,·), p⟩ + τ H(p) − KL(p ‖ π_k(·|s)) / η: with τ = 0 it is the
policy mirror descent step π_{k+1} ∝ π_k · exp(η Q^{π_k}). Everything else reuses it:

- :func:`policy_mirror_descent` runs it on batches of :class:`prl.mdp.TabularMDP`-style arrays
  (``P [..., S, A, S]``, ``R [..., S, A]``) in torch float64 with exact evaluation, for constant,
  geometrically growing (Xiao 2022) and entropy-regularized (Cen et al. 2021) step sizes;
- the deep on-policy loss :func:`mdpo_on_policy_loss` (−E[ratio·Â] + KL(π_θ ‖ π_k)/t_k) has the
  per-state minimizer ``pmd_step(log π_k, Â, η = t_k)`` (:func:`mdpo_on_policy_target`);
- the deep off-policy loss :func:`mdpo_off_policy_loss` (E[c log π_θ + (λ − c) log π_k − Q]) has
  the per-state minimizer ``pmd_step(log π_k, Q, η = 1/(c − λ), τ = λ)``
  (:func:`mdpo_off_policy_target`); c = λ gives η = ∞, SAC's soft-greedy step π ∝ exp(Q/λ).

The deep learners are stable-baselines3 subclasses, so SB3 callbacks, logging, ``save``/``load``
and ``predict`` work as usual: :class:`MDPOOnPolicy` (a ``PPO`` without clipping: m full-batch
steps on the KL-regularized surrogate, value function trained separately with its own
optimizer) and :class:`MDPOOffPolicy` (a ``SAC`` whose actor loss adds a KL — or optionally a
Tsallis divergence — to an old actor copied every N steps). They are registered as ``mdpo_on``
and ``mdpo_off`` (``prl run mdpo_on --env Hopper-v5``); ``variant=ppo`` / ``variant=sac`` runs
the plain SB3 peer with identical settings (the figures' baselines).
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch.nn import functional as F

from prl.common.sb3 import RunDirLoad, SB3Learner, foreach_adam
from prl.config import alias, option, require, resolve_aliases
from prl.errors import ConfigError, InvalidInputError
from prl.mdp import policy_evaluation_torch, q_from_v_torch
from prl.run import register_algo
from prl.smoke import Smoke

# =============================================================================================
# exact tabular policy mirror descent (torch, float64, batched over MDPs)
# =============================================================================================


def _as_f64(x: Any, ref: torch.Tensor | None = None) -> torch.Tensor:
    device = ref.device if ref is not None else None
    if isinstance(x, torch.Tensor):
        return x.to(dtype=torch.float64, device=device if device is not None else x.device)
    return torch.as_tensor(np.array(x, dtype=np.float64), dtype=torch.float64, device=device)


def _batch_param(x: torch.Tensor, log_pi: torch.Tensor, name: str) -> torch.Tensor:
    """A scalar, or a batch-shaped [...] tensor given trailing [1, 1] axes to meet [..., S, A]."""
    if x.ndim == 0:
        return x
    if log_pi.ndim < 2 or x.ndim > log_pi.ndim - 2:
        raise InvalidInputError(
            f"{name} must be a scalar or have the batch shape {tuple(log_pi.shape[:-2])}, "
            f"got shape {tuple(x.shape)}"
        )
    return x.reshape(*x.shape, 1, 1)


def pmd_step(log_pi: Any, Q: Any, eta: Any, tau: Any = 0.0) -> torch.Tensor:
    """One exact policy mirror descent step: log π' = (log π + η Q)/(1 + ητ) − log Z (per state).

    ``log_pi`` and ``Q`` are ``[..., S, A]`` (or ``[..., A]``); ``eta`` and ``tau`` are floats or
    tensors broadcastable to the batch shape ``[...]``. τ = 0 is π' ∝ π·exp(ηQ) (Tomar et al.;
    Agarwal et al.'s NPG with η_Q = η_NPG/(1−γ)); τ > 0 is the entropy-regularized step
    (Cen et al. 2021, exponent 1 − η_NPG τ/(1−γ) = 1/(1 + ητ)); η = ∞ with τ > 0 is the soft-greedy
    step π' ∝ exp(Q/τ). Returns the new log-policy (float64).
    """
    log_pi = _as_f64(log_pi)
    Q = _as_f64(Q, log_pi)
    if log_pi.shape != Q.shape or log_pi.ndim < 1:
        raise InvalidInputError(
            f"log_pi and Q must have the same shape [..., S, A], got {tuple(log_pi.shape)} "
            f"and {tuple(Q.shape)}"
        )
    if torch.isnan(log_pi).any() or not torch.isfinite(Q).all():
        raise InvalidInputError("log_pi must not contain NaN and Q must be finite")
    eta = _as_f64(eta, log_pi)
    tau = _as_f64(tau, log_pi)
    if torch.isnan(eta).any() or (eta <= 0).any():
        raise InvalidInputError(f"eta must be positive, got min {float(eta.min()):.3g}")
    if not torch.isfinite(tau).all() or (tau < 0).any():
        raise InvalidInputError(f"tau must be a finite number >= 0, got {tau}")
    inf = torch.isinf(eta)
    if (inf & (tau == 0)).any():
        raise InvalidInputError("eta = inf needs tau > 0 (the soft-greedy step π ∝ exp(Q/τ))")
    eta, tau = _batch_param(eta, log_pi, "eta"), _batch_param(tau, log_pi, "tau")
    return _pmd_core(log_pi, Q, *_pmd_coefficients(eta, tau))


def _pmd_coefficients(eta: torch.Tensor, tau: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(1/(1+ητ), η/(1+ητ)), with the η = ∞ limit (0, 1/τ)."""
    inf = torch.isinf(eta)
    safe_eta = torch.where(inf, torch.ones_like(eta), eta)
    coef_pi = torch.where(inf, torch.zeros_like(eta), 1.0 / (1.0 + safe_eta * tau))
    coef_q = torch.where(
        inf, 1.0 / torch.where(tau > 0, tau, 1.0), safe_eta / (1.0 + safe_eta * tau)
    )
    return coef_pi, coef_q


def _pmd_core(
    log_pi: torch.Tensor, Q: torch.Tensor, coef_pi: torch.Tensor, coef_q: torch.Tensor
) -> torch.Tensor:
    """The update itself, log π' = log_softmax(coef_pi·log π + coef_q·Q) (no input checks)."""
    base = torch.where(coef_pi == 0, torch.zeros_like(log_pi), coef_pi * log_pi)
    return torch.log_softmax(base + coef_q * Q, dim=-1)


def npg_step_to_pmd(eta_npg: Any, gamma: Any) -> Any:
    """Q-form step η_Q = η/(1−γ) of the NPG step η of Agarwal et al. / Cen et al. (softmax)."""
    return eta_npg / (1.0 - gamma)


def cen_step_to_pmd(eta_npg: Any, tau: Any, gamma: Any) -> Any:
    """η of :func:`pmd_step` equal to Cen et al.'s entropy-regularized NPG step η ∈ (0, (1−γ)/τ].

    Cen et al.: π' ∝ π^{1−ητ/(1−γ)} exp(η Q_τ/(1−γ)); here 1/(1+η'τ) = 1 − ητ/(1−γ), so
    η' = η/((1−γ) − ητ) (∞ at η = (1−γ)/τ: soft policy iteration).
    """
    denom = (1.0 - gamma) - eta_npg * tau
    if isinstance(denom, torch.Tensor):
        return torch.where(denom > 0, eta_npg / denom.clamp_min(1e-300), torch.inf)
    return eta_npg / denom if denom > 0 else math.inf


def regularized_values(
    P: Any, R: Any, gamma: Any, pi: Any, tau: Any = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Exact (V_τ^π [..., S], Q_τ^π [..., S, A]) with entropy bonus τ·H(π(·|s)) at every step.

    V_τ = E_π[Q_τ − τ log π], Q_τ = R + γ P V_τ (Cen et al. 2021); τ = 0 is plain V^π, Q^π.
    Terminal states must have zero rows in ``P`` (as ``TabularMDP.P_continue``).
    """
    P = _as_f64(P)
    pi = _as_f64(pi, P)
    R = _as_f64(R, P)
    tau_t = _as_f64(tau, P)
    if tau_t.ndim:
        tau_t = _batch_param(tau_t, pi, "tau")
    if bool((tau_t != 0).any()):
        logp = torch.where(pi > 0, torch.log(pi.clamp_min(1e-300)), torch.zeros_like(pi))
        R_eff = R - tau_t * logp
    else:
        R_eff = R
    V = policy_evaluation_torch(P, R_eff, gamma, pi)
    Q = q_from_v_torch(P, R, gamma, V)
    return V, Q


def _values_core(
    P: torch.Tensor,
    R: torch.Tensor,
    g: torch.Tensor,
    log_pi: torch.Tensor,
    tau: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(V_τ, Q_τ) of the policy exp(log_pi) by one batched linear solve (no input checks).

    ``g`` has the batch shape plus two trailing unit axes, ``tau`` too (or is None for τ = 0).
    """
    pi = log_pi.exp()
    r = R if tau is None else R - tau * torch.where(pi > 0, log_pi, torch.zeros_like(log_pi))
    P_pi = torch.einsum("...sa,...sat->...st", pi, P)
    eye = torch.eye(P.shape[-1], dtype=P.dtype, device=P.device)
    V = torch.linalg.solve(eye - g * P_pi, (pi * r).sum(-1).unsqueeze(-1)).squeeze(-1)
    Q = R + g * torch.einsum("...sat,...t->...sa", P, V)
    return V, Q


def policy_mirror_descent(
    P: Any,
    R: Any,
    gamma: Any,
    *,
    iters: int,
    eta: Any,
    tau: Any = 0.0,
    growth: Any = 1.0,
    log_pi0: Any | None = None,
    keep_policies: bool = False,
) -> dict[str, torch.Tensor]:
    """Exact policy mirror descent π_{k+1} = pmd_step(π_k, Q_τ^{π_k}, η_k, τ), batched over MDPs.

    ``P [..., S, A, S]`` (terminal rows zero), ``R [..., S, A]``, ``gamma`` float or tensor of
    the batch shape; the step sizes are η_k = η·growth^k (``growth = 1/γ``: Xiao 2022's
    geometric steps). Starts from the uniform policy unless ``log_pi0`` is given. Returns
    ``V [iters+1, ..., S]`` and ``Q [iters+1, ..., S, A]`` (τ-regularized values of every
    iterate π_0..π_iters), ``eta [iters, ...]``, the last ``log_pi`` and, when
    ``keep_policies``, every ``log_pis [iters+1, ..., S, A]``.
    """
    P = _as_f64(P)
    R = _as_f64(R, P)
    if P.ndim < 3 or P.shape[-1] != P.shape[-3] or R.shape[-2:] != P.shape[-3:-1]:
        raise InvalidInputError(
            f"P must be [..., S, A, S] and R [..., S, A], got {tuple(P.shape)}, {tuple(R.shape)}"
        )
    if int(iters) < 0:
        raise InvalidInputError(f"iters must be >= 0, got {iters}")
    batch = torch.broadcast_shapes(P.shape[:-3], R.shape[:-2])
    S, A = P.shape[-3], P.shape[-2]
    if log_pi0 is None:
        log_pi = torch.full((*batch, S, A), -math.log(A), dtype=torch.float64, device=P.device)
    else:
        log_pi = _as_f64(log_pi0, P).expand(*batch, S, A).clone()
    eta0 = _as_f64(eta, P)
    grow = _as_f64(growth, P)
    tau_t = _as_f64(tau, P)
    if (
        torch.isnan(eta0).any()
        or (eta0 <= 0).any()
        or not torch.isfinite(grow).all()
        or (grow <= 0).any()
    ):
        raise InvalidInputError("eta and growth must be positive (growth finite)")
    if not torch.isfinite(tau_t).all() or (tau_t < 0).any():
        raise InvalidInputError(f"tau must be a finite number >= 0, got {tau}")
    if (torch.isinf(eta0) & (tau_t == 0)).any():
        raise InvalidInputError("eta = inf needs tau > 0 (the soft-greedy step π ∝ exp(Q/τ))")
    g = _as_f64(gamma, P).expand(batch).reshape(*batch, 1, 1)
    tau_b = None if bool((tau_t == 0).all()) else _as_f64(tau_t.expand(batch)).reshape(*batch, 1, 1)
    tau_c = torch.zeros_like(g) if tau_b is None else tau_b
    eta_b, grow_b = (
        eta0.expand(batch).reshape(*batch, 1, 1),
        grow.expand(batch).reshape(*batch, 1, 1),
    )
    Vs, Qs, pis, etas = [], [], [], []
    V, Q = _values_core(P, R, g, log_pi, tau_b)
    Vs.append(V)
    Qs.append(Q)
    if keep_policies:
        pis.append(log_pi)
    coefs = _pmd_coefficients(eta_b, tau_c)
    constant = bool((grow == 1).all())
    for k in range(int(iters)):
        eta_k = eta_b if constant else eta_b * grow_b**k
        etas.append(eta_k.reshape(batch))
        if not constant:
            coefs = _pmd_coefficients(eta_k, tau_c)
        log_pi = _pmd_core(log_pi, Q, *coefs)
        V, Q = _values_core(P, R, g, log_pi, tau_b)
        Vs.append(V)
        Qs.append(Q)
        if keep_policies:
            pis.append(log_pi)
    no_eta = torch.zeros((0, *batch), dtype=torch.float64, device=P.device)
    out = {
        "V": torch.stack(Vs),
        "Q": torch.stack(Qs),
        "eta": torch.stack(etas) if etas else no_eta,
        "log_pi": log_pi,
    }
    if keep_policies:
        out["log_pis"] = torch.stack(pis)
    return out


def stack_mdps(mdps: list[Any], device: Any = "cpu") -> dict[str, torch.Tensor]:
    """Stack equal-(S, A) TabularMDPs into batched ``P`` (continuing), ``R``, ``gamma``, ``mu0``."""
    if not mdps:
        raise InvalidInputError("stack_mdps needs at least one MDP")
    shapes = {(m.S, m.A) for m in mdps}
    if len(shapes) != 1:
        raise InvalidInputError(f"all MDPs must share (S, A), got {sorted(shapes)}")
    return {
        "P": torch.as_tensor(np.stack([m.P_continue for m in mdps]), device=device),
        "R": torch.as_tensor(np.stack([m.R for m in mdps]), device=device),
        "gamma": torch.as_tensor([m.gamma for m in mdps], dtype=torch.float64, device=device),
        "mu0": torch.as_tensor(np.stack([m.mu0 for m in mdps]), device=device),
    }


# ---- the deep losses and their exact per-state minimizers ---------------------------------
def mdpo_on_policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor,
    advantages: torch.Tensor,
    kl: torch.Tensor,
    t_k: float,
) -> torch.Tensor:
    """On-policy MDPO loss −E[ratio·Â] + E[KL(π_θ ‖ π_k)(s)]/t_k, ratio = π_θ/π_k (no clipping).

    Tomar et al.'s on-policy objective, negated for minimization; ``kl`` is the per-state
    KL(π_θ(·|s) ‖ π_k(·|s)), t_k the mirror-descent step size (t_k = 1 − k/K in the paper).
    """
    ratio = torch.exp(log_prob - old_log_prob)
    return -(ratio * advantages).mean() + kl.mean() / t_k


def mdpo_on_policy_target(log_pi_k: Any, adv: Any, t_k: Any) -> torch.Tensor:
    """Per-state minimizer of the exact on-policy loss: π ∝ π_k exp(t_k Â) = pmd_step(η = t_k)."""
    return pmd_step(log_pi_k, adv, t_k)


def tsallis_log_ratio(log_ratio: torch.Tensor, q: float) -> torch.Tensor:
    """log_q of the ratio ρ = π_θ/π_k: (ρ^{q−1} − 1)/(q − 1), → log ρ as q → 1.

    Its mean under a ~ π_θ is the Tsallis relative entropy D_q(π_θ ‖ π_k) = (Σ π_θ^q π_k^{1−q} − 1)
    /(q − 1) (KL at q = 1).
    """
    if q == 1.0:
        return log_ratio
    return torch.expm1((q - 1.0) * log_ratio) / (q - 1.0)


def mdpo_off_policy_loss(
    log_prob: torch.Tensor,
    old_log_prob: torch.Tensor | None,
    q_values: torch.Tensor,
    c: Any,
    lam: Any,
    tsallis_q: float = 1.0,
) -> torch.Tensor:
    """Off-policy MDPO actor loss E[c log π_θ(a|s) + (λ − c) log π_k(a|s) − Q(s,a)], a ~ π_θ.

    Written as E[c·log_q(π_θ/π_k) + λ log π_k − Q] so that ``tsallis_q ≠ 1`` swaps the KL for a
    Tsallis divergence; with c = λ (and q = 1) it is SAC's actor loss E[λ log π_θ − Q] exactly
    (the old policy is not used). ``c``/``lam`` may be tensors (use the dtype of ``log_prob``).
    """
    if old_log_prob is None or (tsallis_q == 1.0 and _same(c, lam)):
        return (c * log_prob - q_values).mean()
    if tsallis_q == 1.0:
        return (c * log_prob + (lam - c) * old_log_prob - q_values).mean()
    div = tsallis_log_ratio(log_prob - old_log_prob, tsallis_q)
    return (c * div + lam * old_log_prob - q_values).mean()


def _same(a: Any, b: Any) -> bool:
    return float(a) == float(b)


def mdpo_off_policy_target(log_pi_k: Any, Q: Any, c: Any, lam: Any) -> torch.Tensor:
    """Per-state minimizer of the exact off-policy loss: pmd_step(log π_k, Q, η = 1/(c−λ), τ = λ).

    log π = (1 − λ/c) log π_k + Q/c + const; c = λ is SAC's π ∝ exp(Q/λ) (η = ∞).
    """
    c_t, lam_t = _as_f64(c), _as_f64(lam)
    if (c_t < lam_t).any() or (lam_t <= 0).any():
        raise InvalidInputError(f"need c >= λ > 0, got c={c}, λ={lam}")
    eta = torch.where(c_t > lam_t, 1.0 / (c_t - lam_t).clamp_min(1e-300), torch.inf)
    return pmd_step(log_pi_k, Q, eta, lam_t)


# =============================================================================================
# deep MDPO as stable-baselines3 subclasses
# =============================================================================================
from stable_baselines3 import PPO  # noqa: E402  (import after the tabular part on purpose)
from stable_baselines3.common.utils import explained_variance  # noqa: E402

from prl.common.sac import FastSAC  # noqa: E402
from prl.common.vec import (  # noqa: E402
    START_METHOD,
    VEC_ENV_HELP,
    EnvAccess,
    check_vec_env,
    env_apply,
    vec_env_class,
)


def linear_t_k(k: int, K: int) -> float:
    """t_k = 1 − k/K for k < K (Tomar et al.), held at its last value 1/K afterwards."""
    K = max(1, int(K))
    return max(1.0 - int(k) / K, 1.0 / K)


def _kl_per_state(
    new: torch.distributions.Distribution, old: torch.distributions.Distribution
) -> torch.Tensor:
    kl = torch.distributions.kl_divergence(new, old)
    return kl.sum(-1) if kl.ndim > 1 else kl


class MDPOOnPolicy(RunDirLoad, PPO):
    """On-policy MDPO: PPO's rollouts and GAE, but the policy takes ``sgd_steps`` full-batch Adam
    steps on −E[ratio·Â] + KL(π_θ ‖ π_k)/t_k (no clipping), t_k = 1 − k/K over
    ``anneal_timesteps``; the value function is fitted separately (its own optimizer, ``n_epochs``
    epochs of ``batch_size`` minibatches, PPO's settings). Box and Discrete actions, no gSDE.
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        sgd_steps: int = 10,
        anneal_timesteps: int = 1_000_000,
        **kwargs: Any,
    ) -> None:
        self.sgd_steps = int(sgd_steps)
        self.anneal_timesteps = int(anneal_timesteps)
        self.last_stats: dict[str, float] = {}
        if kwargs.get("use_sde"):
            raise ConfigError("MDPOOnPolicy does not support gSDE (use_sde=True)")
        kwargs.setdefault("clip_range", 0.2)  # unused by MDPO's loss (kept for SB3's bookkeeping)
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        pol = self.policy
        vf_modules = [pol.value_net, pol.mlp_extractor.value_net]
        if not getattr(pol, "share_features_extractor", True):
            vf_modules.append(pol.vf_features_extractor)
        vf_ids = {id(p) for m in vf_modules for p in m.parameters()}
        self._vf_params = [p for p in pol.parameters() if id(p) in vf_ids]
        self._pi_params = [p for p in pol.parameters() if id(p) not in vf_ids]
        lr = self.lr_schedule(1)
        kw = dict(pol.optimizer_kwargs)
        pol.optimizer = pol.optimizer_class(self._pi_params, lr=lr, **kw)
        self.vf_optimizer = pol.optimizer_class(self._vf_params, lr=lr, **kw)

    # the iteration k of the rollout just collected, and its step size
    def current_t_k(self) -> float:
        """t_k of the current iteration (k = completed updates, K = anneal_timesteps/batch)."""
        per_iter = self.n_steps * self.n_envs
        k = max(0, self.num_timesteps // per_iter - 1)
        return linear_t_k(k, self.anneal_timesteps // per_iter)

    def policy_loss(
        self,
        obs: torch.Tensor,
        actions: torch.Tensor,
        old_log_prob: torch.Tensor,
        advantages: torch.Tensor,
        old_dist: torch.distributions.Distribution,
        t_k: float,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The MDPO surrogate of the current policy on a batch (:func:`mdpo_on_policy_loss`)."""
        dist = self.policy.get_distribution(obs)
        log_prob = dist.log_prob(actions)
        kl = _kl_per_state(dist.distribution, old_dist)
        loss = mdpo_on_policy_loss(log_prob, old_log_prob, advantages, kl, t_k)
        if self.ent_coef:
            ent = dist.entropy()
            ent_loss = -(ent.mean() if ent is not None else (-log_prob).mean())
            loss = loss + self.ent_coef * ent_loss
        return loss, {"kl": kl.mean().detach(), "log_prob": log_prob.detach()}

    def train(self) -> None:
        """m full-batch mirror-descent steps on the policy, then the value function."""
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.policy.optimizer, self.vf_optimizer])
        foreach_adam(self.policy.optimizer, self.vf_optimizer)  # same numbers, fewer kernels
        t_k = self.current_t_k()
        full = next(self.rollout_buffer.get(batch_size=None))
        actions = full.actions
        discrete = isinstance(self.action_space, spaces.Discrete)
        if discrete:
            actions = actions.long().flatten()
        adv = full.advantages
        if self.normalize_advantage and len(adv) > 1:
            adv = (adv - adv.mean()) / (adv.std() + 1e-8)
        with torch.no_grad():
            old_dist = self.policy.get_distribution(full.observations).distribution
        losses = []
        for _ in range(self.sgd_steps):
            loss, _ = self.policy_loss(
                full.observations, actions, full.old_log_prob, adv, old_dist, t_k
            )
            self.policy.optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self._pi_params, self.max_grad_norm)
            self.policy.optimizer.step()
            losses.append(loss.item())
        with torch.no_grad():
            dist = self.policy.get_distribution(full.observations)
            kl_end = float(_kl_per_state(dist.distribution, old_dist).mean())
            log_ratio = dist.log_prob(actions) - full.old_log_prob
            approx_kl = float(torch.mean(torch.exp(log_ratio) - 1 - log_ratio))

        clip_vf = None
        if self.clip_range_vf is not None:
            clip_vf = self.clip_range_vf(self._current_progress_remaining)
        value_losses = []
        for _ in range(self.n_epochs):
            for mb in self.rollout_buffer.get(self.batch_size):
                values = self.policy.predict_values(mb.observations).flatten()
                if clip_vf is not None:
                    values = mb.old_values + torch.clamp(values - mb.old_values, -clip_vf, clip_vf)
                v_loss = F.mse_loss(mb.returns, values)
                self.vf_optimizer.zero_grad()
                v_loss.backward()
                torch.nn.utils.clip_grad_norm_(self._vf_params, self.max_grad_norm)
                self.vf_optimizer.step()
                value_losses.append(v_loss.item())
        self._n_updates += 1
        ev = explained_variance(
            self.rollout_buffer.values.flatten(), self.rollout_buffer.returns.flatten()
        )
        self.last_stats = {
            "t_k": t_k,
            "kl": kl_end,
            "approx_kl": approx_kl,
            "loss_policy": float(np.mean(losses)),
            "loss_value": float(np.mean(value_losses)) if value_losses else float("nan"),
            "explained_variance": float(ev),
        }
        for key, val in self.last_stats.items():
            self.logger.record(f"train/{key}", val)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        if hasattr(self.policy, "log_std"):
            self.logger.record("train/std", torch.exp(self.policy.log_std).mean().item())

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names, variables = super()._get_torch_save_params()
        return [*names, "vf_optimizer"], variables

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "vf_optimizer", "_vf_params", "_pi_params"]


class MDPOOffPolicy(FastSAC):
    """Off-policy MDPO: SAC with the actor loss E[c log π_θ + (λ − c) log π_k − min_i Q_i], the old
    actor π_k copied every ``copy_every`` env steps, c = 1/t_k (t_k = 1 − k/K over
    ``anneal_timesteps``) or a constant ``kl_coef``; λ = ``ent_coef`` (a fixed number). With
    c = λ the update is SAC's, step for step. ``tsallis_q ≠ 1`` uses a Tsallis divergence.
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        copy_every: int = 1000,
        anneal_timesteps: int = 1_000_000,
        kl_coef: float | None = None,
        tsallis_q: float = 1.0,
        **kwargs: Any,
    ) -> None:
        ent = kwargs.get("ent_coef", 0.2)
        if isinstance(ent, str):
            raise ConfigError(f"MDPOOffPolicy needs a fixed entropy weight λ, got ent_coef={ent!r}")
        kwargs["ent_coef"] = float(ent)
        if kl_coef is not None and float(kl_coef) < float(ent):
            raise ConfigError(f"kl_coef c must be >= λ = {ent}, got {kl_coef}")
        self.copy_every = int(copy_every)
        self.anneal_timesteps = int(anneal_timesteps)
        self.kl_coef = None if kl_coef is None else float(kl_coef)
        self.tsallis_q = float(tsallis_q)
        self.old_k = -1
        self.last_stats: dict[str, float] = {}
        super().__init__(policy, env, **kwargs)

    def _setup_model(self) -> None:
        super()._setup_model()
        self.old_actor = copy.deepcopy(self.actor)
        self.old_actor.optimizer = None
        self.old_actor.requires_grad_(False)

    def current_c(self) -> float:
        """c of the current phase k = num_timesteps // copy_every: 1/t_k or the fixed kl_coef."""
        if self.kl_coef is not None:
            return self.kl_coef
        k = self.num_timesteps // self.copy_every
        return 1.0 / linear_t_k(k, self.anneal_timesteps // self.copy_every)

    def _maybe_copy_old(self) -> None:
        k = self.num_timesteps // self.copy_every
        if k != self.old_k:
            self.old_actor.load_state_dict(self.actor.state_dict())
            self.old_k = k

    def actor_loss(
        self,
        obs: torch.Tensor,
        actions_pi: torch.Tensor,
        log_prob: torch.Tensor,
        gaussian_actions: torch.Tensor | None,
        c: torch.Tensor,
    ) -> torch.Tensor:
        """The MDPO actor loss on a batch whose actions a = actions_pi were drawn from π_θ."""
        q_pi = torch.cat(self.critic(obs, actions_pi), dim=1)
        min_q, _ = torch.min(q_pi, dim=1, keepdim=True)
        return self._mdpo_loss(obs, actions_pi, log_prob, gaussian_actions, min_q, c)

    def _mdpo_loss(
        self,
        obs: torch.Tensor,
        actions_pi: torch.Tensor,
        log_prob: torch.Tensor,
        gaussian_actions: torch.Tensor | None,
        min_q: torch.Tensor,
        c: torch.Tensor,
    ) -> torch.Tensor:
        old_lp = None
        if not (self.tsallis_q == 1.0 and float(c) == float(self.ent_coef_tensor)):
            with torch.no_grad():  # π_k is frozen: no graph through it
                mean, log_std, kw = self.old_actor.get_action_dist_params(obs)
            dist = self.old_actor.action_dist.proba_distribution(mean, log_std, **kw)
            old_lp = dist.log_prob(actions_pi, gaussian_actions).reshape(-1, 1)
        return mdpo_off_policy_loss(
            log_prob, old_lp, min_q, c, self.ent_coef_tensor, self.tsallis_q
        )

    # ---- hooks of the lab's SAC update (prl.common.sac.FastSAC.train) ------------------------
    def before_train(self) -> None:
        """Copy π_k at a new phase and fix c for this call."""
        self._maybe_copy_old()
        self._c_val = self.current_c()
        self._c = torch.tensor(self._c_val, device=self.device)

    def actor_objective(
        self,
        obs: torch.Tensor,
        actions_pi: torch.Tensor,
        log_prob: torch.Tensor,
        gaussian_actions: torch.Tensor | None,
        min_q: torch.Tensor,
        ent_coef: torch.Tensor,
    ) -> torch.Tensor:
        """E[c log π_θ + (λ − c) log π_k − min_i Q_i] (:func:`mdpo_off_policy_loss`)."""
        return self._mdpo_loss(obs, actions_pi, log_prob, gaussian_actions, min_q, self._c)

    def after_train(self, actor_loss: float, critic_loss: float) -> None:
        self.last_stats = {"c": self._c_val, "loss_actor": actor_loss, "loss_critic": critic_loss}
        self.logger.record("train/kl_coef", self._c_val)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "old_actor"]

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        names, variables = super()._get_torch_save_params()
        return [*names, "old_actor"], variables


# =============================================================================================
# prl Learners
# =============================================================================================
def _make_vec_env(
    env: str, env_kwargs: dict[str, Any], seed: int, n_envs: int = 1, vec_env: str = "dummy"
) -> Any:
    """SB3's ``make_vec_env`` (Monitor per copy, action spaces seeded seed + rank, first resets
    seeded seed + rank), each copy under :class:`prl.common.vec.EnvAccess`, in this process or in
    worker processes (``vec_env``)."""
    from stable_baselines3.common.env_util import make_vec_env

    from prl import envs

    return make_vec_env(
        partial(envs.make, env, **env_kwargs),
        n_envs=int(n_envs),
        seed=seed,
        vec_env_cls=vec_env_class(vec_env),
        vec_env_kwargs={"start_method": START_METHOD} if vec_env == "subproc" else None,
        wrapper_class=EnvAccess,
    )


def _action_space(env: str, env_kwargs: dict[str, Any]) -> Any:
    from prl import envs

    e = envs.make(env, **env_kwargs)
    try:
        return e.action_space
    finally:
        e.close()


def _net_arch(arch: Any) -> list[int]:
    return [int(h) for h in arch]


def _env_state(mon: Any) -> dict[str, Any] | None:
    """JSON-able mid-episode state of one Monitor/TimeLimit-wrapped env (None: not capturable).

    MuJoCo envs: ``mj_getState(mjSTATE_INTEGRATION)`` (qpos, qvel, warm start, time, ...) plus
    the reset generator; envs with ``get_state()``/``set_state()`` use their own snapshot.
    Runs where the env lives (:func:`prl.common.vec.env_apply`).
    """
    st: dict[str, Any] = {"rewards": [float(r) for r in mon.rewards]}
    st["rewards_dtype"] = str(np.asarray(mon.rewards).dtype)  # summed at the episode's end
    st["needs_reset"] = bool(mon.needs_reset)
    e, elapsed = mon.env, []
    while hasattr(e, "env"):
        elapsed.append(getattr(e, "_elapsed_steps", None))
        e = e.env
    st["elapsed"] = elapsed
    if hasattr(e, "get_state") and hasattr(e, "set_state"):
        st["env"] = e.get_state()
    elif hasattr(e, "data") and hasattr(e, "model") and hasattr(e, "np_random"):
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        buf = np.empty(mujoco.mj_stateSize(e.model, spec))
        mujoco.mj_getState(e.model, e.data, buf, spec)
        st["mujoco"] = buf.tolist()
        st["rng"] = json.loads(json.dumps(e.np_random.bit_generator.state, default=int))
    else:
        return None
    return st


def _set_env_state(mon: Any, st: dict[str, Any]) -> None:
    """Restore what :func:`_env_state` captured (where the env lives)."""
    mon.rewards = list(np.asarray(st["rewards"], dtype=st["rewards_dtype"]))
    mon.needs_reset = bool(st["needs_reset"])
    e = mon.env
    for el in st["elapsed"]:
        if el is not None:
            e._elapsed_steps = int(el)
        if hasattr(e, "_has_reset"):  # OrderEnforcing: the episode is under way
            e._has_reset = True
        e = e.env
    if "env" in st:
        e.set_state(st["env"])
    else:
        import mujoco

        spec = mujoco.mjtState.mjSTATE_INTEGRATION
        mujoco.mj_setState(e.model, e.data, np.asarray(st["mujoco"]), spec)
        mujoco.mj_forward(e.model, e.data)
        e.np_random.bit_generator.state = st["rng"]


def _env_states(venv: Any) -> list[dict[str, Any]] | None:
    """:func:`_env_state` of every copy of ``venv`` (None if any is not capturable)."""
    out = env_apply(venv, _env_state)
    return None if any(st is None for st in out) else out


def _set_env_states(venv: Any, states: list[dict[str, Any]]) -> None:
    """Restore :func:`_env_states`."""
    for i, st in enumerate(states):
        env_apply(venv, _set_env_state, st, indices=i)


def _monitor_episodes(mon: Any) -> tuple[list[float], list[int]]:
    """The returns and lengths of the episodes a copy's Monitor saw finish."""
    return [float(r) for r in mon.get_episode_rewards()], [
        int(n) for n in mon.get_episode_lengths()
    ]


class _MDPOLearner(SB3Learner):
    """MDPO's plumbing on :class:`prl.common.sb3.SB3Learner`: the SB3 model advances ``chunk``
    env steps per ``step()``.

    Metrics rows: ``return`` (mean undiscounted return of the last 10 finished training
    episodes, NaN before the first), ``episodes`` (finished so far) and the algorithm's own
    training statistics (t_k / c, KL, losses).
    """

    default_steps = 1_000_000

    def _setup_monitor(self, venv: Any) -> None:
        self._venv = venv  # each copy: EnvAccess(Monitor(env)) from make_vec_env
        self._episode_offset = 0  # episodes finished before a resume
        self._returns: list[float] = []
        self._prefix = [0] * venv.num_envs  # steps of each copy's episode under way at a resume

    def _finished(self) -> list[float]:
        """Returns of the episodes finished since the start (or resume), in the order they
        finished (copies in index order within a vector step)."""
        ends = []
        for i, (rets, lens) in enumerate(env_apply(self._venv, _monitor_episodes)):
            t = -self._prefix[i]
            for r, n in zip(rets, lens):
                t += n
                ends.append((t, i, r))
        return [r for _, _, r in sorted(ends)]

    def _row(self) -> dict[str, float]:
        rets = self._finished()
        recent = (self._returns + rets)[-10:]
        row: dict[str, float] = {
            "return": float(np.mean(recent)) if recent else float("nan"),
            "episodes": float(self._episode_offset + len(rets)),
        }
        row.update(getattr(self.model, "last_stats", {}) or {})
        return row

    def step(self) -> dict[str, float]:
        if getattr(self.config, "anneal_steps", 0) is None and hasattr(
            self.model, "anneal_timesteps"
        ):  # anneal t_k over the run's own budget (prl run --steps) unless fixed in the config
            self.model.anneal_timesteps = int(self.total_steps or 1_000_000)
        self.model.learn(self.config.chunk, reset_num_timesteps=False, progress_bar=False)
        self.steps_done = int(self.model.num_timesteps)
        return self._row()

    def state_dict(self) -> dict[str, Any]:
        m = self.model
        mid_rollout = m._last_obs is not None
        rets = self._finished()
        return {
            **super().state_dict(),  # SB3 tensors and counters, global generators
            "episodes": self._episode_offset + len(rets),
            "recent_returns": (self._returns + rets)[-10:],
            "old_k": int(getattr(m, "old_k", -1)),
            # mid-rollout state for an exact resume: env states, last observation
            "env_states": json.dumps(_env_states(m.env) if mid_rollout else None),
            **self.rollout_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._episode_offset = int(state["episodes"])
        self._returns = [float(r) for r in state["recent_returns"]]
        if hasattr(self.model, "old_k"):
            self.model.old_k = int(state["old_k"])
        self.steps_done = int(state["steps_done"])
        envs = json.loads(state.get("env_states", "null"))
        if envs is not None:  # else SB3 resets the envs at the next learn()
            _set_env_states(self.model.env, envs)
            self._prefix = [len(st["rewards"]) for st in envs]
            self.load_rollout_state(state)


# ---- on-policy ----------------------------------------------------------------------------
@dataclass
class MDPOOnConfig:
    """On-policy MDPO (or the PPO baseline with the same settings)."""

    variant: Literal["mdpo", "ppo"] = option("mdpo", "mdpo, or ppo: SB3 PPO with the same settings")
    sgd_steps: int = option(10, "m: full-batch policy gradient steps per iteration (MDPO)")
    anneal_steps: int | None = option(
        None, "env steps K·batch over which t_k = 1 − k/K anneals (None: the run's --steps)"
    )
    n_steps: int = option(2048, "env steps per copy per rollout (the batch: n_envs·n_steps)")
    n_envs: int = option(1, "environment copies stepped together (vectorized collection)")
    vec_env: Literal["dummy", "subproc"] = option("dummy", VEC_ENV_HELP)
    batch_size: int = option(64, "value-function minibatch (PPO: policy and value minibatch)")
    n_epochs: int = option(10, "value-function epochs per iteration (PPO: all epochs)")
    learning_rate: float = option(3e-4, "Adam step size (policy and value)")
    gamma: float = option(0.99, "discount")
    gae_lambda: float = option(0.95, "GAE λ")
    clip_range: float = option(0.2, "PPO clip range (PPO variant only)")
    ent_coef: float = option(0.0, "entropy bonus weight")
    max_grad_norm: float = option(0.5, "gradient-norm clip")
    net_arch: tuple[int, ...] = option((64, 64), "hidden sizes of the policy and value MLPs")
    chunk: int = option(2048, "env steps per Learner.step() (a multiple of n_envs·n_steps)")

    def validate(self) -> None:
        require(self.variant in ("mdpo", "ppo"), f"variant must be mdpo or ppo, got {self.variant}")
        require(self.n_envs >= 1, f"n_envs must be >= 1, got {self.n_envs}")
        check_vec_env(self.vec_env)
        require(self.anneal_steps is None or self.anneal_steps > 0, "anneal_steps must be > 0")
        for name in ("sgd_steps", "n_steps", "batch_size", "n_epochs", "chunk"):
            require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        require(self.batch_size > 1, f"batch_size must be > 1, got {self.batch_size}")
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        require(self.clip_range > 0, f"clip_range must be positive, got {self.clip_range}")
        require(self.max_grad_norm > 0, f"max_grad_norm must be positive, got {self.max_grad_norm}")
        require(all(h > 0 for h in self.net_arch), f"net_arch must be > 0, got {self.net_arch}")


@register_algo(
    "mdpo_on",
    description="on-policy MDPO (SB3 PPO subclass: KL(π‖π_k)/t_k instead of clipping); "
    "variant=ppo for the PPO baseline",
    envs=("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "any Box/Discrete-action env"),
)
class MDPOOnLearner(_MDPOLearner):
    """On-policy MDPO on a gymnasium env; ``step()`` learns ``chunk`` env steps."""

    Config = MDPOOnConfig
    smoke = Smoke(  # tests/test_mdpo.py ON_TINY
        env="Hopper-v5",
        steps=256,
        config={
            "n_steps": 128,
            "batch_size": 64,
            "n_epochs": 2,
            "sgd_steps": 3,
            "chunk": 128,
            "net_arch": [16, 16],
        },
        source="tests/test_mdpo.py::test_same_seed_same_numbers",
        family="mdpo (on-policy)",
    )
    cli_default_steps = 20_480

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        from gymnasium import spaces

        space = _action_space(env, env_kwargs)
        if not isinstance(space, (spaces.Box, spaces.Discrete)):
            raise ConfigError(f"mdpo_on needs a Box or Discrete action space, {env} has {space}")

    def __init__(
        self, config: MDPOOnConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        cfg = config
        venv = _make_vec_env(env, env_kwargs, seed, cfg.n_envs, cfg.vec_env)
        common = dict(
            n_steps=cfg.n_steps,
            batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs,
            learning_rate=cfg.learning_rate,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            ent_coef=cfg.ent_coef,
            max_grad_norm=cfg.max_grad_norm,
            clip_range=cfg.clip_range,
            policy_kwargs={"net_arch": _net_arch(cfg.net_arch)},
            seed=seed,
            device=str(device),
            verbose=0,
        )
        if cfg.variant == "mdpo":
            self.model = MDPOOnPolicy(
                "MlpPolicy",
                venv,
                sgd_steps=cfg.sgd_steps,
                anneal_timesteps=cfg.anneal_steps or 1_000_000,
                **common,
            )
        else:
            self.model = PPO("MlpPolicy", venv, **common)
        self._setup_monitor(venv)


# ---- off-policy ---------------------------------------------------------------------------
@dataclass
class MDPOOffConfig:
    """Off-policy MDPO (or the SAC baseline with the same settings)."""

    variant: Literal["mdpo", "sac"] = option(
        "mdpo", "mdpo, or sac: SB3 SAC (the lab's identical, leaner update) with the same settings"
    )
    ent_coef: float = option(0.2, "λ: entropy weight (SAC's fixed ent_coef)")
    lam: float | None = alias("ent_coef", "the paper's name λ of ent_coef")
    kl_coef: float | None = option(None, "fixed c (>= λ); None: c = 1/t_k with t_k = 1 − k/K")
    copy_every: int = option(1000, "env steps between copies of the old policy π_k")
    anneal_steps: int | None = option(
        None, "env steps over which t_k = 1 − k/K anneals (None: the run's --steps)"
    )
    tsallis_q: float = option(1.0, "Tsallis entropic index of the divergence (1 = KL)")
    learning_rate: float = option(3e-4, "Adam step size (actor and critics)")
    buffer_size: int = option(1_000_000, "replay buffer size")
    learning_starts: int | None = option(
        None, "uniform-random env steps before training; None: 1% of the run (10k of 1M)"
    )
    batch_size: int = option(256, "minibatch size")
    tau: float = option(0.005, "target-network Polyak coefficient")
    gamma: float = option(0.99, "discount")
    train_freq: int = option(1, "env steps between updates")
    gradient_steps: int = option(1, "gradient steps per update")
    net_arch: tuple[int, ...] = option((256, 256), "hidden sizes of the actor and critic MLPs")
    chunk: int = option(1000, "env steps per Learner.step()")
    checkpoint_buffer: bool = option(
        True,
        "store the replay buffer's filled part in checkpoints (exact resume; ~112 MB for 1M "
        "Hopper steps); False: a resumed run refills batch_size steps with random actions",
    )

    def __post_init__(self) -> None:
        resolve_aliases(self)  # values given under the old names

    def validate(self) -> None:
        require(self.variant in ("mdpo", "sac"), f"variant must be mdpo or sac, got {self.variant}")
        require(self.ent_coef > 0, f"ent_coef must be positive, got {self.ent_coef}")
        require(
            self.kl_coef is None or self.kl_coef >= self.ent_coef,
            f"kl_coef must be >= ent_coef λ = {self.ent_coef}, got {self.kl_coef}",
        )
        require(self.tsallis_q > 0, f"tsallis_q must be positive, got {self.tsallis_q}")
        require(self.anneal_steps is None or self.anneal_steps > 0, "anneal_steps must be > 0")
        for name in (
            "copy_every",
            "buffer_size",
            "batch_size",
            "train_freq",
            "gradient_steps",
            "chunk",
        ):
            require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        require(
            self.learning_starts is None or self.learning_starts >= 0,
            "learning_starts must be >= 0",
        )
        require(self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}")
        require(0 < self.tau <= 1, f"tau must be in (0, 1], got {self.tau}")
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(all(h > 0 for h in self.net_arch), f"net_arch must be > 0, got {self.net_arch}")


@register_algo(
    "mdpo_off",
    description="off-policy MDPO (SB3 SAC subclass: KL to a periodically copied old actor); "
    "variant=sac for the SAC baseline",
    envs=("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "any Box-action env"),
)
class MDPOOffLearner(_MDPOLearner):
    """Off-policy MDPO on a continuous-action gymnasium env; ``step()`` learns ``chunk`` steps.

    Checkpoints hold weights, optimizers, the old actor, the filled part of the replay buffer
    and the warm-up action sampler's generator, so a resumed run continues exactly. With
    ``checkpoint_buffer=False`` the buffer is left out: the first ``batch_size`` steps after a
    resume refill it (uniform random actions, SB3's warm-up), then training continues.
    """

    Config = MDPOOffConfig
    smoke = Smoke(  # tests/test_mdpo.py OFF_TINY
        env="Hopper-v5",
        steps=256,
        config={
            "learning_starts": 64,
            "batch_size": 32,
            "buffer_size": 1000,
            "chunk": 64,
            "net_arch": [16, 16],
            "copy_every": 50,
        },
        source="tests/test_mdpo.py::test_same_seed_same_numbers",
        family="mdpo (off-policy)",
    )
    cli_default_steps = 2000

    def step(self) -> dict[str, float]:
        if not getattr(self, "_starts_set", False):
            self._starts_set = True  # the run's budget is known now: size the random warm-up
            starts = self.config.learning_starts
            if starts is None:  # 1% of the run, at least one minibatch
                starts = max(self.config.batch_size, self.phase_steps(None, 0.01))
            self.model.learning_starts = max(self.model.learning_starts, starts)
        return super().step()

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        from gymnasium import spaces

        space = _action_space(env, env_kwargs)
        if not isinstance(space, spaces.Box):
            raise ConfigError(f"mdpo_off needs a Box (continuous) action space, {env} has {space}")

    def __init__(
        self, config: MDPOOffConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        cfg = config
        venv = _make_vec_env(env, env_kwargs, seed)
        common = dict(
            learning_rate=cfg.learning_rate,
            buffer_size=cfg.buffer_size,
            learning_starts=cfg.learning_starts or 0,  # None: set by step() from the budget
            batch_size=cfg.batch_size,
            tau=cfg.tau,
            gamma=cfg.gamma,
            train_freq=cfg.train_freq,
            gradient_steps=cfg.gradient_steps,
            ent_coef=cfg.ent_coef,
            policy_kwargs={"net_arch": _net_arch(cfg.net_arch)},
            seed=seed,
            device=str(device),
            verbose=0,
        )
        if cfg.variant == "mdpo":
            self.model = MDPOOffPolicy(
                "MlpPolicy",
                venv,
                copy_every=cfg.copy_every,
                anneal_timesteps=cfg.anneal_steps or 1_000_000,
                kl_coef=cfg.kl_coef,
                tsallis_q=cfg.tsallis_q,
                **common,
            )
        else:
            self.model = FastSAC("MlpPolicy", venv, **common)  # SB3 SAC, leaner update
        self._setup_monitor(venv)

    _BUFFER_FIELDS = (
        "observations",
        "next_observations",
        "actions",
        "rewards",
        "dones",
        "timeouts",
    )

    def state_dict(self) -> dict[str, Any]:

        state = super().state_dict()
        space_rng = self.model.action_space.np_random.bit_generator.state
        state["action_space_rng"] = json.dumps(space_rng)
        if self.config.checkpoint_buffer:
            rb = self.model.replay_buffer
            n = rb.buffer_size if rb.full else rb.pos
            buf: dict[str, Any] = {"pos": int(rb.pos), "full": bool(rb.full)}
            for f in self._BUFFER_FIELDS:
                if getattr(rb, f, None) is not None:
                    buf[f] = torch.from_numpy(np.ascontiguousarray(getattr(rb, f)[:n]))
            state["replay_buffer"] = buf
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:

        super().load_state_dict(state)
        if "action_space_rng" in state:
            self.model.action_space.np_random.bit_generator.state = json.loads(
                state["action_space_rng"]
            )
        buf = state.get("replay_buffer")
        if buf is None:  # no buffer stored: refill a batch before the next update
            self.model.learning_starts = max(
                self.phase_steps(self.config.learning_starts, 0.01),
                self.model.num_timesteps + self.config.batch_size,
            )
            return
        rb = self.model.replay_buffer
        for f in self._BUFFER_FIELDS:
            if f not in buf:
                continue
            data, target = buf[f].numpy(), getattr(rb, f)
            rows_ok = (
                data.shape[0] == target.shape[0] if buf["full"] else data.shape[0] <= len(target)
            )
            if not rows_ok or data.shape[1:] != target.shape[1:]:
                raise ConfigError(
                    f"checkpoint replay buffer {f} has shape {tuple(data.shape)}, which does not "
                    f"fit this run's buffer {tuple(target.shape)} (buffer_size or env changed?)"
                )
            target[: data.shape[0]] = data
        rb.pos, rb.full = int(buf["pos"]), bool(buf["full"])


__all__ = [
    "MDPOOffLearner",
    "MDPOOffPolicy",
    "MDPOOnLearner",
    "MDPOOnPolicy",
    "cen_step_to_pmd",
    "linear_t_k",
    "mdpo_off_policy_loss",
    "mdpo_off_policy_target",
    "mdpo_on_policy_loss",
    "mdpo_on_policy_target",
    "npg_step_to_pmd",
    "pmd_step",
    "policy_mirror_descent",
    "regularized_values",
    "stack_mdps",
    "tsallis_log_ratio",
]
