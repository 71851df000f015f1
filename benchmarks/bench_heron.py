"""HERON vs its baselines at a mid budget on Pendulum: true return and cost per env step.

The three learners of ``prl figure heron`` — ``heron`` (tree labels → BT reward model → PPO),
``rlhf`` (BT labels on the summed reward → reward model → PPO) and ``ppo_true_reward`` (PPO on
the hand-weighted reward, the peer) — with the figure's full-budget settings for Pendulum
(horizon 200, 4 envs, γ 0.9, lr 1e-3) but fewer env steps and seeds, run one after the other
per seed in this process. Reported: final deterministic return (IQM over seeds, mean of 10
episodes each), and CPU seconds per run as a ratio to PPO on the true reward (the overhead of
learning the reward: the learned-reward wrapper, queries and reward-model fits).

    PYTHONPATH=. python benchmarks/bench_heron.py [--steps 40000] [--seeds 0 1 2]

``--reward-eval`` instead times HERON with the learned reward evaluated once per env step
inside the wrapper (``RLHF.deferred_reward = False``) against one batched call per rollout
(the default), interleaved per seed, with PPO on the true reward as the peer.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

import prl.figures.heron as fh
from prl.algos.rlhf import torch_threads
from prl.metrics import iqm
from prl.registry import FIGURES


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40_000)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--env", default="PendulumFactored-v1")
    ap.add_argument("--reward-eval", action="store_true", help="per-step vs batched r̂ (CPU)")
    args = ap.parse_args()
    b = dict(FIGURES.get("heron").budget)
    task = dict(b["tasks"][args.env])
    task["steps"] = args.steps
    b["tasks"] = {args.env: task}
    if args.reward_eval:
        reward_eval(args, b)
        return
    res: dict[str, dict[str, list[float]]] = {}
    with torch_threads(1):
        for seed in args.seeds:
            for label, algo, extra in fh.ALGOS:
                t0 = time.process_time()
                df = fh._run(args.env, label, algo, extra, seed, b, variant="default")
                cpu = time.process_time() - t0
                fin = df[df["row"] == "final"].iloc[0]
                cur = df[df["row"] == "curve"]
                r = res.setdefault(label, {"ret": [], "cpu": [], "agree": []})
                r["ret"].append(float(fin["eval_return"]))
                r["cpu"].append(cpu)
                if label == "HERON":
                    r["agree"].append(float(cur["heldout_agreement"].iloc[-1]))
                print(f"seed {seed} {label:22s} eval return {fin['eval_return']:8.1f} "
                      f"cpu {cpu:6.1f}s queries {fin['queries']:.0f}", flush=True)  # fmt: skip
    peer = np.mean(res["PPO (true reward)"]["cpu"])
    print(f"\n{args.env}, {args.steps} env steps, seeds {args.seeds}, {platform.processor()}")
    print("| learner | final return IQM (per seed) | CPU s/run | CPU vs PPO |")
    print("|---|---|---|---|")
    for label, r in res.items():
        per = ", ".join(f"{x:.0f}" for x in r["ret"])
        c = np.mean(r["cpu"])
        print(f"| {label} | {iqm(np.array(r['ret'])):.0f} ({per}) | {c:.0f} | {c / peer:.2f}× |")
    if res["HERON"]["agree"]:
        print(f"HERON held-out r̂/tree agreement at the end: {res['HERON']['agree']}")


def reward_eval(args: argparse.Namespace, b: dict) -> None:
    """CPU seconds of HERON with per-step vs batched learned-reward evaluation, PPO as peer."""
    from prl.algos.rlhf import RLHF

    heron = next(a for a in fh.ALGOS if a[1] == "heron")
    ppo = next(a for a in fh.ALGOS if a[1] == "ppo_true_reward")
    cpu: dict[str, list[float]] = {"per step": [], "batched": [], "PPO": []}
    ret: dict[str, list[float]] = {k: [] for k in cpu}
    with torch_threads(1):
        for seed in args.seeds:
            for key, (label, algo, extra), deferred in (
                ("per step", heron, False),
                ("batched", heron, True),
                ("PPO", ppo, True),
            ):
                RLHF.deferred_reward = deferred
                t0 = time.process_time()
                df = fh._run(args.env, label, algo, extra, seed, b, variant="default")
                cpu[key].append(time.process_time() - t0)
                ret[key].append(float(df[df["row"] == "final"].iloc[0]["eval_return"]))
                print(f"seed {seed} {key:9s} cpu {cpu[key][-1]:6.1f}s return {ret[key][-1]:.1f}")
    RLHF.deferred_reward = True
    peer = float(np.median(cpu["PPO"]))
    print(f"\n{args.env}, {args.steps} env steps, seeds {args.seeds}, {platform.processor()}")
    print("| HERON reward evaluation | CPU s/run (median) | CPU vs PPO | final returns |")
    print("|---|---:|---:|---|")
    for k in cpu:
        c = float(np.median(cpu[k]))
        rets = ", ".join(f"{x:.0f}" for x in ret[k])
        print(f"| {k} | {c:.1f} | {c / peer:.2f}× | {rets} |")
    print(f"batched / per step: {np.median(cpu['batched']) / np.median(cpu['per step']):.2f}")


if __name__ == "__main__":
    main()
