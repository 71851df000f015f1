"""Trajectory-preference learners on SB3 PPO (deep SPO, RLHF, HERON): the preference sources of
the SPO comparison and the learner base they share.

- :func:`preference_source` — the preference kinds of the SPO comparison (transitive,
  stochastic, intransitive, non-Markovian, jerk) over the factored tasks of
  :mod:`prl.envs.factored`;
- :class:`PPOPreferenceLearner` — env, preference source, :class:`prl.common.ppo.EpisodicPPO`
  model, query budget, pool of recent trajectories, checkpoints (:class:`prl.common.sb3.SB3Learner`)
  and evaluation.

Recording, query budget, the trajectory store and the learned-reward wrapper live in
:mod:`prl.common`.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal

import gymnasium
import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecMonitor

from prl.common.episodes import (
    Episode,
    TrajectoryRecorder,
    concat_segments,
    episode_horizon,
    episodes_to_segments,
    rollout_episode,
    segments_from_state,
    segments_to_state,
    tail_segments,
)
from prl.common.ppo import EpisodicPPO
from prl.common.queries import QueryBudget
from prl.common.sb3 import SB3Learner
from prl.common.vec import VEC_ENV_HELP, check_vec_env, make_vec
from prl.config import alias, option, require, resolve_aliases
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import BradleyTerry, MajorityVote, Oracle, ScoreOracle, bpref_compose
from prl.types import Preferences, Segments
from prl.utils import rng_state, set_rng_state, torch_threads

__all__ = [
    "PREFERENCE_KINDS",
    "OnFactors",
    "PPOLearnerConfig",
    "PPOPreferenceLearner",
    "PreferenceSource",
    "TrajectoryScore",
    "jerk",
    "max_height",
    "preference_source",
]

PREFERENCE_KINDS = ("transitive", "stochastic", "intransitive", "nonmarkov", "jerk")


# tiny settings shared by the trajectory-preference learners (tests/test_spo_deep.py)
SMOKE_PPO_TINY: dict[str, Any] = {
    "n_envs": 2,
    "query_budget": 100,
    "queries_per_iter": 6,
    "eval_episodes": 0,
    "batch_size": 20,
    "n_epochs": 2,
    "pool_size": 4,
    "hidden": [16, 16],
}
SMOKE_PENDULUM = "PendulumFactored-v1"
SMOKE_PENDULUM_KW: dict[str, Any] = {"max_episode_steps": 10}


# ---- preference sources ---------------------------------------------------------------------
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


def _make_env(
    name: str, env_kwargs: dict[str, Any], wrap: Callable[[gymnasium.Env], gymnasium.Env] | None
) -> gymnasium.Env:
    """One training copy: ``wrap(envs.make(name, **env_kwargs))`` (picklable as a partial)."""
    from prl import envs

    env = envs.make(name, **env_kwargs)
    return env if wrap is None else wrap(env)


# ---- the learner base -----------------------------------------------------------------------
@dataclass
class PPOLearnerConfig:
    """Options shared by the trajectory-preference learners built on SB3 PPO (SPO, RLHF)."""

    preference: str = option(
        "transitive", "preference source: transitive, stochastic, intransitive, nonmarkov, jerk"
    )
    bt_beta: float = option(1.0, "Bradley–Terry inverse temperature (transitive, jerk)")
    beta: float | None = alias("bt_beta", "former name of bt_beta")
    noise_beta: float = option(0.1, "stochastic teacher: BT inverse temperature")
    noise_eps: float = option(0.1, "stochastic teacher: label flip probability")
    height_beta: float = option(math.inf, "nonmarkov: BT inverse temperature on max height")
    jerk_weight: float = option(0.1, "jerk preference: weight of Σ‖Δa‖² against the return")
    query_budget: int = option(10_000, "total preference queries allowed (hard cap)")
    queries_per_iter: int = option(64, "preference queries per PPO iteration (while budget lasts)")
    n_envs: int = option(4, "parallel environments (one rollout = n_envs × n_steps env steps)")
    vec_env: Literal["dummy", "subproc"] = option("dummy", VEC_ENV_HELP)
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

    def __post_init__(self) -> None:
        resolve_aliases(self)  # values given under the old names

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
        check_vec_env(self.vec_env)
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
        require(self.bt_beta >= 0 and self.noise_beta >= 0, "bt_beta and noise_beta must be >= 0")
        require(0 <= self.noise_eps <= 0.5, f"noise_eps must be in [0, 0.5], got {self.noise_eps}")


class PPOPreferenceLearner(SB3Learner):
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
            self.horizon = episode_horizon(probe)
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
            beta=config.bt_beta,
            noise_beta=config.noise_beta,
            noise_eps=config.noise_eps,
            height_beta=config.height_beta,
            jerk_weight=config.jerk_weight,
        )

    def _env_wrapper(self) -> Callable[[gymnasium.Env], gymnasium.Env] | None:
        """A picklable ``env -> wrapped env`` applied to every training copy (None: none); it
        runs in the worker processes with ``vec_env="subproc"``, so it must not hold ``self``."""
        return None

    def _wrap_env(self, env: gymnasium.Env) -> gymnasium.Env:
        wrap = self._env_wrapper()
        return env if wrap is None else wrap(env)

    def _make_venv(self) -> VecEnv:
        fns = [
            partial(_make_env, self.env_name, dict(self.env_kwargs), self._env_wrapper())
            for _ in range(self.config.n_envs)
        ]
        return TrajectoryRecorder(VecMonitor(make_vec(fns, self.config.vec_env)))

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
        self.pool = tail_segments(concat_segments([self.pool, seg]), self.config.pool_size)

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
        return {
            **super().state_dict(),  # SB3 tensors and counters, global generators
            "episode_num": int(m._episode_num),
            "reset_rng": json.dumps(rng_state(m.reset_rng)),
            "queries_used": self.budget.used,
            "iterations": self.iterations,
            "pool": segments_to_state(self.pool),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        m = self.model
        m._episode_num = int(state["episode_num"])
        set_rng_state(m.reset_rng, json.loads(state["reset_rng"]))
        self.budget = QueryBudget(self.config.query_budget, int(state["queries_used"]))
        self.iterations = int(state["iterations"])
        self.pool = segments_from_state(state["pool"])

    def close(self) -> None:
        self.venv.close()
