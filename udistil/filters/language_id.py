"""`language_confidence`: is the pseudo-label written in the clip's language at all?

A teacher forced to decode Swahili it cannot follow often writes English-like nonsense or
a run of syllables no Swahili text contains; an Arabic clip it mishears can come out in
Latin script.  `lingua-language-detector` (offline: its character n-gram models ship in
the wheel) gives the probability that a text is in each of a set of candidate languages.
Value: that probability for the clip's language, against the clip's language plus
CONFUSERS (higher = better).  Label-free, text only.

Why a short fixed candidate set rather than all 75 of lingua's languages: each language's
models load in about a second, and the question is "the clip's language, or one of the
languages Whisper's failures look like", not "which of 75".
"""
from __future__ import annotations

from udistil.filters.base import Filter, Score, cut_language, teacher_field, teacher_text

# What Whisper's wrong outputs for Arabic and Swahili clips tend to look like: English and
# other large Latin-script languages, Latin-script African languages near Swahili, and the
# Arabic-script neighbours of Arabic.
CONFUSERS = ("en", "fr", "es", "de", "id", "so", "yo", "zu", "fa", "ur")


def lingua_language(code: str | None):
    """lingua's Language for an ISO 639-1 code, or None when lingua has no model for it."""
    from lingua import IsoCode639_1, Language

    if not code:
        return None
    try:
        return Language.from_iso_code_639_1(IsoCode639_1.from_str(code))
    except ValueError:
        return None


class LanguageConfidence(Filter):
    name = "language_confidence"
    higher_is_worse = False
    needs = ("teacher",)
    batch_size = 1024
    # The clip's language must be more likely than all the confusers together.
    default_threshold = 0.5

    def __init__(self):
        self.detectors: dict = {}

    def detector(self, language):
        from lingua import LanguageDetectorBuilder

        if language not in self.detectors:
            candidates = {language} | {lingua_language(c) for c in CONFUSERS}
            self.detectors[language] = LanguageDetectorBuilder.from_languages(
                *sorted((c for c in candidates if c is not None), key=lambda c: c.name)).build()
        return self.detectors[language]

    def score(self, cuts, audios):
        out = []
        for cut in cuts:
            lang = cut_language(cut)
            language = lingua_language(lang)
            text = teacher_text(cut)
            if teacher_field(cut, "teacher_text") is None:
                out.append(Score.null("no teacher_text (run stage 3 first)"))
            elif language is None:
                out.append(Score.null(f"lingua has no model for language {lang!r}"))
            elif not any(ch.isalpha() for ch in text):
                out.append(Score.null("the pseudo-label has no letters"))
            else:
                out.append(Score(self.detector(language).compute_language_confidence(text, language)))
        return out
