"""``prl run --tensorboard DIR`` and the sweep spec's ``tensorboard: true`` (issue 20, item 4):
SB3's own logger (CSV + TensorBoard) reaches the inner SB3 model of an SB3-based learner, every
learner's metrics rows become ``prl/*`` scalars, and the numbers do not change."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import pytest

from prl.errors import ConfigError


def _scalars(log_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar in every event file under ``log_dir``: tag -> [(step, value)]."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util.tensor_util import make_ndarray

    out: dict[str, list[tuple[int, float]]] = {}
    for f in sorted(log_dir.glob("events.out.tfevents.*")):
        for ev in EventFileLoader(str(f)).Load():  # scalars come as rank-0 tensors
            for v in ev.summary.value:
                if v.metadata.plugin_data.plugin_name == "scalars":
                    out.setdefault(v.tag, []).append((ev.step, float(make_ndarray(v.tensor))))
    return out


def _run(prl_cli, tmp_path: Path, *args: str) -> tuple[Path, Path]:
    res = prl_cli(
        "run", *args, "--threads", "1", "--out", str(tmp_path / "runs"),
        "--tensorboard", str(tmp_path / "tb"),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    return run_dir, tmp_path / "tb" / run_dir.name


@pytest.mark.long
def test_sb3_learner_logs_through_sb3s_logger(tmp_path: Path, prl_cli, golden) -> None:
    """mdpo_on (an SB3 PPO subclass): SB3's train/, rollout/ and time/ scalars and its
    progress.csv appear under DIR/RUN_NAME, beside the lab's prl/* rows; metrics.csv is the
    golden file byte for byte (logging changes no number)."""
    run_dir, log_dir = _run(prl_cli, tmp_path, "mdpo_on", "--env", "Hopper-v5", "--steps", "512")
    golden(run_dir / "metrics.csv", "mdpo")
    tags = _scalars(log_dir)
    for tag in ("train/loss_value", "train/approx_kl", "train/learning_rate",
                "rollout/ep_rew_mean", "time/fps", "prl/return", "prl/loss_value"):  # fmt: skip
        assert tag in tags, sorted(tags)
    with (log_dir / "progress.csv").open() as f:
        progress = list(csv.DictReader(f))
    assert {"train/loss_value", "rollout/ep_rew_mean", "time/total_timesteps"} <= set(progress[0])
    (row,) = list(csv.DictReader((run_dir / "metrics.csv").open()))
    # SB3's value loss of the update is the one in the lab's row (float32 in the event file)
    ((step, value),) = tags["train/loss_value"]
    assert step == int(row["step"]) == 2048
    assert value == pytest.approx(float(row["loss_value"]), rel=1e-6)


def test_non_sb3_learner_gets_its_metrics_rows(tmp_path: Path, prl_cli, golden) -> None:
    """nash_md has no SB3 model: its metrics rows are the prl/* scalars, step for step and
    value for value (no SB3 progress.csv); metrics.csv is the golden file."""
    run_dir, log_dir = _run(prl_cli, tmp_path, "nash_md", "--env", "dueling", "--steps", "50")
    golden(run_dir / "metrics.csv", "nash")
    rows = list(csv.DictReader((run_dir / "metrics.csv").open()))
    tags = _scalars(log_dir)
    assert not (log_dir / "progress.csv").exists()
    metrics = [k for k in rows[0] if k != "step" and rows[0][k] not in ("", "True", "False")]
    assert metrics and sorted(tags) == sorted(f"prl/{k}" for k in metrics)
    for k in metrics:
        got = tags[f"prl/{k}"]
        assert [s for s, _ in got] == [int(r["step"]) for r in rows]
        assert [v for _, v in got] == pytest.approx([float(r[k]) for r in rows], rel=1e-6)


def test_tensorboard_without_the_extra_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prl.run import run_experiment

    monkeypatch.setitem(sys.modules, "tensorboard", None)  # as if not installed
    with pytest.raises(ConfigError, match=r"prl-lab\[tensorboard\]"):
        run_experiment("nash_md", "dueling", steps=5, out=tmp_path / "runs",
                       tensorboard=tmp_path / "tb")  # fmt: skip
    assert not (tmp_path / "runs").exists() and not (tmp_path / "tb").exists()


def test_sweep_spec_tensorboard_field(tmp_path: Path) -> None:
    """``tensorboard: true``: each job's events under SWEEP/tb/JOB_ID (one --logdir for all)."""
    from prl.sweep import load_spec, run_sweep

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text(
        "algos: [nash_md]\nenvs: [dueling]\nseeds: [0]\nsteps: 20\ntensorboard: true\n"
    )
    spec = load_spec(spec_file, out=tmp_path / "out")
    (row,) = run_sweep(spec, workers=1, echo=None)
    assert row["status"] == "ok", row["error"]
    tags = _scalars(spec.out / "tb" / row["job_id"])
    rows = list(csv.DictReader((Path(row["run_dir"]) / "metrics.csv").open()))
    assert len(rows) == 20 and sorted(tags) == sorted(f"prl/{k}" for k in rows[0] if k != "step")
    assert all(len(v) == 20 for v in tags.values())
    spec_file.write_text("algos: [nash_md]\nenvs: [dueling]\ntensorboard: yes please\n")
    with pytest.raises(ConfigError, match="tensorboard"):
        load_spec(spec_file, out=tmp_path / "bad")
