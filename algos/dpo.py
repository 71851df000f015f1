"""Bradley–Terry baselines on bandits: RLHF (BT reward + KL-regularised best response), DPO, IPO.

A small library of **losses** and **solvers** for pairwise preferences over finite outcomes
with log-linear policies π_w(y) ∝ μ(y) exp(φ(y)ᵀw) (tabular = one-hot features φ = I):

- data: :class:`PairData` (pairs ``first``/``second`` with labels P̂(first ≻ second) and
  weights, batched over games ``[G, N]``), from the population (:func:`population_pairs`: every
  pair weighted ρ(y)ρ(y'), labels P) or from an oracle (:func:`sample_pairs`, queries counted;
  :func:`sample_pair_counts` / :func:`bandit_pair_counts` draw n comparisons as counts per
  pair, optionally with flipped labels);
- losses on the margin h = log π(y)/μ(y) − log π(y')/μ(y') = (φ(y) − φ(y'))ᵀw, registered in
  ``LOSSES`` (name → ``loss(h, label, beta)``): ``bt`` (logistic), ``dpo`` (Rafailov et al.:
  −log σ(βh) on soft labels), ``ipo`` (Azar et al.: (h − 1/(2β))² on the winner–loser margin,
  averaged over the label), ``rdpo`` (Chowdhury et al.: the flip-corrected DPO loss);
- solvers: :func:`newton_fit` (batched damped Newton on any of these margin losses, exact for
  the convex ones), :func:`fit_bt_reward`, :func:`rlhf_policy`, :func:`dpo_policy`,
  :func:`ipo_policy`, :func:`rdpo_policy`, :func:`log_linear_policy`; :func:`hypo_policy`
  (DPO + online KL, Song et al.) via the general :func:`newton_minimize`;
- online methods: :func:`xpo_policy` (XPO's exact argmin on a two-response bandit; α = 0 is
  online DPO) and the loop :func:`two_arm_online`; :func:`iterative_dpo` (with APO's
  extrapolation, He et al.).

In the tabular population case DPO and RLHF coincide (π ∝ μ exp(r_BT/β)) and IPO returns the
KL-regularised best response to the data distribution, π ∝ μ exp(P(· ≻ ρ)/β); on intransitive
games all three stay exploitable while the Nash methods of :mod:`algos.nash` do not.
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from prl.algos.spo import as_games, as_policy
from prl.common.losses import (
    TRL_LOSS_TYPES,
    _check_flip_rate,
    bt_loss,
    dpo_loss,
    ipo_loss,
    rdpo_loss,
)
from prl.config import option, require
from prl.errors import ConfigError, InvalidInputError
from prl.run import Learner, register_algo
from prl.smoke import Smoke

Tensor = torch.Tensor

__all__ = [
    "LOSSES",
    "PairData",
    "bandit_pair_counts",
    "bt_loss",
    "dpo_loss",
    "dpo_policy",
    "fit_bt_reward",
    "hypo_policy",
    "ipo_loss",
    "ipo_policy",
    "iterative_dpo",
    "log_linear_policy",
    "newton_fit",
    "newton_minimize",
    "population_pairs",
    "rdpo_loss",
    "rdpo_policy",
    "register_loss",
    "rlhf_policy",
    "sample_pair_counts",
    "sample_pairs",
    "two_arm_online",
    "xpo_policy",
]


# ---- losses on the margin h = log π(y)/μ(y) − log π(y')/μ(y'): :mod:`prl.common.losses` ----------
LOSSES: dict[str, Callable[[Tensor, Tensor, float], Tensor]] = {
    "bt": bt_loss,
    "dpo": dpo_loss,
    "ipo": ipo_loss,
    "rdpo": rdpo_loss,
    "sigmoid": dpo_loss,  # TRL's loss_type name (prl.common.losses.trl_loss: the others, ε)
}


def register_loss(name: str, fn: Callable[[Tensor, Tensor, float], Tensor]) -> None:
    """Add a margin loss ``fn(h, label, beta) -> per-pair loss`` (e.g. rDPO) to ``LOSSES``."""
    if name in LOSSES:
        raise InvalidInputError(f"loss {name!r} is already registered")
    LOSSES[name] = fn


def _loss(name: str) -> Callable[[Tensor, Tensor, float], Tensor]:
    if name not in LOSSES:
        from prl.errors import UnknownNameError

        raise UnknownNameError(f"unknown loss {name!r} (known: {', '.join(LOSSES)})")
    return LOSSES[name]


def _check_beta(beta: Any) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise InvalidInputError(f"beta must be a positive number, got {beta!r}") from None
    if not math.isfinite(b) or b <= 0:
        raise InvalidInputError(f"beta (the KL coefficient) must be finite and > 0, got {beta!r}")
    return b


# ---------------------------------------------------------------------------------------------
# data
# ---------------------------------------------------------------------------------------------
@dataclass
class PairData:
    """Comparisons ``first[g, i]`` vs ``second[g, i]`` with label P̂(first ≻ second) and weight.

    All fields are ``[G, N]`` tensors (long, long, float64, float64) on one device.
    """

    first: Tensor
    second: Tensor
    label: Tensor
    weight: Tensor

    def __post_init__(self) -> None:
        shapes = {tuple(x.shape) for x in (self.first, self.second, self.label, self.weight)}
        if len(shapes) != 1 or len(next(iter(shapes))) != 2:
            raise InvalidInputError(f"PairData fields must share one shape [G, N], got {shapes}")
        lab = self.label
        if not bool(torch.isfinite(lab).all()) or bool((lab < 0).any()) or bool((lab > 1).any()):
            raise InvalidInputError("PairData labels must lie in [0, 1]")
        if bool((self.weight < 0).any()) or not bool(torch.isfinite(self.weight).all()):
            raise InvalidInputError("PairData weights must be finite and ≥ 0")

    @property
    def games(self) -> int:
        return int(self.first.shape[0])

    def cat(self, other: PairData) -> PairData:
        """Both data sets together (pairs appended)."""
        return PairData(
            torch.cat([self.first, other.first], 1),
            torch.cat([self.second, other.second], 1),
            torch.cat([self.label, other.label], 1),
            torch.cat([self.weight, other.weight], 1),
        )


def population_pairs(P: Any, rho: Any = None) -> PairData:
    """Every ordered pair (y, y'), y ≠ y', with weight ρ(y)ρ(y') and soft label P[y, y']."""
    Pg = as_games(P)
    G, n, dev = Pg.shape[0], Pg.shape[-1], Pg.device
    r = (
        torch.full((G, n), 1.0 / n, dtype=torch.float64, device=dev)
        if rho is None
        else as_policy(rho, n, dev, "rho").expand(G, n)
    )
    i, j = torch.meshgrid(torch.arange(n, device=dev), torch.arange(n, device=dev), indexing="ij")
    off = i != j
    i, j = i[off], j[off]
    first = i.expand(G, -1).contiguous()
    second = j.expand(G, -1).contiguous()
    return PairData(first, second, Pg[:, i, j], r[:, i] * r[:, j])


def sample_pairs(P: Any, rho: Any, n_pairs: int, generator: torch.Generator) -> PairData:
    """``n_pairs`` pairs y, y' ~ ρ per game with hard labels ~ Bernoulli(P[y, y']) (queries)."""
    Pg = as_games(P)
    G, n, dev = Pg.shape[0], Pg.shape[-1], Pg.device
    if isinstance(n_pairs, bool) or not isinstance(n_pairs, (int, np.integer)) or n_pairs < 1:
        raise InvalidInputError(f"n_pairs must be a positive integer, got {n_pairs!r}")
    r = (
        torch.full((G, n), 1.0 / n, dtype=torch.float64, device=dev)
        if rho is None
        else as_policy(rho, n, dev, "rho").expand(G, n)
    )
    idx = torch.multinomial(r, 2 * n_pairs, replacement=True, generator=generator)
    a, b = idx[:, :n_pairs], idx[:, n_pairs:]
    p = Pg[torch.arange(G, device=dev)[:, None], a, b]
    u = torch.rand(p.shape, generator=generator, dtype=torch.float64, device=dev)
    lab = (u < p).to(torch.float64)
    return PairData(a, b, lab, torch.full_like(lab, 1.0 / n_pairs))


# ---------------------------------------------------------------------------------------------
# log-linear policies and the batched Newton solver
# ---------------------------------------------------------------------------------------------
def _features(features: Any, G: int, n: int, device: torch.device) -> Tensor:
    """φ as ``[G, n, d]`` (None = one-hot, the tabular case)."""
    if features is None:
        return torch.eye(n, dtype=torch.float64, device=device).expand(G, n, n)
    phi = torch.as_tensor(features, dtype=torch.float64, device=device)
    if phi.ndim == 2:
        phi = phi.expand(G, *phi.shape)
    if phi.ndim != 3 or phi.shape[0] != G or phi.shape[1] != n:
        raise InvalidInputError(
            f"features must be [n, d] or [G, n, d] with n={n}, got {tuple(phi.shape)}"
        )
    if not bool(torch.isfinite(phi).all()):
        raise InvalidInputError("features contain NaN or inf")
    return phi


def log_linear_policy(
    w: Tensor, features: Any = None, mu: Any = None, scale: float = 1.0
) -> Tensor:
    """π(y) ∝ μ(y) exp(scale · φ(y)ᵀw) over the last outcome axis; ``w [G, d]``."""
    G = w.shape[0]
    n = w.shape[1] if features is None else torch.as_tensor(features).shape[-2]
    phi = _features(features, G, n, w.device)
    logits = scale * (phi @ w.unsqueeze(-1)).squeeze(-1)
    if mu is not None:
        logits = logits + torch.log(as_policy(mu, n, w.device, "mu"))
    return torch.softmax(logits, -1)


def newton_fit(
    data: PairData,
    loss: str | Callable[[Tensor, Tensor, float], Tensor],
    beta: float = 1.0,
    features: Any = None,
    n: int | None = None,
    l2: float = 0.0,
    tol: float = 1e-26,
    max_iter: int = 100,
) -> Tensor:
    """argmin_w Σ_i weight_i · loss((φ(first_i) − φ(second_i))ᵀw, label_i, β) + ½ l2 ‖w‖², batched.

    Damped Newton with a backtracking line search on each game; derivatives of the elementwise
    margin loss by autograd, so any registered loss works (exact for convex ones). Directions
    the data never constrain (e.g. a constant shift of tabular logits) are left at 0.
    """
    fn = _loss(loss) if isinstance(loss, str) else loss
    G = data.games
    dev = data.first.device
    if n is None:
        n = (
            int(max(int(data.first.max()), int(data.second.max())) + 1)
            if features is None
            else int(torch.as_tensor(features).shape[-2])
        )
    phi = _features(features, G, n, dev)
    d = phi.shape[-1]
    gi = torch.arange(G, device=dev)[:, None]
    dphi = phi[gi, data.first] - phi[gi, data.second]  # [G, N, d]
    lab, wt = data.label, data.weight

    def objective(w: Tensor) -> Tensor:
        h = (dphi @ w.unsqueeze(-1)).squeeze(-1)
        return (wt * fn(h, lab, beta)).sum(-1) + 0.5 * l2 * (w * w).sum(-1)

    def derivatives(w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        h = (dphi @ w.unsqueeze(-1)).squeeze(-1).detach().requires_grad_(True)
        ell = fn(h, lab, beta)
        (d1,) = torch.autograd.grad(ell.sum(), h, create_graph=True)
        (d2,) = torch.autograd.grad(d1.sum(), h, allow_unused=True)
        d2 = torch.zeros_like(h) if d2 is None else d2
        d1 = d1.detach()
        grad = ((wt * d1).unsqueeze(-1) * dphi).sum(1) + l2 * w
        H = torch.einsum("gi,gia,gib->gab", wt * d2, dphi, dphi)
        H = H + l2 * torch.eye(d, dtype=H.dtype, device=dev)
        return (wt * ell.detach()).sum(-1) + 0.5 * l2 * (w * w).sum(-1), grad, H

    w = torch.zeros(G, d, dtype=torch.float64, device=dev)
    active = torch.ones(G, dtype=torch.bool, device=dev)
    eye = torch.eye(d, dtype=torch.float64, device=dev)
    for _ in range(max_iter):
        f0, grad, H = derivatives(w)
        ridge = 1e-12 * (1.0 + H.diagonal(dim1=-2, dim2=-1).abs().amax(-1))
        step = torch.linalg.solve(H + ridge[:, None, None] * eye, grad.unsqueeze(-1)).squeeze(-1)
        dec = (grad * step).sum(-1)  # Newton decrement²
        active = active & (dec > tol * torch.clamp(f0.abs(), min=1.0))
        if not bool(active.any()):
            break
        t = torch.ones(G, dtype=torch.float64, device=dev)
        # near the optimum a full Newton step is always right, while the Armijo test drowns in
        # the rounding of f: accept it there without a line search
        small = dec <= 1e-12 * torch.clamp(f0.abs(), min=1.0)
        done = ~active | small
        for _ls in range(40):
            f1 = objective(w - t[:, None] * step)
            ok = f1 <= f0 - 1e-4 * t * dec
            done = done | ok
            if bool(done.all()):
                break
            t = torch.where(done, t, 0.5 * t)
        active = active & done  # no decrease found: at the rounding floor
        w = torch.where(active[:, None], w - t[:, None] * step, w)
        active = active & ~small  # one full step in the quadratic regime finishes
        if not bool(active.any()):
            break
    else:
        warnings.warn(
            f"newton_fit stopped after {max_iter} iterations (separable data? add l2)",
            RuntimeWarning,
            stacklevel=2,
        )
    return w


def fit_bt_reward(
    data: PairData, features: Any = None, n: int | None = None, l2: float = 0.0
) -> Tensor:
    """Maximum-likelihood Bradley–Terry reward weights w (r(y) = φ(y)ᵀw), batched ``[G, d]``."""
    return newton_fit(data, "bt", 1.0, features, n, l2)


def rlhf_policy(
    data: PairData,
    beta: float,
    mu: Any = None,
    features: Any = None,
    n: int | None = None,
    l2: float = 0.0,
) -> Tensor:
    """RLHF: fit a BT reward r, then the KL-regularised best response π ∝ μ exp(r/β)."""
    b = _check_beta(beta)
    w = fit_bt_reward(data, features, n, l2)
    return log_linear_policy(w, features, mu, scale=1.0 / b)


def dpo_policy(
    data: PairData,
    beta: float,
    mu: Any = None,
    features: Any = None,
    n: int | None = None,
    l2: float = 0.0,
) -> Tensor:
    """DPO: π_w ∝ μ exp(φᵀw) with w minimising the DPO loss of the margins (φ(y)−φ(y'))ᵀw.

    ``l2`` is a ridge on the implied reward βw (½·l2‖βw‖²), in the units of
    :func:`rlhf_policy`'s, so DPO = RLHF for every l2 (the same problem in w_r = βw).
    """
    b = _check_beta(beta)
    w = newton_fit(data, "dpo", b, features, n, l2 * b * b)
    return log_linear_policy(w, features, mu)


def ipo_policy(
    data: PairData,
    beta: float,
    mu: Any = None,
    features: Any = None,
    n: int | None = None,
    l2: float = 0.0,
) -> Tensor:
    """IPO: π_w ∝ μ exp(φᵀw) with w minimising the IPO loss (a least-squares problem); ``l2``
    is a ridge on the implied reward βw, as in :func:`dpo_policy`."""
    b = _check_beta(beta)
    w = newton_fit(data, "ipo", b, features, n, l2 * b * b)
    return log_linear_policy(w, features, mu)


# ---------------------------------------------------------------------------------------------
# aggregated sampling: comparisons as counts per candidate pair
# ---------------------------------------------------------------------------------------------
def _positive_count(n: Any, name: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"{name} must be a positive integer, got {n!r}")
    return int(n)


def sample_pair_counts(
    first: Any,
    second: Any,
    pair_prob: Any,
    label_prob: Any,
    n_pairs: int,
    generator: torch.Generator,
) -> PairData:
    """``n_pairs`` comparisons drawn among C candidate pairs, kept as counts (batched ``[G, C]``).

    Counts ~ Multinomial(n, pair_prob) (sequential binomials), wins of ``first`` ~
    Binomial(count, label_prob); returns PairData with label = win fraction and weight =
    count / n. Every loss linear in the label (BT/DPO, IPO, rDPO) gives exactly the loss of
    the n individual comparisons, at a cost independent of n.
    """
    dev = generator.device
    n = _positive_count(n_pairs, "n_pairs")
    pp = torch.as_tensor(pair_prob, dtype=torch.float64, device=dev)
    pp = pp.unsqueeze(0) if pp.ndim == 1 else pp
    if pp.ndim != 2 or not bool(torch.isfinite(pp).all()) or bool((pp < 0).any()):
        raise InvalidInputError(f"pair_prob must be finite, ≥ 0 and [C] or [G, C], got {pp.shape}")
    if float((pp.sum(-1) - 1.0).abs().max()) > 1e-9:
        raise InvalidInputError("pair_prob must sum to 1 over the candidate pairs")
    lp = torch.as_tensor(label_prob, dtype=torch.float64, device=dev).expand_as(pp)
    if not bool(torch.isfinite(lp).all()) or bool((lp < 0).any()) or bool((lp > 1).any()):
        raise InvalidInputError("label_prob must lie in [0, 1]")
    G, C = pp.shape
    f = torch.as_tensor(first, dtype=torch.long, device=dev).expand(G, C).contiguous()
    s = torch.as_tensor(second, dtype=torch.long, device=dev).expand(G, C).contiguous()
    counts = torch.empty(G, C, dtype=torch.float64, device=dev)
    rem = torch.full((G,), float(n), dtype=torch.float64, device=dev)
    left = torch.ones(G, dtype=torch.float64, device=dev)
    for c in range(C):
        if c == C - 1:
            k = rem
        else:
            q = torch.where(left > 0, pp[:, c] / left.clamp_min(1e-300), torch.zeros_like(left))
            k = torch.binomial(rem, q.clamp(0.0, 1.0), generator=generator)
        counts[:, c] = k
        rem = rem - k
        left = (left - pp[:, c]).clamp_min(0.0)
    wins = torch.binomial(counts, lp.contiguous(), generator=generator)
    return PairData(f, s, wins / counts.clamp_min(1.0), counts / n)


def bandit_pair_counts(
    P: Any, rho: Any, n_pairs: int, generator: torch.Generator, flip_rate: float = 0.0
) -> PairData:
    """``n_pairs`` comparisons of two distinct outcomes y, y' ~ ρ with labels ~ P[y, y'], each
    flipped with probability ``flip_rate`` (the noisy-label model of rDPO); aggregated counts."""
    eps = _check_flip_rate(flip_rate)
    Pg = as_games(P, generator.device)
    G, n, dev = Pg.shape[0], Pg.shape[-1], Pg.device
    r = (
        torch.full((G, n), 1.0 / n, dtype=torch.float64, device=dev)
        if rho is None
        else as_policy(rho, n, dev, "rho").expand(G, n)
    )
    i, j = torch.triu_indices(n, n, 1, device=dev)
    w = r[:, i] * r[:, j]
    tot = w.sum(-1, keepdim=True)
    if bool((tot <= 0).any()):
        raise InvalidInputError("rho must put mass on at least two outcomes")
    lp = eps + (1.0 - 2.0 * eps) * Pg[:, i, j]
    return sample_pair_counts(i, j, w / tot, lp, n_pairs, generator)


# ---------------------------------------------------------------------------------------------
# rDPO, HyPO
# ---------------------------------------------------------------------------------------------
def rdpo_policy(
    data: PairData,
    beta: float,
    eps: float,
    mu: Any = None,
    features: Any = None,
    n: int | None = None,
    l2: float = 0.0,
) -> Tensor:
    """rDPO: π_w ∝ μ exp(φᵀw), w minimising the flip-corrected loss of :func:`rdpo_loss`
    (``l2``: a ridge on the implied reward βw, as in :func:`dpo_policy`)."""
    b = _check_beta(beta)
    e = _check_flip_rate(eps)
    w = newton_fit(data, functools.partial(rdpo_loss, eps=e), b, features, n, l2 * b * b)
    return log_linear_policy(w, features, mu)


def newton_minimize(
    objective: Callable[[Tensor], Tensor],
    w0: Tensor,
    tol: float = 1e-26,
    max_iter: int = 100,
) -> Tensor:
    """argmin_w of a batched smooth objective ``[G, d] -> [G]`` by damped Newton (small d).

    Gradient and Hessian by autograd (d backward passes); an indefinite Hessian is shifted to
    be positive definite, and a backtracking line search makes every step a descent step.
    """
    G, d = w0.shape
    dev = w0.device
    eye = torch.eye(d, dtype=torch.float64, device=dev)

    def derivatives(w: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        w = w.detach().requires_grad_(True)
        f = objective(w)
        (g,) = torch.autograd.grad(f.sum(), w, create_graph=True)
        rows = []
        for k in range(d):
            r = None
            if g.requires_grad:
                (r,) = torch.autograd.grad(g[:, k].sum(), w, retain_graph=True, allow_unused=True)
            rows.append(torch.zeros_like(w) if r is None else r)
        H = torch.stack(rows, 1).detach()
        return f.detach(), g.detach(), 0.5 * (H + H.transpose(1, 2))

    w = w0.detach().clone()
    active = torch.ones(G, dtype=torch.bool, device=dev)
    for _ in range(max_iter):
        f0, grad, H = derivatives(w)
        scale = 1.0 + H.diagonal(dim1=-2, dim2=-1).abs().amax(-1)
        low = torch.linalg.eigvalsh(H)[:, 0]
        shift = 1.01 * (-low).clamp_min(0.0) + 1e-12 * scale
        step = torch.linalg.solve(H + shift[:, None, None] * eye, grad.unsqueeze(-1)).squeeze(-1)
        dec = (grad * step).sum(-1)
        active = active & (dec > tol * torch.clamp(f0.abs(), min=1.0))
        if not bool(active.any()):
            break
        t = torch.ones(G, dtype=torch.float64, device=dev)
        small = dec <= 1e-12 * torch.clamp(f0.abs(), min=1.0)
        done = ~active | small
        with torch.no_grad():
            for _ls in range(40):
                f1 = objective(w - t[:, None] * step)
                done = done | (f1 <= f0 - 1e-4 * t * dec)
                if bool(done.all()):
                    break
                t = torch.where(done, t, 0.5 * t)
        active = active & done
        w = torch.where(active[:, None], w - t[:, None] * step, w)
        active = active & ~small
        if not bool(active.any()):
            break
    return w


def hypo_policy(
    data: PairData,
    beta: float,
    lam: float,
    mu: Any = None,
    features: Any = None,
    n: int | None = None,
    l2: float = 0.0,
) -> Tensor:
    """HyPO (Song et al. 2024): the offline DPO loss plus λ·KL(π‖μ) on the policy's own samples
    (exact here), minimised over log-linear π_w ∝ μ exp(φᵀw); the KL term pins the directions
    the offline data leave free. ``l2``: a ridge on the implied reward βw, as in
    :func:`dpo_policy`."""
    b = _check_beta(beta)
    try:
        lam_f = float(lam)
    except (TypeError, ValueError):
        raise InvalidInputError(f"lam must be a number ≥ 0, got {lam!r}") from None
    if not math.isfinite(lam_f) or lam_f < 0:
        raise InvalidInputError(f"lam (the online KL weight) must be finite and ≥ 0, got {lam!r}")
    G, dev = data.games, data.first.device
    if n is None:
        n = (
            int(max(int(data.first.max()), int(data.second.max())) + 1)
            if features is None
            else int(torch.as_tensor(features).shape[-2])
        )
    phi = _features(features, G, n, dev)
    m = (
        torch.full((G, n), 1.0 / n, dtype=torch.float64, device=dev)
        if mu is None
        else as_policy(mu, n, dev, "mu").expand(G, n)
    )
    if bool((m <= 0).any()):
        raise InvalidInputError("HyPO needs a reference μ with full support (its KL is finite)")
    logmu = torch.log(m)
    gi = torch.arange(G, device=dev)[:, None]
    dphi = phi[gi, data.first] - phi[gi, data.second]

    def objective(w: Tensor) -> Tensor:
        h = (dphi @ w.unsqueeze(-1)).squeeze(-1)
        off = (phi @ w.unsqueeze(-1)).squeeze(-1)
        logp = torch.log_softmax(logmu + off, -1)
        kl_term = (logp.exp() * (logp - logmu)).sum(-1)
        fit = (data.weight * dpo_loss(h, data.label, b)).sum(-1)
        return fit + lam_f * kl_term + 0.5 * l2 * b * b * (w * w).sum(-1)

    w = newton_minimize(objective, torch.zeros(G, phi.shape[-1], dtype=torch.float64, device=dev))
    return log_linear_policy(w, features, m)


# ---------------------------------------------------------------------------------------------
# online DPO and XPO on a two-response bandit (exact argmin over a bounded policy class)
# ---------------------------------------------------------------------------------------------
def _two_arm_reference(mu: Any, G: int, dev: torch.device) -> Tensor:
    m = as_policy(mu, 2, dev, "mu").expand(G, 2)
    if bool((m <= 0).any()):
        raise InvalidInputError("the reference μ must give both responses positive probability")
    return m


def _per_game(x: Any, G: int, dev: torch.device, name: str) -> Tensor:
    """A positive finite scalar or ``[G]`` tensor as float64 ``[G]``."""
    try:
        t = torch.as_tensor(x, dtype=torch.float64, device=dev)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a positive number or [G] tensor") from None
    if t.ndim > 1 or (t.ndim == 1 and t.shape[0] not in (1, G)):
        raise InvalidInputError(f"{name} must be a number or a [{G}] tensor, got {tuple(t.shape)}")
    if not bool(torch.isfinite(t).all()) or bool((t <= 0).any()):
        raise InvalidInputError(f"{name} must be finite and > 0, got {x!r}")
    return t.expand(G)


def _margin_interval(logmu: Tensor, bound: Tensor) -> tuple[Tensor, Tensor]:
    """[h_lo, h_hi] of the margin h = log π0/μ0 − log π1/μ1 over {π : |log π/μ| ≤ bound}."""
    l0, l1 = logmu[:, 0], logmu[:, 1]
    inf = torch.full_like(l0, math.inf)

    def logit_of(log_p: Tensor) -> Tensor:  # logit of p = exp(log_p) < 1
        return log_p - torch.log(-torch.expm1(log_p))

    # π0 ≤ μ0 e^B and π1 ≥ μ1 e^-B;  π0 ≥ μ0 e^-B and π1 ≤ μ1 e^B
    up_a = torch.where(l0 + bound < 0, logit_of(torch.clamp(l0 + bound, max=-1e-300)), inf)
    up_b = -logit_of(l1 - bound)
    lo_a = logit_of(l0 - bound)
    lo_b = torch.where(l1 + bound < 0, -logit_of(torch.clamp(l1 + bound, max=-1e-300)), -inf)
    a = l0 - l1
    return torch.maximum(lo_a, lo_b) - a, torch.minimum(up_a, up_b) - a


def xpo_policy(
    data: PairData,
    ref_counts: Any,
    alpha: Any,
    beta: Any,
    mu: Any,
    bound: Any,
    grid: int = 65,
    levels: int = 3,
    polish: int = 3,
) -> Tensor:
    """XPO (Xie et al. 2024, Algorithm 1) on a two-response bandit, solved exactly (batched).

    π = argmin over Π = {π : |log π(y)/μ(y)| ≤ bound} of
    α Σ_ỹ log π(ỹ) + Σ_j weight_j · dpo_loss(h_j, label_j, β),
    with ``ref_counts[g, y]`` exploration samples ỹ ~ μ and ``data`` the labelled pairs (weights
    are counts; pairs of the same response carry no information). α = 0 is (online) DPO; where
    the data leave the margin free the reference μ is returned. The objective is a function of
    the margin h alone (not convex when α > 0): a grid over Π's interval of h, refined on the
    best cell ``levels`` times (to ~1e-5 of the interval), then polished by ``polish``
    safeguarded Newton steps (to rounding).
    ``alpha``, ``beta`` and ``bound`` may be per-game ``[G]`` tensors.
    """
    G, dev = data.games, data.first.device
    b = _per_game(beta, G, dev, "beta")
    bd = _per_game(bound, G, dev, "bound")
    if bool((data.first > 1).any()) or bool((data.second > 1).any()):
        raise InvalidInputError("xpo_policy is exact for two responses: indices must be 0 or 1")
    m = _two_arm_reference(mu, G, dev)
    logmu = torch.log(m)
    c = torch.as_tensor(ref_counts, dtype=torch.float64, device=dev).expand(G, 2)
    al = torch.as_tensor(alpha, dtype=torch.float64, device=dev).expand(G)
    if not bool(torch.isfinite(al).all()) or not bool(torch.isfinite(c).all()):
        raise InvalidInputError("alpha and ref_counts must be finite")
    sign = ((data.first == 0) & (data.second == 1)).double() - (
        (data.first == 1) & (data.second == 0)
    ).double()
    a = (logmu[:, 0] - logmu[:, 1])[:, None]
    h_lo, h_hi = _margin_interval(logmu, bd)

    def objective(h: Tensor) -> Tensor:  # h [G, M] -> objective [G, M]
        z = h + a
        opt = al[:, None] * (c[:, :1] * F.logsigmoid(z) + c[:, 1:] * F.logsigmoid(-z))
        hs = sign[:, :, None] * h[:, None, :]
        fit = data.weight[:, :, None] * dpo_loss(hs, data.label[:, :, None], b[:, None, None])
        return opt + fit.sum(1)

    gi = torch.arange(G, device=dev)
    u = torch.linspace(0.0, 1.0, grid, dtype=torch.float64, device=dev)
    lo, hi = h_lo, h_hi
    for level in range(levels):
        hg = lo[:, None] + (hi - lo)[:, None] * u
        Fg = objective(hg)
        k = Fg.argmin(-1)
        if level == 0:
            flat = (Fg.amax(-1) - Fg.amin(-1)) <= 1e-12 * (1.0 + Fg.abs().amax(-1))
        lo, hi = hg[gi, (k - 1).clamp_min(0)], hg[gi, (k + 1).clamp_max(grid - 1)]
    cand = torch.stack([hg[gi, k], h_lo, h_hi], -1)
    best = cand[gi, objective(cand).argmin(-1)]
    for _ in range(polish):  # safeguarded Newton polish (kept only where it lowers the objective)
        hh = best.detach().requires_grad_(True)
        (g1,) = torch.autograd.grad(objective(hh[:, None]).sum(), hh, create_graph=True)
        (g2,) = torch.autograd.grad(g1.sum(), hh)
        step = torch.where(g2 > 0, g1.detach() / g2.clamp_min(1e-300), torch.zeros_like(best))
        trial = (best - step).clamp(h_lo, h_hi)
        with torch.no_grad():
            keep = objective(trial[:, None])[:, 0] <= objective(best[:, None])[:, 0]
        best = torch.where(keep, trial, best)
    h = torch.where(flat, torch.zeros_like(best).clamp(h_lo, h_hi), best)
    z = h + a[:, 0]
    return torch.stack([torch.sigmoid(z), torch.sigmoid(-z)], -1)


def two_arm_online(
    method: str,
    p_win: float,
    beta: Any,
    mu: Any,
    bound: Any,
    generator: torch.Generator,
    games: int,
    rounds: int = 1000,
    events: int = 64,
    alpha0: float = 1.0,
) -> dict[str, Tensor]:
    """Online preference optimisation on a two-response bandit (response 0 wins w.p. ``p_win``).

    ``online_dpo`` (Xie et al.'s passive baseline): each round both responses ~ π_t, one label,
    π_{t+1} = the DPO argmin over Π on all labels so far. Between two informative pairs (two
    different responses) π_t does not move, so the waiting time is drawn as a geometric
    variable: an exact event-driven simulation, cheap even when it takes e^16 rounds; returns
    the round of each of ``events`` informative pairs and π_t(0) after it ``[games, events]``.
    ``xpo``: each round y ~ π_t, ỹ ~ μ, α_t = α0·β/√t on the exploration term; returns π_t(0)
    after every round ``[games, rounds]``. β, μ and the class bound may differ per game.
    """
    dev = generator.device
    G = _positive_count(games, "games")
    b = _per_game(beta, G, dev, "beta")
    bd = _per_game(bound, G, dev, "bound")
    m = _two_arm_reference(mu, G, dev)
    pw = torch.full((G,), float(p_win), dtype=torch.float64, device=dev)
    zero = torch.zeros(G, 1, dtype=torch.long, device=dev)
    one = torch.ones(G, 1, dtype=torch.long, device=dev)
    no_refs = torch.zeros(G, 2, dtype=torch.float64, device=dev)

    def policy(n_pairs: Tensor, wins: Tensor, refc: Tensor, alpha: Any) -> Tensor:
        lab = wins / n_pairs.clamp_min(1.0)
        d = PairData(zero, one, lab[:, None], n_pairs[:, None])
        return xpo_policy(d, refc, alpha, b, m, bd, polish=0)[:, 0]  # grid precision suffices

    def uniform() -> Tensor:
        return torch.rand(G, dtype=torch.float64, device=dev, generator=generator)

    n_pairs = torch.zeros(G, dtype=torch.float64, device=dev)
    wins = torch.zeros(G, dtype=torch.float64, device=dev)
    if method == "online_dpo":
        t = torch.zeros(G, dtype=torch.float64, device=dev)
        pi0 = m[:, 0].clone()
        times, probs = [], []
        for _ in range(_positive_count(events, "events")):
            q = (2.0 * pi0 * (1.0 - pi0)).clamp_min(1e-300)  # P(the two samples differ)
            t = t + torch.floor(torch.log(uniform()) / torch.log1p(-q)) + 1.0  # Geometric(q)
            n_pairs, wins = n_pairs + 1.0, wins + (uniform() < pw).double()
            pi0 = policy(n_pairs, wins, no_refs, 0.0)
            times.append(t.clone())
            probs.append(pi0.clone())
        return {"round": torch.stack(times, 1), "pi0": torch.stack(probs, 1)}
    if method != "xpo":
        raise InvalidInputError(f"method must be 'online_dpo' or 'xpo', got {method!r}")
    refc = torch.zeros(G, 2, dtype=torch.float64, device=dev)
    pi0 = m[:, 0].clone()
    out = []
    for r in range(1, _positive_count(rounds, "rounds") + 1):
        y = uniform() >= pi0  # True: response 1
        yt = uniform() >= m[:, 0]  # the exploration sample ỹ ~ μ
        refc[:, 0] += (~yt).double()
        refc[:, 1] += yt.double()
        differ = y != yt
        n_pairs = n_pairs + differ.double()
        wins = wins + (differ & (uniform() < pw)).double()
        pi0 = policy(n_pairs, wins, refc, alpha0 * b / math.sqrt(r))
        out.append(pi0.clone())
    return {"round": torch.arange(1, rounds + 1, device=dev), "pi0": torch.stack(out, 1)}


# ---------------------------------------------------------------------------------------------
# iterative DPO and APO (He et al. 2024)
# ---------------------------------------------------------------------------------------------
def iterative_dpo(
    P: Any,
    beta: float,
    iters: int,
    mu: Any = None,
    rho: Any = None,
    alpha: float = 0.0,
) -> Tensor:
    """Iterative DPO (the reference of round t+1 is π_t) with APO's extrapolation (He et al.
    2024): π̂_{t+1} = DPO(ref π_t), π_{t+1} ∝ π̂_{t+1} (π̂_{t+1}/π̂_t)^α; log-policies
    ``[iters+1, G, n]``.

    Pairs are the population of ρ (fixed), so DPO's fitted log-ratio w = log π̂_{t+1}/π_t (its
    implicit reward r/β up to a constant) is the same every round and is fitted once; the
    extrapolation is the Nesterov step :func:`algos.nash.apo_step` applies to INPO.
    """
    b = _check_beta(beta)
    a = float(alpha)
    if not (math.isfinite(a) and -1.0 < a < 1.0):
        raise InvalidInputError(f"alpha (extrapolation) must be in (−1, 1), got {alpha!r}")
    Pg = as_games(P)
    G, n, dev = Pg.shape[0], Pg.shape[-1], Pg.device
    w = newton_fit(population_pairs(Pg, rho), "dpo", b)
    z = (
        torch.full((G, n), -math.log(n), dtype=torch.float64, device=dev)
        if mu is None
        else torch.log(as_policy(mu, n, dev, "mu").expand(G, n))
    )
    prev = z
    out = [z]
    for _ in range(_positive_count(iters, "iters")):
        hat = torch.log_softmax(z + w, -1)
        z = torch.log_softmax(hat + a * (hat - prev), -1)
        prev = hat
        out.append(z)
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------
# `prl run` learners on the dueling bandit: offline pairs from μ, refit after every batch
# ---------------------------------------------------------------------------------------------
@dataclass
class BTRunConfig:
    """Bradley–Terry baselines: pairs drawn from the reference μ, labels from the dueling P."""

    beta: float = option(0.1, "KL coefficient β (τ) towards the reference μ")
    batch: int = option(64, "new labelled pairs (preference queries) per step")
    l2: float = option(
        1e-4, "ridge on the fitted reward r = β log π/μ (keeps separable data finite)"
    )
    ref_logit_scale: float = option(0.0, "std of the reference policy's logits (0 = uniform μ)")
    ref_seed: int = option(0, "seed of the reference policy's logits")
    loss_type: str | None = option(
        None, "TRL's loss_type (dpo/ipo only): sigmoid = DPO, ipo = IPO, robust = rDPO"
    )
    label_smoothing: float = option(
        0.0, "TRL's label_smoothing ε: sigmoid → conservative DPO, robust → rDPO's flip rate"
    )

    def validate(self) -> None:
        require(
            self.loss_type in (None, *TRL_LOSS_TYPES),
            f"loss_type must be one of {', '.join(TRL_LOSS_TYPES)}, got {self.loss_type!r}",
        )
        require(0 <= self.label_smoothing < 0.5, "label_smoothing must be in [0, 0.5)")
        require(
            not (self.loss_type == "ipo" and self.label_smoothing),
            "loss_type 'ipo' takes no label_smoothing",
        )
        require(math.isfinite(self.beta) and self.beta > 0, f"beta must be > 0, got {self.beta}")
        require(self.batch > 0, f"batch must be positive, got {self.batch}")
        require(math.isfinite(self.l2) and self.l2 >= 0, f"l2 must be ≥ 0, got {self.l2}")
        require(self.ref_logit_scale >= 0, "ref_logit_scale must be ≥ 0")


class BTBaselineLearner(Learner):
    """RLHF / DPO / IPO on a dueling bandit: one step = ``batch`` new pairs, then a refit.

    Metrics: exploitability max_y P(y ≻ π) − ½ (0 at a minimax winner), the duality gap of the
    β-regularized game and the total-variation distance to its equilibrium π*_β.
    """

    kind = "dpo"
    algo_name = "dpo"
    default_steps = 20_000
    step_unit = "queries"

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        if env != "dueling":
            raise ConfigError(f"{cls.algo_name} runs on the 'dueling' environment, not {env!r}")

    def __init__(
        self, config: BTRunConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        from prl import envs
        from prl.games import regularized_nash

        if self.kind == "rlhf" and (config.loss_type or config.label_smoothing):
            raise ConfigError(f"{self.algo_name} takes no loss_type/label_smoothing (dpo, ipo do)")
        super().__init__(config, env, env_kwargs, seed, device)
        self.env = envs.make(env, **env_kwargs)
        self.P = as_games(self.env.unwrapped.P, device)
        n = self.P.shape[-1]
        if config.ref_logit_scale > 0:
            g = np.random.default_rng([int(config.ref_seed), 20240917])
            self.mu = torch.softmax(
                torch.as_tensor(g.normal(0.0, config.ref_logit_scale, n), device=self.P.device), -1
            )
        else:
            self.mu = torch.full((n,), 1.0 / n, dtype=torch.float64, device=self.P.device)
        self.gen = torch.Generator(device=self.P.device)
        self.gen.manual_seed(int(seed))
        self.data: PairData | None = None
        self.star = regularized_nash(self.P, config.beta, self.mu)

    def _fit(self) -> Tensor:
        assert self.data is not None
        d = self.data
        d = PairData(d.first, d.second, d.label, torch.full_like(d.label, 1.0 / d.label.shape[1]))
        fit = {"rlhf": rlhf_policy, "dpo": dpo_policy, "ipo": ipo_policy}[self.kind]
        lt, eps = self.config.loss_type, float(self.config.label_smoothing)
        if lt == "ipo":
            fit = ipo_policy
        elif lt == "robust":
            fit = functools.partial(_rdpo_fit, eps)
        elif lt == "sigmoid":
            fit = dpo_policy
            d = PairData(d.first, d.second, d.label * (1.0 - 2.0 * eps) + eps, d.weight)
        n = self.P.shape[-1]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            return fit(d, self.config.beta, self.mu, None, n, self.config.l2)

    def step(self) -> dict[str, float]:
        from prl.games import duality_gap, exploitability

        new = sample_pairs(self.P, self.mu, self.config.batch, self.gen)
        self.data = new if self.data is None else self.data.cat(new)
        self.steps_done += self.config.batch
        self.pi = self._fit()
        return {
            "pairs": int(self.data.label.shape[1]),
            "exploitability": float(exploitability(self.P, self.pi)[0]),
            "duality_gap": float(duality_gap(self.P, self.pi, self.config.beta, self.mu)[0]),
            "tv_to_equilibrium": float(0.5 * (self.pi - self.star).abs().sum()),
        }

    def policy(self) -> np.ndarray:
        return self.pi[0].cpu().numpy()

    def state_dict(self) -> dict[str, Any]:
        st = {**super().state_dict(), "generator": self.gen.get_state()}
        if self.data is not None:
            st["data"] = {
                "first": self.data.first,
                "second": self.data.second,
                "label": self.data.label,
            }
        return st

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gen.set_state(state["generator"])
        if "data" in state:
            dev = self.P.device
            f, s, lab = (state["data"][k].to(dev) for k in ("first", "second", "label"))
            self.data = PairData(f, s, lab, torch.full_like(lab, 1.0 / lab.shape[1]))
            self.pi = self._fit()

    def close(self) -> None:
        self.env.close()


def _rdpo_fit(eps: float, data: PairData, beta: float, *args: Any) -> Tensor:
    """:func:`rdpo_policy` with the flip rate first (TRL's ``robust`` with label_smoothing ε)."""
    return rdpo_policy(data, beta, eps, *args)


# tiny settings shared by the three dueling-bandit baselines
_BT_SMOKE = Smoke(
    env="dueling",
    steps=1000,
    config={"batch": 200, "ref_logit_scale": 1.0, "beta": 0.05},
    env_kwargs={"game": "dice"},
    source="tests/test_dpo.py::test_bt_learners_smoke_determinism_and_failure",
)


@register_algo(
    "rlhf_bt",
    description="RLHF on a dueling bandit: BT reward fit, KL-regularised best response",
    envs=("dueling",),
)
class RLHFBanditLearner(BTBaselineLearner):
    """RLHF on a dueling bandit: BT reward fit, KL-regularised best response."""

    kind = "rlhf"
    algo_name = "rlhf_bt"
    Config = BTRunConfig
    smoke = _BT_SMOKE


@register_algo(
    "dpo", description="DPO on a dueling bandit (pairs from the reference)", envs=("dueling",)
)
class DPOBanditLearner(BTBaselineLearner):
    """DPO on a dueling bandit (pairs from the reference)."""

    kind = "dpo"
    algo_name = "dpo"
    Config = BTRunConfig
    smoke = replace(_BT_SMOKE, family="dpo")


@register_algo(
    "ipo", description="IPO on a dueling bandit (pairs from the reference)", envs=("dueling",)
)
class IPOBanditLearner(BTBaselineLearner):
    """IPO on a dueling bandit (pairs from the reference)."""

    kind = "ipo"
    algo_name = "ipo"
    Config = BTRunConfig
    smoke = _BT_SMOKE
