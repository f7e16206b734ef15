"""`pesq`: PESQ (wide-band) between the speech and a TTS rendering of its pseudo-label.

The paper's idea: a pseudo-label that matches the audio, spoken by a TTS voice, sounds
more like the original than a wrong one.  Higher = better (MOS-LQO, about 1.0 to 4.6).
Renderers: espeak-ng (default, offline) or XTTS-v2 (coqui-tts; see tts_render.py).

Explicit edge cases, each a null with its reason rather than a crash or a fake value:
  * empty pseudo-label: there is nothing to render;
  * PESQ's NoUtterancesError (its voice-activity detector found no speech in one side),
    and digital silence, which PESQ itself would turn into NaN;
  * any other PesqError (e.g. a buffer too short to score);
  * a rendering that fails (the TTS rejects or chokes on this text): one bad label is one
    null, never a dead shard.
Length mismatch: PESQ compares two recordings of the same event and aligns them in time
only within utterances, so the rendering is trimmed or padded with silence to the
original's length; the original is never altered.
"""
from __future__ import annotations

import numpy as np

from udistil.errors import UdistilError
from udistil.filters.base import AudioModelFilter, Score, cut_language, teacher_text
from udistil.filters.tts_render import SAMPLE_RATE, make_renderer

# No speaker produces an "excellent" score below this; PESQ's floor (wb) is about 1.04.
DEFAULT_THRESHOLD = 1.1


def match_length(rendered: np.ndarray, length: int) -> np.ndarray:
    """Trim or zero-pad `rendered` to `length` samples."""
    if len(rendered) >= length:
        return rendered[:length]
    return np.concatenate([rendered, np.zeros(length - len(rendered), dtype=rendered.dtype)])


def pesq_wb(reference: np.ndarray, degraded: np.ndarray) -> Score:
    from pesq import NoUtterancesError, PesqError, pesq

    degraded = match_length(degraded, len(reference))
    # Digital silence makes PESQ's level normalisation divide by zero (NaN, not an error).
    if not np.any(reference) or not np.any(degraded):
        return Score.null("PESQ found no utterance: one side is digital silence")
    try:
        return Score(float(pesq(SAMPLE_RATE, reference, degraded, "wb")))
    except NoUtterancesError:
        return Score.null("PESQ found no utterance (speech too short or too quiet on one side)")
    except PesqError as e:
        return Score.null(f"PESQ failed: {type(e).__name__}: {e}")


class PesqScore(AudioModelFilter):
    name = "pesq"
    higher_is_worse = False
    default_threshold = DEFAULT_THRESHOLD

    def __init__(self, tts: str = "espeak", device: str = "cpu"):
        self.renderer = make_renderer(tts, device)

    def score(self, cuts, audios):
        out = []
        for cut, audio in zip(cuts, audios):
            text, lang = teacher_text(cut), cut_language(cut)
            if not text:
                out.append(Score.null("empty pseudo-label: nothing to render"))
            elif not self.renderer.supports(lang):
                out.append(Score.null(self.renderer.why_not(lang)))
            else:
                try:
                    rendered = self.renderer.render(text, lang, audio)
                except UdistilError as e:
                    out.append(Score.null(f"TTS could not render the pseudo-label: {e}"))
                    continue
                out.append(pesq_wb(audio, rendered))
        return out
