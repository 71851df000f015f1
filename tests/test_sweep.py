"""prl.sweep: grids, failure isolation and retry, result table, resume, Ray backend."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from prl.errors import ConfigError, PrlError, UnknownNameError
from prl.sweep import load_spec, parse_spec, run_sweep

SPEC = """
name: demo
algos: [spo_bandit]
envs:
  - {name: dueling, kwargs: {game: dice}}
seeds: [0, 1]
steps: 160
grid:
  lr: [0.5, -1.0]   # lr = -1 is invalid: those runs fail, the others must finish
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    return p


def test_invalid_grid_point_is_refused_at_load(tmp_path: Path) -> None:
    """lr = -1 in the grid: refused when the spec is loaded, before any worker or file."""
    with pytest.raises(ConfigError, match="lr must be positive"):
        load_spec(_write(tmp_path, SPEC), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_same_seed_same_results_across_backends_of_execution(tmp_path: Path) -> None:
    spec = load_spec(_write(tmp_path, SPEC.replace("[0.5, -1.0]", "[0.5]")), out=tmp_path / "a")
    run_sweep(spec, workers=1, echo=None)
    spec2 = load_spec(tmp_path / "spec.yaml", out=tmp_path / "b")
    run_sweep(spec2, workers=2, echo=None)
    a = pd.read_csv(spec.out / "results.csv")
    b = pd.read_csv(spec2.out / "results.csv")
    cols = [c for c in a.columns if c.startswith("final.")]
    pd.testing.assert_frame_equal(a[cols], b[cols])


@pytest.mark.parametrize(
    "text, err, needle",
    [
        ("algos: [spo_bandit]\nenvs: [dueling\n", ConfigError, "malformed YAML"),
        ("- just\n- a list\n", ConfigError, "mapping"),
        ("algos: [nope]\nenvs: [dueling]\n", UnknownNameError, "unknown algorithm"),
        ("algos: [spo_bandit]\nenvs: [nope]\n", UnknownNameError, "unknown environment"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nsteps: -3\n", ConfigError, "steps"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nbogus: 1\n", ConfigError, "unknown sweep spec"),
        ("envs: [dueling]\n", ConfigError, "algos"),
        ("algos: [spo_bandit]\nenvs: [dueling]\ndevice: tpu\n", ConfigError, "device"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nconfig: {lr: abc}\n", ConfigError, "lr"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nconfig: {bogus: 1}\n", ConfigError, "bogus"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nthreads: 0\n", ConfigError, "threads"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nseeds: [4294967296]\n", ConfigError, "seeds"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nname: ../escape\n", ConfigError, "plain"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nname: ..\n", ConfigError, "plain"),
        ("algos: [spo_bandit]\nenvs: [dueling]\nname: /tmp/x\n", ConfigError, "plain"),
        (
            "algos: [spo_bandit]\nenvs: [{name: dueling, kwargs: {K: abc}}]\n",
            PrlError,
            "K must be a positive integer",
        ),
    ],
)
def test_malformed_specs(tmp_path: Path, text: str, err: type, needle: str) -> None:
    with pytest.raises(err, match=needle):
        load_spec(_write(tmp_path, text), out=tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_grid_expansion() -> None:
    spec = parse_spec(
        {
            "algos": ["spo_bandit"],
            "envs": ["dueling"],
            "seeds": 3,
            "grid": {"lr": [0.1, 0.2], "batch": [4, 8]},
        }
    )
    assert len(spec.jobs) == 12
    assert len({j.job_id for j in spec.jobs}) == 12


@pytest.mark.ray
@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed")
def test_ray_backend_runs_the_same_spec(tmp_path: Path) -> None:
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        spec = load_spec(_write(tmp_path, SPEC.replace("-1.0", "0.25")), out=tmp_path / "ray")
        rows = run_sweep(spec, backend="ray", workers=2, echo=None)
    finally:
        ray.shutdown()
    status = {(r["seed"], r["param.lr"]): r["status"] for r in rows}
    assert status == {(0, 0.5): "ok", (1, 0.5): "ok", (0, 0.25): "ok", (1, 0.25): "ok"}
    local = run_sweep(load_spec(tmp_path / "spec.yaml", out=tmp_path / "local"), echo=None)
    for r_ray, r_loc in zip(rows, local):
        assert r_ray.get("final.exploitability_avg") == r_loc.get("final.exploitability_avg")


def test_a_killed_worker_fails_only_its_job(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PRL_KILL_JOB", "__1__")  # every worker of seed 1 dies with SIGKILL
    spec = load_spec(_write(tmp_path, SPEC.replace("[0.5, -1.0]", "[0.5]")), out=tmp_path / "o")
    rows = {r["seed"]: r for r in run_sweep(spec, workers=2, echo=None)}
    assert rows[0]["status"] == "ok" and rows[0]["final.step"] == 160
    assert rows[1]["status"] == "failed" and rows[1]["attempts"] == 2  # retried once
    assert "killed by signal 9" in rows[1]["error"]
    df = pd.read_csv(spec.out / "results.csv")
    assert sorted(df["status"]) == ["failed", "ok"]
    # re-running finishes the failed job and reads the finished one back unchanged
    monkeypatch.delenv("PRL_KILL_JOB")
    again = {r["seed"]: r for r in run_sweep(spec, workers=2, echo=None)}
    assert again[1]["status"] == "ok" and again[1]["final.step"] == 160
    assert {k: v for k, v in again[0].items() if k.startswith("final.")} == {
        k: v for k, v in rows[0].items() if k.startswith("final.")
    }
