"""PDPPO vs SB3 PPO training throughput, and the raw step rate of the post-decision envs.

1. Environment steps per second of PDPPO (``pdppo``, advantage "max") and SB3 PPO
   (``pdppo_ppo_baseline``) with identical rollout, batch, epoch and network settings
   (SB3 defaults: n_steps 2048, batch 64, 10 epochs, [64, 64]), in the same process, the two
   learners alternating so that machine load hits both alike; after one warm-up rollout,
   ``--rollouts`` rollouts + updates are timed per repeat, in wall-clock seconds and in this
   process's CPU seconds (steadier on a shared machine). PDPPO steps three Adam optimizers
   (fused kernel) per minibatch; SB3 PPO is timed as shipped and, as a second peer, with its
   one Adam switched to the same fused kernel. Target: PDPPO ≥ 0.9× PPO.
2. Raw ``env.step`` rate with pre-drawn random actions: lot-sizing presets, and the slippery
   lake next to gymnasium's own FrozenLake-v1 (is_slippery=True) as the peer.

    PYTHONPATH=. python benchmarks/bench_pdppo.py [--repeats 3] [--rollouts 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import gymnasium
import numpy as np
import torch

from prl import envs
from prl.algos.pdppo import PDPPOLearner, PPOBaselineLearner
from prl.config import build_config


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def env_rate(env: gymnasium.Env, steps: int, seed: int = 0) -> float:
    """Steps per second of ``env.step`` with pre-drawn random actions (resets included)."""
    env.action_space.seed(seed)
    actions = [env.action_space.sample() for _ in range(steps)]
    env.reset(seed=seed)
    t0 = time.perf_counter()
    for a in actions:
        _, _, term, trunc, _ = env.step(a)
        if term or trunc:
            env.reset()
    return steps / (time.perf_counter() - t0)


def _fuse_adam(learner: PPOBaselineLearner) -> None:
    """Give SB3 PPO's single Adam the fused kernel PDPPO's three optimizers use."""
    pol = learner.model.policy
    params = [p for g in pol.optimizer.param_groups for p in g["params"]]
    pol.optimizer = torch.optim.Adam(
        params, lr=pol.optimizer.param_groups[0]["lr"], eps=1e-5, fused=True
    )


LEARNERS = {
    "pdppo": (PDPPOLearner, False),
    "ppo": (PPOBaselineLearner, False),
    "ppo_fused": (PPOBaselineLearner, True),
}


def learner_rates(
    env: str, env_kwargs: dict, repeats: int, rollouts: int, device: str
) -> dict[str, dict[str, list[float]]]:
    """Alternating timed runs: env steps per wall-clock second and per CPU second, per repeat."""
    out: dict[str, dict[str, list[float]]] = {k: {"wall": [], "cpu": []} for k in LEARNERS}
    names = list(LEARNERS)
    for rep in range(repeats):
        for name in names[rep % 3 :] + names[: rep % 3]:  # rotate who runs first
            cls, fused = LEARNERS[name]
            cfg = build_config(cls.Config, {})
            lrn = cls(cfg, env, env_kwargs, rep, torch.device(device))
            if fused:
                _fuse_adam(lrn)
            lrn.step()  # warm-up: first reset, lazy allocations
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(rollouts):
                lrn.step()
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            steps = rollouts * cfg.n_steps * cfg.n_envs
            out[name]["wall"].append(steps / wall)
            out[name]["cpu"].append(steps / cpu)
            lrn.close()
    return out


def phase_times(env: str, env_kwargs: dict, repeats: int, device: str) -> dict[str, dict]:
    """CPU seconds of one rollout collection and one update, per learner, interleaved."""
    from stable_baselines3.common.callbacks import CallbackList

    models = {}
    for name, cls in (("pdppo", PDPPOLearner), ("ppo", PPOBaselineLearner)):
        lrn = cls(build_config(cls.Config, {}), env, env_kwargs, 0, torch.device(device))
        lrn.step()
        models[name] = lrn.model
    out: dict[str, dict] = {k: {"collect": [], "train": []} for k in models}
    for _ in range(repeats):
        for name, m in models.items():
            cb = CallbackList([])
            cb.init_callback(m)
            c0 = time.process_time()
            m.collect_rollouts(m.env, cb, m.rollout_buffer, m.n_steps)
            c1 = time.process_time()
            m.train()
            out[name]["collect"].append(c1 - c0)
            out[name]["train"].append(time.process_time() - c1)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--rollouts", type=int, default=3, help="timed rollouts per repeat")
    p.add_argument("--threads", type=int, default=1, help="torch threads")
    p.add_argument("--env-steps", type=int, default=50_000, help="steps for the raw env rate")
    p.add_argument("--device", default="cpu")
    p.add_argument(
        "--sections", default="learners,phases,envs", help="comma list: learners, phases, envs"
    )
    args = p.parse_args()
    sections = set(args.sections.split(","))
    torch.set_num_threads(args.threads)
    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; torch {torch.__version__} "
        f"({args.threads} thread(s)), numpy {np.__version__}, device {args.device}"
    )

    if "phases" in sections:
        print("\n## CPU seconds per rollout (2048 steps) and per update, median of --repeats")
        print("| env | PDPPO collect | PPO collect | PDPPO update | PPO update | PPO/PDPPO total |")
        print("|---|---:|---:|---:|---:|---:|")
        for label, env, kw in (
            ("lotsizing 15x5", "lotsizing", {"instance": "15x5"}),
            ("slippery_lake 4x4", "slippery_lake", {"map_name": "4x4"}),
        ):
            r = phase_times(env, kw, max(args.repeats, 5), args.device)
            med = {k: {p: statistics.median(v) for p, v in d.items()} for k, d in r.items()}
            tot = {k: d["collect"] + d["train"] for k, d in med.items()}
            print(
                f"| {label} | {med['pdppo']['collect']:.2f} | {med['ppo']['collect']:.2f} "
                f"| {med['pdppo']['train']:.2f} | {med['ppo']['train']:.2f} "
                f"| {tot['ppo'] / tot['pdppo']:.3f} |",
                flush=True,
            )
    if "learners" in sections:
        learners_section(args)
    if "envs" in sections:
        envs_section(args)


def learners_section(args: argparse.Namespace) -> None:
    """PDPPO vs SB3 PPO (and PPO with fused Adam): env steps per second, alternating."""
    print("\n## PDPPO vs SB3 PPO (n_steps 2048, batch 64, 10 epochs, net [64, 64])")
    print(
        "| env | clock | PDPPO steps/s | PPO steps/s | PDPPO/PPO (median; per repeat) "
        "| PPO fused-Adam steps/s | PDPPO/PPO-fused (median; per repeat) |"
    )
    print("|---|---|---:|---:|---|---:|---|")
    for label, env, kw in (
        ("lotsizing 15x5", "lotsizing", {"instance": "15x5"}),
        ("lotsizing 25x10", "lotsizing", {"instance": "25x10"}),
        ("slippery_lake 4x4", "slippery_lake", {"map_name": "4x4"}),
    ):
        r = learner_rates(env, kw, args.repeats, args.rollouts, args.device)
        for clock in ("cpu", "wall"):
            pd_, pp, pf = r["pdppo"][clock], r["ppo"][clock], r["ppo_fused"][clock]
            per = [a / b for a, b in zip(pd_, pp)]
            perf = [a / b for a, b in zip(pd_, pf)]
            med = statistics.median
            print(
                f"| {label} | {clock} | {med(pd_):,.0f} | {med(pp):,.0f} | {med(per):.3f}; "
                f"{', '.join(f'{x:.2f}' for x in per)} | {med(pf):,.0f} | {med(perf):.3f}; "
                f"{', '.join(f'{x:.2f}' for x in perf)} |",
                flush=True,
            )


def envs_section(args: argparse.Namespace) -> None:
    """Raw env.step rates with pre-drawn random actions."""
    print("\n## raw env.step rate (random actions)")
    print("| env | steps/s | vs gymnasium FrozenLake-v1 |")
    print("|---|---:|---:|")
    peer = env_rate(
        gymnasium.make("FrozenLake-v1", map_name="4x4", is_slippery=True).unwrapped, args.env_steps
    )
    rows = [
        ("gymnasium FrozenLake-v1 4x4 (peer)", peer),
        (
            "slippery_lake 4x4",
            env_rate(envs.make("slippery_lake", map_name="4x4"), args.env_steps),
        ),
        (
            "slippery_lake 8x8",
            env_rate(envs.make("slippery_lake", map_name="8x8"), args.env_steps),
        ),
    ]
    for preset in ("15x5", "20x10", "25x10"):
        rows.append(
            (
                f"lotsizing {preset}",
                env_rate(envs.make("lotsizing", instance=preset), args.env_steps),
            )
        )
    for name, rate in rows:
        print(f"| {name} | {rate:,.0f} | {rate / peer:.2f}× |")


if __name__ == "__main__":
    main()
