"""How a Whisper model decodes (stages 3, 4 and 7, `udistil transcribe`): the options and
their defaults, in one place.

This module imports nothing heavy, so the shell can read the defaults without torch
(`python3 -m udistil.defaults`, which run.sh uses for its own option defaults).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

MAX_TARGET_TOKENS = 448
# The decoder's positions less the longest prompt (start, language, task, no-timestamps).
MAX_NEW_TOKENS = MAX_TARGET_TOKENS - 4
TIMESTAMP_MODES = ("never", "always", "auto")


@dataclass
class DecodeOptions:
    batch_size: int = 8
    beam: int = 1
    # Pack several clips per 30 s window (greedy only).  Off by default: a packed clip's
    # label and statistics depend on its neighbours (and evaluation must not).
    pack: bool = False
    pack_gap: float = 1.0
    pack_max_clips: int = 8
    # Token budget per clip: base + rate * seconds.  Real speech rarely exceeds ~4 tokens/s
    # in English and ~8 in Arabic (byte-level BPE); a hallucination blows through it.
    budget_base: int = 16
    budget_per_second: float = 12.0
    detect_loops: bool = True
    # Keep per-token log-probs and entropies (the data contract); off only for benchmarks.
    token_stats: bool = True
    # Keep the teacher's distillation targets (kd_targets.TargetSpec); they need each clip
    # decoded alone, so asking for them turns packing off.
    targets: object = None
    # Whisper's timestamp mode (docs/timestamps.md).  "never": every clip is decoded after
    # <|notimestamps|>; "always": every clip with timestamps; "auto": clips longer than
    # `timestamps_above` seconds with timestamps.  Without timestamps whisper-base often
    # writes one sentence of a window that holds several and ends; with them it tends to
    # go on after closing a sentence.  Transcripts carry the text only.
    timestamps: str = "auto"
    timestamps_above: float = 12.0
    # A clip longer than `split_above` seconds (0 = never) is cut at its pauses into pieces
    # of at most `split_piece` seconds (udistil/transcribe/segments.py, pauses kept), each
    # decoded alone; its label is their texts joined, and its statistics and distillation
    # targets are the model's along that label over the whole clip (one teacher-forced pass).
    # On a 24-30 s window of several sentences whisper-base drops whole sentences in either
    # timestamp mode, most often at the window's start; a piece of a few sentences it decodes
    # whole (pieces of 8 s delete 1.1 points more of the words than labelling the window's
    # clips one by one, 10 s 9.0, no cut 24.8).  A clip of up to about 14 s and three
    # sentences it decodes better whole (timestamp mode above `timestamps_above`): on the mini
    # dev set's multi-sentence clips, cutting those at 8 s cost 3.4 WER points, 1.7x the time,
    # and saved 1.3 points of deletions.  docs/timestamps.md has both measurements.
    split_above: float = 15.0
    split_piece: float = 8.0
    # End of text only where the model gives it at least this probability (0 = off, Whisper's
    # rule): a row whose best token is an unsure end of text takes its next best token instead.
    # The 6-3 students end early on recorded speech, at a clause's pause, where they are unsure
    # (the teacher is not); on synthetic speech their ends are sure, so the mini corpus's dev
    # rulers do not move with it (docs/experiments.md has both).  The token budget and the loop
    # stop still end a row that would run on.
    min_eot_prob: float = 0.0

    def __post_init__(self):
        if self.batch_size < 1 or self.beam < 1:
            raise ValueError(f"batch_size and beam must be at least 1, not {self.batch_size} and {self.beam}")
        if self.budget_base < 1 or self.budget_per_second < 0 or self.timestamps_above < 0:
            raise ValueError(f"budget_base must be at least 1, budget_per_second >= 0 (0: the base alone) and "
                             f"timestamps_above >= 0 seconds, not {self.budget_base}, {self.budget_per_second} "
                             f"and {self.timestamps_above}")
        if self.split_above < 0:
            raise ValueError(f"split_above must be >= 0 seconds (0 = never), not {self.split_above}")
        if self.split_piece <= 0:
            raise ValueError(f"split_piece must be > 0 seconds, not {self.split_piece}")
        if not 0.0 <= self.min_eot_prob < 1.0:
            raise ValueError(f"min_eot_prob must be in [0, 1), not {self.min_eot_prob}")
        if self.timestamps not in TIMESTAMP_MODES:
            raise ValueError(f"timestamps must be one of {', '.join(TIMESTAMP_MODES)}, not {self.timestamps!r}")

    def use_timestamps(self, seconds: float) -> bool:
        """Whether a clip of `seconds` is decoded in timestamp mode."""
        return self.timestamps == "always" or (self.timestamps == "auto" and seconds > self.timestamps_above)

    def timestamp_budget(self, seconds: float) -> int:
        """token_budget plus room for the timestamp pairs (one pair per second at most:
        Whisper's segments are sentences or phrases, seconds long)."""
        return min(MAX_NEW_TOKENS, self.token_budget(seconds) + 2 + 2 * int(math.ceil(seconds)))

    def token_budget(self, seconds: float, rate_share: float = 1.0) -> int:
        """New tokens allowed for `seconds` of audio (at `rate_share` of the per-second rate),
        within what the decoder's positions leave after the prompt."""
        per_second = self.budget_per_second * rate_share
        return min(MAX_NEW_TOKENS, int(math.ceil(self.budget_base + per_second * seconds)))
