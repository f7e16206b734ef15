"""`proxy_wer`: WER(proxy transcript, teacher transcript), the paper's best filter.

The teacher's pseudo-label is the reference and a second, independent ASR model (the
proxy) the hypothesis; both pass through the cut language's normaliser.  Where the two
disagree, at least one is wrong, and the teacher usually is.  Cuts in a language the
proxy does not cover get null (logged with the reason), never a made-up score.
"""
from __future__ import annotations

from collections import defaultdict

from udistil.evaluate.scoring import BAD_WER, utterance_wer
from udistil.filters.base import AudioModelFilter, Score, cut_language, teacher_field, teacher_text

DEFAULT_PROXY = "packaged:whisper-tiny.en"


class ProxyWer(AudioModelFilter):
    name = "proxy_wer"
    higher_is_worse = True
    # The paper's rule: drop pseudo-labels whose proxy WER exceeds 80.
    default_threshold = BAD_WER
    batch_size = 32

    def __init__(self, proxy: str = DEFAULT_PROXY, proxy_languages: list[str] | None = None,
                 model_batch_size: int = 8, device: str = "cpu", dtype: str | None = None,
                 proxy_model=None):
        from udistil.filters.proxy_models import load_proxy

        # `proxy_model` lets a caller share one loaded model between several filters.
        self.proxy = proxy_model or load_proxy(proxy, proxy_languages, model_batch_size, device, dtype)

    def score(self, cuts, audios):
        out: list[Score | None] = [None] * len(cuts)
        by_language = defaultdict(list)
        for i, cut in enumerate(cuts):
            lang = cut_language(cut)
            if teacher_field(cut, "teacher_text") is None:
                out[i] = Score.null("no teacher_text (run stage 3 first)")
            elif not self.proxy.supports(lang):
                out[i] = Score.null(self.proxy.why_not(lang))
            else:
                by_language[lang].append(i)
        for lang, members in by_language.items():
            hyps = self.proxy.transcribe([audios[i] for i in members], lang)
            for i, hyp in zip(members, hyps):
                out[i] = Score(utterance_wer(teacher_text(cuts[i]), hyp, lang))
        return out
