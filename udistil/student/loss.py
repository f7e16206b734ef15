"""The distillation loss (distil-whisper's): alpha_ce * CE + alpha_kl * T^2 * KL(teacher || student).

- CE: the student's cross-entropy on the teacher's pseudo-label tokens.
- KL: between the teacher's and the student's next-token distributions, both softened
  by the temperature T; the T^2 factor keeps its gradient on the CE term's scale
  (Hinton et al.).  KL(teacher || student) = sum_v p_t(v) (log p_t(v) - log p_s(v)).

Both terms are means over the label positions that are not padding (labels != -100),
computed in float32 whatever the autocast dtype of the logits.

With the teacher's stored targets (teacher/kd_targets.py) the teacher is a top-k of its
distribution at temperature T plus the mass of everything else, r_t = 1 - sum_k p_t.  The
student's distribution is collapsed the same way (its top-k entries at the teacher's ids,
and r_s for the rest), and

    KL_k = sum_{v in top-k} p_t(v) (log p_t(v) - log p_s(v)) + r_t (log r_t - log r_s)

which equals the full KL when k covers the vocabulary and is a lower bound otherwise (the
log-sum inequality); tests compare the two by hand.  The KL is averaged over the positions
that have a stored row (the pseudo-label's tokens and its end token); CE covers every label.

Optionally (alpha_mse > 0) the mean squared error between the student's and the teacher's
last decoder hidden states (stored, or from the live teacher) is added, over the same
positions as the KL: whisper-acft's loss for learning a short audio context.

Soft selection (`cut_weights`, one weight per cut; cut_weights.py) turns every mean above
into a weighted mean over the same positions, each weighted by its cut's w:
sum_c w_c (sum of c's token losses) / sum_c w_c (c's tokens).  All weights 1 is the plain
mean; a cut of weight 0 is left out like padding, so it adds nothing to the loss or its
gradient.  Without weights the plain means are computed as before, not as a weighted mean
with weights 1 (which differs in the last bits).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from udistil.student.config import LossWeights  # noqa: F401 (re-exported: the loss's weights)
from udistil.student.data import IGNORE_INDEX


@dataclass
class StoredTeacher:
    """Padded stored targets for a batch (see StoredTargets.batch)."""
    ids: torch.Tensor        # [B, T, k] long
    logprobs: torch.Tensor   # [B, T, k] teacher log-probabilities at temperature T
    mask: torch.Tensor       # [B, T] bool: positions that have a stored row
    hidden: torch.Tensor | None = None  # [B, T, d]


@dataclass
class LossParts:
    total: torch.Tensor  # what is back-propagated
    ce: torch.Tensor
    kl: torch.Tensor
    n_tokens: int
    mse: torch.Tensor | None = None


def topk_kl(student_logp: torch.Tensor, teacher_ids: torch.Tensor,
            teacher_logp: torch.Tensor) -> torch.Tensor:
    """Per-row KL_k (see the module doc): student_logp [N, V] (log-softmax at T),
    teacher_ids/teacher_logp [N, k].  Returns [N]."""
    student_top = student_logp.gather(1, teacher_ids)
    # log r_s: log-sum-exp of the student's log-probs outside the teacher's top-k.
    outside = student_logp.scatter(1, teacher_ids, float("-inf"))
    student_rest = torch.logsumexp(outside, dim=-1)
    teacher_p = teacher_logp.exp()
    teacher_rest_mass = (1.0 - teacher_p.sum(-1)).clamp_min(0.0)
    kl = (teacher_p * (teacher_logp - student_top)).sum(-1)
    # Below 1e-6 the "rest" is float32 rounding of a sum of probabilities (k = the whole
    # vocabulary leaves none, and the student's log r_s is then -inf): no term.
    rest = torch.where(teacher_rest_mass > 1e-6,
                       teacher_rest_mass * (torch.log(teacher_rest_mass.clamp_min(1e-30))
                                            - student_rest.clamp_min(-100.0)),
                       torch.zeros_like(teacher_rest_mass))
    return kl + rest


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor | None,
                      labels: torch.Tensor, weights: LossWeights,
                      stored: StoredTeacher | None = None,
                      student_hidden: torch.Tensor | None = None,
                      teacher_hidden: torch.Tensor | None = None,
                      cut_weights: torch.Tensor | None = None) -> LossParts:
    """Loss over the non-padding positions of `labels` ([batch, time]; logits [batch, time, vocab]).

    The teacher is either live logits (`teacher_logits`, and `teacher_hidden` for the MSE) or
    `stored` targets.  `cut_weights` [batch]: each cut's weight (module doc); None: unweighted.
    `n_tokens` counts the positions read (those of cuts with a positive weight)."""
    if stored is not None:
        return _stored_loss(student_logits, labels, weights, stored, student_hidden, cut_weights)
    mask, token_weights = loss_positions(labels, cut_weights)
    n_tokens = int(mask.sum())
    if n_tokens == 0:
        zero = student_logits.sum() * 0.0
        return LossParts(zero, zero.detach(), zero.detach(), 0)
    # Select the real positions first: padding can be half of a bucket's logits.
    student = student_logits[mask].float()
    teacher = teacher_logits[mask].float().detach()
    w = None if token_weights is None else token_weights[mask]
    ce = _cross_entropy(student, labels[mask], w)
    t = weights.temperature
    student_logp = F.log_softmax(student / t, dim=-1)
    teacher_logp = F.log_softmax(teacher / t, dim=-1)
    kl = _mean((teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1), w)
    total = weights.alpha_ce * ce + weights.alpha_kl * t * t * kl
    mse = None
    if weights.alpha_mse > 0:
        mse = _state_mse(student_hidden, None if teacher_hidden is None else teacher_hidden.detach(), mask,
                         token_weights)
        total = total + weights.alpha_mse * mse
    return LossParts(total, ce.detach(), kl.detach(), n_tokens,
                     mse.detach() if mse is not None else None)


def loss_positions(labels: torch.Tensor, cut_weights: torch.Tensor | None):
    """The positions the loss reads, [batch, time] bool (real labels of cuts whose weight is
    positive), and each position's weight [batch, time] (None when unweighted)."""
    mask = labels != IGNORE_INDEX
    if cut_weights is None:
        return mask, None
    token_weights = cut_weights.to(labels.device, torch.float32)[:, None].expand(labels.shape)
    return mask & (token_weights > 0), token_weights


def _mean(per_position: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return per_position.mean()
    return (per_position * weights).sum() / weights.sum()


def _cross_entropy(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return F.cross_entropy(logits, targets)
    return _mean(F.cross_entropy(logits, targets, reduction="none"), weights)


def _state_mse(student_hidden, teacher_hidden, mask, token_weights=None) -> torch.Tensor:
    if student_hidden is None or teacher_hidden is None:
        raise ValueError("alpha_mse needs the student's and the teacher's last decoder states")
    if token_weights is None:
        return F.mse_loss(student_hidden[mask].float(), teacher_hidden[mask].float())
    per_position = (student_hidden[mask].float() - teacher_hidden[mask].float()).pow(2).mean(-1)
    return _mean(per_position, token_weights[mask])


def _stored_loss(student_logits, labels, weights: LossWeights, stored: StoredTeacher,
                 student_hidden, cut_weights=None) -> LossParts:
    mask, token_weights = loss_positions(labels, cut_weights)
    n_tokens = int(mask.sum())
    if n_tokens == 0:
        zero = student_logits.sum() * 0.0
        return LossParts(zero, zero.detach(), zero.detach(), 0)
    ce = _cross_entropy(student_logits[mask].float(), labels[mask],
                        None if token_weights is None else token_weights[mask])
    kd_mask = stored.mask & mask
    t = weights.temperature
    total = weights.alpha_ce * ce
    kl = ce.new_zeros(())
    if kd_mask.any():
        student_logp = F.log_softmax(student_logits[kd_mask].float() / t, dim=-1)
        kl = _mean(topk_kl(student_logp, stored.ids[kd_mask], stored.logprobs[kd_mask].float()),
                   None if token_weights is None else token_weights[kd_mask])
        total = total + weights.alpha_kl * t * t * kl
    mse = None
    if weights.alpha_mse > 0:
        mse = _state_mse(student_hidden, stored.hidden, kd_mask, token_weights)
        total = total + weights.alpha_mse * mse
    return LossParts(total, ce.detach(), kl.detach(), n_tokens,
                     mse.detach() if mse is not None else None)
