"""Calibrated fusion (`udistil fit-fusion`, `score fusion --calibration`) on constructed cases.

The constructed case is the failure measured on real Arabic: three weak signals that share
a nuisance (here: they all follow a made-up "recording level", and the truth only a
little) agree with each other, so the agreement weights trust them and fade out the one
filter that tracks quality.  Fitted on a labelled dev half, fusion must not lose to that
filter on the other half, and the agreement fusion must (or the case shows nothing).
"""
from __future__ import annotations

import json

import numpy as np
import pytest
from lhotse import MonoCut, SupervisionSegment

from udistil.bin.main import main
from udistil.data.manifests import read_cuts, write_cuts
from udistil.filters import create_filter
from udistil.filters.fusion_calibration import ecdf, fit_fusion
from udistil.report.filter_quality import auroc

REF = "one two three four five"
WRONG = "nine eight seven six"


def constructed(n, seed, lang="en"):
    rng = np.random.default_rng(seed)
    bad = rng.random(n) < 0.4
    nuisance = rng.normal(0, 1, n)
    cuts = []
    for i in range(n):
        cols = {
            "teacher_text": WRONG if bad[i] else REF,
            "confidence": float(0.8 - 0.35 * bad[i] + rng.normal(0, 0.12)),  # tracks quality
            "consistency": float(50 + 30 * nuisance[i] + 8 * bad[i] + rng.normal(0, 5)),
            "proxy_wer": float(50 + 30 * nuisance[i] + 8 * bad[i] + rng.normal(0, 5)),
            "pesq": float(3 - nuisance[i] + rng.normal(0, 0.2)),  # higher = better: agrees too
        }
        c = MonoCut(id=f"{lang}{seed}-{i}", start=0, duration=2.0, channel=0, recording=None)
        c.supervisions = [SupervisionSegment(c.id, c.id, 0, 2.0, text=REF, language=lang, custom=cols)]
        cuts.append(c)
    return cuts, bad


def test_ecdf_is_a_mid_rank_percentile():
    ref = np.array([1.0, 2.0, 2.0, 3.0])
    assert ecdf(ref, np.array([0.0, 2.0, 5.0])).tolist() == [0.0, 0.5, 1.0]


def test_calibrated_fusion_beats_agreement_where_agreement_picks_the_wrong_family(tmp_path):
    dev, _ = constructed(300, seed=0)
    pool, bad = constructed(300, seed=1)
    write_cuts(dev, tmp_path / "dev.jsonl.gz")
    calibration = fit_fusion(tmp_path / "dev.jsonl.gz", tmp_path / "cal.json")
    block = calibration["languages"]["en"]
    assert block["weights"]["confidence"] == max(block["weights"].values())

    agreement = create_filter("fusion", language_prior=0.0)
    agreed = [s.value for s in agreement.score(pool, [None] * len(pool))]
    assert agreement.weights["teacher"] < min(agreement.weights[f] for f in ("consistency", "proxy_wer"))

    calibrated = create_filter("fusion", calibration=str(tmp_path / "cal.json"))
    fused = [s.value for s in calibrated.score(pool, [None] * len(pool))]
    confidence = auroc([-c.supervisions[0].custom["confidence"] for c in pool], bad)
    assert auroc(agreed, bad) < confidence - 0.05  # the case bites
    assert auroc(fused, bad) >= confidence - 0.005
    assert all(0 <= v <= 100 + 1e-3 for v in fused)


def test_a_language_without_enough_dev_clips_uses_the_pooled_fit(tmp_path):
    dev, _ = constructed(200, seed=2)
    few, _ = constructed(6, seed=3, lang="sw")
    for c in few:  # all good: nothing to fit on in Swahili
        c.supervisions[0].custom["teacher_text"] = REF
    write_cuts(dev + few, tmp_path / "dev.jsonl.gz")
    calibration = fit_fusion(tmp_path / "dev.jsonl.gz", tmp_path / "cal.json")
    assert calibration["languages"]["sw"]["choice"] is None
    pool, _ = constructed(20, seed=4, lang="yo")  # a language the dev set lacks
    fusion = create_filter("fusion", calibration=str(tmp_path / "cal.json"))
    assert all(s.value is not None for s in fusion.score(pool, [None] * len(pool)))
    assert set(fusion.weights) == {"yo"}


def test_a_language_with_few_bad_dev_clips_takes_its_best_single_filter(tmp_path):
    # Mini dev English: 2 bad clips of 18, and only English has a proxy.  Pooled weights are
    # learnt on the other language, where confidence tracks quality; in the sparse language
    # only proxy_wer does, so the pooled fit would rank its clips by noise.
    rng = np.random.default_rng(8)
    dev, _ = constructed(200, seed=8, lang="sw")
    for c in dev:
        c.supervisions[0].custom.pop("proxy_wer")
    sparse_bad = np.zeros(18, dtype=bool)
    sparse_bad[[3, 11]] = True
    sparse = []
    for i, is_bad in enumerate(sparse_bad):
        cols = {"teacher_text": WRONG if is_bad else REF,
                # Confident where it is wrong, in this language (a teacher sure of its English).
                "confidence": float(0.9 if is_bad else rng.uniform(0.3, 0.9)),
                "consistency": float(rng.uniform(0, 100)), "pesq": float(rng.uniform(1, 4)),
                "proxy_wer": float(90 if is_bad else rng.uniform(0, 40))}
        c = MonoCut(id=f"en-{i}", start=0, duration=2.0, channel=0, recording=None)
        c.supervisions = [SupervisionSegment(c.id, c.id, 0, 2.0, text=REF, language="en", custom=cols)]
        sparse.append(c)
    write_cuts(dev + sparse, tmp_path / "dev.jsonl.gz")
    calibration = fit_fusion(tmp_path / "dev.jsonl.gz", tmp_path / "cal.json")
    block = calibration["languages"]["en"]
    assert block["sparse"] and block["choice"] == "single:proxy_wer"
    fusion = create_filter("fusion", calibration=str(tmp_path / "cal.json"))
    fused = [s.value for s in fusion.score(sparse, [None] * len(sparse))]
    assert fusion.weights == {"en": {"proxy_wer": 1.0}}
    assert auroc(fused, sparse_bad) == 1.0
    # The pooled fit, which the sparse language used before, ranks it worse: the case bites.
    pooled = dict(calibration["languages"]["*"])
    calibration["languages"]["en"] = {**block, "choice": None}
    (tmp_path / "pooled.json").write_text(json.dumps(calibration))
    pooled_fusion = create_filter("fusion", calibration=str(tmp_path / "pooled.json"))
    assert auroc([s.value for s in pooled_fusion.score(sparse, [None] * len(sparse))], sparse_bad) < 0.9
    assert pooled["choice"] != "single:proxy_wer"


def test_fit_fusion_and_score_from_the_command_line(tmp_path):
    dev, _ = constructed(120, seed=5)
    pool, bad = constructed(80, seed=6)
    for c in pool:  # the pool is unlabelled: fusion must not need references
        c.supervisions[0].text = None
    write_cuts(dev, tmp_path / "dev.jsonl.gz")
    write_cuts(pool, tmp_path / "pool.jsonl.gz")
    assert main(["fit-fusion", "--dev", str(tmp_path / "dev.jsonl.gz"), "--out", str(tmp_path / "cal.json")]) in (0, None)
    assert "en" in json.loads((tmp_path / "cal.json").read_text())["languages"]
    assert main(["score", "fusion", "--calibration", str(tmp_path / "cal.json"),
                 "--in", str(tmp_path / "pool.jsonl.gz"), "--out", str(tmp_path / "out.jsonl.gz")]) in (0, None)
    fused = [c.supervisions[0].custom["fusion"] for c in read_cuts(tmp_path / "out.jsonl.gz")]
    assert auroc(fused, bad) > 0.8


def test_fit_fusion_refuses_an_unlabelled_dev_set(tmp_path):
    from udistil.errors import UdistilError

    dev, _ = constructed(20, seed=7)
    for c in dev:
        c.supervisions[0].text = None
    write_cuts(dev, tmp_path / "dev.jsonl.gz")
    with pytest.raises(UdistilError, match="reference"):
        fit_fusion(tmp_path / "dev.jsonl.gz", tmp_path / "cal.json")
