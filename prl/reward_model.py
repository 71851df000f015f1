"""Bradley–Terry reward models r_θ(s, a) learned from segment preferences (shared by P-IQL, RLHF,
HERON).

Public API (stable; other modules import it)::

    model = RewardModel(observation_space, action_space, hidden=(256, 256), ensemble_size=1,
                        use_action=True, generator=torch_generator)
    model(obs, actions)                     # [E, *batch]: every member's r(s, a)
    model.reward(obs, actions)              # [*batch]: ensemble mean
    model.segment_returns(obs, actions, discount=1.0, valid=None)   # [E, B] from [B, T, ...]
    model.reward_numpy(obs, actions)        # numpy in, numpy out, no grad (env reward wrappers)

    bt_loss(returns_a, returns_b, label, mask=None)   # −[y log σ(Ra−Rb) + (1−y) log σ(Rb−Ra)]
    bt_accuracy(returns_a, returns_b, label, mask=None)

    trainer = RewardModelTrainer(model, lr=3e-4, batch_size=64, weight_decay=0.0, discount=1.0)
    trainer.fit(prefs, steps=1000, rng=np_generator)  # Preferences → list of metric rows
    trainer.train_step(batch)                         # one Adam step on a PairBatch
    trainer.loss(prefs); trainer.accuracy(prefs)
    trainer.state_dict(); trainer.load_state_dict(state)   # model + optimizer

Observations and actions are raw: integer indices for ``Discrete`` spaces (one-hot encoded inside
the model), float arrays for ``Box`` spaces (flattened). Labels follow
:class:`prl.types.Preferences`: ``label[i]`` = P(a[i] ≻ b[i]) (soft labels allowed), ``mask[i]``
False for skipped pairs.
An ensemble of E members is evaluated in one batched pass (stacked weights); in training each
member sees its own minibatch (bootstrap-style), as in PEBBLE-style ensembles.
Every probability is computed in log space (``logsigmoid``).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn
from torch.nn import functional as F

from prl.common.losses import bt_nll, masked_mean
from prl.errors import InvalidInputError
from prl.types import Preferences, Segments

__all__ = [
    "EnsembleMLP",
    "ModuleReward",
    "PairBatch",
    "RewardModel",
    "RewardModelTrainer",
    "bt_accuracy",
    "bt_loss",
    "encode_space",
    "space_dim",
]


# ---- space encoding ---------------------------------------------------------------------------
def space_dim(space: spaces.Space) -> int:
    """Width of the flat float encoding of a gymnasium space (one-hot for Discrete)."""
    if isinstance(space, spaces.Discrete):
        return int(space.n)
    if isinstance(space, (spaces.Box, spaces.MultiBinary)):
        return int(np.prod(space.shape)) if space.shape else 1
    raise InvalidInputError(
        f"reward models support Discrete, Box and MultiBinary spaces, got {type(space).__name__}"
    )


def _event_ndim(space: spaces.Space) -> int:
    return 0 if isinstance(space, spaces.Discrete) else len(space.shape)


def encode_space(
    space: spaces.Space, x: Any, device: Any = None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Encode raw values of ``space`` as floats ``[*batch, space_dim]`` (one-hot for Discrete)."""
    if isinstance(space, spaces.Discrete):
        t = torch.as_tensor(x, device=device)
        if t.is_floating_point():
            if not torch.all(t == torch.round(t)):
                raise InvalidInputError("Discrete values must be integers, got fractional values")
        t = t.long() - int(space.start)
        if t.numel() and (int(t.min()) < 0 or int(t.max()) >= int(space.n)):
            raise InvalidInputError(
                f"Discrete values must be in [{space.start}, {space.start + space.n - 1}], got "
                f"values in [{int(t.min()) + space.start}, {int(t.max()) + space.start}]"
            )
        return F.one_hot(t, int(space.n)).to(dtype)
    t = torch.as_tensor(x, device=device, dtype=dtype)
    nd = _event_ndim(space)
    if nd > 0 and tuple(t.shape[t.ndim - nd :]) != tuple(space.shape):
        raise InvalidInputError(
            f"values must end with the space's shape {tuple(space.shape)}, got {tuple(t.shape)}"
        )
    batch = t.shape[: t.ndim - nd]
    return t.reshape(*batch, space_dim(space))


# ---- batched ensemble MLP ---------------------------------------------------------------------
class EnsembleMLP(nn.Module):
    """E independent MLPs evaluated in one batched pass: ``[E, N, in] → [E, N, out]``.

    Weights are stacked ``[E, in, out]``; initialized like ``nn.Linear`` (U(±1/√fan_in)) from
    ``generator`` (the global torch RNG when None).
    """

    def __init__(
        self,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (256, 256),
        ensemble_size: int = 1,
        activation: type[nn.Module] = nn.ReLU,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        if int(ensemble_size) < 1:
            raise InvalidInputError(f"ensemble_size must be >= 1, got {ensemble_size}")
        self.ensemble_size = int(ensemble_size)
        dims = [int(in_dim), *[int(h) for h in hidden], int(out_dim)]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in itertools.pairwise(dims):
            bound = 1.0 / math.sqrt(d_in)
            w = (torch.rand(self.ensemble_size, d_in, d_out, generator=generator) * 2 - 1) * bound
            b = (torch.rand(self.ensemble_size, 1, d_out, generator=generator) * 2 - 1) * bound
            self.weights.append(nn.Parameter(w))
            self.biases.append(nn.Parameter(b))
        self.act = activation()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x [E, N, in]`` (or ``[N, in]``, shared by all members) → ``[E, N, out]``."""
        if x.ndim == 2:
            x = x.unsqueeze(0).expand(self.ensemble_size, *x.shape)
        n = len(self.weights)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            x = torch.baddbmm(b, x, w)
            if i < n - 1:
                x = self.act(x)
        return x


# ---- the reward model -------------------------------------------------------------------------
class RewardModel(nn.Module):
    """r_θ(s, a): an ensemble of MLPs on the encoded (observation, action)."""

    def __init__(
        self,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        hidden: Sequence[int] = (256, 256),
        ensemble_size: int = 1,
        use_action: bool = True,
        activation: type[nn.Module] = nn.ReLU,
        generator: torch.Generator | None = None,
    ):
        super().__init__()
        self.observation_space = observation_space
        self.action_space = action_space
        self.use_action = bool(use_action)
        in_dim = space_dim(observation_space) + (space_dim(action_space) if use_action else 0)
        self.net = EnsembleMLP(in_dim, 1, hidden, ensemble_size, activation, generator)

    @property
    def ensemble_size(self) -> int:
        """Number of members E."""
        return self.net.ensemble_size

    def _param(self) -> torch.Tensor:
        return self.net.weights[0]

    def features(self, obs: Any, actions: Any) -> torch.Tensor:
        """The encoded input ``[*batch, in_dim]`` on the model's device and dtype."""
        p = self._param()
        x = encode_space(self.observation_space, obs, p.device, p.dtype)
        if not self.use_action:
            return x
        a = encode_space(self.action_space, actions, p.device, p.dtype)
        if a.shape[:-1] != x.shape[:-1]:
            raise InvalidInputError(
                f"obs and actions must share batch axes, got {tuple(x.shape[:-1])} and "
                f"{tuple(a.shape[:-1])}"
            )
        return torch.cat([x, a], dim=-1)

    def forward(self, obs: Any, actions: Any) -> torch.Tensor:
        """Every member's reward ``[E, *batch]``."""
        x = self.features(obs, actions)
        batch = x.shape[:-1]
        out = self.net(x.reshape(-1, x.shape[-1]))  # [E, N, 1]
        return out[..., 0].reshape(self.ensemble_size, *batch)

    def forward_members(self, obs: Any, actions: Any) -> torch.Tensor:
        """Member-specific inputs ``[E, *batch, ...]`` → rewards ``[E, *batch]``."""
        x = self.features(obs, actions)
        if x.shape[0] != self.ensemble_size:
            raise InvalidInputError(
                f"member inputs must lead with E = {self.ensemble_size}, got {tuple(x.shape)}"
            )
        batch = x.shape[1:-1]
        out = self.net(x.reshape(self.ensemble_size, -1, x.shape[-1]))
        return out[..., 0].reshape(self.ensemble_size, *batch)

    def reward(self, obs: Any, actions: Any) -> torch.Tensor:
        """Ensemble-mean reward ``[*batch]``."""
        return self.forward(obs, actions).mean(0)

    def segment_returns(
        self, obs: Any, actions: Any, discount: float = 1.0, valid: Any = None
    ) -> torch.Tensor:
        """Σ_t γ^t r(s_t, a_t) per member for segments ``[B, T, ...]`` → ``[E, B]``."""
        r = self.forward(obs, actions)
        return discounted_sum(r, discount, valid)

    @torch.no_grad()
    def reward_numpy(self, obs: Any, actions: Any, chunk: int = 65536) -> np.ndarray:
        """Ensemble-mean reward as a float64 numpy array (no gradient; evaluated in chunks)."""
        was = self.training
        self.eval()
        try:
            x = self.features(obs, actions)
            batch = x.shape[:-1]
            flat = x.reshape(-1, x.shape[-1])
            outs = [
                self.net(flat[i : i + chunk])[..., 0].mean(0) for i in range(0, len(flat), chunk)
            ]
            r = torch.cat(outs) if outs else flat.new_zeros(0)
            return r.reshape(batch).double().cpu().numpy()
        finally:
            self.train(was)


class ModuleReward(nn.Module):
    """Any torch module ``module(obs, act) -> r`` as a one-member reward model (the interface
    :class:`RewardModelTrainer` trains): ``obs [*batch, ...]`` and ``act [*batch, ...]`` arrive
    as tensors on the module's device (float32 for float data, integers as they are), and the
    module returns rewards ``[*batch]`` (or ``[*batch, 1]``)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        if not isinstance(module, nn.Module):
            raise InvalidInputError(
                f"module must be a torch.nn.Module, got {type(module).__name__}"
            )
        self.module = module

    ensemble_size = 1

    def _param(self) -> torch.Tensor:
        for t in itertools.chain(self.module.parameters(), self.module.buffers()):
            return t
        return torch.zeros(())

    @staticmethod
    def _tensor(x: Any, device: torch.device) -> torch.Tensor:
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if t.is_floating_point():
            t = t.to(torch.float32)
        return t.to(device)

    def forward(self, obs: Any, actions: Any, batch_shape: Any = None) -> torch.Tensor:
        """The module's reward as one member ``[1, *batch]``.

        ``batch_shape`` (when known) is checked exactly; otherwise a trailing size-1 axis of
        the output (a reward head's) is dropped and the rest must lead the observations' shape.
        """
        dev = self._param().device
        o, a = self._tensor(obs, dev), self._tensor(actions, dev)
        r = self.module(o, a)
        if not isinstance(r, torch.Tensor):
            raise InvalidInputError(
                f"the reward module must return a tensor, got {type(r).__name__}"
            )
        if batch_shape is not None:
            want = tuple(batch_shape)
            ok = tuple(r.shape) in (want, (*want, 1))
        else:
            if r.ndim >= 2 and r.shape[-1] == 1:
                r = r[..., 0]
            want = tuple(r.shape)
            ok = r.ndim >= 1 and want == tuple(o.shape[: r.ndim])
        if not ok:
            raise InvalidInputError(
                f"the reward module must map obs {tuple(o.shape)} and actions "
                f"{tuple(a.shape)} to rewards over their batch axes, got {tuple(r.shape)}"
            )
        return r.reshape(want).unsqueeze(0)

    def forward_members(self, obs: Any, actions: Any) -> torch.Tensor:
        """Member-specific inputs ``[1, *batch, ...]`` → ``[1, *batch]``."""
        return self.forward(obs, actions)[0]

    def reward(self, obs: Any, actions: Any) -> torch.Tensor:
        """The reward ``[*batch]``."""
        return self.forward(obs, actions)[0]

    def segment_returns(
        self, obs: Any, actions: Any, discount: float = 1.0, valid: Any = None
    ) -> torch.Tensor:
        """Σ_t γ^t r(s_t, a_t) for segments ``[B, T, ...]`` → ``[1, B]``."""
        return discounted_sum(self.forward(obs, actions), discount, valid)

    @torch.no_grad()
    def reward_numpy(self, obs: Any, actions: Any) -> np.ndarray:
        """The reward as a float64 numpy array (no gradient)."""
        was = self.training
        self.eval()
        try:
            return self.reward(obs, actions).double().cpu().numpy()
        finally:
            self.train(was)


def discounted_sum(r: torch.Tensor, discount: float = 1.0, valid: Any = None) -> torch.Tensor:
    """Σ_t γ^t r[..., t] over the last axis, counting only ``valid`` steps when given."""
    T = r.shape[-1]
    w = torch.pow(
        torch.as_tensor(float(discount), dtype=r.dtype, device=r.device),
        torch.arange(T, dtype=r.dtype, device=r.device),
    )
    if valid is not None:
        v = torch.as_tensor(valid, device=r.device)
        if v.shape[-1] != T:
            raise InvalidInputError(f"valid must end with the time axis {T}, got {tuple(v.shape)}")
        r = r * v.to(r.dtype)
    return (r * w).sum(-1)


# ---- the Bradley–Terry loss --------------------------------------------------------------------
def _label_mask(label: Any, mask: Any, like: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    y = torch.as_tensor(label, dtype=like.dtype, device=like.device)
    if y.shape != like.shape[-1:]:
        raise InvalidInputError(f"label must have shape [{like.shape[-1]}], got {tuple(y.shape)}")
    if not bool(torch.all(torch.isfinite(y))) or bool(torch.any((y < 0) | (y > 1))):
        raise InvalidInputError("labels must be finite and in [0, 1]")
    if mask is None:
        m = torch.ones_like(y)
    else:
        m = torch.as_tensor(mask, device=like.device).to(like.dtype)
        if m.shape != y.shape:
            raise InvalidInputError(f"mask must have shape {tuple(y.shape)}, got {tuple(m.shape)}")
    return y, m


def bt_loss(
    returns_a: torch.Tensor,
    returns_b: torch.Tensor,
    label: Any,
    mask: Any = None,
    reduction: str = "mean",
) -> torch.Tensor:
    """Bradley–Terry cross-entropy −[y log σ(R_a − R_b) + (1 − y) log σ(R_b − R_a)].

    ``returns_*`` are ``[..., B]`` (e.g. ``[E, B]`` for an ensemble), ``label [B]`` soft labels
    P(a ≻ b), ``mask [B]`` drops pairs. ``reduction``: "mean" over valid pairs (and leading
    axes), "sum", or "none" (per pair, masked pairs give 0).
    """
    d = returns_a - returns_b
    y, m = _label_mask(label, mask, d)
    per = bt_nll(d, y) * m
    if reduction == "none":
        return per
    if reduction == "sum":
        return per.sum()
    if reduction != "mean":
        raise InvalidInputError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
    lead = per.numel() // max(per.shape[-1], 1)
    return per.sum() / torch.clamp(m.sum() * lead, min=1.0)


@torch.no_grad()
def bt_accuracy(
    returns_a: torch.Tensor, returns_b: torch.Tensor, label: Any, mask: Any = None
) -> float:
    """Fraction of valid, non-tied (label ≠ ½) pairs whose return order matches the label."""
    ra, rb = returns_a, returns_b
    if ra.ndim > 1:
        ra, rb = ra.reshape(-1, ra.shape[-1]).mean(0), rb.reshape(-1, rb.shape[-1]).mean(0)
    y, m = _label_mask(label, mask, ra)
    keep = (m > 0) & (y != 0.5)
    if not bool(keep.any()):
        return float("nan")
    pred = ra > rb
    return float(((pred == (y > 0.5)) & keep).sum() / keep.sum())


# ---- training -----------------------------------------------------------------------------------
@dataclass
class PairBatch:
    """Tensors of labelled segment pairs: obs/actions ``[B, T, ...]``, label and mask ``[B]``;
    ``valid_*`` ``[B, T]`` marks real (non-padding) steps. A leading member axis E is allowed on
    every array (member-specific minibatches)."""

    obs_a: torch.Tensor
    act_a: torch.Tensor
    obs_b: torch.Tensor
    act_b: torch.Tensor
    label: torch.Tensor
    mask: torch.Tensor
    valid_a: torch.Tensor | None = None
    valid_b: torch.Tensor | None = None

    def index(self, idx: torch.Tensor) -> PairBatch:
        """Rows ``idx`` (any shape, e.g. ``[E, n]`` for per-member minibatches)."""

        def g(x: torch.Tensor | None) -> torch.Tensor | None:
            return None if x is None else x[idx]

        return PairBatch(
            self.obs_a[idx],
            self.act_a[idx],
            self.obs_b[idx],
            self.act_b[idx],
            self.label[idx],
            self.mask[idx],
            g(self.valid_a),
            g(self.valid_b),
        )

    def __len__(self) -> int:
        return int(self.label.shape[-1])

    @staticmethod
    def from_preferences(prefs: Preferences, device: Any = "cpu") -> PairBatch:
        """Tensors of a :class:`Preferences` of segments (valid steps from ``infos["valid"]``)."""
        if not isinstance(prefs, Preferences) or not isinstance(prefs.a, Segments):
            raise InvalidInputError("PairBatch.from_preferences needs Preferences of Segments")

        def t(x: np.ndarray) -> torch.Tensor:
            x = np.asarray(x)
            if np.issubdtype(x.dtype, np.floating):
                return torch.as_tensor(x, dtype=torch.float32, device=device)
            return torch.as_tensor(x, device=device)

        va, vb = prefs.a.infos.get("valid"), prefs.b.infos.get("valid")
        return PairBatch(
            t(prefs.a.obs),
            t(prefs.a.actions),
            t(prefs.b.obs),
            t(prefs.b.actions),
            torch.as_tensor(prefs.label, dtype=torch.float32, device=device),
            torch.as_tensor(prefs.mask, device=device),
            None if va is None else torch.as_tensor(va, device=device).bool(),
            None if vb is None else torch.as_tensor(vb, device=device).bool(),
        )


class RewardModelTrainer:
    """Fits a :class:`RewardModel` — or any torch module ``(obs, act) → r``, wrapped in
    :class:`ModuleReward` — to segment preferences with Adam on :func:`bt_loss`."""

    def __init__(
        self,
        model: RewardModel | nn.Module,
        lr: float = 3e-4,
        batch_size: int = 64,
        weight_decay: float = 0.0,
        discount: float = 1.0,
    ):
        if not isinstance(model, (RewardModel, ModuleReward)):
            if not isinstance(model, nn.Module):
                raise InvalidInputError(
                    "model must be a RewardModel or a torch module (obs, act) -> r, got "
                    f"{type(model).__name__}"
                )
            model = ModuleReward(model)  # any (obs, act) → r module
        if not (lr > 0 and batch_size >= 1 and weight_decay >= 0 and 0 < discount <= 1):
            raise InvalidInputError(
                f"need lr > 0, batch_size >= 1, weight_decay >= 0, discount in (0, 1], got "
                f"lr={lr}, batch_size={batch_size}, weight_decay={weight_decay}, "
                f"discount={discount}"
            )
        self.model = model
        self.batch_size = int(batch_size)
        self.discount = float(discount)
        self.optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        self.updates = 0

    def _device(self) -> torch.device:
        return self.model._param().device

    def _batch(self, data: Preferences | PairBatch) -> PairBatch:
        if isinstance(data, PairBatch):
            return data
        return PairBatch.from_preferences(data, self._device())

    def _returns(self, b: PairBatch, members: bool) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.forward_members if members else self.model.forward
        if isinstance(self.model, ModuleReward):  # the batch axes are known: [*pairs, T]
            k, m = b.label.ndim + 1, self.model
            ra = discounted_sum(m(b.obs_a, b.act_a, b.obs_a.shape[:k]), self.discount, b.valid_a)
            rb = discounted_sum(m(b.obs_b, b.act_b, b.obs_b.shape[:k]), self.discount, b.valid_b)
            return (ra[0], rb[0]) if members else (ra, rb)
        ra = discounted_sum(f(b.obs_a, b.act_a), self.discount, b.valid_a)
        rb = discounted_sum(f(b.obs_b, b.act_b), self.discount, b.valid_b)
        return ra, rb

    def train_step(self, batch: PairBatch) -> dict[str, float]:
        """One Adam step on ``batch`` (shared by all members, or ``[E, n]`` member-specific)."""
        self.model.train()
        members = batch.label.ndim == 2
        ra, rb = self._returns(batch, members)
        if members:
            loss = masked_mean(bt_nll(ra - rb, batch.label), batch.mask)
        else:
            loss = bt_loss(ra, rb, batch.label, batch.mask)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.updates += 1
        with torch.no_grad():
            lab = batch.label.reshape(-1)
            keep = (batch.mask.reshape(-1) > 0) & (lab != 0.5)
            agree = ((ra - rb).reshape(-1) > 0) == (lab > 0.5)
            acc = float((agree & keep).sum() / keep.sum()) if bool(keep.any()) else float("nan")
        return {"reward_loss": float(loss.detach()), "reward_accuracy": acc}

    def sample(self, data: PairBatch, rng: np.random.Generator) -> PairBatch:
        """A minibatch: ``[E, batch_size]`` member-specific rows when E > 1, else ``[batch]``."""
        n = len(data)
        if n == 0:
            raise InvalidInputError("cannot train a reward model on zero preference pairs")
        E = self.model.ensemble_size
        shape = (E, self.batch_size) if E > 1 else (self.batch_size,)
        idx = torch.as_tensor(rng.integers(0, n, size=shape), device=data.label.device)
        return data.index(idx)

    def fit(
        self, prefs: Preferences | PairBatch, steps: int, rng: np.random.Generator
    ) -> list[dict[str, float]]:
        """``steps`` Adam steps on minibatches drawn with ``rng``; returns one row per step."""
        if not isinstance(rng, np.random.Generator):
            raise InvalidInputError(
                f"rng must be a numpy.random.Generator, got {type(rng).__name__}"
            )
        data = self._batch(prefs)
        return [self.train_step(self.sample(data, rng)) for _ in range(int(steps))]

    @torch.no_grad()
    def loss(self, prefs: Preferences | PairBatch) -> float:
        """Mean BT loss (ensemble-averaged returns' members, valid pairs) on ``prefs``."""
        self.model.eval()
        b = self._batch(prefs)
        ra, rb = self._returns(b, members=False)
        return float(bt_loss(ra, rb, b.label, b.mask))

    @torch.no_grad()
    def accuracy(self, prefs: Preferences | PairBatch) -> float:
        """Agreement of the ensemble-mean return order with the labels (valid, non-tied pairs)."""
        self.model.eval()
        b = self._batch(prefs)
        ra, rb = self._returns(b, members=False)
        return bt_accuracy(ra, rb, b.label, b.mask)

    def state_dict(self) -> dict[str, Any]:
        """A copy of the model and optimizer state (tensors and numbers only)."""
        return copy.deepcopy(
            {
                "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(),
                "updates": self.updates,
            }
        )

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict`."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.updates = int(state["updates"])
