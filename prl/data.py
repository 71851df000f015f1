"""Preference-data pipeline: roll out → cut segments → pick pairs → label → save / load.

Small pieces that compose (used by CPL, P-IQL, SFT, %BC and reusable by OPPO, SPO, HERON):

- :func:`collect_rollouts` runs a behaviour policy with action noise in a gymnasium env and returns
  flat :class:`Rollouts`; :func:`sample_tabular_segments` is the vectorized equivalent for a
  :class:`~prl.mdp.TabularMDP`;
- :func:`fragment` cuts fixed-length :class:`~prl.types.Segments` out of rollouts (inside episodes);
- :func:`pairs_sparse` / :func:`pairs_dense` choose index pairs; :func:`pair_labels` /
  :func:`label_pairs` label them with any :mod:`prl.oracles` oracle (score oracles are scored
  once per segment, then compared);
- :class:`ExpertCritic` turns an actor-critic expert (e.g. SB3 SAC) into A(s,a) = Q(s,a) − V(s),
  V(s) = E_{a~π}[Q(s,a)] by action sampling, for the :class:`~prl.oracles.Regret` oracle;
  :class:`CriticScore` is the telescoped score Σγ^t r_t + γ^T V(s_T) − V(s_0);
- :class:`PreferenceDataset` holds segments, pairs, labels and per-segment scores and is saved to a
  versioned ``.npz`` file (layout below); :func:`generate_dataset` builds one chunk by chunk with a
  progress bar and resumes from finished chunks.

Dataset file format (version 1): an uncompressed NumPy ``.npz`` (a zip of ``.npy`` arrays, read with
``allow_pickle=False``) holding

    ``__header__``   a JSON string: {"format": "prl-preference-dataset", "version": 1,
                      "arrays": {name: {"shape": [...], "dtype": "<f4"}}, "sha256": hex, "meta": {}}
    ``obs``, ``actions``, ``rewards``            segments ``[N, T, ...]``
    ``next_obs``, ``dones`` (optional)           ``[N, T, ...]``, ``[N, T]``
    ``info.<key>``                               per-step extras ``[N, T, ...]`` (e.g. ``valid``,
                                                 ``success``, ``episode``, ``episode_return``)
    ``pairs`` ``[P, 2]`` int64, ``label`` ``[P]`` float64, ``mask`` ``[P]`` bool
    ``scores`` (optional) ``[N]`` float64: the oracle's per-segment score (dense data rank by it)

The checksum is SHA-256 over every array (sorted by name: name, dtype, shape, C-order bytes).
Files are written to a temporary name and renamed, so a crash never leaves a half-written file;
:meth:`PreferenceDataset.load` rejects unreadable, truncated, tampered, newer-version or mismatched
files with a one-line :class:`~prl.errors.InvalidInputError`. (Minari is not used: it is not
installed here and its datasets are episode stores, not labelled segment pairs.)
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
import warnings
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from prl.common.queries import (  # re-exported: the query pieces live in prl.common
    _bar,
    _check_rng,
    _plain_score_oracle,
    _positive_int,
    label_pairs,
    pair_labels,
    pairs_dense,
    pairs_sparse,
    segment_scores,
)
from prl.errors import InvalidInputError
from prl.oracles import Oracle, Regret, ScoreOracle
from prl.types import Preferences, Segments
from prl.utils import atomic_path

__all__ = [
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "CriticScore",
    "ExpertCritic",
    "PreferenceDataset",
    "Rollouts",
    "collect_rollouts",
    "epsilon_greedy_policy",
    "fragment",
    "generate_dataset",
    "label_pairs",
    "pair_labels",
    "pairs_dense",
    "pairs_sparse",
    "rollout_chunks",
    "sample_tabular_segments",
    "sb3_policy",
    "segment_scores",
    "tabular_chunks",
    "tabular_policy",
    "train_sac_expert",
    "uniform_policy",
]

FORMAT_NAME = "prl-preference-dataset"
FORMAT_VERSION = 1

Policy = Callable[[Any, np.random.Generator], Any]


# ---- rollouts ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Rollouts:
    """Flat transitions of consecutive episodes: ``obs [N, ...]``, ``actions [N, ...]``,
    ``rewards [N]``, ``next_obs [N, ...]``, ``terminated [N]``, ``truncated [N]``,
    ``episode [N]`` (episode index, non-decreasing) and ``infos`` (``[N, ...]`` arrays)."""

    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_obs: np.ndarray
    terminated: np.ndarray
    truncated: np.ndarray
    episode: np.ndarray
    infos: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.rewards)
        for name in ("obs", "actions", "next_obs", "terminated", "truncated", "episode"):
            if len(getattr(self, name)) != n:
                raise InvalidInputError(
                    f"Rollouts.{name} must have {n} rows, got {len(getattr(self, name))}"
                )
        if n and np.any(np.diff(self.episode) < 0):
            raise InvalidInputError("Rollouts.episode must be non-decreasing")

    def __len__(self) -> int:
        return len(self.rewards)

    @property
    def n_episodes(self) -> int:
        """Number of (possibly unfinished) episodes."""
        return len(np.unique(self.episode))

    def episode_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Start and end (exclusive) row of each episode."""
        if len(self) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.int64)
        change = np.flatnonzero(np.diff(self.episode)) + 1
        starts = np.concatenate([[0], change]).astype(np.int64)
        ends = np.concatenate([change, [len(self)]]).astype(np.int64)
        return starts, ends

    def episode_returns(self) -> np.ndarray:
        """Undiscounted return of each episode, in episode order."""
        starts, _ = self.episode_bounds()
        return np.add.reduceat(self.rewards, starts) if len(starts) else np.zeros(0)

    @staticmethod
    def concat(parts: list[Rollouts]) -> Rollouts:
        """Concatenate rollouts; episode indices are renumbered to stay distinct."""
        if not parts:
            raise InvalidInputError("cannot concatenate an empty list of Rollouts")
        eps, offset = [], 0
        for p in parts:
            _, inv = np.unique(p.episode, return_inverse=True)
            eps.append(inv + offset)
            offset += p.n_episodes
        keys = set(parts[0].infos)
        return Rollouts(
            obs=np.concatenate([p.obs for p in parts]),
            actions=np.concatenate([p.actions for p in parts]),
            rewards=np.concatenate([p.rewards for p in parts]),
            next_obs=np.concatenate([p.next_obs for p in parts]),
            terminated=np.concatenate([p.terminated for p in parts]),
            truncated=np.concatenate([p.truncated for p in parts]),
            episode=np.concatenate(eps),
            infos={k: np.concatenate([p.infos[k] for p in parts]) for k in keys},
        )


# ---- behaviour policies --------------------------------------------------------------------------
def tabular_policy(pi: np.ndarray) -> Policy:
    """Sample a ~ π(·|s) from a tabular policy ``pi [S, A]``."""
    pi = np.asarray(pi, dtype=np.float64)
    if pi.ndim != 2 or np.any(pi < 0) or not np.allclose(pi.sum(1), 1.0):
        raise InvalidInputError(f"pi must be a row-stochastic [S, A] matrix, got shape {pi.shape}")
    cdf = np.cumsum(pi, axis=1)

    def act(obs: Any, rng: np.random.Generator) -> int:
        c = cdf[int(obs)]
        return int(min(np.searchsorted(c, rng.random() * c[-1], side="right"), len(c) - 1))

    return act


def uniform_policy(action_space: Any) -> Policy:
    """Uniformly random actions from a Discrete or Box space (drawn with the given rng)."""
    from gymnasium import spaces

    if isinstance(action_space, spaces.Discrete):
        return lambda obs, rng: int(action_space.start + rng.integers(action_space.n))
    if isinstance(action_space, spaces.Box):
        lo, hi = action_space.low, action_space.high
        return lambda obs, rng: rng.uniform(lo, hi).astype(action_space.dtype)
    raise InvalidInputError(f"uniform_policy supports Discrete and Box, got {action_space}")


def epsilon_greedy_policy(pi_greedy: np.ndarray, epsilon: float) -> np.ndarray:
    """(1 − ε)·π + ε·uniform as a tabular policy matrix."""
    pi = np.asarray(pi_greedy, dtype=np.float64)
    if not (0.0 <= epsilon <= 1.0):
        raise InvalidInputError(f"epsilon must be in [0, 1], got {epsilon}")
    return (1.0 - epsilon) * pi + epsilon / pi.shape[1]


def sb3_policy(model: Any, deterministic: bool = True) -> Policy:
    """A stable-baselines3 model's ``predict`` as a behaviour policy (rng unused)."""
    return lambda obs, rng: model.predict(obs, deterministic=deterministic)[0]


def _add_noise(
    action: Any, space: Any, rng: np.random.Generator, noise: float, epsilon: float
) -> Any:
    from gymnasium import spaces

    if isinstance(space, spaces.Box):
        a = np.asarray(action, dtype=np.float64)
        if noise > 0:
            a = a + rng.normal(0.0, noise, size=a.shape)
        if epsilon > 0 and rng.random() < epsilon:
            a = rng.uniform(space.low, space.high)
        return np.clip(a, space.low, space.high).astype(space.dtype)
    if isinstance(space, spaces.Discrete):
        if epsilon > 0 and rng.random() < epsilon:
            return int(space.start + rng.integers(space.n))
        return int(action)
    return action


def collect_rollouts(
    env: Any,
    policy: Policy,
    rng: np.random.Generator,
    *,
    n_episodes: int | None = None,
    n_steps: int | None = None,
    action_noise: float = 0.0,
    epsilon: float = 0.0,
    info_keys: Iterable[str] = ("success",),
    progress: bool = False,
) -> Rollouts:
    """Run ``policy(obs, rng)`` in ``env`` for ``n_episodes`` episodes or ``n_steps`` steps.

    Continuous actions get Gaussian noise N(0, action_noise²) and are clipped to the action
    space; with probability ``epsilon`` an action is replaced by a uniform one. Every reset is
    seeded from ``rng``, so the data are a deterministic function of ``rng``'s state.
    ``info_keys`` present in the env's ``info`` are recorded per step (missing → 0).
    """
    rng = _check_rng(rng)
    if (n_episodes is None) == (n_steps is None):
        raise InvalidInputError("give exactly one of n_episodes and n_steps")
    limit = _positive_int(n_episodes if n_episodes is not None else n_steps, "n_episodes/n_steps")
    if action_noise < 0 or not (0 <= epsilon <= 1):
        raise InvalidInputError(
            f"action_noise must be >= 0 and epsilon in [0, 1], got {action_noise}, {epsilon}"
        )
    keys = list(info_keys)
    cols: dict[str, list[Any]] = {k: [] for k in ("o", "a", "r", "o2", "te", "tr", "ep")}
    extra: dict[str, list[Any]] = {k: [] for k in keys}
    ep = steps = 0
    bar = _bar(limit, "rollouts", progress, "episodes" if n_episodes is not None else "steps")
    try:
        while (ep < limit) if n_episodes is not None else (steps < limit):
            obs, _ = env.reset(seed=int(rng.integers(2**31 - 1)))
            done = False
            while not done:
                action = _add_noise(policy(obs, rng), env.action_space, rng, action_noise, epsilon)
                nxt, reward, term, trunc, info = env.step(action)
                if not np.isfinite(reward):
                    raise InvalidInputError(
                        f"the environment returned a non-finite reward {reward}"
                    )
                for k, v in (("o", obs), ("a", action), ("r", float(reward)), ("o2", nxt)):
                    cols[k].append(v)
                cols["te"].append(bool(term))
                cols["tr"].append(bool(trunc))
                cols["ep"].append(ep)
                for k in keys:
                    extra[k].append(float(info.get(k, 0.0)))
                obs = nxt
                steps += 1
                done = bool(term or trunc)
                if n_steps is not None:
                    bar.update(1)
                    if steps >= limit:
                        break
            ep += 1
            if n_episodes is not None:
                bar.update(1)
    finally:
        bar.close()
    return Rollouts(
        obs=np.asarray(cols["o"]),
        actions=np.asarray(cols["a"]),
        rewards=np.asarray(cols["r"], dtype=np.float64),
        next_obs=np.asarray(cols["o2"]),
        terminated=np.asarray(cols["te"], dtype=bool),
        truncated=np.asarray(cols["tr"], dtype=bool),
        episode=np.asarray(cols["ep"], dtype=np.int64),
        infos={k: np.asarray(v) for k, v in extra.items()},
    )


def sample_tabular_segments(
    mdp: Any,
    pi: np.ndarray,
    n: int,
    length: int,
    rng: np.random.Generator,
    start: str | np.ndarray = "mu0",
) -> Segments:
    """``n`` segments of ``length`` steps of policy ``pi [S, A]`` in a TabularMDP, vectorized.

    Start states ~ ``mu0``, ``"uniform"`` over non-terminal states, or a given distribution.
    After a terminal state is entered the segment stays there with reward 0 and
    ``infos["valid"]`` False (A* is 0 there, so regret labels are unaffected).
    """
    rng = _check_rng(rng)
    n, length = _positive_int(n, "n"), _positive_int(length, "length")
    pi = np.asarray(pi, dtype=np.float64)
    if pi.shape != (mdp.S, mdp.A) or np.any(pi < 0) or not np.allclose(pi.sum(1), 1.0):
        raise InvalidInputError(f"pi must be a row-stochastic [{mdp.S}, {mdp.A}] matrix")
    if isinstance(start, str):
        if start == "mu0":
            p0 = mdp.mu0
        elif start == "uniform":
            p0 = (~mdp.terminal).astype(np.float64)
            p0 = p0 / p0.sum()
        else:
            raise InvalidInputError(f"start must be 'mu0', 'uniform' or an array, got {start!r}")
    else:
        p0 = np.asarray(start, dtype=np.float64)
        if p0.shape != (mdp.S,) or np.any(p0 < 0) or not np.isclose(p0.sum(), 1.0):
            raise InvalidInputError(f"start must be a probability vector over {mdp.S} states")
    pi_cdf = np.cumsum(pi, axis=1)
    P_cdf = np.cumsum(mdp.P, axis=2)

    def draw(cdf_rows: np.ndarray) -> np.ndarray:
        u = rng.random(cdf_rows.shape[0])[:, None] * cdf_rows[:, -1:]
        return np.minimum((cdf_rows <= u).sum(axis=1), cdf_rows.shape[1] - 1)

    obs = np.empty((n, length), np.int64)
    act = np.empty((n, length), np.int64)
    nxt = np.empty((n, length), np.int64)
    s = draw(np.broadcast_to(np.cumsum(p0), (n, mdp.S)))
    for t in range(length):
        a = draw(pi_cdf[s])
        s2 = draw(P_cdf[s, a])
        obs[:, t], act[:, t], nxt[:, t] = s, a, s2
        s = s2
    term = mdp.terminal
    valid = ~term[obs]
    return Segments(
        obs=obs,
        actions=act,
        rewards=np.where(valid, mdp.R[obs, act], 0.0),
        next_obs=nxt,
        dones=valid & term[nxt],
        infos={"valid": valid},
    )


# ---- fragmenting ---------------------------------------------------------------------------------
def fragment(
    rollouts: Rollouts,
    length: int,
    *,
    n_segments: int | None = None,
    rng: np.random.Generator | None = None,
    stride: int | None = None,
) -> Segments:
    """Cut fixed-length segments that lie inside one episode each.

    With ``n_segments`` (needs ``rng``) the windows are drawn uniformly among all windows without
    replacement (with replacement if there are fewer); otherwise every ``stride``-th window
    (default: consecutive non-overlapping windows). Episodes shorter than ``length`` give none.
    ``infos`` gets ``episode`` and ``episode_return`` (of the source episode), ``t`` (step
    index in the episode), ``terminated``, ``valid`` (all True) and the rollouts' own infos.
    """
    length = _positive_int(length, "length")
    starts, ends = rollouts.episode_bounds()
    lens = ends - starts
    n_win = np.maximum(lens - length + 1, 0)
    if n_segments is None:
        step = _positive_int(stride if stride is not None else length, "stride")
        win = [s + np.arange(0, k, step) for s, k in zip(starts, n_win) if k > 0]
        first = np.concatenate(win) if win else np.zeros(0, np.int64)
    else:
        rng = _check_rng(rng)
        n_segments = _positive_int(n_segments, "n_segments")
        total = int(n_win.sum())
        if total == 0:
            first = np.zeros(0, np.int64)
        else:
            pick = rng.choice(total, size=n_segments, replace=n_segments > total)
            pick.sort()
            offs = np.concatenate([[0], np.cumsum(n_win)])
            ep_of = np.searchsorted(offs, pick, side="right") - 1
            first = starts[ep_of] + (pick - offs[ep_of])
    if len(first) == 0:
        raise InvalidInputError(
            f"no episode is at least {length} steps long (longest: {int(lens.max(initial=0))})"
        )
    idx = first[:, None] + np.arange(length)[None, :]
    ep_ids = rollouts.episode[idx]
    ep_index = np.searchsorted(starts, idx[:, 0], side="right") - 1
    ep_ret = rollouts.episode_returns()[ep_index]
    infos = {k: v[idx] for k, v in rollouts.infos.items()}
    infos.update(
        episode=ep_ids,
        episode_return=np.broadcast_to(ep_ret[:, None], idx.shape).copy(),
        t=idx - starts[ep_index][:, None],
        terminated=rollouts.terminated[idx],
        valid=np.ones(idx.shape, dtype=bool),
    )
    return Segments(
        obs=rollouts.obs[idx],
        actions=rollouts.actions[idx],
        rewards=rollouts.rewards[idx],
        next_obs=rollouts.next_obs[idx],
        dones=rollouts.terminated[idx] | rollouts.truncated[idx],
        infos=infos,
    )


# ---- the dataset and its file format -------------------------------------------------------------
def _checksum(arrays: dict[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(a.dtype.str.encode())
        h.update(json.dumps(list(a.shape)).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _json_safe(obj: Any) -> Any:
    return json.loads(
        json.dumps(obj, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))
    )


@dataclass
class PreferenceDataset:
    """Segments ``[N, T, ...]`` with labelled index ``pairs [P, 2]`` (``label`` = P(row 0 ≻ row 1),
    ``mask`` False for skipped pairs), optional per-segment oracle ``scores [N]`` (dense datasets
    rank every pair of a batch by them) and free-form JSON ``meta``."""

    segments: Segments
    pairs: np.ndarray
    label: np.ndarray
    mask: np.ndarray
    scores: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.segments, Segments):
            raise InvalidInputError(
                f"segments must be Segments, got {type(self.segments).__name__}"
            )
        n = len(self.segments)
        self.pairs = np.asarray(self.pairs, dtype=np.int64).reshape(-1, 2)
        P = len(self.pairs)
        self.label = np.asarray(self.label, dtype=np.float64).reshape(-1)
        self.mask = np.asarray(self.mask, dtype=bool).reshape(-1)
        if self.label.shape != (P,) or self.mask.shape != (P,):
            raise InvalidInputError(
                f"label and mask must have shape ({P},), got {self.label.shape}, {self.mask.shape}"
            )
        if P and (self.pairs.min() < 0 or self.pairs.max() >= n):
            raise InvalidInputError(f"pair indices must be in [0, {n - 1}]")
        if np.any(~np.isfinite(self.label)) or np.any((self.label < 0) | (self.label > 1)):
            raise InvalidInputError("labels must be finite and in [0, 1]")
        if self.scores is not None:
            self.scores = np.asarray(self.scores, dtype=np.float64)
            if self.scores.shape != (n,) or not np.all(np.isfinite(self.scores)):
                raise InvalidInputError(
                    f"scores must be {n} finite numbers, got {self.scores.shape}"
                )
        self.meta = _json_safe(dict(self.meta))

    def __len__(self) -> int:
        return len(self.segments)

    @property
    def n_pairs(self) -> int:
        """Number of labelled pairs P."""
        return len(self.pairs)

    @property
    def mode(self) -> str:
        """ "dense" (rank segments by ``scores``) or "sparse" (the labelled ``pairs``)."""
        m = self.meta.get("mode")
        if m in ("dense", "sparse"):
            return str(m)
        return "sparse" if self.n_pairs else "dense"

    def preferences(self, idx: np.ndarray | None = None) -> Preferences:
        """The labelled pairs (or the rows ``idx`` of them) as :class:`Preferences`."""
        pairs = self.pairs if idx is None else self.pairs[idx]
        lab = self.label if idx is None else self.label[idx]
        mask = self.mask if idx is None else self.mask[idx]
        return Preferences(self.segments[pairs[:, 0]], self.segments[pairs[:, 1]], lab, mask)

    # -- file I/O ----------------------------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        s = self.segments
        arrays = {"obs": s.obs, "actions": s.actions, "rewards": s.rewards}
        if s.next_obs is not None:
            arrays["next_obs"] = s.next_obs
        if s.dones is not None:
            arrays["dones"] = s.dones
        for k, v in s.infos.items():
            arrays[f"info.{k}"] = v
        arrays.update(pairs=self.pairs, label=self.label, mask=self.mask)
        if self.scores is not None:
            arrays["scores"] = self.scores
        return {k: np.ascontiguousarray(v) for k, v in arrays.items()}

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the versioned ``.npz`` file atomically (temporary file, then rename)."""
        path = Path(path)
        if path.suffix != ".npz":
            raise InvalidInputError(f"dataset files end in .npz, got {path.name!r}")
        arrays = self._arrays()
        for k, v in arrays.items():
            if v.dtype == object:
                raise InvalidInputError(f"array {k!r} has dtype object and cannot be stored")
        header = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "arrays": {
                k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in arrays.items()
            },
            "sha256": _checksum(arrays),
            "meta": self.meta,
        }
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, __header__=np.array(json.dumps(header, sort_keys=True)), **arrays)
        return path

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], expect: dict[str, Any] | None = None
    ) -> PreferenceDataset:
        """Read and verify a dataset file; ``expect`` maps meta keys to required values.

        Raises InvalidInputError (one line) for a missing, unreadable, truncated or tampered file,
        another format, a newer version, shapes that disagree with the header, or a meta
        mismatch.
        """
        path = Path(path)
        if not path.is_file():
            raise InvalidInputError(f"dataset file {path} does not exist")
        try:
            with np.load(path, allow_pickle=False) as z:
                if "__header__" not in z.files:
                    raise InvalidInputError(
                        f"{path} is not a {FORMAT_NAME} file (no __header__ entry)"
                    )
                header = json.loads(str(z["__header__"]))
                arrays = {k: z[k] for k in z.files if k != "__header__"}
        except InvalidInputError:
            raise
        except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as exc:
            msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InvalidInputError(
                f"cannot read dataset {path}: corrupted or not an .npz file ({msg})"
            ) from None
        if not isinstance(header, dict) or header.get("format") != FORMAT_NAME:
            raise InvalidInputError(
                f"{path} is not a {FORMAT_NAME} file (format {header.get('format')!r})"
            )
        version = header.get("version")
        if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
            raise InvalidInputError(
                f"{path} has format version {version!r}; this prl reads 1..{FORMAT_VERSION}"
            )
        declared = header.get("arrays", {})
        if set(declared) != set(arrays):
            raise InvalidInputError(
                f"{path}: arrays {sorted(arrays)} do not match the header's {sorted(declared)}"
            )
        for k, spec in declared.items():
            a = arrays[k]
            if list(a.shape) != list(spec["shape"]) or a.dtype.str != spec["dtype"]:
                raise InvalidInputError(
                    f"{path}: array {k!r} has shape {list(a.shape)} dtype {a.dtype.str}, header "
                    f"says {spec['shape']} {spec['dtype']}"
                )
        if _checksum(arrays) != header.get("sha256"):
            raise InvalidInputError(f"{path}: checksum mismatch (the file was modified or damaged)")
        meta = header.get("meta", {})
        for k, want in (expect or {}).items():
            got = meta.get(k)
            if _json_safe(got) != _json_safe(want):
                raise InvalidInputError(
                    f"dataset {path} was made with {k}={got!r}, expected {k}={want!r}"
                )
        infos = {k[5:]: v for k, v in arrays.items() if k.startswith("info.")}
        try:
            seg = Segments(
                obs=arrays["obs"],
                actions=arrays["actions"],
                rewards=arrays["rewards"],
                next_obs=arrays.get("next_obs"),
                dones=arrays.get("dones"),
                infos=infos,
            )
            return cls(
                seg, arrays["pairs"], arrays["label"], arrays["mask"], arrays.get("scores"), meta
            )
        except (InvalidInputError, KeyError) as exc:
            raise InvalidInputError(f"{path}: inconsistent dataset ({exc})") from None


# ---- expert critics (MuJoCo / MetaWorld regret labels) -------------------------------------------
class ExpertCritic:
    """A(s,a) = Q(s,a) − V(s) with V(s) = (1/M) Σ_m Q(s, a_m), a_m ~ π(·|s): an expert's critic as
    an advantage function (the CPL paper's labels; V by action sampling as the authors do).

    ``q_fn(obs [N, d], act [N, k]) -> [N]`` and ``sample_fn(obs [N, d], M, generator) ->
    [M, N, k]`` work on torch tensors on ``device``; ``advantage`` takes and returns numpy.
    """

    def __init__(
        self,
        q_fn: Callable[[Any, Any], Any],
        sample_fn: Callable[[Any, int, Any], Any],
        n_samples: int = 64,
        seed: int = 0,
        device: Any = "cpu",
        chunk: int = 8192,
    ):
        import torch

        self.q_fn, self.sample_fn = q_fn, sample_fn
        self.n_samples = _positive_int(n_samples, "n_samples")
        self.device = torch.device(device)
        self.chunk = _positive_int(chunk, "chunk")
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(seed))

    @classmethod
    def from_sb3(
        cls, model: Any, n_samples: int = 64, seed: int = 0, chunk: int = 8192
    ) -> ExpertCritic:
        """Wrap a stable-baselines3 SAC/TD3-style model (mean over its critics; actions sampled
        from its squashed-Gaussian actor with our own generator)."""
        import torch

        policy = model.policy
        actor, critic = policy.actor, policy.critic
        low = torch.as_tensor(model.action_space.low, dtype=torch.float32, device=model.device)
        high = torch.as_tensor(model.action_space.high, dtype=torch.float32, device=model.device)

        def scale(a: torch.Tensor) -> torch.Tensor:  # env action → the [-1, 1] critic input
            return 2.0 * (a - low) / (high - low) - 1.0

        def q_fn(obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            qs = critic(obs, scale(act))
            return torch.stack([q[..., 0] for q in qs]).mean(0)

        def sample_fn(obs: torch.Tensor, m: int, g: torch.Generator) -> torch.Tensor:
            mean, log_std, _ = actor.get_action_dist_params(obs)
            eps = torch.randn((m, *mean.shape), generator=g, device=mean.device, dtype=mean.dtype)
            a = torch.tanh(mean + log_std.exp() * eps)  # squashed in [-1, 1]
            return low + (a + 1.0) * 0.5 * (high - low)

        policy.set_training_mode(False)
        return cls(
            q_fn, sample_fn, n_samples=n_samples, seed=seed, device=model.device, chunk=chunk
        )

    def _flat(self, x: Any) -> Any:
        import torch

        return torch.as_tensor(np.asarray(x), dtype=torch.float32, device=self.device)

    def q(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Q(s, a) for ``obs [..., d]``, ``actions [..., k]`` → ``[...]``."""
        import torch

        obs, actions = np.asarray(obs), np.asarray(actions)
        batch = obs.shape[:-1]
        o = obs.reshape(-1, obs.shape[-1])
        a = actions.reshape(-1, actions.shape[-1])
        out = []
        with torch.no_grad():
            for lo in range(0, len(o), self.chunk):
                q = self.q_fn(
                    self._flat(o[lo : lo + self.chunk]), self._flat(a[lo : lo + self.chunk])
                )
                out.append(q.double().cpu().numpy())
        return np.concatenate(out).reshape(batch) if out else np.zeros(batch)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(s) = mean of Q(s, a_m) over ``n_samples`` actions a_m ~ π(·|s), shape ``[...]``."""
        import torch

        obs = np.asarray(obs)
        batch = obs.shape[:-1]
        o = obs.reshape(-1, obs.shape[-1])
        out = []
        M = self.n_samples
        step = max(1, self.chunk // M)
        with torch.no_grad():
            for lo in range(0, len(o), step):
                ot = self._flat(o[lo : lo + step])
                acts = self.sample_fn(ot, M, self.generator)  # [M, n, k]
                rep = ot.unsqueeze(0).expand(M, *ot.shape).reshape(-1, ot.shape[-1])
                q = self.q_fn(rep, acts.reshape(-1, acts.shape[-1])).reshape(M, -1)
                out.append(q.mean(0).double().cpu().numpy())
        return np.concatenate(out).reshape(batch) if out else np.zeros(batch)

    def advantage(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """A(s_t, a_t) = Q − V along segments ``[B, T, ...]`` → ``[B, T]`` (Regret's input)."""
        return self.q(obs, actions) - self.value(obs)

    def regret_oracle(self, beta: float = 1.0, discount: float = 1.0) -> Regret:
        """P(a ≻ b) = σ(β Σ_t γ^t (A(σ_a) − A(σ_b))), the regret preference model."""
        return Regret(self.advantage, beta=beta, discount=discount)


class CriticScore(ScoreOracle):
    """Telescoped critic score Σ_{t<T} γ^t r_t + γ^T V(s_T) − V(s_0) (V(s_T) = 0 after a
    termination): the authors' label, equal to Σγ^t A(s_t,a_t) when Q = r + γV' holds."""

    reads_rewards = True

    def __init__(self, critic: ExpertCritic, beta: float = 1.0, discount: float = 1.0):
        super().__init__(beta)
        if not (0.0 < float(discount) <= 1.0):
            raise InvalidInputError(f"discount must be in (0, 1], got {discount}")
        self.critic = critic
        self.discount = float(discount)

    def score(self, segments: Segments) -> np.ndarray:
        """Per-segment telescoped score ``[B]`` (needs ``next_obs``)."""
        if not isinstance(segments, Segments) or segments.next_obs is None:
            raise InvalidInputError("CriticScore needs Segments with next_obs")
        T = segments.length
        w = segments.discount_weights(self.discount)
        ret = segments.rewards @ w if segments.rewards.ndim == 2 else segments.rewards.sum(1)
        v0 = self.critic.value(segments.obs[:, 0])
        vT = self.critic.value(segments.next_obs[:, -1])
        term = segments.infos.get("terminated")
        if term is not None:
            vT = np.where(np.asarray(term)[:, -1], 0.0, vT)
        return ret + self.discount**T * vT - v0

    def __repr__(self) -> str:
        return f"CriticScore(beta={self.beta}, discount={self.discount})"


def discounted_returns(ro: Rollouts, gamma: float, tail: np.ndarray | None = None) -> np.ndarray:
    """G_t = r_t + γ G_{t+1} within each episode of ``ro``; an episode's last row adds
    γ·``tail`` (the bootstrap V(s') of a truncated or cut end; 0 after a termination)."""
    if not (0.0 <= float(gamma) <= 1.0):
        raise InvalidInputError(f"gamma must be in [0, 1], got {gamma}")
    n = len(ro)
    tail = np.zeros(n) if tail is None else np.asarray(tail, dtype=np.float64)
    if tail.shape != (n,):
        raise InvalidInputError(f"tail must have shape ({n},), got {tail.shape}")
    last = np.ones(n, dtype=bool)
    last[:-1] = ro.episode[1:] != ro.episode[:-1]
    g = np.zeros(n)
    nxt = 0.0
    for t in range(n - 1, -1, -1):
        boot = (0.0 if ro.terminated[t] else tail[t]) if last[t] else nxt
        nxt = g[t] = ro.rewards[t] + gamma * boot
    return g


class FittedValue:
    """V(s) of a regression network on standardized observations: the ``value`` interface
    :class:`CriticScore` reads (so a fitted V can label segments like an expert's critic)."""

    def __init__(self, net: Any, obs_mean: np.ndarray, obs_std: np.ndarray, scale: float):
        self.net, self.scale = net, float(scale)
        self.obs_mean = np.asarray(obs_mean, dtype=np.float32)
        self.obs_std = np.asarray(obs_std, dtype=np.float32)

    def value(self, obs: np.ndarray) -> np.ndarray:
        """V(s) for ``obs [..., d]`` → ``[...]`` (float64)."""
        import torch

        obs = np.asarray(obs, dtype=np.float32)
        x = torch.as_tensor((obs.reshape(-1, obs.shape[-1]) - self.obs_mean) / self.obs_std)
        with torch.no_grad():
            v = self.net(x)[:, 0].double().numpy() * self.scale
        return v.reshape(obs.shape[:-1])


def fit_rollout_value(
    ro: Rollouts,
    gamma: float = 0.99,
    hidden: tuple[int, ...] = (256, 256),
    rounds: int = 3,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    seed: int = 0,
) -> FittedValue:
    """Fit V^π(s) ≈ E[Σ_k γ^k r_{t+k} | s_t = s] to a policy's rollouts by Monte-Carlo
    regression; truncated episode ends are bootstrapped with the previous round's V
    (round 1: 0), so ``rounds`` rounds reach ``rounds`` horizons into the future.

    The critic of the scripted-expert datasets (``OfflineConfig.expert = "scripted"``): the
    label Σr + V(s_T) − V(s_0) of CPL's data (Hejna et al. 2024, §5) with V = V^expert.
    """
    import torch

    from prl.nets import mlp

    rounds, steps = _positive_int(rounds, "rounds"), _positive_int(steps, "steps")
    batch_size = _positive_int(batch_size, "batch_size")
    if len(ro) < 2:
        raise InvalidInputError("fit_rollout_value needs at least 2 transitions")
    obs = np.asarray(ro.obs, dtype=np.float32).reshape(len(ro), -1)
    mean, std = obs.mean(0), np.maximum(obs.std(0), 1e-3)  # constant dims stay 0
    x = torch.as_tensor((obs - mean) / std)
    rng = np.random.default_rng(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        net = mlp(obs.shape[1], 1, hidden)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    critic = FittedValue(net, mean, std, 1.0)
    tail = np.zeros(len(ro))
    for _ in range(rounds):
        g = discounted_returns(ro, gamma, tail)
        critic.scale = max(float(np.abs(g).max()), 1e-6)
        y = torch.as_tensor(g / critic.scale, dtype=torch.float32)
        for _ in range(steps):
            idx = torch.as_tensor(rng.integers(len(ro), size=batch_size))
            loss = torch.mean((net(x[idx])[:, 0] - y[idx]) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
        tail = critic.value(ro.next_obs)
    net.eval()
    return critic


def train_sac_expert(
    make_env: Callable[[], Any],
    steps: int,
    seed: int = 0,
    path: str | os.PathLike[str] | None = None,
    net_arch: tuple[int, ...] = (256, 256),
    batch_size: int = 256,
    learning_starts: int = 1000,
    device: str = "cpu",
    progress: bool = False,
) -> Any:
    """Train (or load from ``path`` if it exists) a stable-baselines3 SAC expert.

    The saved zip is written atomically. A real MuJoCo/MetaWorld expert needs about 10^6 steps
    (hours on a CPU; the full figure budgets are for a bigger machine); tests and quick budgets
    use a few hundred or thousand steps.
    """
    from prl.common.sac import FastSAC as SAC  # SB3 SAC, same numbers, faster update
    from prl.sb3_io import load_weights, save_weights

    steps = _positive_int(steps, "steps")
    if path is not None and Path(path).suffix != ".pt":
        raise InvalidInputError(f"SAC expert files end in .pt, got {Path(path).name!r}")
    env = make_env()
    model = SAC(
        "MlpPolicy",
        env,
        policy_kwargs={"net_arch": list(net_arch)},
        batch_size=batch_size,
        learning_starts=min(learning_starts, steps),
        seed=int(seed),
        device=device,
        verbose=0,
    )
    meta = {"net_arch": list(net_arch), "steps": steps, "seed": int(seed)}
    if path is not None and Path(path).is_file():
        stored = load_weights(model, path)  # safe: tensors only, weights_only=True
        if stored.get("net_arch") != meta["net_arch"]:
            raise InvalidInputError(
                f"SAC expert {path} has net_arch {stored.get('net_arch')}, "
                f"expected {meta['net_arch']}"
            )
        return model
    model.learn(total_timesteps=steps, progress_bar=progress)
    if path is not None:
        save_weights(model, path, meta)
    return model


# ---- chunked generation with resume --------------------------------------------------------------
ChunkFn = Callable[[int, np.random.Generator], Segments]


def rollout_chunks(
    make_env: Callable[[], Any],
    policy: Policy,
    episodes_per_chunk: int,
    segment_length: int,
    segments_per_chunk: int,
    action_noise: float = 0.0,
    epsilon: float = 0.0,
    info_keys: Iterable[str] = ("success",),
) -> ChunkFn:
    """Chunk maker: roll out ``episodes_per_chunk`` episodes, cut ``segments_per_chunk`` windows."""
    keys = tuple(info_keys)
    env_box: list[Any] = []

    def chunk(i: int, rng: np.random.Generator) -> Segments:
        if not env_box:
            env_box.append(make_env())
        ro = collect_rollouts(
            env_box[0],
            policy,
            rng,
            n_episodes=episodes_per_chunk,
            action_noise=action_noise,
            epsilon=epsilon,
            info_keys=keys,
        )
        seg = fragment(ro, segment_length, n_segments=segments_per_chunk, rng=rng)
        if "episode" in seg.infos:  # episode ids distinct across chunks (chunk i owns its block)
            infos = dict(seg.infos)
            infos["episode"] = infos["episode"] + i * episodes_per_chunk
            seg = Segments(seg.obs, seg.actions, seg.rewards, seg.next_obs, seg.dones, infos)
        return seg

    return chunk


def tabular_chunks(
    mdp: Any, pi: np.ndarray, segments_per_chunk: int, length: int, start: Any = "mu0"
) -> ChunkFn:
    """Chunk maker: :func:`sample_tabular_segments` of behaviour policy ``pi``."""

    def chunk(i: int, rng: np.random.Generator) -> Segments:
        seg = sample_tabular_segments(mdp, pi, segments_per_chunk, length, rng, start=start)
        ret = seg.returns()
        ep = np.arange(len(seg)) + i * segments_per_chunk
        infos = dict(seg.infos)
        infos["episode"] = np.broadcast_to(ep[:, None], seg.rewards.shape).copy()
        infos["episode_return"] = np.broadcast_to(ret[:, None], seg.rewards.shape).copy()
        return Segments(seg.obs, seg.actions, seg.rewards, seg.next_obs, seg.dones, infos)

    return chunk


def generate_dataset(
    path: str | os.PathLike[str] | None,
    *,
    chunk_fn: ChunkFn,
    n_chunks: int,
    oracle: Oracle,
    mode: str = "sparse",
    n_pairs: int | None = None,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
    progress: bool = True,
) -> PreferenceDataset:
    """Build a preference dataset chunk by chunk; resume from the chunks a killed run finished.

    Chunk i draws from ``default_rng([seed, i])`` (so the result does not depend on where a run
    was interrupted) and is stored as ``<path>.parts/chunk_iiiii.npz`` with its per-segment
    scores. When all chunks exist they are concatenated; "sparse" draws ``n_pairs`` random pairs
    and labels them, "dense" keeps every segment's score (CPL ranks all pairs of a batch by it;
    needs a score oracle). The file is written atomically and the parts are removed. A parts
    directory made with other settings is an error. ``path=None`` builds in memory.
    """
    if mode not in ("sparse", "dense"):
        raise InvalidInputError(f"mode must be 'sparse' or 'dense', got {mode!r}")
    n_chunks = _positive_int(n_chunks, "n_chunks")
    if mode == "sparse":
        n_pairs = _positive_int(n_pairs, "n_pairs")
    score_oracle = _plain_score_oracle(oracle)
    if mode == "dense" and not score_oracle:
        raise InvalidInputError(
            f"dense datasets rank segments by a score: needs a score oracle, got {oracle!r}"
        )
    spec = _json_safe(
        {
            "format_version": FORMAT_VERSION,
            "n_chunks": n_chunks,
            "mode": mode,
            "n_pairs": n_pairs,
            "seed": int(seed),
            "oracle": repr(oracle),
            "meta": meta or {},
        }
    )
    parts: Path | None = None
    if path is not None:
        path = Path(path)
        if path.suffix != ".npz":
            raise InvalidInputError(f"dataset files end in .npz, got {path.name!r}")
        parts = path.with_name(path.name + ".parts")
        parts.mkdir(parents=True, exist_ok=True)
        spec_file = parts / "spec.json"
        if spec_file.exists():
            old = json.loads(spec_file.read_text())
            if old != spec:
                raise InvalidInputError(
                    f"{parts} holds chunks made with other settings; delete it or use them"
                )
        else:
            from prl.utils import atomic_write_json

            atomic_write_json(spec_file, spec)
    t0 = time.perf_counter()
    chunks: list[PreferenceDataset] = []
    bar = _bar(n_chunks, "dataset chunks", progress, "chunks")
    try:
        for i in range(n_chunks):
            cfile = None if parts is None else parts / f"chunk_{i:05d}.npz"
            ds = None
            if cfile is not None and cfile.exists():
                try:
                    ds = PreferenceDataset.load(cfile)
                except InvalidInputError as exc:
                    warnings.warn(f"regenerating damaged chunk {cfile.name}: {exc}", stacklevel=2)
            if ds is None:
                seg = chunk_fn(i, np.random.default_rng([int(seed), i]))
                sc = segment_scores(seg, oracle) if score_oracle else None
                ds = PreferenceDataset(seg, np.zeros((0, 2)), [], [], sc, {"chunk": i})
                if cfile is not None:
                    ds.save(cfile)
            chunks.append(ds)
            bar.update(1)
    finally:
        bar.close()
    segments = Segments.concat([c.segments for c in chunks])
    scores = np.concatenate([c.scores for c in chunks]) if score_oracle else None
    rng = np.random.default_rng([int(seed), n_chunks])
    if mode == "sparse":
        pairs = pairs_sparse(len(segments), n_pairs, rng)
        label, mask = pair_labels(segments, pairs, oracle, rng, scores=scores, progress=progress)
    else:
        pairs, label, mask = np.zeros((0, 2), np.int64), np.zeros(0), np.zeros(0, bool)
    full_meta = {
        **(meta or {}),
        "mode": mode,
        "n_pairs": len(pairs),
        "n_segments": len(segments),
        "segment_length": int(segments.length),
        "seed": int(seed),
        "oracle": repr(oracle),
        "generation_seconds": round(time.perf_counter() - t0, 3),
    }
    ds = PreferenceDataset(segments, pairs, label, mask, scores, full_meta)
    if path is not None:
        ds.save(path)
        shutil.rmtree(parts, ignore_errors=True)
    return ds


def dense_pair_count(n: int) -> int:
    """Number of pairs n(n−1)/2 a dense dataset of n segments compares."""
    return n * (n - 1) // 2
