"""`sonar_sim`: cosine similarity of SONAR speech and text embeddings (higher = better).

SONAR (Meta, sonar-space on PyPI) embeds speech and text into one sentence space, so a
pseudo-label that says what was spoken lies close to the speech embedding.  The speech
encoder is per language (sonar_speech_encoder_<iso639-3>); the text encoder is one
multilingual model that needs the FLORES code of the language (arb_Arab, swh_Latn, ...).

This needs `sonar-space` and its runtime `fairseq2` (with the native `fairseq2n`), which
are built against specific torch versions; where they do not import, the filter stops at
construction with the import error and the way out, instead of producing a stand-in.
"""
from __future__ import annotations

from collections import defaultdict

from udistil.errors import UdistilError
from udistil.filters.base import AudioModelFilter, Score, cut_language, teacher_text
from udistil.filters.proxy_models import iso639_3

# SONAR speech encoders published with sonar-space (model cards), by ISO 639-3.
SPEECH_ENCODER_LANGUAGES = {
    "arb", "ben", "cat", "ces", "cmn", "cym", "dan", "deu", "eng", "est", "fin", "fra", "hin", "ind",
    "ita", "jpn", "kan", "kor", "mlt", "nld", "pes", "pol", "por", "ron", "rus", "slk", "spa", "swe",
    "swh", "tam", "tel", "tgl", "tha", "tur", "ukr", "urd", "uzn", "vie",
}
# The script half of the FLORES-200 code the text encoder wants.
_SCRIPTS = {"arb": "Arab", "pes": "Arab", "urd": "Arab", "cmn": "Hans", "jpn": "Jpan", "kor": "Hang",
            "rus": "Cyrl", "ukr": "Cyrl", "hin": "Deva", "ben": "Beng", "tam": "Taml", "tel": "Telu",
            "kan": "Knda", "tha": "Thai"}
TEXT_ENCODER = "text_sonar_basic_encoder"


def flores_code(lang3: str) -> str:
    return f"{lang3}_{_SCRIPTS.get(lang3, 'Latn')}"


def import_sonar():
    try:
        from sonar.inference_pipelines.speech import SpeechToEmbeddingModelPipeline
        from sonar.inference_pipelines.text import TextToEmbeddingModelPipeline
    except Exception as e:  # ImportError, or fairseq2n failing to load against this torch
        raise UdistilError(
            "sonar_sim needs the SONAR encoders (pip install sonar-space, which brings fairseq2 and "
            "its native fairseq2n built for one specific torch version); they do not import here: "
            f"{type(e).__name__}: {e}. Install them in an environment whose torch matches a "
            "fairseq2n build (see the fairseq2 README's version matrix), or use another filter") from e
    return SpeechToEmbeddingModelPipeline, TextToEmbeddingModelPipeline


class SonarSimilarity(AudioModelFilter):
    name = "sonar_sim"
    higher_is_worse = False
    # No threshold is given by the paper for its own data; select by --keep-fraction.
    default_threshold = None

    def __init__(self, device: str = "cpu", dtype: str | None = None):
        import torch

        from udistil.models.device import resolve_dtype

        speech_pipeline, text_pipeline = import_sonar()
        self.device = torch.device(device)
        # Both encoders run in the stage's --dtype (float16 on a GPU by default), as the teacher does.
        self.dtype = resolve_dtype(dtype, device)
        self._speech_pipeline = speech_pipeline
        self.speech_encoders: dict[str, object] = {}
        self.text_encoder = text_pipeline(encoder=TEXT_ENCODER, tokenizer=TEXT_ENCODER, device=self.device,
                                          dtype=self.dtype)

    def supports(self, language) -> bool:
        return iso639_3(language) in SPEECH_ENCODER_LANGUAGES

    def speech_encoder(self, lang3: str):
        if lang3 not in self.speech_encoders:
            self.speech_encoders[lang3] = self._speech_pipeline(
                encoder=f"sonar_speech_encoder_{lang3}", device=self.device, dtype=self.dtype)
        return self.speech_encoders[lang3]

    def score(self, cuts, audios):
        import torch

        out: list[Score | None] = [None] * len(cuts)
        by_language = defaultdict(list)
        for i, cut in enumerate(cuts):
            lang = cut_language(cut)
            if not teacher_text(cut):
                out[i] = Score.null("empty pseudo-label: nothing to embed")
            elif not self.supports(lang):
                out[i] = Score.null(f"no SONAR speech encoder for language {lang!r}")
            else:
                by_language[iso639_3(lang)].append(i)
        for lang3, members in by_language.items():
            waves = [torch.from_numpy(audios[i]).unsqueeze(0) for i in members]
            speech = self.speech_encoder(lang3).predict(waves, batch_size=len(waves))
            text = self.text_encoder.predict([teacher_text(cuts[i]) for i in members],
                                             source_lang=flores_code(lang3), batch_size=len(members))
            cosine = torch.nn.functional.cosine_similarity(speech.float(), text.float(), dim=-1)
            for i, value in zip(members, cosine.tolist()):
                out[i] = Score(value)
        return out
