"""Claims (statistic, decision rule), the mid-budget store and the index's claim section."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from prl.claims import (
    CLAIMS,
    INCONCLUSIVE,
    NOT_REPRODUCED,
    REPRODUCED,
    Claim,
    Comparison,
    Sanity,
    compare_scores,
    decide,
)
from prl.registry import load_plugins

ROOT = Path(__file__).resolve().parent.parent


# ---- the statistic against hand computations (rliable's definitions) ------------------------


def test_iqm_difference_and_probability_of_improvement_by_hand() -> None:
    rng = np.random.default_rng(0)
    # IQM of 1..8 cuts 2 values at each end: mean(3, 4, 5, 6) = 4.5; IQM of a constant is it
    s = compare_scores(np.arange(1.0, 9.0), np.full(8, 2.0), rng=rng, reps=200)
    assert s["iqm_method"] == pytest.approx(4.5)
    assert s["diff"] == pytest.approx(2.5)
    # P(X > Y) + ½ P(X = Y): x = {2, 3}, y = {1, 3}: (1 + 0 + 1 + ½) / 4 = 0.625
    s = compare_scores([2.0, 3.0], [1.0, 3.0], rng=rng, reps=200)
    assert s["poi"] == pytest.approx(0.625)
    assert s["diff"] == pytest.approx(0.5)  # n = 2: nothing trimmed, 2.5 − 2.0
    # averaged over tasks: task 1 always wins (1), task 2 always loses (0) → ½
    x = np.array([[1.0, 0.0], [2.0, 0.0]])
    y = np.array([[0.0, 1.0], [0.0, 1.0]])
    assert compare_scores(x, y, rng=rng, reps=200)["poi"] == pytest.approx(0.5)
    # a constant reference: 3 of 4 runs above ½
    s = compare_scores([0.6, 0.7, 0.4, 0.8], 0.5, rng=rng, reps=200)
    assert s["poi"] == pytest.approx(0.75)
    assert s["diff"] == pytest.approx((0.6 + 0.7) / 2 - 0.5)  # n = 4: 0.4 and 0.8 cut
    # one run a side: every resample is that run, so the CI collapses onto the point
    s = compare_scores([3.0], [1.0], rng=rng, reps=50)
    assert s["diff_lo"] == s["diff_hi"] == pytest.approx(2.0)
    assert s["poi_lo"] == s["poi_hi"] == 1.0


def test_bootstrap_is_stratified_and_seeded() -> None:
    x = np.array([[0.0, 10.0], [1.0, 11.0], [2.0, 12.0]])
    y = np.zeros((3, 2))
    a = compare_scores(x, y, rng=np.random.default_rng(5), reps=500)
    b = compare_scores(x, y, rng=np.random.default_rng(5), reps=500)
    assert a == b
    # resampling within each task keeps one value per task per run, so the IQM of a resample
    # lies between the IQMs of the extreme resamples [0,0,0 | 10,10,10] and [2,2,2 | 12,12,12]
    assert 5.0 <= a["diff_lo"] <= a["diff"] <= a["diff_hi"] <= 7.0


def _table(method: np.ndarray, baseline: np.ndarray, tasks: int = 1) -> pd.DataFrame:
    rows = []
    for name, arr in (("A", method), ("B", baseline)):
        arr = arr.reshape(len(arr), -1)
        for s in range(arr.shape[0]):
            for t in range(tasks):
                rows.append({"task": f"t{t}", "method": name, "seed": s, "score": arr[s, t]})
    return pd.DataFrame(rows)


def _claim(op: str = ">", margin: float = 0.0, **kw: object) -> Claim:
    return Claim(
        name="synthetic",
        figure="none",
        paper="none",
        text="A beats B",
        metric="score",
        scores=lambda df: df,
        comparisons=(Comparison("A", "B", op, None, margin),),
        **kw,  # type: ignore[arg-type]
    )


def _verdict(df: pd.DataFrame, **kw: object) -> tuple[str, str]:
    r = _claim(**kw).evaluate(df, tier="mid", seeds=range(10), budget={})  # type: ignore[arg-type]
    return r.verdict, r.reason


def test_clear_win_clear_loss_and_overlap() -> None:
    rng = np.random.default_rng(1)
    base = rng.normal(0.0, 1.0, (10, 3))
    win = _table(base + 10.0, base, tasks=3)
    loss = _table(base - 10.0, base, tasks=3)
    overlap = _table(rng.normal(0.0, 1.0, (10, 3)), base, tasks=3)
    assert _verdict(win)[0] == REPRODUCED
    assert _verdict(loss)[0] == NOT_REPRODUCED
    v, why = _verdict(overlap)
    assert v == INCONCLUSIVE and "contains 0" in why


def test_non_inferiority_margin_and_too_few_seeds() -> None:
    rng = np.random.default_rng(2)
    b = 100.0 + rng.normal(0.0, 1.0, 10)
    # 3% below the baseline: inside a 10% margin (REPRODUCED for ≥), outside a strict >
    df = _table(b - 3.0, b)
    assert _verdict(df, op=">=", margin=0.1)[0] == REPRODUCED
    assert _verdict(df, op=">")[0] == NOT_REPRODUCED
    # 30% below: outside the margin
    assert _verdict(_table(b - 30.0, b), op=">=", margin=0.1)[0] == NOT_REPRODUCED
    # a clear win on 4 seeds is still INCONCLUSIVE: the claim needs 5
    v, why = _verdict(_table(b[:4] + 50.0, b[:4]))
    assert v == INCONCLUSIVE and "4 seeds < the 5" in why


def test_probability_of_improvement_must_agree_for_strict_claims() -> None:
    stats = {"diff": 1.0, "diff_lo": 0.5, "diff_hi": 1.5, "poi": 0.45, "iqm_baseline": 1.0}
    kw = {"margin": 0.0, "n_method": 5, "n_baseline": 5, "min_seeds": 5}
    assert decide(stats, op=">", **kw)[0] == INCONCLUSIVE
    assert decide({**stats, "poi": 0.7}, op=">", **kw)[0] == REPRODUCED
    assert decide(stats, op=">=", **kw)[0] == REPRODUCED


def test_a_baseline_that_does_not_learn_makes_it_inconclusive() -> None:
    rng = np.random.default_rng(3)
    b = rng.normal(0.0, 1.0, 10) + 10.0
    df = _table(b + 20.0, b)
    prog = pd.DataFrame({"task": "t0", "method": "B", "seed": range(10), "initial": 8.0,
                         "final": b})  # fmt: skip
    v, why = _verdict(df, progress=lambda _: prog, sanity=(Sanity("B", 3.0),))
    assert v == INCONCLUSIVE and "budget is too small" in why
    prog["final"] = 30.0  # ≥ 3× its start
    assert _verdict(df, progress=lambda _: prog, sanity=(Sanity("B", 3.0),))[0] == REPRODUCED


def test_every_control_figure_has_a_registered_claim() -> None:
    load_plugins()
    figures = {c.obj.figure for c in CLAIMS.entries()}
    assert figures == {"mdpo_mujoco", "pdppo_vs_ppo", "spo_control", "heron", "cmorl_pareto",
                       "cpl_table", "oppo_baselines"}  # fmt: skip
    from prl.registry import FIGURES

    for c in CLAIMS.entries():
        assert c.obj.figure in FIGURES
        assert c.obj.min_seeds >= 5 and c.obj.paper and c.obj.comparisons
        spec = FIGURES.get(c.obj.figure)
        assert len(spec.mid_seeds) >= 5, c.obj.figure  # never fewer seeds than the claim needs


# ---- the store ------------------------------------------------------------------------------

TINY = {
    "seeds": [0, 1],
    "tasks": ["slippery lake 4x4"],
    "lake_steps": 256,
    "ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 2},
}


def _make(tmp: Path, **kw: object):
    from prl.figure import make_figure

    args = {"out": tmp / "out", "budget": "quick", "store": tmp / "store", "override": TINY,
            "backend": "inline", **kw}  # fmt: skip
    return make_figure("pdppo_vs_ppo", **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("store")
    fo = _make(tmp)
    assert fo.ok and fo.store is not None
    return tmp


def _sdir(tmp: Path) -> Path:
    return tmp / "store" / "quick" / "pdppo_vs_ppo"


def test_store_round_trip_draws_without_training(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    import prl.store as store

    man = json.loads((_sdir(built) / "manifest.json").read_text())
    assert man["complete"] and man["seeds"] == [0, 1] and man["runs"] == 6
    assert man["figure"] == "pdppo_vs_ppo" and man["tier"] == "quick"
    for field in ("git", "machine", "versions", "command", "cpu_s", "wall_s", "analysis"):
        assert field in man
    assert {p["seed"] for p in man["pieces"]} == {0, 1}
    assert {p["cpu"] for p in man["pieces"]} == {store.machine()["cpu"]}  # where each run ran
    first = (built / "out" / "pdppo_vs_ppo.csv").read_bytes()
    shutil.copytree(built / "store", tmp_path / "store")

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a complete store must not plan or train")

    monkeypatch.setattr(store, "compute_plan", boom)
    monkeypatch.setattr(store, "compute_piece", boom)
    fo = _make(tmp_path)
    assert fo.ok, fo.error
    assert (tmp_path / "out" / "pdppo_vs_ppo.csv").read_bytes() == first
    assert fo.claim is not None and fo.claim["smoke"] and fo.claim["seeds"] == [0, 1]
    # a figure drawn from the store says which commit(s) and command its runs came from
    drawn = json.loads((tmp_path / "out" / "pdppo_vs_ppo.json").read_text())
    commits = sorted({p["commit"] for p in man["pieces"]})
    assert drawn["runs_from"] == {"commits": commits, "command": man["command"], "complete": True}


def test_recomputing_one_stored_seed_gives_the_same_figure(built: Path, tmp_path: Path) -> None:
    import shutil

    shutil.copytree(built / "store", tmp_path / "store")
    sdir = _sdir(tmp_path)
    man = json.loads((sdir / "manifest.json").read_text())
    drop = [p for p in man["pieces"] if p["seed"] == 1]
    for p in drop:
        (sdir / p["file"]).unlink()
    man["pieces"] = [p for p in man["pieces"] if p["seed"] != 1]
    man["seeds"], man["complete"] = [0], False
    (sdir / "manifest.json").write_text(json.dumps(man))
    fo = _make(tmp_path)  # a fresh work directory: seed 1 is recomputed from scratch
    assert fo.ok, fo.error
    assert (tmp_path / "out" / "pdppo_vs_ppo.csv").read_bytes() == (
        built / "out" / "pdppo_vs_ppo.csv"
    ).read_bytes()
    again = json.loads((sdir / "manifest.json").read_text())
    assert again["complete"] and again["seeds"] == [0, 1]
    ref = json.loads((_sdir(built) / "manifest.json").read_text())
    assert [p["sha256"] for p in again["pieces"]] == [p["sha256"] for p in ref["pieces"]]


def test_manifest_command_reproduces_a_stored_run(built: Path, tmp_path: Path) -> None:
    man = json.loads((_sdir(built) / "manifest.json").read_text())
    piece = next(p for p in man["pieces"] if p["seed"] == 1)
    cmd = shlex.split(piece["command"])
    assert cmd[:4] == ["python", "-m", "prl.store", "piece"]
    cmd[cmd.index("--out") + 1] = str(tmp_path / "re")
    proc = subprocess.run([sys.executable, *cmd[1:]], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    produced = Path(proc.stdout.strip().splitlines()[-1])
    assert produced.read_bytes() == (_sdir(built) / piece["file"]).read_bytes()


def test_verify_names_the_cpus_when_a_recomputed_run_differs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Bytes depend on the CPU kind (float32 kernels): a mismatch says where each side ran."""
    import prl.store as store

    man = {"pieces": [{"key": "a", "sha256": "1", "cpu": "CPU A"},
                      {"key": "b", "sha256": "2", "cpu": "CPU B"}], "seeds": [0]}  # fmt: skip
    monkeypatch.setattr(store, "read_manifest", lambda *a, **k: man)
    monkeypatch.setattr(
        store, "compute_piece", lambda name, tier, key, *a: {"sha256": "2", "cpu": "CPU B"}
    )
    argv = ["verify", "pdppo_vs_ppo", "--budget", "quick", "--store", str(tmp_path)]
    assert store.main([*argv, "--out", str(tmp_path / "re")]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("MISMATCH a (stored on 'CPU A', recomputed on 'CPU B'")
    assert out[1] == "OK b"


@pytest.mark.parametrize("damage", ["manifest", "budget", "checksum", "seed", "figure", "extra"])
def test_corrupt_or_mismatched_store_is_refused(built: Path, tmp_path: Path, damage: str) -> None:
    import shutil

    from prl.store import StoreError, sha256

    shutil.copytree(built / "store", tmp_path / "store")
    sdir = _sdir(tmp_path)
    mpath = sdir / "manifest.json"
    man = json.loads(mpath.read_text())
    p0 = man["pieces"][0]
    if damage == "manifest":
        mpath.write_text("{not json")
    elif damage == "budget":
        man["budget"]["lake_steps"] = 512
    elif damage == "checksum":
        (sdir / p0["file"]).write_text("seed\n0\n")
    elif damage == "seed":
        csv = sdir / p0["file"]
        df = pd.read_csv(csv)
        df["seed"] = 7
        df.to_csv(csv, index=False)
        p0["sha256"] = sha256(csv)
    elif damage == "figure":
        man["figure"] = "heron"
    elif damage == "extra":
        man["seeds"] = [0, 1, 9]
    if damage != "manifest":
        mpath.write_text(json.dumps(man))
    with pytest.raises(StoreError) as err:
        _make(tmp_path)
    msg = str(err.value)
    assert "store" in msg and len(msg.splitlines()) == 1


def test_cli_refuses_a_corrupt_mid_store_with_status_2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from prl.cli import main

    sdir = tmp_path / "mid" / "pdppo_vs_ppo"
    sdir.mkdir(parents=True)
    (sdir / "manifest.json").write_text("[1, 2")
    monkeypatch.setenv("PRL_STORE", str(tmp_path))
    rc = main(["figure", "pdppo_vs_ppo", "--budget", "mid", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and "corrupt store manifest" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "o" / "pdppo_vs_ppo.csv").exists()


def test_quick_is_an_alias_of_budget_quick() -> None:
    from prl.cli import _build_parser

    p = _build_parser()
    assert p.parse_args(["figure", "x", "--quick"]).budget == "quick"
    assert p.parse_args(["reproduce", "--budget", "mid", "--rerun"]).budget == "mid"
    assert p.parse_args(["reproduce", "--budget", "full", "--backend", "ray"]).backend == "ray"


# ---- the index ------------------------------------------------------------------------------


def test_index_round_trips_the_claim(built: Path, tmp_path: Path) -> None:
    from prl.figure import FigureOutcome
    from prl.reproduce import write_index

    fig_json = json.loads((built / "out" / "pdppo_vs_ppo.json").read_text())
    claim = fig_json["claim"]
    assert claim["verdict"] in (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
    fo = FigureOutcome("pdppo_vs_ppo", 1.0, {"csv": "pdppo_vs_ppo.csv"}, (0, 1), None,
                       "quick", claim)  # fmt: skip
    write_index(tmp_path, [], [fo], quick=True, total_seconds=1.0, device="cpu", tier="quick")
    idx = json.loads((tmp_path / "index.json").read_text())
    got = idx["figures"][0]["claim"]
    assert got == json.loads(json.dumps(claim))
    assert got["verdict"] == claim["verdict"] and got["seeds"] == [0, 1]
    assert got["budget"] == "quick" and got["smoke"] is True
    md = (tmp_path / "index.md").read_text()
    assert "## Control claims" in md and "smoke, not a result" in md
    assert "2 seeds < the 5" in md  # the reason travels with the verdict
    assert "Analyses of the verdicts" not in md  # no analysis, no section
    fo.claim = {**claim, "analysis": "why: the budget <is> small"}
    write_index(tmp_path, [], [fo], quick=True, total_seconds=1.0, device="cpu", tier="quick")
    assert "- **pdppo_vs_ppo**: why: the budget <is> small" in (tmp_path / "index.md").read_text()
    assert "the budget &lt;is&gt; small" in (tmp_path / "index.html").read_text()


def test_a_figure_drawn_from_the_store_carries_its_analysis(built: Path, tmp_path: Path) -> None:
    """The store manifest's analysis (written after the runs) is the claim's analysis."""
    import shutil

    from prl.utils import atomic_write_json

    shutil.copytree(built / "store", tmp_path / "store")
    man = json.loads((_sdir(tmp_path) / "manifest.json").read_text())
    atomic_write_json(_sdir(tmp_path) / "manifest.json", {**man, "analysis": "budget too small"})
    fo = _make(tmp_path)
    assert fo.ok, fo.error
    assert fo.claim["analysis"] == "budget too small"


@pytest.mark.slow
def test_store_runs_are_local_sweep_jobs(tmp_path: Path) -> None:
    fo = _make(tmp_path, backend="local", workers=2, override={**TINY, "seeds": [0]})
    assert fo.ok, fo.error
    sweep = tmp_path / "out" / ".cache" / "pdppo_vs_ppo" / "quick" / "sweep"
    res = pd.read_csv(sweep / "results.csv")
    assert (res["status"] == "ok").all() and len(res) == 3


def test_collect_stores_the_finished_runs_of_an_interrupted_sweep(
    built: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`python -m prl.store collect`: partial results are stored (committable), none computed."""
    import shutil

    import prl.store as store
    from prl.registry import FIGURES

    shutil.copytree(built / "out", tmp_path / "out")
    runs = tmp_path / "out" / ".cache" / "pdppo_vs_ppo" / "quick" / "sweep" / "runs"
    victims = sorted(d for d in runs.iterdir() if not d.name.startswith(store.PLAN_KEY))[:2]
    for d in victims:  # as if the sweep had been killed before these jobs ran
        shutil.rmtree(d)

    def boom(*a: object, **k: object) -> None:
        raise AssertionError("collect must not compute")

    monkeypatch.setattr(store, "compute_plan", boom)
    monkeypatch.setattr(store, "compute_piece", boom)
    spec = FIGURES.get("pdppo_vs_ppo")
    budget = {**spec.tier("quick")[1], **{k: v for k, v in TINY.items() if k != "seeds"}}
    ctx = store._context("pdppo_vs_ppo", "quick", TINY["seeds"], budget, "cpu", tmp_path / "out")
    sdir = tmp_path / "store" / "quick" / "pdppo_vs_ppo"
    store.ensure_store(ctx, sdir, spec=spec, collect_only=True)
    man = json.loads((sdir / "manifest.json").read_text())
    ref = json.loads((_sdir(built) / "manifest.json").read_text())
    assert not man["complete"] and man["runs"] == ref["runs"] - 2
    want = {p["key"]: p["sha256"] for p in ref["pieces"]}
    assert all(want[p["key"]] == p["sha256"] for p in man["pieces"])
