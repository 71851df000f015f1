"""Tiny settings for every registered algorithm: one short training each (about a second on CPU).

The table is taken from the algorithms' own tests (``tests/test_<family>.py``'s TINY configs)
and is used by ``tests/test_matrix.py`` (determinism across seeds, kill/resume per family) and
by docs and benchmarks that need a quick run of everything. Adding an algorithm means adding an
entry here: the matrix test fails for a registered algorithm without one.

``seed_dependent=False`` marks exact deterministic updates (the tabular Nash solvers with exact
win rates): their metric rows must not change with the seed at all. ``resume`` says what a run
killed mid-way and continued with ``--resume`` guarantees: ``"exact"`` (metrics.csv identical to
an uninterrupted run: the checkpoint holds every generator, optimizer and environment state) or
``"completes"`` (the run finishes with finite metrics, but some state is not checkpointed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

__all__ = ["FAMILY_REPRESENTATIVES", "SMOKE", "Smoke", "smoke_for"]


@dataclass(frozen=True)
class Smoke:
    """One tiny training: ``prl.run.train(algo, env, steps=steps, config=config, ...)``."""

    algo: str
    env: str
    steps: int
    config: dict[str, Any] = field(default_factory=dict)
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    seed_dependent: bool = True
    resume: Literal["exact", "completes"] = "exact"
    source: str = ""  # the test whose TINY configuration this is

    def cli_args(self) -> list[str]:
        """The same settings as ``prl run`` arguments (config fields as ``--field=value``)."""
        import json

        args = [self.algo, "--env", self.env]
        for k, v in self.env_kwargs.items():
            args += ["--env-kw", f"{k}={json.dumps(v)}"]
        for k, v in self.config.items():
            text = json.dumps(v) if isinstance(v, (list, dict, bool)) or v is None else str(v)
            args.append(f"--{k.replace('_', '-')}={text}")
        return args


# ---- tiny configurations, copied from each family's tests ---------------------------------------
_DUEL_RANDOM = {"game": "random", "K": 4, "seed": 2}  # tests/test_nash.py ENV_KW
_DUEL_DICE = {"game": "dice"}  # tests/test_dpo.py, tests/test_spo_bandit.py

_TABULAR_NASH = ("nash_md", "nash_mp", "egpo", "inpo", "online_ipo", "ipo_md", "sppo", "apo")
_NEURAL_NASH = ("nash_md_pg", "nash_ema", "online_ipo_nn", "egpo_nn", "sppo_nn")

_PEND = "PendulumFactored-v1"
_PEND_KW = {"max_episode_steps": 10}
_SPO_TINY = {  # tests/test_spo_deep.py
    "n_envs": 2,
    "query_budget": 100,
    "queries_per_iter": 6,
    "eval_episodes": 0,
    "batch_size": 20,
    "n_epochs": 2,
    "pool_size": 4,
    "hidden": [16, 16],
}
_RM_TINY = {"rm_hidden": [16], "rm_steps": 5, "rm_batch": 8}  # tests/test_rlhf.py, test_heron.py

_OFFLINE_TINY = {  # tests/test_cpl.py
    "hidden": [16],
    "dropout": 0.1,
    "lr": 3e-3,
    "batch_size": 16,
    "eval_every": 20,
    "n_segments": 400,
    "n_pairs": 800,
}
_OFFLINE_ALGO = {
    "cpl": {"bc_steps": 0, "warmup_steps": 5},
    "piql": {"reward_steps": 15},
    "sft": {"bc_steps": 15},
    "pct_bc": {"percent": 20.0},
    "bc": {},
}
_OPPO_TINY = {  # tests/test_oppo.py (test_oppo_is_deterministic_and_resumes_exactly, mlp)
    "hidden": [32],
    "dropout": 0.1,
    "lr": 3e-3,
    "batch_size": 32,
    "eval_every": 8,
    "embed_dim": 32,
    "n_layers": 1,
    "zstar_lr": 1e-2,
    "warmup_steps": 5,
    "eval_episodes": 1,
    "arch": "mlp",
    "n_segments": 90,
    "n_pairs": 150,
    "segment_length": 6,
    "window": 4,
}
_CMORL_TINY = {  # tests/test_cmorl.py TINY2
    "n_envs": 2,
    "n_steps": 16,
    "minibatches": 2,
    "epochs": 2,
    "stage1_steps": 96,
    "stage2_updates": 2,
    "n_select": 2,
}
_MDPO_ON = {  # tests/test_mdpo.py ON_TINY
    "n_steps": 128,
    "batch_size": 64,
    "n_epochs": 2,
    "sgd_steps": 3,
    "chunk": 128,
    "net_arch": [16, 16],
}
_MDPO_OFF = {  # tests/test_mdpo.py OFF_TINY
    "learning_starts": 64,
    "batch_size": 32,
    "buffer_size": 1000,
    "chunk": 64,
    "net_arch": [16, 16],
    "copy_every": 50,
}
_PDPPO_TINY = {"n_steps": 32, "batch_size": 16, "n_epochs": 2}  # tests/test_pdppo.py
_PLURAL = "tests/test_pluralistic.py::test_learners_smoke_and_determinism"
_GPM_TINY = {"batch": 16, "updates": 5, "heldout": 50}  # tests/test_pluralistic.py
_USERS_TINY = {"users": 12, "pairs_per_user": 3, "pool": 30}  # tests/test_pluralistic.py
_VPL_TINY = {"hidden": 8, "batch_users": 4, "eval_every": 3, "eval_users": 4}


def _entries() -> list[Smoke]:
    nash = "tests/test_nash.py::test_tabular_learners_smoke_and_determinism"
    nash_nn = "tests/test_nash.py::test_neural_learners_smoke_and_determinism"
    bt = "tests/test_dpo.py::test_bt_learners_smoke_determinism_and_failure"
    spo_b = "tests/test_spo_bandit.py::test_spo_bandit_smoke_determinism_and_progress"
    heron = "tests/test_heron.py::test_heron_determinism_and_exact_resume"
    ppo_t = "tests/test_heron.py::test_ppo_true_reward_determinism_and_fixed_scale"
    offline = "tests/test_cpl.py::test_learners_are_deterministic_and_resume_exactly"
    oppo = "tests/test_oppo.py::test_oppo_is_deterministic_and_resumes_exactly"
    mdpo = "tests/test_mdpo.py::test_same_seed_same_numbers"
    out: list[Smoke] = []
    for a in _TABULAR_NASH:  # exact win rates (opponents = 0, the default): no randomness at all
        cfg = {} if a == "sppo" else {"ref_logit_scale": 1.0}
        out.append(Smoke(a, "dueling", 40, cfg, _DUEL_RANDOM, seed_dependent=False, source=nash))
    for a in _NEURAL_NASH:
        out.append(Smoke(a, "dueling", 6, {"batch": 8}, _DUEL_RANDOM, source=nash_nn))
    for a in ("dpo", "ipo", "rlhf_bt"):
        cfg = {"batch": 200, "ref_logit_scale": 1.0, "beta": 0.05}
        out.append(Smoke(a, "dueling", 1000, cfg, _DUEL_DICE, source=bt))
    cfg = {"batch": 32, "lr": 2.0, "init_logit_scale": 1.0}
    out.append(Smoke("spo_bandit", "dueling", 320, cfg, _DUEL_DICE, source=spo_b))
    cfg = {**_SPO_TINY, "preference": "intransitive"}
    out.append(Smoke("spo", _PEND, 40, cfg, _PEND_KW, source="tests/test_spo_deep.py"))
    cfg = {**_SPO_TINY, **_RM_TINY, "preference": "stochastic"}
    out.append(Smoke("rlhf", _PEND, 60, cfg, _PEND_KW, source="tests/test_rlhf.py"))
    cfg = {**_SPO_TINY, **_RM_TINY, "heldout_episodes": 3, "margins": [0.2]}
    out.append(Smoke("heron", _PEND, 60, cfg, _PEND_KW, source=heron))
    out.append(Smoke("ppo_true_reward", _PEND, 40, dict(_SPO_TINY), _PEND_KW, source=ppo_t))
    for a, extra in _OFFLINE_ALGO.items():
        cfg = {**_OFFLINE_TINY, **extra}
        out.append(Smoke(a, "random_mdp", 30, cfg, {"S": 8, "A": 3}, source=offline))
    out.append(Smoke("oppo", "random_mdp", 12, dict(_OPPO_TINY), {"S": 6, "A": 3}, source=oppo))
    for a in ("cmorl", "cmorl_stage1"):
        cfg = dict(_CMORL_TINY)
        out.append(Smoke(a, "mo_tabular", 320, cfg, source="tests/test_cmorl.py::test_determinism"))
    out.append(Smoke("mdpo_on", "Hopper-v5", 256, dict(_MDPO_ON), source=mdpo))
    cfg = dict(_MDPO_OFF)
    out.append(Smoke("mdpo_off", "Hopper-v5", 256, cfg, source=mdpo))
    for a in ("pdppo", "pdppo_ppo_baseline"):
        cfg, kw = dict(_PDPPO_TINY), {"instance": "tiny"}
        out.append(Smoke(a, "lotsizing", 64, cfg, kw, source="tests/test_pdppo.py"))
    out.append(Smoke("gpm", "dueling", 48, dict(_GPM_TINY), _DUEL_DICE, source=_PLURAL))
    out.append(Smoke("maxmin_rlhf", "two_goals", 3, dict(_USERS_TINY), source=_PLURAL))
    out.append(Smoke("vpl", "two_goals", 6, {**_USERS_TINY, **_VPL_TINY}, source=_PLURAL))
    return out


SMOKE: dict[str, Smoke] = {s.algo: s for s in _entries()}

# one algorithm per module of algos/ (kill/resume is tested on these)
FAMILY_REPRESENTATIVES: dict[str, str] = {
    "nash": "nash_md",
    "spo": "spo_bandit",
    "spo_deep": "spo",
    "rlhf": "rlhf",
    "heron": "heron",
    "cpl": "cpl",
    "offline_baselines": "piql",
    "oppo": "oppo",
    "cmorl": "cmorl",
    "mdpo (on-policy)": "mdpo_on",
    "mdpo (off-policy)": "mdpo_off",
    "pdppo": "pdppo",
    "dpo": "dpo",
    "pluralistic": "gpm",
}


def smoke_for(algo: str) -> Smoke:
    """The tiny settings of ``algo``; an algorithm without an entry raises UnknownNameError."""
    from prl.errors import UnknownNameError

    if algo not in SMOKE:
        raise UnknownNameError(
            f"no tiny settings for algorithm {algo!r} in prl.smoke.SMOKE "
            f"(known: {', '.join(sorted(SMOKE))})"
        )
    return SMOKE[algo]
