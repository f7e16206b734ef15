"""SpecAugment (Park et al. 2019) on what the student alone reads, in training only.

Frequency and time masks on the student's log-mel features, or, where the student reads
encoder states it did not compute from features (a frozen encoder's cache, or the live
teacher's encoder output shared with an identical frozen student), time masks on those
states (whole positions zeroed).  The teacher never sees a mask: stored targets were made
on clean audio, the live teacher reads the batch's features, and every mask is applied to a
copy (`features` and `states` never write into their input), so neither the batch nor the
encoder cache is changed.

- Only each cut's real frames are masked: ceil(samples / 160) mel frames, ceil(samples / 320)
  encoder positions.  The rest of a row is padding (a clip context's margin, or the 30 s
  window of a live teacher), which the student must keep seeing as it will at inference.
- Masked mel values take the cut's own mean over its real frames (taken before masking),
  not 0.  Park et al. mask with the mean, which is 0 for their mean-normalised features;
  Whisper's log-mel is scaled to about [-1, 1] around the clip's own maximum, not centred,
  so 0 is a fixed loudness that can be louder than every frame of a quiet clip, where the
  clip's mean is neutral for that clip.  Encoder states are zeroed: after the encoder's
  final layer norm a zero vector is the centre of its output, not a sound.
- Each cut's masks come from a generator seeded by (run seed, epoch, cut id): the same
  seed gives the same masks, a cut gets new masks every epoch, and a resumed run (or
  another number of ranks, or --grad-accum) draws exactly the masks of an uninterrupted
  one, without any state in the checkpoint and without moving the global random streams
  that dropout reads.

lhotse's `SpecAugment` runs without torchaudio but was not used: it wants [batch, frames,
bins], draws from the global `random` and torch generators, masks the whole (padded) matrix
unless given per-cut segments, and warps time by default.
"""
from __future__ import annotations

import hashlib
import math

import torch

from udistil.errors import UdistilError
from udistil.models.audio_context import SAMPLES_PER_POSITION

SAMPLES_PER_FRAME = SAMPLES_PER_POSITION // 2  # Whisper's 10 ms hop; 2 frames per encoder position


class SpecAugment:
    def __init__(self, options, seed: int):
        if min(options.freq_masks, options.freq_mask_width, options.time_masks, options.time_mask_width) < 0:
            raise UdistilError("SpecAugment mask counts and widths must be >= 0")
        if not 0.0 < options.time_mask_max_fraction <= 1.0:
            raise UdistilError(f"--time-mask-max-fraction must be in (0, 1] "
                               f"(got {options.time_mask_max_fraction})")
        self.options = options
        self.seed = seed

    def generator(self, epoch: int, cut_id: str) -> torch.Generator:
        key = hashlib.sha256(f"{self.seed}\0{epoch}\0{cut_id}".encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(key[:8], "big") >> 1)

    def for_batch(self, batch: dict, epoch: int) -> "BatchMasks":
        return BatchMasks(self, batch["cut_ids"], [int(n) for n in batch["num_samples"]], epoch)

    def time_width(self, real_length: int, max_width: int) -> int:
        return min(max_width, int(self.options.time_mask_max_fraction * real_length))

    def mask_features(self, features: torch.Tensor, num_samples, cut_ids, epoch: int) -> torch.Tensor:
        """A masked copy of log-mel `features` [batch, mels, frames]."""
        opts = self.options
        out = features.clone()
        n_mels, frames = features.shape[1], features.shape[2]
        for row, (samples, cut_id) in enumerate(zip(num_samples, cut_ids)):
            real = min(frames, math.ceil(samples / SAMPLES_PER_FRAME))
            if real <= 0:
                continue
            rng = self.generator(epoch, cut_id)
            clip = out[row, :, :real]  # a view: masks land in `out`
            fill = clip.mean()
            for start, width in spans(rng, opts.freq_masks, opts.freq_mask_width, n_mels):
                clip[start:start + width, :] = fill
            for start, width in spans(rng, opts.time_masks, self.time_width(real, opts.time_mask_width), real):
                clip[:, start:start + width] = fill
        return out

    def mask_states(self, states: torch.Tensor, num_samples, cut_ids, epoch: int) -> torch.Tensor:
        """A copy of encoder `states` [batch, positions, d] with whole positions zeroed."""
        opts = self.options
        out = states.clone()
        positions = states.shape[1]
        for row, (samples, cut_id) in enumerate(zip(num_samples, cut_ids)):
            real = min(positions, math.ceil(samples / SAMPLES_PER_POSITION))
            if real <= 0:
                continue
            rng = self.generator(epoch, cut_id)
            for start, width in spans(rng, opts.time_masks, self.time_width(real, opts.time_mask_width // 2), real):
                out[row, start:start + width] = 0
        return out


class BatchMasks:
    """One batch's masks, bound to its cuts (what the trainer and DistillForward call)."""

    def __init__(self, augment: SpecAugment, cut_ids, num_samples, epoch: int):
        self.augment, self.cut_ids, self.num_samples, self.epoch = augment, cut_ids, num_samples, epoch

    def features(self, features: torch.Tensor) -> torch.Tensor:
        return self.augment.mask_features(features, self.num_samples, self.cut_ids, self.epoch)

    def states(self, states: torch.Tensor) -> torch.Tensor:
        return self.augment.mask_states(states, self.num_samples, self.cut_ids, self.epoch)


def spans(rng: torch.Generator, count: int, max_width: int, length: int) -> list[tuple[int, int]]:
    """`count` (start, width) spans inside [0, length), each width uniform in [0, max_width]
    (Park et al.'s draw).  Always two draws per span, even for a width of 0, so the draws of
    the spans that follow do not depend on it."""
    out = []
    for _ in range(count):
        width = min(int(torch.randint(0, max_width + 1, (), generator=rng)), length)
        start = int(torch.randint(0, length - width + 1, (), generator=rng))
        out.append((start, width))
    return out
