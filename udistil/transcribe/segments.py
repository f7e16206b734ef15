"""Cutting a long recording into segments Whisper can take, at its pauses.

Whisper reads at most 30 s.  A file no longer than `max_seconds` is one segment, exactly as
it is.  A longer file is cut at pauses, never inside a word when a pause can be found:

1. frame energy every 10 ms, in dB;
2. a frame is quiet below a threshold set from the file's own levels: 30 % of the way from
   its noise floor (10th percentile) to its speech level (95th percentile), and never more
   than 40 dB under the speech level, so clean and noisy files both split at their pauses;
3. a pause is at least `min_pause` seconds of quiet frames; the speech between pauses forms
   regions; speech with no pause at all for a whole segment is cut at its quietest 10 ms frame;
4. each region keeps up to `pad` seconds of the pauses around it (never past the middle of a
   pause), so word edges are not clipped;
5. with `drop_pauses` (the default) a segment is its padded regions joined end to end, so a
   long pause costs nothing and a 30 s window holds 30 s of speech (faster-whisper's batched
   pipeline drops silence the same way, with a VAD); without it a segment is the whole
   stretch of the file from its first region to its last;
6. regions are grouped into segments of at most `max_seconds` of kept audio: when the
   speech goes on too long, the segment ends at the longest pause that leaves it at least
   two thirds of `max_seconds` (the last possible pause when there is none), so segments
   are long (Whisper's encoder costs the same for 10 s as for 30 s) and end where the
   speaker paused longest.

A segment is a list of pieces of the file; its time span runs from the start of its first
piece to the end of its last, and the spans of successive segments do not overlap, so their
texts are simply joined.  A file with no speech at all gives no segment and an empty text.

Each segment also keeps its padded speech regions (`speech`; a file short enough to be one
segment has them too).  After a window is decoded with timestamps, `missed_segments` finds
the runs of regions that none of the model's sentences covers: whisper-base drops whole
sentences of a long window, and such a run is decoded again on its own (runner.py).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from udistil.models.audio_context import SAMPLE_RATE

FRAME = 160  # 10 ms


@dataclass(frozen=True)
class SegmentOptions:
    # `udistil transcribe` chooses its own per engine (runner.TRANSCRIBE_DEFAULTS).
    max_seconds: float = 30.0
    min_pause: float = 0.3
    pad: float = 0.2
    drop_pauses: bool = True
    # A window decoded with timestamps is decoded again where its sentences leave at least
    # `redecode_missed` seconds of speech uncovered (0: never), in pieces of at most
    # `redecode_piece` seconds; a sentence with fewer than `sparse_share` of the file's median
    # characters per second of speech covers nothing, and so does one under `sparse_floor`
    # characters per second in a file with fewer than three sentences to take a median of
    # (half a slow speaker's rate in English, Arabic or Swahili; runner.py, missed_segments).
    redecode_missed: float = 1.0
    redecode_piece: float = 10.0
    sparse_share: float = 0.5
    sparse_floor: float = 5.0


@dataclass(frozen=True)
class SpeechSegment:
    """[start, end) sample ranges of the file, decoded as one clip joined end to end, and the
    padded speech regions inside them (empty when not known)."""

    pieces: tuple[tuple[int, int], ...]
    speech: tuple[tuple[int, int], ...] = ()

    @property
    def start(self) -> int:
        return self.pieces[0][0]

    @property
    def end(self) -> int:
        return self.pieces[-1][1]

    @property
    def num_samples(self) -> int:
        return sum(end - start for start, end in self.pieces)

    def audio(self, samples: np.ndarray) -> np.ndarray:
        if len(self.pieces) == 1:
            return samples[self.start:self.end]
        return np.concatenate([samples[start:end] for start, end in self.pieces])


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


def _cut_long_regions(regions: list[tuple[int, int]], max_frames: int,
                      levels: np.ndarray) -> list[tuple[int, int]]:
    """Regions longer than max_frames cut at their quietest frame in each stretch's last 2/3."""
    out = []
    for start, end in regions:
        while end - start > max_frames:
            lo = start + max_frames // 3
            cut = lo + int(np.argmin(levels[lo:start + max_frames]))
            out.append((start, cut))
            start = cut
        out.append((start, end))
    return out


def _padded(regions: list[tuple[int, int]], pad: int, num_frames: int) -> list[tuple[int, int]]:
    """Each region with up to `pad` frames of the pauses around it, never past a pause's middle."""
    out = []
    for i, (start, end) in enumerate(regions):
        lo = max(start - pad, (regions[i - 1][1] + start + 1) // 2 if i else 0)
        hi = min(end + pad, (end + regions[i + 1][0]) // 2 if i + 1 < len(regions) else num_frames)
        out.append((lo, hi))
    return out


def _group(pieces: list[tuple[int, int]], gaps: list[int], max_frames: int,
           drop_pauses: bool) -> list[list[tuple[int, int]]]:
    """Consecutive pieces grouped into segments of at most max_frames of kept audio.

    gaps[k] is the pause between the speech of piece k and of piece k+1 (the cut is chosen at
    the longest one)."""
    def kept(first: int, last: int) -> int:
        if drop_pauses:
            return sum(end - start for start, end in pieces[first:last + 1])
        return pieces[last][1] - pieces[first][0]

    out, first = [], 0
    while first < len(pieces):
        last = first
        while last + 1 < len(pieces) and kept(first, last + 1) <= max_frames:
            last += 1
        if last + 1 < len(pieces):
            long_enough = [k for k in range(first, last + 1) if kept(first, k) >= 2 * max_frames // 3]
            last = max(long_enough or [last], key=lambda k: gaps[k])
        out.append(pieces[first:last + 1])
        first = last + 1
    return out


def split_at_pauses(samples: np.ndarray, options: SegmentOptions = SegmentOptions()) -> list[SpeechSegment]:
    """The segments of `samples` (see the module doc)."""
    n = len(samples)
    levels = frame_levels(samples)
    pad = int(options.pad * SAMPLE_RATE / FRAME)
    max_frames = int(options.max_seconds * SAMPLE_RATE / FRAME)
    regions = (speech_regions(levels, max(1, int(round(options.min_pause * SAMPLE_RATE / FRAME))))
               if len(levels) else [])
    regions = _cut_long_regions(regions, max_frames - 2 * pad, levels)
    padded = _padded(regions, pad, len(levels))

    def in_samples(frames):
        return tuple((start * FRAME, n if end == len(levels) else end * FRAME) for start, end in frames)

    if n <= options.max_seconds * SAMPLE_RATE:
        return [SpeechSegment(((0, n),), in_samples(padded))]
    gaps = [b[0] - a[1] for a, b in zip(regions, regions[1:])]
    segments = []
    for group in _group(padded, gaps, max_frames, options.drop_pauses):
        segments.append(SpeechSegment(in_samples(_joined(group, options.drop_pauses)), in_samples(group)))
    return segments


def _joined(group: list[tuple[int, int]], drop_pauses: bool) -> list[tuple[int, int]]:
    """The pieces a segment of these consecutive regions decodes: the regions themselves, with
    the ones that touch (a cut inside speech, a short pause) made one; or, keeping the pauses,
    the one stretch from the first region's start to the last one's end."""
    if not drop_pauses:
        return [(group[0][0], group[-1][1])]
    merged: list[tuple[int, int]] = []
    for start, end in group:
        if merged and merged[-1][1] >= start:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def _overlap(a: tuple[int, int], b: tuple[int, int]) -> int:
    return max(0, min(a[1], b[1]) - max(a[0], b[0]))


def speech_seconds(segment: SpeechSegment, start: int, end: int) -> float:
    """Seconds of `segment`'s speech regions inside the file samples [start, end)."""
    return sum(_overlap(region, (start, end)) for region in segment.speech) / SAMPLE_RATE


def missed_segments(segment: SpeechSegment, covered: list[tuple[int, int]],
                    options: SegmentOptions) -> list[SpeechSegment]:
    """The stretches of `segment`'s speech that the sample ranges in `covered` (the file spans
    of the sentences decoded from it) leave out, as segments to decode again.

    A speech region is missed when less than half of it is covered.  Consecutive missed regions
    form a stretch, cut at its longest pauses into segments of at most `redecode_piece`
    seconds of kept audio (whisper-base decodes a few sentences whole where it drops some of a
    full window).  A stretch with less than `redecode_missed` seconds of speech is left alone
    (a breath, a click: decoded alone they invite a hallucination), and so is a segment that
    would be the window itself (the same audio decodes to the same text)."""
    if not options.redecode_missed or not segment.speech:
        return []
    missed = [sum(_overlap(region, span) for span in covered) * 2 < region[1] - region[0]
              for region in segment.speech]
    runs: list[list[tuple[int, int]]] = [[]]
    for region, is_missed in zip(segment.speech, missed):
        if is_missed:
            runs[-1].append(region)
        elif runs[-1]:
            runs.append([])
    piece = int(min(options.redecode_piece, options.max_seconds) * SAMPLE_RATE)
    out = []
    for run in runs:
        if sum(end - start for start, end in run) < options.redecode_missed * SAMPLE_RATE:
            continue
        gaps = [b[0] - a[1] for a, b in zip(run, run[1:])]
        for group in _group(run, gaps, piece, options.drop_pauses):
            pieces = tuple(_joined(group, options.drop_pauses))
            if pieces != segment.pieces:
                out.append(SpeechSegment(pieces, tuple(group)))
    return out
