"""Issue 18: a run SIGKILLed at every phase — before the first checkpoint, mid-run, while a
checkpoint is being written, after the last checkpoint, during the final evaluation, while
final.json is being written, after a wall-clock checkpoint — and then resumed ends with
metrics.csv and final.json byte-identical to an uninterrupted run (issue 22: wall-clock
checkpoints lose at most their interval).

The killed run is a subprocess ``prl run`` (fault injection through ``PRL_KILL_AT_STEP``,
``PRL_KILL_WRITE`` and ``PRL_KILL_IN``); the resume runs the CLI in-process, as in
tests/test_matrix.py. CPL on a small random MDP is used: it resumes exactly (prl.smoke), and its
final evaluation rolls out the policy, so "killed during the final evaluation" means something.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from prl.cli import main
from prl.run import CHECKPOINT, load_checkpoint
from prl.smoke import SMOKE

N, EVERY = 30, 10  # checkpoints at 10, 20, 30
ARGS = [*SMOKE["cpl"].cli_args(), "--steps", str(N), "--checkpoint-every", str(EVERY)]
ARGS += ["--seed", "3", "--threads", "1", "--device", "cpu", "--no-progress"]

# phase → (environment of the killed run, extra arguments, checkpointed step expected at the kill)
PHASES: dict[str, tuple[dict[str, str], list[str], int | None]] = {
    "during_first_metrics_write": ({"PRL_KILL_WRITE": "metrics.csv"}, [], None),
    "before_first_checkpoint": ({"PRL_KILL_AT_STEP": "5"}, [], None),
    "mid_run": ({"PRL_KILL_AT_STEP": "15"}, [], 10),
    "during_checkpoint_write": (
        {"PRL_KILL_WRITE": CHECKPOINT, "PRL_KILL_WRITE_AFTER": "1"},  # the second: step 20
        [],
        10,
    ),
    "after_last_checkpoint": ({"PRL_KILL_AT_STEP": str(N)}, [], N),
    "during_final_evaluation": ({"PRL_KILL_IN": "evaluate"}, [], N),
    "during_final_json_write": ({"PRL_KILL_WRITE": "final.json"}, [], N),
    # a wall-clock checkpoint after every step (tiny interval): nothing is lost at the kill
    "after_wall_clock_checkpoint": (
        {"PRL_KILL_AT_STEP": "17"},
        ["--checkpoint-minutes", "1e-9"],
        17,
    ),
}


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("straight")
    assert main(["run", *ARGS, "--out", str(out)]) == 0
    (rdir,) = list(out.iterdir())
    return rdir


def _only_run(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.mark.parametrize("phase", list(PHASES))
def test_kill_at_every_phase_then_resume_is_byte_identical(
    phase: str, tmp_path: Path, prl_cli: Any, straight: Path
) -> None:
    env, extra, ckpt_step = PHASES[phase]
    out = tmp_path / "k"
    killed = prl_cli("run", *ARGS, *extra, "--out", str(out), **env)
    assert killed.returncode == -9, f"{phase}: not SIGKILLed ({killed.returncode}) {killed.stderr}"
    rdir = _only_run(out)
    assert (rdir / "config.json").exists() and not (rdir / "final.json").exists()
    if ckpt_step is None:
        assert not (rdir / CHECKPOINT).exists()
    else:
        assert load_checkpoint(rdir / CHECKPOINT)["learner"]["steps_done"] == ckpt_step
    if "PRL_KILL_WRITE" in env:  # killed between writing the temporary and the rename
        assert list(rdir.glob(f".{env['PRL_KILL_WRITE']}.*.tmp")), phase

    assert main(["run", "cpl", "--resume", str(rdir), "--no-progress"]) == 0
    assert _only_run(out) == rdir
    assert (rdir / "metrics.csv").read_bytes() == (straight / "metrics.csv").read_bytes(), phase
    assert (rdir / "final.json").read_bytes() == (straight / "final.json").read_bytes(), phase
    assert not list(rdir.glob(".*.tmp")), "stale temporaries left behind"
    final = json.loads((rdir / "final.json").read_text())
    assert final["step"] == N and "normalized_return" in final


def test_kill_after_finishing_then_resume_changes_nothing(tmp_path: Path, straight: Path) -> None:
    out = tmp_path / "done"
    assert main(["run", *ARGS, "--out", str(out)]) == 0
    rdir = _only_run(out)
    before = {p.name: p.read_bytes() for p in rdir.iterdir() if p.is_file()}
    assert main(["run", "cpl", "--resume", str(rdir), "--no-progress"]) == 0
    after = {p.name: p.read_bytes() for p in rdir.iterdir() if p.is_file()}
    before.pop(".lock"), after.pop(".lock")
    assert after == before
    assert before["final.json"] == (straight / "final.json").read_bytes()


def test_wall_clock_checkpoints_lose_at_most_their_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a fake clock that advances 7 s per training step and a 30 s interval (and no
    step-based checkpoint before the end), a checkpoint is written as soon as 30 s have passed
    since the last one: whenever a kill strikes, at most the interval (plus the step in
    progress) of work is lost."""
    import prl.run
    from prl.registry import ALGOS, load_plugins

    load_plugins()
    clock = [0.0]
    cls = ALGOS.get("spo_bandit")
    step = cls.step

    def slow_step(self: Any) -> dict[str, float]:
        clock[0] += 7.0
        return step(self)

    saved: list[tuple[float, int]] = []
    save = prl.run.save_checkpoint

    def record(path: Path, payload: dict[str, Any]) -> None:
        saved.append((clock[0], int(payload["learner"]["steps_done"])))
        save(path, payload)

    monkeypatch.setattr(prl.run, "_now", lambda: clock[0])
    monkeypatch.setattr(cls, "step", slow_step)
    monkeypatch.setattr(prl.run, "save_checkpoint", record)
    interval_s, steps = 30.0, 16 * 40  # 40 steps of 16 queries, 280 fake seconds
    res = prl.run.run_experiment(
        "spo_bandit",
        "dueling",
        env_kwargs={"game": "dice"},
        steps=steps,
        checkpoint_every=steps,  # the step schedule alone would checkpoint only at the end
        checkpoint_minutes=interval_s / 60,
        out=tmp_path,
        progress=False,
        threads=1,
    )
    assert json.loads((res.run_dir / "config.json").read_text())["checkpoint_minutes"] == 0.5
    times = [0.0] + [t for t, _ in saved]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(saved) == 8 and saved[-1][1] == steps
    assert max(gaps) <= interval_s + 7.0, gaps
    # checkpoints every 5 steps (35 s ≥ 30 s): a kill loses at most 4 steps of rows
    assert [s for _, s in saved[:3]] == [80, 160, 240]
