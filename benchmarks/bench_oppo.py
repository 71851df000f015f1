"""OPPO gradient updates per second (MLP and transformer networks) vs P-IQL and BC (issue 7), and
vs a plain PyTorch loop of the same networks, batch and losses (issue 23, item 4).

All learners run ``learner.step()`` on the same synthetic dataset with HalfCheetah's shapes
(17-d observations, 6-d actions, 20-step segments, batches of 64 pairs): OPPO = one encoder +
policy update on both segments of each pair and one z* update (its encodings recomputed);
P-IQL = reward model + value + twin critics + policy; BC = one policy update. Learners are timed
in interleaved rounds so that machine load hits them alike; warm-up steps are not timed.

The plain loops (``PlainOPPO``) are the textbook version of the same update: pre-stacked
tensors, ``torch.randint`` pair indices, ``nn.Sequential`` MLPs or ``nn.TransformerEncoder``
(pre-LayerNorm, GELU, 4× feed-forward, the same width, depth, heads and dropout), the HIM
reconstruction + triplet + norm losses, AdamW with gradient clipping, then z*'s Adam step on the
re-encoded batch (eval mode, no grad).

    PYTHONPATH=. OMP_NUM_THREADS=1 python benchmarks/bench_oppo.py [--steps 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from prl.data import PreferenceDataset, pairs_sparse
from prl.run import train
from prl.types import Segments


def synthetic_dataset(path: Path, n: int, T: int, pairs: int, seed: int = 0) -> Path:
    """Random HalfCheetah-shaped segments with random labels (only the shapes matter here)."""
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(n, T, 17)).astype(np.float32)
    seg = Segments(
        obs=obs,
        actions=rng.uniform(-1, 1, size=(n, T, 6)).astype(np.float32),
        rewards=rng.normal(size=(n, T)),
        next_obs=np.roll(obs, -1, axis=1),
        dones=np.zeros((n, T), bool),
        infos={
            "episode": np.repeat(np.arange(n)[:, None], T, 1),
            "episode_return": rng.normal(size=(n, 1)).repeat(T, 1),
        },
    )
    p = pairs_sparse(n, pairs, rng)
    lab = rng.integers(0, 2, size=pairs).astype(float)
    meta = {"env": "HalfCheetah-v5", "label_discount": 1.0, "mode": "sparse"}
    PreferenceDataset(seg, p, lab, np.ones(pairs, bool), None, meta).save(path)
    return path


class PlainOPPO:
    """A plain PyTorch loop of OPPO's update (encoder + context policy, then z*)."""

    def __init__(self, data: Path, arch: str, z_dim: int = 8, batch: int = 64) -> None:
        from torch import nn

        z = np.load(data, allow_pickle=False)
        self.obs = torch.as_tensor(z["obs"])
        self.act = torch.as_tensor(z["actions"])
        self.pairs = torch.as_tensor(z["pairs"])
        self.label = torch.as_tensor(z["label"], dtype=torch.float32)
        self.arch, self.batch = arch, batch
        do, da = self.obs.shape[-1], self.act.shape[-1]
        T = self.obs.shape[1]
        if arch == "mlp":
            self.enc = nn.Sequential(
                nn.Linear(do + da, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, 256)
            )
            self.enc_head = nn.Linear(256, z_dim)
            self.pol = nn.Sequential(
                nn.Linear(do + z_dim, 256), nn.ReLU(), nn.Dropout(0.1),
                nn.Linear(256, 256), nn.ReLU(), nn.Dropout(0.1), nn.Linear(256, da),
            )  # fmt: skip
            self.pol_head = nn.Identity()
        else:
            self.enc = self._transformer(do + da, T)
            self.enc_head = nn.Linear(128, z_dim)
            self.pol = self._transformer(do + da + z_dim, T)
            self.pol_head = nn.Linear(128, da)
        self.model = nn.ModuleList([self.enc, self.enc_head, self.pol, self.pol_head])
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-4, weight_decay=1e-4)
        self.zstar = nn.Parameter(torch.randn(z_dim) / z_dim**0.5)
        self.opt_z = torch.optim.Adam([self.zstar], lr=1e-4)
        self.causal = torch.ones(T, T, dtype=torch.bool).triu(1)

    @staticmethod
    def _transformer(i: int, T: int) -> torch.nn.Module:
        from torch import nn

        class Net(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.embed, self.pos = nn.Linear(i, 128), nn.Parameter(torch.zeros(T, 128))
                self.drop = nn.Dropout(0.1)
                layer = nn.TransformerEncoderLayer(
                    128, 1, 512, 0.1, activation="gelu", batch_first=True, norm_first=True
                )
                self.body = nn.TransformerEncoder(layer, 3, enable_nested_tensor=False)
                self.ln = nn.LayerNorm(128)

            def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
                return self.ln(self.body(self.drop(self.embed(x) + self.pos), mask=mask))

        return Net()

    def _encode(self, o: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = self.enc(torch.cat([o, a], -1))
        return self.enc_head(h.mean(1))

    def _triplet(self, anchor: torch.Tensor, za: torch.Tensor, zb: torch.Tensor, y: torch.Tensor):
        da = torch.linalg.vector_norm(anchor - za + 1e-6, dim=-1)
        db = torch.linalg.vector_norm(anchor - zb + 1e-6, dim=-1)
        return (y * (da - db + 1).clamp(min=0) + (1 - y) * (db - da + 1).clamp(min=0)).mean()

    def step(self) -> None:
        i = torch.randint(len(self.pairs), (self.batch,))
        idx, y = torch.cat([self.pairs[i, 0], self.pairs[i, 1]]), self.label[i]
        o, a = self.obs[idx], self.act[idx]
        self.model.train()
        z = self._encode(o, a)
        if self.arch == "mlp":
            out = self.pol(torch.cat([o, z[:, None].expand(-1, o.shape[1], -1)], -1))
        else:
            prev = torch.cat([torch.zeros_like(a[:, :1]), a[:, :-1]], 1)
            zz = z[:, None].expand(-1, o.shape[1], -1)
            out = self.pol_head(self.pol(torch.cat([o, prev, zz], -1), self.causal))
        recon = sum(
            torch.square(torch.tanh(x) - t).mean()
            for x, t in zip(out.chunk(2), a.chunk(2), strict=True)
        )
        za, zb = z.chunk(2)
        nrm = sum(((torch.linalg.vector_norm(x, dim=-1) - 1) ** 2).mean() for x in (za, zb))
        loss = recon + 0.1 * self._triplet(self.zstar.detach(), za, zb, y) + 0.1 * nrm
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 0.25)
        self.opt.step()
        self.model.eval()
        with torch.no_grad():
            za, zb = self._encode(o, a).chunk(2)
        loss_z = self._triplet(self.zstar, za, zb, y) + (self.zstar.norm() - 1) ** 2
        self.opt_z.zero_grad(set_to_none=True)
        loss_z.backward()
        self.opt_z.step()


LEARNERS = {
    "OPPO (MLP [256,256])": ("oppo", {"arch": "mlp", "hidden": [256, 256]}),
    "OPPO (transformer 128×3)": ("oppo", {"arch": "transformer"}),
    "P-IQL": ("piql", {"hidden": [256, 256], "reward_steps": 10**9}),
    "BC": ("bc", {"hidden": [256, 256]}),
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        data = synthetic_dataset(Path(tmp) / "d.npz", 2000, 20, 4000)
        learners = {}
        for name, (algo, extra) in LEARNERS.items():
            cfg = {"dataset": str(data), "batch_size": 64, "eval_every": 10**9, **extra}
            learner, _ = train(algo, "HalfCheetah-v5", seed=0, steps=args.warmup, config=cfg)
            learners[name] = learner
        steps = {name: learner.step for name, learner in learners.items()}
        steps["OPPO (MLP [256,256]) plain loop"] = PlainOPPO(data, "mlp").step
        steps["OPPO (transformer 128×3) plain loop"] = PlainOPPO(data, "transformer").step
        for f in list(steps.values())[-2:]:
            for _ in range(args.warmup):
                f()
        times = {k: 0.0 for k in steps}
        for _ in range(args.rounds):
            for name, step in steps.items():
                t = time.process_time()
                for _ in range(args.steps):
                    step()
                times[name] += time.process_time() - t
    n = args.rounds * args.steps
    base = n / times["BC"]
    print(f"CPU: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread")
    print("| learner | updates/s (CPU time) | relative to BC | prl / plain loop |")
    print("|---|---:|---:|---:|")
    for name, t in times.items():
        plain = times.get(f"{name} plain loop")
        ratio = f"{plain / t:.2f}" if plain else ""
        print(f"| {name} | {n / t:.2f} | {n / t / base:.2f}× | {ratio} |")


if __name__ == "__main__":
    main()
