"""C-MORL vs its peers at equal true environment steps: front quality (HV / EU / sparsity).

Peers measured in the same run:
- ``cmorl_stage1`` — Stage 1 alone (linear scalarization on the same weight grid), same budget;
- optionally PGMORL from morl-baselines (``--morl-python``: an interpreter of a separate virtual
  environment with morl-baselines installed; it is not a lab dependency), on mo-hopper-2obj-v5.

    PYTHONPATH=. python benchmarks/bench_cmorl.py [--seeds 3] [--morl-python VENV/bin/python]

Prints a markdown table; numbers are final values, ratios are C-MORL / peer.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

# (task, env steps, figure config): tabular tasks with the figure's PPO settings
TASKS = [("mo_tabular", 40_960), ("deep_sea_treasure", 200_000)]

PGMORL_SCRIPT = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(1)
import mo_gymnasium as mo_gym
from morl_baselines.multi_policy.pgmorl.pgmorl import PGMORL
steps, seed, out = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
ref = np.array([-100.0, -100.0])
t0, c0 = time.time(), time.process_time()
algo = PGMORL(env_id="mo-hopper-2obj-v5", origin=ref, num_envs=4, pop_size=6,
              warmup_iterations=1, steps_per_iteration=256, evolutionary_iterations=1,
              gamma=0.99, log=False, seed=seed, device="cpu")
eval_env = mo_gym.make("mo-hopper-2obj-v5", max_episode_steps=500)
algo.train(total_timesteps=steps, eval_env=eval_env, ref_point=ref)
# PGMORL's archive holds its own evaluations: discounted (γ = 0.99) returns of each policy
pts = [np.asarray(e, dtype=float).tolist() for e in algo.archive.evaluations]
json.dump({"points": pts, "steps": int(algo.global_step), "wall": time.time() - t0,
           "cpu": time.process_time() - c0}, open(out, "w"))
"""


def run_lab(algo: str, task: str, steps: int, seed: int, config: dict) -> dict:
    from prl.metrics import expected_utility, hypervolume, sparsity
    from prl.run import train

    t0, c0 = time.time(), time.process_time()
    learner, rows = train(algo, task, seed=seed, steps=steps, config=config)
    front = learner.front()
    return {
        "hv": hypervolume(front, learner.ref),
        "hv_ratio": rows[-1].get("hv_ratio", float("nan")),
        "eu": expected_utility(front, learner.eu_w),
        "sp": sparsity(front),
        "steps": learner.steps_done,
        "cpu": time.process_time() - c0,
        "wall": time.time() - t0,
    }


def run_pgmorl(python: str, steps: int, seed: int) -> dict:
    from prl.algos.cmorl import eu_weights
    from prl.metrics import expected_utility, hypervolume, sparsity

    with tempfile.TemporaryDirectory() as d:
        script, out = Path(d) / "pgmorl.py", Path(d) / "out.json"
        script.write_text(PGMORL_SCRIPT)
        subprocess.run(
            [python, str(script), str(steps), str(seed), str(out)],
            check=True,
            stdout=subprocess.DEVNULL,  # PGMORL prints its progress
        )
        res = json.loads(out.read_text())
    pts = np.array(res["points"])
    ref = np.array([-100.0, -100.0])
    return {
        "hv": hypervolume(pts, ref),
        "hv_ratio": float("nan"),
        "eu": expected_utility(pts, eu_weights(2)),
        "sp": sparsity(pts),
        "steps": res["steps"],
        "cpu": res["cpu"],
        "wall": res["wall"],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--morl-python", default=None, help="interpreter with morl-baselines")
    ap.add_argument("--mujoco-steps", type=int, default=12_288)
    args = ap.parse_args()
    torch.set_num_threads(1)
    from prl.figures.cmorl import MUJOCO_PPO, TASK_CONFIG

    print("| task | seed | algo | env steps | HV | HV/true | EU | SP | CPU s | HV ratio |")
    print("|---|---|---|---|---|---|---|---|---|---|")

    def line(task: str, seed: int, name: str, r: dict, ratio: float) -> None:
        print(
            f"| {task} | {seed} | {name} | {r['steps']} | {r['hv']:.4g} | {r['hv_ratio']:.3f} "
            f"| {r['eu']:.4g} | {r['sp']:.3g} | {r['cpu']:.1f} | {ratio:.3f} |",
            flush=True,
        )

    for task, steps in TASKS:
        cfg = {**TASK_CONFIG[task], "stage1_steps": steps // 2}
        for seed in range(args.seeds):
            base = run_lab("cmorl_stage1", task, steps, seed, cfg)
            ours = run_lab("cmorl", task, steps, seed, cfg)
            line(task, seed, "cmorl_stage1", base, 1.0)
            line(task, seed, "cmorl", ours, ours["hv"] / base["hv"])
    if args.morl_python:
        steps = args.mujoco_steps
        cfg = {**MUJOCO_PPO, "n_steps": 256, "stage1_steps": steps // 2, "stage2_updates": 2}
        for seed in range(args.seeds):
            peer = run_pgmorl(args.morl_python, steps, seed)
            ours = run_lab("cmorl", "mo_hopper_2obj", steps, seed, cfg)
            line("mo_hopper_2obj", seed, "PGMORL (morl-baselines)", peer, 1.0)
            line("mo_hopper_2obj", seed, "cmorl", ours, ours["hv"] / peer["hv"])
    print(f"\n{sys.version.split()[0]}, torch {torch.__version__}, 1 thread")


if __name__ == "__main__":
    main()
