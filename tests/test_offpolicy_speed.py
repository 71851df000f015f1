"""The lab's leaner SAC update (prl.common.sac.FastSAC, also under off-policy MDPO) computes
SB3's SAC exactly: the same losses and gradients on a fixed batch, the same weights after a run."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
import torch
from stable_baselines3 import SAC
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.logger import configure
from stable_baselines3.common.type_aliases import ReplayBufferSamples

from prl import envs
from prl.algos.mdpo import MDPOOffPolicy
from prl.common.sac import FastSAC

KW = dict(learning_starts=40, batch_size=32, buffer_size=500, policy_kwargs={"net_arch": [32, 32]})


def _model(cls: type, seed: int = 3, learn: int = 0, **kw: Any) -> Any:
    """A model seeded ``seed`` (SB3 reseeds the global generators), run ``learn`` env steps."""
    venv = make_vec_env(lambda: envs.make("Pendulum-v1"), n_envs=1, seed=seed)
    model = cls("MlpPolicy", venv, seed=seed, verbose=0, **{**KW, **kw})
    model.set_logger(configure(None, []))
    if learn:
        model.learn(learn)
    return model


def _fixed_batch(n: int = 32) -> ReplayBufferSamples:
    g = torch.Generator().manual_seed(0)
    obs, nxt = torch.randn(n, 3, generator=g), torch.randn(n, 3, generator=g)
    act = torch.rand(n, 1, generator=g) * 2 - 1
    dones = (torch.rand(n, 1, generator=g) < 0.2).float()
    rew = torch.randn(n, 1, generator=g)
    return ReplayBufferSamples(obs, act, nxt, dones, rew)


def _record_grads(model: Any) -> dict[str, list[list[torch.Tensor]]]:
    """Wrap the optimizers' ``step`` to keep a copy of every gradient they apply."""
    seen: dict[str, list[list[torch.Tensor]]] = {"actor": [], "critic": []}
    for name in seen:
        opt = getattr(model, name).optimizer
        inner = opt.step

        def step(*a: Any, _inner: Any = inner, _name: str = name, _opt: Any = opt) -> Any:
            grads = [p.grad.clone() for grp in _opt.param_groups for p in grp["params"]]
            seen[_name].append(grads)
            return _inner(*a)

        opt.step = step
    return seen


def _train_on(model: Any, batch: ReplayBufferSamples, steps: int) -> dict[str, Any]:
    model.replay_buffer.sample = lambda *a, **k: batch  # SB3's path
    model._sample = lambda *a, **k: batch  # the lab's path (FastSAC only)
    seen = _record_grads(model)
    torch.manual_seed(7)
    model.train(gradient_steps=steps, batch_size=len(batch.rewards))
    log = model.logger.name_to_value
    return {"grads": seen, "actor": log["train/actor_loss"], "critic": log["train/critic_loss"]}


@pytest.mark.parametrize("ent_coef", [0.2, "auto"])
def test_losses_and_gradients_equal_sb3_on_a_fixed_batch(ent_coef: Any) -> None:
    batch = _fixed_batch()
    sb3, ours = _model(SAC, ent_coef=ent_coef), _model(FastSAC, ent_coef=ent_coef)
    for p, q in zip(sb3.policy.parameters(), ours.policy.parameters()):
        assert torch.equal(p, q)  # same seed, same initial weights
    ref, got = _train_on(sb3, batch, 3), _train_on(ours, batch, 3)
    assert got["actor"] == ref["actor"] and got["critic"] == ref["critic"]
    for part in ("actor", "critic"):
        assert len(got["grads"][part]) == 3
        for g_ref, g_got in zip(ref["grads"][part], got["grads"][part]):
            for a, b in zip(g_ref, g_got):
                assert torch.equal(a, b), part
    for (n, p), q in zip(sb3.policy.state_dict().items(), ours.policy.state_dict().values()):
        assert torch.equal(p, q), n  # weights, target critics included
    if ent_coef == "auto":
        assert torch.equal(sb3.log_ent_coef, ours.log_ent_coef)
    # the critics' weights take gradients again after the actor's step
    assert all(p.requires_grad for p in ours.critic.parameters())


def test_actor_gradient_by_hand_on_a_fixed_batch() -> None:
    """∂/∂θ of E[α log π(ã|s) − min_i Q_i(s, ã)] with the same noise, written out directly."""
    batch = _fixed_batch()
    ours = _model(FastSAC, ent_coef=0.2)
    actor = copy.deepcopy(ours.actor)  # θ before the step; the critics after theirs (SAC's order)
    got = _train_on(ours, batch, 1)
    critic = ours.critic
    mean, log_std, _ = actor.get_action_dist_params(batch.observations)
    torch.manual_seed(7)  # train()'s first draw is ã's reparameterization noise
    eps = torch.empty_like(mean).normal_()
    u = mean + log_std.exp() * eps
    a = torch.tanh(u)
    logp = torch.distributions.Normal(mean, log_std.exp()).log_prob(u).sum(
        1, keepdim=True
    ) - torch.log(1 - a.pow(2) + 1e-6).sum(1, keepdim=True)
    x = torch.cat([batch.observations, a], dim=1)
    q = torch.min(critic.q_networks[0](x), critic.q_networks[1](x))
    loss = (0.2 * logp - q).mean()
    expected = torch.autograd.grad(loss, list(actor.parameters()))
    assert got["actor"] == pytest.approx(float(loss.detach()), rel=1e-6)
    for e, g in zip(expected, got["grads"]["actor"][0]):
        torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-6)


def test_a_run_is_sb3_sac_bit_for_bit() -> None:
    """learn(): same draws, same order — identical weights, optimizer moments and buffer."""
    kw = dict(ent_coef="auto", target_update_interval=2, gradient_steps=2)
    sb3, ours = _model(SAC, learn=120, **kw), _model(FastSAC, learn=120, **kw)
    for (n, p), q in zip(sb3.policy.state_dict().items(), ours.policy.state_dict().values()):
        assert torch.equal(p, q), n
    for o_ref, o in ((sb3.actor.optimizer, ours.actor.optimizer), (sb3.critic, ours.critic)):
        o_ref = getattr(o_ref, "optimizer", o_ref)
        o = getattr(o, "optimizer", o)
        for s_ref, s in zip(o_ref.state.values(), o.state.values()):
            assert torch.equal(s_ref["exp_avg_sq"], s["exp_avg_sq"])
    np.testing.assert_array_equal(sb3.replay_buffer.rewards, ours.replay_buffer.rewards)
    assert sb3._n_updates == ours._n_updates == 160


def test_mdpo_with_c_equal_lambda_runs_sac_bit_for_bit() -> None:
    sb3 = _model(SAC, learn=100, ent_coef=0.2)
    ours = _model(MDPOOffPolicy, learn=100, ent_coef=0.2, kl_coef=0.2)
    for (n, p), q in zip(sb3.policy.state_dict().items(), ours.policy.state_dict().values()):
        assert torch.equal(p, q), n
    assert ours.last_stats["loss_actor"] == sb3.logger.name_to_value["train/actor_loss"]


def test_saved_model_loads_as_plain_sac(tmp_path) -> None:
    ours = _model(FastSAC, learn=60)
    ours.save(tmp_path / "m.zip")
    back = SAC.load(tmp_path / "m.zip", device="cpu")
    obs = np.zeros((1, 3), dtype=np.float32)
    np.testing.assert_array_equal(
        back.predict(obs, deterministic=True)[0], ours.predict(obs, deterministic=True)[0]
    )
