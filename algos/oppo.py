"""OPPO — Offline Preference-guided Policy Optimization (Kang et al., ICML 2023): a policy
conditioned on a learned context, with the preferences deciding the context; no reward model.

Three pieces are learned together:

- an encoder I(τ) → z ∈ R^d of a trajectory segment (a transformer over the segment's steps,
  or a per-step MLP, mean-pooled over the valid steps);
- a context-conditioned policy π(a | s, z) (a causal transformer over windows of ``window``
  steps, tokens (s_t, a_{t−1}, z), or a Markov MLP on (s, z)) trained by **hindsight information
  matching**: reconstruct the actions of τ given z = I(τ)::

      L_HIM = E_τ [ −log π(a_t | s_t, I(τ)) ]   (squared error for Box actions)

- the **optimal context** z*, an anchor in z-space that preferred segments are close to and
  rejected ones far from (triplet margin loss, m = 1, p = 2)::

      ℓ(z*, z⁺, z⁻) = max(‖z* − z⁺‖₂ − ‖z* − z⁻‖₂ + m, 0),  z^± = I(τ^±)

Alternating training, as in the authors' code: (1) encoder and policy take one step on
``recon_weight·L_HIM + pref_weight·ℓ(sg z*, I(τ⁺), I(τ⁻)) + norm_weight·L_norm``;
(2) z* takes one step on ℓ(z*, sg I(τ⁺), sg I(τ⁻)) with the encodings recomputed and detached,
plus ``zstar_norm_weight·(‖z*‖ − 1)²``. That last term is a lab choice, not the authors' (their
z* sees the triplet loss only; ``zstar_norm_weight=0`` reproduces it): the triplet loss alone
pushes z* outwards, past the unit sphere the encodings are held to, where π(·|s, z*) has never
been trained; on the delivery gridworld that costs about half of the normalized return.
Evaluation runs π(· | s, z*): the context z* plays the role a return-to-go (or a reward) plays
elsewhere. Defaults (the paper's scripted-label setting): window 20, z_dim 8, weights 1 / 0.1 /
0.1, margin 1; the transformer sizes and optimizer follow the Decision-Transformer code the
authors build on (embedding 128, 3 layers, 1 head, dropout 0.1, AdamW 1e-4 with weight decay 1e-4
and linear warm-up, gradient-norm clip 0.25, batch 64).

Loss scaling (``loss_scaling``): ``"authors"`` (default) is the authors' code, L_HIM =
recon(τ_a) + recon(τ_b), each a mean over valid steps × action dimensions of the squared action
error (the categorical negative log-likelihood for Discrete actions, d = 1), and L_norm =
mean (‖I(τ_a)‖ − 1)² + mean (‖I(τ_b)‖ − 1)². ``"pooled"`` is the lab's earlier form: one mean
over the steps of both segments of −log π summed over the d action dimensions, and L_norm one
mean over both segments; it is the authors' loss times d/2, so relative to reconstruction the
authors' preference and norm weights 0.1 / 0.1 are 0.05·d and 0.1·d in pooled units.

One loss, one place: :func:`triplet_loss`, :func:`preference_triplet_loss` and :func:`norm_loss`
are what the learner and the tests call. Soft labels y = P(a ≻ b) weight the two directions,
y·ℓ(z*, I(a), I(b)) + (1 − y)·ℓ(z*, I(b), I(a)); ties (y = ½) and masked pairs are left out (the
authors drop ties); for hard labels this is the authors' loss.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from prl.algos.offline_baselines import (
    METAWORLD_ENVS,
    MUJOCO_ENVS,
    TABULAR_ENVS,
    GenDropout,
    OfflineConfig,
    OfflineLearner,
    policy_mlp,
    tabular_metrics,
)
from prl.config import option, require
from prl.data import PreferenceDataset
from prl.errors import ConfigError, InvalidInputError
from prl.reward_model import encode_space, space_dim
from prl.run import register_algo
from prl.smoke import Smoke

__all__ = [
    "OPPO",
    "OPPOConfig",
    "OPPOModel",
    "horizon_value",
    "norm_loss",
    "preference_triplet_loss",
    "triplet_loss",
]

ARCHS = ("transformer", "mlp")
OPPO_ENVS = (*TABULAR_ENVS, *MUJOCO_ENVS, *METAWORLD_ENVS)


# ---- the losses ----------------------------------------------------------------------------------
def triplet_loss(
    anchor: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    margin: float = 1.0,
    p: float = 2.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Per-triplet max(‖a − z⁺ + ε‖_p − ‖a − z⁻ + ε‖_p + m, 0) over the last axis (the anchor
    broadcasts); ε as in ``torch.nn.TripletMarginLoss`` keeps the gradient finite at 0."""
    d_pos = torch.linalg.vector_norm(anchor - positive + eps, ord=p, dim=-1)
    d_neg = torch.linalg.vector_norm(anchor - negative + eps, ord=p, dim=-1)
    return torch.clamp(d_pos - d_neg + margin, min=0.0)


def preference_triplet_loss(
    anchor: torch.Tensor,
    z_a: torch.Tensor,
    z_b: torch.Tensor,
    label: torch.Tensor,
    margin: float = 1.0,
    p: float = 2.0,
    mask: torch.Tensor | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """Mean over the non-tied, unmasked pairs of y·ℓ(z*, z_a, z_b) + (1 − y)·ℓ(z*, z_b, z_a),
    y = P(a ≻ b) (OPPO's preference loss; 0 when no pair carries a direction)."""
    y = torch.as_tensor(label, dtype=z_a.dtype, device=z_a.device)
    keep = y != 0.5
    if mask is not None:
        keep = keep & torch.as_tensor(mask, dtype=torch.bool, device=z_a.device)
    ab = triplet_loss(anchor, z_a, z_b, margin, p, eps)
    ba = triplet_loss(anchor, z_b, z_a, margin, p, eps)
    per = y * ab + (1.0 - y) * ba
    k = keep.to(per.dtype)
    return (per * k).sum() / torch.clamp(k.sum(), min=1.0)


def norm_loss(z: torch.Tensor) -> torch.Tensor:
    """mean (‖z‖₂ − 1)² over the leading axes: keeps encodings on the unit sphere's scale."""
    return torch.square(torch.linalg.vector_norm(z, dim=-1) - 1.0).mean()


def horizon_value(mdp: Any, pi: np.ndarray, horizon: int) -> float:
    """E Σ_{t<H} γ^t r_t of policy ``pi [S, A]`` from μ0 over at most H steps (episodes end on
    entering a terminal state): H Bellman-expectation backups from V = 0, in float64."""
    pi = np.asarray(pi, dtype=np.float64)
    cont = mdp.P * (~np.asarray(mdp.terminal, bool))[None, None, :]
    V = np.zeros(mdp.S)
    for _ in range(int(horizon)):
        V = (pi * (mdp.R + mdp.gamma * cont @ V)).sum(1)
    return float(mdp.mu0 @ V)


# ---- networks ------------------------------------------------------------------------------------
class _Block(nn.Module):
    """Pre-LayerNorm transformer block; dropout masks come from an explicit generator."""

    def __init__(self, d: int, heads: int, dropout: float, generator: torch.Generator):
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.attn = nn.MultiheadAttention(d, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.drop = GenDropout(dropout, generator)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None, pad: torch.Tensor | None
    ) -> torch.Tensor:
        h = self.ln1(x)
        a, _ = self.attn(h, h, h, attn_mask=attn_mask, key_padding_mask=pad, need_weights=False)
        x = x + self.drop(a)
        return x + self.drop(self.mlp(self.ln2(x)))


class _Transformer(nn.Module):
    """Linear token embedding + learned positions + blocks + final LayerNorm."""

    def __init__(
        self,
        in_dim: int,
        d: int,
        layers: int,
        heads: int,
        max_len: int,
        dropout: float,
        generator: torch.Generator,
    ):
        super().__init__()
        self.embed = nn.Linear(in_dim, d)
        self.pos = nn.Parameter(0.02 * torch.randn(max_len, d))
        self.drop = GenDropout(dropout, generator)
        self.blocks = nn.ModuleList(_Block(d, heads, dropout, generator) for _ in range(layers))
        self.ln = nn.LayerNorm(d)

    def forward(
        self, x: torch.Tensor, causal: bool = False, pad: torch.Tensor | None = None
    ) -> torch.Tensor:
        L = x.shape[1]
        if L > self.pos.shape[0]:
            raise InvalidInputError(f"sequence of {L} steps exceeds the {self.pos.shape[0]} known")
        h = self.drop(self.embed(x) + self.pos[:L])
        mask = None
        if causal:
            mask = torch.ones(L, L, dtype=torch.bool, device=x.device).triu(1)
        for blk in self.blocks:
            h = blk(h, mask, pad)
        return self.ln(h)


class OPPOModel(nn.Module):
    """The encoder I(τ) → z and the context policy π(a | s, z) over a gymnasium space pair.

    Observations are one-hot (Discrete) or standardized with the dataset's mean/std (Box);
    Box actions are handled in [−1, 1] (squared-error "mse" head with tanh, as the authors'
    MSE action loss); Discrete actions get a categorical head.
    """

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        *,
        arch: str = "transformer",
        z_dim: int = 8,
        window: int = 20,
        max_len: int = 20,
        hidden: Sequence[int] = (256, 256),
        embed_dim: int = 128,
        n_layers: int = 3,
        n_heads: int = 1,
        dropout: float = 0.1,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if arch not in ARCHS:
            raise ConfigError(f"arch must be one of {ARCHS}, got {arch!r}")
        self.discrete = isinstance(action_space, spaces.Discrete)
        if not self.discrete and not isinstance(action_space, spaces.Box):
            raise ConfigError(f"OPPO supports Discrete and Box actions, got {action_space}")
        self.observation_space, self.action_space = observation_space, action_space
        self.arch, self.z_dim, self.window = arch, int(z_dim), int(window)
        self.generator = generator if generator is not None else torch.Generator()
        g = self.generator
        do, da = space_dim(observation_space), space_dim(action_space)
        self.obs_dim, self.act_dim = do, da
        self.register_buffer("obs_mean", torch.zeros(do))
        self.register_buffer("obs_std", torch.ones(do))
        if not self.discrete:
            self.register_buffer("low", torch.as_tensor(action_space.low, dtype=torch.float32))
            self.register_buffer("high", torch.as_tensor(action_space.high, dtype=torch.float32))
        if arch == "transformer":
            self.enc = _Transformer(do + da, embed_dim, n_layers, n_heads, max_len, dropout, g)
            self.enc_head = nn.Linear(embed_dim, self.z_dim)
            pol_in = do + da + self.z_dim
            self.pol = _Transformer(pol_in, embed_dim, n_layers, n_heads, window, dropout, g)
            self.pol_head = nn.Linear(embed_dim, da)
        else:
            hid = list(hidden) or [embed_dim]
            self.enc = policy_mlp(do + da, hid[-1], hid[:-1], dropout, g)
            self.enc_head = nn.Linear(hid[-1], self.z_dim)
            self.pol = policy_mlp(do + self.z_dim, da, hid, dropout, g)
            self.pol_head = nn.Identity()

    # -- features ----------------------------------------------------------------------------------
    def obs_features(self, obs: Any) -> torch.Tensor:
        """Encoded observations ``[*batch, obs_dim]``."""
        x = encode_space(self.observation_space, obs, self.obs_mean.device, torch.float32)
        return (x - self.obs_mean) / self.obs_std

    def act_features(self, actions: torch.Tensor) -> torch.Tensor:
        """One-hot (Discrete) or [−1, 1]-scaled (Box) actions ``[*batch, act_dim]``."""
        if self.discrete:
            return encode_space(self.action_space, actions, self.obs_mean.device, torch.float32)
        a = 2.0 * (actions.to(torch.float32) - self.low) / (self.high - self.low) - 1.0
        return a.clamp(-1.0, 1.0)

    def set_obs_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the observation standardization (Box observations only)."""
        if isinstance(self.observation_space, spaces.Discrete):
            return
        self.obs_mean.copy_(mean.to(self.obs_mean))
        self.obs_std.copy_(std.to(self.obs_std))

    # -- the encoder I(τ) --------------------------------------------------------------------------
    def encode(
        self, obs: Any, actions: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """z = I(τ) ``[B, z_dim]`` of segments ``obs [B, T, ...]``, ``actions [B, T, ...]``;
        ``valid [B, T]`` masks padding steps (mean-pooled over the valid ones)."""
        return self.encode_features(self.obs_features(obs), self.act_features(actions), valid)

    def encode_features(
        self, obs_f: torch.Tensor, act_f: torch.Tensor, valid: torch.Tensor | None = None
    ) -> torch.Tensor:
        """:meth:`encode` on already encoded observations and actions."""
        x = torch.cat([obs_f, act_f], -1)
        B, T = x.shape[:2]
        v = torch.ones(B, T, dtype=torch.bool, device=x.device) if valid is None else valid.bool()
        v = v.clone()
        v[:, 0] = True  # a segment always has its first step (keeps attention well defined)
        if self.arch == "transformer":
            h = self.enc(x, causal=False, pad=~v)
        else:
            h = self.enc(x)
        w = v.to(h.dtype).unsqueeze(-1)
        pooled = (h * w).sum(1) / w.sum(1)
        return self.enc_head(pooled)

    # -- the policy π(a | s, z) --------------------------------------------------------------------
    def _seq_out(self, obs_f: torch.Tensor, act_f: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """Head outputs ``[B, T, act_dim]`` for every step (the transformer sees windows of
        ``window`` steps; the first token of a window has no previous action)."""
        B, T = obs_f.shape[:2]
        if self.arch == "mlp":
            zz = z.unsqueeze(1).expand(B, T, z.shape[-1])
            return self.pol(torch.cat([obs_f, zz], -1))
        W = self.window
        n = math.ceil(T / W)
        pad = n * W - T
        if pad:
            obs_f = F.pad(obs_f, (0, 0, 0, pad))
            act_f = F.pad(act_f, (0, 0, 0, pad))
        o = obs_f.reshape(B * n, W, -1)
        a = act_f.reshape(B * n, W, -1)
        prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], 1)
        zz = z.repeat_interleave(n, 0).unsqueeze(1).expand(B * n, W, z.shape[-1])
        h = self.pol(torch.cat([o, prev, zz], -1), causal=True)
        return self.pol_head(h).reshape(B, n * W, -1)[:, :T]

    def log_prob(self, obs: Any, actions: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log π(a_t | s_t, z) ``[B, T]`` (−‖tanh μ − a‖² for Box actions in [−1, 1])."""
        return self.log_prob_features(
            self.obs_features(obs), self.act_features(actions), actions, z
        )

    def log_prob_features(
        self, obs_f: torch.Tensor, act_f: torch.Tensor, actions: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """:meth:`log_prob` on encoded observations/actions (``actions`` raw, for Discrete)."""
        out = self._seq_out(obs_f, act_f, z)
        if self.discrete:
            return torch.log_softmax(out, -1).gather(-1, actions.long().unsqueeze(-1))[..., 0]
        return -torch.square(torch.tanh(out) - act_f).sum(-1)

    def head_to_action(self, out: torch.Tensor, deterministic: bool = True) -> torch.Tensor:
        """Env actions from head outputs (argmax / tanh mean; sampled when not deterministic)."""
        g = self.generator
        if self.discrete:
            if deterministic:
                return out.argmax(-1)
            p = torch.softmax(out, -1)
            return torch.multinomial(p, 1, generator=g)[:, 0]
        a = torch.tanh(out)
        if not deterministic:
            noise = torch.randn(a.shape, generator=g, device=a.device) / math.sqrt(2.0)
            a = (a + noise).clamp(-1.0, 1.0)
        return self.low + (a + 1.0) * 0.5 * (self.high - self.low)

    @torch.no_grad()
    def step_out(
        self, obs_hist: torch.Tensor, prev_hist: torch.Tensor, z: torch.Tensor
    ) -> torch.Tensor:
        """Head output for the last step of feature histories ``[E, L, ·]`` (L ≤ window; the
        first row of ``prev_hist`` must be zeros), context ``z [E, z_dim]``."""
        if self.arch == "mlp":
            return self.pol(torch.cat([obs_hist[:, -1], z], -1))
        zz = z.unsqueeze(1).expand(z.shape[0], obs_hist.shape[1], z.shape[-1])
        h = self.pol(torch.cat([obs_hist, prev_hist, zz], -1), causal=True)
        return self.pol_head(h[:, -1])


class Anchor(nn.Module):
    """The optimal context z* (a free parameter with its own optimizer)."""

    def __init__(self, z: torch.Tensor):
        super().__init__()
        self.z = nn.Parameter(z.clone())

    def forward(self) -> torch.Tensor:
        return self.z


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Initialize modules from ``seed`` without reading or disturbing the global torch RNG."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(seed))
        yield


# ---- configuration -------------------------------------------------------------------------------
@dataclass
class OPPOConfig(OfflineConfig):
    """OPPO: encoder, context policy, optimal context; mixed-quality data when none is given."""

    segment_length: int = option(0, "generated data: steps per segment (0: window)")
    behaviour_noise: float = option(
        -1.0, "generated MuJoCo data: Gaussian action std of medium/expert (-1: 0.1)"
    )
    label_beta: float = option(-1.0, "unused by OPPO (labels come from the teacher option)")
    expert_mix: float = option(1.0, "unused by OPPO (tabular levels: see medium_fraction)")
    expert_path: str = option("", "unused by OPPO (SAC snapshots: see sac_dir)")
    episodes: int = option(40, "generated MuJoCo data: episodes per behaviour level")
    expert_steps: int = option(2000, "generated MuJoCo data: SAC steps of 'expert' (10^6 real)")
    policy: str = option("auto", "auto | categorical (Discrete) | mse (Box, tanh + squared error)")
    lr: float = option(1e-4, "AdamW learning rate of encoder and policy")
    discount: float = option(-1.0, "unused by OPPO (it never sums log-probabilities)")
    arch: Literal["transformer", "mlp"] = option("transformer", "encoder/policy networks")
    window: int = option(20, "policy context window (steps) of the transformer")
    z_dim: int = option(8, "context dimension")
    recon_weight: float = option(1.0, "weight of the hindsight-information-matching loss")
    pref_weight: float = option(0.1, "weight of the triplet preference loss (encoder)")
    norm_weight: float = option(0.1, "weight of the (‖z‖ − 1)² regularizer")
    loss_scaling: Literal["authors", "pooled"] = option(
        "authors",
        "authors: recon(a) + recon(b), each a mean over steps × action dims, norm summed over "
        "both segments; pooled: one mean over both segments' steps of the summed action error",
    )
    margin: float = option(1.0, "triplet margin m")
    p_norm: float = option(2.0, "norm p of the triplet distances")
    zstar_lr: float = option(-1.0, "Adam learning rate of z* (-1: lr)")
    zstar_norm_weight: float = option(
        1.0, "weight of (‖z*‖ − 1)² in z*'s own loss (lab default; 0: the authors' triplet only)"
    )
    embed_dim: int = option(128, "transformer width (also the MLP width when hidden is [])")
    n_layers: int = option(3, "transformer layers")
    n_heads: int = option(1, "attention heads")
    dropout: float = option(0.1, "dropout of every network")
    hidden: list[int] = option([256, 256], "hidden widths of the MLP encoder/policy")  # noqa: RUF009
    batch_size: int = option(64, "labelled pairs per gradient step (both segments are used)")
    weight_decay: float = option(1e-4, "AdamW weight decay of the encoder and policy")
    warmup_steps: int | None = option(
        None, "linear learning-rate warm-up (gradient steps); None: 10% of the run (10k of 100k)"
    )
    grad_clip: float = option(0.25, "gradient-norm clip of encoder and policy (0: none)")
    teacher: str = option("scripted", "generated data: labelling teacher (prl.offline_datasets)")
    levels: list[str] = option(["random", "medium", "expert"], "generated data: behaviours")  # noqa: RUF009
    medium_fraction: float = option(0.5, "generated tabular data: normalized value of 'medium'")
    medium_steps: int = option(0, "generated MuJoCo data: SAC steps of 'medium' (0: 1/4)")
    sac_dir: str = option("", "generated MuJoCo data: directory caching the SAC snapshots")

    def validate(self) -> None:
        super().validate()
        require(self.window >= 1 and self.z_dim >= 1, "window and z_dim must be >= 1")
        require(
            min(self.recon_weight, self.pref_weight, self.norm_weight, self.zstar_norm_weight) >= 0,
            "loss weights must be >= 0",
        )
        require(self.margin >= 0 and self.p_norm >= 1, "margin must be >= 0 and p_norm >= 1")
        require(self.zstar_lr == -1.0 or self.zstar_lr > 0, "zstar_lr must be > 0 or -1")
        require(self.embed_dim >= 1 and self.n_layers >= 1, "embed_dim and n_layers >= 1")
        require(
            self.n_heads >= 1 and self.embed_dim % self.n_heads == 0,
            f"n_heads must divide embed_dim, got {self.n_heads} and {self.embed_dim}",
        )
        require(
            self.weight_decay >= 0 and (self.warmup_steps or 0) >= 0, "weight_decay, warmup >= 0"
        )
        require(self.grad_clip >= 0, "grad_clip must be >= 0")
        require(self.policy in ("auto", "categorical", "mse"), "OPPO policy: auto|categorical|mse")
        require(0 <= self.medium_fraction <= 1, "medium_fraction must be in [0, 1]")
        require(self.medium_steps >= 0, "medium_steps must be >= 0")
        from prl.offline_datasets import LEVELS, TEACHERS

        require(self.teacher in TEACHERS, f"teacher must be one of {TEACHERS}: {self.teacher!r}")
        require(
            bool(self.levels) and all(x in LEVELS for x in self.levels),
            f"levels must be among {LEVELS}, got {self.levels}",
        )


_DATA_CACHE: dict[str, PreferenceDataset] = {}


def oppo_dataset(
    env: str,
    env_kwargs: dict[str, Any],
    cfg: OPPOConfig,
    path: str | None = None,
    progress: bool = False,
) -> PreferenceDataset:
    """OPPO's generated default: :func:`prl.offline_datasets.mixed_quality_dataset` from the
    config's data fields (segments of ``segment_length`` or ``window`` steps; cached in memory)."""
    from prl import envs
    from prl.offline_datasets import mixed_quality_dataset

    fields = (
        "data_mode",
        "n_segments",
        "n_pairs",
        "segment_length",
        "window",
        "behaviour_noise",
        "data_seed",
        "episodes",
        "expert_steps",
        "medium_steps",
        "teacher",
        "levels",
        "medium_fraction",
        "sac_dir",
    )
    key = json.dumps([env, env_kwargs, {k: getattr(cfg, k) for k in fields}], sort_keys=True)
    if path is None and key in _DATA_CACHE:
        return _DATA_CACHE[key]
    medium = cfg.medium_steps or max(1, cfg.expert_steps // 4)
    ds = mixed_quality_dataset(
        path,
        make_env=lambda: envs.make(env, **env_kwargs),
        env_name=env,
        env_kwargs=env_kwargs,
        levels=cfg.levels,
        n_segments=cfg.n_segments,
        n_pairs=cfg.n_pairs,
        segment_length=cfg.segment_length or cfg.window,
        teacher=cfg.teacher,
        mode=cfg.data_mode,
        seed=cfg.data_seed,
        medium_fraction=cfg.medium_fraction,
        episodes=cfg.episodes,
        medium_steps=min(medium, cfg.expert_steps),
        expert_steps=cfg.expert_steps,
        sac_dir=cfg.sac_dir or None,
        action_noise=0.1 if cfg.behaviour_noise < 0 else cfg.behaviour_noise,
        progress=progress,
    )
    if path is None:
        _DATA_CACHE[key] = ds
    return ds


# ---- the learner ---------------------------------------------------------------------------------
@register_algo(
    "oppo",
    description="OPPO: context-conditioned policy + optimal context from preferences, no reward",
    envs=OPPO_ENVS,
)
class OPPO(OfflineLearner):
    """Offline preference-guided policy optimization (one alternating step per ``step()``)."""

    Config = OPPOConfig
    smoke = Smoke(  # test_oppo_is_deterministic_and_resumes_exactly (mlp)
        env="random_mdp",
        steps=12,
        config={
            "hidden": [32],
            "dropout": 0.1,
            "lr": 3e-3,
            "batch_size": 32,
            "eval_every": 8,
            "embed_dim": 32,
            "n_layers": 1,
            "zstar_lr": 1e-2,
            "warmup_steps": 5,
            "eval_episodes": 1,
            "arch": "mlp",
            "n_segments": 90,
            "n_pairs": 150,
            "segment_length": 6,
            "window": 4,
        },
        env_kwargs={"S": 6, "A": 3},
        source="tests/test_oppo.py::test_oppo_is_deterministic_and_resumes_exactly",
        family="oppo",
    )
    cli_default_steps = 100
    default_steps = 100_000

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        if env not in OPPO_ENVS:
            raise ConfigError(f"OPPO runs on {', '.join(OPPO_ENVS)}; got {env!r}")

    def make_dataset(
        self,
        env: str,
        env_kwargs: dict[str, Any],
        config: Any,
        path: str | None = None,
        progress: bool = False,
    ) -> PreferenceDataset:
        return oppo_dataset(env, env_kwargs, config, path=path, progress=progress)

    def _build(self) -> None:
        cfg = self.config
        if cfg.policy != "auto" and (cfg.policy == "categorical") != isinstance(
            self.act_space, spaces.Discrete
        ):
            raise ConfigError(
                f"policy {cfg.policy!r} does not fit the action space {self.act_space}"
            )
        T = int(self.obs.shape[1])
        with _seeded(self.seed):
            self.model = OPPOModel(
                self.obs_space,
                self.act_space,
                arch=cfg.arch,
                z_dim=cfg.z_dim,
                window=cfg.window,
                max_len=T,
                hidden=cfg.hidden,
                embed_dim=cfg.embed_dim,
                n_layers=cfg.n_layers,
                n_heads=cfg.n_heads,
                dropout=cfg.dropout,
                generator=self.tgen,
            )
        self.model.to(self.device)
        if isinstance(self.obs_space, spaces.Box):
            flat = self.obs[self.valid].reshape(-1, self.model.obs_dim).double()
            self.model.set_obs_stats(flat.mean(0), flat.std(0, correction=0) + 1e-6)
        z0 = torch.randn(cfg.z_dim, generator=self.tgen, device=self.device) / math.sqrt(cfg.z_dim)
        self.zstar = Anchor(z0).to(self.device)
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay
        )
        zlr = cfg.lr if cfg.zstar_lr < 0 else cfg.zstar_lr
        self.opt_zstar = torch.optim.Adam(self.zstar.parameters(), lr=zlr)
        self.policy = self.model  # what OfflineLearner calls the trained policy
        named = list(self.model.named_parameters())
        self._enc_params = [p for n, p in named if n.startswith("enc")]
        self._pol_params = [p for n, p in named if n.startswith("pol")]
        self._features()

    # -- training ----------------------------------------------------------------------------------
    def _features(self) -> None:
        """Encode the whole dataset once (one-hot / standardized observations, scaled actions)."""
        with torch.no_grad():
            self.obs_f = torch.cat([self.model.obs_features(o) for o in self.obs.split(1024)])
            self.act_f = torch.cat([self.model.act_features(a) for a in self.act.split(1024)])

    def losses(
        self, ia: torch.Tensor, ib: torch.Tensor, label: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The encoder/policy losses of one batch of pairs (z* detached) and the encodings."""
        cfg = self.config
        idx = torch.cat([ia, ib])
        obs_f, act_f, valid = self.obs_f[idx], self.act_f[idx], self.valid[idx]
        z = self.model.encode_features(obs_f, act_f, valid)
        lp = self.model.log_prob_features(obs_f, act_f, self.act[idx], z)
        v = valid.to(lp.dtype)
        za, zb = z.chunk(2)
        if cfg.loss_scaling == "authors":  # per segment side: mean over steps × action dims
            d = 1.0 if self.model.discrete else float(self.model.act_dim)
            recon = sum(
                -(lp_s * v_s).sum() / (torch.clamp(v_s.sum(), min=1.0) * d)
                for lp_s, v_s in zip(lp.chunk(2), v.chunk(2), strict=True)
            )
            nrm = norm_loss(za) + norm_loss(zb)
        else:
            recon = -(lp * v).sum() / torch.clamp(v.sum(), min=1.0)
            nrm = norm_loss(z)
        pref = preference_triplet_loss(self.zstar().detach(), za, zb, label, cfg.margin, cfg.p_norm)
        total = cfg.recon_weight * recon + cfg.pref_weight * pref + cfg.norm_weight * nrm
        return {"total": total, "recon": recon, "pref": pref, "norm": nrm, "z": z}

    def update(self) -> dict[str, float]:
        cfg = self.config
        ia, ib, lab = self.sample_pairs(cfg.batch_size)
        # (1) encoder + policy: HIM + triplet (anchor detached) + norm regularizer
        warmup = self.phase_steps(cfg.warmup_steps, 0.1)
        if warmup > 0:
            scale = min(1.0, (self.steps_done + 1) / warmup)
            for group in self.optimizer.param_groups:
                group["lr"] = cfg.lr * scale
        self.model.train()
        out = self.losses(ia, ib, lab)
        self.optimizer.zero_grad(set_to_none=True)
        out["total"].backward()
        if cfg.grad_clip > 0:
            nn.utils.clip_grad_norm_(self._enc_params, cfg.grad_clip)
            nn.utils.clip_grad_norm_(self._pol_params, cfg.grad_clip)
        self.optimizer.step()
        # (2) z*: triplet loss on the updated encodings, detached
        idx = torch.cat([ia, ib])
        self.model.eval()
        with torch.no_grad():
            z = self.model.encode_features(self.obs_f[idx], self.act_f[idx], self.valid[idx])
        za, zb = z.chunk(2)
        loss_z = preference_triplet_loss(self.zstar(), za, zb, lab, cfg.margin, cfg.p_norm)
        if cfg.zstar_norm_weight > 0:
            loss_z = loss_z + cfg.zstar_norm_weight * norm_loss(self.zstar().unsqueeze(0))
        self.opt_zstar.zero_grad(set_to_none=True)
        loss_z.backward()
        self.opt_zstar.step()
        with torch.no_grad():
            zs = self.zstar().detach()
            da = torch.linalg.vector_norm(zs - za, dim=-1)
            db = torch.linalg.vector_norm(zs - zb, dim=-1)
            keep = lab != 0.5
            right = torch.where(lab > 0.5, da < db, db < da)
            acc = right[keep].float().mean() if bool(keep.any()) else torch.tensor(float("nan"))
        return {
            "loss_recon": float(out["recon"].detach()),
            "loss_pref": float(out["pref"].detach()),
            "loss_norm": float(out["norm"].detach()),
            "loss_zstar": float(loss_z.detach()),
            "pref_accuracy": float(acc),
            "zstar_norm": float(torch.linalg.vector_norm(zs)),
        }

    # -- contexts ----------------------------------------------------------------------------------
    @torch.no_grad()
    def encodings(self, idx: Any = None, chunk: int = 4096) -> torch.Tensor:
        """I(τ) ``[n, z_dim]`` of dataset segments ``idx`` (all by default), eval mode."""
        idx = torch.arange(self.n_segments, device=self.device) if idx is None else idx
        idx = torch.as_tensor(idx, device=self.device)
        was = self.model.training
        self.model.eval()
        out = [self.model.encode(self.obs[i], self.act[i], self.valid[i]) for i in idx.split(chunk)]
        self.model.train(was)
        return torch.cat(out) if out else torch.zeros(0, self.config.z_dim, device=self.device)

    def context(self, z: Any = None) -> torch.Tensor:
        """z* (default) or a given context as a ``[z_dim]`` tensor on the device."""
        if z is None:
            return self.zstar().detach()
        t = torch.as_tensor(np.asarray(z, dtype=np.float32), device=self.device)
        if t.shape != (self.config.z_dim,):
            want = self.config.z_dim
            raise InvalidInputError(f"a context has shape ({want},), got {tuple(t.shape)}")
        return t

    # -- evaluation --------------------------------------------------------------------------------
    def policy_table(self, z: Any = None) -> np.ndarray:
        """π(a | s, z) ``[S, A]`` on every state (tabular envs, MLP policy; z* by default)."""
        if not self.tabular or self.config.arch != "mlp":
            raise InvalidInputError("policy_table needs a tabular env and arch 'mlp'")
        was = self.model.training
        self.model.eval()
        with torch.no_grad():
            zz = self.context(z).unsqueeze(0).expand(self.mdp.S, -1)
            obs_f = self.model.obs_features(torch.arange(self.mdp.S, device=self.device))
            lp = torch.log_softmax(self.model.step_out(obs_f.unsqueeze(1), None, zz), -1)
        self.model.train(was)
        pi = lp.double().exp().cpu().numpy()
        return pi / pi.sum(1, keepdims=True)

    def evaluate(self, z: Any = None) -> dict[str, float]:
        """Metrics of π(· | s, z*) (or of a given context z): exact J on tabular envs with the
        MLP policy; otherwise ``eval_episodes`` rollouts (tabular: discounted, J estimated)."""
        self.evals += 1
        if self.tabular and self.config.arch == "mlp":
            return tabular_metrics(self.mdp, self.policy_table(z))
        return self.rollouts(self.config.eval_episodes, z)

    def rollouts(self, n: int, z: Any = None, seed_offset: int = 0) -> dict[str, float]:
        """Run ``n`` deterministic episodes of π(· | s, z) in lockstep (batched forward passes;
        the transformer sees the last ``window`` steps)."""
        from prl import envs

        ctx = self.context(z)
        rng = np.random.default_rng([self.seed, 7919, self.evals, seed_offset])
        envs_ = [envs.make(self.env_name, **self.env_kwargs) for _ in range(n)]
        obs = [e.reset(seed=int(rng.integers(2**31 - 1)))[0] for e in envs_]
        alive = np.ones(n, bool)
        ret, disc, succ, lens = np.zeros(n), np.zeros(n), np.zeros(n), np.zeros(n, np.int64)
        gamma = float(self.mdp.gamma) if self.tabular else 1.0
        W = self.config.window
        zz = ctx.unsqueeze(0).expand(n, -1)
        hist_o: list[torch.Tensor] = []
        hist_a: list[torch.Tensor] = []
        was = self.model.training
        self.model.eval()
        t = 0
        try:
            while alive.any():
                o = self.model.obs_features(np.asarray(obs))
                hist_o = [*hist_o, o][-W:]
                L = len(hist_o)
                oh = torch.stack(hist_o, 1)
                first = torch.zeros(n, self.model.act_dim, device=self.device)
                ph = torch.stack([first, *hist_a[len(hist_a) - (L - 1) :]], 1)
                with torch.no_grad():
                    a = self.model.head_to_action(self.model.step_out(oh, ph, zz))
                hist_a = [*hist_a, self.model.act_features(a)][-W:]
                acts = a.cpu().numpy()
                for i in np.flatnonzero(alive):
                    o2, r, term, trunc, info = envs_[i].step(acts[i])
                    ret[i] += float(r)
                    disc[i] += gamma**t * float(r)
                    succ[i] = max(succ[i], float(bool(info.get("success", False))))
                    lens[i] += 1
                    obs[i] = o2
                    if term or trunc:
                        alive[i] = False
                t += 1
        finally:
            self.model.train(was)
            for e in envs_:
                e.close()
        out = {
            "return": float(ret.mean()),
            "success": float(succ.mean()),
            "episode_length": float(lens.mean()),
        }
        if self.tabular:  # discounted J, normalized with the exact H-step values of the
            # uniform and the optimal policy (episodes are truncated at the env's horizon H)
            mdp, H = self.mdp, int(self.env.unwrapped.horizon)
            J_star = horizon_value(mdp, mdp.optimal_policy(), H)
            J_unif = horizon_value(mdp, np.full((mdp.S, mdp.A), 1.0 / mdp.A), H)
            gap = J_star - J_unif
            out.update(
                return_undiscounted=out["return"],
                **{"return": float(disc.mean())},
                normalized_return=float((disc.mean() - J_unif) / gap) if gap > 0 else 1.0,
            )
        return out

    # -- checkpoints -------------------------------------------------------------------------------
    def _modules(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "zstar": self.zstar,
            "optimizer": self.optimizer,
            "opt_zstar": self.opt_zstar,
        }
