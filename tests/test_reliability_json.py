"""Issue 18 item 2: in ``--json`` mode stdout holds exactly one JSON document, whatever any
library prints — even at file-descriptor level or through C stdio buffers (the HiGHS banner) —
and whatever the command line (a property-based test over ``list`` and ``check``)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from conftest import subprocess_env
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from prl.cli import KINDS, main


def test_item2_subprocess_check_json_is_clean(prl_cli: Any) -> None:
    """The issue's reproduction: the LP solver's banner used to open stdout."""
    proc = prl_cli("check", "minimax_winner_lp", "--quick", "--json")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert [d["name"] for d in doc] == ["minimax_winner_lp"] and doc[0]["passed"] is True
    assert "HiGHS" not in proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize("kind", [None, "algos"])
def test_item2_subprocess_list_json(prl_cli: Any, kind: str | None) -> None:
    proc = prl_cli("list", *([kind] if kind else []), "--json")
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr
    doc = json.loads(proc.stdout)
    if kind is None:
        assert set(doc) == set(KINDS)
        assert any(e["name"] == "dueling" for e in doc["envs"])
    else:
        assert any(e["name"] == "nash_md" and e["description"] for e in doc)


def test_item2_subprocess_no_library_output_reaches_stdout(tmp_path: Path) -> None:
    """A check that writes to fd 1 directly and through C stdio (fully buffered on a pipe, so
    the bytes would otherwise leave at exit, after the JSON): all of it ends on stderr."""
    script = textwrap.dedent(
        """
        import ctypes, os, sys
        import prl.checks
        from prl.cli import main
        real = prl.checks.run_checks
        libc = ctypes.CDLL(None)
        def noisy(*a, **k):
            os.write(1, b"RAW-FD-BANNER\\n")
            libc.printf(b"C-STDIO-BANNER\\n")  # stays in libc's buffer until flushed
            print("PYTHON-PRINT")
            return real(*a, **k)
        prl.checks.run_checks = noisy
        sys.exit(main(["check", "ipo_vs_dpo", "--quick", "--json"]))
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)[0]["name"] == "ipo_vs_dpo"
    for banner in ("RAW-FD-BANNER", "C-STDIO-BANNER", "PYTHON-PRINT"):
        assert banner in proc.stderr and banner not in proc.stdout


def test_item2_errors_in_json_mode_are_json_too(capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "no_such_check", "--json"]) == 2
    out, err = capfd.readouterr()
    doc = json.loads(out)
    assert doc["status"] == 2 and "unknown check 'no_such_check'" in doc["error"]
    assert len([ln for ln in err.splitlines() if ln.strip()]) == 1


FAST_CHECKS = ["ipo_vs_dpo", "dpo_ranking_accuracy", "spo_tree_minimax", "egpo_linear_rate"]


@st.composite
def json_command(draw: st.DrawFn) -> list[str]:
    """A ``list`` or ``check`` command line in --json mode, valid or not."""
    if draw(st.booleans()):
        kind = draw(st.sampled_from([None, *KINDS, "bogus"]))
        argv = ["list", *([kind] if kind else [])]
    else:
        names = draw(
            st.lists(st.sampled_from([*FAST_CHECKS, "no_such_check"]), max_size=2, unique=True)
        )
        argv = ["check", *names, "--quick"]
        if draw(st.booleans()):
            argv += ["--seed", str(draw(st.integers(min_value=-2, max_value=2**65)))]
        if draw(st.booleans()):
            argv += [draw(st.sampled_from(["--all", "--bogus-flag", "--device=tpu"]))]
    pos = draw(st.integers(min_value=1, max_value=len(argv)))
    return [*argv[:pos], "--json", *argv[pos:]]


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(argv=json_command())
def test_item2_json_stdout_always_parses(
    argv: list[str], capfd: pytest.CaptureFixture[str]
) -> None:
    if "--all" in argv:  # the full quick suite takes minutes: only its command-line handling
        argv = [a for a in argv if a != "--all"] + ["--device=tpu"]
    capfd.readouterr()
    code = main(argv)
    out, err = capfd.readouterr()
    doc = json.loads(out)  # exactly one JSON document, whatever happened
    assert code in (0, 1, 2)
    if code == 2:
        assert doc["status"] == 2 and doc["error"].startswith("prl")
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0] == doc["error"]
    elif argv[0] == "check":
        names = [a for a in argv[1:] if not a.startswith("-") and not a.isdigit()]
        assert [d["name"] for d in doc] == names
        assert code == (0 if all(d["passed"] for d in doc) else 1)
    else:
        assert isinstance(doc, (list, dict)) and doc
