"""The one GPU script: every ``--device cuda`` path, and the GPU speed-up of the checkers and SAC.

Run it the moment a GPU is lent (no session so far had one; see benchmarks/gpu/README.md for
the device machine's install of the lab from carried wheels). It never stops at a failure: each
part records ok / FAILED with the error's last line, and everything lands in ``--out``:
``gpu_check.md`` (the tables for benchmarks/RESULTS.md) and ``gpu_check.json``.

1. ``env``: torch, CUDA, the GPU.
2. ``smoke``: every registered algorithm's declared smoke run (``prl.smoke.SMOKE``) as
   ``prl run ... --device DEV``, in a fresh process each: exit status and wall time.
3. ``checks``: ``prl check --all --quick`` on DEV and on CPU, wall time of each whole command
   and per check (from ``--json``), and the CPU / DEV ratio — the checkers' GPU speed-up.
4. ``sac``: env-steps/s of SB3 SAC and the lab's FastSAC / off-policy MDPO on DEV at identical
   settings (Hopper-v5, batch 256, [256, 256], one update per step), interleaved.
5. ``nash``: benchmarks/bench_nash.py on DEV (game-iterations/s of the batched checker).

    python benchmarks/gpu_check.py --device cuda --out OUT          # on the GPU machine
    python benchmarks/gpu_check.py --device cpu --parts smoke --algos dpo,mdpo_on --out /tmp/g
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

PARTS = ("env", "smoke", "checks", "sac", "nash")
HERE = Path(__file__).resolve().parent


def _run(cmd: list[str], timeout: float) -> dict[str, Any]:
    """Run ``cmd``; exit status, wall seconds, stdout, and the last stderr line on failure."""
    t0 = time.perf_counter()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        rc, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired:
        rc, out, err = 124, "", f"timed out after {timeout:.0f} s"
    wall = time.perf_counter() - t0
    last = next((ln for ln in reversed(err.strip().splitlines()) if ln.strip()), "")
    return {"rc": rc, "wall_s": round(wall, 2), "stdout": out, "error": "" if rc == 0 else last}


def part_env(dev: str) -> dict[str, Any]:
    import torch

    info = {"python": sys.version.split()[0], "torch": torch.__version__, "device": dev}
    info["cuda_available"] = torch.cuda.is_available()
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
    return info


def part_smoke(dev: str, algos: list[str] | None, timeout: float) -> list[dict[str, Any]]:
    from prl.smoke import SMOKE

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in algos or sorted(SMOKE):
            s = SMOKE[name]
            cmd = [sys.executable, "-m", "prl.cli", "run", *s.cli_args(), "--steps", str(s.steps)]
            cmd += ["--device", dev, "--out", tmp, "--seed", "0"]
            r = _run(cmd, timeout)
            rows.append({"algo": name, "rc": r["rc"], "wall_s": r["wall_s"], "error": r["error"]})
            print(f"smoke {name}: rc {r['rc']} in {r['wall_s']} s {r['error']}", flush=True)
    return rows


def part_checks(dev: str, timeout: float) -> dict[str, Any]:
    res: dict[str, Any] = {}
    for d in dict.fromkeys([dev, "cpu"]):
        cmd = [sys.executable, "-m", "prl.cli", "check", "--all", "--quick", "--json"]
        r = _run([*cmd, "--device", d], timeout)
        per: dict[str, float] = {}
        try:
            doc = json.loads(r["stdout"])
            items = doc if isinstance(doc, list) else doc.get("checks", doc.get("results", []))
            for c in items:
                if isinstance(c, dict) and "name" in c:
                    per[c["name"]] = float(c.get("seconds", c.get("wall_s", float("nan"))))
        except (json.JSONDecodeError, AttributeError, TypeError, ValueError):
            pass
        res[d] = {"rc": r["rc"], "wall_s": r["wall_s"], "per_check_s": per, "error": r["error"]}
        print(f"checks on {d}: rc {r['rc']} in {r['wall_s']} s {r['error']}", flush=True)
    return res


def part_sac(dev: str, steps: int, rounds: int) -> dict[str, Any]:
    import torch
    from stable_baselines3 import SAC
    from stable_baselines3.common.env_util import make_vec_env

    from prl import envs
    from prl.algos.mdpo import MDPOOffPolicy
    from prl.common.sac import FastSAC

    sys.path.insert(0, str(HERE))
    from bench_offpolicy import SETTINGS

    torch.set_num_threads(1)
    models = {}
    for name, cls in (("SB3 SAC", SAC), ("lab SAC (FastSAC)", FastSAC), ("MDPO", MDPOOffPolicy)):
        venv = make_vec_env(lambda: envs.make("Hopper-v5"), n_envs=1, seed=0)
        kw = {"copy_every": 1000} if cls is MDPOOffPolicy else {}
        m = cls("MlpPolicy", venv, seed=0, device=dev, **SETTINGS, **kw)
        m.learn(SETTINGS["learning_starts"] + 50, reset_num_timesteps=False)  # warm-up
        models[name] = m
    wall = dict.fromkeys(models, 0.0)
    for _ in range(rounds):
        for name, m in models.items():
            t0 = time.perf_counter()
            m.learn(steps, reset_num_timesteps=False)
            if dev.startswith("cuda"):
                torch.cuda.synchronize()
            wall[name] += time.perf_counter() - t0
    rates = {k: steps * rounds / w for k, w in wall.items()}
    base = rates["SB3 SAC"]
    out = {k: {"steps_per_s": round(v, 1), "x_sb3": round(v / base, 3)} for k, v in rates.items()}
    print(f"sac on {dev}: {out}", flush=True)
    return out


def part_nash(dev: str, timeout: float) -> dict[str, Any]:
    cmd = [sys.executable, str(HERE / "bench_nash.py"), "--device", dev, "--skip-lp"]
    r = _run([*cmd, "--sizes", "1,1e2,1e4,1e6", "--seconds", "1.0"], timeout)
    print(f"nash on {dev}: rc {r['rc']} {r['error']}", flush=True)
    return {"rc": r["rc"], "wall_s": r["wall_s"], "table": r["stdout"], "error": r["error"]}


def markdown(doc: dict[str, Any]) -> str:
    """The results as Markdown tables (for benchmarks/RESULTS.md)."""
    lines = [f"# gpu_check on {doc.get('env', {}).get('gpu', doc['device'])}", ""]
    lines += [f"`{json.dumps(doc.get('env', {}))}`", ""]
    if "smoke" in doc:
        ok = sum(r["rc"] == 0 for r in doc["smoke"])
        lines += [f"## smoke runs on {doc['device']}: {ok} of {len(doc['smoke'])} ok", ""]
        lines += ["| algo | exit | wall s | error |", "|---|---:|---:|---|"]
        lines += [
            f"| {r['algo']} | {r['rc']} | {r['wall_s']} | {r['error']} |" for r in doc["smoke"]
        ]
        lines.append("")
    if "checks" in doc:
        c = doc["checks"]
        lines += [
            "## `prl check --all --quick`",
            "",
            "| device | exit | wall s |",
            "|---|---:|---:|",
        ]
        lines += [f"| {d} | {v['rc']} | {v['wall_s']} |" for d, v in c.items()]
        dev, cpu = c.get(doc["device"], {}), c.get("cpu", {})
        names = sorted(set(dev.get("per_check_s", {})) & set(cpu.get("per_check_s", {})))
        if names and doc["device"] != "cpu":
            lines += ["", "| check | cpu s | device s | speed-up |", "|---|---:|---:|---:|"]
            for n in names:
                a, b = cpu["per_check_s"][n], dev["per_check_s"][n]
                lines.append(f"| {n} | {a:.2f} | {b:.2f} | {a / b if b else float('nan'):.2f} |")
        lines.append("")
    if "sac" in doc:
        lines += [f"## SAC-family env-steps/s on {doc['device']}", ""]
        lines += ["| model | env-steps/s | × SB3 SAC |", "|---|---:|---:|"]
        lines += [f"| {k} | {v['steps_per_s']} | {v['x_sb3']} |" for k, v in doc["sac"].items()]
        lines.append("")
    if "nash" in doc:
        lines += ["## bench_nash.py", "", doc["nash"]["table"] or doc["nash"]["error"], ""]
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--out", default="gpu_check_out")
    ap.add_argument("--parts", default=",".join(PARTS), help=f"comma list of {PARTS}")
    ap.add_argument("--algos", default="", help="comma list (default: every smoke-declared one)")
    ap.add_argument("--timeout", type=float, default=120.0, help="seconds per subprocess")
    ap.add_argument("--sac-steps", type=int, default=200)
    ap.add_argument("--sac-rounds", type=int, default=3)
    a = ap.parse_args()
    parts = [p for p in a.parts.split(",") if p]
    bad = [p for p in parts if p not in PARTS]
    if bad:
        print(f"gpu_check: unknown part(s) {bad}; choose from {PARTS}", file=sys.stderr)
        return 2
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    doc: dict[str, Any] = {"device": a.device, "parts": parts}
    algos = [x for x in a.algos.split(",") if x] or None
    steps = {
        "env": lambda: part_env(a.device),
        "smoke": lambda: part_smoke(a.device, algos, a.timeout),
        "checks": lambda: part_checks(a.device, 2 * a.timeout),
        "sac": lambda: part_sac(a.device, a.sac_steps, a.sac_rounds),
        "nash": lambda: part_nash(a.device, a.timeout),
    }
    for p in ["env", *[q for q in parts if q != "env"]]:
        try:
            doc[p] = steps[p]()
        except Exception as e:  # one part's failure must not stop the others
            doc[p + "_error"] = f"{type(e).__name__}: {e}"
            print(f"{p}: FAILED {doc[p + '_error']}", flush=True)
        (out / "gpu_check.json").write_text(json.dumps(doc, indent=1, default=str))
        (out / "gpu_check.md").write_text(markdown(doc))
    print(f"gpu_check: wrote {out / 'gpu_check.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
