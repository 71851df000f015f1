"""`prl reproduce`: the index links every file it produced, and bad names change nothing."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from prl.cli import main
from prl.registry import CHECKS, FIGURES, load_plugins

# Two fast exact checks and one fast figure: enough to exercise every part of the index.
FAST_CHECKS = ["minimax_winner_lp", "selfplay_regret_identity"]
FAST_FIGURES = ["selfplay_dice"]


def _linked_files(out: Path) -> dict[str, set[str]]:
    """Every relative link target in index.md, index.html and index.json."""
    md = (out / "index.md").read_text()
    page = (out / "index.html").read_text()
    idx = json.loads((out / "index.json").read_text())
    from_json = {f"checks/{v}" for c in idx["checks"] for v in c["files"].values()}
    from_json |= {f"figures/{v}" for f in idx["figures"] for v in f["files"].values()}
    return {
        "md": set(re.findall(r"\]\(([^)]+)\)", md)),
        "html": set(re.findall(r'(?:href|src)="([^"]+)"', page)),
        "json": from_json,
    }


def _assert_every_link_present(out: Path) -> set[str]:
    links = _linked_files(out)
    for kind, targets in links.items():
        assert targets, f"index.{kind} links nothing"
        missing = sorted(t for t in targets if not (out / t).is_file())
        assert not missing, f"index.{kind} links files that do not exist: {missing}"
    assert links["md"] == links["json"], "index.md and index.json list different files"
    return links["md"]


def _lint_problems(idx: dict) -> list[str]:
    """The figure lint (every axis labelled in words, tick labels present) over every PNG of a
    reproduction, from the axes recorded next to each PNG as it was drawn."""
    from prl.plot import lint_axes

    problems = []
    for item in [*idx["checks"], *idx["figures"]]:
        if "png" in item["files"]:
            meta = json.loads(
                (Path(idx["_out"]) / item["_dir"] / item["files"]["json"]).read_text()
            )
            assert meta["axes"], f"{item['name']}: no axes recorded for its PNG"
            problems += lint_axes(meta["axes"], item["name"])
    return problems


def _index(out: Path) -> dict:
    idx = json.loads((out / "index.json").read_text())
    idx["_out"] = str(out)
    for c in idx["checks"]:
        c["_dir"] = "checks"
    for f in idx["figures"]:
        f["_dir"] = "figures"
    return idx


def test_quick_reproduce_subset_writes_index_with_every_linked_file(tmp_path: Path) -> None:
    out = tmp_path / "results"
    rc = main(["reproduce", "--quick", "--out", str(out), "--only", *FAST_CHECKS, *FAST_FIGURES])
    assert rc == 0
    links = _assert_every_link_present(out)
    # Each check links its JSON result and figure; each figure its CSV, PNG and metadata.
    for name in FAST_CHECKS:
        assert any(t.startswith("checks/") and name in t and t.endswith(".png") for t in links)
        assert any(t.startswith("checks/") and name in t and t.endswith(".json") for t in links)
    for name in FAST_FIGURES:
        for ext in (".csv", ".png", ".json"):
            assert f"figures/{name}{ext}" in links
    idx = json.loads((out / "index.json").read_text())
    assert idx["mode"] == "quick"
    assert [c["name"] for c in idx["checks"]] == FAST_CHECKS
    assert all(c["passed"] for c in idx["checks"])
    assert [f["name"] for f in idx["figures"]] == FAST_FIGURES
    assert all(f["ok"] for f in idx["figures"])
    md = (out / "index.md").read_text()
    assert "**PASS**" in md and "**OK**" in md
    # the index explains itself: what each check measured, what each figure shows, smoke marks
    assert "what is measured" in md and "− R_T/T" in md
    assert "SPO self-play on cyclic dice" in md
    assert (
        "smoke test: not a result" in md
        and "smoke test: not a result" in (out / "index.html").read_text()
    )
    assert _lint_problems(_index(out)) == []


def test_reproduce_unknown_name_exits_2_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "results"
    rc = main(["reproduce", "--quick", "--out", str(out), "--only", "minimax_winner_lp", "nope"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "nope" in err and "Traceback" not in err
    assert err.count("\n") == 1
    assert not out.exists()


def test_failed_figure_is_reported_in_the_index_not_raised(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A figure that raises is marked ERROR in the index; the other items still complete."""
    from prl.reproduce import reproduce

    load_plugins()
    spec = FIGURES.get("selfplay_dice")

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("deliberate failure")

    monkeypatch.setattr(spec.cls, "data", boom)
    checks, figs = reproduce(
        tmp_path, quick=True, only=["minimax_winner_lp", "selfplay_dice"], echo=None
    )
    assert checks[0].passed
    assert not figs[0].ok and "deliberate failure" in (figs[0].error or "")
    assert "deliberate failure" in (tmp_path / "index.md").read_text()
    _assert_every_link_present(tmp_path)


def test_registries_are_not_empty() -> None:
    load_plugins()
    assert set(FAST_CHECKS) <= set(CHECKS.names())
    assert set(FAST_FIGURES) <= set(FIGURES.names())


@pytest.mark.long
def test_full_quick_reproduce_links_every_file(tmp_path: Path) -> None:
    """The README's main job: every registered check and figure at the quick budget.

    The only test that runs every figure, so it stays in the default run (~4–5 min on one core).
    """
    out = tmp_path / "results"
    rc = main(["reproduce", "--quick", "--out", str(out)])
    _assert_every_link_present(out)
    idx = json.loads((out / "index.json").read_text())
    assert len(idx["checks"]) == len(CHECKS.names())
    assert len(idx["figures"]) == len(FIGURES.names())
    assert rc == 0
    # the figure lint over every registered figure and check plot at the quick budget
    assert _lint_problems(_index(out)) == []
