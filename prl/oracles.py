"""Simulated preference oracles, vectorized over pairs and safe in log space.

Every oracle answers for a batch of B pairs ``(a[i], b[i])`` of items (:class:`prl.types.Segments`
or, for finite outcomes, integer index arrays):

- ``prob(a, b) -> [B]``: P(a ≻ b) in [0, 1];
- ``mask(a, b) -> bool [B]``: False for pairs the oracle drops (default: all True);
- ``indifferent(a, b) -> bool [B]``: pairs declared equally preferable (their label is ½);
- ``label(a, b, rng) -> Preferences``: hard 0/1 labels drawn as ``rng.random(B) < prob``, ½ where
  the oracle is indifferent, with the mask. The same generator state gives identical labels.

Score-based oracles (:class:`BradleyTerry`, :class:`Regret`, :class:`Stochastic`) also expose
``margin(a, b)`` (score difference), ``logit(a, b) = β·margin`` (±inf when β = inf) and
``log_prob(a, b) = log σ(logit)``, computed with ``expit``/``log_expit`` — never ``exp`` of raw
returns.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import expit, log_expit

from prl.errors import InvalidInputError
from prl.registry import ORACLES
from prl.types import Items, Preferences, Segments, batch_size_of, take

__all__ = [
    "BradleyTerry",
    "Equal",
    "Hierarchical",
    "MajorityVote",
    "Mistake",
    "Myopic",
    "Oracle",
    "PreferenceMatrix",
    "RatedPreferences",
    "RaterPopulation",
    "Regret",
    "Scalarized",
    "ScoreOracle",
    "Skip",
    "Stochastic",
    "bpref_compose",
    "bpref_margin",
    "bpref_teacher",
    "check_proportions",
    "tabular_advantage_fn",
]

_BLOCK_STEPS = 1 << 17  # steps per block in blocked (cache-friendly) evaluations
BPREF_KINDS = ("oracle", "stochastic", "mistake", "myopic", "skip", "equal")


# ---- validation helpers ------------------------------------------------------------------------
def _check_beta(beta: float, name: str = "beta") -> float:
    try:
        beta = float(beta)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"{name} must be a number >= 0 (inf allowed), got {beta!r}"
        ) from None
    if np.isnan(beta) or beta < 0:
        raise InvalidInputError(f"{name} must be >= 0 (inf allowed), got {beta}")
    return beta


def _check_unit(x: float, name: str) -> float:
    """A factor in (0, 1] (discounts, myopic γ)."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a number in (0, 1], got {x!r}") from None
    if not (0.0 < x <= 1.0):
        raise InvalidInputError(f"{name} must be in (0, 1], got {x}")
    return x


def _check_eps(eps: float) -> float:
    try:
        eps = float(eps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"eps must be a number in [0, 0.5], got {eps!r}") from None
    if not (0.0 <= eps <= 0.5):
        raise InvalidInputError(f"eps must be in [0, 0.5], got {eps}")
    return eps


def _check_threshold(x: float, name: str) -> float:
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise InvalidInputError(f"{name} must be a finite number, got {x!r}") from None
    if not np.isfinite(x):
        raise InvalidInputError(f"{name} must be a finite number, got {x}")
    return x


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _check_segment_pair(
    a: Any, b: Any, who: str, rewards: str | None = None
) -> tuple[Segments, Segments]:
    """Both items are Segments with the same batch size and reward shape.

    ``rewards`` = "scalar" requires ``[B,T]`` rewards, "factored" requires ``[B,T,K]``.
    """
    for name, x in (("a", a), ("b", b)):
        if not isinstance(x, Segments):
            raise InvalidInputError(f"{who} needs Segments for {name}, got {type(x).__name__}")
    if a.rewards.shape != b.rewards.shape:
        raise InvalidInputError(
            f"{who} needs a and b with the same reward shape, got {a.rewards.shape} and "
            f"{b.rewards.shape}"
        )
    if rewards == "scalar" and a.rewards.ndim != 2:
        raise InvalidInputError(
            f"{who} needs scalar rewards [B,T], got factored rewards of shape {a.rewards.shape}"
        )
    if rewards == "factored" and a.rewards.ndim != 3:
        raise InvalidInputError(
            f"{who} needs factored rewards [B,T,K], got rewards of shape {a.rewards.shape}"
        )
    return a, b


def _check_finite_scores(x: Any, shape: tuple[int, ...], what: str) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.shape != shape:
        raise InvalidInputError(f"{what} must have shape {shape}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{what} contains NaN or inf")
    return arr


def _sigmoid(logit: np.ndarray) -> np.ndarray:
    return expit(logit)


def _log_sigmoid(logit: np.ndarray) -> np.ndarray:
    return log_expit(logit)


def _scaled(beta: float, margin: np.ndarray) -> np.ndarray:
    """β·margin, with β = inf giving ±inf (0 on ties) and never inf·0 = NaN."""
    if np.isinf(beta):
        return np.where(margin > 0, np.inf, np.where(margin < 0, -np.inf, 0.0))
    return beta * margin


# ---- base classes ------------------------------------------------------------------------------
class Oracle:
    """A preference oracle over batches of pairs: ``prob``, ``mask``, ``label``."""

    #: whether the oracle's answer depends on the segments' rewards (Myopic needs it)
    reads_rewards: bool = True
    #: whether ``margin`` (a score difference) is available (Stochastic needs it)
    has_margin: bool = False

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """P(a ≻ b) for each pair, shape [B]."""
        raise NotImplementedError

    def mask(self, a: Items, b: Items) -> np.ndarray:
        """False for pairs the oracle drops; default all True."""
        return np.ones(batch_size_of(a), dtype=bool)

    def indifferent(self, a: Items, b: Items) -> np.ndarray:
        """True for pairs declared equally preferable (label ½); default none."""
        return np.zeros(batch_size_of(a), dtype=bool)

    def log_prob(self, a: Items, b: Items) -> np.ndarray:
        """log P(a ≻ b) (−inf where the probability is 0)."""
        with np.errstate(divide="ignore"):
            return np.log(self.prob(a, b))

    def margin(self, a: Items, b: Items) -> np.ndarray:
        """Score difference of a over b (only score-based oracles have one)."""
        raise InvalidInputError(f"{type(self).__name__} has no score margin")

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        """Hard labels ``rng.random(B) < prob`` (½ where indifferent) with the oracle's mask."""
        rng = _check_rng(rng)
        p = self.prob(a, b)
        draws = rng.random(p.shape[0])
        lab = (draws < p).astype(np.float64)
        lab[self.indifferent(a, b)] = 0.5
        return Preferences(a, b, lab, self.mask(a, b))

    def __call__(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        return self.label(a, b, rng)


class ScoreOracle(Oracle):
    """P(a ≻ b) = σ(β·(score(a) − score(b))): a Bradley–Terry model over a segment score."""

    has_margin = True

    def __init__(self, beta: float = 1.0):
        self.beta = _check_beta(beta)

    def score(self, segments: Segments) -> np.ndarray:
        """Per-segment score [B] (e.g. partial return, negative regret)."""
        raise NotImplementedError

    def _pair(self, a: Items, b: Items) -> tuple[Segments, Segments]:
        return _check_segment_pair(a, b, type(self).__name__)

    def margin(self, a: Items, b: Items) -> np.ndarray:
        """score(a) − score(b), shape [B] (where that overflows, :meth:`_overflow_margin`)."""
        a, b = self._pair(a, b)
        with np.errstate(over="ignore", invalid="ignore"):
            m = self.score(a) - self.score(b)
        if np.all(np.isfinite(m)):
            return m
        return np.where(np.isfinite(m), m, self._overflow_margin(a, b))

    def _overflow_margin(self, a: Segments, b: Segments) -> np.ndarray:
        """The margin where score(a) − score(b) is not finite; subclasses that can compute it
        without forming the scores (e.g. summing reward differences) override this."""
        with np.errstate(over="ignore", invalid="ignore"):
            return self.score(a) - self.score(b)

    def logit(self, a: Items, b: Items) -> np.ndarray:
        """Log-odds β·margin of a over b (±inf for β = inf, 0 on ties)."""
        return _scaled(self.beta, self.margin(a, b))

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """σ(β·margin), computed with expit."""
        return _sigmoid(self.logit(a, b))

    def log_prob(self, a: Items, b: Items) -> np.ndarray:
        """log σ(β·margin), computed with log_expit (finite for finite β)."""
        return _log_sigmoid(self.logit(a, b))


# ---- score oracles -----------------------------------------------------------------------------
class BradleyTerry(ScoreOracle):
    """Bradley–Terry on partial return: P(a ≻ b) = σ(β(Σγ^t r^a_t − Σγ^t r^b_t)); β = inf is the
    deterministic B-Pref "oracle" teacher (ties → ½)."""

    def __init__(self, beta: float = 1.0, discount: float = 1.0):
        super().__init__(beta)
        self.discount = _check_unit(discount, "discount")

    def _pair(self, a: Items, b: Items) -> tuple[Segments, Segments]:
        return _check_segment_pair(a, b, "BradleyTerry", rewards="scalar")

    def score(self, segments: Segments) -> np.ndarray:
        """Partial (discounted) return Σ_t γ^t r_t, shape [B]."""
        if not isinstance(segments, Segments) or segments.rewards.ndim != 2:
            raise InvalidInputError(
                f"BradleyTerry needs Segments with scalar rewards [B,T], got "
                f"{getattr(getattr(segments, 'rewards', None), 'shape', type(segments).__name__)}"
            )
        return self._discounted_sum(segments.rewards, segments)

    def _discounted_sum(self, rewards: np.ndarray, segments: Segments) -> np.ndarray:
        if self.discount == 1.0:
            return rewards.sum(axis=1)
        return rewards @ segments.discount_weights(self.discount)

    def _overflow_margin(self, a: Segments, b: Segments) -> np.ndarray:
        """Σ_t γ^t (r^a_t − r^b_t): the return difference summed step by step, so equal huge
        returns give exactly 0 (not inf − inf = NaN) when the returns themselves overflow."""
        with np.errstate(over="ignore"):
            return self._discounted_sum(a.rewards - b.rewards, a)

    def __repr__(self) -> str:
        return f"BradleyTerry(beta={self.beta}, discount={self.discount})"


def tabular_advantage_fn(table: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Advantage lookup ``(obs, actions) -> table[obs, actions]`` for integer states and actions."""
    table = np.asarray(table, dtype=np.float64)
    if table.ndim != 2:
        raise InvalidInputError(f"advantage table must have shape [S,A], got {table.shape}")
    if not np.all(np.isfinite(table)):
        raise InvalidInputError("advantage table contains NaN or inf")
    S, A = table.shape

    flat = table.ravel()

    def lookup(obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        xs = []
        for name, x, n in (("obs", obs, S), ("actions", actions, A)):
            x = np.asarray(x)
            if x.ndim == 3 and x.shape[2] == 1:
                x = x[..., 0]
            if x.ndim != 2 or not np.issubdtype(x.dtype, np.integer):
                raise InvalidInputError(
                    f"tabular advantage needs integer {name} of shape [B,T], got "
                    f"{x.dtype} array of shape {x.shape}"
                )
            x = x.astype(np.int64, copy=False)
            # one pass: negative values wrap around to huge unsigned ones
            if x.size and int(x.view(np.uint64).max()) >= n:
                raise InvalidInputError(
                    f"{name} must be in [0, {n - 1}], got values in [{x.min()}, {x.max()}]"
                )
            xs.append(x)
        idx = xs[0] * A
        idx += xs[1]
        return flat.take(idx)

    return lookup


class Regret(ScoreOracle):
    """Regret preferences (Knox et al.): regret(σ) = −Σ_t γ^t A*(s_t, a_t);
    P(a ≻ b) = σ(β(regret(b) − regret(a)))."""

    reads_rewards = False

    def __init__(
        self,
        advantage_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
        beta: float = 1.0,
        discount: float = 1.0,
    ):
        super().__init__(beta)
        if not callable(advantage_fn):
            raise InvalidInputError(
                f"advantage_fn must be callable (obs, actions) -> [B,T], got "
                f"{type(advantage_fn).__name__}"
            )
        self.advantage_fn = advantage_fn
        self.discount = _check_unit(discount, "discount")

    @classmethod
    def from_mdp(cls, mdp: Any, beta: float = 1.0, discount: float | None = None) -> Regret:
        """Regret oracle with the exact A* of a TabularMDP (discount defaults to ``mdp.gamma``)."""
        table = np.asarray(mdp.advantage_star(), dtype=np.float64)
        gamma = float(mdp.gamma) if discount is None else discount
        return cls(tabular_advantage_fn(table), beta=beta, discount=gamma)

    def advantages(self, segments: Segments) -> np.ndarray:
        """A*(s_t, a_t) along each segment, shape [B,T]."""
        if not isinstance(segments, Segments):
            raise InvalidInputError(f"Regret needs Segments, got {type(segments).__name__}")
        adv = self.advantage_fn(segments.obs, segments.actions)
        return _check_finite_scores(adv, segments.rewards.shape[:2], "advantage_fn output")

    def regret(self, segments: Segments) -> np.ndarray:
        """regret(σ) = −Σ_t γ^t A*(s_t, a_t), shape [B] (Knox et al.).

        Evaluated in row blocks of about 2^17 steps so that the temporaries stay in cache.
        """
        if not isinstance(segments, Segments):
            raise InvalidInputError(f"Regret needs Segments, got {type(segments).__name__}")
        B, T = segments.rewards.shape[:2]
        w = None if self.discount == 1.0 else segments.discount_weights(self.discount)
        out = np.empty(B)
        rows = max(1, _BLOCK_STEPS // max(T, 1))
        for lo in range(0, B, rows):
            hi = min(B, lo + rows)
            adv = self.advantage_fn(segments.obs[lo:hi], segments.actions[lo:hi])
            adv = _check_finite_scores(adv, (hi - lo, T), "advantage_fn output")
            out[lo:hi] = adv.sum(axis=1) if w is None else adv @ w
        return -out

    def score(self, segments: Segments) -> np.ndarray:
        """Negative regret Σ_t γ^t A*(s_t, a_t)."""
        return -self.regret(segments)

    def __repr__(self) -> str:
        return f"Regret(beta={self.beta}, discount={self.discount})"


# ---- intransitive and finite-outcome oracles ---------------------------------------------------
class MajorityVote(Oracle):
    """Majority vote of R raters (reward functions): P = 1 if a strict majority prefers a, 0 if a
    strict majority prefers b, ½ otherwise — intransitive in general."""

    def __init__(self, reward_fns: Sequence[Callable[[Segments], np.ndarray]]):
        fns = list(reward_fns)
        if not fns or not all(callable(f) for f in fns):
            raise InvalidInputError(
                "MajorityVote needs a non-empty list of callables Segments -> [B] returns"
            )
        self.reward_fns = fns
        self._weights: np.ndarray | None = None
        self._discount = 1.0

    @classmethod
    def from_weights(cls, weights: np.ndarray, discount: float = 1.0) -> MajorityVote:
        """Raters i = 1..R scoring factored returns with w_i: R_i(σ) = Σ_t γ^t w_i · r_t."""
        W = np.asarray(weights, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] == 0 or not np.all(np.isfinite(W)):
            raise InvalidInputError(
                f"weights must be a finite matrix [R,K] with R >= 1, got shape {W.shape}"
            )
        gamma = _check_unit(discount, "discount")

        def rater(i: int) -> Callable[[Segments], np.ndarray]:
            return lambda seg: seg.returns(gamma) @ W[i]

        mv = cls([rater(i) for i in range(W.shape[0])])
        mv._weights = W
        mv._discount = gamma
        return mv

    @property
    def n_raters(self) -> int:
        """Number of raters R."""
        return len(self.reward_fns)

    def rater_returns(self, segments: Segments) -> np.ndarray:
        """Each rater's return of each segment, shape [B,R]."""
        if not isinstance(segments, Segments):
            raise InvalidInputError(f"MajorityVote needs Segments, got {type(segments).__name__}")
        B = segments.batch_size
        if self._weights is not None:
            K = self._weights.shape[1]
            if segments.rewards.ndim != 3 or segments.rewards.shape[2] != K:
                raise InvalidInputError(
                    f"MajorityVote.from_weights needs factored rewards [B,T,{K}], got shape "
                    f"{segments.rewards.shape}"
                )
            return segments.returns(self._discount) @ self._weights.T
        cols = [
            _check_finite_scores(f(segments), (B,), f"reward_fns[{i}] output")
            for i, f in enumerate(self.reward_fns)
        ]
        return np.stack(cols, axis=1)

    def votes(self, a: Segments, b: Segments) -> tuple[np.ndarray, np.ndarray]:
        """Numbers of raters strictly preferring a and strictly preferring b, each [B]."""
        a, b = _check_segment_pair(a, b, "MajorityVote")
        ra, rb = self.rater_returns(a), self.rater_returns(b)
        return (ra > rb).sum(axis=1), (rb > ra).sum(axis=1)

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """1 if more than R/2 raters prefer a, 0 if more than R/2 prefer b, else ½."""
        na, nb = self.votes(a, b)
        half = self.n_raters / 2.0
        return np.where(na > half, 1.0, np.where(nb > half, 0.0, 0.5))

    def __repr__(self) -> str:
        return f"MajorityVote(n_raters={self.n_raters})"


def _local_validate_preference_matrix(P: np.ndarray, atol: float = 1e-9) -> np.ndarray:
    if P.ndim != 2 or P.shape[0] != P.shape[1] or P.shape[0] == 0:
        raise InvalidInputError(f"preference matrix must be square [n,n], got shape {P.shape}")
    if not np.all(np.isfinite(P)) or np.any((P < 0) | (P > 1)):
        raise InvalidInputError("preference matrix entries must be finite and in [0, 1]")
    err = float(np.max(np.abs(P + P.T - 1.0)))
    if err > atol:
        raise InvalidInputError(f"preference matrix must satisfy P + Pᵀ = 1, max error {err:.3g}")
    return P


def _validate_preference_matrix(P: Any) -> np.ndarray:
    try:
        arr = np.asarray(P, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"P must be a numeric [n,n] matrix, got {type(P).__name__}"
        ) from None
    if arr.ndim != 2:
        raise InvalidInputError(f"preference matrix must be square [n,n], got shape {arr.shape}")
    try:
        from prl.games import validate_preference_matrix
    except ImportError:
        return _local_validate_preference_matrix(arr)
    out = validate_preference_matrix(arr)
    return np.asarray(arr if out is None else out, dtype=np.float64)


class PreferenceMatrix(Oracle):
    """Finite outcomes: P(a ≻ b) = P[a, b] for integer outcomes a, b (P + Pᵀ = 1)."""

    reads_rewards = False

    def __init__(self, P: np.ndarray):
        self.P = _validate_preference_matrix(P)

    @property
    def n(self) -> int:
        """Number of outcomes."""
        return int(self.P.shape[0])

    def _idx(self, x: Items, name: str) -> np.ndarray:
        if isinstance(x, Segments):
            raise InvalidInputError(
                f"PreferenceMatrix needs integer outcomes for {name}, got Segments"
            )
        arr = np.asarray(x)
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidInputError(
                f"PreferenceMatrix needs a 1-d integer array for {name}, got {arr.dtype} array "
                f"of shape {arr.shape}"
            )
        if arr.size and (arr.min() < 0 or arr.max() >= self.n):
            raise InvalidInputError(
                f"{name} must hold outcomes in [0, {self.n - 1}], got [{arr.min()}, {arr.max()}]"
            )
        return arr

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """P[a, b]."""
        ia, ib = self._idx(a, "a"), self._idx(b, "b")
        if ia.shape != ib.shape:
            raise InvalidInputError(f"a and b must have the same shape, got {ia.shape}, {ib.shape}")
        return self.P[ia, ib]

    def __repr__(self) -> str:
        return f"PreferenceMatrix(n={self.n})"


# ---- B-Pref teachers (composable wrappers) -----------------------------------------------------
class _Wrapper(Oracle):
    def __init__(self, inner: Oracle):
        if not isinstance(inner, Oracle):
            raise InvalidInputError(f"inner must be an Oracle, got {type(inner).__name__}")
        self.inner = inner
        self.reads_rewards = inner.reads_rewards

    def prob(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.prob(a, b)

    def mask(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.mask(a, b)

    def indifferent(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.indifferent(a, b)

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        return self.inner.label(a, b, rng)


class Stochastic(_Wrapper, ScoreOracle):
    """Re-temperatured score oracle (B-Pref "stochastic"): P = σ(β·inner.margin(a, b))."""

    def __init__(self, inner: Oracle, beta: float = 1.0):
        _Wrapper.__init__(self, inner)
        if not inner.has_margin:
            raise InvalidInputError(
                f"Stochastic needs an inner oracle with a score margin, got {type(inner).__name__}"
            )
        self.beta = _check_beta(beta)

    def margin(self, a: Items, b: Items) -> np.ndarray:
        """The inner oracle's score difference."""
        return self.inner.margin(a, b)

    prob = ScoreOracle.prob
    log_prob = ScoreOracle.log_prob
    label = Oracle.label

    def __repr__(self) -> str:
        return f"Stochastic({self.inner!r}, beta={self.beta})"


class Mistake(_Wrapper):
    """B-Pref "mistake": flips each inner label with probability ε; P = (1−ε)p + ε(1−p)."""

    def __init__(self, inner: Oracle, eps: float = 0.1):
        super().__init__(inner)
        self.eps = _check_eps(eps)

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """(1−ε)·p + ε·(1−p)."""
        p = self.inner.prob(a, b)
        return (1.0 - self.eps) * p + self.eps * (1.0 - p)

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        """The inner labels, each flipped (l → 1 − l) with probability ε."""
        rng = _check_rng(rng)
        prefs = self.inner.label(a, b, rng)
        flip = rng.random(len(prefs)) < self.eps
        lab = np.where(flip, 1.0 - prefs.label, prefs.label)
        return Preferences(prefs.a, prefs.b, lab, prefs.mask)

    def __repr__(self) -> str:
        return f"Mistake({self.inner!r}, eps={self.eps})"


class _SegmentTransform(_Wrapper):
    """A wrapper whose inner oracle sees transformed segments (``_pair``): every answer is the
    inner oracle's on the transformed pair; labels are returned on the original segments."""

    def _pair(self, a: Items, b: Items) -> tuple[Segments, Segments]:
        raise NotImplementedError

    def prob(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.prob(*self._pair(a, b))

    def mask(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.mask(*self._pair(a, b))

    def indifferent(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.indifferent(*self._pair(a, b))

    def margin(self, a: Items, b: Items) -> np.ndarray:
        """The inner margin on the transformed segments."""
        return self.inner.margin(*self._pair(a, b))

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        """The inner labels on the transformed segments, returned on the original segments."""
        prefs = self.inner.label(*self._pair(a, b), rng)
        return Preferences(a, b, prefs.label, prefs.mask)


class Myopic(_SegmentTransform):
    """B-Pref "myopic": the inner oracle sees rewards weighted γ^(H−1−k) on step k = 0..H−1.

    Wrap Skip/Equal around Myopic (not inside it) to threshold the raw returns, as B-Pref does.
    """

    def __init__(self, inner: Oracle, gamma: float = 0.9):
        super().__init__(inner)
        if not inner.reads_rewards:
            raise InvalidInputError(
                f"Myopic reweights rewards, but {type(inner).__name__} does not read rewards"
            )
        self.gamma = _check_unit(gamma, "gamma")
        self.has_margin = inner.has_margin

    def weights(self, H: int) -> np.ndarray:
        """γ^(H−1−k) for k = 0..H−1."""
        return np.power(self.gamma, np.arange(H - 1, -1, -1, dtype=np.float64))

    def reweight(self, segments: Items) -> Segments:
        """The segments with reward r_k replaced by γ^(H−1−k)·r_k (factors weighted alike)."""
        if not isinstance(segments, Segments):
            raise InvalidInputError(f"Myopic needs Segments, got {type(segments).__name__}")
        w = self.weights(segments.length)
        w = w[:, None] if segments.rewards.ndim == 3 else w
        return segments.with_rewards(segments.rewards * w)

    def _pair(self, a: Items, b: Items) -> tuple[Segments, Segments]:
        a, b = _check_segment_pair(a, b, "Myopic")
        return self.reweight(a), self.reweight(b)

    def __repr__(self) -> str:
        return f"Myopic({self.inner!r}, gamma={self.gamma})"


def _raw_returns(a: Items, b: Items, who: str) -> tuple[np.ndarray, np.ndarray]:
    a, b = _check_segment_pair(a, b, who, rewards="scalar")
    return a.rewards.sum(axis=1), b.rewards.sum(axis=1)


class Skip(_Wrapper):
    """B-Pref "skip": drops pairs whose max(Σr^a, Σr^b) ≤ threshold (raw undiscounted sums)."""

    def __init__(self, inner: Oracle, threshold: float):
        super().__init__(inner)
        self.threshold = _check_threshold(threshold, "threshold")
        self.has_margin = inner.has_margin

    def keep(self, a: Items, b: Items) -> np.ndarray:
        """max(Σr^a, Σr^b) > threshold."""
        ra, rb = _raw_returns(a, b, "Skip")
        return np.maximum(ra, rb) > self.threshold

    def mask(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.mask(a, b) & self.keep(a, b)

    def margin(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.margin(a, b)

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        """The inner labels with the skipped pairs masked out."""
        keep = self.keep(a, b)
        prefs = self.inner.label(a, b, rng)
        return Preferences(prefs.a, prefs.b, prefs.label, prefs.mask & keep)

    def __repr__(self) -> str:
        return f"Skip({self.inner!r}, threshold={self.threshold})"


class Equal(_Wrapper):
    """B-Pref "equal": |Σr^a − Σr^b| < threshold → label ½ and P = ½ (overrides the inner)."""

    def __init__(self, inner: Oracle, threshold: float):
        super().__init__(inner)
        self.threshold = _check_threshold(threshold, "threshold")

    def equal(self, a: Items, b: Items) -> np.ndarray:
        """|Σr^a − Σr^b| < threshold on the raw undiscounted sums."""
        ra, rb = _raw_returns(a, b, "Equal")
        return np.abs(ra - rb) < self.threshold

    def prob(self, a: Items, b: Items) -> np.ndarray:
        return np.where(self.equal(a, b), 0.5, self.inner.prob(a, b))

    def indifferent(self, a: Items, b: Items) -> np.ndarray:
        return self.inner.indifferent(a, b) | self.equal(a, b)

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        """The inner labels, set to ½ where the raw returns are within the threshold."""
        eq = self.equal(a, b)
        prefs = self.inner.label(a, b, rng)
        return Preferences(prefs.a, prefs.b, np.where(eq, 0.5, prefs.label), prefs.mask)

    def __repr__(self) -> str:
        return f"Equal({self.inner!r}, threshold={self.threshold})"


def bpref_margin(
    episode_returns: Sequence[float] | np.ndarray, segment_length: int, episode_length: int
) -> float:
    """B-Pref's threshold scale: the mean true episode return × H / T, i.e. the return a segment of
    H of the T steps earns on average (``new_margin`` in B-Pref's training loop)."""
    r = np.asarray(episode_returns, dtype=np.float64).reshape(-1)
    if r.size == 0 or not np.all(np.isfinite(r)):
        raise InvalidInputError(
            f"episode_returns must be a non-empty list of finite returns, got {r.size} values"
        )
    for name, n in (("segment_length", segment_length), ("episode_length", episode_length)):
        if isinstance(n, bool) or int(n) != n or int(n) < 1:
            raise InvalidInputError(f"{name} must be a positive integer, got {n!r}")
    return float(np.mean(r) * int(segment_length) / int(episode_length))


def _alias(value: Any, default: Any, alias: Any, name: str, alias_name: str) -> Any:
    """``alias`` (a B-Pref ``teacher_*`` name) in place of ``value``; both given and different
    is an error."""
    if alias is None:
        return value
    if value is not None and value != default and value != alias:
        raise InvalidInputError(f"give {name} or {alias_name}, not both ({value!r} vs {alias!r})")
    return alias


def _relative_threshold(
    absolute: float | None, eps: float | None, margin: float | None, kind: str
) -> float | None:
    """θ_kind = teacher_eps_kind × margin (B-Pref's relative threshold), or the absolute one."""
    if eps is None:
        return absolute
    if absolute is not None:
        raise InvalidInputError(
            f"give {kind}=θ (absolute) or teacher_eps_{kind}=ε with margin (θ = ε·margin), not both"
        )
    eps = _check_threshold(eps, f"teacher_eps_{kind}")
    if eps < 0:
        raise InvalidInputError(f"teacher_eps_{kind} must be >= 0, got {eps}")
    if margin is None:
        raise InvalidInputError(
            f"teacher_eps_{kind} is relative: give margin=... (e.g. prl.oracles.bpref_margin)"
        )
    return eps * _check_threshold(margin, "margin")


def _teacher_beta(beta: float, teacher_beta: float | None) -> float:
    """B-Pref's ``teacher_beta``: > 0 is the Bradley–Terry β, ≤ 0 (B-Pref uses −1) the rational
    teacher β = inf."""
    if teacher_beta is None:
        return beta
    tb = _check_threshold(teacher_beta, "teacher_beta")
    return tb if tb > 0 else np.inf


def bpref_compose(
    beta: float = np.inf,
    gamma: float = 1.0,
    eps: float = 0.0,
    skip: float | None = None,
    equal: float | None = None,
    *,
    margin: float | None = None,
    teacher_beta: float | None = None,
    teacher_gamma: float | None = None,
    teacher_eps_mistake: float | None = None,
    teacher_eps_skip: float | None = None,
    teacher_eps_equal: float | None = None,
) -> Oracle:
    """B-Pref's general teacher in the reference order: skip → equal mask → myopic weighting →
    label σ(β·Σ_k γ^(H−1−k) r_k) → mistake → equal overrides, built as
    Equal(Skip(Mistake(Myopic(BradleyTerry(β))))); trivial stages (γ = 1, ε = 0, no threshold)
    are left out. Skip and Equal read the raw sums, as in B-Pref.

    B-Pref's names are accepted too: ``teacher_beta`` (≤ 0 means β = inf), ``teacher_gamma``,
    ``teacher_eps_mistake``, and the relative thresholds θ_skip = ``teacher_eps_skip``·margin,
    θ_equal = ``teacher_eps_equal``·margin (see :func:`bpref_margin`).
    """
    if teacher_beta is not None and beta != np.inf:
        raise InvalidInputError("give beta or teacher_beta, not both")
    beta = _teacher_beta(beta, teacher_beta)
    gamma = _alias(gamma, 1.0, teacher_gamma, "gamma", "teacher_gamma")
    eps = _alias(eps, 0.0, teacher_eps_mistake, "eps", "teacher_eps_mistake")
    skip = _relative_threshold(skip, teacher_eps_skip, margin, "skip")
    equal = _relative_threshold(equal, teacher_eps_equal, margin, "equal")
    oracle: Oracle = BradleyTerry(beta)
    if _check_unit(gamma, "gamma") < 1.0:
        oracle = Myopic(oracle, gamma)
    if _check_eps(eps) > 0.0:
        oracle = Mistake(oracle, eps)
    if skip is not None:
        oracle = Skip(oracle, skip)
    if equal is not None:
        oracle = Equal(oracle, equal)
    return oracle


def bpref_teacher(
    kind: str,
    beta: float = 1.0,
    eps: float = 0.1,
    gamma: float = 0.9,
    skip: float | None = None,
    equal: float | None = None,
    *,
    margin: float | None = None,
    teacher_beta: float | None = None,
    teacher_gamma: float | None = None,
    teacher_eps_mistake: float | None = None,
    teacher_eps_skip: float | None = None,
    teacher_eps_equal: float | None = None,
) -> Oracle:
    """One of B-Pref's six simulated teachers (Lee et al.): "oracle" BT(inf), "stochastic" BT(β),
    "mistake" Mistake(BT(inf), ε), "myopic" Myopic(BT(inf), γ), "skip" Skip(BT(inf), skip),
    "equal" Equal(BT(inf), equal); the thresholds are on raw segment returns.

    B-Pref's names are aliases: ``teacher_beta`` for β (≤ 0, B-Pref's −1, means β = inf),
    ``teacher_gamma`` for γ, ``teacher_eps_mistake`` for ε, and ``teacher_eps_skip`` /
    ``teacher_eps_equal`` give relative thresholds θ = ε·margin (see :func:`bpref_margin`).
    """
    if teacher_beta is not None and beta != 1.0:
        raise InvalidInputError("give beta or teacher_beta, not both")
    beta = _teacher_beta(beta, teacher_beta)
    gamma = _alias(gamma, 0.9, teacher_gamma, "gamma", "teacher_gamma")
    eps = _alias(eps, 0.1, teacher_eps_mistake, "eps", "teacher_eps_mistake")
    skip = _relative_threshold(skip, teacher_eps_skip, margin, "skip")
    equal = _relative_threshold(equal, teacher_eps_equal, margin, "equal")
    exact = BradleyTerry(np.inf)
    if kind == "oracle":
        return exact
    if kind == "stochastic":
        return BradleyTerry(beta)
    if kind == "mistake":
        return Mistake(exact, eps)
    if kind == "myopic":
        return Myopic(exact, gamma)
    if kind in ("skip", "equal"):
        thr = skip if kind == "skip" else equal
        if thr is None:
            raise InvalidInputError(
                f"bpref_teacher({kind!r}) needs a return threshold {kind}=... or "
                f"teacher_eps_{kind}=... with margin=..., got None"
            )
        return Skip(exact, thr) if kind == "skip" else Equal(exact, thr)
    raise InvalidInputError(
        f"bpref teacher kind must be one of {', '.join(BPREF_KINDS)}, got {kind!r}"
    )


# ---- HERON's hierarchical comparator -----------------------------------------------------------
class Hierarchical(Oracle):
    """HERON's decision-tree comparator over reward factors [B,T,K]: walk the factors by
    importance; prefer a if f_a[k] > f_b[k] + m_ℓ·std_k (and symmetrically), else go to the next
    level; pairs tied at every level are dropped. f[k] = sign_k·Σ_t r_t[k] per trajectory."""

    def __init__(
        self,
        order: Sequence[int],
        margins: Sequence[float] | float,
        signs: Sequence[float] | None = None,
        scale: Sequence[float] | None = None,
    ):
        order_arr = np.asarray(order)
        if (
            order_arr.ndim != 1
            or order_arr.size == 0
            or not np.issubdtype(order_arr.dtype, np.integer)
        ):
            raise InvalidInputError(
                f"order must be a non-empty list of factor indices, got {order!r}"
            )
        if order_arr.min() < 0 or len(set(order_arr.tolist())) != order_arr.size:
            raise InvalidInputError(f"order must hold distinct indices >= 0, got {order!r}")
        m = np.broadcast_to(np.asarray(margins, dtype=np.float64), order_arr.shape).copy()
        if not np.all(np.isfinite(m)) or np.any(m < 0):
            raise InvalidInputError(
                f"margins must be finite and >= 0, one per level, got {margins!r}"
            )
        self.order = order_arr.astype(int)
        self.margins = m
        self.signs = None if signs is None else np.asarray(signs, dtype=np.float64)
        if self.signs is not None and (
            self.signs.ndim != 1 or not np.all(np.isin(self.signs, (-1.0, 1.0)))
        ):
            raise InvalidInputError(f"signs must be a list of +1/-1 per factor, got {signs!r}")
        self.scale = None if scale is None else np.asarray(scale, dtype=np.float64)
        if self.scale is not None and (
            self.scale.ndim != 1 or not np.all(np.isfinite(self.scale)) or np.any(self.scale < 0)
        ):
            raise InvalidInputError(f"scale must be a list of finite stds >= 0, got {scale!r}")

    def factor_returns(self, segments: Segments) -> np.ndarray:
        """f[k] = sign_k·Σ_t r_t[k] per trajectory, shape [B,K]."""
        f = segments.rewards.sum(axis=1)
        K = f.shape[1]
        for name, arr in (("signs", self.signs), ("scale", self.scale)):
            if arr is not None and arr.shape[0] != K:
                raise InvalidInputError(
                    f"{name} must have one entry per factor ({K}), got {arr.shape[0]}"
                )
        if int(self.order.max()) >= K:
            raise InvalidInputError(f"order indices must be < K = {K}, got {self.order.tolist()}")
        return f if self.signs is None else f * self.signs

    def decide(self, a: Items, b: Items) -> np.ndarray:
        """+1 where a is preferred, −1 where b is, 0 where every level ties, shape [B]."""
        a, b = _check_segment_pair(a, b, "Hierarchical", rewards="factored")
        fa, fb = self.factor_returns(a), self.factor_returns(b)
        if self.scale is not None:
            std = self.scale
        else:
            std = np.concatenate([fa, fb], axis=0).std(axis=0)
        out = np.zeros(fa.shape[0], dtype=np.int64)
        undecided = np.ones(fa.shape[0], dtype=bool)
        for level, k in enumerate(self.order):
            thr = self.margins[level] * std[k]
            a_wins = undecided & (fa[:, k] > fb[:, k] + thr)
            b_wins = undecided & (fb[:, k] > fa[:, k] + thr)
            out[a_wins], out[b_wins] = 1, -1
            undecided &= ~(a_wins | b_wins)
        return out

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """1 if a wins at the first deciding level, 0 if b does, ½ if all levels tie."""
        d = self.decide(a, b)
        return np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))

    def mask(self, a: Items, b: Items) -> np.ndarray:
        """False for pairs tied at every level."""
        return self.decide(a, b) != 0

    def indifferent(self, a: Items, b: Items) -> np.ndarray:
        return self.decide(a, b) == 0

    def label(self, a: Items, b: Items, rng: np.random.Generator) -> Preferences:
        """Deterministic labels (1/0; ½ and masked for all-tie pairs); ``rng`` is not used."""
        _check_rng(rng)
        d = self.decide(a, b)
        lab = np.where(d > 0, 1.0, np.where(d < 0, 0.0, 0.5))
        return Preferences(a, b, lab, d != 0)

    def __repr__(self) -> str:
        return f"Hierarchical(order={self.order.tolist()}, margins={self.margins.tolist()})"


# ---- pluralistic raters: a population of rater groups ----------------------------------------
def _check_rater_ids(rater: Any, n: int, n_raters: int | None) -> np.ndarray:
    """Rater ids as int64 [n] in [0, n_raters) (one per pair)."""
    arr = np.asarray(rater)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise InvalidInputError(f"rater ids must have shape ({n},) (one per pair), got {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise InvalidInputError(f"rater ids must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    hi = n_raters if n_raters is not None else np.iinfo(np.int64).max
    if arr.size and (arr.min() < 0 or arr.max() >= hi):
        raise InvalidInputError(
            f"rater ids must lie in [0, {hi - 1}], got values in [{arr.min()}, {arr.max()}]"
        )
    return arr


@dataclass(frozen=True)
class RatedPreferences(Preferences):
    """Labelled pairs that also record who labelled them: ``rater[i]`` in [0, n_raters)."""

    rater: Any = None
    n_raters: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.rater is None:
            raise InvalidInputError("RatedPreferences needs rater ids (one per pair), got None")
        if self.n_raters is not None and (
            isinstance(self.n_raters, bool)
            or not isinstance(self.n_raters, (int, np.integer))
            or self.n_raters < 1
        ):
            raise InvalidInputError(f"n_raters must be a positive integer, got {self.n_raters!r}")
        object.__setattr__(self, "rater", _check_rater_ids(self.rater, len(self), self.n_raters))

    def subset(self, idx: np.ndarray) -> RatedPreferences:
        """A sub-batch of pairs with their rater ids."""
        idx = np.asarray(idx)
        base = Preferences.subset(self, idx)
        return RatedPreferences(
            base.a, base.b, base.label, base.mask, self.rater[idx], self.n_raters
        )

    def valid(self) -> RatedPreferences:
        """Only the pairs that were not skipped."""
        return self.subset(np.flatnonzero(self.mask))

    def flipped(self) -> RatedPreferences:
        """The same pairs with a and b swapped (labels 1 − label), same raters."""
        return RatedPreferences(
            self.b, self.a, 1.0 - self.label, self.mask.copy(), self.rater.copy(), self.n_raters
        )

    def of_rater(self, k: int) -> RatedPreferences:
        """The pairs labelled by rater ``k``."""
        return self.subset(np.flatnonzero(self.rater == int(k)))

    @staticmethod
    def concat(parts: Sequence[RatedPreferences]) -> RatedPreferences:
        """Concatenate labelled batches (segments or outcome indices) along the pair axis."""
        if not parts:
            raise InvalidInputError("cannot concatenate an empty list of RatedPreferences")

        def cat(xs: list[Items]) -> Items:
            if isinstance(xs[0], Segments):
                return Segments.concat(list(xs))  # type: ignore[arg-type]
            return np.concatenate([np.asarray(x) for x in xs])

        ns = {p.n_raters for p in parts}
        return RatedPreferences(
            cat([p.a for p in parts]),
            cat([p.b for p in parts]),
            np.concatenate([p.label for p in parts]),
            np.concatenate([p.mask for p in parts]),
            np.concatenate([p.rater for p in parts]),
            ns.pop() if len(ns) == 1 else None,
        )


class Scalarized(_SegmentTransform):
    """A rater with its own reward weights: factored rewards [B,T,F] become w·r_t [B,T], which the
    inner oracle (BradleyTerry or any B-Pref teacher) then labels."""

    def __init__(self, inner: Oracle, weights: Any):
        super().__init__(inner)
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or w.size == 0 or not np.all(np.isfinite(w)):
            raise InvalidInputError(f"weights must be a finite vector [F], got shape {w.shape}")
        self.weights = w
        self.has_margin = inner.has_margin

    def scalarize(self, segments: Items) -> Segments:
        """The segments with rewards r_t [B,T,F] replaced by w·r_t [B,T]."""
        if not isinstance(segments, Segments) or segments.rewards.ndim != 3:
            raise InvalidInputError(
                "Scalarized needs Segments with factored rewards [B,T,F], got "
                f"{getattr(getattr(segments, 'rewards', None), 'shape', type(segments).__name__)}"
            )
        if segments.rewards.shape[2] != self.weights.shape[0]:
            raise InvalidInputError(
                f"Scalarized has {self.weights.shape[0]} weights but the segments have "
                f"{segments.rewards.shape[2]} reward factors"
            )
        return segments.with_rewards(segments.rewards @ self.weights)

    def _pair(self, a: Items, b: Items) -> tuple[Segments, Segments]:
        a, b = _check_segment_pair(a, b, "Scalarized", rewards="factored")
        return self.scalarize(a), self.scalarize(b)

    def __repr__(self) -> str:
        return f"Scalarized({self.inner!r}, weights={self.weights.tolist()})"


def check_proportions(proportions: Any, K: int | None = None) -> np.ndarray:
    """Group proportions as a float64 probability vector [K] (K ≥ 1, entries ≥ 0, sum 1 ± 1e-9)."""
    try:
        p = np.asarray(proportions, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidInputError(
            f"proportions must be a vector of numbers, got {type(proportions).__name__}"
        ) from None
    if p.ndim != 1 or p.size == 0:
        raise InvalidInputError(f"proportions need K >= 1 groups, got shape {p.shape}")
    if K is not None and p.size != K:
        raise InvalidInputError(f"proportions must have one entry per group ({K}), got {p.size}")
    if not np.all(np.isfinite(p)) or np.any(p < 0):
        raise InvalidInputError(f"proportions must be finite and >= 0, got {p.tolist()}")
    if abs(p.sum() - 1.0) > 1e-9:
        raise InvalidInputError(f"proportions must sum to 1, got sum {p.sum():.12g}")
    return p


class RaterPopulation(Oracle):
    """K rater groups with proportions ρ: each pair is labelled by a rater k ~ ρ, whose id is
    recorded (:class:`RatedPreferences`); P(a ≻ b) = Σ_k ρ_k P_k(a ≻ b) is the population's
    marginal. Raters are any oracles, so B-Pref teachers compose (see :meth:`from_weights`)."""

    def __init__(self, raters: Sequence[Oracle], proportions: Any = None):
        raters = list(raters) if isinstance(raters, (list, tuple)) else raters
        if not isinstance(raters, list) or len(raters) == 0:
            raise InvalidInputError("RaterPopulation needs K >= 1 rater oracles, got K = 0")
        for i, r in enumerate(raters):
            if not isinstance(r, Oracle):
                raise InvalidInputError(f"raters[{i}] must be an Oracle, got {type(r).__name__}")
        self.raters = raters
        K = len(raters)
        self.proportions = (
            np.full(K, 1.0 / K) if proportions is None else check_proportions(proportions, K)
        )
        self.reads_rewards = any(r.reads_rewards for r in raters)

    @classmethod
    def from_weights(
        cls,
        weights: Any,
        proportions: Any = None,
        teacher: str | Callable[[], Oracle] = "stochastic",
        **teacher_kw: Any,
    ) -> RaterPopulation:
        """Group k scores factored rewards with its own weights w_k [F] (Σ_t w_k·r_t) and labels
        as the B-Pref teacher ``teacher`` (a kind of :func:`bpref_teacher`, or a factory)."""
        W = np.asarray(weights, dtype=np.float64)
        if W.ndim != 2 or W.shape[0] == 0:
            raise InvalidInputError(
                f"weights must be a matrix [K,F] with K >= 1 groups, got shape {W.shape}"
            )
        make = teacher if callable(teacher) else (lambda: bpref_teacher(teacher, **teacher_kw))
        return cls([Scalarized(make(), w) for w in W], proportions)

    @property
    def n_groups(self) -> int:
        """Number of rater groups K."""
        return len(self.raters)

    def sample_raters(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """n rater ids k ~ ρ (int64)."""
        rng = _check_rng(rng)
        return rng.choice(self.n_groups, size=int(n), p=self.proportions).astype(np.int64)

    def prob(self, a: Items, b: Items) -> np.ndarray:
        """Σ_k ρ_k P_k(a ≻ b): the label probability of a pair before its rater is drawn."""
        return sum(p * r.prob(a, b) for p, r in zip(self.proportions, self.raters, strict=True))

    def group_probs(self, a: Items, b: Items) -> np.ndarray:
        """Each group's P_k(a ≻ b), shape [K, B]."""
        return np.stack([r.prob(a, b) for r in self.raters])

    def label(
        self, a: Items, b: Items, rng: np.random.Generator, raters: Any = None
    ) -> RatedPreferences:
        """Each pair labelled by its rater (drawn from ρ unless ``raters`` gives the ids)."""
        rng = _check_rng(rng)
        B = batch_size_of(a)
        if batch_size_of(b) != B:
            raise InvalidInputError(
                f"a and b must hold the same number of items, got {B} and {batch_size_of(b)}"
            )
        ids = (
            self.sample_raters(B, rng)
            if raters is None
            else _check_rater_ids(raters, B, self.n_groups)
        )
        lab = np.zeros(B)
        mask = np.ones(B, dtype=bool)
        for k in range(self.n_groups):
            idx = np.flatnonzero(ids == k)
            if idx.size == 0:
                continue
            prefs = self.raters[k].label(take(a, idx), take(b, idx), rng)
            lab[idx], mask[idx] = prefs.label, prefs.mask
        return RatedPreferences(a, b, lab, mask, ids, self.n_groups)

    def __repr__(self) -> str:
        return f"RaterPopulation(K={self.n_groups}, proportions={self.proportions.tolist()})"


# ---- registry ----------------------------------------------------------------------------------
ORACLES.register(
    "bradley_terry", BradleyTerry, description="Bradley–Terry on partial return σ(β ΔR)"
)
ORACLES.register(
    "regret", Regret, description="Knox et al. regret preferences σ(β Δregret) from A*"
)
ORACLES.register(
    "majority_vote", MajorityVote, description="strict majority of several reward functions"
)
ORACLES.register(
    "preference_matrix", PreferenceMatrix, description="finite outcomes: P(a ≻ b) = P[a, b]"
)
ORACLES.register(
    "hierarchical", Hierarchical, description="HERON's factor-by-factor comparator with margins"
)
ORACLES.register(
    "rater_population",
    RaterPopulation,
    description="K rater groups with proportions; each pair labelled by a sampled rater (id kept)",
)
ORACLES.register(
    "scalarized", Scalarized, description="a rater's own weights w·r over factored rewards"
)
ORACLES.register("stochastic", Stochastic, description="B-Pref: re-temperature a score oracle")
ORACLES.register("mistake", Mistake, description="B-Pref: flip each label with probability ε")
ORACLES.register("myopic", Myopic, description="B-Pref: weight step k by γ^(H−1−k)")
ORACLES.register("skip", Skip, description="B-Pref: drop pairs with max return ≤ threshold")
ORACLES.register("equal", Equal, description="B-Pref: label ½ when |ΔR| < threshold")
