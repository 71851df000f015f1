"""C-MORL — constrained multi-objective RL (Liu et al., "C-MORL: Multi-Objective Reinforcement
Learning through Efficient Discovery of Pareto Front").

Two stages build a set of policies whose returns approximate the Pareto front:

1. **Pareto initialization** — an even grid of preference weights on the simplex; one PPO
   policy per weight with a vector-valued critic V(s) ∈ R^K and the scalarized advantage
   w·(R − V) (vector GAE, then w·Â).
2. **Pareto extension** — pick up to 5 (2 objectives) / 6 (≥ 3) policies of the Pareto archive
   by crowding distance; for each picked policy π_r and each objective l solve
       max_π G_l(π)  s.t.  G_j(π) ≥ β·G_j(π_r)  for j ≠ l
   with the log barrier  G_l + (1/t) Σ_{j≠l} log(G_j − β·G_j(π_r))  (β = 0.9, t = 20), every
   intermediate policy offered to the archive. The barrier acts on the **objective axis**
   (the authors' code sliced the batch axis). For a negative G_j(π_r) the bound β·G_j would be
   *above* the current value; we use G_j(π_r) − (1 − β)|G_j(π_r)|, which is β·G_j(π_r) for
   G_j ≥ 0 and keeps π_r strictly feasible otherwise.

The exact tabular form (:func:`cmorl_exact`: gradients of the exact returns of softmax policies)
and the sampled PPO learner (``prl run cmorl``) share the pieces below: the weight grid, the
barrier objective, the constraint bounds, crowding-distance selection and the Pareto archive.
``cmorl_stage1`` is Stage 1 alone (linear scalarization on the weight grid) at the same budget.
The budget counts true environment steps: every ``env.step`` of every parallel copy.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from prl.common.ppo import clipped_ratio_term, clipped_surrogate, gae_recursion
from prl.common.vec import START_METHOD, VEC_ENV_HELP, check_vec_env
from prl.config import alias, option, require, resolve_aliases
from prl.errors import ConfigError, InvalidInputError
from prl.metrics import (
    expected_utility,
    hypervolume,
    pareto_front,
    pareto_mask,
    sparsity,
    uniform_weight_grid,
)
from prl.nets import mlp
from prl.run import Learner, register_algo
from prl.smoke import Smoke

__all__ = [
    "CMORL",
    "CMORLConfig",
    "CMORLStage1",
    "ExactResult",
    "ParetoArchive",
    "barrier_objective",
    "cmorl_exact",
    "constraint_lower_bounds",
    "crowding_distance",
    "default_n_select",
    "eu_weights",
    "exact_returns",
    "select_by_crowding",
    "weight_grid",
]


# =============================================================================================
# shared pieces: one definition used by the exact and the sampled versions


def default_divisions(K: int) -> int:
    """Grid divisions per simplex axis: 5 for 2 objectives (6 weights), 3 for ≥ 3."""
    return 5 if K <= 2 else 3


def default_n_select(K: int) -> int:
    """Policies extended per Stage-2 round: 5 for 2 objectives, 6 for ≥ 3 (C-MORL)."""
    return 5 if K <= 2 else 6


def weight_grid(K: int, divisions: int | None = None) -> np.ndarray:
    """The even simplex grid of Stage-1 preference weights [N, K] (coordinates k/divisions)."""
    d = default_divisions(K) if not divisions else int(divisions)
    if d < 1:
        raise InvalidInputError(f"divisions must be ≥ 1, got {divisions}")
    return uniform_weight_grid(K, 1.0 / d)


def eu_weights(K: int) -> np.ndarray:
    """Uniform weight grid for expected utility: spacing 0.01 for 2 objectives (C-MORL), coarser
    for more so the grid stays small (0.05 for 3, 0.1 for 4, 0.2 beyond)."""
    step = {1: 1.0, 2: 0.01, 3: 0.05, 4: 0.1}.get(K, 0.2)
    return uniform_weight_grid(K, step)


def constraint_lower_bounds(G0: torch.Tensor | np.ndarray, beta: float) -> Any:
    """Stage-2 constraint levels: β·G_j(π_r) for G_j ≥ 0, G_j − (1 − β)|G_j| in general."""
    if not 0.0 < beta < 1.0:
        raise InvalidInputError(f"beta must lie in (0, 1), got {beta}")
    if isinstance(G0, torch.Tensor):
        return G0 - (1.0 - beta) * G0.abs()
    G0 = np.asarray(G0, dtype=np.float64)
    return G0 - (1.0 - beta) * np.abs(G0)


def safe_log(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """log x for x ≥ eps, continued linearly below (finite values and a restoring gradient when
    a sampled estimate steps outside the feasible region)."""
    xe = torch.clamp(x, min=eps)
    return torch.where(x >= eps, torch.log(xe), math.log(eps) + (x - eps) / eps)


def barrier_objective(
    G: torch.Tensor, lower: torch.Tensor, l: int | torch.Tensor, t: float
) -> torch.Tensor:
    """Log-barrier objective G_l + (1/t) Σ_{j≠l} log(G_j − lower_j) over the objective axis.

    ``G`` is [..., K] (objectives on the **last** axis, any leading batch axes); ``lower`` is
    [K] or broadcastable to G; ``l`` an int or an integer tensor of the leading shape (one
    objective to maximize per row). Returns the objective per row [...].
    """
    if G.ndim < 1:
        raise InvalidInputError(f"G must have an objective axis, got shape {tuple(G.shape)}")
    K = G.shape[-1]
    l_t = torch.as_tensor(l, device=G.device, dtype=torch.long)
    if torch.any((l_t < 0) | (l_t >= K)):
        raise InvalidInputError(f"objective index l must lie in [0, {K}), got {l}")
    mask = nn.functional.one_hot(l_t, K).to(G.dtype)
    mask = torch.broadcast_to(mask, G.shape)
    primary = (G * mask).sum(-1)
    slack = G - lower
    barrier = (safe_log(slack) * (1.0 - mask)).sum(-1)
    return primary + barrier / t


def crowding_distance(points: np.ndarray) -> np.ndarray:
    """NSGA-II crowding distance [n]: Σ_k (f_k(next) − f_k(prev)) / range_k, ∞ at the extremes."""
    pts = np.asarray(points, dtype=np.float64)
    n, K = pts.shape
    if n <= 2:
        return np.full(n, np.inf)
    dist = np.zeros(n)
    for k in range(K):
        order = np.argsort(pts[:, k], kind="stable")
        span = pts[order[-1], k] - pts[order[0], k]
        dist[order[0]] = dist[order[-1]] = np.inf
        if span <= 0:
            continue
        gaps = (pts[order[2:], k] - pts[order[:-2], k]) / span
        dist[order[1:-1]] += gaps
    return dist


def select_by_crowding(points: np.ndarray, k: int) -> np.ndarray:
    """Indices of up to ``k`` non-dominated points with the largest crowding distance (ties:
    lower index first), in index order."""
    pts = np.asarray(points, dtype=np.float64)
    idx = np.flatnonzero(pareto_mask(pts))
    if len(idx) <= k:
        return idx
    cd = crowding_distance(pts[idx])
    order = np.lexsort((idx, -cd))  # by crowding distance descending, then index
    return np.sort(idx[order[:k]])


class ParetoArchive:
    """Non-dominated (return vector, payload) pairs: offering points keeps the archive a front
    (a new point weakly dominated by an archived one is rejected; archived points it dominates
    are dropped)."""

    def __init__(self, K: int, points: Any = None, payloads: list[Any] | None = None):
        self.K = int(K)
        self.points = np.zeros((0, self.K)) if points is None else np.asarray(points, float)
        self.points = self.points.reshape(-1, self.K)
        self.payloads: list[Any] = list(payloads or [])
        self.offered = 0

    def __len__(self) -> int:
        return len(self.payloads)

    def offer(self, point: Any, payload: Any) -> bool:
        """Offer one point; True if it entered the archive."""
        return bool(self.offer_many(np.asarray(point, float).reshape(1, -1), [payload])[0])

    def offer_many(self, points: Any, payloads: list[Any]) -> np.ndarray:
        """Offer a batch [n, K]; returns which of them entered the archive."""
        pts = np.asarray(points, dtype=np.float64).reshape(-1, self.K)
        if len(payloads) != len(pts):
            raise InvalidInputError(f"{len(pts)} points but {len(payloads)} payloads")
        self.offered += len(pts)
        old = len(self.payloads)
        both = np.concatenate([self.points, pts])
        keep = pareto_mask(both)  # the first of equal points is kept: archived ones win
        everyone = self.payloads + list(payloads)
        self.points = both[keep]
        self.payloads = [everyone[i] for i in np.flatnonzero(keep)]
        return keep[old:]

    def array(self) -> np.ndarray:
        """The archived points [n, K] (mutually non-dominated)."""
        return self.points.copy()


def front_metrics(points: np.ndarray, ref: np.ndarray, eu_w: np.ndarray) -> dict[str, float]:
    """Hypervolume, expected utility, sparsity and size of a set of return vectors."""
    if len(points) == 0:
        return {"hv": 0.0, "eu": float("nan"), "sparsity": 0.0, "front_size": 0}
    front = pareto_front(points)
    return {
        "hv": hypervolume(front, ref),
        "eu": expected_utility(front, eu_w),
        "sparsity": sparsity(front),
        "front_size": int(front.shape[0]),
    }


# =============================================================================================
# the exact tabular form


def exact_returns(
    logits: torch.Tensor, P: torch.Tensor, R: torch.Tensor, mu0: torch.Tensor, gamma: float
) -> torch.Tensor:
    """Exact discounted return vectors J(π_θ) [N, K] of softmax policies θ [N, S, A].

    J = μ0ᵀ (I − γ P_π)⁻¹ r_π per objective, with P [S, A, S] the kernel that ends episodes at
    terminal states (zero rows) and R [S, A, K]; differentiable in θ.
    """
    pi = torch.softmax(logits, -1)
    return _returns_of(pi, P, R, mu0, gamma)


def _returns_of(
    pi: torch.Tensor, P: torch.Tensor, R: torch.Tensor, mu0: torch.Tensor, gamma: float
) -> torch.Tensor:
    S = P.shape[0]
    P_pi = torch.einsum("nsa,sat->nst", pi, P)
    r_pi = torch.einsum("nsa,sak->nsk", pi, R)
    M = torch.eye(S, dtype=P.dtype, device=P.device) - gamma * P_pi
    # d_s = μ0ᵀ M⁻¹ (visitation), J = d_s r_π
    d = torch.linalg.solve(M.transpose(-1, -2), mu0.expand(pi.shape[0], S).unsqueeze(-1))
    return torch.einsum("ns,nsk->nk", d.squeeze(-1), r_pi)


@dataclass
class ExactResult:
    """Output of :func:`cmorl_exact`: the archive front, Stage 1's front and per-iteration rows."""

    front: np.ndarray
    stage1_front: np.ndarray
    rows: list[dict[str, float]]
    policies: list[np.ndarray]


def cmorl_exact(
    mdp: Any,
    *,
    divisions: int | None = None,
    stage1_iters: int = 200,
    stage2_rounds: int = 2,
    stage2_iters: int = 40,
    n_select: int | None = None,
    beta: float = 0.9,
    t: float = 20.0,
    lr: float = 0.1,
    deterministic_eval: bool = False,
    stage2: bool = True,
    ref: np.ndarray | None = None,
    record_every: int = 10,
    device: Any = "cpu",
) -> ExactResult:
    """C-MORL with exact returns on a :class:`envs.multiobjective.MOTabularMDP`.

    Stage 1: Adam ascent on w·J(θ_w) for every grid weight (all weights batched, θ = 0 at the
    start). Stage 2: ``stage2_rounds`` rounds of crowding-distance selection from the archive,
    then for every selected policy and objective l, ``stage2_iters`` Adam steps on the barrier
    objective with exact J (all branches batched), each step halved back towards the previous
    iterate until every constraint G_j ≥ lower_j (j ≠ l) holds (the barrier method's
    feasibility line search). Every iterate is evaluated exactly (its
    greedy policy if ``deterministic_eval``) and offered to the archive. ``stage2=False`` is the
    linear-scalarization baseline: it spends the same number of policy-gradient steps
    (policies × iterations) on Stage 1. Rows (front metrics) every ``record_every`` iterations.
    Deterministic: no randomness is involved.
    """
    dev = torch.device(device)
    dt = torch.float64
    P = torch.as_tensor(np.array(mdp.base.P_continue), dtype=dt, device=dev)
    R = torch.as_tensor(np.array(mdp.R), dtype=dt, device=dev)
    mu0 = torch.as_tensor(np.where(mdp.terminal, 0.0, mdp.mu0), dtype=dt, device=dev)
    K, S, A = mdp.K, mdp.S, mdp.A
    W = torch.as_tensor(weight_grid(K, divisions), dtype=dt, device=dev)
    n_sel = default_n_select(K) if n_select is None else int(n_select)
    ref_np = np.asarray(mdp.nadir() if ref is None else ref, dtype=np.float64)
    eu_w = eu_weights(K)
    archive = ParetoArchive(K)
    rows: list[dict[str, float]] = []
    steps = 0  # policy-gradient steps, summed over policies (the exact analogue of env steps)

    def offer_all(theta: torch.Tensor, stage: int, it: int, last: bool) -> None:
        with torch.no_grad():
            if deterministic_eval:
                pi = nn.functional.one_hot(theta.argmax(-1), A).to(dt)
            else:
                pi = torch.softmax(theta, -1)
            J = _returns_of(pi, P, R, mu0, mdp.gamma).cpu().numpy()
        th = theta.detach().cpu().numpy()
        archive.offer_many(J, [th[i].copy() for i in range(len(th))])
        if last or it % record_every == 0:
            rows.append(
                {"stage": stage, "iteration": it, "pg_steps": steps}
                | front_metrics(archive.array(), ref_np, eu_w)
            )

    # ---- Stage 1: linear scalarization on the weight grid ---------------------------------
    n_pol = W.shape[0]
    iters1 = stage1_iters
    if not stage2:
        iters1 += math.ceil(stage2_rounds * n_sel * K * stage2_iters / n_pol)
    theta = torch.zeros(n_pol, S, A, dtype=dt, device=dev, requires_grad=True)
    opt = torch.optim.Adam([theta], lr=lr)
    it = 0
    for k in range(iters1):
        J = exact_returns(theta, P, R, mu0, mdp.gamma)
        loss = -(J * W).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
        it += 1
        steps += n_pol
        offer_all(theta.detach(), 1, it, last=(k == iters1 - 1) and not stage2)
    stage1_front = archive.array()
    # ---- Stage 2: constrained extension ---------------------------------------------------
    if stage2:
        for rnd in range(stage2_rounds):
            sel = select_by_crowding(archive.array(), n_sel)
            starts = torch.as_tensor(
                np.stack([archive.payloads[i] for i in sel]), dtype=dt, device=dev
            )
            # one branch per (selected policy, objective l), all batched
            th0 = starts.repeat_interleave(K, dim=0)
            ls = torch.arange(K, device=dev).repeat(len(sel))
            with torch.no_grad():
                G0 = exact_returns(th0, P, R, mu0, mdp.gamma)
            lower = constraint_lower_bounds(G0, beta)
            branch = th0.clone().requires_grad_(True)
            opt2 = torch.optim.Adam([branch], lr=lr)
            other = ~nn.functional.one_hot(ls, K).bool()  # the constrained objectives j ≠ l
            for k in range(stage2_iters):
                J = exact_returns(branch, P, R, mu0, mdp.gamma)
                loss = -barrier_objective(J, lower, ls, t).sum()
                opt2.zero_grad()
                loss.backward()
                prev = branch.detach().clone()
                opt2.step()
                with torch.no_grad():  # barrier method: backtrack to stay feasible
                    for _ in range(40):
                        Jn = exact_returns(branch, P, R, mu0, mdp.gamma)
                        bad = ((Jn < lower) & other).any(-1)
                        if not bool(bad.any()):
                            break
                        branch[bad] = 0.5 * (branch[bad] + prev[bad])
                it += 1
                steps += branch.shape[0]
                last = rnd == stage2_rounds - 1 and k == stage2_iters - 1
                offer_all(branch.detach(), 2, it, last)
    return ExactResult(
        front=archive.array(),
        stage1_front=stage1_front,
        rows=rows,
        policies=list(archive.payloads),
    )


# =============================================================================================
# the sampled learner: PPO with a vector-valued critic


class ObsEncoder:
    """Observation → float features: one-hot for Discrete and small integer Boxes, else raw
    (optionally normalized by running statistics kept in the policy's buffers)."""

    def __init__(self, space: Any):
        from gymnasium import spaces

        self.kind = "raw"
        if isinstance(space, spaces.Discrete):
            self.kind = "discrete"
            self.sizes = [int(space.n)]
            self.offsets = [int(space.start)]
            self.dim = int(space.n)
        elif (
            isinstance(space, spaces.Box)
            and np.issubdtype(space.dtype, np.integer)
            and np.all(np.isfinite(space.low))
            and np.all(np.isfinite(space.high))
            and float(np.sum(space.high - space.low + 1)) <= 1024
        ):
            self.kind = "int_box"
            self.low = space.low.reshape(-1).astype(np.int64)
            self.sizes = (space.high.reshape(-1) - space.low.reshape(-1) + 1).astype(np.int64)
            self.dim = int(self.sizes.sum())
        elif isinstance(space, spaces.Box):
            self.dim = int(np.prod(space.shape))
        else:
            raise ConfigError(f"C-MORL supports Discrete or Box observations, got {space}")

    @property
    def normalizable(self) -> bool:
        return self.kind == "raw"

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        """Features [B, dim] of a batch of observations."""
        if self.kind == "discrete":
            o = np.asarray(obs, dtype=np.int64).reshape(-1) - self.offsets[0]
            out = np.zeros((o.shape[0], self.dim), dtype=np.float32)
            out[np.arange(o.shape[0]), o] = 1.0
            return out
        if self.kind == "int_box":
            o = np.asarray(obs, dtype=np.int64).reshape(len(obs), -1) - self.low
            o = np.clip(o, 0, self.sizes - 1)
            out = np.zeros((o.shape[0], self.dim), dtype=np.float32)
            starts = np.concatenate(([0], np.cumsum(self.sizes)[:-1]))
            for j in range(o.shape[1]):
                out[np.arange(o.shape[0]), starts[j] + o[:, j]] = 1.0
            return out
        return np.asarray(obs, dtype=np.float32).reshape(len(obs), -1)


class ActorCritic(nn.Module):
    """Separate actor and vector critic MLPs (tanh), categorical or diagonal-Gaussian actions,
    running observation normalization (buffers) for raw continuous observations."""

    def __init__(
        self,
        obs_dim: int,
        n_obj: int,
        hidden: tuple[int, ...],
        discrete: bool,
        act_dim: int,
        normalize: bool,
        generator: torch.Generator,
    ):
        super().__init__()
        self.discrete = discrete
        self.normalize = normalize
        self.actor = mlp(obs_dim, act_dim, hidden, activation=nn.Tanh)
        self.critic = mlp(obs_dim, n_obj, hidden, activation=nn.Tanh)
        if not discrete:
            self.log_std = nn.Parameter(torch.zeros(act_dim))
        self.register_buffer("obs_mean", torch.zeros(obs_dim))
        self.register_buffer("obs_var", torch.ones(obs_dim))
        self.register_buffer("obs_count", torch.tensor(1e-4))
        for net in (self.actor, self.critic):
            linears = [m for m in net if isinstance(m, nn.Linear)]
            for i, m in enumerate(linears):
                last = i == len(linears) - 1
                gain = (0.01 if net is self.actor else 1.0) if last else math.sqrt(2)
                nn.init.orthogonal_(m.weight, gain=gain, generator=generator)
                nn.init.zeros_(m.bias)

    def norm(self, x: torch.Tensor) -> torch.Tensor:
        if not self.normalize:
            return x
        return torch.clamp((x - self.obs_mean) / torch.sqrt(self.obs_var + 1e-8), -10.0, 10.0)

    @torch.no_grad()
    def update_norm(self, x: torch.Tensor) -> None:
        """Fold a batch into the running mean/variance (parallel-variance formula)."""
        if not self.normalize:
            return
        n = x.shape[0]
        mean, var = x.mean(0), x.var(0, unbiased=False)
        tot = self.obs_count + n
        delta = mean - self.obs_mean
        self.obs_mean += delta * n / tot
        m2 = self.obs_var * self.obs_count + var * n + delta**2 * self.obs_count * n / tot
        self.obs_var.copy_(m2 / tot)
        self.obs_count.copy_(tot)

    def dist_params(self, x: torch.Tensor) -> torch.Tensor:
        return self.actor(self.norm(x))

    def value(self, x: torch.Tensor) -> torch.Tensor:
        """Vector value V(s) [B, K]."""
        return self.critic(self.norm(x))

    def log_prob_entropy(
        self, x: torch.Tensor, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.dist_params(x)
        if self.discrete:
            logp = torch.log_softmax(out, -1)
            lp = logp.gather(-1, actions.long().unsqueeze(-1)).squeeze(-1)
            ent = -(logp.exp() * logp).sum(-1)
            return lp, ent
        std = self.log_std.exp()
        lp = (-0.5 * ((actions - out) / std) ** 2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(
            -1
        )
        ent = (self.log_std + 0.5 * math.log(2 * math.pi * math.e)).sum().expand(x.shape[0])
        return lp, ent

    @torch.no_grad()
    def act(
        self, x: torch.Tensor, generator: torch.Generator, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Sample (or take the greedy/mean) actions; returns (actions, log-probs)."""
        out = self.dist_params(x)
        if self.discrete:
            if deterministic:
                a = out.argmax(-1)
            else:
                u = torch.rand(out.shape, generator=generator, device=out.device, dtype=out.dtype)
                gumbel = -torch.log(-torch.log(u.clamp_min(1e-20)))
                a = (out + gumbel).argmax(-1)  # Gumbel-max: a ~ softmax(out)
            lp = torch.log_softmax(out, -1).gather(-1, a.unsqueeze(-1)).squeeze(-1)
            return a, lp
        if deterministic:
            a = out
        else:
            eps = torch.randn(out.shape, generator=generator, device=out.device, dtype=out.dtype)
            a = out + self.log_std.exp() * eps
        std = self.log_std.exp()
        lp = (-0.5 * ((a - out) / std) ** 2 - self.log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        return a, lp

    @torch.no_grad()
    def probs(self, x: torch.Tensor, deterministic: bool) -> torch.Tensor:
        """Action probabilities [B, A] (discrete actions), one-hot greedy if deterministic."""
        out = self.dist_params(x)
        if deterministic:
            return nn.functional.one_hot(out.argmax(-1), out.shape[-1]).to(out.dtype)
        return torch.softmax(out, -1)


@dataclass
class CMORLConfig:
    """C-MORL with PPO and a vector critic (Liu et al.); Stage 1 then constrained Stage 2."""

    divisions: int = option(
        0, "Stage-1 weight grid divisions per axis (0: 5 for 2 obj., 3 for more)"
    )
    stage1_steps: int = option(
        0,
        "environment steps of Stage 1 over all weights; Stage 2 uses the rest "
        "(0: half of the run's --steps)",
    )
    n_select: int = option(0, "policies picked per Stage-2 round (0: 5 for 2 obj., 6 for more)")
    stage2_updates: int = option(8, "constrained PPO updates per (policy, objective) branch")
    constraint_frac: float = option(0.9, "constraint level β: G_j ≥ β·G_j(selected policy)")
    beta: float | None = alias("constraint_frac", "the paper's name β of constraint_frac")
    barrier_t: float = option(20.0, "log-barrier sharpness t (barrier weight 1/t)")
    n_envs: int = option(4, "parallel environment copies per rollout")
    vec_env: Literal["dummy", "subproc"] = option("dummy", VEC_ENV_HELP)
    n_steps: int = option(128, "steps per copy per rollout (batch = n_envs·n_steps env steps)")
    gamma: float = option(0.0, "training discount (0: the env's eval_gamma, 0.99 in the paper)")
    gae_lambda: float = option(0.95, "GAE λ (per objective)")
    epochs: int = option(4, "PPO epochs per update")
    minibatches: int = option(4, "minibatches per epoch")
    lr: float = option(3e-4, "Adam learning rate")
    clip: float = option(0.2, "PPO ratio clip")
    ent_coef: float = option(0.0, "entropy bonus")
    vf_coef: float = option(0.5, "value-loss weight")
    max_grad_norm: float = option(0.5, "gradient-norm clip")
    hidden: list[int] = option([64, 64], "hidden sizes of actor and critic")  # noqa: RUF009
    normalize_obs: bool = option(True, "running observation normalization (continuous obs)")
    eval_mode: Literal["auto", "greedy", "stochastic"] = option(
        "auto", "evaluate greedy/mean actions or the stochastic policy (auto: the env's choice)"
    )
    eval_episodes: int = option(2, "evaluation episodes per policy (unless evaluated exactly)")
    exact_eval: bool = option(True, "evaluate exactly when the env exposes a tabular model")

    def __post_init__(self) -> None:
        resolve_aliases(self)  # values given under the old names

    def validate(self) -> None:
        require(self.divisions >= 0, f"divisions must be ≥ 0, got {self.divisions}")
        require(self.stage1_steps >= 0, f"stage1_steps must be ≥ 0, got {self.stage1_steps}")
        require(self.n_select >= 0, f"n_select must be ≥ 0, got {self.n_select}")
        require(self.stage2_updates >= 1, "stage2_updates must be ≥ 1")
        require(
            0 < self.constraint_frac < 1,
            f"constraint_frac (β) must lie in (0, 1), got {self.constraint_frac}",
        )
        require(self.barrier_t > 0, f"barrier_t must be > 0, got {self.barrier_t}")
        require(self.n_envs >= 1 and self.n_steps >= 1, "n_envs and n_steps must be ≥ 1")
        check_vec_env(self.vec_env)
        require(0 <= self.gamma <= 1, f"gamma must lie in [0, 1] (0: env's), got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"gae_lambda must lie in [0, 1], got {self.gae_lambda}")
        require(self.epochs >= 1 and self.minibatches >= 1, "epochs and minibatches must be ≥ 1")
        require(self.minibatches <= self.n_envs * self.n_steps, "more minibatches than samples")
        require(self.lr > 0 and self.clip > 0, "lr and clip must be > 0")
        require(self.ent_coef >= 0 and self.vf_coef >= 0, "ent_coef and vf_coef must be ≥ 0")
        require(self.max_grad_norm > 0, "max_grad_norm must be > 0")
        require(all(h >= 1 for h in self.hidden), f"hidden sizes must be ≥ 1, got {self.hidden}")
        require(self.eval_episodes >= 1, "eval_episodes must be ≥ 1")


def _is_multiobjective(env: Any) -> int:
    k = getattr(env, "reward_dim", None)
    if k is None:
        k = getattr(env.unwrapped, "reward_dim", None)
    return int(k) if k else 0


MO_ENVS = (
    "deep_sea_treasure",
    "fruit_tree",
    "minecart",
    "mo_tabular",
    "mo_hopper_2obj",
    "mo_hopper_3obj",
    "mo_halfcheetah",
)


# tiny settings (tests/test_cmorl.py TINY2)
SMOKE_CMORL_TINY: dict[str, Any] = {
    "n_envs": 2,
    "n_steps": 16,
    "minibatches": 2,
    "epochs": 2,
    "stage1_steps": 96,
    "stage2_updates": 2,
    "n_select": 2,
}


@register_algo(
    "cmorl",
    description="C-MORL: PPO grid (vector critic) + constrained Pareto extension (log barrier)",
    envs=MO_ENVS,
)
class CMORL(Learner):
    """C-MORL on a vector-reward environment; the budget unit is true environment steps.

    Each ``step()`` is one rollout (n_envs·n_steps env steps) and PPO update of one policy —
    a Stage-1 weight policy (round robin) or the current Stage-2 branch — followed by its
    evaluation (discounted with the env's ``eval_gamma``), offered to the Pareto archive.
    Rows report hv / eu / sparsity / front_size of the archive; evaluation rollouts are reported
    as ``eval_env_steps`` and are not part of the training budget.
    """

    Config = CMORLConfig
    smoke = Smoke(
        env="mo_tabular",
        steps=320,
        config=dict(SMOKE_CMORL_TINY),
        source="tests/test_cmorl.py::test_determinism",
        family="cmorl",
    )
    cli_default_steps = 100_000
    default_steps = 200_000
    step_unit = "env steps"
    use_stage2 = True

    @property
    def stage1_budget(self) -> int:
        """Stage 1's env steps: ``stage1_steps``, or half the run's budget when that is 0."""
        if self.config.stage1_steps > 0:
            return int(self.config.stage1_steps)
        return int(self.total_steps or self.default_steps) // 2

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        from prl import envs

        e = envs.make(env, **env_kwargs)
        try:
            if _is_multiobjective(e) < 2:
                raise ConfigError(
                    f"{cls.__name__} needs a multi-objective environment (vector rewards), "
                    f"{env!r} has none"
                )
        finally:
            e.close()

    def __init__(
        self, config: CMORLConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        from prl import envs

        cfg = config
        self.dev = torch.device(device)
        self.envs = [envs.make(env, **env_kwargs) for _ in range(cfg.n_envs)]
        self.eval_env = envs.make(env, **env_kwargs)
        # vec_env="subproc": the training copies step in worker processes (self.envs stay here
        # for the env's attributes); the same seeded resets and auto-resets, the same numbers
        self.workers: Any = None
        if cfg.vec_env == "subproc":
            from stable_baselines3.common.vec_env import SubprocVecEnv

            fns = [partial(envs.make, env, **env_kwargs) for _ in range(cfg.n_envs)]
            self.workers = SubprocVecEnv(fns, start_method=START_METHOD)
        e0 = self.envs[0]
        self.K = _is_multiobjective(e0)
        self.encoder = ObsEncoder(e0.observation_space)
        from gymnasium import spaces

        self.discrete = isinstance(e0.action_space, spaces.Discrete)
        if not self.discrete and not isinstance(e0.action_space, spaces.Box):
            raise ConfigError(f"C-MORL supports Discrete or Box actions, got {e0.action_space}")
        self.act_dim = int(e0.action_space.n) if self.discrete else int(e0.action_space.shape[0])
        if not self.discrete:
            self.act_low = e0.action_space.low.astype(np.float64)
            self.act_high = e0.action_space.high.astype(np.float64)
        self.eval_gamma = float(getattr(e0, "eval_gamma", 0.99))
        self.gamma = cfg.gamma or self.eval_gamma
        mode = cfg.eval_mode
        if mode == "auto":
            mode = "greedy" if getattr(e0, "deterministic_eval", True) else "stochastic"
        self.eval_deterministic = mode == "greedy"
        self.ref = np.asarray(e0.ref_point, dtype=np.float64)
        self.eu_w = eu_weights(self.K)
        self.model = None
        if cfg.exact_eval and self.discrete and hasattr(e0, "tabular_model"):
            mdp, obs_table = e0.tabular_model()
            if abs(mdp.gamma - self.eval_gamma) > 1e-12:
                raise ConfigError("the tabular model's discount differs from the env's eval_gamma")
            self.model = mdp
            self.model_feats = torch.as_tensor(self.encoder(obs_table), device=self.dev)
            dt = torch.float64
            self.model_P = torch.as_tensor(np.array(mdp.base.P_continue), dtype=dt, device=self.dev)
            self.model_R = torch.as_tensor(np.array(mdp.R), dtype=dt, device=self.dev)
            mu = np.where(mdp.terminal, 0.0, mdp.mu0)
            self.model_mu0 = torch.as_tensor(mu, dtype=dt, device=self.dev)

        # sampling on the device; weight initialization on the CPU (the same nets on any device)
        self.gen = torch.Generator(device=self.dev)
        self.gen.manual_seed(int(self.rng.integers(2**62)))
        self.init_gen = torch.Generator()
        self.init_gen.manual_seed(int(self.rng.integers(2**62)))
        self.weights = weight_grid(self.K, cfg.divisions or None)
        self.n_select = cfg.n_select or default_n_select(self.K)
        self.policies = [self._new_policy() for _ in range(len(self.weights))]
        self.optims = [self._optimizer(p) for p in self.policies]
        self.archive = ParetoArchive(self.K)
        self.stage = 1
        self.turn = 0
        self.updates = 0
        self.eval_env_steps = 0
        self.env_step_calls = 0  # literal count of training env.step calls (all copies)
        self.rounds = 0
        self.queue: list[dict[str, Any]] = []
        self.branch: dict[str, Any] | None = None

    # ---- construction -------------------------------------------------------------------
    def _new_policy(self) -> ActorCritic:
        cfg = self.config
        return ActorCritic(
            self.encoder.dim,
            self.K,
            tuple(cfg.hidden),
            self.discrete,
            self.act_dim,
            cfg.normalize_obs and self.encoder.normalizable,
            self.init_gen,
        ).to(self.dev)

    def _optimizer(self, pol: ActorCritic) -> torch.optim.Optimizer:
        return torch.optim.Adam(pol.parameters(), lr=self.config.lr, eps=1e-5)

    # ---- rollouts -----------------------------------------------------------------------
    def _feats(self, obs: list[Any]) -> torch.Tensor:
        return torch.as_tensor(self.encoder(np.asarray(obs)), device=self.dev)

    def _env_action(self, a: np.ndarray) -> Any:
        if self.discrete:
            return int(a)
        return np.clip(a, self.act_low, self.act_high)

    def _rollout(self, pol: ActorCritic) -> dict[str, torch.Tensor]:
        """n_steps from every copy, each copy reset at the start (seeds from self.rng)."""
        cfg = self.config
        n, T, K = cfg.n_envs, cfg.n_steps, self.K
        seeds = self.rng.integers(2**31, size=n)
        if self.workers is not None:
            self.workers._seeds = [int(s) for s in seeds]  # SB3 passes them to the next reset
            obs = list(self.workers.reset())
        else:
            obs = [e.reset(seed=int(s))[0] for e, s in zip(self.envs, seeds)]
        tsteps = np.zeros(n, dtype=np.int64)
        X, Acts, LP, Rw, Dn, Tt, Boot = [], [], [], [], [], [], []
        for _ in range(T):
            x = self._feats(obs)
            a, lp = pol.act(x, self.gen)
            a_np = a.cpu().numpy()
            rews = np.zeros((n, K))
            done = np.zeros(n, dtype=bool)
            boot_obs: list[Any] = [None] * n
            if self.workers is not None:  # auto-reset in the workers, as the loop below does
                o2s, rs, dones, infos = self.workers.step([self._env_action(x) for x in a_np])
                self.env_step_calls += n
                for i in range(n):
                    rews[i] = np.asarray(rs[i], dtype=np.float64)
                    done[i] = bool(dones[i])
                    if done[i] and infos[i].get("TimeLimit.truncated", False):
                        boot_obs[i] = infos[i]["terminal_observation"]
                    obs[i] = o2s[i]
            for i, e in enumerate(self.envs if self.workers is None else []):
                o2, r, term, trunc, _ = e.step(self._env_action(a_np[i]))
                self.env_step_calls += 1
                rews[i] = np.asarray(r, dtype=np.float64)
                if term or trunc:
                    done[i] = True
                    if trunc and not term:
                        boot_obs[i] = o2  # bootstrap V at a time-limit cut
                    o2 = e.reset()[0]
                obs[i] = o2
            X.append(x)
            Acts.append(a)
            LP.append(lp)
            Rw.append(rews)
            Dn.append(done)
            Tt.append(tsteps.copy())
            Boot.append(boot_obs)
            tsteps = np.where(done, 0, tsteps + 1)
        with torch.no_grad():
            V = pol.value(torch.cat(X)).reshape(T, n, K).double()
            V_last = pol.value(self._feats(obs)).double()
            # V(s_{t+1}) for truncated transitions
            V_boot = torch.zeros(T, n, K, dtype=torch.float64, device=self.dev)
            cut = [(t, i) for t in range(T) for i in range(n) if Boot[t][i] is not None]
            if cut:
                vb = pol.value(self._feats([Boot[t][i] for t, i in cut])).double()
                for j, (t, i) in enumerate(cut):
                    V_boot[t, i] = vb[j]
        rew = torch.as_tensor(np.array(Rw), dtype=torch.float64, device=self.dev)
        done_t = torch.as_tensor(np.array(Dn), device=self.dev)
        # vector GAE: V(s_{t+1}), or the bootstrap V at a time-limit cut (0 when terminated)
        nxt = torch.where(done_t.unsqueeze(-1), V_boot, torch.cat([V[1:], V_last[None]]))
        deltas = rew + self.gamma * nxt - V
        # γλ·(1 − d_t) as float32 (a python float times a bool tensor), as the update always had
        adv = gae_recursion(deltas, self.gamma * cfg.gae_lambda * (~done_t).unsqueeze(-1))
        ret = adv + V
        tt = torch.as_tensor(np.array(Tt), device=self.dev).reshape(-1)
        return {
            "x": torch.cat(X),
            "a": torch.cat(Acts),
            "logp": torch.cat(LP).double(),
            "adv": adv.reshape(T * n, K),
            "ret": ret.reshape(T * n, K),
            "t": tt,
        }

    # ---- updates ------------------------------------------------------------------------
    def _ppo_update(
        self,
        pol: ActorCritic,
        opt: torch.optim.Optimizer,
        batch: dict[str, torch.Tensor],
        policy_loss: Any,
    ) -> dict[str, float]:
        cfg = self.config
        B = batch["x"].shape[0]
        mb = max(1, B // cfg.minibatches)
        stats = {"loss_pi": 0.0, "loss_v": 0.0, "entropy": 0.0}
        count = 0
        for _ in range(cfg.epochs):
            perm = torch.as_tensor(self.rng.permutation(B), device=self.dev)
            for start in range(0, B - mb + 1, mb):
                idx = perm[start : start + mb]
                lp, ent = pol.log_prob_entropy(batch["x"][idx], batch["a"][idx])
                ratio = torch.exp(lp.double() - batch["logp"][idx])
                lpi = policy_loss(ratio, idx)
                v = pol.value(batch["x"][idx]).double()
                lv = ((v - batch["ret"][idx]) ** 2).sum(-1).mean()
                loss = lpi + cfg.vf_coef * lv - cfg.ent_coef * ent.double().mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(pol.parameters(), cfg.max_grad_norm)
                opt.step()
                stats["loss_pi"] += lpi.item()
                stats["loss_v"] += lv.item()
                stats["entropy"] += ent.mean().item()
                count += 1
        return {k: v / count for k, v in stats.items()}

    def _stage1_update(self, i: int) -> dict[str, float]:
        pol, opt = self.policies[i], self.optims[i]
        batch = self._rollout(pol)
        w = torch.as_tensor(self.weights[i], dtype=torch.float64, device=self.dev)
        a = batch["adv"] @ w  # w·(R − V) with vector GAE
        a = (a - a.mean()) / (a.std() + 1e-8)
        clip = self.config.clip

        def loss(ratio: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            return clipped_surrogate(ratio, a[idx], clip)

        stats = self._ppo_update(pol, opt, batch, loss)
        pol.update_norm(batch["x"])  # after the update: rollout and update share the stats
        return stats

    def _stage2_update(self) -> dict[str, float]:
        br = self.branch
        assert br is not None
        pol, opt = br["policy"], br["optim"]
        cfg = self.config
        batch = self._rollout(pol)
        adv, t = batch["adv"], batch["t"]
        starts = t == 0
        # current returns of the stochastic policy: λ-returns at episode starts
        G_cur = batch["ret"][starts].mean(0)
        if br["lower"] is None:
            br["lower"] = constraint_lower_bounds(G_cur, cfg.constraint_frac)
        lower = br["lower"]
        disc = self.gamma ** t.double()
        scale = adv.shape[0] / max(1, int(starts.sum()))  # samples per episode started
        clip, l = cfg.clip, br["l"]

        def loss(ratio: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
            A = adv[idx]  # [mb, K]
            r = ratio.unsqueeze(-1)
            surr = clipped_ratio_term(r, A, clip) - A
            # first-order estimate of G(θ) (performance difference, pessimistic by clipping)
            G_hat = G_cur + scale * (disc[idx].unsqueeze(-1) * surr).mean(0)
            return -barrier_objective(G_hat, lower, l, cfg.barrier_t) / scale

        stats = self._ppo_update(pol, opt, batch, loss)
        pol.update_norm(batch["x"])
        slack = (G_cur - lower).cpu().numpy()
        stats["min_slack"] = float(np.delete(slack, l).min()) if self.K > 1 else 0.0
        return stats

    # ---- evaluation ---------------------------------------------------------------------
    def evaluate_policy(self, pol: ActorCritic) -> np.ndarray:
        """Discounted (eval_gamma) return vector of ``pol``: exact on a tabular model, else the
        mean over ``eval_episodes`` rollouts (greedy/mean actions when evaluation is greedy)."""
        if self.model is not None:
            pi = pol.probs(self.model_feats, self.eval_deterministic).double()
            J = _returns_of(
                pi.unsqueeze(0), self.model_P, self.model_R, self.model_mu0, self.model.gamma
            )
            return J[0].cpu().numpy()
        total = np.zeros(self.K)
        env = self.eval_env
        for _ in range(self.config.eval_episodes):
            obs, _ = env.reset(seed=int(self.rng.integers(2**31)))
            disc, done = 1.0, False
            while not done:
                a, _ = pol.act(self._feats([obs]), self.gen, self.eval_deterministic)
                obs, r, term, trunc, _ = env.step(self._env_action(a.cpu().numpy()[0]))
                self.eval_env_steps += 1
                total += disc * np.asarray(r, dtype=np.float64)
                disc *= self.eval_gamma
                done = term or trunc
        return total / self.config.eval_episodes

    def _offer(self, pol: ActorCritic, origin: str) -> np.ndarray:
        G = self.evaluate_policy(pol)
        state = {k: v.detach().cpu().clone() for k, v in pol.state_dict().items()}
        self.archive.offer(G, {"state": state, "origin": origin})
        return G

    # ---- the training loop --------------------------------------------------------------
    def _start_branch(self) -> None:
        if not self.queue:
            pts = self.archive.array()
            sel = select_by_crowding(pts, self.n_select)
            self.rounds += 1
            for i in sel:
                state = self.archive.payloads[i]["state"]
                for l in range(self.K):
                    self.queue.append({"state": state, "l": l, "origin": int(i)})
        spec = self.queue.pop(0)
        pol = self._new_policy()
        pol.load_state_dict(spec["state"])
        self.branch = {
            "policy": pol,
            "optim": self._optimizer(pol),
            "l": int(spec["l"]),
            "lower": None,
            "done": 0,
        }

    def step(self) -> dict[str, float]:
        cfg = self.config
        before = self.env_step_calls
        if self.stage == 1:
            i = self.turn % len(self.policies)
            stats = self._stage1_update(i)
            G = self._offer(self.policies[i], f"stage1:{i}")
            self.turn += 1
            info: dict[str, float] = {"stage": 1, "policy": i}
        else:
            if self.branch is None:
                self._start_branch()
            br = self.branch
            assert br is not None
            stats = self._stage2_update()
            G = self._offer(br["policy"], f"stage2:{br['l']}")
            br["done"] += 1
            info = {"stage": 2, "objective": br["l"], "round": self.rounds}
            if br["done"] >= cfg.stage2_updates:
                self.branch = None
        self.updates += 1
        self.steps_done += self.env_step_calls - before  # true environment steps
        if self.use_stage2 and self.stage == 1 and self.steps_done >= self.stage1_budget:
            self.stage = 2
        row = {
            **info,
            **stats,
            **front_metrics(self.archive.array(), self.ref, self.eu_w),
            "eval_env_steps": self.eval_env_steps,
        }
        for k in range(self.K):
            row[f"G{k}"] = float(G[k])
        return row

    def front(self) -> np.ndarray:
        """The archive's return vectors [n, K] (a Pareto front)."""
        return pareto_front(self.archive.array())

    def evaluate(self) -> dict[str, float]:
        out = front_metrics(self.archive.array(), self.ref, self.eu_w)
        e0 = self.envs[0]
        true = None
        if hasattr(e0, "true_front"):
            true = hypervolume(e0.true_front(self.eval_gamma), self.ref)
        elif hasattr(e0, "front_hypervolume") and self.K == 2:
            true = e0.front_hypervolume(self.ref)
        if true:
            out["hv_ratio"] = out["hv"] / true
        out["front"] = json.dumps(self.front().tolist())
        return out

    # ---- checkpoints --------------------------------------------------------------------
    @staticmethod
    def _cpu(sd: dict[str, Any]) -> dict[str, Any]:
        return {k: v.detach().cpu().clone() for k, v in sd.items()}

    def state_dict(self) -> dict[str, Any]:
        br = self.branch
        return {
            **super().state_dict(),
            "gen": self.gen.get_state().cpu(),
            "init_gen": self.init_gen.get_state(),
            "policies": [self._cpu(p.state_dict()) for p in self.policies],
            "optims": [o.state_dict() for o in self.optims],
            "archive_points": torch.as_tensor(self.archive.points),
            "archive_payloads": [
                {"state": p["state"], "origin": p["origin"]} for p in self.archive.payloads
            ],
            "archive_offered": self.archive.offered,
            "stage": self.stage,
            "turn": self.turn,
            "updates": self.updates,
            "eval_env_steps": self.eval_env_steps,
            "env_step_calls": self.env_step_calls,
            "rounds": self.rounds,
            "queue": [dict(q) for q in self.queue],
            "branch": None
            if br is None
            else {
                "policy": self._cpu(br["policy"].state_dict()),
                "optim": br["optim"].state_dict(),
                "l": br["l"],
                "lower": None if br["lower"] is None else br["lower"].cpu(),
                "done": br["done"],
            },
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.gen.set_state(state["gen"].cpu())
        self.init_gen.set_state(state["init_gen"].cpu())
        for p, o, ps, os_ in zip(self.policies, self.optims, state["policies"], state["optims"]):
            p.load_state_dict(ps)
            o.load_state_dict(os_)
        self.archive = ParetoArchive(
            self.K,
            points=state["archive_points"].double().numpy(),
            payloads=[dict(p) for p in state["archive_payloads"]],
        )
        self.archive.offered = int(state["archive_offered"])
        self.stage = int(state["stage"])
        self.turn = int(state["turn"])
        self.updates = int(state["updates"])
        self.eval_env_steps = int(state["eval_env_steps"])
        self.env_step_calls = int(state["env_step_calls"])
        self.rounds = int(state["rounds"])
        self.queue = [dict(q) for q in state["queue"]]
        br = state["branch"]
        if br is None:
            self.branch = None
        else:
            pol = self._new_policy()
            pol.load_state_dict(br["policy"])
            opt = self._optimizer(pol)
            opt.load_state_dict(br["optim"])
            self.branch = {
                "policy": pol,
                "optim": opt,
                "l": int(br["l"]),
                "lower": None if br["lower"] is None else br["lower"].to(self.dev),
                "done": int(br["done"]),
            }

    def close(self) -> None:
        for e in [*self.envs, self.eval_env]:
            e.close()
        if self.workers is not None:
            self.workers.close()

    # ---- acting (SB3's predict, morl-baselines' eval) -----------------------------------
    def archive_policy(self, w: Any = None) -> ActorCritic:
        """The archived policy with the largest scalarized return w·G (w: equal weights if None)."""
        if len(self.archive) == 0:
            raise InvalidInputError("C-MORL's Pareto archive is empty: train before acting")
        w = np.full(self.K, 1.0 / self.K) if w is None else np.asarray(w, dtype=np.float64)
        if w.shape != (self.K,) or not np.all(np.isfinite(w)):
            raise InvalidInputError(f"w must be {self.K} finite weights, got shape {w.shape}")
        i = int(np.argmax(self.archive.points @ w))
        state = self.archive.payloads[i]["state"]
        cache = self.__dict__.setdefault("_acting_cache", {})
        if id(state) not in cache:
            pol = ActorCritic(
                self.encoder.dim,
                self.K,
                tuple(self.config.hidden),
                self.discrete,
                self.act_dim,
                self.config.normalize_obs and self.encoder.normalizable,
                torch.Generator(),  # weights are overwritten: the training generators stay put
            ).to(self.dev)
            pol.load_state_dict(state)
            cache.clear()
            cache[id(state)] = (state, pol)
        return cache[id(state)][1]

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
        w: Any = None,
    ) -> tuple[Any, Any]:
        """SB3's ``predict``: ``(actions, state)`` of :meth:`archive_policy` for a batch of
        observations (or one), so SB3's ``evaluate_policy`` runs it on a scalarized env."""
        pol = self.archive_policy(w)
        obs = np.asarray(observation)
        space_shape = tuple(self.envs[0].observation_space.shape or ())
        single = obs.shape == space_shape
        batch = obs[None] if single else obs
        gen = self.__dict__.get("_acting_gen")
        if gen is None:  # its own stream: acting never moves the training generators
            gen = torch.Generator(device=self.dev)
            gen.manual_seed(self.seed)
            self._acting_gen = gen
        a, _ = pol.act(self._feats(list(batch)), gen, deterministic)
        acts = a.cpu().numpy()
        if not self.discrete:
            acts = np.clip(acts, self.act_low, self.act_high).astype(np.float32)
        return (acts[0] if single else acts), state

    def eval(self, obs: Any, w: Any = None) -> Any:
        """morl-baselines' ``eval(obs, w)``: the action of the archived policy best for weights
        ``w`` on one observation (greedy/mean action)."""
        a, _ = self.predict(obs, deterministic=True, w=w)
        return int(a) if self.discrete else a


@register_algo(
    "cmorl_stage1",
    description="C-MORL Stage 1 alone: PPO on an even weight grid (linear scalarization)",
    envs=MO_ENVS,
)
class CMORLStage1(CMORL):
    """Linear-scalarization baseline: C-MORL's Stage 1 for the whole budget (no extension)."""

    use_stage2 = False
    smoke = Smoke(
        env="mo_tabular",
        steps=320,
        config=dict(SMOKE_CMORL_TINY),
        source="tests/test_cmorl.py::test_determinism",
    )
