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


def create_filter(name: str, **options):
    """Build filter `name` with the subset of `options` its constructor accepts (None = default)."""
    cls = filter_class(name)
    accepted = inspect.signature(cls.__init__).parameters
    kwargs = {k: v for k, v in options.items() if k in accepted and v is not None}
    return cls(**kwargs)
