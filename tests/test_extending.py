"""docs/extending.md works: the template algorithm (docs/template_algo.py), copied into a
temporary plugin package registered through the ``prl.plugins`` entry-point group, trains, is
deterministic, resumes exactly after a SIGKILL, and passes the per-algorithm checks of the suite
(tiny settings declared, CLI round trip, catalog row). Runs in subprocesses so the toy algorithm
never enters this process's registry."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import ROOT, subprocess_env

TEMPLATE = ROOT / "docs" / "template_algo.py"

CHECKS = textwrap.dedent(
    """
    import json, sys
    from prl.registry import ALGOS, load_plugins
    load_plugins()  # imports toyplugin through its prl.plugins entry point
    assert "toy_algo" in ALGOS, ALGOS.names()
    from prl.smoke import SMOKE, smoke_for
    s = smoke_for("toy_algo")
    assert SMOKE["toy_algo"] == s and s.algo == "toy_algo"
    cls = ALGOS.get("toy_algo")
    cls.check_env(s.env, s.env_kwargs)
    assert s.steps > 0 and s.source.startswith("tests/test_")
    # determinism: same seed, same rows; another seed, other rows
    from prl.run import train
    rows = [train(s.algo, s.env, seed=k, steps=s.steps, config=s.config,
                  env_kwargs=s.env_kwargs, device="cpu")[1] for k in (3, 3, 4)]
    assert rows[0] == rows[1] and rows[0] != rows[2]
    assert rows[0][-1]["step"] >= s.steps
    # the CLI round trip of tests/test_matrix.py
    from prl.cli import _parse_config_overrides, main
    from prl.config import build_config
    extra = [a for a in s.cli_args()[3:] if a.startswith("--") and not a.startswith("--env-kw")]
    assert build_config(cls.Config, _parse_config_overrides("toy_algo", extra)) == build_config(
        cls.Config, s.config)
    # the README catalog row is generated
    from prl.catalog import catalog
    assert "| `toy_algo` |" in catalog()
    # resume the killed run in place, then an uninterrupted run for comparison
    out, straight, common = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    assert main(["run", "toy_algo", "--env", s.env, "--seed", "5", "--out", out, "--resume",
                 "--device", "cpu", "--no-progress"]) == 0
    assert main(["run", *s.cli_args(), *common, "--out", straight]) == 0
    print("CHECKS-OK")
    """
)


def _plugin(tmp: Path) -> Path:
    """A plugin package holding the template, renamed, and its entry-point metadata."""
    site = tmp / "site"
    pkg = site / "toyplugin"
    pkg.mkdir(parents=True)
    src = TEMPLATE.read_text().replace('"template_algo"', '"toy_algo"')
    assert '"toy_algo"' in src
    (pkg / "__init__.py").write_text(src)
    dist = site / "toyplugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toyplugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[prl.plugins]\ntoy = toyplugin\n")
    return site


def _rows(run_root: Path) -> tuple[list[dict[str, str]], dict]:
    (run,) = [p for p in run_root.iterdir() if p.is_dir()]
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((run / "final.json").read_text())


def test_template_algorithm_passes_the_per_algorithm_checks(tmp_path: Path) -> None:
    site = _plugin(tmp_path)
    env = subprocess_env()
    env["PYTHONPATH"] = f"{site}:{env['PYTHONPATH']}"
    smoke_args = ["toy_algo", "--env", "dueling", "--env-kw", 'game="random"', "--env-kw", "K=4"]
    smoke_args += ["--env-kw", "seed=2", "--batch=8"]
    common = ["--steps", "20", "--seed", "5", "--checkpoint-every", "5"]
    common += ["--device", "cpu", "--no-progress"]
    killed_out, straight_out = tmp_path / "killed", tmp_path / "straight"
    killed = subprocess.run(
        [sys.executable, "-m", "prl.cli", "run", *smoke_args, *common, "--out", str(killed_out)],
        env={**env, "PRL_KILL_AT_STEP": "12"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert killed.returncode == -9, killed.stderr
    res = subprocess.run(
        [sys.executable, "-c", CHECKS, str(killed_out), str(straight_out), json.dumps(common)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0 and "CHECKS-OK" in res.stdout, res.stderr[-3000:]
    got, got_final = _rows(killed_out)
    want, want_final = _rows(straight_out)
    assert [int(r["step"]) for r in want] == list(range(1, 21))
    assert got == want and got_final == want_final  # exact resume after the SIGKILL
