"""The lab in SB3's own terms (issue 20, item 1 and item 5's leftovers): runs write SB3's
model.zip, ``prl.load``, ``predict``'s ``(action, state)`` and ``evaluate_policy`` on every
learner kind, any gymnasium id, the SB3-shaped facades, TRL's loss_type names and a custom
reward module in ``RewardModelTrainer``."""

from __future__ import annotations

import math

import gymnasium
import numpy as np
import pytest
import torch
from stable_baselines3 import PPO, SAC
from stable_baselines3.common.evaluation import evaluate_policy
from stable_baselines3.common.vec_env import DummyVecEnv

import prl
from prl.common.sb3 import RunDirLoad
from prl.errors import ConfigError, InvalidInputError, UnknownNameError
from prl.registry import ALGOS, load_plugins
from prl.run import run_experiment, train

load_plugins()

SB3_ALGOS = (
    "mdpo_on",
    "mdpo_off",
    "pdppo",
    "pdppo_ppo_baseline",
    "rlhf",
    "spo",
    "heron",
    "ppo_true_reward",
)
#: the SB3 class whose own ``load`` reads the model.zip of each learner: the plain SB3 class where
#: the subclass adds no tensors of its own, else the subclass (its ``load`` is SB3's)
PLAIN_LOAD = {"pdppo_ppo_baseline": PPO, "rlhf": PPO, "spo": PPO, "heron": PPO}


def _smoke_run(algo: str, out, **over):
    sm = ALGOS.get(algo).smoke
    return run_experiment(
        algo,
        over.pop("env", sm.env),
        steps=over.pop("steps", sm.steps),
        config={**sm.config, **over},
        env_kwargs=sm.env_kwargs,
        out=out,
        progress=False,
        device="cpu",
    )


def _obs_batch(space: gymnasium.Space, n: int = 6) -> np.ndarray:
    space.seed(123)
    return np.stack([space.sample() for _ in range(n)])


@pytest.mark.parametrize("algo", SB3_ALGOS)
def test_run_model_loads_with_prl_and_sb3(algo: str, tmp_path) -> None:
    res = _smoke_run(algo, tmp_path)
    zpath = res.run_dir / "model.zip"
    assert zpath.is_file() and (res.run_dir / "checkpoint.pt").is_file()
    model = prl.load(res.run_dir)  # rebuilt from config.json + checkpoint.pt (no unpickling)
    from stable_baselines3.common.base_class import BaseAlgorithm

    assert isinstance(model, BaseAlgorithm)
    assert model.num_timesteps == res.steps_done
    obs = _obs_batch(model.observation_space)
    ref, state = model.predict(obs, deterministic=True)
    assert state is None and len(ref) == len(obs)
    sb3 = type(model).load(zpath, device="cpu")  # SB3's own load (of the class that saved it)
    np.testing.assert_array_equal(sb3.predict(obs, deterministic=True)[0], ref)
    plain = PLAIN_LOAD.get(algo)
    if plain is not None:  # the plain SB3 class reads it too
        np.testing.assert_array_equal(
            plain.load(zpath, device="cpu").predict(obs, deterministic=True)[0], ref
        )
    # a run directory is accepted by the class's load; a prl checkpoint is refused in one line
    if isinstance(model, RunDirLoad):
        np.testing.assert_array_equal(
            type(model).load(res.run_dir, device="cpu").predict(obs, deterministic=True)[0], ref
        )
        with pytest.raises(InvalidInputError, match="not an SB3 model"):
            type(model).load(res.run_dir / "checkpoint.pt")


def test_mdpo_subclass_load_and_plain_sac(tmp_path) -> None:
    """MDPOOnPolicy.load reads the run's model.zip (it used to be pointed at checkpoint.pt)."""
    from prl.algos.mdpo import MDPOOffPolicy

    res = _smoke_run("mdpo_off", tmp_path)
    m = MDPOOffPolicy.load(res.run_dir / "model.zip", device="cpu")
    assert isinstance(m, SAC) and m.num_timesteps == res.steps_done
    assert isinstance(prl.load(res.run_dir), MDPOOffPolicy)


def test_prl_load_leaves_global_rng_alone(tmp_path) -> None:
    res = _smoke_run("spo", tmp_path)
    torch.manual_seed(7)
    np.random.seed(7)  # noqa: NPY002
    prl.load(res.run_dir)
    a, b = torch.rand(3), np.random.rand(3)  # noqa: NPY002
    torch.manual_seed(7)
    np.random.seed(7)  # noqa: NPY002
    np.testing.assert_array_equal(a.numpy(), torch.rand(3).numpy())
    np.testing.assert_array_equal(b, np.random.rand(3))  # noqa: NPY002


def test_prl_load_errors(tmp_path) -> None:
    with pytest.raises(InvalidInputError, match="not a run directory"):
        prl.load(tmp_path)


# ---- evaluate_policy on every learner kind -------------------------------------------------------
@pytest.mark.parametrize("algo", ["mdpo_on", "rlhf", "pdppo"])
def test_evaluate_policy_sb3_learner(algo: str) -> None:
    sm = ALGOS.get(algo).smoke
    learner, _ = train(algo, sm.env, steps=sm.steps, config=sm.config, env_kwargs=sm.env_kwargs)
    from prl import envs

    venv = DummyVecEnv([lambda: envs.make(sm.env, **sm.env_kwargs)])
    mean, std = evaluate_policy(learner, venv, n_eval_episodes=2, deterministic=True)
    assert math.isfinite(mean) and math.isfinite(std)
    obs = _obs_batch(learner.model.observation_space)
    a, state = learner.predict(obs, deterministic=True)
    assert state is None
    np.testing.assert_array_equal(a, learner.model.predict(obs, deterministic=True)[0])


def test_evaluate_policy_offline_learner() -> None:
    from prl import envs

    sm = ALGOS.get("bc").smoke
    learner, _ = train("bc", sm.env, steps=40, config=sm.config, env_kwargs=sm.env_kwargs)
    venv = DummyVecEnv([lambda: envs.make(sm.env, **sm.env_kwargs)])
    mean, _ = evaluate_policy(learner, venv, n_eval_episodes=3, deterministic=True)
    assert math.isfinite(mean)
    # greedy actions = argmax of the policy's own action table on every state
    table = learner.policy_table()  # [S, A] probabilities of the evaluated policy
    S = table.shape[0]
    acts, _ = learner.predict(np.arange(S), deterministic=True)
    np.testing.assert_array_equal(acts, table.argmax(-1))
    one, _ = learner.predict(np.int64(0), deterministic=True)
    assert np.ndim(one) == 0 and one == acts[0]


def test_evaluate_policy_cmorl_and_eval_convention() -> None:
    from mo_gymnasium.wrappers import LinearReward

    from prl import envs

    sm = ALGOS.get("cmorl").smoke
    learner, _ = train("cmorl", sm.env, steps=160, config=sm.config, env_kwargs=sm.env_kwargs)
    front = learner.archive.points
    K = front.shape[1]
    for k in range(K):
        w = np.eye(K)[k]
        best = int(np.argmax(front @ w))  # morl-baselines: the policy best for w acts
        assert learner.archive_policy(w) is learner.archive_policy(np.eye(K)[k])
        pol = learner.archive_policy(w)
        sd = learner.archive.payloads[best]["state"]
        assert all(torch.equal(sd[n], t) for n, t in pol.state_dict().items())
        obs0 = learner.envs[0].observation_space.sample()
        a = learner.eval(obs0, w)
        assert isinstance(a, int)
        assert a == int(learner.predict(np.asarray([obs0]), deterministic=True, w=w)[0][0])

    def make() -> gymnasium.Env:
        return LinearReward(envs.make(sm.env, **sm.env_kwargs), weight=np.full(K, 1.0 / K))

    mean, _ = evaluate_policy(learner, DummyVecEnv([make]), n_eval_episodes=2)
    assert math.isfinite(mean)
    with pytest.raises(InvalidInputError, match="weights"):
        learner.archive_policy(np.ones(K + 1))


def test_evaluate_policy_dueling_learner() -> None:
    from prl import envs

    sm = ALGOS.get("dpo").smoke
    learner, _ = train("dpo", sm.env, steps=400, config=sm.config, env_kwargs=sm.env_kwargs)
    pi = learner.policy()
    venv = DummyVecEnv([lambda: envs.make(sm.env, **sm.env_kwargs)])
    mean, _ = evaluate_policy(learner, venv, n_eval_episodes=4, deterministic=True)
    assert 0.0 <= mean <= 1.0
    a, _ = learner.predict(np.zeros(3, dtype=np.int64), deterministic=True)
    np.testing.assert_array_equal(a, np.full((3, 2), np.argmax(pi)))
    s1, _ = learner.predict(np.zeros(4000, dtype=np.int64), deterministic=False)
    freq = np.bincount(s1.reshape(-1), minlength=len(pi)) / s1.size
    assert np.abs(freq - pi).max() < 0.03  # self-play pairs drawn from π
    s2, _ = learner.predict(np.zeros(4000, dtype=np.int64), deterministic=False)
    assert not np.array_equal(s1, s2)  # its own stream advances


def test_learner_without_policy_refuses_predict() -> None:
    from prl.run import Learner

    class NoPolicy(Learner):
        Config = object

        def step(self) -> dict[str, float]:
            return {}

    lr = NoPolicy(None, "dueling", {}, 0, "cpu")
    with pytest.raises(InvalidInputError, match="no policy"):
        lr.predict(np.zeros(2))


# ---- any gymnasium id ----------------------------------------------------------------------------
def test_any_gymnasium_id_runs(tmp_path) -> None:
    res = run_experiment(
        "mdpo_on",
        "CartPole-v1",
        steps=64,
        config={"n_steps": 32, "batch_size": 16, "chunk": 32, "net_arch": [8]},
        out=tmp_path,
        progress=False,
        device="cpu",
    )
    model = prl.load(res.run_dir)
    assert model.action_space == gymnasium.spaces.Discrete(2)
    obs = _obs_batch(model.observation_space, 3)
    np.testing.assert_array_equal(
        type(model).load(res.run_dir / "model.zip").predict(obs, deterministic=True)[0],
        model.predict(obs, deterministic=True)[0],
    )
    from prl import envs

    assert envs.make("Pendulum-v1").spec.id == "Pendulum-v1"


def test_gymnasium_id_errors(tmp_path, capsys) -> None:
    from prl.cli import main

    with pytest.raises(UnknownNameError):
        run_experiment("mdpo_on", "NoSuchEnv-v9", out=tmp_path)
    with pytest.raises(UnknownNameError):  # only SB3-based learners take gymnasium ids
        run_experiment("cpl", "CartPole-v1", out=tmp_path)
    with pytest.raises(ConfigError, match="Box"):
        run_experiment("mdpo_off", "CartPole-v1", out=tmp_path)
    assert main(["run", "mdpo_on", "--env", "NoSuchEnv-v9", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "NoSuchEnv-v9" in err
    assert not any(tmp_path.iterdir())


# ---- SB3-shaped facades --------------------------------------------------------------------------
def _facade_kwargs() -> dict:
    from prl.algos.preference_ppo import SMOKE_PENDULUM_KW, SMOKE_PPO_TINY

    return {"env_kwargs": SMOKE_PENDULUM_KW, "seed": 3, "device": "cpu", **SMOKE_PPO_TINY}


@pytest.mark.parametrize("name", ["RLHF", "SPO", "HERON"])
def test_facade_learn_save_load_predict(name: str, tmp_path) -> None:
    from prl.algos import sb3_api
    from prl.algos.rlhf import SMOKE_RM_TINY

    cls = getattr(sb3_api, name)
    extra = {} if name == "SPO" else dict(SMOKE_RM_TINY)
    kw = {**_facade_kwargs(), **extra}
    m = cls("MlpPolicy", "PendulumFactored-v1", **kw)
    assert m.learn(total_timesteps=20) is m and m.num_timesteps >= 20
    obs = _obs_batch(m.observation_space)
    path = tmp_path / "model"
    m.save(path)
    a = m.predict(obs, deterministic=True)[0]
    m.learn(20)
    cont = m.predict(obs, deterministic=True)[0]
    sb3 = PPO.load(tmp_path / "model.zip", device="cpu")  # the inner PPO, SB3's own file
    np.testing.assert_array_equal(sb3.predict(obs, deterministic=True)[0], a)
    m2 = cls.load(path, device="cpu")  # restores generators: learning continues exactly
    np.testing.assert_array_equal(m2.predict(obs, deterministic=True)[0], a)
    m2.learn(20)
    np.testing.assert_array_equal(m2.predict(obs, deterministic=True)[0], cont)
    # the same numbers as `prl run` with the same seed and settings
    algo = cls.algo
    cfg = {k: v for k, v in kw.items() if k not in ("env_kwargs", "seed", "device")}
    res = run_experiment(
        algo,
        "PendulumFactored-v1",
        steps=40,
        seed=3,
        config=cfg,
        env_kwargs=kw["env_kwargs"],
        out=tmp_path / "runs",
        progress=False,
        device="cpu",
    )
    np.testing.assert_array_equal(prl.load(res.run_dir).predict(obs, deterministic=True)[0], cont)


def test_facade_env_instance_and_bad_input(tmp_path) -> None:
    from prl.algos.rlhf import SMOKE_RM_TINY
    from prl.algos.sb3_api import RLHF

    kw = {**_facade_kwargs(), **SMOKE_RM_TINY}
    env_kwargs = kw.pop("env_kwargs")
    kw.pop("hidden")
    env = gymnasium.make("prl/PendulumFactored-v1", **env_kwargs)
    m = RLHF("MlpPolicy", env, learning_rate=1e-3, policy_kwargs={"net_arch": [8]}, **kw)
    assert m.env_name == "PendulumFactored-v1" and m.learner.config.lr == 1e-3
    assert m.learner.config.hidden == [8]
    with pytest.raises(InvalidInputError, match="different values"):
        RLHF("MlpPolicy", "PendulumFactored-v1", lr=1e-3, learning_rate=1e-4)
    with pytest.raises(InvalidInputError, match="MlpPolicy"):
        RLHF("CnnPolicy", "PendulumFactored-v1")
    with pytest.raises(ConfigError):
        RLHF("MlpPolicy", "PendulumFactored-v1", no_such_option=1)
    with pytest.raises(InvalidInputError, match="not a saved"):
        RLHF.load(tmp_path / "missing.zip")


def test_cmorl_facade(tmp_path) -> None:
    from prl.algos.cmorl import SMOKE_CMORL_TINY
    from prl.algos.sb3_api import CMORL

    m = CMORL("MlpPolicy", "mo_tabular", seed=0, device="cpu", **SMOKE_CMORL_TINY)
    assert m.model is None
    m.learn(160)
    front = m.front()
    assert front.ndim == 2 and len(front) >= 1
    obs = np.arange(3)
    w = np.array([0.0, 1.0])
    a = m.predict(obs, deterministic=True, w=w)[0]
    assert m.eval(0, w) == a[0]
    m.save(tmp_path / "cm")
    m2 = CMORL.load(tmp_path / "cm.zip", device="cpu")
    np.testing.assert_array_equal(m2.front(), front)
    np.testing.assert_array_equal(m2.predict(obs, deterministic=True, w=w)[0], a)


# ---- TRL's loss_type names -----------------------------------------------------------------------
def _trl_reference(loss_type: str, h: torch.Tensor, beta: float, ls: float) -> torch.Tensor:
    """TRL's DPOTrainer losses on the margin h (chosen first), written from its formulas."""
    logsig = torch.nn.functional.logsigmoid
    if loss_type == "sigmoid":
        return -logsig(beta * h) * (1 - ls) - logsig(-beta * h) * ls
    if loss_type == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    return (-logsig(beta * h) * (1 - ls) + logsig(-beta * h) * ls) / (1 - 2 * ls)


@pytest.mark.parametrize(
    ("loss_type", "ls"), [("sigmoid", 0.0), ("sigmoid", 0.2), ("ipo", 0.0), ("robust", 0.1)]
)
def test_trl_loss_types_equal_the_formulas(loss_type: str, ls: float) -> None:
    from prl.common.losses import dpo_loss, ipo_loss, rdpo_loss, trl_loss

    h = torch.linspace(-3, 3, 13, dtype=torch.float64)
    ones = torch.ones_like(h)
    beta = 0.7
    got = trl_loss(loss_type, ls)(h, ones, beta)
    torch.testing.assert_close(got, _trl_reference(loss_type, h, beta, ls))
    lab = {"sigmoid": dpo_loss, "ipo": ipo_loss, "robust": rdpo_loss}[loss_type]
    if loss_type == "robust":
        torch.testing.assert_close(got, lab(h, ones, beta, eps=ls))
    elif ls == 0:
        torch.testing.assert_close(got, lab(h, ones, beta))


def test_trl_loss_type_errors() -> None:
    from prl.common.losses import trl_loss

    with pytest.raises(InvalidInputError, match="loss_type"):
        trl_loss("hinge")
    with pytest.raises(InvalidInputError):
        trl_loss("ipo", 0.1)
    with pytest.raises(InvalidInputError):
        trl_loss("robust", 0.5)


def test_dpo_learner_loss_type_alias() -> None:
    sm = ALGOS.get("dpo").smoke
    kw = {"steps": 400, "env_kwargs": sm.env_kwargs}
    ipo, _ = train("ipo", sm.env, config=sm.config, **kw)
    dpo_as_ipo, _ = train("dpo", sm.env, config={**sm.config, "loss_type": "ipo"}, **kw)
    torch.testing.assert_close(dpo_as_ipo.pi, ipo.pi, rtol=0, atol=0)
    dpo, _ = train("dpo", sm.env, config=sm.config, **kw)
    sig, _ = train("dpo", sm.env, config={**sm.config, "loss_type": "sigmoid"}, **kw)
    torch.testing.assert_close(sig.pi, dpo.pi, rtol=0, atol=0)
    rob0, _ = train("dpo", sm.env, config={**sm.config, "loss_type": "robust"}, **kw)
    torch.testing.assert_close(rob0.pi, dpo.pi, rtol=1e-9, atol=1e-12)  # ε = 0: DPO
    smooth, _ = train(
        "dpo", sm.env, config={**sm.config, "loss_type": "sigmoid", "label_smoothing": 0.2}, **kw
    )
    # labels smoothed towards ½ shrink the fitted margins β log π/μ: closer to μ than DPO's fit
    kl = lambda p: float((p * (p.log() - smooth.mu.log())).sum())
    assert kl(smooth.pi[0]) < kl(dpo.pi[0])
    with pytest.raises(ConfigError):
        train("rlhf_bt", sm.env, config={**sm.config, "loss_type": "sigmoid"}, **kw)
    with pytest.raises(ConfigError):
        train("dpo", sm.env, config={**sm.config, "loss_type": "hinge"}, **kw)


# ---- RewardModelTrainer with any (obs, act) → r module ---------------------------------------
class _Linear(torch.nn.Module):
    def __init__(self, d: int):
        super().__init__()
        self.w = torch.nn.Parameter(torch.linspace(-0.5, 0.5, d))

    def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
        return (obs * self.w).sum(-1) + 0.0 * act.sum(-1)


def _linear_prefs(n: int, T: int, d: int, w_true: np.ndarray, rng: np.random.Generator):
    from prl.types import Preferences, Segments

    def seg() -> Segments:
        obs = rng.normal(size=(n, T, d)).astype(np.float32)
        return Segments(obs, rng.normal(size=(n, T, 1)).astype(np.float32), obs @ w_true)

    a, b = seg(), seg()
    label = (a.rewards.sum(1) > b.rewards.sum(1)).astype(np.float64)
    return Preferences(a, b, label, np.ones(n, dtype=bool))


def test_reward_model_trainer_custom_module() -> None:
    from prl.reward_model import ModuleReward, RewardModelTrainer

    d, T = 4, 5
    rng = np.random.default_rng(0)
    w_true = np.array([1.0, -2.0, 0.5, 0.0])
    prefs = _linear_prefs(256, T, d, w_true, rng)
    module = _Linear(d)
    trainer = RewardModelTrainer(module, lr=0.05, batch_size=64)
    assert isinstance(trainer.model, ModuleReward) and trainer.model.module is module
    # the BT loss at the start, from its closed form on the module's initial weights
    w0 = module.w.detach().double().numpy()
    ra = (prefs.a.obs.astype(np.float64) @ w0).sum(1)
    rb = (prefs.b.obs.astype(np.float64) @ w0).sum(1)
    z = ra - rb
    y = prefs.label
    expect = np.mean(-(y * -np.logaddexp(0, -z) + (1 - y) * -np.logaddexp(0, z)))
    assert trainer.loss(prefs) == pytest.approx(expect, rel=1e-5)
    rows = trainer.fit(prefs, steps=150, rng=np.random.default_rng(1))
    assert rows[-1]["reward_loss"] < rows[0]["reward_loss"]
    held = _linear_prefs(200, T, d, w_true, np.random.default_rng(2))
    assert trainer.accuracy(held) > 0.9
    w = module.w.detach().double().numpy()
    assert w @ w_true / np.linalg.norm(w) / np.linalg.norm(w_true) > 0.95
    # checkpoint round trip
    st = trainer.state_dict()
    t2 = RewardModelTrainer(_Linear(d), lr=0.05)
    t2.load_state_dict(st)
    assert t2.loss(held) == pytest.approx(trainer.loss(held), rel=1e-6)


def test_reward_model_trainer_custom_module_errors() -> None:
    from prl.reward_model import RewardModelTrainer

    with pytest.raises(InvalidInputError, match="torch module"):
        RewardModelTrainer(lambda o, a: o.sum(-1))

    class Bad(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.p = torch.nn.Parameter(torch.zeros(()))

        def forward(self, obs: torch.Tensor, act: torch.Tensor) -> torch.Tensor:
            return obs.sum() + self.p  # a scalar, not one reward per step

    prefs = _linear_prefs(8, 3, 2, np.ones(2), np.random.default_rng(0))
    with pytest.raises(InvalidInputError, match="batch axes"):
        RewardModelTrainer(Bad()).loss(prefs)


# ---- the pluralistic learners act too ---------------------------------------------------------
@pytest.mark.parametrize("algo", ["gpm", "maxmin_rlhf", "vpl"])
def test_evaluate_policy_pluralistic_learners(algo: str) -> None:
    """GPM plays the learned game's minimax winner; MaxMin-RLHF its max-min policy; VPL the plan
    of the prior-mean user (z = 0). The actions are those policies' (greedy) actions."""
    from prl import envs

    sm = ALGOS.get(algo).smoke
    learner, _ = train(algo, sm.env, steps=sm.steps, config=sm.config, env_kwargs=sm.env_kwargs)
    venv = DummyVecEnv([lambda: envs.make(sm.env, **sm.env_kwargs)])
    mean, _ = evaluate_policy(learner, venv, n_eval_episodes=2, deterministic=True)
    assert math.isfinite(mean)
    if algo == "gpm":
        pair, _ = learner.predict(np.int64(0), deterministic=True)
        assert list(pair) == [int(np.argmax(learner.policy()))] * 2
    else:
        pi = learner.acting_policy()
        S = pi.shape[0]
        acts, state = learner.predict(np.arange(S), deterministic=True)
        assert state is None
        np.testing.assert_array_equal(acts, pi.argmax(axis=1))
