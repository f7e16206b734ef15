"""Loading a cut's audio as 16 kHz mono float32, with checks that name the file.

Whisper sees at most 30 s, wants 16 kHz mono, and hallucinates on silence.  Each of those
problems is turned into a `BadAudioError` here, before any model sees the samples, so the
caller can skip the cut (and count it) instead of crashing inside transformers.
"""
from __future__ import annotations

import os

import numpy as np
from lhotse.cut import Cut

from udistil.errors import BadAudioError
from udistil.models.audio_context import SAMPLE_RATE

MAX_DURATION = 30.0
# RMS below this (about -70 dBFS) is digital silence; real room tone sits far above it.
SILENCE_RMS = 3e-4
MIN_DURATION = 0.1


def audio_source_path(cut: Cut) -> str:
    """Best-effort path (or URL) of the file behind a cut, for error messages."""
    rec = getattr(cut, "recording", None)
    if rec is not None and rec.sources:
        return str(rec.sources[0].source)
    return f"<cut {cut.id}>"


def load_cut_audio(cut: Cut, max_duration: float = MAX_DURATION) -> np.ndarray:
    """Return the cut's samples as float32 mono at 16 kHz, or raise BadAudioError."""
    path = audio_source_path(cut)
    if cut.duration is None or cut.duration < MIN_DURATION:
        raise BadAudioError(path, f"duration {cut.duration} s is below {MIN_DURATION} s (empty audio?)", cut.id)
    if cut.duration > max_duration + 1e-3:
        raise BadAudioError(
            path, f"{cut.duration:.1f} s is longer than Whisper's {max_duration:.0f} s window; "
            "stage 2 splits or drops such cuts", cut.id)
    rec = getattr(cut, "recording", None)
    missing = [s.source for s in (rec.sources if rec is not None else []) if s.type == "file"
               and not os.path.exists(s.source)]
    if missing:
        raise BadAudioError(missing[0], "audio file not found", cut.id)
    empty = [s.source for s in (rec.sources if rec is not None else []) if s.type == "file"
             and os.path.getsize(s.source) == 0]
    if empty:
        raise BadAudioError(empty[0], "audio file is empty (0 bytes)", cut.id)
    if cut.sampling_rate != SAMPLE_RATE:
        cut = cut.resample(SAMPLE_RATE)
    try:
        samples = cut.load_audio()
    except FileNotFoundError as e:
        raise BadAudioError(path, "audio file not found", cut.id) from e
    except Exception as e:  # soundfile/ffmpeg/lhotse raise many types for corrupt files
        raise BadAudioError(path, f"cannot decode audio ({type(e).__name__}: {e})", cut.id) from e
    samples = np.asarray(samples, dtype=np.float32)
    if samples.ndim == 2:
        # Stereo (or more) recordings are down-mixed: Whisper is mono.
        samples = samples.mean(axis=0)
    if samples.size < MIN_DURATION * SAMPLE_RATE:
        raise BadAudioError(path, f"only {samples.size} samples decoded (empty or truncated file)", cut.id)
    if not np.all(np.isfinite(samples)):
        raise BadAudioError(path, "audio contains NaN or infinite samples", cut.id)
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if rms < SILENCE_RMS:
        raise BadAudioError(path, f"audio is silent (RMS {rms:.1e}); nothing to transcribe", cut.id)
    return samples
