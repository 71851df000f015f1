"""The instant CLI: names come from a generated index; families are imported only when used."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from prl.registry import INDEX_PATH


def _py(code: str) -> str:
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("argv", [["list"], ["list", "algos"], ["--help"]])
def test_listing_and_help_import_no_family_and_no_torch(argv: list[str]) -> None:
    code = (
        "import sys\nfrom prl.cli import main\n"
        f"try:\n    main({argv!r})\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'stable_baselines3', 'mujoco', 'metaworld', 'gymnasium',"
        " 'prl.algos', 'prl.theory', 'prl.figures') if m in sys.modules]\n"
        "print('HEAVY', heavy)"
    )
    out = _py(code)
    assert "HEAVY []" in out, out


def test_an_unknown_name_fails_before_any_family_is_imported() -> None:
    code = (
        "import sys\nfrom prl.cli import main\n"
        "rc = main(['run', 'no_such_algo', '--env', 'dueling'])\n"
        "print('RC', rc, 'torch' in sys.modules)"
    )
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert "RC 2 False" in res.stdout, (res.stdout, res.stderr)
    assert "unknown algorithm 'no_such_algo'" in res.stderr


def test_the_committed_index_is_current(tmp_path: Path) -> None:
    fresh = tmp_path / "index.json"
    code = "from pathlib import Path\nfrom prl.registry import write_index\n"
    _py(code + f"write_index(Path({str(fresh)!r}))")
    assert json.loads(fresh.read_text()) == json.loads(INDEX_PATH.read_text()), (
        "prl/_index.json is stale: run python -m prl.catalog --write README.md"
    )


def test_each_indexed_name_is_registered_by_importing_only_its_module() -> None:
    code = (
        "import importlib, json\n"
        "from prl import registry\n"
        f"index = json.loads(open({str(INDEX_PATH)!r}).read())\n"
        "bad = []\n"
        "for key, names in index.items():\n"
        "    reg = registry.REGISTRIES[key]\n"
        "    for name, info in names.items():\n"
        "        importlib.import_module(info['module'])\n"
        "        if name not in reg._entries: bad.append((key, name, info['module']))\n"
        "print('BAD', bad)"
    )
    assert "BAD []" in _py(code)
