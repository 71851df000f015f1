"""Well-kept libraries against the lab's previous code, same inputs, same process (issue 20).

1. Hypervolume, d = 2…6 objectives, n = 60…1,000 points: moocore (``prl.metrics.hypervolume``)
   against the lab's own exact sweep kept as the test oracle (``prl.metrics.hypervolume_exact``).
   Fronts are n points on the positive unit sphere (all mutually non-dominated, the hard case),
   reference point at the origin. moocore: best of ``--reps`` calls; the sweep: one call, and a
   size whose sweep would take longer than ``--max-seconds`` (extrapolated from the previous n as
   n²) is not run.
2. Minimax-winner LP, n = 10…200 actions: ``prl.games.minimax_winner`` (scipy ``linprog``/HiGHS,
   polished on its support) against the previous cvxpy form, written here as the peer: maximize
   v s.t. Aᵀx ≥ v, Σx = 1, x ≥ 0 with A = (P − Pᵀ)/2, solved by cvxpy with solver HIGHS (problem
   built per call, as before). cvxpy is no longer a dependency: its column is skipped when it is
   not installed. Both on the same EGPO random games; best of ``--reps`` calls each.

    OMP_NUM_THREADS=1 PYTHONPATH=. python benchmarks/bench_ecosystem.py [--reps 5]
        [--hv-dims 2,3,4,5,6] [--hv-sizes 60,200,500,1000] [--lp-sizes 10,20,50,100,200]
        [--max-seconds 15]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from prl.games import minimax_winner, random_preference_matrix
from prl.metrics import hypervolume, hypervolume_exact


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def best_of(fn: Callable[[], Any], reps: int) -> tuple[float, Any]:
    """Fastest of ``reps`` timed calls (seconds) and the last result."""
    best, out = np.inf, None
    for _ in range(reps):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def sphere_front(n: int, d: int, rng: np.random.Generator) -> np.ndarray:
    x = np.abs(rng.normal(size=(n, d)))
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bench_hypervolume(dims: list[int], sizes: list[int], reps: int, max_seconds: float) -> None:
    print("## hypervolume: moocore vs the lab's exact sweep (points on the unit sphere, ref 0)")
    print("| d | n | moocore (ms) | exact sweep (ms) | ratio | |HV diff| / HV |")
    print("|---:|---:|---:|---:|---:|---:|")
    hypervolume(np.ones((2, 2)), np.zeros(2))  # import moocore outside the timings
    for d in dims:
        prev: tuple[int, float] | None = None
        for n in sizes:
            pts = sphere_front(n, d, np.random.default_rng(1000 * d + n))
            ref = np.zeros(d)
            t_moo, hv = best_of(lambda p=pts, r=ref: hypervolume(p, r), reps)
            guess = None if prev is None else prev[1] * (n / prev[0]) ** 2
            if guess is not None and guess > max_seconds:
                print(
                    f"| {d} | {n} | {t_moo * 1e3:.3f} | not run (≥ {guess:.0f} s extrapolated) "
                    f"| ≥ {guess / t_moo:,.0f}× | — |"
                )
                prev = (n, guess)
                continue
            t_ex, hv_ex = best_of(lambda p=pts, r=ref: hypervolume_exact(p, r), 1)
            prev = (n, t_ex)
            rel = abs(hv - hv_ex) / hv_ex
            print(
                f"| {d} | {n} | {t_moo * 1e3:.3f} | {t_ex * 1e3:,.1f} | {t_ex / t_moo:,.0f}× "
                f"| {rel:.1e} |",
                flush=True,
            )


@contextlib.contextmanager
def captured_fds(sink: dict[str, int]) -> Any:
    """Count what is written to file descriptors 1 and 2 (C-level solver output included)."""
    import tempfile

    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 1)
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            tmp.seek(0)
            sink["chars"] = len(tmp.read())


def cvxpy_minimax(P: np.ndarray, cp: Any) -> np.ndarray:
    """The previous implementation's LP: max v s.t. Aᵀx ≥ v, Σx = 1, x ≥ 0, A = (P − Pᵀ)/2."""
    A = 0.5 * (P - P.T)
    n = A.shape[0]
    x = cp.Variable(n)
    v = cp.Variable()
    prob = cp.Problem(cp.Maximize(v), [A.T @ x >= v, cp.sum(x) == 1, x >= 0])
    prob.solve(solver="HIGHS")
    return np.asarray(x.value, dtype=np.float64)


def bench_lp(sizes: list[int], reps: int) -> None:
    try:
        import cvxpy as cp
    except ImportError:
        cp = None
    print()
    print("## minimax winner: scipy linprog(HiGHS) + polish vs cvxpy(HIGHS)")
    if cp is None:
        print("cvxpy is not installed: its column is skipped (pip install cvxpy to compare).")
    else:
        print(f"cvxpy {cp.__version__}")
    print(
        "| n | scipy HiGHS (ms) | cvxpy HIGHS (ms) | ratio | value scipy | value cvxpy "
        "| fd 1/2 output |"
    )
    print("|---:|---:|---:|---:|---:|---:|---|")
    for n in sizes:
        P = random_preference_matrix(n, np.random.default_rng(n))
        sink: dict[str, int] = {}
        with captured_fds(sink):
            t_new, (_, val) = best_of(lambda P=P: minimax_winner(P), reps)
        new_out = "silent" if not sink["chars"] else f"{sink['chars']} chars"
        if cp is None:
            print(f"| {n} | {t_new * 1e3:.2f} | — | — | {val:.1e} | — | ours {new_out} |")
            continue
        with captured_fds(sink):
            t_old, x = best_of(lambda P=P: cvxpy_minimax(P, cp), reps)
        old_val = float(((P - 0.5).T @ x).min())
        old_out = "silent" if not sink["chars"] else f"{sink['chars']} chars"
        print(
            f"| {n} | {t_new * 1e3:.2f} | {t_old * 1e3:.2f} | {t_old / t_new:.1f}× | {val:.1e} "
            f"| {old_val:.1e} | ours {new_out}, cvxpy {old_out} |",
            flush=True,
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--hv-dims", default="2,3,4,5,6")
    ap.add_argument("--hv-sizes", default="60,200,500,1000")
    ap.add_argument("--lp-sizes", default="10,20,50,100,200")
    ap.add_argument("--max-seconds", type=float, default=15.0)
    args = ap.parse_args()
    import moocore
    import scipy

    print(
        f"machine: {os.cpu_count()} cores, {cpu_model()}; python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}, moocore {moocore.__version__}; "
        f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}"
    )
    print()
    bench_hypervolume(
        [int(s) for s in args.hv_dims.split(",")],
        [int(s) for s in args.hv_sizes.split(",")],
        args.reps,
        args.max_seconds,
    )
    bench_lp([int(s) for s in args.lp_sizes.split(",")], args.reps)


if __name__ == "__main__":
    main()
