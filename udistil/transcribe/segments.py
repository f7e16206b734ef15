"""Cutting a long recording into segments Whisper can take, at its pauses.

Whisper reads at most 30 s.  A file no longer than `max_seconds` is one segment, exactly as
it is.  A longer file is cut at pauses, never inside a word when a pause can be found:

1. frame energy every 10 ms, in dB;
2. a frame is quiet below a threshold set from the file's own levels: 30 % of the way from
   its noise floor (10th percentile) to its speech level (95th percentile), and never more
   than 40 dB under the speech level, so clean and noisy files both split at their pauses;
3. a pause is at least `min_pause` seconds of quiet frames; the speech between pauses forms
   regions;
4. regions are grouped into segments of at most `max_seconds`: when a stretch is too long it
   is cut at its longest pause that leaves at least two thirds of `max_seconds` before the
   cut (the last possible pause when there is none), so segments are long (Whisper's encoder
   costs the same for 10 s as for 30 s) and end where the speaker paused longest; speech
   with no pause at all for `max_seconds` is cut at its quietest 10 ms frame;
5. each segment keeps up to `pad` seconds of the pauses around it (never past the middle of a
   pause), so word edges are not clipped; pauses longer than that are left out.

Segments do not overlap, so their texts are simply joined; a file with no speech at all
gives no segment and an empty text.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SAMPLE_RATE = 16000
FRAME = 160  # 10 ms


@dataclass(frozen=True)
class SegmentOptions:
    max_seconds: float = 30.0
    min_pause: float = 0.3
    pad: float = 0.2


def frame_levels(samples: np.ndarray) -> np.ndarray:
    """RMS level of each 10 ms frame in dB (digital silence at -100)."""
    n = len(samples) // FRAME
    if n == 0:
        return np.zeros(0)
    frames = samples[:n * FRAME].astype(np.float64).reshape(n, FRAME)
    rms = np.sqrt(np.mean(frames ** 2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-5))


def quiet_threshold(levels: np.ndarray) -> float:
    floor, speech = np.percentile(levels, 10), np.percentile(levels, 95)
    return max(floor + 0.3 * (speech - floor), speech - 40.0)


def speech_regions(levels: np.ndarray, min_pause_frames: int) -> list[tuple[int, int]]:
    """[start, end) frame ranges of speech: everything outside pauses of min_pause_frames."""
    quiet = levels < quiet_threshold(levels)
    regions, start, i, n = [], 0, 0, len(levels)
    while i < n:
        if not quiet[i]:
            i += 1
            continue
        j = i
        while j < n and quiet[j]:
            j += 1
        if j - i >= min_pause_frames:
            if i > start:
                regions.append((start, i))
            start = j
        i = j
    if start < n:
        regions.append((start, n))
    return regions


def _group(regions: list[tuple[int, int]], max_frames: int, levels: np.ndarray) -> list[tuple[int, int]]:
    """Group consecutive regions into spans of at most max_frames, cutting at long pauses."""
    out: list[tuple[int, int]] = []
    while regions:
        start = regions[0][0]
        if regions[-1][1] - start <= max_frames:
            out.append((start, regions[-1][1]))
            break
        # Cut after region k (the pause between k and k+1) if the left part fits.
        fits = [k for k in range(len(regions) - 1) if regions[k][1] - start <= max_frames]
        if not fits:
            # One region longer than max_frames: cut at its quietest frame in the last 2/3.
            lo = start + max_frames // 3
            cut = lo + int(np.argmin(levels[lo:start + max_frames]))
            out.append((start, cut))
            regions = [(cut, regions[0][1])] + regions[1:]
            continue
        long_enough = [k for k in fits if regions[k][1] - start >= 2 * max_frames // 3] or [fits[-1]]
        k = max(long_enough, key=lambda k: regions[k + 1][0] - regions[k][1])
        out.append((start, regions[k][1]))
        regions = regions[k + 1:]
    return out


def split_at_pauses(samples: np.ndarray, options: SegmentOptions = SegmentOptions()) -> list[tuple[int, int]]:
    """[start, end) sample ranges of the segments of `samples` (see the module doc)."""
    n = len(samples)
    if n <= options.max_seconds * SAMPLE_RATE:
        return [(0, n)]
    levels = frame_levels(samples)
    regions = speech_regions(levels, max(1, int(round(options.min_pause * SAMPLE_RATE / FRAME))))
    max_frames = int(options.max_seconds * SAMPLE_RATE / FRAME) - 2 * int(options.pad * SAMPLE_RATE / FRAME)
    spans = _group(regions, max_frames, levels)
    pad = int(options.pad * SAMPLE_RATE / FRAME)
    segments = []
    for i, (start, end) in enumerate(spans):
        before = spans[i - 1][1] if i else 0
        after = spans[i + 1][0] if i + 1 < len(spans) else len(levels)
        lo = max(start - pad, (before + start + 1) // 2 if i else 0)
        hi = min(end + pad, (end + after) // 2 if i + 1 < len(spans) else len(levels))
        segments.append((lo * FRAME, n if i + 1 == len(spans) and hi == len(levels) else hi * FRAME))
    return segments
