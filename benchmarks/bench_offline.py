"""Updates/s of the offline learners (CPL, BC, P-IQL) vs a plain PyTorch loop of the same network
and batch (issue 23, item 4).

Paper shapes (CPL, MetaWorld state): 39-d observations, 4-d actions, 64-step segments, batches of
96 pairs (CPL, P-IQL: 192 segments; BC: 96 segments), [512, 512] MLPs with dropout 0.25 on the
policy, Adam. The registered learners run ``learner.step()`` on a synthetic dataset of that shape
(``eval_every`` out of reach); each plain loop is the textbook version: pre-stacked tensors,
``torch.randint`` indices, ``nn.Sequential`` with ``nn.Dropout``, the same loss. All are timed in
interleaved rounds after warm-up steps (untimed), so the machine's load hits them alike.

    OMP_NUM_THREADS=1 python benchmarks/bench_offline.py [--steps 6] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from bench_cpl import build, synthetic_dataset
from torch import nn
from torch.nn import functional as F


def mlp(i: int, o: int, hidden: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for h in hidden:
        layers += [nn.Linear(i, h), nn.ReLU()] + ([nn.Dropout(dropout)] if dropout else [])
        i = h
    return nn.Sequential(*layers, nn.Linear(i, o))


class Plain:
    """Plain PyTorch loops of CPL, BC and P-IQL's reward-phase update on stacked tensors."""

    def __init__(self, data: Path, hidden: list[int], batch: int) -> None:
        z = np.load(data, allow_pickle=False)
        keys = {k: z[k] for k in z.files}
        self.obs = torch.as_tensor(keys["obs"])
        self.act = torch.as_tensor(keys["actions"]).clamp(-1 + 1e-5, 1 - 1e-5)
        self.nxt = torch.as_tensor(keys["next_obs"])
        self.pairs = torch.as_tensor(keys["pairs"])
        self.label = torch.as_tensor(keys["label"], dtype=torch.float32)
        self.batch, self.hidden = batch, hidden
        od, ad = self.obs.shape[-1], self.act.shape[-1]
        self.pi = mlp(od, ad, hidden, 0.25)
        self.opt = torch.optim.Adam(self.pi.parameters(), lr=1e-4)
        self.r, self.v = mlp(od + ad, 1, hidden), mlp(od, 1, hidden)
        self.q = nn.ModuleList([mlp(od + ad, 1, hidden), mlp(od + ad, 1, hidden)])
        self.qt = nn.ModuleList([mlp(od + ad, 1, hidden), mlp(od + ad, 1, hidden)])
        self.qt.load_state_dict(self.q.state_dict())
        self.qt.requires_grad_(False)
        self.opts = [torch.optim.Adam(m.parameters(), lr=3e-4) for m in (self.r, self.v, self.q)]

    def _pair_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        i = torch.randint(len(self.pairs), (self.batch,))
        return torch.cat([self.pairs[i, 0], self.pairs[i, 1]]), self.label[i]

    def _lp(self, idx: torch.Tensor) -> torch.Tensor:
        return -torch.square(torch.tanh(self.pi(self.obs[idx])) - self.act[idx]).sum(-1)

    def cpl(self) -> None:
        idx, lab = self._pair_batch()
        sa, sb = (0.1 * self._lp(idx).sum(-1)).chunk(2)
        logits = sa - 0.5 * sb  # CPL's biased logits S⁺ − λS⁻ (the learner's λ = 0.5)
        loss = F.binary_cross_entropy_with_logits(logits, lab)
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def bc(self) -> None:
        loss = -self._lp(torch.randint(len(self.obs), (self.batch,))).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()

    def piql(self) -> None:
        idx, lab = self._pair_batch()
        o, a, o2 = self.obs[idx], self.act[idx], self.nxt[idx]
        sa = torch.cat([o, a], -1)
        ret = self.r(sa)[..., 0].sum(-1)
        ra, rb = ret.chunk(2)
        loss_r = F.binary_cross_entropy_with_logits(ra - rb, lab)
        o, a, o2, sa = (x.reshape(-1, x.shape[-1]) for x in (o, a, o2, sa))
        with torch.no_grad():
            rew = self.r(sa)[:, 0]
            q_t = torch.min(self.qt[0](sa), self.qt[1](sa))[:, 0]
        v = self.v(o)[:, 0]
        d = q_t - v
        loss_v = (torch.abs(0.7 - (d < 0).float()) * d * d).mean()
        w = torch.exp(3.0 * d.detach()).clamp(max=100.0)
        loss_pi = -(w * -torch.square(torch.tanh(self.pi(o)) - a).sum(-1)).mean()
        with torch.no_grad():
            target = rew + 0.99 * self.v(o2)[:, 0]
        loss_q = sum(((q(sa)[:, 0] - target) ** 2).mean() for q in self.q)
        for opt in (*self.opts, self.opt):
            opt.zero_grad()
        (loss_r + loss_v + loss_pi + loss_q).backward()  # disjoint parameters: one backward
        for opt in (*self.opts, self.opt):
            opt.step()
        with torch.no_grad():
            for p, pt in zip(self.q.parameters(), self.qt.parameters()):
                pt.lerp_(p, 0.005)


def rates(fns: dict[str, Callable[[], None]], steps: int, warmup: int, rounds: int) -> dict:
    for f in fns.values():
        for _ in range(warmup):
            f()
    spent = dict.fromkeys(fns, 0.0)
    for _ in range(rounds):
        for k, f in fns.items():
            t0 = time.process_time()
            for _ in range(steps):
                f()
            spent[k] += time.process_time() - t0
    return {k: steps * rounds / v for k, v in spent.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=6, help="updates per learner per round")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--hidden", type=int, nargs="*", default=[512, 512])
    ap.add_argument("--batch", type=int, default=96)
    ap.add_argument("--only", nargs="*", default=["cpl", "bc", "piql"])
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as d:
        data = synthetic_dataset(Path(d) / "mw.npz", 2500, 64, 10_000)
        common = {"hidden": a.hidden, "batch_size": a.batch, "eval_every": 10**9}
        cfgs = {
            "cpl": ("cpl", {"bc_steps": 0, "dropout": 0.25}),
            "bc": ("bc", {"dropout": 0.25}),
            "piql": ("piql", {"reward_steps": 10**9, "dropout": 0.25}),
        }
        plain = Plain(data, a.hidden, a.batch)
        fns: dict[str, Callable[[], None]] = {}
        for name in a.only:
            algo, cfg = cfgs[name]
            fns[f"{name} (prl)"] = build(algo, data, {**common, **cfg}).step
            fns[f"{name} (plain torch)"] = getattr(plain, name)
        r = rates(fns, a.steps, a.warmup, a.rounds)
    load = os.getloadavg()
    print(
        f"torch {torch.__version__}, 1 thread, load average {load[0]:.1f} {load[1]:.1f} "
        f"{load[2]:.1f}; {a.rounds} rounds x {a.steps} updates (CPU time)"
    )
    print("| learner | prl updates/s | plain-loop updates/s | prl / plain |")
    print("|---|---:|---:|---:|")
    for name in a.only:
        p, q = r[f"{name} (prl)"], r[f"{name} (plain torch)"]
        print(f"| {name} | {p:.3f} | {q:.3f} | {p / q:.2f} |")


if __name__ == "__main__":
    main()
