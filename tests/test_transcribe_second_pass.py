"""`udistil transcribe`'s second pass: speech that a window's timestamped sentences leave out
(skipped, or under a sentence spread over it) is decoded again on its own.

The engine here is a scripted stand-in for a model that drops sentences of a long window, so
each case is exact; the segmentation, the coverage and the merge are the runner's own code
on espeak-ng speech.
"""
from __future__ import annotations

import numpy as np
import pytest

from udistil.transcribe.engines import TimedText
from udistil.transcribe.runner import _transcribe_group, _Loaded
from udistil.transcribe.segments import SAMPLE_RATE, SegmentOptions, SpeechSegment, missed_segments, split_at_pauses

SENTENCES = ["the weather is nice today", "please open the window", "my brother bought a car",
             "we meet at the library", "the river runs to the sea", "birds sing in the morning"]


@pytest.fixture(scope="module")
def six_sentences(speak):
    """The six sentences with 0.8 s pauses, and each sentence's [start, end) in samples."""
    parts, spans, at = [], [], 0
    pause = np.zeros(int(0.8 * SAMPLE_RATE), np.float32)
    for sentence in SENTENCES:
        audio = speak(sentence)
        parts += [audio, pause]
        spans.append((at, at + len(audio)))
        at += len(audio) + len(pause)
    return np.concatenate(parts), spans


class ScriptedEngine:
    """Answers each clip with the sentences `script(clip_seconds, call)` gives (clip times)."""

    def __init__(self, script):
        self.script, self.calls = script, []

    def detect_languages(self, clips):
        return ["en"] * len(clips)

    def transcribe_timed(self, clips, languages):
        self.calls.append([len(c) / SAMPLE_RATE for c in clips])
        out = []
        for clip in clips:
            sentences = self.script(len(clip) / SAMPLE_RATE, len(self.calls))
            out.append(TimedText(" ".join(s[2] for s in sentences), sentences, True))
        return out


def _seconds(samples):
    return samples / SAMPLE_RATE


def test_every_segment_knows_its_speech_regions(six_sentences):
    audio, spans = six_sentences
    whole = split_at_pauses(audio)  # under 30 s: one segment, the file as it is
    assert len(whole) == 1 and whole[0].pieces == ((0, len(audio)),)
    assert len(whole[0].speech) == len(spans)
    for (start, end), (a, b) in zip(whole[0].speech, spans):
        # Each sentence inside its padded region (espeak-ng ends a clip with a little silence).
        assert start <= a + 800 and end >= b - 4800
    cut = split_at_pauses(audio, SegmentOptions(max_seconds=8.0))
    assert [r for s in cut for r in s.speech] == list(whole[0].speech)


def test_missed_segments_are_the_uncovered_runs_in_pieces(six_sentences):
    audio, spans = six_sentences
    segment = split_at_pauses(audio)[0]
    regions = segment.speech
    options = SegmentOptions(redecode_piece=10.0)
    # Sentences 1 and 4 covered: runs 2-3 and 5-6 are decoded again, each as its own segment.
    covered = [regions[0], regions[3]]
    again = missed_segments(segment, covered, options)
    assert [m.speech for m in again] == [regions[1:3], regions[4:6]]
    assert all(m.pieces == m.speech for m in again)  # pauses dropped: the regions joined
    # A region half covered is not missed; an uncovered stretch under `redecode_missed` is left.
    half = (regions[1][0], (regions[1][0] + regions[1][1]) // 2 + 160)
    assert regions[1] not in [r for m in missed_segments(segment, covered + [half], options) for r in m.speech]
    assert missed_segments(segment, covered, SegmentOptions(redecode_missed=30.0)) == []
    assert missed_segments(segment, covered, SegmentOptions(redecode_missed=0.0)) == []
    # Nothing covered: the whole speech, cut at pauses into pieces of at most redecode_piece.
    pieces = missed_segments(segment, [], SegmentOptions(redecode_piece=5.0))
    assert [r for m in pieces for r in m.speech] == list(regions)
    assert all(sum(b - a for a, b in m.pieces) <= 5.0 * SAMPLE_RATE or len(m.speech) == 1 for m in pieces)
    # A window that would be decoded again whole as it is: the same audio, the same text.
    one = SpeechSegment(((0, 100_000),), ((0, 100_000),))
    assert missed_segments(one, [], SegmentOptions()) == []


def _group(audio):
    return [_Loaded("f.wav", audio, split_at_pauses(audio))]


def test_a_skipped_sentence_is_decoded_again_and_merged_in_order(six_sentences):
    audio, spans = six_sentences
    window = _seconds(len(audio))

    def script(seconds, call):
        if call == 1:  # the window: sentences 1, 2, 4, 5 and 6 at their times; sentence 3 skipped
            return [(_seconds(a), _seconds(b), SENTENCES[k]) for k, (a, b) in enumerate(spans) if k != 2]
        return [(0.0, seconds, "RECOVERED")]

    engine = ScriptedEngine(script)
    transcript, = _transcribe_group(_group(audio), engine, "en")
    assert len(engine.calls) == 2 and len(engine.calls[1]) == 1
    assert engine.calls[0] == [pytest.approx(window)]
    assert engine.calls[1][0] == pytest.approx(_seconds(spans[2][1] - spans[2][0]), abs=0.5)
    texts = [s.text for s in transcript.segments]
    assert texts == SENTENCES[:2] + ["RECOVERED"] + SENTENCES[3:]
    recovered = transcript.segments[2]
    assert _seconds(spans[2][0]) - 0.3 <= recovered.start < recovered.end <= _seconds(spans[2][1]) + 0.3
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    # Off: the window's text as the model gave it.
    off = _transcribe_group(_group(audio), ScriptedEngine(script), "en", SegmentOptions(redecode_missed=0.0))
    assert [s.text for s in off[0].segments] == SENTENCES[:2] + SENTENCES[3:]


def test_a_sentence_spread_over_unspoken_speech_is_replaced(six_sentences):
    audio, spans = six_sentences

    def script(seconds, call):
        if call == 1:  # sentences 1-3 right; then two words spread over sentences 4-6
            return ([(_seconds(a), _seconds(b), SENTENCES[k]) for k, (a, b) in enumerate(spans[:3])]
                    + [(_seconds(spans[3][0]), _seconds(spans[5][1]), "so long")])
        return [(0.0, seconds, f"AGAIN{call}")]

    engine = ScriptedEngine(script)
    transcript, = _transcribe_group(_group(audio), engine, "en")
    texts = [s.text for s in transcript.segments]
    assert texts[:3] == SENTENCES[:3]
    assert "so long" not in texts and texts[3:] and all(t.startswith("AGAIN") for t in texts[3:])
    # A sentence as dense as the others is trusted: no second pass.
    def dense(seconds, call):
        return [(_seconds(a), _seconds(b), SENTENCES[k]) for k, (a, b) in enumerate(spans)]

    engine = ScriptedEngine(dense)
    transcript, = _transcribe_group(_group(audio), engine, "en")
    assert len(engine.calls) == 1 and [s.text for s in transcript.segments] == SENTENCES


def test_windows_decoded_without_timestamps_are_not_second_guessed(six_sentences):
    audio, _ = six_sentences

    class Plain(ScriptedEngine):
        def transcribe_timed(self, clips, languages):
            self.calls.append(len(clips))
            return [TimedText("only this")] * len(clips)

    engine = Plain(None)
    transcript, = _transcribe_group(_group(audio), engine, "en")
    assert engine.calls == [1] and transcript.text == "only this"


def test_a_lone_sentence_spread_over_a_short_file_is_judged_by_the_floor_rate(six_sentences):
    audio, spans = six_sentences
    whole = (0.0, _seconds(len(audio)))

    def lone(seconds, call):  # one short sentence whose timestamps span the whole file
        return [(*whole, "the weather")] if call == 1 else [(0.0, seconds, f"AGAIN{call}")]

    engine = ScriptedEngine(lone)
    transcript, = _transcribe_group(_group(audio), engine, "en")
    assert len(engine.calls) == 2 and len(engine.calls[1]) >= 2  # the speech in pieces of at most 10 s
    assert all(s.text == "AGAIN2" for s in transcript.segments)

    def complete(seconds, call):  # the whole text in one sentence: as dense as speech is
        return [(*whole, " ".join(SENTENCES))]

    engine = ScriptedEngine(complete)
    transcript, = _transcribe_group(_group(audio), engine, "en")
    assert len(engine.calls) == 1 and transcript.text == " ".join(SENTENCES)
