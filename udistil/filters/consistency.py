"""`consistency`: how much the teacher's own transcript changes under a small nudge.

WER(teacher's stage-3 greedy output, teacher's output for a perturbed copy of the audio)
in percent, higher = worse, a WER-like estimate with the proxy-WER threshold (80).  A
teacher that really heard the words says them again when the audio is slightly faster or
slightly noisier; a hallucination, a loop or a guess on unintelligible audio changes.
Label-free, any language the teacher knows, and no extra model: the cost is one more
teacher pass.

Perturbations (`perturb`):
  speed  the audio played `speed_factor` times faster (polyphase resampling, pitch moves
         with it, as in Kaldi's speed perturbation); default 1.1;
  noise  white noise added at `noise_snr` dB (per-cut seed, so reruns agree);
  beam   the clean audio decoded again with beam search (`beam` wide).
"""
from __future__ import annotations

import zlib
from collections import defaultdict
from fractions import Fraction

import numpy as np

from udistil.errors import UdistilError
from udistil.evaluate.scoring import BAD_WER, utterance_wer
from udistil.filters.base import AudioModelFilter, Score, cut_language, teacher_field, teacher_text

PERTURBATIONS = ("speed", "noise", "beam")


def speed_perturb(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `audio` `factor` times faster (fewer samples for factor > 1)."""
    ratio = Fraction(factor).limit_denominator(100)
    from scipy.signal import resample_poly  # here: scipy.signal costs ~1 s at every step's start-up
    return resample_poly(audio, ratio.denominator, ratio.numerator).astype(np.float32)


def add_noise(audio: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    power = float(np.mean(audio.astype(np.float64) ** 2))
    noise = rng.standard_normal(audio.shape) * np.sqrt(power / 10 ** (snr_db / 10))
    return (audio + noise).astype(np.float32)


class Consistency(AudioModelFilter):
    name = "consistency"
    higher_is_worse = True
    default_threshold = BAD_WER
    batch_size = 32

    def __init__(self, model: str | None = None, perturb: str = "speed", speed_factor: float = 1.1,
                 noise_snr: float = 10.0, beam: int = 4, model_batch_size: int = 8, device: str = "cpu",
                 dtype: str | None = None, transcriber=None):
        from udistil.teacher.transcriber import DecodeOptions, Transcriber

        if perturb not in PERTURBATIONS:
            raise UdistilError(f"--perturb must be one of {', '.join(PERTURBATIONS)}, not {perturb!r}")
        if transcriber is None and not model:
            raise UdistilError("consistency needs the teacher: pass --model (the stage-3 teacher, "
                               "e.g. exp/models/teacher)")
        self.perturb, self.speed_factor, self.noise_snr = perturb, speed_factor, noise_snr
        options = DecodeOptions(batch_size=model_batch_size, beam=beam if perturb == "beam" else 1)
        self.transcriber = transcriber or Transcriber.from_spec(model, options, device, dtype)

    def perturbed(self, cut, audio: np.ndarray) -> np.ndarray:
        if self.perturb == "speed":
            return speed_perturb(audio, self.speed_factor)
        if self.perturb == "noise":
            return add_noise(audio, self.noise_snr, zlib.crc32(cut.id.encode()))
        return audio

    def score(self, cuts, audios):
        out: list[Score | None] = [None] * len(cuts)
        by_language = defaultdict(list)
        for i, cut in enumerate(cuts):
            # Decode in the language stage 3 used, so the comparison is like for like.
            lang = teacher_field(cut, "teacher_language") or cut_language(cut)
            if teacher_field(cut, "teacher_text") is None:
                out[i] = Score.null("no teacher_text (run stage 3 first)")
            elif not self.transcriber.supports(lang):
                out[i] = Score.null(f"the teacher has no language token for {lang!r}")
            else:
                by_language[lang].append(i)
        for lang, members in by_language.items():
            clips = [self.perturbed(cuts[i], audios[i]) for i in members]
            results = self.transcriber.transcribe(clips, [lang] * len(clips))
            for i, again in zip(members, results):
                out[i] = Score(utterance_wer(teacher_text(cuts[i]), again.text, cut_language(cuts[i])))
        return out
