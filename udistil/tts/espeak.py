"""espeak-ng synthesis as 16 kHz float32 numpy arrays.

espeak-ng writes 22,050 Hz WAV; we resample with scipy's polyphase filter (16000/22050 =
320/441) because torchaudio cannot be installed beside this torch.
"""
from __future__ import annotations

import io
import re
import shutil
import subprocess
from math import gcd

import numpy as np
import soundfile as sf

from udistil.errors import UdistilError
from udistil.models.audio_context import SAMPLE_RATE

# espeak-ng voice names ("en", "en-gb", "en+f3", "mb-en1"); anything else could be an option.
VOICE_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_+\-]*")


def espeak_binary() -> str:
    exe = shutil.which("espeak-ng")
    if exe is None:
        raise UdistilError("espeak-ng is not installed; run tools/install.sh (apt package espeak-ng)")
    return exe


def resample(samples: np.ndarray, rate: int, target: int = SAMPLE_RATE) -> np.ndarray:
    if rate == target:
        return samples.astype(np.float32)
    g = gcd(rate, target)
    from scipy.signal import resample_poly  # here: scipy.signal costs ~1 s at every step's start-up
    return resample_poly(samples, target // g, rate // g).astype(np.float32)


def synthesize(text: str, voice: str = "en", speed: int = 160, pitch: int = 50,
               amplitude: int = 100, word_gap: int = 0) -> np.ndarray:
    """Speak `text` with espeak-ng voice `voice` (e.g. "ar", "sw", "en+f3"); 16 kHz mono float32.

    speed is words per minute, pitch 0-99, word_gap in units of 10 ms.

    The text is untrusted (teacher output, corpus transcripts), so it goes to espeak-ng on
    stdin, never on the command line: a label such as "- Yes." or "-f/etc/hostname" must be
    spoken, not parsed as an option.  The voice is checked for the same reason.
    """
    if not VOICE_RE.fullmatch(voice or ""):
        raise UdistilError(f"espeak-ng voice {voice!r} is not a voice name (letters, digits, -, _, +)")
    if not text or not text.strip():
        raise UdistilError("espeak-ng: nothing to speak (empty text)")
    cmd = [espeak_binary(), "-v", voice, "-s", str(int(speed)), "-p", str(int(pitch)),
           "-a", str(int(amplitude)), "-g", str(int(word_gap)), "--stdin", "--stdout"]
    # NUL bytes end the text early in espeak-ng's reader; a decoding error must not either.
    data = text.replace("\0", " ").encode("utf-8", errors="replace")
    proc = subprocess.run(cmd, input=data, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise UdistilError(f"espeak-ng failed for voice {voice!r}: {proc.stderr.decode(errors='replace').strip()}")
    try:
        samples, rate = sf.read(io.BytesIO(proc.stdout), dtype="float32")
    except Exception as e:  # libsndfile raises RuntimeError/LibsndfileError on a bad stream
        raise UdistilError(f"espeak-ng output for voice {voice!r} is not audio ({type(e).__name__}: {e})") from e
    if samples.ndim == 2:
        samples = samples.mean(axis=1)
    return resample(samples, rate)
