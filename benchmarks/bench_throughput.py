"""Throughput of the on-policy learners (issue 23): env-steps/s and CPU per env step, against
peers measured in the same process, interleaved (so the machine's load hits both alike).

Part ``vec``: Hopper-v5, one 1024-step rollout + PPO update (10 epochs × 64) per iteration:
SB3 PPO with 1 env, SB3 PPO with 8 envs (128 steps each) and ``mdpo_on variant=ppo`` / MDPO with
8 envs; ratios against SB3 PPO at 1 env and at identical vectorized settings.

Part ``reward``: the learned-reward learners (RLHF, HERON, SPO) against ``ppo_true_reward`` at
identical PPO settings (the learners' defaults: HopperFactored-v5, 4 envs × one episode horizon
per rollout, reward-model refit after every rollout as HERON does, on 50-step windows of the
labelled trajectories): CPU seconds per env step and the ratio to PPO; ``rlhf rm_clip=0`` is the
refit on whole trajectories (the behaviour before), in the same run. Below a 1000-step horizon
a rollout holds fewer env steps but the refit costs the same, so two more rows refit with
``rm_steps = 50 · horizon / 1000``: the default's reward-model steps per env step at horizon 1000
(the cadence PEBBLE and B-Pref fix in env steps, not per rollout).

Part ``learners``: each on-policy learner at its mid figure's settings (figures/*.py), CPU per
env step against SB3 PPO with the same PPO settings (rollout size, minibatch, epochs, [64, 64])
at one environment and at the learner's number of environments, on the same environment (for
C-MORL's two-objective MO-Hopper the peer runs Hopper-v5: the same MuJoCo model and step cost).

    OMP_NUM_THREADS=1 python benchmarks/bench_throughput.py [vec|reward|learners|adam] [--reps 2]
        [--horizon 1000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch


def _timed(fn: Callable[[], int]) -> tuple[float, float, int]:
    w, c = time.perf_counter(), time.process_time()
    n = fn()
    return time.perf_counter() - w, time.process_time() - c, n


def _cpu_ms_per_step(runs: dict[str, Callable[[], int]], reps: int) -> dict[str, float]:
    """CPU ms per env step of each run: one untimed warm-up call, then ``reps`` interleaved."""
    for f in runs.values():
        f()
    tot = {k: [0.0, 0] for k in runs}
    for _ in range(reps):
        for k, f in runs.items():
            _, c, n = _timed(f)
            tot[k][0] += c
            tot[k][1] += n
    return {k: 1e3 * c / n for k, (c, n) in tot.items()}


def _sb3_ppo(
    n_envs: int,
    env: str = "Hopper-v5",
    rollout: int = 1024,
    batch_size: int = 64,
    n_epochs: int = 10,
    env_kwargs: dict[str, Any] | None = None,
) -> Callable[[], int]:
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from prl import envs

    venv = make_vec_env(lambda: envs.make(env, **(env_kwargs or {})), n_envs=n_envs, seed=0)
    m = PPO(
        "MlpPolicy", venv, n_steps=rollout // n_envs, batch_size=batch_size,
        n_epochs=n_epochs, seed=0, verbose=0,
    )  # fmt: skip

    def run() -> int:
        m.learn(rollout, reset_num_timesteps=False)
        return rollout

    return run


def _learner(algo: str, env: str, config: dict[str, Any], env_kwargs: dict[str, Any]) -> Any:
    from prl.config import build_config
    from prl.registry import ALGOS
    from prl.run import resolve_device

    cls = ALGOS.get(algo)
    lr = cls(build_config(cls.Config, config), env, env_kwargs, 0, resolve_device("cpu"))

    def run() -> int:
        before = lr.steps_done
        lr.step()
        return lr.steps_done - before

    return run


def bench_vec(reps: int) -> None:
    vec = {"n_envs": 8, "n_steps": 128, "batch_size": 64, "n_epochs": 10, "chunk": 1024}
    runs = {
        "sb3 PPO, 1 env": _sb3_ppo(1),
        "sb3 PPO, 8 envs": _sb3_ppo(8),
        "mdpo_on variant=ppo, 8 envs": _learner(
            "mdpo_on", "Hopper-v5", {**vec, "variant": "ppo"}, {}
        ),
        "mdpo_on (MDPO), 8 envs": _learner("mdpo_on", "Hopper-v5", vec, {}),
    }
    for f in runs.values():
        f()  # warm-up iteration (not timed)
    tot = {k: [0.0, 0.0, 0] for k in runs}
    for _ in range(reps):
        for k, f in runs.items():
            w, c, n = _timed(f)
            tot[k][0] += w
            tot[k][1] += c
            tot[k][2] += n
    base1 = tot["sb3 PPO, 1 env"][2] / tot["sb3 PPO, 1 env"][1]
    base8 = tot["sb3 PPO, 8 envs"][2] / tot["sb3 PPO, 8 envs"][1]
    print(
        "| learner | env-steps/s (CPU) | env-steps/s (wall) | × SB3 PPO 1 env | × SB3 PPO 8 envs |"
    )
    print("|---|---|---|---|---|")
    for k, (w, c, n) in tot.items():
        r = n / c
        print(f"| {k} | {r:.0f} | {n / w:.0f} | {r / base1:.2f} | {r / base8:.2f} |")


def bench_reward(reps: int, horizon: int) -> None:
    env, ek = "HopperFactored-v5", {"max_episode_steps": horizon}
    # the learners' default PPO settings: 4 envs × one episode horizon per rollout
    ppo = {"eval_episodes": 0, "queries_per_iter": 16}
    runs = {
        "ppo_true_reward": _learner("ppo_true_reward", env, ppo, ek),
        "rlhf": _learner("rlhf", env, ppo, ek),
        "rlhf rm_clip=0 (whole trajectories)": _learner("rlhf", env, {**ppo, "rm_clip": 0}, ek),
        "heron": _learner("heron", env, ppo, ek),
        "spo": _learner("spo", env, ppo, ek),
    }
    if horizon < 1000:  # the default's reward-model steps per env step (50 per 4000 steps)
        k = max(1, round(50 * horizon / 1000))
        runs[f"rlhf rm_steps={k}"] = _learner("rlhf", env, {**ppo, "rm_steps": k}, ek)
        runs[f"heron rm_steps={k}"] = _learner("heron", env, {**ppo, "rm_steps": k}, ek)
    ms = _cpu_ms_per_step(runs, reps)
    base = ms["ppo_true_reward"]
    print("| learner | CPU ms per env step | × PPO |")
    print("|---|---|---|")
    for k, v in ms.items():
        print(f"| {k} | {v:.3f} | {v / base:.2f} |")


# (label, algo, env, env kwargs, learner config, PPO peer: rollout, minibatch, epochs, n_envs);
# the settings are the mid figures' (figures/spo_control.py, heron.py, pdppo.py, cmorl.py)
_HOP = {"max_episode_steps": 1000}
_SPO = {"n_envs": 8, "batch_size": 256, "n_epochs": 10, "hidden": [64, 64], "eval_episodes": 0,
        "queries_per_iter": 160, "pool_size": 16}  # fmt: skip
_HERON = {"n_envs": 4, "batch_size": 200, "n_epochs": 10, "hidden": [64, 64], "eval_episodes": 0,
          "queries_per_iter": 40, "pool_size": 16}  # fmt: skip
FIGURE_LEARNERS = (
    ("spo (spo_control)", "spo", "HopperFactored-v5", _HOP, _SPO, (8000, 256, 10, 8)),
    ("rlhf (spo_control)", "rlhf", "HopperFactored-v5", _HOP, _SPO, (8000, 256, 10, 8)),
    ("heron (heron)", "heron", "HopperFactored-v5", _HOP, _HERON, (4000, 200, 10, 4)),
    ("ppo_true_reward (heron)", "ppo_true_reward", "HopperFactored-v5", _HOP, _HERON,
     (4000, 200, 10, 4)),
    ("pdppo (pdppo_vs_ppo, 1 env)", "pdppo", "lotsizing", {"instance": "15x5"}, {},
     (2048, 64, 10, 1)),
    ("pdppo, 8 envs (not the figure's)", "pdppo", "lotsizing", {"instance": "15x5"},
     {"n_envs": 8, "n_steps": 256}, (2048, 64, 10, 8)),
    ("cmorl_stage1 (cmorl_pareto)", "cmorl_stage1", "mo_hopper_2obj", {},
     {"n_envs": 4, "n_steps": 512, "minibatches": 4, "epochs": 10, "eval_episodes": 2},
     (2048, 512, 10, 4)),
)  # fmt: skip


def bench_learners(reps: int) -> None:
    print(
        "| learner (figure) | env | CPU ms per env step | × SB3 PPO 1 env | × SB3 PPO same envs |"
    )
    print("|---|---|---:|---:|---:|")
    for label, algo, env, ek, cfg, (rollout, mb, epochs, n) in FIGURE_LEARNERS:
        peer_env = "Hopper-v5" if env == "mo_hopper_2obj" else env
        peer_kw = {} if env == "mo_hopper_2obj" else ek
        runs = {
            "learner": _learner(algo, env, cfg, ek),
            "sb3 1": _sb3_ppo(1, peer_env, rollout, mb, epochs, peer_kw),
            "sb3 n": _sb3_ppo(n, peer_env, rollout, mb, epochs, peer_kw),
        }
        ms = _cpu_ms_per_step(runs, reps)
        print(
            f"| {label} | {env} | {ms['learner']:.3f} | {ms['sb3 1'] / ms['learner']:.2f} "
            f"| {ms['sb3 n'] / ms['learner']:.2f} |"
        )


def _adam_child(foreach: bool, iters: int) -> None:
    """One process (SB3 samples from torch's global generator): RLHF at the spo_control settings,
    Adam's foreach kernels on or off; prints CPU ms per env step and a hash of the weights."""
    import hashlib

    import prl.common.ppo as ppo_core

    if not foreach:
        ppo_core.foreach_adam = lambda *opts: None  # SB3's default (for-loop) Adam on CPU
    run = _learner("rlhf", "HopperFactored-v5", _SPO, _HOP)
    run()  # untimed warm-up iteration
    _, cpu, n = _timed(lambda: sum(run() for _ in range(iters)))
    learner = next(c.cell_contents for c in run.__closure__ if hasattr(c.cell_contents, "model"))
    weights = torch.cat([p.detach().flatten() for p in learner.model.policy.parameters()])
    digest = hashlib.sha1(weights.numpy().tobytes()).hexdigest()[:12]
    print(f"| {'foreach' if foreach else 'for-loop'} | {1e3 * cpu / n:.4f} | {digest} |")


def bench_adam(reps: int) -> None:
    """EpisodicPPO's multi-tensor Adam vs SB3's default, alternating fresh processes."""
    import subprocess
    import sys

    print("| Adam | CPU ms per env step | weights (sha1) |")
    print("|---|---:|---|")
    for _ in range(reps):
        for flag in ("0", "1"):
            cmd = [sys.executable, __file__, "adam-child", "--foreach", flag, "--reps", "3"]
            subprocess.run(cmd, check=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    parts = ["all", "vec", "reward", "learners", "adam", "adam-child"]
    ap.add_argument("part", nargs="?", default="all", choices=parts)
    ap.add_argument("--foreach", type=int, default=1, help="adam-child: 1 = foreach Adam")
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--horizon", type=int, default=1000, help="reward part: episode length")
    a = ap.parse_args()
    torch.set_num_threads(1)
    from prl.registry import load_plugins

    load_plugins()
    if a.part in ("all", "vec"):
        bench_vec(a.reps)
    if a.part in ("all", "reward"):
        bench_reward(a.reps, a.horizon)
    if a.part in ("all", "learners"):
        bench_learners(a.reps)
    if a.part == "adam":
        bench_adam(a.reps)
    if a.part == "adam-child":
        _adam_child(bool(a.foreach), a.reps)


if __name__ == "__main__":
    main()
