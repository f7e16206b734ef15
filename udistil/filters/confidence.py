"""`confidence`: mean token probability of the teacher's own output (higher = better).

Known failure (measured on the mini corpus): a teacher caught in a repetition loop is
confident about every repeat, so looping Arabic/Swahili outputs look good here; the
hallucination signals and fusion catch them.
"""
import math

from udistil.filters.token_stats import _TokenStatistic


class Confidence(_TokenStatistic):
    name = "confidence"
    higher_is_worse = False
    # Below half probability per token the teacher is guessing more often than not.
    default_threshold = 0.5

    def summarise(self, values):
        return sum(math.exp(v) for v in values) / len(values)
