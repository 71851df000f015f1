"""The Ray backend (issue 20, item 3): one Ray task per job, all submitted at once, with the job's
threads as CPUs and a GPU for ``device: cuda``; failed attempts resubmitted per ``retries``;
each job runs in a node-local directory and its files come back to the driver, which writes
them into the sweep directory (same layout and resume as the local backend)."""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from conftest import subprocess_env

from prl.errors import ConfigError, UnknownNameError
from prl.sweep import (
    _check_cluster,
    _ray_job,
    _write_back,
    execute_job,
    load_spec,
    parse_spec,
    ray_task_options,
)

SPEC = """
name: demo
algos: [spo_bandit]
envs:
  - {name: dueling, kwargs: {game: dice}}
seeds: [0, 1, 2]
steps: 160
checkpoint_every: 64
"""

DRIVER = """
import json, os, sys
import ray
from prl.sweep import load_spec, run_sweep

ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False)  # 3 worker processes
spec = load_spec(sys.argv[1], out=sys.argv[2], backend="ray")
os.environ["PRL_KILL_JOB"] = "__1__"  # every attempt of seed 1 dies (SIGKILL in its worker)
first = run_sweep(spec, backend="ray", echo=None)
table = open(os.path.join(spec.out, "results.csv")).read()
del os.environ["PRL_KILL_JOB"]
second = run_sweep(spec, backend="ray", echo=None)  # resumes: only seed 1 runs again
doc = {"first": first, "second": second, "table": table, "cpus": ray.cluster_resources()["CPU"]}
json.dump(doc, open(sys.argv[3], "w"), default=str)
"""


def _files(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in run_dir.iterdir() if not p.name.startswith(".")}


@pytest.mark.long
@pytest.mark.ray
def test_ray_sweep_on_a_local_cluster_with_a_failing_job(tmp_path: Path) -> None:
    """A 3-CPU local Ray cluster in a separate driver process: seed 1's worker is killed on
    every attempt, so it is retried once (retries: 1) and recorded as failed while the others
    finish; re-running the sweep finishes it and reads the finished runs back. Every run's
    metrics.csv is byte-identical to the local backend's."""
    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(SPEC)
    (tmp_path / "driver.py").write_text(DRIVER)
    out = tmp_path / "ray"
    res = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), str(spec_file), str(out),
         str(tmp_path / "rows.json")],
        capture_output=True, text=True, env=subprocess_env(RAY_ADDRESS=""), timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    doc = json.loads((tmp_path / "rows.json").read_text())
    assert doc["cpus"] == 3
    first = {r["seed"]: r for r in doc["first"]}
    assert first[0]["status"] == first[2]["status"] == "ok"
    assert first[0]["attempts"] == 1 and first[0]["final.step"] == 160
    assert first[1]["status"] == "failed" and first[1]["attempts"] == 2  # retried once
    assert "WorkerCrashedError" in first[1]["error"]
    table = pd.read_csv(io.StringIO(doc["table"]))  # results.csv after the first sweep
    assert sorted(table["status"]) == ["failed", "ok", "ok"]
    second = {r["seed"]: r for r in doc["second"]}
    assert all(r["status"] == "ok" and r["final.step"] == 160 for r in second.values())
    for s in (0, 2):  # finished runs are read back unchanged
        assert {k: v for k, v in second[s].items() if k.startswith("final.")} == {
            k: v for k, v in first[s].items() if k.startswith("final.")
        }
    # the local backend's worker runs execute_job on the same job: the same files, same bytes
    spec = load_spec(spec_file, out=tmp_path / "local", backend="ray")
    for job in spec.jobs[:2]:
        final = execute_job(job.to_json() | {"threads": 1}, str(spec.out))
        ray_dir = out / "demo" / "runs" / job.job_id
        loc_dir = spec.out / "runs" / job.job_id
        assert sorted(_files(ray_dir)) == sorted(_files(loc_dir))
        assert (ray_dir / "metrics.csv").read_bytes() == (loc_dir / "metrics.csv").read_bytes()
        assert json.loads((ray_dir / "final.json").read_text()) == final


def test_a_ray_job_runs_node_locally_and_ships_its_files_back(tmp_path: Path) -> None:
    """The task body, without Ray: nothing is written at the driver's path by the worker; the
    returned files, written back, are the run; a resume ships in the run so far and returns
    only what changed."""
    spec = parse_spec(
        {"algos": ["spo_bandit"], "envs": ["dueling"], "steps": 128, "checkpoint_every": 64}
    )
    job = spec.jobs[0].to_json() | {"threads": 1}
    driver = tmp_path / "nowhere" / "sweep"
    res = _ray_job(job, str(driver), [], None)
    assert not (tmp_path / "nowhere").exists()  # the worker wrote only node-local files
    names = sorted(rel for root, rel, _ in res["files"])
    run = f"runs/{job['job_id']}"
    want = [f"{run}/{n}" for n in ("checkpoint.pt", "config.json", "final.json", "metrics.csv")]
    assert names == want and res["deleted"] == []
    sweep = tmp_path / "sweep"
    _write_back(spec.jobs[0], sweep, res)
    assert json.loads((sweep / run / "final.json").read_text()) == res["final"]
    assert res["final"]["step"] == 128
    # resume of a finished run: the same final metrics, no file changes
    from prl.sweep import _job_roots, _read_parts

    inputs = _read_parts(job, _job_roots(spec.jobs[0], sweep))
    again = _ray_job(job, str(driver), inputs, None)
    assert again["final"] == res["final"] and again["files"] == [] and again["deleted"] == []


def test_a_figure_piece_job_returns_its_csv_at_the_drivers_path(tmp_path: Path) -> None:
    """A figure job (prl reproduce --backend ray): the plan and the piece's CSV come back with
    paths on the driver's side, and the CSV's bytes match its recorded SHA-256."""
    import prl.store as store
    from prl.registry import FIGURES, load_plugins

    load_plugins()
    tiny = {"tasks": ["slippery lake 4x4"], "lake_steps": 256,
            "ppo": {"n_steps": 128, "batch_size": 64, "n_epochs": 2}}  # fmt: skip
    budget = {**FIGURES.get("pdppo_vs_ppo").tier("quick")[1], **tiny}
    out = tmp_path / "out"
    ctx = store._context("pdppo_vs_ppo", "quick", [0], budget, "cpu", str(out))
    sweep = ctx.cache_dir / "sweep"
    plan_job = store._job(ctx, store.PLAN_KEY, None)
    res = _ray_job(plan_job.to_json(), str(sweep), [], None)
    assert not out.exists()
    _write_back(plan_job, sweep, res)
    plan = json.loads(Path(res["final"]["plan"]).read_text())  # the driver's path
    assert Path(res["final"]["plan"]).parent == sweep / "runs" / plan_job.job_id
    key, seed = plan[0]["key"], plan[0]["seed"]
    piece = store._job(ctx, key, seed)
    res = _ray_job(piece.to_json(), str(sweep), [], None)
    csv = Path(res["final"]["csv"])
    assert csv == ctx.cache_dir / f"{key}.csv" and not csv.exists()
    _write_back(piece, sweep, res)
    assert hashlib.sha256(csv.read_bytes()).hexdigest() == res["final"]["sha256"]


def test_task_resources_come_from_the_job() -> None:
    spec = parse_spec({"algos": ["spo_bandit"], "envs": ["dueling"], "threads": 3})
    job = spec.jobs[0]
    import dataclasses

    cpu = ray_task_options(dataclasses.replace(job, threads=3))
    assert cpu["num_cpus"] == 3 and cpu["num_gpus"] == 0 and cpu["max_retries"] == 0
    gpu = ray_task_options(dataclasses.replace(job, threads=1, device="cuda"))
    assert gpu["num_cpus"] == 1 and gpu["num_gpus"] == 1


class _FakeRay:
    def __init__(self, *nodes: dict) -> None:
        self._nodes = [{"Alive": True, "Resources": r} for r in nodes]

    def nodes(self) -> list[dict]:
        return self._nodes


def test_cluster_check_refuses_what_no_node_can_run() -> None:
    import dataclasses

    job = parse_spec({"algos": ["spo_bandit"], "envs": ["dueling"]}).jobs[0]
    two = _FakeRay({"CPU": 2.0}, {"CPU": 2.0})
    _check_cluster(two, [dataclasses.replace(job, threads=2)])
    with pytest.raises(ConfigError, match="largest node"):
        _check_cluster(two, [dataclasses.replace(job, threads=3)])  # 4 CPUs, but 2 per node
    cuda = dataclasses.replace(job, threads=1, device="cuda")
    with pytest.raises(ConfigError, match="no GPU"):
        _check_cluster(two, [cuda])
    _check_cluster(_FakeRay({"CPU": 2.0}, {"CPU": 8.0, "GPU": 1.0}), [cuda])


def test_ray_specs_may_ask_for_cuda_without_a_local_gpu() -> None:
    """A CPU-only head node: ``device: cuda`` is checked against the cluster, not here."""
    raw = {"algos": ["spo_bandit"], "envs": ["dueling"], "device": "cuda"}
    assert parse_spec(raw, backend="ray").jobs[0].device == "cuda"


def test_sweep_specs_take_gymnasium_ids_for_the_sb3_learners(tmp_path: Path) -> None:
    spec = parse_spec({"algos": ["mdpo_on"], "envs": ["CartPole-v1"], "steps": 64})
    assert spec.jobs[0].env == "CartPole-v1"
    with pytest.raises(ConfigError, match="only the SB3-based learners"):
        parse_spec({"algos": ["mdpo_on", "nash_md"], "envs": ["CartPole-v1"]})
    with pytest.raises(UnknownNameError, match="unknown environment"):
        parse_spec({"algos": ["mdpo_on"], "envs": ["NoSuchEnv-v9"]})
