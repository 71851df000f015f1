"""Deep SPO (Swamy et al., "A Minimaximalist Approach to RLHF") on continuous control.

Self-play: each PPO iteration samples whole trajectories from the current policy, scores each by
its **win rate** against the others of the batch and a queue of recent trajectories (every duel
is one preference query, counted against a hard budget), spreads the score over the
trajectory's steps and optimizes with SB3 PPO (:class:`SPOPPO`, an SB3 subclass: callbacks,
logging, ``save``/``load`` and ``predict`` work as usual). No reward model is learned, so the
preference may be intransitive (majority vote), stochastic (noisy teachers) or non-Markovian
(maximum height, jerk): SPO's target is the minimax (von Neumann) winner of the preference game.

The exact tabular form lives here too: :func:`tree_selfplay_npg` runs SPO with natural policy
gradient (per-node multiplicative weights on Q) on a finite-horizon tree MDP whose preference
is over whole trajectories, with the self-play reward r(τ) = P(τ ≻ π) from
:class:`algos.spo.WinRates`; ``theory/spo.py`` checks it against the LP minimax winner.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from stable_baselines3.common.buffers import RolloutBuffer

from prl.algos.preference_ppo import (
    SMOKE_PENDULUM,
    SMOKE_PENDULUM_KW,
    SMOKE_PPO_TINY,
    PPOLearnerConfig,
    PPOPreferenceLearner,
)
from prl.algos.spo import WinRates
from prl.common.episodes import Episode, concat_segments, episodes_to_segments
from prl.common.ppo import EpisodicPPO
from prl.common.queries import label_pairs, query_pairs
from prl.config import option, require
from prl.errors import InvalidInputError
from prl.run import register_algo
from prl.smoke import Smoke
from prl.types import Segments
from prl.utils import torch_threads

__all__ = [
    "SPO",
    "SPOPPO",
    "SPOConfig",
    "TreeSelfPlay",
    "spread_over_steps",
    "torch_threads",
    "tree_selfplay_npg",
    "tree_trajectory_distribution",
    "win_rates",
]


# =============================================================================================
# win-rate rewards
# =============================================================================================
def win_rates(
    n: int, a: np.ndarray, b: np.ndarray, label: np.ndarray, mask: np.ndarray | None = None
) -> np.ndarray:
    """Win rate of items 0..n−1 over the duels (a_m, b_m) with outcomes label_m = P̂(a_m ≻ b_m).

    Item i's score is (Σ_{a_m = i} label_m + Σ_{b_m = i} (1 − label_m)) / #duels of i, counting
    only unmasked duels; an item with no duel gets ½. Indices ≥ n (queue opponents) are allowed
    and only serve as opponents.
    """
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    lab = np.asarray(label, dtype=np.float64).reshape(-1)
    m = np.ones(a.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(-1)
    if not (a.shape == b.shape == lab.shape == m.shape):
        raise InvalidInputError(
            f"a, b, label and mask must have one entry per duel, got shapes {a.shape}, "
            f"{b.shape}, {lab.shape}, {m.shape}"
        )
    if np.any((lab < 0) | (lab > 1)) or not np.all(np.isfinite(lab)):
        raise InvalidInputError("duel labels must be finite and in [0, 1]")
    if a.size and (min(a.min(), b.min()) < 0):
        raise InvalidInputError("duel indices must be >= 0")
    size = int(max(n, (a.max() + 1) if a.size else 0, (b.max() + 1) if b.size else 0))
    wins = np.bincount(a[m], weights=lab[m], minlength=size)
    wins += np.bincount(b[m], weights=1.0 - lab[m], minlength=size)
    count = np.bincount(a[m], minlength=size) + np.bincount(b[m], minlength=size)
    out = np.full(n, 0.5)
    has = count[:n] > 0
    out[has] = wins[:n][has] / count[:n][has]
    return out


def spread_over_steps(
    scores: np.ndarray, lengths: np.ndarray, horizon: int, mode: str = "uniform"
) -> np.ndarray:
    """Per-step rewards ``[n, horizon]`` whose sum over each trajectory's steps is its score.

    ``uniform``: score / T_i on each of its T_i steps; ``last``: the whole score on its last
    step. Steps past a trajectory's end get 0.
    """
    s = np.asarray(scores, dtype=np.float64).reshape(-1)
    L = np.asarray(lengths, dtype=np.int64).reshape(-1)
    if s.shape != L.shape:
        raise InvalidInputError(f"scores and lengths differ in shape: {s.shape} vs {L.shape}")
    if L.size and (L.min() < 1 or L.max() > horizon):
        raise InvalidInputError(f"lengths must be in [1, {horizon}], got [{L.min()}, {L.max()}]")
    t = np.arange(horizon)[None, :]
    if mode == "uniform":
        return np.where(t < L[:, None], (s / np.maximum(L, 1))[:, None], 0.0)
    if mode == "last":
        return np.where(t == (L[:, None] - 1), s[:, None], 0.0)
    raise InvalidInputError(f"spread mode must be 'uniform' or 'last', got {mode!r}")


# =============================================================================================
# SB3 PPO subclass
# =============================================================================================
class SPOPPO(EpisodicPPO):
    """SB3 PPO optimizing self-play win rates of whole trajectories.

    After each rollout, ``scorer(Segments) -> [n]`` scores the rollout's complete episodes (its
    win rates), the score (minus ½ when ``center``) is spread over each episode's steps
    (:func:`spread_over_steps`), GAE is recomputed, and steps of episodes cut by the end of the
    rollout get zero advantage (advantages are normalized over the scored steps). ``frozen``
    skips the update (no queries left). ``scorer`` is not saved by ``save``: set it again after
    ``load`` to continue training.
    """

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        scorer: Any = None,
        horizon: int | None = None,
        spread: str = "uniform",
        center: bool = True,
        **kwargs: Any,
    ):
        self.scorer = scorer
        self.horizon = horizon
        self.spread = spread
        self.center = center
        self.frozen = False
        self.last_scores = np.zeros(0)
        kwargs.setdefault("normalize_advantage", False)
        super().__init__(policy, env, **kwargs)

    def process_rollout(self, buffer: RolloutBuffer, episodes: list[Episode]) -> None:
        done = [e for e in episodes if e.complete]
        rewards = np.zeros_like(buffer.rewards)
        valid = np.zeros(buffer.rewards.shape, dtype=bool)
        self.last_scores = np.zeros(0)
        if done:
            if self.scorer is None:
                raise RuntimeError("SPOPPO needs a scorer (Segments -> win rates) to train")
            H = int(self.horizon or max(e.length for e in done))
            seg = episodes_to_segments(done, H)
            scores = np.asarray(self.scorer(seg), dtype=np.float64)
            self.last_scores = scores
            per = spread_over_steps(
                scores - (0.5 if self.center else 0.0),
                np.array([e.length for e in done]),
                H,
                self.spread,
            )
            for e, r in zip(done, per):
                rewards[e.start : e.start + e.length, e.env] = r[: e.length]
                valid[e.start : e.start + e.length, e.env] = True
        buffer.rewards[:] = rewards
        self.recompute_advantages(buffer)
        adv = buffer.advantages
        if valid.any():
            v = adv[valid]
            adv[valid] = (v - v.mean()) / (v.std() + 1e-8)
        adv[~valid] = 0.0
        buffer.returns[~valid] = buffer.values[~valid]

    def train(self) -> None:
        """PPO's update, skipped while ``frozen``."""
        if self.frozen:
            return
        super().train()

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "scorer", "last_scores"]


# =============================================================================================
# the learner
# =============================================================================================
@dataclass
class SPOConfig(PPOLearnerConfig):
    """SPO: self-play win rates of whole trajectories optimized with PPO."""

    spread: str = option("uniform", "how a trajectory's score becomes rewards: uniform or last")
    center: bool = option(True, "reward win rate − ½ instead of the win rate")

    def validate(self) -> None:
        super().validate()
        require(
            self.spread in ("uniform", "last"),
            f"spread must be 'uniform' or 'last', got {self.spread!r}",
        )


@register_algo(
    "spo",
    description="deep SPO: self-play win rates of whole trajectories + SB3 PPO (no reward model)",
    envs=("HopperFactored-v5", "HalfCheetahFactored-v5", "PendulumFactored-v1"),
)
class SPO(PPOPreferenceLearner):
    """Deep SPO on a continuous-control env: each PPO iteration's complete trajectories duel each
    other and the queue of the ``pool_size`` most recent ones (``queries_per_iter`` duels drawn
    from all such pairs while ``query_budget`` lasts); a trajectory's reward is its win rate.
    Once the budget is spent the policy is frozen (no preference signal is left)."""

    Config = SPOConfig
    cli_default_steps = 24_000
    ppo_class = SPOPPO
    smoke = Smoke(
        env=SMOKE_PENDULUM,
        steps=40,
        config={**SMOKE_PPO_TINY, "preference": "intransitive"},
        env_kwargs=SMOKE_PENDULUM_KW,
        source="tests/test_spo_deep.py",
        family="spo_deep",
    )

    def _make_model(self) -> EpisodicPPO:
        c = self.config
        return SPOPPO(
            "MlpPolicy",
            self.venv,
            scorer=self.score,
            horizon=self.horizon,
            spread=c.spread,
            center=c.center,
            **self._ppo_kwargs(),
        )

    def score(self, batch: Segments) -> np.ndarray:
        """Win rates of ``batch`` against each other and the queue (queries counted, capped)."""
        n = batch.batch_size
        pool = concat_segments([batch, self.pool])
        n_old = 0 if self.pool is None else self.pool.batch_size
        want = min(self.config.queries_per_iter, self.budget.remaining)
        a, b = query_pairs(n, n_old, want, self.rng)
        pairs = np.stack([a, b], axis=1)
        prefs = label_pairs(pool, pairs, self.source.oracle, self.rng, budget=self.budget)
        if prefs is None:
            w = np.full(n, 0.5)
        else:
            k = len(prefs)
            w = win_rates(n, a[:k], b[:k], prefs.label, prefs.mask)
        self._batch = batch
        self._add_to_pool(batch)
        return w

    def step(self) -> dict[str, float]:
        self._batch = None
        self.model.frozen = self.budget.exhausted
        before = self.budget.used
        self._iterate()
        row = self._row(self._batch)
        scores = self.model.last_scores
        row["queries_iter"] = self.budget.used - before
        row["frozen"] = int(self.model.frozen)
        if scores.size:
            row["win_rate_mean"] = float(scores.mean())
            row["win_rate_std"] = float(scores.std())
        return row


# =============================================================================================
# exact form: SPO with natural policy gradient on a tree MDP
# =============================================================================================
def tree_trajectory_distribution(logits: list[torch.Tensor]) -> torch.Tensor:
    """q(τ) = Π_t π(a_t | a_<t) for softmax policies ``logits[d] [G, A^d, A]`` → ``[G, A^H]``
    (trajectory index = the action sequence read in base A, first action most significant)."""
    q = torch.ones(logits[0].shape[0], 1, dtype=logits[0].dtype, device=logits[0].device)
    for th in logits:
        q = (q.unsqueeze(-1) * torch.softmax(th, -1)).reshape(q.shape[0], -1)
    return q


@dataclass
class TreeSelfPlay:
    """Traces of :func:`tree_selfplay_npg` at iterations ``t [K]``: exploitability of the average
    and of the last trajectory distribution ``[K, G]``, and the final average ``[G, A^H]``."""

    t: np.ndarray
    expl_avg: torch.Tensor
    expl_last: torch.Tensor
    avg: torch.Tensor
    last: torch.Tensor


def tree_selfplay_npg(
    P: Any,
    horizon: int,
    n_actions: int,
    eta: float,
    iters: int,
    record: np.ndarray | None = None,
) -> TreeSelfPlay:
    """SPO with exact natural policy gradient on the depth-``horizon`` action tree (state =
    history, deterministic transitions) of a preference game over its A^H trajectories.

    Each iteration: reward r(τ) = P(τ ≻ q_π) (:class:`algos.spo.WinRates`, the exact win rate
    against the current policy) at the end of τ; Q by backward induction; NPG for the softmax
    tabular policy θ(h, ·) += η Q(h, ·). ``P [G, n, n]`` with n = A^H, batched over G games on
    P's device. Exploitability of the averaged trajectory distribution is Regret(T)/T.
    """
    W = WinRates(P)
    G, n = W.games, W.n
    A, H = int(n_actions), int(horizon)
    if A < 2 or H < 1 or A**H != n:
        raise InvalidInputError(f"need n = A^H trajectories, got n = {n}, A = {A}, H = {H}")
    if not (eta > 0 and math.isfinite(eta)) or iters < 1:
        raise InvalidInputError(f"need eta > 0 and iters >= 1, got eta={eta}, iters={iters}")
    dev = W.device
    with torch_threads(1) if dev.type == "cpu" else contextlib.nullcontext():
        return _tree_npg(W, G, n, A, H, eta, iters, record, dev)


def _tree_npg(
    W: WinRates, G: int, n: int, A: int, H: int, eta: float, iters: int, record: Any, dev: Any
) -> TreeSelfPlay:
    logits = [torch.zeros(G, A**d, A, dtype=torch.float64, device=dev) for d in range(H)]
    rec = np.unique(np.asarray(record if record is not None else [iters], dtype=np.int64))
    rec = rec[(rec >= 1) & (rec <= iters)]
    total = torch.zeros(G, n, dtype=torch.float64, device=dev)
    ea, el, ts = [], [], []
    j = 0
    for t in range(1, iters + 1):
        q = tree_trajectory_distribution(logits)
        total += q
        r = W(q)  # [G, n]: P(τ ≻ π_t)
        if j < rec.size and rec[j] == t:
            avg = total / t
            ea.append(W(avg).amax(-1) - 0.5)
            el.append(r.amax(-1) - 0.5)
            ts.append(t)
            j += 1
        V = r
        for d in range(H - 1, -1, -1):
            Q = V.reshape(G, A**d, A)
            V = (torch.softmax(logits[d], -1) * Q).sum(-1)
            logits[d] = logits[d] + eta * Q
    return TreeSelfPlay(
        t=np.asarray(ts),
        expl_avg=torch.stack(ea),
        expl_last=torch.stack(el),
        avg=total / iters,
        last=q,
    )
