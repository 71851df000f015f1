"""Property-based bad-input tests: every public entry point fails with one clear PrlError."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, arrays

from prl import envs, games, metrics
from prl.cli import main
from prl.errors import PrlError
from prl.oracles import BradleyTerry, MajorityVote, PreferenceMatrix, bpref_teacher
from prl.types import Preferences, Segments

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
floats_any = st.floats(allow_nan=True, allow_infinity=True, width=64)
floats_finite = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)
# NaN, ±inf and finite values small enough that squares and products stay finite
floats_bad = st.one_of(
    st.sampled_from([np.nan, np.inf, -np.inf]), st.floats(-1e100, 1e100, allow_nan=False)
)


def _prl_error_or_ok(fn, *args, **kwargs):
    """Call fn; the only acceptable failure is a PrlError (never TypeError/IndexError/...)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", RuntimeWarning)
            return fn(*args, **kwargs)
    except PrlError as exc:
        msg = str(exc)
        assert msg and "\n" not in msg, f"error message must be one line: {msg!r}"
        return None


@SETTINGS
@given(arrays(np.float64, array_shapes(min_dims=0, max_dims=3, max_side=5), elements=floats_any))
def test_preference_matrix_validation_never_crashes(P: np.ndarray) -> None:
    out = _prl_error_or_ok(games.validate_preference_matrix, P)
    if out is not None:
        assert np.allclose(out + np.swapaxes(out, -1, -2), 1.0, atol=1e-9)
        assert np.all((out >= 0) & (out <= 1))


@SETTINGS
@given(
    n=st.integers(2, 6),
    pi=arrays(np.float64, st.integers(0, 8), elements=floats_any),
    tau=floats_any,
)
def test_game_functions_reject_bad_policies(n: int, pi: np.ndarray, tau: float) -> None:
    P = games.random_preference_matrix(n, np.random.default_rng(0))
    _prl_error_or_ok(games.exploitability, P, pi)
    _prl_error_or_ok(games.duality_gap, P, pi, tau)
    if not (np.isfinite(tau) and tau > 0):
        with pytest.raises(PrlError):
            games.regularized_nash(P, tau)


@SETTINGS
@given(
    rewards=arrays(
        np.float64, array_shapes(min_dims=1, max_dims=4, max_side=4), elements=floats_any
    ),
)
def test_segments_reject_malformed_rewards(rewards: np.ndarray) -> None:
    shape = rewards.shape
    obs = np.zeros(shape[:2] if len(shape) >= 2 else shape, dtype=np.int64)
    seg = _prl_error_or_ok(Segments, obs=obs, actions=obs, rewards=rewards)
    if seg is not None:
        assert rewards.ndim in (2, 3) and np.all(np.isfinite(rewards))


@SETTINGS
@given(
    ra=arrays(np.float64, (4, 5), elements=floats_finite),
    rb=arrays(np.float64, (4, 5), elements=floats_finite),
    beta=st.floats(0, 1e3),
)
def test_bradley_terry_is_a_probability_for_any_gap(
    ra: np.ndarray, rb: np.ndarray, beta: float
) -> None:
    z = np.zeros((4, 5), dtype=np.int64)
    a, b = Segments(z, z, ra), Segments(z, z, rb)
    bt = BradleyTerry(beta=beta)
    with np.errstate(over="raise", invalid="raise", divide="raise"):
        p, q = bt.prob(a, b), bt.prob(b, a)
        lp = bt.log_prob(a, b)
    assert np.all((p >= 0) & (p <= 1))
    np.testing.assert_allclose(p + q, 1.0, atol=1e-12)
    assert np.all(np.isfinite(lp) | (p == 0))


@SETTINGS
@given(
    B=st.integers(1, 5),
    T=st.integers(1, 5),
    Tb=st.integers(1, 5),
    kind=st.sampled_from(["oracle", "stochastic", "mistake", "myopic"]),
)
def test_oracles_reject_mismatched_pairs(B: int, T: int, Tb: int, kind: str) -> None:
    za, zb = np.zeros((B, T), np.int64), np.zeros((B + 1, Tb), np.int64)
    a = Segments(za, za, np.ones((B, T)))
    b = Segments(zb, zb, np.ones((B + 1, Tb)))
    with pytest.raises(PrlError):
        bpref_teacher(kind).label(a, b, np.random.default_rng(0))


@SETTINGS
@given(label=arrays(np.float64, 3, elements=floats_any))
def test_preferences_labels_must_be_probabilities(label: np.ndarray) -> None:
    idx = np.arange(3)
    out = _prl_error_or_ok(Preferences, idx, idx, label)
    if out is not None:
        assert np.all((label >= 0) & (label <= 1))


@SETTINGS
@given(
    points=arrays(
        np.float64, array_shapes(min_dims=1, max_dims=3, max_side=6), elements=floats_bad
    ),
)
def test_metrics_reject_bad_points(points: np.ndarray) -> None:
    d = points.shape[-1] if points.ndim >= 1 else 1
    _prl_error_or_ok(metrics.hypervolume, points, np.full(d, -1e9))
    _prl_error_or_ok(metrics.sparsity, points)
    _prl_error_or_ok(metrics.pareto_mask, points)


@SETTINGS
@given(
    points=arrays(
        np.float64, st.tuples(st.integers(1, 8), st.integers(2, 3)), elements=st.floats(-10, 10)
    ),
    extra=arrays(np.float64, 3, elements=st.floats(-10, 10)),
)
def test_hypervolume_is_monotone(points: np.ndarray, extra: np.ndarray) -> None:
    ref = np.full(points.shape[1], -20.0)
    hv = metrics.hypervolume(points, ref)
    more = metrics.hypervolume(np.vstack([points, extra[: points.shape[1]]]), ref)
    assert more >= hv - 1e-9
    assert hv <= np.prod(points.max(0) - ref) + 1e-9


@SETTINGS
@given(
    P=arrays(np.float64, (3, 3), elements=floats_any),
    a=arrays(np.int64, 2, elements=st.integers(-5, 5)),
)
def test_preference_matrix_oracle(P: np.ndarray, a: np.ndarray) -> None:
    oracle = _prl_error_or_ok(PreferenceMatrix, P)
    if oracle is not None:
        _prl_error_or_ok(oracle.prob, a, a[::-1])


@SETTINGS
@given(
    weights=arrays(
        np.float64, array_shapes(min_dims=0, max_dims=3, max_side=4), elements=floats_any
    )
)
def test_majority_vote_weights(weights: np.ndarray) -> None:
    _prl_error_or_ok(MajorityVote.from_weights, weights)


@SETTINGS
@given(
    name=st.sampled_from(
        ["chain", "random_mdp", "delivery", "karmed", "contextual_loglinear", "dueling"]
    ),
    key=st.sampled_from(["n", "S", "A", "K", "gamma", "horizon", "slip", "size", "P", "bogus"]),
    value=st.one_of(floats_any, st.integers(-3, 3), st.text(max_size=3), st.none()),
)
def test_env_constructors_fail_cleanly(name: str, key: str, value: object) -> None:
    env = _prl_error_or_ok(envs.make, name, **{key: value})
    if env is not None:
        env.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    word=st.text(
        alphabet=st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=12
    ).filter(lambda w: not w.startswith("-")),
    verb=st.sampled_from(["run", "check", "figure", "list"]),
)
def test_cli_unknown_names_exit_2(
    word: str,
    verb: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    from prl.registry import REGISTRIES, load_plugins

    load_plugins()
    if any(word in reg for reg in REGISTRIES.values()):
        return
    out = tmp_path_factory.mktemp("cli")
    argv = {
        "run": ["run", word, "--env", "dueling", "--out", str(out)],
        "check": ["check", word],
        "figure": ["figure", word, "--out", str(out)],
        "list": ["list", word],
    }[verb]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1 and "Traceback" not in err
    assert list(out.iterdir()) == []
