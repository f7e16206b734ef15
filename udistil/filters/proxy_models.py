"""Proxy ASR models for `proxy_wer`: any transformers ASR behind one small interface.

`load_proxy(spec)` looks at the model's config and returns one of
  WhisperProxy    Whisper family (packaged:whisper-tiny.en offline, openai/whisper-*),
                  decoded with our Transcriber (greedy, packed, loop-stopped);
  SeamlessProxy   SeamlessM4T-v2 speech-to-text (the paper's proxy, facebook/seamless-m4t-v2-large);
  CtcProxy        wav2vec2 / MMS CTC models (MMS: one adapter per language, switched per batch).
Each has `supports(language) -> bool`, `why_not(language) -> str` and
`transcribe(audios, language) -> list[str]` for clips of one language.

Languages are ISO 639-1 in our manifests ("ar"); SeamlessM4T and MMS use ISO 639-3
("arb", "swh"); `iso639_3` maps the common ones and passes 3-letter codes through.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path


from udistil.errors import UdistilError
from udistil.models.audio_context import SAMPLE_RATE

logger = logging.getLogger(__name__)


# ISO 639-1 -> the 639-3 code SeamlessM4T and MMS use (standard Arabic is "arb", Swahili "swh").
_ISO639_3 = {
    "ar": "arb", "sw": "swh", "en": "eng", "fr": "fra", "de": "deu", "es": "spa", "it": "ita",
    "pt": "por", "ru": "rus", "zh": "cmn", "ja": "jpn", "ko": "kor", "hi": "hin", "ur": "urd",
    "bn": "ben", "fa": "pes", "tr": "tur", "nl": "nld", "pl": "pol", "uk": "ukr", "vi": "vie",
    "id": "ind", "th": "tha", "he": "heb", "el": "ell", "am": "amh", "ha": "hau", "yo": "yor",
    "so": "som", "ln": "lin", "sn": "sna", "ta": "tam", "te": "tel", "mr": "mar", "gu": "guj",
    "ml": "mal", "kn": "kan", "pa": "pan", "ne": "npi", "ms": "zlm", "tl": "tgl", "sv": "swe",
    "fi": "fin", "da": "dan", "no": "nob", "cs": "ces", "ro": "ron", "hu": "hun", "bg": "bul",
}


def iso639_3(language: str | None) -> str | None:
    if not language:
        return None
    base = language.replace("_", "-").split("-")[0].lower()
    return base if len(base) == 3 else _ISO639_3.get(base)


def _placement(device, dtype):
    """(torch.device, torch.dtype) of a filter's device and dtype options (models/device.py)."""
    import torch

    from udistil.models.device import resolve_dtype

    device = torch.device(device)
    return device, resolve_dtype(dtype, device)


class WhisperProxy:
    def __init__(self, spec: str, batch_size: int = 8, device: str = "cpu", dtype: str | None = None):
        from udistil.teacher.transcriber import DecodeOptions, Transcriber

        self.transcriber = Transcriber.from_spec(spec, DecodeOptions(batch_size=batch_size), *_placement(device, dtype))
        self.name = str(spec)

    def supports(self, language):
        return language is not None and self.transcriber.supports(language)

    def why_not(self, language):
        return f"proxy {self.name} has no language token for {language!r}"

    def transcribe(self, audios, language):
        return [t.text for t in self.transcriber.transcribe(list(audios), [language] * len(audios))]


class SeamlessProxy:
    """SeamlessM4Tv2ForSpeechToText, speech in, text in the cut's own language out."""

    def __init__(self, path: str, device: str = "cpu", dtype: str | None = None):
        from transformers import AutoProcessor, SeamlessM4Tv2ForSpeechToText

        self.device, self.dtype = _placement(device, dtype)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = SeamlessM4Tv2ForSpeechToText.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.name = path
        lang_ids = getattr(self.model.generation_config, "text_decoder_lang_to_code_id", None) or {}
        self.languages = set(lang_ids)

    def supports(self, language):
        return iso639_3(language) in self.languages

    def why_not(self, language):
        return f"SeamlessM4T proxy has no target language for {language!r} (639-3: {iso639_3(language)})"

    def transcribe(self, audios, language):
        import torch

        # Features to the model's device and dtype (only floating tensors change dtype).
        inputs = self.processor(audios=list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                padding=True).to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            tokens = self.model.generate(**inputs, tgt_lang=iso639_3(language), num_beams=1, do_sample=False)
        return [t.strip() for t in self.processor.batch_decode(tokens, skip_special_tokens=True)]


class CtcProxy:
    """wav2vec2-style CTC.  MMS checkpoints carry one vocabulary + adapter per language;
    other CTC models cover the languages given by --proxy-languages."""

    def __init__(self, path: str, languages: list[str] | None = None, device: str = "cpu",
                 dtype: str | None = None):
        from transformers import AutoModelForCTC, AutoProcessor

        self.device, self.dtype = _placement(device, dtype)
        self.processor = AutoProcessor.from_pretrained(path)
        self.model = AutoModelForCTC.from_pretrained(path, dtype=self.dtype).to(self.device).eval()
        self.name = path
        vocab = getattr(self.processor.tokenizer, "vocab", None)
        # MMS tokenizers hold {language: {token: id}}; a plain one {token: id}.
        self.multilingual = isinstance(vocab, dict) and vocab and isinstance(next(iter(vocab.values())), dict)
        if self.multilingual:
            self.languages = set(vocab)
        elif languages:
            self.languages = {iso639_3(l) or l for l in languages}
        else:
            raise UdistilError(f"{path}: this CTC model does not say which language it transcribes; "
                               "pass --proxy-languages (e.g. --proxy-languages en)")
        self.current = None

    def supports(self, language):
        return iso639_3(language) in self.languages

    def why_not(self, language):
        return f"CTC proxy {self.name} does not cover {language!r}"

    def _switch(self, code):
        if self.multilingual and code != self.current:
            self.processor.tokenizer.set_target_lang(code)
            self.model.load_adapter(code)
            self.current = code

    def transcribe(self, audios, language):
        import torch

        self._switch(iso639_3(language))
        inputs = self.processor(list(audios), sampling_rate=SAMPLE_RATE, return_tensors="pt",
                                padding=True).to(self.device, dtype=self.dtype)
        with torch.inference_mode():
            logits = self.model(**inputs).logits
        return [t.strip() for t in self.processor.batch_decode(logits.argmax(-1))]


def load_proxy(spec: str, languages: list[str] | None = None, batch_size: int = 8, device: str = "cpu",
               dtype: str | None = None):
    """The proxy model for `spec` (hub id, local dir, packaged:whisper-tiny.en) on `device`
    in `dtype` (None: the device's default, models/device.py)."""
    from udistil.models.spec import resolve_model

    path = resolve_model(spec)
    config = json.loads((Path(path) / "config.json").read_text())
    kind = config.get("model_type", "")
    architectures = " ".join(config.get("architectures") or [])
    try:
        if kind == "whisper":
            return WhisperProxy(spec, batch_size, device, dtype)
        if kind.startswith("seamless_m4t"):
            return SeamlessProxy(path, device, dtype)
        if "ForCTC" in architectures or kind in ("wav2vec2", "wav2vec2-bert", "hubert", "data2vec-audio"):
            return CtcProxy(path, languages, device, dtype)
    except UdistilError:
        raise
    except Exception as e:  # transformers raises many types for a mismatched directory
        raise UdistilError(f"{path}: cannot load the proxy ASR model ({type(e).__name__}: {e})") from e
    raise UdistilError(f"{path}: model type {kind!r} is not a supported proxy ASR "
                       "(Whisper, SeamlessM4T-v2 or a wav2vec2/MMS CTC model)")
