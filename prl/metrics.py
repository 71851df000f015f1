"""Multi-objective and aggregate metrics (all objectives are maximized).

Pareto filtering, exact hypervolume, expected utility over a weight grid, PGMORL sparsity,
the interquartile mean with stratified bootstrap confidence intervals (rliable) and the
probability of improvement (win rate).
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
def _iqm_along(arr: np.ndarray, axis: int) -> np.ndarray:
    n = arr.shape[axis]
    cut = int(0.25 * n)
    srt = np.sort(arr, axis=axis)
    return np.mean(np.take(srt, np.arange(cut, n - cut), axis=axis), axis=axis)


def iqm(x: np.ndarray, axis: int | None = None) -> float | np.ndarray:
    """Interquartile mean: the mean after cutting ⌊n/4⌋ values at each end (rliable's IQM)."""
    arr = _as_float_array(x, "x")
    if axis is None:
        arr = arr.reshape(-1)
        axis = 0
    if arr.ndim == 0:
        raise InvalidInputError("x must be an array with at least one axis, got a scalar")
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
    alpha = 1.0 - confidence
    lo, hi = np.quantile(boot, [alpha / 2.0, 1.0 - alpha / 2.0], axis=0)
    return lo, hi


def stratified_bootstrap_ci(
    scores: np.ndarray,
    statistic: Callable[..., Any] = iqm,
    reps: int = 2000,
    confidence: float = 0.95,
    *,
    rng: np.random.Generator,
) -> tuple[float, float, float]:
    """(point, lo, hi): percentile CI of ``statistic`` over [runs, tasks] scores, resampling runs
    with replacement independently within each task (rliable's stratified bootstrap).

    A statistic with an ``axis`` keyword (iqm, np.mean, np.median, ...) is taken as a reduction
    over all scores and evaluated on every resample at once; any other is called per resample on a
    [runs, tasks] (or [runs]) array.
    """
    arr = _as_float_array(scores, "scores")
    if arr.ndim not in (1, 2) or arr.size == 0:
        raise InvalidInputError(
            f"scores must be a non-empty array of shape [runs] or [runs, tasks], got {arr.shape}"
        )
    reps = _check_reps(reps)
    confidence = _check_unit_interval(confidence, "confidence")
    rng = _check_rng(rng)
    mat = arr.reshape(arr.shape[0], -1)
    runs, tasks = mat.shape
    point = float(statistic(arr))
    vectorized = _accepts_axis(statistic)
    cols = np.arange(tasks)
    chunk = max(1, _CHUNK_ENTRIES // (runs * tasks))
    boot = np.empty(reps)
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        idx = rng.integers(0, runs, size=(r, runs, tasks))
        sample = mat[idx, cols]  # [r, runs, tasks]
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
    """Per-point IQM over seeds of [seeds, points] curves and its percentile bootstrap CI
    (seeds resampled jointly across points, as rliable does for sample-efficiency curves)."""
    arr = _as_float_array(curves, "curves")
    if arr.ndim != 2 or arr.size == 0:
        raise InvalidInputError(
            f"curves must be a non-empty array of shape [seeds, points], got {arr.shape}"
        )
    reps = _check_reps(reps)
    confidence = _check_unit_interval(confidence, "confidence")
    rng = _check_rng(rng)
    seeds, points = arr.shape
    point = _iqm_along(arr, 0)
    chunk = max(1, _CHUNK_ENTRIES // (seeds * points))
    boot = np.empty((reps, points))
    for start in range(0, reps, chunk):
        r = min(chunk, reps - start)
        idx = rng.integers(0, seeds, size=(r, seeds))
        boot[start : start + r] = _iqm_along(arr[idx], 1)  # [r, seeds, points] → [r, points]
    lo, hi = _percentile_interval(boot, confidence)
    return point, np.asarray(lo), np.asarray(hi)


def win_rate(scores_a: np.ndarray, scores_b: np.ndarray) -> float:
    """P(X > Y) + ½ P(X = Y) for X a run of A and Y a run of B, averaged over tasks
    (rliable's probability of improvement; inputs [runs] or [runs, tasks])."""
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
    probs = np.empty(a2.shape[1])
    for t in range(a2.shape[1]):
        bs = np.sort(b2[:, t])
        below = np.searchsorted(bs, a2[:, t], side="left")  # b < a
        below_or_equal = np.searchsorted(bs, a2[:, t], side="right")  # b ≤ a
        wins = below.sum() + 0.5 * (below_or_equal - below).sum()
        probs[t] = wins / (a2.shape[0] * b2.shape[0])
    return float(np.mean(probs))
