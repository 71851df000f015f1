"""One import package: prl.envs, prl.algos, prl.theory, prl.figures — nothing at top level."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL = ("envs", "algos", "theory", "figures")


def _run_outside(code: str) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter whose cwd and sys.path exclude the repo root."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        return subprocess.run(
            [sys.executable, "-c", code], cwd=tmp, env=env, capture_output=True, text=True
        )


def test_no_top_level_lab_modules_are_importable() -> None:
    code = (
        "import importlib.util, json, sys\n"
        f"root = {str(ROOT)!r}\n"
        "sys.path = [p for p in sys.path if p not in ('', '.', root)]\n"
        f"print(json.dumps({{m: importlib.util.find_spec(m) is not None for m in {TOP_LEVEL!r}}}))"
    )
    res = _run_outside(code)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout.strip().splitlines()[-1])
    assert found == dict.fromkeys(TOP_LEVEL, False), found


def test_lab_subpackages_import_under_prl() -> None:
    code = (
        "import prl.envs, prl.algos, prl.theory, prl.figures\n"
        "from prl.registry import ALGOS, ENVS, CHECKS, FIGURES, load_plugins\n"
        "load_plugins()\n"
        "print(len(ENVS), len(ALGOS), len(CHECKS), len(FIGURES))\n"
        "print(prl.envs.make('dueling'))"
    )
    res = _run_outside(code)
    assert res.returncode == 0, res.stderr
    n_env, n_algo, n_check, n_fig = map(int, res.stdout.split("\n")[0].split())
    assert min(n_env, n_algo, n_check, n_fig) > 0


def test_a_users_own_envs_folder_does_not_shadow_the_lab(tmp_path: Path) -> None:
    """A folder called envs/ in the working directory used to replace the lab's environments."""
    (tmp_path / "envs").mkdir()
    (tmp_path / "envs" / "__init__.py").write_text("raise ImportError('user package')\n")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    res = subprocess.run(
        [sys.executable, "-m", "prl.cli", "list", "envs"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr
    assert "dueling" in res.stdout


def test_plugins_entry_points_name_prl_subpackages() -> None:
    from importlib.metadata import entry_points

    values = {ep.value for ep in entry_points(group="prl.plugins")}
    assert {"prl.envs", "prl.algos", "prl.theory", "prl.figures"} <= values
    assert not values & set(TOP_LEVEL)
