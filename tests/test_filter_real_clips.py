"""The label-free signals on real recorded speech: a good label against a wrong one.

Two real clips (tests/data/real: Arabic and Swahili, MIT) and the packaged whisper-base
teacher.  For each clip:
  * the token-tail statistics (worst_window, tail_nll, entropy_window) of the clip's true
    transcript against another clip's transcript of the same language, both scored by
    the teacher on the clip's audio (one teacher-forced pass each, as stage 3 stores it);
  * the text signals (word_nll, language_confidence) of the teacher's own output in the
    clip's language against its output when told a wrong language, and (Swahili) against
    a real English label: the failure seen on real Swahili, English-like text.
"""
from __future__ import annotations

import csv
from pathlib import Path

import pytest
import soundfile as sf
from lhotse import MonoCut, SupervisionSegment

from udistil.filters import create_filter

DATA = Path(__file__).parent / "data" / "real"
# Told English, whisper-base still writes Swahili-looking text for the Swahili clip (measured:
# "Gerezasio Mahali Parzuari Alisema"), which is no wrong-language label; told Arabic, it
# writes Arabic.  The English-like failure is covered with a real English label below.
WRONG_LANGUAGE = {"ar": "en", "sw": "ar"}
# A real transcript of a real English clip (LJSpeech LJ002-0163, public domain).
ENGLISH_LABEL = "a market porter, was arrested and committed at the suit of a publican"


def rows():
    with open(DATA / "real.tsv", encoding="utf-8") as f:
        return list(csv.DictReader(f, delimiter="\t"))


@pytest.fixture(scope="module")
def teacher(whisper_base_dir):
    from udistil.teacher.transcriber import DecodeOptions, Transcriber

    return Transcriber.from_spec(str(whisper_base_dir), DecodeOptions(pack=False))


def cut_with(cut_id, language, duration, text, logprobs=None, entropies=None):
    fields = {"teacher_text": text}
    if logprobs is not None:
        fields.update(teacher_logprobs=logprobs, teacher_entropy=entropies)
    c = MonoCut(id=cut_id, start=0, duration=duration, channel=0, recording=None)
    c.supervisions = [SupervisionSegment(cut_id, cut_id, 0, duration, language=language, custom=fields)]
    return c


def forced(teacher, encoded, language, text):
    """The teacher's per-token log-probs and entropies for `text` on the encoded audio (teacher forcing)."""
    body = teacher.tokenizer.encode(" " + text.strip(), add_special_tokens=False)
    result = teacher._score_tokens(encoded[0:1], teacher.rules.prompt(language, timestamps=False), body, "eot")
    return result.logprobs, result.entropies


@pytest.fixture(scope="module")
def labelled(teacher):
    """Per clip: (good cut, wrong cut) for the token statistics and for the text signals."""
    out = {}
    for row in rows():
        audio, rate = sf.read(DATA / row["file"], dtype="float32")
        assert rate == 16000
        seconds = len(audio) / rate
        encoded = teacher.encode([audio])
        good_stats = forced(teacher, encoded, row["language"], row["text"])
        wrong_stats = forced(teacher, encoded, row["language"], row["other_text"])
        own, misled = teacher.transcribe([audio, audio], [row["language"], WRONG_LANGUAGE[row["language"]]])
        out[row["id"]] = {
            "stats": (cut_with("good", row["language"], seconds, row["text"], *good_stats),
                      cut_with("wrong", row["language"], seconds, row["other_text"], *wrong_stats)),
            "text": (cut_with("own", row["language"], seconds, own.text),
                     cut_with("misled", row["language"], seconds, misled.text)),
        }
    return out


@pytest.mark.parametrize("name", ["worst_window", "tail_nll", "entropy_window"])
@pytest.mark.parametrize("clip", ["ar_862", "sw_93"])
def test_token_tails_find_the_wrong_label(labelled, name, clip):
    good, wrong = labelled[clip]["stats"]
    scores = create_filter(name).score([good, wrong], [None, None])
    assert scores[0].value is not None and scores[1].value is not None
    assert scores[1].value > scores[0].value, (clip, name, scores)


def test_word_nll_on_real_arabic(labelled):
    own, misled = labelled["ar_862"]["text"]
    good, wrong = create_filter("word_nll").score([own, misled], [None, None])
    assert good.value < wrong.value, (own.supervisions[0].custom, misled.supervisions[0].custom)


def test_word_nll_has_no_swahili_list_and_says_so(labelled):
    own, _ = labelled["sw_93"]["text"]
    score, = create_filter("word_nll").score([own], [None])
    assert score.value is None and "no word list" in score.reason


@pytest.mark.parametrize("clip", ["ar_862", "sw_93"])
def test_language_confidence_on_real_speech(labelled, clip):
    own, misled = labelled[clip]["text"]
    good, wrong = create_filter("language_confidence").score([own, misled], [None, None])
    assert good.value > 0.5 > wrong.value, (clip, own.supervisions[0].custom, misled.supervisions[0].custom)


def test_language_confidence_finds_an_english_label_on_a_swahili_clip(labelled):
    own, _ = labelled["sw_93"]["text"]
    english = cut_with("en", "sw", own.duration, ENGLISH_LABEL)
    good, wrong = create_filter("language_confidence").score([own, english], [None, None])
    assert good.value > 0.5 > wrong.value
