"""WER/CER scoring against hand-counted edits, and the decode output folder."""

import pytest

from udistil.errors import UdistilError
from udistil.evaluate.decode_outputs import read_decode_dir, write_decode_dir
from udistil.evaluate.scoring import align_words, score_pairs, utterance_wer


def test_wer_of_one_substitution_and_one_deletion():
    # a b c d -> a x c : S(b->x), D(d) = 2 edits / 4 words
    result = score_pairs(["a b c d"], ["a x c"], ["en"])
    assert result["wer"] == pytest.approx(50.0)
    assert (result["sub"], result["del"], result["ins"], result["ref_words"]) == (1, 1, 0, 4)
    # characters "a b c d" (7) -> "a x c" (5): b->x, " " and d deleted = 3 / 7
    assert result["cer"] == pytest.approx(300 / 7)


def test_corpus_wer_pools_edits_instead_of_averaging_utterances():
    # utt1: 1 edit / 1 word (100 %), utt2: 0 edits / 3 words (0 %); pooled = 1/4, not 50 %
    result = score_pairs(["a", "b c d"], ["x", "b c d"], ["en", "en"])
    assert result["wer"] == pytest.approx(25.0)


def test_scoring_is_on_normalised_text():
    result = score_pairs(["Hello, World!"], ["hello world"], ["en"])
    assert result["wer"] == 0.0 and result["cer"] == 0.0
    arabic = score_pairs(["إِنَّ الْعِلْمَ نُــورٌ"], ["ان العلم نور"], ["ar"])
    assert arabic["wer"] == 0.0


def test_insertions_can_push_wer_above_100():
    result = score_pairs(["a"], ["x y z"], ["en"])
    assert result["wer"] == pytest.approx(300.0)  # 1 S + 2 I over 1 word


def test_empty_reference_counts_every_hypothesis_word_as_insertion():
    result = score_pairs(["a b", ""], ["a b", "p q r"], ["en", "en"])
    assert result["empty_refs"] == 1
    assert (result["ins"], result["ref_words"]) == (3, 2)
    assert result["wer"] == pytest.approx(150.0)
    assert result["cer"] == pytest.approx(100.0 * len("p q r") / len("a b"))


def test_reference_emptied_by_normalisation_is_an_empty_reference():
    # an Arabic reference holding only Latin text normalises to ""
    result = score_pairs(["hello", "نعم"], ["نعم", "نعم"], ["ar", "ar"])
    assert result["empty_refs"] == 1
    assert result["wer"] == pytest.approx(100.0)  # 1 insertion / 1 reference word


def test_set_without_any_reference_words_has_no_wer():
    result = score_pairs(["", ""], ["a", ""], ["en", "en"])
    assert result["wer"] is None and result["cer"] is None
    assert result["n"] == 2 and result["ins"] == 1


def test_empty_hypothesis_is_all_deletions():
    result = score_pairs(["a b c"], [""], ["sw"])
    assert result["wer"] == pytest.approx(100.0) and result["del"] == 3


def test_per_language_breakdown():
    refs = ["a b c d", "moja mbili", "مرحبا بكم"]
    hyps = ["a x c", "moja mbili", "مرحبا"]
    result = score_pairs(refs, hyps, ["en", "sw", "ar"])
    per = result["per_language"]
    assert set(per) == {"en", "sw", "ar"}
    assert per["en"]["wer"] == pytest.approx(50.0) and per["en"]["n"] == 1
    assert per["sw"]["wer"] == 0.0 and per["sw"]["n"] == 1
    assert per["ar"]["wer"] == pytest.approx(50.0)
    # overall: 3 edits over 8 reference words
    assert result["wer"] == pytest.approx(100 * 3 / 8) and result["n"] == 3


def test_mismatched_lengths_are_a_user_error():
    with pytest.raises(UdistilError):
        score_pairs(["a"], ["a", "b"], ["en"])


@pytest.mark.parametrize(
    "ref, hyp, lang, expected",
    [
        ("a b c d", "a x c", "en", 50.0),
        ("", "", "en", 0.0),
        ("", "anything", "en", 100.0),
        ("a b", "", "en", 100.0),
        ("Hello!", "hello", "en", 0.0),
        ("أَحْمَد ذهب", "احمد", "ar", 50.0),
        ("!!!", "...", "en", 0.0),  # both empty after normalisation
    ],
)
def test_utterance_wer(ref, hyp, lang, expected):
    assert utterance_wer(ref, hyp, lang) == pytest.approx(expected)


def test_align_words_uses_kaldi_ops():
    assert align_words("a b c d", "a x c") == [
        ("C", "a", "a"), ("S", "b", "x"), ("C", "c", "c"), ("D", "d", None)
    ]
    assert align_words("", "p q") == [("I", None, "p"), ("I", None, "q")]


# --- decode folder ------------------------------------------------------------------

ROWS = [
    {"id": "en-1", "lang": "en", "ref": "A b c d.", "hyp": "a x c"},
    {"id": "ar-1", "lang": "ar", "ref": "مَرْحَبًا بِكُم", "hyp": "مرحبا"},
    {"id": "sw-1", "lang": "sw", "ref": "", "hyp": "habari"},
]


def test_decode_dir_round_trip(tmp_path):
    out = tmp_path / "decode_test"
    summary = write_decode_dir(out, ROWS, audio_s=12.5, wall_s=2.0, extra={"model": "tiny"})

    rows, on_disk = read_decode_dir(out)
    assert rows == ROWS
    assert on_disk == summary
    assert on_disk["n"] == 3 and on_disk["audio_s"] == 12.5 and on_disk["wall_s"] == 2.0
    assert on_disk["model"] == "tiny"
    # en: S+D over 4 words; ar: 1 D over 2 words; sw: 1 I over 0 words -> 4 edits / 6 words
    assert on_disk["wer"] == pytest.approx(100 * 4 / 6)
    assert on_disk["per_language"]["ar"]["wer"] == pytest.approx(50.0)
    assert on_disk["per_language"]["sw"]["wer"] is None

    # hyps.jsonl keeps Arabic readable (not \u escapes), one object a line
    raw_lines = (out / "hyps.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(raw_lines) == 3 and "مَرْحَبًا" in raw_lines[1]
    assert not list(out.glob(".*tmp*"))  # no temporary files left behind


def test_per_utt_file_is_kaldi_style(tmp_path):
    write_decode_dir(tmp_path, ROWS, audio_s=1.0, wall_s=1.0)
    lines = (tmp_path / "per_utt.txt").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 4 * len(ROWS)
    en = [line.split() for line in lines[:4]]
    assert en[0] == ["en-1", "ref", "a", "b", "c", "d"]
    assert en[1] == ["en-1", "hyp", "a", "x", "c", "***"]
    assert en[2] == ["en-1", "op", "C", "S", "C", "D"]
    assert en[3] == ["en-1", "#csid", "2", "1", "0", "1"]
    # columns line up: each ref token starts where its hyp token starts
    assert lines[0].index(" d") == lines[1].index(" ***")
    sw = [line.split() for line in lines[8:12]]
    assert sw[2] == ["sw-1", "op", "I"] and sw[3] == ["sw-1", "#csid", "0", "0", "1", "0"]


def test_decode_row_without_hypothesis_is_rejected(tmp_path):
    with pytest.raises(UdistilError, match="cut bad-1"):
        write_decode_dir(tmp_path, [{"id": "bad-1", "lang": "en", "ref": "a"}], 1.0, 1.0)


def test_read_decode_dir_names_the_broken_file(tmp_path):
    write_decode_dir(tmp_path, ROWS, audio_s=1.0, wall_s=1.0)
    lines = (tmp_path / "hyps.jsonl").read_text(encoding="utf-8").splitlines()
    (tmp_path / "hyps.jsonl").write_text("\n".join(lines[:2]) + "\n", encoding="utf-8")
    with pytest.raises(UdistilError, match="n=3 but hyps.jsonl has 2 rows"):
        read_decode_dir(tmp_path)
    (tmp_path / "hyps.jsonl").write_text('{"id": "x"\n', encoding="utf-8")
    with pytest.raises(UdistilError, match=r"hyps.jsonl:1"):
        read_decode_dir(tmp_path)
    (tmp_path / "wer.json").unlink()
    with pytest.raises(UdistilError, match="wer.json: not found"):
        read_decode_dir(tmp_path)
