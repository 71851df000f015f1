"""Converters between imitation's TrajectoryWithRew and the lab's Segments (prl.interop)."""

from __future__ import annotations

import numpy as np
import pytest

from prl.errors import InvalidInputError
from prl.interop import TrajectoryWithRew, segments_from_trajectories, trajectories_from_segments
from prl.types import Segments


def make_traj(T: int, seed: int, terminal: bool = True, cls=TrajectoryWithRew, infos=True):
    """A trajectory shaped like imitation's: obs [T+1, 3], acts [T, 2], rews [T], T info dicts."""
    rng = np.random.default_rng(seed)
    info = None
    if infos:
        info = np.array(
            [{"cost": float(t), "pos": np.array([t, -t]), "tag": "x"} for t in range(T)],
            dtype=object,
        )
    return cls(
        obs=rng.normal(size=(T + 1, 3)),
        acts=rng.integers(0, 4, size=(T, 2)),
        infos=info,
        terminal=terminal,
        rews=rng.normal(size=T),
    )


def assert_same_trajectory(x, y, info_keys=("cost", "pos")) -> None:
    np.testing.assert_array_equal(x.obs, y.obs)
    np.testing.assert_array_equal(x.acts, y.acts)
    np.testing.assert_array_equal(x.rews, y.rews)
    assert bool(x.terminal) == bool(y.terminal)
    if x.infos is None or y.infos is None:
        assert x.infos is None and y.infos is None
        return
    for dx, dy in zip(x.infos, y.infos, strict=True):
        for k in info_keys:
            np.testing.assert_array_equal(dx[k], dy[k])


def test_whole_trajectories_round_trip() -> None:
    trajs = [make_traj(5, 0, terminal=True), make_traj(5, 1, terminal=False)]
    seg = segments_from_trajectories(trajs)
    assert seg.batch_size == 2 and seg.length == 5
    # By hand: obs are the first T observations, next_obs the last T; done on a terminal's end.
    np.testing.assert_array_equal(seg.obs[0], trajs[0].obs[:5])
    np.testing.assert_array_equal(seg.next_obs[1], trajs[1].obs[1:])
    np.testing.assert_array_equal(seg.rewards[1], trajs[1].rews)
    assert seg.dones.tolist() == [[False] * 4 + [True], [False] * 5]
    # Numeric info keys carried as [B, T, ...] arrays; the string "tag" is not.
    assert sorted(seg.infos) == ["cost", "pos"]
    np.testing.assert_array_equal(seg.infos["cost"][0], np.arange(5.0))
    assert seg.infos["pos"].shape == (2, 5, 2)
    back = trajectories_from_segments(seg)
    assert len(back) == 2
    for x, y in zip(trajs, back, strict=True):
        assert_same_trajectory(x, y)
    # And Segments → trajectories → Segments is the identity.
    again = segments_from_trajectories(back)
    for f in ("obs", "actions", "rewards", "next_obs", "dones"):
        np.testing.assert_array_equal(getattr(again, f), getattr(seg, f))
    for k in seg.infos:
        np.testing.assert_array_equal(again.infos[k], seg.infos[k])


def test_windows_cut_by_hand() -> None:
    # T = 7, H = 3: windows [0, 3) and [3, 6); step 6 is dropped, so no window ends the episode.
    t = make_traj(7, 2, terminal=True, infos=False)
    seg = segments_from_trajectories([t], segment_length=3)
    assert seg.batch_size == 2 and seg.length == 3
    np.testing.assert_array_equal(seg.obs[1], t.obs[3:6])
    np.testing.assert_array_equal(seg.next_obs[1], t.obs[4:7])
    np.testing.assert_array_equal(seg.actions[1], t.acts[3:6])
    assert not seg.dones.any() and seg.infos == {}
    # T = 6, H = 3: the second window holds the terminal step; mixed lengths are fine.
    u = make_traj(6, 3, terminal=True, infos=False)
    seg2 = segments_from_trajectories([u, t], segment_length=3)
    assert seg2.batch_size == 4
    assert seg2.dones[:, -1].tolist() == [False, True, False, False]
    # Window returns add up to the trajectory's return over the kept steps.
    assert seg2.returns()[:2].sum() == pytest.approx(u.rews.sum())
    pieces = trajectories_from_segments(seg2)
    np.testing.assert_array_equal(pieces[1].obs, u.obs[3:7])
    assert [p.terminal for p in pieces] == [False, True, False, False]


@pytest.mark.slow  # imitation 1.0.1 downgrades gymnasium and SB3: run it in a separate venv
def test_real_imitation_class_when_installed() -> None:
    types = pytest.importorskip("imitation.data.types")
    trajs = [make_traj(4, s, cls=types.TrajectoryWithRew) for s in range(3)]
    seg = segments_from_trajectories(trajs)
    back = trajectories_from_segments(seg)
    assert all(isinstance(b, types.TrajectoryWithRew) for b in back)
    for x, y in zip(trajs, back, strict=True):
        assert_same_trajectory(x, y)


def test_mirror_class_checks_imitation_shapes() -> None:
    with pytest.raises(InvalidInputError):
        TrajectoryWithRew(
            obs=np.zeros((3, 1)), acts=np.zeros((3, 1)), infos=None, terminal=True, rews=np.zeros(3)
        )
    with pytest.raises(InvalidInputError):
        TrajectoryWithRew(
            obs=np.zeros((3, 1)),
            acts=np.zeros((2, 1)),
            infos=None,
            terminal=True,
            rews=np.zeros(2, dtype=np.int64),
        )
    with pytest.raises(InvalidInputError):
        TrajectoryWithRew(
            obs=np.zeros((1, 1)), acts=np.zeros((0, 1)), infos=None, terminal=True, rews=np.zeros(0)
        )


@pytest.mark.parametrize(
    "call",
    [
        lambda: segments_from_trajectories([]),
        lambda: segments_from_trajectories([make_traj(3, 0), make_traj(4, 1)]),
        lambda: segments_from_trajectories([make_traj(3, 0)], segment_length=4),
        lambda: segments_from_trajectories([make_traj(3, 0)], segment_length=0),
        lambda: segments_from_trajectories([object()]),
        lambda: trajectories_from_segments(
            Segments(obs=np.zeros((1, 2)), actions=np.zeros((1, 2)), rewards=np.zeros((1, 2)))
        ),
        lambda: trajectories_from_segments(
            Segments(
                obs=np.zeros((1, 2)),
                actions=np.zeros((1, 2)),
                rewards=np.zeros((1, 2, 3)),
                next_obs=np.zeros((1, 2)),
            )
        ),
        lambda: trajectories_from_segments(
            Segments(
                obs=np.zeros((1, 2)),
                actions=np.zeros((1, 2)),
                rewards=np.zeros((1, 2)),
                next_obs=np.zeros((1, 2)),
                dones=np.array([[True, False]]),
            )
        ),
    ],
)
def test_bad_input_raises(call) -> None:
    with pytest.raises(InvalidInputError):
        call()
