"""fusion on controlled scores: agreement weights, families, language prior, WER scale."""
from __future__ import annotations

import numpy as np
from lhotse import MonoCut, SupervisionSegment

from udistil.filters import create_filter
from udistil.report.filter_quality import auroc


def cuts_with(columns: dict[str, list], languages: list[str]):
    out = []
    for i, lang in enumerate(languages):
        c = MonoCut(id=f"c{i}", start=0, duration=1.0, channel=0, recording=None)
        c.supervisions = [SupervisionSegment(c.id, c.id, 0, 1.0, language=lang,
                                             custom={k: v[i] for k, v in columns.items()})]
        out.append(c)
    return out


def synthetic(n=80, seed=0):
    rng = np.random.default_rng(seed)
    quality = rng.uniform(0, 120, n)  # the hidden true WER
    cols = {
        "proxy_wer": list(np.clip(quality + rng.normal(0, 15, n), 0, None)),
        "consistency": list(np.clip(quality + rng.normal(0, 20, n), 0, None)),
        "confidence": list(1 - quality / 150 + rng.normal(0, 0.1, n)),
        "nll": list(quality / 50 + rng.normal(0, 0.6, n)),
        "pesq": list(rng.uniform(1, 4.5, n)),  # pure noise
    }
    cols["proxy_wer"][0] = None  # a proxy that could not score one cut
    return quality, cols


def test_noise_fades_and_fusion_beats_each_component():
    quality, cols = synthetic()
    languages = ["en"] * len(quality)
    fusion = create_filter("fusion", language_prior=0.0)
    fused = [s.value for s in fusion.score(cuts_with(cols, languages), [None] * len(quality))]
    assert fusion.weights["pesq"] < 0.2 < min(fusion.weights[f] for f in ("proxy_wer", "consistency", "teacher"))
    # confidence and nll are one family ("teacher"), not two votes.
    assert set(fusion.weights) == {"proxy_wer", "consistency", "teacher", "pesq"}
    bad = quality > 80
    fused_auc = auroc(fused, bad)
    for name, direction in (("consistency", 1), ("confidence", -1), ("nll", 1)):
        assert fused_auc >= auroc([direction * v for v in cols[name]], bad), name
    assert fused[0] is not None  # scored from the other components
    # Back on the WER scale of the WER-like components.
    assert 0 <= min(fused) and max(fused) <= max(v for v in cols["consistency"] + cols["proxy_wer"] if v) + 1


def test_language_prior_reorders_across_languages_only():
    quality, cols = synthetic(seed=1)
    languages = ["en", "sw"] * (len(quality) // 2)
    cuts = cuts_with(cols, languages)
    plain = [s.value for s in create_filter("fusion", language_prior=0.0).score(cuts, [None] * len(cuts))]
    prior = [s.value for s in create_filter("fusion", language_prior=0.5).score(cuts, [None] * len(cuts))]
    for lang in ("en", "sw"):
        idx = [i for i, l in enumerate(languages) if l == lang]
        assert np.argsort([plain[i] for i in idx]).tolist() == np.argsort([prior[i] for i in idx]).tolist()


def test_quantiles_at_matches_one_quantile_per_cut():
    """The vectorised quantile map (one sort for the whole set) gives what a per-cut
    np.quantile gives, nulls kept in place."""
    import numpy as np

    from udistil.filters.fusion import quantiles_at

    rng = np.random.default_rng(0)
    pooled = list(rng.uniform(0, 100, 301)) + [100.0] * 40
    ranks = [None if i % 5 == 0 else float(p) for i, p in enumerate(rng.uniform(0, 1, 120))]
    expected = [None if p is None else float(np.quantile(pooled, p)) for p in ranks]
    assert quantiles_at(pooled, ranks) == expected
    assert quantiles_at(pooled, [None, None]) == [None, None]
