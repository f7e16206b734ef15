"""`word_nll`: how unlikely the pseudo-label's words are under a unigram model of the language.

The paper scores a pseudo-label's negative log-likelihood under a language model; without
a hub model we use the word frequencies that `wordfreq` ships (offline, about 40
languages, Arabic and English among them, built from Wikipedia, subtitles, news, books and
web text).  A teacher that heard the words writes common words of the right language; a
teacher that guesses writes rare or invented words, or words of another language, which
the list of the clip's language does not know.  Value: the mean over the words of
-ln(frequency), with words the list does not know counted at `UNSEEN_FREQUENCY`
(higher = worse).  Label-free, text only, no model pass.

Languages wordfreq has no list for (Swahili among them) get null, never a neighbour's
list: wordfreq itself would silently fall back to English for Swahili, which scores how
English a Swahili transcript is.
"""
from __future__ import annotations

import math
import warnings
from functools import lru_cache

from udistil.filters.base import Filter, Score, cut_language, teacher_field, teacher_text

# One in a billion words: below the rarest word any wordfreq list keeps (about 1e-8).
UNSEEN_FREQUENCY = 1e-9
# Whisper's language codes where wordfreq uses another code for the same language.
WORDFREQ_CODE = {"no": "nb", "tl": "fil", "sr": "sh", "hr": "sh", "bs": "sh"}


@lru_cache(maxsize=1)
def wordfreq_languages() -> frozenset[str]:
    import wordfreq

    return frozenset(wordfreq.available_languages(wordlist="best"))


def word_nll(text: str, language: str) -> float | None:
    """Mean -ln(frequency) of the words of `text` in `language`'s list; None without words."""
    import wordfreq

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # wordfreq warns about tokenizing some scripts
        words = wordfreq.tokenize(text, language)
    if not words:
        return None
    return sum(-math.log(max(wordfreq.word_frequency(w, language), UNSEEN_FREQUENCY)) for w in words) / len(words)


class WordNll(Filter):
    name = "word_nll"
    higher_is_worse = True
    needs = ("teacher",)
    batch_size = 1024
    # No natural threshold: word frequencies differ by language; select by --keep-fraction.
    default_threshold = None

    def score(self, cuts, audios):
        out = []
        for cut in cuts:
            lang = cut_language(cut)
            code = WORDFREQ_CODE.get(lang, lang)
            if teacher_field(cut, "teacher_text") is None:
                out.append(Score.null("no teacher_text (run stage 3 first)"))
            elif code not in wordfreq_languages():
                out.append(Score.null(f"wordfreq has no word list for language {lang!r}"))
            else:
                value = word_nll(teacher_text(cut), code)
                out.append(Score.null("the pseudo-label has no words") if value is None else Score(value))
        return out
