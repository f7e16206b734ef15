"""Label-free (and oracle) quality filters for pseudo-labels; one module per score.

`FILTERS` maps each filter name (the `supervision.custom` key it writes) to its class;
`create_filter(name, **options)` builds one, passing only the options its constructor
takes (so `udistil score` can offer every filter's options in one parser).
`filter_class(name)` gives the class without building it: its direction, label-freeness
and default threshold are class attributes, usable without loading any model.
"""
from __future__ import annotations

import importlib
import inspect

from udistil.errors import UdistilError

# name -> "module:Class"; modules are imported on demand (some import torch/transformers).
FILTERS = {
    "confidence": "confidence:Confidence",
    "entropy": "entropy:Entropy",
    "nll": "nll:NegativeLogLikelihood",
    "nll_sum": "nll:TotalNegativeLogLikelihood",
    "worst_window": "token_tails:WorstWindow",
    "tail_nll": "token_tails:TailNll",
    "entropy_window": "token_tails:EntropyWindow",
    "word_nll": "word_frequency:WordNll",
    "language_confidence": "language_id:LanguageConfidence",
    "proxy_wer": "proxy_wer:ProxyWer",
    "pesq": "pesq:PesqScore",
    "sonar_sim": "sonar_sim:SonarSimilarity",
    "oracle_wer": "oracle_wer:OracleWer",
    "consistency": "consistency:Consistency",
    "compression_ratio": "hallucination:CompressionRatio",
    "repeated_ngrams": "hallucination:RepeatedNgrams",
    "chars_per_second": "hallucination:CharsPerSecond",
    "hallucination": "hallucination:Hallucination",
    "fusion": "fusion:Fusion",
}


def filter_class(name: str):
    if name not in FILTERS:
        raise UdistilError(f"unknown filter {name!r}; choose from: {', '.join(sorted(FILTERS))}")
    module, cls = FILTERS[name].split(":")
    return getattr(importlib.import_module(f"udistil.filters.{module}"), cls)


def filter_options(name: str, **options) -> dict:
    """The subset of `options` filter `name`'s constructor accepts (None = its default)."""
    accepted = inspect.signature(filter_class(name).__init__).parameters
    return {k: v for k, v in options.items() if k in accepted and v is not None}


def create_filter(name: str, **options):
    """Build filter `name` with the subset of `options` its constructor accepts (None = default)."""
    kwargs = filter_options(name, **options)
    filt = filter_class(name)(**kwargs)
    # What it was built with, for the fingerprint of its output (udistil.filters.runner).
    filt.options = kwargs
    return filt


def filter_table() -> list[dict]:
    """Every filter's class facts (no model is loaded): what `udistil score --list` prints
    and what run.sh reads, so the shell never keeps its own copy of them."""
    rows = []
    for name in FILTERS:
        cls = filter_class(name)
        rows.append({"name": name, "needs": ",".join(cls.needs),
                     "direction": "higher_is_worse" if cls.higher_is_worse else "higher_is_better",
                     "default_threshold": "none" if cls.default_threshold is None else str(cls.default_threshold),
                     "label_free": "yes" if cls.label_free else "no",
                     "whole_set": "yes" if cls.whole_set else "no"})
    return rows


def format_filter_table() -> str:
    """Tab-separated, one filter a line, after a '#' header (awk -F'\\t' reads it)."""
    rows = filter_table()
    keys = list(rows[0])
    return "\n".join(["#" + "\t".join(keys)] + ["\t".join(r[k] for k in keys) for r in rows])
