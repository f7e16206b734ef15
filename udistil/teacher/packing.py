"""Packing several short clips into one 30 s Whisper window, and splitting the output back.

On a CPU the Whisper encoder costs the same for a 3 s clip as for 30 s (the input is
always padded to 30 s), and it is most of the cost of labelling short clips.  Putting
clips of the same language side by side, separated by silence, and decoding the window
with timestamps divides that cost by the number of clips per window.  The timestamps then
say which words belong to which clip.  A clip whose words cannot be attributed cleanly
(no segment of its own, or a segment straddling two clips) is reported so the caller can
decode it on its own: packing must never cost accuracy.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from udistil.teacher.token_rules import TokenRules
from udistil.models.audio_context import SAMPLE_RATE

WINDOW_SECONDS = 30.0


@dataclass
class Placement:
    clip: int        # index of the clip in the caller's list
    offset: float    # start time in the window (s)
    duration: float


@dataclass
class Window:
    placements: list[Placement] = field(default_factory=list)

    @property
    def end(self) -> float:
        return max((p.offset + p.duration for p in self.placements), default=0.0)

    def audio(self, clips: list[np.ndarray]) -> np.ndarray:
        out = np.zeros(int(round(self.end * SAMPLE_RATE)) + 1, dtype=np.float32)
        for p in self.placements:
            start = int(round(p.offset * SAMPLE_RATE))
            samples = clips[p.clip]
            out[start:start + len(samples)] = samples
        return out


def pack_clips(durations: dict[int, float], gap: float, max_clips: int,
               window: float = WINDOW_SECONDS) -> list[Window]:
    """First-fit-decreasing packing of clips into windows of `window` seconds.

    Each clip after the first is preceded by `gap` seconds of silence, which gives the
    timestamps a clear boundary.  The window keeps a 1 s margin at its end because Whisper's
    last timestamps are unreliable at the very edge of the 30 s context.
    """
    capacity = window - 1.0
    windows: list[Window] = []
    for clip in sorted(durations, key=lambda c: -durations[c]):
        dur = durations[clip]
        for w in windows:
            if len(w.placements) < max_clips and w.end + gap + dur <= capacity:
                w.placements.append(Placement(clip, w.end + gap, dur))
                break
        else:
            windows.append(Window([Placement(clip, 0.0, dur)]))
    return windows


@dataclass
class Segment:
    start: float
    end: float | None = None
    token_positions: list[int] = field(default_factory=list)


def parse_segments(tokens: list[int], rules: TokenRules, window_end: float) -> list[Segment]:
    """Cut a timestamped token stream into (start, end, text-token positions) segments."""
    segments, current, last_time = [], None, 0.0
    for pos, token in enumerate(tokens):
        if rules.is_timestamp(token):
            t = rules.timestamp_seconds(token)
            if current is None:
                current = Segment(start=t)
            else:
                current.end = t
                if current.token_positions:
                    segments.append(current)
                current = None
            last_time = t
        else:
            if current is None:
                current = Segment(start=last_time)
            current.token_positions.append(pos)
    if current is not None and current.token_positions:
        current.end = window_end
        segments.append(current)
    return segments


def _overlap(a0: float, a1: float, b0: float, b1: float) -> float:
    return max(0.0, min(a1, b1) - max(a0, b0))


def assign_segments(segments: list[Segment], placements: list[Placement],
                    straddle_seconds: float = 0.3) -> tuple[dict[int, list[int]], set[int]]:
    """Map text-token positions to clips; return (clip -> positions, clips to redo alone).

    A segment goes to the clip it overlaps most (or the nearest clip if it sits in a gap).
    A segment overlapping two clips by more than `straddle_seconds` each mixes their words:
    both clips are redone on their own.  So is a clip that received no segment.
    """
    positions: dict[int, list[int]] = {p.clip: [] for p in placements}
    redo: set[int] = set()
    for seg in segments:
        end = seg.end if seg.end is not None else seg.start
        overlaps = sorted(((_overlap(seg.start, end, p.offset, p.offset + p.duration), p)
                           for p in placements), key=lambda x: -x[0])
        if overlaps[0][0] == 0.0:
            middle = (seg.start + end) / 2
            nearest = min(placements, key=lambda p: abs(p.offset + p.duration / 2 - middle))
            positions[nearest.clip].extend(seg.token_positions)
            continue
        if len(overlaps) > 1 and overlaps[1][0] > straddle_seconds:
            redo.update({overlaps[0][1].clip, overlaps[1][1].clip})
        positions[overlaps[0][1].clip].extend(seg.token_positions)
    redo.update(clip for clip, pos in positions.items() if not pos)
    return positions, redo
