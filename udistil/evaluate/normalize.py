"""Text normalisation applied to references and hypotheses before WER/CER.

Both sides of every comparison (ground truth vs. hypothesis for evaluation, proxy vs.
teacher transcript for the proxy_wer filter) go through the same normaliser, chosen by the
cut's language with `normalizer_for`.

Arabic follows the paper's evaluation rules (PAPER.md, "Evaluation"):
  * Arabic-Indic digits (U+0660-0669) and Persian digits (U+06F0-06F9) become 0-9;
  * alef variants (alef with hamza above/below, madda, wasla) fold to bare alef;
  * diacritics (harakat, tanween, shadda, sukun, superscript alef, Quranic marks) and
    tatweel are deleted in place, so a word is never split by them;
  * only Arabic letters, digits, `%`, `@` and spaces survive; every other character
    (Latin text, punctuation, symbols) becomes a space, so two words joined by a comma
    stay two words;
  * whitespace is collapsed.
Small, documented additions beyond the paper, all of which only remove spurious errors:
  * NFKC first, so presentation forms (U+FB50-FEFF, e.g. the lam-alef ligature) and
    decomposed hamza sequences become the ordinary letters;
  * the Arabic percent sign ٪ counts as `%`;
  * Persian keheh ک and Farsi yeh ی (glyph-identical keyboard variants that Whisper
    sometimes emits in Arabic text) fold to Arabic kaf ك and yeh ي;
  * the dialect letters پ چ ڤ گ (Egyptian, Gulf and Maghrebi transcripts) are kept as
    Arabic letters instead of being deleted.
Taa marbuta, alef maqsura and hamza seats are NOT folded: the paper does not fold them.

Other languages use `normalize_basic`: NFKC, lower case, punctuation and symbols become
spaces (apostrophes inside words are dropped: "ng'ombe" -> "ngombe", "it's" -> "its"),
letters, combining marks and digits of every script are kept, whitespace collapsed.

Non-speech tags: one rule for every corpus and both sides of a comparison.  A tag in angle
or square brackets (`<UNK>`, `<music>`, `<noise>`, `<sil>`, `[laughter]`, `[noise]`,
`[MUSIC]`, ...: how Kaldi-style corpora such as ALFFA, and Whisper itself, mark what is not
a word) is removed before anything else, so it is never scored as the words "unk" or
"music".  A reference that is nothing but tags normalises to "" and counts as unlabelled
(`has_reference`): it is left out of WER, the oracle filter and the filter report.

Numbers: digits are left as digits in every language; nothing spells "25" as "twenty
five" (English) or "ishirini na tano" (Swahili), nor the reverse.  A reference written in
words scored against a hypothesis written in digits therefore counts as an error, as it
does in the paper's jiwer scoring; verbalising numbers would need a per-language
number grammar that the paper does not use.
"""
from __future__ import annotations

import re
import unicodedata
from typing import Callable

# --- Arabic -------------------------------------------------------------------------

_ARABIC_DIGITS = {chr(0x0660 + i): str(i) for i in range(10)}
_PERSIAN_DIGITS = {chr(0x06F0 + i): str(i) for i in range(10)}

_ARABIC_FOLDS = {
    **_ARABIC_DIGITS,
    **_PERSIAN_DIGITS,
    "\u0622": "\u0627",  # alef with madda above -> alef
    "\u0623": "\u0627",  # alef with hamza above -> alef
    "\u0625": "\u0627",  # alef with hamza below -> alef
    "\u0671": "\u0627",  # alef wasla -> alef
    "\u066A": "%",  # Arabic percent sign
    "\u06A9": "\u0643",  # Persian keheh -> kaf
    "\u06CC": "\u064A",  # Farsi yeh -> yeh
}
_ARABIC_FOLD_TABLE = str.maketrans(_ARABIC_FOLDS)

# Deleted without leaving a space: they sit inside words.
_ARABIC_IN_WORD_MARKS = re.compile(
    "["
    "\u0610-\u061A"  # Quranic honorifics and small high letters
    "\u064B-\u065F"  # tanween, fatha, damma, kasra, shadda, sukun, madda/hamza marks, ...
    "\u0670"  # superscript (dagger) alef
    "\u06D6-\u06DC\u06DF-\u06E4\u06E7\u06E8\u06EA-\u06ED"  # Quranic annotation marks
    "\u0640"  # tatweel (kashida)
    "\u200B-\u200F\u061C\u2066-\u2069\uFEFF"  # zero-width joiners and direction marks
    "]"
)

# Everything else outside this set becomes a space.
_ARABIC_KEEP = (
    "\u0621-\u063A"  # hamza .. ghain
    "\u0641-\u064A"  # feh .. yeh
    "\u067E\u0686\u06A4\u06AF"  # dialect letters peh, tcheh, veh, gaf
    "0-9%@ "
)
_NOT_ARABIC_KEEP = re.compile(f"[^{_ARABIC_KEEP}]")
_SPACES = re.compile(r"\s+")

# A non-speech tag: <...> or [...] without nested brackets or line breaks, at most 40
# characters inside, no space just inside a bracket ("a < b and c > d" is text).
NON_SPEECH_TAG = re.compile(r"<(?!\s)[^<>\n]{1,40}(?<!\s)>|\[(?!\s)[^\[\]\n]{1,40}(?<!\s)\]")


def remove_tags(text: str) -> str:
    """`text` with its non-speech tags (<UNK>, <music>, [laughter], ...) replaced by spaces."""
    return NON_SPEECH_TAG.sub(" ", text)


def normalize_arabic(text: str) -> str:
    """Normalise Arabic text by the paper's evaluation rules (see module docstring)."""
    text = remove_tags(unicodedata.normalize("NFKC", text or ""))
    text = _ARABIC_IN_WORD_MARKS.sub("", text)
    text = text.translate(_ARABIC_FOLD_TABLE)
    text = _NOT_ARABIC_KEEP.sub(" ", text)
    return _SPACES.sub(" ", text).strip()


# --- every other language -----------------------------------------------------------

# Apostrophe-like characters, deleted so that a word keeps together ("ng'ombe").
_APOSTROPHES = re.compile("['\u2019\u2018\u02BC\u02BB\u0060\u00B4]")


def _is_kept_in_basic(ch: str) -> bool:
    # L*: letters of any script, M*: combining marks (Indic vowel signs, accents that
    # NFKC could not compose), N*: digits and other numerals.
    return unicodedata.category(ch)[0] in "LMN"


def normalize_basic(text: str) -> str:
    """Lower-case, punctuation/symbols to spaces, apostrophes dropped, whitespace collapsed."""
    text = remove_tags(unicodedata.normalize("NFKC", text or "")).lower()
    text = _APOSTROPHES.sub("", text)
    text = "".join(ch if _is_kept_in_basic(ch) else " " for ch in text)
    return _SPACES.sub(" ", text).strip()


# --- choosing one ---------------------------------------------------------------------

# ISO 639-1/639-3 codes for Arabic and its dialects (macro-language members), plus the
# language name Whisper uses.  Region suffixes ("ar-EG", "ar_SA") are stripped first.
ARABIC_LANGUAGE_CODES = frozenset(
    {
        "ar", "ara", "arb", "arabic",
        "arz",  # Egyptian
        "ary",  # Moroccan
        "arq",  # Algerian
        "aeb",  # Tunisian
        "ayl",  # Libyan
        "apc", "ajp", "apd",  # Levantine (North, South), Sudanese
        "acm", "afb", "acq", "ars", "acw", "ayh", "ayn", "ayp", "adf", "aao", "abh",
        "abv", "acx", "aec", "auz", "pga", "shu", "ssh", "avl",
    }
)


def is_arabic(language: str | None) -> bool:
    if not language:
        return False
    base = re.split(r"[-_]", language.strip().lower(), maxsplit=1)[0]
    return base in ARABIC_LANGUAGE_CODES


def normalizer_for(language: str | None) -> Callable[[str], str]:
    """The normaliser for a cut's `supervision.language` (Arabic or dialect -> Arabic rules)."""
    return normalize_arabic if is_arabic(language) else normalize_basic


def has_reference(text: str | None, language: str | None) -> bool:
    """Whether a reference has anything to score once normalised (tags and punctuation gone).

    The one rule for "this cut is labelled": a line that is empty, or only `<music>` or
    `<UNK>`, is unlabelled."""
    return bool(normalizer_for(language)(text or ""))
