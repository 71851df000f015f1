"""Pluralistic and general preferences: GPM, VPL and MaxMin-RLHF, with their exact counterparts.

**GPM** (Zhang et al., General Preference Modeling with Preference Representations): items have
embeddings v(y) ∈ ℝ^{2k} and P(y ≻ y') = σ(⟨R_≻ v(y), v(y')⟩ / τ) with the block skew-symmetric
operator R_≻ = diag([[0, −1], [1, 0]] × k) (:func:`block_operator`); loss −log σ(s/τ) on the
preferred-first pair (soft labels: the BT cross-entropy on the score s). Exactly: any
skew-symmetric logit matrix S = logit(P) of rank 2k is ⟨R v_i, v_j⟩ for the k-block embedding of
its real Schur form (:func:`skew_embedding`); the learned P (:func:`gpm_matrix`) is a valid
preference game for :class:`~prl.algos.nash.NashSolver` and
:func:`~prl.algos.spo.selfplay_mwu`.

**VPL** (Poddar et al., Personalizing RLHF with Variational Preference Learning): an encoder
over one user's labelled pairs gives q(z | D_u) = N(μ, diag σ²); the reward is r(s, a, z), the
segment return Σ_t r and P = σ(R_a − R_b); the loss is the negative ELBO, BCE + β·KL(q ‖ N(0, I))
(:func:`vpl_loss`, :class:`VPL`).

**MaxMin-RLHF** (Chakraborty et al.): EM over a mixture of K Bradley–Terry reward models on the
users' labelled pairs (:func:`em_bt_mixture`), then a policy maximizing the minimum group
utility. Utilities are each group's negative sub-optimality V_k(π) − max_π' V_k(π') (BT rewards are
only identified up to a constant per group; the gap is not). Exactly by linear programming with
``scipy.optimize.linprog(method="highs")``: on a bandit over the simplex (:func:`maxmin_lp`), on a
tabular MDP over occupancy measures (:func:`maxmin_occupancy_lp`); iteratively on a bandit by
no-regret self-play between the policy and the worst group (:func:`maxmin_hedge`).

``prl run`` learners: ``gpm`` (dueling bandit: learns P from duels, then the minimax winner of the
learned game), ``vpl`` and ``maxmin_rlhf`` (the two-goal gridworld ``two_goals``, whose rater
groups want different goals).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy.linalg import schur
from scipy.optimize import linprog
from torch import nn

from prl.algos.dpo import PairData, newton_fit
from prl.config import option, require
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import RaterPopulation, check_proportions
from prl.reward_model import bt_loss
from prl.run import Learner, register_algo
from prl.smoke import Smoke
from prl.types import Segments

Tensor = torch.Tensor

__all__ = [
    "GPM",
    "VPL",
    "BTScores",
    "MixtureFit",
    "UserPairs",
    "block_operator",
    "bt_group_policy",
    "count_features",
    "em_bt_mixture",
    "em_step",
    "fit_pairs",
    "gpm_loss",
    "gpm_matrix",
    "gpm_scores",
    "group_returns",
    "maxmin_hedge",
    "maxmin_lp",
    "maxmin_occupancy_lp",
    "mixture_loglik",
    "pair_loglik",
    "plan",
    "reward_table",
    "rollout_segments",
    "skew_embedding",
    "skew_reconstruction",
    "step_features",
    "suboptimality_utilities",
    "two_goal_users",
    "user_tensors",
    "vpl_loss",
    "vpl_reward_table",
]


# =============================================================================================
# GPM: preference representations with a block skew-symmetric operator
# =============================================================================================
def block_operator(k: int, dtype: torch.dtype = torch.float64, device: Any = None) -> Tensor:
    """R_≻ = block-diag of k copies of [[0, −1], [1, 0]] (GPM's skew-symmetric operator)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"the number of blocks k must be a positive integer, got {k!r}")
    J = torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=dtype, device=device)
    return torch.block_diag(*([J] * int(k)))


def gpm_scores(va: Tensor, vb: Tensor) -> Tensor:
    """s(a ≻ b) = ⟨R_≻ v(a), v(b)⟩ = Σ_blocks (v_a,1 v_b,2 − v_a,2 v_b,1), over ``[..., 2k]``."""
    if va.shape != vb.shape or va.shape[-1] % 2 or va.shape[-1] == 0:
        raise InvalidInputError(
            f"embeddings must share a shape [..., 2k], got {tuple(va.shape)}, {tuple(vb.shape)}"
        )
    a1, a2 = va[..., 0::2], va[..., 1::2]
    b1, b2 = vb[..., 0::2], vb[..., 1::2]
    return (a1 * b2 - a2 * b1).sum(-1)


def gpm_loss(score: Tensor, label: Any, tau: float = 1.0, mask: Any = None) -> Tensor:
    """GPM's loss −[y log σ(s/τ) + (1 − y) log σ(−s/τ)], mean over valid pairs (y = 1: −log σ(s/τ)).

    The BT cross-entropy of :func:`prl.reward_model.bt_loss` applied to the score s/τ.
    """
    t = float(tau)
    if not np.isfinite(t) or t <= 0:
        raise InvalidInputError(f"tau must be a finite number > 0, got {tau!r}")
    s = score / t
    return bt_loss(s, torch.zeros_like(s), label, mask)


def _skew_logits(S: Any) -> np.ndarray:
    S = np.asarray(S, dtype=np.float64)
    if S.ndim != 2 or S.shape[0] != S.shape[1] or S.shape[0] == 0:
        raise InvalidInputError(f"S must be a square matrix [n, n], got shape {S.shape}")
    if not np.all(np.isfinite(S)):
        raise InvalidInputError("S contains NaN or inf")
    err = float(np.abs(S + S.T).max())
    if err > 1e-9 * max(1.0, float(np.abs(S).max())):
        raise InvalidInputError(f"S must be skew-symmetric (S = −Sᵀ), max |S + Sᵀ| = {err:.3g}")
    return 0.5 * (S - S.T)


def skew_embedding(S: Any, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Embeddings V [n, 2k] with ⟨R_≻ v_i, v_j⟩ = the best rank-2k approximation of skew S.

    Real Schur form S = Q T Qᵀ (T block-diagonal with 2×2 blocks [[0, t], [−t, 0]]); the k blocks
    of largest |t| give v_i = √|t| (q1_i, q2_i) (columns swapped when t < 0). Returns (V, |t|
    of every block, sorted descending). k = None keeps every non-zero block.
    """
    S = _skew_logits(S)
    n = S.shape[0]
    T, Q = schur(S, output="real")
    blocks: list[tuple[float, int]] = []
    i = 0
    scale = max(float(np.abs(S).max()), 1e-300)
    while i < n:
        if i + 1 < n and abs(T[i + 1, i]) > 1e-14 * scale:
            blocks.append((0.5 * (T[i, i + 1] - T[i + 1, i]), i))
            i += 2
        else:
            i += 1
    blocks.sort(key=lambda b: -abs(b[0]))
    mags = np.array([abs(t) for t, _ in blocks])
    if k is None:
        k = max(1, len(blocks))
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InvalidInputError(f"k must be a positive integer, got {k!r}")
    V = np.zeros((n, 2 * int(k)))
    for m, (t, i) in enumerate(blocks[: int(k)]):
        q1, q2 = Q[:, i], Q[:, i + 1]
        if t < 0:
            q1, q2 = q2, q1
        V[:, 2 * m] = np.sqrt(abs(t)) * q1
        V[:, 2 * m + 1] = np.sqrt(abs(t)) * q2
    return V, mags


def skew_reconstruction(V: Any) -> np.ndarray:
    """The score matrix S_ij = ⟨R_≻ v_i, v_j⟩ of embeddings V [n, 2k] (skew-symmetric)."""
    V = np.asarray(V, dtype=np.float64)
    if V.ndim != 2 or V.shape[1] % 2 or V.shape[1] == 0:
        raise InvalidInputError(f"embeddings must have shape [n, 2k], got {V.shape}")
    R = block_operator(V.shape[1] // 2).numpy()
    S = V @ R.T @ V.T  # S_ij = (R v_i)ᵀ v_j
    return 0.5 * (S - S.T)


def gpm_matrix(V: Any, tau: float = 1.0) -> np.ndarray:
    """The preference game P_ij = σ(⟨R_≻ v_i, v_j⟩/τ) of embeddings V [n, 2k] (P + Pᵀ = 1)."""
    from scipy.special import expit

    S = skew_reconstruction(V) / float(tau)
    P = expit(S)
    return np.where(P <= P.T, P, 1.0 - P.T)


class GPM(nn.Module):
    """GPM over n finite outcomes: an embedding table v(y) ∈ ℝ^{2k} (unit length when
    ``normalize``) and P(y ≻ y') = σ(⟨R_≻ v(y), v(y')⟩/τ)."""

    def __init__(
        self,
        n: int,
        k: int = 1,
        tau: float = 1.0,
        normalize: bool = False,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise InvalidInputError(f"GPM needs n >= 2 outcomes, got {n!r}")
        block_operator(k)  # validates k
        self.n, self.k, self.tau, self.normalize = int(n), int(k), float(tau), bool(normalize)
        init = 0.1 * torch.randn(self.n, 2 * self.k, generator=generator, dtype=torch.float64)
        self.emb = nn.Parameter(init)

    def embeddings(self) -> Tensor:
        """v(y) for every outcome, [n, 2k]."""
        v = self.emb
        return v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12) if self.normalize else v

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        """Logits s(first ≻ second)/τ, shape of ``first``."""
        v = self.embeddings()
        return gpm_scores(v[first], v[second]) / self.tau

    @torch.no_grad()
    def matrix(self) -> np.ndarray:
        """The learned game P [n, n] (a valid preference matrix for the Nash/SPO learners)."""
        return gpm_matrix(self.embeddings().cpu().numpy(), self.tau)


class BTScores(nn.Module):
    """Bradley–Terry over n outcomes: scores r(y), P(y ≻ y') = σ(r(y) − r(y'))."""

    def __init__(self, n: int):
        super().__init__()
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 2:
            raise InvalidInputError(f"BT needs n >= 2 outcomes, got {n!r}")
        self.n = int(n)
        self.scores = nn.Parameter(torch.zeros(self.n, dtype=torch.float64))

    def forward(self, first: Tensor, second: Tensor) -> Tensor:
        """Logits r(first) − r(second)."""
        return self.scores[first] - self.scores[second]

    @torch.no_grad()
    def matrix(self) -> np.ndarray:
        """P_ij = σ(r_i − r_j)."""
        from prl.games import bradley_terry_matrix

        return np.asarray(bradley_terry_matrix(self.scores.cpu().numpy()))


def pair_loglik(model: nn.Module, first: Any, second: Any, label: Any) -> float:
    """Mean log-likelihood of labelled pairs under a pairwise model (logits = model(i, j))."""
    with torch.no_grad():
        f = torch.as_tensor(first, dtype=torch.long)
        s = torch.as_tensor(second, dtype=torch.long)
        logit = model(f, s)
        return -float(bt_loss(logit, torch.zeros_like(logit), torch.as_tensor(label).double()))


def fit_pairs(
    model: nn.Module,
    first: Any,
    second: Any,
    label: Any,
    steps: int = 500,
    lr: float = 0.05,
    optimizer: torch.optim.Optimizer | None = None,
) -> list[float]:
    """Full-batch Adam on the pairwise cross-entropy of logits ``model(first, second)``."""
    f = torch.as_tensor(first, dtype=torch.long)
    s = torch.as_tensor(second, dtype=torch.long)
    y = torch.as_tensor(label, dtype=torch.float64)
    opt = optimizer or torch.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(int(steps)):
        opt.zero_grad()
        logit = model(f, s)
        loss = bt_loss(logit, torch.zeros_like(logit), y)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


# =============================================================================================
# VPL: a latent-user reward model trained by the ELBO
# =============================================================================================
def vpl_loss(
    returns_a: Tensor,
    returns_b: Tensor,
    label: Tensor,
    mu: Tensor,
    logvar: Tensor,
    beta: float = 1.0,
    mask: Tensor | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """Negative ELBO of VPL: mean BCE of σ(R_a − R_b) over the users' valid pairs + β · mean over
    users of KL(N(μ, σ²) ‖ N(0, I)) = ½ Σ_d (μ² + σ² − 1 − log σ²). Returns (loss, BCE, KL).

    ``returns_* [U, m]``, ``label [U, m]``, ``mu``/``logvar [U, L]``, ``mask [U, m]`` (optional).
    """
    m = torch.ones_like(label) if mask is None else mask.to(label.dtype)
    bce = bt_loss(returns_a.reshape(-1), returns_b.reshape(-1), label.reshape(-1), m.reshape(-1))
    kl = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(-1).mean()
    return bce + float(beta) * kl, bce, kl


@dataclass
class UserPairs:
    """Each user's labelled pairs as step features: ``xa``/``xb [U, m, T, D]``, ``label [U, m]``,
    ``group [U]`` (the user's true type, for evaluation only)."""

    xa: Tensor
    xb: Tensor
    label: Tensor
    group: Tensor

    def __post_init__(self) -> None:
        if self.xa.shape != self.xb.shape or self.xa.ndim != 4:
            raise InvalidInputError(
                f"xa and xb must share a shape [U, m, T, D], got {tuple(self.xa.shape)} and "
                f"{tuple(self.xb.shape)}"
            )
        U, m = self.xa.shape[:2]
        if tuple(self.label.shape) != (U, m):
            raise InvalidInputError(
                f"label must have shape {(U, m)}, got {tuple(self.label.shape)}"
            )
        if tuple(self.group.shape) != (U,):
            raise InvalidInputError(
                f"group must have one entry per user ({U}), got {tuple(self.group.shape)}"
            )

    @property
    def users(self) -> int:
        return int(self.xa.shape[0])

    def index(self, idx: Tensor) -> UserPairs:
        return UserPairs(self.xa[idx], self.xb[idx], self.label[idx], self.group[idx])


class VPL(nn.Module):
    """VPL: q(z | a user's pairs) = N(μ, σ²) from a mean-pooled pair encoder; r(s, a, z) an MLP.

    Step features x_t [D] (e.g. one-hot state ⊕ one-hot action); an item is a segment [T, D]
    (T = 1 for bandit arms); the encoder sees each pair as (mean_t x^a, mean_t x^b, y).
    """

    def __init__(self, feat_dim: int, latent_dim: int = 2, hidden: int = 64, one_hot: bool = False):
        super().__init__()
        self.one_hot = bool(one_hot)
        if feat_dim < 1 or latent_dim < 1 or hidden < 1:
            raise InvalidInputError(
                f"VPL needs positive sizes, got feat_dim={feat_dim}, latent_dim={latent_dim}, "
                f"hidden={hidden}"
            )
        self.feat_dim, self.latent_dim = int(feat_dim), int(latent_dim)
        self.pair_net = nn.Sequential(
            nn.Linear(2 * feat_dim + 1, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU()
        )
        self.head = nn.Linear(hidden, 2 * latent_dim)
        self.reward_net = nn.Sequential(
            nn.Linear(feat_dim + latent_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 1),
        )

    def encode(
        self, xa: Tensor, xb: Tensor, label: Tensor, mask: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """(μ, log σ²) [U, L] of q(z | the user's pairs), pooling the pairs with ``mask`` [U, m]."""
        h = self.pair_net(torch.cat([xa.mean(-2), xb.mean(-2), label.unsqueeze(-1)], -1))
        w = torch.ones(h.shape[:-1], dtype=h.dtype) if mask is None else mask.to(h.dtype)
        pooled = (h * w.unsqueeze(-1)).sum(-2) / w.sum(-1, keepdim=True).clamp_min(1.0)
        mu, logvar = self.head(pooled).chunk(2, -1)
        return mu, logvar.clamp(-8.0, 4.0)

    def reward(self, x: Tensor, z: Tensor) -> Tensor:
        """r(x, z) for step features x [..., D] and latents z broadcast to [..., L]."""
        z = z.expand(*x.shape[:-1], z.shape[-1])
        return self.reward_net(torch.cat([x, z], -1)).squeeze(-1)

    def returns(self, x: Tensor, z: Tensor) -> Tensor:
        """Segment returns Σ_t r(x_t, z) for x [U, m, T, D], z [U, L] → [U, m].

        With ``one_hot`` step features (tabular states), Σ_t r(x_t, z) = (Σ_t x_t) · r(e_d, z)
        exactly: r is evaluated once per user on the D basis vectors e_d.
        """
        if self.one_hot:
            basis = torch.eye(self.feat_dim, dtype=x.dtype)
            table = self.reward(basis.expand(z.shape[0], -1, -1), z[:, None, :])  # [U, D]
            return (x.sum(-2) * table[:, None, :]).sum(-1)
        return self.reward(x, z[:, None, None, :]).sum(-1)

    def loss(
        self,
        data: UserPairs,
        beta: float,
        generator: torch.Generator,
        context: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Negative ELBO on every pair of each user, z ~ q(z | the ``context`` pairs)."""
        mu, logvar = self.encode(data.xa, data.xb, data.label, context)
        eps = torch.randn(mu.shape, generator=generator, dtype=mu.dtype)
        z = mu + torch.exp(0.5 * logvar) * eps
        return vpl_loss(
            self.returns(data.xa, z), self.returns(data.xb, z), data.label, mu, logvar, beta
        )


# =============================================================================================
# MaxMin-RLHF: EM over a mixture of BT reward models, then the max-min policy
# =============================================================================================
def suboptimality_utilities(U: Any) -> np.ndarray:
    """u_k − max u_k for utilities U [K, n]: each group's negative sub-optimality gap."""
    U = np.asarray(U, dtype=np.float64)
    return U - U.max(axis=-1, keepdims=True)


def _check_utilities(U: Any) -> np.ndarray:
    U = np.asarray(U, dtype=np.float64)
    if U.ndim != 2 or U.shape[0] == 0 or U.shape[1] == 0:
        raise InvalidInputError(
            f"utilities must be a matrix [K, n] with K >= 1 groups, got shape {U.shape}"
        )
    if not np.all(np.isfinite(U)):
        raise InvalidInputError("utilities contain NaN or inf")
    return U


def maxmin_lp(U: Any) -> tuple[np.ndarray, float]:
    """Exact max-min policy argmax_{p ∈ Δ} min_k Σ_i p_i U[k, i] by LP (HiGHS): (p, value)."""
    U = _check_utilities(U)
    K, n = U.shape
    c = np.zeros(n + 1)
    c[-1] = -1.0  # maximize t
    A_ub = np.hstack([-U, np.ones((K, 1))])  # t − U_k·p ≤ 0
    A_eq = np.hstack([np.ones((1, n)), np.zeros((1, 1))])
    bounds = [(0, None)] * n + [(None, None)]
    res = linprog(
        c, A_ub=A_ub, b_ub=np.zeros(K), A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs"
    )
    if res.status != 0:  # pragma: no cover - the LP is always feasible and bounded
        raise RuntimeError(f"max-min LP failed: {res.message}")
    p = np.clip(res.x[:n], 0.0, None)
    p = p / p.sum()
    return p, float((U @ p).min())


def maxmin_hedge(U: Any, steps: int = 2000, eta: float | None = None) -> tuple[np.ndarray, float]:
    """MaxMin by no-regret self-play: the policy ascends (exponentiated gradient) the utility of the
    current group mixture, the groups descend by Hedge toward the worse-off; returns the average
    policy and its worst-group utility (→ the LP value at rate O(√(log(nK)/T)))."""
    U = _check_utilities(U)
    K, n = U.shape
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise InvalidInputError(f"steps must be a positive integer, got {steps!r}")
    span = max(float(U.max() - U.min()), 1e-12)
    e = float(eta) if eta is not None else np.sqrt(8.0 * np.log(max(n, K, 2)) / steps) / span
    zp, zq = np.zeros(n), np.zeros(K)
    avg = np.zeros(n)
    for _ in range(int(steps)):
        p = np.exp(zp - zp.max())
        p /= p.sum()
        q = np.exp(zq - zq.max())
        q /= q.sum()
        avg += p
        zp += e * (q @ U)
        zq -= e * (U @ p)
    avg /= steps
    return avg, float((U @ avg).min())


def maxmin_occupancy_lp(
    P: Any, R: Any, gamma: float, mu0: Any, baseline: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact max-min policy of a tabular MDP over occupancy measures (LP, HiGHS).

    maximize t s.t. Σ_{s,a} d(s,a) R_k(s,a) − b_k ≥ t for each group k, d ≥ 0 and the flow
    Σ_a d(s',a) = μ0(s') + γ Σ_{s,a} P(s'|s,a) d(s,a). ``P [S,A,S]``, ``R [K,S,A]``,
    ``baseline [K]`` (default each group's optimal value V_k*, so utilities are negative
    sub-optimality gaps). Returns (π [S,A] = d(s,a)/Σ_a d(s,a), values V_k(π) − b_k [K]).
    """
    P = np.asarray(P, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    S, A = P.shape[:2]
    if R.ndim != 3 or R.shape[1:] != (S, A) or R.shape[0] == 0:
        raise InvalidInputError(f"R must have shape [K, {S}, {A}] with K >= 1, got {R.shape}")
    K = R.shape[0]
    mu0 = np.asarray(mu0, dtype=np.float64)
    if baseline is None:
        from prl.mdp import TabularMDP

        baseline = np.array(
            [
                TabularMDP(P, R[k], gamma, mu0).expected_return(
                    TabularMDP(P, R[k], gamma, mu0).optimal_policy()
                )
                for k in range(K)
            ]
        )
    b = np.asarray(baseline, dtype=np.float64).reshape(K)
    nv = S * A
    c = np.zeros(nv + 1)
    c[-1] = -1.0
    A_ub = np.hstack([-R.reshape(K, nv), np.ones((K, 1))])
    b_ub = -b
    E = np.zeros((S, nv))
    for s in range(S):
        E[s, s * A : (s + 1) * A] = 1.0
    E -= gamma * P.reshape(nv, S).T
    A_eq = np.hstack([E, np.zeros((S, 1))])
    bounds = [(0, None)] * nv + [(None, None)]
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, A_eq=A_eq, b_eq=mu0, bounds=bounds, method="highs")
    if res.status != 0:  # pragma: no cover
        raise RuntimeError(f"max-min occupancy LP failed: {res.message}")
    d = np.clip(res.x[:nv], 0.0, None).reshape(S, A)
    tot = d.sum(1, keepdims=True)
    pi = np.where(tot > 1e-12, d / np.where(tot > 1e-12, tot, 1.0), 1.0 / A)
    return pi, (R.reshape(K, nv) @ d.reshape(nv)) - b


def _pair_data(
    xa: np.ndarray, xb: np.ndarray, label: np.ndarray, G: int, weight: np.ndarray
) -> tuple[PairData, Tensor]:
    N = xa.shape[0]
    feats = torch.as_tensor(np.concatenate([xa, xb]), dtype=torch.float64)
    first = torch.arange(N).expand(G, N).contiguous()
    second = (N + torch.arange(N)).expand(G, N).contiguous()
    lab = torch.as_tensor(label, dtype=torch.float64).expand(G, N).contiguous()
    return PairData(first, second, lab, torch.as_tensor(weight, dtype=torch.float64)), feats


def bt_group_policy(xa: Any, xb: Any, label: Any, l2: float = 0.1) -> np.ndarray:
    """One BT reward (linear in features) fitted to all pairs: the single-reward RLHF baseline."""
    xa, xb = np.asarray(xa, dtype=np.float64), np.asarray(xb, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    data, feats = _pair_data(xa, xb, y, 1, np.ones((1, xa.shape[0])))
    return newton_fit(data, "bt", 1.0, feats, l2=l2)[0].numpy()


@dataclass
class MixtureFit:
    """EM result: rewards W [K, d], user responsibilities [U, K], mixing weights [K], log-lik."""

    W: np.ndarray
    resp: np.ndarray
    weights: np.ndarray
    loglik: float


def _pair_logliks(xd: np.ndarray, y: np.ndarray, W: np.ndarray) -> np.ndarray:
    from scipy.special import log_expit

    h = xd @ W.T  # [N, K]
    return y[:, None] * log_expit(h) + (1 - y[:, None]) * log_expit(-h)


def mixture_loglik(
    xa: Any, xb: Any, label: Any, user: Any, W: Any, weights: Any
) -> tuple[float, np.ndarray]:
    """Log-likelihood Σ_u log Σ_k π_k Π_{i∈u} p_k(y_i) of a mixture of linear BT models, and the
    users' posteriors γ [U, K] (users are ``0..max(user)``)."""
    from scipy.special import logsumexp

    xa, xb = np.asarray(xa, dtype=np.float64), np.asarray(xb, dtype=np.float64)
    W = np.atleast_2d(np.asarray(W, dtype=np.float64))
    weights = check_proportions(weights, W.shape[0])
    user = np.asarray(user)
    ll = _pair_logliks(xa - xb, np.asarray(label, dtype=np.float64), W)  # [N, K]
    per_user = np.zeros((int(user.max()) + 1, W.shape[0]))
    np.add.at(per_user, user, ll)
    with np.errstate(divide="ignore"):
        logpost = per_user + np.log(weights)
    norm = logsumexp(logpost, axis=1, keepdims=True)
    return float(norm.sum()), np.exp(logpost - norm)


def em_step(
    xa: np.ndarray,
    xb: np.ndarray,
    y: np.ndarray,
    user: np.ndarray,
    resp: np.ndarray,
    l2: float = 1e-3,
) -> MixtureFit:
    """One EM iteration: M-step (mixing weights; weighted BT fits by Newton) then E-step."""
    K = resp.shape[1]
    weights = resp.mean(0)
    weights = weights / weights.sum()
    data, feats = _pair_data(xa, xb, y, K, resp[user].T)
    W = newton_fit(data, "bt", 1.0, feats, l2=l2).numpy()
    loglik, post = mixture_loglik(xa, xb, y, user, W, weights)
    return MixtureFit(W, post, weights, loglik)


def em_bt_mixture(
    xa: Any,
    xb: Any,
    label: Any,
    user: Any,
    K: int,
    rng: np.random.Generator,
    iters: int = 20,
    l2: float = 1e-3,
) -> MixtureFit:
    """EM over a mixture of K linear BT reward models r_k(x) = w_kᵀx on users' labelled pairs.

    Pair i (features ``xa[i]``, ``xb[i]`` [N, d], label y_i) belongs to user ``user[i]``; every
    user's pairs share one latent group. E-step: γ_uk ∝ π_k Π_{i∈u} σ(±w_kᵀ(x_a − x_b)); M-step:
    π_k = mean_u γ_uk and w_k = the γ-weighted BT maximum likelihood (+ ½ l2‖w‖²), by Newton.
    Starts from random responsibilities drawn with ``rng``.
    """
    if isinstance(K, bool) or not isinstance(K, (int, np.integer)) or K < 1:
        raise InvalidInputError(f"the number of groups K must be a positive integer, got {K!r}")
    xa, xb = np.asarray(xa, dtype=np.float64), np.asarray(xb, dtype=np.float64)
    y = np.asarray(label, dtype=np.float64)
    user = np.asarray(user)
    if xa.shape != xb.shape or xa.ndim != 2 or y.shape != (xa.shape[0],):
        raise InvalidInputError(
            f"need xa, xb [N, d] and label [N], got {xa.shape}, {xb.shape}, {y.shape}"
        )
    if user.shape != y.shape or (user.size and not np.issubdtype(user.dtype, np.integer)):
        raise InvalidInputError(
            f"user ids must be integers, one per pair ({y.shape[0]}), got shape {user.shape}"
        )
    if user.size and user.min() < 0:
        raise InvalidInputError("user ids must be >= 0")
    U = int(user.max()) + 1 if user.size else 0
    resp = rng.dirichlet(np.ones(K), size=U)
    fit = None
    for _ in range(int(iters)):
        fit = em_step(xa, xb, y, user, resp, l2)
        resp = fit.resp
    assert fit is not None
    return fit


# =============================================================================================
# data on the two-goal gridworld
# =============================================================================================
def rollout_segments(env: Any, n: int, rng: np.random.Generator, up_bias: float = 0.5) -> Segments:
    """n whole episodes (length = horizon) of a behaviour policy that moves up with probability
    ``up_bias`` and uniformly otherwise; rewards are the factors [B, T, F] (exact tabular model)."""
    mdp, T = env.mdp, env.horizon
    A = mdp.A
    probs = np.full(A, (1.0 - up_bias) / A)
    probs[0] += up_bias
    obs = np.zeros((n, T), dtype=np.int64)
    act = rng.choice(A, size=(n, T), p=probs).astype(np.int64)
    s = np.full(n, env.start, dtype=np.int64)
    Pn = np.argmax(mdp.P, axis=2)  # deterministic moves
    for t in range(T):
        obs[:, t] = s
        s = Pn[s, act[:, t]]
    rewards = env.factor_table[obs, act]
    return Segments(obs=obs, actions=act, rewards=rewards)


def step_features(env: Any, seg: Segments, use_action: bool = False) -> np.ndarray:
    """One-hot state (⊕ one-hot action when ``use_action``) per step, [B, T, D]."""
    S, A = env.mdp.S, env.mdp.A
    x = np.eye(S)[seg.obs]
    return np.concatenate([x, np.eye(A)[seg.actions]], -1) if use_action else x


def count_features(env: Any, seg: Segments, use_action: bool = False) -> np.ndarray:
    """Visit counts of each state (or (s, a) when ``use_action``) along each segment, [B, D]: the
    return of a tabular reward r is counts · r."""
    return step_features(env, seg, use_action).sum(1)


def reward_table(env: Any, w: Any) -> np.ndarray:
    """A reward over states [S] (or state-actions [S·A]) as a table R [S, A]."""
    S, A = env.mdp.S, env.mdp.A
    w = np.asarray(w, dtype=np.float64).reshape(-1)
    if w.size == S:
        return np.repeat(w[:, None], A, 1)
    if w.size == S * A:
        return w.reshape(S, A)
    raise InvalidInputError(f"a reward needs {S} or {S * A} entries, got {w.size}")


def two_goal_users(
    env: Any,
    n_users: int,
    pairs_per_user: int,
    proportions: Any,
    rng: np.random.Generator,
    beta: float = 2.0,
    pool: int = 400,
) -> tuple[Segments, np.ndarray, np.ndarray, Any, np.ndarray]:
    """Users of the rater population of ``env`` (group weights, B-Pref stochastic teacher σ(βΔR)),
    each labelling ``pairs_per_user`` pairs of a pool of behaviour episodes.

    Returns (pool segments, pair indices [U, m, 2], labels [U, m], RatedPreferences of all pairs
    (rater = group), groups [U]).
    """
    if n_users < 1 or pairs_per_user < 1:
        raise InvalidInputError(
            f"need at least one user and one pair each, got {n_users} users, {pairs_per_user}"
        )
    prop = check_proportions(proportions, env.group_weights.shape[0])
    population = RaterPopulation.from_weights(env.group_weights, prop, "stochastic", beta=beta)
    segs = rollout_segments(env, pool, rng)
    groups = population.sample_raters(n_users, rng)
    idx = rng.integers(0, pool, size=(n_users, pairs_per_user, 2))
    flat = idx.reshape(-1, 2)
    raters = np.repeat(groups, pairs_per_user)
    prefs = population.label(segs[flat[:, 0]], segs[flat[:, 1]], rng, raters=raters)
    return segs, idx, prefs.label.reshape(n_users, pairs_per_user), prefs, groups


def plan(env: Any, R: np.ndarray) -> np.ndarray:
    """The optimal (deterministic) policy [S, A] of the grid under reward table R [S, A]."""
    return env.mdp_with_rewards(R).optimal_policy()


def group_returns(env: Any, pi: np.ndarray) -> np.ndarray:
    """Each group's exact discounted return V_k(π) from the start, [K]."""
    return np.array([env.mdp_for(w).expected_return(pi) for w in env.group_weights])


# =============================================================================================
# `prl run` learners
# =============================================================================================
def _require_env(name: str, env: str, allowed: Sequence[str]) -> None:
    if env not in allowed:
        raise ConfigError(f"{name} runs on {', '.join(map(repr, allowed))}, not {env!r}")


def _torch_state(g: torch.Generator) -> Tensor:
    return g.get_state().clone()


@dataclass
class GPMConfig:
    """GPM on a dueling bandit: embeddings from duels, then the learned game's minimax winner."""

    blocks: int = option(1, "number k of 2×2 blocks of R_≻ (embedding dimension 2k)")
    tau: float = option(1.0, "temperature τ of P = σ(⟨R v, v'⟩/τ)")
    normalize: bool = option(False, "unit-length embeddings (the paper's choice; needs small τ)")
    batch: int = option(64, "duels per step (uniformly random pairs, labels ~ P)")
    lr: float = option(0.05, "Adam learning rate (GPM and the BT baseline)")
    updates: int = option(20, "full-batch Adam updates per step")
    heldout: int = option(500, "held-out duels for the log-likelihood comparison with BT")

    def validate(self) -> None:
        require(self.blocks >= 1, f"blocks must be >= 1, got {self.blocks}")
        require(self.tau > 0, f"tau must be > 0, got {self.tau}")
        require(self.batch >= 1 and self.updates >= 1, "batch and updates must be >= 1")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.heldout >= 1, f"heldout must be >= 1, got {self.heldout}")


def _duels(P: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    K = P.shape[0]
    i = rng.integers(0, K, n)
    j = (i + rng.integers(1, K, n)) % K  # distinct pairs
    y = (rng.random(n) < P[i, j]).astype(np.float64)
    return i, j, y


_SMOKE_SOURCE = "tests/test_pluralistic.py::test_learners_smoke_and_determinism"
_USERS_TINY = {"users": 12, "pairs_per_user": 3, "pool": 30}


@register_algo(
    "gpm",
    description="GPM preference embeddings (block skew-symmetric R) learned from duels; "
    "minimax winner of the learned game",
    envs=("dueling",),
)
class GPMLearner(Learner):
    """GPM and a BT baseline learned from the same duels; one step = ``batch`` new duels and
    ``updates`` Adam steps on all duels so far. Metrics: held-out log-likelihood of both, max
    |P̂ − P|, and the exploitability (on the true P) of the learned game's minimax winner."""

    Config = GPMConfig
    smoke = Smoke(
        env="dueling",
        steps=48,
        config={"batch": 16, "updates": 5, "heldout": 50},
        env_kwargs={"game": "dice"},
        family="pluralistic",
        source=_SMOKE_SOURCE,
    )
    default_steps = 2000
    step_unit = "queries"

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        _require_env("gpm", env, ("dueling",))

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        from prl import envs

        super().__init__(config, env, env_kwargs, seed, device)
        self.env = envs.make(env, **env_kwargs)
        self.P = np.asarray(self.env.unwrapped.P, dtype=np.float64)
        n = self.P.shape[0]
        gen = torch.Generator().manual_seed(int(seed))
        self.gpm = GPM(n, config.blocks, config.tau, config.normalize, generator=gen)
        self.bt = BTScores(n)
        self.opt_gpm = torch.optim.Adam(self.gpm.parameters(), lr=config.lr)
        self.opt_bt = torch.optim.Adam(self.bt.parameters(), lr=config.lr)
        hold = np.random.default_rng([int(seed), 21])
        self.heldout = _duels(self.P, config.heldout, hold)
        self.data: list[np.ndarray] = [np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0)]

    def step(self) -> dict[str, float]:
        from prl.games import exploitability

        cfg = self.config
        new = _duels(self.P, cfg.batch, self.rng)
        self.data = [np.concatenate([d, x]) for d, x in zip(self.data, new, strict=True)]
        lg = fit_pairs(self.gpm, *self.data, steps=cfg.updates, optimizer=self.opt_gpm)
        fit_pairs(self.bt, *self.data, steps=cfg.updates, optimizer=self.opt_bt)
        self.steps_done += cfg.batch
        P_hat = self.gpm.matrix()
        winner, _ = maxmin_lp((P_hat - 0.5).T)
        return {
            "step": self.steps_done,
            "queries": self.steps_done,
            "loss": lg[-1],
            "heldout_ll_gpm": pair_loglik(self.gpm, *self.heldout),
            "heldout_ll_bt": pair_loglik(self.bt, *self.heldout),
            "p_max_error": float(np.abs(P_hat - self.P).max()),
            "exploitability": float(exploitability(self.P, winner)),
        }

    def policy(self) -> np.ndarray:
        """The minimax winner of the learned game P̂ over the arms: what ``predict`` plays."""
        with torch.no_grad():
            winner, _ = maxmin_lp((self.gpm.matrix() - 0.5).T)
        return np.asarray(winner, dtype=np.float64)

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "gpm": self.gpm.state_dict(),
            "bt": self.bt.state_dict(),
            "opt_gpm": self.opt_gpm.state_dict(),
            "opt_bt": self.opt_bt.state_dict(),
            "data": [torch.as_tensor(d) for d in self.data],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gpm.load_state_dict(state["gpm"])
        self.bt.load_state_dict(state["bt"])
        self.opt_gpm.load_state_dict(state["opt_gpm"])
        self.opt_bt.load_state_dict(state["opt_bt"])
        self.data = [d.numpy() for d in state["data"]]

    def close(self) -> None:
        self.env.close()


@dataclass
class PluralConfig:
    """Shared data options of the two-goal learners (the users and their labelled pairs)."""

    users: int = option(200, "training users (each of one group, drawn with the proportions)")
    pairs_per_user: int = option(8, "labelled pairs per user")
    proportions: list[float] = option([0.8, 0.2], "group proportions (majority wants goal A)")  # noqa: RUF009
    label_beta: float = option(2.0, "rationality β of the raters' σ(β ΔR) labels")
    pool: int = option(400, "behaviour episodes the pairs are drawn from")

    def validate(self) -> None:
        require(self.users >= 2, f"users must be >= 2, got {self.users}")
        require(self.pairs_per_user >= 1, f"pairs_per_user must be >= 1, got {self.pairs_per_user}")
        require(self.pool >= 2, f"pool must be >= 2, got {self.pool}")
        require(self.label_beta > 0, f"label_beta must be > 0, got {self.label_beta}")
        try:
            check_proportions(self.proportions, 2)
        except InvalidInputError as exc:
            raise ConfigError(str(exc)) from None


class _TwoGoalsLearner(Learner):
    """Builds the users' data set (from the run's seed) and the single-BT baseline once."""

    name = ""

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        _require_env(cls.name, env, ("two_goals",))

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        from prl import envs

        super().__init__(config, env, env_kwargs, seed, device)
        self.env = envs.make(env, **env_kwargs).unwrapped
        data_rng = np.random.default_rng([int(seed), 2024])
        c = config
        self.segs, self.idx, self.labels, self.prefs, self.groups = two_goal_users(
            self.env, c.users, c.pairs_per_user, c.proportions, data_rng, c.label_beta, c.pool
        )
        self.counts = count_features(self.env, self.segs)
        flat = self.idx.reshape(-1, 2)
        self.xa, self.xb = self.counts[flat[:, 0]], self.counts[flat[:, 1]]
        self.y = self.labels.reshape(-1)
        self.user = np.repeat(np.arange(c.users), c.pairs_per_user)
        w_bt = bt_group_policy(self.xa, self.xb, self.y, l2=getattr(c, "l2", 0.1))
        self.bt_returns = group_returns(self.env, plan(self.env, reward_table(self.env, w_bt)))
        self.optimum = np.array(
            [
                self.env.mdp_for(w).expected_return(self.env.mdp_for(w).optimal_policy())
                for w in self.env.group_weights
            ]
        )

    def acting_policy(self) -> np.ndarray:
        """The policy [S, A] that ``predict`` acts with (each learner defines it)."""
        raise NotImplementedError

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[Any, Any]:
        """SB3's ``predict`` on the grid's state indices: actions of :meth:`acting_policy`."""
        pi = self.acting_policy()
        obs = np.asarray(observation, dtype=np.int64)
        flat = obs.reshape(-1)
        if deterministic:
            acts = pi[flat].argmax(axis=1)
        else:
            rng = getattr(self, "_predict_rng", None)
            if rng is None:  # its own stream: acting never moves the training generator
                rng = self._predict_rng = np.random.default_rng([int(self.seed), 0x5B3])
            acts = np.array([rng.choice(pi.shape[1], p=pi[x] / pi[x].sum()) for x in flat])
        acts = acts.astype(np.int64)
        return (acts[0] if obs.ndim == 0 else acts.reshape(obs.shape)), state

    def _baseline_row(self) -> dict[str, float]:
        row = {}
        for k in range(len(self.optimum)):
            row[f"bt_return_g{k}"] = float(self.bt_returns[k])
            row[f"optimal_return_g{k}"] = float(self.optimum[k])
        return row

    def close(self) -> None:
        self.env.close()


@dataclass
class MaxMinConfig(PluralConfig):
    """MaxMin-RLHF on the two-goal grid: EM over K BT rewards, then the max-min policy (LP)."""

    groups: int = option(2, "number K of BT reward models in the mixture")
    l2: float = option(0.1, "ridge on each reward's weights (M-step and the single-BT baseline)")

    def validate(self) -> None:
        super().validate()
        require(self.groups >= 1, f"groups must be >= 1, got {self.groups}")
        require(self.l2 > 0, f"l2 must be > 0, got {self.l2}")


@register_algo(
    "maxmin_rlhf",
    description="MaxMin-RLHF: EM over a mixture of BT rewards, then the max-min group policy",
    envs=("two_goals",),
)
class MaxMinLearner(_TwoGoalsLearner):
    """One step = one EM iteration; the max-min policy of the current rewards is solved exactly
    over occupancy measures and evaluated with every group's true reward (vs single-BT RLHF)."""

    Config = MaxMinConfig
    smoke = Smoke(env="two_goals", steps=3, config=dict(_USERS_TINY), source=_SMOKE_SOURCE)
    default_steps = 20
    step_unit = "EM iterations"
    name = "maxmin_rlhf"

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        self.resp = self.rng.dirichlet(np.ones(config.groups), size=config.users)

    def step(self) -> dict[str, float]:
        fit = em_step(self.xa, self.xb, self.y, self.user, self.resp, self.config.l2)
        self.resp = fit.resp
        self.steps_done += 1
        R = np.stack([reward_table(self.env, w) for w in fit.W])
        pi, _ = maxmin_occupancy_lp(self.env.mdp.P, R, self.env.mdp.gamma, self.env.mdp.mu0)
        self.pi = np.asarray(pi, dtype=np.float64)
        ret = group_returns(self.env, pi)
        assign = fit.resp.argmax(1)
        purity = (
            max(float(np.mean(assign == self.groups)), float(np.mean(assign == 1 - self.groups)))
            if self.config.groups == 2
            else float("nan")
        )
        row = {"step": self.steps_done, "loglik": fit.loglik, "purity": purity}
        for k in range(len(ret)):
            row[f"maxmin_return_g{k}"] = float(ret[k])
        return {**row, **self._baseline_row()}

    def acting_policy(self) -> np.ndarray:
        """The max-min policy of the last EM fit (one policy for every group)."""
        if getattr(self, "pi", None) is None:
            raise InvalidInputError("maxmin_rlhf has no policy yet: train at least one step")
        return self.pi

    def state_dict(self) -> dict[str, Any]:
        out = {**super().state_dict(), "resp": torch.as_tensor(self.resp)}
        if getattr(self, "pi", None) is not None:
            out["pi"] = torch.as_tensor(self.pi)
        return out

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.resp = state["resp"].numpy()
        self.pi = state["pi"].numpy() if "pi" in state else None


@dataclass
class VPLConfig(PluralConfig):
    """VPL on the two-goal grid: a latent-user reward r(s, a, z) and z-conditioned planning."""

    latent: int = option(2, "dimension of the user latent z")
    hidden: int = option(64, "width of the encoder and reward networks")
    beta: float = option(0.05, "KL weight β of the ELBO")
    lr: float = option(3e-3, "Adam learning rate")
    batch_users: int = option(32, "users per gradient step")
    eval_every: int = option(50, "gradient steps between evaluations (0 = never)")
    eval_users: int = option(40, "held-out users whose z-conditioned policies are evaluated")
    use_action: bool = option(False, "reward r(s, a, z) instead of the paper's r(s, z)")

    def validate(self) -> None:
        super().validate()
        require(self.latent >= 1 and self.hidden >= 1, "latent and hidden must be >= 1")
        require(self.beta >= 0, f"beta must be >= 0, got {self.beta}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(self.batch_users >= 1, f"batch_users must be >= 1, got {self.batch_users}")
        require(self.eval_every >= 0, f"eval_every must be >= 0, got {self.eval_every}")
        require(self.eval_users >= 1, f"eval_users must be >= 1, got {self.eval_users}")


def user_tensors(
    env: Any,
    segs: Segments,
    idx: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    use_action: bool = False,
) -> UserPairs:
    """The users' pairs as VPL inputs (one-hot state [⊕ action] step features)."""
    x = torch.as_tensor(step_features(env, segs, use_action), dtype=torch.float32)
    i = torch.as_tensor(idx)
    return UserPairs(
        x[i[..., 0]],
        x[i[..., 1]],
        torch.as_tensor(labels, dtype=torch.float32),
        torch.as_tensor(groups),
    )


@torch.no_grad()
def vpl_reward_table(model: VPL, env: Any, z: Tensor) -> np.ndarray:
    """r(s, z) (or r(s, a, z) for a model with action inputs) for every (s, a), [S, A]."""
    S, A = env.mdp.S, env.mdp.A
    if model.feat_dim == S:
        x = torch.eye(S, dtype=torch.float32)
        return reward_table(env, model.reward(x, z.reshape(1, -1)).double().numpy())
    s, a = np.meshgrid(np.arange(S), np.arange(A), indexing="ij")
    x = torch.as_tensor(np.concatenate([np.eye(S)[s], np.eye(A)[a]], -1), dtype=torch.float32)
    return model.reward(x, z.reshape(1, 1, -1)).double().numpy()


@register_algo(
    "vpl",
    description="VPL: latent-user reward r(s,z) by the ELBO; z-conditioned policies per user",
    envs=("two_goals",),
)
class VPLLearner(_TwoGoalsLearner):
    """One step = one Adam step on the negative ELBO over ``batch_users`` users. Evaluation:
    for held-out users, z = the posterior mean from their pairs, the policy plans on r(·, ·, z),
    and is scored with the user's true group reward (vs one BT reward for everyone)."""

    Config = VPLConfig
    smoke = Smoke(
        env="two_goals",
        steps=6,
        config={**_USERS_TINY, "hidden": 8, "batch_users": 4, "eval_every": 3, "eval_users": 4},
        source=_SMOKE_SOURCE,
    )
    default_steps = 600
    step_unit = "gradient steps"
    name = "vpl"

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        c = config
        self.data = user_tensors(
            self.env, self.segs, self.idx, self.labels, self.groups, c.use_action
        )
        ev_rng = np.random.default_rng([int(seed), 7])
        segs, idx, labels, _, groups = two_goal_users(
            self.env, c.eval_users, c.pairs_per_user, c.proportions, ev_rng, c.label_beta, c.pool
        )
        self.eval_data = user_tensors(self.env, segs, idx, labels, groups, c.use_action)
        self.gen = torch.Generator().manual_seed(int(seed) + 1)
        with torch.random.fork_rng():  # the initial weights depend on the seed only
            torch.manual_seed(int(seed))
            self.model = VPL(self.data.xa.shape[-1], c.latent, c.hidden, one_hot=True)
        self.opt = torch.optim.Adam(self.model.parameters(), lr=c.lr)

    def acting_policy(self, z: Any = None) -> np.ndarray:
        """The plan under r(s, a, z): ``z`` a user's latent (default 0, the prior mean — VPL's
        population-average user; pass a user's posterior mean to act for that user)."""
        if z is None:
            z = torch.zeros(self.model.latent_dim)
        with torch.no_grad():
            return plan(self.env, vpl_reward_table(self.model, self.env, torch.as_tensor(z)))

    def evaluate_users(self) -> dict[str, float]:
        """Mean true return of each group's users under their z-conditioned policies."""
        d = self.eval_data
        with torch.no_grad():
            mu, _ = self.model.encode(d.xa, d.xb, d.label)
        rets = np.zeros(d.users)
        for u in range(d.users):
            pi = plan(self.env, vpl_reward_table(self.model, self.env, mu[u]))
            rets[u] = group_returns(self.env, pi)[int(d.group[u])]
        g = d.group.numpy()
        row = {}
        for k in range(len(self.optimum)):
            row[f"vpl_return_g{k}"] = float(rets[g == k].mean()) if np.any(g == k) else np.nan
        return row

    def step(self) -> dict[str, float]:
        c = self.config
        pick = torch.as_tensor(self.rng.choice(self.data.users, size=c.batch_users))
        batch = self.data.index(pick)
        self.opt.zero_grad()
        loss, bce, kl = self.model.loss(batch, c.beta, self.gen)
        loss.backward()
        self.opt.step()
        self.steps_done += 1
        row: dict[str, float] = {
            "step": self.steps_done,
            "loss": float(loss.detach()),
            "bce": float(bce.detach()),
            "kl": float(kl.detach()),
        }
        if c.eval_every and self.steps_done % c.eval_every == 0:
            row.update(self.evaluate_users())
            row.update(self._baseline_row())
        return row

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "gen": _torch_state(self.gen),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.model.load_state_dict(state["model"])
        self.opt.load_state_dict(state["opt"])
        self.gen.set_state(state["gen"])
