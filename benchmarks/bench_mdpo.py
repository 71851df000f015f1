"""Env-steps/s of MDPO vs its SB3 peer on Hopper-v5 with one torch thread (issue 12).

On-policy MDPO (``MDPOOnPolicy``) vs SB3 ``PPO`` and off-policy MDPO (``MDPOOffPolicy``) vs SB3
``SAC``, with identical settings (network, rollout/batch sizes, epochs, learning rate, seed).
Each measurement builds a fresh model, runs a warm-up chunk (not timed), then times
``learn(steps, reset_num_timesteps=False)``; the algorithms alternate over ``--repeats`` rounds
and the median throughput of each is reported together with the ratio MDPO / peer.

    PYTHONPATH=. python benchmarks/bench_mdpo.py [--on-steps 8192] [--off-steps 1500] [--repeats 3]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from typing import Any

import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.env_util import make_vec_env

from prl import envs
from prl.algos.mdpo import MDPOOffPolicy, MDPOOnPolicy


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _venv(env: str, seed: int) -> Any:
    return make_vec_env(lambda: envs.make(env), n_envs=1, seed=seed)


ON_SETTINGS = dict(
    n_steps=2048, batch_size=64, n_epochs=10, learning_rate=3e-4, gamma=0.99, gae_lambda=0.95
)
OFF_SETTINGS = dict(
    learning_rate=3e-4,
    buffer_size=100_000,
    batch_size=256,
    learning_starts=500,
    tau=0.005,
    gamma=0.99,
    train_freq=1,
    gradient_steps=1,
    ent_coef=0.2,
)


def build(name: str, env: str, seed: int) -> Any:
    """A fresh model of ``name`` (mdpo_on, ppo, mdpo_off, sac) on ``env``."""
    venv = _venv(env, seed)
    if name == "mdpo_on":
        return MDPOOnPolicy("MlpPolicy", venv, sgd_steps=10, seed=seed, **ON_SETTINGS)
    if name == "ppo":
        return PPO("MlpPolicy", venv, seed=seed, **ON_SETTINGS)
    if name == "mdpo_off":
        return MDPOOffPolicy("MlpPolicy", venv, seed=seed, copy_every=1000, **OFF_SETTINGS)
    if name == "sac":
        return SAC("MlpPolicy", venv, seed=seed, **OFF_SETTINGS)
    raise ValueError(name)


def throughput(name: str, env: str, steps: int, warmup: int, seed: int) -> float:
    """Env steps per second of ``learn`` (rollouts + updates), after a warm-up chunk."""
    model = build(name, env, seed)
    model.learn(warmup, reset_num_timesteps=False)
    start = model.num_timesteps
    t0 = time.perf_counter()
    model.learn(steps, reset_num_timesteps=False)
    secs = time.perf_counter() - t0
    done = model.num_timesteps - start
    model.env.close()
    return done / secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--env", default="Hopper-v5")
    ap.add_argument("--on-steps", type=int, default=8192)
    ap.add_argument("--off-steps", type=int, default=1500)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(1)
    print(f"machine: {cpu_model()}, torch {torch.__version__}, 1 torch thread, env {args.env}")
    pairs = [("mdpo_on", "ppo", args.on_steps, 2048), ("mdpo_off", "sac", args.off_steps, 1000)]
    for ours, peer, steps, warmup in pairs:
        res: dict[str, list[float]] = {ours: [], peer: []}
        for r in range(args.repeats):
            order = (ours, peer) if r % 2 == 0 else (peer, ours)
            for name in order:
                res[name].append(throughput(name, args.env, steps, warmup, args.seed))
        med = {k: statistics.median(v) for k, v in res.items()}
        runs = ", ".join(f"{k}: " + " ".join(f"{x:.0f}" for x in v) for k, v in res.items())
        print(
            f"{ours:9s} {med[ours]:8.1f} env-steps/s | {peer:4s} {med[peer]:8.1f} env-steps/s | "
            f"ratio {med[ours] / med[peer]:.3f}  ({runs})"
        )


if __name__ == "__main__":
    main()
