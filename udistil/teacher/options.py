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

    def token_budget(self, seconds: float, rate_share: float = 1.0) -> int:
        """New tokens allowed for `seconds` of audio (at `rate_share` of the per-second rate),
        within what the decoder's positions leave after the prompt."""
        per_second = self.budget_per_second * rate_share
        return min(MAX_NEW_TOKENS, int(math.ceil(self.budget_base + per_second * seconds)))
