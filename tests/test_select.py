"""Stage 5 selection: threshold and fraction, direction, nulls, and the training text."""
from __future__ import annotations

import json

import pytest
from lhotse import MonoCut, SupervisionSegment

from udistil.bin.main import main
from udistil.data.manifests import custom, read_cuts, write_cuts
from udistil.errors import UdistilError
from udistil.select.selection import kept_by_fraction, kept_by_threshold, select_cuts


def cut(i, proxy, confidence, text="a pseudo label", duration=2.0):
    c = MonoCut(id=f"c{i}", start=0, duration=duration, channel=0, recording=None)
    c.supervisions = [SupervisionSegment(c.id, c.id, 0, duration, text=f"reference {i}", language="en",
                                         custom={"teacher_text": text, "proxy_wer": proxy, "confidence": confidence})]
    return c


@pytest.fixture
def scored(tmp_path):
    cuts = [cut(0, 10.0, 0.9), cut(1, 95.0, 0.2), cut(2, 80.0, 0.6), cut(3, None, 0.7),
            cut(4, 50.0, 0.4, text=""), cut(5, 30.0, 0.8, duration=4.0)]
    write_cuts(cuts, tmp_path / "scores.jsonl.gz")
    return tmp_path / "scores.jsonl.gz"


def test_rules_by_hand():
    values = [10.0, 95.0, 80.0, None]
    assert kept_by_threshold(values, True, 80) == [True, False, True, False]
    assert kept_by_threshold(values, True, 80, keep_null=True) == [True, False, True, True]
    assert kept_by_threshold([0.9, 0.2, None], False, 0.5) == [True, False, False]
    assert kept_by_fraction(values, True, 0.5) == [True, False, True, False]
    assert kept_by_fraction([0.9, 0.2, 0.6, 0.7], False, 0.5) == [True, False, False, True]
    with pytest.raises(UdistilError):
        kept_by_fraction(values, True, 1.5)


def test_threshold_default_is_the_papers(scored, tmp_path):
    out = tmp_path / "select" / "proxy_wer" / "cuts.jsonl.gz"
    stats = select_cuts(scored, out, "proxy_wer")
    kept = read_cuts(out)
    # c1 (95 > 80) dropped, c3 (null) dropped, c4 (empty pseudo-label) dropped.
    assert sorted(kept.ids) == ["c0", "c2", "c5"]
    assert stats["kept"] == 3 and stats["total"] == 6 and stats["null_scores"] == 1
    assert stats["empty_pseudo_labels"] == 1
    assert stats["hours_kept"] == pytest.approx(8.0 / 3600, abs=1e-4)
    # The pseudo-label is the training text; the ground truth is left where it was.
    c0 = kept["c0"]
    assert custom(c0)["teacher_text"] == "a pseudo label" and c0.supervisions[0].text == "reference 0"
    assert json.loads((out.parent / "stats.json").read_text())["kept"] == 3


def test_fraction_and_direction(scored, tmp_path):
    out = tmp_path / "conf.jsonl.gz"
    select_cuts(scored, out, "confidence", keep_fraction=0.4)
    # 5 cuts with text -> keep round(0.4 * 5) = 2 most confident: c0 (0.9), c5 (0.8).
    assert sorted(read_cuts(out).ids) == ["c0", "c5"]


def test_no_filter_and_cli(scored, tmp_path, capsys):
    assert main(["select", "--filter", "none", "--in", str(scored), "--out", str(tmp_path / "n.jsonl.gz")]) == 0
    assert len(read_cuts(tmp_path / "n.jsonl.gz")) == 5
    assert "kept 5 / 6 cuts" in capsys.readouterr().out
    assert main(["select", "--filter", "proxy_wer", "--threshold", "5", "--in", str(scored),
                 "--out", str(tmp_path / "x.jsonl.gz")]) == 1  # keeps nothing: a clear error
    assert main(["select", "--filter", "nll_sum", "--in", str(scored), "--out", str(tmp_path / "y.jsonl.gz")]) == 1


def test_stage5_sweep_in_one_process(scored, tmp_path, capsys):
    out_dir = tmp_path / "select"
    assert main(["select", "--filters", "none proxy_wer nll_sum confidence oracle_wer",
                 "--thresholds", "confidence:0.65", "--fallback-keep-fraction", "0.4",
                 "--in", str(scored), "--out-dir", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert len(read_cuts(out_dir / "none" / "cuts.jsonl.gz")) == 5
    # proxy_wer: its own default threshold (80), as `--filter proxy_wer` alone would keep.
    assert sorted(read_cuts(out_dir / "proxy_wer" / "cuts.jsonl.gz").ids) == ["c0", "c2", "c5"]
    # confidence: the user's threshold, not the filter's default.
    assert sorted(read_cuts(out_dir / "confidence" / "cuts.jsonl.gz").ids) == ["c0", "c3", "c5"]
    # nll_sum has no default threshold, but no cut has an nll_sum score either; oracle_wer has
    # no references here: both are reported and skipped, and the others still written.
    assert not (out_dir / "nll_sum").exists() and not (out_dir / "oracle_wer").exists()
    assert "WARNING: no" in printed and "oracle_wer" in printed and "nll_sum" in printed
    # A subset that a new rule can no longer make is removed, not left for stage 6 to train on.
    assert main(["select", "--filters", "none proxy_wer", "--thresholds", "proxy_wer:5",
                 "--in", str(scored), "--out-dir", str(out_dir)]) == 0
    assert not (out_dir / "proxy_wer" / "cuts.jsonl.gz").exists()
    assert not (out_dir / "proxy_wer" / "stats.json").exists()
    assert "was removed" in capsys.readouterr().out
    # A rerun on the same scores with the same rules keeps every subset.
    assert main(["select", "--filters", "none confidence", "--thresholds", "confidence:0.65",
                 "--in", str(scored), "--out-dir", str(out_dir)]) == 0
    assert capsys.readouterr().out.count("exists, skipping") == 2


def test_stage5_sweep_fallback_fraction_and_bad_input(scored, tmp_path):
    from udistil.select.selection import parse_thresholds, rule_for

    assert rule_for("nll_sum", {}, 0.3) == {"keep_fraction": 0.3}
    assert rule_for("proxy_wer", {}, 0.3) == {}
    assert rule_for("proxy_wer", {"proxy_wer": 60.0}, 0.3) == {"threshold": 60.0}
    assert parse_thresholds("oracle_wer:80 proxy_wer:70.5") == {"oracle_wer": 80.0, "proxy_wer": 70.5}
    for bad in ("proxy_wer", "proxy_wer:high", ":80"):
        with pytest.raises(UdistilError, match="FILTER:VALUE"):
            parse_thresholds(bad)
    out_dir = tmp_path / "select"
    # A misspelt filter or a threshold for a filter not selected stops before anything is written.
    assert main(["select", "--filters", "none proxy_wr", "--in", str(scored), "--out-dir", str(out_dir)]) == 1
    assert main(["select", "--filters", "none", "--thresholds", "proxy_wer:80",
                 "--in", str(scored), "--out-dir", str(out_dir)]) == 1
    assert not out_dir.exists()
    # Nothing selectable at all is an error.
    assert main(["select", "--filters", "oracle_wer", "--in", str(scored), "--out-dir", str(out_dir)]) == 1


def test_a_single_selection_that_keeps_nothing_removes_the_old_subset(scored, tmp_path):
    out = tmp_path / "select" / "proxy_wer" / "cuts.jsonl.gz"
    select_cuts(scored, out, "proxy_wer")
    assert out.exists() and (out.parent / "stats.json").exists()
    with pytest.raises(UdistilError, match="keeps no cut.*was removed"):
        select_cuts(scored, out, "proxy_wer", threshold=5)
    assert not out.exists() and not (out.parent / "stats.json").exists()
