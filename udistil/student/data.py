"""Distillation data: pseudo-labelled cuts -> Whisper features and decoder labels.

A lhotse `DynamicBucketingSampler` groups cuts of similar duration (so label lengths,
and with them the decoder's padding, stay close); for a student with a clip audio
context its buckets are exactly the context lengths (audio_context.py), so every cut of a
batch is encoded at the length it will have at inference.  The dataset loads each cut's
audio, computes Whisper's log-mel features and turns the teacher's pseudo-label into the
token sequence Whisper is trained on:

    <|startoftranscript|> <|lang|> <|transcribe|> <|notimestamps|> tokens <|endoftext|>

The tokens are the teacher's own (`teacher_tokens`), the sequence its stored distillation
targets (teacher/kd_targets.py) were computed on; a manifest without them falls back to
encoding `teacher_text`.  A share (DataOptions.timestamp_share) of the cuts labelled in
timestamp mode is trained on the teacher's timestamped output instead, after the prompt
without <|notimestamps|>, so that the student learns to write timestamps (not with stored
targets, which belong to the text sequence).  The stored targets are padded into the batch as `kd_*` tensors
aligned with `labels`; cuts whose frozen encoder output is cached (encoder_cache.py) need
no audio at all.

`decoder_input_ids` is that sequence without its last token and `labels` is it without
its first (the model never predicts <|startoftranscript|>); padding is -100 in `labels`
so the loss ignores it.

Manifests are streamed, never held as a list (`ManifestCuts`: a lazy lhotse CutSet read
anew at each pass, which the samplers consume through their bounded buffers), so the
trainer's memory does not grow with the training pool.

What cannot be used is skipped and counted, never fatal: cuts without a pseudo-label are
dropped before sampling (`usable_cuts`, `ManifestCuts`), and cuts whose audio is bad or whose label is
too long for the decoder are dropped batch by batch (reported in `batch["skipped"]`).
"""
from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

import numpy as np
import torch

from udistil.data.audio import load_cut_audio
from udistil.data.manifests import supervision
from udistil.models.audio_context import FULL_POSITIONS, SAMPLE_RATE, log_mel
from udistil.student.cut_weights import cut_weight
from udistil.errors import BadAudioError, UdistilError

log = logging.getLogger(__name__)

IGNORE_INDEX = -100  # positions the loss skips (PyTorch's cross_entropy default)


def teacher_text(cut) -> str:
    custom = supervision(cut).custom or {}
    text = custom.get("teacher_text")
    return text.strip() if isinstance(text, str) else ""


def teacher_tokens(cut) -> list[int] | None:
    tokens = (supervision(cut).custom or {}).get("teacher_tokens")
    return [int(t) for t in tokens] if isinstance(tokens, list) and tokens else None


def teacher_timestamped_tokens(cut) -> list[int] | None:
    """The teacher's output with its timestamp tokens (a clip labelled in timestamp mode)."""
    tokens = (supervision(cut).custom or {}).get("teacher_timestamped_tokens")
    return [int(t) for t in tokens] if isinstance(tokens, list) and tokens else None


def trains_with_timestamps(cut_id: str, share: float) -> bool:
    """Whether a cut labelled with timestamps is trained with them: a fixed `share` of such
    cuts, chosen by a hash of the id (the same cuts in every epoch and after a resume)."""
    import hashlib

    draw = int.from_bytes(hashlib.sha256(cut_id.encode()).digest()[:8], "big") / 2 ** 64
    return draw < share


def cut_language(cut) -> str | None:
    """The supervision's language, else the one the teacher detected (stage 3)."""
    sup = supervision(cut)
    return sup.language or (sup.custom or {}).get("teacher_language") or None


def has_targets(cut) -> bool:
    from udistil.teacher.kd_targets import INFO_KEY

    return bool((cut.custom or {}).get(INFO_KEY))


def usable_cuts(cuts, name: str):
    """Cuts that carry a non-empty `teacher_text`; logs how many were dropped and why."""
    kept, missing = [], 0
    for cut in cuts:
        if teacher_text(cut):
            kept.append(cut)
        else:
            missing += 1
    if missing:
        log.warning("%s: skipped %d of %d cuts without a teacher_text (run stage 3 first?)",
                    name, missing, missing + len(kept))
    if not kept:
        raise UdistilError(f"{name}: no cut has a supervision.custom teacher_text to train on")
    from lhotse import CutSet

    return CutSet.from_cuts(kept)


class ManifestCuts:
    """The usable cuts (with a teacher_text) of a manifest, streamed anew at every pass.

    Wrapped in a lhotse CutSet (`lazy()`), it is a lazy CutSet: samplers and the trainer
    iterate it and never list it.  `pick` of `usable` cuts: that many cuts at even intervals
    (spread_subset's choice, made while streaming)."""

    def __init__(self, path, pick: int | None = None, usable: int | None = None):
        self.path = str(path)
        self.pick = pick if pick and usable and pick < usable else None
        self.usable = usable

    def __iter__(self):
        from udistil.data.manifests import iter_cuts

        index, taken = 0, 0
        for cut in iter_cuts(self.path):
            if not teacher_text(cut):
                continue
            if self.pick is None:
                yield cut
            elif taken < self.pick and index == (taken * self.usable) // self.pick:
                taken += 1
                yield cut
            index += 1

    def lazy(self):
        from lhotse import CutSet

        return CutSet(self)


@dataclass
class ManifestCounts:
    total: int
    usable: int
    with_targets: int
    with_score: int = 0  # usable cuts with a `score_key` filter score (when one was asked for)


def count_usable(path, name: str | None = None, score_key: str | None = None) -> ManifestCounts:
    """One streamed pass over a manifest: cuts, usable cuts (with a teacher_text), those
    carrying stored teacher targets and those with a `score_key` score; logs how many were
    dropped, and stops when none is usable."""
    from udistil.data.manifests import iter_cuts

    total = usable = with_targets = with_score = 0
    for cut in iter_cuts(path):
        total += 1
        if teacher_text(cut):
            usable += 1
            with_targets += has_targets(cut)
            if score_key is not None:
                # The weight's own reading of the score: a count of what will really weigh.
                with_score += cut_weight(cut, score_key) is not None
    name = name or str(path)
    if usable < total:
        log.warning("%s: skipped %d of %d cuts without a teacher_text (run stage 3 first?)",
                    name, total - usable, total)
    if not usable:
        raise UdistilError(f"{name}: no cut has a supervision.custom teacher_text to train on")
    return ManifestCounts(total, usable, with_targets, with_score)


def spread_subset(cuts, count: int | None):
    """`count` cuts taken at even intervals over `cuts` (all of them when count is None or not
    smaller).  Manifests are often sorted (by language, speaker or recording), so their first
    N cuts are not a sample of them: the mini dev set's first 16 are 12 Arabic and 4 English."""
    from lhotse import CutSet

    cuts = list(cuts)
    if not count or count >= len(cuts):
        return CutSet.from_cuts(cuts)
    return CutSet.from_cuts(cuts[(i * len(cuts)) // count] for i in range(count))


class LabelEncoder:
    """Teacher text (+ language) -> Whisper's full token sequence, start and end included."""

    def __init__(self, tokenizer, multilingual: bool, max_length: int, leading_space: bool = True):
        self.tokenizer = tokenizer
        self.multilingual = multilingual
        self.max_length = max_length
        # Whisper emits its transcripts with a leading space (" Hello"); pseudo-labels are
        # stored stripped, so we put it back to train on the teacher's own token sequence.
        self.leading_space = leading_space
        ids = tokenizer.convert_tokens_to_ids
        self.start = ids("<|startoftranscript|>")
        self.transcribe = ids("<|transcribe|>") if multilingual else None
        self.no_timestamps = ids("<|notimestamps|>")
        self.end = tokenizer.eos_token_id
        self.pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end

    def prefix(self, language: str | None) -> list[int]:
        if not self.multilingual:
            return [self.start, self.no_timestamps]
        if not language:
            raise ValueError("no supervision.language for a multilingual model")
        lang_id = self.tokenizer.convert_tokens_to_ids(f"<|{language}|>")
        if lang_id is None or lang_id == self.tokenizer.unk_token_id:
            raise ValueError(f"language {language!r} is not one of Whisper's")
        return [self.start, lang_id, self.transcribe, self.no_timestamps]

    def encode(self, text: str, language: str | None, tokens: list[int] | None = None,
               timestamped: list[int] | None = None) -> list[int]:
        """The full sequence; `tokens` (the teacher's own) win over re-encoding `text`;
        `timestamped` (the teacher's output with its timestamps) wins over both, after the
        prompt of the timestamp mode (without <|notimestamps|>)."""
        if timestamped is not None:
            return self.prefix(language)[:-1] + list(timestamped) + [self.end]
        if tokens is None:
            if self.leading_space and not text[:1].isspace():
                text = " " + text
            tokens = self.tokenizer.encode(text, add_special_tokens=False)
        return self.prefix(language) + list(tokens) + [self.end]


@dataclass
class Skipped:
    """Why cuts were left out of a batch: reason -> count (summed by the trainer)."""
    counts: Counter

    @staticmethod
    def none():
        return Skipped(Counter())


class DistillDataset(torch.utils.data.Dataset):
    """Map-style lhotse dataset: a CutSet batch -> a dict of padded tensors.

    context: the student's AudioContext (batch["positions"] is its encoder length for the
    batch); targets: a StoredTargets reader, or None for a live teacher; encoder_cache: an
    EncoderCache whose hits spare loading audio; need_audio: False when nothing but the
    cache may feed the encoder (never set by the trainer: a miss then loads audio);
    weight_by: a filter whose score gives each cut's loss weight (`cut_weights`, with
    `unscored_cuts` counting the cuts without one: weight 0; cut_weights.py).

    Every batch carries `num_samples` (each cut's length), which tells SpecAugment (augment.py)
    where a cut's real frames end.
    """

    def __init__(self, feature_extractor, labels: LabelEncoder, context=None, targets=None,
                 encoder_cache=None, source: str = "", timestamp_share: float = 0.0,
                 weight_by: str | None = None):
        from udistil.models.audio_context import AudioContext

        self.feature_extractor = feature_extractor
        self.labels = labels
        self.context = context or AudioContext()
        self.targets = targets
        self.encoder_cache = encoder_cache
        self.source = source
        self.weight_by = weight_by
        # Stored targets belong to the text sequence: with them, every cut is trained on it.
        self.timestamp_share = timestamp_share if targets is None else 0.0

    def __getitem__(self, cuts) -> dict:
        cuts = list(cuts)
        positions = max(self.context.positions(cut_num_samples(c)) for c in cuts) if cuts else 0
        cached = None
        if self.encoder_cache is not None:
            cached = [self.encoder_cache.get(c.id, positions) for c in cuts]
            if any(x is None for x in cached):
                cached = None
        audio, sequences, ids, kept, skipped = [], [], [], [], Counter()
        for cut in cuts:
            tokens = teacher_tokens(cut)
            stamped = teacher_timestamped_tokens(cut) if self.timestamp_share > 0 else None
            if stamped is not None and not trains_with_timestamps(cut.id, self.timestamp_share):
                stamped = None
            try:
                sequence = self.labels.encode(teacher_text(cut), cut_language(cut), tokens, stamped)
            except ValueError as e:
                log.warning("%s: cut %s: %s; skipped", self.source, cut.id, e)
                skipped["bad_language"] += 1
                continue
            if len(sequence) - 1 > self.labels.max_length:
                skipped["label_too_long"] += 1
                continue
            if cached is None:
                try:
                    audio.append(load_cut_audio(cut))
                except BadAudioError as e:
                    log.warning("%s; skipped", e)
                    skipped["bad_audio"] += 1
                    continue
            sequences.append(sequence)
            ids.append(cut.id)
            kept.append(cut)
        batch = {"cut_ids": ids, "skipped": Skipped(skipped)}
        if not ids:
            return batch
        batch["positions"] = positions
        batch["num_samples"] = torch.tensor([cut_num_samples(c) for c in kept], dtype=torch.long)
        if self.weight_by is not None:
            weights = [cut_weight(c, self.weight_by) for c in kept]
            batch["cut_weights"] = torch.tensor([0.0 if w is None else w for w in weights], dtype=torch.float32)
            batch["unscored_cuts"] = sum(w is None for w in weights)
        if cached is not None:
            rows = {c.id: x for c, x in zip(cuts, cached)}
            batch["encoder_states"] = torch.from_numpy(
                np.stack([rows[i] for i in ids]).astype(np.float32))
        else:
            # A live teacher needs its full 30 s; a stored one leaves only the student's context.
            frames_for = positions if self.targets is not None else FULL_POSITIONS
            batch["input_features"] = log_mel(self.feature_extractor, audio, max(positions, frames_for))
        batch.update(pad_labels(sequences, self.labels.pad))
        if self.targets is not None:
            batch.update(self.targets.batch(kept, batch["labels"].shape[1],
                                            len(self.labels.prefix(cut_language(kept[0]))) - 1))
        return batch


def cut_num_samples(cut) -> int:
    return int(round(cut.duration * SAMPLE_RATE))


def pad_labels(sequences: list[list[int]], pad_id: int) -> dict:
    """decoder_input_ids (pad = pad_id) and labels (pad = -100), both one shorter than the sequence."""
    width = max(len(s) for s in sequences) - 1
    inputs = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    labels = torch.full((len(sequences), width), IGNORE_INDEX, dtype=torch.long)
    for row, seq in enumerate(sequences):
        seq = torch.tensor(seq, dtype=torch.long)
        inputs[row, :len(seq) - 1] = seq[:-1]
        labels[row, :len(seq) - 1] = seq[1:]
    return {"decoder_input_ids": inputs, "labels": labels}


class SkipFirstBatches(torch.utils.data.Sampler):
    """Wraps a lhotse sampler; the first `skip` batches of the next epoch are not yielded.

    Resuming mid-epoch: the sampler is re-seeded with the same (seed, epoch), so it yields
    the same batches in the same order, and skipping the ones already trained on puts the
    run back where it was killed, without loading their audio.
    """

    def __init__(self, sampler):
        self.sampler = sampler
        self.skip = 0

    def set_epoch(self, epoch: int, skip: int = 0) -> None:
        self.sampler.set_epoch(epoch)
        self.skip = skip

    def __iter__(self):
        # lhotse samplers are their own iterators and `iter()` restarts the epoch, so we
        # call next() on the one iterator rather than `yield from` (which calls iter again).
        it = iter(self.sampler)
        skip, self.skip = self.skip, 0
        while True:
            batch = next(it, None)
            if batch is None:
                return
            if skip > 0:
                skip -= 1
                continue
            yield batch


def context_duration_bins(context, max_seconds: float = 30.0) -> list[float]:
    """Bucket edges (seconds) at which a clip's context length steps up: one length per bucket.

    positions = roundup(ceil(samples/320) + margin, quantum) steps when ceil(samples/320)
    passes j*quantum - margin; a clip exactly on an edge keeps the lower length, hence the
    edge is nudged up by a microsecond.
    """
    edges, j = [], 1
    while True:
        seconds = (j * context.quantum - context.margin) * 0.02
        if seconds >= max_seconds:
            return edges
        if seconds > 0:
            edges.append(seconds + 1e-6)
        j += 1


def make_loader(cuts, dataset: DistillDataset, batch_size: int, max_duration: float | None,
                shuffle: bool, seed: int, num_workers: int, num_buckets: int = 10,
                num_cuts: int | None = None):
    """DataLoader over `cuts` (eager, or lazy with `num_cuts` given: it is never listed); its
    `.sampler` is a SkipFirstBatches (set_epoch(epoch, skip))."""
    import warnings

    from lhotse.dataset import DynamicBucketingSampler, DynamicCutSampler

    # read_cuts loads eagerly (to validate); lhotse warns that lazy reading saves memory.
    warnings.filterwarnings("ignore", message=".*eagerly read CutSet.*")

    n = len(cuts) if num_cuts is None else num_cuts
    # Tiny sets (tests, small dev sets) cannot fill several buckets: no bucketing then.
    num_buckets = min(num_buckets, n // max(1, batch_size))
    if dataset.context.is_dynamic:
        sampler = DynamicBucketingSampler(
            cuts, max_cuts=batch_size, max_duration=max_duration, shuffle=shuffle, seed=seed,
            duration_bins=context_duration_bins(dataset.context), buffer_size=min(20000, n),
            drop_last=False)
    elif num_buckets >= 2:
        sampler = DynamicBucketingSampler(
            cuts, max_cuts=batch_size, max_duration=max_duration, shuffle=shuffle, seed=seed,
            num_buckets=num_buckets, buffer_size=min(20000, n), drop_last=False)
    else:
        sampler = DynamicCutSampler(cuts, max_cuts=batch_size, max_duration=max_duration,
                                    shuffle=shuffle, seed=seed, drop_last=False)
    wrapped = SkipFirstBatches(sampler)
    # A private generator: creating the loader's iterator must not draw from the global
    # torch RNG, or a resumed run's random stream would be shifted by one draw.
    return torch.utils.data.DataLoader(dataset, sampler=wrapped, batch_size=None,
                                       num_workers=num_workers,
                                       generator=torch.Generator().manual_seed(seed))
