"""Labelling throughput of vectorized oracles vs a per-pair Python loop (issue 2).

Labels 1e6 pairs of 50-step segments with BradleyTerry and Regret (tabular A* lookup on the
delivery gridworld) in chunks of 1e5, and the same work with straightforward per-pair Python
loops on a 2e4-pair subsample (over the numpy rows, and over pre-converted nested lists);
prints pairs/s for each and the ratios. Only the labelling is timed, not making the segments.

    PYTHONPATH=. python benchmarks/bench_oracles.py [--pairs 1000000] [--loop-pairs 20000]
"""

from __future__ import annotations

import argparse
import math
import os
import platform
import time

import numpy as np

from prl import envs
from prl.oracles import BradleyTerry, Regret
from prl.types import Segments


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def make_chunk(rng: np.random.Generator, n: int, T: int, S: int, A: int, R: np.ndarray):
    """Two batches of n random T-step segments of the tabular MDP (rewards R[s,a])."""
    out = []
    for _ in range(2):
        obs = rng.integers(0, S, size=(n, T))
        act = rng.integers(0, A, size=(n, T))
        out.append(Segments(obs=obs, actions=act, rewards=R[obs, act]))
    return out


def _draw(d: float, rng: np.random.Generator) -> float:
    p = 1.0 / (1.0 + math.exp(-d)) if d >= 0 else math.exp(d) / (1.0 + math.exp(d))
    return 1.0 if rng.random() < p else 0.0


def loop_bt_rows(a: Segments, b: Segments, beta: float, rng: np.random.Generator) -> list:
    """Per-pair loop over the numpy rows: returns, a stable sigmoid, one uniform draw."""
    return [
        _draw(beta * (float(a.rewards[i].sum()) - float(b.rewards[i].sum())), rng)
        for i in range(a.batch_size)
    ]


def loop_regret_rows(a: Segments, b: Segments, adv: np.ndarray, beta: float, rng) -> list:
    """Per-pair loop over the numpy rows: regret = −Σ_t A*(s_t, a_t) by table lookup."""
    out = []
    for i in range(a.batch_size):
        reg_a = -float(adv[a.obs[i], a.actions[i]].sum())
        reg_b = -float(adv[b.obs[i], b.actions[i]].sum())
        out.append(_draw(beta * (reg_b - reg_a), rng))
    return out


def loop_bt_lists(ra: list, rb: list, beta: float, rng: np.random.Generator) -> list:
    """Pure-Python loop over nested lists (conversion not timed): the fastest plain loop."""
    return [_draw(beta * (sum(xa) - sum(xb)), rng) for xa, xb in zip(ra, rb)]


def loop_regret_lists(oa, aa, ob, ab, adv: list, beta: float, rng) -> list:
    """Pure-Python regret loop over nested lists with a nested-list A* table."""
    out = []
    for sa, xa, sb, xb in zip(oa, aa, ob, ab):
        reg_a = -sum(adv[s][u] for s, u in zip(sa, xa))
        reg_b = -sum(adv[s][u] for s, u in zip(sb, xb))
        out.append(_draw(beta * (reg_b - reg_a), rng))
    return out


def loop_api(oracle, a: Segments, b: Segments, n: int, rng: np.random.Generator) -> list:
    """The oracle's own API called once per pair (what per-pair labelling code would do)."""
    return [oracle.label(a[i], b[i], rng).label[0] for i in range(n)]


def _timed(fn, *args) -> float:
    t0 = time.perf_counter()
    fn(*args)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pairs", type=int, default=1_000_000)
    ap.add_argument("--loop-pairs", type=int, default=20_000)
    ap.add_argument("--chunk", type=int, default=100_000)
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    mdp = envs.make("delivery").mdp
    R = np.asarray(mdp.R)
    adv = mdp.advantage_star()
    oracles = {"BradleyTerry": BradleyTerry(beta=1.0), "Regret": Regret.from_mdp(mdp, discount=1.0)}
    print(f"machine: nproc={os.cpu_count()}, cpu={cpu_model()}, numpy {np.__version__}")
    print(f"{args.pairs} pairs of {args.steps}-step segments, chunks of {args.chunk}")

    rng = np.random.default_rng(args.seed)
    vec_time = dict.fromkeys(oracles, 0.0)
    done = 0
    while done < args.pairs:
        n = min(args.chunk, args.pairs - done)
        a, b = make_chunk(rng, n, args.steps, mdp.S, mdp.A, R)
        for name, oracle in oracles.items():
            t0 = time.perf_counter()
            prefs = oracle.label(a, b, rng)
            vec_time[name] += time.perf_counter() - t0
            assert len(prefs) == n
        done += n

    a, b = make_chunk(rng, args.loop_pairs, args.steps, mdp.S, mdp.A, R)
    ra, rb = a.rewards.tolist(), b.rewards.tolist()
    oa, aa, ob, ab = a.obs.tolist(), a.actions.tolist(), b.obs.tolist(), b.actions.tolist()
    rows = {
        "BradleyTerry": _timed(loop_bt_rows, a, b, 1.0, rng),
        "Regret": _timed(loop_regret_rows, a, b, adv, 1.0, rng),
    }
    lists = {
        "BradleyTerry": _timed(loop_bt_lists, ra, rb, 1.0, rng),
        "Regret": _timed(loop_regret_lists, oa, aa, ob, ab, adv.tolist(), 1.0, rng),
    }

    n_api = max(1, args.loop_pairs // 10)
    api = {
        name: _timed(loop_api, o, a, b, n_api, rng) * args.loop_pairs / n_api
        for name, o in oracles.items()
    }

    print(f"per-pair loops on {args.loop_pairs} pairs: 'rows' indexes the numpy arrays pair by")
    print("pair; 'lists' runs pure Python on nested lists (list conversion not timed); 'api'")
    print(f"calls oracle.label on one pair at a time ({n_api} pairs, extrapolated)")
    print(
        f"{'oracle':<14}{'vectorized/s':>14}"
        + "".join(f"{k + ' loop/s':>16}{'ratio':>8}" for k in ("rows", "lists", "api"))
    )
    for name in oracles:
        v = args.pairs / vec_time[name]
        line = f"{name:<14}{v:>14,.0f}"
        for t in (rows[name], lists[name], api[name]):
            lp = args.loop_pairs / t
            line += f"{lp:>16,.0f}{v / lp:>7.0f}x"
        print(line)


if __name__ == "__main__":
    main()
