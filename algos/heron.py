"""HERON (Bukharin et al.): reinforcement learning from a ranking of reward factors.

Instead of weighting reward factors by hand, the designer *ranks* them by importance. Two whole
trajectories are compared by a decision tree induced by the ranking
(:class:`prl.oracles.Hierarchical`): per trajectory, f_k = sign_k · Σ_t r_t[k] (costs have sign
−1); at level ℓ with factor k, a wins if f_a[k] > f_b[k] + σ_ℓ·std_k (std_k over the queried
batch), b wins symmetrically, otherwise the next level decides; pairs tied at every level are
dropped. A Bradley–Terry reward model r̂(s, a) is fitted to these labels, refreshed after every
PPO iteration while the query budget lasts, and SB3 PPO optimizes r̂ (rescaled to unit per-step
spread). The comparison is per trajectory and per level — not per state, and every level uses
its own margin (the authors' robot code compares states and reuses σ₁ on levels 3–4).

Registered learners:

- ``heron``: the method (:class:`Heron`, built on :class:`algos.rlhf.RLHF`: same query loop,
  reward model, relabelled PPO buffer; only the preference source differs);
- ``ppo_true_reward``: the hand-weighted baseline, PPO on the env's own reward (the linear
  combination of the factors) with the same PPO settings (:class:`PPOTrueReward`).

The other baseline, RLHF with Bradley–Terry labels on the summed (true) reward, is ``rlhf``
with ``preference=transitive``.

Helpers: :func:`heron_oracle` (the tree of a factored task from factor names),
:func:`deciding_level` (which level decided each pair), :func:`tree_agreement` (how often a
reward function orders trajectory pairs as the tree does).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import gymnasium
import numpy as np
from stable_baselines3.common.buffers import RolloutBuffer

from prl.algos.preference_ppo import (
    SMOKE_PENDULUM,
    SMOKE_PENDULUM_KW,
    SMOKE_PPO_TINY,
    OnFactors,
    PPOLearnerConfig,
    PPOPreferenceLearner,
    PreferenceSource,
)
from prl.algos.rlhf import RLHF, SMOKE_RM_TINY, RLHFConfig
from prl.common.episodes import Episode, random_policy_trajectories
from prl.common.ppo import EpisodicPPO
from prl.common.queries import query_pairs
from prl.common.vec import env_apply, find_wrapper
from prl.config import option, require
from prl.envs.factored import FACTORED_TASKS, factor_spec, task_raters
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import Hierarchical
from prl.run import register_algo
from prl.smoke import Smoke
from prl.types import Segments

__all__ = [
    "DEFAULT_MARGIN",
    "DEFAULT_RANKINGS",
    "Heron",
    "HeronConfig",
    "PPOTrueReward",
    "ScaledEnvReward",
    "TrueRewardConfig",
    "TrueRewardPPO",
    "deciding_level",
    "heron_oracle",
    "heron_source",
    "pair_indices",
    "trajectory_returns",
    "tree_agreement",
    "tree_levels",
]

#: Importance ranking of each factored task (most important first): what a designer who wants
#: the task's behaviour would say. Pendulum: be upright, then be still, then save torque.
DEFAULT_RANKINGS: dict[str, tuple[str, ...]] = {
    "PendulumFactored-v1": ("angle_sq", "speed_sq", "torque_sq"),
    "MountainCarContinuousFactored-v0": ("goal", "ctrl_sq"),
    "HalfCheetahFactored-v5": ("forward", "ctrl_cost"),
    "HopperFactored-v5": ("forward", "healthy", "ctrl_cost"),
    "AntFactored-v5": ("forward", "healthy", "ctrl_cost", "contact_cost"),
}
#: σ of every level when none is given: a level decides when the gap exceeds 0.1 batch stds.
DEFAULT_MARGIN = 0.1


# =============================================================================================
# the tree of a task
# =============================================================================================
def heron_oracle(
    env: str,
    order: Sequence[str | int] | None = None,
    margins: Sequence[float] | float | None = None,
) -> Hierarchical:
    """The decision tree of factored task ``env``: factors ranked by ``order`` (names or indices,
    most important first; default :data:`DEFAULT_RANKINGS`), σ per level ``margins`` (one value
    for every level; default :data:`DEFAULT_MARGIN`), signs from the task (costs −1)."""
    if env not in FACTORED_TASKS:
        raise ConfigError(
            f"HERON needs a factored task ({', '.join(sorted(FACTORED_TASKS))}), got {env!r}"
        )
    spec = factor_spec(env)
    names = list(spec.names)
    order = list(DEFAULT_RANKINGS.get(env, names) if order is None or len(order) == 0 else order)
    idx: list[int] = []
    for o in order:
        if isinstance(o, str) and o.isdigit():  # indices given as text (command line)
            o = int(o)
        if isinstance(o, (int, np.integer)) and not isinstance(o, bool):
            if not 0 <= int(o) < len(names):
                raise ConfigError(f"factor index {o} out of range for {env} (K = {len(names)})")
            idx.append(int(o))
        elif isinstance(o, str) and o in names:
            idx.append(names.index(o))
        else:
            raise ConfigError(f"unknown factor {o!r} for {env} (factors: {', '.join(names)})")
    if len(set(idx)) != len(idx):
        raise ConfigError(f"the ranking names a factor twice: {order!r}")
    if margins is None or (not np.isscalar(margins) and len(margins) == 0):
        m = np.full(len(idx), DEFAULT_MARGIN)
    else:
        m = np.asarray(margins, dtype=np.float64).reshape(-1)
        if m.size == 1:
            m = np.full(len(idx), float(m[0]))
        if m.size != len(idx):
            raise ConfigError(
                f"margins must hold one value or one per level ({len(idx)}), got {m.size}"
            )
    if not np.all(np.isfinite(m)) or np.any(m < 0):
        raise ConfigError(f"margins must be finite and >= 0, got {m.tolist()}")
    return Hierarchical(order=idx, margins=m, signs=spec.signs.tolist())


def heron_source(
    env: str,
    order: Sequence[str | int] | None = None,
    margins: Sequence[float] | float | None = None,
) -> PreferenceSource:
    """HERON's preference over trajectories of ``env``: the tree read from ``infos["factors"]``,
    with the task's raters for the metrics (true return, per-factor scores)."""
    tree = heron_oracle(env, order, margins)
    return PreferenceSource("heron", OnFactors(tree), None, task_raters(env))


def tree_levels(
    tree: Hierarchical, returns: np.ndarray, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """The tree's decision (±1, 0 for all-tie) and deciding level (−1 for all-tie) of the pairs
    ``(a[i], b[i])`` from per-trajectory factor returns ``returns [N, K]``
    (``tree.factor_returns`` of the N trajectories), both [P]: each trajectory is summed once,
    not once per pair. The same numbers as ``tree.decide(seg[a], seg[b])``, std_k taken over
    the pairs' trajectories with multiplicity as there."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    fa, fb = returns[a], returns[b]
    std = tree.scale if tree.scale is not None else np.concatenate([fa, fb], axis=0).std(axis=0)
    out = np.zeros(a.shape[0], dtype=np.int64)
    level = np.full(a.shape[0], -1, dtype=np.int64)
    undecided = np.ones(a.shape[0], dtype=bool)
    for ell, k in enumerate(tree.order):
        thr = tree.margins[ell] * std[k]
        a_wins = undecided & (fa[:, k] > fb[:, k] + thr)
        b_wins = undecided & (fb[:, k] > fa[:, k] + thr)
        out[a_wins], out[b_wins] = 1, -1
        level[a_wins | b_wins] = ell
        undecided &= ~(a_wins | b_wins)
    return out, level


def deciding_level(tree: Hierarchical, a: Segments, b: Segments) -> np.ndarray:
    """The level (0 = most important) whose margin decided each pair, −1 where every level ties,
    shape [B]. ``a``/``b`` carry factored rewards [B,T,K] (see :meth:`OnFactors.factored`)."""
    B = a.batch_size
    if b.batch_size != B:
        raise InvalidInputError(f"a and b must hold as many pairs, got {B} and {b.batch_size}")
    f = np.concatenate([tree.factor_returns(a), tree.factor_returns(b)], axis=0)
    return tree_levels(tree, f, np.arange(B), B + np.arange(B))[1]


def pair_indices(n_new: int, n_old: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Every unordered pair among the first ``n_new`` items and every (new, old) pair."""
    return query_pairs(n_new, n_old, np.iinfo(np.int64).max, np.random.default_rng(0))


def trajectory_returns(
    reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray], seg: Segments
) -> np.ndarray:
    """Σ_t r(s_t, a_t) over the valid steps of each trajectory, [B] (r evaluated on the valid
    steps only, in one batched call)."""
    B, T = seg.batch_size, seg.length
    valid = np.asarray(seg.infos.get("valid", np.ones((B, T), dtype=bool)), dtype=bool)
    r = np.zeros((B, T))
    if valid.any():
        r[valid] = np.asarray(reward_fn(seg.obs[valid], seg.actions[valid]), dtype=np.float64)
    return r.sum(axis=1)


def tree_agreement(
    reward_fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    tree: Hierarchical,
    seg: Segments,
    a: np.ndarray,
    b: np.ndarray,
    decision: np.ndarray | None = None,
) -> tuple[float, int]:
    """Fraction of the pairs ``(seg[a], seg[b])`` the tree decides on which Σ_t r(s_t, a_t) orders
    them the same way (NaN when none is decided), and the number decided. ``seg`` carries the
    factors in ``infos["factors"]``; ``decision`` (the tree's ±1/0) is computed when None.
    Both the factor returns and Σ_t r̂ are computed once per trajectory, not once per pair."""
    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    if decision is None:
        f = tree.factor_returns(OnFactors.factored(seg))
        decision = tree_levels(tree, f, a, b)[0]
    decision = np.asarray(decision)
    if decision.shape != a.shape:
        raise InvalidInputError(f"decision must have shape {a.shape}, got {decision.shape}")
    keep = decision != 0
    if not keep.any():
        return float("nan"), 0
    R = trajectory_returns(reward_fn, seg)
    agree = np.sign(R[a] - R[b]) == decision
    return float(agree[keep].mean()), int(keep.sum())


# =============================================================================================
# HERON
# =============================================================================================
@dataclass
class HeronConfig(RLHFConfig):
    """HERON: a BT reward model on labels from a ranked tree over reward factors, + PPO."""

    order: list[str] = option(  # noqa: RUF009
        [], "factor names (or indices), most important first ([] = the task's default ranking)"
    )
    margins: list[float] = option(  # noqa: RUF009
        [], "σ per level: a level decides when the gap > σ·(batch std of that factor) "
        "([] = 0.1 on every level; one value = every level)"
    )  # fmt: skip
    heldout_episodes: int = option(
        0, "random-policy trajectories held out to measure r̂/tree agreement (0 = off)"
    )

    def validate(self) -> None:
        super().validate()
        require(
            self.preference == "transitive",
            f"heron labels pairs with its factor tree; 'preference' does not apply "
            f"(got {self.preference!r})",
        )
        require(all(m >= 0 for m in self.margins), f"margins must be >= 0, got {self.margins}")
        require(
            self.heldout_episodes == 0 or self.heldout_episodes >= 2,
            f"heldout_episodes must be 0 or >= 2, got {self.heldout_episodes}",
        )


def _check_factored(name: str, env: str) -> None:
    if env not in FACTORED_TASKS:
        raise ConfigError(
            f"{name} needs a factored task ({', '.join(sorted(FACTORED_TASKS))}), got {env!r}"
        )


@register_algo(
    "heron",
    description="HERON: BT reward model on a ranked decision tree over reward factors + SB3 PPO",
    envs=tuple(FACTORED_TASKS),
)
class Heron(RLHF):
    """HERON on a factored task: every PPO iteration, trajectory pairs (new ones against each
    other and the pool) are labelled by the task's tree (:func:`heron_oracle`; all-tie pairs
    masked), the BT reward model is refitted on every label so far, and PPO optimizes it.

    Extra metrics per row: ``tree_agreement`` — the reward model *before* this round's fit,
    ordering all (new, new) and (new, pool) pairs the tree decides (prequential: pairs it has
    not seen); ``tie_fraction`` and ``level_<factor>`` — the fraction of those pairs tied at
    every level / decided at each level; ``heldout_agreement`` — after the fit, on all pairs of
    ``heldout_episodes`` fixed random-policy trajectories.
    """

    Config = HeronConfig
    smoke = Smoke(
        env=SMOKE_PENDULUM,
        steps=60,
        config={**SMOKE_PPO_TINY, **SMOKE_RM_TINY, "heldout_episodes": 3, "margins": [0.2]},
        env_kwargs=SMOKE_PENDULUM_KW,
        source="tests/test_heron.py::test_heron_determinism_and_exact_resume",
        family="heron",
    )
    cli_default_steps = 24_000

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        _check_factored("heron", env)

    def __init__(
        self, config: HeronConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        _check_factored("heron", env)
        super().__init__(config, env, env_kwargs, seed, device)
        self.last_tree: dict[str, float] = {}
        self.heldout: Segments | None = None
        n = int(config.heldout_episodes)
        if n >= 2:
            # its own generator: the held-out set does not shift the training randomness
            rng = np.random.default_rng([self.seed, 0x4E50])
            self.heldout = random_policy_trajectories(env, n, rng, **self.env_kwargs)
            self._ha, self._hb = pair_indices(n)
            f = self.tree.factor_returns(OnFactors.factored(self.heldout))
            self._hdec = tree_levels(self.tree, f, self._ha, self._hb)[0]

    def make_source(self, config: Any, env: str) -> PreferenceSource:
        """The tree of ``config.order`` / ``config.margins`` over the task's factors."""
        src = heron_source(env, config.order or None, config.margins or None)
        self.tree: Hierarchical = src.oracle.inner  # type: ignore[attr-defined]
        return src

    def _tree_metrics(self, new: Segments | None) -> dict[str, float]:
        if new is None:
            return {}
        seg = new if self.pool is None else Segments.concat([new, self.pool])
        n_old = 0 if self.pool is None else self.pool.batch_size
        a, b = pair_indices(new.batch_size, n_old)
        if a.size == 0:
            return {}
        f = self.tree.factor_returns(OnFactors.factored(seg))
        dec, lvl = tree_levels(self.tree, f, a, b)
        agree, _ = tree_agreement(self.reward, self.tree, seg, a, b, dec)
        names = factor_spec(self.env_name).names
        out = {"tree_agreement": agree, "tie_fraction": float(np.mean(lvl < 0))}
        for ell, k in enumerate(self.tree.order):
            out[f"level_{names[k]}"] = float(np.mean(lvl == ell))
        return out

    def _update_reward(self, episodes: list[Episode]) -> None:
        """Prequential tree agreement on the new trajectories, then RLHF's query-and-refit."""
        self.last_tree = self._tree_metrics(self._complete(episodes))
        super()._update_reward(episodes)

    def heldout_agreement(self) -> float:
        """Agreement of the current r̂ with the tree on the held-out pairs it decides (NaN if
        there is no held-out set or no decided pair)."""
        if self.heldout is None:
            return float("nan")
        return tree_agreement(self.reward, self.tree, self.heldout, self._ha, self._hb, self._hdec)[
            0
        ]

    def step(self) -> dict[str, float]:
        self.last_tree = {}
        row = super().step()
        row.update(self.last_tree)
        if self.heldout is not None:
            row["heldout_agreement"] = self.heldout_agreement()
        return row


# =============================================================================================
# the hand-weighted baseline: PPO on the env's reward
# =============================================================================================
class _Scale:
    """A mutable reward scale shared by the env wrappers and the PPO model."""

    def __init__(self, scale: float = 1.0):
        self.scale = float(scale)


class ScaledEnvReward(gymnasium.Wrapper):
    """PPO sees ``scale · r``; the env's own reward goes to ``info["true_reward"]`` (so the
    trajectory recorder and the metrics keep the true return)."""

    def __init__(self, env: gymnasium.Env, scale: Any):
        super().__init__(env)
        self.holder = scale if isinstance(scale, _Scale) else _Scale(float(scale))

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, r, terminated, truncated, info = self.env.step(action)
        info = dict(info)
        info["true_reward"] = float(r)
        return obs, float(r) * self.holder.scale, terminated, truncated, info


def _set_env_scale(env: gymnasium.Env, scale: float) -> None:
    find_wrapper(env, ScaledEnvReward).holder.scale = float(scale)


class TrueRewardPPO(EpisodicPPO):
    """EpisodicPPO on the env's reward; with ``auto_scale`` the first rollout fixes the scale to
    1/std of its per-step rewards (the unit spread RLHF and HERON give their learned rewards):
    that rollout's buffer is rescaled in place and GAE recomputed."""

    def __init__(
        self,
        policy: Any,
        env: Any,
        *,
        holder: _Scale | None = None,
        auto_scale: bool = False,
        **kwargs: Any,
    ) -> None:
        self.holder = holder if holder is not None else _Scale(1.0)  # None: SB3's load
        self.scale_pending = bool(auto_scale)
        super().__init__(policy, env, **kwargs)

    def process_rollout(self, buffer: RolloutBuffer, episodes: list[Episode]) -> None:
        if not self.scale_pending:
            return
        r = np.concatenate([e.rewards for e in episodes]) if episodes else np.zeros(0)
        sd = float(np.std(r)) if r.size else 0.0
        s = 1.0 / sd if sd > 1e-8 else 1.0
        # collected at scale 1; SB3's time-limit bootstrap γ·V (untrained V) is scaled as well
        buffer.rewards *= np.float32(s)
        self.holder.scale = s
        self.scale_pending = False
        self.recompute_advantages(buffer)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "holder"]


@dataclass
class TrueRewardConfig(PPOLearnerConfig):
    """PPO on the environment's own (hand-weighted) reward, with the preference learners' PPO
    settings; the preference options only choose the metrics (no query is asked)."""

    reward_scale: float = option(
        0.0, "PPO sees scale·r (0 = 1/std of the per-step rewards of the first rollout)"
    )

    def validate(self) -> None:
        super().validate()
        require(self.reward_scale >= 0, f"reward_scale must be >= 0, got {self.reward_scale}")


@register_algo(
    "ppo_true_reward",
    description="PPO on the env's hand-weighted reward (HERON/RLHF baseline, same PPO settings)",
    envs=("PendulumFactored-v1", "HopperFactored-v5", "HalfCheetahFactored-v5"),
)
class PPOTrueReward(PPOPreferenceLearner):
    """SB3 PPO (whole-episode rollouts, as the preference learners) on the env's own reward,
    rescaled once to unit per-step spread; rows report the true return and the task raters."""

    Config = TrueRewardConfig
    smoke = Smoke(
        env=SMOKE_PENDULUM,
        steps=40,
        config=dict(SMOKE_PPO_TINY),
        env_kwargs=SMOKE_PENDULUM_KW,
        source="tests/test_heron.py::test_ppo_true_reward_determinism_and_fixed_scale",
    )
    cli_default_steps = 40_000
    ppo_class = TrueRewardPPO

    def __init__(
        self,
        config: TrueRewardConfig,
        env: str,
        env_kwargs: dict[str, Any],
        seed: int,
        device: Any,
    ) -> None:
        self.holder = _Scale(config.reward_scale or 1.0)
        super().__init__(config, env, env_kwargs, seed, device)

    def _env_wrapper(self) -> Any:
        return partial(ScaledEnvReward, scale=self.holder)

    def _sync_scale(self) -> None:
        """Send the scale to the copies (a worker process holds its own copy of the holder)."""
        env_apply(self.venv, _set_env_scale, self.holder.scale)

    def _make_model(self) -> EpisodicPPO:
        return self.ppo_class(
            "MlpPolicy",
            self.venv,
            holder=self.holder,
            auto_scale=self.config.reward_scale == 0,
            **self._ppo_kwargs(),
        )

    def step(self) -> dict[str, float]:
        seg = self._complete(self._iterate())
        self._sync_scale()
        row = self._row(seg)
        row["reward_scale"] = self.holder.scale
        return row

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "reward_scale": self.holder.scale,
            "scale_pending": int(self.model.scale_pending),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.holder.scale = float(state["reward_scale"])
        self.model.scale_pending = bool(state["scale_pending"])
        self._sync_scale()
