"""Preference games over n outcomes: validation, exact solvers, gaps and game generators.

A preference matrix ``P[i, j] = P(i ≻ j)`` is valid iff it is square, finite, has entries in
[0, 1] and satisfies ``P + Pᵀ = 1`` (so its diagonal is ½); ``A = P − ½`` is then the
skew-symmetric payoff of the symmetric two-player zero-sum game whose symmetric equilibria are
the minimax (von Neumann) winners. Functions accept numpy arrays or torch tensors (dispatch on
type: torch inputs give float64 torch outputs on the same device) and are batched over leading
axes ``[..., n, n]`` / ``[..., n]`` where their docstring says so. torch is imported lazily.
"""

from __future__ import annotations

import difflib
import math
import sys
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import special

from prl.errors import ConfigError, InvalidInputError, UnknownNameError

Array = Any  # np.ndarray or torch.Tensor

__all__ = [
    "DICE",
    "GAME_NAMES",
    "biased_rps_matrix",
    "bradley_terry_matrix",
    "cyclic_dice_matrix",
    "duality_gap",
    "exploitability",
    "fixed_point_residual",
    "kl",
    "majority_vote_matrix",
    "make_game",
    "minimax_winner",
    "random_preference_matrix",
    "rater_mixture_matrix",
    "regularized_nash",
    "rps_matrix",
    "validate_preference_matrix",
    "zero_sum_nash",
]

#: The intransitive dice: die 0 beats die 1, die 1 beats die 2, die 2 beats die 0 (each 5/9).
DICE: tuple[tuple[int, ...], ...] = ((2, 4, 9), (1, 6, 8), (3, 5, 7))

#: Names accepted by :func:`make_game`.
GAME_NAMES: tuple[str, ...] = (
    "rps",
    "biased_rps",
    "dice",
    "random",
    "bradley_terry",
    "rater_mixture",
    "majority_vote",
)

# Payoff of the biased rock-paper-scissors game (its unique Nash is (1, 10, 5)/16).
_BIASED_RPS_PAYOFF = ((0.0, -25.0, 50.0), (25.0, 0.0, -5.0), (-50.0, 5.0, 0.0))


# ---------------------------------------------------------------------------------------------
# numpy / torch dispatch
# ---------------------------------------------------------------------------------------------
def _torch() -> Any:
    return sys.modules.get("torch")


def _is_tensor(x: Any) -> bool:
    t = _torch()
    return t is not None and isinstance(x, t.Tensor)


def _is_torch_generator(rng: Any) -> bool:
    t = _torch()
    return t is not None and isinstance(rng, t.Generator)


def _device_of(*xs: Any) -> Any:
    """The device of the first tensor among ``xs``, or None when all are numpy-like."""
    for x in xs:
        if _is_tensor(x):
            return x.device
    return None


def _float64(x: Any, name: str, device: Any = None) -> Array:
    """``x`` as float64: a tensor when it is one or when ``device`` is set, else a numpy array."""
    if _is_tensor(x):
        if x.is_complex():
            raise InvalidInputError(f"{name} must be real, got a complex tensor")
        t = _torch()
        return x.to(dtype=t.float64, device=device if device is not None else x.device)
    try:
        raw = np.asarray(x)
        if np.iscomplexobj(raw):  # a cast to float64 would silently drop the imaginary part
            raise InvalidInputError(f"{name} must be real, got a complex array")
        arr = raw.astype(np.float64)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, InvalidInputError):
            raise
        raise InvalidInputError(
            f"{name} must be a real numeric array, got {type(x).__name__} ({exc})"
        ) from None
    if device is not None:
        return _torch().as_tensor(arr, device=device)
    return arr


class _NumpyOps:
    """The handful of array operations the solvers need, numpy flavour."""

    @staticmethod
    def amax(x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        return np.max(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def sum(x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        return np.sum(x, axis=axis, keepdims=keepdims)

    @staticmethod
    def abs(x: Any) -> Any:
        return np.abs(x)

    @staticmethod
    def exp(x: Any) -> Any:
        return np.exp(x)

    @staticmethod
    def log(x: Any) -> Any:
        with np.errstate(divide="ignore"):
            return np.log(x)

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return np.where(c, a, b)

    @staticmethod
    def softmax(x: Any) -> Any:
        return special.softmax(x, axis=-1)

    @staticmethod
    def logsumexp(x: Any) -> Any:
        return special.logsumexp(x, axis=-1)

    @staticmethod
    def xlogy(x: Any, y: Any) -> Any:
        return special.xlogy(x, y)

    @staticmethod
    def expit(x: Any) -> Any:
        return special.expit(x)

    @staticmethod
    def solve(a: Any, b: Any) -> Any:
        return np.linalg.solve(a, b[..., None])[..., 0]

    @staticmethod
    def eye(n: int, like: Any) -> Any:
        return np.eye(n, dtype=like.dtype)

    @staticmethod
    def diag_embed(x: Any) -> Any:
        return x[..., :, None] * np.eye(x.shape[-1], dtype=x.dtype)

    @staticmethod
    def transpose(x: Any) -> Any:
        return np.swapaxes(x, -1, -2)

    @staticmethod
    def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
        return np.broadcast_to(x, shape)

    @staticmethod
    def full(shape: tuple[int, ...], value: Any, like: Any) -> Any:
        return np.full(shape, value, dtype=like.dtype)

    @staticmethod
    def any(x: Any) -> bool:
        return bool(np.any(x))

    @staticmethod
    def all(x: Any) -> bool:
        return bool(np.all(x))

    @staticmethod
    def isfinite(x: Any) -> Any:
        return np.isfinite(x)

    @staticmethod
    def item(x: Any) -> float:
        return float(x)


class _TorchOps:
    """The same operations, torch flavour (device and autograd preserved)."""

    @staticmethod
    def amax(x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        return x.amax(dim=axis, keepdim=keepdims)

    @staticmethod
    def sum(x: Any, axis: int = -1, keepdims: bool = False) -> Any:
        return x.sum(dim=axis, keepdim=keepdims)

    @staticmethod
    def abs(x: Any) -> Any:
        return x.abs()

    @staticmethod
    def exp(x: Any) -> Any:
        return x.exp()

    @staticmethod
    def log(x: Any) -> Any:
        return x.log()

    @staticmethod
    def where(c: Any, a: Any, b: Any) -> Any:
        return _torch().where(c, a, b)

    @staticmethod
    def softmax(x: Any) -> Any:
        return _torch().softmax(x, dim=-1)

    @staticmethod
    def logsumexp(x: Any) -> Any:
        return _torch().logsumexp(x, dim=-1)

    @staticmethod
    def xlogy(x: Any, y: Any) -> Any:
        return _torch().xlogy(x, y)

    @staticmethod
    def expit(x: Any) -> Any:
        return _torch().sigmoid(x)

    @staticmethod
    def solve(a: Any, b: Any) -> Any:
        return _torch().linalg.solve(a, b[..., None])[..., 0]

    @staticmethod
    def eye(n: int, like: Any) -> Any:
        return _torch().eye(n, dtype=like.dtype, device=like.device)

    @staticmethod
    def diag_embed(x: Any) -> Any:
        return _torch().diag_embed(x)

    @staticmethod
    def transpose(x: Any) -> Any:
        return x.transpose(-1, -2)

    @staticmethod
    def broadcast_to(x: Any, shape: tuple[int, ...]) -> Any:
        return x.broadcast_to(shape)

    @staticmethod
    def full(shape: tuple[int, ...], value: Any, like: Any) -> Any:
        return _torch().full(shape, value, dtype=like.dtype, device=like.device)

    @staticmethod
    def any(x: Any) -> bool:
        return bool(x.any())

    @staticmethod
    def all(x: Any) -> bool:
        return bool(x.all())

    @staticmethod
    def isfinite(x: Any) -> Any:
        return _torch().isfinite(x)

    @staticmethod
    def item(x: Any) -> float:
        return float(x.item())


def _ops(x: Any) -> type[_NumpyOps] | type[_TorchOps]:
    return _TorchOps if _is_tensor(x) else _NumpyOps


def _matvec(M: Array, v: Array) -> Array:
    """Batched ``M @ v`` for ``M [..., n, m]`` and ``v [..., m]``."""
    return (M @ v[..., None])[..., 0]


def _check_tau(tau: Any, allow_zero: bool) -> float:
    try:
        t = float(tau)
    except (TypeError, ValueError):
        raise InvalidInputError(f"tau must be a real number, got {tau!r}") from None
    if not math.isfinite(t) or t < 0 or (t == 0 and not allow_zero):
        bound = "≥ 0" if allow_zero else "> 0"
        raise InvalidInputError(f"tau must be finite and {bound}, got {tau!r}")
    return t


def _check_vector(x: Array, n: int, name: str) -> Array:
    if x.ndim < 1 or x.shape[-1] != n:
        raise InvalidInputError(f"{name} must have shape [..., {n}], got {tuple(x.shape)}")
    if not _ops(x).all(_ops(x).isfinite(x)):
        raise InvalidInputError(f"{name} contains NaN or inf")
    return x


def _check_distribution(x: Array, n: int, name: str, atol: float = 1e-6) -> Array:
    """``x [..., n]`` must be a (batch of) probability vectors; returned renormalised."""
    x = _check_vector(x, n, name)
    ops = _ops(x)
    if x.numel() if _is_tensor(x) else x.size:
        lo = ops.item(x.min())
        if lo < -atol:
            raise InvalidInputError(f"{name} must be non-negative, got an entry {lo:.3g}")
        dev = ops.item(ops.amax(ops.abs(ops.sum(x) - 1.0).reshape(-1), axis=0))
        if dev > atol:
            raise InvalidInputError(f"{name} must sum to 1 over its last axis, off by {dev:.3g}")
    x = ops.where(x < 0, 0.0, x)
    return x / ops.sum(x, keepdims=True)


def _log_mu(mu: Any, n: int, device: Any, like: Array) -> Array:
    """log of the reference distribution (uniform when None), −inf outside its support."""
    if mu is None:
        if _is_tensor(like):
            return _torch().full((n,), -math.log(n), dtype=like.dtype, device=like.device)
        return np.full(n, -math.log(n))
    m = _check_distribution(_float64(mu, "mu", device), n, "mu")
    return _ops(m).log(m)


# ---------------------------------------------------------------------------------------------
# validation and basic quantities
# ---------------------------------------------------------------------------------------------
def validate_preference_matrix(P: Any, atol: float = 1e-9) -> Array:
    """Return ``P`` as float64 if it is a valid (batch of) preference matrices ``[..., n, n]``."""
    P = _float64(P, "P")
    shape = tuple(P.shape)
    if len(shape) < 2 or shape[-1] != shape[-2] or shape[-1] == 0:
        raise InvalidInputError(
            f"a preference matrix must have shape [..., n, n] with n ≥ 1, got {shape}"
        )
    if (P.numel() if _is_tensor(P) else P.size) == 0:
        return P
    ops = _ops(P)
    if not ops.all(ops.isfinite(P)):
        raise InvalidInputError("preference matrix P contains NaN or inf")
    lo, hi = ops.item(P.min()), ops.item(P.max())
    if lo < -atol or hi > 1 + atol:
        raise InvalidInputError(
            f"preference matrix entries must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]"
        )
    dev = ops.abs(P + ops.transpose(P) - 1.0)
    worst = ops.item(dev.max())
    if worst > atol:
        flat = int(dev.reshape(-1).argmax())
        i, j = np.unravel_index(flat, shape)[-2:]
        raise InvalidInputError(
            "preference matrix must satisfy P + Pᵀ = 1 (P[i, j] = P(i ≻ j)), got "
            f"P[{i}, {j}] + P[{j}, {i}] − 1 = {worst:.3g} (tolerance {atol:g})"
        )
    return P


def kl(p: Any, q: Any) -> Array:
    """KL(p‖q) = Σ p log(p/q) over the last axis (0·log 0 = 0, +inf off q's support); batched."""
    device = _device_of(p, q)
    p, q = _float64(p, "p", device), _float64(q, "q", device)
    ops = _ops(p)
    for name, x in (("p", p), ("q", q)):
        if ops.any(x != x):  # NaN is the one value unequal to itself (numpy and torch alike)
            raise InvalidInputError(f"kl: {name} contains NaN")
    return ops.sum(ops.xlogy(p, p) - ops.xlogy(p, q))


def exploitability(P: Any, pi: Any) -> Array:
    """max_y (Pπ)_y − ½: how much a best response beats π (0 iff π is a minimax winner); batched."""
    device = _device_of(P, pi)
    P = validate_preference_matrix(_float64(P, "P", device))
    pi = _check_distribution(_float64(pi, "pi", device), P.shape[-1], "pi")
    return _ops(P).amax(_matvec(P, pi)) - 0.5


def duality_gap(P: Any, pi: Any, tau: float, mu: Any = None) -> Array:
    """Gap max_{π1} f(π1,π) − min_{π2} f(π,π2) of f = π1ᵀPπ2 − τKL(π1‖μ) + τKL(π2‖μ); batched.

    Closed form (Pᵀ = 1 − P): 2τ log Σ_y μ_y exp((Pπ)_y/τ) − 1 + 2τ KL(π‖μ); at τ = 0 it is
    2·max_{y ∈ supp μ} (Pπ)_y − 1 (twice the exploitability for full-support μ). ``mu=None`` is
    uniform.
    """
    device = _device_of(P, pi, mu)
    P = validate_preference_matrix(_float64(P, "P", device))
    n = P.shape[-1]
    pi = _check_distribution(_float64(pi, "pi", device), n, "pi")
    t = _check_tau(tau, allow_zero=True)
    ops = _ops(P)
    logmu = _log_mu(mu, n, device, P)
    z = _matvec(P, pi)
    shape = tuple(np.broadcast_shapes(tuple(z.shape), tuple(logmu.shape)))
    z, logmu = ops.broadcast_to(z, shape), ops.broadcast_to(logmu, shape)
    pi = ops.broadcast_to(pi, shape)
    z_supp = ops.where(logmu > -math.inf, z, -math.inf)
    m = ops.amax(z_supp, keepdims=True)  # best-response value on the support of μ
    if t == 0:
        return 2.0 * m[..., 0] - 1.0
    soft_max = m[..., 0] + t * ops.logsumexp(logmu + (z_supp - m) / t)
    # KL(π‖μ) = Σ π log π − Σ π log μ, with 0·log 0 = 0 and +inf where π leaves μ's support
    on_supp = logmu > -math.inf
    cross = pi * ops.where(on_supp, logmu, 0.0)
    off = ops.where((pi > 0) & ~on_supp, math.inf, 0.0)
    kl_pi_mu = ops.sum(ops.xlogy(pi, pi) - cross + off)
    return 2.0 * soft_max - 1.0 + 2.0 * t * kl_pi_mu


def fixed_point_residual(P: Any, pi: Any, tau: float, mu: Any = None) -> Array:
    """max_y |π − softmax(log μ + Pπ/τ)|_y: how far π is from the regularized NE; batched."""
    device = _device_of(P, pi, mu)
    P = validate_preference_matrix(_float64(P, "P", device))
    n = P.shape[-1]
    pi = _check_distribution(_float64(pi, "pi", device), n, "pi")
    t = _check_tau(tau, allow_zero=False)
    ops = _ops(P)
    logmu = _log_mu(mu, n, device, P)
    br = ops.softmax(logmu + _matvec(P, pi) / t)
    return ops.amax(ops.abs(pi - br))


# ---------------------------------------------------------------------------------------------
# exact solvers (LP via scipy/HiGHS, then polished on the support)
# ---------------------------------------------------------------------------------------------
def _maximin_lp(A: np.ndarray) -> np.ndarray:
    """argmax_{x ∈ Δ_m} min_j (xᵀA)_j by LP (maximize v s.t. Aᵀx ≥ v·1, x in the simplex).

    Solved by ``scipy.optimize.linprog(method="highs")`` (silent: HiGHS prints nothing).
    """
    from scipy.optimize import linprog

    m, k = A.shape
    c = np.zeros(m + 1)
    c[m] = -1.0  # minimize −v
    A_ub = np.hstack([-A.T, np.ones((k, 1))])  # v − (Aᵀx)_j ≤ 0
    A_eq = np.zeros((1, m + 1))
    A_eq[0, :m] = 1.0
    bounds = [(0.0, None)] * m + [(None, None)]
    res = linprog(
        c, A_ub=A_ub, b_ub=np.zeros(k), A_eq=A_eq, b_eq=[1.0], bounds=bounds, method="highs"
    )
    if res.status != 0:  # pragma: no cover - a finite game always has a solution
        raise RuntimeError(f"HiGHS could not solve the maximin LP: {res.message}")
    out = np.clip(np.asarray(res.x[:m], dtype=np.float64), 0.0, None)
    return out / out.sum()


def _support_candidates(x: np.ndarray) -> list[np.ndarray]:
    """Distinct supports {i: x_i > thr·max x} for a ladder of relative thresholds."""
    seen: list[np.ndarray] = []
    for thr in (1e-13, 1e-11, 1e-9, 1e-7, 1e-5):
        s = np.flatnonzero(x > thr * x.max())
        if not any(np.array_equal(s, t) for t in seen):
            seen.append(s)
    return seen


def _equalize(A_sub: np.ndarray) -> tuple[np.ndarray, float] | None:
    """Least-squares (x, v) with A_subᵀ x = v·1, Σx = 1; None unless x ≥ 0 (up to 1e-14)."""
    k, m = A_sub.shape
    M = np.zeros((m + 1, k + 1))
    M[:m, :k] = A_sub.T
    M[:m, k] = -1.0
    M[m, :k] = 1.0
    rhs = np.zeros(m + 1)
    rhs[m] = 1.0
    sol = np.linalg.lstsq(M, rhs, rcond=None)[0]
    x = sol[:k]
    if not np.all(np.isfinite(x)) or x.min() < -1e-14:
        return None
    x = np.clip(x, 0.0, None)
    if x.sum() <= 0:
        return None
    return x / x.sum(), float(sol[k])


def _polish_row(A: np.ndarray, x: np.ndarray, opp_support: np.ndarray | None) -> np.ndarray:
    """Improve the row player's maximin strategy x by equalizing on supports (exact linear solve).

    The opponent's active columns are ``opp_support`` when given (general games) and x's own
    support otherwise (symmetric games, where any optimal x is also an optimal column strategy).
    A candidate is kept only if it raises the guaranteed value min_j (xᵀA)_j.
    """
    best, best_val = x, float((x @ A).min())
    for S in _support_candidates(x):
        cols = S if opp_support is None else opp_support
        res = _equalize(A[np.ix_(S, cols)])
        if res is None:
            continue
        cand = np.zeros_like(x)
        cand[S] = res[0]
        val = float((cand @ A).min())
        if val > best_val:
            best, best_val = cand, val
    return best


def minimax_winner(P: Any) -> tuple[np.ndarray, float]:
    """Von Neumann winner argmax_{p ∈ Δ} min_j Σ_i p_i (P_ij − ½) by LP, polished on its support.

    Returns ``(p, value)`` with value = min_j Σ_i p_i (P_ij − ½) (0 up to solver error for any
    valid P). One game ``[n, n]``; torch input is moved to numpy.
    """
    P = validate_preference_matrix(P)
    if _is_tensor(P):
        P = P.detach().cpu().numpy()
    if P.ndim != 2:
        raise InvalidInputError(f"minimax_winner takes one game of shape [n, n], got {P.shape}")
    A = 0.5 * (P - P.T)  # = P − ½, exactly skew-symmetric
    p = _maximin_lp(A)
    p = _polish_row(A, p, None)
    value = float(((P - 0.5).T @ p).min())
    return p, value


def zero_sum_nash(A: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """Nash (x, y, value) of the zero-sum game with payoff ``A [m, k]`` to the row maximizer.

    x = argmax_x min_j (xᵀA)_j and y = argmin_y max_i (Ay)_i, each by LP (HiGHS) and polished by
    an exact equalizer solve on the supports; value = xᵀAy.
    """
    if _is_tensor(A):
        A = A.detach().cpu()
    A = _float64(A, "A")
    if A.ndim != 2 or A.shape[0] == 0 or A.shape[1] == 0:
        raise InvalidInputError(
            f"payoff matrix must have shape [m, k] with m, k ≥ 1, got {A.shape}"
        )
    if not np.all(np.isfinite(A)):
        raise InvalidInputError("payoff matrix contains NaN or inf")
    x = _maximin_lp(A)
    y = _maximin_lp(-A.T)
    for _ in range(2):  # each player's polish uses the other's current support
        x = _polish_row(A, x, np.flatnonzero(y > 1e-9 * y.max()))
        y = _polish_row(-A.T, y, np.flatnonzero(x > 1e-9 * x.max()))
    return x, y, float(x @ A @ y)


# ---------------------------------------------------------------------------------------------
# KL-regularized Nash equilibrium (Newton with homotopy in τ)
# ---------------------------------------------------------------------------------------------
def _newton_stage(
    A: Array, logmu: Array, tau: float, z: Array, tol: float, max_iter: int
) -> tuple[Array, Array]:
    """Damped Newton on g(z) = z − A softmax(log μ + z)/τ = 0 (batched); returns (z, π-residual).

    g(z + c·1) = g(z) + c·1, so the root is unique (not only up to a constant); the Jacobian
    I − A(diag π − ππᵀ)/τ is invertible since A(diag π − ππᵀ) has an imaginary spectrum.
    """
    ops = _ops(z)
    n = z.shape[-1]
    eye = ops.eye(n, like=z)

    def residual(zz: Array) -> tuple[Array, Array]:
        pi = ops.softmax(logmu + zz)
        return pi, zz - _matvec(A, pi) / tau

    pi, g = residual(z)
    res = ops.amax(ops.abs(pi - ops.softmax(logmu + z - g)))
    active = res > tol
    best = res
    stalls = res * 0  # consecutive near-converged iterations without halving the residual
    for _ in range(max_iter):
        if not ops.any(active):
            break
        D = ops.diag_embed(pi) - pi[..., :, None] * pi[..., None, :]
        J = eye - (A @ D) / tau
        d = -ops.solve(J, g)
        norm0 = ops.sum(g * g)
        alpha = ops.full(tuple(norm0.shape), 1.0, like=z)
        accepted = norm0 < 0  # all False
        for _ls in range(50):
            z_try = z + alpha[..., None] * d
            _, g_try = residual(z_try)
            ok = ops.sum(g_try * g_try) <= (1.0 - 1e-4 * alpha) * norm0
            accepted = accepted | ok
            if ops.all(accepted | ~active):
                break
            alpha = ops.where(accepted, alpha, 0.5 * alpha)
        step = active & accepted
        z = ops.where(step[..., None], z + alpha[..., None] * d, z)
        pi, g = residual(z)
        res = ops.amax(ops.abs(pi - ops.softmax(logmu + z - g)))
        stalled = (res > 0.5 * best) & (res < 1e-6)
        stalls = ops.where(stalled, stalls + 1, 0 * stalls)
        best = ops.where(res < best, res, best)
        # stop games that converged, whose line search failed, or that sit at the rounding floor
        active = step & (res > tol) & (stalls < 3)
    return z, res


def regularized_nash(
    P: Any, tau: float, mu: Any = None, tol: float = 1e-13, max_iter: int = 100
) -> Array:
    """The KL-regularized Nash equilibrium π*_τ: the unique π with π = softmax(log μ + Pπ/τ).

    Newton on the logits z (π = softmax(log μ + z)) with a backtracking line search and a
    homotopy in τ (from max(τ, 1), where π ≈ μ, down to τ by halving, warm-started; halving
    steps that fail are retried shorter); ``max_iter`` bounds the Newton steps per τ. Batched
    over ``P [..., n, n]`` and ``mu [..., n]`` (``None`` = uniform), numpy or torch float64.
    Reaches ~1e-13 in :func:`fixed_point_residual` for τ ≥ 1e-3 (the rounding floor grows like
    1e-16/τ below that); warns if the residual stays above 1e-8.
    """
    device = _device_of(P, mu)
    P = validate_preference_matrix(_float64(P, "P", device))
    t_final = _check_tau(tau, allow_zero=False)
    n = P.shape[-1]
    ops = _ops(P)
    logmu = _log_mu(mu, n, device, P)
    A = 0.5 * (P - ops.transpose(P))  # = P − ½; softmax ignores the constant ½/τ
    batch = tuple(np.broadcast_shapes(tuple(P.shape[:-2]), tuple(logmu.shape[:-1])))
    A = ops.broadcast_to(A, (*batch, n, n)).reshape(-1, n, n)  # solve on a flat batch axis
    logmu = ops.broadcast_to(logmu, (*batch, n)).reshape(-1, n)
    if logmu.shape[0] == 0:  # empty batch
        return ops.exp(logmu).reshape(*batch, n)

    # Homotopy in τ: solve at max(τ, 1), where π ≈ μ, then shrink τ geometrically, keeping the
    # logits z (so π is unchanged) as the warm start; a step whose Newton solve fails is retried
    # with a smaller shrink factor.
    t = max(t_final, 1.0)
    z = _matvec(A, ops.exp(logmu)) / t
    z, res = _newton_stage(A, logmu, t, z, tol if t == t_final else max(tol, 1e-9), max_iter)
    ratio = 0.5
    while t > t_final:
        t_next = max(ratio * t, t_final)
        stage_tol = tol if t_next == t_final else max(tol, 1e-9)
        z_next, res = _newton_stage(A, logmu, t_next, z, stage_tol, max_iter)
        ok = ops.item(res.max()) <= max(1e-8, 1e-14 / t_next)
        if ok or ratio > 0.95:
            z, t, ratio = z_next, t_next, max(ratio * ratio, 0.5)
        else:
            ratio = math.sqrt(ratio)
    worst = ops.item(res.max())
    if worst > max(tol, 1e-8):
        warnings.warn(
            f"regularized_nash reached a fixed-point residual of {worst:.3g} (tau={t_final:g})",
            RuntimeWarning,
            stacklevel=2,
        )
    return ops.softmax(logmu + z).reshape(*batch, n)


# ---------------------------------------------------------------------------------------------
# generators
# ---------------------------------------------------------------------------------------------
def _antisymmetrize(S: Array) -> Array:
    """From pairwise probabilities S with S + Sᵀ ≈ 1, keep the smaller of each pair and set the
    other to one minus it (small probabilities stay accurate; P + Pᵀ = 1 up to one rounding)."""
    ops = _ops(S)
    St = ops.transpose(S)
    return ops.where(S <= St, S, 1.0 - St)


def random_preference_matrix(
    n: int,
    rng: Any,
    batch_shape: Sequence[int] = (),
    *,
    device: Any = None,
    dtype: Any = None,
) -> Array:
    """EGPO's random game: strict lower triangle iid U[0, 1], upper = 1 − lower, diagonal ½.

    A numpy Generator gives numpy float64; a torch Generator gives a tensor (``device`` defaults to
    the generator's, ``dtype`` to float64).
    """
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise InvalidInputError(f"n must be a positive integer, got {n!r}")
    shape = (*tuple(int(b) for b in batch_shape), int(n), int(n))
    if _is_torch_generator(rng):
        t = _torch()
        dev = rng.device if device is None else device
        U = t.rand(shape, generator=rng, device=dev, dtype=t.float64)
        L = t.tril(U, diagonal=-1)
        P = L + t.triu(1.0 - L.transpose(-1, -2), diagonal=1) + 0.5 * t.eye(n, device=dev)
        return P.to(dtype or t.float64)
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(
            f"rng must be a numpy Generator or a torch Generator, got {type(rng).__name__}"
        )
    L = np.tril(rng.random(shape), k=-1)
    P = L + np.triu(1.0 - np.swapaxes(L, -1, -2), k=1) + 0.5 * np.eye(n)
    return P.astype(dtype or np.float64, copy=False)


def bradley_terry_matrix(scores: Any, beta: float = 1.0) -> Array:
    """P_ij = σ(β(s_i − s_j)) from scores ``[..., n]`` (expit / sigmoid, never exp of scores)."""
    s = _float64(scores, "scores")
    if s.ndim < 1 or s.shape[-1] == 0:
        raise InvalidInputError(f"scores must have shape [..., n] with n ≥ 1, got {tuple(s.shape)}")
    ops = _ops(s)
    if not ops.all(ops.isfinite(s)):
        raise InvalidInputError("scores contain NaN or inf")
    b = float(beta)
    if not math.isfinite(b) or b < 0:
        raise InvalidInputError(f"beta must be finite and ≥ 0, got {beta!r}")
    S = ops.expit(b * (s[..., :, None] - s[..., None, :]))
    return _antisymmetrize(S)


def cyclic_dice_matrix() -> np.ndarray:
    """P[i, j] = Prob(die i rolls higher than die j) for :data:`DICE` (ties ½), by enumeration."""
    k = len(DICE)
    P = np.zeros((k, k))
    for i, a in enumerate(DICE):
        for j, b in enumerate(DICE):
            wins = sum((fa > fb) + 0.5 * (fa == fb) for fa in a for fb in b)
            P[i, j] = wins / (len(a) * len(b))
    return P


def rps_matrix() -> np.ndarray:
    """Rock-paper-scissors (order rock, paper, scissors): P = ½ + ½·payoff."""
    payoff = np.array([[0.0, -1.0, 1.0], [1.0, 0.0, -1.0], [-1.0, 1.0, 0.0]])
    return 0.5 + 0.5 * payoff


def biased_rps_matrix() -> np.ndarray:
    """Biased RPS: P = ½ + A/100, A = [[0,−25,50],[25,0,−5],[−50,5,0]]; its NE is (1,10,5)/16."""
    return 0.5 + np.array(_BIASED_RPS_PAYOFF) / 100.0


def _utilities(utilities: Any) -> Array:
    u = _float64(utilities, "utilities")
    if u.ndim < 2 or u.shape[-1] == 0 or u.shape[-2] == 0:
        raise InvalidInputError(
            f"utilities must have shape [..., R, n] (raters × outcomes), got {tuple(u.shape)}"
        )
    if not _ops(u).all(_ops(u).isfinite(u)):
        raise InvalidInputError("utilities contain NaN or inf")
    return u


def _hard_compare(u: Array) -> Array:
    """Per-rater 1 / ½ / 0 comparison ``[..., R, n, n]`` of utilities ``[..., R, n]``."""
    diff = u[..., :, None] - u[..., None, :]
    return (diff > 0) * 1.0 + (diff == 0) * 0.5


def rater_mixture_matrix(utilities: Any, weights: Any = None, beta: float | None = None) -> Array:
    """P = Σ_r w_r σ(β(u_ri − u_rj)) over raters (beta=None: hard 1/0 with ½ at ties).

    ``utilities [..., R, n]``, ``weights [R]`` (non-negative, summing to 1; None = uniform).
    """
    u = _utilities(utilities)
    R = u.shape[-2]
    ops = _ops(u)
    if weights is None:
        w = ops.full((R,), 1.0 / R, like=u)
    else:
        w = _check_distribution(_float64(weights, "weights", _device_of(u)), R, "weights", 1e-9)
    if beta is None:
        per = _hard_compare(u)
    else:
        b = float(beta)
        if not math.isfinite(b) or b < 0:
            raise InvalidInputError(f"beta must be finite and ≥ 0 or None, got {beta!r}")
        per = _antisymmetrize(ops.expit(b * (u[..., :, None] - u[..., None, :])))
    P = ops.sum(w[..., :, None, None] * per, axis=-3)
    return _antisymmetrize(P)


def majority_vote_matrix(utilities: Any) -> Array:
    """P_ij = 1 if a strict majority of raters prefers i to j, 0 if of j to i, ½ otherwise."""
    u = _utilities(utilities)
    R = u.shape[-2]
    ops = _ops(u)
    diff = u[..., :, None] - u[..., None, :]
    wins = ops.sum((diff > 0) * 1.0, axis=-3)
    losses = ops.sum((diff < 0) * 1.0, axis=-3)
    return (wins > R / 2) * 1.0 + ((wins <= R / 2) & (losses <= R / 2)) * 0.5


def _standard_normal(rng: Any, shape: tuple[int, ...]) -> Array:
    if _is_torch_generator(rng):
        t = _torch()
        return t.randn(shape, generator=rng, device=rng.device, dtype=t.float64)
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(
            f"rng must be a numpy Generator or a torch Generator, got {type(rng).__name__}"
        )
    return rng.standard_normal(shape)


_GAME_KWARGS: dict[str, set[str]] = {
    "rps": set(),
    "biased_rps": set(),
    "dice": set(),
    "random": {"batch_shape", "device", "dtype"},
    "bradley_terry": {"scores", "beta"},
    "rater_mixture": {"utilities", "weights", "beta", "n_raters"},
    "majority_vote": {"utilities", "n_raters"},
}


def make_game(name: str, n: int | None = None, rng: Any = None, **kw: Any) -> Array:
    """A named preference game (one of :data:`GAME_NAMES`); random ones need ``n`` and ``rng``.

    ``bradley_terry`` draws scores ~ N(0, 1) and ``rater_mixture`` / ``majority_vote`` draw
    ``n_raters`` (default 3) utility vectors ~ N(0, 1) unless ``scores`` / ``utilities`` are given.
    """
    if name not in _GAME_KWARGS:
        close = difflib.get_close_matches(str(name), GAME_NAMES, n=3, cutoff=0.5)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise UnknownNameError(f"unknown game {name!r}{hint} (known: {', '.join(GAME_NAMES)})")
    extra = set(kw) - _GAME_KWARGS[name]
    if extra:
        allowed = ", ".join(sorted(_GAME_KWARGS[name])) or "none"
        raise ConfigError(
            f"game {name!r} got unexpected options {', '.join(sorted(extra))} (allowed: {allowed})"
        )
    fixed = {"rps": rps_matrix, "biased_rps": biased_rps_matrix, "dice": cyclic_dice_matrix}
    if name in fixed:
        if n is not None and n != 3:
            raise InvalidInputError(f"game {name!r} has exactly 3 outcomes, got n={n}")
        return fixed[name]()

    def need(what: str) -> None:
        if n is None or rng is None:
            raise InvalidInputError(f"game {name!r} needs n and rng to draw {what}")

    if name == "random":
        need("a random matrix")
        return random_preference_matrix(n, rng, **kw)  # type: ignore[arg-type]
    if name == "bradley_terry":
        scores = kw.get("scores")
        if scores is None:
            need("scores")
            scores = _standard_normal(rng, (int(n),))  # type: ignore[arg-type]
        return bradley_terry_matrix(scores, kw.get("beta", 1.0))
    utilities = kw.get("utilities")
    if utilities is None:
        need("utilities")
        utilities = _standard_normal(rng, (int(kw.get("n_raters", 3)), int(n)))  # type: ignore[arg-type]
    if name == "rater_mixture":
        return rater_mixture_matrix(utilities, kw.get("weights"), kw.get("beta"))
    return majority_vote_matrix(utilities)
