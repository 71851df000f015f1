"""Offline learners on preference datasets: the shared machinery and the CPL paper's baselines.

- :class:`OfflinePolicy` — π(a|s) for Discrete (categorical) or Box actions ("mse": the CPL
  authors' fixed-variance Gaussian, log π = −‖tanh μ(s) − a‖²; "gaussian"; "tanh_gaussian"),
  an MLP with dropout drawn from an explicit torch generator;
- :class:`OfflineLearner` — a :class:`prl.run.Learner` that loads a preference dataset
  (``config.dataset``; generated at that path first — with progress and resume — when missing) or
  generates one in memory (:func:`default_dataset`: exact-A* regret labels on tabular envs; an
  SB3 SAC expert's critic on MuJoCo/MetaWorld), moves it to the device once, takes one
  gradient step per ``step()`` and evaluates (exact J(π) on tabular envs, episodes elsewhere);
- baselines: ``bc`` (behaviour cloning on every segment), ``sft`` (BC, then BC on preferred
  segments), ``pct_bc`` (BC on the top-X% episodes by true return) and ``piql`` (a Bradley–Terry
  reward model from :mod:`prl.reward_model`, then IQL: expectile V, twin Q, advantage-weighted
  actor). OPPO and other offline methods reuse :class:`OfflineLearner`.

Defaults follow the CPL authors' MetaWorld-state configs (lr 1e-4, batch 96 pairs, [512, 512]
MLPs with dropout 0.25; P-IQL lr 3e-4, expectile 0.7, β = 3, 50k reward-model steps).
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from prl.common.losses import bt_nll
from prl.config import option, require
from prl.data import (
    CriticScore,
    ExpertCritic,
    PreferenceDataset,
    collect_rollouts,
    discounted_returns,
    epsilon_greedy_policy,
    fit_rollout_value,
    generate_dataset,
    rollout_chunks,
    sb3_policy,
    tabular_chunks,
    train_sac_expert,
)
from prl.errors import ConfigError, InvalidInputError
from prl.oracles import Regret
from prl.reward_model import EnsembleMLP, RewardModel, encode_space, space_dim
from prl.run import Learner, register_algo
from prl.smoke import Smoke
from prl.utils import torch_generator

TABULAR_ENVS = ("random_mdp", "chain", "delivery")
METAWORLD_ENVS = (
    "mw-bin-picking-v3",
    "mw-button-press-v3",
    "mw-door-open-v3",
    "mw-drawer-open-v3",
    "mw-plate-slide-v3",
    "mw-sweep-into-v3",
)
MUJOCO_ENVS = ("Hopper-v5", "HalfCheetah-v5", "Walker2d-v5")
SUPPORTED_ENVS = (*TABULAR_ENVS, *MUJOCO_ENVS, *METAWORLD_ENVS)


# ---- networks -----------------------------------------------------------------------------------
class GenDropout(nn.Module):
    """Dropout whose masks come from an explicit torch generator (resumable, reproducible)."""

    def __init__(self, p: float, generator: torch.Generator):
        super().__init__()
        self.p = float(p)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p <= 0:
            return x
        keep = torch.rand(x.shape, generator=self.generator, device=x.device, dtype=x.dtype)
        return x * (keep >= self.p).to(x.dtype) / (1.0 - self.p)


def policy_mlp(
    in_dim: int,
    out_dim: int,
    hidden: Sequence[int],
    dropout: float,
    generator: torch.Generator,
) -> nn.Sequential:
    """Linear → ReLU → (dropout) per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    d = in_dim
    for h in hidden:
        layers += [nn.Linear(d, int(h)), nn.ReLU()]
        if dropout > 0:
            layers.append(GenDropout(dropout, generator))
        d = int(h)
    layers.append(nn.Linear(d, out_dim))
    return nn.Sequential(*layers)


POLICY_KINDS = ("categorical", "mse", "gaussian", "tanh_gaussian")


class OfflinePolicy(nn.Module):
    """π(a|s) over a Discrete or Box action space; Box actions are handled in [−1, 1]."""

    LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: Sequence[int] = (512, 512),
        dropout: float = 0.25,
        kind: str = "auto",
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if kind == "auto":
            kind = "categorical" if isinstance(action_space, spaces.Discrete) else "mse"
        if kind not in POLICY_KINDS:
            raise ConfigError(f"policy must be one of {POLICY_KINDS} or 'auto', got {kind!r}")
        discrete = isinstance(action_space, spaces.Discrete)
        if discrete != (kind == "categorical"):
            raise ConfigError(f"policy {kind!r} does not fit the action space {action_space}")
        if not discrete and not isinstance(action_space, spaces.Box):
            raise ConfigError(f"unsupported action space {action_space}")
        self.observation_space, self.action_space, self.kind = observation_space, action_space, kind
        self.generator = generator if generator is not None else torch.Generator()
        in_dim = space_dim(observation_space)
        out = space_dim(action_space) * (2 if kind == "tanh_gaussian" else 1)
        self.net = policy_mlp(in_dim, out, hidden, dropout, self.generator)
        if kind == "gaussian":
            self.log_std = nn.Parameter(torch.zeros(space_dim(action_space)))
        if not discrete:
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))

    def features(self, obs: Any) -> torch.Tensor:
        """The encoded observation on the policy's device."""
        p = next(self.net.parameters())
        return encode_space(self.observation_space, obs, p.device, p.dtype)

    def normalize(self, actions: torch.Tensor) -> torch.Tensor:
        """Env actions → [−1, 1] (clipped inside by 1e-5, as the CPL authors do)."""
        a = 2.0 * (actions.to(self.low.dtype) - self.low) / (self.high - self.low) - 1.0
        return a.clamp(-1 + 1e-5, 1 - 1e-5)

    def unnormalize(self, a: torch.Tensor) -> torch.Tensor:
        """[−1, 1] → env actions."""
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)

    def log_prob(self, obs: Any, actions: torch.Tensor) -> torch.Tensor:
        """log π(a|s) for ``obs [*batch, ...]`` and ``actions [*batch, ...]`` → ``[*batch]``."""
        out = self.net(self.features(obs))
        if self.kind == "categorical":
            return torch.log_softmax(out, -1).gather(-1, actions.long().unsqueeze(-1))[..., 0]
        a = self.normalize(actions)
        if self.kind == "mse":
            return -torch.square(torch.tanh(out) - a).sum(-1)
        if self.kind == "gaussian":
            log_std = self.log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
            z = (a - out) / log_std.exp()
            return (-0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        mu, log_std = out.chunk(2, dim=-1)
        log_std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX)
        u = torch.atanh(a)
        z = (u - mu) / log_std.exp()
        normal = -0.5 * z * z - log_std - 0.5 * math.log(2 * math.pi)
        corr = 2.0 * (math.log(2.0) - u - F.softplus(-2.0 * u))
        return (normal - corr).sum(-1)

    def log_probs_all(self, obs: Any) -> torch.Tensor:
        """log π(·|s) over every action ``[*batch, A]`` (Discrete actions only)."""
        if self.kind != "categorical":
            raise InvalidInputError("log_probs_all needs a Discrete action space")
        return torch.log_softmax(self.net(self.features(obs)), -1)

    @torch.no_grad()
    def act(self, obs: Any, deterministic: bool = True) -> np.ndarray:
        """Actions for a batch of observations: argmax / mean when deterministic, else sampled."""
        out = self.net(self.features(obs))
        g = self.generator
        if self.kind == "categorical":
            if deterministic:
                return out.argmax(-1).cpu().numpy()
            p = torch.softmax(out, -1).reshape(-1, out.shape[-1])
            a = torch.multinomial(p, 1, generator=g)[:, 0].reshape(out.shape[:-1])
            return a.cpu().numpy()
        if self.kind == "mse":
            a = torch.tanh(out)
            if not deterministic:
                a = (a + torch.randn(a.shape, generator=g, device=a.device) / math.sqrt(2)).clamp(
                    -1, 1
                )
        elif self.kind == "gaussian":
            a = out
            if not deterministic:
                a = a + self.log_std.exp() * torch.randn(a.shape, generator=g, device=a.device)
            a = a.clamp(-1, 1)
        else:
            mu, log_std = out.chunk(2, dim=-1)
            u = mu
            if not deterministic:
                std = log_std.clamp(self.LOG_STD_MIN, self.LOG_STD_MAX).exp()
                u = mu + std * torch.randn(mu.shape, generator=g, device=mu.device)
            a = torch.tanh(u)
        return self.unnormalize(a).cpu().numpy()


# ---- configuration ------------------------------------------------------------------------------
@dataclass
class OfflineConfig:
    """Data, network, optimizer and evaluation settings shared by the offline learners."""

    dataset: str = option(
        "", "preference dataset (.npz; generated there first if missing); empty: in memory"
    )
    data_mode: Literal["sparse", "dense"] = option(
        "sparse", "generated data: sparse = fixed labelled pairs, dense = per-segment scores"
    )
    n_segments: int = option(2000, "generated data: number of segments")
    n_pairs: int = option(4000, "generated sparse data: number of labelled pairs")
    segment_length: int = option(0, "generated data: steps per segment (0: 8 tabular, 64 else)")
    behaviour_noise: float = option(
        -1.0, "generated data: ε of ε-greedy (tabular) or Gaussian action std (-1: 0.5 / 0.3)"
    )
    label_beta: float = option(
        -1.0, "generated data: regret-label inverse temperature (-1: 1 tabular, inf else)"
    )
    expert_mix: float = option(
        1.0, "generated tabular data: weight of the optimal policy vs a fixed random one"
    )
    data_seed: int = option(0, "generated data: seed (shared by every training seed)")
    episodes: int = option(40, "generated data (MuJoCo/MetaWorld): behaviour episodes")
    expert: Literal["sac", "scripted"] = option(
        "sac",
        "generated data (MuJoCo/MetaWorld): sac = a trained SAC expert and its critic; scripted = "
        "MetaWorld's hand-written policy, V fitted to its rollouts",
    )
    expert_steps: int = option(2000, "generated data: SAC expert budget (10^6 for a real one)")
    expert_path: str = option("", "SAC expert weights (.pt) to load, or to save after training")
    hidden: list[int] = option([512, 512], "hidden widths of every MLP ([] = linear)")  # noqa: RUF009
    dropout: float = option(0.25, "policy dropout")
    policy: str = option("auto", "auto | categorical | mse | gaussian | tanh_gaussian")
    lr: float = option(1e-4, "Adam learning rate")
    batch_size: int = option(96, "pairs (or segments) per gradient step")
    discount: float = option(-1.0, "discount of segment sums (-1: the dataset's label discount)")
    eval_every: int = option(5000, "gradient steps between evaluations")
    eval_episodes: int = option(10, "evaluation episodes (MuJoCo/MetaWorld)")

    def validate(self) -> None:
        require(self.n_segments >= 2, f"n_segments must be >= 2, got {self.n_segments}")
        require(self.n_pairs >= 1, f"n_pairs must be >= 1, got {self.n_pairs}")
        require(self.segment_length >= 0, "segment_length must be >= 0")
        require(self.episodes >= 1 and self.expert_steps >= 1, "episodes, expert_steps >= 1")
        require(0 <= self.dropout < 1, f"dropout must be in [0, 1), got {self.dropout}")
        require(0 <= self.expert_mix <= 1, f"expert_mix must be in [0, 1], got {self.expert_mix}")
        require(self.lr > 0, f"lr must be positive, got {self.lr}")
        require(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        require(self.eval_every >= 1 and self.eval_episodes >= 1, "eval_every/episodes >= 1")
        require(all(h >= 1 for h in self.hidden), f"hidden widths must be >= 1: {self.hidden}")
        require(
            self.discount == -1.0 or 0 < self.discount <= 1,
            f"discount must be in (0, 1] or -1, got {self.discount}",
        )


# ---- dataset acquisition -------------------------------------------------------------------------
_DATA_CACHE: dict[str, PreferenceDataset] = {}


def _is_tabular(env: Any) -> bool:
    return hasattr(env.unwrapped, "mdp")


def default_dataset(
    env_name: str,
    env_kwargs: dict[str, Any],
    cfg: OfflineConfig,
    path: str | None = None,
    progress: bool = False,
) -> PreferenceDataset:
    """Generate the lab's default preference dataset for ``env_name`` (cached in memory).

    Tabular: ε-greedy around a mixture (``expert_mix``) of an optimal and a fixed random
    deterministic policy, from uniform non-terminal starts, labels from the Regret oracle with the
    exact A* (discount γ of the MDP). Otherwise: an SB3 SAC expert
    (``expert_steps``; loaded from ``expert_path`` when it exists) with Gaussian action noise,
    ``segment_length``-step windows, labels σ(β Δ) of the telescoped critic score
    Σr + V(s_T) − V(s_0) (the authors' label; β = inf gives their hard labels).
    """
    from prl import envs

    key = json.dumps(
        [env_name, env_kwargs, {k: getattr(cfg, k) for k in _DATA_FIELDS}], sort_keys=True
    )
    if path is None and key in _DATA_CACHE:
        return _DATA_CACHE[key]
    env = envs.make(env_name, **env_kwargs)
    meta: dict[str, Any] = {"env": env_name, "env_kwargs": env_kwargs}
    n_chunks = max(1, min(10, cfg.n_segments // 200))
    per_chunk = math.ceil(cfg.n_segments / n_chunks)
    if _is_tabular(env):
        mdp = env.unwrapped.mdp
        eps = 0.5 if cfg.behaviour_noise < 0 else cfg.behaviour_noise
        beta = 1.0 if cfg.label_beta < 0 else cfg.label_beta
        T = cfg.segment_length or 8
        other = np.eye(mdp.A)[np.random.default_rng(cfg.data_seed).integers(mdp.A, size=mdp.S)]
        base = cfg.expert_mix * mdp.optimal_policy() + (1.0 - cfg.expert_mix) * other
        pi = epsilon_greedy_policy(base, eps)
        oracle = Regret.from_mdp(mdp, beta=beta)
        chunk_fn = tabular_chunks(mdp, pi, per_chunk, T, start="uniform")
        meta.update(
            label_discount=float(mdp.gamma),
            behaviour=f"eps_greedy({eps}) of {cfg.expert_mix}*optimal + random deterministic",
        )
    else:
        noise = 0.3 if cfg.behaviour_noise < 0 else cfg.behaviour_noise
        beta = math.inf if cfg.label_beta < 0 else cfg.label_beta
        T = cfg.segment_length or 64

        def make_env() -> Any:
            return envs.make(env_name, **env_kwargs)

        if cfg.expert == "scripted":
            policy, critic, info = _scripted_expert(env_name, make_env, cfg)
            behaviour = f"scripted+N(0,{noise}^2)"
            meta.update(info)
        else:
            expert = train_sac_expert(
                make_env,
                cfg.expert_steps,
                seed=cfg.data_seed,
                path=cfg.expert_path or None,
                net_arch=(256, 256) if cfg.expert_steps >= 100_000 else (64, 64),
            )
            critic = ExpertCritic.from_sb3(expert, n_samples=16, seed=cfg.data_seed)
            policy, behaviour = sb3_policy(expert), f"sac({cfg.expert_steps})+N(0,{noise}^2)"
        oracle = CriticScore(critic, beta=beta, discount=1.0)
        episodes_per_chunk = max(1, math.ceil(cfg.episodes / n_chunks))
        chunk_fn = rollout_chunks(
            make_env, policy, episodes_per_chunk, T, per_chunk, action_noise=noise
        )
        meta.update(label_discount=1.0, behaviour=behaviour, expert=cfg.expert)
        if cfg.expert == "sac":
            meta["expert_steps"] = cfg.expert_steps
    env.close()
    ds = generate_dataset(
        path,
        chunk_fn=chunk_fn,
        n_chunks=n_chunks,
        oracle=oracle,
        mode=cfg.data_mode,
        n_pairs=cfg.n_pairs,
        seed=cfg.data_seed,
        meta=meta,
        progress=progress,
    )
    if path is None:
        _DATA_CACHE[key] = ds
    return ds


_DATA_FIELDS = (
    "data_mode",
    "n_segments",
    "n_pairs",
    "segment_length",
    "behaviour_noise",
    "label_beta",
    "data_seed",
    "expert_mix",
    "episodes",
    "expert_steps",
    "expert_path",
    "expert",
)

SCRIPTED_VALUE_NOISE = 0.3  # the CPL data's action noise: V is fitted to the expert at this noise


def _scripted_expert(
    env_name: str, make_env: Any, cfg: OfflineConfig
) -> tuple[Any, Any, dict[str, Any]]:
    """MetaWorld's scripted policy and V^expert fitted (γ = 0.99, SAC's discount) to
    max(20, 2·episodes) rollouts of it with N(0, 0.3²) action noise (seed [data_seed, 1]);
    the fit's correlation with the discounted returns of max(5, episodes/5) held-out
    rollouts (seed [data_seed, 2]) goes into the dataset's meta."""
    from prl.envs.metaworld_tasks import scripted_policy

    policy = scripted_policy(env_name)
    env = make_env()

    def rollouts(stream: int, n: int) -> Any:
        rng = np.random.default_rng([cfg.data_seed, stream])
        return collect_rollouts(env, policy, rng, n_episodes=n, action_noise=SCRIPTED_VALUE_NOISE)

    try:
        fit_ro = rollouts(1, max(20, 2 * cfg.episodes))
        test_ro = rollouts(2, max(5, cfg.episodes // 5))
    finally:
        env.close()
    critic = fit_rollout_value(fit_ro, gamma=0.99, seed=cfg.data_seed)
    g = discounted_returns(test_ro, 0.99, critic.value(test_ro.next_obs))
    corr = float(np.corrcoef(g, critic.value(test_ro.obs))[0, 1])
    info = {
        "value_fit": f"MC regression, gamma 0.99, {len(fit_ro)} transitions",
        "value_heldout_corr": round(corr, 4),
    }
    return policy, critic, info


def _space_matches(space: spaces.Space, arr: np.ndarray) -> bool:
    if isinstance(space, spaces.Discrete):
        return arr.ndim == 2 and np.issubdtype(arr.dtype, np.integer)
    return tuple(arr.shape[2:]) == tuple(space.shape)


# ---- the shared learner --------------------------------------------------------------------------
class OfflineLearner(Learner):
    """One gradient step per ``step()`` on a preference dataset; periodic evaluation."""

    Config = OfflineConfig
    default_steps = 500_000
    cli_default_steps = 1000
    step_unit = "gradient steps"

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        if env not in SUPPORTED_ENVS:
            raise ConfigError(f"{cls.__name__} runs on {', '.join(SUPPORTED_ENVS)}; got {env!r}")

    def __init__(
        self, config: OfflineConfig, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        from prl import envs

        self.env = envs.make(env, **env_kwargs)
        self.tabular = _is_tabular(self.env)
        self.mdp = self.env.unwrapped.mdp if self.tabular else None
        self.obs_space, self.act_space = self.env.observation_space, self.env.action_space
        if config.dataset and not Path(config.dataset).exists():  # make it once, then reuse
            self.make_dataset(env, env_kwargs, config, path=config.dataset, progress=True)
        if config.dataset:
            data = PreferenceDataset.load(config.dataset, expect={"env": env})
        else:
            data = self.make_dataset(env, env_kwargs, config)
        s = data.segments
        if not (
            _space_matches(self.obs_space, s.obs) and _space_matches(self.act_space, s.actions)
        ):
            raise InvalidInputError(
                f"dataset observations {s.obs.shape[2:]} / actions {s.actions.shape[2:]} do not "
                f"fit {env}'s spaces {self.obs_space} / {self.act_space}"
            )
        self.data = data
        label_discount = float(data.meta.get("label_discount", 1.0))
        self.discount = label_discount if config.discount < 0 else float(config.discount)
        self.tgen = torch_generator(seed, device)
        self._load_tensors()
        self.evals = 0
        self._build()

    def make_dataset(
        self,
        env: str,
        env_kwargs: dict[str, Any],
        config: Any,
        path: str | None = None,
        progress: bool = False,
    ) -> PreferenceDataset:
        """The generated dataset used when ``config.dataset`` is empty or missing (a subclass
        hook: OPPO generates mixed-quality data instead)."""
        return default_dataset(env, env_kwargs, config, path=path, progress=progress)

    # -- data on the device --------------------------------------------------------------------
    def _tensor(self, x: np.ndarray, space: spaces.Space) -> torch.Tensor:
        if isinstance(space, spaces.Discrete):
            return torch.as_tensor(np.asarray(x, dtype=np.int64), device=self.device)
        return torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)

    def _load_tensors(self) -> None:
        s, d = self.data.segments, self.device
        self.obs = self._tensor(s.obs, self.obs_space)
        self.act = self._tensor(s.actions, self.act_space)
        self.rew = torch.as_tensor(s.rewards, dtype=torch.float32, device=d)
        valid = s.infos.get("valid", np.ones(s.rewards.shape[:2], dtype=bool))
        self.valid = torch.as_tensor(np.asarray(valid, dtype=bool), device=d)
        nxt = s.next_obs
        self.next_obs = None if nxt is None else self._tensor(nxt, self.obs_space)
        term = s.infos.get("terminated", s.dones)
        term = np.zeros(s.rewards.shape[:2], bool) if term is None else np.asarray(term, bool)
        self.terminated = torch.as_tensor(term, device=d)
        keep = np.flatnonzero(self.data.mask)
        self.pairs = torch.as_tensor(self.data.pairs[keep], device=d)
        self.label = torch.as_tensor(self.data.label[keep], dtype=torch.float32, device=d)
        sc = self.data.scores
        self.scores = None if sc is None else torch.as_tensor(sc, dtype=torch.float32, device=d)
        self.dense = self.data.mode == "dense"
        if self.dense and self.scores is None:
            raise InvalidInputError("a dense dataset needs per-segment scores")
        if not self.dense and len(self.pairs) == 0:
            raise InvalidInputError("the dataset holds no valid labelled pairs")
        self.n_segments = int(self.obs.shape[0])

    def sample_pairs(self, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` labelled pairs (index a, index b, P(a ≻ b)): stored pairs (sparse) or random
        pairs labelled by score comparison, ties ½ (dense, the authors' "rank" batches)."""
        if not self.dense:
            idx = torch.as_tensor(self.rng.integers(0, len(self.pairs), size=n), device=self.device)
            p = self.pairs[idx]
            return p[:, 0], p[:, 1], self.label[idx]
        ia = self.rng.integers(0, self.n_segments, size=n)
        ib = (ia + self.rng.integers(1, self.n_segments, size=n)) % self.n_segments
        ia_t = torch.as_tensor(ia, device=self.device)
        ib_t = torch.as_tensor(ib, device=self.device)
        sa, sb = self.scores[ia_t], self.scores[ib_t]
        lab = (sa > sb).float() + 0.5 * (sa == sb).float()
        return ia_t, ib_t, lab

    def segment_log_probs(self, policy: OfflinePolicy, idx: torch.Tensor) -> torch.Tensor:
        """log π(a_t|s_t) ``[n, T]`` of segments ``idx`` (padding steps give 0)."""
        lp = policy.log_prob(self.obs[idx], self.act[idx])
        return lp * self.valid[idx].to(lp.dtype)

    def bc_loss(self, policy: OfflinePolicy, idx: torch.Tensor) -> torch.Tensor:
        """−mean log π over the valid steps of segments ``idx``."""
        lp = policy.log_prob(self.obs[idx], self.act[idx])
        v = self.valid[idx].to(lp.dtype)
        return -(lp * v).sum() / torch.clamp(v.sum(), min=1.0)

    # -- hooks ------------------------------------------------------------------------------------
    def _build(self) -> None:
        raise NotImplementedError

    def update(self) -> dict[str, float]:
        """One gradient step; returns loss metrics."""
        raise NotImplementedError

    def eval_policy(self) -> OfflinePolicy:
        """The policy that :meth:`evaluate` runs."""
        return self.policy

    def predict(
        self,
        observation: Any,
        state: Any = None,
        episode_start: Any = None,
        deterministic: bool = True,
    ) -> tuple[np.ndarray, Any]:
        """SB3's ``predict``: ``(actions, state)`` of :meth:`eval_policy` for a batch of
        observations (or one observation), so SB3's ``evaluate_policy`` runs it."""
        pol = self.eval_policy()
        obs = np.asarray(observation)
        single = obs.shape == tuple(self.obs_space.shape)
        was = pol.training
        pol.eval()
        try:
            a = pol.act(obs[None] if single else obs, deterministic=deterministic)
        finally:
            pol.train(was)
        return (a[0] if single else a), state

    def new_policy(self) -> OfflinePolicy:
        """A fresh policy network on the device."""
        cfg = self.config
        return OfflinePolicy(
            self.obs_space, self.act_space, cfg.hidden, cfg.dropout, cfg.policy, self.tgen
        ).to(self.device)

    # -- the loop ----------------------------------------------------------------------------------
    def step(self) -> dict[str, float]:
        row = self.update()
        self.steps_done += 1
        if self.steps_done % self.config.eval_every == 0:
            row.update(self.evaluate())
        return row

    def policy_table(self) -> np.ndarray:
        """π(a|s) [S, A] on every state of a tabular env (eval mode)."""
        pol = self.eval_policy()
        was = pol.training
        pol.eval()
        with torch.no_grad():
            lp = pol.log_probs_all(torch.arange(self.mdp.S, device=self.device))
        pol.train(was)
        pi = lp.double().exp().cpu().numpy()
        return pi / pi.sum(1, keepdims=True)

    def evaluate(self) -> dict[str, float]:
        """Exact J(π) on tabular envs; mean return / success over episodes otherwise."""
        self.evals += 1
        if self.tabular:
            return tabular_metrics(self.mdp, self.policy_table())
        return self._rollout_eval()

    def _rollout_eval(self) -> dict[str, float]:
        pol = self.eval_policy()
        was = pol.training
        pol.eval()
        rng = np.random.default_rng([self.seed, 7919, self.evals])
        rets, succ, lens = [], [], []
        for _ in range(self.config.eval_episodes):
            obs, _ = self.env.reset(seed=int(rng.integers(2**31 - 1)))
            ret, ok, n, done = 0.0, False, 0, False
            while not done:
                a = pol.act(np.asarray(obs)[None], deterministic=True)[0]
                obs, r, term, trunc, info = self.env.step(a)
                ret += float(r)
                ok = ok or bool(info.get("success", False))
                n += 1
                done = bool(term or trunc)
            rets.append(ret)
            succ.append(float(ok))
            lens.append(n)
        pol.train(was)
        return {
            "return": float(np.mean(rets)),
            "success": float(np.mean(succ)),
            "episode_length": float(np.mean(lens)),
        }

    # -- checkpoints -------------------------------------------------------------------------------
    def _modules(self) -> dict[str, Any]:
        """name → module/optimizer whose state_dict is checkpointed (subclasses extend)."""
        return {"policy": self.policy, "optimizer": self.optimizer}

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "tgen": self.tgen.get_state(),
            "evals": self.evals,
            **{k: m.state_dict() for k, m in self._modules().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.tgen.set_state(state["tgen"].cpu())
        self.evals = int(state["evals"])
        self._before_load(state)
        for k, m in self._modules().items():
            m.load_state_dict(state[k])

    def _before_load(self, state: dict[str, Any]) -> None:
        """Re-create phase-dependent objects (optimizers, reference nets) before loading."""

    def close(self) -> None:
        self.env.close()


def tabular_metrics(mdp: Any, pi: np.ndarray) -> dict[str, float]:
    """Exact J of the greedy (argmax) and of the stochastic policy, J normalized between the
    uniform policy (0) and the optimum (1), and the fraction of non-terminal states whose argmax
    action is optimal."""
    S, A = mdp.S, mdp.A
    greedy = np.eye(A)[pi.argmax(1)]
    J = mdp.expected_return(greedy)
    J_star = float(mdp.v_star() @ mdp.mu0)
    J_unif = mdp.expected_return(np.full((S, A), 1.0 / A))
    Q = mdp.q_star()
    best = Q >= Q.max(1, keepdims=True) - 1e-9 * max(1.0, float(np.abs(Q).max()))
    live = ~mdp.terminal
    ok = best[np.arange(S), pi.argmax(1)]
    gap = J_star - J_unif
    return {
        "return": float(J),
        "return_stochastic": float(mdp.expected_return(pi)),
        "normalized_return": float((J - J_unif) / gap) if gap > 0 else 1.0,
        "optimal_action_frac": float(ok[live].mean()),
    }


# ---- behaviour cloning family --------------------------------------------------------------------
@dataclass
class BCConfig(OfflineConfig):
    """Behaviour cloning on every segment of the dataset."""


# tiny settings of the offline learners (tests/test_cpl.py)
SMOKE_OFFLINE_TINY: dict[str, Any] = {
    "hidden": [16],
    "dropout": 0.1,
    "lr": 3e-3,
    "batch_size": 16,
    "eval_every": 20,
    "n_segments": 400,
    "n_pairs": 800,
}
SMOKE_OFFLINE_SOURCE = "tests/test_cpl.py::test_learners_are_deterministic_and_resume_exactly"


def smoke_offline(extra: dict[str, Any], family: str = "") -> Smoke:
    """The offline learners' tiny run on a random tabular MDP, plus ``extra`` config fields."""
    return Smoke(
        env="random_mdp",
        steps=30,
        config={**SMOKE_OFFLINE_TINY, **extra},
        env_kwargs={"S": 8, "A": 3},
        source=SMOKE_OFFLINE_SOURCE,
        family=family,
    )


@register_algo(
    "bc",
    description="behaviour cloning on every segment of a preference dataset",
    envs=SUPPORTED_ENVS,
)
class BC(OfflineLearner):
    """max Σ log π(a|s) over the steps of the selected segments (all of them for plain BC)."""

    Config = BCConfig
    smoke = smoke_offline({})

    def _build(self) -> None:
        self.policy = self.new_policy()
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=self.config.lr)
        self.pool = torch.arange(self.n_segments, device=self.device)

    def sample_segments(self) -> torch.Tensor:
        """Segment indices of one minibatch (from ``self.pool``)."""
        k = self.rng.integers(0, len(self.pool), size=self.config.batch_size)
        return self.pool[torch.as_tensor(k, device=self.device)]

    def update(self) -> dict[str, float]:
        self.policy.train()
        loss = self.bc_loss(self.policy, self.sample_segments())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss_bc": float(loss.detach())}


@dataclass
class PctBCConfig(OfflineConfig):
    """BC on the segments of the top-X% episodes ranked by true return."""

    percent: float = option(10.0, "percentage of episodes (by true return) to imitate")

    def validate(self) -> None:
        super().validate()
        require(0 < self.percent <= 100, f"percent must be in (0, 100], got {self.percent}")


@register_algo(
    "pct_bc",
    description="%BC: behaviour cloning on the top-X% episodes by true return",
    envs=SUPPORTED_ENVS,
)
class PctBC(BC):
    """%BC (an oracle baseline: it reads the true returns the preference learners never see)."""

    Config = PctBCConfig
    smoke = smoke_offline({"percent": 20.0})

    def _build(self) -> None:
        super()._build()
        self.pool = torch.as_tensor(
            top_episode_segments(self.data, self.config.percent), device=self.device
        )


def top_episode_segments(data: PreferenceDataset, percent: float) -> np.ndarray:
    """Indices of the segments whose source episode is in the top ``percent``% by return
    (each segment is its own episode when the dataset has no episode ids)."""
    s = data.segments
    if "episode" in s.infos and "episode_return" in s.infos:
        ep = np.asarray(s.infos["episode"])[:, 0]
        ret = np.asarray(s.infos["episode_return"], dtype=np.float64)[:, 0]
    else:
        ep = np.arange(len(s))
        ret = s.returns() if s.rewards.ndim == 2 else s.returns().sum(-1)
    uniq, first = np.unique(ep, return_index=True)
    k = max(1, math.ceil(len(uniq) * percent / 100.0))
    order = np.argsort(-ret[first], kind="stable")
    top = set(uniq[order[:k]].tolist())
    return np.flatnonzero([e in top for e in ep])


@dataclass
class SFTConfig(OfflineConfig):
    """BC on every segment, then BC on the preferred segment of each labelled pair."""

    bc_steps: int | None = option(
        None,
        "gradient steps of BC on all segments before fine-tuning; None: 40% of the run "
        "(the paper's 200k of 500k)",
    )

    def validate(self) -> None:
        super().validate()
        bc = self.bc_steps
        require(bc is None or bc >= 0, f"bc_steps must be >= 0, got {bc}")


@register_algo(
    "sft",
    description="SFT: BC on all segments, then BC on the preferred segments",
    envs=SUPPORTED_ENVS,
)
class SFT(BC):
    """Supervised fine-tuning on preferred segments (ties count both segments)."""

    Config = SFTConfig
    smoke = smoke_offline({"bc_steps": 15})

    def update(self) -> dict[str, float]:
        if self.steps_done < self.phase_steps(self.config.bc_steps, 0.4):
            return super().update()
        ia, ib, lab = self.sample_pairs(self.config.batch_size)
        idx = torch.cat([ia[lab >= 0.5], ib[lab <= 0.5]])
        self.policy.train()
        loss = self.bc_loss(self.policy, idx)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return {"loss_bc": float(loss.detach())}


# ---- P-IQL ---------------------------------------------------------------------------------------
@dataclass
class PIQLConfig(OfflineConfig):
    """Bradley–Terry reward model, then implicit Q-learning on the learned reward."""

    lr: float = option(3e-4, "Adam learning rate (actor, critics, value, reward model)")
    reward_steps: int | None = option(
        None,
        "gradient steps that also train the reward model; None: 10% of the run "
        "(the paper's 50k of 500k)",
    )
    reward_ensemble: int = option(1, "reward-model ensemble size")
    expectile: float = option(0.7, "IQL expectile τ of the value regression")
    beta: float = option(3.0, "IQL inverse temperature of the advantage weights exp(β A)")
    clip_weight: float = option(100.0, "upper clip of the advantage weights")
    tau: float = option(0.005, "Polyak rate of the target critics")
    gamma: float = option(0.99, "IQL discount (tabular envs use the MDP's γ)")

    def validate(self) -> None:
        super().validate()
        require(self.reward_steps is None or self.reward_steps >= 1, "reward_steps must be >= 1")
        require(self.reward_ensemble >= 1, "reward_ensemble must be >= 1")
        require(0 < self.expectile < 1, f"expectile must be in (0, 1), got {self.expectile}")
        require(self.beta > 0 and self.clip_weight > 0, "beta and clip_weight must be > 0")
        require(0 < self.tau <= 1 and 0 <= self.gamma <= 1, "tau in (0, 1], gamma in [0, 1]")


def expectile_loss(diff: torch.Tensor, expectile: float) -> torch.Tensor:
    """IQL's asymmetric square |τ − 1(u < 0)| u², u = target − prediction."""
    w = torch.abs(expectile - (diff < 0).to(diff.dtype))
    return w * diff * diff


@register_algo(
    "piql",
    description="P-IQL: Bradley–Terry reward model, then IQL on the learned reward",
    envs=SUPPORTED_ENVS,
)
class PIQL(OfflineLearner):
    """Preference IQL (the CPL paper's strongest RLHF baseline)."""

    Config = PIQLConfig
    smoke = smoke_offline({"reward_steps": 15}, family="offline_baselines")
    cli_default_steps = 150

    def _build(self) -> None:
        cfg = self.config
        if self.next_obs is None:
            raise InvalidInputError("P-IQL needs datasets with next_obs")
        self.gamma = float(self.mdp.gamma) if self.tabular else cfg.gamma
        self.policy = self.new_policy()
        in_dim = space_dim(self.obs_space) + space_dim(self.act_space)
        gen_cpu = torch.Generator().manual_seed(self.seed)
        self.reward = RewardModel(
            self.obs_space, self.act_space, cfg.hidden, cfg.reward_ensemble, generator=gen_cpu
        ).to(self.device)
        self.critic = EnsembleMLP(in_dim, 1, cfg.hidden, 2, generator=gen_cpu).to(self.device)
        self.target = copy.deepcopy(self.critic).requires_grad_(False)
        self.value = EnsembleMLP(space_dim(self.obs_space), 1, cfg.hidden, 1, generator=gen_cpu)
        self.value = self.value.to(self.device)
        self.optimizer = torch.optim.Adam(self.policy.parameters(), lr=cfg.lr)
        self.opt_reward = torch.optim.Adam(self.reward.parameters(), lr=cfg.lr)
        self.opt_critic = torch.optim.Adam(self.critic.parameters(), lr=cfg.lr)
        self.opt_value = torch.optim.Adam(self.value.parameters(), lr=cfg.lr)

    def _q(self, net: EnsembleMLP, x_sa: torch.Tensor) -> torch.Tensor:
        return net(x_sa)[..., 0]  # [2, N]

    def update(self) -> dict[str, float]:
        cfg = self.config
        ia, ib, lab = self.sample_pairs(cfg.batch_size)
        row: dict[str, float] = {}
        idx = torch.cat([ia, ib])
        obs, act = self.obs[idx], self.act[idx]
        valid = self.valid[idx]
        if self.steps_done < max(1, self.phase_steps(cfg.reward_steps, 0.1)):
            r = self.reward(obs, act)  # [E, 2n, T]
            ret = (r * valid.to(r.dtype)).sum(-1)
            ra, rb = ret.chunk(2, dim=-1)
            d = ra - rb
            loss_r = bt_nll(d, lab).mean()
            self.opt_reward.zero_grad(set_to_none=True)
            loss_r.backward()
            self.opt_reward.step()
            with torch.no_grad():
                keep = lab != 0.5
                acc = ((d.mean(0) > 0) == (lab > 0.5))[keep].float().mean()
            row.update(loss_reward=float(loss_r.detach()), reward_accuracy=float(acc))
        # transitions of the batch's valid steps with the (frozen) learned reward
        v = valid.reshape(-1)
        o = obs.reshape(-1, *obs.shape[2:])[v]
        a = act.reshape(-1, *act.shape[2:])[v]
        o2 = self.next_obs[idx].reshape(-1, *self.next_obs.shape[2:])[v]
        done = self.terminated[idx].reshape(-1)[v]
        with torch.no_grad():
            rew = self.reward.reward(o, a)
        x_o = self.policy.features(o)
        x_sa = torch.cat([x_o, encode_space(self.act_space, a, x_o.device, x_o.dtype)], -1)
        with torch.no_grad():
            q_t = self._q(self.target, x_sa).min(0).values
        # value: expectile regression onto the target critics
        vs = self.value(x_o)[0, :, 0]
        loss_v = expectile_loss(q_t - vs, cfg.expectile).mean()
        self.opt_value.zero_grad(set_to_none=True)
        loss_v.backward()
        self.opt_value.step()
        # actor: advantage-weighted regression
        with torch.no_grad():
            w = torch.exp(cfg.beta * (q_t - vs.detach())).clamp(max=cfg.clip_weight)
        self.policy.train()
        lp = self.policy.log_prob(o, a)
        loss_pi = -(w * lp).mean()
        self.optimizer.zero_grad(set_to_none=True)
        loss_pi.backward()
        self.optimizer.step()
        # critics: r̂ + γ(1 − done)V(s')
        with torch.no_grad():
            v2 = self.value(self.policy.features(o2))[0, :, 0]
            target = rew + self.gamma * (1.0 - done.to(rew.dtype)) * v2
        qs = self._q(self.critic, x_sa)
        loss_q = ((qs - target.unsqueeze(0)) ** 2).mean()
        self.opt_critic.zero_grad(set_to_none=True)
        loss_q.backward()
        self.opt_critic.step()
        with torch.no_grad():
            for p, pt in zip(self.critic.parameters(), self.target.parameters()):
                pt.lerp_(p, cfg.tau)
        row.update(
            loss_value=float(loss_v.detach()),
            loss_actor=float(loss_pi.detach()),
            loss_critic=float(loss_q.detach()),
        )
        return row

    def _modules(self) -> dict[str, Any]:
        return {
            "policy": self.policy,
            "optimizer": self.optimizer,
            "reward": self.reward,
            "opt_reward": self.opt_reward,
            "critic": self.critic,
            "target": self.target,
            "value": self.value,
            "opt_critic": self.opt_critic,
            "opt_value": self.opt_value,
        }
