"""Converters between imitation's trajectories and the lab's :class:`prl.types.Segments`.

imitation (HumanCompatibleAI) stores one episode, or a fragment of one, as a
``TrajectoryWithRew``: ``obs`` [T+1, ...] (the final observation included), ``acts`` [T, ...],
``infos`` (None or T info dicts), ``terminal`` (the fragment ends the episode) and ``rews`` [T]
(float). The lab's Segments hold a batch of equal-length windows: ``obs``/``next_obs``
[B, T, ...], ``actions`` [B, T, ...], ``rewards`` [B, T], ``dones`` [B, T] and ``infos`` (a dict
of [B, T, ...] arrays).

imitation is optional: without it, :func:`trajectories_from_segments` builds
:class:`TrajectoryWithRew` below, a dataclass with imitation's fields and checks; any object with
those attributes (imitation's own included) is accepted by :func:`segments_from_trajectories`.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from prl.errors import InvalidInputError
from prl.types import Segments

__all__ = ["TrajectoryWithRew", "segments_from_trajectories", "trajectories_from_segments"]


@dataclass(frozen=True, eq=False)
class TrajectoryWithRew:
    """imitation's ``TrajectoryWithRew`` fields and shape checks, for use without imitation."""

    obs: np.ndarray
    acts: np.ndarray
    infos: np.ndarray | None
    terminal: bool
    rews: np.ndarray

    def __post_init__(self) -> None:
        if len(self.obs) != len(self.acts) + 1:
            raise InvalidInputError(
                f"obs must hold one more step than acts, got {len(self.obs)} and {len(self.acts)}"
            )
        if self.infos is not None and len(self.infos) != len(self.acts):
            raise InvalidInputError(
                f"infos must hold one dict per action, got {len(self.infos)} for "
                f"{len(self.acts)} actions"
            )
        if len(self.acts) == 0:
            raise InvalidInputError("a trajectory needs at least one action")
        rews = np.asarray(self.rews)
        if rews.shape != (len(self.acts),) or not np.issubdtype(rews.dtype, np.floating):
            raise InvalidInputError(
                f"rews must be a float array of shape ({len(self.acts)},), "
                f"got {rews.dtype} array of shape {rews.shape}"
            )

    def __len__(self) -> int:
        return len(self.acts)


def _trajectory_class() -> type:
    try:
        from imitation.data.types import TrajectoryWithRew as Imitation
    except ImportError:
        return TrajectoryWithRew
    return Imitation


def _fields(traj: Any, i: int) -> tuple[np.ndarray, np.ndarray, Any, bool, np.ndarray]:
    try:
        obs, acts, infos, terminal, rews = (
            traj.obs,
            traj.acts,
            traj.infos,
            traj.terminal,
            traj.rews,
        )
    except AttributeError as exc:
        raise InvalidInputError(
            f"trajectory {i} must have obs, acts, infos, terminal and rews "
            f"(imitation's TrajectoryWithRew), got {type(traj).__name__}"
        ) from exc
    if hasattr(obs, "keys"):  # dict / imitation DictObs observations
        raise InvalidInputError(
            f"trajectory {i} has dict observations; flatten them before converting to Segments"
        )
    obs, acts, rews = np.asarray(obs), np.asarray(acts), np.asarray(rews, dtype=np.float64)
    T = acts.shape[0] if acts.ndim else 0
    if T == 0 or obs.shape[:1] != (T + 1,) or rews.shape != (T,):
        raise InvalidInputError(
            f"trajectory {i} must have obs [T+1,...], acts [T,...] and rews [T] with T >= 1, "
            f"got obs {obs.shape}, acts {acts.shape}, rews {rews.shape}"
        )
    if infos is not None and len(infos) != T:
        raise InvalidInputError(f"trajectory {i} has {len(infos)} infos for {T} actions")
    return obs, acts, infos, bool(terminal), rews


def _numeric_info_keys(infos: list[Sequence[dict[str, Any]] | None]) -> list[str]:
    """Keys present in every step's info dict whose values are numbers or numeric arrays."""
    keys: set[str] | None = None
    for seq in infos:
        if seq is None:
            return []
        for d in seq:
            usable = {
                k
                for k, v in dict(d).items()
                if isinstance(v, numbers.Number | np.ndarray | np.generic)
                and np.asarray(v).dtype != object
            }
            keys = usable if keys is None else keys & usable
    return sorted(keys or ())


def segments_from_trajectories(
    trajectories: Iterable[Any],
    segment_length: int | None = None,
) -> Segments:
    """Segments from imitation-style trajectories: each trajectory cut into consecutive
    non-overlapping windows of ``segment_length`` steps (a trailing shorter part is dropped), or
    taken whole when ``segment_length`` is None (then all must have the same length).

    ``obs``/``next_obs`` are ``traj.obs[:-1]``/``traj.obs[1:]``; ``dones`` is True only on the last
    step of a terminal trajectory; info keys present at every step with numeric values become
    ``infos`` arrays (other info entries are not carried).
    """
    trajs = list(trajectories)
    if not trajs:
        raise InvalidInputError("no trajectories given")
    parts = [_fields(t, i) for i, t in enumerate(trajs)]
    if segment_length is None:
        lengths = {p[1].shape[0] for p in parts}
        if len(lengths) != 1:
            raise InvalidInputError(
                "trajectories of different lengths "
                f"{sorted(lengths)} need a segment_length to cut them into equal windows"
            )
        H = lengths.pop()
    else:
        if isinstance(segment_length, bool) or int(segment_length) != segment_length:
            raise InvalidInputError(
                f"segment_length must be a positive integer, got {segment_length!r}"
            )
        H = int(segment_length)
        if H < 1:
            raise InvalidInputError(f"segment_length must be a positive integer, got {H}")
    keys = _numeric_info_keys([p[2] for p in parts])
    obs, nxt, acts, rews, dones = [], [], [], [], []
    infos: dict[str, list[np.ndarray]] = {k: [] for k in keys}
    for o, a, inf, terminal, r in parts:
        T = a.shape[0]
        for start in range(0, T - H + 1, H):
            stop = start + H
            obs.append(o[start:stop])
            nxt.append(o[start + 1 : stop + 1])
            acts.append(a[start:stop])
            rews.append(r[start:stop])
            d = np.zeros(H, dtype=bool)
            d[-1] = terminal and stop == T
            dones.append(d)
            for k in keys:
                infos[k].append(np.stack([np.asarray(inf[t][k]) for t in range(start, stop)]))
    if not obs:
        raise InvalidInputError(
            f"no trajectory is at least segment_length = {H} steps long, got lengths "
            f"{sorted({p[1].shape[0] for p in parts})}"
        )
    return Segments(
        obs=np.stack(obs),
        actions=np.stack(acts),
        rewards=np.stack(rews),
        next_obs=np.stack(nxt),
        dones=np.stack(dones),
        infos={k: np.stack(v) for k, v in infos.items()},
    )


def trajectories_from_segments(segments: Segments, cls: type | None = None) -> list[Any]:
    """One imitation ``TrajectoryWithRew`` per segment: obs = the segment's obs plus its last
    next_obs, terminal = its last done; ``infos`` arrays become per-step dicts.

    ``cls`` defaults to imitation's class when imitation is installed, else
    :class:`TrajectoryWithRew`. Needs ``next_obs`` (the final observation), scalar rewards and
    no episode end before a segment's last step.
    """
    if not isinstance(segments, Segments):
        raise InvalidInputError(f"segments must be Segments, got {type(segments).__name__}")
    if segments.next_obs is None:
        raise InvalidInputError(
            "trajectories need the observation after the last step: Segments.next_obs is None"
        )
    if segments.rewards.ndim != 2:
        raise InvalidInputError(
            f"imitation trajectories carry scalar rewards [T], got rewards of shape "
            f"{segments.rewards.shape}; scalarize the factors first"
        )
    dones = segments.dones
    if dones is not None and np.any(dones[:, :-1]):
        raise InvalidInputError(
            "a segment ends its episode before its last step: split it at the episode end"
        )
    make = _trajectory_class() if cls is None else cls
    out = []
    for b in range(segments.batch_size):
        infos = None
        if segments.infos:
            infos = np.array(
                [{k: v[b, t] for k, v in segments.infos.items()} for t in range(segments.length)],
                dtype=object,
            )
        out.append(
            make(
                obs=np.concatenate([segments.obs[b], segments.next_obs[b, -1:]]),
                acts=segments.actions[b].copy(),
                infos=infos,
                terminal=bool(dones[b, -1]) if dones is not None else False,
                rews=segments.rewards[b].astype(np.float64),
            )
        )
    return out
