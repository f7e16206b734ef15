"""Hallucination signals from the pseudo-label itself (label-free, no model, any language).

Whisper's characteristic failures on hard audio are repetition loops and text that could
not have been spoken in the clip's duration.  Each signal is its own filter column:
  compression_ratio  bytes of the text / bytes after zlib (Whisper's own fallback uses
                     2.4): loops compress well;
  repeated_ngrams    fraction of word 3-grams that repeat an earlier one;
  chars_per_second   non-space characters per second of audio;
  hallucination      the number of red flags raised (0 = none): the teacher stopped on a
                     loop or ran out of its token budget (teacher_stop), compression ratio
                     above 2.4, more than half the 3-grams repeated, a speaking rate
                     outside the plausible band, or an empty output for audible speech.
"""
from __future__ import annotations

import zlib

from udistil.evaluate.normalize import normalizer_for
from udistil.filters.base import Filter, Score, cut_language, teacher_field, teacher_text

# Whisper's compression-ratio threshold for a failed decode (its temperature fallback).
MAX_COMPRESSION_RATIO = 2.4
MAX_REPEATED_NGRAMS = 0.5
NGRAM = 3
# Plausible speaking rate, non-space characters per second, wide enough for slow read
# speech and fast conversational Arabic/English; hallucinated loops run far above it.
MIN_CHARS_PER_SECOND = 2.0
MAX_CHARS_PER_SECOND = 30.0
LOOP_STOPS = ("loop", "budget")


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / len(zlib.compress(data))


def repeated_ngram_fraction(words: list[str], n: int = NGRAM) -> float:
    grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
    if not grams:
        return 0.0
    return 1.0 - len(set(grams)) / len(grams)


def chars_per_second(text: str, seconds: float) -> float:
    return sum(1 for ch in text if not ch.isspace()) / max(seconds, 1e-3)


def red_flags(cut) -> list[str]:
    """The hallucination flags raised by a cut's pseudo-label (empty list: none)."""
    text = teacher_text(cut)
    norm = normalizer_for(cut_language(cut))(text)
    flags = []
    if teacher_field(cut, "teacher_stop") in LOOP_STOPS:
        flags.append(f"teacher stopped: {teacher_field(cut, 'teacher_stop')}")
    if not norm:
        flags.append("empty output")
        return flags
    if compression_ratio(text) > MAX_COMPRESSION_RATIO:
        flags.append("compression ratio")
    if repeated_ngram_fraction(norm.split()) > MAX_REPEATED_NGRAMS:
        flags.append("repeated n-grams")
    rate = chars_per_second(norm, cut.duration)
    if not MIN_CHARS_PER_SECOND <= rate <= MAX_CHARS_PER_SECOND:
        flags.append("speaking rate")
    return flags


class _TextSignal(Filter):
    needs = ("teacher",)
    batch_size = 1024

    def value(self, cut, text: str) -> float:
        raise NotImplementedError

    def score(self, cuts, audios):
        out = []
        for cut in cuts:
            if teacher_field(cut, "teacher_text") is None:
                out.append(Score.null("no teacher_text (run stage 3 first)"))
                continue
            out.append(Score(self.value(cut, teacher_text(cut))))
        return out


class CompressionRatio(_TextSignal):
    name = "compression_ratio"
    default_threshold = MAX_COMPRESSION_RATIO

    def value(self, cut, text):
        # An empty text compresses to zlib's header alone; call it incompressible (1).
        return compression_ratio(text) if text else 1.0


class RepeatedNgrams(_TextSignal):
    name = "repeated_ngrams"
    default_threshold = MAX_REPEATED_NGRAMS

    def value(self, cut, text):
        return repeated_ngram_fraction(normalizer_for(cut_language(cut))(text).split())


class CharsPerSecond(_TextSignal):
    """Raw speaking rate; stored as is.  Only too FAST is "worse" here (loops); too slow
    (dropped speech) is one of the `hallucination` flags instead."""

    name = "chars_per_second"
    default_threshold = MAX_CHARS_PER_SECOND

    def value(self, cut, text):
        return chars_per_second(normalizer_for(cut_language(cut))(text), cut.duration)


class Hallucination(_TextSignal):
    name = "hallucination"
    # Keep a cut only when no flag is raised.
    default_threshold = 0.0

    def value(self, cut, text):
        return float(len(red_flags(cut)))
