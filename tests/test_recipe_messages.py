"""What a user reads: non-speech tags out of the scored words, the stale-output hint that
works with run.sh, the filter report's warning on too few cuts, and decode's progress bar."""
from __future__ import annotations

import pytest
from lhotse import MonoCut, SupervisionSegment

from udistil.data.manifests import write_cuts
from udistil.evaluate.normalize import has_reference, normalize_arabic, normalize_basic
from udistil.evaluate.scoring import score_pairs
from udistil.filters.oracle_wer import OracleWer
from udistil.report.filter_quality import filter_quality, has_references

from test_student_distill import make_cut


# --- non-speech tags (ALFFA's text: "<UNK>", "<music> naam ndivyo ...") ---------------------

@pytest.mark.parametrize("tagged, words", [
    ("<music> naam ndivyo anavyo ondoka", "naam ndivyo anavyo ondoka"),
    ("hadi sasa inaridhisha <UNK>", "hadi sasa inaridhisha"),
    ("[laughter] habari <noise> yako [MUSIC]", "habari yako"),
    ("<sil>leo<sil>", "leo"),
])
def test_tags_are_not_scored_as_words(tagged, words):
    assert normalize_basic(tagged) == words


def test_tags_are_removed_in_arabic_too():
    assert normalize_arabic("<UNK> مرحبا [ضحك] بكم") == "مرحبا بكم"


def test_brackets_that_are_not_tags_are_left_to_the_usual_rules():
    # Unclosed or over-long spans are text, not tags.
    assert normalize_basic("a < b and c > d") == "a b and c d"
    long = "[" + "x " * 30 + "]"
    assert normalize_basic(long) == ("x " * 30).strip()


@pytest.mark.parametrize("text, labelled", [("<music>", False), ("<UNK>  <music>", False), ("", False),
                                            ("[noise] ", False), ("<UNK> leo", True)])
def test_a_line_of_tags_only_is_unlabelled(text, labelled):
    assert has_reference(text, "sw") is labelled


def test_tag_only_references_add_nothing_to_the_wer():
    with_tags = score_pairs(["<music>", "leo ni siku <UNK> nzuri"], ["", "leo ni siku nzuri"], ["sw", "sw"])
    assert with_tags["wer"] == 0.0


def _cut(i, ref, hyp, lang="sw", **scores):
    c = MonoCut(id=f"c{i}", start=0, duration=2.0, channel=0, recording=None)
    c.supervisions = [SupervisionSegment(c.id, c.id, 0, 2.0, text=ref, language=lang,
                                         custom={"teacher_text": hyp, **scores})]
    return c


def test_oracle_filter_treats_a_music_line_as_unlabelled(tmp_path):
    oracle = OracleWer()
    only_tags = [_cut(0, "<music>", "muziki"), _cut(1, "<UNK>", "")]
    with pytest.raises(Exception, match="no cut has a reference"):
        oracle.check_set(only_tags, tmp_path / "x.jsonl.gz")
    scores = oracle.score([_cut(0, "<music>", "muziki"), _cut(1, "leo <UNK>", "leo")], [None, None])
    assert scores[0].value is None and scores[1].value == 0.0
    write_cuts(only_tags, tmp_path / "tags.jsonl.gz")
    assert not has_references(tmp_path / "tags.jsonl.gz")


# --- filter report: no AUROC from one cut of a class -------------------------------------

def test_filter_report_gives_no_auroc_for_a_class_of_one_cut(tmp_path, caplog):
    cuts = [_cut(0, "moja mbili tatu", "moja mbili tatu", confidence=0.9),
            _cut(1, "moja mbili tatu", "moja mbili tatu", confidence=0.8),
            _cut(2, "moja mbili tatu", "x y z w", confidence=0.2),  # the only bad cut
            _cut(3, "<music>", "muziki", confidence=0.1)]  # unlabelled: not in the report
    write_cuts(cuts, tmp_path / "s.jsonl.gz")
    report = filter_quality(tmp_path / "s.jsonl.gz", tmp_path / "report", plots=False)
    block = report["languages"]["sw"]
    assert block["n"] == 3 and block["bad"] == 1
    assert block["filters"]["confidence"]["auroc"] is None
    assert "1 bad and 2 good cuts" in block["warning"]
    assert "1 bad and 2 good cuts" in caplog.text
    md = (tmp_path / "report" / "filter_quality.md").read_text()
    assert "Warning: 1 bad and 2 good cuts" in md and "1.000" not in md and "0.000" not in md


# --- udistil decode: its own progress bar, a stale hint run.sh accepts ---------------------

def test_decode_says_decode_and_its_stale_hint_names_run_sh_option(tiny_whisper_dir, speak, tmp_path, capfd):
    from udistil.evaluate.decode import decode_cuts
    from udistil.parallel.fingerprint import StaleOutputError
    from udistil.teacher.transcriber import DecodeOptions, Transcriber

    raw = write_cuts([make_cut(tmp_path, "u0", speak("hello world"), "en", None)], tmp_path / "raw.jsonl.gz")
    decode_cuts(raw, tmp_path / "dec", Transcriber.from_spec(str(tiny_whisper_dir)))
    err = capfd.readouterr().err
    assert "decode raw.jsonl.gz" in err and "pseudo-label" not in err
    with pytest.raises(StaleOutputError, match="--redo-stale true"):
        decode_cuts(raw, tmp_path / "dec", Transcriber.from_spec(str(tiny_whisper_dir), DecodeOptions(beam=2)))
