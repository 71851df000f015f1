"""PDPPO — Post-Decision PPO with dual critics (Felizardo et al.), and its SB3 PPO baseline.

A transition splits into a deterministic step to the post-decision state ``s^x = f(s, a)``
and a stochastic step ``s' = g(s^x, ξ)``; the environment reports ``s^x`` in
``info["post_decision_obs"]`` (see :mod:`envs.lotsizing`, :mod:`envs.slippery_lake`).
PDPPO keeps two critics, the state critic V(s) and the post-decision critic V^x(s^x), each
with its own optimizer, and feeds PPO's clipped objective with the larger of the two
advantages.

**Exact formulas** (one rollout of T steps per environment copy; ``d_t = 1`` when the episode
ended at step t; at a time-limit truncation SB3 adds γ V(s_final) to r_t, as for PPO):

    δ_t   = r_t + γ (1 − d_t) V(s_{t+1}) − V(s_t)            (V(s_T): the state after the rollout)
    A^s_t = δ_t + γλ (1 − d_t) A^s_{t+1}                      (GAE(λ), A^s_T = 0)
    R_t   = A^s_t + V(s_t)                                     (the TD(λ) return)
    A^x_t = R_t − V^x(s^x_t)
    A_t   = max(A^s_t, A^x_t)   ("max", PDPPO)   |  (A^s_t + A^x_t)/2 ("mean")
          | A^s_t ("v": PPO's advantage)         |  A^x_t ("vx": post-decision critic only)

Both critics regress on the same return R: V(s_t) → R_t and V^x(s^x_t) → R_t. One R for both
is the post-decision Bellman equation V^x(s^x_t) = E[r_t + γ V(s_{t+1}) | s^x_t]: the TD(λ)
return from t, r_t + γ((1 − λ) V(s_{t+1}) + λ R_{t+1}), does not involve the baseline at t, so
"the return from the post-decision state" and "the return from the state" coincide; with
λ = 1 both are the Monte-Carlo return of the paper. All four modes train both critics (the
mode only picks the advantage), so the ablations cost the same. The advantage is normalized
per minibatch after combining (SB3's ``normalize_advantage``). Each minibatch takes one
backward pass of policy loss + vf_coef·(MSE_V + MSE_Vx) (the three networks share no
parameters), clips each network's gradient norm to ``max_grad_norm`` separately and steps its
own Adam (fused kernel where torch has one). Note that V^x(f(s, a))
depends on the action, so A^x alone is not an action-independent baseline; "max" is the
paper's rule, the others are there to measure that choice.

Learners: ``pdppo`` (``prl run pdppo --env lotsizing``) and ``pdppo_ppo_baseline`` (SB3 PPO
with the same network, rollout and batch settings, observation scaling and reward scaling).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Literal, NamedTuple

import gymnasium as gym
import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor, FlattenExtractor
from stable_baselines3.common.utils import FloatSchedule, explained_variance, obs_as_tensor
from stable_baselines3.common.vec_env import VecEnv
from torch import nn
from torch.nn import functional as F

from prl.common.ppo import clipped_surrogate, gae_recursion
from prl.common.sb3 import RunDirLoad, SB3Learner
from prl.common.vec import VEC_ENV_HELP, check_vec_env, env_apply, find_wrapper, make_vec
from prl.config import option, require
from prl.errors import ConfigError, InvalidInputError
from prl.run import register_algo
from prl.smoke import Smoke

ADVANTAGE_MODES = ("max", "mean", "v", "vx")
POST_KEY = "post_decision_obs"


# ---------------------------------------------------------------------------------------------
# the update rule: advantages and returns (plain numpy, used by the rollout buffer)


def combine_advantages(adv_state: np.ndarray, adv_post: np.ndarray, mode: str) -> np.ndarray:
    """PDPPO's advantage from the two critics' advantages: max (paper), mean, v or vx."""
    if mode == "max":
        return np.maximum(adv_state, adv_post)
    if mode == "mean":
        return 0.5 * (adv_state + adv_post)
    if mode == "v":
        return np.array(adv_state, copy=True)
    if mode == "vx":
        return np.array(adv_post, copy=True)
    raise InvalidInputError(f"advantage mode must be one of {list(ADVANTAGE_MODES)}, got {mode!r}")


def pdppo_advantages(
    rewards: np.ndarray,
    values: np.ndarray,
    post_values: np.ndarray,
    episode_starts: np.ndarray,
    last_values: np.ndarray,
    dones: np.ndarray,
    gamma: float,
    gae_lambda: float,
    mode: str = "max",
) -> dict[str, np.ndarray]:
    """GAE(λ) state advantage A^s, return R = A^s + V, A^x = R − V^x and their combination.

    Arrays are ``[T, n_envs]``; ``episode_starts[t]`` marks s_t as the first state of an
    episode, ``dones`` whether the last step ended one and ``last_values`` = V(s_T) (module
    docstring for the formulas). Computed in float64.
    """
    r = np.asarray(rewards, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    vx = np.asarray(post_values, dtype=np.float64)
    starts = np.asarray(episode_starts, dtype=np.float64)
    # (1 − d_t) and V(s_{t+1}) of every step; the last step looks at the state after the rollout
    nonterminal = np.concatenate([1.0 - starts[1:], (1.0 - np.asarray(dones, np.float64))[None]])
    next_v = np.concatenate([v[1:], np.asarray(last_values, np.float64).reshape(1, *r.shape[1:])])
    deltas = r + gamma * next_v * nonterminal - v
    adv_s = gae_recursion(deltas, gamma * gae_lambda * nonterminal)
    returns = adv_s + v
    adv_x = returns - vx
    return {
        "advantages": combine_advantages(adv_s, adv_x, mode),
        "returns": returns,
        "state_advantages": adv_s,
        "post_advantages": adv_x,
    }


def clip_grad_norms(groups: list[list[nn.Parameter]], max_norm: float) -> list[th.Tensor]:
    """``clip_grad_norm_`` applied to each parameter group separately, in one pass.

    Same rule as torch's: each group's gradients are scaled by min(1, max_norm / (‖g‖ + 1e-6))
    with ‖g‖ the 2-norm of the group's concatenated gradients. Returns the groups' norms.
    """
    grads: list[th.Tensor] = []
    bounds = [0]
    for params in groups:
        grads.extend(p.grad for p in params if p.grad is not None)
        bounds.append(len(grads))
    if not grads:
        return []
    if hasattr(th, "_foreach_norm"):
        norms = th.stack(th._foreach_norm(grads))
    else:  # pragma: no cover - very old torch
        norms = th.stack([th.linalg.vector_norm(g) for g in grads])
    group_of = th.as_tensor(
        [g for g, (a, b) in enumerate(itertools.pairwise(bounds)) for _ in range(b - a)],
        device=norms.device,
    )
    sq = th.zeros(len(groups), dtype=norms.dtype, device=norms.device)
    totals_t = sq.index_add_(0, group_of, norms * norms).sqrt()
    coefs = th.clamp(max_norm / (totals_t + 1e-6), max=1.0)
    totals = []
    for g, (a, b) in enumerate(itertools.pairwise(bounds)):
        if a == b:
            continue
        if hasattr(th, "_foreach_mul_"):
            th._foreach_mul_(grads[a:b], coefs[g])
        else:  # pragma: no cover
            for grad in grads[a:b]:
                grad.mul_(coefs[g])
        totals.append(totals_t[g])
    return totals


# ---------------------------------------------------------------------------------------------
# rollout buffer with post-decision observations


class PostDecisionRolloutBufferSamples(NamedTuple):
    """A minibatch: SB3's rollout fields plus post-decision observations and V^x values."""

    observations: th.Tensor
    actions: th.Tensor
    old_values: th.Tensor
    old_log_prob: th.Tensor
    advantages: th.Tensor
    returns: th.Tensor
    post_observations: th.Tensor
    old_post_values: th.Tensor


class PostDecisionRolloutBuffer(RolloutBuffer):
    """SB3's RolloutBuffer plus s^x_t and V^x(s^x_t); advantages from :func:`pdppo_advantages`."""

    def __init__(self, *args: Any, advantage_mode: str = "max", **kwargs: Any) -> None:
        if advantage_mode not in ADVANTAGE_MODES:
            raise InvalidInputError(
                f"advantage_mode must be one of {list(ADVANTAGE_MODES)}, got {advantage_mode!r}"
            )
        self.advantage_mode = advantage_mode
        super().__init__(*args, **kwargs)

    def reset(self) -> None:
        shape = (self.buffer_size, self.n_envs)
        self.post_observations = np.zeros(
            (*shape, *self.obs_shape), dtype=self.observation_space.dtype
        )
        self.post_values = np.zeros(shape, dtype=np.float32)
        self.state_advantages = np.zeros(shape, dtype=np.float32)
        self.post_advantages = np.zeros(shape, dtype=np.float32)
        super().reset()

    def add(  # type: ignore[override]
        self,
        obs: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        episode_start: np.ndarray,
        value: th.Tensor,
        log_prob: th.Tensor,
        post_obs: np.ndarray,
        post_value: th.Tensor | np.ndarray | None = None,
    ) -> None:
        """Store one step; ``post_value`` may be left out and filled by :meth:`set_post_values`."""
        pos = self.pos
        self.post_observations[pos] = np.asarray(post_obs).reshape((self.n_envs, *self.obs_shape))
        if post_value is not None:
            pv = post_value.cpu().numpy() if isinstance(post_value, th.Tensor) else post_value
            self.post_values[pos] = np.asarray(pv).reshape(self.n_envs)
        super().add(obs, action, reward, episode_start, value, log_prob)

    def set_post_values(self, post_values: np.ndarray) -> None:
        """V^x(s^x_t) for the whole rollout, ``[T, n_envs]`` (one batched critic call)."""
        self.post_values[:] = np.asarray(post_values, dtype=np.float32).reshape(
            self.buffer_size, self.n_envs
        )

    def compute_returns_and_advantage(self, last_values: th.Tensor, dones: np.ndarray) -> None:
        out = pdppo_advantages(
            self.rewards,
            self.values,
            self.post_values,
            self.episode_starts,
            last_values.clone().cpu().numpy().flatten(),
            dones,
            self.gamma,
            self.gae_lambda,
            self.advantage_mode,
        )
        self.advantages[:] = out["advantages"]
        self.returns = out["returns"].astype(np.float32)
        self.state_advantages[:] = out["state_advantages"]
        self.post_advantages[:] = out["post_advantages"]

    _FIELDS = (
        "observations",
        "actions",
        "values",
        "log_probs",
        "advantages",
        "returns",
        "post_observations",
        "post_values",
    )

    def get(  # type: ignore[override]
        self, batch_size: int | None = None
    ) -> Iterator[PostDecisionRolloutBufferSamples]:
        """Shuffled minibatches; the rollout goes to ``device`` once, minibatches index it."""
        assert self.full, "the rollout buffer is not full"
        indices = np.random.permutation(self.buffer_size * self.n_envs)  # noqa: NPY002 (SB3)
        if not self.generator_ready:
            for name in self._FIELDS:
                self.__dict__[name] = self.swap_and_flatten(self.__dict__[name])
            self.generator_ready = True
        self._tensors = [
            self.to_torch(self.actions.astype(np.float32, copy=False))
            if name == "actions"
            else self.to_torch(self.__dict__[name])
            for name in self._FIELDS
        ]
        for t in (2, 3, 4, 5, 7):  # values, log_probs, advantages, returns, post_values: [N]
            self._tensors[t] = self._tensors[t].flatten()
        if batch_size is None:
            batch_size = self.buffer_size * self.n_envs
        idx = th.as_tensor(indices, device=self.device)
        start = 0
        while start < self.buffer_size * self.n_envs:
            yield self._index(idx[start : start + batch_size])
            start += batch_size

    def _index(self, idx: th.Tensor) -> PostDecisionRolloutBufferSamples:
        return PostDecisionRolloutBufferSamples(*(t[idx] for t in self._tensors))

    def _get_samples(  # type: ignore[override]
        self, batch_inds: np.ndarray, env: Any = None
    ) -> PostDecisionRolloutBufferSamples:
        data = (
            self.observations[batch_inds],
            self.actions[batch_inds].astype(np.float32, copy=False),
            self.values[batch_inds].flatten(),
            self.log_probs[batch_inds].flatten(),
            self.advantages[batch_inds].flatten(),
            self.returns[batch_inds].flatten(),
            self.post_observations[batch_inds],
            self.post_values[batch_inds].flatten(),
        )
        return PostDecisionRolloutBufferSamples(*tuple(map(self.to_torch, data)))


# ---------------------------------------------------------------------------------------------
# policy: actor, state critic V(s) and post-decision critic V^x(s^x)


class ScaledFlattenExtractor(BaseFeaturesExtractor):
    """Flatten a Box observation and divide by its finite positive upper bounds (else 1)."""

    def __init__(self, observation_space: spaces.Box) -> None:
        super().__init__(observation_space, int(np.prod(observation_space.shape)))
        high = np.asarray(observation_space.high, dtype=np.float64).reshape(-1)
        scale = np.where(np.isfinite(high) & (high > 0), 1.0 / np.where(high > 0, high, 1), 1.0)
        self.register_buffer("scale", th.as_tensor(scale, dtype=th.float32))

    def forward(self, observations: th.Tensor) -> th.Tensor:
        return observations.flatten(1) * self.scale


class PostDecisionActorCriticPolicy(ActorCriticPolicy):
    """SB3's actor-critic plus a post-decision critic V^x on the post-decision observation.

    The post-decision observation lives in the observation space; V^x has its own features
    extractor (same class and arguments) and an MLP of ``post_net_arch`` (default: the value
    network's). PDPPO gives the actor, V and V^x one optimizer each (``optimizer``,
    ``value_optimizer``, ``post_value_optimizer``).
    """

    def __init__(self, *args: Any, post_net_arch: list[int] | None = None, **kwargs: Any):
        self.post_net_arch = post_net_arch
        super().__init__(*args, **kwargs)

    def _build(self, lr_schedule: Any) -> None:
        super()._build(lr_schedule)
        arch = self.post_net_arch
        if arch is None:
            net_arch = self.net_arch
            arch = list(net_arch.get("vf", [])) if isinstance(net_arch, dict) else list(net_arch)
        self.post_net_arch = list(arch)
        self.post_features_extractor = self.features_extractor_class(
            self.observation_space, **self.features_extractor_kwargs
        )
        layers: list[nn.Module] = []
        last = self.post_features_extractor.features_dim
        for width in self.post_net_arch:
            layers += [nn.Linear(last, width), self.activation_fn()]
            last = width
        self.post_value_mlp = nn.Sequential(*layers)
        self.post_value_net = nn.Linear(last, 1)
        if self.ortho_init:
            for module, gain in (
                (self.post_features_extractor, np.sqrt(2)),
                (self.post_value_mlp, np.sqrt(2)),
                (self.post_value_net, 1.0),
            ):
                module.apply(partial(self.init_weights, gain=gain))
        lr = lr_schedule(1)
        self.optimizer = self._make_optimizer(self.actor_parameters(), lr)
        self.value_optimizer = self._make_optimizer(self.critic_parameters(), lr)
        self.post_value_optimizer = self._make_optimizer(self.post_critic_parameters(), lr)

    def _make_optimizer(self, params: list[nn.Parameter], lr: float) -> th.optim.Optimizer:
        """``optimizer_class`` on ``params``; Adam(W) uses its fused kernel where available.

        Three optimizers step per minibatch instead of PPO's one; the fused kernel (same
        update, one call per step) keeps that overhead small. Pass ``fused``/``foreach`` in
        ``optimizer_kwargs`` to choose otherwise.
        """
        kwargs = dict(self.optimizer_kwargs)
        fusable = self.optimizer_class in (th.optim.Adam, th.optim.AdamW)
        if fusable and "fused" not in kwargs and "foreach" not in kwargs:
            try:
                return self.optimizer_class(params, lr=lr, fused=True, **kwargs)
            except (RuntimeError, TypeError, ValueError):  # older torch: no fused CPU kernel
                pass
        return self.optimizer_class(params, lr=lr, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["post_net_arch"] = self.post_net_arch
        return data

    def actor_parameters(self) -> list[nn.Parameter]:
        """Actor: shared or actor features extractor, policy MLP, action head (and log std)."""
        mods: list[nn.Module] = [self.mlp_extractor.policy_net, self.action_net]
        mods.append(
            self.features_extractor if self.share_features_extractor else self.pi_features_extractor
        )
        params = [p for m in mods for p in m.parameters()]
        if isinstance(getattr(self, "log_std", None), nn.Parameter):
            params.append(self.log_std)
        return params

    def critic_parameters(self) -> list[nn.Parameter]:
        """State critic V: value MLP and head (and its own features extractor if not shared)."""
        mods: list[nn.Module] = [self.mlp_extractor.value_net, self.value_net]
        if not self.share_features_extractor:
            mods.append(self.vf_features_extractor)
        return [p for m in mods for p in m.parameters()]

    def post_critic_parameters(self) -> list[nn.Parameter]:
        """Post-decision critic V^x: its features extractor, MLP and head."""
        mods = (self.post_features_extractor, self.post_value_mlp, self.post_value_net)
        return [p for m in mods for p in m.parameters()]

    def predict_post_values(self, post_obs: th.Tensor) -> th.Tensor:
        """V^x(s^x) for a batch of post-decision observations, shape ``[B, 1]``."""
        features = super(ActorCriticPolicy, self).extract_features(
            post_obs, self.post_features_extractor
        )
        return self.post_value_net(self.post_value_mlp(features))


# ---------------------------------------------------------------------------------------------
# the algorithm


class PDPPO(RunDirLoad, PPO):
    """PPO with a post-decision rollout buffer, critics V(s) and V^x(s^x) and a max advantage.

    Extra arguments over SB3's PPO: ``advantage`` ("max", "mean", "v", "vx"; module docstring)
    and ``critic_learning_rate`` (both critics; default: ``learning_rate``). The environment
    must put the post-decision observation in ``info["post_decision_obs"]``.
    """

    policy_aliases: ClassVar[dict[str, type]] = {"MlpPolicy": PostDecisionActorCriticPolicy}
    rollout_buffer: PostDecisionRolloutBuffer
    policy: PostDecisionActorCriticPolicy

    def __init__(
        self,
        policy: str | type[PostDecisionActorCriticPolicy],
        env: Any,
        advantage: str = "max",
        critic_learning_rate: float | None = None,
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        if advantage not in ADVANTAGE_MODES:
            raise ConfigError(
                f"advantage must be one of {list(ADVANTAGE_MODES)}, got {advantage!r}"
            )
        self.advantage = advantage
        self.critic_learning_rate = critic_learning_rate
        kwargs.setdefault("rollout_buffer_class", PostDecisionRolloutBuffer)
        kwargs["rollout_buffer_kwargs"] = {
            **(kwargs.get("rollout_buffer_kwargs") or {}),
            "advantage_mode": advantage,
        }
        super().__init__(policy, env, _init_setup_model=False, **kwargs)
        if _init_setup_model:
            self._setup_model()

    def _setup_model(self) -> None:
        super()._setup_model()
        if not isinstance(self.policy, PostDecisionActorCriticPolicy):
            raise ConfigError("PDPPO needs a PostDecisionActorCriticPolicy (use 'MlpPolicy')")
        lr = self.critic_learning_rate
        self.critic_lr_schedule = self.lr_schedule if lr is None else FloatSchedule(lr)

    def _get_torch_save_params(self) -> tuple[list[str], list[str]]:
        return [
            "policy",
            "policy.optimizer",
            "policy.value_optimizer",
            "policy.post_value_optimizer",
        ], []

    def _post_obs(self, infos: list[dict[str, Any]]) -> np.ndarray:
        try:
            return np.stack([np.asarray(info[POST_KEY]) for info in infos])
        except KeyError:
            raise InvalidInputError(
                f"PDPPO needs info[{POST_KEY!r}] from every env step; this environment has none"
            ) from None

    def collect_rollouts(  # type: ignore[override]
        self,
        env: VecEnv,
        callback: Any,
        rollout_buffer: PostDecisionRolloutBuffer,
        n_rollout_steps: int,
    ) -> bool:
        """SB3's rollout loop, also storing s^x_t; V^x(s^x_t) is evaluated once at the end."""
        assert self._last_obs is not None, "No previous observation was provided"
        self.policy.set_training_mode(False)
        n_steps = 0
        rollout_buffer.reset()
        if self.use_sde:
            self.policy.reset_noise(env.num_envs)
        callback.on_rollout_start()
        while n_steps < n_rollout_steps:
            if self.use_sde and self.sde_sample_freq > 0 and n_steps % self.sde_sample_freq == 0:
                self.policy.reset_noise(env.num_envs)
            with th.no_grad():
                obs_tensor = obs_as_tensor(self._last_obs, self.device)  # type: ignore[arg-type]
                actions, values, log_probs = self.policy(obs_tensor)
            actions = actions.cpu().numpy()
            clipped_actions = actions
            if isinstance(self.action_space, spaces.Box):
                if self.policy.squash_output:
                    clipped_actions = self.policy.unscale_action(clipped_actions)
                else:
                    clipped_actions = np.clip(
                        actions, self.action_space.low, self.action_space.high
                    )
            new_obs, rewards, dones, infos = env.step(clipped_actions)
            self.num_timesteps += env.num_envs
            callback.update_locals(locals())
            if not callback.on_step():
                return False
            self._update_info_buffer(infos, dones)
            n_steps += 1
            post_obs = self._post_obs(infos)
            if isinstance(self.action_space, spaces.Discrete):
                actions = actions.reshape(-1, 1)
            for idx, done in enumerate(dones):  # time limit: bootstrap with V (SB3 GH#633)
                if (
                    done
                    and infos[idx].get("terminal_observation") is not None
                    and infos[idx].get("TimeLimit.truncated", False)
                ):
                    terminal_obs = self.policy.obs_to_tensor(infos[idx]["terminal_observation"])[0]
                    with th.no_grad():
                        terminal_value = self.policy.predict_values(terminal_obs)[0]
                    rewards[idx] += self.gamma * terminal_value
            rollout_buffer.add(
                self._last_obs,  # type: ignore[arg-type]
                actions,
                rewards,
                self._last_episode_starts,  # type: ignore[arg-type]
                values,
                log_probs,
                post_obs=post_obs,
            )
            self._last_obs = new_obs  # type: ignore[assignment]
            self._last_episode_starts = dones
        with th.no_grad():
            values = self.policy.predict_values(obs_as_tensor(new_obs, self.device))  # type: ignore[arg-type]
            flat = rollout_buffer.post_observations.reshape(
                -1, *rollout_buffer.post_observations.shape[2:]
            )
            post_values = self.policy.predict_post_values(obs_as_tensor(flat, self.device))
        rollout_buffer.set_post_values(post_values.cpu().numpy())
        rollout_buffer.compute_returns_and_advantage(last_values=values, dones=dones)
        callback.update_locals(locals())
        callback.on_rollout_end()
        return True

    def train(self) -> None:
        """Clipped PPO step on the actor, MSE regression of V and V^x on R; three optimizers."""
        policy = self.policy
        policy.set_training_mode(True)
        self._update_learning_rate(policy.optimizer)
        critic_lr = self.critic_lr_schedule(self._current_progress_remaining)
        for opt in (policy.value_optimizer, policy.post_value_optimizer):
            for group in opt.param_groups:
                group["lr"] = critic_lr
        clip_range = self.clip_range(self._current_progress_remaining)  # type: ignore[operator]
        clip_range_vf = (
            self.clip_range_vf(self._current_progress_remaining)  # type: ignore[operator]
            if self.clip_range_vf is not None
            else None
        )
        groups = (
            (policy.optimizer, policy.actor_parameters()),
            (policy.value_optimizer, policy.critic_parameters()),
            (policy.post_value_optimizer, policy.post_critic_parameters()),
        )
        all_params = [p for _, params in groups for p in params]
        entropy_losses, pg_losses, value_losses, post_value_losses = [], [], [], []
        clip_fractions: list[float] = []
        approx_kl_divs: list[float] = []
        continue_training = True
        loss = th.zeros(())
        for _epoch in range(self.n_epochs):
            approx_kl_divs = []
            for data in self.rollout_buffer.get(self.batch_size):
                actions = data.actions
                if isinstance(self.action_space, spaces.Discrete):
                    actions = data.actions.long().flatten()
                values, log_prob, entropy = policy.evaluate_actions(data.observations, actions)
                values = values.flatten()
                post_values = policy.predict_post_values(data.post_observations).flatten()
                advantages = data.advantages
                if self.normalize_advantage and len(advantages) > 1:
                    advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
                ratio = th.exp(log_prob - data.old_log_prob)
                policy_loss = clipped_surrogate(ratio, advantages, clip_range)
                pg_losses.append(policy_loss.item())
                clip_fractions.append(th.mean((th.abs(ratio - 1) > clip_range).float()).item())
                if clip_range_vf is not None:
                    values = data.old_values + th.clamp(
                        values - data.old_values, -clip_range_vf, clip_range_vf
                    )
                    post_values = data.old_post_values + th.clamp(
                        post_values - data.old_post_values, -clip_range_vf, clip_range_vf
                    )
                value_loss = F.mse_loss(data.returns, values)
                post_value_loss = F.mse_loss(data.returns, post_values)
                value_losses.append(value_loss.item())
                post_value_losses.append(post_value_loss.item())
                entropy_loss = -th.mean(-log_prob) if entropy is None else -th.mean(entropy)
                entropy_losses.append(entropy_loss.item())
                loss = (
                    policy_loss
                    + self.ent_coef * entropy_loss
                    + self.vf_coef * (value_loss + post_value_loss)
                )
                with th.no_grad():
                    log_ratio = log_prob - data.old_log_prob
                    approx_kl = th.mean((th.exp(log_ratio) - 1) - log_ratio).cpu().numpy()
                    approx_kl_divs.append(float(approx_kl))
                if self.target_kl is not None and approx_kl > 1.5 * self.target_kl:
                    continue_training = False
                    break
                # the three parameter sets are disjoint: one backward gives each loss's gradient
                for param in all_params:
                    param.grad = None
                loss.backward()
                clip_grad_norms([params for _, params in groups], self.max_grad_norm)
                for opt, _ in groups:
                    opt.step()
            self._n_updates += 1
            if not continue_training:
                break
        buf = self.rollout_buffer
        rec = self.logger.record
        rec("train/entropy_loss", float(np.mean(entropy_losses)))
        rec("train/policy_gradient_loss", float(np.mean(pg_losses)))
        rec("train/value_loss", float(np.mean(value_losses)))
        rec("train/post_value_loss", float(np.mean(post_value_losses)))
        rec("train/approx_kl", float(np.mean(approx_kl_divs)) if approx_kl_divs else 0.0)
        rec("train/clip_fraction", float(np.mean(clip_fractions)))
        rec("train/loss", loss.item())
        rec(
            "train/explained_variance",
            explained_variance(buf.values.flatten(), buf.returns.flatten()),
        )
        rec(
            "train/explained_variance_post",
            explained_variance(buf.post_values.flatten(), buf.returns.flatten()),
        )
        rec(
            "train/post_advantage_chosen",
            float(np.mean(buf.post_advantages > buf.state_advantages)),
        )
        rec("train/n_updates", self._n_updates, exclude="tensorboard")
        rec("train/clip_range", clip_range)


# ---------------------------------------------------------------------------------------------
# learners (`prl run pdppo`, `prl run pdppo_ppo_baseline`)


class _ScaleReward(gym.Wrapper):
    """Multiply rewards by a constant (outside the Monitor, which keeps the raw returns)."""

    def __init__(self, env: gym.Env, scale: float) -> None:
        super().__init__(env)
        self.scale = float(scale)

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        return obs, reward * self.scale, terminated, truncated, info


def default_reward_scale(env: str) -> float:
    """The reward scale a learner uses when none is given: 0.01 on lot-sizing, else 1."""
    return 0.01 if env == "lotsizing" else 1.0


def _make_env(name: str, env_kwargs: dict[str, Any], reward_scale: float) -> gym.Env:
    from prl import envs

    env: gym.Env = Monitor(envs.make(name, **env_kwargs))
    if reward_scale != 1.0:
        env = _ScaleReward(env, reward_scale)
    return env


def _monitor_state(env: gym.Env) -> dict[str, Any]:
    """A copy's Monitor: the episode under way, the finished returns and lengths, its steps."""
    mon = find_wrapper(env, Monitor)
    return {
        "rewards": list(map(float, mon.rewards)),
        "returns": list(map(float, mon.episode_returns)),
        "lengths": list(map(int, mon.episode_lengths)),
        "total_steps": int(mon.total_steps),
    }


def _inner_state(env: gym.Env) -> Any:
    """The unwrapped env's ``get_state()`` (None if it has none)."""
    inner = env.unwrapped
    return inner.get_state() if hasattr(inner, "get_state") else None


def _restore_copy(env: gym.Env, env_state: Any, monitor: dict[str, Any]) -> None:
    """Restore :func:`_inner_state` and :func:`_monitor_state` of one copy."""
    if env_state is not None:
        env.unwrapped.set_state(env_state)
    mon = find_wrapper(env, Monitor)
    mon.rewards = list(monitor["rewards"])
    mon.episode_returns = list(monitor["returns"])
    mon.episode_lengths = list(monitor["lengths"])
    mon.episode_times = [0.0] * len(monitor["returns"])
    mon.total_steps = int(monitor["total_steps"])
    mon.needs_reset = False


@dataclass
class PPOBaselineConfig:
    """SB3 PPO settings shared by PDPPO and its baseline (identical rollout and batch sizes)."""

    n_steps: int = option(2048, "environment steps per rollout, per environment copy")
    batch_size: int = option(64, "minibatch size")
    n_epochs: int = option(10, "passes over each rollout")
    learning_rate: float = option(3e-4, "Adam step size of the actor (and of the critics)")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "GAE λ (1 = Monte-Carlo returns)")
    clip_range: float = option(0.2, "PPO ratio clip ε")
    ent_coef: float = option(0.0, "entropy bonus coefficient")
    vf_coef: float = option(0.5, "value-loss coefficient")
    max_grad_norm: float = option(0.5, "gradient-norm clip (per optimizer for PDPPO)")
    n_envs: int = option(1, "environment copies stepped together (batch: n_envs·n_steps)")
    vec_env: Literal["dummy", "subproc"] = option("dummy", VEC_ENV_HELP)
    net_arch: list[int] = option([64, 64], "hidden widths of the actor and of each critic")  # noqa: RUF009
    reward_scale: float | None = option(
        None, "multiply rewards for learning (metrics stay raw); None: 0.01 on lotsizing, else 1"
    )
    scale_obs: bool = option(True, "divide Box observations by their upper bounds")
    episode_window: int = option(10, "completed episodes averaged in the ep_return metric")

    def validate(self) -> None:
        for name in ("n_steps", "batch_size", "n_epochs", "n_envs", "episode_window"):
            require(getattr(self, name) >= 1, f"{name} must be >= 1, got {getattr(self, name)}")
        require(self.n_steps * self.n_envs >= 2, "n_steps * n_envs must be >= 2")
        check_vec_env(self.vec_env)
        require(self.batch_size >= 2, f"batch_size must be >= 2, got {self.batch_size}")
        require(self.learning_rate > 0, f"learning_rate must be > 0, got {self.learning_rate}")
        require(0 <= self.gamma <= 1, f"gamma must lie in [0, 1], got {self.gamma}")
        require(0 <= self.gae_lambda <= 1, f"gae_lambda must lie in [0, 1], got {self.gae_lambda}")
        require(self.clip_range > 0, f"clip_range must be > 0, got {self.clip_range}")
        require(self.max_grad_norm > 0, f"max_grad_norm must be > 0, got {self.max_grad_norm}")
        require(
            all(w >= 1 for w in self.net_arch), f"net_arch widths must be >= 1: {self.net_arch}"
        )
        require(
            self.reward_scale is None or self.reward_scale > 0,
            f"reward_scale must be > 0, got {self.reward_scale}",
        )


@dataclass
class PDPPOConfig(PPOBaselineConfig):
    """PDPPO: the PPO settings plus the advantage rule and the critics' step size."""

    advantage: Literal["max", "mean", "v", "vx"] = option(
        "max", "max(A^s, A^x) (PDPPO), mean, v (state critic only) or vx (post-decision only)"
    )
    critic_learning_rate: float | None = option(
        None, "Adam step size of V and V^x (None: learning_rate)"
    )

    def validate(self) -> None:
        super().validate()
        require(
            self.critic_learning_rate is None or self.critic_learning_rate > 0,
            f"critic_learning_rate must be > 0, got {self.critic_learning_rate}",
        )


class _PDPPOLearner(SB3Learner):
    """PDPPO's plumbing on :class:`prl.common.sb3.SB3Learner`: an SB3 on-policy model advanced
    one rollout + update per ``step()``."""

    default_steps = 100_000
    algo_class: ClassVar[type] = PPO

    def __init__(
        self, config: Any, env: str, env_kwargs: dict[str, Any], seed: int, device: Any
    ) -> None:
        super().__init__(config, env, env_kwargs, seed, device)
        cfg = config
        scale = cfg.reward_scale if cfg.reward_scale is not None else default_reward_scale(env)
        self.vec_env = make_vec(
            [partial(_make_env, env, dict(env_kwargs), scale) for _ in range(cfg.n_envs)],
            cfg.vec_env,
        )
        obs_space = self.vec_env.observation_space
        extractor = (
            ScaledFlattenExtractor
            if cfg.scale_obs and isinstance(obs_space, spaces.Box)
            else FlattenExtractor
        )
        policy_kwargs: dict[str, Any] = {
            "net_arch": {"pi": list(cfg.net_arch), "vf": list(cfg.net_arch)},
            "features_extractor_class": extractor,
        }
        self.model = self.algo_class(
            "MlpPolicy",
            self.vec_env,
            learning_rate=cfg.learning_rate,
            n_steps=cfg.n_steps,
            batch_size=cfg.batch_size,
            n_epochs=cfg.n_epochs,
            gamma=cfg.gamma,
            gae_lambda=cfg.gae_lambda,
            clip_range=cfg.clip_range,
            ent_coef=cfg.ent_coef,
            vf_coef=cfg.vf_coef,
            max_grad_norm=cfg.max_grad_norm,
            policy_kwargs=policy_kwargs,
            seed=seed,
            device=device,
            verbose=0,
            **self._extra_kwargs(cfg),
        )
        self._episodes = 0

    def _extra_kwargs(self, cfg: Any) -> dict[str, Any]:
        return {}

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        from prl import envs

        e = envs.make(env, **env_kwargs)
        try:
            if not isinstance(e.observation_space, (spaces.Box, spaces.Discrete)):
                raise ConfigError(
                    f"{cls.__name__} needs a Box or Discrete observation space, "
                    f"{env!r} has {e.observation_space}"
                )
            if not isinstance(e.action_space, (spaces.Box, spaces.Discrete, spaces.MultiDiscrete)):
                raise ConfigError(f"{env!r} has an unsupported action space {e.action_space}")
        finally:
            e.close()

    def _monitors(self) -> list[dict[str, Any]]:
        """Each copy's Monitor state (:func:`_monitor_state`), wherever the copy runs."""
        return env_apply(self.vec_env, _monitor_state)

    def step(self) -> dict[str, float]:
        m = self.model
        m.learn(m.n_steps * m.n_envs, reset_num_timesteps=False, progress_bar=False)
        self.steps_done = int(m.num_timesteps)
        eps = [float(ep["r"]) for ep in m.ep_info_buffer]
        window = eps[-self.config.episode_window :]
        logged = m.logger.name_to_value
        row: dict[str, float] = {
            "ep_return": float(np.mean(window)) if window else float("nan"),
            "episodes": float(sum(len(mon["returns"]) for mon in self._monitors())),
        }
        for key, name in (
            ("train/value_loss", "loss_value"),
            ("train/post_value_loss", "loss_post_value"),
            ("train/policy_gradient_loss", "loss_policy"),
            ("train/entropy_loss", "loss_entropy"),
            ("train/approx_kl", "approx_kl"),
            ("train/clip_fraction", "clip_fraction"),
            ("train/explained_variance", "explained_variance"),
            ("train/explained_variance_post", "explained_variance_post"),
            ("train/post_advantage_chosen", "post_advantage_chosen"),
        ):
            if key in logged:
                row[name] = float(logged[key])
        return row

    def evaluate(self) -> dict[str, float]:
        eps = [float(ep["r"]) for ep in self.model.ep_info_buffer]
        window = eps[-self.config.episode_window :]
        return {"final_ep_return": float(np.mean(window)) if window else float("nan")}

    # ---- checkpoints: everything a resumed run needs to continue exactly --------------------
    def sb3_torch_names(self) -> list[str]:
        """SB3's list plus PDPPO's two critic optimizers."""
        names = super().sb3_torch_names()
        pol = self.model.policy
        extra = ("value_optimizer", "post_value_optimizer")
        return names + [f"policy.{n}" for n in extra if hasattr(pol, n)]

    def state_dict(self) -> dict[str, Any]:
        envs_state = env_apply(self.vec_env, _inner_state)
        monitors = self._monitors()
        return {
            **super().state_dict(),  # SB3 tensors and counters, global generators
            **self.rollout_state(),
            "ep_info_buffer": json.dumps(list(self.model.ep_info_buffer)),
            "env_states": json.dumps(envs_state),
            "monitors": json.dumps(monitors),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        m = self.model
        self.steps_done = m.num_timesteps
        self.load_rollout_state(state, dtype=self.vec_env.observation_space.dtype)
        from collections import deque

        m.ep_info_buffer = deque(json.loads(state["ep_info_buffer"]), maxlen=m._stats_window_size)
        m.ep_success_buffer = deque(maxlen=m._stats_window_size)
        for i, (es, ms) in enumerate(
            zip(json.loads(state["env_states"]), json.loads(state["monitors"]))
        ):
            env_apply(self.vec_env, _restore_copy, es, ms, indices=i)

    def close(self) -> None:
        self.vec_env.close()


@register_algo(
    "pdppo",
    description="PDPPO: PPO with post-decision states and dual critics V(s), V^x(s^x) (max adv.)",
    envs=("lotsizing", "slippery_lake"),
)
class PDPPOLearner(_PDPPOLearner):
    """PDPPO (SB3 PPO subclass) on an environment that reports ``info["post_decision_obs"]``."""

    Config = PDPPOConfig
    smoke = Smoke(
        env="lotsizing",
        steps=64,
        config={"n_steps": 32, "batch_size": 16, "n_epochs": 2},
        env_kwargs={"instance": "tiny"},
        source="tests/test_pdppo.py",
        family="pdppo",
    )
    cli_default_steps = 20_480
    algo_class = PDPPO

    def _extra_kwargs(self, cfg: PDPPOConfig) -> dict[str, Any]:
        return {"advantage": cfg.advantage, "critic_learning_rate": cfg.critic_learning_rate}

    @classmethod
    def check_env(cls, env: str, env_kwargs: dict[str, Any]) -> None:
        super().check_env(env, env_kwargs)
        from prl import envs

        e = envs.make(env, **env_kwargs)
        try:
            e.reset(seed=0)
            sample = e.action_space.sample()
            info = e.step(sample)[4]
        finally:
            e.close()
        if POST_KEY not in info:
            raise ConfigError(
                f"pdppo needs an environment reporting info[{POST_KEY!r}] "
                f"(lotsizing, slippery_lake); {env!r} does not"
            )


@register_algo(
    "pdppo_ppo_baseline",
    description="SB3 PPO with PDPPO's settings (same networks, rollouts, batches, scaling)",
    envs=("lotsizing", "slippery_lake"),
)
class PPOBaselineLearner(_PDPPOLearner):
    """Stable-baselines3 PPO, configured exactly as :class:`PDPPOLearner` (the paper's baseline)."""

    Config = PPOBaselineConfig
    smoke = Smoke(
        env="lotsizing",
        steps=64,
        config={"n_steps": 32, "batch_size": 16, "n_epochs": 2},
        env_kwargs={"instance": "tiny"},
        source="tests/test_pdppo.py",
    )
    cli_default_steps = 20_480
    algo_class = PPO
