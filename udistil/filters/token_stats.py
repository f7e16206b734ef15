"""Shared base for scores read from the teacher's per-token statistics (stage 3).

confidence.py, entropy.py and nll.py summarise the per-token log-probabilities or
entropies that stage 3 kept from its decoding pass, so they cost no second model pass.
A cut whose teacher output is empty has no tokens and gets null: there is no
distribution to summarise (the hallucination signals score such cuts instead).
"""
from __future__ import annotations


from udistil.filters.base import Filter, Score, teacher_field


def _token_values(cut, key: str) -> list[float] | Score:
    values = teacher_field(cut, key)
    if values is None:
        return Score.null(f"no {key} in supervision.custom (run stage 3 first)")
    if len(values) == 0:
        return Score.null("the teacher produced no tokens")
    return [float(v) for v in values]


class _TokenStatistic(Filter):
    needs = ("teacher",)
    batch_size = 1024
    key = "teacher_logprobs"

    def summarise(self, values: list[float]) -> float:
        raise NotImplementedError

    def score(self, cuts, audios):
        out = []
        for cut in cuts:
            values = _token_values(cut, self.key)
            out.append(values if isinstance(values, Score) else Score(self.summarise(values)))
        return out
