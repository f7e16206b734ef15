"""`entropy`: mean per-token entropy (nats) of the teacher's distribution (higher = worse)."""
from udistil.filters.token_stats import _TokenStatistic


class Entropy(_TokenStatistic):
    name = "entropy"
    key = "teacher_entropy"
    # 1 nat: the teacher spreads its mass over about e (2.7) tokens per step on average.
    default_threshold = 1.0

    def summarise(self, values):
        return sum(values) / len(values)
