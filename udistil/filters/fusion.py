"""`fusion`: one score from whichever label-free filter scores a CutSet already has.

Two ways, both label-free at run time (`oracle_wer` can never be a component):

* Calibrated (`--calibration FILE`, written by `udistil fit-fusion` on the labelled dev
  set; stage 4 does this whenever the dev set has references).  Per language, the
  combination of components that best finds true WER > 80 on held-out dev clips: a single
  filter where nothing beats it, else a weighted mean or a logistic regression of the
  components' dev percentiles.  Value: 100 x the estimated probability that the
  pseudo-label's true WER exceeds 80 (higher = worse; threshold 50 keeps the clips more
  likely good than bad).  The language prior is the dev rate of bad labels per language.
  See fusion_calibration.py for the fit and why it is built that way.

* Uncalibrated (no dev references anywhere): the agreement fusion below.  Measured on
  real Arabic and Swahili it scores below its best component (a weak family that agrees
  with a strong one gains weight), so it is the fallback, not the default of a recipe
  with a labelled dev set.  Stored as a WER-like estimate.  Four steps:

1. One scale.  WER-like components (`proxy_wer`, `consistency`) are used as they are,
   capped at 100 (beyond 100 a WER says nothing more about usability).  Every other
   component is oriented so that higher = worse, turned into its percentile rank over the
   cuts that have it, and mapped onto the pooled distribution of the WER-like values
   present (quantile matching); with no WER-like component the value is 100 x percentile.
2. One vote per source of evidence.  Components that read the same evidence form a
   family and are averaged first: the teacher's own token statistics (confidence,
   entropy, nll, nll_sum, the window and tail statistics) are one family, the text-only
   signals (hallucination flags, word frequencies, language identity) another; proxy,
   consistency, pesq and sonar_sim are each their own.  Otherwise many views of one
   softmax would outvote an independent proxy model.
3. Agreement weights (unsupervised).  Each family's weight is its Spearman correlation
   with the weighted consensus of the other families (negative -> 0), iterated three
   times: a family that agrees with the others is trusted more, one that is noise (on
   the mini corpus: espeak-rendered PESQ) fades out.  The weights are logged.
   A cut's fused value is the weighted mean over the families it has (nulls left out).
4. Language prior.  With `language_prior` lambda (default 0.5), the value is shrunk
   toward the mean fused value of the cut's language: a pseudo-label in a language the
   teacher handles badly overall is less likely to be good.  This changes the order
   across languages only, never within one; 0 turns it off.
5. Back to a WER scale.  Averaging pulls values to the middle, so the fused values are
   quantile-matched onto the pooled WER-like values (monotone: rankings, AUROC and
   Spearman are unchanged).  Threshold 50 keeps an estimated WER <= 50 (the better half
   when no WER-like component is present).

It depends on the whole set (uncalibrated) so it is scored in one piece (the runner's
whole_set mode); it is cheap (no model), so run it on the merged stage-4 manifest.
"""
from __future__ import annotations

import logging

import numpy as np

from udistil.errors import UdistilError
from udistil.filters.base import Filter, Score, cut_language, teacher_field, worse_is_higher
from udistil.filters.fusion_calibration import DEFAULT_COMPONENTS, apply_calibration, read_calibration

logger = logging.getLogger(__name__)

WER_LIKE = ("proxy_wer", "consistency")
WER_CAP = 100.0
FAMILIES = {"confidence": "teacher", "entropy": "teacher", "nll": "teacher", "nll_sum": "teacher",
            "worst_window": "teacher", "tail_nll": "teacher", "entropy_window": "teacher",
            "hallucination": "text", "word_nll": "text", "language_confidence": "text", "compression_ratio": "text", "repeated_ngrams": "text",
            "chars_per_second": "text"}
AGREEMENT_ITERATIONS = 3


def percentile_ranks(values: list[float | None]) -> list[float | None]:
    """Percentile rank in (0, 1] of each non-null value (ties share the mean); None stays None."""
    from scipy.stats import rankdata  # here: scipy.stats costs ~1 s at start-up
    present = [i for i, v in enumerate(values) if v is not None]
    out: list[float | None] = [None] * len(values)
    if not present:
        return out
    ranks = rankdata([values[i] for i in present], method="average") / len(present)
    for i, r in zip(present, ranks):
        out[i] = float(r)
    return out


def quantiles_at(pooled: list[float], ranks: list[float | None]) -> list[float | None]:
    """`np.quantile(pooled, p)` for every non-null rank p, in one call: one sort of the pool
    instead of one per cut (per-cut calls made fusion quadratic: minutes at 100K cuts)."""
    present = [i for i, p in enumerate(ranks) if p is not None]
    out: list[float | None] = [None] * len(ranks)
    if present:
        values = np.quantile(np.asarray(pooled, dtype=float), [ranks[i] for i in present])
        for i, v in zip(present, values.tolist()):
            out[i] = v
    return out


def weighted_mean(columns: dict[str, list], weights: dict[str, float], exclude: str | None = None) -> list:
    out = []
    for i in range(len(next(iter(columns.values())))):
        pairs = [(weights[f], col[i]) for f, col in columns.items() if f != exclude and col[i] is not None]
        total = sum(w for w, _ in pairs)
        if total > 0:
            out.append(sum(w * v for w, v in pairs) / total)
        else:  # every family present here has weight 0: fall back to their plain mean
            out.append(float(np.mean([v for _, v in pairs])) if pairs else None)
    return out


def agreement_weights(families: dict[str, list]) -> dict[str, float]:
    from scipy.stats import spearmanr  # here: scipy.stats costs ~1 s at start-up
    weights = {f: 1.0 for f in families}
    if len(families) < 2:
        return weights
    for _ in range(AGREEMENT_ITERATIONS):
        updated = {}
        for f, col in families.items():
            others = weighted_mean(families, weights, exclude=f)
            pairs = [(a, b) for a, b in zip(col, others) if a is not None and b is not None]
            rho = spearmanr(*zip(*pairs)).statistic if len(pairs) >= 3 else float("nan")
            updated[f] = max(0.0, float(rho)) if np.isfinite(rho) else 0.0
        if not any(updated.values()):
            break  # nothing agrees with anything: keep equal weights
        weights = updated
    return weights


def shrink_to_language_mean(values: list, languages: list, strength: float) -> list:
    means = {}
    for lang in set(languages):
        present = [v for v, l in zip(values, languages) if l == lang and v is not None]
        means[lang] = float(np.mean(present)) if present else None
    return [None if v is None else (1 - strength) * v + strength * means[l] for v, l in zip(values, languages)]


class Fusion(Filter):
    name = "fusion"
    higher_is_worse = True
    needs = ("scores",)
    # Calibrated: keep a clip more likely good than bad.  Uncalibrated (WER-like scale): keep an
    # estimated WER <= 50, or the better half when no WER-like component is present.
    default_threshold = 50.0
    whole_set = True

    def __init__(self, components: list[str] | None = None, language_prior: float = 0.5,
                 calibration: str | None = None):

        self.requested = list(components) if components else None
        if not 0.0 <= language_prior <= 1.0:
            raise UdistilError(f"--language-prior must be between 0 and 1 (got {language_prior})")
        self.language_prior = language_prior
        self.calibration = read_calibration(calibration) if calibration else None
        self.weights: dict[str, float] = {}

    def choose_components(self, cuts) -> list[str]:
        from udistil.filters import filter_class

        chosen = []
        for name in self.requested or DEFAULT_COMPONENTS:
            if not filter_class(name).label_free:
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

    def on_wer_scale(self, cuts, components) -> dict[str, list]:
        from udistil.filters import filter_class

        raw = {n: [teacher_field(c, n) for c in cuts] for n in components}
        pooled = [min(float(v), WER_CAP) for n in components if n in WER_LIKE for v in raw[n] if v is not None]
        columns = {}
        for name, values in raw.items():
            if name in WER_LIKE:
                columns[name] = [None if v is None else min(float(v), WER_CAP) for v in values]
                continue
            oriented = [worse_is_higher(v, filter_class(name).higher_is_worse) for v in values]
            ranks = percentile_ranks(oriented)
            columns[name] = (quantiles_at(pooled, ranks) if pooled
                             else [None if p is None else WER_CAP * p for p in ranks])
        return columns

    @staticmethod
    def recalibrate(fused, columns, components) -> list:
        """Give the fused values the distribution of the pooled WER-like values (monotone).

        Averaging pulls values toward the middle, so a weighted mean of WER estimates is no
        longer on their scale; quantile matching restores it, and the threshold 80 then
        keeps about as much as it does for proxy_wer and consistency.
        """
        pooled = [v for n in components if n in WER_LIKE for v in columns[n] if v is not None]
        ranks = percentile_ranks(fused)
        # Many pooled values are equal (100 at the cap, 0 for perfect agreement); the 1e-3 * p
        # term keeps the order of the fused values strict there, at no visible cost in WER.
        if not pooled:
            return [None if p is None else WER_CAP * p for p in ranks]
        return [None if q is None else q + 1e-3 * p for q, p in zip(quantiles_at(pooled, ranks), ranks)]

    def score(self, cuts, audios):
        if self.calibration is not None:
            return self.score_calibrated(cuts)
        components = self.choose_components(cuts)
        columns = self.on_wer_scale(cuts, components)
        members: dict[str, list[str]] = {}
        for name in components:
            members.setdefault(FAMILIES.get(name, name), []).append(name)
        families = {f: weighted_mean({n: columns[n] for n in names}, {n: 1.0 for n in names})
                    for f, names in members.items()}
        self.weights = agreement_weights(families)
        logger.info("fusion: components %s; family weights %s; language prior %.2f", components,
                    {f: round(w, 3) for f, w in self.weights.items()}, self.language_prior)
        fused = weighted_mean(families, self.weights)
        if self.language_prior > 0:
            fused = shrink_to_language_mean(fused, [cut_language(c) for c in cuts], self.language_prior)
        fused = self.recalibrate(fused, columns, components)
        return [Score.null("no component score for this cut") if v is None else Score(v) for v in fused]

    def score_calibrated(self, cuts):

        if self.requested:
            raise UdistilError("--components and --calibration exclude each other: the calibration "
                               "chose the components on the dev set (refit with `udistil fit-fusion --components`)")
        fused, used = apply_calibration(self.calibration, cuts)
        for lang, key in sorted(used.items()):
            block = self.calibration["languages"][key]
            self.weights[lang] = {c: round(w, 3) for c, w in block["weights"].items() if w}
            logger.info("fusion (calibrated on %s) %s: %s%s; weights %s", self.calibration["dev"], lang or "?",
                        block["choice"], "" if key == lang else " (pooled fit: the dev set lacks this language "
                        "or has only good or only bad clips in it)", self.weights[lang])
        return [Score.null("no component score for this cut") if v is None else Score(v) for v in fused]
