"""WER and CER (percent) over normalised text, with jiwer.

Every function here normalises its inputs with `normalizer_for(language)` first, so
callers pass raw references and hypotheses.

Corpus scores are pooled the usual way: total edits (substitutions + deletions +
insertions) over total reference units, never an average of per-utterance rates.  CER
follows jiwer: characters of the normalised text, the single spaces between words
included.

Empty references (no ground truth, or a reference the normaliser empties, e.g. an Arabic
reference that was all Latin text) are handled here, not left to jiwer (jiwer 3 raised on
them; jiwer 4 accepts them): an empty reference contributes no reference units and counts
every hypothesis word (character) as an insertion.  A set whose references hold no units
at all has no defined WER; `score_pairs` then reports wer/cer as None, and the number of
empty references is always reported as `empty_refs`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import jiwer

from udistil.errors import UdistilError
from udistil.evaluate.normalize import normalizer_for

# Kaldi's op codes for an aligned pair: Correct, Substitution, Insertion, Deletion.
_JIWER_TO_KALDI_OP = {"equal": "C", "substitute": "S", "insert": "I", "delete": "D"}


@dataclass
class ErrorCounts:
    """Edit counts summed over utterances; `ref_units` are reference words or characters."""

    ref_units: int = 0
    hits: int = 0
    substitutions: int = 0
    deletions: int = 0
    insertions: int = 0

    @property
    def errors(self) -> int:
        return self.substitutions + self.deletions + self.insertions

    def rate(self) -> float | None:
        """Error rate in percent; None when there is no reference unit to divide by."""
        if self.ref_units == 0:
            return None
        return 100.0 * self.errors / self.ref_units

    def __add__(self, other: "ErrorCounts") -> "ErrorCounts":
        return ErrorCounts(
            self.ref_units + other.ref_units,
            self.hits + other.hits,
            self.substitutions + other.substitutions,
            self.deletions + other.deletions,
            self.insertions + other.insertions,
        )


def normalise_pairs(refs: Sequence[str], hyps: Sequence[str], languages: Sequence[str | None]):
    """Normalise each (ref, hyp) with its language's normaliser; None counts as ''."""
    if not (len(refs) == len(hyps) == len(languages)):
        raise UdistilError(
            f"score: {len(refs)} references, {len(hyps)} hypotheses and {len(languages)} "
            "languages; they must be the same length"
        )
    norm_refs, norm_hyps = [], []
    for ref, hyp, lang in zip(refs, hyps, languages):
        normalise = normalizer_for(lang)
        norm_refs.append(normalise(ref or ""))
        norm_hyps.append(normalise(hyp or ""))
    return norm_refs, norm_hyps


def count_errors(norm_refs: Sequence[str], norm_hyps: Sequence[str], unit: str = "word") -> ErrorCounts:
    """Pooled edit counts for already-normalised text; unit is "word" or "char"."""
    if unit == "word":
        process, size = jiwer.process_words, lambda text: len(text.split())
    elif unit == "char":
        process, size = jiwer.process_characters, len
    else:
        raise ValueError(f"unit must be 'word' or 'char', not {unit!r}")

    counts = ErrorCounts()
    scored_refs, scored_hyps = [], []
    for ref, hyp in zip(norm_refs, norm_hyps):
        if ref:
            scored_refs.append(ref)
            scored_hyps.append(hyp)
        else:
            counts.insertions += size(hyp)  # nothing to match: every unit is inserted
    if scored_refs:
        out = process(scored_refs, scored_hyps)
        counts += ErrorCounts(
            ref_units=sum(size(r) for r in scored_refs),
            hits=out.hits,
            substitutions=out.substitutions,
            deletions=out.deletions,
            insertions=out.insertions,
        )
    return counts


def _summary(norm_refs, norm_hyps) -> dict:
    words = count_errors(norm_refs, norm_hyps, "word")
    chars = count_errors(norm_refs, norm_hyps, "char")
    return {
        "wer": words.rate(),
        "cer": chars.rate(),
        "n": len(norm_refs),
        "ref_words": words.ref_units,
        "sub": words.substitutions,
        "del": words.deletions,
        "ins": words.insertions,
        "empty_refs": sum(1 for r in norm_refs if not r),
    }


def score_pairs(refs: Sequence[str], hyps: Sequence[str], languages: Sequence[str | None]) -> dict:
    """Corpus WER/CER (percent) over normalised text, overall and per language.

    Returns {"wer", "cer", "n", "ref_words", "sub", "del", "ins", "empty_refs",
    "per_language": {lang: {same keys except per_language}}}.  wer/cer are None when the
    (language's) references hold no words, e.g. a set with no ground truth.
    """
    norm_refs, norm_hyps = normalise_pairs(refs, hyps, languages)
    result = _summary(norm_refs, norm_hyps)
    by_language: dict[str, tuple[list, list]] = {}
    for ref, hyp, lang in zip(norm_refs, norm_hyps, languages):
        lang_refs, lang_hyps = by_language.setdefault(lang or "", ([], []))
        lang_refs.append(ref)
        lang_hyps.append(hyp)
    result["per_language"] = {
        lang: _summary(lang_refs, lang_hyps) for lang, (lang_refs, lang_hyps) in sorted(by_language.items())
    }
    return result


# A pseudo-label is bad when its true WER exceeds this: the paper's threshold, used by the
# supervised baseline (oracle_wer), fusion's calibration target and the filter report.
BAD_WER = 80.0


def utterance_wer(ref: str, hyp: str, language: str | None) -> float:
    """WER (percent) of one utterance after normalisation, for the proxy/oracle WER filters.

    Both empty -> 0.0; empty reference with a non-empty hypothesis -> 100.0 (the rate is
    unbounded there, and a filter only needs to know the pair disagrees completely).
    Otherwise (S + D + I) / reference words, which can exceed 100 with many insertions.
    """
    normalise = normalizer_for(language)
    norm_ref, norm_hyp = normalise(ref or ""), normalise(hyp or "")
    if not norm_ref:
        return 0.0 if not norm_hyp else 100.0
    return count_errors([norm_ref], [norm_hyp], "word").rate()


def align_words(norm_ref: str, norm_hyp: str) -> list[tuple[str, str | None, str | None]]:
    """Word alignment of normalised text as (op, ref_word, hyp_word) with Kaldi ops C/S/I/D.

    ref_word is None for an insertion, hyp_word None for a deletion.
    """
    ref_words, hyp_words = norm_ref.split(), norm_hyp.split()
    if not ref_words:
        return [("I", None, w) for w in hyp_words]
    if not hyp_words:
        return [("D", w, None) for w in ref_words]
    out = jiwer.process_words(norm_ref, norm_hyp)
    aligned = []
    for chunk in out.alignments[0]:
        op = _JIWER_TO_KALDI_OP[chunk.type]
        refs = ref_words[chunk.ref_start_idx:chunk.ref_end_idx]
        hyps = hyp_words[chunk.hyp_start_idx:chunk.hyp_end_idx]
        width = max(len(refs), len(hyps))
        for i in range(width):
            aligned.append((op, refs[i] if i < len(refs) else None, hyps[i] if i < len(hyps) else None))
    return aligned
