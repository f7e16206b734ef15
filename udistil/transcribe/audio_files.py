"""Finding and reading the audio files given to `udistil transcribe`.

Paths may be files or directories (searched recursively for the extensions below).  Each
file is read with soundfile (wav, flac, ogg/opus and, with libsndfile >= 1.1, mp3), mixed
down to mono and resampled to 16 kHz.  A file that cannot be used raises `BadAudioError` naming it, and the caller goes on
with the next one.
"""
from __future__ import annotations

from math import gcd
from pathlib import Path

import numpy as np

from udistil.data.audio import MIN_DURATION, SAMPLE_RATE, SILENCE_RMS
from udistil.errors import BadAudioError

AUDIO_EXTENSIONS = (".wav", ".flac", ".mp3", ".ogg", ".opus")


def find_audio_files(paths) -> list[Path]:
    """Files in the order given; a directory contributes its audio files, sorted.

    A path that does not exist is kept, so that reading it reports it like any bad file.
    """
    found: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found += sorted(p for p in given.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            found.append(given)
    return found


def read_audio(path) -> np.ndarray:
    """16 kHz mono float32 samples of `path`, or BadAudioError with the reason."""
    import soundfile as sf

    path = Path(path)
    if not path.exists():
        raise BadAudioError(path, "file not found")
    if path.is_file() and path.stat().st_size == 0:
        raise BadAudioError(path, "empty file (0 bytes)")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as e:  # soundfile raises LibsndfileError, RuntimeError, TypeError for bad files
        raise BadAudioError(path, f"cannot decode audio ({' '.join(str(e).split())})") from e
    # Down-mix to mono, then to 16 kHz (polyphase filter, exact for integer rate ratios).
    samples = samples.mean(axis=1)
    if rate != SAMPLE_RATE and samples.size:
        g = gcd(int(rate), SAMPLE_RATE)
        from scipy.signal import resample_poly  # here: scipy.signal costs ~1 s at every step's start-up
        samples = resample_poly(samples, SAMPLE_RATE // g, int(rate) // g)
    samples = np.asarray(samples, dtype=np.float32)
    if samples.size < MIN_DURATION * SAMPLE_RATE:
        raise BadAudioError(path, f"only {samples.size} samples ({samples.size / SAMPLE_RATE:.2f} s) "
                                  "of audio; nothing to transcribe")
    if not np.all(np.isfinite(samples)):
        raise BadAudioError(path, "audio contains NaN or infinite samples")
    rms = float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))
    if rms < SILENCE_RMS:
        # Whisper invents text for silence; there is nothing to transcribe.
        raise BadAudioError(path, f"audio is silent (RMS {rms:.1e}); nothing to transcribe")
    return samples
