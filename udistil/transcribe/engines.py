"""The two ways `udistil transcribe` runs a model, behind one small interface.

- `TorchEngine`: any model spec (hub id, transformers directory, packaged:NAME) through the
  pipeline's own `Transcriber` (greedy loop with per-clip token budgets and repetition-loop
  stops; the model's audio-context rule), on --device in --dtype (models/device.py; the
  CUDA path has not yet run on a GPU).
- `CT2Engine`: a CTranslate2 directory (from `udistil export`, or any faster-whisper model)
  through `ctranslate2.models.Whisper.generate`, on the CPU or a GPU.  When the export
  records a clip audio context, each batch is given only the mel frames the rule asks for
  (CTranslate2 takes fewer than 3000); otherwise the usual 30 s.  Token budgets are the same
  as the torch engine's (one per batch: its longest clip's), within CTranslate2's own limit
  of half the 448-token context; and so is the loop stop: the batch is encoded once and
  decoded in up to three calls, to a quarter of the budget's rate (where most speech ends),
  to half of it, and to the budget, each continuing the rows that neither ended nor looped
  from their tokens so far; a row whose output became a repetition loop is cut as the torch
  engine cuts it.  On the CPU the engine's threads are CTranslate2 workers of one thread each,
  fed small batches side by side (`cpu_workers`, `worker_batch_size`): one batch on two
  threads leaves much of the second idle.

Both take 16 kHz clips of at most 30 s and return one text per clip (`transcribe`), or one
`TimedText` per clip (`transcribe_timed`): its text and, for a clip decoded in Whisper's
timestamp mode (DecodeOptions.use_timestamps), the sentences between the model's own
timestamps, in seconds from the clip's start.  In timestamp mode the CTranslate2 engine
decodes in one call to the budget (CTranslate2 restarts its timestamp rules at the end of a
prompt, so a continued row would have to open a new segment) and cuts a loop afterwards.
"""
from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from dataclasses import dataclass, field

from udistil.errors import UdistilError
from udistil.teacher.transcriber import MAX_TARGET_TOKENS, DecodeOptions, balanced_batches
from udistil.models.audio_context import SAMPLE_RATE

log = logging.getLogger(__name__)



# CTranslate2 generates at most half of max_length tokens (its Whisper keeps the original
# sample_len = n_text_ctx // 2 limit), counting a prompt's text prefix among them.
CT2_MAX_TOKENS = MAX_TARGET_TOKENS // 2 - 4
# Each call's end as a share of the budget's per-second rate (the budget is the last): the
# first (16 + 3 tokens/s) is above the token rate of most English speech, so most rows end in
# it, and low enough that a looping row stops holding its batch early.  Chosen on a 303 s file
# of mini dev and train clips (seconds for the same text: 0.5,1: 9.4-9.9; 0.3,1: 8.8; 0.25,1:
# 8.8-8.9; 0.2,1: 9.1-9.3; 0.25,0.5,1: 8.5-8.8).
CALL_RATE_SHARES = (0.25, 0.5, 1.0)


def cpu_workers(threads: int) -> int:
    """How many CTranslate2 workers (of one thread each) the CPU engine runs for `threads`
    (0 = every CPU this process may use, which a Slurm job's allocation limits).

    CTranslate2 parallelises one batch over its threads poorly, and its workers share the
    weights: small batches on single-thread workers side by side were the fastest split
    measured (docs/timestamps.md, "Workers", has the figures)."""
    if threads > 0:
        return threads
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def worker_batch_size(clips: int, batch_size: int, workers: int) -> int:
    """The batch size that gives each of `workers` at least two batches of `clips` where the
    clips allow it, at most `batch_size`: a worker that finishes early takes another batch
    instead of idling while the slowest one ends (batches of 2-3 beat batches of 6 on two
    workers; docs/timestamps.md, "Workers")."""
    if workers <= 1:
        return batch_size
    return max(1, min(batch_size, -(-clips // (2 * workers))))


@dataclass
class TimedText:
    """A clip's text and its timestamped sentences (start s, end s, text), times from the
    clip's start; no sentences when the clip was decoded without timestamps (`timestamped`
    says which: a clip decoded with them may still have none)."""

    text: str
    sentences: list[tuple[float, float, str]] = field(default_factory=list)
    timestamped: bool = False


def timed_sentences(tokens: list[int], timestamp_begin: int, clip_seconds: float, decode) -> list[tuple]:
    """The (start, end, text) sentences of a timestamped token sequence.

    A sentence runs from its opening timestamp to its closing one; text before any timestamp
    starts at 0, and the text after the last timestamp (a sentence the window cut, or one
    the model did not close) ends at the clip's end.  Times are clamped to the clip and never
    go backwards."""
    from udistil.teacher.token_rules import TIMESTAMP_RESOLUTION

    sentences, opened, words, last = [], None, [], 0.0

    def close(end):
        text = decode(words).strip()
        if text:
            start = min(max(opened if opened is not None else last, last), clip_seconds)
            sentences.append((start, min(max(end, start), clip_seconds), text))

    for token in tokens:
        if token >= timestamp_begin:
            seconds = (token - timestamp_begin) * TIMESTAMP_RESOLUTION
            if opened is None and not words:
                opened = seconds
                continue
            close(seconds)
            last = max(last, min(seconds, clip_seconds))
            opened, words = None, []
        else:
            words.append(token)
    if words:
        close(clip_seconds)
    return sentences


class TorchEngine:
    """A model spec run by the pipeline's Transcriber."""

    name = "torch"

    def __init__(self, spec: str, options: DecodeOptions, device: str = "auto", dtype: str = "auto"):
        from udistil.models.device import Placement
        from udistil.teacher.transcriber import Transcriber

        placement = Placement.resolve(device, dtype)
        self.transcriber = Transcriber.from_spec(spec, options, placement.device, placement.dtype)
        self.rules = self.transcriber.rules

    @property
    def multilingual(self) -> bool:
        return self.rules.is_multilingual

    def supports(self, language: str) -> bool:
        return self.rules.supports(language)

    def detect_languages(self, clips: list[np.ndarray]) -> list[str]:
        from udistil.teacher.greedy import detect_languages

        if not self.multilingual:
            return ["en"] * len(clips)
        languages: list[str] = []
        for batch in balanced_batches(clips, self.transcriber.options.batch_size):
            hidden = self.transcriber.encode(batch)
            languages += detect_languages(self.transcriber.model, hidden, list(range(len(batch))), self.rules)
        return languages

    def transcribe(self, clips: list[np.ndarray], languages: list[str]) -> list[str]:
        return [t.text for t in self.transcribe_timed(clips, languages)]

    def transcribe_timed(self, clips: list[np.ndarray], languages: list[str]) -> list[TimedText]:
        out = []
        decode = self.transcriber.tokenizer.decode
        for clip, t in zip(clips, self.transcriber.transcribe(clips, languages)):
            sentences = (timed_sentences(t.timestamped_tokens, self.rules.timestamp_begin, len(clip) / SAMPLE_RATE,
                                         lambda ids: decode(ids, skip_special_tokens=True))
                         if t.timestamped_tokens else [])
            timestamped = not t.packed and self.transcriber.options.use_timestamps(len(clip) / SAMPLE_RATE)
            out.append(TimedText(t.text, sentences, timestamped))
        return out


class CT2Engine:
    """A CTranslate2 Whisper directory run by CTranslate2's own `generate`."""

    name = "ctranslate2"

    def __init__(self, path, options: DecodeOptions, device: str = "auto", compute_type: str = "default",
                 threads: int = 0):
        import ctranslate2
        import tokenizers
        from transformers import WhisperFeatureExtractor

        from udistil.models.export import export_audio_context

        path = Path(path)
        self.options = options
        on_cpu = device == "cpu" or (device == "auto" and ctranslate2.get_cuda_device_count() == 0)
        # A GPU runs one batch at a time, as large as --batch-size allows.
        self.workers = cpu_workers(threads) if on_cpu else 1
        self.pool = ThreadPoolExecutor(self.workers) if self.workers > 1 else None
        try:
            self.model = ctranslate2.models.Whisper(
                str(path), device=device, compute_type=compute_type, inter_threads=self.workers,
                intra_threads=1 if self.workers > 1 else threads)
        except (RuntimeError, ValueError) as e:
            raise UdistilError(f"{path}: CTranslate2 cannot load the model on device {device!r} with "
                               f"compute type {compute_type!r} ({e})") from e
        tokenizer_file = path / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise UdistilError(f"{path}: no tokenizer.json beside model.bin; export the model with "
                               "`udistil export`")
        self.tokenizer = tokenizers.Tokenizer.from_file(str(tokenizer_file))
        preprocessor = path / "preprocessor_config.json"
        self.features = (WhisperFeatureExtractor.from_json_file(str(preprocessor)) if preprocessor.is_file()
                         else WhisperFeatureExtractor(feature_size=self.model.n_mels))
        self.context = export_audio_context(path)
        ids = {t: self.tokenizer.token_to_id(t) for t in
               ("<|startoftranscript|>", "<|endoftext|>", "<|transcribe|>", "<|notimestamps|>")}
        if None in ids.values():
            raise UdistilError(f"{tokenizer_file}: lacks Whisper's special tokens")
        self.start, self.end_of_text = ids["<|startoftranscript|>"], ids["<|endoftext|>"]
        self.task, self.no_timestamps = ids["<|transcribe|>"], ids["<|notimestamps|>"]
        self.timestamp_begin = self.no_timestamps + 1
        if self.context.is_dynamic:
            log.info("%s: audio context %s", path, self.context.describe())

    @property
    def multilingual(self) -> bool:
        return self.model.is_multilingual

    def supports(self, language: str) -> bool:
        if not self.multilingual:
            return language == "en"
        return self.tokenizer.token_to_id(f"<|{language}|>") is not None

    def _storage(self, clips: list[np.ndarray]):
        import ctranslate2

        features = self.features(clips, sampling_rate=SAMPLE_RATE, return_tensors="np").input_features
        positions = max(self.context.positions(len(c)) for c in clips)
        features = np.ascontiguousarray(features[..., :2 * positions], dtype=np.float32)
        return ctranslate2.StorageView.from_array(features)

    def _batches(self, clips: list[np.ndarray], order: list[int]) -> list[list[int]]:
        # Clips of one batch share one context length (all of them, for a full context).
        groups: dict[int, list[int]] = {}
        for i in order:
            groups.setdefault(self.context.positions(len(clips[i])), []).append(i)
        size = worker_batch_size(len(order), self.options.batch_size, self.workers)
        return [batch for _, members in sorted(groups.items()) for batch in balanced_batches(members, size)]

    def _map(self, fn, batches: list[list[int]]) -> list:
        """fn(batch) for every batch, in order; side by side on the CPU workers (CTranslate2
        releases Python's lock while it computes)."""
        if self.pool is None or len(batches) < 2:
            return [fn(batch) for batch in batches]
        return list(self.pool.map(fn, batches))

    def detect_languages(self, clips: list[np.ndarray]) -> list[str]:
        if not self.multilingual:
            return ["en"] * len(clips)
        out: list[str | None] = [None] * len(clips)
        batches = self._batches(clips, list(range(len(clips))))
        detect = lambda batch: self.model.detect_language(self._storage([clips[i] for i in batch]))  # noqa: E731
        for batch, results in zip(batches, self._map(detect, batches)):
            for i, ranked in zip(batch, results):
                out[i] = ranked[0][0].strip("<|>")
        return out  # type: ignore[return-value]

    def prompt(self, language: str, timestamps: bool = False) -> list[int]:
        tokens = [self.start]
        if self.multilingual:
            tokens += [self.tokenizer.token_to_id(f"<|{language}|>"), self.task]
        return tokens if timestamps else tokens + [self.no_timestamps]

    def transcribe(self, clips: list[np.ndarray], languages: list[str]) -> list[str]:
        return [t.text for t in self.transcribe_timed(clips, languages)]

    def transcribe_timed(self, clips: list[np.ndarray], languages: list[str]) -> list[TimedText]:
        out: list[TimedText] = [TimedText("")] * len(clips)
        order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
        batches = self._batches(clips, order)
        for batch, timed in zip(batches, self._map(lambda batch: self._transcribe_batch(clips, languages, batch),
                                                   batches)):
            for i, text in zip(batch, timed):
                out[i] = text
        return out

    def _transcribe_batch(self, clips: list[np.ndarray], languages: list[str], batch: list[int]) -> list[TimedText]:
        """The TimedText of each clip of `batch` (indices into `clips`), in its order."""
        decode = self.tokenizer.decode
        seconds = max(len(clips[i]) for i in batch) / SAMPLE_RATE
        timestamps = self.options.use_timestamps(seconds)
        if timestamps:
            budget = min(self.options.timestamp_budget(seconds), CT2_MAX_TOKENS)
            ends = [budget]
        else:
            budget = min(self.options.token_budget(seconds), CT2_MAX_TOKENS)
            ends = sorted({min(self.options.token_budget(seconds, share), budget)
                           for share in CALL_RATE_SHARES} | {budget})
        tokens = self._generate(self._storage([clips[i] for i in batch]),
                                [self.prompt(languages[i], timestamps) for i in batch], ends,
                                timestamps=timestamps)
        out = []
        for i, row in zip(batch, tokens):
            text = decode([t for t in row if t < self.end_of_text]).strip()
            sentences = (timed_sentences(row, self.timestamp_begin, len(clips[i]) / SAMPLE_RATE, decode)
                         if timestamps else [])
            out.append(TimedText(text, sentences, timestamps))
        return out

    def _generate(self, features, prompts: list[list[int]], round_ends: list[int],
                  timestamps: bool = False) -> list[list[int]]:
        """Tokens of each row, decoded in one call per entry of `round_ends` (rising token
        counts; the last is the budget), each continuing the rows that neither ended nor looped."""
        import ctranslate2

        from udistil.teacher.greedy import loop_stop_length

        encoded = np.asarray(self.model.encode(features, to_cpu=True))
        tokens: list[list[int]] = [[] for _ in prompts]
        active, done = list(range(len(prompts))), 0
        for target in round_ends:
            # Every active row has `done` tokens: it neither ended nor looped, so it filled its room.
            full_prompts = [prompts[i] + tokens[i] for i in active]
            max_length = min(MAX_TARGET_TOKENS, 2 * (target + len(full_prompts[0])))
            results = self.model.generate(
                ctranslate2.StorageView.from_array(np.ascontiguousarray(encoded[active])), full_prompts,
                beam_size=self.options.beam, max_length=max_length, suppress_blank=done == 0,
                suppress_tokens=[-1])
            still = []
            for i, result in zip(active, results):
                row = result.sequences_ids[0]
                # CTranslate2 returns the text prefix given in the prompt followed by the new
                # tokens (max_length leaves room for both); the guard keeps a version that
                # returned only the new ones working.
                if row[:done] != tokens[i]:
                    row = tokens[i] + row
                ended = len(row) < target
                row = row[:target]
                cut = loop_stop_length(row, checked=done,
                                       timestamp_begin=self.timestamp_begin if timestamps else None)
                tokens[i] = row if cut is None else row[:cut]
                if cut is None and not ended:
                    still.append(i)
            active, done = still, target
            if not active:
                break
        return tokens


def open_engine(model: str, options: DecodeOptions, device: str = "auto", compute_type: str = "default",
                threads: int = 0, dtype: str = "auto"):
    """The engine for `model`: a CTranslate2 directory, or any model spec for the torch engine.

    --device means the same for both (models/device.py; CTranslate2 resolves "auto" itself);
    the precision is --compute-type for CTranslate2 and --dtype for the torch engine."""
    from udistil.models.device import DEVICES
    from udistil.models.export import is_ctranslate2_dir

    if device not in DEVICES:
        raise UdistilError(f"unknown device {device!r}; choose from {', '.join(DEVICES)}")
    if is_ctranslate2_dir(model):
        if dtype not in (None, "auto"):
            raise UdistilError(f"--dtype {dtype} applies to the torch engine; {model} is a CTranslate2 "
                               "export: choose its precision with --compute-type")
        return CT2Engine(model, options, device=device, compute_type=compute_type, threads=threads)
    if compute_type != "default":
        raise UdistilError(f"--compute-type {compute_type} applies to a CTranslate2 export; {model} runs "
                           "in the torch engine (choose its precision with --dtype)")
    return TorchEngine(model, options, device=device, dtype=dtype)
