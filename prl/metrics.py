"""Multi-objective and aggregate metrics (all objectives are maximized).

Pareto filtering, exact hypervolume, expected utility over a weight grid, PGMORL sparsity,
the interquartile mean with stratified bootstrap confidence intervals, the probability of
improvement (win rate) and performance profiles (rliable).
"""

from __future__ import annotations

import inspect
import itertools
import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

import numpy as np

from prl.errors import InvalidInputError

__all__ = [
    "curve_iqm_ci",
    "expected_utility",
    "hypervolume",
    "iqm",
    "pareto_front",
    "pareto_mask",
    "performance_profile",
    "sparsity",
    "stratified_bootstrap_ci",
    "uniform_weight_grid",
    "win_rate",
]

# Bootstrap samples are built in chunks of at most this many float64 entries (~128 MiB).
_CHUNK_ENTRIES = 1 << 24
# Largest weight grid uniform_weight_grid will build.
_MAX_GRID_ROWS = 10_000_000


# ---- input checks ---------------------------------------------------------------------------
def _as_float_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "detach"):  # torch tensor
        x = x.detach().cpu().numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidInputError(f"{name} must be a numeric array, got {type(x).__name__}") from exc
    if not np.all(np.isfinite(arr)):
        raise InvalidInputError(f"{name} must be finite, got NaN or inf")
    return arr


def _as_points(x: Any, name: str = "points", *, allow_empty: bool = True) -> np.ndarray:
    arr = _as_float_array(x, name)
    if arr.ndim != 2:
        raise InvalidInputError(f"{name} must have shape [n,d], got shape {arr.shape}")
    if arr.shape[1] < 1:
        raise InvalidInputError(f"{name} must have at least one objective, got shape {arr.shape}")
    if not allow_empty and arr.shape[0] == 0:
        raise InvalidInputError(f"{name} must hold at least one point, got shape {arr.shape}")
    return arr


def _check_unit_interval(value: float, name: str) -> float:
    value = float(value)
    if not (0.0 < value < 1.0):
        raise InvalidInputError(f"{name} must lie in (0, 1), got {value}")
    return value


def _check_reps(reps: int) -> int:
    if isinstance(reps, bool) or int(reps) != reps or int(reps) < 1:
        raise InvalidInputError(f"reps must be a positive integer, got {reps!r}")
    return int(reps)


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


# ---- Pareto filtering -----------------------------------------------------------------------
def _pareto_mask(pts: np.ndarray) -> np.ndarray:
    """Non-dominated mask of validated points; of several equal points the first is kept."""
    n, d = pts.shape
    mask = np.zeros(n, dtype=bool)
    if n == 0:
        return mask
    if d == 1:
        mask[int(np.argmax(pts[:, 0]))] = True  # argmax returns the first maximum
        return mask
    # Lexicographically descending, stable: a point can only be dominated (or duplicated) by
    # points that come before it in this order.
    order = np.lexsort(tuple(-pts[:, j] for j in range(d - 1, -1, -1)))
    if d == 2:
        ys = pts[order, 1]
        prev_best = np.maximum.accumulate(np.concatenate(([-np.inf], ys[:-1])))
        mask[order[ys > prev_best]] = True
        return mask
    front = np.empty_like(pts)
    size = 0
    for i in order:
        p = pts[i]
        if size and np.any(np.all(front[:size] >= p, axis=1)):
            continue
        front[size] = p
        size += 1
        mask[i] = True
    return mask


def _nondominated(pts: np.ndarray) -> np.ndarray:
    """Non-dominated mask by moocore (Kung et al.'s sweep); of equal points the first is kept."""
    import moocore

    if pts.shape[0] == 0:
        return np.zeros(0, dtype=bool)
    if pts.shape[1] == 1:
        return _pareto_mask(pts)
    return np.asarray(moocore.is_nondominated(pts, maximise=True, keep_weakly=False), dtype=bool)


def pareto_mask(points: np.ndarray) -> np.ndarray:
    """Boolean mask [n] of the non-dominated points (maximization); of equal points only the first
    is kept (moocore; :func:`_pareto_mask` is the plain reference implementation)."""
    return _nondominated(_as_points(points))


def pareto_front(points: np.ndarray) -> np.ndarray:
    """The non-dominated points (maximization) in their input order, duplicates removed."""
    pts = _as_points(points)
    return pts[_nondominated(pts)]


# ---- hypervolume ----------------------------------------------------------------------------
def _hv2(pts: np.ndarray) -> float:
    """Area dominated by positive 2-D points (reference at the origin), O(n log n)."""
    front = pts[_pareto_mask(pts)]
    front = front[np.argsort(-front[:, 0], kind="stable")]  # x descending → y ascending
    dy = np.diff(np.concatenate(([0.0], front[:, 1])))
    return float(np.sum(front[:, 0] * dy))


def _hv3(pts: np.ndarray) -> float:
    """Volume dominated by positive 3-D points: sweep down z keeping the 2-D front, O(n²)."""
    order = np.argsort(-pts[:, 2], kind="stable")
    xs_sorted = pts[order, 0].tolist()
    ys_sorted = pts[order, 1].tolist()
    zs_sorted = pts[order, 2].tolist()
    xs: list[float] = []  # 2-D front: x ascending, y descending
    ys: list[float] = []
    area = 0.0
    total = 0.0
    n = len(zs_sorted)
    for k in range(n):
        x, y, z = xs_sorted[k], ys_sorted[k], zs_sorted[k]
        m = len(xs)
        idx = bisect_left(xs, x)
        if not (idx < m and ys[idx] >= y):  # not dominated by the current 2-D front
            hi = bisect_right(xs, x)  # xs[:hi] <= x
            lo = hi
            while lo > 0 and ys[lo - 1] <= y:
                lo -= 1  # xs[lo:hi] are dominated by (x, y)
            left_x = xs[lo - 1] if lo > 0 else 0.0
            old = 0.0
            prev = left_x
            for j in range(lo, hi):
                old += (xs[j] - prev) * ys[j]
                prev = xs[j]
            new = (x - left_x) * y
            if hi < m:
                old += (xs[hi] - prev) * ys[hi]
                new += (xs[hi] - x) * ys[hi]
            area += new - old
            xs[lo:hi] = [x]
            ys[lo:hi] = [y]
        z_next = zs_sorted[k + 1] if k + 1 < n else 0.0
        total += area * (z - z_next)
    return total


def _hv(pts: np.ndarray) -> float:
    """Volume dominated by positive, mutually non-dominated points (reference at the origin).

    d ≤ 3 use the sweeps; d ≥ 4 use WFG-style slicing: with points sorted by the last objective
    ascending, HV = Σ_i p_i,d · (Π_{j<d} p_i,j − HV_{d−1}(nd{min(q, p_i)[:d−1] : q after p_i})).
    """
    n, d = pts.shape
    if n == 0:
        return 0.0
    if d == 1:
        return float(np.max(pts[:, 0]))
    if d == 2:
        return _hv2(pts)
    if d == 3:
        return _hv3(pts)
    pts = pts[np.argsort(pts[:, -1], kind="stable")]
    head = pts[:, :-1]
    total = 0.0
    for i in range(n):
        p = head[i]
        inner = 0.0
        if i + 1 < n:
            limited = np.minimum(head[i + 1 :], p)
            inner = _hv(limited[_pareto_mask(limited)])
        total += float(pts[i, -1]) * (float(np.prod(p)) - inner)
    return total


def _shifted_front(points: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Validated points minus ``ref``, keeping only those strictly dominating ``ref``."""
    pts = _as_points(points)
    ref_arr = _as_float_array(ref, "ref")
    if ref_arr.shape != (pts.shape[1],):
        raise InvalidInputError(
            f"ref must have shape ({pts.shape[1]},) to match points {pts.shape}, "
            f"got shape {ref_arr.shape}"
        )
    shifted = pts - ref_arr
    return shifted[np.all(shifted > 0, axis=1)]


def _finite_volume(value: float) -> float:
    if not math.isfinite(value):
        raise InvalidInputError(
            "hypervolume overflows float64 for these points and ref: rescale the objectives"
        )
    return value


def hypervolume(points: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume of ∪_p [ref, p] over the points strictly dominating ``ref`` (maximization).

    Computed by moocore (pymoo's engine: HV3D+ for d = 3, HV4D+/WFG beyond); the plain exact
    sweep :func:`hypervolume_exact` is kept as its test oracle.
    """
    import moocore

    shifted = _shifted_front(points, ref)
    if shifted.shape[0] == 0:
        return 0.0
    if shifted.shape[1] == 1:
        return _finite_volume(float(shifted[:, 0].max()))
    with np.errstate(over="raise", invalid="raise"):
        try:
            value = float(
                moocore.hypervolume(shifted, ref=np.zeros(shifted.shape[1]), maximise=True)
            )
        except FloatingPointError:
            value = math.inf
    return _finite_volume(value)


def hypervolume_exact(points: np.ndarray, ref: np.ndarray) -> float:
    """The lab's own exact sweep (2-D/3-D sweeps, WFG-style slicing for d ≥ 4): the oracle that
    :func:`hypervolume` (moocore) is tested against."""
    shifted = _shifted_front(points, ref)
    if shifted.shape[0] == 0:
        return 0.0
    if shifted.shape[1] >= 3:
        shifted = shifted[_pareto_mask(shifted)]
    with np.errstate(over="raise", invalid="raise"):
        try:
            value = float(_hv(shifted))
        except FloatingPointError:
            value = math.inf
    return _finite_volume(value)


# ---- utility and spread ---------------------------------------------------------------------
def expected_utility(points: np.ndarray, weights: np.ndarray) -> float:
    """EU = mean over weights w of max_p w·p (C-MORL / PGMORL expected utility)."""
    pts = _as_points(points, allow_empty=False)
    w = _as_points(weights, "weights", allow_empty=False)
    if w.shape[1] != pts.shape[1]:
        raise InvalidInputError(
            f"weights must have {pts.shape[1]} columns to match points {pts.shape}, "
            f"got shape {w.shape}"
        )
    return float(np.mean(np.max(w @ pts.T, axis=1)))


def uniform_weight_grid(d: int, step: float = 0.01) -> np.ndarray:
    """All weight vectors on the d-simplex whose coordinates are multiples of ``step``: [W,d]."""
    if isinstance(d, bool) or int(d) != d or int(d) < 1:
        raise InvalidInputError(f"d must be a positive integer, got {d!r}")
    d = int(d)
    step = float(step)
    if not (0.0 < step <= 1.0) or not math.isfinite(step):
        raise InvalidInputError(f"step must lie in (0, 1], got {step}")
    m = round(1.0 / step)
    if abs(m * step - 1.0) > 1e-9:
        raise InvalidInputError(f"step must divide 1 evenly (1/step an integer), got {step}")
    rows = math.comb(m + d - 1, d - 1)
    if rows > _MAX_GRID_ROWS:
        raise InvalidInputError(
            f"a weight grid of at most {_MAX_GRID_ROWS} rows was expected, "
            f"got {rows} for d={d}, step={step}"
        )
    if d == 1:
        return np.ones((1, 1))
    # Stars and bars: d-1 bar positions among m+d-1 slots give the counts of each coordinate.
    bars = np.array(list(itertools.combinations(range(m + d - 1), d - 1)), dtype=np.int64)
    edges = np.concatenate(
        [np.full((rows, 1), -1), bars, np.full((rows, 1), m + d - 1)], axis=1, dtype=np.int64
    )
    counts = np.diff(edges, axis=1) - 1
    return counts.astype(np.float64) / m


def sparsity(points: np.ndarray) -> float:
    """PGMORL sparsity of the Pareto front: Σ_j Σ_i (f̃_j(i) − f̃_j(i+1))² / (n − 1), 0 if n < 2.

    f̃_j is objective j's values on the front sorted; equal points count once. Lower is better.
    """
    front = pareto_front(points)
    n = front.shape[0]
    if n < 2:
        return 0.0
    gaps = np.diff(np.sort(front, axis=0), axis=0)
    return float(np.sum(gaps**2) / (n - 1))


# ---- aggregate statistics (rliable) ---------------------------------------------------------
# IQM and the probability of improvement are rliable's own (``rliable.metrics``). The interval
# estimates follow ``rliable.library``'s stratified bootstrap draw for draw: per replicate,
# ``choice(runs, shape)`` run indices from a numpy RandomState, one per (task[, point]) cell,
# and arch's percentile interval (``np.percentile`` at 100·α/2 and 100·(1 − α/2)). rliable
# draws from numpy's *global* RandomState and its arch < 8 pin does not import beside pandas ≥ 3,
# so the lab draws the same stream from a private RandomState seeded from the caller's
# Generator: the intervals equal rliable.library's after ``np.random.seed(seed)``
# (tests/test_metrics.py checks this wherever rliable.library imports).
def _rliable_metrics() -> Any:
    import rliable.metrics

    return rliable.metrics


def _bootstrap_state(rng: np.random.Generator) -> np.random.RandomState:
    """The RandomState the stratified bootstrap draws from, seeded by one draw of ``rng``."""
    return np.random.RandomState(_bootstrap_seed(rng))


def _bootstrap_seed(rng: np.random.Generator) -> int:
    """A 32-bit RandomState seed drawn from ``rng`` (one draw; same generator state → same seed)."""
    return int(_check_rng(rng).integers(0, 2**32, dtype=np.uint64))


def _iqm_along(arr: np.ndarray, axis: int) -> np.ndarray:
    """rliable's IQM (scipy's 25 % trimmed mean) along one axis."""
    import scipy.stats

    return np.asarray(scipy.stats.trim_mean(arr, 0.25, axis=axis))


def iqm(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean after cutting ⌊n/4⌋ values at each end
    (``rliable.metrics.aggregate_iqm``; along ``axis`` the same 25 % trimmed mean)."""
    arr = _as_float_array(x, "x")
    if arr.ndim == 0:
        raise InvalidInputError("x must be an array with at least one axis, got a scalar")
    if axis is None:
        if arr.size == 0:
            raise InvalidInputError(f"x must hold at least one value, got {arr.shape}")
        return float(_rliable_metrics().aggregate_iqm(arr))
    if not -arr.ndim <= axis < arr.ndim:
        raise InvalidInputError(f"axis must be in [-{arr.ndim}, {arr.ndim}), got {axis}")
    if arr.shape[axis] == 0:
        raise InvalidInputError(
            f"x must hold at least one value along axis {axis}, got {arr.shape}"
        )
    out = _iqm_along(arr, axis)
    return float(out) if out.ndim == 0 else out


def _accepts_axis(fn: Callable[..., Any]) -> bool:
    try:
        return "axis" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


def _percentile_interval(boot: np.ndarray, confidence: float) -> tuple[Any, Any]:
    """arch's two-sided percentile interval (what rliable's ``method="percentile"`` returns)."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.percentile(boot, [100.0 * alpha, 100.0 * (1.0 - alpha)], axis=0)
    return lo, hi


def _resamples(mat: np.ndarray, reps: int, rs: np.random.RandomState, per_rep: int = 1) -> Any:
    """Yield (start, [r, runs, cells]) stratified resamples of ``mat`` [runs, cells] in chunks:
    each cell's runs drawn with replacement, independently per cell (rliable's
    ``StratifiedBootstrap.update_indices``)."""
    runs, cells = mat.shape
    cols = np.arange(cells)
    chunk = max(1, _CHUNK_ENTRIES // (runs * cells * per_rep))
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        idx = rs.randint(0, runs, size=(r, runs, cells))
        yield start, mat[idx, cols]


def _check_scores(scores: Any, name: str = "scores") -> np.ndarray:
    arr = _as_float_array(scores, name)
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise InvalidInputError(
            f"{name} must be a non-empty array of shape [runs] or [runs, tasks], got {arr.shape}"
        )
    return arr


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[..., Any] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    *,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """(point, lo, hi): percentile CI of ``statistic`` over [runs, tasks] scores, resampling runs
    with replacement independently within each task (rliable's stratified bootstrap,
    ``get_interval_estimates(method="percentile")``; one seed drawn from ``rng``).

    A statistic with an ``axis`` keyword (iqm, np.mean, np.median, ...) is taken as a reduction
    over all scores and evaluated on every resample at once; any other is called per resample on a
    [runs, tasks] (or [runs]) array.
    """
    arr = _check_scores(scores)
    reps = _check_reps(reps)
    confidence = _check_unit_interval(confidence, "confidence")
    rs = _bootstrap_state(rng)
    mat = arr.reshape(arr.shape[0], -1)
    point = float(statistic(arr))
    vectorized = _accepts_axis(statistic)
    boot = np.empty(reps)
    for start, sample in _resamples(mat, reps, rs):
        r = sample.shape[0]
        if vectorized:
            boot[start : start + r] = np.asarray(statistic(sample.reshape(r, -1), axis=1))
        else:
            for k in range(r):
                boot[start + k] = float(statistic(sample[k].reshape(arr.shape)))
    lo, hi = _percentile_interval(boot, confidence)
    return point, float(lo), float(hi)


def curve_iqm_ci(
    curves: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    *,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-point IQM over seeds of [seeds, points] curves and its percentile bootstrap CI, as
    rliable computes sample-efficiency curves (scores [runs, 1 task, points]; its stratified
    bootstrap resamples the seeds independently at every point)."""
    arr = _as_float_array(curves, "curves")
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidInputError(
            f"curves must be a non-empty array of shape [seeds, points], got {arr.shape}"
        )
    reps = _check_reps(reps)
    confidence = _check_unit_interval(confidence, "confidence")
    rs = _bootstrap_state(rng)
    point = _iqm_along(arr, 0)
    boot = np.empty((reps, arr.shape[1]))
    for start, sample in _resamples(arr, reps, rs):
        boot[start : start + sample.shape[0]] = _iqm_along(sample, 1)  # [r, points]
    lo, hi = _percentile_interval(boot, confidence)
    return point, np.asarray(lo), np.asarray(hi)


def _profile(sample: np.ndarray, taus: np.ndarray, use_score_distribution: bool) -> np.ndarray:
    """rliable's score distribution mean(scores > τ) over runs and tasks ([..., runs, tasks] →
    [..., τ]), or with ``use_score_distribution=False`` the fraction of tasks whose mean score
    over runs exceeds τ."""
    if use_score_distribution:
        flat = sample.reshape(*sample.shape[:-2], -1)
    else:
        flat = sample.mean(axis=-2)
    return np.mean(flat[..., :, None] > taus, axis=-2)


def performance_profile(
    scores: np.ndarray,
    taus: np.ndarray,
    reps: int = 2000,
    confidence: float = 0.95,
    *,
    rng: np.random.Generator,
    use_score_distribution: bool = True,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(profile, lo, hi) over thresholds τ: the fraction of run scores above τ (rliable's score
    distribution, ``create_performance_profile``) with its stratified-bootstrap percentile CI;
    ``use_score_distribution=False`` profiles the per-task mean scores instead."""
    arr = _check_scores(scores)
    tau = _as_float_array(taus, "taus")
    if tau.ndim != 1 or tau.size == 0:
        raise InvalidInputError(f"taus must be a non-empty 1-d array, got shape {tau.shape}")
    reps = _check_reps(reps)
    confidence = _check_unit_interval(confidence, "confidence")
    rs = _bootstrap_state(rng)
    mat = arr.reshape(arr.shape[0], -1)
    point = _profile(mat, tau, use_score_distribution)
    boot = np.empty((reps, tau.size))
    for start, sample in _resamples(mat, reps, rs, per_rep=tau.size):
        boot[start : start + sample.shape[0]] = _profile(sample, tau, use_score_distribution)
    lo, hi = _percentile_interval(boot, confidence)
    return point, np.asarray(lo), np.asarray(hi)


def win_rate(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) for X a run of A and Y a run of B, averaged over tasks
    (``rliable.metrics.probability_of_improvement``: the Mann–Whitney U of A over B divided by
    n_A·n_B; inputs [runs] or [runs, tasks])."""
    a = _as_float_array(scores_a, "scores_a")
    b = _as_float_array(scores_b, "scores_b")
    for name, arr in (("scores_a", a), ("scores_b", b)):
        if arr.ndim not in (1, 2) or arr.shape[0] == 0 or arr.size == 0:
            raise InvalidInputError(
                f"{name} must be a non-empty array of shape [runs] or [runs, tasks], "
                f"got {arr.shape}"
            )
    a2 = a.reshape(a.shape[0], -1)
    b2 = b.reshape(b.shape[0], -1)
    if a2.shape[1] != b2.shape[1]:
        raise InvalidInputError(
            f"scores_a and scores_b must cover the same tasks, got shapes {a.shape} and {b.shape}"
        )
    return float(_rliable_metrics().probability_of_improvement(a2, b2))
