"""The filter-quality report's measures against hand-computed cases, and its outputs."""
from __future__ import annotations

import json

import pytest
from lhotse import MonoCut, SupervisionSegment

from udistil.data.manifests import write_cuts
from udistil.report.filter_quality import auroc, filter_quality, spearman


def test_auroc_by_hand():
    assert auroc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert auroc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    # pairs (pos, neg): (3>1) (3>2) (1<2) (1=1 -> 1/2) ... positives {3, 1}, negatives {1, 2}
    # 3 vs 1: 1, 3 vs 2: 1, 1 vs 1: 0.5, 1 vs 2: 0  -> 2.5 / 4
    assert auroc([3, 1, 1, 2], [True, True, False, False]) == pytest.approx(0.625)
    assert auroc([1, 2], [True, True]) is None
    assert auroc([1, 2, 3], [False, False, True]) is None  # one positive: no measurement


def test_spearman_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    # ranks x = 1 2 3 4, y = 2 1 4 3: d^2 = 1+1+1+1 = 4; rho = 1 - 6*4 / (4*15) = 0.6
    assert spearman([1, 2, 3, 4], [20, 10, 40, 30]) == pytest.approx(0.6)
    assert spearman([1, 1, 1], [1, 2, 3]) is None


def make(i, ref, hyp, lang, conf, proxy):
    c = MonoCut(id=f"c{i}", start=0, duration=2.0, channel=0, recording=None)
    c.supervisions = [SupervisionSegment(c.id, c.id, 0, 2.0, text=ref, language=lang, custom={
        "teacher_text": hyp, "confidence": conf, "proxy_wer": proxy,
        "filter_seconds": {"confidence": 0.001, "proxy_wer": 0.5}})]
    return c


def test_report_per_language(tmp_path):
    cuts = [make(0, "one two three", "one two three", "en", 0.9, 0.0),
            make(1, "one two three", "one two four", "en", 0.7, 33.3),
            make(2, "one two three", "nine nine nine nine", "en", 0.3, 120.0),
            make(3, "moja mbili tatu", "moja mbili tatu", "sw", 0.8, None),
            make(4, "moja mbili tatu", "x y z", "sw", 0.95, None)]
    write_cuts(cuts, tmp_path / "s.jsonl.gz")
    log = tmp_path / "pseudo_label.1.log"
    log.write_text("... labelled 5 of 5 cuts (0 skipped: {}); stops {}; 10.0 s audio in 5.0 s\n")
    report = filter_quality(tmp_path / "s.jsonl.gz", tmp_path / "report", str(log))
    en, sw, everything = (report["languages"][k] for k in ("en", "sw", "all"))
    # One bad cut in en, one good in sw: too few for an AUROC there (a warning instead).
    assert en["filters"]["proxy_wer"]["auroc"] is None and en["bad"] == 1 and "1 bad and 2 good" in en["warning"]
    assert sw["filters"]["confidence"]["auroc"] is None and "warning" not in everything
    # Overall (bad: c2, c4): the confident wrong Swahili cut c4 ranks best, c2 worst -> 3 of 6 pairs.
    assert everything["filters"]["confidence"]["auroc"] == pytest.approx(0.5)
    assert everything["filters"]["proxy_wer"]["scored"] == 3
    # Oracle keeps 3 of 5; confidence at equal fraction keeps c4 (0.95), c0, c3: 3 of 9 words wrong.
    assert everything["equal_fraction"] == pytest.approx(0.6)
    assert everything["filters"]["confidence"]["wer_fraction"] == pytest.approx(100 / 3)
    # Cost: 0.5 s per 2 s of audio vs stage 3's 0.5 s per audio second -> 0.5.
    assert report["cost"]["proxy_wer"]["relative_to_stage3"] == pytest.approx(0.5)
    md = (tmp_path / "report" / "filter_quality.md").read_text()
    assert "| proxy_wer |" in md and "## sw" in md
    assert (tmp_path / "report" / "filter_proxy_wer.png").stat().st_size > 1000
    assert json.loads((tmp_path / "report" / "filter_quality.json").read_text())["cuts"] == 5


def test_report_prints_the_per_language_table_and_the_figure_without_the_language_prior(tmp_path):
    # fusion ranks every Swahili cut above every English one (a language prior: Swahili has
    # 3 bad of 4, English 1 of 4) but is poor within each language; confidence is right within both.
    good, bad = "one two three", "nine nine nine nine"
    rows = [("en", good, 10, 0.9), ("en", bad, 11, 0.2), ("en", good, 12, 0.8), ("en", good, 13, 0.7),
            ("sw", bad, 90, 0.1), ("sw", good, 91, 0.7), ("sw", bad, 92, 0.2), ("sw", bad, 93, 0.3)]
    cuts = []
    for i, (lang, hyp, fused, conf) in enumerate(rows):
        c = make(i, good, hyp, lang, conf, None)
        c.supervisions[0].custom["fusion"] = fused
        cuts.append(c)
    write_cuts(cuts, tmp_path / "s.jsonl.gz")
    report = filter_quality(tmp_path / "s.jsonl.gz", tmp_path / "report", plots=False)
    fusion = report["summary"]["fusion"]
    # By hand: 12 of 16 (bad, good) pairs ordered overall; of the 6 same-language pairs,
    # 1 of 3 in English and 2 of 3 in Swahili; the language means alone order 12 of 16.
    assert fusion["all"] == pytest.approx(0.75)
    assert fusion["without_language_prior"] == pytest.approx(0.5)
    assert fusion["language_prior_alone"] == pytest.approx(0.75)
    # One bad English cut, one good Swahili cut: no per-language AUROC from a class of one
    # (they still count among the pooled same-language pairs above).
    assert fusion["en"] is None and fusion["sw"] is None
    assert report["summary"]["confidence"]["without_language_prior"] == 1.0
    md = (tmp_path / "report" / "filter_quality.md").read_text()
    assert "## AUROC (true WER > 80) per language" in md
    assert "| filter | en | sw | all | all, without language prior |" in md
    assert "| confidence | – | – | 1.000 | 1.000 |" in md
    assert "Warning: 1 bad and 3 good cuts: no AUROC" in md
    assert "Language prior alone" in md


def test_the_report_streams_its_manifest_and_keeps_no_cut(tmp_path, monkeypatch):
    """The pool's report reads each cut once and keeps only what it reports on: never the
    manifest as a list, never the per-token lists of a stage-3 cut."""
    import udistil.data.manifests as manifests
    import udistil.report.filter_quality as fq

    cuts = [make(0, "one two three", "one two three", "en", 0.9, 0.0),
            make(1, "one two three", "one two four", "en", 0.7, 33.3),
            make(2, "one two three", "nine nine nine nine", "en", 0.3, 120.0)]
    for cut in cuts:
        cut.supervisions[0].custom["teacher_logprobs"] = [-0.1] * 500
    write_cuts(cuts, tmp_path / "s.jsonl.gz")

    def listed(*args, **kwargs):
        raise AssertionError("the manifest was read whole")

    monkeypatch.setattr(manifests, "read_cuts", listed)
    monkeypatch.setattr(fq, "read_cuts", listed, raising=False)
    kept = []
    real = fq.report_view
    monkeypatch.setattr(fq, "report_view", lambda cut: kept.append(real(cut)) or kept[-1])
    assert fq.has_references(tmp_path / "s.jsonl.gz")
    report = fq.filter_quality(tmp_path / "s.jsonl.gz", tmp_path / "report", plots=False)
    assert report["cuts"] == 3 and report["languages"]["en"]["bad"] == 1
    assert len(kept) == 3 and all("teacher_logprobs" not in k.supervisions[0].custom for k in kept)
