"""Mutation pass over each family's core update: flip a sign or drop a term, run the relevant
test file, record whether the suite kills the mutant.

The source tree is copied once to a temporary directory; each mutant patches one line of the
copy, runs ``pytest -x`` on its test file(s) there (one process, one thread) with ``prl.*``
imported from the copy, and restores the line. The checkout is never modified.

    python benchmarks/mutation.py                      # every mutant, table to stdout
    python benchmarks/mutation.py --out docs/mutation.md
    python benchmarks/mutation.py --only nash_md_sign cpl_drop_lambda
"""

# ruff: noqa: E501  (mutant patterns are verbatim source lines)
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {
    "prl": "prl",
    "prl.algos": "algos",
    "prl.envs": "envs",
    "prl.figures": "figures",
    "prl.theory": "theory",
}

# Runs pytest in the copy with the editable install's prl.* mapping pointed at the copy.
BOOT = f"""
import os, sys
root = sys.argv[1]
dirs = {PACKAGE_DIRS!r}
for f in list(sys.meta_path):
    mod = sys.modules.get(getattr(f, "__module__", ""))
    if mod is not None and isinstance(getattr(mod, "MAPPING", None), dict):
        for k in list(mod.MAPPING):
            if k in dirs:
                mod.MAPPING[k] = os.path.join(root, dirs[k])
sys.path.insert(0, root)
import prl.algos
assert os.path.realpath(prl.algos.__path__[0]).startswith(os.path.realpath(root)), prl.algos.__path__
import pytest
sys.exit(pytest.main(sys.argv[2:]))
"""


@dataclass(frozen=True)
class Mutant:
    """One patch: replace ``old`` (unique in ``path``) by ``new``; ``tests`` decide."""

    name: str
    family: str
    path: str
    old: str
    new: str
    what: str
    tests: tuple[str, ...]
    select: str = ""  # pytest -k expression ("" = the whole file)


NASH = ("tests/test_nash.py",)
# fmt: off
MUTANTS: list[Mutant] = [
    # ---- Nash family (algos/nash.py kernels, the neural forms) --------------------------------
    Mutant(
        "nash_md_sign", "Nash-MD", "algos/nash.py",
        "    c.W.axpy(base, q, eta, out=z)\n    return extra\n\n\ndef _k_nash_mp",
        "    c.W.axpy(base, q, -eta, out=z)\n    return extra\n\n\ndef _k_nash_mp",
        "flip the sign of the preference term η P(·≻π^μ)", NASH, "nash_md",
    ),
    Mutant(
        "nash_md_no_ref", "Nash-MD", "algos/nash.py",
        "    beta = a if c.mixture is None else c.mixture\n    mix = _affine(z, 1.0 - beta, c.logmu",
        "    beta = a if c.mixture is None else c.mixture\n    mix = _affine(z, 1.0 - beta, None",
        "drop μ from the mixture π^μ", NASH, "nash_md",
    ),
    Mutant(
        "nash_mp_no_prox", "Nash-MP", "algos/nash.py",
        "    c.W.axpy(base, q2, eta, out=z).mul_(s)",
        "    c.W.axpy(base, q2, eta, out=z)",
        "drop the 1/(1+ητ) proximal scaling of the second step", NASH, "nash_mp or mirror",
    ),
    Mutant(
        "nash_mp_no_extra", "Nash-MP", "algos/nash.py",
        "    q2 = softmax_into(half, c.ws)\n    c.W.axpy(base, q2, eta, out=z).mul_(s)",
        "    q2 = softmax_into(z, c.ws)\n    c.W.axpy(base, q2, eta, out=z).mul_(s)",
        "second step against π instead of π½", NASH, "nash_mp or mirror",
    ),
    Mutant(
        "egpo_no_extra", "EGPO", "algos/nash.py",
        "    q2 = softmax_into(half, c.ws)\n    c.W.axpy(base, q2, eta, out=z)\n    return extra",
        "    q2 = softmax_into(z, c.ws)\n    c.W.axpy(base, q2, eta, out=z)\n    return extra",
        "tabular EGPO: second step against π instead of π½", NASH, "egpo or extragradient",
    ),
    Mutant(
        "egpo_nn_no_extra", "EGPO", "algos/nash.py",
        "            loss = self._egpo_loss(self.logits(), anchor, half)",
        "            loss = self._egpo_loss(self.logits(), anchor, anchor.exp())",
        "neural EGPO: update against π_t instead of π½", NASH, "egpo",
    ),
    Mutant(
        "egpo_nn_no_ref", "EGPO", "algos/nash.py",
        "        base = (1.0 - a) * anchor if self.logmu is None else (1.0 - a) * anchor + a * self.logmu",
        "        base = (1.0 - a) * anchor",
        "neural EGPO: drop the reference term ητ log μ", NASH, "egpo",
    ),
    Mutant(
        "inpo_sign", "INPO", "algos/nash.py",
        "        _affine(z, 1.0 - a, c.logmu, a, z)\n    c.W.axpy(z, q, eta, out=z)",
        "        _affine(z, 1.0 - a, c.logmu, a, z)\n    c.W.axpy(z, q, -eta, out=z)",
        "flip the sign of η P(·≻π)", NASH, "inpo or mirror",
    ),
    Mutant(
        "sppo_sign", "SPPO", "algos/spo.py",
        "    return W.axpy(z, softmax_into(z, ws), eta, out=z)",
        "    return W.axpy(z, softmax_into(z, ws), -eta, out=z)",
        "multiplicative weights with the sign flipped", NASH, "sppo or fixed_points",
    ),
    Mutant(
        "sppo_nn_target", "SPPO", "algos/nash.py",
        "        self.target = logpi + self.eta * (g - 0.5)",
        "        self.target = logpi - self.eta * (g - 0.5)",
        "neural SPPO: target log π_t − η(P − ½)", NASH, "sppo",
    ),
    Mutant(
        "online_ipo_kl_sign", "online IPO", "algos/nash.py",
        "    v = g - tau * logpi if logmu is None or tau == 0 else g - tau * (logpi - logmu)",
        "    v = g - tau * logpi if logmu is None or tau == 0 else g + tau * (logpi - logmu)",
        "flip the sign of the KL term in the self-play direction", NASH, "ipo or pieces",
    ),
    Mutant(
        "online_ipo_no_baseline", "online IPO", "algos/nash.py",
        "    return rho * (v - (rho * v).sum(-1, keepdim=True))",
        "    return rho * v",
        "drop the baseline ⟨ρ, v⟩ of the self-play direction", NASH, "ipo or pieces",
    ),
    Mutant(
        "apo_extrapolation_sign", "APO", "algos/nash.py",
        "    torch.mul(new, 1.0 + c.alpha, out=z).sub_(extra, alpha=c.alpha)",
        "    torch.mul(new, 1.0 - c.alpha, out=z).add_(extra, alpha=c.alpha)",
        "Nesterov extrapolation backwards", NASH, "apo",
    ),
    Mutant(
        "nash_md_pg_kl_sign", "Nash-MD-PG", "algos/nash.py",
        "            R = o - self.tau * self._r(logpi.detach()).gather(1, y)",
        "            R = o + self.tau * self._r(logpi.detach()).gather(1, y)",
        "sampled Nash-MD-PG: KL penalty with the wrong sign", NASH, "neural or nash_md_pg",
    ),
    # ---- DPO / IPO / BT losses ------------------------------------------------------------------
    Mutant(
        "bt_loss_sign", "BT/DPO loss", "prl/common/losses.py",
        "    return -(label * F.logsigmoid(logit) + (1.0 - label) * F.logsigmoid(other))",
        "    return -(label * F.logsigmoid(other) + (1.0 - label) * F.logsigmoid(logit))",
        "swap winner and loser in the one BT loss (`bt_nll`)", ("tests/test_dpo.py", "tests/test_common.py"),
    ),
    Mutant(
        "dpo_no_beta", "BT/DPO loss", "prl/common/losses.py",
        "    return bt_loss(h, label, beta)",
        "    return bt_loss(h, label, 1.0)",
        "DPO without β", ("tests/test_dpo.py",),
    ),
    Mutant(
        "ipo_target", "IPO loss", "prl/common/losses.py",
        "    c = 0.5 / beta\n    return label * (h - c) ** 2",
        "    c = 0.5 * beta\n    return label * (h - c) ** 2",
        "IPO target β/2 instead of 1/(2β)", ("tests/test_dpo.py",),
    ),
    Mutant(
        "dpo_ridge_units", "BT/DPO loss", "algos/dpo.py",
        '    w = newton_fit(data, "dpo", b, features, n, l2 * b * b)',
        '    w = newton_fit(data, "dpo", b, features, n, l2)',
        "DPO ridge in policy units (the pre-fix form)", ("tests/test_dpo.py",),
    ),
    Mutant(
        "reward_bt_loss_sign", "BT reward loss", "prl/reward_model.py",
        "    per = bt_nll(d, y) * m",
        "    per = bt_nll(-d, y) * m",
        "reward model: swap winner and loser", ("tests/test_reward_model.py",),
    ),
    # ---- CPL ----------------------------------------------------------------------------------
    Mutant(
        "cpl_drop_lambda", "CPL loss", "algos/cpl.py",
        "    per = bt_nll(score_a - lam * score_b, y, score_b - lam * score_a)",
        "    per = bt_nll(score_a - score_b, y, score_b - lam * score_a)",
        "drop the conservative λ on the preferred side", ("tests/test_cpl.py",),
        "loss or tabular",
    ),
    Mutant(
        "cpl_score_sign", "CPL loss", "algos/cpl.py",
        "    return float(alpha) * (log_probs * w).sum(-1)",
        "    return -float(alpha) * (log_probs * w).sum(-1)",
        "segment score −α Σ γ^t log π", ("tests/test_cpl.py",), "loss or tabular",
    ),
    Mutant(
        "cpl_no_discount", "CPL loss", "algos/cpl.py",
        "        torch.arange(T, dtype=log_probs.dtype, device=log_probs.device),\n    )",
        "        torch.zeros(T, dtype=log_probs.dtype, device=log_probs.device),\n    )",
        "drop the discount γ^t in the segment score", ("tests/test_cpl.py",), "loss or tabular",
    ),
    Mutant(
        "cpl_kl_lr", "CPL loss", "algos/cpl.py",
        'LR_MULTIPLIER_DEFAULTS = {"cpl": 1.0, "cpl_bc": 1.0, "cpl_kl": 0.1}',
        'LR_MULTIPLIER_DEFAULTS = {"cpl": 1.0, "cpl_bc": 1.0, "cpl_kl": 1.0}',
        "CPL-KL at the BC learning rate (the pre-fix form)", ("tests/test_cpl.py",),
        "authors",
    ),
    # ---- OPPO ---------------------------------------------------------------------------------
    Mutant(
        "oppo_triplet_sign", "OPPO loss", "algos/oppo.py",
        "    return torch.clamp(d_pos - d_neg + margin, min=0.0)",
        "    return torch.clamp(d_neg - d_pos + margin, min=0.0)",
        "triplet loss with positive and negative swapped", ("tests/test_oppo.py",),
    ),
    Mutant(
        "oppo_norm_target", "OPPO loss", "algos/oppo.py",
        "    return torch.square(torch.linalg.vector_norm(z, dim=-1) - 1.0).mean()",
        "    return torch.square(torch.linalg.vector_norm(z, dim=-1)).mean()",
        "norm regularizer ‖z‖² instead of (‖z‖ − 1)²", ("tests/test_oppo.py",),
    ),
    Mutant(
        "oppo_pooled_recon", "OPPO loss", "algos/oppo.py",
        '            d = 1.0 if self.model.discrete else float(self.model.act_dim)',
        '            d = 1.0',
        "reconstruction summed over action dims (not averaged)", ("tests/test_oppo.py",),
    ),
    # ---- SPO win rates --------------------------------------------------------------------------
    Mutant(
        "spo_win_rates_loser", "SPO win rates", "algos/spo_deep.py",
        "    wins += np.bincount(b[m], weights=1.0 - lab[m], minlength=size)",
        "    wins += np.bincount(b[m], weights=lab[m], minlength=size)",
        "credit the second player with the first's wins", ("tests/test_spo_deep.py",),
    ),
    Mutant(
        "spo_pg_sign", "SPO win rates", "algos/spo.py",
        "    counts.index_add_(0, second, -adv)",
        "    counts.index_add_(0, second, adv)",
        "bandit SPO: second sample rewarded with the first's advantage",
        ("tests/test_spo_bandit.py",),
    ),
    Mutant(
        "sampled_win_rates_bias", "SPO win rates", "algos/spo.py",
        "        return (u < p).to(p.dtype).mean(-1)",
        "        return (u <= 0.5 * (p + 0.5)).to(p.dtype).mean(-1)",
        "sampled win rates shrunk towards ½ (biased)", NASH, "unbiased or sampled",
    ),
    # ---- PDPPO, MDPO, C-MORL, HERON -------------------------------------------------------------
    Mutant(
        "pdppo_min", "PDPPO advantage", "algos/pdppo.py",
        "        return np.maximum(adv_state, adv_post)",
        "        return np.minimum(adv_state, adv_post)",
        "min instead of max of the two critics' advantages", ("tests/test_pdppo.py",),
    ),
    Mutant(
        "pdppo_post_sign", "PDPPO advantage", "algos/pdppo.py",
        "    adv_x = returns - vx",
        "    adv_x = vx - returns",
        "post-decision advantage V^x − R", ("tests/test_pdppo.py",),
    ),
    Mutant(
        "mdpo_kl_sign", "MDPO KL term", "algos/mdpo.py",
        "    return -(ratio * advantages).mean() + kl.mean() / t_k",
        "    return -(ratio * advantages).mean() - kl.mean() / t_k",
        "on-policy KL term rewarded instead of penalized", ("tests/test_mdpo.py",),
    ),
    Mutant(
        "mdpo_kl_step", "MDPO KL term", "algos/mdpo.py",
        "    return -(ratio * advantages).mean() + kl.mean() / t_k",
        "    return -(ratio * advantages).mean() + kl.mean() * t_k",
        "KL weight t_k instead of 1/t_k", ("tests/test_mdpo.py",),
    ),
    Mutant(
        "mdpo_off_policy_old", "MDPO KL term", "algos/mdpo.py",
        "        return (c * log_prob + (lam - c) * old_log_prob - q_values).mean()",
        "        return (c * log_prob + (c - lam) * old_log_prob - q_values).mean()",
        "off-policy: (c − λ) log π_k instead of (λ − c) log π_k", ("tests/test_mdpo.py",),
    ),
    Mutant(
        "cmorl_barrier_sign", "C-MORL barrier", "algos/cmorl.py",
        "    return primary + barrier / t",
        "    return primary - barrier / t",
        "log barrier with the wrong sign", ("tests/test_cmorl.py",),
        "barrier or constraint or exact",
    ),
    Mutant(
        "cmorl_barrier_axis", "C-MORL barrier", "algos/cmorl.py",
        "    barrier = (safe_log(slack) * (1.0 - mask)).sum(-1)",
        "    barrier = (safe_log(slack) * mask).sum(-1)",
        "barrier on the maximized objective instead of the others", ("tests/test_cmorl.py",),
        "barrier or constraint or exact",
    ),
    Mutant(
        "cmorl_no_backtrack", "C-MORL barrier", "algos/cmorl.py",
        "                        if not bool(bad.any()):",
        "                        if True:",
        "exact Stage 2 without the feasibility line search", ("tests/test_cmorl.py",),
        "constraint",
    ),
    Mutant(
        "heron_margin_sign", "HERON comparator", "prl/oracles.py",
        "            a_wins = undecided & (fa[:, k] > fb[:, k] + thr)",
        "            a_wins = undecided & (fa[:, k] > fb[:, k] - thr)",
        "a wins within the margin", ("tests/test_heron.py", "tests/test_oracles.py"),
    ),
    Mutant(
        "heron_no_cascade", "HERON comparator", "prl/oracles.py",
        "            undecided &= ~(a_wins | b_wins)",
        "            pass",
        "later levels overwrite earlier decisions", ("tests/test_heron.py", "tests/test_oracles.py"),
    ),
    # ---- oracles --------------------------------------------------------------------------------
    Mutant(
        "oracle_bt_sign", "oracles", "prl/oracles.py",
        "            m = self.score(a) - self.score(b)",
        "            m = self.score(b) - self.score(a)",
        "score margin b − a", ("tests/test_oracles.py",),
    ),
    Mutant(
        "oracle_regret_sign", "oracles", "prl/oracles.py",
        "            out[lo:hi] = adv.sum(axis=1) if w is None else adv @ w\n        return -out",
        "            out[lo:hi] = adv.sum(axis=1) if w is None else adv @ w\n        return out",
        "regret = +Σ γ^t A*", ("tests/test_oracles.py",),
    ),
    Mutant(
        "oracle_mistake", "oracles", "prl/oracles.py",
        "        return (1.0 - self.eps) * p + self.eps * (1.0 - p)",
        "        return (1.0 - self.eps) * p + self.eps * p",
        "mistake teacher's probability ignores the flips", ("tests/test_oracles.py",),
    ),
]
# fmt: on


def _copy_tree(dst: Path) -> None:
    ignore = shutil.ignore_patterns(
        ".venv", ".git", "__pycache__", "*.egg-info", "runs", "*.npz", "*.pt", ".ipynb_checkpoints"
    )
    shutil.copytree(ROOT, dst, ignore=ignore, dirs_exist_ok=True)


def run_mutant(m: Mutant, copy: Path, timeout: int) -> tuple[str, float, str]:
    """Apply ``m`` in ``copy``, run its tests, restore; returns (verdict, seconds, detail)."""
    path = copy / m.path
    text = path.read_text()
    if text.count(m.old) != 1:
        return "not applied", 0.0, f"pattern found {text.count(m.old)} times in {m.path}"
    path.write_text(text.replace(m.old, m.new))
    args = [
        *m.tests,
        "-x",
        "-q",
        "-n",
        "0",
        "-p",
        "no:cacheprovider",
        "-m",
        "not slow and not long",
    ]
    if m.select:
        args += ["-k", m.select]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(
            [sys.executable, "-c", BOOT, str(copy), *args],
            cwd=copy,
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        code, out = proc.returncode, proc.stdout + proc.stderr
    except subprocess.TimeoutExpired:
        code, out = -1, "timeout"
    finally:
        path.write_text(text)
    dt = time.perf_counter() - t0
    tail = [ln for ln in out.splitlines() if ln.startswith("FAILED") or ln.startswith("ERROR")]
    if code == 1:
        first = (
            tail[0].split(" - ")[0].removeprefix("FAILED ").removeprefix("ERROR ") if tail else ""
        )
        return "killed", dt, first
    if code == 0:
        return "survived", dt, out.strip().splitlines()[-1] if out.strip() else ""
    if code == 5:
        return "no tests", dt, "no test selected"
    return "error", dt, f"exit {code}: {out.strip().splitlines()[-1] if out.strip() else ''}"


def table(rows: list[tuple[Mutant, str, float, str]]) -> str:
    """The results as a markdown table."""
    lines = [
        "| mutant | family | change | tests | verdict | s | first failing test |",
        "|---|---|---|---|---|---|---|",
    ]
    for m, verdict, dt, detail in rows:
        tests = ", ".join(t.removeprefix("tests/") for t in m.tests)
        if m.select:
            tests += f" `-k {m.select}`"
        lines.append(
            f"| `{m.name}` | {m.family} | {m.what} (`{m.path}`) | {tests} | **{verdict}** | "
            f"{dt:.0f} | {detail.replace('|', '/')} |"
        )
    killed = sum(v == "killed" for _, v, _, _ in rows)
    lines.append("")
    lines.append(f"{killed} of {len(rows)} mutants killed.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--only", nargs="*", default=None, help="mutant names to run")
    ap.add_argument("--out", default="", help="write the markdown table here")
    ap.add_argument("--timeout", type=int, default=600, help="seconds per mutant")
    a = ap.parse_args(argv)
    chosen = [m for m in MUTANTS if a.only is None or m.name in a.only]
    unknown = set(a.only or ()) - {m.name for m in MUTANTS}
    if unknown:
        print(f"unknown mutants: {', '.join(sorted(unknown))}", file=sys.stderr)
        return 2
    rows = []
    with tempfile.TemporaryDirectory(prefix="prl_mutation_") as tmp:
        copy = Path(tmp) / "repo"
        _copy_tree(copy)
        for m in chosen:
            verdict, dt, detail = run_mutant(m, copy, a.timeout)
            rows.append((m, verdict, dt, detail))
            print(f"{m.name:28s} {verdict:11s} {dt:6.1f}s  {detail}", flush=True)
    md = table(rows)
    if a.out:
        Path(a.out).write_text(md + "\n")
    print(md)
    return 0 if all(v == "killed" for _, v, _, _ in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
