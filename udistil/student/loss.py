"""The distillation loss (distil-whisper's): alpha_ce * CE + alpha_kl * T^2 * KL(teacher || student).

- CE: the student's cross-entropy on the teacher's pseudo-label tokens.
- KL: between the teacher's and the student's next-token distributions, both softened
  by the temperature T; the T^2 factor keeps its gradient on the CE term's scale
  (Hinton et al.).  KL(teacher || student) = sum_v p_t(v) (log p_t(v) - log p_s(v)).

Both terms are means over the label positions that are not padding (labels != -100),
computed in float32 whatever the autocast dtype of the logits.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from udistil.student.data import IGNORE_INDEX


@dataclass
class LossWeights:
    alpha_ce: float = 0.8
    alpha_kl: float = 1.0
    temperature: float = 2.0


@dataclass
class LossParts:
    total: torch.Tensor  # what is back-propagated
    ce: torch.Tensor
    kl: torch.Tensor
    n_tokens: int


def distillation_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                      labels: torch.Tensor, weights: LossWeights = LossWeights()) -> LossParts:
    """Loss over the non-padding positions of `labels` ([batch, time]; logits [batch, time, vocab])."""
    mask = labels != IGNORE_INDEX
    n_tokens = int(mask.sum())
    if n_tokens == 0:
        zero = student_logits.sum() * 0.0
        return LossParts(zero, zero.detach(), zero.detach(), 0)
    # Select the real positions first: padding can be half of a bucket's logits.
    student = student_logits[mask].float()
    teacher = teacher_logits[mask].float().detach()
    ce = F.cross_entropy(student, labels[mask])
    t = weights.temperature
    student_logp = F.log_softmax(student / t, dim=-1)
    teacher_logp = F.log_softmax(teacher / t, dim=-1)
    kl = (teacher_logp.exp() * (teacher_logp - student_logp)).sum(-1).mean()
    total = weights.alpha_ce * ce + weights.alpha_kl * t * t * kl
    return LossParts(total, ce.detach(), kl.detach(), n_tokens)
