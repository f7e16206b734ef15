"""Whisper transcription of many short clips, fast on a CPU and with per-token statistics.

`Transcriber.transcribe(clips, languages)` is the one entry point used by pseudo-labelling
(stage 3), decoding (stage 7) and the proxy filter.  What it does, in order:
  1. clips without a language get Whisper's language identification (from the same encoder
     pass that then decodes them);
  2. with packing on, clips of the same language are packed into shared 30 s windows and
     decoded with timestamps (see packing.py); clips whose words cannot be attributed
     cleanly are decoded again on their own;
  3. everything else is decoded one clip per window, batched by duration.
Greedy decoding uses our own loop (greedy.py), beam search our own batched search (beam.py)
followed by one teacher-forced pass for the statistics.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from udistil.models.audio_context import AudioContext, encode as encode_context, log_mel
from udistil.teacher.beam import beam_decode
from udistil.teacher.greedy import STOP_END, DecodeRequest, DecodeResult, detect_languages, greedy_decode
from udistil.teacher.packing import SAMPLE_RATE, WINDOW_SECONDS, assign_segments, pack_clips, parse_segments
from udistil.teacher.options import (MAX_NEW_TOKENS, MAX_TARGET_TOKENS, TIMESTAMP_MODES,  # noqa: F401 (re-exported)
                                     DecodeOptions)
from udistil.teacher.token_rules import TokenRules

logger = logging.getLogger(__name__)




@dataclass
class Transcript:
    text: str
    tokens: list[int]
    logprobs: list[float]
    entropies: list[float]
    language: str | None
    stop: str
    packed: bool = False
    extra: dict = field(default_factory=dict)
    targets: list = field(default_factory=list)  # kd_targets rows, when asked for
    # The whole output with its timestamp tokens, when the clip was decoded alone in
    # timestamp mode (empty otherwise): where its sentences start and end (transcribe's
    # segments) and the sequence a student learns timestamps from.
    timestamped_tokens: list[int] = field(default_factory=list)


def balanced_batches(items: list, batch_size: int) -> list[list]:
    """Split into the fewest batches of at most batch_size, all of near-equal size.

    A batch costs as many decoder steps as its longest member, whatever its size: 9 windows
    as 5 + 4 cost two sequences of steps like 8 + 1 does, but the lone window of "8 + 1"
    wastes a whole sequence of steps on a batch of one.
    """
    if not items:
        return []
    n_batches = -(-len(items) // batch_size)
    size = -(-len(items) // n_batches)
    return [items[i:i + size] for i in range(0, len(items), size)]


class Transcriber:
    def __init__(self, model, processor, options: DecodeOptions | None = None, name: str = ""):
        self.name = name or getattr(model, "name_or_path", "")
        self.model_dir = getattr(model, "name_or_path", "")
        self.model = model.eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.options = options or DecodeOptions()
        self.rules = TokenRules.from_model(model, self.options.min_eot_prob)
        # The model's own audio-context rule (full 30 s for a teacher; the clip plus a
        # margin for a student trained on it): every encoder call here follows it.
        self.context = AudioContext.of(model)
        if self.options.pack and (self.context.is_dynamic or self.options.targets is not None):
            # A packed window is one 30 s context shared by several clips: neither a
            # clip-context model nor per-clip distillation targets can use it.
            logger.info("packing off: %s", "the model has a clip audio context"
                        if self.context.is_dynamic else "distillation targets need each clip alone")
            self.options = dataclasses.replace(self.options, pack=False)
        self.stats = {"windows": 0, "packed_clips": 0, "repacked_alone": 0, "single_clips": 0,
                      "split_clips": 0, "split_pieces": 0,
                      "encoder_passes": 0, "encoder_positions": 0, "decoder_steps": 0,
                      "encode_s": 0.0, "decode_s": 0.0}

    @classmethod
    def from_spec(cls, spec: str, options: DecodeOptions | None = None, device="cpu",
                  dtype=None) -> "Transcriber":
        """Load `spec` on `device` in `dtype` (None: the device's default, models/device.py)."""
        from udistil.models.spec import load_whisper

        model, processor = load_whisper(spec, device=device, dtype=dtype)
        return cls(model, processor, options, name=str(spec))

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.dtype

    def supports(self, language: str | None) -> bool:
        return self.rules.supports(language)

    # ---- public -------------------------------------------------------------------------
    def transcribe(self, clips: list[np.ndarray], languages: list[str | None]) -> list[Transcript]:
        for lang in languages:
            if not self.supports(lang):
                raise ValueError(f"language {lang!r} is not supported by this model")
        split = self._pause_segments(clips)
        if not split:
            return self._transcribe_clips(clips, languages)
        out: list[Transcript | None] = [None] * len(clips)
        whole = [i for i in range(len(clips)) if i not in split]
        for i, transcript in zip(whole, self._transcribe_clips([clips[i] for i in whole],
                                                               [languages[i] for i in whole])):
            out[i] = transcript
        self._transcribe_split(clips, languages, split, out)
        return out  # type: ignore[return-value]

    def _transcribe_clips(self, clips, languages) -> list[Transcript]:
        out: list[Transcript | None] = [None] * len(clips)
        durations = {i: len(c) / SAMPLE_RATE for i, c in enumerate(clips)}
        alone = [i for i, lang in enumerate(languages) if lang is None]
        if self.options.pack and self.options.beam == 1:
            by_language: dict[str, list[int]] = {}
            for i, lang in enumerate(languages):
                if lang is not None:
                    by_language.setdefault(lang, []).append(i)
            for lang, members in by_language.items():
                alone += self._transcribe_packed(clips, members, lang, durations, out)
        else:
            alone += [i for i, lang in enumerate(languages) if lang is not None]
        self._transcribe_alone(clips, sorted(alone, key=lambda i: durations[i]), languages, durations, out)
        return out  # type: ignore[return-value]

    # ---- long clips cut at pauses (DecodeOptions.split_above) ----------------------------
    def _pause_segments(self, clips) -> dict[int, list]:
        """The clips to cut (longer than split_above and with a pause to cut at): their
        segments of at most split_piece seconds, contiguous stretches of the clip with their
        pauses kept."""
        limit = self.options.split_above
        if not limit:
            return {}
        from udistil.transcribe.segments import SegmentOptions, split_at_pauses

        cut = SegmentOptions(max_seconds=self.options.split_piece, drop_pauses=False)
        split = {}
        for i, clip in enumerate(clips):
            if len(clip) <= limit * SAMPLE_RATE:
                continue
            segments = split_at_pauses(clip, cut)
            if len(segments) > 1:
                split[i] = segments
        return split

    def _transcribe_split(self, clips, languages, split, out) -> None:
        owners = [i for i, segments in split.items() for _ in segments]
        pieces = [segment.audio(clips[i]) for i, segments in split.items() for segment in segments]
        # A piece's label is part of its clip's: no targets of its own.
        whole_options = self.options
        self.options = dataclasses.replace(whole_options, targets=None)
        try:
            piece_transcripts = self._transcribe_clips(pieces, [languages[i] for i in owners])
        finally:
            self.options = whole_options
        by_clip: dict[int, list[Transcript]] = {}
        for i, transcript in zip(owners, piece_transcripts):
            by_clip.setdefault(i, []).append(transcript)
        order = sorted(split, key=lambda i: len(clips[i]))
        for batch in balanced_batches(order, self.options.batch_size):
            encoder_out = self.encode([clips[i] for i in batch])
            for row, i in enumerate(batch):
                parts = by_clip[i]
                lang = languages[i] or parts[0].language
                body = [t for part in parts for t in part.tokens][:MAX_NEW_TOKENS - 1]
                stop = next((part.stop for part in parts if part.stop != STOP_END), STOP_END)
                result = self._score_tokens(encoder_out[row:row + 1], self.rules.prompt(lang, False), body, stop)
                transcript = self._make_transcript(result, None, lang, False)
                if len(clips[i]) <= WINDOW_SECONDS * SAMPLE_RATE:
                    transcript.timestamped_tokens = self._segment_timestamps(split[i], parts)
                out[i] = transcript
                self.stats["split_clips"] += 1
                self.stats["split_pieces"] += len(parts)

    def _segment_timestamps(self, segments, parts) -> list[int]:
        """The joined label as Whisper writes timestamps: each piece's text between its
        segment's start and end time (pieces without text left out)."""
        tokens = []
        for segment, part in zip(segments, parts):
            if part.tokens:
                tokens += [self.rules.timestamp_token(segment.start / SAMPLE_RATE), *part.tokens,
                           self.rules.timestamp_token(segment.end / SAMPLE_RATE)]
        return tokens

    # ---- helpers ------------------------------------------------------------------------
    def budget(self, seconds: float) -> int:
        return self.options.token_budget(seconds)

    def context_positions(self, audio: np.ndarray) -> int:
        return self.context.positions(len(audio))

    @torch.inference_mode()
    def encode(self, audios: list[np.ndarray]) -> torch.Tensor:
        """Encoder states of a batch, at the longest clip's context under the model's rule."""
        t0 = time.perf_counter()
        positions = max(self.context_positions(a) for a in audios)
        # Features are computed on the CPU; they go to the model's device and dtype.
        features = log_mel(self.processor.feature_extractor, audios, positions).to(
            device=self.model.device, dtype=self.model.dtype)
        hidden = encode_context(self.model.get_encoder(), features, positions)
        self.stats["encoder_passes"] += len(audios)
        self.stats["encoder_positions"] += len(audios) * positions
        self.stats["encode_s"] += time.perf_counter() - t0
        return hidden

    def _greedy(self, encoder_out, requests) -> list[DecodeResult]:
        t0 = time.perf_counter()
        # Targets belong to a clip decoded alone, without timestamps (the training sequence).
        targets = self.options.targets if not any(r.timestamps for r in requests) else None
        results = greedy_decode(self.model, encoder_out, requests, self.rules, self.options.detect_loops,
                                self.options.token_stats, targets)
        self.stats["decode_s"] += time.perf_counter() - t0
        self.stats["decoder_steps"] += max((len(r.tokens) for r in results), default=0) + 1
        return results

    def _make_transcript(self, result: DecodeResult, positions: list[int] | None, language,
                         packed: bool, timestamped: bool = False) -> Transcript:
        """The transcript of `result` restricted to its text tokens (at `positions`, or all
        of them).

        Timestamp tokens never reach the text, the tokens or the per-token statistics: the
        filters score the words.  Each text token's log-probability and entropy are those of
        the distribution it was drawn from under Whisper's timestamp rules (the timestamp
        tokens' share of it included, as Whisper samples it); the statistics at the timestamp
        steps are dropped with the tokens.
        """
        if positions is None:
            positions = [i for i, t in enumerate(result.tokens) if not self.rules.is_timestamp(t)]
        tokens = [result.tokens[i] for i in positions]
        return Transcript(
            text=self.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
            tokens=tokens,
            logprobs=[result.logprobs[i] for i in positions],
            entropies=[result.entropies[i] for i in positions],
            language=language, stop=result.stop, packed=packed,
            targets=result.targets if not packed else [],
            timestamped_tokens=list(result.tokens) if timestamped else [])

    def _transcribe_packed(self, clips, members, language, durations, out) -> list[int]:
        """Decode `members` (one language) in packed windows; return the clips to redo alone."""
        opts = self.options
        windows = pack_clips({i: durations[i] for i in members}, opts.pack_gap, opts.pack_max_clips)
        redo = [w.placements[0].clip for w in windows if len(w.placements) == 1]
        windows = [w for w in windows if len(w.placements) > 1]
        prompt = self.rules.prompt(language, timestamps=True)
        for batch in balanced_batches(windows, opts.batch_size):
            encoder_out = self.encode([w.audio(clips) for w in batch])
            requests = [DecodeRequest(row, prompt, self._window_budget(w, durations), timestamps=True)
                        for row, w in enumerate(batch)]
            results = self._greedy(encoder_out, requests)
            for window, result in zip(batch, results):
                segments = parse_segments(result.tokens, self.rules, window.end)
                positions, bad = assign_segments(segments, window.placements)
                self.stats["windows"] += 1
                for p in window.placements:
                    if p.clip in bad:
                        redo.append(p.clip)
                        continue
                    # The window's stop reason belongs to the clip where decoding stopped.
                    last = max(positions[p.clip])
                    stopped_here = all(last >= max(v) for v in positions.values() if v)
                    clip_result = DecodeResult(result.tokens, result.logprobs, result.entropies,
                                               result.stop if stopped_here else STOP_END)
                    out[p.clip] = self._make_transcript(clip_result, positions[p.clip], language, True)
                    self.stats["packed_clips"] += 1
        self.stats["repacked_alone"] += len(redo)
        return redo

    def _window_budget(self, window, durations) -> int:
        # Each clip's own budget plus room for its segments' timestamp pairs.
        total = sum(self.budget(durations[p.clip]) + 6 for p in window.placements)
        return min(MAX_NEW_TOKENS, total)

    def _alone_batches(self, clips, order, durations) -> list[list[int]]:
        """Batches of clips that share one context length (all of them, for a full context)
        and one timestamp mode (its prompt is one token shorter)."""
        groups: dict[tuple[int, bool], list[int]] = {}
        for i in order:
            key = (self.context_positions(clips[i]), self.options.use_timestamps(durations[i]))
            groups.setdefault(key, []).append(i)
        return [batch for _, members in sorted(groups.items())
                for batch in balanced_batches(members, self.options.batch_size)]

    def _transcribe_alone(self, clips, order, languages, durations, out) -> None:
        opts = self.options
        for batch in self._alone_batches(clips, order, durations):
            timestamps = opts.use_timestamps(durations[batch[0]])
            encoder_out = self.encode([clips[i] for i in batch])
            langs = [languages[i] for i in batch]
            unknown = [row for row, lang in enumerate(langs) if lang is None]
            if unknown and self.rules.is_multilingual:
                for row, lang in zip(unknown, detect_languages(self.model, encoder_out, unknown, self.rules)):
                    langs[row] = lang
            elif unknown:
                for row in unknown:
                    langs[row] = "en"
            budget = opts.timestamp_budget if timestamps else opts.token_budget
            requests = [DecodeRequest(row, self.rules.prompt(lang, timestamps), budget(durations[i]), timestamps)
                        for row, (i, lang) in enumerate(zip(batch, langs))]
            if opts.beam > 1:
                results = self._beam_decode(encoder_out, requests)
            else:
                results = self._greedy(encoder_out, requests)
            if timestamps and opts.targets is not None:
                self._attach_text_targets(encoder_out, requests, langs, results)
            for i, lang, result in zip(batch, langs, results):
                out[i] = self._make_transcript(result, None, lang, False, timestamped=timestamps)
                self.stats["single_clips"] += 1

    def _attach_text_targets(self, encoder_out, requests, langs, results) -> None:
        """Distillation targets for clips decoded with timestamps: the teacher's distributions
        along the sequence a student is trained on (<|notimestamps|>, then the label's text
        tokens), from one teacher-forced pass per clip."""
        for request, lang, result in zip(requests, langs, results):
            text = [t for t in result.tokens if not self.rules.is_timestamp(t)]
            row = encoder_out[request.encoder_row:request.encoder_row + 1]
            result.targets = self._score_tokens(row, self.rules.prompt(lang, timestamps=False), text,
                                                result.stop).targets

    def _beam_decode(self, encoder_out, requests) -> list[DecodeResult]:
        """Batched beam search (beam.py), then one teacher-forced pass per clip for the
        per-token statistics (and the distillation targets) of the chosen tokens."""
        t0 = time.perf_counter()
        chosen = beam_decode(self.model, encoder_out, requests, self.rules, self.options.beam,
                             self.options.detect_loops)
        self.stats["decode_s"] += time.perf_counter() - t0
        return [self._score_tokens(encoder_out[r.encoder_row:r.encoder_row + 1], r.prompt, c.tokens, c.stop,
                                   with_targets=not r.timestamps)
                for r, c in zip(requests, chosen)]

    @torch.inference_mode()
    def _score_tokens(self, encoder_row, prompt, body, stop, with_targets: bool = True) -> DecodeResult:
        device = encoder_row.device
        ids = torch.tensor([prompt + body + [self.rules.end_of_text]], device=device)
        hidden = self.model.get_decoder()(input_ids=ids, encoder_hidden_states=encoder_row,
                                          use_cache=False).last_hidden_state[0]
        logits = self.model.get_output_embeddings()(hidden).float()
        logprobs = torch.log_softmax(logits.masked_fill(self.rules.suppress, float("-inf")), dim=-1)
        # Position k predicts token k+1: the body's tokens are predicted from len(prompt)-1 on.
        first = len(prompt) - 1
        rows = logprobs[first:first + len(body)]
        probs = rows.exp()
        entropy = -(probs * rows.masked_fill(probs == 0, 0.0)).sum(-1)
        chosen = (rows.gather(1, torch.tensor(body, dtype=torch.long, device=device)[:, None])[:, 0]
                  if body else rows[:0, 0])
        targets = []
        if self.options.targets is not None and with_targets:
            # The body's rows, and the end token's when the beam ended on it.
            n_rows = len(body) + (1 if stop == STOP_END else 0)
            targets = self.options.targets.rows(logits[first:first + n_rows], hidden[first:first + n_rows])
        return DecodeResult(body, chosen.tolist(), entropy.tolist(), stop, targets)
