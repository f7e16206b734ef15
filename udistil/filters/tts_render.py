"""Text-to-speech renderers for the `pesq` filter: espeak-ng (offline) and XTTS-v2.

Each renderer has `supports(language)`, `why_not(language)` and
`render(text, language, speaker_audio) -> 16 kHz float32`.  XTTS-v2 clones the speaker
from the cut's own audio, which is what the paper does; espeak-ng has one voice per
language and ignores it.
"""
from __future__ import annotations

import functools
import subprocess
import tempfile

import numpy as np
import soundfile as sf

from udistil.errors import UdistilError
from udistil.tts.espeak import espeak_binary, resample, synthesize
from udistil.models.audio_context import SAMPLE_RATE

XTTS_MODEL = "tts_models/multilingual/multi-dataset/xtts_v2"
# Languages XTTS-v2 speaks (its model card); note: no Swahili.
XTTS_LANGUAGES = {"en", "es", "fr", "de", "it", "pt", "pl", "tr", "ru", "nl", "cs", "ar", "zh-cn",
                  "ja", "hu", "ko", "hi"}


@functools.lru_cache(maxsize=1)
def espeak_languages() -> frozenset[str]:
    """Language codes espeak-ng has a voice for (column 2 of `espeak-ng --voices`)."""
    out = subprocess.run([espeak_binary(), "--voices"], capture_output=True, text=True, check=True).stdout
    return frozenset(line.split()[1] for line in out.splitlines()[1:] if len(line.split()) > 1)


class EspeakRenderer:
    name = "espeak"

    def supports(self, language):
        # espeak-ng lists regional voices ("en-gb", "en-us"); voice "en" picks its default one.
        return bool(language) and any(code == language or code.startswith(language + "-")
                                      for code in espeak_languages())

    def why_not(self, language):
        return f"espeak-ng has no voice for language {language!r}"

    def render(self, text, language, speaker_audio=None):
        return synthesize(text, voice=language)


class XttsRenderer:
    name = "xtts"

    def __init__(self, device: str = "cpu"):
        try:
            from TTS.api import TTS
        except Exception as e:  # ImportError, or a broken install failing on import
            raise UdistilError(
                "--tts xtts needs XTTS-v2 from coqui-tts (pip install coqui-tts, then accept the "
                f"Coqui licence); it does not import here: {type(e).__name__}: {e}. "
                "Use --tts espeak (offline) instead") from e
        try:
            self.tts = TTS(XTTS_MODEL).to(device)
        except Exception as e:
            raise UdistilError(f"cannot load {XTTS_MODEL} ({type(e).__name__}: {e}); it is downloaded "
                               "on first use, so this needs the Coqui model hub or its cache") from e
        self.rate = self.tts.synthesizer.output_sample_rate

    def supports(self, language):
        return language in XTTS_LANGUAGES

    def why_not(self, language):
        return f"XTTS-v2 does not speak language {language!r}"

    def render(self, text, language, speaker_audio=None):
        # The cut's own voice is the speaker prompt: PESQ then compares content, not timbre.
        with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
            sf.write(tmp.name, speaker_audio, SAMPLE_RATE)
            wav = self.tts.tts(text=text, speaker_wav=tmp.name, language=language)
        return resample(np.asarray(wav, dtype=np.float32), self.rate, SAMPLE_RATE)


def make_renderer(name: str, device: str = "cpu"):
    if name == "espeak":
        return EspeakRenderer()
    if name == "xtts":
        return XttsRenderer(device)
    raise UdistilError(f"--tts must be espeak or xtts, not {name!r}")
