"""espeak-ng synthesis as 16 kHz float32 numpy arrays.

espeak-ng writes 22,050 Hz WAV; we resample with scipy's polyphase filter (16000/22050 =
320/441) because torchaudio cannot be installed beside this torch.
"""
from __future__ import annotations

import io
import shutil
import subprocess
from math import gcd

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from udistil.errors import UdistilError

TARGET_RATE = 16000


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UdistilError("espeak-ng is not installed; run tools/install.sh (apt package espeak-ng)")
    return exe


def resample(samples: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
    if rate == target:
        return samples.astype(np.float32)
    g = gcd(rate, target)
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def synthesize(text: str, voice: str = "en", speed: int = 160, pitch: int = 50,
               amplitude: int = 100, word_gap: int = 0) -> np.ndarray:
    """Speak `text` with espeak-ng voice `voice` (e.g. "ar", "sw", "en+f3"); 16 kHz mono float32.

    speed is words per minute, pitch 0-99, word_gap in units of 10 ms.
    """
    cmd = [espeak_binary(), "-v", voice, "-s", str(speed), "-p", str(pitch), "-a", str(amplitude),
           "-g", str(word_gap), "--stdout", text]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise UdistilError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}")
    samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return resample(samples, rate)
