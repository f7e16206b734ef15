"""`oracle_wer`: WER of the pseudo-label against the ground truth (NOT label-free).

The supervised baseline of the paper (keep WER <= 80).  It refuses to run on a set with
no references at all; a cut with an empty reference (or one of only non-speech tags such as
`<music>`: evaluate/normalize.py) in an otherwise labelled set gets null, logged.
"""
from __future__ import annotations

from udistil.data.manifests import supervision
from udistil.errors import UdistilError
from udistil.evaluate.normalize import has_reference
from udistil.evaluate.scoring import BAD_WER, utterance_wer
from udistil.filters.base import Filter, Score, cut_language, teacher_field, teacher_text


def reference_text(cut) -> str:
    return (supervision(cut).text or "").strip()


class OracleWer(Filter):
    name = "oracle_wer"
    higher_is_worse = True
    label_free = False
    needs = ("teacher", "reference")
    default_threshold = BAD_WER
    batch_size = 1024

    def check_set(self, cuts, path) -> None:
        """Refuse a set without any reference: there is nothing to be an oracle with."""
        if not any(has_reference(reference_text(c), cut_language(c)) for c in cuts):
            raise UdistilError(f"{path}: no cut has a reference (supervision.text); oracle_wer needs "
                               "ground truth. Use a label-free filter instead")

    def score(self, cuts, audios):
        out = []
        for cut in cuts:
            ref, lang = reference_text(cut), cut_language(cut)
            if not has_reference(ref, lang):
                out.append(Score.null("no reference text"))
            elif teacher_field(cut, "teacher_text") is None:
                out.append(Score.null("no teacher_text (run stage 3 first)"))
            else:
                out.append(Score(utterance_wer(ref, teacher_text(cut), lang)))
        return out
