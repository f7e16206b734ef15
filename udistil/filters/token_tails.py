"""Where a clip goes wrong: the worst stretch and the tail of the teacher's token statistics.

`confidence`, `entropy` and `nll` average over every token of a pseudo-label, so a clip
that is right for twenty tokens and then guesses for five looks nearly as good as a clean
one.  On real Arabic and Swahili that is the common failure: the teacher follows the
reading, loses it on a name or a number, and recovers.  These scores look at the bad part
only (read from stage 3's per-token values, no second model pass; higher = worse):

  worst_window    the highest mean negative log-probability over any WINDOW consecutive
                  tokens (the whole output when it is shorter);
  tail_nll        the negative log-probability that TAIL_FRACTION of the tokens reach or
                  exceed (a high percentile of the per-token NLL);
  entropy_window  the highest mean entropy (nats) over any WINDOW consecutive tokens.

WINDOW = 8 tokens is about one to two words of byte-level BPE in Arabic or Swahili: long
enough that one unlucky token does not decide, short enough that a lost phrase shows.
"""
from __future__ import annotations

import numpy as np

from udistil.filters.token_stats import _TokenStatistic

WINDOW = 8
TAIL_FRACTION = 0.1


def worst_window_mean(values: list[float], window: int = WINDOW) -> float:
    """The largest mean of `window` consecutive values (the plain mean when there are fewer)."""
    x = np.asarray(values, dtype=float)
    if len(x) <= window:
        return float(x.mean())
    sums = np.convolve(x, np.ones(window), mode="valid")
    return float(sums.max() / window)


class WorstWindow(_TokenStatistic):
    name = "worst_window"
    key = "teacher_logprobs"

    def summarise(self, values):
        return worst_window_mean([-v for v in values])


class TailNll(_TokenStatistic):
    name = "tail_nll"
    key = "teacher_logprobs"

    def summarise(self, values):
        return float(np.quantile([-v for v in values], 1.0 - TAIL_FRACTION))


class EntropyWindow(_TokenStatistic):
    name = "entropy_window"
    key = "teacher_entropy"

    def summarise(self, values):
        return worst_window_mean(values)
