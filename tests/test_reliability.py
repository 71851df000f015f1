"""Issue 18 (reliability), items 1, 5, 6 and 7: each through a subprocess ``prl`` (exit status,
the single stderr line, nothing half-written), with in-process variants where a fresh
interpreter would add nothing but start-up time.

Kills at every phase of a run are in test_reliability_kill.py, sweeps and threads in
test_reliability_sweep.py, clean ``--json`` output in test_reliability_json.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import subprocess_env

from prl.cli import main
from prl.errors import ConfigError, InvalidInputError

NASH = ["nash_md", "--env", "dueling", "--env-kw", "game=random", "--env-kw", "K=5"]
BANDIT = ["spo_bandit", "--env", "dueling", "--env-kw", "game=dice"]
QUIET = ["--no-progress", "--device", "cpu"]


def one_line(proc: subprocess.CompletedProcess[str] | tuple[int, str], status: int = 2) -> str:
    """The single stderr line of a finished command that exited with ``status``."""
    code, err = (proc.returncode, proc.stderr) if not isinstance(proc, tuple) else proc
    assert code == status, err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    return lines[0]


def in_process(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str]:
    code = main(argv)
    return code, capsys.readouterr().err


def tree(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes (the lock file's pid text aside)."""
    if not root.exists():
        return {}
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


def only_dir(out: Path) -> Path:
    dirs = [p for p in out.iterdir() if p.is_dir()]
    assert len(dirs) == 1, dirs
    return dirs[0]


# ---- item 1: no silent data loss when resuming a finished or nearly finished run ----------------
def test_item1_kill_after_last_checkpoint_then_resume_keeps_final_metrics(
    tmp_path: Path, prl_cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The issue's reproduction: killed after the last checkpoint (before final.json)."""
    out = tmp_path / "r"
    killed = prl_cli(
        "run", *NASH, "--steps", "20", "--out", str(out), *QUIET, PRL_KILL_AT_STEP="20"
    )
    assert killed.returncode == -9, killed.stderr
    rdir = only_dir(out)
    assert (rdir / "checkpoint.pt").exists() and not (rdir / "final.json").exists()

    resumed = prl_cli("run", "nash_md", "--env", "dueling", "--out", str(out), "--resume", *QUIET)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.strip() == ""

    ref = tmp_path / "ref"
    assert main(["run", *NASH, "--steps", "20", "--out", str(ref), *QUIET]) == 0
    want = only_dir(ref)
    final = json.loads((rdir / "final.json").read_text())
    assert {"step", "exploitability", "kl_to_equilibrium"} <= set(final)  # not {} any more
    assert (rdir / "final.json").read_bytes() == (want / "final.json").read_bytes()
    assert (rdir / "metrics.csv").read_bytes() == (want / "metrics.csv").read_bytes()

    # a finished run resumed: a no-op that says so, nothing rewritten
    before = tree(rdir)
    capsys.readouterr()
    assert main(["run", "nash_md", "--env", "dueling", "--out", str(out), "--resume"]) == 0
    assert "already finished at step 20: nothing to do" in capsys.readouterr().out
    assert tree(rdir) == before
    # a budget below what is done: refused with one line, nothing touched
    line = one_line(
        in_process(
            capsys,
            ["run", "nash_md", "--env", "dueling", "--out", str(out), "--resume", "--steps", "10"],
        )
    )
    assert "already trained 20 iterations; --steps 10 is below that" in line
    assert tree(rdir) == before


def test_item1_resume_with_a_larger_budget_continues_and_records_it(tmp_path: Path) -> None:
    out = tmp_path / "r"
    assert main(["run", *BANDIT, "--steps", "160", "--out", str(out), *QUIET]) == 0
    rdir = only_dir(out)
    assert main(["run", *BANDIT, "--steps", "320", "--out", str(out), "--resume", *QUIET]) == 0
    assert json.loads((rdir / "config.json").read_text())["steps"] == 320
    assert json.loads((rdir / "final.json").read_text())["step"] == 320
    rows = (rdir / "metrics.csv").read_text().splitlines()
    assert [int(r.split(",")[0]) for r in rows[1:]] == list(range(16, 321, 16))


def test_item1_old_checkpoint_without_last_row_rebuilds_final_from_metrics(
    tmp_path: Path,
) -> None:
    """Checkpoints written before the last row was stored: final.json from metrics.csv."""
    from prl.run import load_checkpoint, save_checkpoint

    out = tmp_path / "r"
    assert main(["run", *NASH, "--steps", "20", "--out", str(out), *QUIET]) == 0
    rdir = only_dir(out)
    want = (rdir / "final.json").read_bytes()
    state = load_checkpoint(rdir / "checkpoint.pt")
    del state["last_row"]
    save_checkpoint(rdir / "checkpoint.pt", state)
    (rdir / "final.json").unlink()  # as if killed during the final evaluation
    assert main(["run", "nash_md", "--env", "dueling", "--out", str(out), "--resume"]) == 0
    assert json.loads((rdir / "final.json").read_bytes()) == json.loads(want)


# ---- item 5: file-system and odd-input errors: one line, status 2, on every verb ---------------
def test_item5_subprocess_out_is_a_file(tmp_path: Path, prl_cli: Any) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory\n")
    before = tree(tmp_path)
    line = one_line(prl_cli("run", *BANDIT, "--steps", "32", "--out", str(blocker), *QUIET))
    assert f"--out {blocker} exists and is not a directory" in line
    line = one_line(prl_cli("check", "ipo_vs_dpo", "--quick", "--out", str(blocker / "sub")))
    assert f"cannot be created: {blocker} is not a directory" in line
    assert tree(tmp_path) == before  # nothing written anywhere


@pytest.mark.parametrize(
    ("verb", "needle"),
    [
        (["run", *BANDIT, "--steps", "32", *QUIET], "exists and is not a directory"),
        (["check", "ipo_vs_dpo", "--quick"], "exists and is not a directory"),
        (["figure", "nash_vs_bt_sweep", "--quick"], "exists and is not a directory"),
        (["reproduce", "--quick", "--only", "ipo_vs_dpo"], "exists and is not a directory"),
    ],
)
def test_item5_every_verb_refuses_an_out_that_is_a_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], verb: list[str], needle: str
) -> None:
    from prl.registry import FIGURES, load_plugins

    load_plugins()
    if verb[0] == "figure":
        verb = ["figure", FIGURES.names()[0], "--quick"]
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    line = one_line(in_process(capsys, [*verb, "--out", str(blocker)]))
    assert needle in line
    assert tree(tmp_path) == {"blocker": b"x"}


def test_item5_sweep_out_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = tmp_path / "s.yaml"
    spec.write_text("algos: [spo_bandit]\nenvs: [dueling]\nsteps: 16\n")
    (tmp_path / "f").write_text("x")
    line = one_line(in_process(capsys, ["sweep", str(spec), "--out", str(tmp_path / "f" / "o")]))
    assert "is not a directory" in line


def test_item5_read_only_or_forbidden_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A read-only mount and a directory without write permission (simulated: the tests run
    as root, for whom every directory is writable)."""
    import prl.utils

    target = tmp_path / "ro"
    target.mkdir()
    monkeypatch.setattr(prl.utils, "_read_only_fs", lambda p: Path(p) == target)
    line = one_line(in_process(capsys, ["run", *BANDIT, "--steps", "32", "--out", str(target)]))
    assert f"--out {target} is on a read-only file system" in line
    line = one_line(in_process(capsys, ["check", "ipo_vs_dpo", "--out", str(target / "new")]))
    assert "read-only file system" in line
    monkeypatch.setattr(prl.utils, "_read_only_fs", lambda p: False)
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, m: False if Path(p) == target else real_access(p, m)
    )
    line = one_line(in_process(capsys, ["run", *BANDIT, "--steps", "32", "--out", str(target)]))
    assert "is not writable (permission denied or read-only)" in line
    line = one_line(in_process(capsys, ["reproduce", "--quick", "--out", str(target / "x")]))
    assert f"cannot be created: {target} is not writable" in line
    assert list(target.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_item5_real_permission_denied(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "locked"
    target.mkdir(mode=0o500)
    line = one_line(in_process(capsys, ["run", *BANDIT, "--steps", "32", "--out", str(target)]))
    assert "not writable" in line


def test_item5_an_os_error_during_the_work_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write failing mid-run (disk full): one line, status 2, no half-written run directory."""
    import errno

    import prl.run

    def full(*a: Any, **k: Any) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", "metrics.csv")

    monkeypatch.setattr(prl.run.MetricsWriter, "append", full)
    line = one_line(in_process(capsys, ["run", *BANDIT, "--steps", "32", "--out", str(tmp_path)]))
    assert line == "prl: error: No space left on device: metrics.csv"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kind", ["directory", "binary", "latin1"])
def test_item5_config_and_spec_that_are_not_text(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = tmp_path / "cfg.yaml"
    if kind == "directory":
        path.mkdir()
        needle = "is a directory, not a file"
    elif kind == "binary":
        path.write_bytes(b"\x7fELF\x02\x01\x00\x00" + bytes(range(256)))
        needle = "is a binary file"
    else:
        path.write_bytes("lr: 0.5  # é".encode("latin-1"))
        needle = "is not UTF-8 text"
    out = tmp_path / "out"
    line = one_line(in_process(capsys, ["run", *BANDIT, "--config", str(path), "--out", str(out)]))
    assert f"config file {path} {needle}" in line
    line = one_line(in_process(capsys, ["sweep", str(path), "--out", str(out)]))
    assert f"sweep spec {path} {needle}" in line
    assert not out.exists()


def _finished_bandit_run(root: Path) -> Path:
    assert (
        main(
            [
                "run",
                *BANDIT,
                "--steps",
                "64",
                "--checkpoint-every",
                "32",
                "--out",
                str(root),
                *QUIET,
            ]
        )
        == 0
    )
    rdir = only_dir(root)
    (rdir / "final.json").unlink()  # so that --resume --steps 96 must load the checkpoint
    return rdir


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"weights": torch.zeros(3)}, "has the wrong structure"),
        ([1, 2, 3], "has the wrong structure"),
        ({"learner": {"steps_done": 3}, "metrics_rows": 1}, "does not fit SPOBandit"),
        ({"learner": {"bogus": torch.ones(2)}, "metrics_rows": "x"}, "has the wrong structure"),
    ],
)
def test_item5_checkpoint_of_the_wrong_structure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], payload: Any, needle: str
) -> None:
    rdir = _finished_bandit_run(tmp_path / "r")
    torch.save(payload, rdir / "checkpoint.pt")
    before = tree(rdir)
    line = one_line(
        in_process(capsys, ["run", "spo_bandit", "--resume", str(rdir), "--steps", "96"])
    )
    assert f"checkpoint {rdir / 'checkpoint.pt'} {needle}" in line
    assert tree(rdir) == before


@pytest.mark.parametrize(
    "text",
    ["{not json", "[1, 2]", '{"algo": "spo_bandit"}', "\x00\x01", '{"algo": 3, "env": "dueling"}'],
)
def test_item5_corrupt_config_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    rdir = _finished_bandit_run(tmp_path / "r")
    (rdir / "config.json").write_text(text)
    before = tree(rdir)
    line = one_line(in_process(capsys, ["run", "spo_bandit", "--resume", str(rdir)]))
    assert f"corrupt {rdir / 'config.json'}" in line
    assert tree(rdir) == before


@pytest.mark.parametrize("damage", ["binary", "truncated"])
def test_item5_corrupt_metrics_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    rdir = _finished_bandit_run(tmp_path / "r")
    path = rdir / "metrics.csv"
    if damage == "binary":
        path.write_bytes(b"\xff\xfe\x00garbage")
        needle = f"corrupt {path}"
    else:
        path.write_text(path.read_text().splitlines()[0] + "\n")
        needle = f"{path} has 0 rows but the checkpoint was taken after 4"
    before = tree(rdir)
    line = one_line(
        in_process(capsys, ["run", "spo_bandit", "--resume", str(rdir), "--steps", "96"])
    )
    assert needle in line
    assert tree(rdir) == before


@pytest.mark.parametrize("seed", [str(2**64), str(2**64 + 5), str(2**32), "-1", "1e3", "x"])
def test_item5_seed_out_of_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], seed: str
) -> None:
    line = one_line(in_process(capsys, ["run", *BANDIT, "--seed", seed, "--out", str(tmp_path)]))
    assert "expected an integer seed in [0, 4294967295]" in line
    line = one_line(in_process(capsys, ["check", "ipo_vs_dpo", "--seed", seed]))
    assert "seed" in line
    assert list(tmp_path.iterdir()) == []


def test_item5_seed_out_of_range_in_the_library(tmp_path: Path) -> None:
    from prl.run import run_experiment
    from prl.sweep import parse_spec

    with pytest.raises(ConfigError, match="seed must be an integer"):
        run_experiment("spo_bandit", "dueling", seed=2**64, out=tmp_path, progress=False)
    with pytest.raises(ConfigError, match="seeds"):
        parse_spec({"algos": ["spo_bandit"], "envs": ["dueling"], "seeds": [2**64]})
    assert list(tmp_path.iterdir()) == []


def test_item5_subprocess_wrongly_typed_env_kw_for_gymnasium_and_mujoco(
    tmp_path: Path, prl_cli: Any
) -> None:
    """Both used to fail at the first step with a TypeError traceback."""
    line = one_line(
        prl_cli(
            "run",
            "spo",
            "--env",
            "PendulumFactored-v1",
            "--env-kw",
            "g=abc",
            "--steps",
            "100",
            "--out",
            str(tmp_path),
            *QUIET,
        )
    )
    assert line.startswith("prl: error: environment 'PendulumFactored-v1' fails with --env-kw")
    assert "TypeError" in line
    line = one_line(
        prl_cli(
            "run",
            "mdpo_on",
            "--env",
            "Hopper-v5",
            "--env-kw",
            "ctrl_cost_weight=abc",
            "--steps",
            "300",
            "--out",
            str(tmp_path),
            *QUIET,
        )
    )
    assert "environment 'Hopper-v5' fails with --env-kw ctrl_cost_weight='abc'" in line
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_item5_subprocess_reproduce_cuda_without_gpu(tmp_path: Path, prl_cli: Any) -> None:
    out = tmp_path / "res"
    line = one_line(prl_cli("reproduce", "--quick", "--device", "cuda", "--out", str(out)))
    assert "--device cuda was requested but no CUDA GPU is available" in line
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a GPU")
def test_item5_figure_and_sweep_cuda_without_gpu(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from prl.registry import FIGURES, load_plugins

    load_plugins()
    out = tmp_path / "o"
    fig = FIGURES.names()[0]
    line = one_line(in_process(capsys, ["figure", fig, "--device", "cuda", "--out", str(out)]))
    assert "no CUDA GPU" in line
    spec = tmp_path / "s.yaml"
    spec.write_text("algos: [spo_bandit]\nenvs: [dueling]\ndevice: cuda\n")
    line = one_line(in_process(capsys, ["sweep", str(spec), "--out", str(out)]))
    assert "no CUDA GPU" in line
    assert not out.exists()


# ---- item 6: --resume DIR with another algorithm, environment or config is refused -----------
def test_item6_subprocess_resume_with_other_settings_is_refused(
    tmp_path: Path, prl_cli: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    rdir = _finished_bandit_run(tmp_path / "r")
    before = tree(rdir)
    line = one_line(prl_cli("run", "nash_md", "--env", "dueling", "--resume", str(rdir)))
    assert f"cannot resume {rdir} as nash_md: it is a run of spo_bandit on dueling" in line
    cases = [
        (["--env", "chain"], "env 'chain' (the run has 'dueling')"),
        (["--lr", "0.9"], "--lr 0.9 (the run has 0.5)"),
        (["--env-kw", "game=rps"], "--env-kw game='rps' (the run has 'dice')"),
        (["--seed", "3"], "seed 3 (the run has 0)"),
        (["--threads", "7"], "threads 7 (the run has"),
    ]
    for extra, needle in cases:
        line = one_line(in_process(capsys, ["run", "spo_bandit", "--resume", str(rdir), *extra]))
        assert f"cannot resume {rdir} with a different setting: {needle}" in line, line
    assert tree(rdir) == before
    # the same settings spelled out again are fine
    same = ["--env", "dueling", "--env-kw", "game=dice", "--seed", "0", "--lr", "0.5"]
    assert main(["run", "spo_bandit", "--resume", str(rdir), *same, *QUIET]) == 0


# ---- item 7: small items ------------------------------------------------------------------------
def test_item7_subprocess_run_help(prl_cli: Any) -> None:
    proc = prl_cli("run", "--help")
    assert proc.returncode == 0 and proc.stderr.strip() == ""
    assert proc.stdout.startswith("usage: prl run")
    for flag in ("--env", "--resume", "--threads", "--checkpoint-minutes", "--env-kw"):
        assert flag in proc.stdout


def test_item7_outputs_follow_the_umask(tmp_path: Path) -> None:
    """Atomic writes used to create every file with mkstemp's mode 0600."""
    modes = {}
    for umask in (0o022, 0o077, 0o002):
        out = tmp_path / f"u{umask:o}"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "prl.cli",
                "run",
                *NASH,
                "--steps",
                "4",
                "--out",
                str(out),
                *QUIET,
            ],
            check=True,
            capture_output=True,
            env=subprocess_env(),
            preexec_fn=lambda m=umask: os.umask(m),
        )
        rdir = only_dir(out)
        got = {p.name: p.stat().st_mode & 0o777 for p in rdir.iterdir() if p.is_file()}
        assert {"config.json", "metrics.csv", "checkpoint.pt", "final.json"} <= set(got)
        assert set(got.values()) == {0o666 & ~umask}, (umask, got)
        modes[umask] = got
    assert modes[0o022]["final.json"] == 0o644


def test_item7_atomic_write_mode_in_process(tmp_path: Path) -> None:
    from prl.utils import atomic_write_text

    old = os.umask(0o027)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o640


def test_item7_stale_checkpoint_temporaries_are_removed_on_resume(tmp_path: Path) -> None:
    rdir = _finished_bandit_run(tmp_path / "r")
    stale = [rdir / ".checkpoint.pt.k2j4_x.tmp", rdir / ".metrics.csv.abc.tmp"]
    for p in stale:
        p.write_bytes(b"half a checkpoint")
    assert main(["run", "spo_bandit", "--resume", str(rdir), "--steps", "96", *QUIET]) == 0
    assert not any(p.exists() for p in stale)
    assert not list(rdir.glob(".*.tmp"))


def test_item7_bradley_terry_on_equal_huge_returns() -> None:
    from prl.oracles import BradleyTerry
    from prl.types import Segments

    z = np.zeros((2, 3), dtype=int)
    big = Segments(z, z, np.full((2, 3), 1e308))  # each return overflows to +inf
    neg = Segments(z, z, np.full((2, 3), -1e308))
    for oracle in (BradleyTerry(), BradleyTerry(beta=3.0, discount=0.9), BradleyTerry(np.inf)):
        np.testing.assert_array_equal(oracle.prob(big, big), [0.5, 0.5])
        np.testing.assert_array_equal(oracle.prob(big, neg), [1.0, 1.0])
        np.testing.assert_array_equal(oracle.prob(neg, big), [0.0, 0.0])
        assert np.isfinite(oracle.log_prob(big, big)).all()
    # ordinary returns: the margin is still the plain return difference
    r = np.array([[1.0, 2.0, 3.0]])
    a, b = Segments(z[:1], z[:1], r), Segments(z[:1], z[:1], 2 * r)
    np.testing.assert_allclose(BradleyTerry().margin(a, b), [-6.0])


def test_item7_kl_rejects_nan_and_complex_matrices_are_rejected() -> None:
    from prl import games

    with pytest.raises(InvalidInputError, match="kl: p contains NaN"):
        games.kl(np.array([0.5, np.nan]), np.array([0.5, 0.5]))
    with pytest.raises(InvalidInputError, match="kl: q contains NaN"):
        games.kl(np.array([0.5, 0.5]), np.array([np.nan, 0.5]))
    with pytest.raises(InvalidInputError, match="q contains NaN"):
        games.kl(torch.tensor([0.5, 0.5]), torch.tensor([0.5, float("nan")]))
    assert float(games.kl(np.array([0.5, 0.5]), np.array([0.25, 0.75]))) == pytest.approx(
        0.5 * np.log(2) + 0.5 * np.log(2 / 3)
    )
    complex_p = np.array([[0.5, 0.5 + 0.1j], [0.5 - 0.1j, 0.5]])
    with pytest.raises(InvalidInputError, match="P must be real"):
        games.validate_preference_matrix(complex_p)
    with pytest.raises(InvalidInputError, match="must be real"):
        games.exploitability(complex_p.astype(complex), np.array([0.5, 0.5]))
    with pytest.raises(InvalidInputError, match="must be real"):
        games.validate_preference_matrix(torch.tensor(complex_p))


def test_item5_no_half_written_run_directory_when_the_first_step_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from prl.registry import ALGOS, load_plugins

    load_plugins()
    cls = ALGOS.get("spo_bandit")

    def boom(self: Any) -> dict[str, float]:
        raise InvalidInputError("rewards contain NaN or inf")

    monkeypatch.setattr(cls, "step", boom)
    line = one_line(in_process(capsys, ["run", *BANDIT, "--out", str(tmp_path)]))
    assert line == "prl: error: rewards contain NaN or inf"
    assert list(tmp_path.iterdir()) == []
