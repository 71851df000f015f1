"""The Bradley–Terry / DPO / IPO loss family: one place for every preference likelihood.

Every BT-type loss of the lab is :func:`bt_nll` of some logit:

- reward models (:mod:`prl.reward_model`, P-IQL): the return difference R_a − R_b;
- DPO / BT on a policy margin h = log π(y)/μ(y) − log π(y')/μ(y') (:mod:`prl.algos.dpo`):
  β·h (:func:`dpo_loss`, :func:`bt_loss`);
- CPL (:mod:`prl.algos.cpl`): S_a − λS_b against S_b − λS_a (λ = 1 is plain BT on S_a − S_b).

Probabilities stay in log space (``logsigmoid``); the float operations are the ones each caller
always did, so results are bit-identical to the former per-module copies.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor
from torch.nn import functional as F

from prl.errors import InvalidInputError

__all__ = [
    "TRL_LOSS_TYPES",
    "bt_loss",
    "bt_nll",
    "dpo_loss",
    "ipo_loss",
    "masked_mean",
    "rdpo_loss",
    "smoothed_dpo_loss",
    "trl_loss",
]


def bt_nll(logit: Tensor, label: Any, logit_b: Tensor | None = None) -> Tensor:
    """Per-pair Bradley–Terry negative log-likelihood −[ℓ log σ(z) + (1 − ℓ) log σ(z′)].

    ``label`` ℓ is the (soft) probability that a ≻ b, ``logit`` z the log-odds of a ≻ b and
    ``logit_b`` z′ those of b ≻ a (default −z, the plain BT model P(a ≻ b) = σ(z); CPL's
    conservative form passes S_b − λS_a, Hejna et al. 2024, Eq. 5).
    """
    other = -logit if logit_b is None else logit_b
    return -(label * F.logsigmoid(logit) + (1.0 - label) * F.logsigmoid(other))


def masked_mean(per: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``per`` over the pairs where ``mask`` is true (all pairs when None)."""
    if mask is None:
        return per.mean()
    m = torch.as_tensor(mask, device=per.device).to(per.dtype)
    return (per * m).sum() / torch.clamp(m.sum(), min=1.0)


# ---- losses on a policy margin h = log π(y)/μ(y) − log π(y')/μ(y') -----------------------------
def bt_loss(h: Tensor, label: Tensor, beta: float = 1.0) -> Tensor:
    """Bradley–Terry negative log-likelihood −[ℓ log σ(βh) + (1−ℓ) log σ(−βh)] (soft ℓ)."""
    return bt_nll(beta * h, label)


def dpo_loss(h: Tensor, label: Tensor, beta: float) -> Tensor:
    """DPO (Rafailov et al. 2023, Eq. 7): the BT loss of the implicit reward β·log π/μ (soft
    labels); ``beta`` is the KL coefficient."""
    return bt_loss(h, label, beta)


def ipo_loss(h: Tensor, label: Tensor, beta: float) -> Tensor:
    """IPO (Azar et al. 2023, Eq. 17): (h_w,l − 1/(2β))² averaged over the label:
    ℓ(h−c)² + (1−ℓ)(h+c)², c = 1/(2β).

    Its minimiser in h is (ℓ − ½)/β; with ℓ = P(y ≻ y') this is the online-IPO loss.
    """
    c = 0.5 / beta
    return label * (h - c) ** 2 + (1.0 - label) * (h + c) ** 2


def _check_flip_rate(eps: Any) -> float:
    try:
        e = float(eps)
    except (TypeError, ValueError):
        raise InvalidInputError(f"the flip rate ε must be in [0, 0.5), got {eps!r}") from None
    if not (0.0 <= e < 0.5):
        raise InvalidInputError(f"the flip rate ε must be in [0, 0.5), got {eps!r}")
    return e


def rdpo_loss(h: Tensor, label: Tensor, beta: float, eps: float = 0.1) -> Tensor:
    """Robust DPO (Chowdhury et al. 2024): [(1−ε)ℓ(βh) − εℓ(−βh)]/(1−2ε) for the observed
    winner, ℓ(z) = −log σ(z), averaged over the (soft) label; an unbiased estimate of the clean
    DPO loss when each label was flipped with probability ε (registered with ε = 0.1)."""
    e = _check_flip_rate(eps)
    kept = bt_loss(h, label, beta)
    flipped = bt_loss(h, 1.0 - label, beta)
    return ((1.0 - e) * kept - e * flipped) / (1.0 - 2.0 * e)


def smoothed_dpo_loss(h: Tensor, label: Tensor, beta: float, eps: float = 0.0) -> Tensor:
    """Conservative DPO (TRL's ``sigmoid`` with ``label_smoothing`` ε): the DPO loss of the
    label smoothed towards ½, −[(1−ε)ℓ + ε(1−ℓ)] log σ(βh) − [ε ℓ + (1−ε)(1−ℓ)] log σ(−βh)."""
    e = _check_flip_rate(eps)
    return dpo_loss(h, label * (1.0 - 2.0 * e) + e if e else label, beta)


#: TRL's DPO-family ``loss_type`` names → the lab's loss names (``prl.algos.dpo.LOSSES``)
TRL_LOSS_TYPES: dict[str, str] = {"sigmoid": "dpo", "ipo": "ipo", "robust": "rdpo"}


def trl_loss(
    loss_type: str, label_smoothing: float = 0.0
) -> Callable[[Tensor, Tensor, float], Tensor]:
    """The lab's loss ``fn(h, label, beta)`` for TRL's ``loss_type`` and ``label_smoothing`` ε.

    ``sigmoid``: DPO (ε > 0: conservative DPO, :func:`smoothed_dpo_loss`); ``ipo``: IPO (ε must
    be 0, as in TRL); ``robust``: robust DPO with flip rate ε (:func:`rdpo_loss`).
    """
    if loss_type not in TRL_LOSS_TYPES:
        raise InvalidInputError(
            f"loss_type must be one of {', '.join(TRL_LOSS_TYPES)}, got {loss_type!r}"
        )
    e = _check_flip_rate(label_smoothing)
    if loss_type == "sigmoid":
        return dpo_loss if e == 0 else functools.partial(smoothed_dpo_loss, eps=e)
    if loss_type == "ipo":
        if e:
            raise InvalidInputError("loss_type 'ipo' takes no label_smoothing (TRL's IPO has none)")
        return ipo_loss
    return functools.partial(rdpo_loss, eps=e)
