"""Env-steps/s of the lab's SAC (prl.common.sac.FastSAC) and off-policy MDPO vs SB3 SAC (issue 23).

Hopper-v5, identical settings (batch 256, [256, 256] actor and twin critics, one gradient step per
env step, λ = ent_coef 0.2, Adam 3e-4, learning_starts 500), at 1 and 2 torch threads. All models
are built first and warmed up past learning_starts (untimed); then rounds of ``learn(--steps)``
run interleaved, model after model (so the machine's load hits each alike), and the rates are
summed over rounds. ``collection only`` is SB3 SAC with ``gradient_steps=0`` (acting with the
policy, stepping, storing; no update): the part an overlapped worker could hide.

Two threads under load: OpenMP's spinning wait makes a 2-thread matmul many times slower when
the cores are shared, so this script sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before torch
loads; the threads are switched with ``torch.set_num_threads`` between measurements.

    OMP_NUM_THREADS=1 python benchmarks/bench_offpolicy.py [--steps 150] [--rounds 3]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import time
from typing import Any

import torch

SETTINGS = dict(
    learning_rate=3e-4,
    buffer_size=100_000,
    batch_size=256,
    learning_starts=500,
    tau=0.005,
    gamma=0.99,
    train_freq=1,
    gradient_steps=1,
    ent_coef=0.2,
    policy_kwargs={"net_arch": [256, 256]},
)


def build(name: str, seed: int) -> Any:
    """A fresh model: sb3 (SAC), lab (FastSAC), mdpo (MDPOOffPolicy) or collect (no updates)."""
    from stable_baselines3 import SAC
    from stable_baselines3.common.env_util import make_vec_env

    from prl import envs
    from prl.algos.mdpo import MDPOOffPolicy
    from prl.common.sac import FastSAC

    venv = make_vec_env(lambda: envs.make("Hopper-v5"), n_envs=1, seed=seed)
    if name == "mdpo":
        return MDPOOffPolicy("MlpPolicy", venv, seed=seed, copy_every=1000, **SETTINGS)
    if name == "collect":
        return SAC("MlpPolicy", venv, seed=seed, **{**SETTINGS, "gradient_steps": 0})
    cls = {"sb3": SAC, "lab": FastSAC}[name]
    return cls("MlpPolicy", venv, seed=seed, **SETTINGS)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=150, help="env steps per timed learn() call")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    a = ap.parse_args()
    runs = [("collect", 1)] + [(n, t) for t in a.threads for n in ("sb3", "lab", "mdpo")]
    models = {}
    for name, threads in runs:
        torch.set_num_threads(threads)
        m = build(name, seed=0)
        m.learn(SETTINGS["learning_starts"] + 50, reset_num_timesteps=False)  # warm-up
        models[(name, threads)] = m
    tot = {k: [0.0, 0.0, 0] for k in runs}
    for _ in range(a.rounds):
        for k in runs:
            torch.set_num_threads(k[1])
            m = models[k]
            n0, w, c = m.num_timesteps, time.perf_counter(), time.process_time()
            m.learn(a.steps, reset_num_timesteps=False)
            tot[k][0] += time.perf_counter() - w
            tot[k][1] += time.process_time() - c
            tot[k][2] += m.num_timesteps - n0
    rate = {k: n / w for k, (w, _, n) in tot.items()}
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ['OMP_WAIT_POLICY']}, "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, "
        f"{a.rounds} rounds x {a.steps} steps"
    )
    print(
        "| model | threads | env-steps/s (wall) | CPU s per step | × SB3 SAC same threads "
        "| × SB3 SAC 1 thread |"
    )
    print("|---|---:|---:|---:|---:|---:|")
    names = {
        "sb3": "SB3 SAC",
        "lab": "lab SAC (FastSAC)",
        "mdpo": "off-policy MDPO",
        "collect": "collection only (SB3 SAC, no updates)",
    }
    for k in runs:
        w, c, n = tot[k]
        same = rate[k] / rate[("sb3", k[1])] if ("sb3", k[1]) in rate else float("nan")
        one = rate[k] / rate[("sb3", 1)] if ("sb3", 1) in rate else float("nan")
        print(
            f"| {names[k[0]]} | {k[1]} | {rate[k]:.1f} | {c / n * 1e3:.2f} ms | "
            f"{same:.2f} | {one:.2f} |"
        )
    for m in models.values():
        m.env.close()


if __name__ == "__main__":
    main()
