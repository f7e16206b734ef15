"""`fusion`: a label-free combination of whichever filter scores a CutSet already has.

Rank averaging: each component score is oriented so that higher = worse, turned into its
percentile rank over the cuts that have it (ties share their mean rank), and a cut's fused
rank is the mean over the components it has (a null component is left out, not guessed).
Nothing is fitted on references: `oracle_wer` is never a component.

The fused rank is stored as a WER-like estimate (higher = worse, as DESIGN.md asks of
`consistency` and `fusion`): the cut at fused percentile p gets the p-quantile of the
pooled label-free WER estimates present (`proxy_wer`, `consistency`), so the paper's
threshold of 80 keeps about as many cuts as those filters keep; without any WER-like
component the value is 100 * p.  The mapping is monotone, so ranking quality (AUROC,
Spearman) is exactly that of the rank average.

It depends on the whole set, so it is scored in one piece (the runner's whole_set mode);
it is cheap (no model), so run it on the merged stage-4 manifest, not per shard.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata

from udistil.errors import UdistilError
from udistil.filters.base import Filter, Score, teacher_field, worse_is_higher

# Used when --components is not given, in this order, when present in the set.  The
# hallucination sub-signals are represented by their flag count `hallucination`, and
# chars_per_second has no single direction, so they are not components by default.
DEFAULT_COMPONENTS = ("proxy_wer", "consistency", "nll_sum", "nll", "confidence", "entropy",
                      "hallucination", "pesq", "sonar_sim")
WER_LIKE = ("proxy_wer", "consistency")


def percentile_ranks(values: list[float | None]) -> list[float | None]:
    """Percentile rank in (0, 1] of each non-null value (ties share the mean); None stays None."""
    present = [i for i, v in enumerate(values) if v is not None]
    out: list[float | None] = [None] * len(values)
    if not present:
        return out
    ranks = rankdata([values[i] for i in present], method="average") / len(present)
    for i, r in zip(present, ranks):
        out[i] = float(r)
    return out


def fuse_ranks(columns: dict[str, list[float | None]]) -> list[float | None]:
    """Mean percentile rank per cut over the oriented columns it has (None if it has none)."""
    ranked = [percentile_ranks(col) for col in columns.values()]
    fused = []
    for row in zip(*ranked):
        present = [r for r in row if r is not None]
        fused.append(float(np.mean(present)) if present else None)
    return fused


class Fusion(Filter):
    name = "fusion"
    higher_is_worse = True
    needs = ("scores",)
    default_threshold = 80.0
    whole_set = True

    def __init__(self, components: list[str] | None = None):
        self.requested = list(components) if components else None

    def choose_components(self, cuts) -> list[str]:
        from udistil.filters import filter_class

        candidates = self.requested or list(DEFAULT_COMPONENTS)
        chosen = []
        for name in candidates:
            cls = filter_class(name)
            if not cls.label_free:
                raise UdistilError(f"fusion is label-free; {name} reads references and cannot be a component")
            if name == self.name:
                continue
            if any(teacher_field(c, name) is not None for c in cuts):
                chosen.append(name)
            elif self.requested:
                raise UdistilError(f"fusion component {name} is not in the input; run `udistil score {name}` first")
        if not chosen:
            raise UdistilError("fusion found no filter scores in the input; score some filters first "
                               f"(any of {', '.join(DEFAULT_COMPONENTS)})")
        return chosen

    def score(self, cuts, audios):
        from udistil.filters import filter_class

        components = self.choose_components(cuts)
        columns = {}
        for name in components:
            direction = filter_class(name).higher_is_worse
            columns[name] = [worse_is_higher(teacher_field(c, name), direction) for c in cuts]
        fused = fuse_ranks(columns)
        self.components = components
        return [Score.null("no component score for this cut") if v is None else Score(v)
                for v in self.to_wer_scale(fused, cuts, components)]

    def to_wer_scale(self, fused, cuts, components) -> list[float | None]:
        pooled = [float(teacher_field(c, name)) for name in components if name in WER_LIKE
                  for c in cuts if teacher_field(c, name) is not None]
        percentiles = percentile_ranks(fused)
        if not pooled:
            return [None if p is None else 100.0 * p for p in percentiles]
        return [None if p is None else float(np.quantile(pooled, p)) for p in percentiles]
