"""What a newcomer meets: "try it" budgets that finish, progress in logs, checks that say what
they measured, example specs that run, and the figure lint."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from prl.catalog import _first_env
from prl.cli import budget_steps, main
from prl.registry import ALGOS, load_plugins

ROOT = Path(__file__).resolve().parent.parent
TRY_IT_LIMIT_S = 150  # "about a minute" on 2 idle cores, with room for a loaded machine

# CPU seconds of one try-it step (or rollout, or chunk) measured on this machine (2026-12-02,
# `prl run ALGO --env ENV --steps N`, user+sys CPU), and the fixed cost of making the data or
# environments. The CLI default must keep every "try it" command under a minute of CPU.
PER_UNIT_CPU_S = {  # algo: (CPU s per budget unit, fixed CPU s)
    "cpl": (0.045, 6.0),
    "bc": (0.023, 6.0),
    "sft": (0.024, 6.0),
    "pct_bc": (0.022, 6.0),
    "piql": (0.19, 6.0),
    "oppo": (0.37, 6.0),
}


def _try_it_commands() -> list[tuple[str, str]]:
    load_plugins()
    return [(e.name, env) for e in ALGOS.entries() if (env := _first_env(e.meta.get("envs")))]


def test_every_catalog_algorithm_has_a_try_it_budget_below_its_paper_budget() -> None:
    for algo, _ in _try_it_commands():
        cls = ALGOS.get(algo)
        try_steps, full = budget_steps(algo, "try"), budget_steps(algo, "full")
        assert full == cls.default_steps
        assert 0 < try_steps <= full, algo
        if algo in PER_UNIT_CPU_S:  # the measured cost of the default budget stays ~a minute
            per, fixed = PER_UNIT_CPU_S[algo]
            assert per * try_steps + fixed <= 60, (algo, per * try_steps + fixed)


def test_phases_scale_with_the_run() -> None:
    """CPL's BC phase, P-IQL's reward phase and MDPO-off's random warm-up are fractions of the
    run (the paper: 200k of 500k, 50k of 500k, 10k of 1M) unless set explicitly."""
    from prl.run import Learner

    class Probe(Learner):
        default_steps = 500_000

        def step(self) -> dict[str, float]:  # pragma: no cover - never stepped
            return {}

    p = Probe.__new__(Probe)
    p.total_steps = 300
    assert p.phase_steps(None, 0.4) == 120  # 40% of 300
    assert p.phase_steps(7, 0.4) == 7  # explicit wins
    p.total_steps = None
    assert p.phase_steps(None, 0.4) == 200_000  # the paper's budget → the paper's phase


def test_short_cpl_run_trains_cpl_not_only_bc(tmp_path: Path) -> None:
    """--steps 30 used to be all BC (bc_steps = 200k); now 40% BC, then the CPL loss."""
    from prl.run import run_experiment

    cfg = {"hidden": [16], "n_segments": 60, "n_pairs": 60, "batch_size": 8, "eval_every": 10**6}
    res = run_experiment("cpl", "random_mdp", steps=30, config=cfg, out=tmp_path, progress=False)
    rows = (res.run_dir / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    bc_rows = [r for r in rows[1:] if r.split(",")[header.index("loss_bc")]]
    assert len(bc_rows) == 12  # round(0.4 * 30)
    assert "loss_cpl" in res.final


@pytest.mark.long
@pytest.mark.parametrize(
    "algo,env",
    [("cpl", "random_mdp"), ("nash_md", "dueling"), ("mdpo_on", "Hopper-v5")],
    ids=["cpl", "nash_md", "mdpo_on"],
)
def test_try_it_command_finishes_at_its_cli_default(algo: str, env: str, tmp_path: Path) -> None:
    """A representative few "try it" commands, verbatim, under a time limit; the budget is
    printed first and every phase runs."""
    envv = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "prl.cli", "run", algo, "--env", env, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=TRY_IT_LIMIT_S,
        env=envv,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert time.monotonic() - t0 < TRY_IT_LIMIT_S
    steps = budget_steps(algo)
    assert re.search(rf"^budget: {steps:,} ", proc.stdout, re.M), proc.stdout[-500:]
    assert f"step={steps}" in proc.stdout or "final:" in proc.stdout


def test_budget_full_is_the_papers() -> None:
    from prl.cli import _default_budget

    steps, note = _default_budget("cpl", "full")
    assert steps == 500_000
    assert note == "budget: 500,000 gradient steps (the paper's budget)"
    steps, note = _default_budget("cpl", "try")
    assert steps == budget_steps("cpl") < 500_000 and "--budget full" in note


# ---- progress -------------------------------------------------------------------------------


def test_non_tty_progress_lines_appear_for_a_run_longer_than_the_interval(
    tmp_path: Path,
) -> None:
    """A logged run (stderr is a file) prints "[prl] ... step, rate, ETA, metric" lines."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PRL_PROGRESS_INTERVAL": "0.2"}
    log = tmp_path / "log.txt"
    with log.open("w") as f:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "prl.cli",
                "run",
                "egpo_nn",
                "--env",
                "dueling",
                "--steps",
                "400",
                "--out",
                str(tmp_path / "runs"),
            ],
            stdout=subprocess.PIPE,
            stderr=f,
            text=True,
            timeout=300,
            env=env,
        )
    assert proc.returncode == 0
    lines = [ln for ln in log.read_text().splitlines() if ln.startswith("[prl] egpo_nn")]
    assert len(lines) >= 2, log.read_text()[-2000:]
    pat = re.compile(
        r"\[prl\] egpo_nn dueling seed 0: [\d,]+/400 iterations \(\d+%\), [\d.e+]+ iterations/s, "
        r"elapsed .+, ETA .+, \w+=[-\d.e+]+"
    )
    assert all(pat.match(ln) for ln in lines), lines
    assert lines[-1].split(": ", 1)[1].startswith("400/400")


def test_progress_lines_and_heartbeat_unit(tmp_path: Path) -> None:
    import io

    from prl.progress import Progress, heartbeat

    buf = io.StringIO()  # not a terminal
    p = Progress(10, "job", unit="steps", stream=buf, every=1e-9)
    for k in range(1, 11):
        p.update(k, {"loss": 1.0 / k})
    p.close()
    out = buf.getvalue().splitlines()
    assert out[0].startswith("[prl] job: 1/10 steps (10%)") and "loss=1" in out[0]
    assert out[-1].startswith("[prl] job: 10/10 steps (100%)")
    quiet = io.StringIO()
    with Progress(10, "job", stream=quiet, enabled=False) as q:
        q.update(10)
    assert quiet.getvalue() == ""
    hb = io.StringIO()
    with heartbeat("check x (1/1)", stream=hb, every=0.05):
        time.sleep(0.3)
    assert "[prl] check x (1/1): still running, elapsed" in hb.getvalue()


# ---- checks explain themselves ----------------------------------------------------------------


def test_check_line_says_what_was_measured(capsys: pytest.CaptureFixture[str]) -> None:
    rc = main(["check", "selfplay_regret_identity", "--quick"])
    out = capsys.readouterr().out
    assert rc == 0
    line = next(ln for ln in out.splitlines() if ln.startswith("selfplay_regret_identity:"))
    assert "PASS: measured" in line and "; measured = max |exploitability" in line


# ---- examples ---------------------------------------------------------------------------------

EXAMPLE_SPECS = sorted((ROOT / "examples").glob("sweep_*.yaml"))


@pytest.mark.parametrize("spec", EXAMPLE_SPECS, ids=[p.stem for p in EXAMPLE_SPECS])
def test_example_sweep_specs_parse_and_their_configs_are_valid(spec: Path) -> None:
    from prl import envs
    from prl.config import build_config
    from prl.sweep import load_spec

    s = load_spec(spec)
    assert s.jobs
    for job in s.jobs:
        build_config(ALGOS.get(job.algo).Config, job.config)
        envs.make(job.env, **job.env_kwargs).close()


def test_example_config_file_is_valid() -> None:
    from prl.config import build_config

    raw = yaml.safe_load((ROOT / "examples" / "cpl_tabular.yaml").read_text())
    build_config(ALGOS.get("cpl").Config, raw)


@pytest.mark.long  # two worker processes: ~20 s each on a loaded 2-core machine
def test_example_sweep_runs_tiny(tmp_path: Path) -> None:
    """The Nash example sweep, cut to 2 jobs of 20 iterations, runs to results.csv."""
    from prl.sweep import parse_spec, run_sweep

    raw = yaml.safe_load((ROOT / "examples" / "sweep_nash_dueling.yaml").read_text())
    raw.update(algos=["nash_md"], envs=raw["envs"][:1], seeds=1, steps=20)
    rows = run_sweep(parse_spec(raw, out=tmp_path), backend="local", workers=1)
    assert [r["status"] for r in rows] == ["ok", "ok"]
    assert (tmp_path / "nash_dueling" / "results.csv").exists()


def test_sweep_docstring_example_is_valid() -> None:
    import prl.sweep
    from prl.config import build_config
    from prl.sweep import parse_spec

    doc = prl.sweep.__doc__ or ""
    block = doc.split("::", 1)[1].split("\n\n")[1]
    spec = parse_spec(yaml.safe_load(block))
    for job in spec.jobs:
        build_config(ALGOS.get(job.algo).Config, job.config)


# ---- figure lint ------------------------------------------------------------------------------


def test_figure_lint_flags_unlabelled_axes_raw_names_and_missing_ticks() -> None:
    from prl.plot import axes_summary, lint_axes, new_figure

    fig, axes = new_figure(ncols=3)
    a, b, c = axes[0]
    a.plot([1, 2, 3], [1, 2, 3])  # no labels
    b.plot([1, 2, 3], [1, 2, 3])
    b.set_xlabel("env_steps")
    b.set_ylabel("return of $\\pi_k$")  # mathtext subscripts are fine
    c.plot([1, 2, 3], [1, 2, 3])
    c.set_xlabel("iteration")
    c.set_ylabel("error")
    c.set_yticks([])
    problems = lint_axes(axes_summary(fig), "demo")
    assert "demo panel 0: no x axis label" in problems
    assert "demo panel 0: no y axis label" in problems
    assert any("raw column name 'env_steps'" in p for p in problems)
    assert not any("pi_k" in p for p in problems)
    assert "demo panel 2: 0 tick labels on the y axis (linear scale)" in problems
    assert len(problems) == 4, problems
