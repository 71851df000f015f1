"""Vectorized collection of the on-policy learners (issue 23, item 1): ``n_envs`` copies in this
process (``vec_env=dummy``) or in worker processes (``vec_env=subproc``).

- the vectorized learners equal stable-baselines3's own vectorized PPO (``make_vec_env``) at
  n_envs = 1 (the old single-env path) and n_envs = 8;
- ``subproc`` gives the same numbers as ``dummy`` (per-env trajectory recording and SPO's
  win-rate / RLHF's reward relabelling included);
- same seed → same rows at n_envs = 8 for every on-policy learner;
- kill (SIGKILL through ``prl run``) and resume is exact at n_envs = 8, also when the killed run
  stepped its copies in worker processes and the reference did not.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from prl.config import build_config
from prl.errors import ConfigError
from prl.registry import ALGOS, load_plugins
from prl.run import KILL_ENV, train
from prl.smoke import SMOKE
from prl.utils import torch_threads

load_plugins()

ON_POLICY = [
    "mdpo_on",
    "pdppo",
    "pdppo_ppo_baseline",
    "spo",
    "rlhf",
    "heron",
    "ppo_true_reward",
    "cmorl",
    "cmorl_stage1",
]


@pytest.fixture(autouse=True)
def _threads() -> Iterator[None]:
    with torch_threads(1):
        yield


def _rows(algo: str, seed: int = 3, **over: Any) -> list[dict[str, Any]]:
    s = SMOKE[algo]
    _, rows = train(
        s.algo,
        s.env,
        seed=seed,
        steps=s.steps,
        config={**s.config, **over},
        env_kwargs=s.env_kwargs,
        device="cpu",
    )
    return rows


def test_every_on_policy_learner_has_n_envs_and_vec_env() -> None:
    for algo in ON_POLICY:
        cfg = build_config(ALGOS.get(algo).Config, {"n_envs": 3, "vec_env": "subproc"})
        assert cfg.n_envs == 3 and cfg.vec_env == "subproc", algo
        with pytest.raises(ConfigError, match="vec_env"):
            build_config(ALGOS.get(algo).Config, {"vec_env": "threads"})


# ---- the vectorized path equals SB3's own vectorized PPO ---------------------------------------
@pytest.mark.parametrize("n_envs", [1, 8])
def test_mdpo_on_ppo_variant_equals_sb3_ppo_with_make_vec_env(n_envs: int) -> None:
    """variant=ppo is SB3 PPO on SB3's ``make_vec_env`` (the old path at n_envs = 1): the same
    weights after two rollouts, with the copies wrapped for access and in the vectorized path."""
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    from prl import envs
    from prl.run import resolve_device

    over = {"variant": "ppo", "n_envs": n_envs, "n_steps": 16, "chunk": 16 * n_envs}
    over["batch_size"] = 16
    cfg = build_config(ALGOS.get("mdpo_on").Config, {**SMOKE["mdpo_on"].config, **over})
    learner = ALGOS.get("mdpo_on")(cfg, "Hopper-v5", {}, 7, resolve_device("cpu"))
    learner.step()
    learner.step()
    ours = {k: v.clone() for k, v in learner.model.policy.state_dict().items()}
    learner.close()

    venv = make_vec_env(lambda: envs.make("Hopper-v5"), n_envs=n_envs, seed=7)
    ref = PPO(
        "MlpPolicy",
        venv,
        n_steps=16,
        batch_size=cfg.batch_size,
        n_epochs=cfg.n_epochs,
        learning_rate=cfg.learning_rate,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        ent_coef=cfg.ent_coef,
        max_grad_norm=cfg.max_grad_norm,
        clip_range=cfg.clip_range,
        policy_kwargs={"net_arch": list(cfg.net_arch)},
        seed=7,
        device="cpu",
        verbose=0,
    )
    for _ in range(2):
        ref.learn(16 * n_envs, reset_num_timesteps=False)
    venv.close()
    want = ref.policy.state_dict()
    assert ours.keys() == want.keys()
    for k in want:
        assert torch.equal(ours[k], want[k]), k


# ---- worker processes give the same numbers ------------------------------------------------------
SUBPROC_FAST = {"spo", "mdpo_on"}


@pytest.mark.parametrize(
    "algo",
    [
        pytest.param(a, marks=[] if a in SUBPROC_FAST else [pytest.mark.slow])
        for a in ["spo", "mdpo_on", "rlhf", "heron", "ppo_true_reward", "pdppo", "cmorl"]
    ],
)
def test_subproc_equals_dummy(algo: str) -> None:
    """Per-env recording and relabelling (SPO's win rates, RLHF's r̂) do not depend on where the
    copies run; mid-episode env states are read through the workers (MDPO, PDPPO)."""
    a = _rows(algo, vec_env="dummy")
    b = _rows(algo, vec_env="subproc")
    assert len(a) >= 2 and a == b


def test_spo_episodes_are_recorded_per_env() -> None:
    """Each of 8 copies' episodes sits in its own buffer column (rows start..start+T−1)."""
    from prl.run import resolve_device

    s = SMOKE["spo"]
    cfg = build_config(ALGOS.get("spo").Config, {**s.config, "n_envs": 8})
    learner = ALGOS.get("spo")(cfg, s.env, s.env_kwargs, 1, resolve_device("cpu"))
    try:
        learner.model.train = lambda: None  # keep the buffer unflattened
        learner.step()
        eps = [e for e in learner.model.last_episodes if e.complete]
        assert sorted({e.env for e in eps}) == list(range(8))
        buf = learner.model.rollout_buffer
        for e in eps:  # the recorded observations are the buffer's, copy by copy
            got = buf.observations[e.start : e.start + e.length, e.env]
            np.testing.assert_array_equal(got, e.obs.astype(got.dtype))
    finally:
        learner.close()


# ---- determinism at n_envs = 8 ----------------------------------------------------------------
@pytest.mark.parametrize("algo", ON_POLICY)
def test_same_seed_same_rows_with_8_envs(algo: str) -> None:
    a, b, c = _rows(algo, 3, n_envs=8), _rows(algo, 3, n_envs=8), _rows(algo, 4, n_envs=8)
    assert len(a) >= 1
    assert a == b, f"{algo}: same seed, different rows at n_envs=8"
    assert a != c


# ---- kill / resume at n_envs = 8 --------------------------------------------------------------
# algo → (steps N, checkpoint every K, kill at M, overrides); step() = n_envs × n_steps env steps
KILL8: dict[str, tuple[int, int, int, dict[str, Any]]] = {
    # 8 × 16 = 128 env steps per step(); Hopper episodes run on across rollouts (env states)
    "mdpo_on": (512, 256, 384, {"n_envs": 8, "n_steps": 16, "chunk": 128}),
    "spo": (640, 320, 480, {"n_envs": 8}),  # 8 × 10 per step()
    "pdppo": (512, 256, 384, {"n_envs": 8, "n_steps": 16, "batch_size": 32}),
    "cmorl": (640, 256, 384, {"n_envs": 8, "n_steps": 8, "stage1_steps": 192}),
}


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _only(out: Path) -> Path:
    (d,) = [p for p in out.iterdir() if p.is_dir()]
    return d


@pytest.mark.parametrize(
    ("algo", "killed_vec"),
    [
        ("mdpo_on", "subproc"),
        ("spo", "dummy"),
        pytest.param("pdppo", "subproc", marks=pytest.mark.slow),
        pytest.param("cmorl", "dummy", marks=pytest.mark.slow),
    ],
)
def test_kill_and_resume_exact_with_8_envs(
    algo: str, killed_vec: str, tmp_path: Path, prl_cli: Any
) -> None:
    from prl.cli import main
    from prl.smoke import Smoke

    assert KILL_ENV not in os.environ
    n, every, kill_at, over = KILL8[algo]
    s0 = SMOKE[algo]
    common = ["--steps", str(n), "--seed", "5", "--checkpoint-every", str(every)]
    common += ["--device", "cpu", "--no-progress"]

    def args(vec: str) -> list[str]:
        cfg = {**s0.config, **over, "vec_env": vec}
        return Smoke(s0.algo, s0.env, n, cfg, s0.env_kwargs).cli_args()

    out = tmp_path / "killed"
    killed = prl_cli(
        "run", *args(killed_vec), *common, "--out", str(out), **{KILL_ENV: str(kill_at)}
    )
    assert killed.returncode == -9, killed.stderr
    rdir = _only(out)
    assert not (rdir / "final.json").exists()
    assert int(_csv(rdir / "metrics.csv")[-1]["step"]) % every != 0
    resume = ["run", algo, "--env", s0.env, "--seed", "5", "--out", str(out), "--resume"]
    assert main([*resume, "--device", "cpu", "--no-progress"]) == 0

    straight = tmp_path / "straight"
    assert main(["run", *args("dummy"), *common, "--out", str(straight)]) == 0
    ref = _only(straight)
    assert _csv(rdir / "metrics.csv") == _csv(ref / "metrics.csv")
    final = [json.loads((d / "final.json").read_text()) for d in (rdir, ref)]
    assert json.dumps(final[0], sort_keys=True) == json.dumps(final[1], sort_keys=True)
