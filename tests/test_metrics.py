"""Tests of prl.metrics against brute force, closed forms and scipy."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.stats

from prl.errors import InvalidInputError
from prl.metrics import (
    curve_iqm_ci,
    expected_utility,
    hypervolume,
    iqm,
    pareto_front,
    pareto_mask,
    performance_profile,
    sparsity,
    stratified_bootstrap_ci,
    uniform_weight_grid,
    win_rate,
)


# ---- independent reference implementations ---------------------------------------------------
def hv_inclusion_exclusion(points: np.ndarray, ref: np.ndarray) -> float:
    """Σ over non-empty subsets S of (−1)^{|S|+1} vol(∩_{p∈S} [ref, p])."""
    gains = np.asarray(points, dtype=float) - np.asarray(ref, dtype=float)
    n = gains.shape[0]
    total = 0.0
    for k in range(1, n + 1):
        sign = 1.0 if k % 2 else -1.0
        for subset in itertools.combinations(range(n), k):
            corner = gains[list(subset)].min(axis=0)
            total += sign * float(np.prod(np.clip(corner, 0.0, None)))
    return total


def hv_grid_count(points: np.ndarray) -> int:
    """Number of unit cells [c, c+1] (c ≥ 0 integer) dominated by integer points (ref = 0)."""
    hi = int(points.max())
    d = points.shape[1]
    grid = np.array(list(itertools.product(range(hi), repeat=d)))  # lower corners
    covered = np.any(np.all(points[None, :, :] >= grid[:, None, :] + 1, axis=2), axis=1)
    return int(covered.sum())


def brute_nondominated_set(points: np.ndarray) -> set[tuple[float, ...]]:
    out = set()
    for i, p in enumerate(points):
        dominated = False
        for j, q in enumerate(points):
            if j != i and np.all(q >= p) and np.any(q > p):
                dominated = True
                break
        if not dominated:
            out.add(tuple(p))
    return out


def random_front(rng: np.random.Generator, n: int, d: int) -> np.ndarray:
    """Random points near a concave front plus some dominated ones."""
    x = np.abs(rng.normal(size=(n, d)))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x * rng.uniform(0.6, 1.0, size=(n, 1))


# ---- Pareto filtering -----------------------------------------------------------------------
@pytest.mark.parametrize("d", [1, 2, 3, 4])
def test_pareto_mask_matches_brute_force_with_ties(d: int) -> None:
    rng = np.random.default_rng(d)
    for _ in range(30):
        n = int(rng.integers(1, 40))
        pts = rng.integers(0, 4, size=(n, d)).astype(float)  # many ties and duplicates
        mask = pareto_mask(pts)
        assert mask.dtype == bool and mask.shape == (n,)
        expected = brute_nondominated_set(pts)
        kept = [tuple(p) for p in pts[mask]]
        assert len(kept) == len(set(kept))  # exactly one of equal points
        assert set(kept) == expected


def test_pareto_mask_keeps_first_duplicate_and_front_order() -> None:
    pts = np.array([[1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [0.5, 0.5], [2.0, 1.0]])
    np.testing.assert_array_equal(pareto_mask(pts), [True, True, False, False, False])
    np.testing.assert_array_equal(pareto_front(pts), [[1.0, 2.0], [2.0, 1.0]])
    assert pareto_mask(np.zeros((0, 3))).shape == (0,)


def test_pareto_mask_real_valued_against_brute_force() -> None:
    rng = np.random.default_rng(7)
    pts = random_front(rng, 60, 3)
    assert set(map(tuple, pts[pareto_mask(pts)])) == brute_nondominated_set(pts)


# ---- hypervolume ----------------------------------------------------------------------------
@pytest.mark.parametrize("d", [2, 3])
def test_hypervolume_matches_inclusion_exclusion(d: int) -> None:
    rng = np.random.default_rng(100 + d)
    for _ in range(25):
        n = int(rng.integers(1, 11))
        pts = rng.uniform(-1.0, 3.0, size=(n, d))  # some do not dominate ref
        ref = rng.uniform(-0.5, 0.5, size=d)
        assert hypervolume(pts, ref) == pytest.approx(hv_inclusion_exclusion(pts, ref), rel=1e-10)


@pytest.mark.parametrize("d", [1, 4, 5])
def test_hypervolume_higher_dims_inclusion_exclusion(d: int) -> None:
    rng = np.random.default_rng(200 + d)
    for _ in range(10):
        n = int(rng.integers(1, 10))
        pts = random_front(rng, n, d)
        ref = np.full(d, -0.1)
        assert hypervolume(pts, ref) == pytest.approx(hv_inclusion_exclusion(pts, ref), rel=1e-10)


@pytest.mark.parametrize("d", [2, 3, 4, 5])
def test_hypervolume_exact_grid_count(d: int) -> None:
    rng = np.random.default_rng(300 + d)
    for _ in range(5):
        pts = rng.integers(1, 6, size=(25, d)).astype(float)
        assert hypervolume(pts, np.zeros(d)) == pytest.approx(hv_grid_count(pts), abs=1e-9)


def test_hypervolume_4d_monte_carlo() -> None:
    rng = np.random.default_rng(11)
    pts = random_front(rng, 40, 4)
    ref = np.zeros(4)
    hv = hypervolume(pts, ref)
    upper = pts.max(axis=0)
    samples = rng.uniform(0.0, upper, size=(200_000, 4))
    inside = np.zeros(len(samples), dtype=bool)
    for p in pts:
        inside |= np.all(samples <= p, axis=1)
    frac = inside.mean()
    box = float(np.prod(upper))
    se = box * np.sqrt(frac * (1 - frac) / len(samples))
    assert abs(hv - box * frac) < 5 * se


def test_hypervolume_hand_cases() -> None:
    ref = np.array([-1.0, 0.0, 2.0])
    assert hypervolume(np.array([[1.0, 3.0, 2.5]]), ref) == pytest.approx(2.0 * 3.0 * 0.5)
    # Points that do not strictly dominate ref contribute nothing.
    extra = np.array([[5.0, 0.0, 9.0], [-2.0, 9.0, 9.0], [9.0, 9.0, 1.0]])
    assert hypervolume(np.vstack([[[1.0, 3.0, 2.5]], extra]), ref) == pytest.approx(3.0)
    assert hypervolume(extra, ref) == 0.0
    assert hypervolume(np.zeros((0, 2)), np.zeros(2)) == 0.0
    # Two boxes in 2-D: 2·1 + 1·2 − 1·1 = 3.
    assert hypervolume(np.array([[2.0, 1.0], [1.0, 2.0]]), np.zeros(2)) == pytest.approx(3.0)
    assert hypervolume(np.array([[3.0], [1.0]]), np.array([0.5])) == pytest.approx(2.5)


@pytest.mark.parametrize("d", [2, 3, 4])
def test_hypervolume_duplicates_dominated_and_order(d: int) -> None:
    rng = np.random.default_rng(400 + d)
    pts = random_front(rng, 15, d)
    ref = np.zeros(d)
    base = hypervolume(pts, ref)
    dominated = pts[:5] * 0.5
    augmented = np.vstack([pts, pts[:4], dominated])
    assert hypervolume(augmented, ref) == pytest.approx(base, rel=1e-12)
    for _ in range(3):
        perm = rng.permutation(len(augmented))
        assert hypervolume(augmented[perm], ref) == pytest.approx(base, rel=1e-12)
    assert hypervolume(pareto_front(pts), ref) == pytest.approx(base, rel=1e-12)


# ---- expected utility and weight grid -------------------------------------------------------
def test_expected_utility_matches_loop() -> None:
    rng = np.random.default_rng(5)
    pts = rng.normal(size=(12, 3))
    weights = uniform_weight_grid(3, 0.1)
    expected = 0.0
    for w in weights:
        expected += max(sum(w[j] * p[j] for j in range(3)) for p in pts)
    expected /= len(weights)
    assert expected_utility(pts, weights) == pytest.approx(expected, rel=1e-12)
    # Hand case: one point (1, 3), weights (1,0) and (0,1) → (1 + 3) / 2.
    assert expected_utility(np.array([[1.0, 3.0]]), np.eye(2)) == pytest.approx(2.0)


def test_uniform_weight_grid_sizes_and_rows() -> None:
    g2 = uniform_weight_grid(2, 0.01)
    assert g2.shape == (101, 2)
    g3 = uniform_weight_grid(3, 0.1)
    assert g3.shape == (66, 3)
    assert uniform_weight_grid(1, 0.5).shape == (1, 1)
    for g, step in ((g2, 0.01), (g3, 0.1)):
        np.testing.assert_allclose(g.sum(axis=1), 1.0, atol=1e-12)
        assert np.all(g >= 0)
        np.testing.assert_allclose(g / step, np.round(g / step), atol=1e-9)
        assert len({tuple(np.round(r / step).astype(int)) for r in g}) == len(g)
    assert uniform_weight_grid(4, 0.25).shape == (35, 4)  # C(4+3, 3)


# ---- sparsity -------------------------------------------------------------------------------
def test_sparsity_hand_cases() -> None:
    # Front (0,3), (1,1), (3,0): x gaps 1,2 → 5; y gaps 1,2 → 5; (5 + 5) / 2 = 5.
    front = np.array([[0.0, 3.0], [1.0, 1.0], [3.0, 0.0]])
    assert sparsity(front) == pytest.approx(5.0)
    # Dominated points and duplicates are dropped before measuring.
    noisy = np.vstack([front, [[0.5, 0.5], [1.0, 1.0], [0.0, 0.0]]])
    assert sparsity(noisy) == pytest.approx(5.0)
    # Two points: (1,2),(2,1): gaps 1 and 1 → 2 / 1.
    assert sparsity(np.array([[1.0, 2.0], [2.0, 1.0]])) == pytest.approx(2.0)
    # 3 objectives, 2 points: (0,0,4) and (2,1,0): 4 + 1 + 16 = 21.
    assert sparsity(np.array([[0.0, 0.0, 4.0], [2.0, 1.0, 0.0]])) == pytest.approx(21.0)
    assert sparsity(np.array([[1.0, 1.0]])) == 0.0
    assert sparsity(np.array([[1.0, 1.0], [0.0, 0.0]])) == 0.0  # front of one point
    assert sparsity(np.zeros((0, 2))) == 0.0


# ---- IQM and bootstrap ----------------------------------------------------------------------
def test_iqm_matches_scipy_trim_mean() -> None:
    rng = np.random.default_rng(3)
    for n in (1, 2, 3, 4, 5, 7, 8, 13, 100):
        x = rng.normal(size=n)
        assert iqm(x) == pytest.approx(scipy.stats.trim_mean(x, 0.25), rel=1e-12)
    m = rng.normal(size=(9, 6))
    assert iqm(m) == pytest.approx(scipy.stats.trim_mean(m, 0.25, axis=None))
    np.testing.assert_allclose(iqm(m, axis=0), scipy.stats.trim_mean(m, 0.25, axis=0))
    np.testing.assert_allclose(iqm(m, axis=1), scipy.stats.trim_mean(m, 0.25, axis=1))
    assert iqm([1.0, 2.0, 3.0, 100.0]) == pytest.approx(2.5)


def test_bootstrap_ci_basic_properties() -> None:
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(10, 4))
    point, lo, hi = stratified_bootstrap_ci(scores, iqm, reps=500, rng=np.random.default_rng(1))
    assert point == pytest.approx(scipy.stats.trim_mean(scores, 0.25, axis=None))
    assert lo <= point <= hi
    again = stratified_bootstrap_ci(scores, iqm, reps=500, rng=np.random.default_rng(1))
    assert again == (point, lo, hi)
    big = rng.normal(size=(200, 4))
    _, blo, bhi = stratified_bootstrap_ci(big, iqm, reps=500, rng=np.random.default_rng(1))
    assert bhi - blo < 0.5 * (hi - lo)
    # 1-D scores, a statistic without an axis keyword (per-resample path).
    p1, lo1, hi1 = stratified_bootstrap_ci(
        scores[:, 0], lambda s: float(np.max(s)), reps=200, rng=np.random.default_rng(2)
    )
    assert p1 == pytest.approx(scores[:, 0].max()) and lo1 <= hi1 <= p1


def test_bootstrap_is_stratified_by_task() -> None:
    # Each task's runs are constant, so every stratified resample reproduces the same matrix.
    scores = np.tile(np.array([[0.0, 1.0, 5.0]]), (6, 1))
    point, lo, hi = stratified_bootstrap_ci(scores, np.mean, reps=100, rng=np.random.default_rng(0))
    assert point == lo == hi == pytest.approx(2.0)


def test_bootstrap_ci_coverage_of_normal_mean() -> None:
    rng = np.random.default_rng(2024)
    covered = 0
    for _ in range(200):
        x = rng.normal(size=50)
        _, lo, hi = stratified_bootstrap_ci(x, np.mean, reps=1000, rng=rng)
        covered += lo <= 0.0 <= hi
    assert 0.88 <= covered / 200 <= 0.99


def test_curve_iqm_ci() -> None:
    rng = np.random.default_rng(9)
    curves = rng.normal(size=(12, 7)) + np.arange(7.0)
    mid, lo, hi = curve_iqm_ci(curves, reps=400, rng=np.random.default_rng(4))
    assert mid.shape == lo.shape == hi.shape == (7,)
    np.testing.assert_allclose(mid, scipy.stats.trim_mean(curves, 0.25, axis=0))
    assert np.all(lo <= mid) and np.all(mid <= hi)
    _, lo2, hi2 = curve_iqm_ci(curves, reps=400, rng=np.random.default_rng(4))
    np.testing.assert_array_equal(lo, lo2)
    np.testing.assert_array_equal(hi, hi2)
    many = rng.normal(size=(300, 7)) + np.arange(7.0)
    _, mlo, mhi = curve_iqm_ci(many, reps=400, rng=np.random.default_rng(4))
    assert np.all(mhi - mlo < hi - lo)


# ---- win rate -------------------------------------------------------------------------------
def test_win_rate_hand_cases() -> None:
    assert win_rate([2.0, 3.0], [1.0, 0.0]) == 1.0
    assert win_rate([0.0], [1.0]) == 0.0
    assert win_rate([1.0, 1.0], [1.0]) == 0.5
    # a = {1, 3}, b = {2}: one win, one loss → 1/2; a = {1, 2, 3}, b = {2}: (0 + ½ + 1)/3.
    assert win_rate([1.0, 3.0], [2.0]) == pytest.approx(0.5)
    assert win_rate([1.0, 2.0, 3.0], [2.0]) == pytest.approx(0.5)
    assert win_rate([2.0, 3.0, 3.0], [1.0, 3.0]) == pytest.approx((1 + 1.5 + 1.5) / 6)
    # Two tasks averaged: task 0 → 1, task 1 → 0.
    assert win_rate([[1.0, 0.0], [2.0, 0.0]], [[0.0, 1.0]]) == pytest.approx(0.5)
    rng = np.random.default_rng(1)
    a, b = rng.integers(0, 5, size=20).astype(float), rng.integers(0, 5, size=15).astype(float)
    loop = np.mean([[1.0 if x > y else 0.5 if x == y else 0.0 for y in b] for x in a])
    assert win_rate(a, b) == pytest.approx(loop)
    assert win_rate(a, b) + win_rate(b, a) == pytest.approx(1.0)


# ---- bad input ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call",
    [
        lambda: pareto_mask(np.array([1.0, 2.0])),
        lambda: pareto_mask(np.array([[1.0, np.nan]])),
        lambda: pareto_mask(np.zeros((3, 0))),
        lambda: pareto_front([["a", "b"]]),
        lambda: hypervolume(np.ones((2, 2)), np.zeros(3)),
        lambda: hypervolume(np.ones((2, 2)), np.array([0.0, np.inf])),
        lambda: hypervolume(np.ones((2, 2, 2)), np.zeros(2)),
        lambda: expected_utility(np.zeros((0, 2)), np.eye(2)),
        lambda: expected_utility(np.ones((2, 2)), np.ones((2, 3))),
        lambda: expected_utility(np.ones((2, 2)), np.ones(2)),
        lambda: uniform_weight_grid(0),
        lambda: uniform_weight_grid(2, 0.3),
        lambda: uniform_weight_grid(2, 0.0),
        lambda: uniform_weight_grid(20, 0.01),
        lambda: sparsity(np.array([[np.inf, 1.0]])),
        lambda: iqm([]),
        lambda: iqm([1.0, np.nan]),
        lambda: iqm(np.ones((2, 2)), axis=2),
        lambda: stratified_bootstrap_ci(np.ones((2, 2, 2)), rng=np.random.default_rng(0)),
        lambda: stratified_bootstrap_ci(np.ones(3), reps=0, rng=np.random.default_rng(0)),
        lambda: stratified_bootstrap_ci(np.ones(3), confidence=1.5, rng=np.random.default_rng(0)),
        lambda: stratified_bootstrap_ci(np.ones(3), rng=0),
        lambda: curve_iqm_ci(np.ones(3), rng=np.random.default_rng(0)),
        lambda: win_rate([], [1.0]),
        lambda: win_rate(np.ones((2, 2)), np.ones((2, 3))),
        lambda: win_rate([np.nan], [1.0]),
    ],
)
def test_bad_input_raises(call) -> None:
    with pytest.raises(InvalidInputError):
        call()


# ---- moocore against the lab's exact sweep (the oracle) -------------------------------------
@pytest.mark.parametrize("d", [2, 3, 4, 5, 6])
def test_moocore_hypervolume_equals_the_exact_oracle(d: int) -> None:
    from prl.metrics import hypervolume_exact

    rng = np.random.default_rng(100 + d)
    for n in (1, 7, 40 if d >= 5 else 120):
        # points on a concave front plus dominated ones and duplicates, with a shifted reference
        raw = rng.dirichlet(np.ones(d), size=n) ** 0.5 * rng.uniform(0.5, 2.0, size=(n, 1))
        pts = np.concatenate([raw, raw[: n // 3] * 0.9, raw[:2]]) - 0.3
        ref = -0.3 * np.ones(d) - rng.uniform(0.0, 0.2, size=d)
        want = hypervolume_exact(pts, ref)
        got = hypervolume(pts, ref)
        assert got == pytest.approx(want, rel=1e-12, abs=1e-14)


@pytest.mark.parametrize("d", [1, 2, 3, 5])
def test_moocore_pareto_mask_equals_the_reference_filter(d: int) -> None:
    from prl.metrics import _pareto_mask

    rng = np.random.default_rng(7 + d)
    pts = rng.integers(0, 4, size=(60, d)).astype(float)  # many ties and duplicates
    np.testing.assert_array_equal(pareto_mask(pts), _pareto_mask(pts))


# ---- rliable: IQM, probability of improvement, performance profiles, bootstrap stream ---------
def test_iqm_hand_values() -> None:
    # n = 8 cuts ⌊8/4⌋ = 2 at each end: mean(3, 4, 5, 6); n = 5 cuts 1: mean(2, 3, 4).
    assert iqm(np.arange(1.0, 9.0)) == pytest.approx(4.5)
    assert iqm([5.0, 1.0, 4.0, 2.0, 3.0]) == pytest.approx(3.0)
    # [runs, tasks] pools all scores (rliable's aggregate IQM): 12 values, cut 3 at each end.
    m = np.arange(12.0).reshape(4, 3)
    assert iqm(m) == pytest.approx(np.mean([3.0, 4.0, 5.0, 6.0, 7.0, 8.0]))


def test_probability_of_improvement_is_mann_whitney() -> None:
    # a = {3, 5, 7}, b = {1, 4}: 3 > 1; 5 > 1, 4; 7 > 1, 4 → U = 5 of 6 pairs.
    assert win_rate([3.0, 5.0, 7.0], [1.0, 4.0]) == pytest.approx(5 / 6)
    # ties count ½: a = {1, 2, 3}, b = {2, 2}: U = 0 + ½ + ½ + 1 + 1 = 3 of 6.
    assert win_rate([1.0, 2.0, 3.0], [2.0, 2.0]) == pytest.approx(0.5)
    # Two tasks: task 0 → 1 (a always higher), task 1 → ¼ (one win of four).
    a = np.array([[2.0, 0.0], [3.0, 5.0]])
    b = np.array([[1.0, 4.0], [0.0, 6.0]])
    assert win_rate(a, b) == pytest.approx((1.0 + 0.25) / 2)
    rng = np.random.default_rng(8)
    x, y = rng.integers(0, 4, size=9).astype(float), rng.integers(0, 4, size=6).astype(float)
    u = scipy.stats.mannwhitneyu(x, y, alternative="greater").statistic
    assert win_rate(x, y) == pytest.approx(u / (9 * 6))


def test_performance_profile_hand_values() -> None:
    scores = np.array([[0.0, 1.0], [2.0, 3.0]])
    prof, lo, hi = performance_profile(scores, [0.5, 2.5], reps=50, rng=np.random.default_rng(0))
    np.testing.assert_allclose(prof, [0.75, 0.25])  # 3 of 4 scores > 0.5, 1 of 4 > 2.5
    assert np.all(lo <= prof) and np.all(prof <= hi)
    # Task means are (1, 2): above 0.5 both, above 1.5 one, above 2.5 none.
    mean_prof, _, _ = performance_profile(
        scores, [0.5, 1.5, 2.5], reps=50, rng=np.random.default_rng(0), use_score_distribution=False
    )
    np.testing.assert_allclose(mean_prof, [1.0, 0.5, 0.0])
    # Runs constant within each task: every stratified resample is the same matrix.
    const = np.tile(np.array([[0.0, 1.0, 5.0]]), (4, 1))
    p, lo, hi = performance_profile(const, [0.5, 2.0], reps=100, rng=np.random.default_rng(1))
    np.testing.assert_allclose(p, [2 / 3, 1 / 3])
    np.testing.assert_array_equal(lo, p)
    np.testing.assert_array_equal(hi, p)


def test_bootstrap_two_runs_closed_form() -> None:
    # Two runs {0, 1}, one task: a resample's mean is 0, ½ or 1 with probabilities ¼, ½, ¼, so
    # the 95 % percentile interval is [0, 1] and about half the replicates equal ½.
    rng = np.random.default_rng(3)
    point, lo, hi = stratified_bootstrap_ci([0.0, 1.0], np.mean, reps=4000, rng=rng)
    assert (point, lo, hi) == (0.5, 0.0, 1.0)


def test_rliable_intervals_are_seeded_by_the_generator() -> None:
    scores = np.random.default_rng(5).normal(size=(8, 3))
    taus = np.linspace(-1.0, 1.0, 5)
    calls = [
        lambda r: stratified_bootstrap_ci(scores, iqm, reps=200, rng=r),
        lambda r: curve_iqm_ci(scores, reps=200, rng=r),
        lambda r: performance_profile(scores, taus, reps=200, rng=r),
    ]
    for call in calls:
        first = call(np.random.default_rng(11))
        again = call(np.random.default_rng(11))
        other = call(np.random.default_rng(12))
        for x, y in zip(first, again):
            np.testing.assert_array_equal(x, y)
        assert any(not np.array_equal(x, y) for x, y in zip(first[1:], other[1:]))
    # The generator advances: two calls in a row draw different seeds.
    rng = np.random.default_rng(11)
    assert stratified_bootstrap_ci(scores, iqm, reps=200, rng=rng) != stratified_bootstrap_ci(
        scores, iqm, reps=200, rng=rng
    )


def _rliable_library():
    try:
        from rliable import library
    except Exception as exc:  # rliable pins arch < 8, which does not import with pandas >= 3
        pytest.skip(f"rliable.library does not import here ({type(exc).__name__}: {exc})")
    return library


def test_intervals_equal_rliable_library_draw_for_draw() -> None:
    """The lab's bootstrap reproduces rliable.library's (global RandomState seeded alike)."""
    library = _rliable_library()
    from rliable import metrics as rm

    from prl.metrics import _bootstrap_seed

    scores = np.random.default_rng(21).normal(size=(7, 3))
    seed = _bootstrap_seed(np.random.default_rng(4))
    state = np.random.get_state()  # noqa: NPY002 (rliable draws from it)
    try:
        np.random.seed(seed)  # noqa: NPY002
        pts, cis = library.get_interval_estimates(
            {"x": scores}, lambda s: np.array([rm.aggregate_iqm(s)]), reps=300
        )
        np.random.seed(seed)  # noqa: NPY002
        curves = scores  # [7 seeds, 3 points]
        cpts, ccis = library.get_interval_estimates(
            {"x": curves[:, None, :]},
            lambda s: np.array([rm.aggregate_iqm(s[..., f]) for f in range(s.shape[-1])]),
            reps=300,
        )
        taus = np.linspace(-1.5, 1.5, 7)
        np.random.seed(seed)  # noqa: NPY002
        profs, pcis = library.create_performance_profile({"x": scores}, taus, reps=300)
    finally:
        np.random.set_state(state)  # noqa: NPY002
    point, lo, hi = stratified_bootstrap_ci(scores, iqm, reps=300, rng=np.random.default_rng(4))
    np.testing.assert_allclose([point, lo, hi], [pts["x"][0], *cis["x"][:, 0]], rtol=1e-12)
    mid, clo, chi = curve_iqm_ci(curves, reps=300, rng=np.random.default_rng(4))
    np.testing.assert_allclose(mid, cpts["x"], rtol=1e-12)
    np.testing.assert_allclose(clo, ccis["x"][0], rtol=1e-12)
    np.testing.assert_allclose(chi, ccis["x"][1], rtol=1e-12)
    prof, plo, phi = performance_profile(scores, taus, reps=300, rng=np.random.default_rng(4))
    np.testing.assert_allclose(prof, profs["x"], rtol=1e-12)
    np.testing.assert_allclose(plo, pcis["x"][0], rtol=1e-12)
    np.testing.assert_allclose(phi, pcis["x"][1], rtol=1e-12)
