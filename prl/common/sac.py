"""The lab's SAC: stable-baselines3's ``SAC`` with a leaner ``train`` of the same mathematics.

Haarnoja et al. (2018, SAC v2) with SB3's conventions, step for step: critic loss
½ Σ_i ‖Q_i(s, a) − (r + γ(1 − d)(min_j Q̄_j(s', a') − α log π(a'|s')))‖² (a' ~ π(·|s')),
actor loss E[α log π(ã|s) − min_i Q_i(s, ã)] (ã ~ π(·|s) reparameterized), the optional
temperature loss −log α·(log π + H̄), Polyak targets. Same random draws in the same order as
``SAC.train`` (numpy's global generator for the minibatch, torch's for the actions), so a run with
the same seed gives bit-identical weights at one torch thread (tests/test_offpolicy_speed.py).

What it saves per gradient step, all without changing a number:

- the actor loss back-propagates through the critics with the critics' own weights frozen: SB3
  also computes (and then discards) the critics' weight gradients of the actor loss, a quarter
  of the critic's backward cost;
- the minibatch is gathered straight into tensors (one copy, not two) from a plain
  ``ReplayBuffer``; any other buffer (HER, n-step, VecNormalize) goes through its own ``sample``;
- Adam runs its multi-tensor (``foreach``) kernels, as it already does on a GPU (same
  arithmetic, bit-identical weights; about 5% of an update on one CPU thread);
- losses stay tensors until the end of ``train`` (one host synchronisation per call, not two per
  step: it matters on a GPU), the Polyak update is one ``torch._foreach`` call pair.

Subclasses change the actor's objective through :meth:`FastSAC.actor_objective` and hook into
:meth:`FastSAC.before_train` / :meth:`FastSAC.after_train` (off-policy MDPO does).

"""

from __future__ import annotations

import numpy as np
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.buffers import ReplayBuffer
from stable_baselines3.common.type_aliases import ReplayBufferSamples
from torch.nn import functional as F

from prl.common.sb3 import RunDirLoad, foreach_adam

__all__ = ["FastSAC", "sac_losses"]


def sac_losses(
    model: SAC, batch: ReplayBufferSamples, ent_coef: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(critic loss, actor loss, actions ã, log π(ã|s)) of SB3's SAC on one batch, SB3's order.

    Reference implementation for the tests (no parameter update): critic loss with the target
    critics and a' ~ π(·|s'), actor loss α log π(ã|s) − min_i Q_i(s, ã) (SAC v2, eqs. 5 and 7).
    """
    actions_pi, log_prob = model.actor.action_log_prob(batch.observations)
    log_prob = log_prob.reshape(-1, 1)
    with torch.no_grad():
        next_a, next_lp = model.actor.action_log_prob(batch.next_observations)
        next_q = torch.cat(model.critic_target(batch.next_observations, next_a), dim=1)
        next_q, _ = torch.min(next_q, dim=1, keepdim=True)
        next_q = next_q - ent_coef * next_lp.reshape(-1, 1)
        target = batch.rewards + (1 - batch.dones) * model.gamma * next_q
    current = model.critic(batch.observations, batch.actions)
    critic_loss = 0.5 * sum(F.mse_loss(q, target) for q in current)
    q_pi = torch.cat(model.critic(batch.observations, actions_pi), dim=1)
    min_q, _ = torch.min(q_pi, dim=1, keepdim=True)
    actor_loss = (ent_coef * log_prob - min_q).mean()
    return critic_loss, actor_loss, actions_pi, log_prob


class FastSAC(RunDirLoad, SAC):
    """SB3 ``SAC`` with the same update computed with less work (see the module docstring).

    Takes every ``SAC`` argument; ``FastSAC.load`` also takes a run directory (its ``model.zip``),
    and the ``model.zip`` it saves loads with ``SAC.load`` too.
    """

    # ---- hooks for subclasses -----------------------------------------------------------------
    def before_train(self) -> None:
        """Called once per ``train`` call, after the learning-rate update (MDPO copies π_k)."""

    def actor_objective(
        self,
        obs: torch.Tensor,
        actions_pi: torch.Tensor,
        log_prob: torch.Tensor,
        gaussian_actions: torch.Tensor | None,
        min_q: torch.Tensor,
        ent_coef: torch.Tensor,
    ) -> torch.Tensor:
        """SAC's actor loss E[α log π(ã|s) − min_i Q_i(s, ã)] (SAC v2, eq. 7)."""
        return (ent_coef * log_prob - min_q).mean()

    def after_train(self, actor_loss: float, critic_loss: float) -> None:
        """Called once per ``train`` call with the mean losses (after SB3's logger records)."""

    # ---- the update ---------------------------------------------------------------------------
    def _critic_only_params(self) -> list[torch.nn.Parameter]:
        if getattr(self, "_critic_only", None) is None:
            actor_ids = {id(p) for p in self.actor.parameters()}
            self._critic_only = [p for p in self.critic.parameters() if id(p) not in actor_ids]
        return self._critic_only

    def _sample(self, batch_size: int) -> ReplayBufferSamples:
        """SB3's ``ReplayBuffer.sample`` (same numpy draws, same values), one copy fewer."""
        rb = self.replay_buffer
        if type(rb) is not ReplayBuffer or rb.optimize_memory_usage or self._vec_normalize_env:
            return rb.sample(batch_size, env=self._vec_normalize_env)  # type: ignore[union-attr]
        upper = rb.buffer_size if rb.full else rb.pos
        inds = np.random.randint(0, upper, size=batch_size)  # noqa: NPY002 (SB3's generator)
        envs = np.random.randint(0, high=rb.n_envs, size=(batch_size,))  # noqa: NPY002
        dones = rb.dones[inds, envs] * (1 - rb.timeouts[inds, envs])
        arrays = (
            rb.observations[inds, envs, :],
            rb.actions[inds, envs, :],
            rb.next_observations[inds, envs, :],
            dones.reshape(-1, 1),
            rb.rewards[inds, envs].reshape(-1, 1),
        )
        dev = self.device
        return ReplayBufferSamples(*(torch.from_numpy(a).to(dev) for a in arrays))

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """``gradient_steps`` SAC updates, numerically identical to ``SAC.train``."""
        if self.use_sde:  # gSDE resamples noise per step: SB3's own loop
            self.before_train()
            return super().train(gradient_steps, batch_size)
        self.policy.set_training_mode(True)
        actor, critic = self.actor, self.critic
        optimizers = [actor.optimizer, critic.optimizer]
        if self.ent_coef_optimizer is not None:
            optimizers += [self.ent_coef_optimizer]
        self._update_learning_rate(optimizers)
        foreach_adam(*optimizers)  # same numbers, fewer small kernels
        self.before_train()
        frozen = self._critic_only_params()
        critic_params = list(critic.parameters())
        target_params = list(self.critic_target.parameters())
        actor_losses, critic_losses, ent_losses, ent_coefs = [], [], [], []
        for step in range(gradient_steps):
            batch = self._sample(batch_size)
            discounts = batch.discounts if batch.discounts is not None else self.gamma
            actions_pi, log_prob = actor.action_log_prob(batch.observations)
            log_prob = log_prob.reshape(-1, 1)
            gaussian = getattr(actor.action_dist, "gaussian_actions", None)
            if self.ent_coef_optimizer is not None and self.log_ent_coef is not None:
                ent_coef = torch.exp(self.log_ent_coef.detach())
                ent_loss = -(self.log_ent_coef * (log_prob + self.target_entropy).detach()).mean()
                ent_losses.append(ent_loss.detach())
                self.ent_coef_optimizer.zero_grad()
                ent_loss.backward()
                self.ent_coef_optimizer.step()
            else:
                ent_coef = self.ent_coef_tensor
            ent_coefs.append(ent_coef.detach().reshape(()))
            with torch.no_grad():
                next_a, next_lp = actor.action_log_prob(batch.next_observations)
                next_q = torch.cat(self.critic_target(batch.next_observations, next_a), dim=1)
                next_q, _ = torch.min(next_q, dim=1, keepdim=True)
                next_q = next_q - ent_coef * next_lp.reshape(-1, 1)
                target_q = batch.rewards + (1 - batch.dones) * discounts * next_q
            current_q = critic(batch.observations, batch.actions)
            critic_loss = 0.5 * sum(F.mse_loss(q, target_q) for q in current_q)
            critic_losses.append(critic_loss.detach())  # type: ignore[union-attr]
            critic.optimizer.zero_grad()
            critic_loss.backward()  # type: ignore[union-attr]
            critic.optimizer.step()

            # the actor's loss needs ∂Q/∂ã only: no weight gradients for the critics
            for p in frozen:
                p.requires_grad_(False)
            try:
                q_pi = torch.cat(critic(batch.observations, actions_pi), dim=1)
                min_q, _ = torch.min(q_pi, dim=1, keepdim=True)
                actor_loss = self.actor_objective(
                    batch.observations, actions_pi, log_prob, gaussian, min_q, ent_coef
                )
                actor_losses.append(actor_loss.detach())
                actor.optimizer.zero_grad()
                actor_loss.backward()
            finally:
                for p in frozen:
                    p.requires_grad_(True)
            actor.optimizer.step()
            if step % self.target_update_interval == 0:
                with torch.no_grad():  # SB3's polyak_update: θ̄ ← (1 − τ)θ̄ + τθ
                    torch._foreach_mul_(target_params, 1 - self.tau)
                    torch._foreach_add_(target_params, critic_params, alpha=self.tau)
                    for p, t in zip(self.batch_norm_stats, self.batch_norm_stats_target):
                        t.copy_(p)
        self._n_updates += gradient_steps

        def mean(xs: list[torch.Tensor]) -> float:
            return float(np.mean(torch.stack(xs).cpu().numpy().astype(np.float64)))

        a_loss, c_loss = mean(actor_losses), mean(critic_losses)
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/ent_coef", mean(ent_coefs))
        self.logger.record("train/actor_loss", a_loss)
        self.logger.record("train/critic_loss", c_loss)
        if ent_losses:
            self.logger.record("train/ent_coef_loss", mean(ent_losses))
        self.after_train(a_loss, c_loss)
        return None
