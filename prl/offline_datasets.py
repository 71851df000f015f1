"""Mixed-quality offline preference datasets: random, medium and expert behaviour, labelled by a
scripted true-return teacher or a noisy B-Pref teacher, in the :mod:`prl.data` file format.

OPPO (Kang et al.) and the other offline preference learners are meant for data of mixed quality
(D4RL's random / medium / expert): the labels then say *which* of the behaviours in the data to
follow. This module builds such data from pieces of :mod:`prl.data`:

- behaviour levels: on a :class:`~prl.mdp.TabularMDP` (:func:`tabular_levels`) "random" is the
  uniform policy, "expert" an optimal policy and "medium" a deterministic greedy policy of a
  noisy Q* whose exact normalized value is ≈ ``medium_fraction`` (noise scale by bisection on the
  exact J; an ε-greedy medium is available too); on a
  gymnasium env (MuJoCo) "random" is uniform actions and "medium" / "expert" are snapshots of one
  SAC run after ``medium_steps`` and ``expert_steps`` (:func:`train_sac_levels`, D4RL's recipe of
  an early-stopped and a fully trained policy), run with small Gaussian action noise;
- segments: tabular segments start from μ0 (vectorized :func:`~prl.data.sample_tabular_segments`),
  MuJoCo segments are ``segment_length``-step windows of whole episodes
  (:func:`~prl.data.collect_rollouts` + :func:`~prl.data.fragment`); each segment records its
  level in ``infos["behaviour"]`` (the index into ``meta["levels"]``) and its source episode in
  ``infos["episode"]`` / ``infos["episode_return"]`` (episode ids are unique across chunks);
- labels: :func:`teacher_oracle` — "scripted" (hard labels by true segment return, B-Pref's
  oracle teacher) or one of B-Pref's noisy teachers; :func:`relabel` gives the same segments and
  pairs new labels, so a noisy-teacher comparison differs in the labels only.

:func:`mixed_quality_dataset` puts it together through :func:`~prl.data.generate_dataset`
(chunked, resumable, atomic, checksummed). ``meta`` holds ``env``, ``env_kwargs``, ``levels``,
``teacher``, ``label_discount`` (1: labels compare undiscounted returns) and ``level_returns`` (mean
episode return of each level's episodes in the data; exact J of each level's policy on tabular
envs as ``level_values``). This module is in ``prl`` and so never imports ``envs``: callers pass a
``make_env`` factory.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from prl.data import (
    PreferenceDataset,
    Rollouts,
    Segments,
    collect_rollouts,
    fragment,
    generate_dataset,
    pair_labels,
    sample_tabular_segments,
    sb3_policy,
    segment_scores,
    uniform_policy,
)
from prl.errors import InvalidInputError
from prl.oracles import BradleyTerry, Oracle, Regret, ScoreOracle, bpref_teacher

__all__ = [
    "LEVELS",
    "TEACHERS",
    "gym_level_chunks",
    "level_returns",
    "medium_epsilon",
    "mixed_quality_dataset",
    "noisy_greedy_policy",
    "relabel",
    "tabular_level_chunks",
    "tabular_levels",
    "teacher_oracle",
    "train_sac_levels",
]

LEVELS = ("random", "medium", "expert")
TEACHERS = ("scripted", "stochastic", "mistake", "myopic", "skip", "equal", "regret")
_EPISODE_STRIDE = 1_000_000  # episode ids of chunk i are i·stride + local id


# ---- teachers ------------------------------------------------------------------------------------
def teacher_oracle(
    kind: str,
    returns: np.ndarray | None = None,
    *,
    mdp: Any = None,
    beta: float = 1.0,
    eps: float = 0.1,
    gamma: float = 0.9,
    skip_quantile: float = 0.25,
    equal_fraction: float = 0.05,
) -> Oracle:
    """A labelling oracle: "scripted" = BT(β = inf) on the true segment return (hard labels;
    exact ties get ½ in :func:`mixed_quality_dataset` / :func:`relabel`); the B-Pref teachers
    "stochastic" BT(β), "mistake" (flip w.p. ε), "myopic" (weights γ^(H−1−k)), "skip" (drop pairs
    whose larger return is ≤ the ``skip_quantile`` quantile of ``returns``) and "equal" (label ½
    when |ΔR| < ``equal_fraction`` × the range of ``returns``); "regret" = hard regret labels
    with the exact A* of a tabular ``mdp`` (Knox et al.: independent of where a segment starts)."""
    if kind not in TEACHERS:
        raise InvalidInputError(f"teacher must be one of {', '.join(TEACHERS)}, got {kind!r}")
    if kind == "scripted":
        return BradleyTerry(np.inf)
    if kind == "regret":
        if mdp is None:
            raise InvalidInputError("teacher 'regret' needs the exact A* of a tabular env (mdp=)")
        return Regret.from_mdp(mdp, beta=np.inf)
    if kind in ("skip", "equal"):
        if returns is None or len(np.asarray(returns)) == 0:
            raise InvalidInputError(f"teacher {kind!r} needs the segment returns for its threshold")
        r = np.asarray(returns, dtype=np.float64)
        if not np.all(np.isfinite(r)):
            raise InvalidInputError("segment returns must be finite")
        if kind == "skip":
            if not 0.0 <= skip_quantile <= 1.0:
                raise InvalidInputError(f"skip_quantile must be in [0, 1], got {skip_quantile}")
            return bpref_teacher("skip", skip=float(np.quantile(r, skip_quantile)))
        if equal_fraction < 0:
            raise InvalidInputError(f"equal_fraction must be >= 0, got {equal_fraction}")
        return bpref_teacher("equal", equal=float(equal_fraction * (r.max() - r.min())))
    return bpref_teacher(kind, beta=beta, eps=eps, gamma=gamma)


def _hard_ties(label: np.ndarray, pairs: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Labels with ½ wherever the two scores are equal (a deterministic teacher's indifference)."""
    out = np.asarray(label, dtype=np.float64).copy()
    if len(pairs):
        a, b = scores[pairs[:, 0]], scores[pairs[:, 1]]
        out[np.isclose(a, b, rtol=0.0, atol=1e-9 * max(1.0, float(np.abs(scores).max())))] = 0.5
    return out


def relabel(
    ds: PreferenceDataset,
    oracle: Oracle,
    seed: int = 0,
    meta: dict[str, Any] | None = None,
) -> PreferenceDataset:
    """The same segments and pairs labelled by another oracle (labels drawn from
    ``default_rng([seed, 1])``); scores (true returns) are kept, ``meta["oracle"]`` updated."""
    if not isinstance(ds, PreferenceDataset):
        raise InvalidInputError(f"relabel needs a PreferenceDataset, got {type(ds).__name__}")
    if ds.n_pairs == 0:
        raise InvalidInputError("relabel needs a sparse dataset with labelled pairs, got none")
    rng = np.random.default_rng([int(seed), 1])
    label, mask = pair_labels(ds.segments, ds.pairs, oracle, rng)
    if (
        isinstance(oracle, ScoreOracle)
        and np.isinf(oracle.beta)
        and type(oracle).label is Oracle.label
    ):
        label = _hard_ties(label, ds.pairs, segment_scores(ds.segments, oracle))
    new_meta = {**ds.meta, "oracle": repr(oracle), **(meta or {})}
    return PreferenceDataset(ds.segments, ds.pairs, label, mask, ds.scores, new_meta)


# ---- tabular behaviour levels --------------------------------------------------------------------
def medium_epsilon(mdp: Any, fraction: float = 0.5, tol: float = 1e-9) -> float:
    """ε such that (1 − ε)·π* + ε·uniform has exact normalized value ``fraction`` (0 = uniform
    policy, 1 = optimal), by bisection on the exact J (continuous in ε, so a crossing exists)."""
    if not 0.0 <= fraction <= 1.0:
        raise InvalidInputError(f"fraction must be in [0, 1], got {fraction}")
    opt = mdp.optimal_policy()
    unif = np.full((mdp.S, mdp.A), 1.0 / mdp.A)
    J_star = float(mdp.v_star() @ mdp.mu0)
    J_unif = float(mdp.expected_return(unif))
    if J_star - J_unif <= 0:  # every policy is optimal
        return 0.0

    def gap(e: float) -> float:
        J = float(mdp.expected_return((1.0 - e) * opt + e * unif))
        return (J - J_unif) / (J_star - J_unif) - fraction

    lo, hi = 0.0, 1.0  # gap(0) = 1 − f >= 0 >= −f = gap(1)
    while hi - lo > tol:
        mid = 0.5 * (lo + hi)
        if gap(mid) > 0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def _normalized(mdp: Any, pi: np.ndarray, J_star: float, J_unif: float) -> float:
    gap = J_star - J_unif
    return 1.0 if gap <= 0 else (float(mdp.expected_return(pi)) - J_unif) / gap


def noisy_greedy_policy(
    mdp: Any, fraction: float = 0.5, seed: int = 0, iters: int = 40
) -> tuple[np.ndarray, float]:
    """A deterministic "medium" policy: argmax_a (Q*(s,a) + σ·std(Q*)·ξ(s,a)) with a fixed
    ξ ~ N(0, 1) (from ``seed``), σ found by bisection so that its exact normalized value is as
    close to ``fraction`` as the jumps of the argmax allow. Returns (policy [S, A], value)."""
    if not 0.0 <= fraction <= 1.0:
        raise InvalidInputError(f"fraction must be in [0, 1], got {fraction}")
    Q = mdp.q_star()
    live = ~np.asarray(mdp.terminal, bool)
    scale = float(Q[live].std()) or 1.0
    xi = np.random.default_rng(int(seed)).standard_normal(Q.shape)
    J_star = float(mdp.v_star() @ mdp.mu0)
    J_unif = float(mdp.expected_return(np.full((mdp.S, mdp.A), 1.0 / mdp.A)))

    def pol(sigma: float) -> tuple[np.ndarray, float]:
        pi = np.eye(mdp.A)[np.argmax(Q + sigma * scale * xi, axis=1)]
        return pi, _normalized(mdp, pi, J_star, J_unif)

    lo, hi = 0.0, 1.0
    best_lo, best_hi = pol(lo), pol(hi)
    while best_hi[1] > fraction and hi < 2.0**12:  # widen until the value falls below
        lo, best_lo = hi, best_hi
        hi *= 2.0
        best_hi = pol(hi)
    for _ in range(int(iters)):
        mid = 0.5 * (lo + hi)
        cand = pol(mid)
        if cand[1] > fraction:
            lo, best_lo = mid, cand
        else:
            hi, best_hi = mid, cand
    return min((best_lo, best_hi), key=lambda pv: abs(pv[1] - fraction))


def tabular_levels(
    mdp: Any,
    levels: Sequence[str] = LEVELS,
    medium_fraction: float = 0.5,
    medium: str = "noisy_greedy",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Policy matrices ``[S, A]`` of the behaviour levels: random = uniform, expert = optimal,
    medium = :func:`noisy_greedy_policy` (deterministic, consistently wrong in some states, like
    a partially trained policy) or ``"epsilon_greedy"`` (:func:`medium_epsilon`), with exact
    normalized value ≈ ``medium_fraction``."""
    out: dict[str, np.ndarray] = {}
    opt = mdp.optimal_policy()
    unif = np.full((mdp.S, mdp.A), 1.0 / mdp.A)
    for name in levels:
        if name == "random":
            out[name] = unif
        elif name == "expert":
            out[name] = opt
        elif name == "medium":
            if medium == "noisy_greedy":
                out[name] = noisy_greedy_policy(mdp, medium_fraction, seed)[0]
            elif medium == "epsilon_greedy":
                e = medium_epsilon(mdp, medium_fraction)
                out[name] = (1.0 - e) * opt + e * unif
            else:
                raise InvalidInputError(
                    f"medium must be 'noisy_greedy' or 'epsilon_greedy', got {medium!r}"
                )
        else:
            raise InvalidInputError(f"behaviour levels are {', '.join(LEVELS)}, got {name!r}")
    return out


def _with_ids(seg: Segments, chunk: int, level: int, episode: np.ndarray) -> Segments:
    infos = dict(seg.infos)
    infos["episode"] = np.asarray(episode, np.int64) + chunk * _EPISODE_STRIDE
    infos["behaviour"] = np.full(seg.rewards.shape[:2], level, dtype=np.int64)
    return Segments(seg.obs, seg.actions, seg.rewards, seg.next_obs, seg.dones, infos)


def tabular_level_chunks(
    mdp: Any,
    policies: dict[str, np.ndarray],
    segments_per_chunk: int,
    length: int,
    chunks_per_level: int = 1,
    start: Any = "mu0",
) -> Callable[[int, np.random.Generator], Segments]:
    """Chunk maker for :func:`~prl.data.generate_dataset`: chunk i holds ``segments_per_chunk``
    segments of level ``i // chunks_per_level`` (each segment is its own episode from μ0)."""
    names = list(policies)

    def chunk(i: int, rng: np.random.Generator) -> Segments:
        level = i // chunks_per_level
        seg = sample_tabular_segments(
            mdp, policies[names[level]], segments_per_chunk, length, rng, start=start
        )
        ret = seg.returns()
        ep = np.broadcast_to(np.arange(len(seg))[:, None], seg.rewards.shape)
        seg = _with_ids(seg, i, level, ep)
        infos = dict(seg.infos)
        infos["episode_return"] = np.broadcast_to(ret[:, None], seg.rewards.shape).copy()
        return Segments(seg.obs, seg.actions, seg.rewards, seg.next_obs, seg.dones, infos)

    return chunk


# ---- MuJoCo behaviour levels ---------------------------------------------------------------------
def train_sac_levels(
    make_env: Callable[[], Any],
    medium_steps: int,
    expert_steps: int,
    seed: int = 0,
    directory: str | Path | None = None,
    net_arch: Sequence[int] = (256, 256),
    learning_starts: int = 1000,
    batch_size: int = 256,
    device: str = "cpu",
    progress: bool = False,
) -> dict[str, Any]:
    """One SB3 SAC run; its snapshot after ``medium_steps`` is "medium", after ``expert_steps``
    "expert" (D4RL's early-stopped and fully trained policies). Snapshots are saved as
    ``medium.pt`` / ``expert.pt`` in ``directory`` (tensors only: :mod:`prl.sb3_io`) and loaded
    from there when both exist."""
    from prl.common.sac import FastSAC as SAC  # SB3 SAC, same numbers, faster update
    from prl.sb3_io import copy_model, load_weights, save_weights

    if not (1 <= int(medium_steps) <= int(expert_steps)):
        raise InvalidInputError(
            f"need 1 <= medium_steps <= expert_steps, got {medium_steps}, {expert_steps}"
        )

    def make_model() -> Any:
        return SAC(
            "MlpPolicy",
            make_env(),
            policy_kwargs={"net_arch": list(net_arch)},
            batch_size=batch_size,
            learning_starts=min(int(learning_starts), int(medium_steps)),
            seed=int(seed),
            device=device,
            verbose=0,
        )

    paths = None
    if directory is not None:
        d = Path(directory)
        paths = {"medium": d / "medium.pt", "expert": d / "expert.pt"}
        if all(p.is_file() for p in paths.values()):
            out = {}
            for k, p in paths.items():
                out[k] = make_model()
                load_weights(out[k], p)  # safe loader: nothing stored is executed
            return out
    model = make_model()
    model.learn(total_timesteps=int(medium_steps), progress_bar=progress)
    medium = copy_model(model, make_model)
    rest = int(expert_steps) - int(medium_steps)
    if rest > 0:
        model.learn(total_timesteps=rest, reset_num_timesteps=False, progress_bar=progress)
    out = {"medium": medium, "expert": model}
    if paths is not None:
        meta = {
            "net_arch": list(net_arch),
            "medium_steps": int(medium_steps),
            "expert_steps": int(expert_steps),
            "seed": int(seed),
        }
        for k, p in paths.items():
            save_weights(out[k], p, {**meta, "snapshot": k})
    return out


def gym_level_chunks(
    make_env: Callable[[], Any],
    policies: dict[str, Callable[[Any, np.random.Generator], Any]],
    episodes_per_chunk: int,
    length: int,
    segments_per_chunk: int,
    chunks_per_level: int = 1,
    action_noise: dict[str, float] | float = 0.0,
    max_rounds: int = 20,
) -> Callable[[int, np.random.Generator], Segments]:
    """Chunk maker: chunk i rolls out ``episodes_per_chunk`` episodes of level
    ``i // chunks_per_level`` (Gaussian action noise per level) and cuts ``segments_per_chunk``
    ``length``-step windows inside them; while no episode is ``length`` steps long it rolls out
    another batch (at most ``max_rounds``)."""
    names = list(policies)
    env_box: list[Any] = []

    def chunk(i: int, rng: np.random.Generator) -> Segments:
        if not env_box:
            env_box.append(make_env())
        level = i // chunks_per_level
        name = names[level]
        noise = action_noise.get(name, 0.0) if isinstance(action_noise, dict) else action_noise
        parts: list[Rollouts] = []
        for _ in range(max_rounds):  # short episodes (a falling random hopper): roll out more
            parts.append(
                collect_rollouts(
                    env_box[0],
                    policies[name],
                    rng,
                    n_episodes=episodes_per_chunk,
                    action_noise=noise,
                )
            )
            ro = Rollouts.concat(parts)
            starts, ends = ro.episode_bounds()
            if np.any(ends - starts >= length):
                break
        else:
            raise InvalidInputError(
                f"behaviour level {name!r}: no episode of {max_rounds * episodes_per_chunk} is "
                f"at least {length} steps long; use shorter segments"
            )
        seg = fragment(ro, length, n_segments=segments_per_chunk, rng=rng)
        return _with_ids(seg, i, level, seg.infos["episode"])

    return chunk


# ---- the dataset ---------------------------------------------------------------------------------
def level_returns(ds: PreferenceDataset, levels: Sequence[str]) -> dict[str, float]:
    """Mean return of each level's source episodes (each episode counted once)."""
    s = ds.segments
    beh = np.asarray(s.infos["behaviour"])[:, 0]
    ep = np.asarray(s.infos["episode"])[:, 0]
    ret = np.asarray(s.infos["episode_return"], dtype=np.float64)[:, 0]
    out = {}
    for k, name in enumerate(levels):
        sel = beh == k
        if not np.any(sel):
            continue
        _, first = np.unique(ep[sel], return_index=True)
        out[name] = float(ret[sel][first].mean())
    return out


def _level_chunks(
    make_env: Callable[[], Any],
    names: list[str],
    per_chunk: int,
    cpl: int,
    segment_length: int,
    medium_fraction: float,
    policies: dict[str, Any] | None,
    episodes: int,
    medium_steps: int,
    expert_steps: int,
    sac_dir: str | Path | None,
    sac_net_arch: Sequence[int] | None,
    action_noise: float,
    seed: int,
    progress: bool,
) -> tuple[Callable[[int, np.random.Generator], Segments], dict[str, Any]]:
    """The chunk maker of the levels and the meta entries that describe them."""
    env = make_env()
    meta: dict[str, Any] = {}
    try:
        if hasattr(env.unwrapped, "mdp"):
            mdp = env.unwrapped.mdp
            pols = (
                policies
                if policies is not None
                else tabular_levels(mdp, names, medium_fraction, seed=seed)
            )
            chunk_fn = tabular_level_chunks(mdp, pols, per_chunk, segment_length, cpl)
            meta["level_values"] = {
                k: float(mdp.expected_return(np.asarray(p))) for k, p in pols.items()
            }
            meta["behaviour"] = "tabular levels" + (
                f" (medium: normalized value {medium_fraction})" if "medium" in pols else ""
            )
            return chunk_fn, meta
        if policies is None:
            pols = {}
            sac: dict[str, Any] = {}
            if any(n in ("medium", "expert") for n in names):
                arch = sac_net_arch or ((256, 256) if expert_steps >= 100_000 else (64, 64))
                sac = train_sac_levels(
                    make_env,
                    medium_steps,
                    expert_steps,
                    seed=seed,
                    directory=sac_dir,
                    net_arch=arch,
                    progress=progress,
                )
            for n in names:
                if n == "random":
                    pols[n] = uniform_policy(env.action_space)
                elif n in ("medium", "expert"):
                    pols[n] = sb3_policy(sac[n], deterministic=True)
                else:
                    raise InvalidInputError(f"behaviour levels are {', '.join(LEVELS)}, got {n!r}")
            noise: dict[str, float] | float = {
                n: (0.0 if n == "random" else float(action_noise)) for n in names
            }
            meta.update(medium_steps=int(medium_steps), expert_steps=int(expert_steps))
        else:
            pols, noise = policies, float(action_noise)
    finally:
        env.close()
    eps_chunk = max(1, math.ceil(episodes / cpl))
    chunk_fn = gym_level_chunks(make_env, pols, eps_chunk, segment_length, per_chunk, cpl, noise)
    meta["behaviour"] = f"levels {names}, {episodes} episodes each, action noise {action_noise}"
    return chunk_fn, meta


def mixed_quality_dataset(
    path: str | Path | None,
    *,
    make_env: Callable[[], Any],
    env_name: str,
    env_kwargs: dict[str, Any] | None = None,
    levels: Sequence[str] = LEVELS,
    n_segments: int = 3000,
    n_pairs: int = 6000,
    segment_length: int = 20,
    teacher: str = "scripted",
    teacher_kwargs: dict[str, Any] | None = None,
    mode: str = "sparse",
    seed: int = 0,
    chunks_per_level: int = 1,
    medium_fraction: float = 0.5,
    policies: dict[str, Any] | None = None,
    episodes: int = 30,
    medium_steps: int = 500,
    expert_steps: int = 2000,
    sac_dir: str | Path | None = None,
    sac_net_arch: Sequence[int] | None = None,
    action_noise: float = 0.1,
    progress: bool = False,
) -> PreferenceDataset:
    """Build (or load / resume) a mixed-quality preference dataset (see the module docstring).

    ``n_segments`` are split evenly over ``levels``; ``policies`` (name → ``[S, A]`` matrix on
    tabular envs, name → ``policy(obs, rng)`` otherwise) replaces the default levels. MuJoCo:
    ``episodes`` per level, SAC snapshots from :func:`train_sac_levels` (``sac_dir`` caches them)
    with Gaussian ``action_noise`` on medium/expert. The scripted-label dataset is generated first
    (chunk by chunk, resumable); another ``teacher`` relabels its pairs (the file at ``path`` then
    holds the relabelled data and the scripted one sits next to it as ``<stem>_scripted.npz``).
    """
    if teacher not in TEACHERS:
        raise InvalidInputError(f"teacher must be one of {', '.join(TEACHERS)}, got {teacher!r}")
    if mode not in ("sparse", "dense"):
        raise InvalidInputError(f"mode must be 'sparse' or 'dense', got {mode!r}")
    if teacher != "scripted" and mode != "sparse":
        raise InvalidInputError(
            f"a noisy teacher labels fixed pairs: needs mode 'sparse', got {mode!r}"
        )
    names = list(policies) if policies is not None else list(levels)
    cpl = chunks_per_level
    if not names or not isinstance(cpl, (int, np.integer)) or cpl < 1 or n_segments < len(names):
        raise InvalidInputError(
            f"need >= 1 level, chunks_per_level >= 1 and n_segments >= the number of levels, got "
            f"{names}, {cpl}, {n_segments}"
        )
    scripted_path = None
    if path is not None:
        path = Path(path)
        if path.suffix != ".npz":
            raise InvalidInputError(f"dataset files end in .npz, got {path.name!r}")
        if teacher != "scripted" and path.exists():
            return PreferenceDataset.load(path, expect={"env": env_name, "teacher": teacher})
        scripted_path = (
            path if teacher == "scripted" else path.with_name(f"{path.stem}_scripted.npz")
        )
    if scripted_path is not None and scripted_path.exists():
        base = PreferenceDataset.load(
            scripted_path, expect={"env": env_name, "teacher": "scripted"}
        )
    else:  # chunk by chunk, resumable when a path is given
        per_chunk = math.ceil(n_segments / (len(names) * cpl))
        chunk_fn, extra = _level_chunks(
            make_env,
            names,
            per_chunk,
            int(cpl),
            segment_length,
            medium_fraction,
            policies,
            episodes,
            medium_steps,
            expert_steps,
            sac_dir,
            sac_net_arch,
            action_noise,
            seed,
            progress,
        )
        meta = {
            "env": env_name,
            "env_kwargs": dict(env_kwargs or {}),
            "levels": names,
            "label_discount": 1.0,
            "builder": "mixed_quality",
            "teacher": "scripted",
            **extra,
        }
        base = generate_dataset(
            scripted_path,
            chunk_fn=chunk_fn,
            n_chunks=len(names) * int(cpl),
            oracle=teacher_oracle("scripted"),
            mode=mode,
            n_pairs=n_pairs if mode == "sparse" else None,
            seed=seed,
            meta=meta,
            progress=progress,
        )
    if "level_returns" not in base.meta:
        m = {**base.meta, "level_returns": level_returns(base, names), "ties": "label 1/2"}
        label = _hard_ties(base.label, base.pairs, base.scores)  # indifferent on equal returns
        base = PreferenceDataset(base.segments, base.pairs, label, base.mask, base.scores, m)
        if scripted_path is not None:
            base.save(scripted_path)
    if teacher == "scripted":
        return base
    mdp = None
    if teacher == "regret":
        env = make_env()
        if not hasattr(env.unwrapped, "mdp"):
            raise InvalidInputError(f"teacher 'regret' needs a tabular env, got {env_name!r}")
        mdp = env.unwrapped.mdp
        env.close()
    oracle = teacher_oracle(teacher, base.scores, mdp=mdp, **(teacher_kwargs or {}))
    extra_meta: dict[str, Any] = {"teacher": teacher}
    if mdp is not None:
        extra_meta["label_discount"] = float(mdp.gamma)
    ds = relabel(base, oracle, seed=seed, meta=extra_meta)
    if path is not None:
        ds.save(path)
    return ds
