"""Query selection and budget: which pairs to ask, how many, and labelling them with an oracle.

One labelling function, :func:`label_pairs`, serves the offline datasets (:mod:`prl.data`) and the
online, query-budgeted learners (RLHF, deep SPO, HERON): give it ``budget=`` and it asks only the
first pairs the :class:`QueryBudget` grants (None when none is left).
:class:`TrajectoryStore` keeps the labelled trajectory pairs of the online learners.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from scipy.special import expit

from prl.common.episodes import segments_from_state, segments_to_state
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import Oracle, ScoreOracle
from prl.reward_model import PairBatch
from prl.types import Preferences, Segments

__all__ = [
    "QueryBudget",
    "TrajectoryStore",
    "label_pairs",
    "pair_labels",
    "pairs_dense",
    "pairs_sparse",
    "query_pairs",
    "segment_scores",
]


def _check_rng(rng: Any) -> np.random.Generator:
    if not isinstance(rng, np.random.Generator):
        raise InvalidInputError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    return rng


def _positive_int(x: Any, name: str, allow_zero: bool = False) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or x < (0 if allow_zero else 1):
        bound = ">= 0" if allow_zero else ">= 1"
        raise InvalidInputError(f"{name} must be an integer {bound}, got {x!r}")
    return int(x)


def _bar(total: int | None, desc: str, progress: bool, unit: str = "it") -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit, disable=not progress, leave=False)


# ---- the query budget -------------------------------------------------------------------------
class QueryBudget:
    """A cap on preference queries: ``take(n)`` grants at most what is left and counts it."""

    def __init__(self, total: int, used: int = 0):
        if isinstance(total, bool) or not isinstance(total, (int, np.integer)) or total < 1:
            raise ConfigError(f"query budget must be a positive integer, got {total!r}")
        if not (0 <= int(used) <= int(total)):
            raise ConfigError(f"queries used must be in [0, {total}], got {used!r}")
        self.total = int(total)
        self.used = int(used)

    @property
    def remaining(self) -> int:
        """Queries left."""
        return self.total - self.used

    @property
    def exhausted(self) -> bool:
        """No query left."""
        return self.used >= self.total

    def take(self, n: int) -> int:
        """Grant min(n, remaining) queries and count them as used."""
        if int(n) < 0:
            raise InvalidInputError(f"cannot take a negative number of queries, got {n}")
        k = min(int(n), self.remaining)
        self.used += k
        return k


def query_pairs(
    n_new: int, n_old: int, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Index pairs (a, b) into ``concat(new, old)`` with ``a`` new: every unordered pair of new
    items and every (new, old) pair, or ``max_pairs`` of them drawn without replacement."""
    if n_new < 0 or n_old < 0 or max_pairs < 0:
        raise InvalidInputError("query_pairs needs non-negative counts")
    iu, ju = np.triu_indices(n_new, k=1)
    a = np.concatenate([iu, np.repeat(np.arange(n_new), n_old)]).astype(np.int64)
    b = np.concatenate([ju, n_new + np.tile(np.arange(n_old), n_new)]).astype(np.int64)
    if a.size > max_pairs:
        keep = np.sort(rng.choice(a.size, size=max_pairs, replace=False))
        a, b = a[keep], b[keep]
    return a, b


class TrajectoryStore:
    """Labelled pairs over trajectories stored once: minibatches become PairBatch tensors."""

    def __init__(self) -> None:
        self.parts: list[Segments] = []
        self.a = np.zeros(0, dtype=np.int64)
        self.b = np.zeros(0, dtype=np.int64)
        self.label = np.zeros(0)
        self.mask = np.zeros(0, dtype=bool)
        self._cat: Segments | None = None
        self._len: np.ndarray | None = None

    @property
    def n_trajectories(self) -> int:
        """Trajectories stored."""
        return sum(p.batch_size for p in self.parts)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def add(self, prefs: Preferences, pool: Segments, a: np.ndarray, b: np.ndarray) -> None:
        """Store the labels of pairs ``(pool[a], pool[b])``, keeping each trajectory once."""
        used = np.unique(np.concatenate([a, b]))
        base = self.n_trajectories
        remap = np.full(pool.batch_size, -1, dtype=np.int64)
        remap[used] = base + np.arange(used.size)
        self.parts.append(pool[used])
        self._cat = None
        self._len = None
        self.a = np.concatenate([self.a, remap[a]])
        self.b = np.concatenate([self.b, remap[b]])
        self.label = np.concatenate([self.label, prefs.label])
        self.mask = np.concatenate([self.mask, prefs.mask])

    def trajectories(self) -> Segments:
        """All stored trajectories."""
        if self._cat is None:
            self._cat = Segments.concat(self.parts)
        return self._cat

    def lengths(self) -> np.ndarray:
        """Valid steps of each stored trajectory, ``[N]`` (the valid steps are a prefix)."""
        if self._len is None:
            self._len = self.trajectories().infos["valid"].sum(axis=1).astype(np.int64)
        return self._len

    def valid_steps(self, max_steps: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Observations and actions of the valid steps of the stored trajectories, in storage
        order, ``[M, ...]``; only the last ``max_steps`` of them when given (the newest)."""
        seg = self.trajectories()
        v = seg.infos["valid"]
        if max_steps is not None:
            keep = np.cumsum(v.reshape(-1)[::-1])[::-1].reshape(v.shape) <= int(max_steps)
            v = v & keep
        return seg.obs[v], seg.actions[v]

    def clip_starts(self, traj: np.ndarray, clip: int, rng: np.random.Generator) -> np.ndarray:
        """A uniform random start of a ``clip``-step window inside the valid steps of each
        trajectory ``traj`` (0 where the trajectory is not longer than ``clip``)."""
        room = np.maximum(self.lengths()[traj] - int(clip), 0)
        return (rng.random(np.shape(traj)) * (room + 1)).astype(np.int64)

    def batch(
        self,
        idx: np.ndarray,
        device: Any = "cpu",
        clip: int = 0,
        rng: np.random.Generator | None = None,
    ) -> PairBatch:
        """The pairs ``idx`` as a PairBatch (``idx`` may be ``[E, n]`` for an ensemble).

        ``clip > 0`` (with ``rng``): each trajectory of a pair enters as a random window of
        ``clip`` consecutive valid steps (the whole of it when shorter, padding masked), with
        the pair's label: a cost ∝ ``clip``, not ∝ the episode length. 0: whole trajectories.
        """
        seg = self.trajectories()
        ia, ib = self.a[idx], self.b[idx]
        valid = seg.infos["valid"]

        def t(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)

        if 0 < clip < seg.length:
            if rng is None:
                raise InvalidInputError("clipped pair batches need an rng for the windows")
            steps = np.arange(int(clip))
            ta = self.clip_starts(ia, clip, rng)[..., None] + steps
            tb = self.clip_starts(ib, clip, rng)[..., None] + steps
            ia, ib = ia[..., None], ib[..., None]
            return PairBatch(
                t(seg.obs[ia, ta]),
                t(seg.actions[ia, ta]),
                t(seg.obs[ib, tb]),
                t(seg.actions[ib, tb]),
                t(self.label[idx]),
                t(self.mask[idx], torch.bool),
                t(valid[ia, ta], torch.bool),
                t(valid[ib, tb], torch.bool),
            )
        return PairBatch(
            t(seg.obs[ia]),
            t(seg.actions[ia]),
            t(seg.obs[ib]),
            t(seg.actions[ib]),
            t(self.label[idx]),
            t(self.mask[idx], torch.bool),
            t(valid[ia], torch.bool),
            t(valid[ib], torch.bool),
        )

    def state_dict(self) -> dict[str, Any]:
        """Tensors only."""
        return {
            "trajectories": segments_to_state(self.trajectories() if self.parts else None),
            "a": torch.as_tensor(self.a),
            "b": torch.as_tensor(self.b),
            "label": torch.as_tensor(self.label),
            "mask": torch.as_tensor(self.mask),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        seg = segments_from_state(state["trajectories"])
        self.parts = [] if seg is None else [seg]
        self._cat = None
        self._len = None
        self.a = state["a"].numpy().astype(np.int64)
        self.b = state["b"].numpy().astype(np.int64)
        self.label = state["label"].numpy().astype(np.float64)
        self.mask = state["mask"].numpy().astype(bool)


# ---- pairs and labels ----------------------------------------------------------------------------
def pairs_sparse(n_items: int, n_pairs: int, rng: np.random.Generator) -> np.ndarray:
    """``n_pairs`` random pairs ``[P, 2]`` of distinct items among ``n_items``."""
    rng = _check_rng(rng)
    n_items = _positive_int(n_items, "n_items")
    n_pairs = _positive_int(n_pairs, "n_pairs")
    if n_items < 2:
        raise InvalidInputError(f"pairs need at least 2 items, got {n_items}")
    i = rng.integers(0, n_items, size=n_pairs)
    j = (i + rng.integers(1, n_items, size=n_pairs)) % n_items
    return np.stack([i, j], axis=1).astype(np.int64)


def pairs_dense(n_items: int) -> np.ndarray:
    """All ``n(n−1)/2`` pairs ``(i, j)``, i < j, as ``[P, 2]``."""
    n_items = _positive_int(n_items, "n_items")
    i, j = np.triu_indices(n_items, k=1)
    return np.stack([i, j], axis=1).astype(np.int64)


def _plain_score_oracle(oracle: Oracle) -> bool:
    """A ScoreOracle whose label() is exactly ``rng.random(B) < σ(β Δscore)`` (no wrappers)."""
    cls = type(oracle)
    return (
        isinstance(oracle, ScoreOracle)
        and cls.score is not ScoreOracle.score
        and cls.label is Oracle.label
        and cls.prob is ScoreOracle.prob
        and cls.margin is ScoreOracle.margin
        and cls.mask is Oracle.mask
        and cls.indifferent is Oracle.indifferent
    )


def segment_scores(
    segments: Segments, oracle: ScoreOracle, chunk: int = 4096, progress: bool = False
) -> np.ndarray:
    """The oracle's per-segment score (e.g. −regret), evaluated in chunks, shape ``[N]``."""
    if not isinstance(oracle, ScoreOracle):
        raise InvalidInputError(f"segment scores need a ScoreOracle, got {type(oracle).__name__}")
    out = np.empty(len(segments))
    bar = _bar(len(segments), "scoring segments", progress, "segments")
    try:
        for lo in range(0, len(segments), chunk):
            hi = min(len(segments), lo + chunk)
            out[lo:hi] = oracle.score(segments[np.arange(lo, hi)])
            bar.update(hi - lo)
    finally:
        bar.close()
    return out


def pair_labels(
    segments: Segments,
    pairs: np.ndarray,
    oracle: Oracle,
    rng: np.random.Generator,
    *,
    scores: np.ndarray | None = None,
    chunk: int = 65536,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Labels and mask of ``pairs [P, 2]`` of ``segments`` (a ≻ b means row 0 ≻ row 1).

    For a plain score oracle the per-segment ``scores`` (computed if not given) are compared
    without materializing the pairs; the labels equal ``oracle.label`` on the same pairs with the
    same generator state. Other oracles (B-Pref wrappers, intransitive ones) label all pairs in
    one call (wrappers draw several streams, so chunking would change their labels).
    """
    rng = _check_rng(rng)
    pairs = np.asarray(pairs)
    if pairs.ndim != 2 or pairs.shape[1] != 2 or not np.issubdtype(pairs.dtype, np.integer):
        raise InvalidInputError(f"pairs must be an integer array [P, 2], got {pairs.shape}")
    if pairs.size and (pairs.min() < 0 or pairs.max() >= len(segments)):
        raise InvalidInputError(f"pair indices must be in [0, {len(segments) - 1}]")
    P = len(pairs)
    if not _plain_score_oracle(oracle):
        prefs = oracle.label(segments[pairs[:, 0]], segments[pairs[:, 1]], rng)
        return prefs.label, prefs.mask
    sc = segment_scores(segments, oracle) if scores is None else np.asarray(scores, float)
    if sc.shape != (len(segments),):
        raise InvalidInputError(f"scores must have shape ({len(segments)},), got {sc.shape}")
    labels = np.empty(P)
    beta = oracle.beta
    bar = _bar(P, "labelling", progress, "pairs")
    for lo in range(0, P, chunk):
        hi = min(P, lo + chunk)
        m = sc[pairs[lo:hi, 0]] - sc[pairs[lo:hi, 1]]
        if np.isinf(beta):
            p = np.where(m > 0, 1.0, np.where(m < 0, 0.0, 0.5))
        else:
            p = expit(beta * m)
        labels[lo:hi] = (rng.random(hi - lo) < p).astype(np.float64)
        bar.update(hi - lo)
    bar.close()
    return labels, np.ones(P, dtype=bool)


def label_pairs(
    segments: Segments,
    pairs: np.ndarray,
    oracle: Oracle,
    rng: np.random.Generator,
    *,
    budget: QueryBudget | None = None,
    scores: np.ndarray | None = None,
    chunk: int = 65536,
    progress: bool = False,
) -> Preferences | None:
    """:func:`pair_labels` returned as :class:`Preferences` (the pairs' segments materialized).

    With a ``budget`` only the first ``budget.take(len(pairs))`` pairs are asked (and counted);
    None when the budget grants none.
    """
    pairs = np.asarray(pairs)
    if budget is not None:
        k = budget.take(len(pairs))
        if k == 0:
            return None
        pairs = pairs[:k]
    label, mask = pair_labels(
        segments, pairs, oracle, rng, scores=scores, chunk=chunk, progress=progress
    )
    pairs = np.asarray(pairs)
    return Preferences(segments[pairs[:, 0]], segments[pairs[:, 1]], label, mask)
