"""Reward-model RLHF on control tasks, and the preference-learning plumbing shared with deep SPO
and HERON.

RLHF (the baseline of Swamy et al.'s SPO comparison): every PPO iteration the learner queries a
preference oracle on pairs of whole trajectories of the current policy (and a pool of recent
ones), fits a Bradley–Terry reward model r̂(s, a) (:mod:`prl.reward_model`) to every label so
far, and optimizes r̂ with SB3 PPO; a query budget caps the labels, after which PPO goes on with
the last reward model.

Reusable pieces (HERON builds on them):

- :class:`LearnedRewardWrapper` — a gymnasium wrapper whose reward is r̂(s, a) (the env's own
  reward moves to ``info["true_reward"]``);
- :class:`QueryBudget` and :func:`query_pairs` / :func:`label_pairs` — the query-budgeted
  labelling loop over a pool of trajectories;
- :class:`TrajectoryStore` — labelled trajectory pairs stored once, minibatches as
  :class:`prl.reward_model.PairBatch`;
- :class:`TrajectoryRecorder` (VecEnv wrapper recording whole episodes with their reward factors)
  and :func:`episodes_to_segments` (padded :class:`prl.types.Segments` with ``infos["valid"]``);
- :class:`EpisodicPPO` — SB3 PPO whose rollouts start from seeded resets, record whole episodes
  and pass them to :meth:`EpisodicPPO.process_rollout` before the update;
- :func:`preference_source` — the preference kinds of the SPO comparison (transitive,
  stochastic, intransitive, non-Markovian) over the factored tasks of :mod:`envs.factored`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.utils import obs_as_tensor
from stable_baselines3.common.vec_env import DummyVecEnv, VecEnv, VecEnvWrapper, VecMonitor

from prl.config import option, require
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import BradleyTerry, MajorityVote, Oracle, ScoreOracle, bpref_compose
from prl.reward_model import PairBatch, RewardModel, RewardModelTrainer
from prl.run import Learner, register_algo
from prl.types import Preferences, Segments
from prl.utils import rng_state, set_rng_state, torch_generator, torch_threads

__all__ = [
    "PREFERENCE_KINDS",
    "RLHF",
    "RLHFPPO",
    "Episode",
    "EpisodicPPO",
    "LearnedRewardWrapper",
    "OnFactors",
    "PPOLearnerConfig",
    "PPOPreferenceLearner",
    "PreferenceSource",
    "QueryBudget",
    "RLHFConfig",
    "ScaledReward",
    "TrajectoryRecorder",
    "TrajectoryScore",
    "TrajectoryStore",
    "episodes_to_segments",
    "jerk",
    "label_pairs",
    "max_height",
    "query_pairs",
    "random_policy_trajectories",
    "rollout_episode",
    "segments_from_state",
    "segments_to_state",
    "torch_threads",
]

PREFERENCE_KINDS = ("transitive", "stochastic", "intransitive", "nonmarkov", "jerk")


# =============================================================================================
# episodes → segments
# =============================================================================================
@dataclass
class Episode:
    """One recorded episode of one env of a VecEnv (steps ``start .. start+T-1`` of a rollout).

    ``rewards`` is the env's own (true) reward, ``env_rewards`` what the learner saw (a learned
    reward under :class:`LearnedRewardWrapper`), ``factors [T,K]`` the reward factors when the
    env reports them, ``height [T]`` the body height after each step (NaN when not reported).
    """

    env: int
    start: int
    obs: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    env_rewards: np.ndarray
    factors: np.ndarray | None
    height: np.ndarray
    terminated: bool
    complete: bool

    @property
    def length(self) -> int:
        """Number of steps T."""
        return int(self.rewards.shape[0])


def episodes_to_segments(episodes: Sequence[Episode], horizon: int) -> Segments:
    """Episodes padded to ``horizon`` steps as Segments (true rewards ``[B,T]``).

    ``infos``: ``valid [B,T]`` (real steps), ``height [B,T]`` (padded with the last height),
    ``factors [B,T,K]`` (zeros after the end) when every episode has factors. Padded observations
    repeat the last one; padded actions and rewards are 0.
    """
    if not episodes:
        raise InvalidInputError("no complete episode to turn into segments")
    H = int(horizon)
    B = len(episodes)
    e0 = episodes[0]
    obs = np.zeros((B, H, *e0.obs.shape[1:]), dtype=np.float32)
    act = np.zeros((B, H, *e0.actions.shape[1:]), dtype=np.float32)
    rew = np.zeros((B, H))
    height = np.zeros((B, H))
    valid = np.zeros((B, H), dtype=bool)
    has_f = all(e.factors is not None for e in episodes)
    fac = np.zeros((B, H, e0.factors.shape[1])) if has_f and e0.factors is not None else None
    for i, e in enumerate(episodes):
        T = e.length
        if T > H or T == 0:
            raise InvalidInputError(f"episode of {T} steps does not fit the horizon {H}")
        obs[i, :T] = e.obs
        obs[i, T:] = e.obs[-1]
        act[i, :T] = e.actions
        rew[i, :T] = e.rewards
        h = np.nan_to_num(e.height, nan=0.0)
        height[i, :T] = h
        height[i, T:] = h[-1]
        valid[i, :T] = True
        if fac is not None:
            fac[i, :T] = e.factors
    infos: dict[str, np.ndarray] = {"valid": valid, "height": height}
    if fac is not None:
        infos["factors"] = fac
    return Segments(obs=obs, actions=act, rewards=rew, infos=infos)


def segments_to_state(seg: Segments | None) -> dict[str, Any]:
    """Segments as a dict of tensors (for ``weights_only`` checkpoints)."""
    if seg is None:
        return {}
    return {
        "obs": torch.as_tensor(seg.obs),
        "actions": torch.as_tensor(seg.actions),
        "rewards": torch.as_tensor(seg.rewards),
        "infos": {k: torch.as_tensor(v) for k, v in seg.infos.items()},
    }


def segments_from_state(state: dict[str, Any]) -> Segments | None:
    """Inverse of :func:`segments_to_state`."""
    if not state:
        return None
    return Segments(
        obs=state["obs"].numpy(),
        actions=state["actions"].numpy(),
        rewards=state["rewards"].numpy(),
        infos={k: v.numpy() for k, v in state["infos"].items()},
    )


def _concat(parts: Sequence[Segments | None]) -> Segments | None:
    keep = [p for p in parts if p is not None and p.batch_size > 0]
    return Segments.concat(keep) if keep else None


def _tail(seg: Segments | None, n: int) -> Segments | None:
    if seg is None or n <= 0:
        return None
    return seg if seg.batch_size <= n else seg[seg.batch_size - n :]


class TrajectoryRecorder(VecEnvWrapper):
    """Records whole episodes of every env of a VecEnv (obs, executed actions, rewards, factors).

    The rollout position ``t`` counts ``step_wait`` calls since the last ``reset``; an episode's
    ``start`` is the position of its first step, so its steps sit at rollout-buffer rows
    ``start .. start+T-1`` of column ``env``. Completed episodes accumulate in ``episodes``;
    ``partial()`` returns the unfinished ones.
    """

    def __init__(self, venv: VecEnv):
        super().__init__(venv)
        self.episodes: list[Episode] = []
        self.t = 0
        self._actions: np.ndarray | None = None
        self._obs: Any = None
        self._open: list[dict[str, list[Any]]] = []
        self._starts: list[int] = []

    def _new(self, i: int) -> None:
        self._open[i] = {k: [] for k in ("obs", "act", "rew", "env_rew", "fac", "h")}
        self._starts[i] = self.t

    def reset(self) -> Any:
        """Reset every env and forget the episodes recorded so far."""
        obs = self.venv.reset()
        self.episodes = []
        self.t = 0
        self._obs = obs
        self._open = [{} for _ in range(self.num_envs)]
        self._starts = [0] * self.num_envs
        for i in range(self.num_envs):
            self._new(i)
        return obs

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = np.asarray(actions)
        self.venv.step_async(actions)

    def _close(self, i: int, terminated: bool, complete: bool) -> Episode:
        d = self._open[i]
        fac = d["fac"]
        return Episode(
            env=i,
            start=self._starts[i],
            obs=np.asarray(d["obs"]),
            actions=np.asarray(d["act"], dtype=np.float32),
            rewards=np.asarray(d["rew"], dtype=np.float64),
            env_rewards=np.asarray(d["env_rew"], dtype=np.float64),
            factors=None if any(f is None for f in fac) else np.asarray(fac, dtype=np.float64),
            height=np.asarray(d["h"], dtype=np.float64),
            terminated=terminated,
            complete=complete,
        )

    def step_wait(self) -> Any:
        obs, rews, dones, infos = self.venv.step_wait()
        if self._obs is None or self._actions is None:
            raise RuntimeError("TrajectoryRecorder: step before reset")
        for i in range(self.num_envs):
            d = self._open[i]
            info = infos[i]
            d["obs"].append(np.array(self._obs[i], copy=True))
            d["act"].append(np.array(self._actions[i], copy=True))
            d["env_rew"].append(float(rews[i]))
            d["rew"].append(float(info.get("true_reward", rews[i])))
            f = info.get("reward_factors")
            d["fac"].append(None if f is None else np.asarray(f, dtype=np.float64))
            d["h"].append(float(info.get("height", np.nan)))
        self.t += 1
        for i in range(self.num_envs):
            if dones[i]:
                trunc = bool(infos[i].get("TimeLimit.truncated", False))
                self.episodes.append(self._close(i, terminated=not trunc, complete=True))
                self._new(i)
        self._obs = obs
        return obs, rews, dones, infos

    def partial(self) -> list[Episode]:
        """The episodes still running (not complete), one per env that has taken a step."""
        return [
            self._close(i, terminated=False, complete=False)
            for i in range(self.num_envs)
            if self._open[i].get("obs")
        ]


def rollout_episode(
    env: gymnasium.Env, act: Callable[[Any], Any], seed: int, max_steps: int | None = None
) -> Episode:
    """One episode of ``act(obs) -> action`` in ``env`` (reset with ``seed``), recorded whole."""
    obs, _ = env.reset(seed=int(seed))
    rec: dict[str, list[Any]] = {k: [] for k in ("o", "a", "r", "f", "h")}
    space = env.action_space
    term = done = False
    while not done:
        a = np.asarray(act(obs))
        if isinstance(space, gymnasium.spaces.Box):
            a = np.clip(a, space.low, space.high).astype(space.dtype)
        nxt, r, term, trunc, info = env.step(a)
        rec["o"].append(np.asarray(obs))
        rec["a"].append(np.asarray(a, dtype=np.float32))
        rec["r"].append(float(r))
        f = info.get("reward_factors")
        rec["f"].append(None if f is None else np.asarray(f, dtype=np.float64))
        rec["h"].append(float(info.get("height", np.nan)))
        obs = nxt
        done = bool(term or trunc) or (max_steps is not None and len(rec["r"]) >= max_steps)
    fac = None if any(f is None for f in rec["f"]) else np.asarray(rec["f"])
    r = np.asarray(rec["r"])
    return Episode(
        0, 0, np.asarray(rec["o"]), np.asarray(rec["a"]), r, r, fac, np.asarray(rec["h"]),
        bool(term), True,
    )  # fmt: skip


def random_policy_trajectories(
    env_name: str, n: int, rng: np.random.Generator, **env_kwargs: Any
) -> Segments:
    """``n`` episodes of diverse random policies: trajectory i plays a_t = μ_i + σ_i·ε_t (clipped),
    μ_i ~ U(−½, ½)·scale, σ_i ~ U(0.1, 1)·scale per action dimension, ε_t ~ N(0, 1)."""
    from prl import envs

    env = envs.make(env_name, **env_kwargs)
    try:
        space = env.action_space
        if not isinstance(space, gymnasium.spaces.Box):
            raise InvalidInputError("random_policy_trajectories needs a Box action space")
        scale = np.where(np.isfinite(space.high), (space.high - space.low) / 2, 1.0)
        eps = []
        for _ in range(int(n)):
            mu = rng.uniform(-0.5, 0.5, size=space.shape) * scale
            sd = rng.uniform(0.1, 1.0, size=space.shape) * scale
            noise = np.random.default_rng(int(rng.integers(2**31)))
            eps.append(
                rollout_episode(
                    env,
                    lambda _o: mu + sd * noise.standard_normal(space.shape),  # noqa: B023
                    int(rng.integers(2**31)),
                )
            )
        return episodes_to_segments(eps, _horizon(env))
    finally:
        env.close()


def find_recorder(env: VecEnv) -> TrajectoryRecorder:
    """The :class:`TrajectoryRecorder` in a chain of VecEnv wrappers."""
    e: Any = env
    while e is not None:
        if isinstance(e, TrajectoryRecorder):
            return e
        e = getattr(e, "venv", None)
    raise InvalidInputError("EpisodicPPO needs its VecEnv wrapped in a TrajectoryRecorder")


# =============================================================================================
# preference sources
# =============================================================================================
def max_height(segments: Segments) -> np.ndarray:
    """Maximum body height reached over the valid steps, [B] (non-Markovian)."""
    h = segments.infos.get("height")
    if h is None:
        raise InvalidInputError("max_height needs infos['height'] (use a factored env)")
    v = segments.infos.get("valid", np.ones(h.shape, dtype=bool))
    return np.where(v, h, -np.inf).max(axis=1)


def jerk(segments: Segments) -> np.ndarray:
    """Σ_t ‖a_{t+1} − a_t‖² over consecutive valid steps, [B] (torque changes ∝ jerk)."""
    a = segments.actions.reshape(segments.batch_size, segments.length, -1).astype(np.float64)
    v = np.asarray(segments.infos.get("valid", np.ones(a.shape[:2], dtype=bool)), dtype=bool)
    both = v[:, 1:] & v[:, :-1]
    return np.where(both, (np.diff(a, axis=1) ** 2).sum(-1), 0.0).sum(axis=1)


class TrajectoryScore(ScoreOracle):
    """Bradley–Terry on a whole-trajectory score ``score_fn(Segments) -> [B]``:
    P(a ≻ b) = σ(β(score(a) − score(b))); β = inf gives deterministic labels (ties ½)."""

    def __init__(self, score_fn: Callable[[Segments], np.ndarray], beta: float = 1.0):
        super().__init__(beta)
        if not callable(score_fn):
            raise InvalidInputError("score_fn must be callable Segments -> [B] scores")
        self.score_fn = score_fn

    def score(self, segments: Segments) -> np.ndarray:
        """The trajectory score, shape [B]."""
        if not isinstance(segments, Segments):
            raise InvalidInputError(
                f"TrajectoryScore needs Segments, got {type(segments).__name__}"
            )
        s = np.asarray(self.score_fn(segments), dtype=np.float64)
        if s.shape != (segments.batch_size,) or not np.all(np.isfinite(s)):
            raise InvalidInputError(
                f"score_fn must return {segments.batch_size} finite scores, got shape {s.shape}"
            )
        return s

    def indifferent(self, a: Any, b: Any) -> np.ndarray:
        """Exact ties of a deterministic (β = inf) score get label ½."""
        if np.isinf(self.beta):
            return self.margin(a, b) == 0
        return super().indifferent(a, b)

    def __repr__(self) -> str:
        return f"TrajectoryScore({getattr(self.score_fn, '__name__', 'score')}, beta={self.beta})"


@dataclass
class PreferenceSource:
    """A preference oracle over whole trajectories plus how to measure a policy under it.

    ``score`` maps Segments to the quantity the preference ranks by (None when the relation is
    intransitive and has no such score); ``raters`` are the majority vote's reward functions.
    """

    kind: str
    oracle: Oracle
    score: Callable[[Segments], np.ndarray] | None
    raters: dict[str, Callable[[Segments], np.ndarray]]

    def metrics(self, seg: Segments) -> dict[str, float]:
        """Mean true return, score, max height and rater scores of a batch of trajectories."""
        out = {"return": float(seg.rewards.sum(axis=1).mean())}
        if self.score is not None:
            out["pref_score"] = float(np.mean(self.score(seg)))
        if "height" in seg.infos:
            out["max_height"] = float(max_height(seg).mean())
        for name, fn in self.raters.items():
            out[f"rater_{name}"] = float(np.mean(fn(seg)))
        return out


class OnFactors(Oracle):
    """Asks ``inner`` about the trajectories' reward factors: rewards ``[B,T,K]`` taken from
    ``infos["factors"]`` (for factor-reading oracles such as HERON's
    :class:`prl.oracles.Hierarchical` or :meth:`prl.oracles.MajorityVote.from_weights`)."""

    def __init__(self, inner: Oracle):
        if not isinstance(inner, Oracle):
            raise InvalidInputError(f"inner must be an Oracle, got {type(inner).__name__}")
        self.inner = inner

    @staticmethod
    def factored(seg: Any) -> Segments:
        """The segments with ``rewards = infos["factors"]``."""
        if not isinstance(seg, Segments) or "factors" not in seg.infos:
            raise InvalidInputError("OnFactors needs Segments with infos['factors'] [B,T,K]")
        return seg.with_rewards(seg.infos["factors"])

    def prob(self, a: Any, b: Any) -> np.ndarray:
        return self.inner.prob(self.factored(a), self.factored(b))

    def mask(self, a: Any, b: Any) -> np.ndarray:
        return self.inner.mask(self.factored(a), self.factored(b))

    def indifferent(self, a: Any, b: Any) -> np.ndarray:
        return self.inner.indifferent(self.factored(a), self.factored(b))

    def label(self, a: Any, b: Any, rng: np.random.Generator) -> Preferences:
        """The inner labels, returned on the original segments."""
        p = self.inner.label(self.factored(a), self.factored(b), rng)
        return Preferences(a, b, p.label, p.mask)

    def __repr__(self) -> str:
        return f"OnFactors({self.inner!r})"


def _true_return(seg: Segments) -> np.ndarray:
    return seg.rewards.sum(axis=1)


def preference_source(
    kind: str,
    env: str,
    *,
    beta: float = 1.0,
    noise_beta: float = 0.1,
    noise_eps: float = 0.1,
    height_beta: float = math.inf,
    jerk_weight: float = 0.1,
) -> PreferenceSource:
    """The preference over whole trajectories of ``env`` of one of :data:`PREFERENCE_KINDS`:

    - ``transitive``: Bradley–Terry σ(β ΔR) on the true return;
    - ``stochastic``: B-Pref's noisy teacher, BT(noise_beta) labels flipped w.p. noise_eps;
    - ``intransitive``: majority vote of the task's ≥ 3 raters built from its reward factors
      (:func:`envs.factored.task_raters`);
    - ``nonmarkov``: BT(height_beta) on the maximum height reached (no per-step reward of (s, a)
      expresses a maximum over the trajectory);
    - ``jerk``: BT(β) on return − jerk_weight·Σ‖a_{t+1} − a_t‖².
    """
    from prl.envs.factored import FACTORED_TASKS, task_raters

    raters = task_raters(env) if env in FACTORED_TASKS else {}
    if kind == "transitive":
        return PreferenceSource(kind, BradleyTerry(beta), _true_return, raters)
    if kind == "stochastic":
        teacher = bpref_compose(beta=noise_beta, eps=noise_eps)
        return PreferenceSource(kind, teacher, _true_return, raters)
    if kind in ("intransitive", "nonmarkov") and env not in FACTORED_TASKS:
        raise ConfigError(
            f"the {kind} preference needs a factored env ({', '.join(sorted(FACTORED_TASKS))}), "
            f"got {env!r}"
        )
    if kind == "intransitive":
        return PreferenceSource(kind, MajorityVote(list(raters.values())), None, raters)
    if kind == "nonmarkov":
        return PreferenceSource(kind, TrajectoryScore(max_height, height_beta), max_height, raters)
    if kind == "jerk":
        w = float(jerk_weight)

        def smooth_return(seg: Segments) -> np.ndarray:
            return _true_return(seg) - w * jerk(seg)

        smooth_return.__name__ = "smooth_return"
        return PreferenceSource(kind, TrajectoryScore(smooth_return, beta), smooth_return, raters)
    raise ConfigError(f"preference must be one of {', '.join(PREFERENCE_KINDS)}, got {kind!r}")


# =============================================================================================
# query budget and labelling
# =============================================================================================
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


def label_pairs(
    oracle: Oracle,
    pool: Segments,
    a: np.ndarray,
    b: np.ndarray,
    budget: QueryBudget,
    rng: np.random.Generator,
) -> Preferences | None:
    """Ask ``oracle`` about pairs ``(pool[a], pool[b])`` within ``budget`` (the first ones
    granted are asked); returns the labels (skipped pairs masked) or None when none is left."""
    k = budget.take(len(a))
    if k == 0:
        return None
    a, b = np.asarray(a)[:k], np.asarray(b)[:k]
    return oracle.label(pool[a], pool[b], rng)


class TrajectoryStore:
    """Labelled pairs over trajectories stored once: minibatches become PairBatch tensors."""

    def __init__(self) -> None:
        self.parts: list[Segments] = []
        self.a = np.zeros(0, dtype=np.int64)
        self.b = np.zeros(0, dtype=np.int64)
        self.label = np.zeros(0)
        self.mask = np.zeros(0, dtype=bool)
        self._cat: Segments | None = None

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
        self.a = np.concatenate([self.a, remap[a]])
        self.b = np.concatenate([self.b, remap[b]])
        self.label = np.concatenate([self.label, prefs.label])
        self.mask = np.concatenate([self.mask, prefs.mask])

    def trajectories(self) -> Segments:
        """All stored trajectories."""
        if self._cat is None:
            self._cat = Segments.concat(self.parts)
        return self._cat

    def batch(self, idx: np.ndarray, device: Any = "cpu") -> PairBatch:
        """The pairs ``idx`` as a PairBatch (``idx`` may be ``[E, n]`` for an ensemble)."""
        seg = self.trajectories()
        ia, ib = self.a[idx], self.b[idx]
        valid = seg.infos["valid"]

        def t(x: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)

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
        self.a = state["a"].numpy().astype(np.int64)
        self.b = state["b"].numpy().astype(np.int64)
        self.label = state["label"].numpy().astype(np.float64)
        self.mask = state["mask"].numpy().astype(bool)


# =============================================================================================
# learned reward in the env
# =============================================================================================
class ScaledReward:
    """r(s, a) = scale · r̂(s, a) from a RewardModel (numpy in, numpy out, no gradient)."""

    def __init__(self, model: RewardModel, scale: float = 1.0):
        self.model = model
        self.scale = float(scale)

    def __call__(self, obs: np.ndarray, actions: np.ndarray) -> np.ndarray:
        return self.scale * self.model.reward_numpy(obs, actions)


class LearnedRewardWrapper(gymnasium.Wrapper):
    """Replaces the env's reward by a learned r̂(s_t, a_t) (evaluated on the pre-step observation
    and the executed action); the env's own reward goes to ``info["true_reward"]``.

    ``reward_model`` is a :class:`prl.reward_model.RewardModel` or any callable
    ``(obs [N, ...], actions [N, ...]) -> [N]`` (e.g. :class:`ScaledReward`). Updating the model
    in place changes the reward from the next step on.

    ``deferred=True`` skips the per-step evaluation and returns reward 0: for learners such as
    :class:`RLHFPPO` that label the whole rollout buffer with r̂ in one batched call after
    collection.
    """

    def __init__(self, env: gymnasium.Env, reward_model: Any, *, deferred: bool = False):
        super().__init__(env)
        self.deferred = bool(deferred)
        if isinstance(reward_model, RewardModel):
            reward_model = ScaledReward(reward_model)
        if not callable(reward_model):
            raise InvalidInputError(
                f"reward_model must be a RewardModel or a callable, got {type(reward_model)}"
            )
        self.reward_fn = reward_model
        self._obs: Any = None

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        obs, info = self.env.reset(**kwargs)
        self._obs = obs
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        if self._obs is None:
            raise RuntimeError("LearnedRewardWrapper: step before reset")
        if self.deferred:
            r = 0.0
        else:
            act = action
            space = self.env.action_space
            if isinstance(space, gymnasium.spaces.Box):
                act = np.clip(np.asarray(action, dtype=np.float32), space.low, space.high)
            r = float(self.reward_fn(np.asarray(self._obs)[None], np.asarray(act)[None])[0])
        obs, true_r, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["true_reward"] = float(true_r)
        self._obs = obs
        return obs, r, terminated, truncated, info


# =============================================================================================
# SB3 PPO with whole-episode rollouts
# =============================================================================================
class EpisodicPPO(PPO):
    """SB3 PPO whose every rollout starts from fresh resets seeded by ``reset_seed`` (then by its
    own generator) and records whole episodes; :meth:`process_rollout` sees them before the
    update. The VecEnv must be wrapped in a :class:`TrajectoryRecorder`.

    Everything else — callbacks, logging, ``save``/``load``, ``predict`` — is SB3's.
    """

    def __init__(self, policy: Any, env: Any, *, reset_seed: int = 0, **kwargs: Any):
        self.reset_rng = np.random.default_rng(int(reset_seed))
        self.last_episodes: list[Episode] = []
        super().__init__(policy, env, **kwargs)

    def collect_rollouts(
        self,
        env: VecEnv,
        callback: Any,
        rollout_buffer: RolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """Seeded reset, SB3's collection, then :meth:`process_rollout` on the episodes."""
        rec = find_recorder(env)
        env.seed(int(self.reset_rng.integers(0, 2**31 - 1 - env.num_envs)))
        self._last_obs = env.reset()
        self._last_episode_starts = np.ones((env.num_envs,), dtype=bool)
        if not super().collect_rollouts(env, callback, rollout_buffer, n_rollout_steps):
            return False
        self.last_episodes = list(rec.episodes)
        self.process_rollout(rollout_buffer, self.last_episodes)
        return True

    def process_rollout(self, buffer: RolloutBuffer, episodes: list[Episode]) -> None:
        """Hook between collection and update (default: nothing)."""

    def recompute_advantages(self, buffer: RolloutBuffer) -> None:
        """GAE again after the buffer's rewards changed (bootstrapping from the last obs)."""
        with torch.no_grad():
            last = self.policy.predict_values(obs_as_tensor(self._last_obs, self.device))
        buffer.compute_returns_and_advantage(last_values=last, dones=self._last_episode_starts)

    def executed_actions(self, buffer: RolloutBuffer) -> np.ndarray:
        """The buffer's actions as executed (clipped to a Box action space)."""
        a = buffer.actions
        if isinstance(self.action_space, gymnasium.spaces.Box):
            a = np.clip(a, self.action_space.low, self.action_space.high)
        return a

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "last_episodes"]


class RLHFPPO(EpisodicPPO):
    """EpisodicPPO for RLHF: after each rollout ``reward_updater(episodes)`` may refit r̂
    (labels, reward model); the buffer's rewards are then relabelled with the new r̂, keeping
    SB3's time-limit bootstrap terms, so the update always uses the freshest reward model."""

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        reward_fn: Any = None,
        deferred_reward: bool = False,
        **kwargs: Any,
    ):
        self.reward_fn = reward_fn
        self.deferred_reward = bool(deferred_reward)
        self.reward_updater: Callable[[list[Episode]], None] | None = None
        super().__init__(policy, env, **kwargs)

    def _learned(self, buffer: RolloutBuffer) -> np.ndarray:
        obs = buffer.observations
        act = self.executed_actions(buffer)
        r = self.reward_fn(obs.reshape(-1, *obs.shape[2:]), act.reshape(-1, *act.shape[2:]))
        return np.asarray(r, dtype=np.float32).reshape(buffer.rewards.shape)

    def process_rollout(self, buffer: RolloutBuffer, episodes: list[Episode]) -> None:
        if self.reward_fn is None:
            return
        # what the envs returned: 0 when deferred, else r̂ of the reward model before the refit
        seen = 0.0 if self.deferred_reward else self._learned(buffer)
        if self.reward_updater is not None:
            self.reward_updater(episodes)
        buffer.rewards += self._learned(buffer) - seen  # keeps SB3's time-limit bootstrap terms
        self.recompute_advantages(buffer)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "reward_fn", "reward_updater"]


# =============================================================================================
# the learners
# =============================================================================================
@dataclass
class PPOLearnerConfig:
    """Options shared by the trajectory-preference learners built on SB3 PPO (SPO, RLHF)."""

    preference: str = option(
        "transitive", "preference source: transitive, stochastic, intransitive, nonmarkov, jerk"
    )
    beta: float = option(1.0, "Bradley–Terry inverse temperature (transitive, jerk)")
    noise_beta: float = option(0.1, "stochastic teacher: BT inverse temperature")
    noise_eps: float = option(0.1, "stochastic teacher: label flip probability")
    height_beta: float = option(math.inf, "nonmarkov: BT inverse temperature on max height")
    jerk_weight: float = option(0.1, "jerk preference: weight of Σ‖Δa‖² against the return")
    query_budget: int = option(10_000, "total preference queries allowed (hard cap)")
    queries_per_iter: int = option(64, "preference queries per PPO iteration (while budget lasts)")
    n_envs: int = option(4, "parallel environments (DummyVecEnv)")
    n_steps: int = option(0, "env steps per env per rollout (0 = the env's horizon)")
    batch_size: int = option(0, "PPO minibatch size (0 = an eighth of a rollout)")
    n_epochs: int = option(10, "PPO epochs per rollout")
    lr: float = option(3e-4, "PPO Adam learning rate")
    gamma: float = option(0.99, "discount")
    gae_lambda: float = option(0.95, "GAE λ")
    clip_range: float = option(0.2, "PPO clip range")
    ent_coef: float = option(0.0, "entropy bonus")
    hidden: list[int] = option([64, 64], "policy and value MLP widths")  # noqa: RUF009
    pool_size: int = option(16, "recent trajectories kept as opponents / query partners")
    eval_episodes: int = option(5, "deterministic episodes in the final evaluation")
    torch_threads: int = option(1, "intra-op torch threads on CPU (0 = leave torch's setting)")

    def validate(self) -> None:
        require(
            self.preference in PREFERENCE_KINDS,
            f"preference must be one of {', '.join(PREFERENCE_KINDS)}, got {self.preference!r}",
        )
        require(self.query_budget >= 1, f"query_budget must be >= 1, got {self.query_budget}")
        require(
            self.queries_per_iter >= 1,
            f"queries_per_iter must be >= 1, got {self.queries_per_iter}",
        )
        require(
            self.queries_per_iter <= self.query_budget,
            f"queries_per_iter ({self.queries_per_iter}) exceeds query_budget "
            f"({self.query_budget})",
        )
        require(self.n_envs >= 1, f"n_envs must be >= 1, got {self.n_envs}")
        require(self.n_steps >= 0, f"n_steps must be >= 0 (0 = horizon), got {self.n_steps}")
        require(
            self.batch_size == 0 or self.batch_size >= 2,
            f"batch_size must be 0 (auto) or >= 2, got {self.batch_size}",
        )
        require(self.n_epochs >= 1, f"n_epochs must be >= 1, got {self.n_epochs}")
        require(self.lr > 0, f"lr must be > 0, got {self.lr}")
        require(0 < self.gamma <= 1, f"gamma must be in (0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"gae_lambda must be in [0, 1], got {self.gae_lambda}")
        require(self.clip_range > 0, f"clip_range must be > 0, got {self.clip_range}")
        require(self.pool_size >= 0, f"pool_size must be >= 0, got {self.pool_size}")
        require(self.eval_episodes >= 0, f"eval_episodes must be >= 0, got {self.eval_episodes}")
        require(self.torch_threads >= 0, f"torch_threads must be >= 0, got {self.torch_threads}")
        require(all(h >= 1 for h in self.hidden), f"hidden widths must be >= 1: {self.hidden}")
        require(self.beta >= 0 and self.noise_beta >= 0, "beta and noise_beta must be >= 0")
        require(0 <= self.noise_eps <= 0.5, f"noise_eps must be in [0, 0.5], got {self.noise_eps}")


def _horizon(env: gymnasium.Env) -> int:
    try:
        H = env.get_wrapper_attr("_max_episode_steps")
    except AttributeError:
        H = None
    if not isinstance(H, (int, np.integer)) or H < 1:
        raise ConfigError("trajectory preferences need an env with a time limit (TimeLimit)")
    return int(H)


def _np_global_state() -> dict[str, Any]:
    name, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (SB3 uses it)
    return {
        "keys": torch.as_tensor(np.asarray(keys, dtype=np.int64)),
        "pos": int(pos),
        "has_gauss": int(has_gauss),
        "cached": float(cached),
        "name": str(name),
    }


def _set_np_global_state(s: dict[str, Any]) -> None:
    keys = s["keys"].numpy().astype(np.uint32)
    np.random.set_state((s["name"], keys, s["pos"], s["has_gauss"], s["cached"]))  # noqa: NPY002


class PPOPreferenceLearner(Learner):
    """Shared machinery of SPO and RLHF: env, preference source, SB3 model, checkpoints, eval.

    Step unit: environment steps; one ``step()`` is one PPO iteration (``n_envs × n_steps``).
    """

    default_steps = 200_000
    step_unit = "env steps"
    ppo_class: type[EpisodicPPO] = EpisodicPPO

    def __init__(
        self, config: PPOLearnerConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        from prl import envs

        probe = envs.make(env, **env_kwargs)
        try:
            if not isinstance(probe.action_space, gymnasium.spaces.Box):
                raise ConfigError(
                    f"{type(self).__name__} needs a continuous (Box) action space, env {env!r} "
                    f"has {type(probe.action_space).__name__}"
                )
            self.horizon = _horizon(probe)
            self.observation_space = probe.observation_space
            self.action_space = probe.action_space
        finally:
            probe.close()
        self.source = self.make_source(config, env)
        self.n_steps = config.n_steps or self.horizon
        if self.n_steps < self.horizon:
            raise ConfigError(
                f"preferences compare whole episodes: n_steps ({self.n_steps}) must be >= the "
                f"env's horizon ({self.horizon}), or 0 for the horizon"
            )
        self.rollout_size = self.n_steps * config.n_envs
        self.budget = QueryBudget(config.query_budget)
        self.pool: Segments | None = None
        self.iterations = 0
        self.callback: Any = None  # an SB3 callback passed to every learn() call
        self.venv = self._make_venv()
        self.model = self._make_model()

    # ---- construction ------------------------------------------------------------------------
    def make_source(self, config: Any, env: str) -> PreferenceSource:
        """The preference over trajectories (override to plug in another oracle, e.g. HERON's)."""
        return preference_source(
            config.preference,
            env,
            beta=config.beta,
            noise_beta=config.noise_beta,
            noise_eps=config.noise_eps,
            height_beta=config.height_beta,
            jerk_weight=config.jerk_weight,
        )

    def _wrap_env(self, env: gymnasium.Env) -> gymnasium.Env:
        return env

    def _make_venv(self) -> VecEnv:
        from prl import envs

        name, kw = self.env_name, dict(self.env_kwargs)
        fns = [lambda: self._wrap_env(envs.make(name, **kw)) for _ in range(self.config.n_envs)]
        return TrajectoryRecorder(VecMonitor(DummyVecEnv(fns)))

    def _ppo_kwargs(self) -> dict[str, Any]:
        c = self.config
        return {
            "n_steps": self.n_steps,
            "batch_size": c.batch_size or max(2, self.rollout_size // 8),
            "n_epochs": c.n_epochs,
            "learning_rate": c.lr,
            "gamma": c.gamma,
            "gae_lambda": c.gae_lambda,
            "clip_range": c.clip_range,
            "ent_coef": c.ent_coef,
            "policy_kwargs": {"net_arch": {"pi": list(c.hidden), "vf": list(c.hidden)}},
            "seed": self.seed,
            "device": self.device,
            "verbose": 0,
            "reset_seed": int(self.rng.integers(2**31 - 1)),
        }

    def _make_model(self) -> EpisodicPPO:
        return self.ppo_class("MlpPolicy", self.venv, **self._ppo_kwargs())

    # ---- training -----------------------------------------------------------------------------
    def _threads(self) -> contextlib.AbstractContextManager[None]:
        n = int(self.config.torch_threads)
        if n > 0 and self.device.type == "cpu":
            return torch_threads(n)
        return contextlib.nullcontext()

    def _iterate(self) -> list[Episode]:
        with self._threads():
            self.model.learn(
                total_timesteps=self.rollout_size,
                callback=self.callback,
                reset_num_timesteps=False,
                log_interval=1,
            )
        self.iterations += 1
        self.steps_done = int(self.model.num_timesteps)
        return self.model.last_episodes

    def _complete(self, episodes: list[Episode]) -> Segments | None:
        done = [e for e in episodes if e.complete]
        return episodes_to_segments(done, self.horizon) if done else None

    def _add_to_pool(self, seg: Segments | None) -> None:
        self.pool = _tail(_concat([self.pool, seg]), self.config.pool_size)

    def _row(self, seg: Segments | None) -> dict[str, float]:
        row: dict[str, float] = {
            "iteration": self.iterations,
            "queries": self.budget.used,
            "episodes": 0 if seg is None else seg.batch_size,
        }
        if seg is not None:
            row.update(self.source.metrics(seg))
        return row

    # ---- evaluation ---------------------------------------------------------------------------
    def sample_trajectories(
        self, n: int, seed: int, deterministic: bool = True, max_steps: int | None = None
    ) -> Segments:
        """``n`` whole episodes of the current policy in a fresh env (resets seeded by ``seed``)."""
        from prl import envs

        env = envs.make(self.env_name, **self.env_kwargs)
        try:
            eps = [
                rollout_episode(
                    env,
                    lambda o: self.model.predict(o, deterministic=deterministic)[0],
                    int(seed) + k,
                    max_steps,
                )
                for k in range(int(n))
            ]
        finally:
            env.close()
        return episodes_to_segments(eps, self.horizon)

    def evaluate(self) -> dict[str, float]:
        """Deterministic-policy metrics over ``eval_episodes`` fixed-seed episodes."""
        n = int(self.config.eval_episodes)
        if n == 0:
            return {}
        with self._threads():
            seg = self.sample_trajectories(n, seed=10_000 + self.seed, deterministic=True)
        return {f"eval_{k}": v for k, v in self.source.metrics(seg).items()}

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        m = self.model
        state = {
            **super().state_dict(),
            "policy": m.policy.state_dict(),
            "optimizer": m.policy.optimizer.state_dict(),
            "num_timesteps": int(m.num_timesteps),
            "n_updates": int(m._n_updates),
            "episode_num": int(m._episode_num),
            "reset_rng": json.dumps(rng_state(m.reset_rng)),
            "torch_rng": torch.get_rng_state(),
            "np_global_rng": _np_global_state(),
            "queries_used": self.budget.used,
            "iterations": self.iterations,
            "pool": segments_to_state(self.pool),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        m = self.model
        m.policy.load_state_dict(state["policy"])
        m.policy.optimizer.load_state_dict(state["optimizer"])
        m.num_timesteps = int(state["num_timesteps"])
        m._n_updates = int(state["n_updates"])
        m._episode_num = int(state["episode_num"])
        set_rng_state(m.reset_rng, json.loads(state["reset_rng"]))
        torch.set_rng_state(state["torch_rng"])
        _set_np_global_state(state["np_global_rng"])
        if "cuda_rng" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["cuda_rng"], self.device)
        self.budget = QueryBudget(self.config.query_budget, int(state["queries_used"]))
        self.iterations = int(state["iterations"])
        self.pool = segments_from_state(state["pool"])

    def close(self) -> None:
        self.venv.close()


@dataclass
class RLHFConfig(PPOLearnerConfig):
    """RLHF: a Bradley–Terry reward model on trajectory preferences, optimized with PPO."""

    rm_hidden: list[int] = option([64, 64], "reward model MLP widths")  # noqa: RUF009
    rm_ensemble: int = option(1, "reward model ensemble size")
    rm_lr: float = option(3e-4, "reward model Adam learning rate")
    rm_batch: int = option(32, "labelled pairs per reward-model step")
    rm_steps: int = option(50, "reward-model Adam steps after each round of queries")

    def validate(self) -> None:
        super().validate()
        require(self.rm_ensemble >= 1, f"rm_ensemble must be >= 1, got {self.rm_ensemble}")
        require(self.rm_lr > 0, f"rm_lr must be > 0, got {self.rm_lr}")
        require(self.rm_batch >= 1, f"rm_batch must be >= 1, got {self.rm_batch}")
        require(self.rm_steps >= 0, f"rm_steps must be >= 0, got {self.rm_steps}")
        require(
            all(h >= 1 for h in self.rm_hidden), f"rm_hidden widths must be >= 1: {self.rm_hidden}"
        )


@register_algo(
    "rlhf",
    description="reward-model RLHF: BT reward model on trajectory preferences + SB3 PPO",
    envs=("HopperFactored-v5", "HalfCheetahFactored-v5", "PendulumFactored-v1"),
)
class RLHF(PPOPreferenceLearner):
    """Online RLHF: each PPO iteration queries ``queries_per_iter`` trajectory pairs (new
    trajectories against each other and the pool) until ``query_budget`` is spent, refits the
    BT reward model on every label so far, and PPO optimizes the (rescaled) learned reward."""

    Config = RLHFConfig
    cli_default_steps = 16_000
    ppo_class = RLHFPPO
    #: r̂ for the whole rollout in one batched call after collection (the envs return 0), instead
    #: of one call per env step; the same rewards up to float32 rounding (benchmarks/bench_heron.py)
    deferred_reward = True

    def __init__(
        self, config: RLHFConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        # the reward model exists before the envs that use it are built
        self._gen = torch_generator(seed, "cpu")  # initial weights; moved to the device after
        self._rm_init(config, env, env_kwargs)
        super().__init__(config, env, env_kwargs, seed, device)
        self.model.reward_fn = self.reward
        self.model.reward_updater = self._update_reward
        self.last_fit: dict[str, float] = {}

    def _rm_init(self, config: RLHFConfig, env: str, env_kwargs: dict[str, Any]) -> None:
        from prl import envs

        probe = envs.make(env, **env_kwargs)
        obs_space, act_space = probe.observation_space, probe.action_space
        probe.close()
        self.reward_model = RewardModel(
            obs_space,
            act_space,
            hidden=tuple(config.rm_hidden),
            ensemble_size=config.rm_ensemble,
            generator=self._gen,
        )
        self.trainer = RewardModelTrainer(
            self.reward_model, lr=config.rm_lr, batch_size=config.rm_batch
        )
        self.reward = ScaledReward(self.reward_model, 1.0)
        self.store = TrajectoryStore()

    def _make_model(self) -> EpisodicPPO:
        self.reward_model.to(self.device)
        return self.ppo_class(
            "MlpPolicy",
            self.venv,
            reward_fn=self.reward,
            deferred_reward=self.deferred_reward,
            **self._ppo_kwargs(),
        )

    def _wrap_env(self, env: gymnasium.Env) -> gymnasium.Env:
        return LearnedRewardWrapper(env, self.reward, deferred=self.deferred_reward)

    def _update_reward(self, episodes: list[Episode]) -> None:
        """Queries on the new complete trajectories, reward-model fit, reward rescaling."""
        new = self._complete(episodes)
        self._new = new
        self.last_fit = {}
        if new is None or self.budget.exhausted:
            self._add_to_pool(new)
            return
        pool = _concat([new, self.pool])
        n_old = 0 if self.pool is None else self.pool.batch_size
        a, b = query_pairs(new.batch_size, n_old, self.config.queries_per_iter, self.rng)
        prefs = label_pairs(self.source.oracle, pool, a, b, self.budget, self.rng)
        self._add_to_pool(new)
        if prefs is None:
            return
        k = len(prefs)
        self.store.add(prefs, pool, a[:k], b[:k])
        self._fit()

    def _fit(self) -> None:
        c = self.config
        n = len(self.store)
        if n == 0 or c.rm_steps == 0:
            return
        rows = []
        E = self.reward_model.ensemble_size
        for _ in range(c.rm_steps):
            shape = (E, c.rm_batch) if E > 1 else (c.rm_batch,)
            idx = self.rng.integers(0, n, size=shape)
            rows.append(self.trainer.train_step(self.store.batch(idx, self.device)))
        # rescale r̂ to unit per-step spread on the stored trajectories (BT fixes no scale)
        seg = self.store.trajectories()
        r = self.reward_model.reward_numpy(seg.obs, seg.actions)[seg.infos["valid"]]
        sd = float(np.std(r))
        self.reward.scale = 1.0 / sd if sd > 1e-8 else 1.0
        self.last_fit = {
            "reward_loss": float(np.mean([r_["reward_loss"] for r_ in rows[-10:]])),
            "reward_accuracy": float(np.nanmean([r_["reward_accuracy"] for r_ in rows[-10:]])),
        }

    def step(self) -> dict[str, float]:
        self._new = None
        self._iterate()
        row = self._row(self._new)
        row.update(self.last_fit)
        row["labels"] = len(self.store)
        return row

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "reward_trainer": self.trainer.state_dict(),
            "reward_scale": self.reward.scale,
            "store": self.store.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.trainer.load_state_dict(state["reward_trainer"])
        self.reward.scale = float(state["reward_scale"])
        self.store.load_state_dict(state["store"])
