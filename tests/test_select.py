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
