"""Soft selection: each training cut's loss weighted by how likely its pseudo-label is good.

Stage 5 keeps or drops a cut by a filter's score; `--weight-by FILTER` keeps every cut and
weights its loss by w = clip(1 - score / 100, 0, 1) instead.  That reading of a score needs
a 0-100 scale on which higher is worse: `fusion` (calibrated: 100 x the estimated
probability that the label is bad, so w is the probability that it is good; uncalibrated: a
WER-like estimate capped at 100) and the WER-like filters (`proxy_wer`, `consistency`, and
`oracle_wer`, which reads the references).  Any other filter is refused rather than
guessed onto that scale (a confidence in [0, 1] or an NLL in nats would give nonsense
weights).

A cut without the score gets weight 0 (select's null rule: the filter could not vouch for
it) and is counted; the loss (loss.py) is the weighted mean over tokens, in which a cut of
weight 0 adds nothing, not even to the gradient.  The dev loss stays unweighted: it chooses
the best checkpoint, and must not move with the weights.
"""
from __future__ import annotations

import math

from udistil.errors import UdistilError

# Filters whose score is 0-100 and higher-is-worse (WER-like, or 100 x P(bad)).
PERCENT_BAD_FILTERS = ("fusion", "proxy_wer", "consistency", "oracle_wer")


def check_weight_filter(name: str) -> None:
    """Refuse a filter whose scores cannot be read as 0-100, higher-is-worse."""
    from udistil.select.selection import resolve_direction

    higher_is_worse, _ = resolve_direction(name)  # an unknown name: UdistilError listing the filters
    if not higher_is_worse or name not in PERCENT_BAD_FILTERS:
        direction = "higher is worse" if higher_is_worse else "higher is better"
        raise UdistilError(
            f"--weight-by {name}: its scores ({direction}) are not on a 0-100 scale where higher is "
            f"worse, so 1 - score/100 is no weight; choose one of {', '.join(PERCENT_BAD_FILTERS)}")


def cut_weight(cut, name: str) -> float | None:
    """clip(1 - score/100, 0, 1) of the cut's `name` score; None when it has none."""
    from udistil.filters.base import teacher_field

    score = teacher_field(cut, name)
    if score is None:
        return None
    try:
        score = float(score)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(score):
        return None
    return min(1.0, max(0.0, 1.0 - score / 100.0))
